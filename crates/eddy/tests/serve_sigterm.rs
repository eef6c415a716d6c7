//! Proves `eddy serve` end to end through the real binary: a client
//! publishes and consumes over the native protocol; SIGTERM stops the
//! server cleanly (exit 0); a restarted server on the same folder has every
//! acknowledged publish and forgets no confirmed ack.

mod support;

use std::process::{Child, Command};

use eddy_bus::{
    Bus, Event, FetchOptions, Partition, ReadFrom, StartAt, SubscriptionConfig, TopicConfig,
};
use eddy_client::{Client, ClientConfig};

/// Starts `eddy serve` on a free loopback port; returns it and its address
/// (read from its banner).
fn start(dir: &std::path::Path) -> (Child, String) {
    let mut args = vec!["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--dir"]
        .into_iter()
        .map(std::ffi::OsString::from)
        .collect::<Vec<_>>();
    args.push(dir.into());
    let served = support::serve(&args);
    (served.child, served.native)
}

fn sigterm(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = child.wait().expect("wait for eddy serve");
    assert!(
        exit.success(),
        "eddy serve exited with {exit} after SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publish_consume_sigterm_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path());
    let bus = Client::connect(addr.as_str(), ClientConfig::default())
        .await
        .expect("connect");
    bus.create_topic("orders", TopicConfig::with_partitions(2))
        .await
        .unwrap();
    bus.create_subscription(
        "work",
        SubscriptionConfig::new("orders").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    let events: Vec<Event> = (0..20)
        .map(|i| Event::new("OrderPlaced", format!("{i}")).with_id(format!("o-{i}")))
        .collect();
    bus.publish_batch("orders", events).await.unwrap();
    let got = bus.fetch("work", FetchOptions::now(100)).await.unwrap();
    assert_eq!(got.len(), 20);
    let acked: Vec<_> = got.iter().take(12).map(|d| d.ack_id.clone()).collect();
    for r in bus.ack_all("work", &acked).await.unwrap() {
        r.unwrap();
    }
    sigterm(&mut server);

    let (mut server, addr) = start(dir.path());
    let bus = Client::connect(addr.as_str(), ClientConfig::default())
        .await
        .expect("reconnect");
    let mut stored = 0;
    for p in 0..2 {
        let batch = bus
            .read("orders", Partition(p), ReadFrom::Beginning, 100)
            .await
            .unwrap();
        stored += batch.events.len();
    }
    assert_eq!(stored, 20, "every acknowledged publish survives");
    let acked_ids: Vec<_> = got
        .iter()
        .take(12)
        .map(|d| d.event.event.id.clone())
        .collect();
    // The 8 unacked deliveries are leased for ack_wait (30 s) and not due
    // yet; nothing acked may ever come back.
    for d in bus.fetch("work", FetchOptions::now(100)).await.unwrap() {
        assert!(
            !acked_ids.contains(&d.event.event.id),
            "acked {} came back",
            d.event.event.id
        );
    }
    let stats = bus.subscription_stats("work").await.unwrap();
    assert_eq!(stats.lag, 8, "the unacked events are still pending");
    sigterm(&mut server);
}
