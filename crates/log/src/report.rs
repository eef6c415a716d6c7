//! What opening a log found and repaired, and what retention deleted.

use std::path::PathBuf;

use crate::Offset;

/// Bytes cut off the end of a segment during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file.
    pub path: PathBuf,
    /// Its new length.
    pub position: u64,
    /// How many bytes were removed.
    pub bytes_removed: u64,
    /// Why: the first defect found at `position`.
    pub reason: String,
}

/// What [`crate::Log::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Torn or corrupt tails that were cut off.
    pub truncations: Vec<Truncation>,
    /// Whole segment files removed because an earlier segment ended the log
    /// (a cut inside a sealed segment, or a gap in the offsets).
    pub segments_removed: Vec<PathBuf>,
    /// Index files that were missing or damaged and were rebuilt.
    pub indexes_rebuilt: Vec<PathBuf>,
    /// First offset held after recovery.
    pub first_offset: Offset,
    /// Offset the next append gets.
    pub next_offset: Offset,
}

impl RecoveryReport {
    /// True when nothing had to be cut off or removed.
    pub fn is_clean(&self) -> bool {
        self.truncations.is_empty() && self.segments_removed.is_empty()
    }
}

/// What [`crate::Log::apply_retention`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Base offsets of the deleted segments.
    pub segments_deleted: Vec<Offset>,
    /// Records deleted.
    pub records_deleted: u64,
    /// Bytes of segment files deleted.
    pub bytes_deleted: u64,
    /// First offset held afterwards.
    pub first_offset: Offset,
}

/// One segment of the log, as seen by [`crate::Log::segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of its first record.
    pub base_offset: Offset,
    /// Offset after its last record.
    pub next_offset: Offset,
    /// Bytes of its file (header included).
    pub size_bytes: u64,
    /// Timestamp of its first record, if any.
    pub first_timestamp_ms: Option<i64>,
    /// Timestamp of its last record, if any.
    pub last_timestamp_ms: Option<i64>,
    /// Whether this is the active segment, the one appends go to.
    pub active: bool,
}
