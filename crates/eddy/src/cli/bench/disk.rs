//! The raw disk baseline: what the file system gives without any log on
//! top, measured in the same directory as the benchmark proper.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::units;

/// Buffer size of the sequential write.
pub const SEQUENTIAL_BUFFER_BYTES: usize = 1024 * 1024;
/// Size of each write of the write + fdatasync loop.
pub const SYNC_WRITE_BYTES: usize = 4096;

/// Sequential writes of 1 MiB buffers to a fresh file, then one fsync.
#[derive(Debug, Clone, Copy)]
pub struct SequentialWrite {
    pub bytes: u64,
    /// Writes and the final fsync.
    pub elapsed: Duration,
}

impl SequentialWrite {
    pub fn mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.bytes, self.elapsed)
    }
}

/// A loop of 4 KiB appends, each followed by fdatasync.
#[derive(Debug, Clone, Copy)]
pub struct SyncWrites {
    pub ops: u64,
    pub elapsed: Duration,
}

impl SyncWrites {
    pub fn ops_per_sec(&self) -> f64 {
        units::per_sec(self.ops, self.elapsed)
    }

    pub fn mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.ops * SYNC_WRITE_BYTES as u64, self.elapsed)
    }

    pub fn mean_latency(&self) -> Duration {
        self.elapsed / u32::try_from(self.ops.max(1)).unwrap_or(u32::MAX)
    }
}

/// Writes `total_bytes` to a fresh file in `dir` in 1 MiB buffers and
/// fsyncs it once; the time includes the fsync. The file is removed after.
pub fn sequential_write(dir: &Path, total_bytes: u64) -> Result<SequentialWrite> {
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
    Ok(SequentialWrite {
        bytes: buffers * SEQUENTIAL_BUFFER_BYTES as u64,
        elapsed,
    })
}

/// Appends 4 KiB to a fresh file and fdatasyncs it, again and again for
/// about `duration`. The file is removed after.
pub fn sync_writes(dir: &Path, duration: Duration) -> Result<SyncWrites> {
    let path = dir.join("raw-sync-writes");
    let mut file = create(&path)?;
    let buffer = pattern(SYNC_WRITE_BYTES);
    let mut ops = 0;
    let start = Instant::now();
    while start.elapsed() < duration {
        file.write_all(&buffer)
            .with_context(|| format!("write to {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync {}", path.display()))?;
        ops += 1;
    }
    let elapsed = start.elapsed();
    remove(&path)?;
    Ok(SyncWrites { ops, elapsed })
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
