//! What both sides run, written once against two small traits so the
//! Eddy and PostgreSQL rows do exactly the same work: the appenders (each
//! task owns its streams and keeps their last versions), the data set the
//! reads run on, and the aggregate with its snapshots.
//!
//! The aggregate is loaded with raw store calls ([`ReadTarget`]); when the
//! runtime's `Repository` comes, [`load`] is the one function to switch.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Bytes of each event's JSON.
pub(super) const EVENT_BYTES: usize = 256;
/// The event type of every appended event.
pub(super) const EVENT_TYPE: &str = "ItemAdded";
/// The type of a snapshot event.
pub(super) const SNAPSHOT_TYPE: &str = "OrderSnapshot";
/// Events of each read stream.
pub(super) const READ_EVENTS: u64 = 1_000;
/// Most events one read returns.
pub(super) const READ_MAX: u32 = 1_000;
/// In the scattered stream, each of its events is followed by this many
/// appends to other streams.
pub(super) const SCATTER: u64 = 9;
/// A snapshot is written every this many events of the aggregate...
pub(super) const SNAPSHOT_EVERY: u64 = 100;
/// ...when its count of events is this much past a multiple of
/// [`SNAPSHOT_EVERY`], so a load with the latest snapshot folds this many
/// events after it (half the interval: the average).
pub(super) const SNAPSHOT_PHASE: u64 = 50;
/// The stream whose events are scattered among other streams' (also the
/// aggregate).
pub(super) const SCATTERED: &str = "order-scattered";
/// The stream appended to back to back.
pub(super) const CONTIGUOUS: &str = "order-contiguous";

/// The appends' streams are `order-<n>`: of the category `order`, so the
/// store also publishes their events to the bus topic `es.order`.
pub(super) const CATEGORIZED: &str = "order-";
/// `order<n>`: no category, so nothing is published to the bus.
pub(super) const UNCATEGORIZED: &str = "order";

/// Stream `n`'s name: `order-<n>` (or with another prefix).
pub(super) fn stream_name(prefix: &str, n: u64) -> String {
    format!("{prefix}{n}")
}

/// What the appenders do.
#[derive(Debug, Clone, Copy)]
pub(super) struct Appenders {
    /// Concurrent tasks, one append in flight each.
    pub tasks: u64,
    /// Streams `0..streams`, stream `n` belonging to task `n % tasks`.
    pub streams: u64,
    pub run_time: Duration,
    /// The streams' names before their number.
    pub prefix: &'static str,
}

/// The snapshot stream of `stream`.
pub(super) fn snapshot_stream(stream: &str) -> String {
    format!("$snap-{stream}")
}

/// The version the next append to a stream gets, from the stream's last
/// version (`None`: no stream).
pub(super) fn next_version(last: Option<u64>) -> u64 {
    last.map_or(0, |v| v + 1)
}

/// The outcome of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Stored; the stream's new last version.
    Appended(u64),
    /// The stream was not at the expected version.
    Conflict,
}

/// A store the appenders append to: one event per call.
pub(super) trait AppendTarget: Clone + Send + Sync + 'static {
    /// Appends one event of type `ty` with JSON `data` to `stream`, whose
    /// last version must be `last` (`None`: the stream must not exist).
    fn append(
        &self,
        stream: &str,
        last: Option<u64>,
        ty: &'static str,
        data: String,
    ) -> impl Future<Output = Result<Outcome>> + Send;

    /// The stream's last version, after a conflict.
    fn last_version(&self, stream: &str) -> impl Future<Output = Result<Option<u64>>> + Send;
}

/// Part of a stream: its events' versions and JSON data, in order.
#[derive(Debug, Default)]
pub(super) struct Page {
    pub events: Vec<(u64, Bytes)>,
    /// The version the next read starts from; `None` at the end.
    pub next: Option<u64>,
}

/// A store the readers and the aggregate loader read from.
pub(super) trait ReadTarget {
    /// Up to `max` events of `stream` from version `from`, forward.
    fn read_forward(
        &self,
        stream: &str,
        from: u64,
        max: u32,
    ) -> impl Future<Output = Result<Page>> + Send;

    /// The last event of `stream`, if any.
    fn read_last(&self, stream: &str) -> impl Future<Output = Result<Option<(u64, Bytes)>>> + Send;
}

/// The streams of one appender task, `n % tasks == task` out of `total`,
/// and the last version it knows of each (one writer per stream).
#[derive(Debug, Clone)]
pub(super) struct Streams {
    task: u64,
    tasks: u64,
    last: Vec<Option<u64>>,
}

impl Streams {
    pub(super) fn of_task(task: u64, tasks: u64, total: u64) -> Streams {
        assert!(task < tasks, "task {task} of {tasks}");
        let owned = total.saturating_sub(task).div_ceil(tasks);
        Streams {
            task,
            tasks,
            last: vec![None; owned as usize],
        }
    }

    /// How many streams the task owns.
    pub(super) fn len(&self) -> usize {
        self.last.len()
    }

    /// The number (`order-<n>`) of the task's `i`th stream.
    pub(super) fn number(&self, i: usize) -> u64 {
        i as u64 * self.tasks + self.task
    }

    /// The last version of the task's `i`th stream, as far as it knows.
    pub(super) fn last(&self, i: usize) -> Option<u64> {
        self.last[i]
    }

    /// Records the `i`th stream's last version (after an append, or as
    /// read back after a conflict).
    pub(super) fn set(&mut self, i: usize, last: Option<u64>) {
        self.last[i] = last;
    }
}

/// A small deterministic generator (SplitMix64): which stream each
/// append goes to.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (> 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// An `ItemAdded` event as the aggregate folds it (the other fields are
/// the payload's weight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ItemAdded {
    pub order: String,
    pub sku: String,
    pub price_cents: u64,
    pub quantity: u64,
    pub note: String,
}

/// The `n`th event of `order`, as [`EVENT_BYTES`] of JSON (the note, its
/// last field, pads it).
pub(super) fn item_json(order: &str, n: u64) -> String {
    let item = ItemAdded {
        order: order.to_string(),
        sku: format!("sku-{:05}", n % 100_000),
        price_cents: 100 + n % 9_900,
        quantity: 1 + n % 5,
        note: String::new(),
    };
    let mut json = serde_json::to_string(&item).unwrap_or_default();
    // `…,"note":""}`: the padding goes between the quotes.
    let pad = EVENT_BYTES.saturating_sub(json.len());
    json.insert_str(json.len() - 2, &"x".repeat(pad));
    json
}

/// The aggregate: an order's item count and total, folded from its
/// `ItemAdded` events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Order {
    pub items: u64,
    pub total_cents: u64,
}

/// The fields of `ItemAdded` the fold needs.
#[derive(Deserialize)]
struct Priced {
    price_cents: u64,
    quantity: u64,
}

impl Order {
    /// Folds one `ItemAdded` event's JSON.
    pub(super) fn apply(&mut self, data: &[u8]) -> Result<()> {
        let item: Priced = serde_json::from_slice(data).context("decode an ItemAdded event")?;
        self.items += item.quantity;
        self.total_cents += item.price_cents * item.quantity;
        Ok(())
    }
}

/// A snapshot event's JSON: the state after the event at `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub version: u64,
    pub state: Order,
}

/// An aggregate as loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loaded {
    pub state: Order,
    /// The version of its last event.
    pub version: Option<u64>,
    /// Events folded (after the snapshot, if one was used).
    pub folded: u64,
}

/// Loads the aggregate of `stream`: from its latest snapshot (one
/// backward read of its snapshot stream) if `snapshot`, then every event
/// after that, folded.
pub(super) async fn load<R: ReadTarget>(store: &R, stream: &str, snapshot: bool) -> Result<Loaded> {
    let mut loaded = Loaded {
        state: Order::default(),
        version: None,
        folded: 0,
    };
    let mut from = 0;
    if snapshot && let Some((_, data)) = store.read_last(&snapshot_stream(stream)).await? {
        let snap: Snapshot = serde_json::from_slice(&data).context("decode a snapshot")?;
        loaded.state = snap.state;
        loaded.version = Some(snap.version);
        from = snap.version + 1;
    }
    loop {
        let page = store.read_forward(stream, from, READ_MAX).await?;
        for (version, data) in &page.events {
            loaded.state.apply(data)?;
            loaded.version = Some(*version);
            loaded.folded += 1;
        }
        match page.next {
            Some(next) => from = next,
            None => return Ok(loaded),
        }
    }
}

/// One append of the read data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SetupAppend {
    pub stream: String,
    pub last: Option<u64>,
    pub ty: &'static str,
    pub data: String,
}

/// The data set the reads run on, in append order, and the aggregate's
/// final state: [`READ_EVENTS`] single-event appends to [`SCATTERED`],
/// each followed by [`SCATTER`] appends to other streams (so its events
/// are 1 in 10 of the log); its snapshot every [`SNAPSHOT_EVERY`] events;
/// then [`READ_EVENTS`] single-event appends to [`CONTIGUOUS`], back to
/// back.
pub(super) fn read_setup() -> (Vec<SetupAppend>, Order) {
    let mut appends = Vec::new();
    let mut state = Order::default();
    let mut other = 0;
    let mut snapshots: Option<u64> = None;
    for v in 0..READ_EVENTS {
        let data = item_json(SCATTERED, v);
        state
            .apply(data.as_bytes())
            .expect("the generated JSON decodes");
        appends.push(SetupAppend {
            stream: SCATTERED.into(),
            last: v.checked_sub(1),
            ty: EVENT_TYPE,
            data,
        });
        if (v + 1) % SNAPSHOT_EVERY == SNAPSHOT_PHASE {
            let snap = Snapshot { version: v, state };
            appends.push(SetupAppend {
                stream: snapshot_stream(SCATTERED),
                last: snapshots,
                ty: SNAPSHOT_TYPE,
                data: serde_json::to_string(&snap).expect("a snapshot encodes"),
            });
            snapshots = Some(next_version(snapshots));
        }
        for _ in 0..SCATTER {
            let stream = stream_name(CATEGORIZED, other);
            appends.push(SetupAppend {
                data: item_json(&stream, other),
                stream,
                last: None,
                ty: EVENT_TYPE,
            });
            other += 1;
        }
    }
    for v in 0..READ_EVENTS {
        appends.push(SetupAppend {
            stream: CONTIGUOUS.into(),
            last: v.checked_sub(1),
            ty: EVENT_TYPE,
            data: item_json(CONTIGUOUS, v),
        });
    }
    (appends, state)
}

/// Writes the read data set to `target`, checking every append lands at
/// the version planned.
pub(super) async fn write_setup<T: AppendTarget>(
    target: &T,
    appends: Vec<SetupAppend>,
) -> Result<()> {
    for a in appends {
        let want = next_version(a.last);
        match target.append(&a.stream, a.last, a.ty, a.data).await? {
            Outcome::Appended(v) if v == want => {}
            got => bail!("setting up {}: version {want} planned, {got:?}", a.stream),
        }
    }
    Ok(())
}

/// What one timed run measured.
#[derive(Debug, Clone, Default)]
pub(super) struct Measured {
    /// Operations completed (appends stored, reads, loads).
    pub ops: u64,
    pub elapsed: Duration,
    /// Each completed operation's time, shortest first.
    pub latencies: Vec<Duration>,
    /// Appends refused for a wrong expected version.
    pub conflicts: u64,
    /// Flushes the disk completed during the run, if known.
    pub flushes: Option<u64>,
    /// CPU time the run used (appends: this process, and the server's
    /// processes), if known.
    pub cpu: Option<Duration>,
}

impl Measured {
    /// Operations per second.
    pub(super) fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `tasks` appenders for `run_time`, each appending one event at a time
/// to a stream chosen at random among its own (stream `n` belongs to task
/// `n % tasks`), expecting the last version it knows.
pub(super) async fn run_appends<T: AppendTarget>(target: T, plan: Appenders) -> Result<Measured> {
    let Appenders {
        tasks,
        streams,
        run_time,
        prefix,
    } = plan;
    let start = Instant::now();
    let deadline = start + run_time;
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let target = target.clone();
        set.spawn(async move {
            let mut own = Streams::of_task(task, tasks, streams);
            let mut rng = Rng::new(task + 1);
            let mut done = Measured::default();
            if own.len() == 0 {
                return Ok(done);
            }
            let mut n = 0;
            while Instant::now() < deadline {
                let i = rng.below(own.len());
                let stream = stream_name(prefix, own.number(i));
                let data = item_json(&stream, n);
                n += 1;
                let t0 = Instant::now();
                match target
                    .append(&stream, own.last(i), EVENT_TYPE, data)
                    .await?
                {
                    Outcome::Appended(last) => {
                        done.latencies.push(t0.elapsed());
                        done.ops += 1;
                        own.set(i, Some(last));
                    }
                    Outcome::Conflict => {
                        done.conflicts += 1;
                        own.set(i, target.last_version(&stream).await?);
                    }
                }
            }
            anyhow::Ok(done)
        });
    }
    let mut all = Measured::default();
    while let Some(done) = set.join_next().await {
        let done = done.context("an appender task failed")??;
        all.ops += done.ops;
        all.conflicts += done.conflicts;
        all.latencies.extend(done.latencies);
    }
    all.elapsed = start.elapsed();
    all.latencies.sort_unstable();
    Ok(all)
}

/// The reads and loads measured on the read data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadWorkload {
    Scattered,
    Contiguous,
    LoadFull,
    LoadSnapshot,
}

/// One reader doing `what` one at a time for `run_time`; each result is
/// checked against the data set (`expected`: the aggregate's state).
pub(super) async fn run_reads<R: ReadTarget>(
    store: &R,
    what: ReadWorkload,
    expected: Order,
    run_time: Duration,
) -> Result<Measured> {
    let start = Instant::now();
    let mut done = Measured::default();
    while done.ops == 0 || start.elapsed() < run_time {
        let t0 = Instant::now();
        match what {
            ReadWorkload::Scattered | ReadWorkload::Contiguous => {
                let stream = if what == ReadWorkload::Scattered {
                    SCATTERED
                } else {
                    CONTIGUOUS
                };
                let page = store.read_forward(stream, 0, READ_MAX).await?;
                if page.events.len() as u64 != READ_EVENTS || page.next.is_some() {
                    bail!(
                        "reading {stream} returned {} events (next {:?}), not {READ_EVENTS}",
                        page.events.len(),
                        page.next
                    );
                }
            }
            ReadWorkload::LoadFull | ReadWorkload::LoadSnapshot => {
                let snapshot = what == ReadWorkload::LoadSnapshot;
                let loaded = load(store, SCATTERED, snapshot).await?;
                let folded = if snapshot {
                    SNAPSHOT_PHASE
                } else {
                    READ_EVENTS
                };
                if loaded.state != expected
                    || loaded.version != Some(READ_EVENTS - 1)
                    || loaded.folded != folded
                {
                    bail!(
                        "the aggregate loaded as {loaded:?}, not {expected:?} after {folded} events"
                    );
                }
            }
        }
        done.latencies.push(t0.elapsed());
        done.ops += 1;
    }
    done.elapsed = start.elapsed();
    done.latencies.sort_unstable();
    Ok(done)
}

/// Every read workload in turn on `store`.
pub(super) async fn run_all_reads<R: ReadTarget>(
    store: &R,
    expected: Order,
    run_time: Duration,
) -> Result<Vec<(ReadWorkload, Measured)>> {
    let mut out = Vec::new();
    for what in [
        ReadWorkload::Scattered,
        ReadWorkload::Contiguous,
        ReadWorkload::LoadFull,
        ReadWorkload::LoadSnapshot,
    ] {
        let measured = run_reads(store, what, expected, run_time)
            .await
            .with_context(|| format!("{what:?}"))?;
        out.push((what, measured));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn every_stream_has_one_task_and_versions_follow_appends() {
        // Proves the partition: each of the streams belongs to exactly one
        // task, and a task's bookkeeping gives NoStream first, then each
        // append's version.
        let (tasks, total) = (7, 100);
        let mut owner = vec![None; total as usize];
        for task in 0..tasks {
            let s = Streams::of_task(task, tasks, total);
            for i in 0..s.len() {
                let n = s.number(i);
                assert_eq!(n % tasks, task);
                assert_eq!(owner[n as usize].replace(task), None, "stream {n} twice");
            }
        }
        assert!(owner.iter().all(Option::is_some));
        assert_eq!(Streams::of_task(3, 64, 2).len(), 0);

        let mut s = Streams::of_task(1, 4, 10);
        assert_eq!((s.len(), s.number(2)), (3, 9));
        assert_eq!(s.last(2), None);
        assert_eq!(next_version(s.last(2)), 0);
        s.set(2, Some(0));
        assert_eq!(next_version(s.last(2)), 1);
    }

    #[test]
    fn events_are_256_bytes_and_the_order_folds_them() {
        let json = item_json("order-99999", 123_456);
        assert_eq!(json.len(), EVENT_BYTES);
        let item: ItemAdded = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (item.price_cents, item.quantity),
            (100 + 123_456 % 9_900, 2)
        );
        let mut order = Order::default();
        order.apply(json.as_bytes()).unwrap();
        order.apply(json.as_bytes()).unwrap();
        assert_eq!(
            order,
            Order {
                items: 4,
                total_cents: 4 * item.price_cents
            }
        );
        assert!(order.apply(b"{}").is_err());
    }

    /// A store in memory, for the workloads' bookkeeping.
    #[derive(Clone, Default)]
    struct Memory {
        streams: Arc<Mutex<HashMap<String, Vec<Bytes>>>>,
        /// Stream whose next append is taken by "someone else" first.
        steal: Arc<Mutex<Option<String>>>,
    }

    impl AppendTarget for Memory {
        async fn append(
            &self,
            stream: &str,
            last: Option<u64>,
            _ty: &'static str,
            data: String,
        ) -> Result<Outcome> {
            // As a real store would, let the other appenders run.
            tokio::task::yield_now().await;
            let mut streams = self.streams.lock().unwrap();
            let events = streams.entry(stream.to_string()).or_default();
            if self
                .steal
                .lock()
                .unwrap()
                .take_if(|s| s == stream)
                .is_some()
            {
                events.push(Bytes::from(data.clone()));
            }
            if (events.len() as u64).checked_sub(1) != last {
                return Ok(Outcome::Conflict);
            }
            events.push(Bytes::from(data));
            Ok(Outcome::Appended(events.len() as u64 - 1))
        }

        async fn last_version(&self, stream: &str) -> Result<Option<u64>> {
            let streams = self.streams.lock().unwrap();
            Ok(streams
                .get(stream)
                .and_then(|e| (e.len() as u64).checked_sub(1)))
        }
    }

    impl ReadTarget for Memory {
        async fn read_forward(&self, stream: &str, from: u64, max: u32) -> Result<Page> {
            let streams = self.streams.lock().unwrap();
            let all = streams.get(stream).cloned().unwrap_or_default();
            let events: Vec<(u64, Bytes)> = all
                .into_iter()
                .enumerate()
                .map(|(v, d)| (v as u64, d))
                .skip(from as usize)
                .take(max as usize + 1)
                .collect();
            let mut page = Page { events, next: None };
            if page.events.len() > max as usize {
                page.next = page.events.pop().map(|(v, _)| v);
            }
            Ok(page)
        }

        async fn read_last(&self, stream: &str) -> Result<Option<(u64, Bytes)>> {
            let streams = self.streams.lock().unwrap();
            Ok(streams
                .get(stream)
                .and_then(|e| e.last().map(|d| (e.len() as u64 - 1, d.clone()))))
        }
    }

    #[tokio::test]
    async fn the_read_set_loads_the_same_with_and_without_its_snapshot() {
        let (appends, expected) = read_setup();
        let per_stream: BTreeMap<&str, usize> = appends.iter().fold(BTreeMap::new(), |mut m, a| {
            *m.entry(a.stream.as_str()).or_default() += 1;
            m
        });
        assert_eq!(per_stream[SCATTERED], READ_EVENTS as usize);
        assert_eq!(per_stream[CONTIGUOUS], READ_EVENTS as usize);
        assert_eq!(
            per_stream[snapshot_stream(SCATTERED).as_str()],
            (READ_EVENTS / SNAPSHOT_EVERY) as usize
        );
        // The scattered stream's events are 1 in 10 of the appends (plus
        // the snapshots).
        let first_two: Vec<usize> = appends
            .iter()
            .enumerate()
            .filter(|(_, a)| a.stream == SCATTERED)
            .map(|(i, _)| i)
            .take(2)
            .collect();
        assert_eq!(first_two, [0, 1 + SCATTER as usize]);

        let store = Memory::default();
        write_setup(&store, appends).await.unwrap();
        let full = load(&store, SCATTERED, false).await.unwrap();
        let snap = load(&store, SCATTERED, true).await.unwrap();
        assert_eq!((full.state, full.folded), (expected, READ_EVENTS));
        assert_eq!((snap.state, snap.folded), (expected, SNAPSHOT_PHASE));
        assert_eq!(snap.version, Some(READ_EVENTS - 1));
        for what in [
            ReadWorkload::Scattered,
            ReadWorkload::Contiguous,
            ReadWorkload::LoadFull,
            ReadWorkload::LoadSnapshot,
        ] {
            let m = run_reads(&store, what, expected, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(m.ops, 1, "{what:?}");
        }
    }

    #[tokio::test]
    async fn appenders_count_conflicts_and_recover_the_version() {
        let store = Memory::default();
        *store.steal.lock().unwrap() = Some(stream_name(CATEGORIZED, 3));
        let plan = Appenders {
            tasks: 2,
            streams: 4,
            run_time: Duration::from_millis(20),
            prefix: CATEGORIZED,
        };
        let done = run_appends(store.clone(), plan).await.unwrap();
        assert_eq!(done.conflicts, 1);
        assert_eq!(done.latencies.len() as u64, done.ops);
        let stored: usize = store.streams.lock().unwrap().values().map(Vec::len).sum();
        assert_eq!(stored as u64, done.ops + 1);
    }
}
