//! `eddy saga list|show` on the folder of an orchestration demo run.

use std::process::Command;

fn eddy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn saga_list_and_show_read_a_runs_sagas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = eddy(&[
        "demo",
        "shop",
        "--style",
        "orchestration",
        "--orders",
        "6",
        "--seed",
        "5",
        "--run",
        "cli",
        "--payment-failure-rate",
        "0.5",
        "--out-of-stock-rate",
        "0",
        "--dir",
        d,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );

    let list = eddy(&["saga", "list", "--dir", d]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{text}");
    assert!(text.contains("6 sagas"), "{text}");
    assert!(
        text.contains("o-cli-0") && text.contains("order-fulfilment"),
        "{text}"
    );

    let json = eddy(&[
        "saga",
        "list",
        "--status",
        "compensated",
        "--json",
        "--dir",
        d,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let compensated = v.as_array().unwrap();
    assert!(!compensated.is_empty(), "seed 5 declines some payments");
    for s in compensated {
        assert_eq!(s["status"], "compensated");
        assert_eq!(s["steps_compensated"], 1, "the inventory was released: {s}");
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .starts_with("process-payment failed")
        );
    }
    let id = compensated[0]["id"].as_str().unwrap();
    let show = eddy(&["saga", "show", id, "--dir", d]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{text}");
    for (event, step) in [
        ("started", ""),
        ("action done", "reserve-inventory"),
        ("action failed", "process-payment"),
        ("compensation sent", "reserve-inventory"),
        ("compensation done", "reserve-inventory"),
        ("compensated", "process-payment failed"),
    ] {
        assert!(
            text.lines().any(|l| l.contains(event) && l.contains(step)),
            "{event:?} {step:?} in\n{text}"
        );
    }

    let over = eddy(&["saga", "cancel", id, "--dir", d]);
    assert!(over.status.success());
    assert!(String::from_utf8_lossy(&over.stdout).contains("nothing to do"));

    let missing = eddy(&["saga", "show", "nope", "--dir", d]);
    assert_eq!(missing.status.code(), Some(3), "not found");
}

mod support;

/// The same through a server: the demo's orchestrator and participants as
/// clients (a connection each), then `eddy saga` against the server.
#[test]
fn the_orchestration_demo_and_saga_commands_work_through_a_server() {
    let server = support::Server::start();
    server
        .eddy(&[
            "demo",
            "shop",
            "--style",
            "orchestration",
            "--orders",
            "10",
            "--seed",
            "5",
            "--run",
            "srv",
            "--payment-failure-rate",
            "0.5",
            "--out-of-stock-rate",
            "0",
            "--server",
            server.addr(),
        ])
        .ok()
        .stdout_has(&["10 orders as sagas", "0 unfinished", "all consistent"]);
    server
        .eddy(&["saga", "list"])
        .ok()
        .stdout_has(&["o-srv-0", "10 sagas"]);
    server
        .eddy(&["saga", "show", "o-srv-0"])
        .ok()
        .stdout_has(&["started", "reserve-inventory"]);
    server.eddy(&["saga", "show", "nope"]).code(3);
}
