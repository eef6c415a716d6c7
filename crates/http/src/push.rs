//! `GET /v1/subscriptions/{name}/events`: push delivery as Server-Sent
//! Events, on top of [`Bus::subscribe`].
//!
//! Each delivery is one SSE event: `event: delivery`, `id: <ack id>`,
//! `data: <delivery JSON>`. A stream with nothing to send writes a
//! `: keep-alive` comment every `sse_keepalive_ms`; an error ends the
//! stream with `event: error` and a problem as data. The stream ends when
//! the server shuts down.
//!
//! Flow control: the stream holds at most `max_in_flight` (default 64,
//! 1..=1000) deliveries unsettled — the credit of the underlying push
//! stream. An SSE client cannot return credit, so:
//!
//! - `ack=manual` (default): the client settles each delivery with
//!   `POST .../ack` (or nack, terminate) on this server; a settled
//!   delivery returns its credit to the stream that sent it, as does one
//!   whose lease ran out (by this server's clock).
//! - `ack=auto`: each delivery is acked once its frame was handed to the
//!   connection, before the next one is sent. At most once: a frame lost
//!   in a broken connection is not redelivered.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use eddy_auth::Access;
use eddy_bus::{Bus, DeliveryStream, Event, PushDelivery, PushOptions};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use crate::config::SSE_MAX_IN_FLIGHT_MAX;
use crate::json::DeliveryJson;
use crate::problem::Problem;
use crate::state::{AppState, BusFor, PathParams, QueryParams};
use crate::time;

/// How the deliveries of an SSE stream are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// The client acks each delivery with `POST .../ack`.
    #[default]
    Manual,
    /// The server acks each delivery once its frame is written.
    Auto,
}

/// Query of an SSE stream.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PushQuery {
    /// Most deliveries held unsettled at once, 1..=1000 (default 64).
    pub max_in_flight: Option<u32>,
    /// `manual` (default) or `auto`.
    pub ack: Option<AckMode>,
}

/// Push delivery as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{name}/events",
    tag = "deliveries",
    params(("name" = String, Path, description = "The subscription"), PushQuery),
    responses(
        (status = 200, description = "An SSE stream: `event: delivery`, `id: <ack id>`, \
            `data: <Delivery JSON>` per delivery", content_type = "text/event-stream", body = String),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn events<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<PushQuery>,
) -> Result<Response, Problem> {
    let credit = q.max_in_flight.unwrap_or(64);
    if credit == 0 || credit > SSE_MAX_IN_FLIGHT_MAX {
        return Err(Problem::invalid(format!(
            "max_in_flight must be 1..={SSE_MAX_IN_FLIGHT_MAX}, not {credit}"
        )));
    }
    bus.describe_subscription(&name).await?;
    let deliveries = bus.subscribe(
        &name,
        PushOptions {
            credit,
            wait_ms: st.config.push_wait_ms,
        },
    );
    let auto = q.ack.unwrap_or_default() == AckMode::Auto;
    let stream = Sse {
        hold: (!auto).then(|| st.holds.open(&name)),
        bus,
        subscription: name,
        deliveries,
        unacked: None,
        draining: st.draining.clone(),
        keepalive: Duration::from_millis(st.config.sse_keepalive_ms),
        last_sent: Instant::now(),
        done: false,
    };
    let body = futures_util::stream::unfold(stream, Sse::step);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// One SSE stream's state.
struct Sse<B> {
    bus: B,
    subscription: String,
    deliveries: DeliveryStream,
    /// Manual mode: the credits this stream holds until settled.
    hold: Option<HoldGuard>,
    /// Auto mode: the delivery last sent, acked before the next is sent.
    unacked: Option<PushDelivery>,
    draining: watch::Receiver<bool>,
    keepalive: Duration,
    last_sent: Instant,
    done: bool,
}

impl<B: Bus> Sse<B> {
    /// The next chunk of the response body, or `None` at its end.
    async fn step(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.done {
            return None;
        }
        if let Some(sent) = self.unacked.take()
            && let Err(e) = self
                .bus
                .ack(&self.subscription, &sent.delivery.ack_id)
                .await
        {
            tracing::debug!(subscription = %self.subscription, "SSE auto-ack failed: {e}");
        }
        loop {
            let expiry = self
                .hold
                .as_ref()
                .and_then(|h| h.next_deadline_ms())
                .map(|deadline| {
                    let wait = deadline.saturating_sub(time::now_ms()).clamp(1, 3_600_000);
                    Instant::now() + Duration::from_millis(wait as u64)
                });
            let keepalive_at = self.last_sent + self.keepalive;
            let woke = tokio::select! {
                biased;
                _ = self.draining.wait_for(|d| *d) => return None,
                item = self.deliveries.next() => Woke::Item(item.map(|r| r.map(Box::new))),
                _ = tokio::time::sleep_until(keepalive_at) => Woke::KeepAlive,
                _ = sleep_until_some(expiry) => Woke::LeaseExpiry,
            };
            let chunk = match woke {
                Woke::Item(Some(Ok(delivery))) => self.delivery_frame(*delivery),
                Woke::Item(Some(Err(e))) => {
                    self.done = true;
                    error_frame(Problem::from(e))
                }
                Woke::Item(None) => return None,
                Woke::KeepAlive => Bytes::from_static(b": keep-alive\n\n"),
                Woke::LeaseExpiry => {
                    if let Some(hold) = &self.hold {
                        hold.release_expired(time::now_ms());
                    }
                    continue;
                }
            };
            self.last_sent = Instant::now();
            return Some((Ok(chunk), self));
        }
    }

    fn delivery_frame(&mut self, mut pushed: PushDelivery) -> Bytes {
        let d = &pushed.delivery;
        let json = serde_json::to_string(&DeliveryJson::from(d)).unwrap_or_default();
        let ack_id = d.ack_id.to_string();
        let mut frame = String::with_capacity(json.len() + ack_id.len() + 40);
        frame.push_str("event: delivery\n");
        if !ack_id.contains(['\r', '\n', '\0']) {
            frame.push_str("id: ");
            frame.push_str(&ack_id);
            frame.push('\n');
        }
        frame.push_str("data: ");
        // Valid JSON holds line breaks only as whitespace between tokens:
        // inside strings they are escaped. So the data stays one line.
        frame.extend(
            json.chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
        frame.push_str("\n\n");
        // Keep only the credit: the payload is sent.
        pushed.delivery.event.event = Event::default();
        match &self.hold {
            Some(hold) => hold.keep(ack_id, pushed),
            None => self.unacked = Some(pushed),
        }
        Bytes::from(frame)
    }
}

/// Why an SSE stream woke up.
enum Woke {
    Item(Option<eddy_bus::Result<Box<PushDelivery>>>),
    KeepAlive,
    LeaseExpiry,
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn error_frame(p: Problem) -> Bytes {
    let json = serde_json::to_string(&p).unwrap_or_default();
    Bytes::from(format!("event: error\ndata: {json}\n\n"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The credits held by the manual-ack SSE streams of this router, by
/// subscription, so that an ack through any request returns the credit to
/// the stream that sent the delivery.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    by_subscription: Mutex<HashMap<String, Vec<Arc<StreamHolds>>>>,
}

/// One stream's held deliveries (payloads dropped), by ack id, with their
/// lease deadlines. At most the stream's `max_in_flight` entries.
#[derive(Debug, Default)]
struct StreamHolds {
    held: Mutex<HashMap<String, (PushDelivery, i64)>>,
}

impl Holds {
    fn open(self: &Arc<Self>, subscription: &str) -> HoldGuard {
        let mine = Arc::new(StreamHolds::default());
        lock(&self.by_subscription)
            .entry(subscription.to_string())
            .or_default()
            .push(Arc::clone(&mine));
        HoldGuard {
            holds: Arc::clone(self),
            subscription: subscription.to_string(),
            mine,
        }
    }

    fn streams(&self, subscription: &str) -> Vec<Arc<StreamHolds>> {
        lock(&self.by_subscription)
            .get(subscription)
            .cloned()
            .unwrap_or_default()
    }

    /// A delivery was settled: its stream gets its credit back.
    pub(crate) fn release(&self, subscription: &str, ack_id: &str) {
        for stream in self.streams(subscription) {
            let removed = lock(&stream.held).remove(ack_id);
            drop(removed);
        }
    }

    /// A delivery's lease was extended.
    pub(crate) fn extend(&self, subscription: &str, ack_id: &str, deadline_ms: i64) {
        for stream in self.streams(subscription) {
            if let Some((_, deadline)) = lock(&stream.held).get_mut(ack_id) {
                *deadline = deadline_ms;
            }
        }
    }
}

/// A manual-ack stream's registration; dropping it (the stream ended)
/// returns every credit it held.
struct HoldGuard {
    holds: Arc<Holds>,
    subscription: String,
    mine: Arc<StreamHolds>,
}

impl HoldGuard {
    fn keep(&self, ack_id: String, pushed: PushDelivery) {
        let deadline = pushed.delivery.lease_deadline_ms;
        lock(&self.mine.held).insert(ack_id, (pushed, deadline));
    }

    fn next_deadline_ms(&self) -> Option<i64> {
        lock(&self.mine.held).values().map(|(_, d)| *d).min()
    }

    fn release_expired(&self, now_ms: i64) {
        let expired: Vec<(PushDelivery, i64)> = {
            let mut held = lock(&self.mine.held);
            let ids: Vec<String> = held
                .iter()
                .filter(|(_, (_, d))| *d <= now_ms)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| held.remove(id)).collect()
        };
        drop(expired);
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let mut by_sub = lock(&self.holds.by_subscription);
        if let Some(streams) = by_sub.get_mut(&self.subscription) {
            streams.retain(|s| !Arc::ptr_eq(s, &self.mine));
            if streams.is_empty() {
                by_sub.remove(&self.subscription);
            }
        }
    }
}
