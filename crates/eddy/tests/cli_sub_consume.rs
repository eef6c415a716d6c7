//! Proves `eddy sub …` and `eddy consume` through the real binary against a
//! real `eddy serve`: subscription settings from flags reach the server,
//! `consume --max` prints and acks (a second consume sees nothing new, and
//! still exits 0 with a note), `--no-ack` leaves deliveries leased, `seek`
//! replays, and missing or duplicate subscriptions get exit codes 3 and 4.

mod support;

use serde_json::json;
use support::Server;

#[test]
fn consume_acks_what_it_prints() {
    // Proves --max bounds a consume, acked events never come back, a
    // consume with nothing ready exits 0 with a note on stderr, and the
    // JSON delivery shape.
    let server = Server::start();
    server.eddy(&["topic", "create", "jobs"]).ok();
    server
        .eddy(&[
            "sub", "create", "work", "--filter", "jobs", "--start", "earliest",
        ])
        .ok()
        .stdout_has(&["created subscription work"]);
    server
        .eddy_stdin(
            &["publish", "jobs", "--type", "Job", "--key", "k"],
            "j0\nj1\nj2\nj3\nj4\n",
        )
        .ok();

    let first = server
        .eddy(&["consume", "work", "--max", "3", "--json"])
        .ok()
        .ndjson();
    assert_eq!(first.len(), 3);
    for (i, d) in first.iter().enumerate() {
        assert_eq!(d["attempt"], 1);
        let ack_id = d["ack_id"].as_str().unwrap();
        assert!(ack_id.starts_with(&format!("jobs/0/{i}/")), "{ack_id}");
        assert!(d["lease_deadline_ms"].as_i64().unwrap() > 0);
        assert_eq!(d["event"]["offset"], i as u64);
        assert_eq!(d["event"]["type"], "Job");
        assert_eq!(d["event"]["key"], "k");
    }

    let rest = server.eddy(&["consume", "work", "--max", "10", "--wait-ms", "300"]);
    rest.ok().stderr_has(&["consumed 2 of --max 10"]);
    assert_eq!(rest.stdout, "jobs/0@3  Job  k  j3\njobs/0@4  Job  k  j4\n");

    let none = server.eddy(&["consume", "work", "--wait-ms", "200"]);
    none.ok().stderr_has(&["nothing to consume"]);
    assert_eq!(none.stdout, "", "acked events are not delivered again");

    let stats = server
        .eddy(&["stats", "--sub", "work", "--json"])
        .ok()
        .json();
    assert_eq!(stats["acked"], 5);
    assert_eq!(stats["lag"], 0);
    assert_eq!(stats["in_flight"], 0);

    // --no-ack prints but leaves the delivery leased and pending.
    server
        .eddy(&["publish", "jobs", "j5", "--type", "Job"])
        .ok();
    server
        .eddy(&["consume", "work", "--no-ack"])
        .ok()
        .stdout_has(&["jobs/0@5  Job  -  j5"]);
    let described = server
        .eddy(&["sub", "describe", "work", "--json"])
        .ok()
        .json();
    assert_eq!(described["stats"]["in_flight"], 1);
    assert_eq!(described["stats"]["lag"], 1);
    let none = server.eddy(&["consume", "work", "--wait-ms", "100"]);
    none.ok();
    assert_eq!(none.stdout, "", "a leased delivery is not handed out twice");

    // Seek back to the beginning: everything is delivered again.
    server
        .eddy(&["sub", "seek", "work", "--to", "beginning"])
        .ok()
        .stdout_has(&["moved subscription work"]);
    let replay = server
        .eddy(&[
            "consume",
            "work",
            "--max",
            "100",
            "--wait-ms",
            "300",
            "--json",
        ])
        .ok()
        .ndjson();
    let offsets: Vec<u64> = replay
        .iter()
        .map(|d| d["event"]["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn sub_settings_and_errors() {
    // Proves every create flag lands in the subscription's config, list
    // and describe show it, and duplicate (4), missing (3) and malformed
    // (2) input get their exit codes with a hint.
    let server = Server::start();
    server.eddy(&["topic", "create", "orders.placed"]).ok();
    let created = server
        .eddy(&[
            "sub",
            "create",
            "audit",
            "--filter",
            "orders.>",
            "--mode",
            "ordered",
            "--ack-wait",
            "2m",
            "--max-attempts",
            "3",
            "--backoff",
            "exponential(100ms,3)",
            "--backoff-cap",
            "5s",
            "--jitter",
            "10",
            "--max-ack-pending",
            "50",
            "--json",
        ])
        .ok()
        .json();
    let config = &created["config"];
    assert_eq!(config["filter"], "orders.>");
    assert_eq!(config["mode"], "ordered");
    assert_eq!(config["start"], "latest");
    assert_eq!(config["ack_wait_ms"], 120_000);
    assert_eq!(config["max_ack_pending"], 50);
    assert_eq!(
        config["retry"],
        json!({
            "max_deliveries": 3,
            "backoff": { "kind": "exponential", "initial_ms": 100, "factor": 3 },
            "cap_ms": 5000,
            "jitter_pct": 10,
        })
    );
    assert_eq!(created["topics"], json!(["orders.placed"]));
    assert_eq!(created["dead_letter_topic"], "$dlq.audit");

    let text = server
        .eddy(&["sub", "describe", "audit"])
        .ok()
        .stdout
        .clone();
    for part in [
        "exponential(100ms,3)",
        "capped at 5s",
        "ordered",
        "2m",
        "orders.placed",
        "lag",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    let list = server.eddy(&["sub", "list"]).ok().stdout.clone();
    assert!(
        list.lines()
            .any(|l| l.starts_with("audit ") && l.contains("orders.>")),
        "{list}"
    );
    let listed = server.eddy(&["sub", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    server
        .eddy(&["sub", "create", "audit", "--filter", "orders.>"])
        .code(4)
        .stderr_has(&["exists already", "eddy sub describe audit"]);
    server
        .eddy(&["consume", "nobody"])
        .code(3)
        .stderr_has(&["does not exist", "eddy sub list"]);
    server
        .eddy(&[
            "sub",
            "create",
            "bad",
            "--filter",
            "orders.>",
            "--backoff",
            "linear(1s)",
        ])
        .code(2)
        .stderr_has(&["fixed(5s)"]);
    server
        .eddy(&["sub", "create", "bad", "--filter", "orders.>.x"])
        .code(5);
    server.eddy(&["sub", "delete", "audit", "--json"]).ok();
    server.eddy(&["sub", "describe", "audit"]).code(3);
}

#[test]
fn follow_waits_for_new_events_until_max_or_ctrl_c() {
    // Proves `consume --follow` and `read --follow` wait for events
    // published after they start, stop at --max, and that Ctrl-C ends a
    // follow cleanly (exit 0) after acking what was printed.
    let server = Server::start();
    server.eddy(&["topic", "create", "live"]).ok();
    server
        .eddy(&["sub", "create", "tail", "--filter", "live"])
        .ok();

    // The topic is empty: the reader starts at its beginning whenever it
    // gets going, so it cannot miss an event published meanwhile.
    let reader = server.spawn_eddy(&["read", "live", "--follow", "--max", "2", "--json"]);
    let consumer = server.spawn_eddy(&["consume", "tail", "--follow"]);
    // Both wait: nothing is published yet. Then two events arrive.
    server.eddy(&["publish", "live", "one", "--type", "L"]).ok();
    assert_eq!(consumer.next_line(), "live/0@0  L  -  one");
    server.eddy(&["publish", "live", "two", "--type", "L"]).ok();
    assert_eq!(consumer.next_line(), "live/0@1  L  -  two");

    let first: serde_json::Value = serde_json::from_str(&reader.next_line()).unwrap();
    assert_eq!(first["offset"], 0);
    let (code, rest, stderr) = reader.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(rest.len(), 1, "--max 2 stops the reader: {rest:?}");

    consumer.interrupt();
    let (code, rest, stderr) = consumer.finish();
    assert_eq!(code, Some(0), "Ctrl-C ends a follow cleanly: {stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(stderr.contains("stopped after 2 deliveries"), "{stderr}");
    let stats = server
        .eddy(&["stats", "--sub", "tail", "--json"])
        .ok()
        .json();
    assert_eq!(stats["acked"], 2, "both printed deliveries were acked");
}
