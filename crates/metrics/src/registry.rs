//! [`Metrics`]: the process-wide registry (connections, request latencies,
//! errors, publish → deliver latency) and the scrape that adds the bus's
//! own counters to them.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eddy_bus::{Bus, BusError, SubscriptionStats, TopicStats};

use crate::errors::ErrorCounts;
use crate::histogram::{DELIVERY_BUCKETS_NS, Histogram, REQUEST_BUCKETS_NS};
use crate::metered::Metered;
use crate::text::{Exposition, Float, Kind};

/// Most topics one scrape renders; the rest are left out, and the output
/// says so in a comment.
pub const RENDERED_TOPICS_MAX: usize = 10_000;
/// Most subscriptions one scrape renders; the rest are left out, and the
/// output says so in a comment.
pub const RENDERED_SUBSCRIPTIONS_MAX: usize = 10_000;

/// A wall clock in milliseconds since the Unix epoch.
pub type NowMs = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Which listener accepted a connection (the `listener` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The native binary protocol.
    Native,
    /// The HTTP/JSON API.
    Http,
}

impl Listener {
    /// Every listener, in label order.
    pub const ALL: [Listener; 2] = [Listener::Native, Listener::Http];

    /// The label value: `native` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Native => "native",
            Listener::Http => "http",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// An operation family of the `Bus` interface, or an operation of the
/// `EventStore` interface (the `op` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Publish,
    Fetch,
    Ack,
    Nack,
    Extend,
    Terminate,
    Read,
    Admin,
    DeadLetters,
    Stats,
    StoreAppend,
    StoreReadStream,
    StoreReadAll,
    StoreInfo,
    StoreMetadata,
    StoreDelete,
}

impl Op {
    const ALL: [Op; 16] = [
        Op::Publish,
        Op::Fetch,
        Op::Ack,
        Op::Nack,
        Op::Extend,
        Op::Terminate,
        Op::Read,
        Op::Admin,
        Op::DeadLetters,
        Op::Stats,
        Op::StoreAppend,
        Op::StoreReadStream,
        Op::StoreReadAll,
        Op::StoreInfo,
        Op::StoreMetadata,
        Op::StoreDelete,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Fetch => "fetch",
            Op::Ack => "ack",
            Op::Nack => "nack",
            Op::Extend => "extend",
            Op::Terminate => "terminate",
            Op::Read => "read",
            Op::Admin => "admin",
            Op::DeadLetters => "dead_letters",
            Op::Stats => "stats",
            Op::StoreAppend => "store_append",
            Op::StoreReadStream => "store_read_stream",
            Op::StoreReadAll => "store_read_all",
            Op::StoreInfo => "store_info",
            Op::StoreMetadata => "store_metadata",
            Op::StoreDelete => "store_delete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The registry of Eddy's process metrics, shared by its listeners and by
/// every [`Metered`] bus made from it. Cheap to clone: clones share one
/// registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    now_ms: NowMs,
    requests: [Histogram; Op::ALL.len()],
    errors: [ErrorCounts; Op::ALL.len()],
    publish_to_deliver: Histogram,
    connections: [AtomicI64; Listener::ALL.len()],
    accepted: [AtomicU64; Listener::ALL.len()],
    scrape_errors: AtomicU64,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("connections", &self.connections)
            .field("accepted", &self.accepted)
            .field("scrape_errors", &self.scrape_errors)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Metrics {
    /// An empty registry on the system wall clock.
    pub fn new() -> Metrics {
        Metrics::with_clock(Arc::new(system_now_ms))
    }

    /// An empty registry reading wall-clock time (ms since the Unix epoch)
    /// from `now_ms`; it is used only for publish → deliver latency, which
    /// compares it with the bus's append timestamps.
    pub fn with_clock(now_ms: NowMs) -> Metrics {
        Metrics {
            inner: Arc::new(Inner {
                now_ms,
                requests: std::array::from_fn(|_| Histogram::new(REQUEST_BUCKETS_NS)),
                errors: std::array::from_fn(|_| ErrorCounts::default()),
                publish_to_deliver: Histogram::new(DELIVERY_BUCKETS_NS),
                connections: std::array::from_fn(|_| AtomicI64::new(0)),
                accepted: std::array::from_fn(|_| AtomicU64::new(0)),
                scrape_errors: AtomicU64::new(0),
            }),
        }
    }

    /// Counts a connection accepted by `listener`; it stays in the open
    /// connections gauge until the guard is dropped.
    pub fn connection(&self, listener: Listener) -> ConnectionGuard {
        let i = listener.index();
        self.inner.accepted[i].fetch_add(1, Ordering::Relaxed);
        self.inner.connections[i].fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            inner: Arc::clone(&self.inner),
            listener,
        }
    }

    /// `bus`, recording the latency and errors of every call into this
    /// registry.
    pub fn metered<B: Bus>(&self, bus: B) -> Metered<B> {
        Metered::new(bus, self.clone())
    }

    /// One scrape in the Prometheus text format 0.0.4: this registry's
    /// metrics plus, read from `bus` now, each topic's and subscription's
    /// counters (at most [`RENDERED_TOPICS_MAX`] topics and
    /// [`RENDERED_SUBSCRIPTIONS_MAX`] subscriptions).
    ///
    /// A topic or subscription deleted during the scrape is left out; any
    /// other failed call is counted in `eddy_scrape_errors_total` and its
    /// series left out, so the scrape itself never fails. If `bus` is a
    /// [`Metered`] bus, the scrape's own calls are counted under
    /// `op="admin"` and `op="stats"`.
    pub async fn render<B: Bus>(&self, bus: &B) -> String {
        let scrape = Scrape::collect(bus, &self.inner.scrape_errors).await;
        let mut x = Exposition::new();
        x.comment(&format!(
            "eddy-metrics: at most {RENDERED_TOPICS_MAX} topics and \
             {RENDERED_SUBSCRIPTIONS_MAX} subscriptions are rendered per scrape"
        ));
        x.family(
            "eddy_up",
            Kind::Gauge,
            "1 if the bus answered this scrape's topic and subscription listings, else 0.",
        );
        x.sample("eddy_up", &[], u8::from(scrape.listed));
        self.write_process(&mut x);
        scrape.write(&mut x);
        x.finish()
    }

    /// Everything kept in this registry, without asking a bus.
    fn write_process(&self, x: &mut Exposition) {
        let inner = &*self.inner;
        x.family(
            "eddy_scrape_errors_total",
            Kind::Counter,
            "Bus calls that failed while rendering metrics (their series were left out).",
        );
        x.sample(
            "eddy_scrape_errors_total",
            &[],
            inner.scrape_errors.load(Ordering::Relaxed),
        );

        x.family(
            "eddy_connections",
            Kind::Gauge,
            "Open client connections, by listener.",
        );
        for l in Listener::ALL {
            let open = inner.connections[l.index()].load(Ordering::Relaxed);
            x.sample("eddy_connections", &[("listener", l.as_str())], open);
        }
        x.family(
            "eddy_connections_accepted_total",
            Kind::Counter,
            "Client connections accepted, by listener.",
        );
        for l in Listener::ALL {
            let n = inner.accepted[l.index()].load(Ordering::Relaxed);
            x.sample(
                "eddy_connections_accepted_total",
                &[("listener", l.as_str())],
                n,
            );
        }

        x.family(
            "eddy_request_duration_seconds",
            Kind::Histogram,
            "Duration of Bus and EventStore calls through the metered bus, by operation \
             family (fetch and store_read_all include their long-poll wait).",
        );
        for op in Op::ALL {
            x.histogram(
                "eddy_request_duration_seconds",
                &[("op", op.as_str())],
                &inner.requests[op.index()].snapshot(),
            );
        }
        x.family(
            "eddy_request_errors_total",
            Kind::Counter,
            "Failed Bus and EventStore calls (and failed items of an ack batch), by \
             operation family and BusError code.",
        );
        for op in Op::ALL {
            for (code, n) in inner.errors[op.index()].snapshot() {
                let code = code.map_or_else(|| "other".to_string(), |c| c.to_string());
                x.sample(
                    "eddy_request_errors_total",
                    &[("op", op.as_str()), ("code", &code)],
                    n,
                );
            }
        }
        x.family(
            "eddy_publish_to_deliver_seconds",
            Kind::Histogram,
            "Time from an event's append to its first delivery by a fetch through the \
             metered bus (wall clock, millisecond resolution).",
        );
        x.histogram(
            "eddy_publish_to_deliver_seconds",
            &[],
            &inner.publish_to_deliver.snapshot(),
        );
    }

    // ---- recording, for `Metered` ----

    pub(crate) fn record(&self, op: Op, elapsed: Duration, error: Option<&BusError>) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.inner.requests[op.index()].observe_ns(ns);
        if let Some(e) = error {
            self.record_error(op, e);
        }
    }

    pub(crate) fn record_error(&self, op: Op, error: &BusError) {
        self.inner.errors[op.index()].add(error.code());
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.inner.now_ms)()
    }

    /// One first delivery of an event appended at `appended_ms`, seen at
    /// `now_ms`; a clock behind the bus's counts as 0.
    pub(crate) fn record_first_delivery(&self, now_ms: i64, appended_ms: i64) {
        let ms = u64::try_from(now_ms.saturating_sub(appended_ms)).unwrap_or(0);
        self.inner
            .publish_to_deliver
            .observe_ns(ms.saturating_mul(1_000_000));
    }
}

/// An open connection in the `eddy_connections` gauge; dropping it closes
/// it there.
#[derive(Debug)]
#[must_use = "the connection counts as closed when the guard is dropped"]
pub struct ConnectionGuard {
    inner: Arc<Inner>,
    listener: Listener,
}

impl ConnectionGuard {
    /// The listener that accepted it.
    pub fn listener(&self) -> Listener {
        self.listener
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.inner.connections[self.listener.index()].fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one scrape read from the bus.
struct Scrape {
    listed: bool,
    topics: Vec<TopicStats>,
    topics_listed: usize,
    subscriptions: Vec<SubscriptionStats>,
    subscriptions_listed: usize,
}

impl Scrape {
    async fn collect<B: Bus>(bus: &B, errors: &AtomicU64) -> Scrape {
        let failed = || {
            errors.fetch_add(1, Ordering::Relaxed);
        };
        let mut listed = true;

        let topic_names: Vec<String> = match bus.list_topics().await {
            Ok(list) => list.into_iter().map(|t| t.name).collect(),
            Err(_) => {
                failed();
                listed = false;
                Vec::new()
            }
        };
        let mut topics = Vec::with_capacity(topic_names.len().min(RENDERED_TOPICS_MAX));
        for name in topic_names.iter().take(RENDERED_TOPICS_MAX) {
            match bus.topic_stats(name).await {
                Ok(s) => topics.push(s),
                Err(BusError::TopicNotFound(_)) => {} // deleted since the listing
                Err(_) => failed(),
            }
        }

        let sub_names: Vec<String> = match bus.list_subscriptions().await {
            Ok(list) => list.into_iter().map(|s| s.name).collect(),
            Err(_) => {
                failed();
                listed = false;
                Vec::new()
            }
        };
        let mut subscriptions = Vec::with_capacity(sub_names.len().min(RENDERED_SUBSCRIPTIONS_MAX));
        for name in sub_names.iter().take(RENDERED_SUBSCRIPTIONS_MAX) {
            match bus.subscription_stats(name).await {
                Ok(s) => subscriptions.push(s),
                Err(BusError::SubscriptionNotFound(_)) => {}
                Err(_) => failed(),
            }
        }

        Scrape {
            listed,
            topics,
            topics_listed: topic_names.len(),
            subscriptions,
            subscriptions_listed: sub_names.len(),
        }
    }

    fn write(&self, x: &mut Exposition) {
        if self.topics_listed > RENDERED_TOPICS_MAX {
            x.comment(&format!(
                "eddy-metrics: {} topics exist; only the first {RENDERED_TOPICS_MAX} by name \
                 are rendered",
                self.topics_listed
            ));
        }
        type TopicField = fn(&TopicStats) -> u64;
        let topic_families: [(&str, Kind, &str, TopicField); 4] = [
            (
                "eddy_published_total",
                Kind::Counter,
                "Events published to the topic since the bus opened (duplicates not counted).",
                |s| s.published,
            ),
            (
                "eddy_publish_duplicates_total",
                Kind::Counter,
                "Publishes dropped as duplicates since the bus opened.",
                |s| s.duplicates,
            ),
            (
                "eddy_topic_events",
                Kind::Gauge,
                "Events held by the topic, summed over partitions.",
                |s| s.events,
            ),
            (
                "eddy_topic_bytes",
                Kind::Gauge,
                "Bytes on disk of the topic, summed over partitions.",
                |s| s.size_bytes,
            ),
        ];
        for (name, kind, help, field) in topic_families {
            x.family(name, kind, help);
            for s in &self.topics {
                x.sample(name, &[("topic", &s.name)], field(s));
            }
        }

        if self.subscriptions_listed > RENDERED_SUBSCRIPTIONS_MAX {
            x.comment(&format!(
                "eddy-metrics: {} subscriptions exist; only the first \
                 {RENDERED_SUBSCRIPTIONS_MAX} by name are rendered",
                self.subscriptions_listed
            ));
        }
        type SubField = fn(&SubscriptionStats) -> u64;
        let sub_families: [(&str, Kind, &str, SubField); 8] = [
            (
                "eddy_delivered_total",
                Kind::Counter,
                "Deliveries handed out since the bus opened (first ones and redeliveries).",
                |s| s.delivered,
            ),
            (
                "eddy_redelivered_total",
                Kind::Counter,
                "Redeliveries handed out since the bus opened.",
                |s| s.redelivered,
            ),
            (
                "eddy_acked_total",
                Kind::Counter,
                "Acks since the bus opened.",
                |s| s.acked,
            ),
            (
                "eddy_dead_lettered_total",
                Kind::Counter,
                "Events dead-lettered since the bus opened.",
                |s| s.dead_lettered,
            ),
            (
                "eddy_subscription_lag",
                Kind::Gauge,
                "Events not yet settled: pending plus not yet delivered.",
                |s| s.lag,
            ),
            (
                "eddy_subscription_in_flight",
                Kind::Gauge,
                "Deliveries whose lease is running.",
                |s| s.in_flight,
            ),
            (
                "eddy_subscription_waiting",
                Kind::Gauge,
                "Events waiting for a retry or for their key.",
                |s| s.waiting,
            ),
            (
                "eddy_dead_letters",
                Kind::Gauge,
                "Dead letters in the subscription's queue.",
                |s| s.dead_letters,
            ),
        ];
        for (name, kind, help, field) in sub_families {
            x.family(name, kind, help);
            for s in &self.subscriptions {
                x.sample(name, &[("subscription", &s.name)], field(s));
            }
        }
        let age = "eddy_oldest_unacked_age_seconds";
        x.family(
            age,
            Kind::Gauge,
            "Age of the oldest unsettled delivered event by its append time (0 if none).",
        );
        for s in &self.subscriptions {
            let secs = s.oldest_unacked_age_ms.unwrap_or(0) as f64 / 1e3;
            x.sample(age, &[("subscription", &s.name)], Float(secs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition_check::parse;

    fn local(m: &Metrics) -> String {
        let mut x = Exposition::new();
        m.write_process(&mut x);
        x.finish()
    }

    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        parse(text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .into_iter()
            .find(|s| s.name == name && s.has_labels(labels))
            .map(|s| s.value)
    }

    // Proves that a connection guard holds the gauge up while alive, that
    // each listener counts apart, and that the accepted counter only grows.
    #[test]
    fn connection_guard_increments_then_decrements_the_gauge() {
        let m = Metrics::new();
        let open = |m: &Metrics, l: &str| value(&local(m), "eddy_connections", &[("listener", l)]);
        let accepted = |m: &Metrics, l: &str| {
            value(
                &local(m),
                "eddy_connections_accepted_total",
                &[("listener", l)],
            )
        };
        assert_eq!(open(&m, "native"), Some(0.0));

        let a = m.connection(Listener::Native);
        let b = m.clone().connection(Listener::Native);
        let h = m.connection(Listener::Http);
        assert_eq!(b.listener(), Listener::Native);
        assert_eq!(open(&m, "native"), Some(2.0));
        assert_eq!(open(&m, "http"), Some(1.0));

        drop(a);
        assert_eq!(open(&m, "native"), Some(1.0));
        drop(b);
        drop(h);
        assert_eq!(open(&m, "native"), Some(0.0));
        assert_eq!(open(&m, "http"), Some(0.0));
        assert_eq!(accepted(&m, "native"), Some(2.0));
        assert_eq!(accepted(&m, "http"), Some(1.0));
    }

    // Proves that a delivery seen before its append time (clock skew)
    // counts as 0 s instead of wrapping to a huge value.
    #[test]
    fn publish_to_deliver_clamps_negative_latency_to_zero() {
        let m = Metrics::with_clock(Arc::new(|| 1_000));
        m.record_first_delivery(1_000, 5_000);
        m.record_first_delivery(1_000, 996);
        let text = local(&m);
        let bucket = |le| {
            value(
                &text,
                "eddy_publish_to_deliver_seconds_bucket",
                &[("le", le)],
            )
        };
        assert_eq!(bucket("0.001"), Some(1.0));
        assert_eq!(bucket("0.005"), Some(2.0));
        assert_eq!(
            value(&text, "eddy_publish_to_deliver_seconds_sum", &[]),
            Some(0.004)
        );
    }

    // Proves that errors are labelled by operation family and code, and
    // that request durations are counted per family.
    #[test]
    fn errors_and_durations_are_labelled_by_op() {
        let m = Metrics::new();
        m.record(Op::Ack, Duration::from_micros(300), None);
        m.record(
            Op::Ack,
            Duration::from_secs(20),
            Some(&BusError::AlreadyAcked("t/0/0/1".into())),
        );
        m.record_error(Op::Ack, &BusError::Closed);
        let text = local(&m);
        let labels = |code| [("op", "ack"), ("code", code)];
        assert_eq!(
            value(&text, "eddy_request_errors_total", &labels("4001")),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "eddy_request_errors_total", &labels("9004")),
            Some(1.0)
        );
        let count = |op| value(&text, "eddy_request_duration_seconds_count", &[("op", op)]);
        assert_eq!(count("ack"), Some(2.0));
        assert_eq!(count("publish"), Some(0.0));
        let bucket = |le| {
            value(
                &text,
                "eddy_request_duration_seconds_bucket",
                &[("op", "ack"), ("le", le)],
            )
        };
        assert_eq!(bucket("0.00025"), Some(0.0));
        assert_eq!(bucket("0.0005"), Some(1.0));
        assert_eq!(bucket("10"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
    }
}
