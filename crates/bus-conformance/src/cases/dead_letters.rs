//! The dead-letter queue: listing, one by id, purging, redriving to a
//! topic.

use eddy_bus::{Bus, BusError, DeadLetterSelection, DeadReason, RedriveTarget};

use crate::Harness;
use crate::support::*;

/// Publishes `ids` to `topic` and terminates each one's delivery in `sub`
/// with the reason `"bad {id}"`, in the order given.
async fn terminate_each<B: Bus>(bus: &B, topic: &str, sub: &str, names: &[&str]) {
    publish_ids(bus, topic, names).await;
    let ds = fetch(bus, sub, 100).await;
    assert_eq!(
        ds.len(),
        names.len(),
        "every event delivered: {:?}",
        ids(&ds)
    );
    for id in names {
        let d = ds
            .iter()
            .find(|d| d.event.event.id == *id)
            .expect("delivered");
        bus.terminate(sub, &d.ack_id, &format!("bad {id}"))
            .await
            .expect("terminate");
    }
}

pub async fn dead_letter_queue_list_get_purge<H: Harness>(h: &H) {
    // Proves: dead letters are listed by increasing id from a given id
    // and up to a max, can be fetched one by one (an unknown id gets
    // `DeadLetterNotFound`), and purged by id or all at once.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    terminate_each(&bus, "orders", "s", &["d0", "d1", "d2"]).await;

    let dead = bus.dead_letters("s", 0, 10).await.expect("dead letters");
    let listed: Vec<&str> = dead.iter().map(|d| d.event.event.id.as_str()).collect();
    assert_eq!(listed, ["d0", "d1", "d2"], "in the order they died");
    assert!(
        dead.windows(2).all(|w| w[0].id < w[1].id),
        "increasing ids: {dead:?}"
    );
    for dl in &dead {
        assert_eq!(dl.subscription, "s");
        assert_eq!(dl.reason, DeadReason::Terminated);
        let expected = format!("bad {}", dl.event.event.id);
        assert_eq!(dl.last_error.as_deref(), Some(expected.as_str()));
        assert_eq!(
            dl.event.event,
            event(&dl.event.event.id),
            "the original event"
        );
    }

    let from_second = bus
        .dead_letters("s", dead[1].id, 10)
        .await
        .expect("from the 2nd");
    assert_eq!(from_second, dead[1..], "listing from an id includes it");
    let first_only = bus.dead_letters("s", 0, 1).await.expect("max 1");
    assert_eq!(first_only, dead[..1], "max limits the list");
    let one = bus
        .dead_letter("s", dead[1].id)
        .await
        .expect("one dead letter");
    assert_eq!(one, dead[1], "one by id");
    let unknown = dead[2].id + 1000;
    expect_err!(
        bus.dead_letter("s", unknown).await,
        BusError::DeadLetterNotFound(_),
        "an unknown dead letter id"
    );

    let n = bus
        .purge("s", DeadLetterSelection::Ids(vec![dead[0].id]))
        .await
        .expect("purge one");
    assert_eq!(n, 1, "purged by id");
    expect_err!(
        bus.dead_letter("s", dead[0].id).await,
        BusError::DeadLetterNotFound(_),
        "a purged dead letter"
    );
    let n = bus
        .purge("s", DeadLetterSelection::All)
        .await
        .expect("purge all");
    assert_eq!(n, 2, "purge all counts the rest");
    let dead = bus.dead_letters("s", 0, 10).await.expect("dead letters");
    assert!(dead.is_empty(), "the queue is empty: {dead:?}");
    assert_eq!(sub_stats(&bus, "s").await.dead_letters, 0);
}

pub async fn redrive_to_a_topic<H: Harness>(h: &H) {
    // Proves: redriving a dead letter to a topic publishes the event
    // there (same id, same data) for that topic's subscribers, removes it
    // from the queue, and does not deliver it to its old subscription.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_topic(&bus, "orders.repair", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    create_sub(&bus, "repair", earliest("orders.repair")).await;
    terminate_each(&bus, "orders", "s", &["keep", "fix"]).await;
    let dead = bus.dead_letters("s", 0, 10).await.expect("dead letters");
    let fix = dead
        .iter()
        .find(|d| d.event.event.id == "fix")
        .expect("fix died");

    let n = bus
        .redrive(
            "s",
            DeadLetterSelection::Ids(vec![fix.id]),
            RedriveTarget::Topic("orders.repair".into()),
        )
        .await
        .expect("redrive to a topic");
    assert_eq!(n, 1);
    let left = bus.dead_letters("s", 0, 10).await.expect("dead letters");
    let left: Vec<&str> = left.iter().map(|d| d.event.event.id.as_str()).collect();
    assert_eq!(left, ["keep"], "only the redriven one left the queue");

    let d = fetch_one(&bus, "repair", "the redriven event on orders.repair").await;
    assert_eq!(d.event.topic, "orders.repair");
    assert_eq!(d.event.event.id, "fix", "the same id");
    assert_eq!(d.event.event.data, event("fix").data, "the same data");
    assert_eq!(d.attempt, 1);
    ack(&bus, "repair", &d).await;
    h.advance(&env, 120_000).await;
    fetch_none(&bus, "s", "the old subscription does not get it back").await;
}
