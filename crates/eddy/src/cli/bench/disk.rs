//! The raw disk baseline: what the file system gives without any log on
//! top, measured in the same directory as the benchmark proper.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::units;

/// Buffer size of the sequential write.
pub const SEQUENTIAL_BUFFER_BYTES: usize = 1024 * 1024;
/// The write + fdatasync loops measured: (bytes per write, whether the
/// file's blocks were written before). Appending to a growing file makes
/// each fdatasync also commit the file system's journal (new size and
/// blocks); overwriting blocks written earlier does not. Comparing the two
/// at the size one group commit covers shows what a log's fsync costs.
pub const SYNC_WRITE_LOOPS: [(usize, bool); 3] =
    [(4096, false), (256 * 1024, false), (256 * 1024, true)];

/// Runs of the raw sequential write. A virtual disk's write cache makes
/// single runs vary several-fold, so it is measured more than once.
pub const SEQUENTIAL_RUNS: usize = 5;

/// Sequential writes of 1 MiB buffers to a fresh file, then one fsync,
/// repeated [`SEQUENTIAL_RUNS`] times.
#[derive(Debug, Clone)]
pub struct SequentialWrite {
    /// Bytes of each run.
    pub bytes: u64,
    /// Each run's writes and final fsync, fastest first.
    pub runs: Vec<Duration>,
}

impl SequentialWrite {
    /// The median run's bandwidth: the reference for every ratio.
    pub fn mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.bytes, self.median())
    }

    pub fn median(&self) -> Duration {
        self.runs[self.runs.len() / 2]
    }

    /// Bandwidth of the slowest and the fastest run.
    pub fn mib_per_sec_range(&self) -> (f64, f64) {
        let slowest = self.runs[self.runs.len() - 1];
        (
            units::mib_per_sec(self.bytes, slowest),
            units::mib_per_sec(self.bytes, self.runs[0]),
        )
    }
}

/// A loop of writes, each followed by fdatasync.
#[derive(Debug, Clone, Copy)]
pub struct SyncWrites {
    /// Bytes of each write.
    pub write_bytes: usize,
    /// Whether the writes overwrote blocks written (and fsynced) before,
    /// rather than growing the file.
    pub prewritten: bool,
    pub ops: u64,
    pub elapsed: Duration,
}

impl SyncWrites {
    pub fn ops_per_sec(&self) -> f64 {
        units::per_sec(self.ops, self.elapsed)
    }

    pub fn mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.ops * self.write_bytes as u64, self.elapsed)
    }

    pub fn mean_latency(&self) -> Duration {
        self.elapsed / u32::try_from(self.ops.max(1)).unwrap_or(u32::MAX)
    }
}

/// Writes `total_bytes` to a fresh file in `dir` in 1 MiB buffers and
/// fsyncs it once, [`SEQUENTIAL_RUNS`] times; each time includes the fsync.
pub fn sequential_write(dir: &Path, total_bytes: u64) -> Result<SequentialWrite> {
    let mut runs = Vec::with_capacity(SEQUENTIAL_RUNS);
    let mut bytes = 0;
    for _ in 0..SEQUENTIAL_RUNS {
        let (run_bytes, elapsed) = sequential_write_once(dir, total_bytes)?;
        bytes = run_bytes;
        runs.push(elapsed);
    }
    runs.sort();
    Ok(SequentialWrite { bytes, runs })
}

/// One run of [`sequential_write`]; the file is removed after.
fn sequential_write_once(dir: &Path, total_bytes: u64) -> Result<(u64, Duration)> {
    let path = dir.join("raw-sequential");
    let mut file = create(&path)?;
    let buffer = pattern(SEQUENTIAL_BUFFER_BYTES);
    let buffers = total_bytes.div_ceil(SEQUENTIAL_BUFFER_BYTES as u64);
    let start = Instant::now();
    for _ in 0..buffers {
        file.write_all(&buffer)
            .with_context(|| format!("write to {}", path.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    let elapsed = start.elapsed();
    remove(&path)?;
    Ok((buffers * SEQUENTIAL_BUFFER_BYTES as u64, elapsed))
}

/// Writes `write_bytes` to a fresh file and fdatasyncs it, again and again
/// for about `duration`: appending, or — if `prewritten` — overwriting a
/// region written and fsynced beforehand (up to 256 MiB, then from its
/// start again). The file is removed after.
pub fn sync_writes(
    dir: &Path,
    duration: Duration,
    write_bytes: usize,
    prewritten: bool,
) -> Result<SyncWrites> {
    const PREWRITTEN_BYTES: u64 = 256 * 1024 * 1024;
    let path = dir.join("raw-sync-writes");
    let mut file = create(&path)?;
    if prewritten {
        let chunk = pattern(SEQUENTIAL_BUFFER_BYTES);
        for _ in 0..PREWRITTEN_BYTES / SEQUENTIAL_BUFFER_BYTES as u64 {
            file.write_all(&chunk)
                .with_context(|| format!("write to {}", path.display()))?;
        }
        file.sync_all()
            .with_context(|| format!("fsync {}", path.display()))?;
    }
    let buffer = pattern(write_bytes);
    let slots = PREWRITTEN_BYTES / write_bytes as u64;
    let mut ops = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        if prewritten {
            file.write_all_at(&buffer, (ops % slots) * write_bytes as u64)
        } else {
            file.write_all(&buffer)
        }
        .with_context(|| format!("write to {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync {}", path.display()))?;
        ops += 1;
    }
    let elapsed = start.elapsed();
    remove(&path)?;
    Ok(SyncWrites {
        write_bytes,
        prewritten,
        ops,
        elapsed,
    })
}

fn create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))
}

fn remove(path: &Path) -> Result<()> {
    fs::remove_file(path).with_context(|| format!("remove {}", path.display()))
}

/// A buffer of varied bytes (not zeros, in case anything below compresses).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8).collect()
}
