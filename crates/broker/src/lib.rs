//! `eddy-broker`: Eddy's embedded engine — the [`eddy_bus::Bus`] interface
//! on a local folder, like SQLite is for tables.
//!
//! Each topic partition is an `eddy-log` log; every change to topics,
//! subscriptions and consumer state (cursors, leases, attempts, scheduled
//! retries, dead-letter bookkeeping) is an op in one state journal, itself
//! an `eddy-log` log, compacted by snapshots. Under the default fsync
//! policy `always`, a publish, ack, nack, seek or terminate returns only
//! once it is on disk, with group commit.
//!
//! It is **not** a server: no sockets here. Limits: events up to
//! `event_bytes_max` (1 MiB by default), 1024 partitions per topic,
//! 10,000 events and 8 MiB per publish, `max_ack_pending` pending events per
//! subscription.
//!
//! ```no_run
//! use eddy_broker::{Broker, BrokerConfig};
//! use eddy_bus::{Bus, Event, FetchOptions, StartAt, SubscriptionConfig, TopicConfig};
//!
//! # async fn demo() -> eddy_bus::Result<()> {
//! let bus = Broker::open("./eddy-data", BrokerConfig::default())?;
//! bus.create_topic("orders.placed", TopicConfig::with_partitions(4)).await?;
//! bus.create_subscription("payments", SubscriptionConfig::new("orders.*").start_at(StartAt::Earliest)).await?;
//! bus.publish("orders.placed", Event::new("OrderPlaced", "{}").with_key("order-1")).await?;
//! for d in bus.fetch("payments", FetchOptions::now(10)).await? {
//!     bus.ack("payments", &d.ack_id).await?;
//! }
//! bus.close()?;
//! # Ok(()) }
//! ```

mod broker;
mod bus;
mod codec;
mod commit;
mod config;
mod dead;
mod dedup;
mod delivery;
mod error;
mod journal;
mod store;
mod sub;
#[cfg(test)]
mod sub_model_test;
mod topic;

pub use broker::{Broker, PUBLISH_BATCH_BYTES_MAX, PUBLISH_BATCH_MAX};
pub use config::{BrokerConfig, GROUP_COMMIT_WINDOW_US_MAX};
pub use dead::DEAD_LETTER_ALERT_TYPE;
pub use eddy_log::{Clock, FsyncPolicy, ManualClock, SystemClock};
pub use topic::READ_RESULT_BYTES_MAX;
