//! The log: a directory of segments, one of them active. Appends, group
//! commit, reads, time lookups, rolling, retention and recovery on open.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use crate::Offset;
use crate::clock::{Clock, SystemClock};
use crate::config::{FsyncPolicy, LogConfig};
use crate::error::{IoContext, LogError, Result};
use crate::flusher;
use crate::format::{Batch, LimitError, Limits, Record, SEGMENT_HEADER_BYTES, encode_batch};
use crate::report::{RecoveryReport, RetentionReport, SegmentInfo};
use crate::segment::{
    NO_TIMESTAMP, Segment, Window, corrupt, parse_segment_name, remove_index_files, segment_path,
};
use crate::spare::SpareMaker;

/// Log directories on which an fsync failed in this process; see
/// `Shared::note_fsync_failure`.
static FSYNC_FAILED_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The largest offset a log hands out (2^62): far beyond any real log, and
/// low enough that offset arithmetic on data read from disk cannot overflow.
pub(crate) const OFFSET_MAX: u64 = 1 << 62;

/// Largest read window; a read of more bytes reads in several windows.
const READ_WINDOW_BYTES_MAX: usize = 16 * 1024 * 1024;
const READ_WINDOW_BYTES_MIN: usize = 64 * 1024;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Offset of the last record.
    pub last_offset: Offset,
    /// The append time stamped on every record of the batch.
    pub timestamp_ms: i64,
}

/// Counters since the log was opened, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches appended.
    pub batches_appended: u64,
    /// Records appended.
    pub records_appended: u64,
    /// Bytes written to segment files by appends (framing included).
    pub bytes_appended: u64,
    /// Group-commit, interval, `sync` and `close` fsyncs of the active
    /// segment that completed. Under `always` with concurrent appenders,
    /// `batches_appended / fsyncs` is the batches one fsync covered.
    pub fsyncs: u64,
    /// Segments rolled to.
    pub rolls: u64,
    /// Of those, segments that began as a pre-written spare.
    pub rolls_prewritten: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    fsyncs: AtomicU64,
    rolls: AtomicU64,
    rolls_prewritten: AtomicU64,
}

/// A durable, segmented, append-only log in one directory.
///
/// All methods take `&self`; share a `Log` between threads with `Arc` (or
/// scoped threads). Concurrent appends under [`FsyncPolicy::Always`] share
/// fsyncs.
#[derive(Debug)]
pub struct Log {
    shared: Arc<Shared>,
    spare_maker: Option<JoinHandle<()>>,
    /// The directory lock, if taken; held by the `Log` (not `Shared`, which
    /// the fsync thread may keep a moment longer) so that closing releases
    /// it at once.
    _dir_lock: Option<File>,
    recovery: RecoveryReport,
    /// `close` ran (and fsynced); drop has nothing left to do.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Records below this offset may be read: written (and under `always`, fsynced).
    visible_next: AtomicU64,
    poison: Mutex<Option<String>>,
    /// Keeps a pre-written spare segment ready (see `spare.rs`); only
    /// under `always` with `preallocate_segments`.
    spare: Option<Arc<SpareMaker>>,
    /// Held around every fsync of segment data and the poisoning that
    /// follows a failure. Linux reports a write-back error to one fsync
    /// only; serializing them means no fsync can succeed (and acknowledge
    /// appends) after another one failed on the same data, unseen.
    fsync_lock: Mutex<()>,
    /// `State::dir_changes` covered by the last directory fsync.
    dir_synced: AtomicU64,
    counters: Counters,
}

#[derive(Debug)]
struct State {
    /// Sorted by base offset; never empty; the last one is active.
    segments: Vec<Arc<Segment>>,
    /// Offset the next record gets (everything below is written to the file).
    next_offset: u64,
    /// Timestamp of the last record; append times never go below it.
    last_ts: i64,
    /// Under `never`: sealed segments not fsynced since they were sealed,
    /// for `sync` and `close`.
    unsynced_sealed: Vec<Arc<Segment>>,
    /// Under `never`: counts directory changes (new segment files) that
    /// may not be durable; `Shared::dir_synced` is the count last fsynced.
    dir_changes: u64,
}

impl State {
    fn active(&self) -> &Arc<Segment> {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }
}

#[derive(Debug)]
struct SyncState {
    /// Every record below this offset is on stable storage.
    durable_next: u64,
    /// An appender is running an fsync on behalf of the others.
    leader: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves plain data behind; carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, using the system clock.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Log::open_with_clock(dir, config, Arc::new(SystemClock))
    }

    /// Opens (creating if needed) the log in `dir`, reading time from `clock`.
    ///
    /// Recovery happens here: a torn or corrupt tail is cut off, damaged
    /// indexes are rebuilt, and what was done is in [`Log::recovery`].
    pub fn open_with_clock(
        dir: impl AsRef<Path>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).ctx(|| format!("create log directory {}", dir.display()))?;
            // The new directory's own entry must survive power loss too
            // (under `never`, nothing is promised, so nothing is fsynced).
            if config.fsync != FsyncPolicy::Never {
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
                sync_dir(parent.unwrap_or(Path::new(".")))?;
            }
        }
        let canonical = fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if lock(&FSYNC_FAILED_DIRS).contains(&canonical) {
            return Err(LogError::Poisoned {
                cause: format!(
                    "an fsync failed on {} earlier in this process, so its page cache may hold \
                     data that is not on disk; open it from a new process",
                    dir.display()
                ),
            });
        }
        let dir_lock = if config.lock_dir {
            Some(lock_dir(&dir)?)
        } else {
            None
        };

        let (segments, recovery) = recover_segments(&dir, &config)?;
        // Always made, to remove a spare left by a crash; kept only if used.
        let spare = Arc::new(
            SpareMaker::new(&dir, config.segment_bytes_max)
                .ctx(|| format!("remove the old spare segment in {}", dir.display()))?,
        );
        let spare =
            (config.preallocate_segments && config.fsync == FsyncPolicy::Always).then_some(spare);
        // What recovery kept may never have been fsynced (a crash before the
        // group commit, or an earlier run under `never`). Make it durable
        // before it counts as such: readers under `always` see it at once.
        if config.fsync != FsyncPolicy::Never {
            for seg in &segments {
                seg.file
                    .sync_data()
                    .ctx(|| format!("fsync {}", seg.path.display()))?;
            }
            sync_dir(&dir)?;
        }
        let active = segments.last().expect("recovery leaves a segment");
        let next_offset = active.next_offset();
        let last_ts = segments
            .iter()
            .rev()
            .map(|s| s.last_ts())
            .find(|&t| t != NO_TIMESTAMP)
            .unwrap_or(NO_TIMESTAMP);
        let shared = Arc::new(Shared {
            dir,
            clock,
            state: Mutex::new(State {
                segments,
                next_offset,
                last_ts,
                unsynced_sealed: Vec::new(),
                dir_changes: 0,
            }),
            sync: Mutex::new(SyncState {
                durable_next: next_offset,
                leader: false,
            }),
            synced: Condvar::new(),
            visible_next: AtomicU64::new(next_offset),
            poison: Mutex::new(None),
            spare: spare.clone(),
            fsync_lock: Mutex::new(()),
            dir_synced: AtomicU64::new(0),
            counters: Counters::default(),
            config,
        });
        if let Some(period) = shared.config.fsync_interval() {
            let weak: Weak<Shared> = Arc::downgrade(&shared);
            flusher::register(weak, period).ctx(|| "start the interval fsync thread".into())?;
        }
        let spare_maker = match spare {
            Some(spare) => Some(
                std::thread::Builder::new()
                    .name("eddy-log-spare".into())
                    .spawn(move || spare.run())
                    .ctx(|| "spawn the spare segment thread".into())?,
            ),
            None => None,
        };
        Ok(Log {
            shared,
            spare_maker,
            _dir_lock: dir_lock,
            recovery,
            closed: false,
        })
    }

    /// What opening the log found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    /// Appends one record; see [`Log::append_batch`].
    pub fn append(&self, record: Record) -> Result<AppendReceipt> {
        self.append_batch(std::slice::from_ref(&record))
    }

    /// Appends records as one batch with consecutive offsets and one append
    /// time. Returns once the batch is durable per the [`FsyncPolicy`].
    pub fn append_batch(&self, records: &[Record]) -> Result<AppendReceipt> {
        let receipt = self.write_batch(records)?;
        self.wait_durable(Offset(receipt.last_offset.0 + 1))?;
        Ok(receipt)
    }

    /// Writes records as one batch, like [`Log::append_batch`], but returns
    /// as soon as the batch is in the file, before any fsync. Under
    /// `always` the batch is neither durable nor readable until an fsync
    /// covers it: call [`Log::wait_durable`] before acknowledging it. This
    /// lets a caller write under its own lock and wait for the group commit
    /// outside it, or write records whose durability may lag (they become
    /// durable with the next fsync of anything later).
    pub fn write_batch(&self, records: &[Record]) -> Result<AppendReceipt> {
        let s = &*self.shared;
        let cfg = &s.config;
        let limits = Limits {
            record_bytes_max: cfg.record_bytes_max,
            batch_bytes_max: cfg.batch_bytes_max,
        };
        let mut batch = encode_batch(records, limits).map_err(|e| match e {
            LimitError::Empty => LogError::EmptyBatch,
            LimitError::Record { actual } => LogError::LimitExceeded {
                what: "record",
                setting: "record_bytes_max",
                limit: u64::from(cfg.record_bytes_max),
                actual,
            },
            LimitError::Batch { actual } => LogError::LimitExceeded {
                what: "batch",
                setting: "batch_bytes_max",
                limit: u64::from(cfg.batch_bytes_max),
                actual,
            },
        })?;
        let len = batch.as_bytes().len() as u64;
        let count = u64::from(batch.record_count);
        let room = cfg.segment_bytes_max - SEGMENT_HEADER_BYTES as u64;
        if len > room {
            return Err(LogError::LimitExceeded {
                what: "batch",
                setting: "segment_bytes_max",
                limit: cfg.segment_bytes_max,
                actual: len + SEGMENT_HEADER_BYTES as u64,
            });
        }

        let receipt = {
            let mut st = lock(&s.state);
            s.check_poison()?;
            let ts = s.clock.now_ms().max(st.last_ts);
            if s.roll_due(&st, len, count, ts) {
                s.roll(&mut st)?;
            }
            let base = st.next_offset;
            if base + count > OFFSET_MAX {
                return Err(LogError::LimitExceeded {
                    what: "offset",
                    setting: "the largest offset (2^62)",
                    limit: OFFSET_MAX,
                    actual: base + count,
                });
            }
            batch.seal(base, ts);
            let active = Arc::clone(st.active());
            if let Err(e) = active.file.write_all_at(batch.as_bytes(), active.len()) {
                // Part of the batch may be in the file; a later write would
                // land after unknown bytes. Refuse to go on.
                let err = LogError::io(format!("write to {}", active.path.display()), e);
                s.set_poison(&err);
                return Err(err);
            }
            active.note_append(len, base + count, base, ts, cfg.index_interval_bytes);
            if let Some(spare) = &s.spare
                && active.len() * 2 >= cfg.segment_bytes_max
            {
                spare.request();
            }
            st.next_offset = base + count;
            st.last_ts = ts;
            s.counters.batches.fetch_add(1, Ordering::Relaxed);
            s.counters.records.fetch_add(count, Ordering::Relaxed);
            s.counters.bytes.fetch_add(len, Ordering::Relaxed);
            if cfg.fsync != FsyncPolicy::Always {
                s.visible_next.store(st.next_offset, Ordering::Release);
            }
            AppendReceipt {
                base_offset: Offset(base),
                last_offset: Offset(base + count - 1),
                timestamp_ms: ts,
            }
        };
        Ok(receipt)
    }

    /// Returns once every record below `next` is durable per the policy:
    /// under `always`, after an fsync that covers it (joining or leading a
    /// group commit); under `interval` and `never`, at once.
    pub fn wait_durable(&self, next: Offset) -> Result<()> {
        if self.shared.config.fsync == FsyncPolicy::Always {
            self.shared.wait_durable(next.0)?;
        }
        Ok(())
    }

    /// Whether every record below `next` is durable per the policy (always
    /// under `interval` and `never`), without waiting: for a caller that
    /// waits its own way and calls [`Log::wait_durable`] on a thread of its
    /// choosing to lead the group commit. An error once an fsync failed.
    pub fn is_durable(&self, next: Offset) -> Result<bool> {
        let s = &*self.shared;
        if s.config.fsync != FsyncPolicy::Always || lock(&s.sync).durable_next >= next.0 {
            return Ok(true);
        }
        s.check_poison()?;
        Ok(false)
    }

    /// Forces everything appended so far to stable storage, whatever the policy.
    pub fn sync(&self) -> Result<()> {
        let s = &*self.shared;
        s.check_poison()?;
        s.fsync_active().map(|_| ())
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> LogStats {
        let c = &self.shared.counters;
        LogStats {
            batches_appended: c.batches.load(Ordering::Relaxed),
            records_appended: c.records.load(Ordering::Relaxed),
            bytes_appended: c.bytes.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            rolls: c.rolls.load(Ordering::Relaxed),
            rolls_prewritten: c.rolls_prewritten.load(Ordering::Relaxed),
        }
    }

    /// The first offset still held (equal to [`Log::next_offset`] when empty).
    pub fn first_offset(&self) -> Offset {
        let st = lock(&self.shared.state);
        Offset(st.segments[0].base)
    }

    /// The offset after the last readable record: the offset the next append
    /// gets, once appends in flight complete.
    pub fn next_offset(&self) -> Offset {
        Offset(self.shared.visible_next.load(Ordering::Acquire))
    }

    /// The offset the next append gets: every record below it is in the
    /// file, though under `always` not all of them may be durable (and
    /// readable) yet.
    pub fn next_offset_written(&self) -> Offset {
        Offset(lock(&self.shared.state).next_offset)
    }

    /// The last readable offset, if the log holds any record.
    pub fn last_offset(&self) -> Option<Offset> {
        let (first, next) = (self.first_offset(), self.next_offset());
        (next > first).then(|| Offset(next.0 - 1))
    }

    /// Reads whole batches starting with the one that holds `from`, until
    /// about `max_bytes` are read (at least one batch is returned if any
    /// record at or after `from` is readable). The first batch may start
    /// before `from`; skip its earlier records. Every batch is checked
    /// (CRC and framing) before it is returned.
    pub fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Batch>> {
        let s = &*self.shared;
        let visible = s.visible_next.load(Ordering::Acquire);
        if from.0 > visible {
            return Err(LogError::OffsetPastEnd {
                requested: from,
                next: Offset(visible),
            });
        }
        let mut out = Vec::new();
        let mut read_bytes = 0usize;
        let mut cur = from.0;
        let window_bytes = max_bytes.clamp(READ_WINDOW_BYTES_MIN, READ_WINDOW_BYTES_MAX);
        while cur < visible && (out.is_empty() || read_bytes < max_bytes) {
            let seg = s.segment_for(cur)?;
            let end = seg.len();
            let mut pos = seg.position_for_offset(cur);
            let mut window = Window::default();
            let before = cur;
            while pos < end && cur < visible && (out.is_empty() || read_bytes < max_bytes) {
                let batch = window
                    .batch_at(&seg.file, &seg.path, pos, end, window_bytes)?
                    .map_err(|d| corrupt(&seg.path, pos, d))?;
                let h = *batch.header();
                pos += h.total_bytes() as u64;
                if h.next_offset() <= cur {
                    continue; // before `from`, reached through the sparse index
                }
                if h.base_offset > cur {
                    return Err(LogError::Corrupt {
                        path: seg.path.clone(),
                        position: pos - h.total_bytes() as u64,
                        reason: format!("offset gap: expected {cur}, found {}", h.base_offset),
                    });
                }
                if h.base_offset >= visible {
                    break;
                }
                cur = h.next_offset();
                read_bytes += h.total_bytes();
                out.push(batch);
            }
            if cur == before {
                break; // nothing more is readable yet
            }
        }
        Ok(out)
    }

    /// The offset of the first record stamped at or after `timestamp_ms`,
    /// or `None` if every readable record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<Offset>> {
        let s = &*self.shared;
        let visible = s.visible_next.load(Ordering::Acquire);
        let segments: Vec<Arc<Segment>> = lock(&s.state).segments.clone();
        for seg in segments {
            if seg.is_empty() || seg.last_ts() < timestamp_ms || seg.base >= visible {
                continue;
            }
            let end = seg.len();
            let mut pos = seg.position_for_time(timestamp_ms);
            let mut window = Window::default();
            while pos < end {
                let batch = window
                    .batch_at(&seg.file, &seg.path, pos, end, READ_WINDOW_BYTES_MIN)?
                    .map_err(|d| corrupt(&seg.path, pos, d))?;
                let h = *batch.header();
                if h.base_offset >= visible {
                    return Ok(None);
                }
                if h.last_timestamp_ms >= timestamp_ms {
                    let hit = batch.records().find(|r| r.timestamp_ms >= timestamp_ms);
                    return Ok(hit.map(|r| r.offset).filter(|o| o.0 < visible));
                }
                pos += h.total_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let st = lock(&self.shared.state);
        let n = st.segments.len();
        st.segments
            .iter()
            .enumerate()
            .map(|(i, seg)| {
                let ts = |t: i64| (t != NO_TIMESTAMP).then_some(t);
                SegmentInfo {
                    base_offset: Offset(seg.base),
                    next_offset: Offset(seg.next_offset()),
                    size_bytes: seg.len(),
                    first_timestamp_ms: ts(seg.first_ts()),
                    last_timestamp_ms: ts(seg.last_ts()),
                    active: i + 1 == n,
                }
            })
            .collect()
    }

    /// Deletes whole segments from the head as the retention policy says,
    /// using the injected clock for age. The active segment is rolled and
    /// deleted only when all of it is older than `age_max_ms`.
    pub fn apply_retention(&self) -> Result<RetentionReport> {
        let s = &*self.shared;
        let policy = s.config.retention;
        let mut report = RetentionReport::default();
        let mut detached = Vec::new();
        let mut st = lock(&s.state);
        let now = s.clock.now_ms();
        let expired = |seg: &Segment| {
            policy.age_max_ms.is_some_and(|age| {
                !seg.is_empty()
                    && seg
                        .last_ts()
                        .saturating_add(i64::try_from(age).unwrap_or(i64::MAX))
                        <= now
            })
        };
        loop {
            if st.segments.len() == 1 {
                if expired(st.active()) {
                    s.check_poison()?;
                    s.roll(&mut st)?;
                    continue;
                }
                break;
            }
            let head = Arc::clone(&st.segments[0]);
            let total_bytes: u64 = st.segments.iter().map(|seg| seg.len()).sum();
            let total_records = st.next_offset - head.base;
            let over_bytes = policy.bytes_max.is_some_and(|max| total_bytes > max);
            let over_records = policy.records_max.is_some_and(|max| total_records > max);
            if !(expired(&head) || over_bytes || over_records) {
                break;
            }
            detached.push(detach_head(&mut st, &mut report));
        }
        report.first_offset = Offset(st.segments[0].base);
        drop(st);
        s.delete_detached(&detached)?;
        Ok(report)
    }

    /// Deletes the oldest sealed segments whose records all lie below
    /// `offset`: for a caller that knows it no longer needs them (a journal
    /// compacted into a snapshot). The active segment is never deleted.
    pub fn delete_before(&self, offset: Offset) -> Result<RetentionReport> {
        let s = &*self.shared;
        let mut report = RetentionReport::default();
        let mut detached = Vec::new();
        let mut st = lock(&s.state);
        while st.segments.len() > 1 && st.segments[0].next_offset() <= offset.0 {
            detached.push(detach_head(&mut st, &mut report));
        }
        report.first_offset = Offset(st.segments[0].base);
        drop(st);
        s.delete_detached(&detached)?;
        Ok(report)
    }

    /// Closes the log: stops the spare segment thread and fsyncs what was
    /// appended.
    pub fn close(mut self) -> Result<()> {
        self.stop_threads();
        self.closed = true;
        self.shared.close()
    }

    /// Stops the spare segment thread. (The interval fsync thread forgets
    /// the log once it is dropped.)
    fn stop_threads(&mut self) {
        if let Some(handle) = self.spare_maker.take() {
            if let Some(spare) = &self.shared.spare {
                spare.stop();
            }
            let _ = handle.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.stop_threads();
        if !self.closed {
            let _ = self.shared.close();
        }
    }
}

impl Shared {
    /// Deletes the files of segments already taken out of the state, then
    /// makes the deletions durable (unless under `never`). It runs without
    /// the state lock: unlinking a large segment can take tens of
    /// milliseconds, and appends and reads must not wait for it. If a file
    /// cannot be deleted, the error is returned and the file stays until
    /// the next open, which finds it and lets retention delete it again.
    fn delete_detached(&self, detached: &[Arc<Segment>]) -> Result<()> {
        let mut failed = None;
        for seg in detached {
            if let Err(e) = seg
                .delete_files()
                .ctx(|| format!("delete segment {}", seg.path.display()))
            {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !detached.is_empty() && self.config.fsync != FsyncPolicy::Never {
            sync_dir(&self.dir).inspect_err(|e| self.set_poison(e))?;
        }
        Ok(())
    }

    /// fsyncs what was appended and cuts a pre-written active segment to
    /// its data, so a clean reopen finds no zeros to check.
    fn close(&self) -> Result<()> {
        self.check_poison()?;
        self.fsync_active()?;
        let active = Arc::clone(lock(&self.state).active());
        if active.prewritten {
            let _fsync = lock(&self.fsync_lock);
            active
                .file
                .set_len(active.len())
                .and_then(|()| active.file.sync_all())
                .ctx(|| format!("cut {} to its data", active.path.display()))
                .inspect_err(|e| self.note_fsync_failure(e))?;
        }
        Ok(())
    }

    fn check_poison(&self) -> Result<()> {
        match &*lock(&self.poison) {
            Some(cause) => Err(LogError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn set_poison(&self, err: &LogError) {
        lock(&self.poison).get_or_insert_with(|| err.to_string());
        self.synced.notify_all();
    }

    /// Poisons the log after a failed fsync, and remembers for this process
    /// that the log's directory must not be reopened here: after a failed
    /// write-back, Linux may keep the lost pages in the page cache marked
    /// clean, so a reopen in this process could read data that is not on
    /// disk and build on it.
    fn note_fsync_failure(&self, err: &LogError) {
        self.set_poison(err);
        let dir = fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        lock(&FSYNC_FAILED_DIRS).push(dir);
    }

    fn roll_due(&self, st: &State, batch_len: u64, count: u64, ts: i64) -> bool {
        let active = st.active();
        if active.is_empty() {
            return false;
        }
        let cfg = &self.config;
        active.len() + batch_len > cfg.segment_bytes_max
            || st.next_offset + count - active.base > u64::from(u32::MAX)
            || cfg.segment_age_max_ms.is_some_and(|age| {
                active
                    .first_ts()
                    .saturating_add(i64::try_from(age).unwrap_or(i64::MAX))
                    <= ts
            })
    }

    /// Seals the active segment and starts a new one at the next offset.
    /// Under `always` and `interval` the sealed segment and the new file are
    /// fsynced first, so only the active segment can hold unsynced data.
    ///
    /// Any failure poisons the log: a half-made roll leaves the directory in
    /// a state (a new file, perhaps without its header) that only recovery
    /// on open sorts out.
    fn roll(&self, st: &mut State) -> Result<()> {
        let fsync = self.config.fsync != FsyncPolicy::Never;
        let old = Arc::clone(st.active());
        let new = (|| {
            if fsync {
                let _fsync = lock(&self.fsync_lock);
                self.check_poison()?;
                let synced = if old.prewritten {
                    // Cut the unused zeros; the new size must be durable too.
                    old.file
                        .set_len(old.len())
                        .and_then(|()| old.file.sync_all())
                } else {
                    old.file.sync_data()
                };
                // Poison before the lock is released: no other fsync may
                // run on this file in between and succeed unseen.
                synced
                    .ctx(|| format!("fsync {}", old.path.display()))
                    .inspect_err(|e| self.note_fsync_failure(e))?;
            }
            // Index files are derived and checked on open; if writing them
            // fails, open rebuilds them, so the roll goes on.
            let _ = old.write_index_files();
            let prewritten = match self.spare.as_deref() {
                Some(spare) => Segment::create_from_spare(&self.dir, st.next_offset, spare)?,
                None => None,
            };
            let new = match prewritten {
                Some(seg) => seg,
                None => Segment::create(&self.dir, st.next_offset, fsync)?,
            };
            if fsync {
                sync_dir(&self.dir)?;
            }
            Ok(new)
        })()
        .inspect_err(|e| self.set_poison(e))?;
        self.counters.rolls.fetch_add(1, Ordering::Relaxed);
        if new.prewritten {
            self.counters
                .rolls_prewritten
                .fetch_add(1, Ordering::Relaxed);
        }
        st.segments.push(Arc::new(new));
        if fsync {
            self.mark_durable(st.next_offset);
        } else {
            st.unsynced_sealed.push(old);
            st.dir_changes += 1;
        }
        Ok(())
    }

    /// The segment that holds `offset` (or would hold it next).
    fn segment_for(&self, offset: u64) -> Result<Arc<Segment>> {
        let st = lock(&self.state);
        let first = st.segments[0].base;
        if offset < first {
            return Err(LogError::OffsetBeforeStart {
                requested: Offset(offset),
                first: Offset(first),
            });
        }
        let i = st.segments.partition_point(|seg| seg.base <= offset) - 1;
        Ok(Arc::clone(&st.segments[i]))
    }

    /// fsyncs the active segment; returns the offset below which all is
    /// durable. Under `always` and `interval` that is the active segment
    /// alone (older ones were fsynced when sealed); under `never` it also
    /// covers the segments sealed since the last call, and the directory.
    /// A failure poisons the log before any other fsync can run.
    fn fsync_active(&self) -> Result<u64> {
        let (active, target, sealed, dir_changes) = {
            let st = lock(&self.state);
            (
                Arc::clone(st.active()),
                st.next_offset,
                st.unsynced_sealed.clone(),
                st.dir_changes,
            )
        };
        let fsync = lock(&self.fsync_lock);
        self.check_poison()?;
        let fail = |path: &Path, e: std::io::Error| {
            let err = LogError::io(format!("fsync {}", path.display()), e);
            self.note_fsync_failure(&err);
            err
        };
        for seg in &sealed {
            seg.file.sync_data().map_err(|e| fail(&seg.path, e))?;
        }
        if dir_changes > self.dir_synced.load(Ordering::Acquire) {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| fail(&self.dir, e))?;
            self.dir_synced.fetch_max(dir_changes, Ordering::AcqRel);
        }
        active.file.sync_data().map_err(|e| fail(&active.path, e))?;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.mark_durable(target);
        drop(fsync);
        if !sealed.is_empty() {
            lock(&self.state)
                .unsynced_sealed
                .retain(|s| !sealed.iter().any(|done| Arc::ptr_eq(done, s)));
        }
        Ok(target)
    }

    fn mark_durable(&self, target: u64) {
        let mut sync = lock(&self.sync);
        if target > sync.durable_next {
            sync.durable_next = target;
            if self.config.fsync == FsyncPolicy::Always {
                self.visible_next.fetch_max(target, Ordering::AcqRel);
            }
        }
        drop(sync);
        self.synced.notify_all();
    }

    /// Group commit: returns once every record below `end` is durable. One
    /// waiter at a time becomes the leader and fsyncs for all; the others
    /// wait for it, and the fsync after it covers everything written while
    /// it ran.
    fn wait_durable(&self, end: u64) -> Result<()> {
        let mut sync = lock(&self.sync);
        loop {
            if sync.durable_next >= end {
                return Ok(());
            }
            self.check_poison()?;
            if sync.leader {
                sync = self.synced.wait(sync).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            sync.leader = true;
            drop(sync);
            let result = self.fsync_active();
            sync = lock(&self.sync);
            sync.leader = false;
            self.synced.notify_all();
            result?;
        }
    }
}

impl flusher::Flush for Shared {
    fn flush(&self) -> bool {
        if self.check_poison().is_err() {
            return false;
        }
        // One lock at a time: the lock order elsewhere is state, then sync.
        let written = lock(&self.state).next_offset;
        let durable = lock(&self.sync).durable_next;
        durable >= written || self.fsync_active().is_ok()
    }
}

/// Forgets the oldest segment and counts it in `report`; the caller
/// deletes its files once the state lock is released.
fn detach_head(st: &mut State, report: &mut RetentionReport) -> Arc<Segment> {
    let head = st.segments.remove(0);
    st.unsynced_sealed.retain(|seg| !Arc::ptr_eq(seg, &head));
    report.segments_deleted.push(Offset(head.base));
    report.records_deleted += head.next_offset() - head.base;
    report.bytes_deleted += head.len();
    head
}

/// Takes the exclusive lock on a log directory: its `LOCK` file, held open.
fn lock_dir(dir: &Path) -> Result<File> {
    let lock_path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ctx(|| format!("open {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(LogError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => {
            Err(LogError::io(format!("lock {}", lock_path.display()), e))
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("fsync directory {}", dir.display()))
}

/// Opens every segment in `dir`, repairing as needed.
fn recover_segments(dir: &Path, config: &LogConfig) -> Result<(Vec<Arc<Segment>>, RecoveryReport)> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_name(name, "log") {
            bases.push(base);
        } else if let Some(base) =
            parse_segment_name(name, "index").or_else(|| parse_segment_name(name, "timeindex"))
        {
            index_files.push(base);
        }
    }
    bases.sort_unstable();
    if let Some(&base) = bases.last().filter(|&&b| b > OFFSET_MAX) {
        return Err(LogError::Corrupt {
            path: segment_path(dir, base, "log"),
            position: 0,
            reason: format!("base offset {base} is beyond the largest offset {OFFSET_MAX}"),
        });
    }
    // Index files whose segment is gone (a crash during retention).
    for base in index_files {
        if bases.binary_search(&base).is_err() {
            remove_index_files(&segment_path(dir, base, "log"))
                .ctx(|| format!("remove orphaned index of {base}"))?;
        }
    }

    let mut report = RecoveryReport::default();
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut end_at = bases.len();
    for (i, &base) in bases.iter().enumerate() {
        if let Some(prev) = segments.last()
            && prev.next_offset() != base
        {
            end_at = i; // a gap or overlap: the log ends before this segment
            break;
        }
        let active = i + 1 == bases.len();
        let recovered =
            Segment::recover(dir, base, active, config.index_interval_bytes, &mut report)?;
        let Some(seg) = recovered else {
            end_at = i;
            break;
        };
        let cut = report
            .truncations
            .last()
            .is_some_and(|t| t.path == seg.path);
        segments.push(Arc::new(seg));
        if cut && !active {
            end_at = i + 1;
            break;
        }
    }
    for &base in &bases[end_at..] {
        let path = segment_path(dir, base, "log");
        fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
        remove_index_files(&path).ctx(|| format!("remove index of {}", path.display()))?;
        report.segments_removed.push(path);
    }
    match segments.last() {
        Some(active) => {
            // The active segment's index lives in memory until it is sealed.
            remove_index_files(&active.path)
                .ctx(|| format!("remove index of {}", active.path.display()))?;
        }
        None => {
            let base = bases.first().copied().unwrap_or(0);
            segments.push(Arc::new(Segment::create(dir, base, true)?));
        }
    }
    if !report.segments_removed.is_empty() || segments.len() != bases.len() {
        sync_dir(dir)?;
    }
    report.segments = segments.len();
    report.first_offset = Offset(segments[0].base);
    report.next_offset = Offset(segments.last().map_or(0, |s| s.next_offset()));
    Ok((segments, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flusher::Flush;

    #[test]
    fn the_interval_flush_makes_appends_durable_once() {
        // Proves what the shared interval thread does for each log at each
        // period: fsync only when something is unsynced, and report a
        // poisoned log so that the thread stops flushing it.
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync: FsyncPolicy::Interval { ms: 3_600_000 },
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), config).unwrap();
        assert!(log.shared.flush(), "nothing to do is fine");
        assert_eq!(log.stats().fsyncs, 0, "no fsync without new data");
        log.append(Record::new("a")).unwrap();
        assert_eq!(log.stats().fsyncs, 0, "`interval` does not fsync on append");
        assert!(log.shared.flush());
        assert_eq!(log.stats().fsyncs, 1);
        assert_eq!(lock(&log.shared.sync).durable_next, 1);
        assert!(log.shared.flush());
        assert_eq!(log.stats().fsyncs, 1, "already durable");
        log.shared.set_poison(&LogError::Poisoned {
            cause: "test".into(),
        });
        assert!(
            !log.shared.flush(),
            "a poisoned log is dropped by the thread"
        );
    }
}
