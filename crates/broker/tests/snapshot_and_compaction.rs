//! Proves that snapshots compact the state journal without losing state:
//! after a snapshot the journal's old segments are gone, and a reopen
//! (snapshot + journal tail) restores acked, nacked-with-delay and leased
//! events exactly; a damaged snapshot is refused with `Corrupt`, not
//! silently ignored.

use std::collections::BTreeSet;
use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{
    Bus, BusError, Event, FetchOptions, NackOptions, StartAt, SubscriptionConfig, TopicConfig,
};

fn config() -> BrokerConfig {
    BrokerConfig {
        timer_interval_ms: None,
        journal_segment_bytes_max: 64 * 1024,
        snapshot_journal_bytes: 96 * 1024,
        ..BrokerConfig::default()
    }
}

fn journal_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("state/journal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

async fn drain_ids(bus: &Broker) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    loop {
        let got = bus.fetch("work", FetchOptions::now(1000)).await.unwrap();
        if got.is_empty() {
            return ids;
        }
        for d in got {
            ids.insert(d.event.event.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_compact_the_journal_and_keep_consumer_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let bus = Broker::open_with_clock(dir.path(), config(), clock.clone()).unwrap();
    bus.create_topic("orders", TopicConfig::with_partitions(3))
        .await
        .unwrap();
    let sub = SubscriptionConfig::new("orders")
        .start_at(StartAt::Earliest)
        .ack_wait_ms(60_000);
    bus.create_subscription("work", sub).await.unwrap();

    let (mut acked, mut nacked, mut leased) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for round in 0..40 {
        let events: Vec<Event> = (0..100)
            .map(|i| Event::new("OrderPlaced", "x").with_id(format!("e-{round}-{i}")))
            .collect();
        bus.publish_batch("orders", events).await.unwrap();
        for (i, d) in bus
            .fetch("work", FetchOptions::now(100))
            .await
            .unwrap()
            .into_iter()
            .enumerate()
        {
            let id = d.event.event.id.clone();
            match i % 10 {
                0 => {
                    let nack = NackOptions {
                        delay_ms: Some(3_600_000),
                        error: None,
                    };
                    bus.nack("work", &d.ack_id, nack).await.unwrap();
                    nacked.insert(id);
                }
                1 => {
                    leased.insert(id);
                }
                _ => {
                    bus.ack("work", &d.ack_id).await.unwrap();
                    acked.insert(id);
                }
            }
        }
        if round == 20 {
            let before = journal_segments(dir.path());
            bus.snapshot().unwrap();
            let after = journal_segments(dir.path());
            assert!(
                before > 2 && after < before,
                "compaction: {before} → {after} segments"
            );
        }
    }
    // The journal grew past the threshold again: the timer's tick snapshots.
    let before = journal_segments(dir.path());
    bus.tick().unwrap();
    assert!(journal_segments(dir.path()) < before, "tick compacts");
    // More state after the last snapshot lives only in the journal tail.
    let tail: Vec<Event> = (0..10)
        .map(|i| Event::new("OrderPlaced", "x").with_id(format!("tail-{i}")))
        .collect();
    bus.publish_batch("orders", tail).await.unwrap();
    for d in bus.fetch("work", FetchOptions::now(10)).await.unwrap() {
        bus.ack("work", &d.ack_id).await.unwrap();
        acked.insert(d.event.event.id);
    }
    // Drop without `close`: no final snapshot, like a crash.
    drop(bus);

    let bus = Broker::open_with_clock(dir.path(), config(), clock.clone()).unwrap();
    assert!(
        drain_ids(&bus).await.is_empty(),
        "nothing is due right after reopening"
    );
    clock.advance_ms(61_000);
    assert_eq!(drain_ids(&bus).await, leased, "expired leases come back");
    clock.advance_ms(3_600_000);
    let later = drain_ids(&bus).await;
    assert!(nacked.is_subset(&later), "scheduled retries come back");
    assert!(later.is_disjoint(&acked), "acks are kept");
    bus.close().unwrap();

    // A damaged snapshot is an error, not an empty broker.
    let snapshot = dir.path().join("state/snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    match Broker::open_with_clock(dir.path(), config(), clock) {
        Err(BusError::Corrupt(_)) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_are_created_on_publish_only_when_configured() {
    // Proves the `auto_create_topics` setting: off (the default), a publish
    // to an unknown topic fails with TopicNotFound and creates nothing; on,
    // it creates the topic with one partition.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let bus = Broker::open_with_clock(dir.path(), config(), clock.clone()).unwrap();
    let err = bus.publish("orders", Event::new("OrderPlaced", "x")).await;
    assert!(matches!(err, Err(BusError::TopicNotFound(_))), "{err:?}");
    assert!(matches!(
        bus.describe_topic("orders").await,
        Err(BusError::TopicNotFound(_))
    ));
    bus.close().unwrap();
    let auto = BrokerConfig {
        auto_create_topics: true,
        ..config()
    };
    let bus = Broker::open_with_clock(dir.path(), auto, clock).unwrap();
    let p = bus
        .publish("orders", Event::new("OrderPlaced", "x"))
        .await
        .unwrap();
    assert_eq!((p.partition.0, p.offset.0), (0, 0));
    assert_eq!(
        bus.describe_topic("orders").await.unwrap().partitions.len(),
        1
    );
}
