//! Shared by the tests: one non-trivial value of every message kind, and
//! proptest strategies for events and deliveries.

#![allow(dead_code)]

use bytes::Bytes;
use eddy_bus::{
    AckId, Backoff, BusError, DeadLetter, DeadLetterSelection, DeadReason, DedupWindow, Delivery,
    DeliveryMode, Event, FetchOptions, NackOptions, Offset, Partition, PartitionInfo, Published,
    ReadBatch, ReadFrom, RedriveTarget, Retention, RetryPolicy, StartAt, StoredEvent,
    SubscriptionConfig, SubscriptionInfo, SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, Direction, ExpectedVersion, RecordedEvent, StreamFrom,
    StreamInfo, StreamMetadata, StreamSlice,
};
use eddy_proto::{
    Decoded, FRAME_BYTES_DEFAULT, Frame, Hello, Message, Request, Response, Welcome, WireError,
    decode_frame, encode_frame,
};
use proptest::prelude::*;

/// An event with every attribute set, non-ASCII text and binary data.
pub fn full_event() -> Event {
    Event {
        id: "e-1".into(),
        source: "/services/orders".into(),
        ty: "OrderPlaced".into(),
        subject: Some("order-1".into()),
        time_ms: Some(-1_700_000_000_000),
        data_content_type: Some("application/json".into()),
        data_schema: Some("https://schemas.example/order/v2".into()),
        data: Bytes::from_static(b"\x00\xff{\"total\":3}"),
        key: Some("kunde-\u{e4}\u{f6}".into()),
        correlation_id: Some("flow-9".into()),
        causation_id: Some("e-0".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        headers: vec![
            ("tenant".into(), "acme".into()),
            ("region".into(), "eu".into()),
        ],
    }
}

pub fn stored(offset: u64) -> StoredEvent {
    StoredEvent {
        topic: "orders.placed".into(),
        partition: Partition(3),
        offset: Offset(offset),
        timestamp_ms: 1_700_000_000_123,
        event: full_event(),
    }
}

/// An event of stream `order-1` at this version, with every attribute set.
pub fn recorded(version: u64) -> RecordedEvent {
    RecordedEvent {
        stream: "order-1".into(),
        version,
        position: 1000 + version,
        timestamp_ms: 1_700_000_000_456,
        event: full_event(),
    }
}

pub fn stream_metadata() -> StreamMetadata {
    StreamMetadata {
        max_age_ms: Some(86_400_000),
        max_count: None,
        truncate_before: Some(u64::MAX),
    }
}

pub fn ack_id(seq: u64) -> AckId {
    AckId {
        topic: "orders.placed".into(),
        partition: Partition(3),
        offset: Offset(42),
        seq,
    }
}

pub fn delivery(offset: u64) -> Delivery {
    Delivery {
        ack_id: ack_id(offset + 1),
        attempt: 2,
        lease_deadline_ms: 1_700_000_030_000,
        event: stored(offset),
    }
}

pub fn topic_info() -> TopicInfo {
    TopicInfo {
        name: "orders.placed".into(),
        config: TopicConfig {
            partitions: 2,
            retention: Retention {
                age_max_ms: Some(86_400_000),
                bytes_max: None,
                events_max: Some(1_000_000),
            },
            dedup: DedupWindow {
                age_ms: 120_000,
                entries_max: 100_000,
            },
        },
        partitions: vec![
            PartitionInfo {
                partition: Partition(0),
                first_offset: Offset(0),
                next_offset: Offset(17),
                size_bytes: 4096,
            },
            PartitionInfo {
                partition: Partition(1),
                first_offset: Offset(5),
                next_offset: Offset(u64::MAX),
                size_bytes: 0,
            },
        ],
    }
}

pub fn subscription_config(backoff: Backoff, start: StartAt) -> SubscriptionConfig {
    SubscriptionConfig {
        filter: "orders.*".into(),
        start,
        mode: DeliveryMode::Ordered,
        ack_wait_ms: 30_000,
        retry: RetryPolicy {
            max_deliveries: 5,
            backoff,
            cap_ms: Some(60_000),
            jitter_pct: 20,
        },
        max_ack_pending: 10_000,
    }
}

pub fn subscription_info() -> SubscriptionInfo {
    SubscriptionInfo {
        name: "payments".into(),
        config: subscription_config(
            Backoff::List {
                delays_ms: vec![1000, 4000, 9000],
            },
            StartAt::Time(-3),
        ),
        topics: vec!["orders.placed".into(), "orders.paid".into()],
        dead_letter_topic: "$dlq.payments".into(),
    }
}

pub fn dead_letter() -> DeadLetter {
    DeadLetter {
        id: 12,
        subscription: "payments".into(),
        event: stored(42),
        attempts: 5,
        last_error: Some("card declined".into()),
        reason: DeadReason::Terminated,
        dead_at_ms: 1_700_000_099_000,
        redrives: 1,
    }
}

/// A `BusError` of every variant, with distinct field values.
pub fn every_bus_error() -> Vec<BusError> {
    vec![
        BusError::InvalidName {
            what: "topic",
            name: "a..b".into(),
            reason: "empty token".into(),
        },
        BusError::InvalidPattern {
            pattern: "a.>.b".into(),
            reason: "`>` may only be the last token".into(),
        },
        BusError::InvalidArgument {
            what: "credit",
            reason: "must be 1..=10000, not 0".into(),
        },
        BusError::LimitExceeded {
            what: "event",
            setting: "event_bytes_max",
            limit: 1 << 20,
            actual: 2 << 20,
        },
        BusError::TopicNotFound("orders".into()),
        BusError::TopicExists("orders".into()),
        BusError::PartitionNotFound {
            topic: "orders".into(),
            partition: Partition(9),
            partitions: 4,
        },
        BusError::SubscriptionNotFound("payments".into()),
        BusError::SubscriptionExists("payments".into()),
        BusError::AlreadyAcked("orders/0/1/2".into()),
        BusError::DeadLettered("orders/0/1/3".into()),
        BusError::LeaseExpired("orders/0/1/4".into()),
        BusError::UnknownDelivery("orders/0/1/5".into()),
        BusError::OffsetOutOfRange {
            requested: Offset(100),
            first: Offset(10),
            next: Offset(50),
        },
        BusError::DeadLetterNotFound(77),
        BusError::RedriveSourceGone(78),
        BusError::WrongExpectedVersion {
            stream: "order-1".into(),
            expected: "3".into(),
            actual: Some(5),
        },
        BusError::StreamNotFound("order-3".into()),
        BusError::EventIdInUse {
            id: "e-1".into(),
            stream: "order-4".into(),
            version: 7,
        },
        BusError::Unauthenticated("no token".into()),
        BusError::PermissionDenied {
            principal: "billing".into(),
            action: "publish",
            resource: "orders.created".into(),
        },
        BusError::Storage("disk full".into()),
        BusError::Poisoned("fsync failed".into()),
        BusError::Corrupt("bad crc".into()),
        BusError::Closed,
        BusError::Unavailable("connection refused".into()),
    ]
}

/// One frame of every kind, each with non-trivial values.
pub fn every_kind() -> Vec<Frame> {
    let sub = || "payments".to_string();
    let requests = vec![
        Request::Hello(Hello {
            versions: vec![1, 2, 0xffff],
            token: Some("s3cret".into()),
            client: "eddy-cli/0.1".into(),
        }),
        Request::Ping,
        Request::CreateTopic {
            name: "orders.placed".into(),
            config: topic_info().config,
        },
        Request::ListTopics,
        Request::DescribeTopic {
            name: "orders.placed".into(),
        },
        Request::DeleteTopic {
            name: "orders.placed".into(),
        },
        Request::Publish {
            topic: "orders.placed".into(),
            events: vec![full_event(), Event::new("OrderPaid", "")],
        },
        Request::Read {
            topic: "orders.placed".into(),
            partition: Partition(1),
            from: ReadFrom::Time(-42),
            max: 500,
        },
        Request::CreateSubscription {
            name: sub(),
            config: subscription_config(
                Backoff::Exponential {
                    initial_ms: 100,
                    factor: 3,
                },
                StartAt::Offset(Offset(9)),
            ),
        },
        Request::ListSubscriptions,
        Request::DescribeSubscription { name: sub() },
        Request::DeleteSubscription { name: sub() },
        Request::Seek {
            subscription: sub(),
            to: StartAt::Earliest,
        },
        Request::Fetch {
            subscription: sub(),
            options: FetchOptions {
                max: 100,
                wait_ms: 5000,
            },
        },
        Request::Ack {
            subscription: sub(),
            ids: vec![ack_id(1), ack_id(u64::MAX)],
        },
        Request::Nack {
            subscription: sub(),
            id: ack_id(2),
            options: NackOptions {
                delay_ms: Some(250),
                error: Some("timeout".into()),
            },
        },
        Request::Extend {
            subscription: sub(),
            id: ack_id(3),
        },
        Request::Terminate {
            subscription: sub(),
            id: ack_id(4),
            reason: "poison message".into(),
        },
        Request::Subscribe {
            subscription: sub(),
            credit: 64,
        },
        Request::Credit { credit: 16 },
        Request::Unsubscribe,
        Request::DeadLetters {
            subscription: sub(),
            from: 10,
            max: 50,
        },
        Request::DeadLetter {
            subscription: sub(),
            id: 12,
        },
        Request::Redrive {
            subscription: sub(),
            selection: DeadLetterSelection::Ids(vec![1, 2, 300]),
            target: RedriveTarget::Topic("orders.retry".into()),
        },
        Request::Purge {
            subscription: sub(),
            selection: DeadLetterSelection::All,
        },
        Request::TopicStats {
            name: "orders.placed".into(),
        },
        Request::SubscriptionStats { name: sub() },
        Request::Append {
            stream: "order-1".into(),
            expected: ExpectedVersion::Exact(41),
            events: vec![full_event(), Event::new("ItemAdded", "")],
        },
        Request::ReadStream {
            stream: "order-1".into(),
            from: StreamFrom::Version(7),
            direction: Direction::Backward,
            max: 100,
        },
        Request::ReadAll {
            from: 1 << 40,
            filter: AllFilter::Category("order".into()),
            max: 500,
            wait_ms: 30_000,
        },
        Request::StreamInfo {
            stream: "$snap-order-1".into(),
        },
        Request::SetStreamMetadata {
            stream: "order-1".into(),
            metadata: stream_metadata(),
        },
        Request::DeleteStream {
            stream: "order-1".into(),
            expected: ExpectedVersion::NoStream,
        },
    ];
    let responses = vec![
        Response::Welcome(Welcome {
            version: 1,
            server: "eddy/0.1.0".into(),
            max_frame_bytes: 16 << 20,
            max_in_flight_requests: 1024,
        }),
        Response::Pong,
        Response::TopicCreated(topic_info()),
        Response::Topics(vec![topic_info(), topic_info()]),
        Response::Topic(topic_info()),
        Response::TopicDeleted,
        Response::Published(vec![
            Published {
                partition: Partition(0),
                offset: Offset(7),
                duplicate: false,
            },
            Published {
                partition: Partition(1),
                offset: Offset(3),
                duplicate: true,
            },
        ]),
        Response::ReadBatch(ReadBatch {
            events: vec![stored(5), stored(6)],
            next_offset: Offset(7),
        }),
        Response::SubscriptionCreated(subscription_info()),
        Response::Subscriptions(vec![subscription_info()]),
        Response::Subscription(SubscriptionInfo {
            config: subscription_config(Backoff::Fixed { delay_ms: 500 }, StartAt::Latest),
            ..subscription_info()
        }),
        Response::SubscriptionDeleted,
        Response::Sought,
        Response::Deliveries(vec![delivery(1), delivery(2)]),
        Response::Acked(vec![
            Ok(()),
            Err(WireError::from(&BusError::AlreadyAcked(
                "orders/0/1/2".into(),
            ))),
        ]),
        Response::Nacked,
        Response::Extended {
            lease_deadline_ms: 1_700_000_060_000,
        },
        Response::Terminated,
        Response::Deliver(vec![delivery(3)]),
        Response::StreamEnd {
            error: Some(WireError::from(&BusError::SubscriptionNotFound(sub()))),
        },
        Response::DeadLetterList(vec![dead_letter()]),
        Response::DeadLetterShown(Box::new(DeadLetter {
            reason: DeadReason::MaxDeliveries,
            last_error: None,
            ..dead_letter()
        })),
        Response::Redriven { count: 3 },
        Response::Purged { count: u64::MAX },
        Response::TopicStatsShown(TopicStats {
            name: "orders.placed".into(),
            published: 100,
            duplicates: 2,
            events: 98,
            size_bytes: 1 << 30,
        }),
        Response::SubscriptionStatsShown(SubscriptionStats {
            name: sub(),
            delivered: 10,
            redelivered: 2,
            acked: 7,
            dead_lettered: 1,
            lag: 30,
            in_flight: 3,
            waiting: 1,
            oldest_unacked_age_ms: Some(1500),
            dead_letters: 1,
        }),
        Response::Appended(AppendResult {
            first_version: 3,
            last_version: 4,
            position: u64::MAX,
            duplicate: true,
        }),
        Response::StreamSlice(StreamSlice {
            events: vec![recorded(2), recorded(1)],
            last_version: Some(9),
            next: Some(0),
        }),
        Response::AllSlice(AllSlice {
            events: vec![recorded(0), recorded(5)],
            next: 1006,
            head: 2000,
        }),
        Response::StreamInfoShown(StreamInfo {
            stream: "order-1".into(),
            last_version: None,
            metadata: stream_metadata(),
            deleted: true,
        }),
        Response::MetadataSet,
        Response::StreamDeleted,
        Response::Error(WireError::from(&BusError::LimitExceeded {
            what: "event",
            setting: "event_bytes_max",
            limit: 1 << 20,
            actual: 2 << 20,
        })),
    ];
    requests
        .into_iter()
        .map(Message::from)
        .chain(responses.into_iter().map(Message::from))
        .enumerate()
        .map(|(i, m)| Frame::new(0x0102_0304_0506_0700 + i as u64, m))
        .collect()
}

/// The bytes of `frame` at the default frame limit.
pub fn bytes_of(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(frame, FRAME_BYTES_DEFAULT, &mut out).expect("encodes");
    out
}

/// Decodes `bytes`, which must hold exactly one whole frame.
pub fn decode_whole(bytes: &[u8]) -> Frame {
    match decode_frame(bytes, FRAME_BYTES_DEFAULT).expect("decodes") {
        Decoded::Frame { frame, consumed } => {
            assert_eq!(consumed, bytes.len(), "consumes exactly the frame");
            frame
        }
        Decoded::Incomplete { needed } => panic!("incomplete, {needed} more bytes needed"),
    }
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

/// Any event: every attribute present or not, any text, any data.
pub fn any_event() -> impl Strategy<Value = Event> {
    (
        (
            text(),
            text(),
            text(),
            opt_text(),
            proptest::option::of(any::<i64>()),
        ),
        (
            opt_text(),
            opt_text(),
            proptest::collection::vec(any::<u8>(), 0..48),
        ),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        proptest::collection::vec(("[a-z0-9]{1,20}", text()), 0..4),
    )
        .prop_map(
            |(
                (id, source, ty, subject, time_ms),
                (data_content_type, data_schema, data),
                (key, correlation_id, causation_id, traceparent),
                headers,
            )| Event {
                id,
                source,
                ty,
                subject,
                time_ms,
                data_content_type,
                data_schema,
                data: Bytes::from(data),
                key,
                correlation_id,
                causation_id,
                traceparent,
                headers,
            },
        )
}

/// Any delivery of any event.
pub fn any_delivery() -> impl Strategy<Value = Delivery> {
    (
        any_event(),
        (text(), any::<u32>(), any::<u64>(), any::<u64>()),
        (any::<u32>(), any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |(event, (topic, partition, offset, seq), (attempt, lease, ts))| Delivery {
                ack_id: AckId {
                    topic: topic.clone(),
                    partition: Partition(partition),
                    offset: Offset(offset),
                    seq,
                },
                attempt,
                lease_deadline_ms: lease,
                event: StoredEvent {
                    topic,
                    partition: Partition(partition),
                    offset: Offset(offset),
                    timestamp_ms: ts,
                    event,
                },
            },
        )
}
