//! Append throughput: every combination of record size, batch size,
//! appender count and fsync policy, each on a fresh log for a fixed time.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use eddy_log::{FsyncPolicy, LogConfig, LogStats, Record};

use crate::cli::bench::appenders::{self, Appended};
use crate::cli::bench::disk::pattern;
use crate::cli::bench::{Scratch, units};

pub const VALUE_SIZES: [usize; 2] = [100, 1024];
pub const BATCH_SIZES: [usize; 2] = [1, 100];
pub const APPENDER_COUNTS: [usize; 2] = [1, 4];
pub const POLICIES: [FsyncPolicy; 3] = [
    FsyncPolicy::Always,
    FsyncPolicy::Interval { ms: 10 },
    FsyncPolicy::Never,
];

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub value_bytes: usize,
    pub batch_records: usize,
    pub appenders: usize,
    pub fsync: FsyncPolicy,
}

/// Every workload, by policy, then record size, batch size and appenders.
pub fn matrix() -> Vec<Workload> {
    let mut cells = Vec::new();
    for fsync in POLICIES {
        for value_bytes in VALUE_SIZES {
            for batch_records in BATCH_SIZES {
                for appenders in APPENDER_COUNTS {
                    cells.push(Workload {
                        value_bytes,
                        batch_records,
                        appenders,
                        fsync,
                    });
                }
            }
        }
    }
    cells
}

/// What one workload achieved.
#[derive(Debug, Clone, Copy)]
pub struct CellResult {
    pub workload: Workload,
    /// Records acknowledged by `append_batch`, all appenders together.
    pub records: u64,
    /// Growth of the segment files (headers and framing included).
    pub disk_bytes: u64,
    /// Batches appended and fsyncs completed, from the log's counters.
    pub stats: LogStats,
    /// From the start of the appenders until the last one returned.
    pub elapsed: Duration,
}

impl CellResult {
    pub fn records_per_sec(&self) -> f64 {
        units::per_sec(self.records, self.elapsed)
    }

    pub fn payload_mib_per_sec(&self) -> f64 {
        let payload = self.records * self.workload.value_bytes as u64;
        units::mib_per_sec(payload, self.elapsed)
    }

    pub fn disk_mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.disk_bytes, self.elapsed)
    }
}

/// The batches appended, built once so the appenders measure the log and
/// not the generator. Record values share one buffer per size.
struct Batches {
    batches: Vec<((usize, usize), Vec<Record>)>,
}

impl Batches {
    fn new() -> Batches {
        let mut batches = Vec::new();
        for value_bytes in VALUE_SIZES {
            let value = Bytes::from(pattern(value_bytes));
            for batch_records in BATCH_SIZES {
                let batch = vec![Record::new(value.clone()); batch_records];
                batches.push(((value_bytes, batch_records), batch));
            }
        }
        Batches { batches }
    }

    fn get(&self, workload: &Workload) -> &[Record] {
        let key = (workload.value_bytes, workload.batch_records);
        self.batches
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, batch)| batch.as_slice())
            .expect("every workload's batch is built up front")
    }
}

/// Runs every workload for `cell_time` each, calling `on_cell` as each ends.
pub fn run_matrix(
    scratch: &Scratch,
    cell_time: Duration,
    mut on_cell: impl FnMut(&CellResult),
) -> Result<Vec<CellResult>> {
    let batches = Batches::new();
    let mut results = Vec::new();
    for (i, workload) in matrix().into_iter().enumerate() {
        let dir = scratch.join(&format!("append-{i:02}"));
        let result = run_cell(&dir, workload, batches.get(&workload), cell_time)
            .with_context(|| format!("run append workload {workload:?}"))?;
        fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
        on_cell(&result);
        results.push(result);
    }
    Ok(results)
}

/// Appends `batch` from `workload.appenders` threads sharing one fresh log
/// in `dir` until `duration` has passed.
fn run_cell(
    dir: &Path,
    workload: Workload,
    batch: &[Record],
    duration: Duration,
) -> Result<CellResult> {
    let config = LogConfig {
        fsync: workload.fsync,
        ..LogConfig::default()
    };
    let Appended {
        records,
        disk_bytes,
        stats,
        elapsed,
    } = appenders::run(dir, config, batch, workload.appenders, duration)?;
    Ok(CellResult {
        workload,
        records,
        disk_bytes,
        stats,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_covers_every_combination_once() {
        // Proves the 2 × 2 × 2 × 3 cells are all there, without repeats.
        let cells = matrix();
        assert_eq!(cells.len(), 24);
        for (i, a) in cells.iter().enumerate() {
            assert!(!cells[i + 1..].contains(a), "{a:?} twice");
        }
    }
}
