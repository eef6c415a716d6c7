//! Proves `eddy topic create|list|describe|delete` through the real binary
//! against a real `eddy serve`: human and `--json` output carry the
//! settings and partitions, and a duplicate, a missing topic, a value the
//! server refuses and a malformed flag each get their documented exit code
//! and a message that says what to do.

mod support;

use serde_json::json;
use support::Server;

#[test]
fn topic_lifecycle_in_text_and_json() {
    // Proves create (with retention), list, describe and delete, in both
    // output forms, and that describe shows each partition's offsets.
    let server = Server::start();
    server
        .eddy(&[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--retention-age",
            "7d",
        ])
        .ok()
        .stdout_has(&["created topic orders with 3 partitions, retention 7d"]);
    let created = server
        .eddy(&[
            "topic",
            "create",
            "audit",
            "--retention-bytes",
            "1MiB",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(created["name"], "audit");
    assert_eq!(created["config"]["retention"]["bytes_max"], 1 << 20);
    assert_eq!(created["config"]["partitions"], 1);

    let list = server.eddy(&["topic", "list"]).ok().stdout.clone();
    let row = list
        .lines()
        .find(|l| l.starts_with("orders "))
        .unwrap_or_else(|| panic!("no orders row in {list}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "3", "partitions column: {row}");
    assert_eq!(cells[2], "0", "events column: {row}");
    assert!(row.ends_with("7d"), "{row}");
    assert!(list.lines().next().unwrap().starts_with("NAME"), "{list}");

    let all = server.eddy(&["topic", "list", "--json"]).ok().json();
    let names: Vec<&str> = all
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"orders") && names.contains(&"audit"),
        "{names:?}"
    );

    server
        .eddy_stdin(
            &["publish", "orders", "--type", "T", "--key", "k"],
            "a\nb\n",
        )
        .ok();
    let described = server
        .eddy(&["topic", "describe", "orders", "--json"])
        .ok()
        .json();
    assert_eq!(
        described["config"]["retention"]["age_max_ms"],
        7 * 86_400_000_u64
    );
    let parts = described["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    let held: u64 = parts.iter().map(|p| p["events"].as_u64().unwrap()).sum();
    assert_eq!(held, 2, "{described}");
    assert!(
        parts
            .iter()
            .any(|p| p["first_offset"] == 0 && p["next_offset"] == 2),
        "one partition holds both keyed events: {described}"
    );
    let text = server
        .eddy(&["topic", "describe", "orders"])
        .ok()
        .stdout
        .clone();
    assert!(
        text.contains("PARTITION") && text.contains("NEXT OFFSET"),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .skip_while(|l| !l.trim_start().starts_with("PARTITION"))
            .count(),
        4,
        "a header and three partitions: {text}"
    );

    server.eddy(&["topic", "delete", "orders", "--json"]).ok();
    assert_eq!(
        server
            .eddy(&["topic", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] == "orders")
            .count(),
        0
    );
    server
        .eddy(&["topic", "describe", "orders"])
        .code(3)
        .stderr_has(&["does not exist", "`eddy topic create orders`"]);
    let deleted = server
        .eddy(&["topic", "delete", "audit", "--json"])
        .ok()
        .json();
    assert_eq!(deleted, json!({ "topic": "audit", "deleted": true }));
}

#[test]
fn topic_errors_have_their_exit_codes() {
    // Proves: creating a topic twice exits 4 naming the way out; deleting a
    // missing one exits 3; zero partitions is refused by the server (5);
    // a malformed duration is a usage error (2) that names the forms.
    let server = Server::start();
    server.eddy(&["topic", "create", "orders"]).ok();
    server
        .eddy(&["topic", "create", "orders"])
        .code(4)
        .stderr_has(&["exists already", "eddy topic describe orders"]);
    server.eddy(&["topic", "delete", "nope"]).code(3);
    server
        .eddy(&["topic", "create", "zero", "--partitions", "0"])
        .code(5)
        .stderr_has(&["partitions"]);
    server
        .eddy(&["topic", "create", "x", "--retention-age", "7 days"])
        .code(2)
        .stderr_has(&["not a duration", "7d"]);
    server
        .eddy(&["topic", "create", "$sys.mine"])
        .code(5)
        .stderr_has(&["reserved"]);
}
