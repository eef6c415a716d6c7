//! The `interval` fsync policy's background work: one thread for all the
//! logs of a process, so that a broker with thousands of partition logs
//! does not run thousands of threads.
//!
//! A log registers a weak reference and its period; the thread fsyncs each
//! log whose period has passed and that has unsynced data. A dropped log
//! is forgotten; a poisoned one is no longer flushed (its appends fail).
//! The thread starts with the first registration and lives as long as the
//! process, idle when no log is registered.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// A log the flusher can make durable.
pub(crate) trait Flush: Send + Sync {
    /// fsyncs what was written and not yet synced; `false` when the log
    /// can no longer be flushed (it is poisoned).
    fn flush(&self) -> bool;
}

struct Entry {
    log: Weak<dyn Flush>,
    period: Duration,
    due: Instant,
}

struct Registry {
    entries: Vec<Entry>,
    started: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    entries: Vec::new(),
    started: false,
});
static WAKE: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Flushes `log` every `period` from now on, until it is dropped.
pub(crate) fn register(log: Weak<dyn Flush>, period: Duration) -> std::io::Result<()> {
    let mut registry = lock();
    if !registry.started {
        std::thread::Builder::new()
            .name("eddy-log-fsync".into())
            .spawn(run)?;
        registry.started = true;
    }
    registry.entries.push(Entry {
        log,
        period,
        due: Instant::now() + period,
    });
    WAKE.notify_all();
    Ok(())
}

fn run() {
    let mut registry = lock();
    loop {
        registry.entries.retain(|e| e.log.strong_count() > 0);
        let now = Instant::now();
        match registry.entries.iter().map(|e| e.due).min() {
            None => {
                registry = WAKE.wait(registry).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            Some(due) if due > now => {
                registry = WAKE
                    .wait_timeout(registry, due - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            }
            Some(_) => {}
        }
        let mut due: Vec<Arc<dyn Flush>> = Vec::new();
        for e in registry.entries.iter_mut().filter(|e| e.due <= now) {
            e.due = now + e.period;
            due.extend(e.log.upgrade());
        }
        drop(registry);
        // fsyncs run without the registry lock: opening a log never waits
        // for another log's fsync.
        let failed: Vec<Arc<dyn Flush>> = due.into_iter().filter(|log| !log.flush()).collect();
        registry = lock();
        registry.entries.retain(|e| {
            !failed
                .iter()
                .any(|f| Weak::ptr_eq(&e.log, &Arc::downgrade(f)))
        });
    }
}
