//! Small helpers that keep the cases short: building events, publishing a
//! few, fetching, draining, reading a partition, moving the clock.

use std::fmt::Debug;

use eddy_bus::{
    Bus, Delivery, Event, FetchOptions, Partition, Published, ReadFrom, StartAt, StoredEvent,
    SubscriptionConfig, SubscriptionStats, TopicConfig,
};

use crate::Harness;

/// Asserts that a `Result` is an `Err` matching a pattern:
/// `expect_err!(bus.describe_topic("x").await, BusError::TopicNotFound(_), "describe x")`.
macro_rules! expect_err {
    ($result:expr, $pattern:pat, $($what:tt)+) => {
        match $result {
            Ok(value) => panic!(
                "{}: expected Err({}), got Ok({value:?})",
                format_args!($($what)+),
                stringify!($pattern)
            ),
            Err(err) => assert!(
                matches!(err, $pattern),
                "{}: expected {}, got {err:?}",
                format_args!($($what)+),
                stringify!($pattern)
            ),
        }
    };
}

/// An event with this id, type `TestEvent` and a payload naming the id.
pub(crate) fn event(id: &str) -> Event {
    Event::new("TestEvent", format!("payload of {id}")).with_id(id)
}

/// The same, with a key.
pub(crate) fn keyed(id: &str, key: &str) -> Event {
    event(id).with_key(key)
}

/// A subscription on `filter` that starts at the earliest event.
pub(crate) fn earliest(filter: &str) -> SubscriptionConfig {
    SubscriptionConfig::new(filter).start_at(StartAt::Earliest)
}

pub(crate) async fn create_topic<B: Bus>(bus: &B, name: &str, partitions: u32) {
    bus.create_topic(name, TopicConfig::with_partitions(partitions))
        .await
        .unwrap_or_else(|e| panic!("create topic {name:?}: {e:?}"));
}

pub(crate) async fn create_sub<B: Bus>(bus: &B, name: &str, config: SubscriptionConfig) {
    bus.create_subscription(name, config)
        .await
        .unwrap_or_else(|e| panic!("create subscription {name:?}: {e:?}"));
}

pub(crate) async fn publish<B: Bus>(bus: &B, topic: &str, event: Event) -> Published {
    let id = event.id.clone();
    bus.publish(topic, event)
        .await
        .unwrap_or_else(|e| panic!("publish {id:?} to {topic:?}: {e:?}"))
}

/// Publishes `event(id)` for each id, one at a time.
pub(crate) async fn publish_ids<B: Bus>(bus: &B, topic: &str, ids: &[&str]) -> Vec<Published> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(publish(bus, topic, event(id)).await);
    }
    out
}

/// Publishes `event(id)` for each id, advancing the clock `step_ms` after
/// each one: the first is appended now, the next `step_ms` later, ...
pub(crate) async fn publish_spaced<H: Harness>(
    h: &H,
    env: &H::Env,
    bus: &H::Bus,
    topic: &str,
    ids: &[&str],
    step_ms: u64,
) {
    for id in ids {
        publish(bus, topic, event(id)).await;
        h.advance(env, step_ms).await;
    }
}

/// Fetches up to `max` deliveries without waiting.
pub(crate) async fn fetch<B: Bus>(bus: &B, sub: &str, max: u32) -> Vec<Delivery> {
    bus.fetch(sub, FetchOptions::now(max))
        .await
        .unwrap_or_else(|e| panic!("fetch from {sub:?}: {e:?}"))
}

/// Fetches and expects exactly one delivery.
pub(crate) async fn fetch_one<B: Bus>(bus: &B, sub: &str, what: &str) -> Delivery {
    let mut got = fetch(bus, sub, 10).await;
    assert_eq!(
        got.len(),
        1,
        "{what}: expected one delivery, got {:?}",
        ids(&got)
    );
    got.pop().expect("one delivery")
}

/// Fetches and expects nothing.
pub(crate) async fn fetch_none<B: Bus>(bus: &B, sub: &str, what: &str) {
    let got = fetch(bus, sub, 100).await;
    assert!(
        got.is_empty(),
        "{what}: expected no delivery, got {:?}",
        ids(&got)
    );
}

pub(crate) async fn ack<B: Bus>(bus: &B, sub: &str, d: &Delivery) {
    bus.ack(sub, &d.ack_id)
        .await
        .unwrap_or_else(|e| panic!("ack {} in {sub:?}: {e:?}", d.ack_id));
}

pub(crate) async fn ack_each<B: Bus>(bus: &B, sub: &str, ds: &[Delivery]) {
    for d in ds {
        ack(bus, sub, d).await;
    }
}

/// Fetches and acks until nothing is ready; returns what was delivered.
pub(crate) async fn drain<B: Bus>(bus: &B, sub: &str) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let got = fetch(bus, sub, 100).await;
        if got.is_empty() {
            return all;
        }
        ack_each(bus, sub, &got).await;
        all.extend(got);
    }
}

/// The event ids of deliveries, in delivery order.
pub(crate) fn ids(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| d.event.event.id.clone()).collect()
}

/// The event ids of deliveries, sorted.
pub(crate) fn sorted_ids(ds: &[Delivery]) -> Vec<String> {
    let mut ids = ids(ds);
    ids.sort();
    ids
}

/// The event ids of stored events, in order.
pub(crate) fn event_ids(events: &[StoredEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.id.clone()).collect()
}

/// Every event of one partition.
pub(crate) async fn read_all<B: Bus>(bus: &B, topic: &str, partition: u32) -> Vec<StoredEvent> {
    let batch = bus
        .read(topic, Partition(partition), ReadFrom::Beginning, 10_000)
        .await
        .unwrap_or_else(|e| panic!("read {topic:?}/{partition}: {e:?}"));
    batch.events
}

/// The next offset of each partition of a topic.
pub(crate) async fn next_offsets<B: Bus>(bus: &B, topic: &str) -> Vec<u64> {
    let info = bus
        .describe_topic(topic)
        .await
        .unwrap_or_else(|e| panic!("describe {topic:?}: {e:?}"));
    info.partitions.iter().map(|p| p.next_offset.0).collect()
}

pub(crate) async fn sub_stats<B: Bus>(bus: &B, sub: &str) -> SubscriptionStats {
    bus.subscription_stats(sub)
        .await
        .unwrap_or_else(|e| panic!("stats of {sub:?}: {e:?}"))
}

/// Moves the harness clock to `at_ms` (which must not be in the past).
pub(crate) async fn advance_to<H: Harness>(h: &H, env: &H::Env, at_ms: i64) {
    let now = h.now_ms(env);
    let ms = u64::try_from(at_ms - now)
        .unwrap_or_else(|_| panic!("the clock is at {now}, past {at_ms}"));
    if ms > 0 {
        h.advance(env, ms).await;
    }
}

/// Asserts `low <= value <= high`.
pub(crate) fn assert_within<T: PartialOrd + Debug>(value: T, low: T, high: T, what: &str) {
    assert!(
        low <= value && value <= high,
        "{what}: {value:?} is not within {low:?}..={high:?}"
    );
}
