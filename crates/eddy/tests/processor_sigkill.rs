//! The shop's analytics processor killed with SIGKILL mid-stream and
//! restarted gives PostgreSQL results identical to an uninterrupted run.
//!
//! The shop's topics are filled with events out of order and some late,
//! then `eddy demo analytics` runs over them twice, as two processors with
//! their own tables: once uninterrupted, and once killed four times, each
//! time after PostgreSQL shows it committed more checkpoints, and run
//! again to the end. Skipped, saying so, where PostgreSQL is not reachable.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Bus, Event, TopicConfig};
use serde_json::json;

const PG: &str = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3";
const EVENTS: usize = 40_000;

/// Orders placed, paid, shipped or failed over ten minutes of event time,
/// a few seconds out of order, one in 50 half a minute behind (late).
async fn fill(dir: &Path) {
    let bus = Broker::open(dir.join("bus"), BrokerConfig::default()).unwrap();
    for t in ["shop.orders", "shop.payments"] {
        bus.create_topic(t, TopicConfig::with_partitions(4))
            .await
            .unwrap();
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let start = 1_800_000_000_000i64;
    let (mut orders, mut payments) = (Vec::new(), Vec::new());
    for n in 0..EVENTS {
        let now = start + (n as i64) * 600_000 / EVENTS as i64;
        let behind = match next(50) {
            0 => 30_000,
            1..=10 => next(4_000) as i64,
            _ => 0,
        };
        let (ty, topic) = match next(4) {
            0 => ("OrderPlaced", &mut orders),
            1 => ("PaymentCompleted", &mut payments),
            2 => ("OrderShipped", &mut orders),
            _ => ("OrderFailed", &mut orders),
        };
        let mut e = Event::new(ty, json!({ "amount_cents": next(10_000) }).to_string())
            .with_key(format!("o-{}", n / 4));
        e.id = format!("e-{n}");
        e.time_ms = Some(now - behind);
        topic.push(e);
    }
    for (topic, events) in [("shop.orders", orders), ("shop.payments", payments)] {
        for chunk in events.chunks(1_000) {
            bus.publish_batch(topic, chunk.to_vec()).await.unwrap();
        }
    }
    bus.close().unwrap();
}

fn analytics(dir: &Path, name: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.args(["demo", "analytics", "--postgres", PG, "--batch", "50"])
        .args(["--name", name, "--table", name])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn epoch(pg: &tokio_postgres::Client, name: &str) -> u64 {
    let row = pg
        .query_opt(
            "SELECT (checkpoint->>'epoch')::bigint FROM eddy_checkpoints WHERE processor = $1",
            &[&name],
        )
        .await
        .unwrap();
    row.map_or(0, |r| r.get::<_, i64>(0) as u64)
}

async fn rows(pg: &tokio_postgres::Client, table: &str) -> Vec<(String, i64, i64, String)> {
    pg.query(
        &format!("SELECT key, window_start, window_end, value::text FROM {table} ORDER BY 1, 2, 3"),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_stream_gives_the_results_of_an_uninterrupted_run() {
    let pg = match tokio_postgres::connect(PG, tokio_postgres::NoTls).await {
        Ok((pg, conn)) => {
            tokio::spawn(conn);
            pg
        }
        Err(e) => {
            eprintln!("skipped: PostgreSQL not reachable ({PG}): {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;
    let reference = format!("sigkill_ref_{}", std::process::id());
    let crashed = format!("sigkill_crash_{}", std::process::id());

    let out = analytics(dir.path(), &reference).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{EVENTS} events read")),
        "{stdout}"
    );
    assert!(
        !stdout.contains(" 0 late"),
        "the input has late events: {stdout}"
    );

    let mut last = 0;
    for kill in 1..=4 {
        let mut child = analytics(dir.path(), &crashed).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        // Mid-stream: once PostgreSQL shows a few more checkpoints.
        loop {
            let now = epoch(&pg, &crashed).await;
            if now >= last + 15 {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "kill {kill}: the processor ended before it could be killed (epoch {now})"
            );
            assert!(
                Instant::now() < deadline,
                "kill {kill}: no progress past epoch {now}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "kill {kill}: ended already"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        last = epoch(&pg, &crashed).await;
        eprintln!("kill {kill}: SIGKILLed at checkpoint {last}");
    }
    let out = analytics(dir.path(), &crashed).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let want = rows(&pg, &reference).await;
    assert!(want.len() > 20, "{want:?}");
    assert_eq!(rows(&pg, &crashed).await, want);

    for name in [&reference, &crashed] {
        pg.batch_execute(&format!(
            "DROP TABLE {name}; DELETE FROM eddy_checkpoints WHERE processor = '{name}'"
        ))
        .await
        .unwrap();
    }
}
