//! A processor: reads topics continuously, transforms each event through a
//! chain of operators, aggregates by key in event-time windows, and writes
//! results to a sink — with operator state and input positions
//! checkpointed together.
//!
//! ```text
//!  input topics ─▶ Record ─▶ map / filter / flat_map / rekey / join(table) ─▶ window ─▶ sink
//!  table topics ─▶ latest value per key ──────────────────────┘                 │
//!                                                      late events ─▶ side topic (optional)
//! ```
//!
//! **Reading.** The processor reads each partition of its topics itself
//! (no subscription): its positions are part of its checkpoint. Each round
//! reads its tables to their end, then processes input events **merged by
//! event time** across partitions and topics: the partition whose next
//! event is the oldest goes first, and a partition that may hold more is
//! read again before anything else is processed. So a backlog is worked
//! through in event-time order whatever each partition's rate, and over
//! events already published the order — hence every result, lateness
//! included — does not depend on batch sizes or on where a crash
//! restarted it. A partition with nothing more to read does not hold the
//! others back (as Kafka Streams with `max.task.idle.ms` = 0): an event
//! published to it later may be late. A round processes at most
//! `batch_max` events per input partition; one that finds nothing waits
//! `idle_poll_ms` (or for a stop).
//!
//! **Time.** A record's event time is the event's `time` (the producer's
//! clock), else its append time. The watermark is the largest event time
//! processed so far minus `max_out_of_order_ms`, moved after every record.
//! Windows close once `end + allowed_lateness <= watermark`; a record
//! whose windows are all closed is late: counted, and sent to the side
//! topic if there is one.
//!
//! **Checkpoints.** After every round that read something, the processor
//! writes a checkpoint — input positions, table contents, window state,
//! and the results it keeps itself — as a new epoch in its
//! [`StateStore`], and then commits the sink:
//! - [`Sink::Postgres`]: the round's result rows and `{epoch, positions}`
//!   in one transaction. On a restart the processor loads the epoch
//!   PostgreSQL names, so the table, the state and the positions agree
//!   and no input is counted twice.
//! - [`Sink::Embedded`]: the results live in the checkpoint itself
//!   (bounded by `results_max`, oldest windows dropped first).
//! - [`Sink::Topic`]: results are published before the checkpoint, with
//!   ids made from the processor, window and key, so a round repeated
//!   after a crash is dropped by the topic's idempotent-publishing window.
//!
//! A checkpoint is taken (state encoded, results gathered) at the end of
//! its round and written on a task of its own while the next round is
//! read and processed; checkpoints are written one at a time, in order,
//! and a stop waits for the one in flight. A crash loses at most the
//! rounds not yet committed, which are read again.
//!
//! **Replay.** [`ProcessorBuilder::replay_from`] restarts the processor at
//! an earlier time, loading no state (so it also recovers a processor
//! whose state was lost or whose windows or inputs changed): fresh window
//! state, inputs read again from that time
//! (tables from the beginning), and the results of every window starting
//! at or after the window holding that time replaced — deleted and
//! recomputed. Windows that started before it are left as they were.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use eddy_bus::{Bus, BusError, Event, Offset, Partition, ReadFrom, StoredEvent};
use eddy_log::{Clock, SystemClock};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::postgres::{PostgresSink, ResultRow, SinkError};
use super::session::Sessions;
use super::store::{StateStore, StoreError};
use super::window::{Closed, WindowSpec, Windowed};

/// Most events read from one partition in one round.
pub const BATCH_MAX_LIMIT: u32 = 10_000;
/// Most keys one table may hold.
pub const TABLE_KEYS_MAX: usize = 1_000_000;
/// Most windows (or sessions), over all keys, open at once.
pub const OPEN_WINDOWS_MAX: usize = 1_000_000;

/// One event as the operators see it.
///
/// Its data is parsed as JSON only when [`Record::value`] is first asked
/// for (data that is not JSON reads as `null`), so operators that look at
/// the key, type or time alone pay nothing for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The id of the event it came from (`#n` appended for the n-th
    /// record a flat-map made of it, from 1).
    pub id: String,
    /// The topic it was read from.
    pub topic: String,
    /// The event's type.
    pub ty: String,
    /// The key it is aggregated (and joined) by; the event's key at first.
    pub key: String,
    /// Its event time (ms since the epoch).
    pub time_ms: i64,
    /// Where its event is: (partition, offset) in `topic`.
    origin: (u32, u64),
    data: bytes::Bytes,
    value: std::sync::OnceLock<Value>,
}

impl Record {
    /// A record of `value` (for operators that make new records).
    pub fn new(
        id: impl Into<String>,
        ty: impl Into<String>,
        key: impl Into<String>,
        time_ms: i64,
        value: Value,
    ) -> Record {
        Record {
            id: id.into(),
            topic: String::new(),
            ty: ty.into(),
            key: key.into(),
            time_ms,
            origin: (0, 0),
            data: bytes::Bytes::new(),
            value: std::sync::OnceLock::from(value),
        }
    }

    fn of(e: StoredEvent) -> Record {
        let time_ms = event_time(&e);
        let event = e.event;
        Record {
            id: event.id,
            topic: e.topic,
            ty: event.ty,
            key: event.key.unwrap_or_default(),
            time_ms,
            origin: (e.partition.0, e.offset.0),
            data: event.data,
            value: std::sync::OnceLock::new(),
        }
    }

    /// The data, as JSON (`null` if it is not JSON).
    pub fn value(&self) -> &Value {
        self.value
            .get_or_init(|| serde_json::from_slice(&self.data).unwrap_or(Value::Null))
    }

    /// Replaces the data.
    pub fn set_value(&mut self, value: Value) {
        self.data = bytes::Bytes::new();
        self.value = std::sync::OnceLock::from(value);
    }

    /// An id for what `processor` makes of this record, unique per input
    /// event (topic, partition, offset) and per record made of it.
    fn derived_id(&self, processor: &str, what: &str) -> String {
        derived_id(&[
            processor,
            what,
            &self.topic,
            &self.origin.0.to_string(),
            &self.origin.1.to_string(),
            &self.id,
        ])
    }

    fn to_event(&self, id: String) -> Event {
        let data = match self.value.get() {
            Some(v) if self.data.is_empty() => bytes::Bytes::from(v.to_string()),
            _ => self.data.clone(),
        };
        let mut event = Event::new(self.ty.clone(), data);
        event.id = id;
        event.key = Some(self.key.clone());
        event.time_ms = Some(self.time_ms);
        event.data_content_type = Some("application/json".into());
        event
    }
}

type FlatMap = Box<dyn Fn(Record) -> Vec<Record> + Send + Sync>;
type Joiner = Box<dyn Fn(Record, Option<&Value>) -> Option<Record> + Send + Sync>;
type Fold<A> = Box<dyn Fn(&mut A, &Record) + Send + Sync>;
type Merge<A> = Box<dyn Fn(&mut A, A) + Send + Sync>;

enum Stage {
    Each(FlatMap),
    Join { table: String, with: Joiner },
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Windows { spec: WindowSpec, lateness_ms: u64 },
    Sessions { gap_ms: u64, lateness_ms: u64 },
}

struct Agg<A> {
    fold: Fold<A>,
    merge: Option<Merge<A>>,
}

/// When a windowed result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emit {
    /// At every checkpoint, for each window that changed (final once it
    /// closes); the default for tables (PostgreSQL, embedded). Session
    /// windows are always written on close, since merging moves them.
    #[default]
    OnUpdate,
    /// Only when the window closes.
    OnClose,
}

/// Where a processor's results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// A PostgreSQL table (see [`PostgresSink`]): `conn` is a libpq-style
    /// connection string.
    Postgres {
        /// The connection string.
        conn: String,
        /// The result table.
        table: String,
    },
    /// The processor's own embedded store (read with [`embedded_results`]).
    Embedded,
    /// A topic: windowed results (on close) as events of type
    /// `WindowResult`, or, without an aggregation, the records themselves.
    Topic(String),
}

/// Why a processor could not be built, started or kept running.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The processor is described wrongly.
    #[error("processor {processor}: {reason}")]
    Config {
        /// The processor.
        processor: String,
        /// What is wrong.
        reason: String,
    },
    /// The bus failed.
    #[error("processor {processor}: the bus: {source}")]
    Bus {
        /// The processor.
        processor: String,
        /// What failed.
        source: BusError,
    },
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// PostgreSQL names a checkpoint the embedded store does not hold.
    #[error(
        "processor {processor}: PostgreSQL holds results up to checkpoint {epoch}, which the embedded store in {dir} lacks; restart with replay_from to recompute"
    )]
    StateMissing {
        /// The processor.
        processor: String,
        /// The epoch PostgreSQL names.
        epoch: u64,
        /// The store's folder.
        dir: PathBuf,
    },
    /// A table topic has more keys than [`TABLE_KEYS_MAX`].
    #[error("processor {processor}: table {table} has more than {TABLE_KEYS_MAX} keys")]
    TableFull {
        /// The processor.
        processor: String,
        /// The table's topic.
        table: String,
    },
    /// More than [`OPEN_WINDOWS_MAX`] windows are open (too many keys, or
    /// a watermark that does not move).
    #[error("processor {processor}: {open} windows are open, more than {OPEN_WINDOWS_MAX}")]
    StateFull {
        /// The processor.
        processor: String,
        /// Windows open.
        open: usize,
    },
    /// The processor stopped on an error (reported by
    /// [`RunningProcessor::caught_up`]; [`RunningProcessor::stop`] returns
    /// the error itself).
    #[error("processor {processor} stopped on an error: {reason}")]
    Failed {
        /// The processor.
        processor: String,
        /// The error.
        reason: String,
    },
    /// The processor's task ended abnormally.
    #[error("processor {0}: its task ended abnormally")]
    Stopped(String),
}

/// A stream processor, described; [`Processor::start`] runs it.
pub struct Processor<A = ()> {
    name: String,
    inputs: Vec<String>,
    tables: Vec<String>,
    stages: Vec<Stage>,
    shape: Option<Shape>,
    agg: Option<Agg<A>>,
    emit: Emit,
    side_topic: Option<String>,
    max_out_of_order_ms: i64,
    batch_max: u32,
    idle_poll_ms: u64,
    results_max: usize,
    replay_from: Option<i64>,
    clock: Arc<dyn Clock>,
    observer: Option<Observer>,
}

type Observer = Arc<dyn Fn(&Checkpointed<'_>) + Send + Sync>;

/// What a checkpoint committed, as [`ProcessorBuilder::on_checkpoint`]
/// hears it.
#[derive(Debug)]
pub struct Checkpointed<'a> {
    /// Its epoch.
    pub epoch: u64,
    /// Input events read since the processor was first started.
    pub events_total: u64,
    /// The event time of each record it aggregated (ms).
    pub event_times_ms: &'a [i64],
    /// When it committed, by the processor's clock (ms).
    pub committed_ms: i64,
}

impl<A> std::fmt::Debug for Processor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("tables", &self.tables)
            .field("stages", &self.stages.len())
            .field("shape", &self.shape)
            .field("emit", &self.emit)
            .field("side_topic", &self.side_topic)
            .field("max_out_of_order_ms", &self.max_out_of_order_ms)
            .finish_non_exhaustive()
    }
}

/// Describes a [`Processor`].
#[derive(Debug)]
pub struct ProcessorBuilder<A = ()> {
    p: Processor<A>,
}

impl Processor<()> {
    /// A processor named `name` (its checkpoint's name in PostgreSQL, and
    /// part of its result ids).
    pub fn builder(name: impl Into<String>) -> ProcessorBuilder<()> {
        ProcessorBuilder {
            p: Processor {
                name: name.into(),
                inputs: Vec::new(),
                tables: Vec::new(),
                stages: Vec::new(),
                shape: None,
                agg: None,
                emit: Emit::OnUpdate,
                side_topic: None,
                max_out_of_order_ms: 0,
                batch_max: 1_000,
                idle_poll_ms: 10,
                results_max: 100_000,
                replay_from: None,
                clock: Arc::new(SystemClock),
                observer: None,
            },
        }
    }
}

impl<A> ProcessorBuilder<A> {
    /// Reads `topic` (every partition) as input.
    pub fn input(mut self, topic: impl Into<String>) -> Self {
        self.p.inputs.push(topic.into());
        self
    }

    /// Each record becomes zero or more records.
    pub fn flat_map(mut self, f: impl Fn(Record) -> Vec<Record> + Send + Sync + 'static) -> Self {
        self.p.stages.push(Stage::Each(Box::new(f)));
        self
    }

    /// Each record is replaced by `f`'s.
    pub fn map(self, f: impl Fn(Record) -> Record + Send + Sync + 'static) -> Self {
        self.flat_map(move |r| vec![f(r)])
    }

    /// Keeps the records `f` accepts.
    pub fn filter(self, f: impl Fn(&Record) -> bool + Send + Sync + 'static) -> Self {
        self.flat_map(move |r| if f(&r) { vec![r] } else { Vec::new() })
    }

    /// Gives each record the key `f` computes.
    pub fn rekey(self, f: impl Fn(&Record) -> String + Send + Sync + 'static) -> Self {
        self.map(move |mut r| {
            r.key = f(&r);
            r
        })
    }

    /// Joins each record with the latest value of its key in a table read
    /// from `table_topic` (each event there sets its key's value to its
    /// data; an empty or `null` data deletes the key). `with` gets `None`
    /// for a key the table lacks, and returns the joined record or `None`
    /// to drop it.
    pub fn join_table(
        mut self,
        table_topic: impl Into<String>,
        with: impl Fn(Record, Option<&Value>) -> Option<Record> + Send + Sync + 'static,
    ) -> Self {
        let table = table_topic.into();
        if !self.p.tables.contains(&table) {
            self.p.tables.push(table.clone());
        }
        self.p.stages.push(Stage::Join {
            table,
            with: Box::new(with),
        });
        self
    }

    /// Aggregates in windows of event time (tumbling or hopping), keeping
    /// each window open `allowed_lateness_ms` past its end.
    pub fn window(mut self, spec: WindowSpec, allowed_lateness_ms: u64) -> Self {
        self.p.shape = Some(Shape::Windows {
            spec,
            lateness_ms: allowed_lateness_ms,
        });
        self
    }

    /// Aggregates in session windows: a key's session ends `gap_ms` after
    /// its last record.
    pub fn session_window(mut self, gap_ms: u64, allowed_lateness_ms: u64) -> Self {
        self.p.shape = Some(Shape::Sessions {
            gap_ms,
            lateness_ms: allowed_lateness_ms,
        });
        self
    }

    /// How far behind the largest event time seen a record may be and
    /// still count as on time (the watermark's lag); 0 by default.
    pub fn max_out_of_order_ms(mut self, ms: u64) -> Self {
        self.p.max_out_of_order_ms = i64::try_from(ms).unwrap_or(i64::MAX);
        self
    }

    /// Sends late records to `topic`.
    pub fn late_events_to(mut self, topic: impl Into<String>) -> Self {
        self.p.side_topic = Some(topic.into());
        self
    }

    /// When windowed results are written.
    pub fn emit(mut self, emit: Emit) -> Self {
        self.p.emit = emit;
        self
    }

    /// Most events read from one partition per round (1000).
    pub fn batch_max(mut self, n: u32) -> Self {
        self.p.batch_max = n;
        self
    }

    /// How long a round that found nothing waits (10 ms).
    pub fn idle_poll_ms(mut self, ms: u64) -> Self {
        self.p.idle_poll_ms = ms;
        self
    }

    /// Most result rows the embedded sink keeps (100,000).
    pub fn results_max(mut self, n: usize) -> Self {
        self.p.results_max = n;
        self
    }

    /// On start, recompute everything from event time `time_ms` on (see
    /// the module's "Replay").
    pub fn replay_from(mut self, time_ms: i64) -> Self {
        self.p.replay_from = Some(time_ms);
        self
    }

    /// Calls `f` after each checkpoint commits (on the processor's task:
    /// keep it short).
    pub fn on_checkpoint(mut self, f: impl Fn(&Checkpointed<'_>) + Send + Sync + 'static) -> Self {
        self.p.observer = Some(Arc::new(f));
        self
    }

    /// The clock the processor's delay metrics read (the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.p.clock = clock;
        self
    }
}

impl ProcessorBuilder<()> {
    /// Folds each record into the aggregate of its key and window.
    pub fn aggregate<A>(
        self,
        fold: impl Fn(&mut A, &Record) + Send + Sync + 'static,
    ) -> ProcessorBuilder<A> {
        self.with_agg(Agg {
            fold: Box::new(fold),
            merge: None,
        })
    }

    /// Like [`aggregate`](Self::aggregate), with `merge` to join two
    /// aggregates when a record bridges two sessions.
    pub fn aggregate_sessions<A>(
        self,
        fold: impl Fn(&mut A, &Record) + Send + Sync + 'static,
        merge: impl Fn(&mut A, A) + Send + Sync + 'static,
    ) -> ProcessorBuilder<A> {
        self.with_agg(Agg {
            fold: Box::new(fold),
            merge: Some(Box::new(merge)),
        })
    }

    fn with_agg<A>(self, agg: Agg<A>) -> ProcessorBuilder<A> {
        let p = self.p;
        ProcessorBuilder {
            p: Processor {
                name: p.name,
                inputs: p.inputs,
                tables: p.tables,
                stages: p.stages,
                shape: p.shape,
                agg: Some(agg),
                emit: p.emit,
                side_topic: p.side_topic,
                max_out_of_order_ms: p.max_out_of_order_ms,
                batch_max: p.batch_max,
                idle_poll_ms: p.idle_poll_ms,
                results_max: p.results_max,
                replay_from: p.replay_from,
                clock: p.clock,
                observer: p.observer,
            },
        }
    }
}

impl<A: Aggregate> ProcessorBuilder<A> {
    /// Checks the description.
    pub fn build(self) -> Result<Processor<A>, ProcessorError> {
        let p = self.p;
        let bad = |reason: &str| {
            Err(ProcessorError::Config {
                processor: p.name.clone(),
                reason: reason.to_string(),
            })
        };
        if p.name.is_empty() || p.name.len() > 200 {
            return bad("a name of 1 to 200 bytes");
        }
        if p.inputs.is_empty() {
            return bad("no input topic");
        }
        let mut topics: Vec<&String> = p.inputs.iter().chain(&p.tables).collect();
        topics.sort();
        if topics.windows(2).any(|w| w[0] == w[1]) {
            return bad("a topic is read once: as one input, or as one table");
        }
        if p.batch_max == 0 || p.batch_max > BATCH_MAX_LIMIT {
            return bad("batch_max is within 1..=10000");
        }
        if p.idle_poll_ms == 0 || p.idle_poll_ms > 60_000 {
            return bad("idle_poll_ms is within 1..=60000");
        }
        match (&p.shape, &p.agg) {
            (Some(_), None) => return bad("a window without an aggregate"),
            (None, Some(_)) => return bad("an aggregate without a window"),
            (Some(Shape::Sessions { .. }), Some(agg)) if agg.merge.is_none() => {
                return bad("session windows take aggregate_sessions (with a merge)");
            }
            (Some(Shape::Windows { .. }), Some(agg)) if agg.merge.is_some() => {
                return bad("aggregate_sessions is for session windows");
            }
            _ => {}
        }
        if p.results_max == 0 {
            return bad("results_max is at least 1");
        }
        Ok(p)
    }
}

/// What a windowed aggregate must be: a default (empty) value, cloneable,
/// and serializable, to be checkpointed.
pub trait Aggregate:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
impl<A: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Aggregate for A {}

/// The results an embedded-sink processor keeps in `state_dir`, as of its
/// newest checkpoint (empty if it has none), by key and window.
pub fn embedded_results(state_dir: impl Into<PathBuf>) -> Result<Vec<ResultRow>, ProcessorError> {
    let store = StateStore::open(state_dir)?;
    let Some(&epoch) = store.epochs()?.last() else {
        return Ok(Vec::new());
    };
    let cp = store.load::<Checkpoint<Value>>(epoch)?;
    Ok(cp.map(|cp| rows_of(&cp.results)).unwrap_or_default())
}

fn rows_of(results: &BTreeMap<(String, i64, i64), Value>) -> Vec<ResultRow> {
    results
        .iter()
        .map(|((key, start, end), value)| ResultRow {
            key: key.clone(),
            window_start_ms: *start,
            window_end_ms: *end,
            value: value.clone(),
        })
        .collect()
}

// ---- state ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: DeserializeOwned"))]
enum OpState<A> {
    Stateless,
    Windows(Windowed<String, A>),
    Sessions(Sessions<String, A>),
}

/// What a processor has done, since it was first started (checkpointed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Input events read.
    pub events: u64,
    /// Records too late for every window.
    pub late: u64,
    /// Records dropped because they are older than the replay's start.
    pub before_replay: u64,
    /// Result rows (or events) written.
    pub results: u64,
    /// Result rows the embedded sink dropped to stay within `results_max`.
    pub results_dropped: u64,
    /// Input or table events deleted by retention before the processor
    /// read them.
    #[serde(default)]
    pub skipped: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: DeserializeOwned"))]
struct Checkpoint<A> {
    epoch: u64,
    /// The windows it was written with: a checkpoint is only resumed by
    /// a processor with the same.
    shape: String,
    /// Per topic (inputs and tables), the next offset of each partition.
    positions: BTreeMap<String, Vec<u64>>,
    stream_time_ms: i64,
    /// Results of windows starting before this are not written (a replay's
    /// start); `i64::MIN` when none.
    floor_ms: i64,
    /// The epoch the last replay started at (0: none): part of topic
    /// result ids, so that recomputed results are not taken for
    /// duplicates.
    replays: u64,
    state: OpState<A>,
    tables: BTreeMap<String, BTreeMap<String, Value>>,
    /// The embedded sink's results, by (key, start, end).
    #[serde(with = "super::entries")]
    results: BTreeMap<(String, i64, i64), Value>,
    counts: Counts,
}

/// What a replay keeps of the newest checkpoint, whatever its state's type.
#[derive(Debug, Default, Deserialize)]
struct Kept {
    #[serde(with = "super::entries", default)]
    results: BTreeMap<(String, i64, i64), Value>,
    #[serde(default)]
    counts: Counts,
}

/// What a PostgreSQL commit records beside the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PgMark {
    epoch: u64,
    positions: BTreeMap<String, Vec<u64>>,
}

// ---- metrics ----

/// Upper bounds (ms) of the result-delay histogram's buckets.
const DELAY_BUCKETS_MS: [u64; 20] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
    60_000,
];

/// A processor's live figures, rendered for Prometheus by
/// [`ProcessorMetrics::render`].
#[derive(Debug, Default)]
pub struct ProcessorMetrics {
    name: String,
    events: AtomicU64,
    late: AtomicU64,
    skipped: AtomicU64,
    results: AtomicU64,
    commits: AtomicU64,
    commit_us: AtomicU64,
    watermark_ms: AtomicI64,
    /// Event time → result committed, per record aggregated.
    delay_buckets: [AtomicU64; DELAY_BUCKETS_MS.len() + 1],
    delay_sum_ms: AtomicU64,
}

impl ProcessorMetrics {
    fn new(name: &str) -> ProcessorMetrics {
        ProcessorMetrics {
            name: name.to_string(),
            watermark_ms: AtomicI64::new(i64::MIN),
            ..ProcessorMetrics::default()
        }
    }

    fn set_counts(&self, c: &Counts) {
        self.events.store(c.events, Ordering::Relaxed);
        self.late.store(c.late, Ordering::Relaxed);
        self.skipped.store(c.skipped, Ordering::Relaxed);
        self.results.store(c.results, Ordering::Relaxed);
    }

    fn observe_delay(&self, delay_ms: i64) {
        let d = u64::try_from(delay_ms).unwrap_or(0);
        let i = DELAY_BUCKETS_MS
            .iter()
            .position(|&b| d <= b)
            .unwrap_or(DELAY_BUCKETS_MS.len());
        self.delay_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.delay_sum_ms.fetch_add(d, Ordering::Relaxed);
    }

    /// Input events read.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Late records.
    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Events deleted by retention before they were read.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Checkpoints committed since start.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Time from each checkpoint's preparation to its commit, summed since
    /// start (checkpoints are written beside processing).
    pub fn checkpoint_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.commit_us.load(Ordering::Relaxed))
    }

    /// The `q` quantile (0..=1) of the event-time → committed delay, as
    /// the upper bound of its histogram bucket (ms); `None` before any.
    pub fn delay_quantile_ms(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .delay_buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(DELAY_BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    /// The figures in the Prometheus text format.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let l = format!(
            "processor=\"{}\"",
            self.name.replace(['\\', '"', '\n'], "_")
        );
        let mut out = String::new();
        let counters = [
            (
                "eddy_processor_events_total",
                "Input events read.",
                &self.events,
            ),
            (
                "eddy_processor_late_events_total",
                "Records too late for every window.",
                &self.late,
            ),
            (
                "eddy_processor_skipped_events_total",
                "Events deleted by retention before the processor read them.",
                &self.skipped,
            ),
            (
                "eddy_processor_results_total",
                "Result rows or events written.",
                &self.results,
            ),
            (
                "eddy_processor_checkpoints_total",
                "Checkpoints committed since start.",
                &self.commits,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{l}}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP eddy_processor_checkpoint_seconds_total From each checkpoint's preparation to its commit (written beside processing).\n# TYPE eddy_processor_checkpoint_seconds_total counter\neddy_processor_checkpoint_seconds_total{{{l}}} {}",
            self.commit_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let wm = self.watermark_ms.load(Ordering::Relaxed);
        if wm != i64::MIN {
            let _ = writeln!(
                out,
                "# HELP eddy_processor_watermark_seconds The watermark (event time).\n# TYPE eddy_processor_watermark_seconds gauge\neddy_processor_watermark_seconds{{{l}}} {}",
                wm as f64 / 1e3
            );
        }
        let name = "eddy_processor_result_delay_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From a record's event time to the checkpoint holding its result.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, b) in self.delay_buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = DELAY_BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_string(), |ms| format!("{}", *ms as f64 / 1e3));
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_sum{{{l}}} {}\n{name}_count{{{l}}} {cumulative}",
            self.delay_sum_ms.load(Ordering::Relaxed) as f64 / 1e3
        );
        out
    }
}

// ---- running ----

#[derive(Debug, Clone, Default)]
struct Progress {
    /// Rounds that found nothing new, since start.
    idle_rounds: u64,
    /// Set when the processor stopped on an error.
    failed: Option<String>,
    /// Set once the task ended.
    ended: bool,
}

/// A started processor.
#[derive(Debug)]
pub struct RunningProcessor<A: Aggregate = ()> {
    stop: watch::Sender<bool>,
    progress: watch::Receiver<Progress>,
    task: JoinHandle<Result<Vec<ResultRow>, ProcessorError>>,
    metrics: Arc<ProcessorMetrics>,
    name: String,
    _aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A: Aggregate> RunningProcessor<A> {
    /// Its live figures.
    pub fn metrics(&self) -> Arc<ProcessorMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Waits until the processor has read, processed and checkpointed
    /// everything published before this call (a round that started after
    /// it found nothing new). Errors if the processor stopped on an error.
    pub async fn caught_up(&mut self) -> Result<(), ProcessorError> {
        let start = self.progress.borrow().idle_rounds;
        loop {
            {
                let p = self.progress.borrow_and_update();
                if let Some(e) = &p.failed {
                    return Err(ProcessorError::Failed {
                        processor: self.name.clone(),
                        reason: e.clone(),
                    });
                }
                if p.idle_rounds >= start + 2 {
                    return Ok(());
                }
                if p.ended {
                    return Err(ProcessorError::Stopped(self.name.clone()));
                }
            }
            if self.progress.changed().await.is_err() {
                return Err(ProcessorError::Stopped(self.name.clone()));
            }
        }
    }

    /// Finishes the round in flight (checkpointed) and stops; returns the
    /// embedded sink's results (empty for other sinks).
    pub async fn stop(self) -> Result<Vec<ResultRow>, ProcessorError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|_| ProcessorError::Stopped(self.name.clone()))?
    }
}

impl<A: Aggregate> Processor<A> {
    /// Starts the processor on `bus`, with its state in the folder
    /// `state_dir` and its results going to `sink`.
    pub async fn start<B: Bus + Clone>(
        self,
        bus: B,
        state_dir: impl Into<PathBuf>,
        sink: Sink,
    ) -> Result<RunningProcessor<A>, ProcessorError> {
        let name = self.name.clone();
        if self.agg.is_none() && !matches!(sink, Sink::Topic(_)) {
            return Err(ProcessorError::Config {
                processor: name,
                reason: "a processor without an aggregate writes to a topic".into(),
            });
        }
        let store = StateStore::open(state_dir)?;
        let metrics = Arc::new(ProcessorMetrics::new(&name));
        let mut run = Run::open(self, bus, store, sink, Arc::clone(&metrics)).await?;
        let (stop, mut stopped) = watch::channel(false);
        let (progress_tx, progress) = watch::channel(Progress::default());
        let task = tokio::spawn(async move {
            let outcome = run.run(&mut stopped, &progress_tx).await;
            progress_tx.send_modify(|p| {
                p.ended = true;
                if let Err(e) = &outcome {
                    p.failed = Some(e.to_string());
                }
            });
            outcome.map(|()| run.embedded_results())
        });
        Ok(RunningProcessor {
            stop,
            progress,
            task,
            metrics,
            name,
            _aggregate: std::marker::PhantomData,
        })
    }
}

/// An input partition being read.
struct Input {
    topic: String,
    partition: u32,
    /// The offset to read from next (after the read-ahead).
    next: u64,
    /// Read, not processed yet; dropped on a crash (the checkpoint holds
    /// processed positions).
    buffer: VecDeque<StoredEvent>,
    /// Whether to read when the read-ahead is empty: the last read found
    /// events, or a new round began.
    more: bool,
}

/// The parts joined by `/`, or, past 200 bytes, their SHA-256 (event ids
/// are bounded).
fn derived_id(parts: &[&str]) -> String {
    let id = parts.join("/");
    if id.len() <= 200 {
        return id;
    }
    format!("sha256:{}", crate::sha256_hex(&[id.as_bytes()]))
}

/// Publishes `events` in order, in batches of at most 1,000 events and
/// 4 MiB.
async fn publish_all<B: Bus>(bus: &B, topic: &str, events: &[Event]) -> Result<(), BusError> {
    let mut start = 0;
    while start < events.len() {
        let (mut end, mut bytes) = (start, 0);
        while end < events.len() && end - start < 1_000 {
            let size = events[end].size_bytes();
            if end > start && bytes + size > 4 << 20 {
                break;
            }
            bytes += size;
            end += 1;
        }
        bus.publish_batch(topic, events[start..end].to_vec())
            .await?;
        start = end;
    }
    Ok(())
}

fn event_time(e: &StoredEvent) -> i64 {
    e.event.time_ms.unwrap_or(e.timestamp_ms)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SinkKind {
    Postgres,
    Embedded,
    Topic,
}

enum SinkState {
    Postgres(PostgresSink),
    Embedded,
    Topic(String),
}

/// A checkpoint ready to be written, and what it carries.
struct Pending {
    epoch: u64,
    /// The checkpoint, encoded.
    state: Vec<u8>,
    /// What PostgreSQL records with the rows.
    mark: PgMark,
    rows: Vec<ResultRow>,
    /// Late records for the side topic.
    late: Vec<Event>,
    /// Events for the topic sink.
    out: Vec<Event>,
    times: Vec<i64>,
    counts: Counts,
    watermark_ms: i64,
    started: std::time::Instant,
}

/// What writing a checkpoint needs, owned, to run beside processing.
struct CommitIo<B> {
    bus: B,
    store: StateStore,
    side_topic: Option<String>,
    name: String,
}

impl<B: Bus> CommitIo<B> {
    fn bus_error(&self) -> impl FnOnce(BusError) -> ProcessorError + '_ {
        |source| ProcessorError::Bus {
            processor: self.name.clone(),
            source,
        }
    }

    /// Publishes what cannot join the transaction first (with ids that
    /// make a repeat after a crash a duplicate), then saves the state, then
    /// commits the sink. Hands the sink back.
    async fn write(
        self,
        mut sink: SinkState,
        p: Pending,
    ) -> Result<(SinkState, Pending), ProcessorError> {
        if let Some(side) = &self.side_topic
            && !p.late.is_empty()
        {
            publish_all(&self.bus, side, &p.late)
                .await
                .map_err(self.bus_error())?;
        }
        if let SinkState::Topic(topic) = &sink {
            publish_all(&self.bus, topic, &p.out)
                .await
                .map_err(self.bus_error())?;
        }
        let store = self.store.clone();
        let (epoch, state) = (p.epoch, p.state.clone());
        tokio::task::spawn_blocking(move || store.save_bytes(epoch, &state))
            .await
            .map_err(|_| ProcessorError::Stopped(self.name.clone()))??;
        if let SinkState::Postgres(pg) = &mut sink {
            pg.commit(&p.rows, &p.mark).await?;
        }
        Ok((sink, p))
    }
}

struct Run<A, B> {
    p: Processor<A>,
    bus: B,
    store: StateStore,
    /// The sink; out while a checkpoint is being written.
    sink: Option<SinkState>,
    /// Which sink it is (also while it is out).
    kind: SinkKind,
    /// The checkpoint being written, beside processing.
    in_flight: Option<JoinHandle<Result<(SinkState, Pending), ProcessorError>>>,
    metrics: Arc<ProcessorMetrics>,
    cp: Checkpoint<A>,
    /// Partition counts, per topic (tables first, then inputs).
    topics: Vec<(String, u32)>,
    /// Each input partition's read-ahead.
    inputs: Vec<Input>,
    // What the round in flight produced, written at its checkpoint:
    closed: Vec<Closed<String, A>>,
    records_out: Vec<Record>,
    late_out: Vec<Record>,
    times: Vec<i64>,
}

impl<A: Aggregate, B: Bus + Clone> Run<A, B> {
    fn bus_error(&self) -> impl FnOnce(BusError) -> ProcessorError + '_ {
        |source| ProcessorError::Bus {
            processor: self.p.name.clone(),
            source,
        }
    }

    async fn open(
        p: Processor<A>,
        bus: B,
        store: StateStore,
        sink: Sink,
        metrics: Arc<ProcessorMetrics>,
    ) -> Result<Run<A, B>, ProcessorError> {
        let sink = match sink {
            Sink::Postgres { conn, table } => {
                SinkState::Postgres(PostgresSink::connect(&conn, &p.name, &table).await?)
            }
            Sink::Embedded => SinkState::Embedded,
            Sink::Topic(t) => SinkState::Topic(t),
        };
        let mut topics = Vec::new();
        for t in p.tables.iter().chain(&p.inputs) {
            let info = bus
                .describe_topic(t)
                .await
                .map_err(|source| ProcessorError::Bus {
                    processor: p.name.clone(),
                    source,
                })?;
            topics.push((t.clone(), info.partitions.len() as u32));
        }
        let fresh = Checkpoint {
            epoch: 0,
            shape: match p.shape {
                None => "none".to_string(),
                Some(shape) => format!("{shape:?}"),
            },
            positions: topics
                .iter()
                .map(|(t, n)| (t.clone(), vec![0; *n as usize]))
                .collect(),
            stream_time_ms: i64::MIN,
            floor_ms: i64::MIN,
            replays: 0,
            state: match p.shape {
                None => OpState::Stateless,
                Some(Shape::Windows { spec, lateness_ms }) => {
                    OpState::Windows(Windowed::new(spec, lateness_ms))
                }
                Some(Shape::Sessions {
                    gap_ms,
                    lateness_ms,
                }) => OpState::Sessions(Sessions::new(gap_ms, lateness_ms)),
            },
            tables: BTreeMap::new(),
            results: BTreeMap::new(),
            counts: Counts::default(),
        };
        let mut run = Run {
            p,
            bus,
            store,
            kind: match &sink {
                SinkState::Postgres(_) => SinkKind::Postgres,
                SinkState::Embedded => SinkKind::Embedded,
                SinkState::Topic(_) => SinkKind::Topic,
            },
            sink: Some(sink),
            in_flight: None,
            metrics,
            cp: fresh.clone(),
            topics,
            closed: Vec::new(),
            records_out: Vec::new(),
            late_out: Vec::new(),
            times: Vec::new(),
            inputs: Vec::new(),
        };
        match run.p.replay_from {
            // A replay loads no state: it is how a processor whose state is
            // lost, or whose inputs or windows changed, starts again.
            Some(from) => run.replay(from, fresh).await?,
            None => run.resume().await?,
        }
        run.inputs = run.topics[run.p.tables.len()..]
            .iter()
            .flat_map(|(topic, n)| {
                let positions = &run.cp.positions[topic];
                (0..*n).map(move |part| Input {
                    topic: topic.clone(),
                    partition: part,
                    next: positions[part as usize],
                    buffer: VecDeque::new(),
                    more: true,
                })
            })
            .collect();
        run.metrics.set_counts(&run.cp.counts);
        Ok(run)
    }

    /// Loads the checkpoint to resume from: the epoch PostgreSQL names, or
    /// the newest the store holds.
    async fn resume(&mut self) -> Result<(), ProcessorError> {
        let epoch = match &self.sink {
            Some(SinkState::Postgres(pg)) => {
                pg.checkpoint::<PgMark>().await?.map_or(0, |m| m.epoch)
            }
            _ => self.store.epochs()?.last().copied().unwrap_or(0),
        };
        if epoch == 0 {
            return Ok(());
        }
        let Some(cp) = self.store.load::<Checkpoint<A>>(epoch)? else {
            return Err(ProcessorError::StateMissing {
                processor: self.p.name.clone(),
                epoch,
                dir: self.store.dir().to_path_buf(),
            });
        };
        if cp.shape != self.cp.shape {
            return Err(ProcessorError::Config {
                processor: self.p.name.clone(),
                reason: format!(
                    "its checkpoint was written with other windows ({}, now {}); replay to recompute",
                    cp.shape, self.cp.shape
                ),
            });
        }
        for (t, n) in &self.topics {
            if cp.positions.get(t).map(Vec::len) != Some(*n as usize) {
                return Err(ProcessorError::Config {
                    processor: self.p.name.clone(),
                    reason: format!(
                        "its checkpoint does not cover the {n} partitions of {t}: inputs changed since it was written; replay to recompute"
                    ),
                });
            }
        }
        self.cp = cp;
        Ok(())
    }

    /// Resets to recompute from `from_ms`, durably, before reading.
    async fn replay(&mut self, from_ms: i64, fresh: Checkpoint<A>) -> Result<(), ProcessorError> {
        let floor = match self.p.shape {
            Some(Shape::Windows { spec, .. }) => spec
                .windows_of(from_ms)
                .next()
                .map_or(from_ms, |w| w.start_ms),
            _ => from_ms,
        };
        let read_from = floor.saturating_sub(self.p.max_out_of_order_ms);
        let mut positions = BTreeMap::new();
        for (t, n) in &self.topics {
            let mut offsets = Vec::new();
            for part in 0..*n {
                let at = if self.p.tables.contains(t) {
                    ReadFrom::Beginning
                } else {
                    ReadFrom::Time(read_from)
                };
                let b = self
                    .bus
                    .read(t, Partition(part), at, 1)
                    .await
                    .map_err(self.bus_error())?;
                offsets.push(b.events.first().map_or(b.next_offset, |e| e.offset).0);
            }
            positions.insert(t.clone(), offsets);
        }
        // A new epoch past any the sink or the folder holds; the results an
        // embedded sink kept for earlier windows carry over.
        let newest_here = self.store.epochs()?.last().copied().unwrap_or(0);
        let named = match &self.sink {
            Some(SinkState::Postgres(pg)) => {
                pg.checkpoint::<PgMark>().await?.map_or(0, |m| m.epoch)
            }
            _ => 0,
        };
        let kept = match self.store.load::<Kept>(newest_here) {
            Ok(Some(kept)) => kept,
            _ => Kept::default(),
        };
        let mut results = kept.results;
        results.retain(|(_, start, _), _| *start < floor);
        let epoch = newest_here.max(named).saturating_add(1);
        self.cp = Checkpoint {
            epoch,
            positions,
            floor_ms: floor,
            replays: epoch,
            results,
            counts: kept.counts,
            ..fresh
        };
        let state = self.encode()?;
        let (store, epoch) = (self.store.clone(), self.cp.epoch);
        tokio::task::spawn_blocking(move || store.save_bytes(epoch, &state))
            .await
            .map_err(|_| ProcessorError::Stopped(self.p.name.clone()))??;
        if let Some(SinkState::Postgres(pg)) = &mut self.sink {
            let mark = PgMark {
                epoch: self.cp.epoch,
                positions: self.cp.positions.clone(),
            };
            pg.reset_from(floor, &mark).await?;
        }
        Ok(())
    }

    async fn run(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        progress: &watch::Sender<Progress>,
    ) -> Result<(), ProcessorError> {
        loop {
            if *stop.borrow() {
                return self.finish().await;
            }
            let read = self.round().await?;
            self.check_state()?;
            if read > 0 {
                let pending = self.prepare()?;
                self.commit(pending).await?;
                continue;
            }
            self.finish().await?;
            progress.send_modify(|p| p.idle_rounds += 1);
            let wait = tokio::time::sleep(std::time::Duration::from_millis(self.p.idle_poll_ms));
            tokio::select! {
                () = wait => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Reads the tables, then processes input events merged across
    /// partitions by event time — the smallest head first, ties to the
    /// earlier topic and partition — never running ahead of a partition
    /// that may hold more: when one's read-ahead runs dry, it is read
    /// again before anything else is processed. A round ends when every
    /// read-ahead is empty and no partition had more, or after
    /// `batch_max` events per input partition. Returns how many events it
    /// processed.
    async fn round(&mut self) -> Result<usize, ProcessorError> {
        let mut done = 0;
        for t in 0..self.p.tables.len() {
            let (topic, partitions) = self.topics[t].clone();
            for part in 0..partitions as usize {
                // To its end: a join never sees half a table.
                loop {
                    let at = self.cp.positions[&topic][part];
                    let batch = self.read(&topic, part as u32, at).await?;
                    done += batch.events.len();
                    for e in &batch.events {
                        self.table_update(&topic, e)?;
                    }
                    if let Some(pos) = self.cp.positions.get_mut(&topic) {
                        pos[part] = batch.next_offset.0;
                    }
                    if batch.events.is_empty() {
                        break;
                    }
                }
            }
        }
        let cap = self.p.batch_max as usize * self.inputs.len();
        for input in &mut self.inputs {
            // An empty read-ahead is read again each round.
            input.more |= input.buffer.is_empty();
        }
        let mut processed = 0;
        while processed < cap {
            for i in 0..self.inputs.len() {
                let input = &self.inputs[i];
                if input.buffer.is_empty() && input.more {
                    let (topic, part, next) = (input.topic.clone(), input.partition, input.next);
                    let batch = self.read(&topic, part, next).await?;
                    let input = &mut self.inputs[i];
                    // Only an empty read says "nothing more now": a read
                    // can come back short of `batch_max` (a byte cap).
                    input.more = !batch.events.is_empty();
                    input.next = batch.next_offset.0;
                    input.buffer.extend(batch.events);
                }
            }
            let head = self
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(i, input)| Some((event_time(input.buffer.front()?), i)))
                .min();
            let Some((_, i)) = head else {
                break;
            };
            let Some(e) = self.inputs[i].buffer.pop_front() else {
                break;
            };
            let input = &self.inputs[i];
            if let Some(pos) = self.cp.positions.get_mut(&input.topic) {
                pos[input.partition as usize] = e.offset.0 + 1;
            }
            self.process(e);
            processed += 1;
        }
        Ok(done + processed)
    }

    /// Fails once the open windows (or sessions) pass
    /// [`OPEN_WINDOWS_MAX`]: the state is held in memory and written whole
    /// at every checkpoint.
    fn check_state(&self) -> Result<(), ProcessorError> {
        let open = match &self.cp.state {
            OpState::Stateless => 0,
            OpState::Windows(w) => w.open_windows(),
            OpState::Sessions(s) => s.open_sessions(),
        };
        if open > OPEN_WINDOWS_MAX {
            return Err(ProcessorError::StateFull {
                processor: self.p.name.clone(),
                open,
            });
        }
        Ok(())
    }

    /// Reads from `at`; if retention deleted it, from the first event
    /// still held, counting what was skipped (as a subscription does).
    async fn read(
        &mut self,
        topic: &str,
        part: u32,
        at: u64,
    ) -> Result<eddy_bus::ReadBatch, ProcessorError> {
        let (partition, max) = (Partition(part), self.p.batch_max);
        match self
            .bus
            .read(topic, partition, ReadFrom::Offset(Offset(at)), max)
            .await
        {
            Err(BusError::OffsetOutOfRange { first, .. }) if first.0 > at => {
                tracing::warn!(
                    processor = %self.p.name,
                    topic,
                    partition = part,
                    skipped = first.0 - at,
                    "events the processor had not read were deleted by retention; reading on from the first held"
                );
                self.cp.counts.skipped += first.0 - at;
                self.bus
                    .read(topic, partition, ReadFrom::Offset(first), max)
                    .await
                    .map_err(self.bus_error())
            }
            other => other.map_err(self.bus_error()),
        }
    }

    fn table_update(&mut self, topic: &str, e: &StoredEvent) -> Result<(), ProcessorError> {
        let Some(key) = e.event.key.clone() else {
            return Ok(());
        };
        let table = self.cp.tables.entry(topic.to_string()).or_default();
        let value = if e.event.data.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&e.event.data).unwrap_or(Value::Null)
        };
        if value.is_null() {
            table.remove(&key);
        } else {
            if table.len() >= TABLE_KEYS_MAX && !table.contains_key(&key) {
                return Err(ProcessorError::TableFull {
                    processor: self.p.name.clone(),
                    table: topic.to_string(),
                });
            }
            table.insert(key, value);
        }
        Ok(())
    }

    fn process(&mut self, e: StoredEvent) {
        self.cp.counts.events += 1;
        let mut records = vec![Record::of(e)];
        for stage in &self.p.stages {
            records = match stage {
                Stage::Each(f) => records.into_iter().flat_map(f).collect(),
                Stage::Join { table, with } => {
                    let table = self.cp.tables.get(table);
                    records
                        .into_iter()
                        .filter_map(|r| {
                            let row = table.and_then(|t| t.get(&r.key));
                            with(r, row)
                        })
                        .collect()
                }
            };
        }
        if records.len() > 1 {
            for (i, r) in records.iter_mut().enumerate().skip(1) {
                r.id = format!("{}#{i}", r.id);
            }
        }
        for r in records {
            self.aggregate(r);
        }
    }

    fn aggregate(&mut self, r: Record) {
        let Some(agg) = &self.p.agg else {
            self.records_out.push(r);
            return;
        };
        if r.time_ms < self.cp.floor_ms {
            self.cp.counts.before_replay += 1;
            return;
        }
        let on_time = match &mut self.cp.state {
            OpState::Stateless => true,
            OpState::Windows(w) => w.add(&r.key, r.time_ms, |a| (agg.fold)(a, &r)),
            OpState::Sessions(s) => {
                let merge = agg.merge.as_ref();
                s.add(
                    &r.key,
                    r.time_ms,
                    |a| (agg.fold)(a, &r),
                    |into, other| {
                        if let Some(m) = merge {
                            m(into, other);
                        }
                    },
                )
            }
        };
        if on_time {
            self.times.push(r.time_ms);
        } else {
            self.cp.counts.late += 1;
            if self.p.side_topic.is_some() {
                self.late_out.push(r.clone());
            }
        }
        self.cp.stream_time_ms = self.cp.stream_time_ms.max(r.time_ms);
        let watermark = self
            .cp
            .stream_time_ms
            .saturating_sub(self.p.max_out_of_order_ms);
        let closed = match &mut self.cp.state {
            OpState::Stateless => Vec::new(),
            OpState::Windows(w) => w.advance(watermark),
            OpState::Sessions(s) => s.advance(watermark),
        };
        self.closed.extend(closed);
    }

    /// Takes the round's results and a checkpoint of the state as it is
    /// now, ready to be written; processing may go on meanwhile.
    fn prepare(&mut self) -> Result<Pending, ProcessorError> {
        let started = std::time::Instant::now();
        let mut windows = std::mem::take(&mut self.closed);
        if self.p.emit == Emit::OnUpdate && self.kind != SinkKind::Topic {
            if let OpState::Windows(w) = &mut self.cp.state {
                windows.extend(w.take_updates());
            }
        } else if let OpState::Windows(w) = &mut self.cp.state {
            // Nothing reads them; keep the set from growing.
            w.take_updates();
        }
        let floor = self.cp.floor_ms;
        let rows: Vec<ResultRow> = windows
            .into_iter()
            .filter(|c| c.window.start_ms >= floor)
            .map(|c| ResultRow {
                key: c.key,
                window_start_ms: c.window.start_ms,
                window_end_ms: c.window.end_ms,
                value: serde_json::to_value(&c.value).unwrap_or(Value::Null),
            })
            .collect();
        self.cp.counts.results += (rows.len() + self.records_out.len()) as u64;
        let (name, replays) = (&self.p.name, self.cp.replays);
        let late: Vec<Event> = std::mem::take(&mut self.late_out)
            .iter()
            .map(|r| r.to_event(r.derived_id(name, "late")))
            .collect();
        let records = std::mem::take(&mut self.records_out);
        let mut out = Vec::new();
        if self.kind == SinkKind::Topic {
            out.extend(
                records
                    .iter()
                    .map(|r| r.to_event(r.derived_id(name, &replays.to_string()))),
            );
            out.extend(rows.iter().map(|row| {
                let mut e = Event::new(
                    "WindowResult",
                    serde_json::json!({
                        "key": row.key,
                        "window_start": row.window_start_ms,
                        "window_end": row.window_end_ms,
                        "value": row.value,
                    })
                    .to_string(),
                );
                e.id = derived_id(&[
                    name,
                    &replays.to_string(),
                    &row.key,
                    &row.window_start_ms.to_string(),
                    &row.window_end_ms.to_string(),
                ]);
                e.key = Some(row.key.clone());
                e.time_ms = Some(row.window_end_ms);
                e.data_content_type = Some("application/json".into());
                e
            }));
        }
        if self.kind == SinkKind::Embedded {
            for row in &rows {
                self.cp.results.insert(
                    (row.key.clone(), row.window_start_ms, row.window_end_ms),
                    row.value.clone(),
                );
            }
            while self.cp.results.len() > self.p.results_max {
                let oldest = self
                    .cp
                    .results
                    .keys()
                    .min_by_key(|(_, start, end)| (*end, *start))
                    .cloned();
                if let Some(k) = oldest {
                    self.cp.results.remove(&k);
                    self.cp.counts.results_dropped += 1;
                }
            }
        }
        self.cp.epoch = self.cp.epoch.saturating_add(1);
        Ok(Pending {
            epoch: self.cp.epoch,
            state: self.encode()?,
            mark: PgMark {
                epoch: self.cp.epoch,
                positions: self.cp.positions.clone(),
            },
            rows,
            late,
            out,
            times: std::mem::take(&mut self.times),
            counts: self.cp.counts,
            watermark_ms: self
                .cp
                .stream_time_ms
                .saturating_sub(self.p.max_out_of_order_ms),
            started,
        })
    }

    fn encode(&self) -> Result<Vec<u8>, ProcessorError> {
        Ok(
            serde_json::to_vec(&self.cp).map_err(|e| StoreError::Corrupt {
                path: self.store.dir().to_path_buf(),
                reason: e.to_string(),
            })?,
        )
    }

    /// Starts writing `pending` — after the write in flight, if any, has
    /// finished: checkpoints are written one at a time, in order.
    async fn commit(&mut self, pending: Pending) -> Result<(), ProcessorError> {
        self.finish().await?;
        let Some(sink) = self.sink.take() else {
            return Err(ProcessorError::Stopped(self.p.name.clone()));
        };
        let io = CommitIo {
            bus: self.bus.clone(),
            store: self.store.clone(),
            side_topic: self.p.side_topic.clone(),
            name: self.p.name.clone(),
        };
        self.in_flight = Some(tokio::spawn(io.write(sink, pending)));
        Ok(())
    }

    /// Waits for the write in flight, and tells the metrics and the
    /// observer about it.
    async fn finish(&mut self) -> Result<(), ProcessorError> {
        let Some(task) = self.in_flight.take() else {
            return Ok(());
        };
        let (sink, done) = task
            .await
            .map_err(|_| ProcessorError::Stopped(self.p.name.clone()))??;
        self.sink = Some(sink);
        let now = self.p.clock.now_ms();
        if let Some(observe) = &self.p.observer {
            observe(&Checkpointed {
                epoch: done.epoch,
                events_total: done.counts.events,
                event_times_ms: &done.times,
                committed_ms: now,
            });
        }
        for t in &done.times {
            self.metrics.observe_delay(now.saturating_sub(*t));
        }
        self.metrics.set_counts(&done.counts);
        self.metrics
            .watermark_ms
            .store(done.watermark_ms, Ordering::Relaxed);
        self.metrics.commits.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .commit_us
            .fetch_add(done.started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn embedded_results(&self) -> Vec<ResultRow> {
        rows_of(&self.cp.results)
    }
}
