//! Settings of a log: durability, segment rolling, limits and retention.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{LogError, Result};
use crate::format::{BATCH_BYTES_LIMIT, BATCH_HEADER_BYTES, SEGMENT_HEADER_BYTES};

/// When appended data is forced to stable storage with fsync.
///
/// Every policy writes each batch to the operating system before the append
/// returns, so a crash of the *process* never loses an acknowledged append.
/// They differ in what survives a crash of the *machine* (power loss, kernel
/// panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// An append returns only after an fsync that covers it has completed.
    /// Concurrent appenders share one fsync (group commit). Segments are
    /// fsynced when sealed. Survives power loss.
    #[default]
    Always,
    /// A background thread fsyncs every `ms` milliseconds; an append returns
    /// before its fsync. Power loss can lose up to that window of
    /// acknowledged appends. Segments are fsynced when sealed.
    Interval {
        /// The period between fsyncs.
        ms: u64,
    },
    /// The log never calls fsync while appending or rolling; the operating
    /// system writes data back when it chooses. Power loss can lose any
    /// amount of acknowledged appends. (Closing the log still fsyncs.)
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval { ms } => write!(f, "interval({ms}ms)"),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = LogError;

    /// Parses `always`, `never`, `interval(50ms)`, `interval(50)` or `interval:50`.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "always" => return Ok(FsyncPolicy::Always),
            "never" => return Ok(FsyncPolicy::Never),
            _ => {}
        }
        let bad = || LogError::InvalidConfig {
            setting: "fsync",
            reason: format!("`{s}` is not one of `always`, `interval(<ms>)`, `never`"),
        };
        let inner = s
            .strip_prefix("interval(")
            .and_then(|r| r.strip_suffix(')'))
            .or_else(|| s.strip_prefix("interval:"))
            .ok_or_else(bad)?;
        let ms: u64 = inner
            .trim()
            .trim_end_matches("ms")
            .parse()
            .map_err(|_| bad())?;
        if ms == 0 {
            return Err(LogError::InvalidConfig {
                setting: "fsync",
                reason: "an interval must be at least 1 ms; use `always` to fsync every append"
                    .into(),
            });
        }
        Ok(FsyncPolicy::Interval { ms })
    }
}

/// Which old data the log deletes. Whole segments are deleted from the head;
/// the active (newest) segment is deleted only by age, after being rolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Delete a segment once its newest record is at least this old.
    pub age_max_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log holds more bytes than this.
    pub bytes_max: Option<u64>,
    /// Delete the oldest sealed segments while the log holds more records than this.
    pub records_max: Option<u64>,
}

impl RetentionPolicy {
    /// Keep everything forever.
    pub const FOREVER: RetentionPolicy = RetentionPolicy {
        age_max_ms: None,
        bytes_max: None,
        records_max: None,
    };
}

/// The settings of one log. [`LogConfig::default`] suits a laptop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Durability of appends; see [`FsyncPolicy`].
    pub fsync: FsyncPolicy,
    /// Roll to a new segment before a batch would make the active one larger
    /// than this. At most 4 GiB − 1 (index positions are 32-bit).
    pub segment_bytes_max: u64,
    /// Roll to a new segment once the active one's first record is this old.
    pub segment_age_max_ms: Option<u64>,
    /// Bytes between two entries of the sparse offset and time indexes.
    pub index_interval_bytes: u32,
    /// Largest encoded record (key, headers, value and framing).
    pub record_bytes_max: u32,
    /// Largest encoded batch, header included. A batch must also fit in an
    /// empty segment (`segment_bytes_max`).
    pub batch_bytes_max: u32,
    /// What [`crate::Log::apply_retention`] deletes.
    pub retention: RetentionPolicy,
    /// Under `always`: write each segment file full of zeros (on a
    /// background thread, once the active segment is half full) so that
    /// appends overwrite blocks in place and an fsync need not also commit
    /// the file system's journal. Costs one extra sequential write per
    /// segment and up to one spare segment file on disk; see
    /// `docs/benchmarks.md` for its effect. Ignored under `interval` and
    /// `never`, whose fsyncs are rare.
    pub preallocate_segments: bool,
    /// Hold an exclusive lock on the directory (a `LOCK` file, kept open)
    /// so that a second writer fails with `Locked`. Turn it off only when
    /// the caller guarantees one writer itself, as the broker does with its
    /// own lock: it saves one open file per log.
    pub lock_dir: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            fsync: FsyncPolicy::Always,
            segment_bytes_max: 128 * 1024 * 1024,
            segment_age_max_ms: None,
            index_interval_bytes: 4096,
            record_bytes_max: 1024 * 1024,
            batch_bytes_max: 16 * 1024 * 1024,
            retention: RetentionPolicy::FOREVER,
            preallocate_segments: true,
            lock_dir: true,
        }
    }
}

impl LogConfig {
    /// Checks that the settings are consistent with each other.
    pub fn validate(&self) -> Result<()> {
        let invalid = |setting, reason: String| Err(LogError::InvalidConfig { setting, reason });
        let min_segment = (SEGMENT_HEADER_BYTES + BATCH_HEADER_BYTES + 16) as u64;
        if self.segment_bytes_max < min_segment || self.segment_bytes_max > u64::from(u32::MAX) {
            return invalid(
                "segment_bytes_max",
                format!(
                    "{} is outside {min_segment}..={}",
                    self.segment_bytes_max,
                    u32::MAX
                ),
            );
        }
        if (self.batch_bytes_max as usize) < BATCH_HEADER_BYTES + 2 {
            return invalid(
                "batch_bytes_max",
                format!("{} is too small to hold a record", self.batch_bytes_max),
            );
        }
        if self.batch_bytes_max > BATCH_BYTES_LIMIT {
            return invalid(
                "batch_bytes_max",
                format!(
                    "{} exceeds the format's limit of {BATCH_BYTES_LIMIT}",
                    self.batch_bytes_max
                ),
            );
        }
        if self.record_bytes_max == 0 || self.record_bytes_max > self.batch_bytes_max {
            return invalid(
                "record_bytes_max",
                format!(
                    "{} must be between 1 and `batch_bytes_max` = {}",
                    self.record_bytes_max, self.batch_bytes_max
                ),
            );
        }
        if self.index_interval_bytes == 0 {
            return invalid("index_interval_bytes", "must be at least 1".into());
        }
        if self.segment_age_max_ms == Some(0) {
            return invalid("segment_age_max_ms", "must be at least 1 ms".into());
        }
        if let FsyncPolicy::Interval { ms: 0 } = self.fsync {
            return invalid("fsync", "an interval must be at least 1 ms".into());
        }
        Ok(())
    }

    pub(crate) fn fsync_interval(&self) -> Option<Duration> {
        match self.fsync {
            FsyncPolicy::Interval { ms } => Some(Duration::from_millis(ms)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses_and_prints() {
        // Proves the policy names round-trip and bad names are refused.
        for p in [
            FsyncPolicy::Always,
            FsyncPolicy::Never,
            FsyncPolicy::Interval { ms: 25 },
        ] {
            assert_eq!(p.to_string().parse::<FsyncPolicy>().unwrap(), p);
        }
        assert_eq!(
            "interval:7".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Interval { ms: 7 }
        );
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
        assert!("interval(0ms)".parse::<FsyncPolicy>().is_err());
    }

    #[test]
    fn validate_names_the_setting() {
        // Proves an inconsistent config is refused with the setting's name.
        let cfg = LogConfig {
            batch_bytes_max: 1024,
            record_bytes_max: 4096,
            ..LogConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("record_bytes_max"), "{err}");
        assert!(LogConfig::default().validate().is_ok());
    }
}
