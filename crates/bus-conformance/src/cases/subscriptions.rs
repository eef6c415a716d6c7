//! Subscriptions: lifecycle, defaults, errors, filters, start positions,
//! fan-out and consumers sharing one subscription.

use std::collections::BTreeSet;

use eddy_bus::{
    AckId, Backoff, Bus, BusError, DeadLetterSelection, DeliveryMode, FetchOptions, NackOptions,
    Offset, RedriveTarget, RetryPolicy, StartAt, SubscriptionConfig,
};

use crate::Harness;
use crate::support::*;

async fn sub_names<B: Bus>(bus: &B) -> Vec<String> {
    let mut names: Vec<String> = bus
        .list_subscriptions()
        .await
        .expect("list subscriptions")
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    names
}

/// Asserts that every id was delivered exactly once over all consumers.
fn assert_disjoint_cover(per_consumer: &[Vec<String>], all: &[String]) {
    let mut seen = BTreeSet::new();
    for (c, ids) in per_consumer.iter().enumerate() {
        for id in ids {
            assert!(
                seen.insert(id.clone()),
                "{id} went to two consumers (again to #{c})"
            );
        }
    }
    let expected: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(seen, expected, "together the consumers got every event");
}

pub async fn subscription_lifecycle_and_defaults<H: Harness>(h: &H) {
    // Proves: `SubscriptionConfig::new` has the documented defaults; a
    // subscription is described with its settings as given, the topics it
    // reads and its dead-letter topic; it is listed; once deleted it is
    // gone.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders.placed", 1).await;
    let defaults = SubscriptionConfig::new("orders.placed");
    assert_eq!(defaults.start, StartAt::Latest);
    assert_eq!(defaults.mode, DeliveryMode::Shared);
    assert_eq!(defaults.ack_wait_ms, 30_000);
    assert_eq!(
        defaults.retry,
        RetryPolicy {
            max_deliveries: 5,
            backoff: Backoff::Quadratic { base_ms: 1000 },
            cap_ms: None,
            jitter_pct: 0,
        }
    );
    assert_eq!(defaults.max_ack_pending, 10_000);

    let info = bus
        .create_subscription("inventory", defaults.clone())
        .await
        .expect("create inventory");
    assert_eq!(info.name, "inventory");
    assert_eq!(info.config, defaults, "settings as given");
    assert_eq!(info.topics, ["orders.placed"], "the topic it reads");
    assert_eq!(
        info.dead_letter_topic,
        eddy_bus::name::dead_letter_topic("inventory")
    );
    assert_eq!(
        bus.describe_subscription("inventory")
            .await
            .expect("describe"),
        info
    );

    let custom = SubscriptionConfig {
        max_ack_pending: 7,
        ..SubscriptionConfig::new("orders.*")
            .start_at(StartAt::Earliest)
            .mode(DeliveryMode::Ordered)
            .ack_wait_ms(5_000)
            .retry(RetryPolicy {
                max_deliveries: 3,
                backoff: Backoff::List {
                    delays_ms: vec![10, 20],
                },
                cap_ms: Some(15),
                jitter_pct: 10,
            })
    };
    create_sub(&bus, "payment", custom.clone()).await;
    let described = bus
        .describe_subscription("payment")
        .await
        .expect("describe payment");
    assert_eq!(described.config, custom, "every setting round-trips");
    assert_eq!(sub_names(&bus).await, ["inventory", "payment"]);

    bus.delete_subscription("inventory")
        .await
        .expect("delete inventory");
    expect_err!(
        bus.describe_subscription("inventory").await,
        BusError::SubscriptionNotFound(_),
        "describe a deleted subscription"
    );
    expect_err!(
        bus.fetch("inventory", FetchOptions::now(1)).await,
        BusError::SubscriptionNotFound(_),
        "fetch from a deleted subscription"
    );
    assert_eq!(
        sub_names(&bus).await,
        ["payment"],
        "the deleted one is not listed"
    );
}

pub async fn subscription_errors<H: Harness>(h: &H) {
    // Proves: bad names, patterns and settings, existing and unknown
    // subscriptions get their typed errors on every operation, and a
    // refused call changes nothing.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    create_sub(&bus, "s", SubscriptionConfig::new("orders")).await;

    expect_err!(
        bus.create_subscription("s", SubscriptionConfig::new("other.*"))
            .await,
        BusError::SubscriptionExists(_),
        "create an existing subscription"
    );
    let info = bus.describe_subscription("s").await.expect("describe s");
    assert_eq!(
        info.config.filter, "orders",
        "the refused create left it as it was"
    );

    for bad in ["a.b", "", "a b", "$x"] {
        expect_err!(
            bus.create_subscription(bad, SubscriptionConfig::new("orders"))
                .await,
            BusError::InvalidName { .. },
            "subscription name {bad:?}"
        );
    }
    for bad in ["orders.>.x", "", "a..b", "orders.*x"] {
        expect_err!(
            bus.create_subscription("p", SubscriptionConfig::new(bad))
                .await,
            BusError::InvalidPattern { .. },
            "filter {bad:?}"
        );
    }
    let mut no_pending = SubscriptionConfig::new("orders");
    no_pending.max_ack_pending = 0;
    let mut no_deliveries = SubscriptionConfig::new("orders");
    no_deliveries.retry.max_deliveries = 0;
    for bad in [
        SubscriptionConfig::new("orders").ack_wait_ms(0),
        no_pending,
        no_deliveries,
    ] {
        expect_err!(
            bus.create_subscription("p", bad.clone()).await,
            BusError::InvalidArgument { .. },
            "settings {bad:?}"
        );
    }
    assert_eq!(
        sub_names(&bus).await,
        ["s"],
        "no refused call created a subscription"
    );

    let id: AckId = "orders/0/0/1".parse().expect("an ack id");
    expect_err!(
        bus.describe_subscription("nope").await,
        BusError::SubscriptionNotFound(_),
        "describe on an unknown subscription"
    );
    expect_err!(
        bus.delete_subscription("nope").await,
        BusError::SubscriptionNotFound(_),
        "delete on an unknown subscription"
    );
    expect_err!(
        bus.fetch("nope", FetchOptions::now(1)).await,
        BusError::SubscriptionNotFound(_),
        "fetch on an unknown subscription"
    );
    expect_err!(
        bus.ack("nope", &id).await,
        BusError::SubscriptionNotFound(_),
        "ack on an unknown subscription"
    );
    expect_err!(
        bus.nack("nope", &id, NackOptions::default()).await,
        BusError::SubscriptionNotFound(_),
        "nack on an unknown subscription"
    );
    expect_err!(
        bus.extend("nope", &id).await,
        BusError::SubscriptionNotFound(_),
        "extend on an unknown subscription"
    );
    expect_err!(
        bus.terminate("nope", &id, "x").await,
        BusError::SubscriptionNotFound(_),
        "terminate on an unknown subscription"
    );
    expect_err!(
        bus.seek("nope", StartAt::Earliest).await,
        BusError::SubscriptionNotFound(_),
        "seek on an unknown subscription"
    );
    expect_err!(
        bus.subscription_stats("nope").await,
        BusError::SubscriptionNotFound(_),
        "stats on an unknown subscription"
    );
    expect_err!(
        bus.dead_letters("nope", 0, 10).await,
        BusError::SubscriptionNotFound(_),
        "dead_letters on an unknown subscription"
    );
    expect_err!(
        bus.dead_letter("nope", 0).await,
        BusError::SubscriptionNotFound(_),
        "dead_letter on an unknown subscription"
    );
    expect_err!(
        bus.redrive(
            "nope",
            DeadLetterSelection::All,
            RedriveTarget::Subscription
        )
        .await,
        BusError::SubscriptionNotFound(_),
        "redrive on an unknown subscription"
    );
    expect_err!(
        bus.purge("nope", DeadLetterSelection::All).await,
        BusError::SubscriptionNotFound(_),
        "purge on an unknown subscription"
    );
}

pub async fn subscription_patterns_select_topics<H: Harness>(h: &H) {
    // Proves: a filter selects topics by name or pattern (`*` one token,
    // `>` the rest); a matching topic created after the subscription is
    // read from its beginning whatever the start position; other topics
    // are not read.
    let (bus, _env) = h.open().await;
    for topic in [
        "orders.placed",
        "orders.paid",
        "orders.placed.eu",
        "payments.done",
    ] {
        create_topic(&bus, topic, 2).await;
    }
    publish(&bus, "orders.placed", event("old-placed")).await;
    create_sub(&bus, "star", earliest("orders.*")).await;
    create_sub(&bus, "rest", earliest("orders.>")).await;
    create_sub(&bus, "exact", earliest("orders.placed")).await;
    create_sub(&bus, "late", SubscriptionConfig::new("orders.*")).await;

    publish(&bus, "orders.placed", event("placed")).await;
    publish(&bus, "orders.paid", event("paid")).await;
    publish(&bus, "orders.placed.eu", event("placed-eu")).await;
    publish(&bus, "payments.done", event("done")).await;
    create_topic(&bus, "orders.shipped", 2).await;
    publish(&bus, "orders.shipped", event("shipped-1")).await;
    publish(&bus, "orders.shipped", event("shipped-2")).await;

    let mut topics = bus
        .describe_subscription("star")
        .await
        .expect("describe star")
        .topics;
    topics.sort();
    assert_eq!(
        topics,
        ["orders.paid", "orders.placed", "orders.shipped"],
        "topics `orders.*` reads"
    );

    let cases: [(&str, &[&str]); 4] = [
        (
            "star",
            &["old-placed", "paid", "placed", "shipped-1", "shipped-2"],
        ),
        (
            "rest",
            &[
                "old-placed",
                "paid",
                "placed",
                "placed-eu",
                "shipped-1",
                "shipped-2",
            ],
        ),
        ("exact", &["old-placed", "placed"]),
        ("late", &["paid", "placed", "shipped-1", "shipped-2"]),
    ];
    for (sub, expected) in cases {
        assert_eq!(
            sorted_ids(&drain(&bus, sub).await),
            expected,
            "what {sub} receives"
        );
    }
}

pub async fn subscription_start_positions<H: Harness>(h: &H) {
    // Proves: a new subscription starts in existing topics at the earliest
    // event, after the latest, at an offset (clamped to what is held) or
    // at the first event appended at or after a time.
    let (bus, env) = h.open().await;
    create_topic(&bus, "orders", 1).await;
    let t0 = h.now_ms(&env);
    publish_spaced(
        h,
        &env,
        &bus,
        "orders",
        &["e0", "e1", "e2", "e3", "e4"],
        1000,
    )
    .await;
    let starts = [
        ("earliest", StartAt::Earliest),
        ("latest", StartAt::Latest),
        ("offset", StartAt::Offset(Offset(2))),
        ("time", StartAt::Time(t0 + 3000)),
        ("beyond", StartAt::Offset(Offset(100))),
    ];
    for (name, start) in starts {
        create_sub(
            &bus,
            name,
            SubscriptionConfig::new("orders").start_at(start),
        )
        .await;
    }
    publish(&bus, "orders", event("e5")).await;

    let expected: [(&str, &[&str]); 5] = [
        ("earliest", &["e0", "e1", "e2", "e3", "e4", "e5"]),
        ("latest", &["e5"]),
        ("offset", &["e2", "e3", "e4", "e5"]),
        ("time", &["e3", "e4", "e5"]),
        ("beyond", &["e5"]),
    ];
    for (sub, ids) in expected {
        assert_eq!(
            sorted_ids(&drain(&bus, sub).await),
            ids,
            "subscription starting at {sub}"
        );
    }
}

pub async fn fan_out_to_every_subscription<H: Harness>(h: &H) {
    // Proves: every subscription receives every event (the seed's
    // OrderPlaced reaching inventory, payment, notification and
    // analytics), and settling it in one does not settle it in another.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "orders.placed", 2).await;
    let subs = ["inventory", "payment", "notification", "analytics"];
    for (i, sub) in subs.iter().enumerate() {
        let filter = if i % 2 == 0 {
            "orders.placed"
        } else {
            "orders.*"
        };
        create_sub(&bus, sub, SubscriptionConfig::new(filter)).await;
    }
    publish(
        &bus,
        "orders.placed",
        keyed("order-1", "customer-7").with_subject("order-1"),
    )
    .await;

    for sub in subs {
        let d = fetch_one(&bus, sub, sub).await;
        assert_eq!(
            d.event.event.id, "order-1",
            "{sub} receives the OrderPlaced"
        );
        assert_eq!(d.attempt, 1, "{sub}: a first delivery");
        ack(&bus, sub, &d).await;
        fetch_none(&bus, sub, "after the ack").await;
    }
    for sub in subs {
        let stats = sub_stats(&bus, sub).await;
        assert_eq!((stats.delivered, stats.acked), (1, 1), "{sub}: {stats:?}");
    }
}

pub async fn shared_consumers_split_the_events<H: Harness>(h: &H) {
    // Proves: consumers of one subscription share its events: taking turns
    // or fetching concurrently, they receive disjoint sets whose union is
    // every event.
    let (bus, _env) = h.open().await;
    create_topic(&bus, "jobs", 3).await;
    create_sub(&bus, "workers", earliest("jobs")).await;

    let first: Vec<String> = (0..30).map(|i| format!("job-{i:02}")).collect();
    for id in &first {
        publish(&bus, "jobs", keyed(id, id)).await;
    }
    let mut taken = vec![Vec::new(); 3];
    loop {
        let mut round = 0;
        for consumer in taken.iter_mut() {
            let got = fetch(&bus, "workers", 4).await;
            ack_each(&bus, "workers", &got).await;
            round += got.len();
            consumer.extend(ids(&got));
        }
        if round == 0 {
            break;
        }
    }
    assert_disjoint_cover(&taken, &first);

    let second: Vec<String> = (30..60).map(|i| format!("job-{i:02}")).collect();
    for id in &second {
        publish(&bus, "jobs", keyed(id, id)).await;
    }
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = fetch(&bus, "workers", 4).await;
                    if got.is_empty() {
                        return mine;
                    }
                    ack_each(&bus, "workers", &got).await;
                    mine.extend(ids(&got));
                }
            })
        })
        .collect();
    let mut taken = Vec::new();
    for task in tasks {
        taken.push(task.await.expect("a consumer task"));
    }
    assert_disjoint_cover(&taken, &second);
}

pub async fn point_to_point_consumer_lost_mid_lease<H: Harness>(h: &H) {
    // Proves: when one of three consumers disappears holding leases, none
    // of its events is lost: once the lease and the retry backoff have
    // passed they go to the others (as second attempts), and every event
    // is acked exactly once overall.
    let (bus, env) = h.open().await;
    create_topic(&bus, "jobs", 2).await;
    create_sub(&bus, "workers", earliest("jobs").ack_wait_ms(5_000)).await;
    let all: Vec<String> = (0..24).map(|i| format!("job-{i:02}")).collect();
    for id in &all {
        publish(&bus, "jobs", event(id)).await;
    }
    let lost = fetch(&bus, "workers", 5).await;
    assert_eq!(lost.len(), 5, "the doomed consumer takes five");
    // The other two drain the rest, taking turns.
    let mut taken = vec![Vec::new(); 2];
    loop {
        let mut round = 0;
        for consumer in taken.iter_mut() {
            let got = fetch(&bus, "workers", 3).await;
            ack_each(&bus, "workers", &got).await;
            round += got.len();
            consumer.extend(ids(&got));
        }
        if round == 0 {
            break;
        }
    }
    assert_eq!(
        taken.iter().map(Vec::len).sum::<usize>(),
        all.len() - lost.len(),
        "the leased events are not handed out while their lease runs"
    );
    // The lease (5 s) runs out, then the default backoff's first wait (1 s).
    h.advance(&env, 5_000 + 1_000).await;
    let mut redelivered = Vec::new();
    for consumer in taken.iter_mut() {
        let got = fetch(&bus, "workers", 3).await;
        assert!(
            got.iter().all(|d| d.attempt == 2),
            "a lost lease is a failed attempt"
        );
        ack_each(&bus, "workers", &got).await;
        redelivered.extend(ids(&got));
        consumer.extend(ids(&got));
    }
    let mut expected = ids(&lost);
    expected.sort();
    redelivered.sort();
    assert_eq!(
        redelivered, expected,
        "exactly the lost consumer's events come back"
    );
    assert_disjoint_cover(&taken, &all);
    fetch_none(&bus, "workers", "everything is acked").await;
}
