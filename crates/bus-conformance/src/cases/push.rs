//! Waiting fetches and push delivery.

use std::future::Future;
use std::time::Duration;

use eddy_bus::{Bus, BusError, DeliveryStream, FetchOptions, PushDelivery, PushOptions};
use futures_util::{FutureExt, StreamExt};

use crate::Harness;
use crate::support::*;

/// A guard against a hang: the future must finish within a minute (not a
/// timing assertion; a conforming bus finishes at once).
async fn settles<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still pending after a minute"))
}

async fn next_delivery(stream: &mut DeliveryStream) -> PushDelivery {
    settles("the push stream", stream.next())
        .await
        .expect("the stream goes on")
        .expect("a delivery")
}

pub async fn fetch_waits_for_a_publish<H: Harness>(h: &H) {
    // Proves: a fetch with `wait_ms` that finds nothing waits, and returns
    // the event published while it waits.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let options = FetchOptions {
                max: 10,
                wait_ms: 10_000,
            };
            bus.fetch("s", options).await
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    publish(&bus, "orders", event("e0")).await;
    let got = settles("the waiting fetch", waiting)
        .await
        .expect("the fetch task")
        .expect("the waiting fetch");
    assert_eq!(ids(&got), ["e0"], "the waiting fetch returns the new event");
}

pub async fn push_stream_respects_credit<H: Harness>(h: &H) {
    // Proves: a push stream holds at most `credit` deliveries at once: with
    // 2 credits and 5 events it yields 2 and nothing more while both are
    // held (the other 3 stay available to fetch); settling and dropping
    // one lets it yield another. A credit of 0 is refused.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    publish_ids(&bus, "orders", &["e0", "e1", "e2", "e3", "e4"]).await;

    let mut refused = bus.subscribe(
        "s",
        PushOptions {
            credit: 0,
            wait_ms: 200,
        },
    );
    let first = settles("a stream with no credit", refused.next()).await;
    assert!(
        matches!(first, Some(Err(BusError::InvalidArgument { .. }))),
        "credit 0: {first:?}"
    );

    let mut stream = bus.subscribe(
        "s",
        PushOptions {
            credit: 2,
            wait_ms: 200,
        },
    );
    let d1 = next_delivery(&mut stream).await;
    let d2 = next_delivery(&mut stream).await;
    assert!(
        stream.next().now_or_never().is_none(),
        "a third delivery while both credits are held"
    );

    let rest = fetch(&bus, "s", 10).await;
    assert_eq!(rest.len(), 3, "the stream took only 2: {:?}", ids(&rest));
    let mut seen = ids(&rest);
    seen.extend([&d1, &d2].map(|d| d.delivery.event.event.id.clone()));
    seen.sort();
    assert_eq!(
        seen,
        ["e0", "e1", "e2", "e3", "e4"],
        "the stream and the fetch got different events"
    );

    publish(&bus, "orders", event("e5")).await;
    bus.ack("s", &d1.delivery.ack_id).await.expect("ack d1");
    drop(d1);
    let d3 = next_delivery(&mut stream).await;
    assert_eq!(
        d3.delivery.event.event.id, "e5",
        "a freed credit takes the next event"
    );
    drop((d2, d3));
}
