//! Proves the group commit that publishes and acks on async tasks share
//! (`src/commit.rs`): many at once all complete, every acknowledged one is
//! there after a reopen, and a consumer waiting in a fetch is woken by the
//! commit loop's fsync rather than by its own timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use eddy_broker::{Broker, BrokerConfig, FsyncPolicy, ManualClock};
use eddy_bus::{
    Bus, Event, FetchOptions, Partition, ReadFrom, StartAt, SubscriptionConfig, TopicConfig,
};

const PUBLISHES: usize = 400;
const PARTITIONS: u32 = 4;

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> Broker {
    let config = BrokerConfig {
        fsync,
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    Broker::open_with_clock(dir, config, Arc::new(ManualClock::new(1_000))).unwrap()
}

fn sub_config() -> SubscriptionConfig {
    SubscriptionConfig {
        start: StartAt::Earliest,
        ..SubscriptionConfig::new("orders")
    }
}

/// Whatever is ready now, up to 1000 deliveries.
async fn fetch_now(bus: &Broker) -> Vec<eddy_bus::Delivery> {
    let options = FetchOptions {
        max: 1000,
        wait_ms: 0,
    };
    bus.fetch("work", options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_and_acks_all_complete_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), FsyncPolicy::Always);
    bus.create_topic("orders", TopicConfig::with_partitions(PARTITIONS))
        .await
        .unwrap();
    bus.create_subscription("work", sub_config()).await.unwrap();

    // Every publish on its own task, all in flight together.
    let tasks: Vec<_> = (0..PUBLISHES)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let event = Event::new("Placed", format!("order {i}"))
                    .with_id(format!("e{i}"))
                    .with_key(format!("k{}", i % 7));
                bus.publish("orders", event).await
            })
        })
        .collect();
    let mut offsets: BTreeMap<Partition, BTreeSet<u64>> = BTreeMap::new();
    for t in tasks {
        let p = t.await.unwrap().unwrap();
        assert!(!p.duplicate);
        assert!(offsets.entry(p.partition).or_default().insert(p.offset.0));
    }
    // Each partition's offsets are exactly 0..n: none lost, none shared.
    let mut total = 0;
    for (partition, got) in &offsets {
        let n = got.len() as u64;
        assert_eq!(
            got.iter().copied().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>()
        );
        let read = bus
            .read("orders", *partition, ReadFrom::Beginning, 1000)
            .await
            .unwrap();
        assert_eq!(
            read.events.len() as u64,
            n,
            "{partition:?} reads back whole"
        );
        total += n;
    }
    assert_eq!(total, PUBLISHES as u64);

    // Fetch everything, then ack each delivery on its own task.
    let mut deliveries = Vec::new();
    while deliveries.len() < PUBLISHES {
        let got = fetch_now(&bus).await;
        assert!(
            !got.is_empty(),
            "{} of {PUBLISHES} fetched",
            deliveries.len()
        );
        deliveries.extend(got);
    }
    let acks: Vec<_> = deliveries
        .into_iter()
        .map(|d| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.ack_all("work", &[d.ack_id]).await })
        })
        .collect();
    for a in acks {
        let results = a.await.unwrap().unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    let stats = bus.subscription_stats("work").await.unwrap();
    assert_eq!((stats.acked, stats.in_flight), (PUBLISHES as u64, 0));
    bus.close().unwrap();
    drop(bus);

    // Everything acknowledged is there after a reopen, and nothing is
    // delivered again.
    let bus = open(dir.path(), FsyncPolicy::Always);
    let info = bus.describe_topic("orders").await.unwrap();
    let held: u64 = info.partitions.iter().map(|p| p.next_offset.0).sum();
    assert_eq!(held, PUBLISHES as u64);
    let again = fetch_now(&bus).await;
    assert!(again.is_empty(), "{} delivered again", again.len());
    bus.close().unwrap();
}

/// A fetch waiting on an empty subscription gets a publish at once, under
/// each policy: under `always` the commit loop's fsync wakes it, otherwise
/// the publish itself. Time is paused: were the fetch not woken, it would
/// return only at its deadline, 10 s later on the runtime's clock
/// (`spawn_blocking` work holds the clock still while it runs).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_waiting_fetch_is_woken_by_the_publish() {
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let bus = open(dir.path(), fsync);
        bus.create_topic("orders", TopicConfig::default())
            .await
            .unwrap();
        bus.create_subscription("work", sub_config()).await.unwrap();

        let waiting = {
            let bus = bus.clone();
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                let got = bus
                    .fetch(
                        "work",
                        FetchOptions {
                            max: 10,
                            wait_ms: 10_000,
                        },
                    )
                    .await
                    .unwrap();
                (got, start.elapsed())
            })
        };
        // On this one-thread runtime the fetch runs until it waits.
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        bus.publish("orders", Event::new("Placed", "o1"))
            .await
            .unwrap();
        let (got, waited) = waiting.await.unwrap();
        assert_eq!(got.len(), 1, "{fsync:?}");
        assert!(
            waited < Duration::from_secs(10),
            "{fsync:?}: the fetch waited for its deadline ({waited:?})"
        );
        bus.close().unwrap();
    }
}
