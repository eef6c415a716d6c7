//! The conformance cases, one `async fn` each. Every case opens a fresh bus
//! from the harness, drives it, and panics with a message saying what was
//! expected if the implementation does something else.
//!
//! [`bus_conformance_tests!`](crate::bus_conformance_tests) turns each case
//! into a test, and [`store_conformance_tests!`](crate::store_conformance_tests)
//! each event-store case (`store_*`); a case can also be called directly.

mod dead_letters;
mod delivery;
mod durability;
mod ordered;
mod publish;
mod push;
mod read;
mod seek;
mod stats;
mod store;
mod subscriptions;
mod topics;

pub use dead_letters::*;
pub use delivery::*;
pub use durability::*;
pub use ordered::*;
pub use publish::*;
pub use push::*;
pub use read::*;
pub use seek::*;
pub use stats::*;
pub use store::*;
pub use subscriptions::*;
pub use topics::*;
