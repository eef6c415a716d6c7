//! Idempotent consumers: a durable store of the events a service has
//! processed, so that a redelivered or duplicated event has its effect once.
//!
//! ```text
//!  delivery ─▶ claim(key) ─┬─ Done  ─▶ ack (a duplicate: the handler is not called)
//!                          ├─ Busy  ─▶ wait for the other delivery of the key, claim again
//!                          └─ Fresh ─▶ handler ─▶ Ok ─▶ record(key) (durable) ─▶ ack
//! ```
//!
//! A key is recorded only after its handler succeeded and before its ack,
//! in one log append per batch of acks. So:
//! - a crash after the record and before the ack: the redelivery is a
//!   duplicate, acked without calling the handler;
//! - a crash after the handler's effects and before the record: the
//!   handler runs again. Its follow-up events get the same ids as the first
//!   time (see [`crate::service::Context::publish`]), so the bus's dedup
//!   window drops them; an effect outside the bus repeats unless it is
//!   itself keyed — [`crate::service::Context::idempotency_key`] is the key
//!   to store in the same transaction as that effect.
//!
//! A key is kept for `retention_ms` after it was recorded, and at most
//! `entries_max` keys are held (the oldest are forgotten first, and counted).
//! The store is one [`eddy_log::Log`] in its own folder: CRC-checked,
//! recovered after a crash, fsynced per its policy; old segments are
//! deleted by age.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use eddy_log::{Clock, FsyncPolicy, Log, LogConfig, LogError, Offset, Record, RetentionPolicy};
use tokio::sync::watch;

/// Longest retention a store accepts: a year.
pub const RETENTION_MS_MAX: u64 = 366 * 24 * 3600 * 1000;
/// Most keys a store may be configured to hold.
pub const ENTRIES_MAX_LIMIT: usize = 100_000_000;
/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 4096;
/// Keys recorded between two passes of the log's retention.
const RETENTION_EVERY: u64 = 4096;
/// Bytes read per step when the store is loaded.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

/// The settings of a processed-id store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedConfig {
    /// How long a processed key is remembered. A duplicate arriving later
    /// than this is processed again.
    pub retention_ms: u64,
    /// Most keys held; past it the oldest are forgotten before their time
    /// (counted in [`ProcessedStats::forgotten_early`]). Each key costs its
    /// length plus about 100 bytes of memory.
    pub entries_max: usize,
    /// When a record is on disk before the ack that follows it.
    pub fsync: FsyncPolicy,
}

impl Default for ProcessedConfig {
    /// A day, a million keys, fsync `always`.
    fn default() -> Self {
        ProcessedConfig {
            retention_ms: 24 * 3600 * 1000,
            entries_max: 1_000_000,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// What went wrong with a processed-id store.
#[derive(Debug, thiserror::Error)]
pub enum ProcessedError {
    #[error("processed-id store setting `{setting}`: {reason}")]
    InvalidConfig {
        setting: &'static str,
        reason: String,
    },
    #[error("an idempotency key of {len} bytes is longer than {KEY_BYTES_MAX}")]
    KeyTooLong { len: usize },
    #[error("the processed-id log holds a key that is not UTF-8 at offset {offset}")]
    Corrupt { offset: u64 },
    #[error("processed-id log: {0}")]
    Log(#[from] LogError),
    #[error("the processed-id store's writer stopped: {0}")]
    Stopped(String),
}

/// Counts of a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessedStats {
    /// Keys held now.
    pub keys: usize,
    /// Keys loaded from disk when the store was opened.
    pub loaded: usize,
    /// Keys recorded since then.
    pub recorded: u64,
    /// Keys forgotten before their retention ran out, for `entries_max`.
    pub forgotten_early: u64,
}

/// What [`ProcessedIds::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// Not processed: the caller holds the key until the guard is recorded
    /// or dropped.
    Fresh(ClaimGuard),
    /// Processed already, within the retention.
    Done,
    /// Another delivery holds the key; wait on this (it changes, or closes,
    /// when that one is recorded or gives up) and claim again.
    Busy(watch::Receiver<()>),
}

/// A claimed key. Dropped without being recorded, it is released.
#[derive(Debug)]
pub struct ClaimGuard {
    store: ProcessedIds,
    key: Arc<str>,
}

impl ClaimGuard {
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        // Dropping the sender wakes the waiters.
        self.store.state().in_flight.remove(&self.key);
    }
}

/// A durable set of processed keys with a retention window. Cheap to
/// clone: clones share the store.
#[derive(Debug, Clone)]
pub struct ProcessedIds {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Log,
    config: ProcessedConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Key → when it was recorded (ms).
    at: HashMap<Arc<str>, i64>,
    /// The keys in the order they were recorded, to forget the oldest. A
    /// key recorded again (after it expired) is here twice; only the entry
    /// whose time matches `at` counts.
    order: VecDeque<(Arc<str>, i64)>,
    in_flight: HashMap<Arc<str>, watch::Sender<()>>,
    stats: ProcessedStats,
}

impl State {
    fn insert(&mut self, key: Arc<str>, at_ms: i64) {
        self.at.insert(Arc::clone(&key), at_ms);
        self.order.push_back((key, at_ms));
    }

    /// Forgets keys older than `oldest_ms`, and the oldest past `max`.
    fn forget(&mut self, oldest_ms: i64, max: usize) {
        while let Some((key, at_ms)) = self.order.front() {
            let current = self.at.get(key) == Some(at_ms);
            let expired = *at_ms < oldest_ms;
            if current && !expired && self.at.len() <= max {
                break;
            }
            if current {
                if !expired {
                    self.stats.forgotten_early += 1;
                }
                self.at.remove(key);
            }
            self.order.pop_front();
        }
        self.stats.keys = self.at.len();
    }
}

impl ProcessedIds {
    /// Opens (creating if needed) the store in `dir`, reading time from
    /// `clock`, and loads the keys still within the retention.
    pub fn open(
        dir: impl AsRef<Path>,
        config: ProcessedConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<ProcessedIds, ProcessedError> {
        validate(&config)?;
        let log_config = LogConfig {
            fsync: config.fsync,
            segment_bytes_max: 16 * 1024 * 1024,
            // Segments roll so that whole old ones can be deleted by age.
            segment_age_max_ms: Some((config.retention_ms / 4).max(1)),
            retention: RetentionPolicy {
                age_max_ms: Some(config.retention_ms),
                ..RetentionPolicy::FOREVER
            },
            preallocate_segments: false,
            ..LogConfig::default()
        };
        let log = Log::open_with_clock(dir, log_config, Arc::clone(&clock))?;
        log.apply_retention()?;
        let mut state = State::default();
        let oldest = clock.now_ms().saturating_sub(config.retention_ms as i64);
        // Only what is within the retention, and never more than
        // `entries_max` keys in memory at once.
        let mut from = log
            .offset_for_timestamp(oldest)?
            .unwrap_or(log.next_offset());
        while from < log.next_offset() {
            let batches = log.read(from, LOAD_CHUNK_BYTES)?;
            let Some(last) = batches.last() else { break };
            let next = Offset(last.header().base_offset + u64::from(last.header().record_count));
            for batch in &batches {
                for record in batch.records() {
                    if record.timestamp_ms < oldest {
                        continue;
                    }
                    let key = std::str::from_utf8(&record.value).map_err(|_| {
                        ProcessedError::Corrupt {
                            offset: record.offset.0,
                        }
                    })?;
                    state.insert(Arc::from(key), record.timestamp_ms);
                }
            }
            state.forget(oldest, config.entries_max);
            from = next;
        }
        state.forget(oldest, config.entries_max);
        state.stats.loaded = state.at.len();
        Ok(ProcessedIds {
            inner: Arc::new(Inner {
                log,
                config,
                clock,
                state: Mutex::new(state),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `key` was processed within the retention.
    pub fn contains(&self, key: &str) -> bool {
        let oldest = self.oldest_ms();
        self.state().at.get(key).is_some_and(|&at| at >= oldest)
    }

    fn oldest_ms(&self) -> i64 {
        let retention = self.inner.config.retention_ms as i64;
        self.inner.clock.now_ms().saturating_sub(retention)
    }

    /// Claims `key` for processing; see [`Claim`].
    pub fn claim(&self, key: &str) -> Result<Claim, ProcessedError> {
        if key.len() > KEY_BYTES_MAX {
            return Err(ProcessedError::KeyTooLong { len: key.len() });
        }
        let oldest = self.oldest_ms();
        let mut state = self.state();
        if state.at.get(key).is_some_and(|&at| at >= oldest) {
            return Ok(Claim::Done);
        }
        if let Some(sender) = state.in_flight.get(key) {
            return Ok(Claim::Busy(sender.subscribe()));
        }
        let key: Arc<str> = Arc::from(key);
        state
            .in_flight
            .insert(Arc::clone(&key), watch::channel(()).0);
        Ok(Claim::Fresh(ClaimGuard {
            store: self.clone(),
            key,
        }))
    }

    /// Records claimed keys as processed, in one durable append, and
    /// releases them. On an error nothing is recorded and the keys are
    /// released: their events will be processed again.
    pub async fn record(&self, guards: Vec<ClaimGuard>) -> Result<(), ProcessedError> {
        if guards.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let records: Vec<Record> = guards
                .iter()
                .map(|g| Record::new(g.key.as_bytes().to_vec()))
                .collect();
            let log = &store.inner.log;
            let receipt = log.append_batch(&records)?;
            let n = guards.len() as u64;
            let oldest = store.oldest_ms();
            let mut state = store.state();
            for guard in &guards {
                state.insert(Arc::clone(&guard.key), receipt.timestamp_ms);
            }
            let recorded = state.stats.recorded;
            state.stats.recorded += n;
            state.forget(oldest, store.inner.config.entries_max);
            drop(state);
            // Released only now, so a waiter claiming again finds them done.
            drop(guards);
            // The keys are recorded; deleting old segments is housekeeping,
            // and a failure of it is the next pass's to retry.
            if (recorded + n) / RETENTION_EVERY != recorded / RETENTION_EVERY
                && let Err(e) = log.apply_retention()
            {
                tracing::warn!(error = %e, "the processed-id store could not delete old segments");
            }
            Ok(())
        })
        .await
        .map_err(|e| ProcessedError::Stopped(e.to_string()))?
    }

    pub fn stats(&self) -> ProcessedStats {
        self.state().stats
    }

    pub fn config(&self) -> &ProcessedConfig {
        &self.inner.config
    }
}

fn validate(config: &ProcessedConfig) -> Result<(), ProcessedError> {
    let invalid = |setting, reason: String| Err(ProcessedError::InvalidConfig { setting, reason });
    if config.retention_ms == 0 || config.retention_ms > RETENTION_MS_MAX {
        return invalid(
            "retention_ms",
            format!("{} is outside 1..={RETENTION_MS_MAX}", config.retention_ms),
        );
    }
    if config.entries_max == 0 || config.entries_max > ENTRIES_MAX_LIMIT {
        return invalid(
            "entries_max",
            format!("{} is outside 1..={ENTRIES_MAX_LIMIT}", config.entries_max),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_log::ManualClock;

    fn config() -> ProcessedConfig {
        ProcessedConfig {
            retention_ms: 60_000,
            entries_max: 1000,
            fsync: FsyncPolicy::Always,
        }
    }

    fn fresh(store: &ProcessedIds, key: &str) -> ClaimGuard {
        match store.claim(key).unwrap() {
            Claim::Fresh(guard) => guard,
            other => panic!("{key}: expected a fresh claim, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_recorded_key_is_done_after_a_reopen_until_its_retention_ends() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = ProcessedIds::open(dir.path(), config(), clock.clone()).unwrap();
        let a = fresh(&store, "a");
        store.record(vec![a]).await.unwrap();
        assert!(matches!(store.claim("a").unwrap(), Claim::Done));
        drop(store);

        clock.advance_ms(59_000);
        let store = ProcessedIds::open(dir.path(), config(), clock.clone()).unwrap();
        assert_eq!(store.stats().loaded, 1);
        assert!(matches!(store.claim("a").unwrap(), Claim::Done));
        clock.advance_ms(1_001);
        assert!(!store.contains("a"));
        drop(fresh(&store, "a"));
        drop(store);
        let store = ProcessedIds::open(dir.path(), config(), clock).unwrap();
        assert_eq!(store.stats().loaded, 0, "expired keys are not loaded");
    }

    #[tokio::test]
    async fn a_key_recorded_again_after_it_expired_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = ProcessedIds::open(dir.path(), config(), clock.clone()).unwrap();
        store.record(vec![fresh(&store, "a")]).await.unwrap();
        clock.advance_ms(61_000);
        assert!(!store.contains("a"), "expired");
        store.record(vec![fresh(&store, "a")]).await.unwrap();
        assert!(
            store.contains("a"),
            "recorded again, not forgotten with its old entry"
        );
        assert_eq!(store.stats().keys, 1);
        assert_eq!(store.stats().forgotten_early, 0);
    }

    #[tokio::test]
    async fn loading_keeps_at_most_entries_max_keys() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let store = ProcessedIds::open(dir.path(), config(), clock.clone()).unwrap();
        for n in 0..50 {
            clock.advance_ms(1);
            store
                .record(vec![fresh(&store, &format!("k{n}"))])
                .await
                .unwrap();
        }
        drop(store);
        let small = ProcessedConfig {
            entries_max: 10,
            ..config()
        };
        let store = ProcessedIds::open(dir.path(), small, clock).unwrap();
        assert_eq!(store.stats().loaded, 10);
        assert!(store.contains("k49") && !store.contains("k39"));
    }

    #[tokio::test]
    async fn a_second_claim_waits_for_the_first_and_a_dropped_claim_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let store = ProcessedIds::open(dir.path(), config(), clock).unwrap();
        let first = fresh(&store, "k");
        let Claim::Busy(mut waiting) = store.claim("k").unwrap() else {
            panic!("a claimed key must be busy");
        };
        drop(first);
        assert!(waiting.changed().await.is_err(), "the waiter is woken");
        let again = fresh(&store, "k");
        let Claim::Busy(mut waiting) = store.claim("k").unwrap() else {
            panic!("a claimed key must be busy");
        };
        store.record(vec![again]).await.unwrap();
        assert!(waiting.changed().await.is_err());
        assert!(matches!(store.claim("k").unwrap(), Claim::Done));
    }

    #[tokio::test]
    async fn past_entries_max_the_oldest_keys_are_forgotten_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let small = ProcessedConfig {
            entries_max: 2,
            ..config()
        };
        let store = ProcessedIds::open(dir.path(), small.clone(), clock.clone()).unwrap();
        for key in ["a", "b", "c"] {
            clock.advance_ms(1);
            store.record(vec![fresh(&store, key)]).await.unwrap();
        }
        assert!(!store.contains("a"));
        assert!(store.contains("b") && store.contains("c"));
        assert_eq!(store.stats().forgotten_early, 1);
        assert_eq!(store.stats().keys, 2);
        drop(store);
        let store = ProcessedIds::open(dir.path(), small, clock).unwrap();
        assert_eq!(store.stats().loaded, 2);
        assert!(!store.contains("a"));
    }

    #[test]
    fn bad_settings_and_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        for (bad, setting) in [
            (
                ProcessedConfig {
                    retention_ms: 0,
                    ..config()
                },
                "retention_ms",
            ),
            (
                ProcessedConfig {
                    entries_max: 0,
                    ..config()
                },
                "entries_max",
            ),
        ] {
            let err = ProcessedIds::open(dir.path().join("x"), bad, clock.clone()).unwrap_err();
            assert!(
                matches!(err, ProcessedError::InvalidConfig { setting: s, .. } if s == setting)
            );
        }
        assert!(!dir.path().join("x").exists(), "nothing is made");
        let store = ProcessedIds::open(dir.path(), config(), clock).unwrap();
        let long = "k".repeat(KEY_BYTES_MAX + 1);
        assert!(matches!(
            store.claim(&long),
            Err(ProcessedError::KeyTooLong { .. })
        ));
    }
}
