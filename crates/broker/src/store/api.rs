//! The broker as an [`EventStore`]: an append writes on the calling task
//! and awaits the store's group commit (no thread held per call); reads
//! run on Tokio's blocking pool; a `$all` read with nothing new waits for
//! the store's `appended` signal.

use std::sync::Arc;
use std::time::Duration;

use eddy_bus::{
    AllFilter, AllSlice, AppendResult, BusError, Direction, Event, EventStore, ExpectedVersion,
    Result, StreamFrom, StreamInfo, StreamMetadata, StreamSlice, WAIT_MS_MAX,
};
use eddy_log::Offset;

use super::{MetaChange, Store, waits_for_fsync};
use crate::broker::Broker;

impl Broker {
    /// Waits until the store's log is durable below `next` (per the fsync
    /// policy), then wakes its readers and the forwarder.
    async fn store_durable(&self, store: &Arc<Store>, next: u64) -> Result<()> {
        if waits_for_fsync(self.inner.config.fsync) {
            // The commit loop signals after its fsync.
            let start = || {
                let store = Arc::clone(store);
                tokio::task::spawn_blocking(move || {
                    store.committer.run(&store.log, || store.signal());
                });
            };
            store.committer.wait(&store.log, Offset(next), start).await
        } else {
            store.signal();
            Ok(())
        }
    }

    async fn store_write_meta(&self, stream: &str, change: MetaChange) -> Result<()> {
        let store = self.store()?;
        let next = store.write_meta(stream, change)?;
        self.store_durable(&store, next).await
    }
}

impl EventStore for Broker {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        mut events: Vec<Event>,
    ) -> Result<AppendResult> {
        Store::check_append(stream, &mut events, &self.inner.config.event_limits)?;
        let store = self.store()?;
        let (result, next) = store.write(stream, expected, &events)?;
        self.store_durable(&store, next).await?;
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: u32,
    ) -> Result<StreamSlice> {
        let (store, stream, now) = (self.store()?, stream.to_string(), self.now_ms());
        tokio::task::spawn_blocking(move || store.read_stream(&stream, from, direction, max, now))
            .await
            .map_err(|e| BusError::Storage(format!("a store read failed: {e}")))?
    }

    async fn read_all(
        &self,
        from: u64,
        filter: AllFilter,
        max: u32,
        wait_ms: u64,
    ) -> Result<AllSlice> {
        if wait_ms > WAIT_MS_MAX {
            return Err(BusError::InvalidArgument {
                what: "wait_ms",
                reason: format!("a read waits at most {WAIT_MS_MAX} ms, not {wait_ms}"),
            });
        }
        let store = self.store()?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let mut appended = store.appended.subscribe();
        let filter = Arc::new(filter);
        let mut from = from;
        loop {
            appended.borrow_and_update();
            let slice = {
                let (store, filter) = (Arc::clone(&store), Arc::clone(&filter));
                tokio::task::spawn_blocking(move || store.read_all_now(from, &filter, max))
                    .await
                    .map_err(|e| BusError::Storage(format!("a store read failed: {e}")))??
            };
            if !slice.events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(slice);
            }
            // Nothing passed the filter: go on from past what was looked at.
            from = slice.next;
            if from < slice.head {
                continue;
            }
            match tokio::time::timeout_at(deadline, appended.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    let (store, filter) = (Arc::clone(&store), Arc::clone(&filter));
                    return tokio::task::spawn_blocking(move || {
                        store.read_all_now(from, &filter, max)
                    })
                    .await
                    .map_err(|e| BusError::Storage(format!("a store read failed: {e}")))?;
                }
            }
        }
    }

    async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        self.store()?.info(stream)
    }

    async fn set_stream_metadata(&self, stream: &str, metadata: StreamMetadata) -> Result<()> {
        self.store_write_meta(stream, MetaChange::Set(metadata))
            .await
    }

    async fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<()> {
        self.store_write_meta(stream, MetaChange::Delete(expected))
            .await
    }
}
