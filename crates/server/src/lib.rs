//! `eddy-server`: Eddy's native-protocol TCP server — any
//! [`eddy_bus::Bus`] and its [`eddy_bus::EventStore`] served to network
//! clients over the binary protocol of `eddy-proto` (`docs/protocol.md`).
//!
//! [`serve_native`] accepts connections on a Tokio `TcpListener`. Each
//! connection does the versioned handshake (`Hello` → `Welcome`), then
//! reads frames and executes every request on the bus concurrently
//! (pipelining; responses come in any order, each with its request's id),
//! and runs a push stream per `Subscribe` (`Deliver` frames within the
//! client's credit, ended by `StreamEnd`). A `Fetch` or a `ReadAll` that
//! waits is a long poll: it stays in flight, holding up nothing else. All frames of a connection go
//! out through one writer fed by a bounded queue: a client that reads
//! slowly holds up its own requests, and nobody else's.
//!
//! It is **not** a client, nor a bus: it owns no data, and holds no state
//! beyond its connections — what a request does is the bus's business, and
//! who may do it is the [`eddy_auth::Access`]'s ([`serve_native_with`]
//! serves each client on the bus its `Hello`'s token gets; [`serve_native`]
//! serves everyone on the bus). TLS is optional ([`tls_acceptor`]). It has
//! no HTTP; it knows the wire format only through `eddy-proto`.
//!
//! Limits, all in [`ServerConfig`]:
//!
//! - `max_connections` connections; one more gets an `Error` frame
//!   (`LimitExceeded`) and is closed;
//! - `max_frame_bytes` per frame (64 KiB before the handshake); a frame
//!   over it, or any malformed frame, gets an `Error` frame with its 8xxx
//!   code and closes that connection only;
//! - `max_in_flight_requests` per connection (an open push stream counts
//!   as one); one more is answered with error 8013 and not executed;
//! - `write_queue_frames` responses queued per connection;
//! - `pending_bytes_max` (64 MiB) per connection: each request reserves
//!   its frame and the most its response can hold until the response is
//!   written, and the connection reads nothing more while the budget is
//!   spent — so a client that stops reading its responses stalls only
//!   itself, and its connection holds about `pending_bytes_max` plus one
//!   frame;
//! - push credit: at most [`CREDIT_UNUSED_MAX`] unused per stream; see
//!   below for how it is held;
//! - `handshake_timeout_ms` to send the `Hello`.
//!
//! Push credit: a delivery sent on a push stream keeps its credit of the
//! bus's stream (its `PushDelivery`) until the client grants credit back
//! with `Credit`; so the bus leases deliveries for a stream only as fast as
//! the client settles them, and the server never sends a delivery without
//! unused credit (`docs/protocol.md`, "Push delivery and credit").
//!
//! ```no_run
//! use eddy_broker::{Broker, BrokerConfig};
//! use eddy_server::{ServerConfig, serve_native};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Broker::open("./eddy-data", BrokerConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7420").await?;
//! let shutdown = async {
//!     // e.g. wait for Ctrl-C
//! };
//! serve_native(listener, bus, ServerConfig::default(), shutdown).await?;
//! # Ok(()) }
//! ```

mod config;
mod connection;
mod dispatch;
mod error;
mod push;
mod serve;
mod tls;

pub use config::{IN_FLIGHT_REQUESTS_CAP, PENDING_BYTES_CAP, ServerConfig, WRITE_QUEUE_FRAMES_CAP};
pub use error::{Result, ServerError};
pub use push::CREDIT_UNUSED_MAX;
pub use serve::{ConnectionHook, Listening, serve_native, serve_native_with};
pub use tls::tls_acceptor;
