//! Proves the basic flow end to end on the embedded engine: publish →
//! stored → delivered → acked, and that nothing comes back after the ack.

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{Bus, Event, FetchOptions, StartAt, SubscriptionConfig, TopicConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_flow_publish_deliver_ack() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let bus = Broker::open_with_clock(dir.path(), config.clone(), clock.clone()).unwrap();
    bus.create_topic("orders.placed", TopicConfig::with_partitions(2))
        .await
        .unwrap();
    bus.create_subscription(
        "payments",
        SubscriptionConfig::new("orders.*").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    let p = bus
        .publish(
            "orders.placed",
            Event::new("OrderPlaced", "{\"id\":1}").with_key("order-1"),
        )
        .await
        .unwrap();
    assert!(!p.duplicate);
    let got = bus.fetch("payments", FetchOptions::now(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempt, 1);
    assert_eq!(got[0].event.event.ty, "OrderPlaced");
    assert_eq!(got[0].event.offset, p.offset);
    bus.ack("payments", &got[0].ack_id).await.unwrap();
    clock.advance_ms(60_000);
    assert!(
        bus.fetch("payments", FetchOptions::now(10))
            .await
            .unwrap()
            .is_empty()
    );
    bus.close().unwrap();
    let bus = Broker::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    assert!(
        bus.fetch("payments", FetchOptions::now(10))
            .await
            .unwrap()
            .is_empty()
    );
    bus.publish("orders.placed", Event::new("OrderPlaced", "2"))
        .await
        .unwrap();
    assert_eq!(
        bus.fetch("payments", FetchOptions::now(10))
            .await
            .unwrap()
            .len(),
        1
    );
}
