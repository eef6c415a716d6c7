//! A processor's durable embedded store: its checkpoints (input positions
//! and operator state, one JSON document each) in a folder, one file per
//! checkpoint **epoch**.
//!
//! A checkpoint is written to a new file, fsynced, renamed to
//! `checkpoint-<epoch>.json` and the folder fsynced, so a crash leaves
//! either the whole file or none. The store keeps the newest two epochs:
//! with a PostgreSQL sink the epoch is first saved here and then committed
//! in PostgreSQL with the result rows, and after a crash between the two
//! the processor loads the epoch PostgreSQL names — the newer file here is
//! a checkpoint whose results never committed, and is dropped.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest checkpoint file the store reads back.
pub const CHECKPOINT_BYTES_MAX: u64 = 256 << 20;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system failed.
    #[error("processor store {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A checkpoint file is not one this version wrote.
    #[error("processor store {path}: not a checkpoint: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The checkpoints of one processor.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StateStore {
    /// Opens (creating) the folder.
    pub fn open(dir: impl Into<PathBuf>) -> Result<StateStore, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(StateStore { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("checkpoint-{epoch}.json"))
    }

    /// The epochs held, oldest first.
    pub fn epochs(&self) -> Result<Vec<u64>, StoreError> {
        let mut epochs = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let epoch = name
                .to_str()
                .and_then(|n| n.strip_prefix("checkpoint-"))
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            epochs.extend(epoch);
        }
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// The checkpoint of `epoch`, if it is held.
    pub fn load<T: DeserializeOwned>(&self, epoch: u64) -> Result<Option<T>, StoreError> {
        let path = self.path(epoch);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let len = file.metadata().map_err(io(&path))?.len();
        if len > CHECKPOINT_BYTES_MAX {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("{len} bytes, more than {CHECKPOINT_BYTES_MAX}"),
            });
        }
        serde_json::from_reader(std::io::BufReader::new(file))
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// Saves `checkpoint` as `epoch`, durably, then drops every other
    /// epoch but the one before it.
    pub fn save<T: Serialize>(&self, epoch: u64, checkpoint: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(checkpoint).map_err(|e| StoreError::Corrupt {
            path: self.path(epoch),
            reason: e.to_string(),
        })?;
        self.save_bytes(epoch, &bytes)
    }

    /// [`save`](Self::save) of a checkpoint already encoded.
    pub fn save_bytes(&self, epoch: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(epoch);
        let tmp = self.dir.join(format!("checkpoint-{epoch}.json.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        for old in self.epochs()? {
            if old.saturating_add(1) < epoch || old > epoch {
                let p = self.path(old);
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_two_epochs_and_drops_a_newer_one_on_a_rewind() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load::<u32>(1).unwrap(), None);
        for e in 1..=4u64 {
            store.save(e, &(e * 10)).unwrap();
        }
        assert_eq!(store.epochs().unwrap(), [3, 4]);
        assert_eq!(store.load::<u64>(3).unwrap(), Some(30));
        // Resuming at epoch 3 (PostgreSQL never committed 4): saving 4
        // again replaces the orphan.
        store.save(4, &41u64).unwrap();
        assert_eq!(store.load::<u64>(4).unwrap(), Some(41));
        // A rewind to epoch 2 (a replay restarting numbering) drops newer.
        store.save(2, &20u64).unwrap();
        assert_eq!(store.epochs().unwrap(), [2]);
    }

    #[test]
    fn a_damaged_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("checkpoint-7.json"), b"{not json").unwrap();
        assert!(matches!(
            store.load::<u64>(7),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
