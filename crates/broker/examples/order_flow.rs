//! The seed's order flow on the embedded engine, end to end:
//! `cargo run -p eddy-broker --example order_flow [-- <data dir>]`.
//!
//! One `OrderPlaced` fans out to four subscriptions; inventory, shipping
//! and analytics ack it; payment fails every time, is retried on a
//! quadratic backoff (100 ms, 400 ms, 900 ms) and ends in the payment
//! subscription's dead-letter queue, which raises an alert; an operator
//! then redrives it and payment succeeds.

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::name::ALERTS_TOPIC;
use eddy_bus::{
    Backoff, Bus, DeadLetterSelection, Event, FetchOptions, NackOptions, Partition, ReadFrom,
    RedriveTarget, RetryPolicy, StartAt, SubscriptionConfig, TopicConfig,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./eddy-data/order-flow".into());
    let _ = std::fs::remove_dir_all(&dir);
    let bus = Broker::open(&dir, BrokerConfig::default())?;
    println!("broker open on {dir} (fsync: always)");

    bus.create_topic("orders.placed", TopicConfig::with_partitions(4))
        .await?;
    let retry = RetryPolicy {
        max_deliveries: 4,
        backoff: Backoff::Quadratic { base_ms: 100 },
        cap_ms: None,
        jitter_pct: 0,
    };
    for name in ["inventory", "payment", "shipping", "analytics"] {
        let config = SubscriptionConfig::new("orders.*")
            .start_at(StartAt::Earliest)
            .ack_wait_ms(5_000)
            .retry(retry.clone());
        bus.create_subscription(name, config).await?;
    }
    let order = Event::new("OrderPlaced", r#"{"order":"o-1","total":42}"#)
        .with_id("order-o-1-placed")
        .with_key("o-1")
        .with_source("/services/checkout")
        .with_correlation_id("flow-o-1");
    let p = bus.publish("orders.placed", order.clone()).await?;
    println!(
        "published OrderPlaced at partition {} offset {}",
        p.partition, p.offset
    );
    let again = bus.publish("orders.placed", order).await?;
    println!("published it again: duplicate = {}", again.duplicate);

    for name in ["inventory", "shipping", "analytics"] {
        for d in bus.fetch(name, FetchOptions::now(10)).await? {
            bus.ack(name, &d.ack_id).await?;
            println!(
                "{name:>9}: handled {} (attempt {})",
                d.event.event.ty, d.attempt
            );
        }
    }

    // Payment fails every time until the event is dead-lettered.
    let wait = FetchOptions {
        max: 1,
        wait_ms: 2_000,
    };
    loop {
        let got = bus.fetch("payment", wait.clone()).await?;
        let Some(d) = got.into_iter().next() else {
            break;
        };
        println!("  payment: attempt {} failed: card declined", d.attempt);
        let nack = NackOptions {
            delay_ms: None,
            error: Some("card declined".into()),
        };
        bus.nack("payment", &d.ack_id, nack).await?;
        if d.attempt == retry.max_deliveries {
            break;
        }
    }
    for dl in bus.dead_letters("payment", 0, 10).await? {
        println!(
            "  payment: dead letter {} — {} after {} attempts: {}",
            dl.id,
            dl.event.event.ty,
            dl.attempts,
            dl.last_error.as_deref().unwrap_or("")
        );
    }
    let alerts = bus
        .read(ALERTS_TOPIC, Partition(0), ReadFrom::Beginning, 10)
        .await?;
    for a in alerts.events {
        println!(
            "    alert: {} {}",
            a.event.ty,
            String::from_utf8_lossy(&a.event.data)
        );
    }

    // The operator fixes the card and redrives.
    let n = bus
        .redrive(
            "payment",
            DeadLetterSelection::All,
            RedriveTarget::Subscription,
        )
        .await?;
    println!("  payment: redrove {n} dead letter(s)");
    for d in bus.fetch("payment", wait).await? {
        bus.ack("payment", &d.ack_id).await?;
        println!(
            "  payment: handled {} (attempt {} after redrive)",
            d.event.event.ty, d.attempt
        );
    }
    let stats = bus.subscription_stats("payment").await?;
    println!(
        "payment stats: delivered {}, redelivered {}, acked {}, dead-lettered {}, lag {}",
        stats.delivered, stats.redelivered, stats.acked, stats.dead_lettered, stats.lag
    );
    bus.close()?;
    Ok(())
}
