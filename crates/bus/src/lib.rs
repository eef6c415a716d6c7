//! `eddy-bus`: the one interface between an application and Eddy's event
//! bus, whatever runs behind it.
//!
//! [`Bus`] is implemented by the embedded engine (`eddy-broker`, a folder on
//! local disk), and later by the network client and the scale-out backend;
//! code written against it does not change when the deployment does. The
//! crate holds the trait and the values that cross it — [`Event`], topic
//! and subscription settings, [`Delivery`], dead letters, statistics — plus
//! the pure rules every implementation shares: names and patterns
//! ([`name`]), key partitioning, retry schedules ([`RetryPolicy`]) and
//! event limits.
//!
//! It is **not** storage or transport: nothing here touches a file, a
//! socket or a clock. Every implementation is checked by the same suite,
//! `eddy-bus-conformance`.
//!
//! ```no_run
//! use eddy_bus::{Bus, Event, FetchOptions, SubscriptionConfig, StartAt, TopicConfig};
//!
//! async fn order_flow(bus: &impl Bus) -> eddy_bus::Result<()> {
//!     bus.create_topic("orders.placed", TopicConfig::with_partitions(4)).await?;
//!     bus.create_subscription(
//!         "payments",
//!         SubscriptionConfig::new("orders.*").start_at(StartAt::Earliest),
//!     ).await?;
//!     bus.publish("orders.placed", Event::new("OrderPlaced", "{}").with_key("order-1")).await?;
//!     for d in bus.fetch("payments", FetchOptions::now(10)).await? {
//!         // ... handle d.event ...
//!         bus.ack("payments", &d.ack_id).await?;
//!     }
//!     Ok(())
//! }
//! ```

mod error;
mod event;
mod model;
pub mod name;
mod push;
mod retry;
pub mod store;

use std::future::Future;

pub use error::{BusError, Result};
pub use event::{Event, EventLimits, StoredEvent, check_header_name};
pub use model::{
    ACK_WAIT_MS_MAX, AckId, DeadLetter, DeadLetterSelection, DeadReason, DedupWindow, Delivery,
    DeliveryMode, FETCH_MAX, FetchOptions, MAX_ACK_PENDING_MAX, NackOptions, PARTITIONS_MAX,
    PartitionInfo, READ_MAX, ReadBatch, ReadFrom, RedriveTarget, Retention, SeekTo, StartAt,
    SubscriptionConfig, SubscriptionInfo, SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
    WAIT_MS_MAX,
};
pub use push::{DeliveryStream, PushDelivery, PushOptions};
pub use retry::{BACKOFF_LIST_LEN_MAX, Backoff, MAX_DELIVERIES_MAX, RetryPolicy};
pub use store::{
    AllFilter, AllSlice, AppendResult, CatchUp, Direction, EventStore, ExpectedVersion,
    RecordedEvent, StreamFrom, StreamInfo, StreamMetadata, StreamSlice,
};

/// A position within a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

/// A partition of a topic, numbered from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Partition(pub u32);

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a published event was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Its partition.
    pub partition: Partition,
    /// Its offset.
    pub offset: Offset,
    /// `true` if the event's id was published before within the dedup
    /// window: nothing new was stored, and this is where the first one is.
    pub duplicate: bool,
}

/// The event bus: topics, publishing, stream reading, subscriptions with
/// leases and retries, dead-letter queues and statistics.
///
/// Every method is asynchronous and returns only once its effect is durable
/// per the implementation's durability policy (for the embedded engine by
/// default: fsynced). Bad input gets a typed [`BusError`] and changes
/// nothing.
pub trait Bus: Send + Sync + 'static {
    // ---- topics ----

    /// Creates a topic.
    fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> impl Future<Output = Result<TopicInfo>> + Send;

    /// Every topic, by name.
    fn list_topics(&self) -> impl Future<Output = Result<Vec<TopicInfo>>> + Send;

    /// One topic.
    fn describe_topic(&self, name: &str) -> impl Future<Output = Result<TopicInfo>> + Send;

    /// Deletes a topic and its events. Subscriptions stop reading it.
    fn delete_topic(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    // ---- publishing ----

    /// Publishes one event; returns where it is stored, once it is durable.
    fn publish(&self, topic: &str, event: Event) -> impl Future<Output = Result<Published>> + Send;

    /// Publishes events in order, all or none checked first; returns where
    /// each one is stored, once all are durable.
    fn publish_batch(
        &self,
        topic: &str,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<Vec<Published>>> + Send;

    // ---- stream reading ----

    /// Reads up to `max` events of one partition, with no subscription.
    fn read(
        &self,
        topic: &str,
        partition: Partition,
        from: ReadFrom,
        max: u32,
    ) -> impl Future<Output = Result<ReadBatch>> + Send;

    // ---- subscriptions ----

    /// Creates a durable, named subscription.
    fn create_subscription(
        &self,
        name: &str,
        config: SubscriptionConfig,
    ) -> impl Future<Output = Result<SubscriptionInfo>> + Send;

    /// Every subscription, by name.
    fn list_subscriptions(&self) -> impl Future<Output = Result<Vec<SubscriptionInfo>>> + Send;

    /// One subscription.
    fn describe_subscription(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<SubscriptionInfo>> + Send;

    /// Deletes a subscription, its pending state and its dead letters.
    fn delete_subscription(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// Moves a subscription to a position, to replay (or skip) events.
    /// Pending deliveries and scheduled retries are dropped.
    fn seek(&self, subscription: &str, to: SeekTo) -> impl Future<Output = Result<()>> + Send;

    // ---- delivery ----

    /// Hands out up to `max` deliveries to this caller, each with a lease;
    /// waits up to `wait_ms` for the first if none is ready.
    fn fetch(
        &self,
        subscription: &str,
        options: FetchOptions,
    ) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    /// Acks deliveries with one durable write; each gets its own outcome
    /// (the outer error is a failure of the bus itself).
    fn ack_all(
        &self,
        subscription: &str,
        ids: &[AckId],
    ) -> impl Future<Output = Result<Vec<Result<()>>>> + Send;

    /// Acks one delivery: the event is done for this subscription.
    fn ack(&self, subscription: &str, id: &AckId) -> impl Future<Output = Result<()>> + Send {
        async move {
            self.ack_all(subscription, std::slice::from_ref(id))
                .await?
                .pop()
                .unwrap_or(Ok(()))
        }
    }

    /// Reports a failed delivery: the event is retried after the backoff
    /// (or `delay_ms`), or dead-lettered if it was the last attempt.
    fn nack(
        &self,
        subscription: &str,
        id: &AckId,
        options: NackOptions,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Extends a delivery's lease by the subscription's `ack_wait_ms` from
    /// now; returns the new deadline.
    fn extend(&self, subscription: &str, id: &AckId) -> impl Future<Output = Result<i64>> + Send;

    /// Sends the event straight to the dead-letter queue (a non-retryable
    /// error).
    fn terminate(
        &self,
        subscription: &str,
        id: &AckId,
        reason: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Push delivery: a stream of deliveries with at most `credit` of them
    /// held by the caller at once (a [`PushDelivery`] holds its credit until
    /// dropped).
    fn subscribe(&self, subscription: &str, options: PushOptions) -> DeliveryStream
    where
        Self: Clone,
    {
        push::stream(self.clone(), subscription.to_string(), options)
    }

    // ---- dead letters ----

    /// Dead letters of a subscription with ids ≥ `from`, up to `max`.
    fn dead_letters(
        &self,
        subscription: &str,
        from: u64,
        max: u32,
    ) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// One dead letter.
    fn dead_letter(
        &self,
        subscription: &str,
        id: u64,
    ) -> impl Future<Output = Result<DeadLetter>> + Send;

    /// Redrives dead letters and removes them from the queue; returns how
    /// many.
    fn redrive(
        &self,
        subscription: &str,
        selection: DeadLetterSelection,
        target: RedriveTarget,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Discards dead letters; returns how many.
    fn purge(
        &self,
        subscription: &str,
        selection: DeadLetterSelection,
    ) -> impl Future<Output = Result<u64>> + Send;

    // ---- statistics ----

    /// A topic's counters.
    fn topic_stats(&self, name: &str) -> impl Future<Output = Result<TopicStats>> + Send;

    /// A subscription's counters and backlog.
    fn subscription_stats(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<SubscriptionStats>> + Send;
}
