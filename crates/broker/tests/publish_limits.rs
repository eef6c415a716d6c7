//! Proves the embedded engine's publish limits: a batch over
//! `PUBLISH_BATCH_BYTES_MAX` or `PUBLISH_BATCH_MAX` is refused with a
//! `LimitExceeded` that names the limit, and nothing of it is stored.

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock, PUBLISH_BATCH_BYTES_MAX, PUBLISH_BATCH_MAX};
use eddy_bus::{Bus, BusError, Event, TopicConfig};

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
