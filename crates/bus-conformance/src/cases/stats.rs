//! Statistics of topics and subscriptions.

use eddy_bus::{Bus, NackOptions};

use crate::Harness;
use crate::support::*;

pub async fn stats_follow_a_small_scenario<H: Harness>(h: &H) {
    // Proves: topic stats count published events, duplicates and events
    // held; subscription stats count deliveries, redeliveries, acks and
    // dead letters, and show the backlog (lag), what is leased (in
    // flight) and what waits for a retry, step by step.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    publish_ids(&bus, "orders", &["a", "b", "c", "d", "e", "a"]).await;

    let topic = bus.topic_stats("orders").await.expect("topic stats");
    assert_eq!(topic.name, "orders");
    assert_eq!(
        (topic.published, topic.duplicates, topic.events),
        (5, 1, 5),
        "{topic:?}"
    );
    assert!(
        topic.size_bytes > 0,
        "five events take some bytes: {topic:?}"
    );

    let s = sub_stats(&bus, "s").await;
    assert_eq!(s.name, "s");
    assert_eq!(
        (
            s.delivered,
            s.redelivered,
            s.acked,
            s.dead_lettered,
            s.dead_letters
        ),
        (0, 0, 0, 0, 0),
        "nothing happened yet: {s:?}"
    );
    assert_eq!(
        (s.lag, s.in_flight, s.waiting),
        (5, 0, 0),
        "all five wait: {s:?}"
    );
    assert_eq!(s.oldest_unacked_age_ms, None, "nothing delivered: {s:?}");

    let ds = fetch(&bus, "s", 3).await;
    assert_eq!(ds.len(), 3, "{:?}", ids(&ds));
    h.advance(&env, 500).await;
    let s = sub_stats(&bus, "s").await;
    assert_eq!(
        (s.delivered, s.in_flight, s.lag),
        (3, 3, 5),
        "three leased: {s:?}"
    );
    assert!(
        s.oldest_unacked_age_ms >= Some(500),
        "the oldest leased event's age: {s:?}"
    );

    ack(&bus, "s", &ds[0]).await;
    bus.nack("s", &ds[1].ack_id, NackOptions::default())
        .await
        .expect("nack");
    bus.terminate("s", &ds[2].ack_id, "broken")
        .await
        .expect("terminate");
    let s = sub_stats(&bus, "s").await;
    assert_eq!(
        (s.acked, s.dead_lettered, s.dead_letters),
        (1, 1, 1),
        "one acked, one dead: {s:?}"
    );
    assert_eq!(
        (s.lag, s.in_flight, s.waiting),
        (3, 0, 1),
        "the nacked one waits, two are new: {s:?}"
    );

    h.advance(&env, 1000).await;
    let rest = fetch(&bus, "s", 10).await;
    assert_eq!(
        rest.len(),
        3,
        "the retry and the two new ones: {:?}",
        ids(&rest)
    );
    let s = sub_stats(&bus, "s").await;
    assert_eq!((s.delivered, s.redelivered), (6, 1), "{s:?}");
    assert_eq!((s.lag, s.in_flight, s.waiting), (3, 3, 0), "{s:?}");

    ack_each(&bus, "s", &rest).await;
    let s = sub_stats(&bus, "s").await;
    assert_eq!(
        (s.acked, s.lag, s.in_flight, s.waiting),
        (4, 0, 0, 0),
        "all settled: {s:?}"
    );
    assert_eq!(s.oldest_unacked_age_ms, None, "nothing unsettled: {s:?}");
}
