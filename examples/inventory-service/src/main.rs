//! An inventory service written with `eddy-runtime`, complete: it reserves
//! stock for each `OrderPlaced` and answers `InventoryReserved` or
//! `InventoryUnavailable`.
//!
//! It shows, in order of appearance:
//! - typed events (serde) routed by type from a subscription to a handler;
//! - an upcaster: `OrderPlaced` version 1 carried one item as `sku` and
//!   `quantity`, version 2 carries a list of `items`;
//! - a circuit breaker around the warehouse API the handler calls, which
//!   pauses the subscription while the API is down;
//! - follow-up events, published through the handler's `Context` (they
//!   carry the order's correlation id and get ids derived from the order
//!   event, so a handler run again publishes nothing twice);
//! - an idempotent consumer: a redelivered or duplicated order reserves
//!   once (a durable processed-id store);
//! - retries: a transient error is retried in-process, then redelivered
//!   with the subscription's backoff (1 s, 4 s, 9 s), then dead-lettered;
//!   a permanent one goes to the dead-letter queue at once.
//!
//! Run it on an embedded bus in a folder, where it also places a few
//! orders and prints what it answered:
//!
//! ```sh
//! cargo run -p eddy-example-inventory-service -- --dir /tmp/inventory-demo
//! ```
//!
//! or against a server, as a long-running service (Ctrl-C stops it after
//! the events in flight are settled):
//!
//! ```sh
//! cargo run -p eddy-example-inventory-service -- --server 127.0.0.1:7420
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{
    Backoff, Bus, BusError, Event, Partition, ReadFrom, RetryPolicy, StartAt, SubscriptionConfig,
    TopicConfig,
};
use eddy_client::{Client, ClientConfig};
use eddy_log::SystemClock;
use eddy_runtime::{
    BreakerConfig, Context, HandlerError, ProcessedConfig, ProcessedIds, Running, Service,
    ServiceConfig, Upcasters, with_version,
};
use serde::{Deserialize, Serialize};

const ORDERS: &str = "orders";
const INVENTORY: &str = "inventory";
const SUBSCRIPTION: &str = "inventory-on-orders";
const WAREHOUSE: &str = "warehouse-api";

/// `OrderPlaced`, version 2 (the current one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub quantity: u32,
}

/// The answer, for either outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryAnswer {
    pub order: String,
    pub reason: Option<String>,
}

/// `OrderPlaced` v1 `{"order", "sku", "quantity"}` → v2 `{"order", "items"}`.
pub fn upcasters() -> Result<Upcasters> {
    let mut upcasters = Upcasters::new();
    upcasters.register("OrderPlaced", 1, |v1| {
        let (Some(order), Some(sku), Some(quantity)) =
            (v1.get("order"), v1.get("sku"), v1.get("quantity"))
        else {
            return Err("a version 1 OrderPlaced needs order, sku and quantity".into());
        };
        Ok(serde_json::json!({
            "order": order,
            "items": [{"sku": sku, "quantity": quantity}],
        }))
    })?;
    Ok(upcasters)
}

/// The stock, and the warehouse API that confirms each reservation (here
/// in memory; a real service would call it over the network).
#[derive(Debug, Default)]
pub struct Warehouse {
    stock: Mutex<HashMap<String, u32>>,
}

impl Warehouse {
    pub fn with_stock(items: &[(&str, u32)]) -> Warehouse {
        let stock = items.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        Warehouse {
            stock: Mutex::new(stock),
        }
    }

    /// Takes every item or none.
    async fn reserve(&self, items: &[Item]) -> Result<bool, String> {
        let mut stock = self.stock.lock().map_err(|_| "the stock is poisoned")?;
        let enough = items
            .iter()
            .all(|i| stock.get(&i.sku).copied().unwrap_or(0) >= i.quantity);
        if enough {
            for i in items {
                if let Some(n) = stock.get_mut(&i.sku) {
                    *n -= i.quantity;
                }
            }
        }
        Ok(enough)
    }

    pub fn left(&self, sku: &str) -> u32 {
        self.stock
            .lock()
            .map(|s| s.get(sku).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// Creates the topics and the subscription, keeping any that exist.
pub async fn setup<B: Bus>(bus: &B) -> Result<(), BusError> {
    for topic in [ORDERS, INVENTORY] {
        match bus
            .create_topic(topic, TopicConfig::with_partitions(4))
            .await
        {
            Ok(_) | Err(BusError::TopicExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // The seed's schedule: redeliveries after 1 s, 4 s and 9 s, then the
    // dead-letter queue.
    let retry = RetryPolicy {
        max_deliveries: 4,
        backoff: Backoff::Quadratic { base_ms: 1000 },
        cap_ms: None,
        jitter_pct: 10,
    };
    let config = SubscriptionConfig::new(ORDERS)
        .start_at(StartAt::Earliest)
        .retry(retry);
    match bus.create_subscription(SUBSCRIPTION, config).await {
        Ok(_) | Err(BusError::SubscriptionExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Starts the service on `bus`, its processed-id store in `state`.
pub fn start<B: Bus + Clone>(bus: &B, warehouse: Arc<Warehouse>, state: &Path) -> Result<Running> {
    let processed = ProcessedIds::open(state, ProcessedConfig::default(), Arc::new(SystemClock))
        .context("open the processed-id store")?;
    let config = ServiceConfig {
        name: "inventory".into(),
        ..ServiceConfig::default()
    };
    let service = Service::new(bus.clone(), config)
        .upcasters(upcasters()?)
        .processed_ids(processed)
        .breaker(WAREHOUSE, BreakerConfig::default())?
        .pause_on(SUBSCRIPTION, WAREHOUSE)
        .on(
            SUBSCRIPTION,
            "OrderPlaced",
            move |ctx, order: OrderPlaced| reserve(ctx, order, Arc::clone(&warehouse)),
        );
    Ok(service.start())
}

/// The handler: reserve, then answer.
async fn reserve<B: Bus>(
    ctx: Context<B>,
    order: OrderPlaced,
    warehouse: Arc<Warehouse>,
) -> Result<(), HandlerError> {
    if order.items.is_empty() {
        // Retrying cannot help: to the dead-letter queue.
        return Err(HandlerError::permanent("an order without items"));
    }
    // Through the breaker: an error is retried, and while the warehouse is
    // down the subscription pauses instead of failing every order.
    let reserved = ctx.call(WAREHOUSE, warehouse.reserve(&order.items)).await?;
    let (ty, reason) = if reserved {
        ("InventoryReserved", None)
    } else {
        ("InventoryUnavailable", Some("not enough stock".to_string()))
    };
    let answer = InventoryAnswer {
        order: order.order.clone(),
        reason,
    };
    let data = serde_json::to_vec(&answer).map_err(|e| HandlerError::permanent(e.to_string()))?;
    ctx.publish(INVENTORY, Event::new(ty, data).with_key(order.order))
        .await?;
    Ok(())
}

/// Every answer on the inventory topic, as (type, order).
pub async fn answers<B: Bus>(bus: &B) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for p in 0..4 {
        let batch = bus
            .read(INVENTORY, Partition(p), ReadFrom::Beginning, 1000)
            .await?;
        for e in batch.events {
            let answer: InventoryAnswer = serde_json::from_slice(&e.event.data)?;
            found.push((e.event.ty, answer.order));
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// A few orders: version 2, version 1 (upcast), too large, and one placed
/// twice with the same id (the bus keeps the first; were the second
/// delivered — after the dedup window, or redriven — the processed-id
/// store would skip it).
pub async fn place_orders<B: Bus>(bus: &B) -> Result<()> {
    let v2 = |order: &str, sku: &str, quantity: u32| {
        let data =
            serde_json::json!({"order": order, "items": [{"sku": sku, "quantity": quantity}]});
        // A publisher of the current version says so (an event without
        // the attribute is version 1).
        with_version(
            Event::new("OrderPlaced", data.to_string())
                .with_id(order)
                .with_key(order),
            2,
        )
    };
    let v1 = Event::new(
        "OrderPlaced",
        r#"{"order":"o-2","sku":"lamp","quantity":1}"#,
    )
    .with_id("o-2")
    .with_key("o-2");
    for event in [
        v2("o-1", "kettle", 2),
        with_version(v1, 1),
        v2("o-3", "kettle", 50),
        v2("o-4", "lamp", 1),
        v2("o-4", "lamp", 1),
    ] {
        bus.publish(ORDERS, event).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let warehouse = Arc::new(Warehouse::with_stock(&[("kettle", 10), ("lamp", 5)]));
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--server", addr] => {
            let bus = Client::connect(*addr, ClientConfig::default()).await?;
            setup(&bus).await?;
            let state = std::env::temp_dir().join("eddy-inventory-service");
            let running = start(&bus, warehouse, &state)?;
            println!("inventory service: consuming {SUBSCRIPTION} on {addr}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await?;
            running.stop().await;
            bus.close().await;
        }
        ["--dir", dir] => {
            let dir = Path::new(dir);
            let bus = Broker::open(dir.join("bus"), BrokerConfig::default())?;
            setup(&bus).await?;
            let running = start(&bus, Arc::clone(&warehouse), &dir.join("processed"))?;
            place_orders(&bus).await?;
            while answers(&bus).await?.len() < 4 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let stats = running.stop().await;
            for (ty, order) in answers(&bus).await? {
                println!("{order}: {ty}");
            }
            println!(
                "kettles left {}, lamps left {}; handled {}, duplicates skipped {}",
                warehouse.left("kettle"),
                warehouse.left("lamp"),
                stats.handled.load(std::sync::atomic::Ordering::Relaxed),
                stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
            );
            bus.close()?;
        }
        _ => anyhow::bail!("usage: inventory-service --dir <folder> | --server <host:port>"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orders_are_answered_once_each_old_versions_included() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Broker::open(dir.path().join("bus"), BrokerConfig::default()).unwrap();
        setup(&bus).await.unwrap();
        let warehouse = Arc::new(Warehouse::with_stock(&[("kettle", 10), ("lamp", 5)]));
        let running = start(&bus, Arc::clone(&warehouse), &dir.path().join("p")).unwrap();
        place_orders(&bus).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while answers(&bus).await.unwrap().len() < 4 {
            assert!(std::time::Instant::now() < deadline, "no answers");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running.stop().await;
        let answers = answers(&bus).await.unwrap();
        let expected = [
            ("InventoryReserved", "o-1"),
            ("InventoryReserved", "o-2"),
            ("InventoryUnavailable", "o-3"),
            ("InventoryReserved", "o-4"),
        ];
        let got: Vec<(&str, &str)> = answers
            .iter()
            .map(|(t, o)| (t.as_str(), o.as_str()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(warehouse.left("kettle"), 8);
        assert_eq!(warehouse.left("lamp"), 3, "o-2 (version 1) and o-4 once");
        bus.close().unwrap();
    }
}
