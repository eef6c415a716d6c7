//! Proves `eddy dlq list|show|redrive|purge` through the real binary
//! against a real `eddy serve`: events terminated by `consume --terminate`
//! and nacked to exhaustion by `consume --nack` land in the dead-letter
//! queue with their reason, attempts and last error; a redriven one is
//! delivered again with fresh attempts; a redrive to a topic republishes
//! with the same ids; purges remove what they say; and counts are printed.

mod support;

use support::Server;

#[test]
fn dead_letters_listed_shown_redriven_and_purged() {
    // Proves the whole dead-letter workflow, in text and JSON.
    let server = Server::start();
    server.eddy(&["topic", "create", "pay"]).ok();
    server.eddy(&["topic", "create", "pay.retry"]).ok();
    server
        .eddy(&[
            "sub",
            "create",
            "billing",
            "--filter",
            "pay",
            "--start",
            "earliest",
            "--max-attempts",
            "1",
        ])
        .ok();
    server
        .eddy_stdin(&["publish", "pay", "--type", "Charge"], "e0\ne1\ne2\ne3\n")
        .ok();

    server
        .eddy(&[
            "consume",
            "billing",
            "--max",
            "2",
            "--terminate",
            "bad card",
        ])
        .ok()
        .stdout_has(&["pay/0@0", "pay/0@1"]);
    server
        .eddy(&[
            "consume",
            "billing",
            "--max",
            "2",
            "--nack",
            "--error",
            "gateway down",
        ])
        .ok()
        .stdout_has(&["pay/0@2", "pay/0@3"]);

    let listed = server
        .eddy(&["dlq", "list", "billing", "--json"])
        .ok()
        .json();
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 4);
    for (i, d) in listed.iter().enumerate() {
        assert_eq!(d["id"], i as u64);
        assert_eq!(d["subscription"], "billing");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["event"]["offset"], i as u64);
        assert_eq!(d["event"]["type"], "Charge");
        let (reason, error) = if i < 2 {
            ("terminated", "bad card")
        } else {
            ("max_deliveries", "gateway down")
        };
        assert_eq!(d["reason"], reason, "{d}");
        assert_eq!(d["last_error"], error, "{d}");
    }
    let table = server.eddy(&["dlq", "list", "billing"]).ok().stdout.clone();
    assert_eq!(table.lines().count(), 5, "a header and four rows: {table}");
    assert!(
        table.contains("gateway down") && table.contains("terminated"),
        "{table}"
    );

    let shown = server
        .eddy(&["dlq", "show", "billing", "2", "--json"])
        .ok()
        .json();
    assert_eq!(shown["reason"], "max_deliveries");
    assert_eq!(shown["event"]["data_base64"], "ZTI="); // "e2"
    let text = server
        .eddy(&["dlq", "show", "billing", "2"])
        .ok()
        .stdout
        .clone();
    for part in ["max_deliveries", "gateway down", "pay/0@2", "Charge", "e2"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    server
        .eddy(&["dlq", "show", "billing", "99"])
        .code(3)
        .stderr_has(&["eddy dlq list"]);

    // Redrive one back into the subscription: delivered again, attempt 1.
    server
        .eddy(&["dlq", "redrive", "billing", "0"])
        .ok()
        .stdout_has(&["redrove 1 dead letter: back into subscription billing"]);
    let again = server
        .eddy(&[
            "consume",
            "billing",
            "--max",
            "5",
            "--wait-ms",
            "300",
            "--json",
        ])
        .ok()
        .ndjson();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["event"]["offset"], 0);
    assert_eq!(again[0]["attempt"], 1);
    assert_eq!(again[0]["event"]["id"], listed[0]["event"]["id"]);

    // Purge one by id, redrive the rest to another topic.
    server
        .eddy(&["dlq", "purge", "billing", "1"])
        .ok()
        .stdout_has(&["purged 1 dead letter of subscription billing"]);
    let redriven = server
        .eddy(&[
            "dlq",
            "redrive",
            "billing",
            "--all",
            "--to-topic",
            "pay.retry",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(redriven["redriven"], 2);
    assert_eq!(redriven["target"]["topic"], "pay.retry");
    let moved = server.eddy(&["read", "pay.retry", "--json"]).ok().ndjson();
    let ids: Vec<_> = moved.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![
            listed[2]["event"]["id"].clone(),
            listed[3]["event"]["id"].clone()
        ]
    );
    server
        .eddy(&["dlq", "list", "billing"])
        .ok()
        .stdout_has(&["is empty"]);

    // More dead letters, then purge them all.
    server
        .eddy_stdin(&["publish", "pay", "--type", "Charge"], "e4\ne5\ne6\n")
        .ok();
    server
        .eddy(&["consume", "billing", "--max", "3", "--terminate", "no"])
        .ok();
    let purged = server
        .eddy(&["dlq", "purge", "billing", "--all", "--json"])
        .ok()
        .json();
    assert_eq!(purged["purged"], 3);
    let stats = server
        .eddy(&["stats", "--sub", "billing", "--json"])
        .ok()
        .json();
    assert_eq!(stats["dead_letters"], 0);
    assert_eq!(stats["lag"], 0);

    // Neither ids nor --all is a usage error; both is too.
    server.eddy(&["dlq", "purge", "billing"]).code(2);
    server
        .eddy(&["dlq", "purge", "billing", "--all", "3"])
        .code(2);
    server.eddy(&["dlq", "list", "nobody"]).code(3);
}
