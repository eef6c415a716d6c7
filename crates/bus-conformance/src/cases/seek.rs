//! Seek: replaying and skipping.

use eddy_bus::{Bus, BusError, Offset, StartAt};

use crate::Harness;
use crate::support::*;

/// Seeks `sub` and returns what it then delivers (acking it), sorted.
async fn seek_and_drain<B: Bus>(bus: &B, sub: &str, to: StartAt) -> Vec<String> {
    bus.seek(sub, to)
        .await
        .unwrap_or_else(|e| panic!("seek {sub:?} to {to:?}: {e:?}"));
    let ds = drain(bus, sub).await;
    assert!(
        ds.iter().all(|d| d.attempt == 1),
        "after a seek attempts start at 1: {ds:?}"
    );
    sorted_ids(&ds)
}

pub async fn seek_replays_and_skips<H: Harness>(h: &H) {
    // Proves: seeking to the earliest event replays acked events; seeking
    // to an offset or a time replays from there; seeking to the latest
    // skips what is there and drops pending deliveries and retries.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    let t0 = h.now_ms(&env);
    publish_spaced(h, &env, &bus, "orders", &["e0", "e1", "e2", "e3"], 1000).await;
    assert_eq!(
        sorted_ids(&drain(&bus, "s").await),
        ["e0", "e1", "e2", "e3"]
    );
    fetch_none(&bus, "s", "all acked").await;

    let all = ["e0", "e1", "e2", "e3"];
    assert_eq!(
        seek_and_drain(&bus, "s", StartAt::Earliest).await,
        all,
        "replay from the earliest"
    );
    assert_eq!(
        seek_and_drain(&bus, "s", StartAt::Offset(Offset(2))).await,
        ["e2", "e3"],
        "from offset 2"
    );
    assert_eq!(
        seek_and_drain(&bus, "s", StartAt::Time(t0 + 1000)).await,
        ["e1", "e2", "e3"],
        "from t0+1s"
    );

    bus.seek("s", StartAt::Earliest)
        .await
        .expect("seek to the earliest");
    let held = fetch(&bus, "s", 2).await;
    assert_eq!(held.len(), 2, "two deliveries left pending");
    bus.nack("s", &held[1].ack_id, Default::default())
        .await
        .expect("nack");
    assert_eq!(
        seek_and_drain(&bus, "s", StartAt::Latest).await,
        Vec::<String>::new(),
        "skip everything"
    );
    expect_err!(
        bus.ack("s", &held[0].ack_id).await,
        BusError::UnknownDelivery(_),
        "a delivery dropped by the seek"
    );
    h.advance(&env, 120_000).await;
    fetch_none(
        &bus,
        "s",
        "the seek dropped the pending delivery and the retry",
    )
    .await;

    publish(&bus, "orders", event("e4")).await;
    let d = fetch_one(&bus, "s", "an event published after the seek").await;
    assert_eq!(d.event.event.id, "e4");
    ack(&bus, "s", &d).await;
}
