//! Proves `eddy publish` and `eddy read` through the real binary against a
//! real `eddy serve`: one event from arguments and thousands from stdin
//! (crossing publish batches) come back from `read --from beginning
//! --json` in order with every attribute intact, content types are chosen
//! by whether the data parses as JSON, a repeated id is reported as a
//! duplicate, and reads start where `--from` says.

mod support;

use serde_json::{Value, json};
use support::Server;

/// Lines published from stdin: more than two publish batches' worth.
const LINES: usize = 2500;

#[test]
fn publish_from_args_and_stdin_then_replay_in_order() {
    // Proves the round trip of attributes and data, order, batching and
    // the JSON event shape.
    let server = Server::start();
    server.eddy(&["topic", "create", "orders"]).ok();
    server
        .eddy(&[
            "publish",
            "orders",
            r#"{"n":0}"#,
            "--type",
            "OrderPlaced",
            "--key",
            "k-0",
            "--id",
            "e-0",
            "--header",
            "tenant=acme",
            "--header",
            "region=eu",
            "--subject",
            "order-0",
            "--correlation-id",
            "c-1",
            "--source",
            "shop",
            "--time",
            "2026-05-01T12:00:00Z",
        ])
        .ok()
        .stdout_has(&["published to orders/0@0"]);

    let input: String = (1..=LINES)
        .map(|i| {
            if i % 2 == 0 {
                format!("{{\"n\":{i}}}\n")
            } else {
                format!("line {i}\n")
            }
        })
        .collect::<String>()
        + "\n"; // a blank line is skipped
    let summary = server
        .eddy_stdin(
            &[
                "publish", "orders", "--type", "Line", "--key", "bulk", "--header", "batch=b1",
                "--json",
            ],
            &input,
        )
        .ok()
        .json();
    assert_eq!(
        summary,
        json!({
            "topic": "orders",
            "events": LINES,
            "duplicates": 0,
            "partitions": [{ "partition": 0, "events": LINES, "first_offset": 1, "last_offset": LINES }],
        })
    );

    let events = server
        .eddy(&["read", "orders", "--from", "beginning", "--json"])
        .ok()
        .ndjson();
    assert_eq!(events.len(), LINES + 1);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["offset"], i as u64, "in order: {e}");
        assert_eq!(e["topic"], "orders");
        assert_eq!(e["partition"], 0);
        assert_eq!(e["specversion"], "1.0");
        assert!(e["timestamp"].as_i64().unwrap() > 0);
    }
    let first = &events[0];
    assert_eq!(first["id"], "e-0");
    assert_eq!(first["type"], "OrderPlaced");
    assert_eq!(first["source"], "shop");
    assert_eq!(first["key"], "k-0");
    assert_eq!(first["subject"], "order-0");
    assert_eq!(first["correlationid"], "c-1");
    assert_eq!(first["time"], "2026-05-01T12:00:00.000Z");
    assert_eq!(
        first["headers"],
        json!({ "tenant": "acme", "region": "eu" })
    );
    assert_eq!(first["datacontenttype"], "application/json");
    assert_eq!(first["data"], json!({ "n": 0 }));
    for (i, e) in events.iter().enumerate().skip(1) {
        assert_eq!(e["type"], "Line");
        assert_eq!(e["key"], "bulk");
        assert_eq!(e["headers"], json!({ "batch": "b1" }));
        assert_ne!(e["id"], Value::Null);
        if i % 2 == 0 {
            assert_eq!(e["datacontenttype"], "application/json");
            assert_eq!(e["data"], json!({ "n": i }));
        } else {
            assert_eq!(e["datacontenttype"], "text/plain");
            assert!(e.get("data").is_none());
            let expected = format!("line {i}");
            assert_eq!(e["data_base64"], base64_of(expected.as_bytes()), "{e}");
        }
    }

    // Human form, from an offset, bounded by --max.
    let text = server
        .eddy(&["read", "orders", "--from", "101", "--max", "2"])
        .ok()
        .stdout
        .clone();
    assert_eq!(
        text,
        "orders/0@101  Line  bulk  line 101\norders/0@102  Line  bulk  {\"n\":102}\n"
    );
    // From the end: nothing, and a note saying so.
    let end = server.eddy(&["read", "orders", "--from", "end"]);
    end.ok();
    assert_eq!(end.stdout, "");
    end.stderr_has(&["no events"]);
    // From a time: RFC 3339 and "ago" forms cover everything just published.
    let ago = server
        .eddy(&["read", "orders", "--from", "1h-ago", "--json"])
        .ok()
        .ndjson();
    assert_eq!(ago.len(), LINES + 1);
}

#[test]
fn a_repeated_id_is_reported_as_a_duplicate() {
    // Proves idempotent publishing shows through: the second publish of an
    // id stores nothing and points at the first.
    let server = Server::start();
    server
        .eddy(&["topic", "create", "pay", "--partitions", "2"])
        .ok();
    let first = server
        .eddy(&[
            "publish", "pay", "x", "--type", "T", "--id", "p-1", "--json",
        ])
        .ok()
        .json();
    assert_eq!(first["duplicate"], false);
    let again = server
        .eddy(&[
            "publish", "pay", "x", "--type", "T", "--id", "p-1", "--json",
        ])
        .ok()
        .json();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["offset"], first["offset"]);
    assert_eq!(again["partition"], first["partition"]);
    server
        .eddy(&["publish", "pay", "x", "--type", "T", "--id", "p-1"])
        .ok()
        .stdout_has(&["duplicate"]);
    let stored = server.eddy(&["read", "pay", "--json"]).ok().ndjson();
    assert_eq!(stored.len(), 1);
}

#[test]
fn read_merges_partitions_by_time_and_checks_partition_numbers() {
    // Proves a read of all partitions returns every event once with append
    // times never going back, `--partition` reads one, and an unknown
    // partition or topic is "not found" (exit 3) while an offset the
    // partition does not hold is bad input (exit 5).
    let server = Server::start();
    server
        .eddy(&["topic", "create", "multi", "--partitions", "3"])
        .ok();
    for round in 0..3 {
        let input: String = (0..30).map(|i| format!("r{round}-{i}\n")).collect();
        for key in ["a", "b", "c"] {
            server
                .eddy_stdin(&["publish", "multi", "--type", "T", "--key", key], &input)
                .ok();
        }
    }
    let all = server.eddy(&["read", "multi", "--json"]).ok().ndjson();
    assert_eq!(all.len(), 270);
    let times: Vec<i64> = all
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "interleaved by time"
    );
    let mut seen: Vec<(u64, u64)> = all
        .iter()
        .map(|e| {
            (
                e["partition"].as_u64().unwrap(),
                e["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 270, "each event once");

    let one = server
        .eddy(&["read", "multi", "--partition", "1", "--json"])
        .ok()
        .ndjson();
    assert!(one.iter().all(|e| e["partition"] == 1));
    let offsets: Vec<u64> = one.iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());

    server
        .eddy(&["read", "multi", "--partition", "3"])
        .code(3)
        .stderr_has(&["no partition 3", "0..=2"]);
    server
        .eddy(&["read", "multi", "--partition", "0", "--from", "100000"])
        .code(5)
        .stderr_has(&["outside the partition's range"]);
    server.eddy(&["read", "missing"]).code(3);
    server
        .eddy(&["read", "multi", "--from", "yesterday"])
        .code(2);
}

/// Standard base64, written out here so the test does not trust the
/// binary's encoder.
fn base64_of(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = String::new();
    for b in bytes {
        bits.push_str(&format!("{b:08b}"));
    }
    while !bits.len().is_multiple_of(6) {
        bits.push('0');
    }
    let mut out: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| A[usize::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()] as char)
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}
