//! Resident memory of a process, from `/proc/<pid>/status` (Linux).

use anyhow::{Context, Result};

/// Resident memory, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// `VmRSS`: all resident pages.
    pub total: u64,
    /// `RssAnon`: heap, stacks and other anonymous pages.
    pub anon: u64,
    /// `RssFile`: mapped files (the executable, libraries).
    pub file: u64,
}

impl Rss {
    /// This process's resident memory.
    pub fn of_self() -> Result<Rss> {
        Status::read("/proc/self/status")?.rss()
    }

    /// The resident memory of process `pid`.
    pub fn of_process(pid: u32) -> Result<Rss> {
        Status::read(&format!("/proc/{pid}/status"))?.rss()
    }
}

/// The most resident memory process `pid` has had (`VmHWM`), in bytes.
pub fn high_water_mark(pid: u32) -> Result<u64> {
    Status::read(&format!("/proc/{pid}/status"))?.field("VmHWM:")
}

/// The text of one `/proc/<pid>/status` file.
struct Status {
    path: String,
    text: String,
}

impl Status {
    fn read(path: &str) -> Result<Status> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read {path} for the resident memory"))?;
        Ok(Status {
            path: path.to_string(),
            text,
        })
    }

    fn rss(&self) -> Result<Rss> {
        Ok(Rss {
            total: self.field("VmRSS:")?,
            anon: self.field("RssAnon:")?,
            file: self.field("RssFile:")?,
        })
    }

    /// A field given in kB, in bytes.
    fn field(&self, name: &str) -> Result<u64> {
        let kib: u64 = self
            .text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in {}", self.path))?;
        Ok(kib * 1024)
    }
}
