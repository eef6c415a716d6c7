//! A service: handlers for event types on subscriptions, run over any
//! [`Bus`] — embedded, a server through the client, or a scale-out backend.
//!
//! ```text
//!  per subscription: fetch (as many as free slots, once half are free)
//!    ──▶ a task per chunk of ≤ 512 deliveries, handled concurrently:
//!     upcast the data to the current version (if old), decode it (serde JSON)
//!     the handler, with a timeout; a transient error is retried in-process;
//!     a call refused by a circuit breaker waits for it in-process
//!     Ok ─▶ ack · Retry ─▶ nack (the subscription's backoff, or a delay)
//!     Permanent, undecodable, or a newer version ─▶ terminate (to the DLQ)
//!     no handler for the type ─▶ ack (counted as skipped)
//!  a chunk acks in batches: what is done when nothing else is ready
//! ```
//!
//! A handler publishes through its [`Context`], which stamps each event as
//! a follow-up of the one being handled (see [`crate::causal`]) and, when
//! the handler left its id empty, gives it an id derived from the event
//! being handled: a handler run again for the same event publishes the
//! same ids, which the bus's dedup window drops. With a
//! [processed-id store](crate::processed) the service is an idempotent
//! consumer: an event already processed is acked without calling its
//! handler. Each handled event runs in a `tracing` span `handle`.
//! Concurrency is bounded per service (slots shared by all subscriptions)
//! and each handler call by a timeout; [`Running::stop`] stops fetching and
//! waits for the handlers in flight, whose outcomes are still settled.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use eddy_bus::{
    AckId, Bus, BusError, Delivery, Event, FETCH_MAX, FetchOptions, NackOptions, Published,
    StoredEvent, WAIT_MS_MAX,
};
use eddy_log::{Clock, SystemClock};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::breaker::{Breaker, BreakerConfig, BreakerConfigError, BreakerState, Outcome, Permit};
use crate::causal::{self, RandomIds, TraceParent};
use crate::processed::{Claim, ClaimGuard, ProcessedIds};
use crate::version::Upcasters;

/// How a handler failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// Worth trying again: retried in-process, then redelivered by the
    /// broker (after `delay_ms`, or the subscription's backoff).
    Retry {
        reason: String,
        delay_ms: Option<u64>,
    },
    /// Trying again cannot help: the event goes to the dead-letter queue.
    Permanent { reason: String },
    /// A circuit breaker refused the call ([`Context::call`]). The event
    /// waits in the service until the breaker lets calls through again —
    /// which uses no delivery attempt — and is handed back to the broker
    /// only if that takes longer than the handler timeout.
    Refused {
        breaker: String,
        /// The time left while open; `None` while half-open.
        retry_after_ms: Option<u64>,
    },
}

impl HandlerError {
    pub fn retry(reason: impl Into<String>) -> HandlerError {
        HandlerError::Retry {
            reason: reason.into(),
            delay_ms: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> HandlerError {
        HandlerError::Permanent {
            reason: reason.into(),
        }
    }
}

/// A failed publish from a handler is worth retrying unless the event
/// itself was refused.
impl From<BusError> for HandlerError {
    fn from(e: BusError) -> HandlerError {
        match e {
            BusError::InvalidArgument { .. } | BusError::LimitExceeded { .. } => {
                HandlerError::permanent(e.to_string())
            }
            other => HandlerError::retry(other.to_string()),
        }
    }
}

/// The settings of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The service's name: the `source` of the events its handlers publish
    /// (unless they set one), and part of their derived ids.
    pub name: String,
    /// Handler calls in flight at once, over all subscriptions.
    pub concurrency: u32,
    /// Longest a handler call may take; past it the call is abandoned and
    /// counts as a `Retry` (in-process retries, then redelivery).
    pub handler_timeout: Duration,
    /// In-process attempts after a `Retry` before the event is handed back
    /// to the broker.
    pub in_process_retries: u32,
    /// Pause between in-process attempts.
    pub in_process_delay: Duration,
    /// How long a fetch waits when nothing is ready; also the longest a
    /// paused subscription sleeps before it looks at its breakers again.
    pub fetch_wait_ms: u64,
    /// Where circuit breaker state changes are published (as
    /// `CircuitBreakerStateChanged` events), if anywhere.
    pub breaker_events_topic: Option<String>,
    /// Where failed handler calls are reported (as `HandlerFailed` events
    /// in the failed event's correlation), if anywhere: what `eddy trace`
    /// marks as retries.
    pub outcomes_topic: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            name: "service".to_string(),
            concurrency: 16,
            handler_timeout: Duration::from_secs(30),
            in_process_retries: 2,
            in_process_delay: Duration::from_millis(50),
            fetch_wait_ms: 500,
            breaker_events_topic: None,
            outcomes_topic: None,
        }
    }
}

/// What a handler gets besides the event's data.
#[derive(Debug, Clone)]
pub struct Context<B> {
    delivery: Arc<Handling<B>>,
    /// Follow-ups published by this call of the handler.
    published: Arc<AtomicU32>,
}

/// What every call of the handler for one delivery shares.
#[derive(Debug)]
struct Handling<B> {
    bus: B,
    event: StoredEvent,
    trace: TraceParent,
    attempt: u32,
    breakers: Arc<Breakers>,
    service: Arc<str>,
    subscription: Arc<String>,
    /// Made when first asked for.
    key: std::sync::OnceLock<Arc<str>>,
}

impl<B> Handling<B> {
    fn key(&self) -> &Arc<str> {
        self.key
            .get_or_init(|| idempotency_key(&self.service, &self.subscription, &self.event.event))
    }
}

impl<B: Bus> Context<B> {
    /// The event being handled, as stored.
    pub fn event(&self) -> &StoredEvent {
        &self.delivery.event
    }

    /// 1 for the first delivery, 2 for the first redelivery, …
    pub fn attempt(&self) -> u32 {
        self.delivery.attempt
    }

    /// The handler's trace context.
    pub fn trace(&self) -> &TraceParent {
        &self.delivery.trace
    }

    /// The bus, for reads; publish through [`Context::publish`].
    pub fn bus(&self) -> &B {
        &self.delivery.bus
    }

    /// What identifies the event being handled for this subscription: the
    /// key of the processed-id store. An effect outside the bus that must
    /// happen once stores it in the same transaction.
    pub fn idempotency_key(&self) -> &str {
        self.delivery.key()
    }

    /// Publishes `event` as a follow-up of the one being handled. An empty
    /// id becomes one derived from the idempotency key and the number of
    /// follow-ups this call published before it, so a handler run again for
    /// the same event (a retry, a redelivery) publishes the same ids, and
    /// the bus's dedup window keeps only the first — provided the handler
    /// publishes its follow-ups one after the other, not concurrently. The
    /// source `eddy` (the default) becomes the service's name.
    pub async fn publish(&self, topic: &str, mut event: Event) -> Result<Published, BusError> {
        let d = &self.delivery;
        let n = self.published.fetch_add(1, Ordering::Relaxed);
        if event.id.is_empty() {
            event.id = derived_id(d.key(), n);
        }
        if event.source == "eddy" {
            event.source = d.service.to_string();
        }
        let event = causal::follow_up(&d.event.event, &d.trace, event);
        d.bus.publish(topic, event).await
    }

    /// Calls a dependency through its circuit breaker `breaker`: refused
    /// at once while it is open or its probes are out
    /// ([`HandlerError::Refused`]), and the
    /// outcome — an error, or a success slower than the breaker allows —
    /// counted. An error of the call is a `Retry`.
    pub async fn call<T, E, Fut>(&self, breaker: &str, call: Fut) -> Result<T, HandlerError>
    where
        E: std::fmt::Display,
        Fut: Future<Output = Result<T, E>>,
    {
        let (breakers, bus) = (&self.delivery.breakers, &self.delivery.bus);
        let Some(guard) = breakers.by_name.get(breaker) else {
            return Err(HandlerError::permanent(format!(
                "the service has no circuit breaker named {breaker}"
            )));
        };
        let clock = &breakers.clock;
        let permit = guard.lock().try_call(clock.now_ms());
        breakers.report(bus, guard).await;
        let permit = match permit {
            Ok(permit) => permit,
            Err(rejected) => {
                breakers.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(HandlerError::Refused {
                    breaker: breaker.to_string(),
                    retry_after_ms: rejected.retry_after_ms,
                });
            }
        };
        // A call abandoned before it returns (a handler timeout, a panic)
        // counts as a failure: a probe must never stay out for good.
        let mut pending = PendingCall {
            guard,
            clock: clock.as_ref(),
            permit: Some(permit),
        };
        let result = call.await;
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        pending.finish(outcome);
        breakers.report(bus, guard).await;
        result.map_err(|e| HandlerError::retry(format!("{breaker}: {e}")))
    }
}

/// A breaker's call in progress; dropped unfinished, it records a failure.
struct PendingCall<'a> {
    guard: &'a Guard,
    clock: &'a dyn Clock,
    permit: Option<Permit>,
}

impl PendingCall<'_> {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            self.guard
                .lock()
                .record(permit, outcome, self.clock.now_ms());
        }
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Failure);
    }
}

/// The id of follow-up `n` of the event with idempotency key `key`: 32 hex
/// digits of a SHA-256 over both.
fn derived_id(key: &str, n: u32) -> String {
    let digest = Sha256::new()
        .chain_update(key.as_bytes())
        .chain_update(n.to_be_bytes())
        .finalize();
    let mut id = String::with_capacity(32);
    for b in &digest[..16] {
        id.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        id.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    id
}

/// The idempotency key of `event` on `subscription` of service `service`:
/// the producer's own key if the event names one (its `idempotencykey`
/// header: a saga's command keeps it over every attempt, each with its own
/// id), else source + id, which CloudEvents make unique per event. A key
/// or source and id longer than 256 bytes are replaced by their SHA-256,
/// so that every key fits the store.
fn idempotency_key(service: &str, subscription: &str, event: &Event) -> Arc<str> {
    let sep = '\u{1f}';
    if let Some((_, key)) = event
        .headers
        .iter()
        .find(|(n, _)| n == crate::saga::IDEMPOTENCY_KEY_HEADER)
    {
        if key.len() <= 256 {
            return Arc::from(format!("{service}{sep}{subscription}{sep}key{sep}{key}"));
        }
        let hex = crate::sha256_hex(&[key.as_bytes()]);
        return Arc::from(format!("{service}{sep}{subscription}{sep}key-sha256:{hex}"));
    }
    let (source, id) = (&event.source, &event.id);
    if source.len() + id.len() <= 256 {
        return Arc::from(format!(
            "{service}{sep}{subscription}{sep}{source}{sep}{id}"
        ));
    }
    let hex = crate::sha256_hex(&[source.as_bytes(), &[0x1f], id.as_bytes()]);
    Arc::from(format!("{service}{sep}{subscription}{sep}sha256:{hex}"))
}

/// One named breaker.
#[derive(Debug)]
struct Guard {
    name: String,
    breaker: std::sync::Mutex<Breaker>,
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A service's breakers, its clock, and where their changes go.
#[derive(Debug)]
struct Breakers {
    by_name: HashMap<String, Arc<Guard>>,
    clock: Arc<dyn Clock>,
    events_topic: Option<String>,
    stats: Arc<ServiceStats>,
}

impl Breakers {
    /// Logs, counts and publishes the state changes of `guard`.
    async fn report<B: Bus>(&self, bus: &B, guard: &Guard) {
        let changes = guard.lock().drain_transitions();
        for t in changes {
            tracing::info!(
                breaker = %guard.name, from = %t.from, to = %t.to, reason = %t.reason,
                "circuit breaker state change"
            );
            self.stats
                .breaker_transitions
                .fetch_add(1, Ordering::Relaxed);
            if let Some(topic) = &self.events_topic {
                let data = serde_json::json!({
                    "breaker": guard.name,
                    "from": t.from.to_string(),
                    "to": t.to.to_string(),
                    "at_ms": t.at_ms,
                    "reason": t.reason,
                });
                let event = Event::new("CircuitBreakerStateChanged", data.to_string())
                    .with_key(guard.name.clone());
                if bus.publish(topic, event).await.is_err() {
                    self.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// How long `names` keep fetching paused (the longest time left of an
    /// open one), and whether any is half-open (fetch one at a time).
    fn pause(&self, names: &[String]) -> (Option<u64>, bool) {
        let now = self.clock.now_ms();
        let (mut wait, mut probing) = (None::<u64>, false);
        for guard in names.iter().filter_map(|n| self.by_name.get(n)) {
            let breaker = guard.lock();
            if let Some(ms) = breaker.retry_after_ms(now) {
                wait = Some(wait.map_or(ms, |w| w.max(ms)));
            }
            probing |= breaker.state() != BreakerState::Closed;
        }
        (wait, probing)
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
/// Decodes the (upcast) data as its handler's type and calls it; the data
/// is borrowed, so an in-process retry decodes it again without a copy.
type Handler<B> = Arc<dyn Fn(Context<B>, Data<'_>) -> HandlerFuture + Send + Sync>;

/// Limits of one handler, beyond the service's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerOptions {
    /// Calls of this handler in flight at once (within the service's
    /// `concurrency`); `None`: only the service's bound.
    pub concurrency: Option<u32>,
    /// Longest one call may take; `None`: the service's `handler_timeout`.
    pub timeout: Option<Duration>,
}

/// A handler and its limits.
struct Route<B> {
    call: Handler<B>,
    timeout: Option<Duration>,
    limit: Option<Arc<Semaphore>>,
}

/// An event's data as its handler decodes it: as stored when it is of the
/// type's current version, else upcast.
#[derive(Debug, Clone, Copy)]
enum Data<'a> {
    Current(&'a [u8]),
    Upcast(&'a serde_json::Value),
}

/// Counts of what a service did.
#[derive(Debug, Default)]
pub struct ServiceStats {
    pub handled: AtomicU64,
    /// Fetches made, and the deliveries they returned.
    pub fetches: AtomicU64,
    pub delivered: AtomicU64,
    /// Events of a type no handler is registered for (acked).
    pub skipped: AtomicU64,
    /// In-process retries.
    pub retried: AtomicU64,
    /// Handed back to the broker for redelivery.
    pub nacked: AtomicU64,
    /// Sent to the dead-letter queue.
    pub terminated: AtomicU64,
    /// Calls refused by an open or probing circuit breaker.
    pub rejected: AtomicU64,
    /// Circuit breaker state changes.
    pub breaker_transitions: AtomicU64,
    /// Times a subscription's fetching waited for an open breaker.
    pub paused: AtomicU64,
    /// Events found in the processed-id store (acked, not handled).
    pub duplicates: AtomicU64,
    /// Calls of the bus that failed (fetch, ack, nack, terminate).
    pub bus_errors: AtomicU64,
}

/// A service being put together: its handlers and settings.
pub struct Service<B> {
    bus: B,
    config: ServiceConfig,
    upcasters: Arc<Upcasters>,
    /// Per subscription, per event type.
    routes: HashMap<String, HashMap<String, Route<B>>>,
    breakers: HashMap<String, Arc<Guard>>,
    /// Per subscription, the breakers whose opening pauses its fetching.
    pauses: HashMap<String, Vec<String>>,
    clock: Arc<dyn Clock>,
    processed: Option<ProcessedIds>,
}

impl<B> std::fmt::Debug for Service<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes: Vec<(&String, Vec<&String>)> = self
            .routes
            .iter()
            .map(|(sub, types)| (sub, types.keys().collect()))
            .collect();
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("upcasters", &self.upcasters)
            .field("routes", &routes)
            .finish_non_exhaustive()
    }
}

impl<B: Bus + Clone + Send + Sync + 'static> Service<B> {
    pub fn new(bus: B, config: ServiceConfig) -> Service<B> {
        Service {
            bus,
            config,
            upcasters: Arc::new(Upcasters::new()),
            routes: HashMap::new(),
            breakers: HashMap::new(),
            pauses: HashMap::new(),
            clock: Arc::new(SystemClock),
            processed: None,
        }
    }

    /// The clock of the breakers (the system's by default).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Service<B> {
        self.clock = clock;
        self
    }

    /// Adds a circuit breaker, for handlers to call a dependency through
    /// ([`Context::call`]).
    pub fn breaker(
        mut self,
        name: &str,
        config: BreakerConfig,
    ) -> Result<Service<B>, BreakerConfigError> {
        let guard = Guard {
            name: name.to_string(),
            breaker: std::sync::Mutex::new(Breaker::new(config)?),
        };
        self.breakers.insert(name.to_string(), Arc::new(guard));
        Ok(self)
    }

    /// Pauses fetching on `subscription` while the breaker `breaker` is
    /// open, so its events wait in the broker instead of failing fast one
    /// delivery attempt at a time; while it is half-open, fetches one
    /// event at a time.
    pub fn pause_on(mut self, subscription: &str, breaker: &str) -> Service<B> {
        self.pauses
            .entry(subscription.to_string())
            .or_default()
            .push(breaker.to_string());
        self
    }

    /// Makes the service an idempotent consumer: an event whose key is in
    /// `store` is acked without calling its handler, and a handled event's
    /// key is recorded durably before its ack (see [`crate::processed`]).
    pub fn processed_ids(mut self, store: ProcessedIds) -> Service<B> {
        self.processed = Some(store);
        self
    }

    /// The upcasters applied before decoding.
    pub fn upcasters(mut self, upcasters: Upcasters) -> Service<B> {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// Handles events of type `ty` delivered on `subscription`, decoded
    /// from JSON (after upcasting) as `T`.
    pub fn on<T, F, Fut>(self, subscription: &str, ty: &str, handler: F) -> Service<B>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Context<B>, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.on_with(subscription, ty, HandlerOptions::default(), handler)
    }

    /// [`Service::on`] with limits of this handler's own: how many of its
    /// calls run at once, and how long one may take.
    pub fn on_with<T, F, Fut>(
        mut self,
        subscription: &str,
        ty: &str,
        options: HandlerOptions,
        handler: F,
    ) -> Service<B>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Context<B>, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler<B> = Arc::new(move |ctx, data| {
            let decoded = match data {
                Data::Current(bytes) => serde_json::from_slice(bytes),
                Data::Upcast(value) => T::deserialize(value),
            }
            .map_err(|e| HandlerError::permanent(format!("the data does not decode: {e}")));
            let handler = Arc::clone(&handler);
            Box::pin(async move { handler(ctx, decoded?).await })
        });
        let route = Route {
            call: erased,
            timeout: options.timeout,
            limit: options
                .concurrency
                .map(|n| Arc::new(Semaphore::new(n.max(1) as usize))),
        };
        self.routes
            .entry(subscription.to_string())
            .or_default()
            .insert(ty.to_string(), route);
        self
    }

    /// Starts fetching on every subscription with a handler.
    pub fn start(self) -> Running {
        let (stop, stopped) = watch::channel(false);
        // What an idle subscription may hold while it waits for events.
        let quiet_share = (self.config.concurrency / self.routes.len().max(1) as u32).max(1);
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(self.config.concurrency.max(1) as usize)),
            quiet_share,
            name: Arc::from(self.config.name.as_str()),
            processed: self.processed,
            config: self.config,
            upcasters: self.upcasters,
            stats: Arc::new(ServiceStats::default()),
        });
        let stats = Arc::clone(&shared.stats);
        let breakers = Arc::new(Breakers {
            by_name: self.breakers,
            clock: self.clock,
            events_topic: shared.config.breaker_events_topic.clone(),
            stats: Arc::clone(&stats),
        });
        let mut loops = JoinSet::new();
        let mut pauses = self.pauses;
        for (subscription, handlers) in self.routes {
            let pause_on = pauses.remove(&subscription).unwrap_or_default();
            loops.spawn(consume(
                self.bus.clone(),
                Arc::new(subscription),
                Arc::new(handlers),
                Arc::clone(&shared),
                (Arc::clone(&breakers), pause_on),
                stopped.clone(),
            ));
        }
        Running { stop, loops, stats }
    }
}

/// A started service.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
    stats: Arc<ServiceStats>,
}

impl Running {
    pub fn stats(&self) -> &ServiceStats {
        &self.stats
    }

    /// Stops fetching, waits for the handlers in flight (their outcomes are
    /// settled), and returns the counts.
    pub async fn stop(mut self) -> Arc<ServiceStats> {
        let _ = self.stop.send(true);
        while self.loops.join_next().await.is_some() {}
        self.stats
    }
}

struct Shared {
    /// Slots an idle subscription's long poll may hold: its share of the
    /// concurrency.
    quiet_share: u32,
    name: Arc<str>,
    processed: Option<ProcessedIds>,
    config: ServiceConfig,
    upcasters: Arc<Upcasters>,
    slots: Arc<Semaphore>,
    stats: Arc<ServiceStats>,
}

/// Fetches from `subscription` while slots are free, handing each fetch
/// to tasks of up to [`CHUNK`] deliveries, until stopped; then waits for
/// its tasks.
async fn consume<B: Bus + Clone + Send + Sync + 'static>(
    bus: B,
    subscription: Arc<String>,
    handlers: Arc<HashMap<String, Route<B>>>,
    shared: Arc<Shared>,
    (breakers, pause_on): (Arc<Breakers>, Vec<String>),
    mut stopped: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let wait_ms = shared.config.fetch_wait_ms.min(WAIT_MS_MAX);
    let idle = Duration::from_millis(wait_ms.max(10));
    // The last fetch found nothing.
    let mut quiet = false;
    loop {
        // Busy: wait for a batch of free slots — half of them, so that a
        // busy service fetches in batches rather than one event per freed
        // slot (a fetch reads and checks the log: few large ones cost less
        // than many small ones) — take as many as are free, and fetch
        // without waiting. Quiet: wait for the next events holding at most
        // this subscription's share of the slots, so that a long poll does
        // not keep the slots the service's other subscriptions need.
        let want = if quiet {
            1
        } else {
            (shared.config.concurrency / 2).max(1)
        };
        let first = tokio::select! {
            permit = Arc::clone(&shared.slots).acquire_many_owned(want) => permit,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let Ok(mut permit) = first else { break };
        let free = shared.slots.available_permits() as u32;
        let more = if quiet {
            free.min(shared.quiet_share - 1)
        } else {
            free
        };
        if more > 0
            && let Ok(more) = Arc::clone(&shared.slots).try_acquire_many_owned(more)
        {
            permit.merge(more);
        }
        // Looked at with the slots in hand: a handler that just opened a
        // breaker has settled its event and freed its slot.
        let (wait, probing) = breakers.pause(&pause_on);
        if let Some(ms) = wait {
            drop(permit);
            shared.stats.paused.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms).min(idle)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            continue;
        }
        // While a breaker probes, one event at a time.
        let max = if probing {
            1
        } else {
            (permit.num_permits() as u32).min(FETCH_MAX)
        };
        let options = FetchOptions {
            max,
            wait_ms: if quiet { wait_ms } else { 0 },
        };
        let fetched = tokio::select! {
            fetched = bus.fetch(&subscription, options) => fetched,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let deliveries = match fetched {
            Ok(d) => {
                quiet = d.is_empty();
                shared.stats.fetches.fetch_add(1, Ordering::Relaxed);
                shared
                    .stats
                    .delivered
                    .fetch_add(d.len() as u64, Ordering::Relaxed);
                d
            }
            Err(_) => {
                shared.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
                // Do not spin on a failing bus.
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                continue;
            }
        };
        // A task per chunk: the chunks of a fetch run on both cores, and
        // each acks its deliveries in few `ack_all` calls.
        let mut deliveries = deliveries.into_iter();
        loop {
            let chunk: Vec<(Delivery, OwnedSemaphorePermit)> = deliveries
                .by_ref()
                .take(CHUNK)
                .map_while(|d| permit.split(1).map(|slot| (d, slot)))
                .collect();
            if chunk.is_empty() {
                break;
            }
            let at = Settle {
                bus: bus.clone(),
                subscription: Arc::clone(&subscription),
                handlers: Arc::clone(&handlers),
                shared: Arc::clone(&shared),
                breakers: Arc::clone(&breakers),
            };
            tasks.spawn(settle_chunk(at, chunk));
        }
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Deliveries handled by one task.
const CHUNK: usize = 512;
/// How long a handled event whose key could not be recorded waits before
/// its redelivery.
const STORE_RETRY_MS: u64 = 1000;
/// Most acks in one `ack_all`.
const ACK_BATCH_MAX: usize = 1000;

/// Where the deliveries of a chunk are handled and settled.
struct Settle<B> {
    bus: B,
    subscription: Arc<String>,
    handlers: Arc<HashMap<String, Route<B>>>,
    shared: Arc<Shared>,
    breakers: Arc<Breakers>,
}

/// What became of one delivery.
enum Verdict {
    /// Handled; the claimed key (with a processed-id store) is recorded
    /// before the ack.
    Ack(Option<ClaimGuard>),
    /// Found in the processed-id store.
    Duplicate,
    Skip,
    Nack {
        reason: String,
        delay_ms: Option<u64>,
    },
    Terminate(String),
}

/// Handles a chunk of deliveries concurrently, each holding its slot until
/// its handler is done, and settles them: acks go in batches — whatever
/// is done when nothing else is ready, as a group commit does with fsyncs
/// — so a busy subscription pays one journal write per batch, not per
/// event, and a slow handler does not hold back the acks of fast ones.
async fn settle_chunk<B: Bus + Clone + Send + Sync + 'static>(
    at: Settle<B>,
    chunk: Vec<(Delivery, OwnedSemaphorePermit)>,
) {
    let at = &at;
    let mut running: FuturesUnordered<_> = chunk
        .into_iter()
        .map(|(delivery, slot)| async move {
            let Delivery {
                ack_id,
                attempt,
                event,
                lease_deadline_ms,
            } = delivery;
            let lease = Lease {
                id: &ack_id,
                deadline_ms: lease_deadline_ms,
            };
            let verdict = judge(at, event, (lease, attempt)).await;
            drop(slot);
            (ack_id, verdict)
        })
        .collect();
    let stats = &at.shared.stats;
    let mut acks: Vec<(AckId, Option<ClaimGuard>)> = Vec::new();
    loop {
        let next = match running.next().now_or_never() {
            Some(next) => next,
            None => {
                flush_acks(at, &mut acks).await;
                running.next().await
            }
        };
        let Some((id, verdict)) = next else { break };
        let settled = match verdict {
            Verdict::Ack(guard) => {
                stats.handled.fetch_add(1, Ordering::Relaxed);
                acks.push((id, guard));
                Ok(())
            }
            Verdict::Duplicate => {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                acks.push((id, None));
                Ok(())
            }
            Verdict::Skip => {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                acks.push((id, None));
                Ok(())
            }
            Verdict::Nack { reason, delay_ms } => {
                stats.nacked.fetch_add(1, Ordering::Relaxed);
                let options = NackOptions {
                    delay_ms,
                    error: Some(reason),
                };
                Box::pin(at.bus.nack(&at.subscription, &id, options)).await
            }
            Verdict::Terminate(reason) => {
                stats.terminated.fetch_add(1, Ordering::Relaxed);
                Box::pin(at.bus.terminate(&at.subscription, &id, &reason)).await
            }
        };
        // A lost lease or a lost connection: the broker redelivers.
        if settled.is_err() {
            stats.bus_errors.fetch_add(1, Ordering::Relaxed);
        }
        if acks.len() >= ACK_BATCH_MAX {
            flush_acks(at, &mut acks).await;
        }
    }
    flush_acks(at, &mut acks).await;
}

/// Records the claimed keys of `acks` (one append), then acks them (one
/// `ack_all`). A key is on disk before its event is acked; if recording
/// fails, nothing is acked and the events are redelivered.
async fn flush_acks<B: Bus>(at: &Settle<B>, acks: &mut Vec<(AckId, Option<ClaimGuard>)>) {
    if acks.is_empty() {
        return;
    }
    let stats = &at.shared.stats;
    let batch = std::mem::take(acks);
    let (mut ids, mut claimed, mut guards) = (Vec::new(), Vec::new(), Vec::new());
    for (id, guard) in batch {
        match guard {
            Some(guard) => {
                claimed.push(id);
                guards.push(guard);
            }
            None => ids.push(id),
        }
    }
    match &at.shared.processed {
        Some(store) if !guards.is_empty() => match store.record(guards).await {
            Ok(()) => ids.append(&mut claimed),
            Err(e) => {
                // Handled but not recorded: not acked, but handed back to
                // be handled again after a pause, rather than left to
                // their leases.
                tracing::error!(error = %e, "the processed-id store failed: handled events are redelivered");
                stats
                    .bus_errors
                    .fetch_add(claimed.len() as u64, Ordering::Relaxed);
                for id in &claimed {
                    let options = NackOptions {
                        delay_ms: Some(STORE_RETRY_MS),
                        error: Some(format!("the processed-id store failed: {e}")),
                    };
                    let _ = at.bus.nack(&at.subscription, id, options).await;
                }
            }
        },
        _ => ids.append(&mut claimed),
    }
    if ids.is_empty() {
        return;
    }
    let failed = match at.bus.ack_all(&at.subscription, &ids).await {
        Ok(results) => results.iter().filter(|r| r.is_err()).count(),
        Err(_) => ids.len(),
    };
    if failed > 0 {
        stats.bus_errors.fetch_add(failed as u64, Ordering::Relaxed);
    }
}

/// Claims the event's key in the processed-id store: `Err` with the
/// verdict when the handler must not run.
async fn claim(store: &ProcessedIds, key: &str) -> Result<ClaimGuard, Verdict> {
    loop {
        match store.claim(key) {
            Ok(Claim::Fresh(guard)) => return Ok(guard),
            Ok(Claim::Done) => return Err(Verdict::Duplicate),
            // Another delivery of the same event is being handled: its
            // outcome decides this one's.
            Ok(Claim::Busy(mut other)) => while other.changed().await.is_ok() {},
            Err(e) => return Err(Verdict::Terminate(e.to_string())),
        }
    }
}

async fn judge<B: Bus + Clone + Send + Sync + 'static>(
    at: &Settle<B>,
    stored: StoredEvent,
    (mut lease, attempt): (Lease<'_>, u32),
) -> Verdict {
    let (bus, subscription, handlers) = (&at.bus, &at.subscription, &at.handlers);
    let (shared, breakers) = (&*at.shared, &at.breakers);
    let event = &stored.event;
    let Some(route) = handlers.get(&event.ty) else {
        return Verdict::Skip;
    };
    // No version problem improves on redelivery. Data of the current
    // version is decoded as stored, without a JSON tree in between.
    let upcast = match shared.upcasters.needs_upcast(event) {
        Ok(false) => None,
        Ok(true) => match shared.upcasters.upcast(event) {
            Ok(v) => Some(v),
            Err(e) => return Verdict::Terminate(e.to_string()),
        },
        Err(e) => return Verdict::Terminate(e.to_string()),
    };
    let delivery = Arc::new(Handling {
        bus: bus.clone(),
        trace: causal::handler_trace(event, &mut RandomIds),
        event: stored,
        attempt,
        breakers: Arc::clone(breakers),
        service: Arc::clone(&shared.name),
        subscription: Arc::clone(subscription),
        key: std::sync::OnceLock::new(),
    });
    let event = &delivery.event.event;
    let guard = match &shared.processed {
        None => None,
        Some(store) => match Box::pin(claim(store, delivery.key())).await {
            Ok(guard) => Some(guard),
            Err(verdict) => return verdict,
        },
    };
    let span = tracing::info_span!(
        "handle",
        service = %shared.name,
        subscription = %subscription,
        ty = %event.ty,
        id = %event.id,
        correlation_id = event.correlation_id.as_deref().unwrap_or(&event.id),
        traceparent = %delivery.trace,
        attempt,
    );
    let ctx = Context {
        delivery: Arc::clone(&delivery),
        published: Arc::new(AtomicU32::new(0)),
    };
    let data = match &upcast {
        Some(value) => Data::Upcast(value),
        None => Data::Current(&delivery.event.event.data),
    };
    let config = &shared.config;
    let run = async {
        let mut retries = 0;
        // Time spent waiting for breakers to let calls through.
        let mut refused_ms = 0u64;
        let timeout = route.timeout.unwrap_or(config.handler_timeout);
        let refused_ms_max = timeout.as_millis() as u64;
        loop {
            // Each call numbers its follow-ups from 0, so that it derives
            // the same ids as the call before it.
            let call_ctx = Context {
                delivery: Arc::clone(&ctx.delivery),
                published: Arc::new(AtomicU32::new(0)),
            };
            // The handler's own bound, held for the call only.
            let permit = match &route.limit {
                Some(limit) => limit.acquire().await.ok(),
                None => None,
            };
            // A panicking handler fails its own event only, not the others
            // of its chunk.
            let call = std::panic::AssertUnwindSafe((route.call)(call_ctx, data)).catch_unwind();
            let outcome = tokio::time::timeout(timeout, call).await;
            drop(permit);
            let outcome = match outcome {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(panic)) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(HandlerError::retry(format!("the handler panicked: {what}")))
                }
                Err(_) => Err(HandlerError::Retry {
                    reason: format!("the handler took over {timeout:?}"),
                    delay_ms: None,
                }),
            };
            let error = match outcome {
                Ok(()) => return Verdict::Ack(guard),
                Err(HandlerError::Refused {
                    breaker,
                    retry_after_ms,
                }) => {
                    // While half-open, a probe's outcome is awaited.
                    let wait = retry_after_ms
                        .unwrap_or(config.in_process_delay.as_millis() as u64)
                        .max(1);
                    if refused_ms + wait > refused_ms_max {
                        return Verdict::Nack {
                            reason: format!("the circuit breaker {breaker} stayed open"),
                            delay_ms: retry_after_ms,
                        };
                    }
                    refused_ms += wait;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    lease.keep_for(at, timeout).await;
                    continue;
                }
                Err(e) => e,
            };
            let retry_here =
                matches!(error, HandlerError::Retry { .. }) && retries < config.in_process_retries;
            Box::pin(report_failure(shared, &ctx, &error, retry_here)).await;
            match error {
                HandlerError::Permanent { reason } => return Verdict::Terminate(reason),
                HandlerError::Retry { reason, delay_ms } if !retry_here => {
                    return Verdict::Nack { reason, delay_ms };
                }
                HandlerError::Retry { .. } | HandlerError::Refused { .. } => {}
            }
            retries += 1;
            shared.stats.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(config.in_process_delay).await;
            lease.keep_for(at, timeout).await;
        }
    };
    run.instrument(span).await
}

/// A delivery's lease, as the service knows it.
struct Lease<'a> {
    id: &'a AckId,
    deadline_ms: i64,
}

impl Lease<'_> {
    /// Before the service tries the event again: extends the lease if the
    /// next try (up to `timeout`) could outlive it, so that retries and
    /// breaker waits do not let the broker hand the event to another
    /// consumer meanwhile. A failure is only counted: the lease may be gone
    /// already, and the ack will say so.
    async fn keep_for<B: Bus>(&mut self, at: &Settle<B>, timeout: Duration) {
        let now = at.breakers.clock.now_ms();
        let needed = now.saturating_add(timeout.as_millis() as i64);
        if needed < self.deadline_ms {
            return;
        }
        match Box::pin(at.bus.extend(&at.subscription, self.id)).await {
            Ok(deadline_ms) => self.deadline_ms = deadline_ms,
            Err(_) => {
                at.shared.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Logs a failed handler call and, with an outcomes topic, publishes it
/// in the event's correlation.
async fn report_failure<B: Bus>(
    shared: &Shared,
    ctx: &Context<B>,
    error: &HandlerError,
    retry_here: bool,
) {
    let (reason, next) = match error {
        HandlerError::Retry { reason, .. } if retry_here => (reason, "retry"),
        HandlerError::Retry { reason, .. } => (reason, "redeliver"),
        HandlerError::Permanent { reason } => (reason, "dead-letter"),
        HandlerError::Refused { .. } => return,
    };
    tracing::warn!(%reason, next, "handler failed");
    let Some(topic) = &shared.config.outcomes_topic else {
        return;
    };
    let data = serde_json::json!({
        "service": &*shared.name,
        "event_id": ctx.event().event.id,
        "event_type": ctx.event().event.ty,
        "topic": ctx.event().topic,
        "attempt": ctx.attempt(),
        "error": reason,
        "next": next,
    });
    let failed = Event::new(HANDLER_FAILED, data.to_string()).with_source(&*shared.name);
    let failed = causal::follow_up(&ctx.event().event, ctx.trace(), failed);
    if ctx.bus().publish(topic, failed).await.is_err() {
        shared.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// The type of the events reporting failed handler calls.
pub const HANDLER_FAILED: &str = "HandlerFailed";

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_log::ManualClock;

    #[test]
    fn an_abandoned_probe_counts_as_a_failure() {
        let clock = ManualClock::new(0);
        let config = BreakerConfig {
            consecutive_failures: Some(1),
            open_ms: 100,
            half_open_probes: 1,
            ..BreakerConfig::default()
        };
        let guard = Guard {
            name: "gateway".into(),
            breaker: std::sync::Mutex::new(Breaker::new(config).unwrap()),
        };
        let permit = guard.lock().try_call(0).unwrap();
        guard.lock().record(permit, Outcome::Failure, 0);
        clock.advance_ms(100);
        let probe = guard.lock().try_call(100).unwrap();
        assert_eq!(guard.lock().state(), BreakerState::HalfOpen);
        // The handler's call is dropped mid-way (its timeout, a panic).
        drop(PendingCall {
            guard: &guard,
            clock: &clock,
            permit: Some(probe),
        });
        assert_eq!(
            guard.lock().state(),
            BreakerState::Open,
            "the probe is not out for good"
        );
    }
}
