//! Topics: create, list, describe, delete, and the errors around them.

use eddy_bus::{Bus, BusError, Event, Offset, PARTITIONS_MAX, Partition, TopicConfig, TopicInfo};

use crate::Harness;
use crate::support::*;

/// The names of the application's topics (the bus's own `$` topics left
/// out), sorted.
async fn app_topics<B: Bus>(bus: &B) -> Vec<String> {
    let mut names: Vec<String> = bus
        .list_topics()
        .await
        .expect("list topics")
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !n.starts_with('$'))
        .collect();
    names.sort();
    names
}

fn assert_empty_partitions(info: &TopicInfo, partitions: u32) {
    assert_eq!(
        info.partitions.len(),
        partitions as usize,
        "{}: one range per partition",
        info.name
    );
    for (i, p) in info.partitions.iter().enumerate() {
        assert_eq!(
            p.partition,
            Partition(i as u32),
            "{}: partitions in order",
            info.name
        );
        assert_eq!(
            (p.first_offset, p.next_offset),
            (Offset(0), Offset(0)),
            "{}/{i}: a new partition is empty",
            info.name
        );
    }
}

pub async fn topic_lifecycle<H: Harness>(h: &H) {
    // Proves: a created topic is described with its settings and one empty
    // range per partition, is listed, shows published events in its
    // ranges, and is gone once deleted.
    let (bus, _env) = h.open().await;
    let created = bus
        .create_topic("orders.placed", TopicConfig::with_partitions(3))
        .await
        .expect("create orders.placed");
    assert_eq!(created.name, "orders.placed");
    assert_eq!(
        created.config,
        TopicConfig::with_partitions(3),
        "settings as given"
    );
    assert_empty_partitions(&created, 3);
    create_topic(&bus, "payments", 1).await;
    assert_eq!(app_topics(&bus).await, ["orders.placed", "payments"]);

    let described = bus.describe_topic("orders.placed").await.expect("describe");
    assert_eq!(described.name, "orders.placed");
    assert_eq!(described.config, TopicConfig::with_partitions(3));
    assert_empty_partitions(&described, 3);

    for i in 0..4 {
        publish(
            &bus,
            "orders.placed",
            event(&format!("e{i}")).with_key(format!("k{i}")),
        )
        .await;
    }
    let described = bus.describe_topic("orders.placed").await.expect("describe");
    let total: u64 = described.partitions.iter().map(|p| p.next_offset.0).sum();
    assert_eq!(
        total, 4,
        "next offsets count the published events: {described:?}"
    );
    assert!(
        described
            .partitions
            .iter()
            .all(|p| p.first_offset == Offset(0)),
        "nothing was deleted yet: {described:?}"
    );

    bus.delete_topic("orders.placed").await.expect("delete");
    expect_err!(
        bus.describe_topic("orders.placed").await,
        BusError::TopicNotFound(_),
        "describe a deleted topic"
    );
    expect_err!(
        bus.delete_topic("orders.placed").await,
        BusError::TopicNotFound(_),
        "delete a deleted topic"
    );
    assert_eq!(
        app_topics(&bus).await,
        ["payments"],
        "the deleted topic is not listed"
    );
}

pub async fn topic_errors<H: Harness>(h: &H) {
    // Proves: bad topic names, partition counts and unknown or existing
    // topics get their typed errors, `$` names are reserved for the bus,
    // and a refused call changes nothing.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 2).await;

    expect_err!(
        bus.create_topic("orders", TopicConfig::with_partitions(5))
            .await,
        BusError::TopicExists(_),
        "create an existing topic"
    );
    let info = bus.describe_topic("orders").await.expect("describe orders");
    assert_eq!(
        info.partitions.len(),
        2,
        "the refused create left the topic as it was"
    );

    for bad in [
        "bad name",
        "a..b",
        "",
        "orders.",
        ".orders",
        "a.*",
        "$sys.mine",
    ] {
        expect_err!(
            bus.create_topic(bad, TopicConfig::default()).await,
            BusError::InvalidName { .. },
            "create topic {bad:?}"
        );
    }
    for partitions in [0, PARTITIONS_MAX + 1] {
        expect_err!(
            bus.create_topic("sized", TopicConfig::with_partitions(partitions))
                .await,
            BusError::InvalidArgument { .. },
            "create a topic with {partitions} partitions"
        );
    }

    expect_err!(
        bus.describe_topic("nope").await,
        BusError::TopicNotFound(_),
        "describe an unknown topic"
    );
    expect_err!(
        bus.delete_topic("nope").await,
        BusError::TopicNotFound(_),
        "delete an unknown topic"
    );
    expect_err!(
        bus.publish("nope", event("x")).await,
        BusError::TopicNotFound(_),
        "publish to an unknown topic (no auto-create by default)"
    );
    expect_err!(
        bus.publish_batch("nope", vec![event("y")]).await,
        BusError::TopicNotFound(_),
        "publish a batch to an unknown topic"
    );
    expect_err!(
        bus.topic_stats("nope").await,
        BusError::TopicNotFound(_),
        "stats of an unknown topic"
    );
    for reserved in [eddy_bus::name::ALERTS_TOPIC, "$sys.mine"] {
        expect_err!(
            bus.publish(reserved, Event::new("Forged", "{}")).await,
            BusError::InvalidName { .. },
            "publish to the reserved topic {reserved:?}"
        );
    }
    expect_err!(
        bus.publish("bad name", event("z")).await,
        BusError::InvalidName { .. },
        "publish to an invalid topic name"
    );

    assert_eq!(
        app_topics(&bus).await,
        ["orders"],
        "no refused call created a topic"
    );
    assert_eq!(
        next_offsets(&bus, "orders").await,
        [0, 0],
        "no refused call stored an event"
    );
}
