//! `eddy-http`: Eddy's HTTP/JSON API — any [`eddy_bus::Bus`] served under
//! `/v1`, for clients that speak HTTP rather than the native protocol.
//!
//! [`router`] builds an axum [`Router`](axum::Router) over the bus that an
//! [`eddy_auth::Access`] gives for each request's `Authorization: Bearer`
//! token; [`serve_http`] runs it on a TCP listener with a connection limit
//! and graceful shutdown. The routes ([`ROUTES`]) cover topics, publishing
//! — plain JSON, or CloudEvents 1.0 in structured, batched and binary
//! mode — replay of a partition, subscriptions, fetch / ack / nack /
//! extend / terminate, push delivery as Server-Sent Events, dead letters,
//! statistics, and the event store: streams under `/v1/streams/{stream}`
//! (append with an expected version, read both ways, settings, delete)
//! and the `$all` feed at `/v1/all` (filters, paging, a long poll). [`openapi`] is the OpenAPI document, generated from the
//! handlers and served at `/v1/openapi.json`. Every error is
//! `application/problem+json` ([`Problem`]) carrying the bus's stable
//! numeric `code`.
//!
//! It is **not** a bus, a TLS terminator or a metrics endpoint: it holds no
//! state beyond the credits of open SSE streams, speaks plain HTTP/1.1,
//! and leaves `/metrics` to whoever merges a route into [`router`]'s
//! result. Limits: request bodies up to `max_body_bytes` (16 MiB), batches
//! of `max_batch_events` (10,000), reads of `max_read_events` (10,000),
//! `max_connections` (1,024), SSE streams holding at most 1,000
//! deliveries; the bus's own limits (1 MiB events by default) apply on top.
//!
//! ```no_run
//! use eddy_auth::Open;
//! use eddy_broker::{Broker, BrokerConfig};
//! use eddy_http::{HttpConfig, serve_http};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::open("./eddy-data", BrokerConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let shutdown = async {
//!     let _ = stopped.await; // `stop.send(())` elsewhere shuts the server down
//! };
//! serve_http(listener, Open(broker), HttpConfig::default(), shutdown).await?;
//! // $ curl -X POST localhost:8080/v1/topics -H 'content-type: application/json' \
//! //        -d '{"name": "orders.placed"}'
//! // $ curl -X POST localhost:8080/v1/topics/orders.placed/events \
//! //        -H 'content-type: application/json' -d '{"type": "OrderPlaced", "data": {"id": 1}}'
//! # drop(stop); Ok(()) }
//! ```

mod all;
mod cloudevents;
mod config;
mod dead_letters;
mod deliveries;
mod error;
pub mod json;
mod problem;
mod publish;
mod push;
mod read;
mod routes;
mod serve;
mod state;
mod stats;
mod streams;
mod subscriptions;
mod time;
mod topics;

pub use all::AllQuery;
pub use config::{HttpConfig, SSE_MAX_IN_FLIGHT_MAX};
pub use dead_letters::DeadLetterQuery;
pub use error::{HttpError, Result};
pub use problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemFields};
pub use push::{AckMode, PushQuery};
pub use read::ReadQuery;
pub use routes::{ROUTES, openapi, router};
pub use serve::{serve_http, serve_listener};
pub use streams::{ExpectedQuery, StreamReadQuery};
