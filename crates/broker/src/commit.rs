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
}

impl Committer {
    pub(crate) fn new() -> Committer {
        Committer {
            leading: AtomicBool::new(false),
            synced: watch::Sender::new(0),
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
    /// after each fsync.
    pub(crate) fn run(&self, log: &Log, after: impl Fn()) {
        let unsynced = || matches!(log.is_durable(log.next_offset_written()), Ok(false));
        loop {
            // A failure poisons the log: the woken waiters see it.
            let _ = log.wait_durable(log.next_offset_written());
            self.synced.send_modify(|n| *n = n.wrapping_add(1));
            after();
            if unsynced() {
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
