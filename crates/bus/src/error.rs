//! The one error type of the `Bus` interface, with stable numeric codes.

use crate::{Offset, Partition};

/// What went wrong. Every variant has a stable [`BusError::code`], grouped by
/// area and never reused, so that a network client can map a wire error back
/// to the same variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// A topic, subscription or header name breaks the naming rules.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// What was being named ("topic", "subscription", ...).
        what: &'static str,
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A subscription filter is not a valid topic pattern.
    #[error("invalid topic pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// An argument or setting is out of its range.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument or setting.
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// Something is larger than a limit allows; raise `setting` to allow it.
    #[error("{what} of {actual} exceeds `{setting}` = {limit}")]
    LimitExceeded {
        /// What is too large ("event", "batch", "event id", ...).
        what: &'static str,
        /// The setting that sets the limit.
        setting: &'static str,
        /// The limit.
        limit: u64,
        /// The size or count that was refused.
        actual: u64,
    },
    /// No topic has this name.
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    /// A topic with this name exists already.
    #[error("topic {0:?} exists already")]
    TopicExists(String),
    /// The topic has fewer partitions.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    PartitionNotFound {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: Partition,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// No subscription has this name.
    #[error("subscription {0:?} does not exist")]
    SubscriptionNotFound(String),
    /// A subscription with this name exists already.
    #[error("subscription {0:?} exists already")]
    SubscriptionExists(String),
    /// The delivery was acknowledged already.
    #[error("delivery {0} was acked already")]
    AlreadyAcked(String),
    /// The event was dead-lettered (terminated, or out of attempts); it can
    /// no longer be acked, nacked or extended through this delivery.
    #[error("delivery {0} was dead-lettered; see the subscription's dead-letter queue")]
    DeadLettered(String),
    /// The delivery is no longer leased: its lease ran out before this call
    /// (a failed attempt), or it was nacked; the event will be redelivered
    /// (or dead-lettered) under a new delivery id.
    #[error("delivery {0} is no longer leased (its lease expired or it was nacked)")]
    LeaseExpired(String),
    /// The delivery id names no delivery this subscription handed out, or a
    /// later delivery of the same event replaced it.
    #[error("delivery {0} is not pending in this subscription")]
    UnknownDelivery(String),
    /// A read or seek asked for an offset the partition does not hold.
    #[error("offset {requested} is outside the partition's range {first}..{next}")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: Offset,
        /// The first offset held.
        first: Offset,
        /// The offset after the last one.
        next: Offset,
    },
    /// No dead letter has this id in the subscription's dead-letter queue.
    #[error("dead letter {0} is not in the dead-letter queue")]
    DeadLetterNotFound(u64),
    /// A redrive into the subscription needs the original event, and
    /// retention deleted it; redrive it to a topic instead.
    #[error("the original of dead letter {0} is no longer retained; redrive it to a topic")]
    RedriveSourceGone(u64),
    /// The stream is not where the append (or delete) expected it.
    #[error("stream {stream:?} is at version {}, not {expected}", actual.map_or("none (no stream)".to_string(), |v| v.to_string()))]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What the call expected (`any`, `no_stream`, `exists` or a version).
        expected: String,
        /// The stream's actual last version; `None` if it does not exist.
        actual: Option<u64>,
    },
    /// No stream has this name (it was never written, or was deleted).
    #[error("stream {0:?} does not exist")]
    StreamNotFound(String),
    /// An event id of the append is already another stream's event.
    #[error("event id {id:?} is already event {version} of stream {stream:?}")]
    EventIdInUse {
        /// The id.
        id: String,
        /// The stream that holds it.
        stream: String,
        /// Its version there.
        version: u64,
    },
    /// The request carries no valid credentials, and the server wants them.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The credentials are valid but do not allow this action on this
    /// resource.
    #[error("permission denied: {action} on {resource:?} is not granted to {principal:?}")]
    PermissionDenied {
        /// Who asked (the token's name).
        principal: String,
        /// The permission needed: `publish`, `subscribe` or `admin`.
        action: &'static str,
        /// The topic, pattern or subscription it was needed on.
        resource: String,
    },
    /// The storage failed; the message says how.
    #[error("storage error: {0}")]
    Storage(String),
    /// A write failed earlier and the bus refuses writes until it is reopened.
    #[error("the bus refuses writes after a failure: {0}")]
    Poisoned(String),
    /// Stored data failed its checks.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The bus was closed.
    #[error("the bus is closed")]
    Closed,
    /// The bus cannot be reached (network implementations).
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
}

impl BusError {
    /// The stable numeric code of this error: 1xxx bad input, 2xxx topics,
    /// 3xxx subscriptions, 4xxx deliveries, 5xxx reads and dead letters,
    /// 6xxx access control, 7xxx the event store, 9xxx the bus itself. 8xxx is reserved for the native protocol's own
    /// errors (`eddy-proto`).
    pub fn code(&self) -> u16 {
        match self {
            BusError::InvalidName { .. } => 1001,
            BusError::InvalidPattern { .. } => 1002,
            BusError::InvalidArgument { .. } => 1003,
            BusError::LimitExceeded { .. } => 1004,
            BusError::TopicNotFound(_) => 2001,
            BusError::TopicExists(_) => 2002,
            BusError::PartitionNotFound { .. } => 2003,
            BusError::SubscriptionNotFound(_) => 3001,
            BusError::SubscriptionExists(_) => 3002,
            BusError::AlreadyAcked(_) => 4001,
            BusError::DeadLettered(_) => 4002,
            BusError::LeaseExpired(_) => 4003,
            BusError::UnknownDelivery(_) => 4004,
            BusError::OffsetOutOfRange { .. } => 5001,
            BusError::DeadLetterNotFound(_) => 5002,
            BusError::RedriveSourceGone(_) => 5003,
            BusError::WrongExpectedVersion { .. } => 7001,
            BusError::StreamNotFound(_) => 7002,
            BusError::EventIdInUse { .. } => 7003,
            BusError::Unauthenticated(_) => 6001,
            BusError::PermissionDenied { .. } => 6002,
            BusError::Storage(_) => 9001,
            BusError::Poisoned(_) => 9002,
            BusError::Corrupt(_) => 9003,
            BusError::Closed => 9004,
            BusError::Unavailable(_) => 9005,
        }
    }
}

/// The result type of the `Bus` interface.
pub type Result<T, E = BusError> = std::result::Result<T, E>;
