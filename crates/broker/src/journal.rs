//! The broker's state journal: every change to topics, subscriptions and
//! consumer state is an [`Op`], applied in memory and appended to one
//! `eddy-log` log (`state/journal`), with a snapshot file that lets the
//! journal's head be deleted.
//!
//! Live changes and recovery go through the same `apply` functions, so the
//! state rebuilt after a restart is the state that was acknowledged.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use eddy_bus::{
    Backoff, BusError, DedupWindow, DeliveryMode, Offset, Result, Retention, RetryPolicy, StartAt,
    SubscriptionConfig, TopicConfig,
};
use eddy_log::{Clock, Log, LogConfig, Record};

use crate::codec::{Reader, Writer};
use crate::commit::Committer;
use crate::error::from_log;
use crate::sub::{Entry, EntryState};

/// A topic's number, never reused.
pub(crate) type TopicId = u32;
/// A subscription's number, never reused.
pub(crate) type SubId = u32;

/// A partition of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Tp {
    pub(crate) topic: TopicId,
    pub(crate) partition: u32,
}

/// One change of broker state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    TopicCreated {
        id: TopicId,
        name: String,
        config: TopicConfig,
    },
    TopicDeleted {
        id: TopicId,
    },
    SubCreated {
        id: SubId,
        name: String,
        config: SubscriptionConfig,
    },
    SubDeleted {
        id: SubId,
    },
    /// Sets where the subscription reads `tp` next (creating its cursor).
    Cursor {
        sub: SubId,
        tp: Tp,
        next: u64,
    },
    /// Sets a pending event's entry.
    Put {
        sub: SubId,
        tp: Tp,
        offset: u64,
        entry: Entry,
    },
    /// The event is done for the subscription (acked or dead-lettered).
    Settle {
        sub: SubId,
        tp: Tp,
        offset: u64,
    },
    /// Drops every pending event of the subscription (a seek).
    ClearPending {
        sub: SubId,
    },
    /// Delivery numbers of the subscription start at `next`, and those
    /// below `seek` were dropped by a seek (snapshots).
    Seq {
        sub: SubId,
        next: u64,
        seek: u64,
    },
    /// A dead letter left the queue (redriven or purged).
    DeadLetterRemoved {
        sub: SubId,
        id: u64,
    },
    /// Every dead letter below `floor` left the queue.
    DeadLetterFloor {
        sub: SubId,
        floor: u64,
    },
    /// The next topic and subscription numbers (snapshots: ids are never
    /// reused, even of deleted ones).
    TopicIds {
        next_topic: TopicId,
        next_sub: SubId,
    },
}

const T_TOPIC_CREATED: u8 = 1;
const T_TOPIC_DELETED: u8 = 2;
const T_SUB_CREATED: u8 = 3;
const T_SUB_DELETED: u8 = 4;
const T_CURSOR: u8 = 5;
const T_PUT: u8 = 6;
const T_SETTLE: u8 = 7;
const T_CLEAR: u8 = 8;
const T_SEQ: u8 = 9;
const T_DL_REMOVED: u8 = 10;
const T_DL_FLOOR: u8 = 11;
const T_IDS: u8 = 12;

impl Op {
    /// The subscription a consumer-state op belongs to.
    pub(crate) fn sub(&self) -> Option<SubId> {
        match self {
            Op::Cursor { sub, .. }
            | Op::Put { sub, .. }
            | Op::Settle { sub, .. }
            | Op::ClearPending { sub }
            | Op::Seq { sub, .. }
            | Op::DeadLetterRemoved { sub, .. }
            | Op::DeadLetterFloor { sub, .. } => Some(*sub),
            _ => None,
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Op::TopicCreated { id, name, config } => {
                w.u8(T_TOPIC_CREATED);
                w.u32(*id);
                w.str(name);
                encode_topic_config(w, config);
            }
            Op::TopicDeleted { id } => {
                w.u8(T_TOPIC_DELETED);
                w.u32(*id);
            }
            Op::SubCreated { id, name, config } => {
                w.u8(T_SUB_CREATED);
                w.u32(*id);
                w.str(name);
                encode_sub_config(w, config);
            }
            Op::SubDeleted { id } => {
                w.u8(T_SUB_DELETED);
                w.u32(*id);
            }
            Op::Cursor { sub, tp, next } => {
                w.u8(T_CURSOR);
                w.u32(*sub);
                encode_tp(w, *tp);
                w.u64(*next);
            }
            Op::Put {
                sub,
                tp,
                offset,
                entry,
            } => {
                w.u8(T_PUT);
                w.u32(*sub);
                encode_tp(w, *tp);
                w.u64(*offset);
                encode_entry(w, entry);
            }
            Op::Settle { sub, tp, offset } => {
                w.u8(T_SETTLE);
                w.u32(*sub);
                encode_tp(w, *tp);
                w.u64(*offset);
            }
            Op::ClearPending { sub } => {
                w.u8(T_CLEAR);
                w.u32(*sub);
            }
            Op::Seq { sub, next, seek } => {
                w.u8(T_SEQ);
                w.u32(*sub);
                w.u64(*next);
                w.u64(*seek);
            }
            Op::DeadLetterRemoved { sub, id } => {
                w.u8(T_DL_REMOVED);
                w.u32(*sub);
                w.u64(*id);
            }
            Op::DeadLetterFloor { sub, floor } => {
                w.u8(T_DL_FLOOR);
                w.u32(*sub);
                w.u64(*floor);
            }
            Op::TopicIds {
                next_topic,
                next_sub,
            } => {
                w.u8(T_IDS);
                w.u32(*next_topic);
                w.u32(*next_sub);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Op> {
        Ok(match r.u8()? {
            T_TOPIC_CREATED => Op::TopicCreated {
                id: r.u32()?,
                name: r.str()?,
                config: decode_topic_config(r)?,
            },
            T_TOPIC_DELETED => Op::TopicDeleted { id: r.u32()? },
            T_SUB_CREATED => Op::SubCreated {
                id: r.u32()?,
                name: r.str()?,
                config: decode_sub_config(r)?,
            },
            T_SUB_DELETED => Op::SubDeleted { id: r.u32()? },
            T_CURSOR => Op::Cursor {
                sub: r.u32()?,
                tp: decode_tp(r)?,
                next: r.u64()?,
            },
            T_PUT => Op::Put {
                sub: r.u32()?,
                tp: decode_tp(r)?,
                offset: r.u64()?,
                entry: decode_entry(r)?,
            },
            T_SETTLE => Op::Settle {
                sub: r.u32()?,
                tp: decode_tp(r)?,
                offset: r.u64()?,
            },
            T_CLEAR => Op::ClearPending { sub: r.u32()? },
            T_SEQ => Op::Seq {
                sub: r.u32()?,
                next: r.u64()?,
                seek: r.u64()?,
            },
            T_DL_REMOVED => Op::DeadLetterRemoved {
                sub: r.u32()?,
                id: r.u64()?,
            },
            T_DL_FLOOR => Op::DeadLetterFloor {
                sub: r.u32()?,
                floor: r.u64()?,
            },
            T_IDS => Op::TopicIds {
                next_topic: r.u32()?,
                next_sub: r.u32()?,
            },
            _ => return Err(r.corrupt("unknown journal op")),
        })
    }
}

fn encode_tp(w: &mut Writer, tp: Tp) {
    w.u32(tp.topic);
    w.u32(tp.partition);
}

fn decode_tp(r: &mut Reader<'_>) -> Result<Tp> {
    Ok(Tp {
        topic: r.u32()?,
        partition: r.u32()?,
    })
}

fn encode_opt_u64(w: &mut Writer, v: Option<u64>) {
    match v {
        Some(v) => {
            w.u8(1);
            w.u64(v);
        }
        None => w.u8(0),
    }
}

fn decode_opt_u64(r: &mut Reader<'_>) -> Result<Option<u64>> {
    match r.u8()? {
        0 => Ok(None),
        1 => r.u64().map(Some),
        _ => Err(r.corrupt("bad option tag")),
    }
}

fn encode_topic_config(w: &mut Writer, c: &TopicConfig) {
    w.u32(c.partitions);
    encode_opt_u64(w, c.retention.age_max_ms);
    encode_opt_u64(w, c.retention.bytes_max);
    encode_opt_u64(w, c.retention.events_max);
    w.u64(c.dedup.age_ms);
    w.u32(c.dedup.entries_max);
}

fn decode_topic_config(r: &mut Reader<'_>) -> Result<TopicConfig> {
    Ok(TopicConfig {
        partitions: r.u32()?,
        retention: Retention {
            age_max_ms: decode_opt_u64(r)?,
            bytes_max: decode_opt_u64(r)?,
            events_max: decode_opt_u64(r)?,
        },
        dedup: DedupWindow {
            age_ms: r.u64()?,
            entries_max: r.u32()?,
        },
    })
}

fn encode_sub_config(w: &mut Writer, c: &SubscriptionConfig) {
    w.str(&c.filter);
    match c.start {
        StartAt::Earliest => w.u8(0),
        StartAt::Latest => w.u8(1),
        StartAt::Offset(o) => {
            w.u8(2);
            w.u64(o.0);
        }
        StartAt::Time(t) => {
            w.u8(3);
            w.i64(t);
        }
    }
    w.u8(match c.mode {
        DeliveryMode::Shared => 0,
        DeliveryMode::Ordered => 1,
    });
    w.u64(c.ack_wait_ms);
    w.u32(c.retry.max_deliveries);
    match &c.retry.backoff {
        Backoff::Fixed { delay_ms } => {
            w.u8(0);
            w.u64(*delay_ms);
        }
        Backoff::Exponential { initial_ms, factor } => {
            w.u8(1);
            w.u64(*initial_ms);
            w.u32(*factor);
        }
        Backoff::Quadratic { base_ms } => {
            w.u8(2);
            w.u64(*base_ms);
        }
        Backoff::List { delays_ms } => {
            w.u8(3);
            w.u64(delays_ms.len() as u64);
            for d in delays_ms {
                w.u64(*d);
            }
        }
    }
    encode_opt_u64(w, c.retry.cap_ms);
    w.u8(c.retry.jitter_pct);
    w.u32(c.max_ack_pending);
}

fn decode_sub_config(r: &mut Reader<'_>) -> Result<SubscriptionConfig> {
    let filter = r.str()?;
    let start = match r.u8()? {
        0 => StartAt::Earliest,
        1 => StartAt::Latest,
        2 => StartAt::Offset(Offset(r.u64()?)),
        3 => StartAt::Time(r.i64()?),
        _ => return Err(r.corrupt("bad start position")),
    };
    let mode = match r.u8()? {
        0 => DeliveryMode::Shared,
        1 => DeliveryMode::Ordered,
        _ => return Err(r.corrupt("bad delivery mode")),
    };
    let ack_wait_ms = r.u64()?;
    let max_deliveries = r.u32()?;
    let backoff = match r.u8()? {
        0 => Backoff::Fixed { delay_ms: r.u64()? },
        1 => Backoff::Exponential {
            initial_ms: r.u64()?,
            factor: r.u32()?,
        },
        2 => Backoff::Quadratic { base_ms: r.u64()? },
        3 => {
            let n = r.u64()?;
            if n > eddy_bus::BACKOFF_LIST_LEN_MAX as u64 {
                return Err(r.corrupt("backoff list too long"));
            }
            let mut delays_ms = Vec::with_capacity(n as usize);
            for _ in 0..n {
                delays_ms.push(r.u64()?);
            }
            Backoff::List { delays_ms }
        }
        _ => return Err(r.corrupt("bad backoff")),
    };
    let cap_ms = decode_opt_u64(r)?;
    let jitter_pct = r.u8()?;
    let max_ack_pending = r.u32()?;
    Ok(SubscriptionConfig {
        filter,
        start,
        mode,
        ack_wait_ms,
        retry: RetryPolicy {
            max_deliveries,
            backoff,
            cap_ms,
            jitter_pct,
        },
        max_ack_pending,
    })
}

fn encode_entry(w: &mut Writer, e: &Entry) {
    w.u32(e.attempts);
    w.u32(e.generation);
    encode_opt_u64(w, e.key);
    w.i64(e.ts_ms);
    match e.state {
        EntryState::Ready { due_ms } => {
            w.u8(0);
            w.i64(due_ms);
        }
        EntryState::Leased { seq, deadline_ms } => {
            w.u8(1);
            w.u64(seq);
            w.i64(deadline_ms);
        }
    }
    w.opt_str(e.last_error.as_deref());
}

fn decode_entry(r: &mut Reader<'_>) -> Result<Entry> {
    let attempts = r.u32()?;
    let generation = r.u32()?;
    let key = decode_opt_u64(r)?;
    let ts_ms = r.i64()?;
    let state = match r.u8()? {
        0 => EntryState::Ready { due_ms: r.i64()? },
        1 => EntryState::Leased {
            seq: r.u64()?,
            deadline_ms: r.i64()?,
        },
        _ => return Err(r.corrupt("bad entry state")),
    };
    Ok(Entry {
        attempts,
        generation,
        key,
        ts_ms,
        state,
        last_error: r.opt_str()?,
        dying: false,
    })
}

/// Ops decoded from one journal record or snapshot.
fn decode_all(bytes: &[u8], what: &'static str) -> Result<Vec<Op>> {
    let mut r = Reader::new(bytes, what);
    let mut ops = Vec::new();
    while !r.is_empty() {
        ops.push(Op::decode(&mut r)?);
    }
    Ok(ops)
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"EDDYSNP1";

/// Journal records hold several ops, up to about this many bytes (well
/// under the log's 1 MiB record limit: one op is at most a few KiB).
const RECORD_BYTES_TARGET: usize = 256 * 1024;

/// The journal log and its snapshot file.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    log: RwLock<Option<Arc<Log>>>,
    /// Group commit for waits on async tasks ([`Journal::durable`]).
    committer: Arc<Committer>,
    /// Journal offset the current snapshot covers up to.
    snapshot_offset: std::sync::atomic::AtomicU64,
}

/// Where a write landed; wait on it for durability.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written(Option<u64>);

impl Journal {
    /// Opens the journal in `dir` and returns it with every op to replay,
    /// snapshot first.
    pub(crate) fn open(
        dir: &Path,
        config: LogConfig,
        commit_window: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<(Journal, Vec<Op>)> {
        fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let log = Log::open_with_clock(dir.join("journal"), config, clock).map_err(from_log)?;
        let snapshot_path = dir.join("snapshot");
        let (mut ops, from) = match fs::read(&snapshot_path) {
            Ok(bytes) => read_snapshot(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0),
            Err(e) => return Err(io_err("read", &snapshot_path, e)),
        };
        let (first, next) = (log.first_offset().0, log.next_offset().0);
        if from < first || from > next {
            return Err(BusError::Corrupt(format!(
                "the state snapshot covers the journal up to {from}, but the journal holds \
                 {first}..{next}"
            )));
        }
        let mut at = from;
        while at < next {
            let batches = log.read(eddy_log::Offset(at), 4 << 20).map_err(from_log)?;
            if batches.is_empty() {
                break;
            }
            for batch in &batches {
                for rec in batch.records() {
                    if rec.offset.0 < at {
                        continue;
                    }
                    ops.extend(decode_all(&rec.value, "journal record")?);
                    at = rec.offset.0 + 1;
                }
            }
        }
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                log: RwLock::new(Some(Arc::new(log))),
                committer: Arc::new(Committer::new(commit_window)),
                snapshot_offset: std::sync::atomic::AtomicU64::new(from),
            },
            ops,
        ))
    }

    fn log(&self) -> Result<Arc<Log>> {
        self.log
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(BusError::Closed)
    }

    /// Appends ops as one atomic batch, without waiting for an fsync. Ops
    /// are packed into records of about [`RECORD_BYTES_TARGET`].
    pub(crate) fn write(&self, ops: &[Op]) -> Result<Written> {
        if ops.is_empty() {
            return Ok(Written(None));
        }
        let mut records = Vec::new();
        let mut w = Writer::default();
        for op in ops {
            op.encode(&mut w);
            if w.buf.len() >= RECORD_BYTES_TARGET {
                records.push(Record::new(std::mem::take(&mut w.buf)));
            }
        }
        if !w.buf.is_empty() {
            records.push(Record::new(w.buf));
        }
        let receipt = self.log()?.write_batch(&records).map_err(from_log)?;
        Ok(Written(Some(receipt.last_offset.0 + 1)))
    }

    /// Waits until a write is durable per the journal's policy.
    pub(crate) fn wait(&self, w: Written) -> Result<()> {
        match w.0 {
            Some(next) => self
                .log()?
                .wait_durable(eddy_log::Offset(next))
                .map_err(from_log),
            None => Ok(()),
        }
    }

    /// Waits like [`Journal::wait`], without holding a thread: a group
    /// commit shared by every task waiting on the journal.
    pub(crate) async fn durable(&self, w: Written) -> Result<()> {
        let Some(next) = w.0 else {
            return Ok(());
        };
        let log = self.log()?;
        let start = || {
            let (log, committer) = (Arc::clone(&log), Arc::clone(&self.committer));
            tokio::task::spawn_blocking(move || committer.run(&log, || {}));
        };
        self.committer
            .wait(&log, eddy_log::Offset(next), start)
            .await
    }

    /// Waits until every op written below journal offset `next` is durable.
    pub(crate) fn wait_for_offset(&self, next: u64) -> Result<()> {
        self.wait(Written(Some(next)))
    }

    /// Appends ops and waits until they are durable.
    pub(crate) fn commit(&self, ops: &[Op]) -> Result<()> {
        let w = self.write(ops)?;
        self.wait(w)
    }

    /// Bytes of journal written since the snapshot.
    pub(crate) fn bytes_since_snapshot(&self) -> u64 {
        let Ok(log) = self.log() else { return 0 };
        let from = self
            .snapshot_offset
            .load(std::sync::atomic::Ordering::Relaxed);
        log.segments()
            .iter()
            .filter(|s| s.next_offset.0 > from)
            .map(|s| s.size_bytes)
            .sum()
    }

    /// The offset the next write gets; everything below it is written.
    pub(crate) fn next_offset(&self) -> Result<u64> {
        Ok(self.log()?.next_offset_written().0)
    }

    /// Replaces the snapshot with `ops`, the whole state as of journal
    /// offset `at` (taken under the locks that order journal writes), and
    /// deletes the journal segments it makes unnecessary.
    pub(crate) fn install_snapshot(&self, ops: &[Op], at: u64) -> Result<()> {
        let log = self.log()?;
        // The journal must hold `at` durably: after a crash, offsets below
        // it must not be handed out again (replay would skip them).
        log.sync().map_err(from_log)?;
        let mut w = Writer::default();
        w.buf.extend_from_slice(SNAPSHOT_MAGIC);
        w.u64(at);
        let body_start = w.buf.len();
        for op in ops {
            op.encode(&mut w);
        }
        let crc = crc32c::crc32c(&w.buf[body_start..]);
        w.buf.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join("snapshot.tmp");
        let path = self.dir.join("snapshot");
        (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&w.buf)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })()
        .map_err(|e| io_err("write", &path, e))?;
        self.snapshot_offset
            .store(at, std::sync::atomic::Ordering::Relaxed);
        log.delete_before(eddy_log::Offset(at)).map_err(from_log)?;
        Ok(())
    }

    /// Closes the journal log (fsyncing it).
    pub(crate) fn close(&self) -> Result<()> {
        let log = self.log.write().unwrap_or_else(|p| p.into_inner()).take();
        match log.and_then(|l| Arc::try_unwrap(l).ok()) {
            Some(log) => log.close().map_err(from_log),
            None => Ok(()),
        }
    }
}

fn read_snapshot(bytes: &[u8]) -> Result<(Vec<Op>, u64)> {
    let bad = |why: &str| BusError::Corrupt(format!("state snapshot: {why}"));
    if bytes.len() < SNAPSHOT_MAGIC.len() + 4 || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(bad("not a snapshot file"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| bad("truncated"))?);
    let mut r = Reader::new(&body[8..], "state snapshot");
    let at = r.u64()?;
    let ops_start = 8 + r.rest();
    if crc32c::crc32c(&body[ops_start..]) != crc {
        return Err(bad("checksum mismatch"));
    }
    Ok((decode_all(&body[ops_start..], "state snapshot")?, at))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> BusError {
    BusError::Storage(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip() {
        let tp = Tp {
            topic: 3,
            partition: 1,
        };
        let entry = Entry {
            attempts: 2,
            generation: 1,
            key: Some(99),
            ts_ms: -4,
            state: EntryState::Leased {
                seq: 12,
                deadline_ms: 5000,
            },
            last_error: Some("boom".into()),
            dying: false,
        };
        let mut sub_cfg = SubscriptionConfig::new("orders.>").start_at(StartAt::Time(77));
        sub_cfg.retry.backoff = Backoff::List {
            delays_ms: vec![1, 2, 3],
        };
        sub_cfg.retry.cap_ms = Some(9);
        let ops = vec![
            Op::TopicCreated {
                id: 1,
                name: "orders".into(),
                config: TopicConfig::with_partitions(4),
            },
            Op::TopicDeleted { id: 1 },
            Op::SubCreated {
                id: 2,
                name: "s".into(),
                config: sub_cfg,
            },
            Op::SubDeleted { id: 2 },
            Op::Cursor {
                sub: 2,
                tp,
                next: 10,
            },
            Op::Put {
                sub: 2,
                tp,
                offset: 4,
                entry: entry.clone(),
            },
            Op::Put {
                sub: 2,
                tp,
                offset: 5,
                entry: Entry {
                    state: EntryState::Ready { due_ms: 1 },
                    key: None,
                    last_error: None,
                    ..entry
                },
            },
            Op::Settle {
                sub: 2,
                tp,
                offset: 4,
            },
            Op::ClearPending { sub: 2 },
            Op::Seq {
                sub: 2,
                next: 100,
                seek: 40,
            },
            Op::DeadLetterRemoved { sub: 2, id: 3 },
            Op::DeadLetterFloor { sub: 2, floor: 8 },
            Op::TopicIds {
                next_topic: 4,
                next_sub: 5,
            },
        ];
        let mut w = Writer::default();
        for op in &ops {
            op.encode(&mut w);
        }
        assert_eq!(decode_all(&w.buf, "test").unwrap(), ops);
        for cut in 0..w.buf.len() {
            let _ = decode_all(&w.buf[..cut], "test"); // never panics
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            // Proves the journal and snapshot decoders return errors, not
            // panics, on any input (the log's CRC catches damage first,
            // but a decoder must not trust it).
            let _ = decode_all(&bytes, "fuzz");
            let _ = read_snapshot(&bytes);
        }
    }
}
