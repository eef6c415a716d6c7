//! Eddy's application runtime: what a service that handles events is
//! written with.
//!
//! This first part is the [circuit breaker](breaker): a pure state machine
//! over an explicit clock, which the service runtime wraps around each
//! downstream dependency to fail fast and to pause consumption while the
//! dependency is down.

pub mod breaker;

pub use breaker::{
    Breaker, BreakerConfig, BreakerConfigError, BreakerState, FailureRate, FailuresWithin, Outcome,
    Permit, Rejected, Transition, Window,
};
