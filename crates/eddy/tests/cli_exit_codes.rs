//! Proves the exit codes scripts rely on, through the real binary: no
//! server on the port is 7 with a message naming the address and the fix;
//! an unknown topic is 3; creating twice is 4; a server with tokens
//! refuses a missing or wrong token with 6 (saying `--token` /
//! `EDDY_TOKEN`) and accepts a good one from the flag or the environment;
//! and `eddy --help` documents the codes.

mod support;

use eddy_auth::TokenHash;
use support::{Server, run, unused_addr};

#[test]
fn no_server_is_exit_7_with_what_to_do() {
    // Proves a refused connection, by flag and by EDDY_SERVER, exits 7 and
    // says how to fix it.
    let addr = unused_addr();
    run(&["topic", "list", "--server", &addr], &[], None)
        .code(7)
        .stderr_has(&[
            &format!("cannot reach the Eddy server at {addr}"),
            "eddy serve",
            "EDDY_SERVER",
        ]);
    run(
        &["publish", "orders", "x", "--type", "T"],
        &[("EDDY_SERVER", &addr)],
        None,
    )
    .code(7)
    .stderr_has(&[&addr]);
}

#[test]
fn unknown_topic_is_3_and_a_duplicate_is_4() {
    // Proves "not found" and "already exists" codes on the commands most
    // scripts run, and that nothing went to stdout.
    let server = Server::start();
    let missing = server.eddy(&["publish", "orders", "x", "--type", "T"]);
    missing
        .code(3)
        .stderr_has(&["does not exist", "eddy topic create orders"]);
    assert_eq!(missing.stdout, "");
    server.eddy(&["stats", "orders"]).code(3);
    server
        .eddy(&["sub", "create", "s", "--filter", "orders"])
        .ok();
    server
        .eddy(&["sub", "create", "s", "--filter", "orders"])
        .code(4);
    server.eddy(&["topic", "create", "orders"]).ok();
    server.eddy(&["topic", "create", "orders"]).code(4);
    server.eddy(&["publish", "orders", "x", "--type", "T"]).ok();
}

#[test]
fn tokens_are_checked_with_exit_6() {
    // Proves a server with tokens refuses a client without one, or with a
    // wrong one (6, naming --token and EDDY_TOKEN), and accepts the right
    // one from --token or EDDY_TOKEN.
    let token = "eddy_cli_test_token";
    let server = Server::start_with_config(&format!(
        r#"
data_dir = "{{data}}"

[native]
listen = "127.0.0.1:0"

[http]
listen = "off"

[[tokens]]
name = "ops"
hash = "{}"
grants = [{{ topics = ">", allow = ["admin"] }}]
"#,
        TokenHash::of(token)
    ));
    server
        .eddy(&["topic", "list"])
        .code(6)
        .stderr_has(&["--token", "EDDY_TOKEN"]);
    server.eddy(&["topic", "list", "--token", "wrong"]).code(6);
    server
        .eddy(&["topic", "create", "orders", "--token", token])
        .ok();
    let addr = server.addr().to_string();
    let listed = run(
        &["topic", "list", "--json"],
        &[("EDDY_SERVER", &addr), ("EDDY_TOKEN", token)],
        None,
    );
    listed.ok();
    assert!(listed.stdout.contains("\"orders\""), "{}", listed.stdout);
}

#[test]
fn help_documents_exit_codes_and_commands() {
    // Proves `eddy --help` lists the exit codes and every resource, and a
    // bad flag is a usage error (2).
    let help = run(&["--help"], &[], None);
    help.ok().stdout_has(&[
        "Exit codes:",
        "3  not found",
        "7  server unavailable",
        "8  server-side storage failure",
    ]);
    for command in ["topic", "publish", "consume", "read", "sub", "dlq", "stats"] {
        help.stdout_has(&[&format!("  {command} ")]);
    }
    run(&["consume"], &[], None).code(2);
    run(&["topic", "create", "x", "--partitions", "many"], &[], None).code(2);
}
