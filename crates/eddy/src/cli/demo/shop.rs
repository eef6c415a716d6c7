//! The seed's e-commerce order flow, choreographed: six services written
//! with `eddy-runtime`, no coordinator, over any [`Bus`].
//!
//! ```text
//!  driver ── OrderPlaced ──▶ order ── OrderCreated ──▶ inventory ─┬─ InventoryUnavailable ─▶ order (failed), notification
//!                                                                 └─ InventoryReserved ─▶ payment (through the gateway's breaker)
//!  payment ─┬─ PaymentCompleted ─▶ shipping ── ShipmentCreated ─▶ order (shipped), notification
//!           └─ PaymentFailed ─▶ inventory (release), order (failed), notification
//!  analytics: every event on shop.*; notification: a flaky email sender
//! ```
//!
//! The order service turns each outcome into a final event on
//! `shop.orders` (`OrderShipped`, `OrderFailed` with a reason), which is
//! what the driver waits for. Failures are injected by flags, decided from
//! the seed and the order's id so that a run's outcomes can be reproduced;
//! the payment gateway's outage is a window of time after the first order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_bus::{
    Backoff, Bus, BusError, Event, Partition, ReadFrom, RetryPolicy, StartAt, SubscriptionConfig,
    TopicConfig,
};
use eddy_log::SystemClock;
use eddy_runtime::{
    BreakerConfig, FailuresWithin, HandlerError, ProcessedConfig, ProcessedIds, Running, Service,
    ServiceConfig,
};
use serde::{Deserialize, Serialize};

pub const ORDERS: &str = "shop.orders";
pub const INVENTORY: &str = "shop.inventory";
pub const PAYMENTS: &str = "shop.payments";
pub const SHIPPING: &str = "shop.shipping";
pub const NOTIFICATIONS: &str = "shop.notifications";
pub const BREAKERS: &str = "shop.breakers";
pub const FAILURES: &str = "shop.failures";
const TOPICS: [&str; 7] = [
    ORDERS,
    INVENTORY,
    PAYMENTS,
    SHIPPING,
    NOTIFICATIONS,
    BREAKERS,
    FAILURES,
];
const PARTITIONS: u32 = 4;

/// The circuit breaker around the payment gateway.
pub const GATEWAY: &str = "payment-gateway";

/// The services, by name.
pub const SERVICES: [&str; 6] = [
    "order",
    "inventory",
    "payment",
    "shipping",
    "notification",
    "analytics",
];

/// Every subscription: its name (`<service>-on-<topic>`) and its filter.
const SUBSCRIPTIONS: [(&str, &str); 12] = [
    ("order-on-orders", ORDERS),
    ("order-on-inventory", INVENTORY),
    ("order-on-payments", PAYMENTS),
    ("order-on-shipping", SHIPPING),
    ("inventory-on-orders", ORDERS),
    ("inventory-on-payments", PAYMENTS),
    ("payment-on-inventory", INVENTORY),
    ("shipping-on-payments", PAYMENTS),
    ("notification-on-inventory", INVENTORY),
    ("notification-on-payments", PAYMENTS),
    ("notification-on-shipping", SHIPPING),
    ("analytics-on-shop", "shop.*"),
];

/// What a run does and which failures it injects.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopConfig {
    pub orders: u32,
    /// Orders placed per second; 0 places them as fast as the bus takes them.
    pub rate: u32,
    /// Decides every injected failure.
    pub seed: u64,
    /// Share of orders whose item is out of stock.
    pub out_of_stock_rate: f64,
    /// Share of payments the gateway declines.
    pub payment_failure_rate: f64,
    /// Share of email sends that fail (a transient error: retried).
    pub email_failure_rate: f64,
    /// The gateway is down from this long after the first order, for this
    /// long.
    pub outage: Option<(Duration, Duration)>,
    /// The subscriptions' backoff base: waits of 1, 4 and 9 times it, then
    /// the dead-letter queue (the seed's 1 s, 4 s, 9 s for 1000).
    pub backoff_base_ms: u64,
    /// Longest the driver waits for every order to be final.
    pub deadline: Duration,
    /// Marks this run's orders (their ids are `o-<run>-<n>`).
    pub run: String,
}

impl Default for ShopConfig {
    fn default() -> Self {
        ShopConfig {
            orders: 200,
            rate: 100,
            seed: 1,
            out_of_stock_rate: 0.1,
            payment_failure_rate: 0.1,
            email_failure_rate: 0.3,
            outage: Some((Duration::from_millis(500), Duration::from_millis(1000))),
            backoff_base_ms: 250,
            deadline: Duration::from_secs(120),
            run: "0".into(),
        }
    }
}

// ---- events ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub order: String,
    pub customer: String,
    pub sku: String,
    pub quantity: u32,
    pub amount_cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRef {
    pub order: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    pub order: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shipment {
    pub order: String,
    pub shipment: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notified {
    pub order: String,
    pub kind: String,
}

/// A final reason of a failed order.
pub const OUT_OF_STOCK: &str = "out_of_stock";
pub const PAYMENT_DECLINED: &str = "payment_declined";

fn event<T: Serialize>(ty: &str, order: &str, data: &T) -> Event {
    // Serializing these plain structs cannot fail.
    let json = serde_json::to_vec(data).unwrap_or_default();
    Event::new(ty, json).with_key(order)
}

// ---- injected failures ----

/// A number in [0, 1) decided by the seed, what it is for, and the order
/// (by its number within the run: `o-<run>-<n>` counts as `<n>`, so a seed
/// gives the same outcomes in every run).
pub fn chance(seed: u64, what: &str, id: &str) -> f64 {
    let id = match id.strip_prefix("o-").and_then(|rest| rest.split_once('-')) {
        Some((_run, n)) => n,
        None => id,
    };
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in what.bytes().chain([0]).chain(id.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finalizer spreads the FNV hash over all bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The payment gateway: down during the outage window, declining a share
/// of payments (by the seed) otherwise.
#[derive(Debug)]
pub struct Gateway {
    seed: u64,
    decline_rate: f64,
    outage: Option<(Duration, Duration)>,
    start: Instant,
}

#[derive(Debug, PartialEq, Eq)]
enum Charge {
    Approved,
    Declined,
}

impl Gateway {
    async fn charge(&self, order: &str) -> Result<Charge, String> {
        if let Some((at, len)) = self.outage {
            let since = self.start.elapsed();
            if since >= at && since < at + len {
                // A gateway that is down answers slowly, then with an error.
                tokio::time::sleep(Duration::from_millis(5)).await;
                return Err("the payment gateway answered 503 Service Unavailable".into());
            }
        }
        Ok(if chance(self.seed, "payment", order) < self.decline_rate {
            Charge::Declined
        } else {
            Charge::Approved
        })
    }
}

// ---- topics and subscriptions ----

/// Creates the topics and subscriptions the services need, keeping any
/// that exist.
pub async fn setup<B: Bus>(bus: &B, config: &ShopConfig) -> Result<(), BusError> {
    for topic in TOPICS {
        match bus
            .create_topic(topic, TopicConfig::with_partitions(PARTITIONS))
            .await
        {
            Ok(_) | Err(BusError::TopicExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    for (name, filter) in SUBSCRIPTIONS {
        // The seed's schedule, scaled: waits of 1, 4 and 9 bases, then the
        // DLQ. The payment gateway's breaker pauses its subscription while
        // open, but the calls that open it use up deliveries: more of them.
        let max_deliveries = if name == "payment-on-inventory" {
            20
        } else {
            4
        };
        let retry = RetryPolicy {
            max_deliveries,
            backoff: Backoff::Quadratic {
                base_ms: config.backoff_base_ms,
            },
            cap_ms: Some(9 * config.backoff_base_ms),
            jitter_pct: 10,
        };
        let sub = SubscriptionConfig::new(filter)
            .start_at(StartAt::Earliest)
            .retry(retry)
            .ack_wait_ms(30_000);
        match bus.create_subscription(name, sub).await {
            Ok(_) | Err(BusError::SubscriptionExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---- the services ----

/// What the in-process services share with the driver: the analytics
/// service's figures and the inventory's stock.
#[derive(Debug, Default)]
pub struct Shared {
    pub revenue_cents: AtomicU64,
    pub events_seen: Mutex<BTreeMap<String, u64>>,
    pub stock: Mutex<HashMap<String, i64>>,
    pub reserved: Mutex<HashMap<String, (String, u32)>>,
    pub emails_sent: AtomicU64,
    pub email_failures: AtomicU64,
}

fn service_config(name: &str) -> ServiceConfig {
    ServiceConfig {
        name: name.to_string(),
        concurrency: 64,
        handler_timeout: Duration::from_secs(10),
        in_process_retries: 2,
        in_process_delay: Duration::from_millis(20),
        fetch_wait_ms: 100,
        breaker_events_topic: Some(BREAKERS.into()),
        outcomes_topic: Some(FAILURES.into()),
    }
}

/// The gateway's breaker: open on 5 failures within a second (a rule
/// Resilience4j cannot express), for 250 ms, then 2 probes; a call over
/// 2 s counts as a failure.
pub fn gateway_breaker() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: None,
        failures_within: Some(FailuresWithin {
            failures: 5,
            within_ms: 1000,
        }),
        failure_rate: None,
        slow_call_ms: Some(2000),
        open_ms: 250,
        half_open_probes: 2,
    }
}

/// Starts the service `name` on `bus`; `data` holds its processed-id store.
pub fn start_service<B: Bus + Clone>(
    name: &str,
    bus: &B,
    config: &ShopConfig,
    shared: &Arc<Shared>,
    gateway: &Arc<Gateway>,
    data: &Path,
) -> anyhow::Result<Running> {
    let service = Service::new(bus.clone(), service_config(name));
    let processed = |service: Service<B>| -> anyhow::Result<Service<B>> {
        let store = ProcessedIds::open(
            data.join(name),
            ProcessedConfig::default(),
            Arc::new(SystemClock),
        )?;
        Ok(service.processed_ids(store))
    };
    let service = match name {
        "order" => order(service),
        "inventory" => inventory(processed(service)?, config, shared),
        "payment" => payment(processed(service)?, gateway)?,
        "shipping" => shipping(service),
        "notification" => notification(service, config, shared),
        "analytics" => analytics(service, shared),
        other => anyhow::bail!("the shop has no service named {other}"),
    };
    Ok(service.start())
}

fn order<B: Bus + Clone>(service: Service<B>) -> Service<B> {
    service
        .on(
            "order-on-orders",
            "OrderPlaced",
            |ctx, o: Order| async move {
                ctx.publish(ORDERS, event("OrderCreated", &o.order, &o))
                    .await?;
                Ok(())
            },
        )
        .on(
            "order-on-inventory",
            "InventoryUnavailable",
            |ctx, o: OrderRef| async move {
                let failed = Failed {
                    order: o.order,
                    reason: OUT_OF_STOCK.into(),
                };
                ctx.publish(ORDERS, event("OrderFailed", &failed.order, &failed))
                    .await?;
                Ok(())
            },
        )
        .on(
            "order-on-payments",
            "PaymentFailed",
            |ctx, f: Failed| async move {
                let failed = Failed {
                    order: f.order,
                    reason: PAYMENT_DECLINED.into(),
                };
                ctx.publish(ORDERS, event("OrderFailed", &failed.order, &failed))
                    .await?;
                Ok(())
            },
        )
        .on(
            "order-on-shipping",
            "ShipmentCreated",
            |ctx, s: Shipment| async move {
                let done = OrderRef { order: s.order };
                ctx.publish(ORDERS, event("OrderShipped", &done.order, &done))
                    .await?;
                Ok(())
            },
        )
}

fn inventory<B: Bus + Clone>(
    service: Service<B>,
    config: &ShopConfig,
    shared: &Arc<Shared>,
) -> Service<B> {
    let (seed, rate) = (config.seed, config.out_of_stock_rate);
    let reserve_state = Arc::clone(shared);
    let release_state = Arc::clone(shared);
    service
        .on(
            "inventory-on-orders",
            "OrderCreated",
            move |ctx, o: Order| {
                let shared = Arc::clone(&reserve_state);
                async move {
                    if chance(seed, "stock", &o.order) < rate {
                        let out = OrderRef {
                            order: o.order.clone(),
                        };
                        ctx.publish(INVENTORY, event("InventoryUnavailable", &o.order, &out))
                            .await?;
                        return Ok(());
                    }
                    {
                        let mut reserved = lock(&shared.reserved);
                        if !reserved.contains_key(&o.order) {
                            *lock(&shared.stock).entry(o.sku.clone()).or_default() -=
                                i64::from(o.quantity);
                            reserved.insert(o.order.clone(), (o.sku.clone(), o.quantity));
                        }
                    }
                    ctx.publish(INVENTORY, event("InventoryReserved", &o.order, &o))
                        .await?;
                    Ok(())
                }
            },
        )
        .on(
            "inventory-on-payments",
            "PaymentFailed",
            move |ctx, f: Failed| {
                let shared = Arc::clone(&release_state);
                async move {
                    let released = lock(&shared.reserved).remove(&f.order);
                    if let Some((sku, quantity)) = released {
                        *lock(&shared.stock).entry(sku).or_default() += i64::from(quantity);
                    }
                    let done = OrderRef {
                        order: f.order.clone(),
                    };
                    ctx.publish(INVENTORY, event("InventoryReleased", &f.order, &done))
                        .await?;
                    Ok(())
                }
            },
        )
}

fn payment<B: Bus + Clone>(
    service: Service<B>,
    gateway: &Arc<Gateway>,
) -> anyhow::Result<Service<B>> {
    let gateway = Arc::clone(gateway);
    Ok(service
        .breaker(GATEWAY, gateway_breaker())?
        .pause_on("payment-on-inventory", GATEWAY)
        .on(
            "payment-on-inventory",
            "InventoryReserved",
            move |ctx, o: Order| {
                let gateway = Arc::clone(&gateway);
                async move {
                    let charged = ctx.call(GATEWAY, gateway.charge(&o.order)).await?;
                    let next = match charged {
                        Charge::Approved => event("PaymentCompleted", &o.order, &o),
                        Charge::Declined => {
                            let failed = Failed {
                                order: o.order.clone(),
                                reason: "card declined".into(),
                            };
                            event("PaymentFailed", &o.order, &failed)
                        }
                    };
                    ctx.publish(PAYMENTS, next).await?;
                    Ok(())
                }
            },
        ))
}

fn shipping<B: Bus + Clone>(service: Service<B>) -> Service<B> {
    service.on(
        "shipping-on-payments",
        "PaymentCompleted",
        |ctx, o: Order| async move {
            let shipment = Shipment {
                shipment: format!("s-{}", o.order),
                order: o.order,
            };
            ctx.publish(
                SHIPPING,
                event("ShipmentCreated", &shipment.order, &shipment),
            )
            .await?;
            Ok(())
        },
    )
}

/// Tries an email gets before it is dead-lettered: 3 in-process tries on
/// each of 4 deliveries.
pub const EMAIL_TRIES: u32 = 12;

/// Whether the email `email` (`<order>/<kind>`) is flaky, and how many of
/// its first tries fail if so: 1 to 13.
pub fn email_failures(seed: u64, rate: f64, email: &str) -> (bool, u32) {
    let flaky = chance(seed, "email", email) < rate;
    let fails = 1 + (chance(seed, "email-tries", email) * f64::from(EMAIL_TRIES + 1)) as u32;
    (flaky, fails)
}

fn notification<B: Bus + Clone>(
    mut service: Service<B>,
    config: &ShopConfig,
    shared: &Arc<Shared>,
) -> Service<B> {
    // Tries per email so far (in memory: a restarted service starts over).
    let tries: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    for (subscription, ty, kind) in [
        (
            "notification-on-inventory",
            "InventoryUnavailable",
            "out of stock",
        ),
        (
            "notification-on-payments",
            "PaymentFailed",
            "payment failed",
        ),
        (
            "notification-on-shipping",
            "ShipmentCreated",
            "order shipped",
        ),
    ] {
        let (shared, tries) = (Arc::clone(shared), Arc::clone(&tries));
        let (seed, rate) = (config.seed, config.email_failure_rate);
        service = service.on(subscription, ty, move |ctx, o: OrderRef| {
            let (shared, tries) = (Arc::clone(&shared), Arc::clone(&tries));
            async move {
                // The flaky mail server: with the rate, an email fails its
                // first 1 to 13 tries (by the seed) — those failing 12 or
                // more end in the dead-letter queue.
                let email = format!("{}/{kind}", o.order);
                let (flaky, fails) = email_failures(seed, rate, &email);
                let tried = {
                    let mut tries = lock(&tries);
                    let n = tries.entry(email.clone()).or_default();
                    *n += 1;
                    *n
                };
                if flaky && tried <= fails {
                    shared.email_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(HandlerError::retry(
                        "the mail server answered 451 try again later",
                    ));
                }
                lock(&tries).remove(&email);
                shared.emails_sent.fetch_add(1, Ordering::Relaxed);
                let sent = Notified {
                    order: o.order.clone(),
                    kind: kind.into(),
                };
                ctx.publish(NOTIFICATIONS, event("NotificationSent", &o.order, &sent))
                    .await?;
                Ok(())
            }
        });
    }
    service
}

fn analytics<B: Bus + Clone>(mut service: Service<B>, shared: &Arc<Shared>) -> Service<B> {
    for ty in [
        "OrderPlaced",
        "OrderCreated",
        "InventoryReserved",
        "InventoryUnavailable",
        "InventoryReleased",
        "PaymentCompleted",
        "PaymentFailed",
        "ShipmentCreated",
        "NotificationSent",
        "OrderShipped",
        "OrderFailed",
    ] {
        let shared = Arc::clone(shared);
        service = service.on(
            "analytics-on-shop",
            ty,
            move |ctx, data: serde_json::Value| {
                let shared = Arc::clone(&shared);
                async move {
                    let ty = ctx.event().event.ty.clone();
                    if ty == "PaymentCompleted"
                        && let Some(cents) = data.get("amount_cents").and_then(|v| v.as_u64())
                    {
                        shared.revenue_cents.fetch_add(cents, Ordering::Relaxed);
                    }
                    *lock(&shared.events_seen).entry(ty).or_default() += 1;
                    Ok(())
                }
            },
        );
    }
    service
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---- the driver ----

/// The gateway of a run that starts now.
pub fn gateway(config: &ShopConfig) -> Arc<Gateway> {
    Arc::new(Gateway {
        seed: config.seed,
        decline_rate: config.payment_failure_rate,
        outage: config.outage,
        start: Instant::now(),
    })
}

/// The gateway of a run whose first order is placed at `start_ms` (ms
/// since the epoch; `now_ms` is the time now): for a service in its own
/// process.
pub fn gateway_from(config: &ShopConfig, start_ms: i64, now_ms: i64) -> Arc<Gateway> {
    let now = Instant::now();
    let start = if start_ms <= now_ms {
        now.checked_sub(Duration::from_millis((now_ms - start_ms) as u64))
            .unwrap_or(now)
    } else {
        now + Duration::from_millis((start_ms - now_ms) as u64)
    };
    Arc::new(Gateway {
        seed: config.seed,
        decline_rate: config.payment_failure_rate,
        outage: config.outage,
        start,
    })
}

/// The order `n` of a run, with its customer, item and amount.
pub fn order_of(config: &ShopConfig, n: u32) -> Order {
    let order = format!("o-{}-{n}", config.run);
    let pick = chance(config.seed, "item", &n.to_string());
    let skus = ["sku-kettle", "sku-lamp", "sku-chair", "sku-desk", "sku-mug"];
    let sku = skus[(pick * skus.len() as f64) as usize % skus.len()];
    let quantity = 1 + (pick * 1000.0) as u32 % 3;
    Order {
        customer: format!("c-{}", n % 37),
        sku: sku.to_string(),
        quantity,
        amount_cents: 500 + (pick * 20_000.0) as u64,
        order,
    }
}

/// Where each partition of `topic` ends now.
pub async fn ends<B: Bus>(bus: &B, topic: &str) -> Result<Vec<u64>, BusError> {
    let info = bus.describe_topic(topic).await?;
    Ok(info.partitions.iter().map(|p| p.next_offset.0).collect())
}

/// Reads `topic` on from `from` (advanced past what was read), handing
/// each event to `each`.
pub async fn read_on<B: Bus>(
    bus: &B,
    topic: &str,
    from: &mut [u64],
    mut each: impl FnMut(&Event),
) -> Result<(), BusError> {
    for (p, next) in from.iter_mut().enumerate() {
        loop {
            let batch = bus
                .read(
                    topic,
                    Partition(p as u32),
                    ReadFrom::Offset(eddy_bus::Offset(*next)),
                    1000,
                )
                .await?;
            if batch.events.is_empty() {
                break;
            }
            batch.events.iter().for_each(|e| each(&e.event));
            *next = batch.next_offset.0;
        }
    }
    Ok(())
}

/// Places the orders at the configured rate.
pub async fn place_orders<B: Bus>(bus: &B, config: &ShopConfig) -> Result<(), BusError> {
    let start = Instant::now();
    for n in 0..config.orders {
        if config.rate > 0 {
            let due = start + Duration::from_secs_f64(f64::from(n) / f64::from(config.rate));
            tokio::time::sleep_until(due.into()).await;
        }
        let o = order_of(config, n);
        let placed = event("OrderPlaced", &o.order, &o)
            .with_id(o.order.clone())
            .with_correlation_id(o.order.clone())
            .with_source("storefront");
        bus.publish(ORDERS, placed).await?;
    }
    Ok(())
}

/// What became of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub placed: u32,
    pub shipped: u32,
    /// Failed orders by reason.
    pub failed: BTreeMap<String, u32>,
    /// Orders with no final event when the driver stopped waiting.
    pub not_final: Vec<String>,
    /// Reported handler failures by what happened next (`retry`,
    /// `redeliver`, `dead-letter`) and by service.
    pub failures: BTreeMap<(String, String), u32>,
    /// Events dead-lettered in this run, by subscription.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Breaker transitions: (seconds since the first order, from, to, reason).
    pub transitions: Vec<(f64, String, String, String)>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn failed_total(&self) -> u32 {
        self.failed.values().sum()
    }

    pub fn all_final(&self) -> bool {
        self.not_final.is_empty() && self.shipped + self.failed_total() == self.placed
    }
}

/// The dead-letter counters of every subscription.
pub async fn dead_lettered<B: Bus>(bus: &B) -> Result<BTreeMap<String, u64>, BusError> {
    let mut counts = BTreeMap::new();
    for (name, _) in SUBSCRIPTIONS {
        let stats = bus.subscription_stats(name).await?;
        counts.insert(name.to_string(), stats.dead_lettered);
    }
    Ok(counts)
}

/// Where a run's reading starts: the ends of the topics it reads, and the
/// dead-letter counters, before the first order.
#[derive(Debug, Clone)]
pub struct Marks {
    orders: Vec<u64>,
    failures: Vec<u64>,
    breakers: Vec<u64>,
    dead: BTreeMap<String, u64>,
}

pub async fn marks<B: Bus>(bus: &B) -> Result<Marks, BusError> {
    Ok(Marks {
        orders: ends(bus, ORDERS).await?,
        failures: ends(bus, FAILURES).await?,
        breakers: ends(bus, BREAKERS).await?,
        dead: dead_lettered(bus).await?,
    })
}

/// Waits (up to the deadline) until every order of the run has a final
/// event, then reads what happened. `wake_every` is how often it looks.
pub async fn await_final<B: Bus>(
    bus: &B,
    config: &ShopConfig,
    mut marks: Marks,
    started: Instant,
) -> Result<Summary, BusError> {
    let prefix = format!("o-{}-", config.run);
    let mut finals: HashMap<String, Option<String>> = HashMap::new();
    let deadline = started + config.deadline;
    loop {
        read_on(bus, ORDERS, &mut marks.orders, |e| {
            let data: Option<Failed> = serde_json::from_slice(&e.data).ok();
            match (e.ty.as_str(), data) {
                ("OrderShipped", _) => {
                    if let Some(order) = e.key.as_deref().filter(|k| k.starts_with(&prefix)) {
                        finals.insert(order.to_string(), None);
                    }
                }
                ("OrderFailed", Some(f)) if f.order.starts_with(&prefix) => {
                    finals.insert(f.order, Some(f.reason));
                }
                _ => {}
            }
        })
        .await?;
        if finals.len() as u32 >= config.orders || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    // Dead letters and failure reports trail the final events a little
    // (an email retried after its order shipped): wait for the services'
    // settled work, up to the backoff's longest wait.
    let mut summary = Summary {
        placed: config.orders,
        elapsed,
        ..Summary::default()
    };
    for n in 0..config.orders {
        let order = format!("{prefix}{n}");
        match finals.get(&order) {
            Some(None) => summary.shipped += 1,
            Some(Some(reason)) => *summary.failed.entry(reason.clone()).or_default() += 1,
            None => summary.not_final.push(order),
        }
    }
    Ok(summary)
}

/// Adds the failure reports, breaker transitions and dead letters since
/// `marks` to `summary`: read once the services have stopped.
pub async fn tally<B: Bus>(
    bus: &B,
    marks: &mut Marks,
    first_order_ms: i64,
    summary: &mut Summary,
) -> Result<(), BusError> {
    read_on(bus, FAILURES, &mut marks.failures, |e| {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&e.data) else {
            return;
        };
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
        *summary
            .failures
            .entry((text("next"), text("service")))
            .or_default() += 1;
    })
    .await?;
    let mut transitions = Vec::new();
    read_on(bus, BREAKERS, &mut marks.breakers, |e| {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&e.data) else {
            return;
        };
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
        let at = v.get("at_ms").and_then(|x| x.as_i64()).unwrap_or(0);
        transitions.push((
            (at - first_order_ms) as f64 / 1000.0,
            text("from"),
            text("to"),
            text("reason"),
        ));
    })
    .await?;
    transitions.sort_by(|a, b| a.0.total_cmp(&b.0));
    summary.transitions = transitions;
    for (name, now) in dead_lettered(bus).await? {
        let before = marks.dead.get(&name).copied().unwrap_or(0);
        if now > before {
            summary.dead_lettered.insert(name, now - before);
        }
    }
    Ok(())
}

/// The summary as text.
pub fn render(summary: &Summary, config: &ShopConfig, shared: Option<&Shared>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let secs = summary.elapsed.as_secs_f64();
    let failed: Vec<String> = summary
        .failed
        .iter()
        .map(|(reason, n)| format!("{} {n}", reason.replace('_', " ")))
        .collect();
    let _ = writeln!(
        out,
        "orders: placed {} · shipped {} · failed {}{} · not final {}",
        summary.placed,
        summary.shipped,
        summary.failed_total(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", failed.join(", "))
        },
        summary.not_final.len(),
    );
    let by = |next: &str| -> (u32, Vec<String>) {
        let mut total = 0;
        let mut parts = Vec::new();
        for ((n, service), count) in &summary.failures {
            if n == next {
                total += count;
                parts.push(format!("{service} {count}"));
            }
        }
        (total, parts)
    };
    for (next, what) in [
        ("retry", "retried in-process"),
        ("redeliver", "handed back for redelivery (the backoff)"),
        ("dead-letter", "failed for good"),
    ] {
        let (total, parts) = by(next);
        if total > 0 {
            let _ = writeln!(
                out,
                "handler failures {what}: {total} ({})",
                parts.join(", ")
            );
        }
    }
    let dead: u64 = summary.dead_lettered.values().sum();
    let _ = writeln!(
        out,
        "dead-lettered: {dead}{}",
        summary
            .dead_lettered
            .iter()
            .map(|(s, n)| format!(" · {s} {n} (eddy dlq list {s})"))
            .collect::<String>()
    );
    if summary.transitions.is_empty() {
        let _ = writeln!(out, "circuit breaker {GATEWAY}: stayed closed");
    } else {
        let _ = writeln!(
            out,
            "circuit breaker {GATEWAY}: {} transitions",
            summary.transitions.len()
        );
        for (at, from, to, reason) in &summary.transitions {
            let _ = writeln!(out, "  {at:>7.3} s  {from} -> {to}  ({reason})");
        }
    }
    if let Some(shared) = shared {
        let _ = writeln!(
            out,
            "analytics: revenue {:.2} from {} completed payments; emails sent {}, email failures {}",
            shared.revenue_cents.load(Ordering::Relaxed) as f64 / 100.0,
            lock(&shared.events_seen)
                .get("PaymentCompleted")
                .copied()
                .unwrap_or(0),
            shared.emails_sent.load(Ordering::Relaxed),
            shared.email_failures.load(Ordering::Relaxed),
        );
    }
    let _ = writeln!(
        out,
        "{} orders final in {secs:.2} s: {:.1} orders/s (seed {}, run {})",
        summary.placed as usize - summary.not_final.len(),
        f64::from(summary.placed) / secs.max(1e-9),
        config.seed,
        config.run
    );
    out
}

/// The subscriptions, for the tracer and the tests.
pub fn subscriptions() -> impl Iterator<Item = &'static str> {
    SUBSCRIPTIONS.iter().map(|(name, _)| *name)
}

/// The order ids still missing a final event, shortened for a message.
pub fn missing(summary: &Summary) -> String {
    let some: Vec<&str> = summary
        .not_final
        .iter()
        .take(5)
        .map(String::as_str)
        .collect();
    let more = summary.not_final.len().saturating_sub(some.len());
    let mut s = some.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// Distinct values, for the tests.
#[cfg(test)]
fn distinct<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> usize {
    items
        .into_iter()
        .collect::<std::collections::HashSet<T>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_is_uniform_enough_and_depends_on_every_input() {
        let draws: Vec<f64> = (0..10_000)
            .map(|n| chance(7, "stock", &format!("o-{n}")))
            .collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below = draws.iter().filter(|d| **d < 0.1).count();
        assert!((800..1200).contains(&below), "{below} of 10,000 under 0.1");
        assert_ne!(chance(7, "stock", "o-1"), chance(8, "stock", "o-1"));
        assert_ne!(chance(7, "stock", "o-1"), chance(7, "payment", "o-1"));
        assert_eq!(distinct(draws.iter().map(|d| d.to_bits())), draws.len());
    }
}
