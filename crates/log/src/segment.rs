//! One segment: a file of batches starting at a base offset, with its
//! sparse index. Reading, scanning and recovering a single file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use bytes::Bytes;

use crate::error::{IoContext, LogError, Result};
use crate::format::{
    Batch, BatchDefect, SEGMENT_HEADER_BYTES, check_segment_header, segment_header,
};
use crate::index::{IndexEntry, SegmentIndex};
use crate::report::{RecoveryReport, Truncation};
use crate::spare::SpareMaker;

/// No timestamp yet (an empty segment).
pub(crate) const NO_TIMESTAMP: i64 = i64::MIN;
const SCAN_WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// File name of a segment's data, offset index or time index.
pub(crate) fn segment_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// The base offset encoded in a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// A segment file and what is known about its contents. Fields change only
/// under the log's state lock; readers see them through atomics and the
/// index lock, and read only below `len`.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Bytes of the header and complete batches; writes land past it.
    len: AtomicU64,
    next_offset: AtomicU64,
    first_ts: AtomicI64,
    last_ts: AtomicI64,
    index: RwLock<SegmentIndex>,
    /// The file was pre-written with zeros to `segment_bytes_max`; sealing
    /// cuts it to `len`.
    pub(crate) prewritten: bool,
}

/// What a scan of batches found.
struct Scan {
    end: u64,
    next_offset: u64,
    last_ts: i64,
    defect: Option<(u64, String)>,
}

impl Segment {
    /// Creates an empty segment file at `base` (replacing any file there).
    pub(crate) fn create(dir: &Path, base: u64, fsync: bool) -> Result<Segment> {
        let path = segment_path(dir, base, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .ctx(|| format!("create segment {}", path.display()))?;
        file.write_all_at(&segment_header(base), 0)
            .ctx(|| format!("write segment header {}", path.display()))?;
        if fsync {
            file.sync_all()
                .ctx(|| format!("fsync new segment {}", path.display()))?;
        }
        Ok(Segment::new(base, path, file, SEGMENT_HEADER_BYTES as u64))
    }

    /// Turns the ready spare (a file of zeros) into the segment at `base`;
    /// `None` if no spare is ready. The caller fsyncs the directory.
    pub(crate) fn create_from_spare(
        dir: &Path,
        base: u64,
        spare: &SpareMaker,
    ) -> Result<Option<Segment>> {
        let path = segment_path(dir, base, "log");
        if !spare
            .take_into(&path)
            .ctx(|| format!("rename the spare segment to {}", path.display()))?
        {
            return Ok(None);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .ctx(|| format!("open segment {}", path.display()))?;
        file.write_all_at(&segment_header(base), 0)
            .ctx(|| format!("write segment header {}", path.display()))?;
        file.sync_data()
            .ctx(|| format!("fsync new segment {}", path.display()))?;
        let mut seg = Segment::new(base, path, file, SEGMENT_HEADER_BYTES as u64);
        seg.prewritten = true;
        Ok(Some(seg))
    }

    fn new(base: u64, path: PathBuf, file: File, len: u64) -> Segment {
        Segment {
            base,
            path,
            file,
            len: AtomicU64::new(len),
            next_offset: AtomicU64::new(base),
            first_ts: AtomicI64::new(NO_TIMESTAMP),
            last_ts: AtomicI64::new(NO_TIMESTAMP),
            index: RwLock::new(SegmentIndex::default()),
            prewritten: false,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn first_ts(&self) -> i64 {
        self.first_ts.load(Ordering::Acquire)
    }

    pub(crate) fn last_ts(&self) -> i64 {
        self.last_ts.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next_offset() == self.base
    }

    pub(crate) fn index(&self) -> RwLockReadGuard<'_, SegmentIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Byte position of the batch holding `offset`, or of an earlier batch.
    pub(crate) fn position_for_offset(&self, offset: u64) -> u64 {
        let rel = u32::try_from(offset.saturating_sub(self.base)).unwrap_or(u32::MAX);
        self.index()
            .floor_offset(rel)
            .map_or(SEGMENT_HEADER_BYTES as u64, |e| u64::from(e.position))
    }

    /// Byte position of a batch at or before the first record at or after `ts`.
    pub(crate) fn position_for_time(&self, ts: i64) -> u64 {
        self.index()
            .floor_time(ts)
            .map_or(SEGMENT_HEADER_BYTES as u64, |e| u64::from(e.position))
    }

    /// Records that a batch was written at the current end. Called under the
    /// log's state lock after the bytes are in the file.
    pub(crate) fn note_append(
        &self,
        batch_bytes: u64,
        next_offset: u64,
        base_offset: u64,
        ts: i64,
        index_interval_bytes: u32,
    ) {
        let pos = self.len();
        {
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            let due = index.entries().last().is_none_or(|last| {
                pos - u64::from(last.position) >= u64::from(index_interval_bytes)
            });
            if due {
                index.push(IndexEntry {
                    relative_offset: (base_offset - self.base) as u32,
                    position: pos as u32,
                    timestamp_ms: ts,
                });
            }
        }
        if self.first_ts() == NO_TIMESTAMP {
            self.first_ts.store(ts, Ordering::Release);
        }
        self.last_ts.store(ts, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.len.store(pos + batch_bytes, Ordering::Release);
    }

    /// Writes the index files of a segment that is being sealed. They are
    /// derived data, checked and rebuilt on open, so they are not fsynced.
    pub(crate) fn write_index_files(&self) -> io::Result<()> {
        let index = self.index();
        fs::write(
            segment_path_sibling(&self.path, "index"),
            index.offset_file_bytes(),
        )?;
        fs::write(
            segment_path_sibling(&self.path, "timeindex"),
            index.time_file_bytes(),
        )
    }

    /// Deletes the segment's files (data first, so a crash leaves only
    /// orphaned index files, which open removes).
    pub(crate) fn delete_files(&self) -> io::Result<()> {
        fs::remove_file(&self.path)?;
        remove_index_files(&self.path)
    }

    /// Opens and checks the segment at `base`. The active segment is scanned
    /// whole; a sealed one is trusted up to its last index entry if its index
    /// files are sound, and scanned from there. A torn or corrupt tail is cut
    /// off and reported. Returns `None` for a sealed segment whose header is
    /// unreadable (the caller ends the log before it).
    pub(crate) fn recover(
        dir: &Path,
        base: u64,
        active: bool,
        index_interval_bytes: u32,
        report: &mut RecoveryReport,
    ) -> Result<Option<Segment>> {
        let path = segment_path(dir, base, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .ctx(|| format!("open segment {}", path.display()))?;
        let file_len = file
            .metadata()
            .ctx(|| format!("stat segment {}", path.display()))?
            .len();
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        let header_ok = file_len >= SEGMENT_HEADER_BYTES as u64
            && file.read_exact_at(&mut header, 0).is_ok()
            && check_segment_header(&header, base).is_ok();
        if !header_ok {
            let reason = check_segment_header(&header[..file_len.min(24) as usize], base)
                .err()
                .unwrap_or_else(|| "unreadable segment header".into());
            if !active {
                return Ok(None);
            }
            // A segment created just before a crash: start it afresh. A file
            // of zeros is a spare renamed in before its header was written:
            // it never held data, so there is nothing to report.
            if !is_zero(&file, 0, file_len).ctx(|| format!("read {}", path.display()))? {
                report.truncations.push(Truncation {
                    path: path.clone(),
                    position: 0,
                    bytes_removed: file_len,
                    reason,
                });
            }
            drop(file);
            let seg = Segment::create(dir, base, true)?;
            return Ok(Some(seg));
        }

        let mut seg = Segment::new(base, path.clone(), file, SEGMENT_HEADER_BYTES as u64);
        if !active {
            // Missing or damaged index files fail to load and are rebuilt below.
            if let Ok(index) = seg.load_index_files(file_len) {
                let last = *index.entries().last().expect("from_files refuses empty");
                *seg.index.get_mut().unwrap_or_else(|p| p.into_inner()) = index;
                let scan = seg.scan_from(
                    u64::from(last.position),
                    last.relative_offset as u64 + base,
                    last.timestamp_ms,
                    file_len,
                    index_interval_bytes,
                    active,
                )?;
                if scan.defect.is_none() {
                    seg.cut_zero_tail(scan.end, file_len)?;
                    seg.finish_scan(&scan);
                    return Ok(Some(seg));
                }
            }
            *seg.index.get_mut().unwrap_or_else(|p| p.into_inner()) = SegmentIndex::default();
        }
        let scan = seg.scan_from(
            SEGMENT_HEADER_BYTES as u64,
            base,
            NO_TIMESTAMP,
            file_len,
            index_interval_bytes,
            active,
        )?;
        seg.cut_zero_tail(scan.end, file_len)?;
        if let Some((position, reason)) = &scan.defect {
            report.truncations.push(Truncation {
                path: path.clone(),
                position: *position,
                bytes_removed: file_len - position,
                reason: reason.clone(),
            });
        }
        seg.finish_scan(&scan);
        if !active && scan.defect.is_none() {
            // Index files were missing, damaged, or disagreed with the data.
            // The index in memory is right; if the files cannot be written
            // (a full disk), the next open rebuilds them again.
            let _ = seg.write_index_files();
            report
                .indexes_rebuilt
                .push(segment_path(dir, base, "index"));
        }
        Ok(Some(seg))
    }

    /// Cuts the file after `end`, the end of its valid data. What follows
    /// is either a defect (reported by the caller) or the zeros of a
    /// pre-written segment — or, after a crash, bytes of a batch whose
    /// first page never reached the disk, so never fsynced nor
    /// acknowledged. Cutting them means no stale byte can ever be read as
    /// data once new batches are appended here.
    fn cut_zero_tail(&self, end: u64, file_len: u64) -> Result<()> {
        if end < file_len {
            self.file
                .set_len(end)
                .ctx(|| format!("truncate segment {}", self.path.display()))?;
            self.file
                .sync_all()
                .ctx(|| format!("fsync truncated segment {}", self.path.display()))?;
        }
        Ok(())
    }

    fn finish_scan(&mut self, scan: &Scan) {
        *self.len.get_mut() = scan.end;
        *self.next_offset.get_mut() = scan.next_offset;
        // The first index entry is always the segment's first batch.
        *self.first_ts.get_mut() = self
            .index
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .entries()
            .first()
            .map_or(NO_TIMESTAMP, |e| e.timestamp_ms);
        *self.last_ts.get_mut() = scan.last_ts;
    }

    fn load_index_files(&self, file_len: u64) -> std::result::Result<SegmentIndex, String> {
        let offsets =
            fs::read(segment_path_sibling(&self.path, "index")).map_err(|e| e.to_string())?;
        let times =
            fs::read(segment_path_sibling(&self.path, "timeindex")).map_err(|e| e.to_string())?;
        SegmentIndex::from_files(&offsets, &times, SEGMENT_HEADER_BYTES as u32, file_len)
    }

    /// Walks batches from `start` (a batch boundary holding `expected`) to
    /// `end`, checking each and adding index entries past the ones present.
    /// Stops at the first defect.
    fn scan_from(
        &mut self,
        start: u64,
        expected: u64,
        prev_ts: i64,
        end: u64,
        index_interval_bytes: u32,
        active: bool,
    ) -> Result<Scan> {
        let mut window = Window::default();
        let mut scan = Scan {
            end: start,
            next_offset: expected,
            last_ts: prev_ts,
            defect: None,
        };
        let index = self.index.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut pos = start;
        while pos < end {
            let batch =
                match window.batch_at(&self.file, &self.path, pos, end, SCAN_WINDOW_BYTES)? {
                    Ok(b) => b,
                    Err(BatchDefect::Torn) => {
                        scan.defect = Some((pos, "torn batch at the end of the segment".into()));
                        break;
                    }
                    Err(BatchDefect::End) => {
                        // The end of a pre-written active segment's data,
                        // if only zeros follow. Anything else is a defect:
                        // a sealed segment was cut to its data when sealed.
                        if !active {
                            scan.defect =
                                Some((pos, "zero length field in a sealed segment".into()));
                        } else if !is_zero(&self.file, pos, end)
                            .ctx(|| format!("read {}", self.path.display()))?
                        {
                            scan.defect = Some((
                                pos,
                                "zero length field followed by other bytes (writes that reached \
                                 the disk out of order, never fsynced)"
                                    .into(),
                            ));
                        }
                        break;
                    }
                    Err(BatchDefect::Corrupt(why)) => {
                        scan.defect = Some((pos, why));
                        break;
                    }
                };
            let h = *batch.header();
            if h.base_offset != scan.next_offset {
                scan.defect = Some((
                    pos,
                    format!(
                        "batch has base offset {}, expected {}",
                        h.base_offset, scan.next_offset
                    ),
                ));
                break;
            }
            if scan.last_ts != NO_TIMESTAMP && h.first_timestamp_ms < scan.last_ts {
                scan.defect = Some((pos, "batch timestamp goes backwards".into()));
                break;
            }
            if h.next_offset() - self.base > u64::from(u32::MAX) || pos > u64::from(u32::MAX) {
                scan.defect = Some((pos, "segment exceeds the 32-bit index range".into()));
                break;
            }
            let due = index
                .entries()
                .last()
                .is_none_or(|l| pos - u64::from(l.position) >= u64::from(index_interval_bytes));
            if due {
                index.push(IndexEntry {
                    relative_offset: (h.base_offset - self.base) as u32,
                    position: pos as u32,
                    timestamp_ms: h.first_timestamp_ms,
                });
            }
            scan.last_ts = h.last_timestamp_ms;
            scan.next_offset = h.next_offset();
            pos += h.total_bytes() as u64;
            scan.end = pos;
        }
        Ok(scan)
    }
}

fn segment_path_sibling(log_path: &Path, ext: &str) -> PathBuf {
    log_path.with_extension(ext)
}

/// Whether bytes `from..to` of `file` are all zero.
fn is_zero(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; SCAN_WINDOW_BYTES];
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Removes the index files that belong beside a segment, if present.
pub(crate) fn remove_index_files(log_path: &Path) -> io::Result<()> {
    for ext in ["index", "timeindex"] {
        match fs::remove_file(segment_path_sibling(log_path, ext)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A window of a segment file read into memory. Batches returned share its
/// buffer, so their bodies are copied once, from the file.
#[derive(Debug, Default)]
pub(crate) struct Window {
    start: u64,
    buf: Bytes,
}

impl Window {
    fn covers(&self, pos: u64, len: u64) -> bool {
        pos >= self.start && pos + len <= self.start + self.buf.len() as u64
    }

    fn fill(&mut self, file: &File, pos: u64, len: u64) -> io::Result<()> {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, pos)?;
        self.start = pos;
        self.buf = Bytes::from(buf);
        Ok(())
    }

    /// Reads and checks the batch at `pos`, which must end by `end`.
    /// The outer error is an I/O failure; the inner one a defect in the data.
    pub(crate) fn batch_at(
        &mut self,
        file: &File,
        path: &Path,
        pos: u64,
        end: u64,
        window_bytes: usize,
    ) -> Result<std::result::Result<Batch, BatchDefect>> {
        let avail = end.saturating_sub(pos);
        let head = (crate::format::BATCH_HEADER_BYTES as u64).min(avail);
        if !self.covers(pos, head) {
            self.fill(file, pos, (window_bytes as u64).max(head).min(avail))
                .ctx(|| format!("read {}", path.display()))?;
        }
        let off = (pos - self.start) as usize;
        let header = match crate::format::peek_batch_header(&self.buf[off..]) {
            Ok(h) => h,
            Err(d) => return Ok(Err(d)),
        };
        let total = header.total_bytes() as u64;
        if total > avail {
            return Ok(Err(BatchDefect::Torn));
        }
        if !self.covers(pos, total) {
            self.fill(file, pos, (window_bytes as u64).max(total).min(avail))
                .ctx(|| format!("read {}", path.display()))?;
        }
        let off = (pos - self.start) as usize;
        let data = self.buf.slice(off..off + total as usize);
        Ok(Batch::decode(&data))
    }
}

/// Turns a defect found while reading (not recovering) into an error.
pub(crate) fn corrupt(path: &Path, position: u64, defect: BatchDefect) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason: match defect {
            BatchDefect::Torn => "batch runs past the written end of the segment".into(),
            BatchDefect::Corrupt(why) => why,
            BatchDefect::End => "a zero length field inside the written data".into(),
        },
    }
}
