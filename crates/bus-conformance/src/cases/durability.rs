//! What survives a restart.

use eddy_bus::{Bus, DeadLetterSelection, NackOptions, RedriveTarget, SubscriptionConfig};

use crate::Harness;
use crate::support::*;

/// The parts of a topic description that a restart must keep.
async fn topic_shape<B: Bus>(bus: &B, topic: &str) -> (eddy_bus::TopicConfig, Vec<(u64, u64)>) {
    let info = bus.describe_topic(topic).await.expect("describe");
    let ranges = info
        .partitions
        .iter()
        .map(|p| (p.first_offset.0, p.next_offset.0))
        .collect();
    (info.config, ranges)
}

async fn all_ids<B: Bus>(bus: &B, topic: &str, partitions: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for p in 0..partitions {
        ids.extend(event_ids(&read_all(bus, topic, p).await));
    }
    ids
}

pub async fn restart_keeps_topics_subscriptions_and_acks<H: Harness>(h: &H) {
    // Proves: after a restart topics keep their settings and events,
    // subscriptions their settings and positions: acked events are not
    // redelivered, the others are, and a subscription created at `Latest`
    // still delivers what was published after its creation.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 3).await;
    create_topic(&bus, "audit", 1).await;
    create_sub(&bus, "s", earliest("orders").ack_wait_ms(10_000)).await;
    create_sub(&bus, "watch", SubscriptionConfig::new("audit")).await;
    let all: Vec<String> = (0..6).map(|i| format!("o{i}")).collect();
    for id in &all {
        publish(&bus, "orders", keyed(id, id)).await;
    }
    publish(&bus, "audit", event("a0")).await;
    let acked = fetch(&bus, "s", 3).await;
    assert_eq!(acked.len(), 3, "{:?}", ids(&acked));
    ack_each(&bus, "s", &acked).await;

    let orders = topic_shape(&bus, "orders").await;
    let audit = topic_shape(&bus, "audit").await;
    let events = all_ids(&bus, "orders", 3).await;
    let s = bus.describe_subscription("s").await.expect("describe s");
    let watch = bus
        .describe_subscription("watch")
        .await
        .expect("describe watch");

    let bus = h.restart(bus, &env).await;
    assert_eq!(
        topic_shape(&bus, "orders").await,
        orders,
        "orders after the restart"
    );
    assert_eq!(
        topic_shape(&bus, "audit").await,
        audit,
        "audit after the restart"
    );
    assert_eq!(
        all_ids(&bus, "orders", 3).await,
        events,
        "the events after the restart"
    );
    assert_eq!(bus.describe_subscription("s").await.expect("describe s"), s);
    assert_eq!(
        bus.describe_subscription("watch").await.expect("describe"),
        watch
    );

    let rest = drain(&bus, "s").await;
    let mut delivered = [ids(&acked), ids(&rest)].concat();
    delivered.sort();
    assert_eq!(
        delivered, all,
        "the unacked events, and no acked one, after the restart"
    );
    assert_eq!(
        sorted_ids(&drain(&bus, "watch").await),
        ["a0"],
        "`Latest` was fixed at creation"
    );
    h.advance(&env, 120_000).await;
    fetch_none(&bus, "s", "nothing is left").await;
    publish(&bus, "orders", keyed("o6", "o6")).await;
    assert_eq!(
        sorted_ids(&drain(&bus, "s").await),
        ["o6"],
        "new events after the restart"
    );
}

pub async fn restart_keeps_retries_dead_letters_and_dedup<H: Harness>(h: &H) {
    // Proves: after a restart a scheduled retry is still due at its time
    // (not earlier), dead letters are still in the queue and can be
    // redriven, and published ids are still deduplicated.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    publish_ids(&bus, "orders", &["retry", "dead", "done"]).await;
    let ds = fetch(&bus, "s", 10).await;
    assert_eq!(sorted_ids(&ds), ["dead", "done", "retry"]);
    let find = |id: &str| ds.iter().find(|d| d.event.event.id == id).expect(id);
    let t = h.now_ms(&env);
    let later = NackOptions {
        delay_ms: Some(10_000),
        error: Some("try later".into()),
    };
    bus.nack("s", &find("retry").ack_id, later)
        .await
        .expect("nack");
    bus.terminate("s", &find("dead").ack_id, "broken")
        .await
        .expect("terminate");
    ack(&bus, "s", find("done")).await;
    let dead = bus.dead_letters("s", 0, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);

    let bus = h.restart(bus, &env).await;
    let after = bus
        .dead_letters("s", 0, 10)
        .await
        .expect("dead letters after the restart");
    assert_eq!(after, dead, "the dead letters survive the restart");
    let again = publish(&bus, "orders", event("done")).await;
    assert!(again.duplicate, "the dedup window survives the restart");

    advance_to(h, &env, t + 9_999).await;
    fetch_none(&bus, "s", "the retry is not due yet after the restart").await;
    advance_to(h, &env, t + 10_000).await;
    let retry = fetch_one(&bus, "s", "the retry when due").await;
    assert_eq!((retry.event.event.id.as_str(), retry.attempt), ("retry", 2));
    ack(&bus, "s", &retry).await;

    let n = bus
        .redrive("s", DeadLetterSelection::All, RedriveTarget::Subscription)
        .await
        .expect("redrive after the restart");
    assert_eq!(n, 1);
    let redriven = fetch_one(&bus, "s", "the redriven event").await;
    assert_eq!(
        (redriven.event.event.id.as_str(), redriven.attempt),
        ("dead", 1)
    );
    ack(&bus, "s", &redriven).await;
    fetch_none(&bus, "s", "everything settled").await;
}
