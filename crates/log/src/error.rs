//! The one error type of the log crate.

use std::io;
use std::path::PathBuf;

use crate::Offset;

/// Everything that can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system I/O call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the log was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An earlier fsync or write failed. The page cache can no longer be
    /// trusted to hold what was written, so the log refuses further appends
    /// rather than acknowledge writes it cannot vouch for. Reopen the log
    /// to recover from what is on disk — after a failed fsync, from a new
    /// process, since this one's page cache may hold pages that never
    /// reached the disk.
    #[error(
        "log is poisoned by an earlier failed write or fsync ({cause}); reopen it to recover \
         (after a failed fsync, from a new process)"
    )]
    Poisoned {
        /// The failure that poisoned the log.
        cause: String,
    },

    /// An input exceeded a configured limit. `setting` names the knob to raise.
    #[error("{what} of {actual} exceeds `{setting}` = {limit}")]
    LimitExceeded {
        /// What was too large ("record", "batch").
        what: &'static str,
        /// The configuration setting that sets the limit.
        setting: &'static str,
        /// The limit in force.
        limit: u64,
        /// The size that was asked for.
        actual: u64,
    },

    /// A batch with no records was appended.
    #[error("a batch must hold at least one record")]
    EmptyBatch,

    /// A configuration value is out of range.
    #[error("invalid log setting `{setting}`: {reason}")]
    InvalidConfig {
        /// The setting at fault.
        setting: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// The requested offset was removed by retention (or never existed).
    #[error("offset {requested} is before the start of the log (first offset is {first})")]
    OffsetBeforeStart {
        /// The offset asked for.
        requested: Offset,
        /// The first offset still held.
        first: Offset,
    },

    /// The requested offset is past the end of the log.
    #[error("offset {requested} is past the end of the log (next offset is {next})")]
    OffsetPastEnd {
        /// The offset asked for.
        requested: Offset,
        /// The offset the next append will get.
        next: Offset,
    },

    /// Data read back from disk failed its checks. The log never returns such
    /// data; this error says where it was found.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position in that file.
        position: u64,
        /// What check failed.
        reason: String,
    },

    /// Another handle (in this or another process) has the log open.
    #[error("log directory {path} is already open elsewhere")]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
}

impl LogError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of the log crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Adds context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| LogError::io(context(), e))
    }
}
