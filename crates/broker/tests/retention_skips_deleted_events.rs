//! Proves topic retention end to end: the timer's tick deletes whole old
//! segments per the topic's `events_max`, a direct read from the beginning
//! starts at the first event still held, and a subscription that had not
//! read the deleted events moves on to what is held instead of failing.

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{
    Bus, Event, FetchOptions, Partition, ReadFrom, Retention, StartAt, SubscriptionConfig,
    TopicConfig,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_and_subscriptions_skip_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = BrokerConfig {
        timer_interval_ms: None,
        segment_bytes_max: 16 * 1024,
        ..BrokerConfig::default()
    };
    let bus = Broker::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    let topic = TopicConfig {
        retention: Retention {
            events_max: Some(100),
            ..Retention::default()
        },
        ..TopicConfig::with_partitions(1)
    };
    bus.create_topic("metrics", topic).await.unwrap();
    bus.create_subscription(
        "slow",
        SubscriptionConfig::new("metrics").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    for batch in 0..10 {
        let events: Vec<Event> = (0..50)
            .map(|i| Event::new("Sampled", vec![b'x'; 200]).with_id(format!("m-{batch}-{i}")))
            .collect();
        bus.publish_batch("metrics", events).await.unwrap();
    }
    bus.tick().unwrap();
    let info = bus.describe_topic("metrics").await.unwrap();
    let (first, next) = (
        info.partitions[0].first_offset.0,
        info.partitions[0].next_offset.0,
    );
    assert_eq!(next, 500);
    assert!(first > 0, "old segments were deleted");
    assert!(next - first >= 100, "at least `events_max` events are kept");
    assert!(
        next - first < 200,
        "whole segments beyond the limit are gone: {first}..{next}"
    );

    let read = bus
        .read("metrics", Partition(0), ReadFrom::Beginning, 10)
        .await
        .unwrap();
    assert_eq!(
        read.events[0].offset.0, first,
        "reading starts at what is held"
    );

    let got = bus.fetch("slow", FetchOptions::now(10_000)).await.unwrap();
    let offsets: Vec<u64> = got.iter().map(|d| d.event.offset.0).collect();
    assert_eq!(
        offsets,
        (first..next).collect::<Vec<_>>(),
        "the subscription skips what is gone"
    );
    let stats = bus.subscription_stats("slow").await.unwrap();
    assert_eq!(
        stats.lag,
        next - first,
        "lag counts only events that still exist"
    );
}
