//! `eddy-metrics`: Eddy's metrics, and their Prometheus text exposition.
//!
//! [`Metrics`] is one registry per process, shared by Eddy's listeners:
//! open connections per [`Listener`] (held by a [`ConnectionGuard`]), and,
//! through [`Metrics::metered`], the latency and errors of every call on a
//! [`Metered`] bus plus the publish → deliver latency of what it fetches.
//! [`Metrics::render`] turns it into one scrape in the Prometheus text
//! format 0.0.4, adding what it reads from the bus at that moment: each
//! topic's and subscription's counters and backlog. Those come from the
//! bus's own statistics, so they are right whichever listener or embedded
//! caller did the work.
//!
//! It is **not** an HTTP server (the HTTP crate serves `render`'s text at
//! `/metrics`), nor a general metrics library: the metric set is fixed
//! (listed on [`Metrics::render`]'s output by `# HELP` lines), and there is
//! no Prometheus client crate underneath.
//!
//! Limits:
//! - a scrape renders at most [`RENDERED_TOPICS_MAX`] topics and
//!   [`RENDERED_SUBSCRIPTIONS_MAX`] subscriptions (the first by name), and
//!   says in a `#` comment when it left some out;
//! - error series are bounded: at most 32 distinct `BusError` codes per
//!   operation family, the rest under `code="other"`;
//! - histograms have fixed buckets: requests 0.1 ms … 10 s, publish →
//!   deliver 1 ms … 1 h, plus `+Inf`;
//! - a fetch's duration includes its long-poll wait;
//! - publish → deliver latency compares this process's wall clock with the
//!   bus's append timestamps (whole milliseconds); skew below zero counts as
//!   0, and only first deliveries (`attempt == 1`) fetched through a
//!   [`Metered`] bus are counted;
//! - per-topic and per-subscription counters count since the bus opened,
//!   so they restart from 0 with it, as Prometheus counters may.
//!
//! ```no_run
//! use eddy_bus::{Bus, Event, FetchOptions};
//! use eddy_metrics::{Listener, Metrics};
//!
//! async fn serve(bus: impl Bus + Clone) -> eddy_bus::Result<String> {
//!     let metrics = Metrics::new();
//!     let bus = metrics.metered(bus);
//!
//!     // In a listener: count the connection while it is open.
//!     let _conn = metrics.connection(Listener::Http);
//!     bus.publish("orders.placed", Event::new("OrderPlaced", "{}")).await?;
//!     for d in bus.fetch("payments", FetchOptions::now(10)).await? {
//!         bus.ack("payments", &d.ack_id).await?;
//!     }
//!
//!     // On GET /metrics:
//!     Ok(metrics.render(&bus).await)
//! }
//! ```

mod errors;
mod histogram;
mod metered;
mod registry;
mod text;

#[cfg(test)]
#[path = "../tests/support/exposition.rs"]
mod exposition_check;

pub use metered::Metered;
pub use registry::{
    ConnectionGuard, Listener, Metrics, NowMs, RENDERED_SUBSCRIPTIONS_MAX, RENDERED_TOPICS_MAX,
};
