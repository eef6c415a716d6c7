//! Recovery tests: a log is built and closed, then its files are damaged the
//! way a crash or a bad disk would (a torn last write, flipped bytes, lost or
//! damaged index files), and the log is opened again. Each damaged copy is
//! checked against what was appended: open succeeds, everything before the
//! damage is intact, nothing from the damage on is returned, the repair is
//! reported, and the log accepts and keeps new appends afterwards.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_log::{Batch, FsyncPolicy, Log, LogConfig, ManualClock, Offset, Record, StoredRecord};

const START_MS: i64 = 1_700_000_000_000;

/// Where one appended batch landed.
#[derive(Debug, Clone, Copy)]
struct BatchPos {
    /// Base offset of the segment holding it.
    segment: u64,
    /// Byte range in the segment file.
    start: u64,
    end: u64,
    /// Offset of its first record.
    base: u64,
}

/// A closed log in a tempdir, and what was appended to it.
struct Built {
    dir: tempfile::TempDir,
    config: LogConfig,
    clock: Arc<ManualClock>,
    /// Every record appended, at index = offset, with its append time.
    records: Vec<(Record, i64)>,
    batches: Vec<BatchPos>,
}

impl Built {
    fn new(config: LogConfig, batches: Vec<Vec<Record>>, clock_steps: &[i64]) -> Built {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(START_MS));
        let log = Log::open_with_clock(dir.path(), config.clone(), clock.clone()).expect("open");
        let mut records = Vec::new();
        let mut positions = Vec::new();
        for (i, batch) in batches.into_iter().enumerate() {
            clock.advance_ms(clock_steps[i % clock_steps.len()]);
            let before = *log.segments().last().expect("active segment");
            let receipt = log.append_batch(&batch).expect("append");
            let after = *log.segments().last().expect("active segment");
            let start = if after.base_offset == before.base_offset {
                before.size_bytes
            } else {
                24 // a new segment: right after its header
            };
            assert_eq!(receipt.base_offset, Offset(records.len() as u64));
            positions.push(BatchPos {
                segment: after.base_offset.0,
                start,
                end: after.size_bytes,
                base: receipt.base_offset.0,
            });
            records.extend(batch.into_iter().map(|r| (r, receipt.timestamp_ms)));
        }
        log.close().expect("close");
        Built {
            dir,
            config,
            clock,
            records,
            batches: positions,
        }
    }

    /// A fresh copy of the closed log's directory.
    fn copy(&self) -> tempfile::TempDir {
        let work = tempfile::tempdir().expect("tempdir");
        for entry in fs::read_dir(self.dir.path()).expect("list dir") {
            let entry = entry.expect("dir entry");
            fs::copy(entry.path(), work.path().join(entry.file_name())).expect("copy file");
        }
        work
    }

    fn open(&self, dir: &Path) -> Log {
        Log::open_with_clock(dir, self.config.clone(), self.clock.clone())
            .unwrap_or_else(|e| panic!("open of the damaged log failed: {e}"))
    }

    fn active_segment(&self) -> u64 {
        self.batches.last().expect("batches").segment
    }
}

fn segment_file(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn read_all(log: &Log) -> Vec<StoredRecord> {
    log.read(log.first_offset(), usize::MAX)
        .unwrap_or_else(|e| panic!("read of the whole log failed: {e}"))
        .iter()
        .flat_map(Batch::records)
        .collect()
}

/// Asserts that `got` is exactly the appended records with offsets `0..n`.
fn assert_records(got: &[StoredRecord], want: &[(Record, i64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: record count");
    for (i, (g, (w, ts))) in got.iter().zip(want).enumerate() {
        assert_eq!(g.offset, Offset(i as u64), "{what}: offset");
        assert_eq!(g.timestamp_ms, *ts, "{what}: time of {i}");
        assert_eq!(g.key, w.key, "{what}: key of {i}");
        assert_eq!(g.headers, w.headers, "{what}: headers of {i}");
        assert_eq!(g.value, w.value, "{what}: value of {i}");
    }
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).expect("read file");
    bytes[at as usize] ^= 0xFF;
    fs::write(path, bytes).expect("write file");
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open file")
        .set_len(len)
        .expect("truncate file");
}

/// One log segment, ten batches of assorted records, and a small last batch.
fn single_segment_log() -> Built {
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let mut batches = Vec::new();
    for i in 0..10u8 {
        let n = usize::from(i % 3) + 1;
        batches.push(
            (0..n)
                .map(|j| {
                    let mut r = Record::new(vec![i.wrapping_mul(31) ^ j as u8; 20 + 17 * j]);
                    if (i + j as u8).is_multiple_of(2) {
                        r = r.with_key(format!("key-{i}-{j}"));
                    }
                    if i % 4 == 1 {
                        r = r.with_header("trace", vec![i; 5]).with_header("ü", "");
                    }
                    r
                })
                .collect(),
        );
    }
    // The last batch: three small records, about 200 bytes in all.
    batches.push(vec![
        Record::new(vec![0xA5; 40]).with_key("last-0"),
        Record::new(vec![0x5A; 40]).with_header("h", "v"),
        Record::new(vec![0x00; 40]).with_key(""),
    ]);
    let b = Built::new(config, batches, &[5, 0, 12]);
    assert!(
        b.batches.iter().all(|p| p.segment == 0),
        "expected a single segment"
    );
    let last = b.batches.last().expect("batches");
    assert!((150..=300).contains(&(last.end - last.start)), "{last:?}");
    b
}

/// Opens a damaged copy whose batch `cut` (in the active segment) and all
/// after it must be gone, and checks the repair: earlier records intact,
/// `next_offset` at the cut, the truncation reported (or nothing reported
/// when the file already ended at a batch boundary), and new appends land at
/// the cut and survive another reopen.
fn check_cut_at(b: &Built, work: &Path, cut: BatchPos, truncation_expected: bool, what: &str) {
    let seg = segment_file(work, b.active_segment(), "log");
    let len_before = fs::metadata(&seg).expect("stat segment").len();
    let log = b.open(work);
    let rec = log.recovery().clone();
    if truncation_expected {
        assert_eq!(rec.truncations.len(), 1, "{what}: {rec:?}");
        let t = &rec.truncations[0];
        assert_eq!(t.path, seg, "{what}: truncated file");
        assert_eq!(t.position, cut.start, "{what}: truncation position");
        assert_eq!(
            t.bytes_removed,
            len_before - cut.start,
            "{what}: bytes removed"
        );
        assert!(!t.reason.is_empty(), "{what}: a truncation gives a reason");
    } else {
        assert!(rec.is_clean(), "{what}: {rec:?}");
    }
    assert!(rec.segments_removed.is_empty(), "{what}: {rec:?}");
    assert_eq!(
        rec.next_offset,
        Offset(cut.base),
        "{what}: reported next offset"
    );
    assert_eq!(log.first_offset(), Offset(0), "{what}");
    assert_eq!(log.next_offset(), Offset(cut.base), "{what}: next offset");
    assert_eq!(
        log.segments().last().expect("active").size_bytes,
        cut.start,
        "{what}: segment size"
    );
    assert_eq!(
        fs::metadata(&seg).expect("stat").len(),
        cut.start,
        "{what}: file length"
    );
    let kept = &b.records[..cut.base as usize];
    assert_records(&read_all(&log), kept, what);
    assert!(
        log.read(Offset(cut.base), 1)
            .expect("read at end")
            .is_empty(),
        "{what}"
    );
    assert!(
        log.read(Offset(cut.base + 1), 1).is_err(),
        "{what}: read past the end"
    );

    // The log goes on from the cut, and keeps what it is given.
    b.clock.advance_ms(1);
    let fresh = Record::new("after recovery").with_key("k");
    let receipt = log.append(fresh.clone()).expect("append after recovery");
    assert_eq!(
        receipt.base_offset,
        Offset(cut.base),
        "{what}: offset after recovery"
    );
    assert!(
        receipt.timestamp_ms >= kept.last().map_or(i64::MIN, |(_, ts)| *ts),
        "{what}: time went backwards"
    );
    log.close().expect("close");
    let log = b.open(work);
    assert!(log.recovery().is_clean(), "{what}: {:?}", log.recovery());
    let mut want = kept.to_vec();
    want.push((fresh, receipt.timestamp_ms));
    assert_records(&read_all(&log), &want, what);
    assert_eq!(log.next_offset(), Offset(cut.base + 1), "{what}");
    log.close().expect("close");
}

#[test]
fn torn_last_batch_is_cut_off_at_every_length() {
    // Proves: whatever byte a write of the last batch was torn at, open
    // succeeds, every earlier record reads back as appended, the partial
    // batch is gone (next_offset is its base offset) and the cut is reported
    // (a file ending exactly at a batch boundary needs no repair), and the
    // log then appends at that offset and keeps the append across a reopen.
    let b = single_segment_log();
    let last = *b.batches.last().expect("batches");
    for p in last.start..last.end {
        let work = b.copy();
        truncate(&segment_file(work.path(), last.segment, "log"), p);
        check_cut_at(
            &b,
            work.path(),
            last,
            p > last.start,
            &format!("torn at byte {p}"),
        );
    }
}

#[test]
fn corrupt_byte_in_last_batch_is_cut_off() {
    // Proves: a flipped byte anywhere in the last batch (length, CRC, header
    // fields or record bytes) is detected on open; the batch is cut off and
    // reported, earlier records are intact, and appends go on from there.
    let b = single_segment_log();
    let last = *b.batches.last().expect("batches");
    for at in last.start..last.end {
        let work = b.copy();
        flip_byte(&segment_file(work.path(), last.segment, "log"), at);
        check_cut_at(&b, work.path(), last, true, &format!("flipped byte {at}"));
    }
}

#[test]
fn corrupt_byte_in_middle_batch_ends_the_active_segment_there() {
    // Proves: a flipped byte anywhere in a batch in the middle of the active
    // segment makes recovery cut the segment at that batch: records before it
    // are intact, nothing from that batch on is returned (the intact batches
    // after it are not trusted either, as the log must stay contiguous), the
    // truncation is reported, and appends go on from the cut.
    let b = single_segment_log();
    let mid = b.batches[b.batches.len() / 2];
    assert!(mid.base > 0 && mid.end < b.batches.last().expect("batches").start);
    for at in mid.start..mid.end {
        let work = b.copy();
        flip_byte(&segment_file(work.path(), mid.segment, "log"), at);
        check_cut_at(&b, work.path(), mid, true, &format!("flipped byte {at}"));
    }
}

/// Several sealed segments with sparse indexes, and distinct and repeated
/// timestamps.
fn multi_segment_log() -> Built {
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes_max: 1024,
        index_interval_bytes: 200,
        batch_bytes_max: 1000,
        record_bytes_max: 1000,
        ..LogConfig::default()
    };
    let batches = (0..60u8)
        .map(|i| {
            (0..usize::from(i % 3) + 1)
                .map(|j| {
                    Record::new(vec![i ^ (j as u8); 15 + usize::from(i % 5) * 13])
                        .with_key(format!("{i}/{j}"))
                })
                .collect()
        })
        .collect();
    let b = Built::new(config, batches, &[3, 0, 7, 1, 0, 20]);
    let sealed = sealed_segments(&b);
    assert!(
        sealed.len() >= 4,
        "want several sealed segments: {sealed:?}"
    );
    b
}

fn sealed_segments(b: &Built) -> Vec<u64> {
    let active = b.active_segment();
    let mut bases: Vec<u64> = b.batches.iter().map(|p| p.segment).collect();
    bases.dedup();
    bases.retain(|&s| s != active);
    bases
}

/// Every answer the log gives matches what was appended: the whole log,
/// a read from every offset, and a time lookup at every instant in range.
fn assert_answers_right(b: &Built, log: &Log, what: &str) {
    assert_records(&read_all(log), &b.records, what);
    let next = b.records.len() as u64;
    assert_eq!(log.next_offset(), Offset(next), "{what}");
    for o in 0..next {
        let batches = log
            .read(Offset(o), 0)
            .unwrap_or_else(|e| panic!("{what}: read({o}): {e}"));
        let r = batches
            .iter()
            .flat_map(Batch::records)
            .find(|r| r.offset == Offset(o))
            .unwrap_or_else(|| panic!("{what}: read({o}) did not return offset {o}"));
        let (w, ts) = &b.records[o as usize];
        assert_eq!(
            (&r.value, r.timestamp_ms),
            (&w.value, *ts),
            "{what}: offset {o}"
        );
    }
    let first_ts = b.records.first().expect("records").1;
    let last_ts = b.records.last().expect("records").1;
    for t in first_ts - 2..=last_ts + 2 {
        let want = b
            .records
            .iter()
            .position(|(_, ts)| *ts >= t)
            .map(|i| Offset(i as u64));
        let got = log
            .offset_for_timestamp(t)
            .unwrap_or_else(|e| panic!("{what}: offset_for_timestamp({t}): {e}"));
        assert_eq!(got, want, "{what}: offset_for_timestamp({t})");
    }
}

/// Opens a copy whose index files of sealed segment `base` were damaged by
/// `damage`, and checks that the index was rebuilt, reported, written back
/// as before, and that every answer is right before and after a reopen.
fn check_index_rebuilt(b: &Built, base: u64, what: &str, damage: impl FnOnce(&Path)) {
    let work = b.copy();
    damage(work.path());
    let log = b.open(work.path());
    let rec = log.recovery().clone();
    assert!(
        rec.is_clean(),
        "{what}: index damage must not cut data: {rec:?}"
    );
    let stem = format!("{base:020}");
    assert!(
        rec.indexes_rebuilt
            .iter()
            .any(|p| p.file_stem().and_then(|s| s.to_str()) == Some(stem.as_str())),
        "{what}: rebuilt index of {base} not reported: {rec:?}"
    );
    assert_eq!(rec.indexes_rebuilt.len(), 1, "{what}: {rec:?}");
    assert_answers_right(b, &log, what);
    for ext in ["index", "timeindex"] {
        let rebuilt = fs::read(segment_file(work.path(), base, ext))
            .unwrap_or_else(|e| panic!("{what}: no rebuilt .{ext}: {e}"));
        let pristine = fs::read(segment_file(b.dir.path(), base, ext)).expect("pristine index");
        assert_eq!(
            rebuilt, pristine,
            "{what}: rebuilt .{ext} differs from the original"
        );
    }
    log.close().expect("close");
    let log = b.open(work.path());
    assert!(log.recovery().is_clean(), "{what}: {:?}", log.recovery());
    assert!(
        log.recovery().indexes_rebuilt.is_empty(),
        "{what}: rebuilt twice"
    );
    assert_records(&read_all(&log), &b.records, what);
    log.close().expect("close");
}

#[test]
fn lost_or_damaged_index_files_are_rebuilt() {
    // Proves: for every sealed segment whose `.index` or `.timeindex` is
    // missing, empty, zeroed, cut short or overlong (or both are missing),
    // open succeeds without touching the data, names the rebuilt index in
    // `recovery().indexes_rebuilt`, writes the index files back exactly as
    // they were, and reads from every offset and time lookups at every
    // instant give the right answers, then and after another reopen.
    let b = multi_segment_log();
    {
        // The undamaged copy opens clean and answers right.
        let work = b.copy();
        let log = b.open(work.path());
        assert!(log.recovery().is_clean() && log.recovery().indexes_rebuilt.is_empty());
        assert_answers_right(&b, &log, "undamaged");
    }
    for base in sealed_segments(&b) {
        for ext in ["index", "timeindex"] {
            let len = fs::metadata(segment_file(b.dir.path(), base, ext))
                .expect("index file")
                .len();
            check_index_rebuilt(&b, base, &format!("{base}.{ext} deleted"), |d| {
                fs::remove_file(segment_file(d, base, ext)).expect("delete")
            });
            check_index_rebuilt(&b, base, &format!("{base}.{ext} emptied"), |d| {
                truncate(&segment_file(d, base, ext), 0)
            });
            check_index_rebuilt(&b, base, &format!("{base}.{ext} zeroed"), |d| {
                fs::write(segment_file(d, base, ext), vec![0u8; len as usize]).expect("write")
            });
            check_index_rebuilt(&b, base, &format!("{base}.{ext} short by 1"), |d| {
                truncate(&segment_file(d, base, ext), len - 1)
            });
            check_index_rebuilt(&b, base, &format!("{base}.{ext} extended"), |d| {
                let path = segment_file(d, base, ext);
                let mut bytes = fs::read(&path).expect("read");
                bytes.extend_from_slice(&[0xEE; 12]);
                fs::write(path, bytes).expect("write")
            });
        }
        check_index_rebuilt(&b, base, &format!("{base} both indexes deleted"), |d| {
            fs::remove_file(segment_file(d, base, "index")).expect("delete");
            fs::remove_file(segment_file(d, base, "timeindex")).expect("delete");
        });
    }
}

#[test]
fn flipped_index_byte_is_detected_and_rebuilt() {
    // Proves: whichever single byte of a sealed segment's `.index` or
    // `.timeindex` is flipped, the damage is detected (the files carry a
    // CRC-32C), open cuts no data, reports the rebuild of exactly that
    // segment's index, rewrites the files byte-identical to the originals,
    // and every read and time lookup answers right.
    let b = multi_segment_log();
    let base = sealed_segments(&b)[1];
    for ext in ["index", "timeindex"] {
        let len = fs::metadata(segment_file(b.dir.path(), base, ext))
            .expect("index file")
            .len();
        for at in 0..len {
            let what = format!("{base}.{ext} byte {at} flipped");
            check_index_rebuilt(&b, base, &what, |dir| {
                flip_byte(&segment_file(dir, base, ext), at)
            });
        }
    }
}

#[test]
fn absurd_segment_names_and_headers_are_refused_without_panic() {
    // Proves: a segment file whose name (and header) claims a base offset
    // near u64::MAX makes open fail with a typed `Corrupt` error instead of
    // overflowing offset arithmetic; and a segment file of garbage is cut
    // back to an empty active segment, not trusted.
    let dir = tempfile::tempdir().expect("tempdir");
    let base = u64::MAX - 3;
    let mut header = Vec::new();
    header.extend_from_slice(b"EDDYLOG\0");
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&base.to_le_bytes());
    header.extend_from_slice(&[0xAB; 100]);
    fs::write(segment_file(dir.path(), base, "log"), &header).expect("write segment");
    match Log::open(dir.path(), LogConfig::default()) {
        Err(eddy_log::LogError::Corrupt { reason, .. }) => {
            assert!(reason.contains("beyond the largest offset"), "{reason}")
        }
        other => panic!("expected a Corrupt error, got {other:?}"),
    }

    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(segment_file(dir.path(), 0, "log"), vec![0x5Au8; 4096]).expect("write garbage");
    let log = Log::open(dir.path(), LogConfig::default()).expect("open over garbage");
    assert_eq!(log.next_offset(), Offset(0));
    assert_eq!(log.recovery().truncations.len(), 1, "{:?}", log.recovery());
    log.append(Record::new("after"))
        .expect("append after repair");
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn prewritten_zero_tail_ends_the_data_and_stale_bytes_never_revive() {
    // Proves the recovery rule for pre-written segments (fsync=always with
    // `preallocate_segments`): a zero length field ends a segment's data.
    // (a) An active segment followed by zeros (a crash while appending into
    // a pre-written file) opens with nothing to report, every record intact,
    // and the zeros cut off. (b) If bytes of a batch lie beyond the zeros (a
    // write whose first page never reached the disk, so never fsynced),
    // they are cut too, and reported: after new appends land where they
    // were, no reopen ever returns them.
    let b = single_segment_log();
    let seg = b.active_segment();
    let data_end = b.batches.last().expect("batches").end;
    let next = b.records.len() as u64;

    // (a) zeros after the data.
    let work = b.copy();
    let path = segment_file(work.path(), seg, "log");
    truncate(&path, data_end + 64 * 1024);
    let log = b.open(work.path());
    assert!(log.recovery().is_clean(), "{:?}", log.recovery());
    assert_eq!(log.next_offset(), Offset(next));
    assert_records(&read_all(&log), &b.records, "zero tail");
    assert_eq!(
        fs::metadata(&path).expect("stat").len(),
        data_end,
        "zeros cut"
    );
    drop(log);

    // (b) zeros, then — exactly where the next eight appends will end — a
    // well-formed batch with the very offset that would come next: what a
    // crash can leave of writes that never reached the disk in order. Were
    // the tail kept, a reopen after those appends would return the ghost.
    let limits = eddy_log::format::Limits {
        record_bytes_max: b.config.record_bytes_max,
        batch_bytes_max: b.config.batch_bytes_max,
    };
    let new_records: Vec<Record> = (0..8u8)
        .map(|i| Record::new(vec![i; 60]).with_key(format!("new-{i}")))
        .collect();
    let new_bytes: u64 = new_records
        .iter()
        .map(|r| {
            let enc =
                eddy_log::format::encode_batch(std::slice::from_ref(r), limits).expect("encode");
            enc.as_bytes().len() as u64
        })
        .sum();
    let mut ghost = eddy_log::format::encode_batch(&[Record::new("ghost")], limits).expect("ghost");
    ghost.seal(next + 8, START_MS + 1_000_000);
    let work = b.copy();
    let path = segment_file(work.path(), seg, "log");
    truncate(&path, data_end + new_bytes);
    let mut f = OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut f, ghost.as_bytes()).expect("write ghost batch");
    drop(f);
    let log = b.open(work.path());
    assert_eq!(log.next_offset(), Offset(next));
    assert_records(&read_all(&log), &b.records, "ghost after zeros");
    let cuts = &log.recovery().truncations;
    assert_eq!(cuts.len(), 1, "non-zero bytes after the zeros are reported");
    assert_eq!(cuts[0].position, data_end, "{cuts:?}");
    let mut appended = b.records.clone();
    for r in new_records {
        let receipt = log.append(r.clone()).expect("append");
        appended.push((r, receipt.timestamp_ms));
    }
    log.close().expect("close");
    let log = b.open(work.path());
    assert_records(&read_all(&log), &appended, "after new appends");
    assert_eq!(
        log.next_offset(),
        Offset(appended.len() as u64),
        "the ghost revived"
    );
}
