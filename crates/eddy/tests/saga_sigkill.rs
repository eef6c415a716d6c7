//! The saga orchestrator killed with SIGKILL between every pair of steps
//! and during a compensation: `eddy demo shop --style orchestration` is
//! run on one folder, stopped right after a chosen saga event is durable,
//! killed, and run again (same run id and seed, so it resumes). After the
//! last run every saga is completed or compensated, and each participant's
//! ledger in the event store holds every action and every compensation
//! once, undone in reverse order.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Direction, EventStore, StreamFrom};
use eddy_runtime::saga::{Status, list_sagas};

const ORDERS: &str = "24";
const SEED: &str = "11";

fn demo(dir: &Path, pause_after: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.args([
        "demo",
        "shop",
        "--style",
        "orchestration",
        "--orders",
        ORDERS,
    ])
    .args(["--seed", SEED, "--run", "crash", "--deadline-s", "60"])
    .args([
        "--payment-failure-rate",
        "0.25",
        "--shipment-failure-rate",
        "0.25",
    ])
    .args(["--out-of-stock-rate", "0.1"])
    .arg("--dir")
    .arg(dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(p) = pause_after {
        cmd.args(["--pause-after", p]);
    }
    cmd
}

/// Runs the demo until it pauses after `point`, then SIGKILLs it. Returns
/// the line it paused on.
fn kill_after(dir: &Path, point: &str) -> String {
    let mut child = demo(dir, Some(point)).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("PAUSED") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let paused = rx.recv_timeout(Duration::from_secs(60));
    // std's kill() is SIGKILL on Unix.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    paused.unwrap_or_else(|_| panic!("the run never reached {point}"))
}

#[test]
fn sagas_resume_after_sigkill_between_steps_and_during_compensation() {
    let dir = tempfile::tempdir().unwrap();
    let points = [
        // Between reserve and pay.
        "StepSucceeded:0:do",
        // Between pay and ship.
        "StepSucceeded:1:do",
        // Right after a shipment failed, before any compensation was sent.
        "StepFailed:2:do",
        // During a compensation: the refund sent, not yet done.
        "CommandSent:1:undo",
        // Between ship and notify.
        "StepSucceeded:2:do",
        // During a compensation: the release sent, not yet done.
        "CommandSent:0:undo",
    ];
    for point in points {
        let line = kill_after(dir.path(), point);
        assert!(line.contains("saga o-crash-"), "{line}");
    }
    let out = demo(dir.path(), None).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "the last run failed:\n{text}");
    assert!(
        text.contains("ledgers checked against each saga: all consistent"),
        "{text}"
    );

    // Independently of the demo's own check: read the folder.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Broker::open(dir.path().join("bus"), BrokerConfig::default()).unwrap();
        let sagas = list_sagas(&bus).await.unwrap();
        assert_eq!(sagas.len(), 24);
        let mut compensated = 0;
        for s in &sagas {
            assert!(
                matches!(s.status, Status::Completed | Status::Compensated),
                "{s:?}"
            );
            let ledger = |p: &str| {
                let bus = bus.clone();
                let stream = format!("{p}-{}", s.id);
                async move {
                    bus.read_stream(&stream, StreamFrom::Start, Direction::Forward, 100)
                        .await
                        .unwrap()
                        .events
                        .into_iter()
                        .map(|e| e.event.ty)
                        .collect::<Vec<_>>()
                }
            };
            let inventory = ledger("inventory").await;
            let payment = ledger("payment").await;
            if s.status == Status::Completed {
                assert_eq!(inventory, ["InventoryReserved"], "{}", s.id);
                assert_eq!(payment, ["PaymentCaptured"], "{}", s.id);
                assert_eq!(ledger("shipping").await, ["ShipmentCreated"], "{}", s.id);
                assert_eq!(
                    ledger("notification").await,
                    ["CustomerNotified"],
                    "{}",
                    s.id
                );
            } else {
                compensated += 1;
                // Compensated for a refusal the seed decided, not because
                // the crashes made a step time out.
                let reason = s.reason.as_deref().unwrap_or_default();
                assert!(!reason.contains("timed out"), "{}: {reason}", s.id);
                // Each compensation once, and only of what was done.
                for (got, done, undone) in [
                    (&inventory, "InventoryReserved", "InventoryReleased"),
                    (&payment, "PaymentCaptured", "PaymentRefunded"),
                ] {
                    assert!(
                        got.is_empty() || *got == [done, undone],
                        "{}: {got:?}",
                        s.id
                    );
                }
                assert!(ledger("notification").await.is_empty());
            }
        }
        assert!(compensated >= 3, "the seed makes some sagas compensate");
        bus.close().unwrap();
    });
}
