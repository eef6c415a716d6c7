//! The embedded broker's settings.

use std::time::Duration;

use eddy_bus::EventLimits;
use eddy_log::FsyncPolicy;

/// Settings of an embedded broker. [`BrokerConfig::default`] suits a laptop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Durability of publishes and consumer state (acks, nacks, seeks):
    /// `always` (the default) fsyncs before acknowledging, with group
    /// commit; `interval(ms)` and `never` trade that for speed.
    pub fsync: FsyncPolicy,
    /// Publishing to a topic that does not exist creates it (with one
    /// partition) instead of failing with `TopicNotFound`.
    pub auto_create_topics: bool,
    /// Event size limits.
    pub event_limits: EventLimits,
    /// Segment size of each partition's log.
    pub segment_bytes_max: u64,
    /// Pre-write segment files (see `eddy_log::LogConfig`); costs a
    /// background thread per partition log under `always`.
    pub preallocate_segments: bool,
    /// Segment size of the state journal.
    pub journal_segment_bytes_max: u64,
    /// Write a state snapshot (and delete the journal before it) once this
    /// many journal bytes were written since the last one.
    pub snapshot_journal_bytes: u64,
    /// Period of the background timer thread that expires leases, raises
    /// dead-letter alerts, wakes waiting consumers for due retries, applies
    /// retention and writes snapshots. `None` runs none of that in the
    /// background (tests with a manual clock); fetches still expire leases.
    pub timer_interval_ms: Option<u64>,
    /// How often the timer thread applies topic retention.
    pub retention_interval_ms: u64,
    /// Under `always`, with writes still arriving after a group commit's
    /// fsync, the next fsync of that log starts no sooner than this many
    /// microseconds after the last one started, so that it covers what
    /// arrives meanwhile (a write to an idle log is fsynced at once). This
    /// bounds each log to one fsync per window, at the price of up to one
    /// window more per publish or ack — and of throughput for callers that
    /// wait for each write before the next. 0 (the default) fsyncs back to
    /// back. It is for disks and virtual machines that suffer from a steady
    /// stream of small fsyncs: on the machine in `docs/benchmarks.md`,
    /// 10,000 events/s kept the disk flushing 2,600 times a second, a few
    /// events each, and the host then stalled the VM's CPUs.
    pub group_commit_window_us: u64,
    /// Partitions of each bus topic the event store publishes a category's
    /// events to (`es.<category>`), when it creates one.
    pub store_topic_partitions: u32,
    /// How many recent event ids the event store remembers, so that a
    /// retried append (same ids) is recognised as one (48 bytes each).
    pub store_ids_max: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            fsync: FsyncPolicy::Always,
            auto_create_topics: false,
            event_limits: EventLimits::default(),
            segment_bytes_max: 64 * 1024 * 1024,
            preallocate_segments: false,
            journal_segment_bytes_max: 64 * 1024 * 1024,
            snapshot_journal_bytes: 64 * 1024 * 1024,
            timer_interval_ms: Some(100),
            retention_interval_ms: 10_000,
            group_commit_window_us: 0,
            store_topic_partitions: 4,
            store_ids_max: 1_000_000,
        }
    }
}

/// The largest [`BrokerConfig::group_commit_window_us`]: one second.
pub const GROUP_COMMIT_WINDOW_US_MAX: u64 = 1_000_000;

impl BrokerConfig {
    /// [`BrokerConfig::group_commit_window_us`] as a duration.
    pub(crate) fn group_commit_window(&self) -> Duration {
        Duration::from_micros(self.group_commit_window_us)
    }
}
