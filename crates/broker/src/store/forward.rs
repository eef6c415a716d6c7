//! Appended events go to the bus too (the seed's "Save Events → Publish
//! Events"): a forwarder thread follows `$all` and publishes each event of
//! a stream with a category to the topic `es.<category>` (created with
//! `BrokerConfig::store_topic_partitions` partitions), keyed by its stream
//! so each stream's events keep their order, with the headers `esstream`,
//! `esversion` and `esposition`.
//!
//! The append is acknowledged once the store has it; the bus gets it just
//! after. How far the forwarder got is kept in `store/forwarded` (written
//! after each publish, fsynced by the broker's timer): after a crash it
//! publishes again from there, and the bus's dedup window (the events keep
//! their ids) drops what it had already published. So every appended event
//! reaches the bus at least once, and once within the dedup window.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use eddy_bus::store::store_topic;
use eddy_bus::{AllFilter, BusError, Event, Result, TopicConfig};

use super::{Store, lock};
use crate::broker::{Broker, Inner};

/// Most events the forwarder publishes in one round.
const FORWARD_BATCH_MAX: u32 = 1_000;
/// How long the forwarder sleeps after a failed round before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often an idle forwarder checks whether its broker is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// A busy forwarder starts a round no sooner than this after the last one,
/// so that each round publishes a batch: the topic logs are fsynced once
/// per round, not once per append (forwarding otherwise doubled the disk
/// flushes under a stream of small appends; see `docs/benchmarks.md`).
const ROUND_EVERY: Duration = Duration::from_millis(10);

/// The forwarder's position and its wake-up.
#[derive(Debug)]
pub(crate) struct Forwarder {
    path: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
    /// A position was saved and not yet fsynced.
    unsynced: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// Every event before this position is on the bus.
    forwarded: u64,
    /// New events were made readable since the forwarder last looked.
    pending: bool,
    stop: bool,
}

impl Forwarder {
    /// Reads the forwarder's position in `dir` (none yet: from the start).
    pub(crate) fn open(dir: &Path, head: u64) -> Result<Forwarder> {
        let path = dir.join("forwarded");
        let forwarded = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| BusError::Corrupt(format!("{} holds no position", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(BusError::Storage(format!("read {}: {e}", path.display()))),
        };
        Ok(Forwarder {
            path,
            state: Mutex::new(State {
                forwarded: forwarded.min(head),
                pending: true,
                stop: false,
            }),
            wake: Condvar::new(),
            unsynced: AtomicBool::new(false),
        })
    }

    /// Every event before this position is on the bus.
    pub(crate) fn position(&self) -> u64 {
        lock(&self.state).forwarded
    }

    pub(crate) fn wake(&self) {
        lock(&self.state).pending = true;
        self.wake.notify_all();
    }

    pub(crate) fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_all();
    }

    fn save(&self, position: u64) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        let io = |e: std::io::Error| BusError::Storage(format!("write {}: {e}", tmp.display()));
        std::fs::write(&tmp, format!("{position}\n")).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        self.unsynced.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Makes the saved position durable (the timer calls this).
    pub(crate) fn sync(&self) -> Result<()> {
        if !self.unsynced.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        for p in [self.path.as_path(), dir] {
            std::fs::File::open(p)
                .and_then(|f| f.sync_all())
                .map_err(|e| BusError::Storage(format!("fsync {}: {e}", p.display())))?;
        }
        Ok(())
    }

    /// Waits until there may be something to forward; `false` to stop.
    fn wait(&self, broker: &Weak<Inner>) -> bool {
        let mut st = lock(&self.state);
        loop {
            if st.stop || broker.strong_count() == 0 {
                return false;
            }
            if st.pending {
                st.pending = false;
                return true;
            }
            st = self
                .wake
                .wait_timeout(st, IDLE_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The bus event of a stored one: same id and attributes, keyed by its
/// stream, with the store's coordinates as headers.
fn bus_event(e: &eddy_bus::RecordedEvent) -> Event {
    let mut event = e.event.clone();
    event.key = Some(e.stream.clone());
    event.headers.push(("esstream".into(), e.stream.clone()));
    event
        .headers
        .push(("esversion".into(), e.version.to_string()));
    event
        .headers
        .push(("esposition".into(), e.position.to_string()));
    event
}

impl Broker {
    /// Starts the forwarder thread. It holds the broker weakly: it ends
    /// when the broker is closed or dropped.
    pub(crate) fn start_forwarder(&self, store: &Arc<Store>) -> Result<()> {
        let (weak, store) = (Arc::downgrade(&self.inner), Arc::clone(store));
        std::thread::Builder::new()
            .name("eddy-store-forward".into())
            .spawn(move || {
                let mut last_round: Option<std::time::Instant> = None;
                while store.forwarder.wait(&weak) {
                    loop {
                        if let Some(at) = last_round {
                            let since = at.elapsed();
                            if since < ROUND_EVERY {
                                std::thread::sleep(ROUND_EVERY - since);
                            }
                        }
                        last_round = Some(std::time::Instant::now());
                        let Some(inner) = weak.upgrade() else { return };
                        let broker = Broker { inner };
                        match broker.forward_once(&store) {
                            Ok(true) => continue,
                            Ok(false) => break,
                            Err(BusError::Closed) => return,
                            Err(e) => {
                                tracing::warn!(error = %e, "forwarding store events to the bus failed; retrying");
                                drop(broker);
                                std::thread::sleep(RETRY_AFTER);
                                store.forwarder.wake();
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| BusError::Storage(format!("spawn the store forwarder: {e}")))?;
        Ok(())
    }

    /// Publishes the next events of `$all` to the bus; `true` if there may
    /// be more.
    fn forward_once(&self, store: &Store) -> Result<bool> {
        let from = store.forwarder.position();
        if from >= store.head() {
            return Ok(false);
        }
        let all = AllFilter::StreamPrefix(String::new());
        let slice = store.read_all_now(from, &all, FORWARD_BATCH_MAX)?;
        // Consecutive events of one topic go in one publish.
        let mut run: Vec<Event> = Vec::new();
        let mut run_topic: Option<String> = None;
        for e in &slice.events {
            let topic = store_topic(&e.stream);
            if topic != run_topic && !run.is_empty() {
                self.forward_run(run_topic.as_deref(), std::mem::take(&mut run))?;
            }
            run_topic = topic;
            if run_topic.is_some() {
                run.push(bus_event(e));
            }
        }
        self.forward_run(run_topic.as_deref(), run)?;
        lock(&store.forwarder.state).forwarded = slice.next;
        store.forwarder.save(slice.next)?;
        Ok(slice.next < slice.head)
    }

    fn forward_run(&self, topic: Option<&str>, events: Vec<Event>) -> Result<()> {
        let Some(name) = topic else { return Ok(()) };
        if events.is_empty() {
            return Ok(());
        }
        let topic = self.own_topic_with(
            name,
            TopicConfig::with_partitions(self.inner.config.store_topic_partitions),
        )?;
        self.publish_internal(&topic, &events, true)?;
        Ok(())
    }
}
