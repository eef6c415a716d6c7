//! Reopen time: how long `Log::open` takes on a clean log of about 1 GiB.
//!
//! The log is filled past the requested size until its active segment is
//! full, because open scans the active segment whole and trusts the sealed
//! ones' indexes: a full active segment is the slowest clean open.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use eddy_log::{FsyncPolicy, Log, LogConfig, Record};

use crate::cli::bench::disk::pattern;

/// Bytes of each record's value in the reopened log.
pub const VALUE_BYTES: usize = 1024;
/// Records per appended batch while filling the log.
pub const BATCH_RECORDS: usize = 100;
/// How many times the log is opened.
pub const OPENS: usize = 5;

/// The timed opens of one log.
#[derive(Debug, Clone)]
pub struct Reopen {
    pub records: u64,
    /// Bytes of the segment files.
    pub log_bytes: u64,
    /// Bytes of the active segment, which open scans whole.
    pub active_bytes: u64,
    pub segments: usize,
    /// Each open's time with the page cache warm, fastest first.
    pub times: Vec<Duration>,
    /// One open after dropping the page cache, where this process may
    /// (`/proc/sys/vm/drop_caches` needs root).
    pub cold: Option<Duration>,
}

impl Reopen {
    pub fn min(&self) -> Duration {
        self.times[0]
    }

    pub fn median(&self) -> Duration {
        self.times[self.times.len() / 2]
    }

    pub fn max(&self) -> Duration {
        self.times[self.times.len() - 1]
    }
}

/// Writes about `payload_bytes` of 1 KiB records to a log in `dir`, closes
/// it, then opens and closes it [`OPENS`] times, timing each open.
pub fn measure(dir: &Path, payload_bytes: u64) -> Result<Reopen> {
    let (records, log_bytes, active_bytes) = fill(dir, payload_bytes)?;
    let mut times = Vec::with_capacity(OPENS);
    let mut segments = 0;
    for _ in 0..OPENS {
        let start = Instant::now();
        let log = Log::open(dir, LogConfig::default())
            .with_context(|| format!("reopen the log in {}", dir.display()))?;
        times.push(start.elapsed());
        check_intact(&log, records)?;
        segments = log.segments().len();
        log.close()
            .with_context(|| format!("close the log in {}", dir.display()))?;
    }
    times.sort();
    let cold = if drop_page_cache() {
        let start = Instant::now();
        let log = Log::open(dir, LogConfig::default())
            .with_context(|| format!("reopen the log in {}", dir.display()))?;
        let cold = start.elapsed();
        check_intact(&log, records)?;
        log.close()
            .with_context(|| format!("close the log in {}", dir.display()))?;
        Some(cold)
    } else {
        None
    };
    Ok(Reopen {
        records,
        log_bytes,
        active_bytes,
        segments,
        times,
        cold,
    })
}

/// Asks the kernel to drop clean cached pages; false where not allowed.
/// The log was closed (and so fsynced) before, so its pages are clean.
fn drop_page_cache() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Fills a fresh log with fsync `never` to at least `payload_bytes` and
/// then until one more batch would roll the active segment. Returns its
/// records, its bytes and its active segment's bytes.
fn fill(dir: &Path, payload_bytes: u64) -> Result<(u64, u64, u64)> {
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let segment_bytes_max = config.segment_bytes_max;
    let log = Log::open(dir, config).with_context(|| format!("open a log in {}", dir.display()))?;
    let batch = vec![Record::new(Bytes::from(pattern(VALUE_BYTES))); BATCH_RECORDS];
    let wanted = payload_bytes.div_ceil((VALUE_BYTES * BATCH_RECORDS) as u64);
    let active_bytes = |log: &Log| log.segments().last().map_or(0, |s| s.size_bytes);
    let mut batches = 0u64;
    let mut batch_bytes = 0;
    loop {
        let before = active_bytes(&log);
        if batches >= wanted && before + batch_bytes > segment_bytes_max {
            break;
        }
        log.append_batch(&batch)
            .with_context(|| format!("fill the log in {}", dir.display()))?;
        batches += 1;
        batch_bytes = batch_bytes.max(active_bytes(&log).saturating_sub(before));
    }
    let log_bytes = log.segments().iter().map(|s| s.size_bytes).sum();
    let active = active_bytes(&log);
    log.close()
        .with_context(|| format!("close the log in {}", dir.display()))?;
    Ok((batches * BATCH_RECORDS as u64, log_bytes, active))
}

/// A clean close must reopen with nothing repaired and nothing lost.
fn check_intact(log: &Log, records: u64) -> Result<()> {
    let recovery = log.recovery();
    if !recovery.is_clean() || !recovery.indexes_rebuilt.is_empty() {
        bail!("reopening a cleanly closed log repaired it: {recovery:?}");
    }
    if log.next_offset().0 != records {
        bail!(
            "reopened log ends at offset {}, but {records} records were appended",
            log.next_offset()
        );
    }
    Ok(())
}
