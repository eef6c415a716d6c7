//! Model-based property test: random sequences of appends, reads, reopens,
//! clock moves, retention runs and time lookups, each result compared with a
//! plain in-memory model of the log (a list of records and batches plus the
//! first offset). After every operation the whole log is checked against the
//! model: offsets, records, segment layout, and the files on disk.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use eddy_log::{
    Batch, Clock, FsyncPolicy, Header, Log, LogConfig, LogError, ManualClock, Offset, Record,
    RetentionPolicy, SegmentInfo, StoredRecord,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

const SEGMENT_HEADER_BYTES: u64 = 24;
const BATCH_HEADER_BYTES: u64 = 40;
const START_MS: i64 = 1_700_000_000_000;

/// A record as generated: key, headers and value.
#[derive(Debug, Clone)]
struct RecSpec {
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    value: Vec<u8>,
}

impl RecSpec {
    fn to_record(&self) -> Record {
        let mut r = Record::new(self.value.clone());
        if let Some(k) = &self.key {
            r = r.with_key(k.clone());
        }
        for (name, value) in &self.headers {
            r = r.with_header(name.clone(), value.clone());
        }
        r
    }

    /// Encoded size of the record (length varint included), computed from
    /// the format description in `src/format.rs`, not from library code.
    fn encoded_len(&self) -> u64 {
        let key = match &self.key {
            None => 1,
            Some(k) => varint_len(k.len() as u64 + 1) + k.len() as u64,
        };
        let headers: u64 = self
            .headers
            .iter()
            .map(|(n, v)| {
                varint_len(n.len() as u64)
                    + n.len() as u64
                    + varint_len(v.len() as u64)
                    + v.len() as u64
            })
            .sum();
        // 1 byte: the timestamp delta, always 0 (one append time per batch).
        let body =
            1 + key + varint_len(self.headers.len() as u64) + headers + self.value.len() as u64;
        varint_len(body) + body
    }
}

fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[derive(Debug, Clone)]
enum Op {
    Append(RecSpec),
    AppendBatch(Vec<RecSpec>),
    /// `from` is a selector mapped into `first - 3 ..= next + 3`.
    Read {
        from: u64,
        max_bytes: usize,
    },
    Reopen {
        close: bool,
    },
    Advance(i64),
    /// Moves the clock forward to (or 1 ms around) an instant where an age
    /// limit expires; see `Harness::clock_to_boundary`. `sel` picks one.
    ClockToBoundary {
        sel: usize,
        delta: i64,
    },
    /// Applies retention, first moving the clock to an age boundary if set.
    Retention {
        boundary: Option<(usize, i64)>,
    },
    /// A selector mapped into the model's timestamp range, widened a little.
    OffsetForTimestamp(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelRecord {
    offset: u64,
    ts: i64,
    key: Option<Bytes>,
    headers: Vec<Header>,
    value: Bytes,
}

impl From<StoredRecord> for ModelRecord {
    fn from(r: StoredRecord) -> Self {
        ModelRecord {
            offset: r.offset.0,
            ts: r.timestamp_ms,
            key: r.key,
            headers: r.headers,
            value: r.value,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ModelBatch {
    base: u64,
    count: u64,
    ts: i64,
    size: u64,
}

#[derive(Debug, Default)]
struct Model {
    first: u64,
    next: u64,
    /// `records[i].offset == first + i`.
    records: Vec<ModelRecord>,
    /// Every batch still held, in offset order.
    batches: Vec<ModelBatch>,
    /// The log's notion of the last append time (it never stamps below it).
    last_ts: Option<i64>,
}

impl Model {
    fn batch_at(&self, base: u64) -> ModelBatch {
        let i = self
            .batches
            .binary_search_by_key(&base, |b| b.base)
            .unwrap_or_else(|_| panic!("no model batch starts at {base}"));
        self.batches[i]
    }

    fn records_from(&self, from: u64) -> &[ModelRecord] {
        &self.records[(from - self.first) as usize..]
    }

    fn drop_before(&mut self, first: u64) {
        assert!(first >= self.first && first <= self.next);
        self.records.drain(..(first - self.first) as usize);
        self.batches.retain(|b| b.base >= first);
        self.first = first;
    }
}

/// What an append should do, computed from the limits in the config.
#[derive(Debug)]
enum Expect {
    Ok { size: u64 },
    Empty,
    RecordTooBig { actual: u64 },
    BatchTooBig,
}

fn expect_append(specs: &[RecSpec], cfg: &LogConfig) -> Expect {
    if specs.is_empty() {
        return Expect::Empty;
    }
    let mut size = BATCH_HEADER_BYTES;
    for s in specs {
        let total = s.encoded_len();
        if total > u64::from(cfg.record_bytes_max) {
            return Expect::RecordTooBig { actual: total };
        }
        if size + total > u64::from(cfg.batch_bytes_max) {
            return Expect::BatchTooBig;
        }
        size += total;
    }
    Expect::Ok { size }
}

struct Harness {
    dir: tempfile::TempDir,
    config: LogConfig,
    clock: Arc<ManualClock>,
    log: Option<Log>,
    model: Model,
}

impl Harness {
    fn new(config: LogConfig) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(START_MS));
        let log = Log::open_with_clock(dir.path(), config.clone(), clock.clone()).expect("open");
        assert!(log.recovery().is_clean());
        Harness {
            dir,
            config,
            clock,
            log: Some(log),
            model: Model::default(),
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("log is open")
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(spec) => self.append(std::slice::from_ref(spec)),
            Op::AppendBatch(specs) => self.append(specs),
            Op::Read { from, max_bytes } => {
                let lo = self.model.first.saturating_sub(3);
                let hi = self.model.next + 3;
                let from = lo + from % (hi - lo + 1);
                check_read(self.log(), &self.model, from, *max_bytes);
            }
            Op::Reopen { close } => self.reopen(*close),
            Op::Advance(delta) => self.clock.advance_ms(*delta),
            Op::ClockToBoundary { sel, delta } => self.clock_to_boundary(*sel, *delta, true),
            Op::Retention { boundary } => {
                if let Some((sel, delta)) = boundary {
                    self.clock_to_boundary(*sel, *delta, false);
                }
                self.retention();
            }
            Op::OffsetForTimestamp(sel) => {
                let now = self.clock.now_ms();
                let (lo, hi) = match (self.model.records.first(), self.model.records.last()) {
                    (Some(f), Some(l)) => (f.ts - 5, l.ts + 5),
                    _ => (now - 5, now + 5),
                };
                let t = lo + (sel % (hi - lo + 1) as u64) as i64;
                check_offset_for_timestamp(self.log(), &self.model, t);
            }
        }
    }

    /// Moves the clock forward to `delta` ms from an instant where an age
    /// limit expires: a segment's last time + `age_max_ms` or (if `roll`)
    /// the active segment's first time + `segment_age_max_ms`.
    fn clock_to_boundary(&self, sel: usize, delta: i64, roll: bool) {
        let segs = self.log().segments();
        let mut instants = Vec::new();
        if let Some(age) = self.config.retention.age_max_ms {
            instants.extend(
                segs.iter()
                    .filter_map(|s| s.last_timestamp_ms)
                    .map(|t| t + age as i64),
            );
        }
        if let (true, Some(age), Some(first)) = (
            roll,
            self.config.segment_age_max_ms,
            segs.last().and_then(|s| s.first_timestamp_ms),
        ) {
            instants.push(first + age as i64);
        }
        let now = self.clock.now_ms();
        if !instants.is_empty() {
            let target = instants[sel % instants.len()] + delta;
            if target > now {
                self.clock.set_ms(target);
            }
        }
    }

    fn append(&mut self, specs: &[RecSpec]) {
        let expect = expect_append(specs, &self.config);
        let records: Vec<Record> = specs.iter().map(RecSpec::to_record).collect();
        let before = self.log().segments();
        let now = self.clock.now_ms();
        let ts = self.model.last_ts.map_or(now, |l| l.max(now));
        let result = self.log().append_batch(&records);
        let size = match (expect, result) {
            (Expect::Ok { size }, Ok(receipt)) => {
                let n = records.len() as u64;
                assert_eq!(receipt.base_offset, Offset(self.model.next));
                assert_eq!(receipt.last_offset, Offset(self.model.next + n - 1));
                assert_eq!(receipt.timestamp_ms, ts, "append time is max(now, last)");
                size
            }
            (Expect::Empty, Err(LogError::EmptyBatch)) => return self.assert_unchanged(&before),
            (
                Expect::RecordTooBig { actual },
                Err(LogError::LimitExceeded {
                    what: "record",
                    setting: "record_bytes_max",
                    limit,
                    actual: got,
                }),
            ) => {
                assert_eq!(limit, u64::from(self.config.record_bytes_max));
                assert_eq!(got, actual);
                return self.assert_unchanged(&before);
            }
            (
                Expect::BatchTooBig,
                Err(LogError::LimitExceeded {
                    what: "batch",
                    setting: "batch_bytes_max",
                    limit,
                    ..
                }),
            ) => {
                assert_eq!(limit, u64::from(self.config.batch_bytes_max));
                return self.assert_unchanged(&before);
            }
            (expect, result) => panic!("append: expected {expect:?}, got {result:?}"),
        };

        // The segment layout: roll first if the active segment is non-empty
        // and the batch would overflow it or its first record is too old.
        let n = records.len() as u64;
        let base = self.model.next;
        let active = *before.last().expect("a log always has a segment");
        let non_empty = active.next_offset > active.base_offset;
        let roll = non_empty
            && (active.size_bytes + size > self.config.segment_bytes_max
                || self.config.segment_age_max_ms.is_some_and(|age| {
                    active.first_timestamp_ms.expect("non-empty") + age as i64 <= ts
                }));
        let mut want = before.clone();
        if roll {
            want.last_mut().expect("non-empty").active = false;
            want.push(SegmentInfo {
                base_offset: Offset(base),
                next_offset: Offset(base + n),
                size_bytes: SEGMENT_HEADER_BYTES + size,
                first_timestamp_ms: Some(ts),
                last_timestamp_ms: Some(ts),
                active: true,
            });
        } else {
            let last = want.last_mut().expect("non-empty");
            last.next_offset = Offset(base + n);
            last.size_bytes += size;
            last.first_timestamp_ms = last.first_timestamp_ms.or(Some(ts));
            last.last_timestamp_ms = Some(ts);
        }
        assert_eq!(
            self.log().segments(),
            want,
            "segments after append (roll: {roll})"
        );

        let m = &mut self.model;
        for (i, spec) in specs.iter().enumerate() {
            let r = spec.to_record();
            m.records.push(ModelRecord {
                offset: base + i as u64,
                ts,
                key: r.key,
                headers: r.headers,
                value: r.value,
            });
        }
        m.batches.push(ModelBatch {
            base,
            count: n,
            ts,
            size,
        });
        m.next = base + n;
        m.last_ts = Some(ts);
    }

    fn assert_unchanged(&self, before: &[SegmentInfo]) {
        assert_eq!(
            self.log().segments(),
            before,
            "a refused append changed the log"
        );
        assert_eq!(self.log().next_offset(), Offset(self.model.next));
    }

    fn reopen(&mut self, close: bool) {
        let before = self.log().segments();
        let log = self.log.take().expect("log is open");
        if close {
            log.close().expect("close");
        } else {
            drop(log);
        }
        let log = Log::open_with_clock(self.dir.path(), self.config.clone(), self.clock.clone())
            .expect("reopen");
        let rec = log.recovery();
        assert!(rec.is_clean(), "clean reopen needed repairs: {rec:?}");
        assert!(
            rec.indexes_rebuilt.is_empty(),
            "clean reopen rebuilt indexes: {rec:?}"
        );
        assert_eq!(rec.segments, before.len());
        assert_eq!(rec.first_offset, Offset(self.model.first));
        assert_eq!(rec.next_offset, Offset(self.model.next));
        assert_eq!(log.segments(), before, "segments differ after reopen");
        self.log = Some(log);
        // The log restores its last append time from the records it holds.
        self.model.last_ts = self.model.records.last().map(|r| r.ts);
    }

    fn retention(&mut self) {
        let policy = self.config.retention;
        let before = self.log().segments();
        let now = self.clock.now_ms();
        let next = self.model.next;
        let expired = |s: &SegmentInfo| match (policy.age_max_ms, s.last_timestamp_ms) {
            (Some(age), Some(last)) => last.saturating_add(age as i64) <= now,
            _ => false,
        };
        let mut want = before.clone();
        let mut deleted = Vec::new();
        loop {
            if want.len() == 1 {
                if expired(&want[0]) {
                    // Only age removes the active segment: roll, then delete.
                    want[0].active = false;
                    want.push(SegmentInfo {
                        base_offset: Offset(next),
                        next_offset: Offset(next),
                        size_bytes: SEGMENT_HEADER_BYTES,
                        first_timestamp_ms: None,
                        last_timestamp_ms: None,
                        active: true,
                    });
                    continue;
                }
                break;
            }
            let head = want[0];
            let total_bytes: u64 = want.iter().map(|s| s.size_bytes).sum();
            let total_records = next - head.base_offset.0;
            let over_bytes = policy.bytes_max.is_some_and(|max| total_bytes > max);
            let over_records = policy.records_max.is_some_and(|max| total_records > max);
            if !(expired(&head) || over_bytes || over_records) {
                break;
            }
            deleted.push(want.remove(0));
        }

        let report = self.log().apply_retention().expect("apply_retention");
        assert_eq!(
            report.segments_deleted,
            deleted.iter().map(|s| s.base_offset).collect::<Vec<_>>(),
            "segments deleted (now {now}, policy {policy:?}, before {before:?})"
        );
        assert_eq!(
            report.records_deleted,
            deleted
                .iter()
                .map(|s| s.next_offset.0 - s.base_offset.0)
                .sum::<u64>()
        );
        assert_eq!(
            report.bytes_deleted,
            deleted.iter().map(|s| s.size_bytes).sum::<u64>()
        );
        assert_eq!(report.first_offset, want[0].base_offset);
        assert_eq!(self.log().segments(), want, "segments after retention");
        self.model.drop_before(want[0].base_offset.0);
    }

    /// Everything the model says must hold, checked after every operation.
    fn check_invariants(&self) {
        let log = self.log();
        let m = &self.model;
        assert_eq!(log.first_offset(), Offset(m.first));
        assert_eq!(log.next_offset(), Offset(m.next));
        assert_eq!(
            log.last_offset(),
            (m.next > m.first).then(|| Offset(m.next - 1))
        );
        let segs = check_segments(log, m, &self.config);
        check_files(self.dir.path(), &segs);

        // The whole log, in one read: exactly the model's records.
        check_read(log, m, m.first, usize::MAX);
        let all: Vec<ModelRecord> = log
            .read(Offset(m.first), usize::MAX)
            .expect("read all")
            .iter()
            .flat_map(Batch::records)
            .map(ModelRecord::from)
            .collect();
        assert_eq!(all, m.records, "the log's records differ from the model's");

        // Edges: before the start, at the end, past the end.
        if m.first > 0 {
            check_read(log, m, m.first - 1, 1);
            check_read(log, m, 0, 1);
        }
        check_read(log, m, m.next, 1);
        check_read(log, m, m.next + 1, 1);

        // Time lookups at, just before and just after every batch's time.
        let times: BTreeSet<i64> = m.batches.iter().map(|b| b.ts).collect();
        for &t in &times {
            for t in [t - 1, t, t + 1] {
                check_offset_for_timestamp(log, m, t);
            }
        }
    }
}

/// Checks one read against the model.
fn check_read(log: &Log, m: &Model, from: u64, max_bytes: usize) {
    let result = log.read(Offset(from), max_bytes);
    if from > m.next {
        match result {
            Err(LogError::OffsetPastEnd { requested, next }) => {
                assert_eq!((requested, next), (Offset(from), Offset(m.next)));
            }
            other => panic!("read({from}) past the end {}: got {other:?}", m.next),
        }
        return;
    }
    if from < m.first {
        match result {
            Err(LogError::OffsetBeforeStart { requested, first }) => {
                assert_eq!((requested, first), (Offset(from), Offset(m.first)));
            }
            other => panic!("read({from}) before the start {}: got {other:?}", m.first),
        }
        return;
    }
    let batches = result.unwrap_or_else(|e| panic!("read({from}, {max_bytes}): {e}"));
    if from == m.next {
        assert!(batches.is_empty(), "read at the end returned {batches:?}");
        return;
    }
    assert!(!batches.is_empty(), "read({from}) returned nothing");
    assert!(batches[0].base_offset().0 <= from && from < batches[0].next_offset().0);

    // Whole batches, contiguous, each exactly as the model has it.
    let mut expected_next = batches[0].base_offset().0;
    let mut bytes = 0u64;
    for (i, b) in batches.iter().enumerate() {
        let want = m.batch_at(b.base_offset().0);
        assert_eq!(b.base_offset().0, expected_next, "batches not contiguous");
        assert_eq!(u64::from(b.record_count()), want.count);
        assert_eq!(b.size_bytes() as u64, want.size, "batch {} size", want.base);
        assert_eq!(b.header().first_timestamp_ms, want.ts);
        assert_eq!(b.header().last_timestamp_ms, want.ts);
        expected_next = b.next_offset().0;
        bytes += b.size_bytes() as u64;
        if i + 1 < batches.len() {
            assert!(
                bytes < max_bytes as u64,
                "read({from}, {max_bytes}) went on after {bytes} bytes"
            );
        }
    }
    if expected_next < m.next {
        assert!(
            bytes >= max_bytes as u64,
            "read({from}, {max_bytes}) stopped early at {expected_next} after {bytes} bytes"
        );
    }

    // The records from `from` on, skipping the first batch's earlier ones.
    let got: Vec<ModelRecord> = batches
        .iter()
        .flat_map(Batch::records)
        .filter(|r| r.offset.0 >= from)
        .map(ModelRecord::from)
        .collect();
    let want = &m.records_from(from)[..(expected_next - from) as usize];
    assert_eq!(got, want, "read({from}, {max_bytes}) records");
}

fn check_offset_for_timestamp(log: &Log, m: &Model, t: i64) {
    let want = m
        .records
        .iter()
        .find(|r| r.ts >= t)
        .map(|r| Offset(r.offset));
    let got = log.offset_for_timestamp(t).expect("offset_for_timestamp");
    assert_eq!(got, want, "offset_for_timestamp({t})");
}

/// Segments: contiguous, aligned with batches, sized and timed as the model
/// says, within the size and age limits. Returns them.
fn check_segments(log: &Log, m: &Model, cfg: &LogConfig) -> Vec<SegmentInfo> {
    let segs = log.segments();
    assert!(!segs.is_empty(), "a log always has an active segment");
    assert_eq!(segs[0].base_offset, Offset(m.first));
    assert_eq!(segs.last().expect("non-empty").next_offset, Offset(m.next));
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(
            s.active,
            i + 1 == segs.len(),
            "only the last segment is active"
        );
        if i > 0 {
            assert_eq!(
                segs[i - 1].next_offset,
                s.base_offset,
                "segments not contiguous"
            );
        }
        let inside: Vec<ModelBatch> = m
            .batches
            .iter()
            .copied()
            .filter(|b| b.base >= s.base_offset.0 && b.base < s.next_offset.0)
            .collect();
        let mut o = s.base_offset.0;
        for b in &inside {
            assert_eq!(b.base, o, "segment {s:?} does not hold whole batches");
            o += b.count;
        }
        assert_eq!(
            o, s.next_offset.0,
            "segment {s:?} does not end at a batch end"
        );
        assert_eq!(
            s.size_bytes,
            SEGMENT_HEADER_BYTES + inside.iter().map(|b| b.size).sum::<u64>()
        );
        assert!(
            s.size_bytes <= cfg.segment_bytes_max,
            "segment {s:?} too large"
        );
        assert_eq!(s.first_timestamp_ms, inside.first().map(|b| b.ts));
        assert_eq!(s.last_timestamp_ms, inside.last().map(|b| b.ts));
        if let (Some(age), Some(f), Some(l)) = (
            cfg.segment_age_max_ms,
            s.first_timestamp_ms,
            s.last_timestamp_ms,
        ) {
            assert!(l - f < age as i64, "segment {s:?} spans {age} ms or more");
        }
    }
    segs
}

/// The directory holds one `.log` per segment, index files for the sealed
/// segments only, the lock file, perhaps a spare segment, and nothing else.
fn check_files(dir: &Path, segs: &[SegmentInfo]) {
    let mut logs = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    let mut timeindexes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("list dir") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_str().expect("UTF-8 name");
        if name == "LOCK" || name == "next-segment.spare" {
            continue;
        }
        let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
        assert!(
            stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()),
            "unexpected file {name}"
        );
        let base: u64 = stem.parse().expect("number");
        match ext {
            "log" => logs.insert(base),
            "index" => indexes.insert(base),
            "timeindex" => timeindexes.insert(base),
            _ => panic!("unexpected file {name}"),
        };
    }
    let bases: BTreeSet<u64> = segs.iter().map(|s| s.base_offset.0).collect();
    let sealed: BTreeSet<u64> = segs
        .iter()
        .filter(|s| !s.active)
        .map(|s| s.base_offset.0)
        .collect();
    assert_eq!(logs, bases, "segment files on disk");
    assert_eq!(indexes, sealed, ".index files on disk");
    assert_eq!(timeindexes, sealed, ".timeindex files on disk");
}

fn rec_strategy() -> impl Strategy<Value = RecSpec> {
    (
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        prop::collection::vec(
            ("\\PC{0,4}", prop::collection::vec(any::<u8>(), 0..12)),
            0..=3,
        ),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(key, headers, value)| RecSpec {
            key,
            headers,
            value,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => rec_strategy().prop_map(Op::Append),
        6 => prop::collection::vec(rec_strategy(), 0..8).prop_map(Op::AppendBatch),
        3 => (
            any::<u64>(),
            prop_oneof![Just(0usize), 1usize..3000, Just(usize::MAX)],
        )
            .prop_map(|(from, max_bytes)| Op::Read { from, max_bytes }),
        2 => any::<bool>().prop_map(|close| Op::Reopen { close }),
        // Whole 100 ms steps mostly, so that ages often expire exactly "now".
        3 => prop_oneof![
            6 => (0i64..30).prop_map(|n| n * 100),
            2 => 0i64..3_000,
            2 => 3_000i64..40_000,
            1 => -500i64..0,
        ]
        .prop_map(Op::Advance),
        2 => (any::<usize>(), -1i64..=1)
            .prop_map(|(sel, delta)| Op::ClockToBoundary { sel, delta }),
        3 => prop::option::of((any::<usize>(), -1i64..=1))
            .prop_map(|boundary| Op::Retention { boundary }),
        2 => any::<u64>().prop_map(Op::OffsetForTimestamp),
    ]
}

fn config_strategy() -> impl Strategy<Value = LogConfig> {
    let fsync = prop_oneof![
        6 => Just(FsyncPolicy::Never),
        2 => Just(FsyncPolicy::Always),
        1 => (1u64..=20).prop_map(|ms| FsyncPolicy::Interval { ms }),
    ];
    let retention = (
        prop::option::weighted(0.5, (5u64..=200).prop_map(|n| n * 100)),
        prop::option::weighted(0.5, 1_000u64..=12_000),
        prop::option::weighted(0.5, 1u64..=40),
    )
        .prop_map(|(age_max_ms, bytes_max, records_max)| RetentionPolicy {
            age_max_ms,
            bytes_max,
            records_max,
        });
    (
        1024u64..=4096,
        64u32..=512,
        prop::option::weighted(0.4, (10u64..=80).prop_map(|n| n * 100)),
        fsync,
        retention,
        prop::option::weighted(0.2, 300u32..=1_000),
        prop::option::weighted(0.2, 200u32..=400),
        any::<bool>(),
    )
        .prop_map(
            |(
                segment_bytes_max,
                index_interval_bytes,
                segment_age_max_ms,
                fsync,
                retention,
                batch,
                record,
                preallocate_segments,
            )| {
                let batch_bytes_max = batch
                    .map_or((segment_bytes_max - SEGMENT_HEADER_BYTES) as u32, |b| {
                        b.min((segment_bytes_max - SEGMENT_HEADER_BYTES) as u32)
                    });
                let record_bytes_max = record.map_or(batch_bytes_max, |r| r.min(batch_bytes_max));
                LogConfig {
                    fsync,
                    segment_bytes_max,
                    segment_age_max_ms,
                    index_interval_bytes,
                    record_bytes_max,
                    batch_bytes_max,
                    retention,
                    preallocate_segments,
                    lock_dir: true,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        // Keep failures out of the source tree; a failure prints its case.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(
        config in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        // Proves: under random appends (single and batched, within and over
        // the limits), reads at random offsets and sizes, reopens, clock moves
        // (forwards and backwards), retention runs and time lookups, with
        // small segments, sparse indexes and every fsync policy, the log
        // behaves exactly like a list of records: contiguous offsets from
        // first_offset to next_offset, reads return the model's records,
        // refused appends change nothing, segments roll and retention
        // deletes exactly as documented, and a clean reopen repairs nothing
        // and changes nothing.
        let mut h = Harness::new(config);
        h.check_invariants();
        for op in &ops {
            h.apply(op);
            h.check_invariants();
        }
        h.log.take().expect("log is open").close().expect("close");
    }
}
