//! Publishing: offsets, key partitioning, generated ids, idempotency and
//! batches.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use eddy_bus::name::partition_for_key;
use eddy_bus::{Bus, BusError, Event, Offset, Partition};

use crate::Harness;
use crate::support::*;

/// Every event of every partition of a topic.
async fn read_topic<B: Bus>(bus: &B, topic: &str) -> Vec<eddy_bus::StoredEvent> {
    let partitions = next_offsets(bus, topic).await.len() as u32;
    let mut all = Vec::new();
    for p in 0..partitions {
        all.extend(read_all(bus, topic, p).await);
    }
    all
}

pub async fn publish_assigns_offsets_and_ids<H: Harness>(h: &H) {
    // Proves: in a one-partition topic offsets start at 0 and are
    // contiguous in publish order, and an event published without an id
    // gets a unique, non-empty generated one.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    let published = publish_ids(&bus, "orders", &["e0", "e1", "e2"]).await;
    for (i, p) in published.iter().enumerate() {
        assert_eq!(
            (p.partition, p.offset, p.duplicate),
            (Partition(0), Offset(i as u64), false),
            "publish #{i}"
        );
    }
    for i in 3..6 {
        let p = publish(&bus, "orders", Event::new("Anonymous", format!("{i}"))).await;
        assert_eq!(
            (p.partition, p.offset, p.duplicate),
            (Partition(0), Offset(i), false)
        );
    }

    let events = read_all(&bus, "orders", 0).await;
    let offsets: Vec<u64> = events.iter().map(|e| e.offset.0).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5], "contiguous offsets");
    assert_eq!(
        event_ids(&events[..3]),
        ["e0", "e1", "e2"],
        "given ids are kept"
    );
    let generated: BTreeSet<&str> = events[3..].iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(
        generated.len(),
        3,
        "generated ids are distinct: {generated:?}"
    );
    for id in &generated {
        assert!(!id.is_empty(), "an empty id is replaced");
        assert!(
            !["e0", "e1", "e2"].contains(id),
            "a generated id is unique: {id}"
        );
    }
    assert_eq!(next_offsets(&bus, "orders").await, [6]);
}

pub async fn publish_same_key_same_partition_in_order<H: Harness>(h: &H) {
    // Proves: events with the same key land in the same partition (the
    // shared `partition_for_key` rule) with increasing offsets, so a
    // reader of the partition sees each key's events in publish order.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 4).await;
    let mut placed: BTreeMap<String, Vec<(Partition, Offset)>> = BTreeMap::new();
    for round in 0..3 {
        for k in 0..8 {
            let key = format!("k{k}");
            let p = publish(&bus, "orders", keyed(&format!("{key}-{round}"), &key)).await;
            placed.entry(key).or_default().push((p.partition, p.offset));
        }
    }
    for (key, places) in &placed {
        let expected = Partition(partition_for_key(key.as_bytes(), 4));
        for (partition, _) in places {
            assert_eq!(*partition, expected, "key {key}: partition_for_key decides");
        }
        assert!(
            places.windows(2).all(|w| w[0].1 < w[1].1),
            "key {key}: offsets increase in publish order: {places:?}"
        );
    }

    for p in 0..4 {
        let events = read_all(&bus, "orders", p).await;
        let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in &events {
            assert_eq!(
                e.partition,
                Partition(p),
                "a read of partition {p} returns its events"
            );
            let key = e.event.key.as_deref().expect("every event has a key");
            seen.entry(key).or_default().push(&e.event.id);
        }
        for (key, ids) in seen {
            let expected: Vec<String> = (0..3).map(|r| format!("{key}-{r}")).collect();
            assert_eq!(ids, expected, "key {key} in partition {p}: publish order");
        }
    }
}

pub async fn publish_is_idempotent_by_id<H: Harness>(h: &H) {
    // Proves: publishing an event id a second time stores nothing new and
    // reports `duplicate` with the first one's place, also after a restart.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 3).await;
    let first = publish(&bus, "orders", keyed("order-1", "customer-7")).await;
    assert!(!first.duplicate, "the first publish is not a duplicate");
    let second = publish(&bus, "orders", keyed("order-1", "customer-7")).await;
    assert!(
        second.duplicate,
        "the second publish of an id is a duplicate"
    );
    assert_eq!(
        (second.partition, second.offset),
        (first.partition, first.offset),
        "a duplicate reports where the first one is"
    );
    let other = publish(&bus, "orders", keyed("order-2", "customer-7")).await;
    assert!(!other.duplicate, "another id is not a duplicate");

    let ids = event_ids(&read_topic(&bus, "orders").await);
    assert_eq!(ids, ["order-1", "order-2"], "the duplicate was stored once");
    let stats = bus.topic_stats("orders").await.expect("topic stats");
    assert_eq!(
        (stats.published, stats.duplicates, stats.events),
        (2, 1, 2),
        "{stats:?}"
    );

    let bus = h.restart(bus, &env).await;
    let third = publish(&bus, "orders", keyed("order-1", "customer-7")).await;
    assert!(third.duplicate, "the dedup window survives a restart");
    assert_eq!(
        (third.partition, third.offset),
        (first.partition, first.offset)
    );
    let ids = event_ids(&read_topic(&bus, "orders").await);
    assert_eq!(
        ids,
        ["order-1", "order-2"],
        "still stored once after the restart"
    );
}

pub async fn publish_batch_in_order_with_duplicates<H: Harness>(h: &H) {
    // Proves: a batch returns one place per event, in order, at
    // contiguous offsets; an id repeated within the batch (or published
    // before) is a duplicate pointing at the first one.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    publish(&bus, "orders", event("before")).await;
    let batch = vec![
        event("a"),
        event("b"),
        event("a"),
        event("before"),
        event("c"),
    ];
    let out = bus
        .publish_batch("orders", batch)
        .await
        .expect("publish batch");
    let places: Vec<(u64, bool)> = out.iter().map(|p| (p.offset.0, p.duplicate)).collect();
    assert_eq!(
        places,
        [(1, false), (2, false), (1, true), (0, true), (3, false)],
        "(offset, duplicate) per event of the batch"
    );
    let ids = event_ids(&read_all(&bus, "orders", 0).await);
    assert_eq!(ids, ["before", "a", "b", "c"], "duplicates are stored once");
}

pub async fn publish_batch_is_all_or_nothing<H: Harness>(h: &H) {
    // Proves: one invalid event fails the whole batch with a typed error
    // and nothing of it is stored, not even the valid events' ids for
    // deduplication.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 2).await;
    publish(&bus, "orders", keyed("kept", "k")).await;
    let before = next_offsets(&bus, "orders").await;

    let untyped = vec![
        event("v1"),
        Event::new("", "no type").with_id("bad"),
        event("v2"),
    ];
    expect_err!(
        bus.publish_batch("orders", untyped).await,
        BusError::InvalidArgument { .. },
        "a batch with an event without a type"
    );
    let huge = Event::new("Huge", Bytes::from(vec![7u8; 1024 * 1024 + 1])).with_id("huge");
    match bus
        .publish_batch("orders", vec![event("v1"), huge.clone()])
        .await
    {
        Err(BusError::LimitExceeded { setting, .. }) => {
            assert_eq!(setting, "event_bytes_max", "the error names the setting")
        }
        other => panic!("a batch with an event over 1 MiB: expected LimitExceeded, got {other:?}"),
    }
    match bus.publish("orders", huge).await {
        Err(BusError::LimitExceeded { setting, .. }) => assert_eq!(setting, "event_bytes_max"),
        other => panic!("an event over 1 MiB: expected LimitExceeded, got {other:?}"),
    }
    expect_err!(
        bus.publish("orders", Event::new("", "x")).await,
        BusError::InvalidArgument { .. },
        "an event without a type"
    );

    assert_eq!(
        next_offsets(&bus, "orders").await,
        before,
        "nothing was stored"
    );
    let stats = bus.topic_stats("orders").await.expect("topic stats");
    assert_eq!(stats.published, 1, "only the first event counts: {stats:?}");
    for id in ["v1", "v2"] {
        let p = publish(&bus, "orders", event(id)).await;
        assert!(!p.duplicate, "{id} of a failed batch was not remembered");
    }
}
