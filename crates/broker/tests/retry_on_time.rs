//! Proves that a retry is delivered when it falls due, not at the
//! timer's next interval: the timer thread also wakes for the earliest
//! retry a nack schedules.

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{Bus, Event, FetchOptions, NackOptions, StartAt, SubscriptionConfig, TopicConfig};

// One thread: the waiting fetch below is parked before the clock moves.
#[tokio::test]
async fn a_nacked_event_comes_back_at_its_delay_not_at_the_next_interval() {
    let dir = tempfile::tempdir().unwrap();
    // An interval far longer than the fetch below waits: only a timer
    // woken for the retry's own due time can deliver it in time.
    let config = BrokerConfig {
        timer_interval_ms: Some(600_000),
        ..BrokerConfig::default()
    };
    let clock = Arc::new(ManualClock::new(1_000));
    let bus = Broker::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    bus.create_topic("orders", TopicConfig::default())
        .await
        .unwrap();
    bus.create_subscription(
        "billing",
        SubscriptionConfig::new("orders").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    bus.publish("orders", Event::new("OrderPlaced", "1"))
        .await
        .unwrap();
    let first = bus
        .fetch("billing", FetchOptions { max: 1, wait_ms: 0 })
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let nack = NackOptions {
        delay_ms: Some(50),
        error: None,
    };
    bus.nack("billing", &first[0].ack_id, nack).await.unwrap();

    // Not due yet: nothing to fetch.
    let early = bus
        .fetch("billing", FetchOptions { max: 1, wait_ms: 0 })
        .await
        .unwrap();
    assert!(early.is_empty());

    // The retry's time comes while a consumer waits: the timer wakes for
    // it and the waiting fetch gets it at once. Without that wake the
    // fetch would sit out its whole 20 s wait (the interval is 10 min).
    let started = std::time::Instant::now();
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move {
            bus.fetch(
                "billing",
                FetchOptions {
                    max: 1,
                    wait_ms: 20_000,
                },
            )
            .await
        })
    };
    tokio::task::yield_now().await;
    clock.advance_ms(50);
    let again = waiting.await.unwrap().unwrap();
    assert_eq!(again.len(), 1, "the retry was not delivered");
    assert_eq!(again[0].attempt, 2);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the retry waited for the fetch's deadline, not its own due time"
    );
    bus.close().unwrap();
}
