//! Proves `eddy stream append|read|info|delete|meta|all` through the real
//! binary against a real `eddy serve`: expected versions (a conflict exits
//! 4 and says what to do), retried appends, reads both ways in text and
//! JSON, settings, delete and re-create, `$all` with its filters and
//! positions, and `all --follow` printing events as they are appended.

mod support;

use support::Server;

#[test]
fn append_read_and_info_in_text_and_json() {
    let server = Server::start();
    server
        .eddy(&[
            "stream",
            "append",
            "order-1",
            "--type",
            "OrderPlaced",
            "--data",
            r#"{"n":1}"#,
            "--expected",
            "no_stream",
        ])
        .ok()
        .stdout_has(&["appended to order-1 at version 0"]);
    let appended = server
        .eddy(&[
            "stream",
            "append",
            "order-1",
            "--type",
            "ItemAdded",
            "--data",
            "sku-9",
            "--id",
            "e-2",
            "--expected",
            "0",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(appended["first_version"], 1);
    assert_eq!(appended["duplicate"], false);
    assert_eq!(appended["stream"], "order-1");
    // The same id again at its version: a retry, a success.
    let retried = server
        .eddy(&[
            "stream",
            "append",
            "order-1",
            "--type",
            "ItemAdded",
            "--data",
            "sku-9",
            "--id",
            "e-2",
            "--expected",
            "0",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(retried["duplicate"], true);
    assert_eq!(retried["position"], appended["position"]);
    server
        .eddy(&[
            "stream",
            "append",
            "order-1",
            "--type",
            "X",
            "--data",
            "x",
            "--expected",
            "no_stream",
        ])
        .code(4)
        .stderr_has(&["is at version 1", "--expected 1"]);
    server
        .eddy(&[
            "stream",
            "append",
            "order-1",
            "--type",
            "X",
            "--data",
            "x",
            "--expected",
            "latest",
        ])
        .code(2);
    server
        .eddy(&["stream", "append", "order 1", "--type", "X", "--data", "x"])
        .code(5);

    let text = server
        .eddy(&["stream", "read", "order-1"])
        .ok()
        .stdout
        .clone();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            r#"order-1@0  OrderPlaced  {"n":1}"#,
            "order-1@1  ItemAdded  sku-9"
        ]
    );
    let back = server
        .eddy(&["stream", "read", "order-1", "--backward", "--max", "1"])
        .ok()
        .stdout
        .clone();
    assert_eq!(back.trim(), "order-1@1  ItemAdded  sku-9");
    let events = server
        .eddy(&["stream", "read", "order-1", "--from", "1", "--json"])
        .ok()
        .ndjson();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            &events[0]["stream"],
            &events[0]["version"],
            &events[0]["id"]
        ),
        (&"order-1".into(), &1.into(), &"e-2".into())
    );
    assert_eq!(
        events[0]["data_base64"], "c2t1LTk=",
        "text/plain data as base64"
    );
    assert!(events[0]["position"].is_u64() && events[0]["timestamp"].is_i64());
    let first = server
        .eddy(&["stream", "read", "order-1", "--max", "1", "--json"])
        .ok()
        .ndjson();
    assert_eq!(first[0]["data"], serde_json::json!({"n": 1}));

    let missing = server
        .eddy(&["stream", "read", "order-404"])
        .ok()
        .stderr
        .clone();
    assert!(missing.contains("does not exist"), "{missing}");
    let info = server
        .eddy(&["stream", "info", "order-1", "--json"])
        .ok()
        .json();
    assert_eq!(
        info,
        serde_json::json!({
            "stream": "order-1",
            "last_version": 1,
            "metadata": {"max_age_ms": null, "max_count": null, "truncate_before": null},
            "deleted": false
        })
    );
    server
        .eddy(&["stream", "info", "order-1"])
        .ok()
        .stdout_has(&["last version     1", "deleted          no"]);
}

#[test]
fn settings_delete_and_recreate() {
    let server = Server::start();
    for i in 0..3 {
        server
            .eddy(&[
                "stream",
                "append",
                "log-1",
                "--type",
                "Line",
                "--data",
                &i.to_string(),
            ])
            .ok();
    }
    let versions = |args: &[&str]| -> Vec<u64> {
        server
            .eddy(args)
            .ok()
            .ndjson()
            .iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect()
    };
    server
        .eddy(&["stream", "meta", "log-1", "--max-count", "2"])
        .ok()
        .stdout_has(&["set the settings of log-1"]);
    assert_eq!(versions(&["stream", "read", "log-1", "--json"]), [1, 2]);
    server
        .eddy(&["stream", "info", "log-1"])
        .ok()
        .stdout_has(&["max count        2"]);
    server
        .eddy(&["stream", "meta", "log-1"])
        .code(2)
        .stderr_has(&["--clear"]);
    let cleared = server
        .eddy(&["stream", "meta", "log-1", "--clear", "--json"])
        .ok()
        .json();
    assert_eq!(cleared["metadata"]["max_count"], serde_json::Value::Null);
    assert_eq!(versions(&["stream", "read", "log-1", "--json"]), [0, 1, 2]);

    server
        .eddy(&["stream", "delete", "log-1", "--expected", "0"])
        .code(4)
        .stderr_has(&["is at version 2"]);
    server
        .eddy(&["stream", "delete", "log-1", "--expected", "2"])
        .ok()
        .stdout_has(&["deleted stream log-1"]);
    server
        .eddy(&["stream", "delete", "log-1"])
        .code(3)
        .stderr_has(&["does not exist", "eddy stream info log-1"]);
    let info = server
        .eddy(&["stream", "info", "log-1", "--json"])
        .ok()
        .json();
    assert_eq!(
        (&info["deleted"], &info["last_version"]),
        (&true.into(), &serde_json::Value::Null)
    );
    server
        .eddy(&[
            "stream",
            "append",
            "log-1",
            "--type",
            "Line",
            "--data",
            "again",
            "--expected",
            "no_stream",
        ])
        .ok()
        .stdout_has(&["at version 3"]);
    assert_eq!(versions(&["stream", "read", "log-1", "--json"]), [3]);
}

#[test]
fn all_with_filters_positions_and_follow() {
    let server = Server::start();
    for (stream, ty) in [
        ("order-1", "OrderPlaced"),
        ("user-1", "UserJoined"),
        ("order-2", "OrderPlaced"),
        ("$snap-order-1", "Snapshot"),
    ] {
        server
            .eddy(&["stream", "append", stream, "--type", ty, "--data", "d"])
            .ok();
    }
    let lines = server.eddy(&["stream", "all"]).ok().stdout.clone();
    let streams: Vec<&str> = lines
        .lines()
        .map(|l| l.split("  ").nth(1).unwrap_or(l))
        .collect();
    assert_eq!(streams, ["order-1@0", "user-1@0", "order-2@0"], "{lines}");
    assert!(
        lines.starts_with('#'),
        "each line starts with its position: {lines}"
    );
    let count = |args: &[&str]| server.eddy(args).ok().stdout.lines().count();
    assert_eq!(count(&["stream", "all", "--category", "order"]), 2);
    assert_eq!(count(&["stream", "all", "--type", "UserJoined"]), 1);
    assert_eq!(count(&["stream", "all", "--prefix", "$"]), 1);
    server
        .eddy(&["stream", "all", "--category", "order", "--type", "X"])
        .code(2);
    let first = server
        .eddy(&["stream", "all", "--max", "1", "--json"])
        .ok()
        .ndjson();
    assert_eq!(first.len(), 1);
    let after = first[0]["position"].as_u64().unwrap() + 1;
    let rest = server
        .eddy(&["stream", "all", "--from", &after.to_string(), "--json"])
        .ok()
        .ndjson();
    let rest: Vec<&str> = rest.iter().map(|e| e["stream"].as_str().unwrap()).collect();
    assert_eq!(rest, ["user-1", "order-2"]);

    let follower =
        server.spawn_eddy(&["stream", "all", "--category", "cart", "--follow", "--json"]);
    server
        .eddy(&[
            "stream",
            "append",
            "cart-1",
            "--type",
            "CartOpened",
            "--data",
            "1",
        ])
        .ok();
    let got: serde_json::Value = serde_json::from_str(&follower.next_line()).unwrap();
    assert_eq!(got["stream"], "cart-1");
    server
        .eddy(&[
            "stream",
            "append",
            "user-9",
            "--type",
            "UserJoined",
            "--data",
            "2",
        ])
        .ok();
    server
        .eddy(&[
            "stream",
            "append",
            "cart-2",
            "--type",
            "CartOpened",
            "--data",
            "3",
        ])
        .ok();
    let got: serde_json::Value = serde_json::from_str(&follower.next_line()).unwrap();
    assert_eq!(
        got["stream"], "cart-2",
        "only the category's events, in order"
    );
    follower.interrupt();
    let (code, rest, stderr) = follower.finish();
    assert_eq!(code, Some(0), "Ctrl-C ends a follow cleanly: {stderr}");
    assert!(rest.is_empty(), "{rest:?}");
}
