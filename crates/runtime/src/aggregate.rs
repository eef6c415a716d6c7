//! Event-sourced aggregates: state that is the fold of its own stream.
//!
//! An [`Aggregate`] decides events from a command against its current
//! state, and applies events to its state; it never touches storage. A
//! [`Repository`] loads one (its latest snapshot, then the events after
//! it), runs a command, and appends the decided events with the version it
//! loaded as the expected version — so two commands racing on one
//! aggregate cannot both be based on the same state. On a conflict it
//! reloads and decides again, if asked to.
//!
//! ```text
//!  execute(id, cmd) ─▶ load: $snap-<stream> (last) + <stream> after it ─▶ state, version
//!                   ─▶ decide(state, cmd) ─▶ events
//!                   ─▶ append(<stream>, Exact(version) | NoStream, events)
//!                        └─ conflict ─▶ retry (reload) up to `conflict_retries`
//!                   ─▶ every `snapshot_every` events: append the state to $snap-<stream>
//! ```
//!
//! Streams are `<category>-<id>`; events are stored as JSON with their
//! [`Aggregate::event_type`] as the CloudEvents type. A snapshot is a
//! JSON event `{"version": v, "state": …}` in the system stream
//! `$snap-<stream>`, which keeps only its last event (`max_count` 1). A
//! snapshot that cannot be decoded (the state's shape changed) is ignored:
//! the aggregate is folded from its events.

use eddy_bus::{
    BusError, Direction, Event, EventStore, ExpectedVersion, RecordedEvent, StreamFrom,
    StreamMetadata,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Events read per step while loading an aggregate.
const LOAD_BATCH: u32 = 1_000;
/// The CloudEvents type of a snapshot event.
pub const SNAPSHOT_TYPE: &str = "$Snapshot";

/// State folded from a stream of its own events.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What it is asked to do.
    type Command: Send;
    /// What happened to it.
    type Event: Serialize + DeserializeOwned + Send + Sync;
    /// Why it refused a command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The category of its streams: `order` for `order-123`.
    const CATEGORY: &'static str;

    /// The events a command causes, given the current state; none is fine.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one of its events to the state. Never fails: an event is a
    /// fact.
    fn apply(&mut self, event: &Self::Event);

    /// The event's type name, stored as its CloudEvents type.
    fn event_type(event: &Self::Event) -> &'static str;
}

/// Why a load or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error("the command was refused: {0}")]
    Rejected(#[source] E),
    /// Other commands kept changing the aggregate between load and append,
    /// more times than `conflict_retries` allows.
    #[error("conflict: {0}")]
    Conflict(#[source] BusError),
    /// A stored event is not one of the aggregate's.
    #[error("event {version} of {stream:?} cannot be decoded: {reason}")]
    Decode {
        /// The stream.
        stream: String,
        /// The event's version.
        version: u64,
        /// What failed.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] BusError),
}

/// An aggregate as loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// Its state.
    pub state: A,
    /// The version of its last event; `None` if it has none yet.
    pub version: Option<u64>,
    /// Events folded on top of the snapshot (all of them without one).
    pub events_read: u64,
    /// The version of the snapshot it started from, if any.
    pub snapshot_version: Option<u64>,
}

/// A command's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed<A> {
    /// The state after the command's events.
    pub state: A,
    /// The version after the command's events.
    pub version: Option<u64>,
    /// How many events it appended.
    pub appended: usize,
    /// How many times it was decided again after a conflict.
    pub retries: u32,
}

/// Loads and saves aggregates of type `A` on an event store.
#[derive(Debug, Clone)]
pub struct Repository<S, A> {
    store: S,
    snapshot_every: Option<u64>,
    conflict_retries: u32,
    source: String,
    _aggregate: std::marker::PhantomData<fn() -> A>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot<T> {
    version: u64,
    state: T,
}

/// The stream of the aggregate `id` of category `category`.
pub fn stream_of(category: &str, id: &str) -> String {
    format!("{category}-{id}")
}

/// The system stream holding the snapshots of `stream`.
pub fn snapshot_stream(stream: &str) -> String {
    format!("$snap-{stream}")
}

impl<S: EventStore, A: Aggregate> Repository<S, A> {
    /// A repository with no snapshots, refusing a command on its first
    /// conflict.
    pub fn new(store: S) -> Repository<S, A> {
        Repository {
            store,
            snapshot_every: None,
            conflict_retries: 0,
            source: "eddy".into(),
            _aggregate: std::marker::PhantomData,
        }
    }

    /// Writes a snapshot whenever a command takes the stream past a
    /// multiple of `n` events (0: never).
    pub fn snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = (n > 0).then_some(n);
        self
    }

    /// On a conflict, reloads and decides again up to `n` times.
    pub fn conflict_retries(mut self, n: u32) -> Self {
        self.conflict_retries = n;
        self
    }

    /// The CloudEvents source of the events it appends.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads aggregate `id`: the latest snapshot, then its later events.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, AggregateError<A::Error>> {
        let stream = stream_of(A::CATEGORY, id);
        let mut loaded = Loaded {
            state: A::default(),
            version: None,
            events_read: 0,
            snapshot_version: None,
        };
        if self.snapshot_every.is_some()
            && let Some(snap) = self.latest_snapshot(&stream).await?
        {
            loaded.state = snap.state;
            loaded.version = Some(snap.version);
            loaded.snapshot_version = Some(snap.version);
        }
        let mut from = loaded.version.map_or(0, |v| v + 1);
        loop {
            let slice = self
                .store
                .read_stream(
                    &stream,
                    StreamFrom::Version(from),
                    Direction::Forward,
                    LOAD_BATCH,
                )
                .await?;
            for e in &slice.events {
                let event: A::Event = decode(e)?;
                loaded.state.apply(&event);
                loaded.version = Some(e.version);
                loaded.events_read += 1;
            }
            match slice.next {
                Some(next) => from = next,
                None => {
                    // A snapshot newer than what is readable (the stream
                    // was deleted) does not stand for the stream.
                    if slice.last_version.is_none() && slice.events.is_empty() {
                        return Ok(Loaded {
                            state: A::default(),
                            version: None,
                            events_read: 0,
                            snapshot_version: None,
                        });
                    }
                    return Ok(loaded);
                }
            }
        }
    }

    async fn latest_snapshot(&self, stream: &str) -> Result<Option<Snapshot<A>>, BusError> {
        let slice = self
            .store
            .read_stream(
                &snapshot_stream(stream),
                StreamFrom::Start,
                Direction::Backward,
                1,
            )
            .await?;
        Ok(slice
            .events
            .first()
            .and_then(|e| serde_json::from_slice::<Snapshot<A>>(&e.event.data).ok()))
    }

    /// Runs `command` on aggregate `id`: load, decide, append with the
    /// loaded version expected. On a conflict, decides again on a fresh
    /// load (`make` builds the command anew) up to `conflict_retries`
    /// times.
    pub async fn execute(
        &self,
        id: &str,
        mut make: impl FnMut() -> A::Command,
    ) -> Result<Executed<A>, AggregateError<A::Error>> {
        let stream = stream_of(A::CATEGORY, id);
        let mut retries = 0;
        loop {
            let loaded = self.load(id).await?;
            let events = loaded
                .state
                .decide(make())
                .map_err(AggregateError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    state: loaded.state,
                    version: loaded.version,
                    appended: 0,
                    retries,
                });
            }
            let expected = match loaded.version {
                Some(v) => ExpectedVersion::Exact(v),
                None => ExpectedVersion::NoStream,
            };
            let stored = events
                .iter()
                .map(|e| self.to_event(e))
                .collect::<Result<Vec<_>, _>>()?;
            match self.store.append(&stream, expected, stored).await {
                Ok(r) => {
                    let mut state = loaded.state;
                    for e in &events {
                        state.apply(e);
                    }
                    self.maybe_snapshot(&stream, loaded.version, r.last_version, &state)
                        .await;
                    return Ok(Executed {
                        state,
                        version: Some(r.last_version),
                        appended: events.len(),
                        retries,
                    });
                }
                Err(e @ BusError::WrongExpectedVersion { .. }) => {
                    if retries >= self.conflict_retries {
                        return Err(AggregateError::Conflict(e));
                    }
                    retries += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn to_event(&self, e: &A::Event) -> Result<Event, AggregateError<A::Error>> {
        let data = serde_json::to_vec(e).map_err(|err| {
            AggregateError::Store(BusError::InvalidArgument {
                what: "event",
                reason: format!("it cannot be encoded as JSON: {err}"),
            })
        })?;
        Ok(json_event(A::event_type(e), data).with_source(self.source.clone()))
    }

    /// Writes a snapshot if the append took the stream past a multiple of
    /// `snapshot_every`. A failure is logged, not returned: the command
    /// happened, and the next load folds a few more events.
    async fn maybe_snapshot(&self, stream: &str, before: Option<u64>, after: u64, state: &A) {
        let Some(every) = self.snapshot_every else {
            return;
        };
        let count_before = before.map_or(0, |v| v + 1);
        let count_after = after + 1;
        if count_before / every == count_after / every {
            return;
        }
        if let Err(e) = self.write_snapshot(stream, after, state).await {
            tracing::warn!(stream, error = %e, "writing a snapshot failed");
        }
    }

    async fn write_snapshot(&self, stream: &str, version: u64, state: &A) -> Result<(), BusError> {
        let snap = snapshot_stream(stream);
        let data = serde_json::to_vec(&Snapshot { version, state }).map_err(|e| {
            BusError::InvalidArgument {
                what: "snapshot",
                reason: format!("the state cannot be encoded as JSON: {e}"),
            }
        })?;
        let first = self
            .store
            .append(
                &snap,
                ExpectedVersion::Any,
                vec![json_event(SNAPSHOT_TYPE, data)],
            )
            .await?;
        if first.first_version == 0 {
            let keep_last = StreamMetadata {
                max_count: Some(1),
                ..StreamMetadata::default()
            };
            self.store.set_stream_metadata(&snap, keep_last).await?;
        }
        Ok(())
    }
}

fn json_event(ty: &str, data: Vec<u8>) -> Event {
    let mut event = Event::new(ty, data);
    event.data_content_type = Some("application/json".into());
    event
}

/// Decodes a stored event as one of the aggregate's.
fn decode<T: DeserializeOwned, E: std::error::Error>(
    e: &RecordedEvent,
) -> Result<T, AggregateError<E>> {
    serde_json::from_slice(&e.event.data).map_err(|err| AggregateError::Decode {
        stream: e.stream.clone(),
        version: e.version,
        reason: err.to_string(),
    })
}
