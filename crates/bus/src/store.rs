//! The event store interface: streams of events per aggregate, appended
//! with an expected version, read back forward or backward, and a global
//! ordered feed (`$all`) with positions.
//!
//! [`EventStore`] is implemented by the embedded engine (`eddy-broker`, in
//! the same folder as the bus) and by the network client; code written
//! against it does not change when the deployment does. Like [`crate::Bus`],
//! nothing here touches a file, a socket or a clock.
//!
//! Streams are named `<category>-<id>` (`order-123`); the category is what
//! comes before the first `-`. Names starting with `$` are the system's
//! (snapshots, saga state): they are left out of `$all` unless a filter
//! asks for them, and are not published to the bus.

use std::fmt;
use std::future::Future;

use crate::{BusError, Event, Result};

/// Longest stream name, in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 200;
/// Most events one append may carry.
pub const APPEND_EVENTS_MAX: usize = 1_000;
/// Most events one read returns.
pub const STORE_READ_MAX: u32 = 10_000;
/// The prefix of the bus topic an appended event is published to:
/// `es.<category>`.
pub const STORE_TOPIC_PREFIX: &str = "es.";

/// Where a stream must be for an append (or delete) to go ahead. Checked
/// atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Whatever the stream holds.
    Any,
    /// The stream must not exist (never written, or deleted).
    NoStream,
    /// The stream must exist.
    Exists,
    /// The stream's last event must have this version.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exists => f.write_str("exists"),
            ExpectedVersion::Exact(v) => v.fmt(f),
        }
    }
}

impl std::str::FromStr for ExpectedVersion {
    type Err = BusError;

    fn from_str(s: &str) -> Result<ExpectedVersion> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::Exists),
            n => n
                .parse()
                .map(ExpectedVersion::Exact)
                .map_err(|_| BusError::InvalidArgument {
                    what: "expected version",
                    reason: format!("{n:?} is not any, no_stream, exists or a version number"),
                }),
        }
    }
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The version of the first event of the append.
    pub first_version: u64,
    /// The version of its last event: the expected version of the next
    /// append.
    pub last_version: u64,
    /// The `$all` position of its last event.
    pub position: u64,
    /// `true` if these events (by id) were appended before at these
    /// versions: nothing new was stored.
    pub duplicate: bool,
}

/// An event as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Its stream.
    pub stream: String,
    /// Its number within the stream, from 0.
    pub version: u64,
    /// Its position in `$all`.
    pub position: u64,
    /// When the store appended it (ms since the Unix epoch).
    pub timestamp_ms: i64,
    /// The event as appended (its id assigned).
    pub event: Event,
}

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFrom {
    /// The first event (forward) or the last one (backward) that can be read.
    Start,
    /// This version.
    Version(u64),
}

/// Which way a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Towards newer events.
    #[default]
    Forward,
    /// Towards older events.
    Backward,
}

/// Part of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamSlice {
    /// The events, in the read's direction.
    pub events: Vec<RecordedEvent>,
    /// The stream's last version; `None` if it does not exist (never
    /// written, or deleted).
    pub last_version: Option<u64>,
    /// Where the next read in the same direction starts; `None` once the
    /// read reached the stream's end (forward) or start (backward).
    pub next: Option<u64>,
}

/// Which events of `$all` a read returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllFilter {
    /// Every event but those of system (`$`) streams.
    #[default]
    All,
    /// Events of one category's streams (`order` for `order-*`).
    Category(String),
    /// Events of one type.
    EventType(String),
    /// Events of streams whose name starts with this (`$` for the system's).
    StreamPrefix(String),
}

impl AllFilter {
    /// Whether an event of `stream` with type `ty` passes.
    pub fn matches(&self, stream: &str, ty: &str) -> bool {
        match self {
            AllFilter::All => !stream.starts_with('$'),
            AllFilter::Category(c) => category(stream) == Some(c.as_str()),
            AllFilter::EventType(t) => t == ty && !stream.starts_with('$'),
            AllFilter::StreamPrefix(p) => stream.starts_with(p.as_str()),
        }
    }
}

/// Part of `$all`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllSlice {
    /// The events that passed the filter, by position.
    pub events: Vec<RecordedEvent>,
    /// Where the next read starts: past everything this read looked at,
    /// whether it passed the filter or not.
    pub next: u64,
    /// The position after the last durable event when the read was made.
    pub head: u64,
}

/// A stream's settings. Events they hide are no longer read; their space is
/// reclaimed only when a whole segment of the store holds nothing readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamMetadata {
    /// Events older than this are no longer read.
    pub max_age_ms: Option<u64>,
    /// Only the last this many events are read.
    pub max_count: Option<u64>,
    /// Events below this version are no longer read.
    pub truncate_before: Option<u64>,
}

/// What the store knows of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Its name.
    pub stream: String,
    /// Its last version; `None` if never written or deleted.
    pub last_version: Option<u64>,
    /// Its settings.
    pub metadata: StreamMetadata,
    /// Whether it was deleted (and not written since).
    pub deleted: bool,
}

/// The category of a stream: what comes before its first `-`, if the name
/// has one and it is not at the start.
pub fn category(stream: &str) -> Option<&str> {
    match stream.find('-') {
        Some(i) if i > 0 => Some(&stream[..i]),
        _ => None,
    }
}

/// Checks a stream name: 1 to [`STREAM_NAME_BYTES_MAX`] bytes of ASCII
/// letters, digits, `_`, `-` and `.`, optionally after a leading `$`.
pub fn check_stream_name(name: &str) -> Result<()> {
    let bad = |reason: &str| BusError::InvalidName {
        what: "stream",
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let body = name.strip_prefix('$').unwrap_or(name);
    if body.is_empty() {
        return Err(bad("a stream name is not empty"));
    }
    if name.len() > STREAM_NAME_BYTES_MAX {
        return Err(bad(&format!(
            "a stream name has at most {STREAM_NAME_BYTES_MAX} bytes"
        )));
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(bad(
            "a stream name has only ASCII letters, digits, `_`, `-` and `.` (after an optional leading `$`)",
        ));
    }
    if body.starts_with('.') || body.ends_with('.') || body.contains("..") {
        return Err(bad("dots in a stream name separate non-empty parts"));
    }
    Ok(())
}

/// The bus topic the events of `stream` are published to, if any: none for
/// system streams and streams without a category.
pub fn store_topic(stream: &str) -> Option<String> {
    if stream.starts_with('$') {
        return None;
    }
    category(stream).map(|c| format!("{STORE_TOPIC_PREFIX}{c}"))
}

/// The event store: streams per aggregate with optimistic concurrency, and
/// the global ordered feed.
///
/// Every write returns once it is durable per the implementation's policy
/// (for the embedded engine by default: fsynced). Bad input gets a typed
/// [`BusError`] and changes nothing.
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to a stream, all or none, if the stream is where
    /// `expected` says. A conflict is [`BusError::WrongExpectedVersion`]
    /// naming the actual version. Appending events whose ids are already
    /// the stream's, at the versions they got, is a success marked
    /// `duplicate` (a retried append), whatever `expected` says.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<AppendResult>> + Send;

    /// Reads up to `max` events of a stream from `from`, in `direction`.
    /// A stream that does not exist reads as empty with no last version.
    fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: u32,
    ) -> impl Future<Output = Result<StreamSlice>> + Send;

    /// Reads up to `max` events of `$all` from `from` that pass `filter`,
    /// waiting up to `wait_ms` for the first if none is there yet.
    fn read_all(
        &self,
        from: u64,
        filter: AllFilter,
        max: u32,
        wait_ms: u64,
    ) -> impl Future<Output = Result<AllSlice>> + Send;

    /// What the store knows of a stream (a stream never written has no
    /// version and default settings).
    fn stream_info(&self, stream: &str) -> impl Future<Output = Result<StreamInfo>> + Send;

    /// Replaces a stream's settings.
    fn set_stream_metadata(
        &self,
        stream: &str,
        metadata: StreamMetadata,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes a stream (soft): its events are no longer read, and it reads
    /// as not existing. A later append re-creates it, numbering on from the
    /// deleted stream's last version.
    fn delete_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A catch-up subscription to `$all`: it reads the history from a
/// position, then waits for live events, handing out every event that
/// passes its filter once, in position order.
///
/// History and live events come through the same position-ordered reads,
/// so the switch from one to the other can neither skip nor repeat an
/// event, however appends race with it. Keep [`CatchUp::position`] (with
/// the work the events did) to resume after a restart.
#[derive(Debug)]
pub struct CatchUp<S> {
    store: S,
    filter: AllFilter,
    position: u64,
    buffered: std::collections::VecDeque<RecordedEvent>,
    live: bool,
    batch: u32,
    wait_ms: u64,
}

impl<S: EventStore> CatchUp<S> {
    /// Follows `$all` from `position` (0: from the start) through `filter`.
    pub fn new(store: S, filter: AllFilter, position: u64) -> CatchUp<S> {
        CatchUp {
            store,
            filter,
            position,
            buffered: std::collections::VecDeque::new(),
            live: false,
            batch: 500,
            wait_ms: 1_000,
        }
    }

    /// Reads up to `batch` events at a time (1..=[`STORE_READ_MAX`]).
    pub fn batch(mut self, batch: u32) -> CatchUp<S> {
        self.batch = batch.clamp(1, STORE_READ_MAX);
        self
    }

    /// Where the subscription goes on from: past every event handed out.
    pub fn position(&self) -> u64 {
        self.buffered.front().map_or(self.position, |e| e.position)
    }

    /// Whether the history is read and the subscription waits for new
    /// events.
    pub fn is_live(&self) -> bool {
        self.live && self.buffered.is_empty()
    }

    /// The next event, waiting for one as long as it takes.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Some(e) = self.try_next(self.wait_ms).await? {
                return Ok(e);
            }
        }
    }

    /// The next event, waiting up to `wait_ms` once the history is read;
    /// `None` if none came.
    pub async fn try_next(&mut self, wait_ms: u64) -> Result<Option<RecordedEvent>> {
        if let Some(e) = self.buffered.pop_front() {
            return Ok(Some(e));
        }
        let wait = if self.live {
            wait_ms.min(crate::WAIT_MS_MAX)
        } else {
            0
        };
        let slice = self
            .store
            .read_all(self.position, self.filter.clone(), self.batch, wait)
            .await?;
        self.position = slice.next;
        if slice.events.is_empty() && slice.next >= slice.head {
            self.live = true;
        }
        self.buffered.extend(slice.events);
        Ok(self.buffered.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        for ok in ["order-123", "$snap-order-1", "a", "shop.order-1_x"] {
            check_stream_name(ok).unwrap();
        }
        for bad in [
            "",
            "$",
            "order 1",
            "a..b",
            ".a",
            "a.",
            "ordér",
            &"x".repeat(201),
        ] {
            assert!(check_stream_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn categories_and_topics() {
        assert_eq!(category("order-123"), Some("order"));
        assert_eq!(category("order-12-3"), Some("order"));
        assert_eq!(category("-x"), None);
        assert_eq!(category("order"), None);
        assert_eq!(store_topic("order-1").as_deref(), Some("es.order"));
        assert_eq!(store_topic("$snap-order-1"), None);
        assert_eq!(store_topic("orders"), None);
        assert!(AllFilter::Category("order".into()).matches("order-1", "X"));
        assert!(!AllFilter::Category("order".into()).matches("orders-1", "X"));
        assert!(!AllFilter::All.matches("$snap-order-1", "X"));
        assert!(AllFilter::StreamPrefix("$".into()).matches("$snap-order-1", "X"));
    }

    #[test]
    fn expected_versions_parse_and_print() {
        for e in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::Exists,
            ExpectedVersion::Exact(42),
        ] {
            assert_eq!(e.to_string().parse::<ExpectedVersion>().unwrap(), e);
        }
        assert!("-1".parse::<ExpectedVersion>().is_err());
    }
}
