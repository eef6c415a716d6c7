//! Threads appending one batch again and again to a fresh log for a fixed
//! time: each workload of `eddy bench log`, and the log baseline of
//! `eddy bench broker`.

use std::path::Path;
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use eddy_log::{Log, LogConfig, LogStats, Record};

/// What the appender threads achieved together.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// Records acknowledged by `append_batch`, all appenders together.
    pub records: u64,
    /// Growth of the segment files (headers and framing included).
    pub disk_bytes: u64,
    /// Batches appended and fsyncs completed, from the log's counters.
    pub stats: LogStats,
    /// From the start of the appenders until the last one returned.
    pub elapsed: Duration,
}

/// Appends `batch` from `appenders` threads sharing one fresh log in `dir`,
/// opened with `config`, until `duration` has passed; then closes the log.
pub fn run(
    dir: &Path,
    config: LogConfig,
    batch: &[Record],
    appenders: usize,
    duration: Duration,
) -> Result<Appended> {
    let log = Log::open(dir, config).with_context(|| format!("open a log in {}", dir.display()))?;
    let start = Instant::now();
    let deadline = start + duration;
    let records = thread::scope(|scope| {
        let appenders: Vec<_> = (0..appenders)
            .map(|_| scope.spawn(|| append_until(&log, batch, deadline)))
            .collect();
        appenders.into_iter().map(join).sum::<Result<u64>>()
    })?;
    let elapsed = start.elapsed();
    let disk_bytes = log.segments().iter().map(|s| s.size_bytes).sum();
    let stats = log.stats();
    log.close()
        .with_context(|| format!("close the log in {}", dir.display()))?;
    Ok(Appended {
        records,
        disk_bytes,
        stats,
        elapsed,
    })
}

/// One appender: appends `batch` again and again until `deadline`.
fn append_until(log: &Log, batch: &[Record], deadline: Instant) -> Result<u64> {
    let mut records = 0;
    while Instant::now() < deadline {
        log.append_batch(batch).context("append a batch")?;
        records += batch.len() as u64;
    }
    Ok(records)
}

fn join(appender: ScopedJoinHandle<'_, Result<u64>>) -> Result<u64> {
    appender
        .join()
        .map_err(|_| anyhow!("an appender thread panicked"))?
}
