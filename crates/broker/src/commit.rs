//! Group commit for callers on async tasks.
//!
//! Under fsync `always` a publish or an ack is acknowledged only once an
//! fsync covers it. The blocking path ([`Log::wait_durable`]) parks a thread
//! per waiting call; at thousands of calls a second that is thousands of
//! thread wake-ups and a blocked thread for each call in flight. Here a
//! call that wrote on its async task waits on the log's [`Committer`]
//! instead:
//!
//! ```text
//!   async task ─write─▶ log (page cache)
//!        │  not durable yet, no commit loop running? ──spawn_blocking──▶ commit loop
//!        └─await the signal ◀──────────────── fsync, bump the signal, `after` ─┘
//! ```
//!
//! One blocking thread per log with data to sync runs [`Committer::run`]:
//! it fsyncs (leading the log's own group commit, so it cooperates with
//! blocking callers), wakes the log's waiting tasks, runs its `after` hook
//! (a topic's wakes the broker's consumers), and goes on while anything
//! written is not yet durable. Every call in flight shares the next fsync;
//! no thread is held per call.
//!
//! The hand-off loses no wake-up: a task writes, subscribes to the signal,
//! checks durability, then tries to take `leading`; the loop clears
//! `leading` and checks again for unsynced data before it exits, retaking
//! `leading` if it finds some (all `SeqCst`). So when a task finds
//! `leading` taken, the running loop will fsync past its write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eddy_bus::{BusError, Result};
use eddy_log::{Log, Offset};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::error::from_log;
use crate::topic::{PendingPublish, Topic};

/// One log's commit loop state: whether a loop runs, and the signal it
/// bumps after every fsync.
#[derive(Debug)]
pub(crate) struct Committer {
    leading: AtomicBool,
    synced: watch::Sender<u64>,
    /// Least time between the starts of two fsyncs of one loop
    /// (`BrokerConfig::group_commit_window_us`).
    window: Duration,
}

impl Committer {
    pub(crate) fn new(window: Duration) -> Committer {
        Committer {
            leading: AtomicBool::new(false),
            synced: watch::Sender::new(0),
            window,
        }
    }

    /// Whether `log` is durable below `next`; if not, makes sure a commit
    /// loop runs, calling `start` to spawn one (which must call
    /// [`Committer::run`]).
    pub(crate) fn durable_or_start(
        &self,
        log: &Log,
        next: Offset,
        start: impl FnOnce(),
    ) -> Result<bool> {
        if log.is_durable(next).map_err(from_log)? {
            return Ok(true);
        }
        if !self.leading.swap(true, Ordering::SeqCst) {
            start();
        }
        Ok(false)
    }

    /// Waits until `log` is durable below `next`, without holding a thread;
    /// `start` spawns a commit loop when none runs.
    pub(crate) async fn wait(&self, log: &Log, next: Offset, start: impl Fn()) -> Result<()> {
        let mut synced = self.synced.subscribe();
        while !self.durable_or_start(log, next, &start)? {
            // The sender lives beside the log the caller holds: never closed.
            synced
                .changed()
                .await
                .map_err(|_| BusError::Storage("a commit signal closed".into()))?;
        }
        Ok(())
    }

    /// The commit loop (on a blocking thread): fsyncs while anything
    /// written to `log` is not durable, signalling and calling `after`
    /// after each fsync. While writes keep arriving, each fsync starts one
    /// window after the one before, to cover what arrived meanwhile.
    pub(crate) fn run(&self, log: &Log, after: impl Fn()) {
        let unsynced = || matches!(log.is_durable(log.next_offset_written()), Ok(false));
        loop {
            let started = Instant::now();
            // A failure poisons the log: the woken waiters see it.
            let _ = log.wait_durable(log.next_offset_written());
            self.synced.send_modify(|n| *n = n.wrapping_add(1));
            after();
            if unsynced() {
                let next = started + self.window;
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                }
                continue;
            }
            self.leading.store(false, Ordering::SeqCst);
            if !unsynced() || self.leading.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }
}

impl Broker {
    /// Waits, without holding a thread, until everything `pending` wrote
    /// (or pointed at) is durable. The partitions' commit loops are all
    /// started first, so they run side by side; each wakes the waiting
    /// consumers after its fsync.
    pub(crate) async fn durable(&self, topic: &Arc<Topic>, pending: &PendingPublish) -> Result<()> {
        for &(partition, next) in pending.waits() {
            let (log, committer) = topic.commit_parts(partition)?;
            committer
                .durable_or_start(log, Offset(next), || self.start_commit(topic, partition))?;
        }
        for &(partition, next) in pending.waits() {
            let (log, committer) = topic.commit_parts(partition)?;
            committer
                .wait(log, Offset(next), || self.start_commit(topic, partition))
                .await?;
        }
        Ok(())
    }

    fn start_commit(&self, topic: &Arc<Topic>, partition: u32) {
        let (broker, topic) = (self.clone(), Arc::clone(topic));
        tokio::task::spawn_blocking(move || {
            if let Ok((log, committer)) = topic.commit_parts(partition) {
                committer.run(log, || broker.notify());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use eddy_log::{FsyncPolicy, LogConfig, Record};

    use super::*;

    /// Runs commit loops with `window` while one thread writes for
    /// `duration`, asking after each write for a loop as callers do
    /// (`durable_or_start`: a loop that found nothing left to sync may
    /// have ended between two writes on a loaded machine). Returns the
    /// fsyncs made, how long the loops ran, and how many loops started,
    /// after checking that they left everything durable.
    fn commits_under_steady_writes(window: Duration, duration: Duration) -> (u64, Duration, u64) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync: FsyncPolicy::Always,
            ..LogConfig::default()
        };
        let log = Arc::new(Log::open(dir.path(), config).unwrap());
        let committer = Arc::new(Committer::new(window));
        let afters = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut loops = Vec::new();
        while started.elapsed() < duration {
            let r = log.write_batch(&[Record::new("more")]).unwrap();
            let next = Offset(r.last_offset.0 + 1);
            let start = || {
                let (log, committer, afters) = (log.clone(), committer.clone(), afters.clone());
                loops.push(std::thread::spawn(move || {
                    committer.run(&log, || {
                        afters.fetch_add(1, Ordering::SeqCst);
                    });
                }));
            };
            committer.durable_or_start(&log, next, start).unwrap();
        }
        let started_loops = loops.len() as u64;
        for l in loops {
            l.join().unwrap();
        }
        let ran = started.elapsed();
        assert!(log.is_durable(log.next_offset_written()).unwrap());
        assert!(!committer.leading.load(Ordering::SeqCst), "the loop let go");
        let fsyncs = log.stats().fsyncs;
        assert_eq!(
            afters.load(Ordering::SeqCst),
            fsyncs,
            "one `after` per fsync"
        );
        (fsyncs, ran, started_loops)
    }

    #[test]
    fn a_busy_log_is_fsynced_at_most_once_per_window() {
        // Within one loop each fsync after the first starts a window after
        // the one before, so n fsyncs take at least (n - loops) windows,
        // however fast the disk.
        let window = Duration::from_millis(20);
        let (fsyncs, ran, loops) = commits_under_steady_writes(window, Duration::from_millis(200));
        let windows = (ran.as_micros() / window.as_micros()) as u64;
        assert!(fsyncs >= 2, "the loop kept up with the writes: {fsyncs}");
        assert!(
            fsyncs <= windows + loops,
            "{fsyncs} fsyncs by {loops} loops in {ran:?}: more than one per {window:?}"
        );
    }

    #[test]
    fn a_window_over_a_second_is_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = crate::BrokerConfig {
            group_commit_window_us: crate::GROUP_COMMIT_WINDOW_US_MAX + 1,
            ..crate::BrokerConfig::default()
        };
        match Broker::open(&data, config) {
            Err(BusError::InvalidArgument { reason, .. }) => {
                assert!(reason.contains("group_commit_window_us"), "{reason}");
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        assert!(!data.exists(), "nothing was created");
    }
}
