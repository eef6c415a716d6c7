//! A thread that reads a process's resident memory every 50 ms and keeps
//! the highest reading since it was last asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::bench::memory::Rss;

/// Time between two readings.
pub const PERIOD: Duration = Duration::from_millis(50);

/// The highest `VmRSS` read over a stretch of time, and how many readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peak {
    pub bytes: u64,
    pub samples: u64,
}

impl Peak {
    /// The higher of two peaks, with the readings of both.
    pub fn max(self, other: Peak) -> Peak {
        Peak {
            bytes: self.bytes.max(other.bytes),
            samples: self.samples + other.samples,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    peak: AtomicU64,
    samples: AtomicU64,
}

/// Samples until dropped.
#[derive(Debug)]
pub struct Sampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling process `pid`. Sampling stops by itself if the
    /// process goes away.
    pub fn start(pid: u32) -> Result<Sampler> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("eddy-bench-rss".into())
                .spawn(move || {
                    while !shared.stop.load(Ordering::SeqCst) {
                        let Ok(rss) = Rss::of_process(pid) else {
                            return;
                        };
                        shared.peak.fetch_max(rss.total, Ordering::SeqCst);
                        shared.samples.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(PERIOD);
                    }
                })
                .context("start the memory sampler thread")?
        };
        Ok(Sampler {
            shared,
            thread: Some(thread),
        })
    }

    /// The peak since the last call (or the start), starting a new stretch.
    pub fn take(&self) -> Peak {
        Peak {
            bytes: self.shared.peak.swap(0, Ordering::SeqCst),
            samples: self.shared.samples.swap(0, Ordering::SeqCst),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
