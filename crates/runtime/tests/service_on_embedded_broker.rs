//! The service runtime on the embedded broker: routing by type, follow-ups
//! stamped with correlation and causation, in-process retries then
//! redelivery, the dead-letter queue for what cannot succeed, the
//! concurrency bound and a graceful stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{Backoff, Bus, Event, ReadFrom, RetryPolicy, SubscriptionConfig, TopicConfig};
use eddy_runtime::{
    BreakerConfig, HandlerError, HandlerOptions, Service, ServiceConfig, TraceParent,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct OrderPlaced {
    order: u32,
}

/// Longest any condition below is waited for.
const PATIENCE: Duration = Duration::from_secs(20);

async fn broker(dir: &tempfile::TempDir) -> Broker {
    let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
    for topic in ["orders", "inventory"] {
        broker
            .create_topic(topic, TopicConfig::default())
            .await
            .unwrap();
    }
    // Three deliveries, 10 ms apart.
    let retry = RetryPolicy {
        max_deliveries: 3,
        backoff: Backoff::Fixed { delay_ms: 10 },
        cap_ms: None,
        jitter_pct: 0,
    };
    broker
        .create_subscription(
            "inventory-svc",
            SubscriptionConfig::new("orders").retry(retry),
        )
        .await
        .unwrap();
    broker
}

fn placed(id: &str, order: u32) -> Event {
    Event::new("OrderPlaced", format!(r#"{{"order":{order}}}"#)).with_id(id)
}

/// Polls `done` until it holds, failing with `what` after [`PATIENCE`].
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A broker whose time is a manual clock (no timer of its own), and the
/// clock, to share with a service.
fn manual_broker(dir: &tempfile::TempDir) -> (Broker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let bus = Broker::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    (bus, clock)
}

fn quick() -> ServiceConfig {
    ServiceConfig {
        in_process_delay: Duration::from_millis(1),
        fetch_wait_ms: 50,
        ..ServiceConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_by_type_publish_follow_ups_and_ack() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir).await;
    let service = Service::new(bus.clone(), quick()).on(
        "inventory-svc",
        "OrderPlaced",
        |ctx, placed: OrderPlaced| async move {
            let reserved = Event::new(
                "InventoryReserved",
                format!(r#"{{"order":{}}}"#, placed.order),
            )
            .with_id(format!("reserved-{}", placed.order));
            ctx.publish("inventory", reserved).await?;
            Ok(())
        },
    );
    let running = service.start();
    bus.publish("orders", placed("p1", 1)).await.unwrap();
    bus.publish("orders", placed("p2", 2).with_correlation_id("checkout-7"))
        .await
        .unwrap();
    bus.publish("orders", Event::new("OrderCancelled", "{}").with_id("x1"))
        .await
        .unwrap();
    until("two handled, one skipped", || {
        let s = running.stats();
        s.handled.load(Ordering::SeqCst) == 2 && s.skipped.load(Ordering::SeqCst) == 1
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(stats.bus_errors.load(Ordering::SeqCst), 0);

    let stored = bus
        .read("inventory", eddy_bus::Partition(0), ReadFrom::Beginning, 10)
        .await
        .unwrap()
        .events;
    assert_eq!(stored.len(), 2);
    for e in &stored {
        let e = &e.event;
        let (cause, correlation) = match e.id.as_str() {
            "reserved-1" => ("p1", "p1"),
            "reserved-2" => ("p2", "checkout-7"),
            other => panic!("unexpected {other}"),
        };
        assert_eq!(e.causation_id.as_deref(), Some(cause));
        assert_eq!(e.correlation_id.as_deref(), Some(correlation));
        assert!(TraceParent::parse(e.traceparent.as_deref().unwrap()).is_some());
    }
    let sub = bus.subscription_stats("inventory-svc").await.unwrap();
    assert_eq!(sub.acked, 3, "the skipped event is acked too");
    bus.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_redelivery_and_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir).await;
    let calls = Arc::new(AtomicU32::new(0));
    let service = {
        let calls = Arc::clone(&calls);
        Service::new(bus.clone(), quick()).on(
            "inventory-svc",
            "OrderPlaced",
            move |ctx, placed: OrderPlaced| {
                let calls = Arc::clone(&calls);
                async move {
                    match placed.order {
                        // Fails on every in-process try of the first
                        // delivery, succeeds on the redelivery.
                        1 => {
                            calls.fetch_add(1, Ordering::SeqCst);
                            if ctx.attempt() == 1 {
                                Err(HandlerError::retry("the warehouse is busy"))
                            } else {
                                Ok(())
                            }
                        }
                        _ => Err(HandlerError::permanent("order 2 can never be reserved")),
                    }
                }
            },
        )
    };
    let running = service.start();
    bus.publish("orders", placed("p1", 1)).await.unwrap();
    bus.publish("orders", placed("p2", 2)).await.unwrap();
    bus.publish(
        "orders",
        Event::new("OrderPlaced", r#"{"order":"three"}"#).with_id("p3"),
    )
    .await
    .unwrap();
    until("one handled, two dead-lettered", || {
        let s = running.stats();
        s.handled.load(Ordering::SeqCst) == 1 && s.terminated.load(Ordering::SeqCst) == 2
    })
    .await;
    let stats = running.stop().await;
    // The first delivery: 1 try + 2 in-process retries, then a nack; the
    // redelivery: 1 try.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(stats.retried.load(Ordering::SeqCst), 2);
    assert_eq!(stats.nacked.load(Ordering::SeqCst), 1);

    let mut dead = bus.dead_letters("inventory-svc", 0, 10).await.unwrap();
    dead.sort_by(|a, b| a.event.event.id.cmp(&b.event.event.id));
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].event.event.id, "p2");
    assert_eq!(
        dead[0].attempts, 1,
        "no delivery burned on a permanent error"
    );
    assert_eq!(dead[1].event.event.id, "p3");
    bus.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_configured_handlers_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir).await;
    let in_flight = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let config = ServiceConfig {
        concurrency: 2,
        ..quick()
    };
    let service = {
        let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
        Service::new(bus.clone(), config).on(
            "inventory-svc",
            "OrderPlaced",
            move |_ctx, _placed: OrderPlaced| {
                let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Long enough for the others to try to start meanwhile.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        )
    };
    let running = service.start();
    for n in 0..12 {
        bus.publish("orders", placed(&format!("p{n}"), n))
            .await
            .unwrap();
    }
    until("twelve handled", || {
        running.stats().handled.load(Ordering::SeqCst) == 12
    })
    .await;
    running.stop().await;
    let most = most.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} handlers ran at once");
    bus.close().unwrap();
}

/// Counts a handler call while it runs, abandoned (dropped) or not.
struct Running(Arc<AtomicU32>);

impl Running {
    fn enter(in_flight: &Arc<AtomicU32>, most: &AtomicU32) -> Running {
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        Running(Arc::clone(in_flight))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_keeps_to_its_own_bound_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir).await;
    let in_flight = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let config = ServiceConfig {
        concurrency: 8,
        in_process_retries: 0,
        ..quick()
    };
    let one_at_a_time = HandlerOptions {
        concurrency: Some(1),
        timeout: Some(Duration::from_millis(50)),
    };
    let service = {
        let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
        Service::new(bus.clone(), config).on_with(
            "inventory-svc",
            "OrderPlaced",
            one_at_a_time,
            move |_ctx, placed: OrderPlaced| {
                let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
                async move {
                    let _running = Running::enter(&in_flight, &most);
                    // Order 0 never finishes within its timeout.
                    let pause = if placed.order == 0 { 10_000 } else { 5 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    Ok(())
                }
            },
        )
    };
    let running = service.start();
    for n in 0..8 {
        bus.publish("orders", placed(&format!("p{n}"), n))
            .await
            .unwrap();
    }
    until("seven handled, one dead-lettered", || {
        let s = running.stats();
        s.handled.load(Ordering::SeqCst) == 7 && s.nacked.load(Ordering::SeqCst) == 3
    })
    .await;
    running.stop().await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "one call at a time");
    let dead = bus.dead_letters("inventory-svc", 0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let error = dead[0].last_error.as_deref().unwrap_or("");
    assert!(error.contains("took over 50ms"), "{error}");
    bus.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_the_handler_in_flight_and_settles_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir).await;
    let started = Arc::new(AtomicBool::new(false));
    let service = {
        let started = Arc::clone(&started);
        Service::new(bus.clone(), quick()).on(
            "inventory-svc",
            "OrderPlaced",
            move |_ctx, _placed: OrderPlaced| {
                let started = Arc::clone(&started);
                async move {
                    started.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(())
                }
            },
        )
    };
    let running = service.start();
    bus.publish("orders", placed("p1", 1)).await.unwrap();
    until("the handler started", || started.load(Ordering::SeqCst)).await;
    let stats = running.stop().await;
    assert_eq!(stats.handled.load(Ordering::SeqCst), 1);
    let sub = bus.subscription_stats("inventory-svc").await.unwrap();
    assert_eq!(sub.acked, 1, "settled before stop returned");
    bus.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_pauses_fetching_until_a_probe_succeeds() {
    // The payment gateway is down: the first call fails and opens the
    // breaker for 60 s (of a manual clock, shared with the broker). While
    // it is open the service fetches nothing, so the other events keep
    // their delivery attempts; once the time has passed, one probe goes
    // through, succeeds, the breaker closes and the backlog drains.
    let dir = tempfile::tempdir().unwrap();
    let (bus, clock) = manual_broker(&dir);
    for topic in ["orders", "breakers"] {
        bus.create_topic(topic, TopicConfig::default())
            .await
            .unwrap();
    }
    bus.create_subscription("payment-svc", SubscriptionConfig::new("orders"))
        .await
        .unwrap();
    let down = Arc::new(AtomicBool::new(true));
    let service_config = ServiceConfig {
        concurrency: 1,
        in_process_retries: 0,
        breaker_events_topic: Some("breakers".into()),
        ..quick()
    };
    let breaker = BreakerConfig {
        consecutive_failures: Some(1),
        open_ms: 60_000,
        ..BreakerConfig::default()
    };
    let service = {
        let down = Arc::clone(&down);
        Service::new(bus.clone(), service_config)
            .clock(clock.clone())
            .breaker("gateway", breaker)
            .unwrap()
            .pause_on("payment-svc", "gateway")
            .on(
                "payment-svc",
                "OrderPlaced",
                move |ctx, _placed: OrderPlaced| {
                    let down = Arc::clone(&down);
                    async move {
                        let charge = async {
                            if down.load(Ordering::SeqCst) {
                                Err("connection refused")
                            } else {
                                Ok(())
                            }
                        };
                        ctx.call("gateway", charge).await
                    }
                },
            )
    };
    let running = service.start();
    bus.publish("orders", placed("p1", 1)).await.unwrap();
    until("the breaker opened", || {
        running.stats().breaker_transitions.load(Ordering::SeqCst) == 1
    })
    .await;
    for n in 2..=5 {
        bus.publish("orders", placed(&format!("p{n}"), n))
            .await
            .unwrap();
    }
    // The fetch loop has looked at the open breaker three times over.
    until("three pauses", || {
        running.stats().paused.load(Ordering::SeqCst) >= 3
    })
    .await;
    let sub = bus.subscription_stats("payment-svc").await.unwrap();
    assert_eq!(sub.delivered, 1, "nothing fetched while open");

    down.store(false, Ordering::SeqCst);
    clock.advance_ms(60_000);
    until("all five handled", || {
        running.stats().handled.load(Ordering::SeqCst) == 5
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(
        stats.nacked.load(Ordering::SeqCst),
        1,
        "only the first call failed"
    );
    assert_eq!(stats.terminated.load(Ordering::SeqCst), 0);
    assert_eq!(stats.breaker_transitions.load(Ordering::SeqCst), 3);
    let changes: Vec<String> = bus
        .read("breakers", eddy_bus::Partition(0), ReadFrom::Beginning, 10)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.event.data).unwrap();
            format!(
                "{} -> {}",
                v["from"].as_str().unwrap(),
                v["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changes,
        ["closed -> open", "open -> half-open", "half-open -> closed"]
    );
    assert!(
        bus.dead_letters("payment-svc", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    bus.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_extend_the_lease_they_would_outlive() {
    // Each try of the handler takes 600 ms of a manual clock shared with
    // the broker, and the lease is 1,000 ms: three tries outlive it unless
    // the service extends it between them.
    let dir = tempfile::tempdir().unwrap();
    let (bus, clock) = manual_broker(&dir);
    bus.create_topic("orders", TopicConfig::default())
        .await
        .unwrap();
    bus.create_subscription(
        "slow-svc",
        SubscriptionConfig::new("orders").ack_wait_ms(1000),
    )
    .await
    .unwrap();
    let tries = Arc::new(AtomicU32::new(0));
    let service_config = ServiceConfig {
        in_process_retries: 2,
        ..quick()
    };
    let service = {
        let (tries, clock) = (Arc::clone(&tries), clock.clone());
        Service::new(bus.clone(), service_config)
            .clock(clock.clone())
            .on(
                "slow-svc",
                "OrderPlaced",
                move |_ctx, _placed: OrderPlaced| {
                    let (tries, clock) = (Arc::clone(&tries), clock.clone());
                    async move {
                        clock.advance_ms(600);
                        if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                            Err(HandlerError::retry("the warehouse is slow"))
                        } else {
                            Ok(())
                        }
                    }
                },
            )
    };
    let running = service.start();
    bus.publish("orders", placed("p1", 1)).await.unwrap();
    until("handled", || {
        running.stats().handled.load(Ordering::SeqCst) == 1
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    assert_eq!(
        stats.bus_errors.load(Ordering::SeqCst),
        0,
        "the ack found its lease"
    );
    let sub = bus.subscription_stats("slow-svc").await.unwrap();
    assert_eq!((sub.acked, sub.redelivered), (1, 0));
    bus.close().unwrap();
}
