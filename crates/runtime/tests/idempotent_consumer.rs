//! Idempotent consumers on the embedded broker: an event published twice
//! (outside any dedup window), redelivered after a restart, or handled
//! again after a failure that came after its effects, has its effect once —
//! the handler's own effect through the processed-id store, its follow-up
//! events through their derived ids.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{
    Bus, DedupWindow, Event, Partition, ReadFrom, StartAt, SubscriptionConfig, TopicConfig,
};
use eddy_log::SystemClock;
use eddy_runtime::{HandlerError, ProcessedConfig, ProcessedIds, Running, Service, ServiceConfig};
use serde::Deserialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Deserialize)]
struct Charge {
    order: u32,
    cents: u64,
}

const PATIENCE: Duration = Duration::from_secs(20);
const ORDERS: u32 = 40;

async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The balance per order, and the idempotency keys applied to it in the
/// same critical section: the handler's effect outside the bus, keyed as
/// `Context::idempotency_key` advises.
#[derive(Debug, Default)]
struct Books {
    balance: HashMap<u32, u64>,
    applied: HashSet<String>,
}

type Ledger = Arc<Mutex<Books>>;

/// A payment service whose handler charges the ledger, publishes a
/// follow-up (with no id of its own), and fails once after both for every
/// third order — as if its ack were lost after its effects.
fn payments(bus: &Broker, store: ProcessedIds, ledger: &Ledger) -> Running {
    let config = ServiceConfig {
        name: "payments".into(),
        in_process_delay: Duration::from_millis(1),
        in_process_retries: 0,
        fetch_wait_ms: 50,
        ..ServiceConfig::default()
    };
    let ledger = Arc::clone(ledger);
    let failed_once = Arc::new(Mutex::new(HashSet::new()));
    Service::new(bus.clone(), config)
        .processed_ids(store)
        .on("payments", "ChargeRequested", move |ctx, c: Charge| {
            let (ledger, failed_once) = (Arc::clone(&ledger), Arc::clone(&failed_once));
            async move {
                {
                    let mut books = ledger.lock().unwrap();
                    if books.applied.insert(ctx.idempotency_key().to_string()) {
                        *books.balance.entry(c.order).or_default() += c.cents;
                    }
                }
                let done = Event::new("PaymentCompleted", format!(r#"{{"order":{}}}"#, c.order));
                ctx.publish("payments-done", done).await?;
                if c.order.is_multiple_of(3) && failed_once.lock().unwrap().insert(c.order) {
                    return Err(HandlerError::retry("lost the connection after charging"));
                }
                Ok(())
            }
        })
        .start()
}

fn charge(order: u32) -> Event {
    Event::new(
        "ChargeRequested",
        format!(r#"{{"order":{order},"cents":{}}}"#, 100 + order),
    )
    .with_id(format!("charge-{order}"))
    .with_source("checkout")
}

async fn all_events(bus: &Broker, topic: &str) -> Vec<Event> {
    bus.read(topic, Partition(0), ReadFrom::Beginning, 10_000)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_redelivered_events_have_their_effect_once() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Broker::open(dir.path().join("bus"), BrokerConfig::default()).unwrap();
    // No dedup on the input, so that a second publish is a real duplicate.
    let no_dedup = TopicConfig {
        dedup: DedupWindow {
            age_ms: 0,
            entries_max: 0,
        },
        ..TopicConfig::default()
    };
    bus.create_topic("charges", no_dedup).await.unwrap();
    bus.create_topic("payments-done", TopicConfig::default())
        .await
        .unwrap();
    let retry = eddy_bus::RetryPolicy {
        max_deliveries: 5,
        backoff: eddy_bus::Backoff::Fixed { delay_ms: 10 },
        cap_ms: None,
        jitter_pct: 0,
    };
    bus.create_subscription(
        "payments",
        SubscriptionConfig::new("charges")
            .start_at(StartAt::Earliest)
            .retry(retry),
    )
    .await
    .unwrap();
    for order in 0..ORDERS {
        bus.publish("charges", charge(order)).await.unwrap();
    }
    // Each event a second time, interleaved with the first handling.
    let store_dir = dir.path().join("processed");
    let open = || {
        ProcessedIds::open(
            &store_dir,
            ProcessedConfig::default(),
            Arc::new(SystemClock),
        )
        .unwrap()
    };
    let ledger = Ledger::default();
    let running = payments(&bus, open(), &ledger);
    for order in 0..ORDERS {
        bus.publish("charges", charge(order)).await.unwrap();
    }
    assert_eq!(
        all_events(&bus, "charges").await.len(),
        2 * ORDERS as usize,
        "the duplicates are on the bus"
    );
    until("every delivery settled", || {
        let sub = running.stats();
        sub.handled.load(Ordering::SeqCst) + sub.duplicates.load(Ordering::SeqCst)
            == 2 * u64::from(ORDERS)
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(stats.handled.load(Ordering::SeqCst), u64::from(ORDERS));
    assert_eq!(stats.duplicates.load(Ordering::SeqCst), u64::from(ORDERS));
    assert_eq!(
        stats.nacked.load(Ordering::SeqCst),
        u64::from(ORDERS.div_ceil(3))
    );
    assert_eq!(stats.bus_errors.load(Ordering::SeqCst), 0);

    // A restart that replays the whole subscription: every event is
    // redelivered, and found processed.
    bus.seek("payments", StartAt::Earliest).await.unwrap();
    let running = payments(&bus, open(), &ledger);
    until("the replay settled", || {
        running.stats().duplicates.load(Ordering::SeqCst) == 2 * u64::from(ORDERS)
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(stats.handled.load(Ordering::SeqCst), 0);

    let done = all_events(&bus, "payments-done").await;
    let sub = bus.subscription_stats("payments").await.unwrap();
    assert_eq!(sub.dead_lettered, 0);
    let books = ledger.lock().unwrap();
    for order in 0..ORDERS {
        let charged = books.balance[&order];
        assert_eq!(
            charged,
            100 + u64::from(order),
            "order {order} charged once"
        );
    }
    assert_eq!(books.applied.len(), ORDERS as usize);
    assert_eq!(done.len(), ORDERS as usize, "one follow-up per order");
    for e in &done {
        assert_eq!(e.source, "payments");
        assert_eq!(e.id.len(), 32);
    }
    bus.close().unwrap();
}
