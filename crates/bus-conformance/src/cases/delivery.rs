//! Delivery: leases, acks, nacks and retries, extending, terminating,
//! unknown ids and `max_ack_pending`.

use eddy_bus::{
    AckId, Backoff, Bus, BusError, DeadLetterSelection, DeadReason, Delivery, FETCH_MAX,
    FetchOptions, NackOptions, Offset, Partition, ReadFrom, RedriveTarget, RetryPolicy,
    SubscriptionConfig,
};

use crate::Harness;
use crate::support::*;

/// An ack id like `d`'s that the subscription never handed out.
fn forged(d: &Delivery) -> AckId {
    AckId {
        seq: d.ack_id.seq + 1000,
        ..d.ack_id.clone()
    }
}

fn nack_error(error: &str) -> NackOptions {
    NackOptions {
        delay_ms: None,
        error: Some(error.to_string()),
    }
}

fn nack_delay(delay_ms: u64) -> NackOptions {
    NackOptions {
        delay_ms: Some(delay_ms),
        error: None,
    }
}

pub async fn fetch_leases_and_ack<H: Harness>(h: &H) {
    // Proves: a fetch hands out a first attempt with a lease of
    // `ack_wait_ms`; a leased event is not handed out again; an ack
    // settles it for good and a second ack is refused; `max` must be
    // 1..=FETCH_MAX.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders").ack_wait_ms(5000)).await;
    let placed = publish(&bus, "orders", event("e0")).await;

    let before = h.now_ms(&env);
    let d = fetch_one(&bus, "s", "the first fetch").await;
    let after = h.now_ms(&env);
    assert_eq!(d.attempt, 1, "a first delivery is attempt 1");
    assert_within(
        d.lease_deadline_ms,
        before + 5000,
        after + 5000,
        "lease = now + ack_wait_ms",
    );
    assert_eq!(d.event.event.id, "e0");
    assert_eq!(d.event.topic, "orders");
    assert_eq!(
        (d.event.partition, d.event.offset),
        (placed.partition, placed.offset)
    );
    assert_eq!(
        (d.ack_id.topic.as_str(), d.ack_id.partition, d.ack_id.offset),
        ("orders", placed.partition, placed.offset),
        "the ack id names the event"
    );

    fetch_none(&bus, "s", "while the event is leased").await;
    advance_to(h, &env, d.lease_deadline_ms - 1).await;
    fetch_none(&bus, "s", "1 ms before the lease ends").await;
    ack(&bus, "s", &d).await;
    expect_err!(
        bus.ack("s", &d.ack_id).await,
        BusError::AlreadyAcked(_),
        "a second ack"
    );
    h.advance(&env, 120_000).await;
    fetch_none(&bus, "s", "an acked event is never redelivered").await;

    for max in [0, FETCH_MAX + 1] {
        expect_err!(
            bus.fetch("s", FetchOptions::now(max)).await,
            BusError::InvalidArgument { .. },
            "fetch max {max}"
        );
    }
    let none = bus
        .fetch("s", FetchOptions::now(FETCH_MAX))
        .await
        .expect("fetch FETCH_MAX");
    assert!(none.is_empty(), "nothing is left: {none:?}");
}

pub async fn lease_expiry_is_a_failed_attempt<H: Harness>(h: &H) {
    // Proves: once the lease runs out the delivery can no longer be acked
    // (`LeaseExpired`), and the event is redelivered as attempt 2 at
    // deadline + backoff(1) = deadline + 1 s, not a millisecond earlier.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders").ack_wait_ms(5000)).await;
    publish(&bus, "orders", event("e0")).await;
    let first = fetch_one(&bus, "s", "the first delivery").await;
    let deadline = first.lease_deadline_ms;

    advance_to(h, &env, deadline).await;
    expect_err!(
        bus.ack("s", &first.ack_id).await,
        BusError::LeaseExpired(_),
        "an ack at the lease deadline"
    );
    fetch_none(&bus, "s", "at the deadline (the retry waits its backoff)").await;
    advance_to(h, &env, deadline + 999).await;
    fetch_none(&bus, "s", "1 ms before deadline + backoff").await;
    advance_to(h, &env, deadline + 1000).await;
    let second = fetch_one(&bus, "s", "at deadline + backoff").await;
    assert_eq!(second.attempt, 2, "the redelivery is attempt 2");
    assert_eq!(second.event, first.event, "the same event");
    assert_ne!(
        second.ack_id, first.ack_id,
        "a redelivery gets a new ack id"
    );

    expect_err!(
        bus.ack("s", &first.ack_id).await,
        BusError::LeaseExpired(_) | BusError::UnknownDelivery(_),
        "the expired delivery's id after the redelivery"
    );
    ack(&bus, "s", &second).await;
    expect_err!(
        bus.ack("s", &second.ack_id).await,
        BusError::AlreadyAcked(_),
        "ack twice"
    );
    let stats = sub_stats(&bus, "s").await;
    assert_eq!(
        (stats.delivered, stats.redelivered, stats.acked),
        (2, 1, 1),
        "{stats:?}"
    );
}

pub async fn nack_redelivers_after_backoff_or_delay<H: Harness>(h: &H) {
    // Proves: a nack without a delay redelivers after the retry policy's
    // backoff (1 s after attempt 1), a nack with `delay_ms` after exactly
    // that delay, each time as the next attempt.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    publish(&bus, "orders", event("e0")).await;

    let first = fetch_one(&bus, "s", "attempt 1").await;
    let t1 = h.now_ms(&env);
    bus.nack("s", &first.ack_id, nack_error("busy"))
        .await
        .expect("nack");
    fetch_none(&bus, "s", "right after the nack").await;
    advance_to(h, &env, t1 + 999).await;
    fetch_none(&bus, "s", "1 ms before the 1 s backoff").await;
    advance_to(h, &env, t1 + 1000).await;
    let second = fetch_one(&bus, "s", "after the backoff").await;
    assert_eq!(second.attempt, 2);

    let t2 = h.now_ms(&env);
    bus.nack("s", &second.ack_id, nack_delay(2500))
        .await
        .expect("nack with a delay");
    advance_to(h, &env, t2 + 2499).await;
    fetch_none(&bus, "s", "1 ms before the nack's delay").await;
    advance_to(h, &env, t2 + 2500).await;
    let third = fetch_one(&bus, "s", "after the nack's delay").await;
    assert_eq!(third.attempt, 3);
    assert_eq!(third.event.event.id, "e0");
    ack(&bus, "s", &third).await;
}

pub async fn retry_schedule_then_dead_letter_and_redrive<H: Harness>(h: &H) {
    // Proves (the seed's retry scenario): with 4 deliveries and quadratic
    // 1 s backoff, a handler that always nacks sees attempts 1..4 at 0, 1,
    // 5 and 14 s; the 4th nack dead-letters the event with its attempts,
    // last error, reason and original place, raises an alert on
    // `$sys.alerts` and counts in the stats; a redrive brings it back as
    // attempt 1.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    let retry = RetryPolicy {
        max_deliveries: 4,
        backoff: Backoff::Quadratic { base_ms: 1000 },
        cap_ms: None,
        jitter_pct: 0,
    };
    create_sub(&bus, "payments", earliest("orders").retry(retry)).await;
    let t0 = h.now_ms(&env);
    let original = keyed("order-1", "customer-7");
    let placed = publish(&bus, "orders", original.clone()).await;

    let mut last = None;
    for (i, due_s) in [0i64, 1, 5, 14].into_iter().enumerate() {
        let attempt = i as u32 + 1;
        let due = t0 + due_s * 1000;
        if due_s > 0 {
            advance_to(h, &env, due - 1).await;
            fetch_none(&bus, "payments", &format!("1 ms before attempt {attempt}")).await;
        }
        advance_to(h, &env, due).await;
        let d = fetch_one(&bus, "payments", &format!("attempt {attempt} at {due_s} s")).await;
        assert_eq!(d.attempt, attempt, "the attempt number at {due_s} s");
        assert_eq!(d.event.event.id, "order-1");
        let error = format!("attempt {attempt} failed");
        bus.nack("payments", &d.ack_id, nack_error(&error))
            .await
            .expect("nack");
        last = Some(d);
    }
    let last = last.expect("four deliveries");
    let dead_at = h.now_ms(&env);
    expect_err!(
        bus.ack("payments", &last.ack_id).await,
        BusError::DeadLettered(_),
        "an ack after the last nack"
    );

    let dead = bus
        .dead_letters("payments", 0, 10)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1, "the event is dead-lettered: {dead:?}");
    let dl = &dead[0];
    assert_eq!(dl.subscription, "payments");
    assert_eq!(dl.attempts, 4);
    assert_eq!(
        dl.last_error.as_deref(),
        Some("attempt 4 failed"),
        "the last nack's error"
    );
    assert_eq!(dl.reason, DeadReason::MaxDeliveries);
    assert_eq!(dl.event.topic, "orders", "the original topic");
    assert_eq!(
        (dl.event.partition, dl.event.offset),
        (placed.partition, placed.offset)
    );
    assert_eq!(dl.event.event, original, "the original event");
    assert_within(dl.dead_at_ms, t0 + 14_000, dead_at, "when it died");
    assert_eq!(dl.redrives, 0, "never redriven before");

    let alerts = bus
        .read(
            eddy_bus::name::ALERTS_TOPIC,
            Partition(0),
            ReadFrom::Beginning,
            100,
        )
        .await
        .expect("read the alerts topic");
    let alerts: Vec<_> = alerts
        .events
        .iter()
        .filter(|e| e.event.ty == "eddy.deadlettered")
        .collect();
    assert_eq!(
        alerts.len(),
        1,
        "one alert per dead-lettered event: {alerts:?}"
    );
    assert_eq!(
        alerts[0].event.subject.as_deref(),
        Some("payments"),
        "the alert names the subscription"
    );

    let stats = sub_stats(&bus, "payments").await;
    assert_eq!(
        (stats.dead_lettered, stats.dead_letters),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!((stats.delivered, stats.redelivered), (4, 3), "{stats:?}");
    assert_eq!(
        (stats.lag, stats.in_flight, stats.waiting),
        (0, 0, 0),
        "{stats:?}"
    );
    h.advance(&env, 120_000).await;
    fetch_none(&bus, "payments", "a dead-lettered event is not redelivered").await;

    let n = bus
        .redrive(
            "payments",
            DeadLetterSelection::All,
            RedriveTarget::Subscription,
        )
        .await
        .expect("redrive");
    assert_eq!(n, 1, "one dead letter redriven");
    let dead = bus
        .dead_letters("payments", 0, 10)
        .await
        .expect("dead letters");
    assert!(
        dead.is_empty(),
        "the queue is empty after the redrive: {dead:?}"
    );
    assert_eq!(sub_stats(&bus, "payments").await.dead_letters, 0);
    let again = fetch_one(&bus, "payments", "the redriven event").await;
    assert_eq!(
        again.attempt, 1,
        "a redriven event starts its attempts afresh"
    );
    assert_eq!(again.event.event, original, "the same event");
    ack(&bus, "payments", &again).await;
    fetch_none(&bus, "payments", "after acking the redriven event").await;
}

pub async fn extend_moves_the_deadline<H: Harness>(h: &H) {
    // Proves: `extend` sets the lease to now + ack_wait_ms and returns it;
    // the event is not redelivered at the old deadline and can be acked
    // until the new one.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders").ack_wait_ms(5000)).await;
    publish(&bus, "orders", event("e0")).await;
    let d = fetch_one(&bus, "s", "the delivery").await;

    h.advance(&env, 3000).await;
    let before = h.now_ms(&env);
    let deadline = bus.extend("s", &d.ack_id).await.expect("extend");
    let after = h.now_ms(&env);
    assert_within(
        deadline,
        before + 5000,
        after + 5000,
        "new deadline = now + ack_wait_ms",
    );
    assert!(deadline > d.lease_deadline_ms, "the lease got longer");

    advance_to(h, &env, d.lease_deadline_ms + 1000).await;
    fetch_none(&bus, "s", "after the old deadline (+ backoff)").await;
    advance_to(h, &env, deadline - 1).await;
    fetch_none(&bus, "s", "1 ms before the new deadline").await;
    ack(&bus, "s", &d).await;
    h.advance(&env, 60_000).await;
    fetch_none(&bus, "s", "after the ack").await;
}

pub async fn terminate_dead_letters_at_once<H: Harness>(h: &H) {
    // Proves: `terminate` sends the event straight to the dead-letter
    // queue on its first attempt; its delivery can then no longer be
    // acked, nacked, extended or terminated (`DeadLettered`); other
    // deliveries are unaffected and it is never redelivered; after a
    // redrive and a second death its dead letter counts the redrive.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    publish_ids(&bus, "orders", &["bad", "good"]).await;
    let ds = fetch(&bus, "s", 10).await;
    assert_eq!(sorted_ids(&ds), ["bad", "good"]);
    let bad = ds.iter().find(|d| d.event.event.id == "bad").expect("bad");
    let good = ds
        .iter()
        .find(|d| d.event.event.id == "good")
        .expect("good");

    bus.terminate("s", &bad.ack_id, "malformed payload")
        .await
        .expect("terminate");
    let id = &bad.ack_id;
    expect_err!(
        bus.ack("s", id).await,
        BusError::DeadLettered(_),
        "ack a terminated delivery"
    );
    expect_err!(
        bus.nack("s", id, NackOptions::default()).await,
        BusError::DeadLettered(_),
        "nack it"
    );
    expect_err!(
        bus.extend("s", id).await,
        BusError::DeadLettered(_),
        "extend it"
    );
    expect_err!(
        bus.terminate("s", id, "again").await,
        BusError::DeadLettered(_),
        "terminate it again"
    );

    let dead = bus.dead_letters("s", 0, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].event.event.id, "bad");
    assert_eq!(dead[0].reason, DeadReason::Terminated);
    assert_eq!(dead[0].attempts, 1, "terminated on its first attempt");
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("malformed payload"),
        "the reason given"
    );
    let stats = sub_stats(&bus, "s").await;
    assert_eq!(
        (stats.dead_lettered, stats.dead_letters),
        (1, 1),
        "{stats:?}"
    );

    ack(&bus, "s", good).await;
    h.advance(&env, 120_000).await;
    fetch_none(&bus, "s", "a terminated event is not redelivered").await;

    let all = DeadLetterSelection::All;
    bus.redrive("s", all, RedriveTarget::Subscription)
        .await
        .expect("redrive");
    let again = fetch_one(&bus, "s", "the redriven event").await;
    bus.terminate("s", &again.ack_id, "still malformed")
        .await
        .expect("terminate again");
    let dead = bus.dead_letters("s", 0, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].attempts, dead[0].redrives),
        (1, 1),
        "a redriven event starts its attempts afresh and counts its redrive"
    );
}

pub async fn unknown_ack_id_changes_nothing<H: Harness>(h: &H) {
    // Proves: ack, nack, extend and terminate with an id the subscription
    // never handed out get `UnknownDelivery` and change nothing: the real
    // delivery is still pending and can be acked with its own id.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    publish(&bus, "orders", event("e0")).await;
    let d = fetch_one(&bus, "s", "the delivery").await;

    let beyond = AckId {
        offset: Offset(99),
        ..d.ack_id.clone()
    };
    for id in [forged(&d), beyond] {
        expect_err!(
            bus.ack("s", &id).await,
            BusError::UnknownDelivery(_),
            "ack {id}"
        );
        expect_err!(
            bus.nack("s", &id, NackOptions::default()).await,
            BusError::UnknownDelivery(_),
            "nack {id}"
        );
        expect_err!(
            bus.extend("s", &id).await,
            BusError::UnknownDelivery(_),
            "extend {id}"
        );
        expect_err!(
            bus.terminate("s", &id, "x").await,
            BusError::UnknownDelivery(_),
            "terminate {id}"
        );
    }

    let stats = sub_stats(&bus, "s").await;
    assert_eq!(
        (
            stats.in_flight,
            stats.acked,
            stats.waiting,
            stats.dead_letters
        ),
        (1, 0, 0, 0),
        "the refused calls changed nothing: {stats:?}"
    );
    fetch_none(&bus, "s", "the event is still leased").await;
    ack(&bus, "s", &d).await;
}

pub async fn ack_all_reports_each_id<H: Harness>(h: &H) {
    // Proves: `ack_all` settles many deliveries with one result per id, in
    // order; a bad id fails alone and does not stop the others.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", earliest("orders")).await;
    publish_ids(&bus, "orders", &["e0", "e1", "e2"]).await;
    let ds = fetch(&bus, "s", 10).await;
    assert_eq!(ds.len(), 3, "three deliveries: {:?}", ids(&ds));

    let batch = [ds[0].ack_id.clone(), forged(&ds[0]), ds[1].ack_id.clone()];
    let results = bus.ack_all("s", &batch).await.expect("ack_all");
    assert_eq!(results.len(), 3, "one result per id: {results:?}");
    assert!(results[0].is_ok(), "the first id: {:?}", results[0]);
    assert!(
        matches!(results[1], Err(BusError::UnknownDelivery(_))),
        "the forged id: {:?}",
        results[1]
    );
    assert!(
        results[2].is_ok(),
        "the id after the bad one: {:?}",
        results[2]
    );

    expect_err!(
        bus.ack("s", &ds[0].ack_id).await,
        BusError::AlreadyAcked(_),
        "ds[0] again"
    );
    ack(&bus, "s", &ds[2]).await;
    let stats = sub_stats(&bus, "s").await;
    assert_eq!(
        (stats.acked, stats.lag, stats.in_flight),
        (3, 0, 0),
        "{stats:?}"
    );
    h.advance(&env, 120_000).await;
    fetch_none(&bus, "s", "everything was acked").await;
}

pub async fn max_ack_pending_limits_deliveries<H: Harness>(h: &H) {
    // Proves: with max_ack_pending = 2 a fetch hands out at most 2 events
    // until some are settled; an event waiting for a retry still counts as
    // pending; due retries and new events share the room.
    let (bus, env) = h.open().await;
    create_topic(&bus, "jobs", 1).await;
    let config = SubscriptionConfig {
        max_ack_pending: 2,
        ..earliest("jobs")
    };
    create_sub(&bus, "s", config).await;
    publish_ids(&bus, "jobs", &["j0", "j1", "j2", "j3", "j4"]).await;

    let a = fetch(&bus, "s", 10).await;
    assert_eq!(
        a.len(),
        2,
        "a fetch of 10 gets max_ack_pending: {:?}",
        ids(&a)
    );
    fetch_none(&bus, "s", "with 2 pending").await;
    ack(&bus, "s", &a[0]).await;
    let b = fetch(&bus, "s", 10).await;
    assert_eq!(b.len(), 1, "one ack makes room for one: {:?}", ids(&b));
    fetch_none(&bus, "s", "with 2 pending again").await;

    bus.nack("s", &a[1].ack_id, nack_delay(10_000))
        .await
        .expect("nack");
    fetch_none(&bus, "s", "a waiting retry still counts as pending").await;
    ack(&bus, "s", &b[0]).await;
    let c = fetch(&bus, "s", 10).await;
    assert_eq!(
        c.len(),
        1,
        "room for one beside the waiting retry: {:?}",
        ids(&c)
    );
    ack(&bus, "s", &c[0]).await;

    h.advance(&env, 10_000).await;
    let d = fetch(&bus, "s", 10).await;
    assert_eq!(
        d.len(),
        2,
        "the due retry and the last new event: {:?}",
        ids(&d)
    );
    let retried = d.iter().find(|x| x.event.event.id == a[1].event.event.id);
    assert_eq!(
        retried.map(|x| x.attempt),
        Some(2),
        "the retry is attempt 2: {d:?}"
    );
    ack_each(&bus, "s", &d).await;
    fetch_none(&bus, "s", "all five settled").await;

    let mut all: Vec<Delivery> = [a, b, c].concat();
    all.push(
        d.into_iter()
            .find(|x| x.attempt == 1)
            .expect("the new event"),
    );
    assert_eq!(
        sorted_ids(&all),
        ["j0", "j1", "j2", "j3", "j4"],
        "each event once"
    );
}
