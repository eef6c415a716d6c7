//! # eddy-log
//!
//! Eddy's embedded storage engine: a durable, segmented, append-only log of
//! records in one directory. Every topic partition, dead-letter queue and
//! event-store stream of Eddy is one of these logs.
//!
//! - **Records** have an optional key, headers and a value, and get
//!   consecutive [`Offset`]s and an append timestamp that never goes
//!   backwards. They are stored in **batches** with a CRC-32C each, in
//!   **segment** files that roll by size and age; the format is documented
//!   in [`format`] and `docs/log-format.md`.
//! - **Durability** follows the [`FsyncPolicy`]: `always` (the default)
//!   returns from an append only after an fsync that covers it, sharing
//!   fsyncs between concurrent appenders; `interval` and `never` are weaker
//!   and say so. A failed fsync poisons the log.
//! - **Recovery** on open cuts off a torn or corrupt tail and rebuilds
//!   damaged indexes; [`Log::recovery`] says what was done. Reads check
//!   every batch and never return corrupt data.
//! - **Retention** deletes whole segments from the head by age, size or
//!   record count, when [`Log::apply_retention`] is called.
//!
//! It is *not* a broker: no topics, consumers or network. It never reads the
//! wall clock except through the injected [`Clock`].
//!
//! Limits: records up to `record_bytes_max` (1 MiB by default), batches up to
//! `batch_bytes_max` (16 MiB), segments up to 4 GiB and 2³² records.
//!
//! ```
//! use eddy_log::{Log, LogConfig, Offset, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogConfig::default())?;
//! let receipt = log.append(Record::new("hello").with_key("k1"))?;
//! assert_eq!(receipt.base_offset, Offset(0));
//! let batches = log.read(Offset(0), 1 << 20)?;
//! let record = batches[0].records().next().unwrap();
//! assert_eq!(&record.value[..], b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod clock;
mod config;
mod error;
mod flusher;
pub mod format;
mod index;
mod log;
mod report;
mod segment;
mod spare;

use std::fmt;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{FsyncPolicy, LogConfig, RetentionPolicy};
pub use error::{LogError, Result};
pub use format::{Batch, Header, Record, StoredRecord};
pub use log::{AppendReceipt, Log, LogStats};
pub use report::{RecoveryReport, RetentionReport, SegmentInfo, Truncation};

/// The position of a record in a log: 0 for the first record ever appended,
/// then consecutive. Offsets are never reused, even after retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
