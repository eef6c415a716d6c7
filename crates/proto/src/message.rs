//! The messages: every request a client sends and every response a server
//! sends, their kind numbers, and their body layouts.

use eddy_bus::{
    AckId, DeadLetter, DeadLetterSelection, Delivery, Event, FetchOptions, NackOptions, Partition,
    Published, ReadBatch, ReadFrom, RedriveTarget, SeekTo, SubscriptionConfig, SubscriptionInfo,
    SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, Direction, ExpectedVersion, StreamFrom, StreamInfo,
    StreamMetadata, StreamSlice,
};

use crate::error::{ProtoError, Result};
use crate::wire::{Reader, Writer};
use crate::wire_error::WireError;
use crate::{LIST_ITEMS_MAX, MAGIC, SUPPORTED_VERSIONS, VERSIONS_MAX};

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident = $num:literal,)*) => {
        /// The kind byte of a frame: which message its body holds.
        /// Requests (client → server) are `0x01..=0x7f`; responses
        /// (server → client) have the high bit set, and a request's
        /// response kind is its own kind with the high bit set. Numbers
        /// are stable and never reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum Kind {
            $($(#[$doc])* $name = $num,)*
        }

        impl Kind {
            /// Every kind, in number order.
            pub const ALL: &'static [Kind] = &[$(Kind::$name),*];

            /// The kind with this number.
            pub fn from_u8(v: u8) -> Option<Kind> {
                match v {
                    $($num => Some(Kind::$name),)*
                    _ => None,
                }
            }

            /// Its name, as in `docs/protocol.md`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$name => stringify!($name),)*
                }
            }
        }
    };
}

kinds! {
    /// Opens the connection: magic, versions, token, client name.
    Hello = 0x01,
    /// Is the server there?
    Ping = 0x02,
    /// `Bus::create_topic`.
    CreateTopic = 0x10,
    /// `Bus::list_topics`.
    ListTopics = 0x11,
    /// `Bus::describe_topic`.
    DescribeTopic = 0x12,
    /// `Bus::delete_topic`.
    DeleteTopic = 0x13,
    /// `Bus::publish` and `Bus::publish_batch`.
    Publish = 0x14,
    /// `Bus::read`.
    Read = 0x15,
    /// `Bus::create_subscription`.
    CreateSubscription = 0x20,
    /// `Bus::list_subscriptions`.
    ListSubscriptions = 0x21,
    /// `Bus::describe_subscription`.
    DescribeSubscription = 0x22,
    /// `Bus::delete_subscription`.
    DeleteSubscription = 0x23,
    /// `Bus::seek`.
    Seek = 0x24,
    /// `Bus::fetch`.
    Fetch = 0x30,
    /// `Bus::ack_all` (and `ack`).
    Ack = 0x31,
    /// `Bus::nack`.
    Nack = 0x32,
    /// `Bus::extend`.
    Extend = 0x33,
    /// `Bus::terminate`.
    Terminate = 0x34,
    /// `Bus::subscribe`: opens a push stream.
    Subscribe = 0x38,
    /// Grants a push stream more deliveries. No response.
    Credit = 0x39,
    /// Closes a push stream; answered by its `StreamEnd`.
    Unsubscribe = 0x3a,
    /// `Bus::dead_letters`.
    DeadLetters = 0x40,
    /// `Bus::dead_letter`.
    DeadLetter = 0x41,
    /// `Bus::redrive`.
    Redrive = 0x42,
    /// `Bus::purge`.
    Purge = 0x43,
    /// `Bus::topic_stats`.
    TopicStats = 0x50,
    /// `Bus::subscription_stats`.
    SubscriptionStats = 0x51,
    /// `EventStore::append`.
    Append = 0x60,
    /// `EventStore::read_stream`.
    ReadStream = 0x61,
    /// `EventStore::read_all`.
    ReadAll = 0x62,
    /// `EventStore::stream_info`.
    StreamInfo = 0x63,
    /// `EventStore::set_stream_metadata`.
    SetStreamMetadata = 0x64,
    /// `EventStore::delete_stream`.
    DeleteStream = 0x65,
    /// Accepts a `Hello`.
    Welcome = 0x81,
    /// Answers a `Ping`.
    Pong = 0x82,
    /// The created topic.
    TopicCreated = 0x90,
    /// Every topic.
    Topics = 0x91,
    /// One topic.
    Topic = 0x92,
    /// The topic is deleted.
    TopicDeleted = 0x93,
    /// Where each published event is stored.
    Published = 0x94,
    /// Events read from a partition.
    ReadBatch = 0x95,
    /// The created subscription.
    SubscriptionCreated = 0xa0,
    /// Every subscription.
    Subscriptions = 0xa1,
    /// One subscription.
    Subscription = 0xa2,
    /// The subscription is deleted.
    SubscriptionDeleted = 0xa3,
    /// The subscription is moved.
    Sought = 0xa4,
    /// Fetched deliveries.
    Deliveries = 0xb0,
    /// One outcome per acked id.
    Acked = 0xb1,
    /// The delivery is nacked.
    Nacked = 0xb2,
    /// The lease's new deadline.
    Extended = 0xb3,
    /// The delivery is terminated.
    Terminated = 0xb4,
    /// Pushed deliveries of a stream.
    Deliver = 0xb8,
    /// A push stream is over.
    StreamEnd = 0xba,
    /// Dead letters.
    DeadLetterList = 0xc0,
    /// One dead letter.
    DeadLetterShown = 0xc1,
    /// How many dead letters were redriven.
    Redriven = 0xc2,
    /// How many dead letters were purged.
    Purged = 0xc3,
    /// A topic's counters.
    TopicStatsShown = 0xd0,
    /// A subscription's counters.
    SubscriptionStatsShown = 0xd1,
    /// Where an append put its events.
    Appended = 0xe0,
    /// Events read from a stream.
    StreamSlice = 0xe1,
    /// Events read from `$all`.
    AllSlice = 0xe2,
    /// What the store knows of a stream.
    StreamInfoShown = 0xe3,
    /// The stream's settings are replaced.
    MetadataSet = 0xe4,
    /// The stream is deleted.
    StreamDeleted = 0xe5,
    /// The request failed (or, before the handshake completes, the
    /// connection is refused).
    Error = 0xff,
}

impl Kind {
    /// Its number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Whether a client sends it (otherwise a server does).
    pub fn is_request(self) -> bool {
        self.number() & 0x80 == 0
    }

    /// Whether its list may be split over several frames with the
    /// [`crate::FLAG_MORE`] flag.
    pub fn may_continue(self) -> bool {
        matches!(
            self,
            Kind::Topics
                | Kind::ReadBatch
                | Kind::Subscriptions
                | Kind::Deliveries
                | Kind::DeadLetterList
                | Kind::StreamSlice
                | Kind::AllSlice
        )
    }
}

/// The first frame of a connection, from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol versions the client speaks, 1..=[`VERSIONS_MAX`] of them.
    pub versions: Vec<u16>,
    /// Credentials, if the server wants them.
    pub token: Option<String>,
    /// Who the client is (name and version), for the server's logs.
    pub client: String,
}

impl Hello {
    /// A `Hello` offering every version this crate speaks.
    pub fn new(client: impl Into<String>, token: Option<String>) -> Hello {
        Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            token,
            client: client.into(),
        }
    }

    /// The version to speak: the highest one both the client offered and
    /// this crate speaks.
    pub fn negotiate(&self) -> Result<u16> {
        self.versions
            .iter()
            .copied()
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
            .max()
            .ok_or_else(|| ProtoError::UnsupportedVersion {
                offered: self.versions.clone(),
                supported: SUPPORTED_VERSIONS.to_vec(),
            })
    }
}

/// The server's answer to an accepted `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version both sides speak from now on.
    pub version: u16,
    /// Who the server is (name and version).
    pub server: String,
    /// Largest frame length either side may send on this connection,
    /// [`crate::FRAME_BYTES_MIN`]..=[`crate::FRAME_BYTES_CAP`].
    pub max_frame_bytes: u32,
    /// Most requests a client may have awaiting their final response (an
    /// open push stream counts as one), at least 1.
    pub max_in_flight_requests: u32,
}

/// A message from client to server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Opens the connection.
    Hello(Hello),
    /// Asks for a `Pong`.
    Ping,
    /// Creates a topic.
    CreateTopic {
        /// Its name.
        name: String,
        /// Its settings.
        config: TopicConfig,
    },
    /// Lists topics.
    ListTopics,
    /// Describes a topic.
    DescribeTopic {
        /// The topic.
        name: String,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// The topic.
        name: String,
    },
    /// Publishes events in order; all are checked before any is stored.
    Publish {
        /// The topic.
        topic: String,
        /// 0..=[`LIST_ITEMS_MAX`] events.
        events: Vec<Event>,
    },
    /// Reads a partition without a subscription.
    Read {
        /// The topic.
        topic: String,
        /// The partition.
        partition: Partition,
        /// Where to start.
        from: ReadFrom,
        /// Most events to return.
        max: u32,
    },
    /// Creates a subscription.
    CreateSubscription {
        /// Its name.
        name: String,
        /// Its settings.
        config: SubscriptionConfig,
    },
    /// Lists subscriptions.
    ListSubscriptions,
    /// Describes a subscription.
    DescribeSubscription {
        /// The subscription.
        name: String,
    },
    /// Deletes a subscription.
    DeleteSubscription {
        /// The subscription.
        name: String,
    },
    /// Moves a subscription.
    Seek {
        /// The subscription.
        subscription: String,
        /// Where to.
        to: SeekTo,
    },
    /// Takes deliveries.
    Fetch {
        /// The subscription.
        subscription: String,
        /// How many and how long to wait.
        options: FetchOptions,
    },
    /// Acks deliveries, each with its own outcome.
    Ack {
        /// The subscription.
        subscription: String,
        /// 0..=[`LIST_ITEMS_MAX`] deliveries.
        ids: Vec<AckId>,
    },
    /// Reports a failed delivery.
    Nack {
        /// The subscription.
        subscription: String,
        /// The delivery.
        id: AckId,
        /// Delay and error text.
        options: NackOptions,
    },
    /// Extends a delivery's lease.
    Extend {
        /// The subscription.
        subscription: String,
        /// The delivery.
        id: AckId,
    },
    /// Sends a delivery's event to the dead-letter queue.
    Terminate {
        /// The subscription.
        subscription: String,
        /// The delivery.
        id: AckId,
        /// Why.
        reason: String,
    },
    /// Opens a push stream; its request id names the stream.
    Subscribe {
        /// The subscription.
        subscription: String,
        /// Deliveries the server may push before more credit is granted.
        credit: u32,
    },
    /// Grants more deliveries to the push stream named by this frame's
    /// request id (the `Subscribe`'s).
    Credit {
        /// How many more.
        credit: u32,
    },
    /// Closes the push stream named by this frame's request id.
    Unsubscribe,
    /// Lists dead letters.
    DeadLetters {
        /// The subscription.
        subscription: String,
        /// The first dead letter id.
        from: u64,
        /// Most to return.
        max: u32,
    },
    /// Shows one dead letter.
    DeadLetter {
        /// The subscription.
        subscription: String,
        /// The dead letter.
        id: u64,
    },
    /// Redrives dead letters.
    Redrive {
        /// The subscription.
        subscription: String,
        /// Which.
        selection: DeadLetterSelection,
        /// Where to.
        target: RedriveTarget,
    },
    /// Discards dead letters.
    Purge {
        /// The subscription.
        subscription: String,
        /// Which.
        selection: DeadLetterSelection,
    },
    /// A topic's counters.
    TopicStats {
        /// The topic.
        name: String,
    },
    /// A subscription's counters.
    SubscriptionStats {
        /// The subscription.
        name: String,
    },
    /// Appends events to a stream if it is where `expected` says.
    Append {
        /// The stream.
        stream: String,
        /// Where the stream must be.
        expected: ExpectedVersion,
        /// 0..=[`LIST_ITEMS_MAX`] events (the store takes 1 to
        /// `APPEND_EVENTS_MAX`).
        events: Vec<Event>,
    },
    /// Reads part of a stream.
    ReadStream {
        /// The stream.
        stream: String,
        /// Where to start.
        from: StreamFrom,
        /// Which way to go.
        direction: Direction,
        /// Most events to return.
        max: u32,
    },
    /// Reads part of `$all`, waiting for the first event if none is there.
    ReadAll {
        /// The position to read from.
        from: u64,
        /// Which events pass.
        filter: AllFilter,
        /// Most events to return.
        max: u32,
        /// How long to wait for a first event, in ms.
        wait_ms: u64,
    },
    /// What the store knows of a stream.
    StreamInfo {
        /// The stream.
        stream: String,
    },
    /// Replaces a stream's settings.
    SetStreamMetadata {
        /// The stream.
        stream: String,
        /// Its new settings.
        metadata: StreamMetadata,
    },
    /// Deletes a stream (soft) if it is where `expected` says.
    DeleteStream {
        /// The stream.
        stream: String,
        /// Where the stream must be.
        expected: ExpectedVersion,
    },
}

/// A message from server to client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Accepts the `Hello`.
    Welcome(Welcome),
    /// Answers a `Ping`.
    Pong,
    /// Answers `CreateTopic`.
    TopicCreated(TopicInfo),
    /// Answers `ListTopics` (may continue).
    Topics(Vec<TopicInfo>),
    /// Answers `DescribeTopic`.
    Topic(TopicInfo),
    /// Answers `DeleteTopic`.
    TopicDeleted,
    /// Answers `Publish`, one entry per event, in order.
    Published(Vec<Published>),
    /// Answers `Read` (may continue).
    ReadBatch(ReadBatch),
    /// Answers `CreateSubscription`.
    SubscriptionCreated(SubscriptionInfo),
    /// Answers `ListSubscriptions` (may continue).
    Subscriptions(Vec<SubscriptionInfo>),
    /// Answers `DescribeSubscription`.
    Subscription(SubscriptionInfo),
    /// Answers `DeleteSubscription`.
    SubscriptionDeleted,
    /// Answers `Seek`.
    Sought,
    /// Answers `Fetch` (may continue).
    Deliveries(Vec<Delivery>),
    /// Answers `Ack`: one outcome per id, in order.
    Acked(Vec<std::result::Result<(), WireError>>),
    /// Answers `Nack`.
    Nacked,
    /// Answers `Extend`.
    Extended {
        /// The lease's new deadline (ms since the Unix epoch).
        lease_deadline_ms: i64,
    },
    /// Answers `Terminate`.
    Terminated,
    /// Deliveries pushed on the stream of a `Subscribe`; each uses one
    /// credit.
    Deliver(Vec<Delivery>),
    /// The push stream of a `Subscribe` is over: unsubscribed (no error)
    /// or failed.
    StreamEnd {
        /// Why it ended, if not by `Unsubscribe`.
        error: Option<WireError>,
    },
    /// Answers `DeadLetters` (may continue).
    DeadLetterList(Vec<DeadLetter>),
    /// Answers `DeadLetter`.
    DeadLetterShown(Box<DeadLetter>),
    /// Answers `Redrive`.
    Redriven {
        /// Dead letters redriven.
        count: u64,
    },
    /// Answers `Purge`.
    Purged {
        /// Dead letters discarded.
        count: u64,
    },
    /// Answers `TopicStats`.
    TopicStatsShown(TopicStats),
    /// Answers `SubscriptionStats`.
    SubscriptionStatsShown(SubscriptionStats),
    /// Answers `Append`.
    Appended(AppendResult),
    /// Answers `ReadStream` (may continue).
    StreamSlice(StreamSlice),
    /// Answers `ReadAll` (may continue).
    AllSlice(AllSlice),
    /// Answers `StreamInfo`.
    StreamInfoShown(StreamInfo),
    /// Answers `SetStreamMetadata`.
    MetadataSet,
    /// Answers `DeleteStream`.
    StreamDeleted,
    /// The request failed; for a `Subscribe`, a failure that does not end
    /// the stream.
    Error(WireError),
}

/// Either side's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client → server.
    Request(Request),
    /// Server → client.
    Response(Response),
}

impl From<Request> for Message {
    fn from(r: Request) -> Message {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Message {
        Message::Response(r)
    }
}

impl Message {
    /// Its kind byte.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Request(r) => r.kind(),
            Message::Response(r) => r.kind(),
        }
    }
}

impl Request {
    /// Its kind byte.
    pub fn kind(&self) -> Kind {
        match self {
            Request::Hello(_) => Kind::Hello,
            Request::Ping => Kind::Ping,
            Request::CreateTopic { .. } => Kind::CreateTopic,
            Request::ListTopics => Kind::ListTopics,
            Request::DescribeTopic { .. } => Kind::DescribeTopic,
            Request::DeleteTopic { .. } => Kind::DeleteTopic,
            Request::Publish { .. } => Kind::Publish,
            Request::Read { .. } => Kind::Read,
            Request::CreateSubscription { .. } => Kind::CreateSubscription,
            Request::ListSubscriptions => Kind::ListSubscriptions,
            Request::DescribeSubscription { .. } => Kind::DescribeSubscription,
            Request::DeleteSubscription { .. } => Kind::DeleteSubscription,
            Request::Seek { .. } => Kind::Seek,
            Request::Fetch { .. } => Kind::Fetch,
            Request::Ack { .. } => Kind::Ack,
            Request::Nack { .. } => Kind::Nack,
            Request::Extend { .. } => Kind::Extend,
            Request::Terminate { .. } => Kind::Terminate,
            Request::Subscribe { .. } => Kind::Subscribe,
            Request::Credit { .. } => Kind::Credit,
            Request::Unsubscribe => Kind::Unsubscribe,
            Request::DeadLetters { .. } => Kind::DeadLetters,
            Request::DeadLetter { .. } => Kind::DeadLetter,
            Request::Redrive { .. } => Kind::Redrive,
            Request::Purge { .. } => Kind::Purge,
            Request::TopicStats { .. } => Kind::TopicStats,
            Request::SubscriptionStats { .. } => Kind::SubscriptionStats,
            Request::Append { .. } => Kind::Append,
            Request::ReadStream { .. } => Kind::ReadStream,
            Request::ReadAll { .. } => Kind::ReadAll,
            Request::StreamInfo { .. } => Kind::StreamInfo,
            Request::SetStreamMetadata { .. } => Kind::SetStreamMetadata,
            Request::DeleteStream { .. } => Kind::DeleteStream,
        }
    }
}

impl Response {
    /// Its kind byte.
    pub fn kind(&self) -> Kind {
        match self {
            Response::Welcome(_) => Kind::Welcome,
            Response::Pong => Kind::Pong,
            Response::TopicCreated(_) => Kind::TopicCreated,
            Response::Topics(_) => Kind::Topics,
            Response::Topic(_) => Kind::Topic,
            Response::TopicDeleted => Kind::TopicDeleted,
            Response::Published(_) => Kind::Published,
            Response::ReadBatch(_) => Kind::ReadBatch,
            Response::SubscriptionCreated(_) => Kind::SubscriptionCreated,
            Response::Subscriptions(_) => Kind::Subscriptions,
            Response::Subscription(_) => Kind::Subscription,
            Response::SubscriptionDeleted => Kind::SubscriptionDeleted,
            Response::Sought => Kind::Sought,
            Response::Deliveries(_) => Kind::Deliveries,
            Response::Acked(_) => Kind::Acked,
            Response::Nacked => Kind::Nacked,
            Response::Extended { .. } => Kind::Extended,
            Response::Terminated => Kind::Terminated,
            Response::Deliver(_) => Kind::Deliver,
            Response::StreamEnd { .. } => Kind::StreamEnd,
            Response::DeadLetterList(_) => Kind::DeadLetterList,
            Response::DeadLetterShown(_) => Kind::DeadLetterShown,
            Response::Redriven { .. } => Kind::Redriven,
            Response::Purged { .. } => Kind::Purged,
            Response::TopicStatsShown(_) => Kind::TopicStatsShown,
            Response::SubscriptionStatsShown(_) => Kind::SubscriptionStatsShown,
            Response::Appended(_) => Kind::Appended,
            Response::StreamSlice(_) => Kind::StreamSlice,
            Response::AllSlice(_) => Kind::AllSlice,
            Response::StreamInfoShown(_) => Kind::StreamInfoShown,
            Response::MetadataSet => Kind::MetadataSet,
            Response::StreamDeleted => Kind::StreamDeleted,
            Response::Error(_) => Kind::Error,
        }
    }
}

// ---- bodies ----

pub(crate) fn put_request(w: &mut Writer<'_>, req: &Request) {
    match req {
        Request::Hello(h) => {
            w.raw(&MAGIC);
            w.list("hello versions", &h.versions, VERSIONS_MAX);
            if h.versions.is_empty() {
                w.refuse(ProtoError::Malformed {
                    what: "hello versions",
                    at: 0,
                    why: "a Hello offers at least one version",
                });
            }
            w.put(&h.token);
            w.put(&h.client);
        }
        Request::Ping | Request::ListTopics | Request::ListSubscriptions | Request::Unsubscribe => {
        }
        Request::CreateTopic { name, config } => {
            w.put(name);
            w.put(config);
        }
        Request::DescribeTopic { name }
        | Request::DeleteTopic { name }
        | Request::DescribeSubscription { name }
        | Request::DeleteSubscription { name }
        | Request::TopicStats { name }
        | Request::SubscriptionStats { name } => w.put(name),
        Request::Publish { topic, events } => {
            w.put(topic);
            w.list("publish events", events, LIST_ITEMS_MAX);
        }
        Request::Read {
            topic,
            partition,
            from,
            max,
        } => {
            w.put(topic);
            w.put(partition);
            w.put(from);
            w.put(max);
        }
        Request::CreateSubscription { name, config } => {
            w.put(name);
            w.put(config);
        }
        Request::Seek { subscription, to } => {
            w.put(subscription);
            w.put(to);
        }
        Request::Fetch {
            subscription,
            options,
        } => {
            w.put(subscription);
            w.put(options);
        }
        Request::Ack { subscription, ids } => {
            w.put(subscription);
            w.list("ack ids", ids, LIST_ITEMS_MAX);
        }
        Request::Nack {
            subscription,
            id,
            options,
        } => {
            w.put(subscription);
            w.put(id);
            w.put(options);
        }
        Request::Extend { subscription, id } => {
            w.put(subscription);
            w.put(id);
        }
        Request::Terminate {
            subscription,
            id,
            reason,
        } => {
            w.put(subscription);
            w.put(id);
            w.put(reason);
        }
        Request::Subscribe {
            subscription,
            credit,
        } => {
            w.put(subscription);
            w.put(credit);
        }
        Request::Credit { credit } => w.put(credit),
        Request::DeadLetters {
            subscription,
            from,
            max,
        } => {
            w.put(subscription);
            w.put(from);
            w.put(max);
        }
        Request::DeadLetter { subscription, id } => {
            w.put(subscription);
            w.put(id);
        }
        Request::Redrive {
            subscription,
            selection,
            target,
        } => {
            w.put(subscription);
            w.put(selection);
            w.put(target);
        }
        Request::Purge {
            subscription,
            selection,
        } => {
            w.put(subscription);
            w.put(selection);
        }
        Request::Append {
            stream,
            expected,
            events,
        } => {
            w.put(stream);
            w.put(expected);
            w.list("append events", events, LIST_ITEMS_MAX);
        }
        Request::ReadStream {
            stream,
            from,
            direction,
            max,
        } => {
            w.put(stream);
            w.put(from);
            w.put(direction);
            w.put(max);
        }
        Request::ReadAll {
            from,
            filter,
            max,
            wait_ms,
        } => {
            w.put(from);
            w.put(filter);
            w.put(max);
            w.put(wait_ms);
        }
        Request::StreamInfo { stream } => w.put(stream),
        Request::SetStreamMetadata { stream, metadata } => {
            w.put(stream);
            w.put(metadata);
        }
        Request::DeleteStream { stream, expected } => {
            w.put(stream);
            w.put(expected);
        }
    }
}

pub(crate) fn put_response(w: &mut Writer<'_>, resp: &Response) {
    match resp {
        Response::Welcome(h) => {
            w.u16_le(h.version);
            w.put(&h.server);
            w.u32_le(h.max_frame_bytes);
            w.u32_le(h.max_in_flight_requests);
        }
        Response::Pong
        | Response::TopicDeleted
        | Response::SubscriptionDeleted
        | Response::Sought
        | Response::Nacked
        | Response::Terminated
        | Response::MetadataSet
        | Response::StreamDeleted => {}
        Response::TopicCreated(t) | Response::Topic(t) => w.put(t),
        Response::Topics(ts) => put_topics(w, ts),
        Response::Published(ps) => w.list("published", ps, LIST_ITEMS_MAX),
        Response::ReadBatch(b) => w.put(b),
        Response::SubscriptionCreated(s) | Response::Subscription(s) => w.put(s),
        Response::Subscriptions(ss) => put_subscriptions(w, ss),
        Response::Deliveries(ds) | Response::Deliver(ds) => put_deliveries(w, ds),
        Response::Acked(outcomes) => w.list("ack outcomes", outcomes, LIST_ITEMS_MAX),
        Response::Extended { lease_deadline_ms } => w.put(lease_deadline_ms),
        Response::StreamEnd { error } => w.put(error),
        Response::DeadLetterList(ds) => put_dead_letters(w, ds),
        Response::DeadLetterShown(d) => w.put(d.as_ref()),
        Response::Redriven { count } | Response::Purged { count } => w.put(count),
        Response::TopicStatsShown(s) => w.put(s),
        Response::SubscriptionStatsShown(s) => w.put(s),
        Response::Appended(a) => w.put(a),
        Response::StreamSlice(s) => w.put(s),
        Response::AllSlice(s) => w.put(s),
        Response::StreamInfoShown(i) => w.put(i),
        Response::Error(e) => w.put(e),
    }
}

pub(crate) fn put_topics(w: &mut Writer<'_>, items: &[TopicInfo]) {
    w.list("topics", items, LIST_ITEMS_MAX);
}
pub(crate) fn put_subscriptions(w: &mut Writer<'_>, items: &[SubscriptionInfo]) {
    w.list("subscriptions", items, LIST_ITEMS_MAX);
}
pub(crate) fn put_deliveries(w: &mut Writer<'_>, items: &[Delivery]) {
    w.list("deliveries", items, LIST_ITEMS_MAX);
}
pub(crate) fn put_dead_letters(w: &mut Writer<'_>, items: &[DeadLetter]) {
    w.list("dead letters", items, LIST_ITEMS_MAX);
}

pub(crate) fn get_request(kind: Kind, r: &mut Reader<'_>) -> Result<Request> {
    Ok(match kind {
        Kind::Hello => {
            let at = r.at();
            if r.magic("hello magic")? != MAGIC {
                return Err(ProtoError::BadMagic);
            }
            let versions: Vec<u16> = r.list("hello versions", VERSIONS_MAX)?;
            if versions.is_empty() {
                return Err(r.malformed(
                    "hello versions",
                    at + MAGIC.len(),
                    "a Hello offers at least one version",
                ));
            }
            Request::Hello(Hello {
                versions,
                token: r.get("hello token")?,
                client: r.get("hello client")?,
            })
        }
        Kind::Ping => Request::Ping,
        Kind::CreateTopic => Request::CreateTopic {
            name: r.get("topic name")?,
            config: r.get("topic config")?,
        },
        Kind::ListTopics => Request::ListTopics,
        Kind::DescribeTopic => Request::DescribeTopic {
            name: r.get("topic name")?,
        },
        Kind::DeleteTopic => Request::DeleteTopic {
            name: r.get("topic name")?,
        },
        Kind::Publish => Request::Publish {
            topic: r.get("publish topic")?,
            events: r.list("publish events", LIST_ITEMS_MAX)?,
        },
        Kind::Read => Request::Read {
            topic: r.get("read topic")?,
            partition: r.get("read partition")?,
            from: r.get("read position")?,
            max: r.get("read max")?,
        },
        Kind::CreateSubscription => Request::CreateSubscription {
            name: r.get("subscription name")?,
            config: r.get("subscription config")?,
        },
        Kind::ListSubscriptions => Request::ListSubscriptions,
        Kind::DescribeSubscription => Request::DescribeSubscription {
            name: r.get("subscription name")?,
        },
        Kind::DeleteSubscription => Request::DeleteSubscription {
            name: r.get("subscription name")?,
        },
        Kind::Seek => Request::Seek {
            subscription: r.get("subscription name")?,
            to: r.get("seek position")?,
        },
        Kind::Fetch => Request::Fetch {
            subscription: r.get("subscription name")?,
            options: r.get("fetch options")?,
        },
        Kind::Ack => Request::Ack {
            subscription: r.get("subscription name")?,
            ids: r.list("ack ids", LIST_ITEMS_MAX)?,
        },
        Kind::Nack => Request::Nack {
            subscription: r.get("subscription name")?,
            id: r.get("ack id")?,
            options: r.get("nack options")?,
        },
        Kind::Extend => Request::Extend {
            subscription: r.get("subscription name")?,
            id: r.get("ack id")?,
        },
        Kind::Terminate => Request::Terminate {
            subscription: r.get("subscription name")?,
            id: r.get("ack id")?,
            reason: r.get("terminate reason")?,
        },
        Kind::Subscribe => Request::Subscribe {
            subscription: r.get("subscription name")?,
            credit: r.get("subscribe credit")?,
        },
        Kind::Credit => Request::Credit {
            credit: r.get("credit")?,
        },
        Kind::Unsubscribe => Request::Unsubscribe,
        Kind::DeadLetters => Request::DeadLetters {
            subscription: r.get("subscription name")?,
            from: r.get("dead letters from")?,
            max: r.get("dead letters max")?,
        },
        Kind::DeadLetter => Request::DeadLetter {
            subscription: r.get("subscription name")?,
            id: r.get("dead letter id")?,
        },
        Kind::Redrive => Request::Redrive {
            subscription: r.get("subscription name")?,
            selection: r.get("dead letter selection")?,
            target: r.get("redrive target")?,
        },
        Kind::Purge => Request::Purge {
            subscription: r.get("subscription name")?,
            selection: r.get("dead letter selection")?,
        },
        Kind::TopicStats => Request::TopicStats {
            name: r.get("topic name")?,
        },
        Kind::SubscriptionStats => Request::SubscriptionStats {
            name: r.get("subscription name")?,
        },
        Kind::Append => Request::Append {
            stream: r.get("stream name")?,
            expected: r.get("expected version")?,
            events: r.list("append events", LIST_ITEMS_MAX)?,
        },
        Kind::ReadStream => Request::ReadStream {
            stream: r.get("stream name")?,
            from: r.get("stream position")?,
            direction: r.get("direction")?,
            max: r.get("read stream max")?,
        },
        Kind::ReadAll => Request::ReadAll {
            from: r.get("read all from")?,
            filter: r.get("all filter")?,
            max: r.get("read all max")?,
            wait_ms: r.get("read all wait_ms")?,
        },
        Kind::StreamInfo => Request::StreamInfo {
            stream: r.get("stream name")?,
        },
        Kind::SetStreamMetadata => Request::SetStreamMetadata {
            stream: r.get("stream name")?,
            metadata: r.get("stream metadata")?,
        },
        Kind::DeleteStream => Request::DeleteStream {
            stream: r.get("stream name")?,
            expected: r.get("expected version")?,
        },
        other => return Err(ProtoError::UnknownKind(other.number())),
    })
}

pub(crate) fn get_response(kind: Kind, r: &mut Reader<'_>) -> Result<Response> {
    Ok(match kind {
        Kind::Welcome => {
            let version = r.u16_le("welcome version")?;
            let server = r.get("welcome server")?;
            let at = r.at();
            let max_frame_bytes = r.u32_le("welcome max_frame_bytes")?;
            if !(crate::FRAME_BYTES_MIN..=crate::FRAME_BYTES_CAP).contains(&max_frame_bytes) {
                return Err(r.malformed("welcome max_frame_bytes", at, "outside 65536..=67108864"));
            }
            let at = r.at();
            let max_in_flight_requests = r.u32_le("welcome max_in_flight_requests")?;
            if max_in_flight_requests == 0 {
                return Err(r.malformed("welcome max_in_flight_requests", at, "must be ≥ 1"));
            }
            Response::Welcome(Welcome {
                version,
                server,
                max_frame_bytes,
                max_in_flight_requests,
            })
        }
        Kind::Pong => Response::Pong,
        Kind::TopicCreated => Response::TopicCreated(r.get("topic")?),
        Kind::Topics => Response::Topics(r.list("topics", LIST_ITEMS_MAX)?),
        Kind::Topic => Response::Topic(r.get("topic")?),
        Kind::TopicDeleted => Response::TopicDeleted,
        Kind::Published => Response::Published(r.list("published", LIST_ITEMS_MAX)?),
        Kind::ReadBatch => Response::ReadBatch(r.get("read batch")?),
        Kind::SubscriptionCreated => Response::SubscriptionCreated(r.get("subscription")?),
        Kind::Subscriptions => Response::Subscriptions(r.list("subscriptions", LIST_ITEMS_MAX)?),
        Kind::Subscription => Response::Subscription(r.get("subscription")?),
        Kind::SubscriptionDeleted => Response::SubscriptionDeleted,
        Kind::Sought => Response::Sought,
        Kind::Deliveries => Response::Deliveries(r.list("deliveries", LIST_ITEMS_MAX)?),
        Kind::Acked => Response::Acked(r.list("ack outcomes", LIST_ITEMS_MAX)?),
        Kind::Nacked => Response::Nacked,
        Kind::Extended => Response::Extended {
            lease_deadline_ms: r.get("extended lease_deadline_ms")?,
        },
        Kind::Terminated => Response::Terminated,
        Kind::Deliver => Response::Deliver(r.list("deliveries", LIST_ITEMS_MAX)?),
        Kind::StreamEnd => Response::StreamEnd {
            error: r.get("stream end error")?,
        },
        Kind::DeadLetterList => Response::DeadLetterList(r.list("dead letters", LIST_ITEMS_MAX)?),
        Kind::DeadLetterShown => Response::DeadLetterShown(Box::new(r.get("dead letter")?)),
        Kind::Redriven => Response::Redriven {
            count: r.get("redriven count")?,
        },
        Kind::Purged => Response::Purged {
            count: r.get("purged count")?,
        },
        Kind::TopicStatsShown => Response::TopicStatsShown(r.get("topic stats")?),
        Kind::SubscriptionStatsShown => {
            Response::SubscriptionStatsShown(r.get("subscription stats")?)
        }
        Kind::Appended => Response::Appended(r.get("append result")?),
        Kind::StreamSlice => Response::StreamSlice(r.get("stream slice")?),
        Kind::AllSlice => Response::AllSlice(r.get("all slice")?),
        Kind::StreamInfoShown => Response::StreamInfoShown(r.get("stream info")?),
        Kind::MetadataSet => Response::MetadataSet,
        Kind::StreamDeleted => Response::StreamDeleted,
        Kind::Error => Response::Error(r.get("error")?),
        other => return Err(ProtoError::UnknownKind(other.number())),
    })
}
