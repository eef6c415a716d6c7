//! Eddy's application runtime: what a service that handles events is
//! written with.
//!
//! Built in parts (issue 6). So far:
//! - the [circuit breaker](breaker): a pure state machine over an
//!   explicit clock, which the service runtime wraps around each
//!   downstream dependency to fail fast and to pause consumption while the
//!   dependency is down;
//! - [correlation, causation and trace context](causal) carried from an
//!   event being handled to the events its handler publishes;
//! - [schema versions](version) of event types, and upcasters from old
//!   versions to the current one;
//! - the [service](service): typed handlers per event type on
//!   subscriptions, with in-process retries, broker redelivery, the
//!   dead-letter queue for what cannot succeed, bounded concurrency,
//!   timeouts and a graceful stop;
//! - [idempotent consumers](processed): a durable store of processed
//!   events with a retention window.

pub mod aggregate;
pub mod breaker;
pub mod causal;
pub mod processed;
pub mod processing;
pub mod projection;
pub mod saga;
pub mod service;
pub mod version;

pub use aggregate::{
    Aggregate, AggregateError, Executed, Loaded, Repository, SNAPSHOT_TYPE, snapshot_stream,
    stream_of,
};
pub use breaker::{
    Breaker, BreakerConfig, BreakerConfigError, BreakerState, FailureRate, FailuresWithin, Outcome,
    Permit, Rejected, Transition, Window,
};
pub use causal::{IdSource, RandomIds, TraceParent, follow_up, handler_trace};
pub use processed::{
    Claim, ClaimGuard, ProcessedConfig, ProcessedError, ProcessedIds, ProcessedStats,
};
pub use projection::{
    FileModel, MemoryModel, Projection, ProjectionError, Projector, ProjectorConfig,
    ReadModelStore, Rebuilt, View,
};
pub use service::{
    Context, HANDLER_FAILED, HandlerError, HandlerOptions, Running, Service, ServiceConfig,
    ServiceStats,
};
pub use version::{Upcasters, VERSION_HEADER, VersionError, version_of, with_version};

/// Lowercase hex of a SHA-256 digest of `parts`, in order.
pub(crate) fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for p in parts {
        hasher.update(p);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
