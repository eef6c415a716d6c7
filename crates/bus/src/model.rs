//! The values that cross the `Bus` interface: topic and subscription
//! settings, deliveries, reads, dead letters and statistics.

use std::fmt;
use std::str::FromStr;

use crate::error::{BusError, Result};
use crate::event::StoredEvent;
use crate::retry::RetryPolicy;
use crate::{Offset, Partition};

/// Most partitions a topic may have.
pub const PARTITIONS_MAX: u32 = 1024;

/// How long a topic keeps events. Applies to each partition; `None`
/// everywhere keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete events once they are this old (in whole segments).
    pub age_max_ms: Option<u64>,
    /// Keep at most about this many bytes per partition.
    pub bytes_max: Option<u64>,
    /// Keep at most about this many events per partition.
    pub events_max: Option<u64>,
}

/// The window in which a second publish of the same event id is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupWindow {
    /// Ids are remembered this long after their publish.
    pub age_ms: u64,
    /// At most this many ids are remembered per topic (the oldest go first).
    pub entries_max: u32,
}

impl Default for DedupWindow {
    /// Two minutes, 100,000 ids.
    fn default() -> Self {
        DedupWindow {
            age_ms: 120_000,
            entries_max: 100_000,
        }
    }
}

/// A topic's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Partitions, 1..=[`PARTITIONS_MAX`]. Fixed at creation.
    pub partitions: u32,
    /// Retention of each partition.
    pub retention: Retention,
    /// Idempotent publishing window.
    pub dedup: DedupWindow,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            retention: Retention::default(),
            dedup: DedupWindow::default(),
        }
    }
}

impl TopicConfig {
    /// A topic with `partitions` partitions and default settings.
    pub fn with_partitions(partitions: u32) -> TopicConfig {
        TopicConfig {
            partitions,
            ..TopicConfig::default()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > PARTITIONS_MAX {
            return Err(BusError::InvalidArgument {
                what: "partitions",
                reason: format!(
                    "a topic has 1..={PARTITIONS_MAX} partitions, not {}",
                    self.partitions
                ),
            });
        }
        Ok(())
    }
}

/// A partition's range and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: Partition,
    /// The first offset still held.
    pub first_offset: Offset,
    /// The offset the next event gets.
    pub next_offset: Offset,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// A topic as described by the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The name.
    pub name: String,
    /// The settings.
    pub config: TopicConfig,
    /// Each partition's range.
    pub partitions: Vec<PartitionInfo>,
}

/// Where a new subscription (or a seek) starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The first event still held.
    Earliest,
    /// After the last event: only events published from now on.
    #[default]
    Latest,
    /// This offset in every partition (clamped to what is held).
    Offset(Offset),
    /// The first event appended at or after this time (ms since the epoch).
    Time(i64),
}

/// How the consumers of one subscription share its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// Any event to any consumer: the most throughput, no order.
    #[default]
    Shared,
    /// At most one event per key in flight (delivered and not yet acked,
    /// or waiting for a retry), so each key's events are processed in
    /// order while different keys are still spread over consumers.
    /// Events without a key are not ordered.
    Ordered,
}

/// A subscription's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// A topic name or a pattern (`orders.*`, `orders.>`).
    pub filter: String,
    /// Where it starts in the topics that exist when it is created. Topics
    /// created later are read from their beginning.
    pub start: StartAt,
    /// Shared or per-key ordered.
    pub mode: DeliveryMode,
    /// How long a consumer has to settle a delivery before it counts as
    /// failed.
    pub ack_wait_ms: u64,
    /// Retries and dead-lettering.
    pub retry: RetryPolicy,
    /// Most events pending at once (delivered, or waiting for a retry or
    /// for their key): when reached, no new events are delivered until some
    /// are settled.
    pub max_ack_pending: u32,
}

impl SubscriptionConfig {
    /// A shared subscription on `filter` from the latest event, with a 30 s
    /// lease, the default retry policy and 10,000 pending events at most.
    pub fn new(filter: impl Into<String>) -> SubscriptionConfig {
        SubscriptionConfig {
            filter: filter.into(),
            start: StartAt::Latest,
            mode: DeliveryMode::Shared,
            ack_wait_ms: 30_000,
            retry: RetryPolicy::default(),
            max_ack_pending: 10_000,
        }
    }

    /// Sets where it starts.
    pub fn start_at(mut self, start: StartAt) -> SubscriptionConfig {
        self.start = start;
        self
    }

    /// Sets the delivery mode.
    pub fn mode(mut self, mode: DeliveryMode) -> SubscriptionConfig {
        self.mode = mode;
        self
    }

    /// Sets the lease.
    pub fn ack_wait_ms(mut self, ms: u64) -> SubscriptionConfig {
        self.ack_wait_ms = ms;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> SubscriptionConfig {
        self.retry = retry;
        self
    }

    /// Checks the settings (the filter is checked by the bus).
    pub fn validate(&self) -> Result<()> {
        self.retry.validate()?;
        if self.ack_wait_ms == 0 || self.ack_wait_ms > ACK_WAIT_MS_MAX {
            return Err(BusError::InvalidArgument {
                what: "ack_wait_ms",
                reason: format!("must be 1..={ACK_WAIT_MS_MAX}, not {}", self.ack_wait_ms),
            });
        }
        if self.max_ack_pending == 0 || self.max_ack_pending > MAX_ACK_PENDING_MAX {
            return Err(BusError::InvalidArgument {
                what: "max_ack_pending",
                reason: format!(
                    "must be 1..={MAX_ACK_PENDING_MAX}, not {}",
                    self.max_ack_pending
                ),
            });
        }
        Ok(())
    }
}

/// Longest lease: one day.
pub const ACK_WAIT_MS_MAX: u64 = 24 * 3600 * 1000;
/// Largest `max_ack_pending`.
pub const MAX_ACK_PENDING_MAX: u32 = 1_000_000;
/// Most deliveries one fetch returns.
pub const FETCH_MAX: u32 = 10_000;
/// Most events one read returns.
pub const READ_MAX: u32 = 10_000;
/// Longest wait of a fetch or read.
pub const WAIT_MS_MAX: u64 = 60_000;

/// A subscription as described by the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// The name.
    pub name: String,
    /// The settings.
    pub config: SubscriptionConfig,
    /// The topics it currently reads.
    pub topics: Vec<String>,
    /// Its dead-letter topic.
    pub dead_letter_topic: String,
}

/// Identifies one delivery of one event to a subscription, for settling
/// it. Its text form (`topic/partition/offset/seq`) is what network
/// clients carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AckId {
    /// The event's topic.
    pub topic: String,
    /// Its partition.
    pub partition: Partition,
    /// Its offset.
    pub offset: Offset,
    /// Which delivery of the subscription this was; a redelivery of the
    /// same event gets a new one.
    pub seq: u64,
}

impl fmt::Display for AckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.topic, self.partition.0, self.offset.0, self.seq
        )
    }
}

impl FromStr for AckId {
    type Err = BusError;
    fn from_str(s: &str) -> Result<AckId> {
        let bad = || BusError::InvalidArgument {
            what: "ack id",
            reason: format!("{s:?} is not `topic/partition/offset/seq`"),
        };
        let mut parts = s.rsplitn(4, '/');
        let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let offset = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let partition = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let topic = parts.next().filter(|t| !t.is_empty()).ok_or_else(bad)?;
        Ok(AckId {
            topic: topic.to_string(),
            partition: Partition(partition),
            offset: Offset(offset),
            seq,
        })
    }
}

/// One delivery of an event to a consumer of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Settles this delivery.
    pub ack_id: AckId,
    /// 1 for the first delivery, 2 for the first redelivery, ...
    pub attempt: u32,
    /// The lease ends at this time (ms since the epoch) unless extended.
    pub lease_deadline_ms: i64,
    /// The event.
    pub event: StoredEvent,
}

/// What a fetch asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// At most this many deliveries, 1..=[`FETCH_MAX`].
    pub max: u32,
    /// If none is ready, wait up to this long for one (real time).
    pub wait_ms: u64,
}

impl FetchOptions {
    /// Up to `max` deliveries, without waiting.
    pub fn now(max: u32) -> FetchOptions {
        FetchOptions { max, wait_ms: 0 }
    }
}

/// What a failed delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NackOptions {
    /// Redeliver after this long instead of the retry policy's backoff.
    pub delay_ms: Option<u64>,
    /// Why it failed, kept with the event (and in its dead letter).
    pub error: Option<String>,
}

/// Where a direct read of a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first event still held.
    Beginning,
    /// This offset (an error if it is not held).
    Offset(Offset),
    /// The first event appended at or after this time (ms since the epoch).
    Time(i64),
    /// After the last event: returns nothing now, and the offset to read
    /// from next.
    End,
}

/// Events read from a partition, and where to read on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    /// The events, in offset order.
    pub events: Vec<StoredEvent>,
    /// The offset to read from next.
    pub next_offset: Offset,
}

/// Where a subscription moves to; see [`StartAt`].
pub type SeekTo = StartAt;

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Its last allowed delivery failed.
    MaxDeliveries,
    /// A consumer terminated it (a non-retryable error).
    Terminated,
}

impl DeadReason {
    /// The name used in alerts and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::MaxDeliveries => "max_deliveries",
            DeadReason::Terminated => "terminated",
        }
    }
}

/// An event in a subscription's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter queue (its offset in the dead-letter topic).
    pub id: u64,
    /// The subscription.
    pub subscription: String,
    /// The original event, with its original topic, partition and offset.
    pub event: StoredEvent,
    /// Deliveries it got.
    pub attempts: u32,
    /// The last error a consumer gave, if any.
    pub last_error: Option<String>,
    /// Why it died.
    pub reason: DeadReason,
    /// When it was dead-lettered (ms since the epoch).
    pub dead_at_ms: i64,
    /// Times it was redriven into its subscription before this death.
    pub redrives: u32,
}

/// Which dead letters an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterSelection {
    /// All of them.
    All,
    /// These ids.
    Ids(Vec<u64>),
}

/// Where redriven dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveTarget {
    /// Back into the subscription they died in, with fresh attempts; other
    /// subscriptions do not see them again.
    Subscription,
    /// Published (as new events, same ids) to this topic.
    Topic(String),
}

/// A topic's counters and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    /// The topic.
    pub name: String,
    /// Events published since the bus opened (duplicates not counted).
    pub published: u64,
    /// Publishes dropped as duplicates since the bus opened.
    pub duplicates: u64,
    /// Events held, summed over partitions.
    pub events: u64,
    /// Bytes on disk, summed over partitions.
    pub size_bytes: u64,
}

/// A subscription's counters and backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// The subscription.
    pub name: String,
    /// Deliveries handed out since the bus opened (first ones and redeliveries).
    pub delivered: u64,
    /// Redeliveries among them.
    pub redelivered: u64,
    /// Acks since the bus opened.
    pub acked: u64,
    /// Events dead-lettered since the bus opened.
    pub dead_lettered: u64,
    /// Events not yet settled: pending plus not yet delivered.
    pub lag: u64,
    /// Deliveries whose lease is running.
    pub in_flight: u64,
    /// Events waiting for a retry or for their key.
    pub waiting: u64,
    /// Age of the oldest unsettled delivered event, by its append time.
    pub oldest_unacked_age_ms: Option<u64>,
    /// Dead letters in its queue.
    pub dead_letters: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_id_text_round_trip() {
        let id = AckId {
            topic: "orders.placed".into(),
            partition: Partition(3),
            offset: Offset(42),
            seq: 7,
        };
        assert_eq!(id.to_string(), "orders.placed/3/42/7");
        assert_eq!(id.to_string().parse::<AckId>().unwrap(), id);
        for bad in ["", "a/1/2", "/1/2/3", "a/x/2/3", "a/1/2/-3"] {
            assert!(bad.parse::<AckId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_validation() {
        assert!(TopicConfig::with_partitions(0).validate().is_err());
        assert!(TopicConfig::with_partitions(4).validate().is_ok());
        assert!(
            SubscriptionConfig::new("a")
                .ack_wait_ms(0)
                .validate()
                .is_err()
        );
        assert!(SubscriptionConfig::new("a").validate().is_ok());
    }
}
