//! The spare segment: a file pre-written with zeros, ready to become the
//! next segment when the active one rolls.
//!
//! Used under `always` only. Why: every group commit ends in an fdatasync. When the
//! write grew the file, ext4 must also commit its journal (new size, new
//! blocks) — on the machine in `docs/benchmarks.md` that made a 256 KiB
//! append + fdatasync four times slower than overwriting blocks written
//! before. Appends into a pre-written segment overwrite zeros in place, so
//! the fsync only flushes data. The price is one extra sequential write of
//! each segment, done ahead of time on a background thread.
//!
//! A spare is made only once the active segment is half full, so an idle
//! log holds no spare; a busy one holds at most one beside its active
//! segment. The spare never holds data: a crash leaves at most a partial
//! spare, which open deletes. Recovery treats a zero length field as the end of a
//! segment's data (see `docs/log-format.md`).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// File name of the spare in the log directory.
pub(crate) const SPARE_FILE: &str = "next-segment.spare";
const CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct SpareMaker {
    path: PathBuf,
    bytes: u64,
    state: Mutex<SpareState>,
    changed: Condvar,
    /// A spare was asked for since the last one was taken (a lock-free
    /// check for the append path).
    wanted: AtomicBool,
}

#[derive(Debug, Default)]
struct SpareState {
    /// A spare was asked for and not yet taken.
    wanted: bool,
    /// The spare file is complete and fsynced.
    ready: bool,
    stop: bool,
}

impl SpareMaker {
    /// A maker of spares of `bytes` bytes in `dir`; removes a leftover spare.
    pub(crate) fn new(dir: &Path, bytes: u64) -> io::Result<SpareMaker> {
        let path = dir.join(SPARE_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(SpareMaker {
            path,
            bytes,
            state: Mutex::new(SpareState::default()),
            changed: Condvar::new(),
            wanted: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, SpareState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The background thread's loop: keeps one spare ready until stopped.
    /// If writing a spare fails (a full disk), it gives up and rolls fall
    /// back to plain new files.
    pub(crate) fn run(&self) {
        loop {
            {
                let mut st = self.state();
                while (st.ready || !st.wanted) && !st.stop {
                    st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if st.stop {
                    return;
                }
            }
            match self.make() {
                Ok(true) => {
                    self.state().ready = true;
                }
                Ok(false) | Err(_) => {
                    let _ = fs::remove_file(&self.path);
                    return;
                }
            }
        }
    }

    /// Writes a fresh spare; false if stopped midway.
    fn make(&self) -> io::Result<bool> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)?;
        let zeros = vec![0u8; CHUNK_BYTES];
        let mut pos = 0u64;
        while pos < self.bytes {
            if self.state().stop {
                return Ok(false);
            }
            let n = (self.bytes - pos).min(CHUNK_BYTES as u64) as usize;
            file.write_all_at(&zeros[..n], pos)?;
            pos += n as u64;
        }
        file.sync_all()?;
        Ok(true)
    }

    /// Renames the ready spare to `dest`, if one is ready. The rename
    /// happens under the lock, so the maker cannot start overwriting the
    /// file first.
    pub(crate) fn take_into(&self, dest: &Path) -> io::Result<bool> {
        let mut st = self.state();
        if !st.ready {
            return Ok(false);
        }
        st.ready = false;
        st.wanted = false;
        self.wanted.store(false, Ordering::Release);
        fs::rename(&self.path, dest).map(|()| true)
    }

    /// Asks for a spare to be made, if none is asked for yet.
    pub(crate) fn request(&self) {
        // A plain load first: appends call this on every batch once the
        // active segment is half full, and most calls find it asked already.
        if self.wanted.load(Ordering::Acquire) || self.wanted.swap(true, Ordering::AcqRel) {
            return;
        }
        self.state().wanted = true;
        self.changed.notify_all();
    }

    /// Ends [`SpareMaker::run`] (within one chunk's write).
    pub(crate) fn stop(&self) {
        self.state().stop = true;
        self.changed.notify_all();
    }
}
