//! The event store, embedded: one `eddy-log` log in `<dir>/store/` holds
//! every stream's events in one global order (`$all`: a position is the
//! log offset), and an in-memory [`Index`] holds each stream's versions.
//!
//! ```text
//!  append ─lock index─▶ decide (expected version, retried ids)
//!                        write the batch (page cache) ─▶ record versions
//!         ─unlock─▶ await the store's group commit ─▶ AppendResult
//!  commit loop: fsync ─▶ bump `appended` (readers of $all wake) ─▶ forwarder
//! ```
//!
//! An append is one log batch, so its events are all there or none after a
//! crash; the index is rebuilt from the log on open. Reads return only
//! durable events. Appended events of streams with a category are also
//! published to the bus topic `es.<category>` (see `forward.rs`).

mod api;
mod forward;
pub(crate) mod index;
mod record;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use eddy_bus::store::{APPEND_EVENTS_MAX, STORE_READ_MAX, check_stream_name};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, BusError, Direction, Event, EventLimits, ExpectedVersion,
    Result, StreamFrom, StreamInfo, StreamMetadata, StreamSlice,
};
use eddy_log::{Clock, FsyncPolicy, Log, LogConfig, Offset, StoredRecord};
use tokio::sync::watch;

use crate::commit::Committer;
use crate::error::from_log;
use crate::topic::READ_RESULT_BYTES_MAX;
pub(crate) use forward::Forwarder;
use index::{Decision, Index};
use record::{StoreRecord, decode, event_record, meta_record};

/// Bytes read from the log per step of a scan (open, `$all`).
const SCAN_STEP_BYTES: usize = 1024 * 1024;
/// Most bytes one `$all` read looks at before it returns (with `next`
/// past what it looked at), however few events passed its filter.
const READ_ALL_SCAN_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Events a stream read reads at a time before it checks its size
/// against `READ_RESULT_BYTES_MAX`.
const READ_STEP_EVENTS: usize = 16;

/// The embedded event store.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) log: Log,
    pub(crate) committer: Committer,
    index: Mutex<Index>,
    /// The log's readable end, bumped after each fsync (or each write when
    /// writes are readable at once): `$all` readers wait on it.
    pub(crate) appended: watch::Sender<u64>,
    pub(crate) forwarder: Forwarder,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Opens the store in `dir` and rebuilds its index from the log.
    pub(crate) fn open(
        dir: &Path,
        config: LogConfig,
        commit_window: Duration,
        ids_max: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let log = Log::open_with_clock(dir.join("log"), config, clock).map_err(from_log)?;
        let mut index = Index::new(ids_max);
        let mut at = log.first_offset().0;
        let end = log.next_offset().0;
        while at < end {
            let batches = log.read(Offset(at), SCAN_STEP_BYTES).map_err(from_log)?;
            if batches.is_empty() {
                break;
            }
            for batch in &batches {
                for rec in batch.records() {
                    if rec.offset.0 < at {
                        continue;
                    }
                    apply(&mut index, &rec)?;
                    at = rec.offset.0 + 1;
                }
            }
        }
        let forwarder = Forwarder::open(dir, log.next_offset().0)?;
        Ok(Store {
            appended: watch::Sender::new(log.next_offset().0),
            log,
            committer: Committer::new(commit_window),
            index: Mutex::new(index),
            forwarder,
        })
    }

    /// The log's readable end.
    pub(crate) fn head(&self) -> u64 {
        self.log.next_offset().0
    }

    /// Tells readers (and the forwarder) how far the log is readable.
    pub(crate) fn signal(&self) {
        let head = self.head();
        self.appended.send_if_modified(|h| {
            let moved = *h < head;
            *h = head.max(*h);
            moved
        });
        self.forwarder.wake();
    }

    /// Checks an append and gives every event without an id a fresh one.
    pub(crate) fn check_append(
        stream: &str,
        events: &mut [Event],
        limits: &EventLimits,
    ) -> Result<()> {
        check_stream_name(stream)?;
        if events.is_empty() || events.len() > APPEND_EVENTS_MAX {
            return Err(BusError::InvalidArgument {
                what: "append",
                reason: format!(
                    "an append carries 1..={APPEND_EVENTS_MAX} events, not {}",
                    events.len()
                ),
            });
        }
        crate::broker::check_events(
            events,
            limits,
            "append bytes",
            "PUBLISH_BATCH_BYTES_MAX (split the append)",
        )
    }

    /// Decides and writes an append (checked by [`Store::check_append`])
    /// without waiting for the disk. Returns its result and the log offset
    /// that must be durable before it is acknowledged.
    pub(crate) fn write(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<(AppendResult, u64)> {
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let mut index = lock(&self.index);
        match index.decide(stream, expected, &ids)? {
            Decision::Duplicate { first_version } => {
                let last_version = first_version + events.len() as u64 - 1;
                let position = index
                    .get(stream)
                    .and_then(|e| e.positions.get(last_version as usize).copied())
                    .ok_or_else(|| {
                        BusError::Storage("a duplicate append lost its events".into())
                    })?;
                let result = AppendResult {
                    first_version,
                    last_version,
                    position,
                    duplicate: true,
                };
                Ok((result, position + 1))
            }
            Decision::Write { first_version } => {
                let records: Vec<_> = events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| event_record(stream, first_version + i as u64, e))
                    .collect();
                let receipt = self.log.write_batch(&records).map_err(from_log)?;
                index.record_events(stream, ids, receipt.base_offset.0);
                let result = AppendResult {
                    first_version,
                    last_version: first_version + events.len() as u64 - 1,
                    position: receipt.last_offset.0,
                    duplicate: false,
                };
                Ok((result, receipt.last_offset.0 + 1))
            }
        }
    }

    /// Writes new settings of a stream (a delete is settings too) without
    /// waiting; returns the offset that must be durable.
    pub(crate) fn write_meta(&self, stream: &str, change: MetaChange) -> Result<u64> {
        check_stream_name(stream)?;
        let mut index = lock(&self.index);
        let entry = index.get(stream);
        let (meta, deleted) = match change {
            MetaChange::Set(meta) => (meta, entry.is_some_and(|e| e.deleted)),
            MetaChange::Delete(expected) => {
                let Some(e) = entry.filter(|e| e.current().is_some()) else {
                    return Err(BusError::StreamNotFound(stream.to_string()));
                };
                let current = e.current();
                let ok = match expected {
                    ExpectedVersion::Any | ExpectedVersion::Exists => true,
                    ExpectedVersion::NoStream => false,
                    ExpectedVersion::Exact(n) => current == Some(n),
                };
                if !ok {
                    return Err(BusError::WrongExpectedVersion {
                        stream: stream.to_string(),
                        expected: expected.to_string(),
                        actual: current,
                    });
                }
                let meta = StreamMetadata {
                    truncate_before: Some(e.positions.len() as u64),
                    ..e.meta
                };
                (meta, true)
            }
        };
        let receipt = self
            .log
            .write_batch(&[meta_record(stream, &meta, deleted)])
            .map_err(from_log)?;
        index.record_meta(stream, meta, deleted);
        Ok(receipt.last_offset.0 + 1)
    }

    /// What the store knows of a stream.
    pub(crate) fn info(&self, stream: &str) -> Result<StreamInfo> {
        check_stream_name(stream)?;
        let visible = self.head();
        let index = lock(&self.index);
        let entry = index.get(stream);
        Ok(StreamInfo {
            stream: stream.to_string(),
            last_version: entry.and_then(|e| durable_last(e, visible)),
            metadata: entry.map(|e| e.meta).unwrap_or_default(),
            deleted: entry.is_some_and(|e| e.deleted),
        })
    }

    /// Reads part of a stream (blocking: it reads the log).
    pub(crate) fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: u32,
        now_ms: i64,
    ) -> Result<StreamSlice> {
        check_stream_name(stream)?;
        check_max(max)?;
        let visible = self.head();
        let (versions, last_version, next, max_age) = {
            let index = lock(&self.index);
            let Some(entry) = index.get(stream) else {
                return Ok(StreamSlice::default());
            };
            let last_version = durable_last(entry, visible);
            let Some((lo, hi)) = entry.readable(visible) else {
                return Ok(StreamSlice {
                    last_version,
                    ..StreamSlice::default()
                });
            };
            let max = u64::from(max);
            let (range, next) = match direction {
                Direction::Forward => {
                    let start = match from {
                        StreamFrom::Start => lo,
                        StreamFrom::Version(v) => v.max(lo),
                    };
                    if start > hi {
                        (None, None)
                    } else {
                        let end = hi.min(start.saturating_add(max - 1));
                        (Some((start, end)), (end < hi).then_some(end + 1))
                    }
                }
                Direction::Backward => {
                    let start = match from {
                        StreamFrom::Start => hi,
                        StreamFrom::Version(v) => v.min(hi),
                    };
                    if start < lo {
                        (None, None)
                    } else {
                        let end = lo.max(start.saturating_sub(max - 1));
                        (Some((end, start)), (end > lo).then(|| end - 1))
                    }
                }
            };
            let versions: Vec<(u64, u64)> = match range {
                Some((a, b)) => (a..=b).map(|v| (v, entry.positions[v as usize])).collect(),
                None => Vec::new(),
            };
            (versions, last_version, next, entry.meta.max_age_ms)
        };
        // In the read's direction, a few events at a time, until what is
        // read holds READ_RESULT_BYTES_MAX: a read of large events returns
        // fewer than `max`, and `next` says where to go on.
        let mut next = next;
        let mut events = Vec::with_capacity(versions.len().min(READ_STEP_EVENTS));
        let mut bytes = 0;
        let steps: Box<dyn Iterator<Item = &[(u64, u64)]>> = match direction {
            Direction::Forward => Box::new(versions.chunks(READ_STEP_EVENTS)),
            Direction::Backward => Box::new(versions.rchunks(READ_STEP_EVENTS)),
        };
        let mut cached = Vec::new();
        'read: for step in steps {
            let positions: Vec<u64> = step.iter().map(|&(_, p)| p).collect();
            let mut records = self.read_positions(&positions, &mut cached)?;
            if direction == Direction::Backward {
                records.reverse();
            }
            for rec in records {
                let event = match decode(&rec)? {
                    StoreRecord::Event(e) if e.stream == stream => *e,
                    _ => {
                        return Err(BusError::Corrupt(format!(
                            "event store position {} is not an event of {stream:?}",
                            rec.offset.0
                        )));
                    }
                };
                if bytes >= READ_RESULT_BYTES_MAX {
                    next = Some(event.version);
                    break 'read;
                }
                bytes += rec.value.len();
                events.push(event);
            }
        }
        if let Some(age) = max_age {
            let oldest = now_ms.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX));
            events.retain(|e| e.timestamp_ms >= oldest);
        }
        Ok(StreamSlice {
            events,
            last_version,
            next,
        })
    }

    /// The records at `positions` (ascending), read in as few log reads as
    /// their spacing allows.
    /// `cached` holds the batches of the last log read, by offset (the log
    /// reads at least a 64 KiB window whatever is asked, so every batch in
    /// it is kept: a stream's next events are often there already).
    fn read_positions(
        &self,
        positions: &[u64],
        cached: &mut Vec<eddy_log::format::Batch>,
    ) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::with_capacity(positions.len());
        let find = |cached: &[eddy_log::format::Batch], p: u64| {
            let k = cached.partition_point(|b| b.next_offset().0 <= p);
            let b = cached.get(k).filter(|b| b.base_offset().0 <= p)?;
            b.records().nth((p - b.base_offset().0) as usize)
        };
        for (i, &p) in positions.iter().enumerate() {
            if let Some(r) = find(cached, p) {
                out.push(r);
                continue;
            }
            // Dense runs (a stream appended in batches) read further.
            let ahead = positions[(i + 16).min(positions.len() - 1)];
            let bytes = if ahead - p <= 64 {
                256 * 1024
            } else {
                64 * 1024
            };
            *cached = self.log.read(Offset(p), bytes).map_err(from_log)?;
            match find(cached, p) {
                Some(r) => out.push(r),
                None => {
                    return Err(BusError::Corrupt(format!(
                        "event store position {p} cannot be read"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Reads `$all` from `from` without waiting (blocking: it reads the
    /// log). Looks at no more than [`READ_ALL_SCAN_BYTES_MAX`] bytes.
    pub(crate) fn read_all_now(&self, from: u64, filter: &AllFilter, max: u32) -> Result<AllSlice> {
        check_max(max)?;
        let head = self.head();
        let first = self.log.first_offset().0;
        if from > head {
            return Err(BusError::InvalidArgument {
                what: "position",
                reason: format!("position {from} is past the end of $all ({head})"),
            });
        }
        let mut at = from.max(first);
        let mut events = Vec::new();
        let mut scanned = 0usize;
        'scan: while at < head && scanned < READ_ALL_SCAN_BYTES_MAX {
            let batches = self
                .log
                .read(Offset(at), SCAN_STEP_BYTES)
                .map_err(from_log)?;
            if batches.is_empty() {
                break;
            }
            for batch in &batches {
                scanned += batch.size_bytes();
                for rec in batch.records() {
                    if rec.offset.0 < at {
                        continue;
                    }
                    if let StoreRecord::Event(e) = decode(&rec)?
                        && filter.matches(&e.stream, &e.event.ty)
                    {
                        events.push(*e);
                    }
                    at = rec.offset.0 + 1;
                    if events.len() >= max as usize {
                        break 'scan;
                    }
                }
            }
        }
        Ok(AllSlice {
            events,
            next: at,
            head,
        })
    }
}

/// A change of a stream's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetaChange {
    /// New settings.
    Set(StreamMetadata),
    /// A (soft) delete, if the stream is where expected.
    Delete(ExpectedVersion),
}

fn check_max(max: u32) -> Result<()> {
    if max == 0 || max > STORE_READ_MAX {
        return Err(BusError::InvalidArgument {
            what: "max",
            reason: format!("a read returns 1..={STORE_READ_MAX} events, not {max}"),
        });
    }
    Ok(())
}

/// The last durable version of a stream that exists.
fn durable_last(entry: &index::StreamEntry, visible: u64) -> Option<u64> {
    if entry.deleted {
        return None;
    }
    (entry.positions.partition_point(|&p| p < visible) as u64).checked_sub(1)
}

/// Applies one record read back on open to the index.
fn apply(index: &mut Index, rec: &StoredRecord) -> Result<()> {
    match decode(rec)? {
        StoreRecord::Event(e) => {
            let expected = index.get(&e.stream).map_or(0, |s| s.positions.len() as u64);
            if e.version != expected {
                return Err(BusError::Corrupt(format!(
                    "event store position {}: {:?} version {} follows version {}",
                    rec.offset.0,
                    e.stream,
                    e.version,
                    expected as i128 - 1
                )));
            }
            index.record_events(&e.stream, [e.event.id.as_str()], rec.offset.0);
        }
        StoreRecord::Meta {
            stream,
            meta,
            deleted,
        } => index.record_meta(&stream, meta, deleted),
    }
    Ok(())
}

/// Whether appends must wait for an fsync of the store's log.
pub(crate) fn waits_for_fsync(policy: FsyncPolicy) -> bool {
    policy == FsyncPolicy::Always
}
