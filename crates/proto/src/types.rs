//! The wire encoding of every value that crosses the `Bus` interface, in
//! the order of the fields of its Rust type. `docs/protocol.md` lists the
//! same layouts for readers without this crate.

use bytes::Bytes;
use eddy_bus::{
    AckId, Backoff, DeadLetter, DeadLetterSelection, DeadReason, DedupWindow, Delivery,
    DeliveryMode, Event, FetchOptions, NackOptions, Offset, Partition, PartitionInfo, Published,
    ReadBatch, ReadFrom, RedriveTarget, Retention, RetryPolicy, StartAt, StoredEvent,
    SubscriptionConfig, SubscriptionInfo, SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, Direction, ExpectedVersion, RecordedEvent, StreamFrom,
    StreamInfo, StreamMetadata, StreamSlice,
};

use crate::LIST_ITEMS_MAX;
use crate::error::Result;
use crate::wire::{Reader, Wire, Writer};

/// `Offset`: a varint.
impl Wire for Offset {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.0);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.get(what).map(Offset)
    }
}

/// `Partition`: a varint (32 bits).
impl Wire for Partition {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.0);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.get(what).map(Partition)
    }
}

impl Wire for Event {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.id);
        w.put(&self.source);
        w.put(&self.ty);
        w.put(&self.subject);
        w.put(&self.time_ms);
        w.put(&self.data_content_type);
        w.put(&self.data_schema);
        w.put(&self.data);
        w.put(&self.key);
        w.put(&self.correlation_id);
        w.put(&self.causation_id);
        w.put(&self.traceparent);
        w.list("event headers", &self.headers, LIST_ITEMS_MAX);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(Event {
            id: r.get("event id")?,
            source: r.get("event source")?,
            ty: r.get("event type")?,
            subject: r.get("event subject")?,
            time_ms: r.get("event time")?,
            data_content_type: r.get("event datacontenttype")?,
            data_schema: r.get("event dataschema")?,
            data: r.get::<Bytes>("event data")?,
            key: r.get("event key")?,
            correlation_id: r.get("event correlationid")?,
            causation_id: r.get("event causationid")?,
            traceparent: r.get("event traceparent")?,
            headers: r.list("event headers", LIST_ITEMS_MAX)?,
        })
    }
}

impl Wire for StoredEvent {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.topic);
        w.put(&self.partition);
        w.put(&self.offset);
        w.put(&self.timestamp_ms);
        w.put(&self.event);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(StoredEvent {
            topic: r.get("stored event topic")?,
            partition: r.get("stored event partition")?,
            offset: r.get("stored event offset")?,
            timestamp_ms: r.get("stored event timestamp")?,
            event: r.get(what)?,
        })
    }
}

impl Wire for Published {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.partition);
        w.put(&self.offset);
        w.put(&self.duplicate);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(Published {
            partition: r.get("published partition")?,
            offset: r.get("published offset")?,
            duplicate: r.get("published duplicate")?,
        })
    }
}

impl Wire for Retention {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.age_max_ms);
        w.put(&self.bytes_max);
        w.put(&self.events_max);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(Retention {
            age_max_ms: r.get("retention age_max_ms")?,
            bytes_max: r.get("retention bytes_max")?,
            events_max: r.get("retention events_max")?,
        })
    }
}

impl Wire for DedupWindow {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.age_ms);
        w.put(&self.entries_max);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(DedupWindow {
            age_ms: r.get("dedup age_ms")?,
            entries_max: r.get("dedup entries_max")?,
        })
    }
}

impl Wire for TopicConfig {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.partitions);
        w.put(&self.retention);
        w.put(&self.dedup);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(TopicConfig {
            partitions: r.get("topic config partitions")?,
            retention: r.get(what)?,
            dedup: r.get(what)?,
        })
    }
}

impl Wire for PartitionInfo {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.partition);
        w.put(&self.first_offset);
        w.put(&self.next_offset);
        w.put(&self.size_bytes);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(PartitionInfo {
            partition: r.get("partition info partition")?,
            first_offset: r.get("partition info first_offset")?,
            next_offset: r.get("partition info next_offset")?,
            size_bytes: r.get("partition info size_bytes")?,
        })
    }
}

impl Wire for TopicInfo {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.name);
        w.put(&self.config);
        w.list("topic partitions", &self.partitions, LIST_ITEMS_MAX);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(TopicInfo {
            name: r.get("topic name")?,
            config: r.get(what)?,
            partitions: r.list("topic partitions", LIST_ITEMS_MAX)?,
        })
    }
}

/// `StartAt` (and `SeekTo`): tag 0 earliest, 1 latest, 2 offset + varint,
/// 3 time + zigzag.
impl Wire for StartAt {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            StartAt::Earliest => w.u8(0),
            StartAt::Latest => w.u8(1),
            StartAt::Offset(o) => {
                w.u8(2);
                w.put(o);
            }
            StartAt::Time(t) => {
                w.u8(3);
                w.put(t);
            }
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("start position", 4)? {
            0 => StartAt::Earliest,
            1 => StartAt::Latest,
            2 => StartAt::Offset(r.get("start offset")?),
            _ => StartAt::Time(r.get("start time")?),
        })
    }
}

/// `DeliveryMode`: tag 0 shared, 1 ordered.
impl Wire for DeliveryMode {
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(match self {
            DeliveryMode::Shared => 0,
            DeliveryMode::Ordered => 1,
        });
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("delivery mode", 2)? {
            0 => DeliveryMode::Shared,
            _ => DeliveryMode::Ordered,
        })
    }
}

/// `Backoff`: tag 0 fixed, 1 exponential, 2 quadratic, 3 list, then its
/// fields.
impl Wire for Backoff {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            Backoff::Fixed { delay_ms } => {
                w.u8(0);
                w.put(delay_ms);
            }
            Backoff::Exponential { initial_ms, factor } => {
                w.u8(1);
                w.put(initial_ms);
                w.put(factor);
            }
            Backoff::Quadratic { base_ms } => {
                w.u8(2);
                w.put(base_ms);
            }
            Backoff::List { delays_ms } => {
                w.u8(3);
                w.list("backoff delays", delays_ms, LIST_ITEMS_MAX);
            }
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("backoff", 4)? {
            0 => Backoff::Fixed {
                delay_ms: r.get("backoff delay_ms")?,
            },
            1 => Backoff::Exponential {
                initial_ms: r.get("backoff initial_ms")?,
                factor: r.get("backoff factor")?,
            },
            2 => Backoff::Quadratic {
                base_ms: r.get("backoff base_ms")?,
            },
            _ => Backoff::List {
                delays_ms: r.list("backoff delays", LIST_ITEMS_MAX)?,
            },
        })
    }
}

impl Wire for RetryPolicy {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.max_deliveries);
        w.put(&self.backoff);
        w.put(&self.cap_ms);
        w.u8(self.jitter_pct);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(RetryPolicy {
            max_deliveries: r.get("retry max_deliveries")?,
            backoff: r.get(what)?,
            cap_ms: r.get("retry cap_ms")?,
            jitter_pct: r.u8("retry jitter_pct")?,
        })
    }
}

impl Wire for SubscriptionConfig {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.filter);
        w.put(&self.start);
        w.put(&self.mode);
        w.put(&self.ack_wait_ms);
        w.put(&self.retry);
        w.put(&self.max_ack_pending);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(SubscriptionConfig {
            filter: r.get("subscription filter")?,
            start: r.get(what)?,
            mode: r.get(what)?,
            ack_wait_ms: r.get("subscription ack_wait_ms")?,
            retry: r.get(what)?,
            max_ack_pending: r.get("subscription max_ack_pending")?,
        })
    }
}

impl Wire for SubscriptionInfo {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.name);
        w.put(&self.config);
        w.list("subscription topics", &self.topics, LIST_ITEMS_MAX);
        w.put(&self.dead_letter_topic);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(SubscriptionInfo {
            name: r.get("subscription name")?,
            config: r.get(what)?,
            topics: r.list("subscription topics", LIST_ITEMS_MAX)?,
            dead_letter_topic: r.get("subscription dead_letter_topic")?,
        })
    }
}

impl Wire for AckId {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.topic);
        w.put(&self.partition);
        w.put(&self.offset);
        w.put(&self.seq);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(AckId {
            topic: r.get("ack id topic")?,
            partition: r.get("ack id partition")?,
            offset: r.get("ack id offset")?,
            seq: r.get("ack id seq")?,
        })
    }
}

impl Wire for Delivery {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.ack_id);
        w.put(&self.attempt);
        w.put(&self.lease_deadline_ms);
        w.put(&self.event);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(Delivery {
            ack_id: r.get(what)?,
            attempt: r.get("delivery attempt")?,
            lease_deadline_ms: r.get("delivery lease_deadline_ms")?,
            event: r.get(what)?,
        })
    }
}

impl Wire for FetchOptions {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.max);
        w.put(&self.wait_ms);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(FetchOptions {
            max: r.get("fetch max")?,
            wait_ms: r.get("fetch wait_ms")?,
        })
    }
}

impl Wire for NackOptions {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.delay_ms);
        w.put(&self.error);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(NackOptions {
            delay_ms: r.get("nack delay_ms")?,
            error: r.get("nack error")?,
        })
    }
}

/// `ReadFrom`: tag 0 beginning, 1 offset + varint, 2 time + zigzag, 3 end.
impl Wire for ReadFrom {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            ReadFrom::Beginning => w.u8(0),
            ReadFrom::Offset(o) => {
                w.u8(1);
                w.put(o);
            }
            ReadFrom::Time(t) => {
                w.u8(2);
                w.put(t);
            }
            ReadFrom::End => w.u8(3),
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("read position", 4)? {
            0 => ReadFrom::Beginning,
            1 => ReadFrom::Offset(r.get("read offset")?),
            2 => ReadFrom::Time(r.get("read time")?),
            _ => ReadFrom::End,
        })
    }
}

impl Wire for ReadBatch {
    fn put(&self, w: &mut Writer<'_>) {
        w.list("read events", &self.events, LIST_ITEMS_MAX);
        w.put(&self.next_offset);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(ReadBatch {
            events: r.list("read events", LIST_ITEMS_MAX)?,
            next_offset: r.get("read next_offset")?,
        })
    }
}

/// `DeadReason`: tag 0 max_deliveries, 1 terminated.
impl Wire for DeadReason {
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(match self {
            DeadReason::MaxDeliveries => 0,
            DeadReason::Terminated => 1,
        });
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("dead letter reason", 2)? {
            0 => DeadReason::MaxDeliveries,
            _ => DeadReason::Terminated,
        })
    }
}

impl Wire for DeadLetter {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.id);
        w.put(&self.subscription);
        w.put(&self.event);
        w.put(&self.attempts);
        w.put(&self.last_error);
        w.put(&self.reason);
        w.put(&self.dead_at_ms);
        w.put(&self.redrives);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(DeadLetter {
            id: r.get("dead letter id")?,
            subscription: r.get("dead letter subscription")?,
            event: r.get(what)?,
            attempts: r.get("dead letter attempts")?,
            last_error: r.get("dead letter last_error")?,
            reason: r.get(what)?,
            dead_at_ms: r.get("dead letter dead_at_ms")?,
            redrives: r.get("dead letter redrives")?,
        })
    }
}

/// `DeadLetterSelection`: tag 0 all, 1 ids + list of varints.
impl Wire for DeadLetterSelection {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            DeadLetterSelection::All => w.u8(0),
            DeadLetterSelection::Ids(ids) => {
                w.u8(1);
                w.list("dead letter ids", ids, LIST_ITEMS_MAX);
            }
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("dead letter selection", 2)? {
            0 => DeadLetterSelection::All,
            _ => DeadLetterSelection::Ids(r.list("dead letter ids", LIST_ITEMS_MAX)?),
        })
    }
}

/// `RedriveTarget`: tag 0 subscription, 1 topic + string.
impl Wire for RedriveTarget {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            RedriveTarget::Subscription => w.u8(0),
            RedriveTarget::Topic(t) => {
                w.u8(1);
                w.put(t);
            }
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("redrive target", 2)? {
            0 => RedriveTarget::Subscription,
            _ => RedriveTarget::Topic(r.get("redrive topic")?),
        })
    }
}

impl Wire for TopicStats {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.name);
        w.put(&self.published);
        w.put(&self.duplicates);
        w.put(&self.events);
        w.put(&self.size_bytes);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(TopicStats {
            name: r.get("topic stats name")?,
            published: r.get("topic stats published")?,
            duplicates: r.get("topic stats duplicates")?,
            events: r.get("topic stats events")?,
            size_bytes: r.get("topic stats size_bytes")?,
        })
    }
}

impl Wire for SubscriptionStats {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.name);
        w.put(&self.delivered);
        w.put(&self.redelivered);
        w.put(&self.acked);
        w.put(&self.dead_lettered);
        w.put(&self.lag);
        w.put(&self.in_flight);
        w.put(&self.waiting);
        w.put(&self.oldest_unacked_age_ms);
        w.put(&self.dead_letters);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(SubscriptionStats {
            name: r.get("subscription stats name")?,
            delivered: r.get("subscription stats delivered")?,
            redelivered: r.get("subscription stats redelivered")?,
            acked: r.get("subscription stats acked")?,
            dead_lettered: r.get("subscription stats dead_lettered")?,
            lag: r.get("subscription stats lag")?,
            in_flight: r.get("subscription stats in_flight")?,
            waiting: r.get("subscription stats waiting")?,
            oldest_unacked_age_ms: r.get("subscription stats oldest_unacked_age_ms")?,
            dead_letters: r.get("subscription stats dead_letters")?,
        })
    }
}

// ---- the event store ----

/// `ExpectedVersion`: tag 0 any, 1 no_stream, 2 exists, 3 exact + varint.
impl Wire for ExpectedVersion {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            ExpectedVersion::Any => w.u8(0),
            ExpectedVersion::NoStream => w.u8(1),
            ExpectedVersion::Exists => w.u8(2),
            ExpectedVersion::Exact(v) => {
                w.u8(3);
                w.put(v);
            }
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("expected version", 4)? {
            0 => ExpectedVersion::Any,
            1 => ExpectedVersion::NoStream,
            2 => ExpectedVersion::Exists,
            _ => ExpectedVersion::Exact(r.get("expected version number")?),
        })
    }
}

/// `StreamFrom`: tag 0 start, 1 version + varint.
impl Wire for StreamFrom {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            StreamFrom::Start => w.u8(0),
            StreamFrom::Version(v) => {
                w.u8(1);
                w.put(v);
            }
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("stream position", 2)? {
            0 => StreamFrom::Start,
            _ => StreamFrom::Version(r.get("stream version")?),
        })
    }
}

/// `Direction`: tag 0 forward, 1 backward.
impl Wire for Direction {
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(match self {
            Direction::Forward => 0,
            Direction::Backward => 1,
        });
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("direction", 2)? {
            0 => Direction::Forward,
            _ => Direction::Backward,
        })
    }
}

/// `AllFilter`: tag 0 all, 1 category, 2 event type, 3 stream prefix; the
/// last three + string.
impl Wire for AllFilter {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            AllFilter::All => w.u8(0),
            AllFilter::Category(c) => {
                w.u8(1);
                w.put(c);
            }
            AllFilter::EventType(t) => {
                w.u8(2);
                w.put(t);
            }
            AllFilter::StreamPrefix(p) => {
                w.u8(3);
                w.put(p);
            }
        }
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(match r.tag("all filter", 4)? {
            0 => AllFilter::All,
            1 => AllFilter::Category(r.get("all filter category")?),
            2 => AllFilter::EventType(r.get("all filter type")?),
            _ => AllFilter::StreamPrefix(r.get("all filter prefix")?),
        })
    }
}

impl Wire for StreamMetadata {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.max_age_ms);
        w.put(&self.max_count);
        w.put(&self.truncate_before);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(StreamMetadata {
            max_age_ms: r.get("stream metadata max_age_ms")?,
            max_count: r.get("stream metadata max_count")?,
            truncate_before: r.get("stream metadata truncate_before")?,
        })
    }
}

impl Wire for AppendResult {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.first_version);
        w.put(&self.last_version);
        w.put(&self.position);
        w.put(&self.duplicate);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(AppendResult {
            first_version: r.get("append first_version")?,
            last_version: r.get("append last_version")?,
            position: r.get("append position")?,
            duplicate: r.get("append duplicate")?,
        })
    }
}

impl Wire for RecordedEvent {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.stream);
        w.put(&self.version);
        w.put(&self.position);
        w.put(&self.timestamp_ms);
        w.put(&self.event);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(RecordedEvent {
            stream: r.get("recorded event stream")?,
            version: r.get("recorded event version")?,
            position: r.get("recorded event position")?,
            timestamp_ms: r.get("recorded event timestamp")?,
            event: r.get(what)?,
        })
    }
}

/// The fields of a `StreamSlice` after its events (the last frame's count
/// when the slice continues over several).
pub(crate) fn put_stream_slice_end(w: &mut Writer<'_>, s: &StreamSlice) {
    w.put(&s.last_version);
    w.put(&s.next);
}

impl Wire for StreamSlice {
    fn put(&self, w: &mut Writer<'_>) {
        w.list("stream events", &self.events, LIST_ITEMS_MAX);
        put_stream_slice_end(w, self);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(StreamSlice {
            events: r.list("stream events", LIST_ITEMS_MAX)?,
            last_version: r.get("stream last_version")?,
            next: r.get("stream next")?,
        })
    }
}

/// The fields of an `AllSlice` after its events.
pub(crate) fn put_all_slice_end(w: &mut Writer<'_>, s: &AllSlice) {
    w.put(&s.next);
    w.put(&s.head);
}

impl Wire for AllSlice {
    fn put(&self, w: &mut Writer<'_>) {
        w.list("all events", &self.events, LIST_ITEMS_MAX);
        put_all_slice_end(w, self);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(AllSlice {
            events: r.list("all events", LIST_ITEMS_MAX)?,
            next: r.get("all next")?,
            head: r.get("all head")?,
        })
    }
}

impl Wire for StreamInfo {
    fn put(&self, w: &mut Writer<'_>) {
        w.put(&self.stream);
        w.put(&self.last_version);
        w.put(&self.metadata);
        w.put(&self.deleted);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(StreamInfo {
            stream: r.get("stream info stream")?,
            last_version: r.get("stream info last_version")?,
            metadata: r.get(what)?,
            deleted: r.get("stream info deleted")?,
        })
    }
}
