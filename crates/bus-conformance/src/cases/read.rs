//! Stream reading: positions, attributes and errors.

use bytes::Bytes;
use eddy_bus::{Bus, BusError, Event, Offset, Partition, ReadBatch, ReadFrom};

use crate::Harness;
use crate::support::*;

async fn read<B: Bus>(bus: &B, topic: &str, from: ReadFrom, max: u32) -> ReadBatch {
    bus.read(topic, Partition(0), from, max)
        .await
        .unwrap_or_else(|e| panic!("read {topic:?} from {from:?}: {e:?}"))
}

/// Asserts a batch holds exactly these event ids and says where to go on.
fn assert_batch(batch: &ReadBatch, ids: &[&str], next: u64, what: &str) {
    assert_eq!(event_ids(&batch.events), ids, "{what}: events");
    assert_eq!(batch.next_offset, Offset(next), "{what}: next offset");
}

pub async fn read_round_trips_every_attribute<H: Harness>(h: &H) {
    // Proves: every attribute of an event (CloudEvents attributes,
    // extensions, headers in order, binary data) comes back exactly from
    // a read and from a delivery, with its topic, partition, offset and
    // the bus's append time; absent attributes stay absent.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "audit", earliest("orders")).await;
    let full = Event {
        id: "evt-1".into(),
        source: "/services/orders".into(),
        ty: "OrderPlaced".into(),
        subject: Some("order-42".into()),
        time_ms: Some(1_700_000_000_123),
        data_content_type: Some("application/json".into()),
        data_schema: Some("https://example.com/schemas/order-placed/1".into()),
        data: Bytes::from_static(b"{\"total\":42}\x00\xff\n"),
        key: Some("customer-7".into()),
        correlation_id: Some("flow-9".into()),
        causation_id: Some("cmd-3".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        headers: vec![
            ("zeta".into(), "first".into()),
            ("alpha".into(), "second".into()),
            ("tenant".into(), "acme".into()),
        ],
    };
    let bare = Event {
        id: "evt-2".into(),
        source: "eddy".into(),
        ty: "Bare".into(),
        ..Event::default()
    };
    let mut appended = Vec::new();
    for e in [full.clone(), bare.clone()] {
        let before = h.now_ms(&env);
        publish(&bus, "orders", e).await;
        appended.push((before, h.now_ms(&env)));
        h.advance(&env, 1500).await;
    }

    let events = read_all(&bus, "orders", 0).await;
    assert_eq!(events.len(), 2);
    for (i, (stored, original)) in events.iter().zip([&full, &bare]).enumerate() {
        assert_eq!(&stored.event, original, "event {i} round-trips exactly");
        assert_eq!(stored.topic, "orders");
        assert_eq!(
            (stored.partition, stored.offset),
            (Partition(0), Offset(i as u64))
        );
        let (low, high) = appended[i];
        assert_within(
            stored.timestamp_ms,
            low,
            high,
            "the append time is the bus clock",
        );
    }

    let mut delivered: Vec<_> = fetch(&bus, "audit", 10)
        .await
        .into_iter()
        .map(|d| d.event)
        .collect();
    delivered.sort_by_key(|e| e.offset);
    assert_eq!(delivered, events, "a delivery carries the stored event");
}

pub async fn read_from_each_position<H: Harness>(h: &H) {
    // Proves (the seed's streaming scenario): with one event a second for
    // six seconds, readers from the beginning, from an offset and from a
    // time each see exactly the right suffix, `End` and the next offset
    // return nothing, and `max` pages through the partition.
    let (bus, env) = h.open().await;
    create_topic(&bus, "metrics", 1).await;
    let t0 = h.now_ms(&env);
    publish_spaced(
        h,
        &env,
        &bus,
        "metrics",
        &["e0", "e1", "e2", "e3", "e4", "e5"],
        1000,
    )
    .await;

    let all = read(&bus, "metrics", ReadFrom::Beginning, 100).await;
    assert_batch(
        &all,
        &["e0", "e1", "e2", "e3", "e4", "e5"],
        6,
        "from the beginning",
    );
    for (i, e) in all.events.iter().enumerate() {
        let at = t0 + 1000 * i as i64;
        assert_within(e.timestamp_ms, at, at + 999, "append time of e{i}");
    }
    let page = read(&bus, "metrics", ReadFrom::Beginning, 2).await;
    assert_batch(&page, &["e0", "e1"], 2, "a first page of 2");
    let rest = read(&bus, "metrics", ReadFrom::Offset(page.next_offset), 100).await;
    assert_batch(&rest, &["e2", "e3", "e4", "e5"], 6, "from offset 2");

    let by_time = read(&bus, "metrics", ReadFrom::Time(t0 + 4000), 100).await;
    assert_batch(&by_time, &["e4", "e5"], 6, "from t0+4s");
    let between = read(&bus, "metrics", ReadFrom::Time(t0 + 3500), 100).await;
    assert_batch(&between, &["e4", "e5"], 6, "from t0+3.5s");
    let early = read(&bus, "metrics", ReadFrom::Time(t0 - 60_000), 100).await;
    assert_eq!(
        early.events.len(),
        6,
        "a time before everything reads everything"
    );
    let late = read(&bus, "metrics", ReadFrom::Time(t0 + 60_000), 100).await;
    assert_batch(&late, &[], 6, "a time after everything");

    let end = read(&bus, "metrics", ReadFrom::End, 100).await;
    assert_batch(&end, &[], 6, "from the end");
    let next = read(&bus, "metrics", ReadFrom::Offset(Offset(6)), 100).await;
    assert_batch(&next, &[], 6, "from the next offset");

    publish(&bus, "metrics", event("e6")).await;
    let tail = read(&bus, "metrics", ReadFrom::Offset(end.next_offset), 100).await;
    assert_batch(
        &tail,
        &["e6"],
        7,
        "reading on from `End` finds the new event",
    );
}

pub async fn read_errors<H: Harness>(h: &H) {
    // Proves: reading past the next offset, a partition the topic lacks or
    // an unknown topic gets its typed error; an empty partition reads as
    // empty.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_topic(&bus, "wide", 3).await;
    let empty = read(&bus, "orders", ReadFrom::Beginning, 10).await;
    assert_batch(&empty, &[], 0, "an empty partition");
    assert_batch(
        &read(&bus, "orders", ReadFrom::End, 10).await,
        &[],
        0,
        "the end of an empty partition",
    );

    publish_ids(&bus, "orders", &["e0", "e1", "e2"]).await;
    expect_err!(
        bus.read("orders", Partition(0), ReadFrom::Offset(Offset(4)), 10)
            .await,
        BusError::OffsetOutOfRange { .. },
        "read beyond the next offset"
    );
    expect_err!(
        bus.read("orders", Partition(1), ReadFrom::Beginning, 10)
            .await,
        BusError::PartitionNotFound { .. },
        "read partition 1 of a one-partition topic"
    );
    expect_err!(
        bus.read("wide", Partition(3), ReadFrom::Beginning, 10)
            .await,
        BusError::PartitionNotFound { .. },
        "read partition 3 of a three-partition topic"
    );
    expect_err!(
        bus.read("nope", Partition(0), ReadFrom::Beginning, 10)
            .await,
        BusError::TopicNotFound(_),
        "read an unknown topic"
    );
}
