//! Ordered delivery: at most one pending event per key.

use std::collections::{BTreeMap, BTreeSet};

use eddy_bus::{Bus, DeliveryMode, NackOptions};

use crate::Harness;
use crate::support::*;

fn key_of(d: &eddy_bus::Delivery) -> String {
    d.event.event.key.clone().unwrap_or_default()
}

pub async fn ordered_mode_one_pending_event_per_key<H: Harness>(h: &H) {
    // Proves: in ordered mode three consumers fetching in rounds never
    // hold two events of one key at once, receive each key's events in
    // publish order, and still get every key's next event each round.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 3).await;
    create_sub(&bus, "s", earliest("orders").mode(DeliveryMode::Ordered)).await;
    let keys = ["k1", "k2", "k3"];
    for n in 0..4 {
        for key in keys {
            publish(&bus, "orders", keyed(&format!("{key}-{n}"), key)).await;
        }
    }

    let mut next: BTreeMap<String, usize> = BTreeMap::new();
    for round in 1..=4 {
        let mut outstanding = Vec::new();
        for _consumer in 0..3 {
            outstanding.extend(fetch(&bus, "s", 10).await);
        }
        fetch_none(
            &bus,
            "s",
            &format!("round {round}: every key has an event pending"),
        )
        .await;
        let held: BTreeSet<String> = outstanding.iter().map(key_of).collect();
        assert_eq!(
            held.len(),
            outstanding.len(),
            "round {round}: two events of one key outstanding: {:?}",
            ids(&outstanding)
        );
        assert_eq!(
            held.len(),
            3,
            "round {round}: each key's next event: {:?}",
            ids(&outstanding)
        );
        for d in &outstanding {
            let key = key_of(d);
            let n = next.entry(key.clone()).or_default();
            assert_eq!(
                d.event.event.id,
                format!("{key}-{n}"),
                "round {round}: key {key} in order"
            );
            *n += 1;
        }
        ack_each(&bus, "s", &outstanding).await;
    }
    fetch_none(&bus, "s", "all twelve delivered").await;
}

pub async fn ordered_mode_nack_holds_back_the_key<H: Harness>(h: &H) {
    // Proves: in ordered mode a nacked event keeps its key blocked while
    // it waits for its retry: the key's next event comes only after the
    // retry was delivered and acked; other keys, and events without a key,
    // are not held back.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 3).await;
    create_sub(&bus, "s", earliest("orders").mode(DeliveryMode::Ordered)).await;
    publish(&bus, "orders", keyed("a1", "k1")).await;
    publish(&bus, "orders", keyed("a2", "k1")).await;
    publish(&bus, "orders", keyed("b1", "k2")).await;
    publish_ids(&bus, "orders", &["u1", "u2"]).await;

    let first = fetch(&bus, "s", 10).await;
    assert_eq!(
        sorted_ids(&first),
        ["a1", "b1", "u1", "u2"],
        "one event per key, and every event without a key"
    );
    let find = |id: &str| {
        first
            .iter()
            .find(|d| d.event.event.id == id)
            .expect(id)
            .clone()
    };
    let (a1, b1) = (find("a1"), find("b1"));
    ack(&bus, "s", &find("u1")).await;
    ack(&bus, "s", &find("u2")).await;

    let t = h.now_ms(&env);
    bus.nack("s", &a1.ack_id, NackOptions::default())
        .await
        .expect("nack a1");
    fetch_none(&bus, "s", "a2 waits while a1 waits for its retry").await;
    ack(&bus, "s", &b1).await;
    fetch_none(&bus, "s", "acking another key does not release k1").await;

    advance_to(h, &env, t + 1000).await;
    let retry = fetch_one(&bus, "s", "a1's retry").await;
    assert_eq!(
        (retry.event.event.id.as_str(), retry.attempt),
        ("a1", 2),
        "the retry, not a2"
    );
    fetch_none(&bus, "s", "a2 waits for the retry's ack").await;
    ack(&bus, "s", &retry).await;
    let a2 = fetch_one(&bus, "s", "after a1 was acked").await;
    assert_eq!((a2.event.event.id.as_str(), a2.attempt), ("a2", 1));
    ack(&bus, "s", &a2).await;
    fetch_none(&bus, "s", "everything settled").await;
}
