//! Proves the embedded engine's publish limits: a batch over
//! `PUBLISH_BATCH_BYTES_MAX` or `PUBLISH_BATCH_MAX` is refused with a
//! `LimitExceeded` that names the limit, and nothing of it is stored.

use std::sync::Arc;

use eddy_broker::{
    Broker, BrokerConfig, ManualClock, PUBLISH_BATCH_BYTES_MAX, PUBLISH_BATCH_MAX,
    READ_RESULT_BYTES_MAX,
};
use eddy_bus::{
    Bus, BusError, Event, FetchOptions, Partition, ReadFrom, StartAt, SubscriptionConfig,
    TopicConfig,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_batches_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let bus =
        Broker::open_with_clock(dir.path(), config, Arc::new(ManualClock::new(1_000))).unwrap();
    bus.create_topic("blobs", TopicConfig::default())
        .await
        .unwrap();

    let big = vec![b'x'; 1000 * 1024];
    let n = PUBLISH_BATCH_BYTES_MAX / big.len() + 1;
    let events: Vec<Event> = (0..n).map(|_| Event::new("Blob", big.clone())).collect();
    match bus.publish_batch("blobs", events).await {
        Err(BusError::LimitExceeded { limit, .. }) => {
            assert_eq!(limit, PUBLISH_BATCH_BYTES_MAX as u64)
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    let events: Vec<Event> = (0..=PUBLISH_BATCH_MAX)
        .map(|_| Event::new("Tiny", "x"))
        .collect();
    match bus.publish_batch("blobs", events).await {
        Err(BusError::LimitExceeded { limit, .. }) => assert_eq!(limit, PUBLISH_BATCH_MAX as u64),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    let info = bus.describe_topic("blobs").await.unwrap();
    assert_eq!(info.partitions[0].next_offset.0, 0, "nothing was stored");
    // Just under the byte limit goes through.
    let n = PUBLISH_BATCH_BYTES_MAX / (big.len() + 64);
    let events: Vec<Event> = (0..n).map(|_| Event::new("Blob", big.clone())).collect();
    assert_eq!(bus.publish_batch("blobs", events).await.unwrap().len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_fetches_are_bounded_in_bytes() {
    // Proves: a read or fetch asking for more events than fit in
    // `READ_RESULT_BYTES_MAX` returns fewer (at least one), and reading on
    // from `next_offset` (or fetching again) gets the rest, none skipped.
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let bus =
        Broker::open_with_clock(dir.path(), config, Arc::new(ManualClock::new(1_000))).unwrap();
    bus.create_topic("blobs", TopicConfig::default())
        .await
        .unwrap();
    bus.create_subscription(
        "all",
        SubscriptionConfig::new("blobs").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    let big = vec![b'x'; 1000 * 1024];
    let total = READ_RESULT_BYTES_MAX / big.len() * 2 + 3;
    for chunk in 0..total.div_ceil(4) {
        let events: Vec<Event> = (0..4)
            .filter(|i| chunk * 4 + i < total)
            .map(|_| Event::new("Blob", big.clone()))
            .collect();
        bus.publish_batch("blobs", events).await.unwrap();
    }
    let (mut from, mut seen, mut reads) = (ReadFrom::Beginning, 0, 0);
    loop {
        let batch = bus.read("blobs", Partition(0), from, 10_000).await.unwrap();
        if batch.events.is_empty() {
            break;
        }
        let bytes: usize = batch.events.iter().map(|e| e.event.data.len()).sum();
        assert!(
            bytes <= READ_RESULT_BYTES_MAX + big.len(),
            "{bytes} bytes in one read"
        );
        assert_eq!(batch.events[0].offset.0, seen as u64, "no event skipped");
        seen += batch.events.len();
        reads += 1;
        from = ReadFrom::Offset(batch.next_offset);
    }
    assert_eq!(seen, total);
    assert!(reads >= 3, "{reads} reads");
    let (mut fetched, mut fetches) = (0, 0);
    while fetched < total {
        let got = bus
            .fetch(
                "all",
                FetchOptions {
                    max: 10_000,
                    wait_ms: 0,
                },
            )
            .await
            .unwrap();
        assert!(!got.is_empty());
        fetched += got.len();
        fetches += 1;
    }
    assert_eq!(fetched, total);
    assert!(fetches >= 3, "{fetches} fetches");
}
