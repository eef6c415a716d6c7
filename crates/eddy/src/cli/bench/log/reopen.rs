//! Reopen time: how long `Log::open` takes on a clean log of about 1 GiB.

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
    pub segments: usize,
    /// Each open's time, fastest first.
    pub times: Vec<Duration>,
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
    let (records, log_bytes) = fill(dir, payload_bytes)?;
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
    Ok(Reopen {
        records,
        log_bytes,
        segments,
        times,
    })
}

/// Fills a fresh log with fsync `never`; returns its records and bytes.
fn fill(dir: &Path, payload_bytes: u64) -> Result<(u64, u64)> {
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let log = Log::open(dir, config).with_context(|| format!("open a log in {}", dir.display()))?;
    let batch = vec![Record::new(Bytes::from(pattern(VALUE_BYTES))); BATCH_RECORDS];
    let batches = payload_bytes.div_ceil((VALUE_BYTES * BATCH_RECORDS) as u64);
    for _ in 0..batches {
        log.append_batch(&batch)
            .with_context(|| format!("fill the log in {}", dir.display()))?;
    }
    let log_bytes = log.segments().iter().map(|s| s.size_bytes).sum();
    log.close()
        .with_context(|| format!("close the log in {}", dir.display()))?;
    Ok((batches * BATCH_RECORDS as u64, log_bytes))
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
