//! A topic: one `eddy-log` log per partition, the dedup window, publishing
//! and reading.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_bus::name::partition_for_key;
use eddy_bus::{
    BusError, Event, Offset, Partition, PartitionInfo, Published, Result, StoredEvent, TopicConfig,
};
use eddy_log::{Clock, Log, LogConfig, Record, RetentionPolicy};
use hashbrown::{HashTable, hash_table};

use crate::codec::{Meta, event_to_record, record_event_id, record_to_event};
use crate::commit::Committer;
use crate::dedup::Dedup;
use crate::error::from_log;
use crate::journal::TopicId;

/// Bytes one read of a partition asks the log for at most.
const READ_BYTES_MAX: usize = 4 << 20;
/// Most event bytes one read (or fetch) returns: past it, a read returns
/// fewer events than asked (always at least one), so that no request can
/// make the broker hold `max` × `event_bytes_max` in memory.
pub const READ_RESULT_BYTES_MAX: usize = 16 << 20;

/// A topic and its partitions.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) id: TopicId,
    pub(crate) name: String,
    pub(crate) config: TopicConfig,
    pub(crate) logs: Vec<Log>,
    /// One per partition, beside `logs`.
    committers: Vec<Committer>,
    dedup: Mutex<Dedup>,
    round_robin: AtomicU32,
    pub(crate) published: AtomicU64,
    pub(crate) duplicates: AtomicU64,
}

/// What a publish must wait for before it is acknowledged.
#[derive(Debug)]
pub(crate) struct PendingPublish {
    pub(crate) results: Vec<Published>,
    /// Per partition, the offset below which everything must be durable.
    wait: Vec<(u32, u64)>,
}

impl PendingPublish {
    /// Per partition, the offset below which everything must be durable.
    pub(crate) fn waits(&self) -> &[(u32, u64)] {
        &self.wait
    }
}

impl Topic {
    /// Opens (creating if needed) the partitions under `dir` and rebuilds
    /// the dedup window from their recent events.
    pub(crate) fn open(
        id: TopicId,
        name: String,
        config: TopicConfig,
        dir: &Path,
        log_config: &LogConfig,
        commit_window: Duration,
        clock: &Arc<dyn Clock>,
    ) -> Result<Topic> {
        let mut log_config = log_config.clone();
        log_config.retention = RetentionPolicy {
            age_max_ms: config.retention.age_max_ms,
            bytes_max: config.retention.bytes_max,
            records_max: config.retention.events_max,
        };
        let mut logs = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let log = Log::open_with_clock(
                dir.join(p.to_string()),
                log_config.clone(),
                Arc::clone(clock),
            )
            .map_err(from_log)?;
            logs.push(log);
        }
        let topic = Topic {
            id,
            name,
            config,
            committers: logs.iter().map(|_| Committer::new(commit_window)).collect(),
            logs,
            dedup: Mutex::new(Dedup::default()),
            round_robin: AtomicU32::new(0),
            published: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        };
        topic.rebuild_dedup(clock.now_ms())?;
        Ok(topic)
    }

    /// Reads the ids published within the dedup window back into memory.
    fn rebuild_dedup(&self, now: i64) -> Result<()> {
        let window = self.config.dedup;
        let since = now.saturating_sub_unsigned(window.age_ms);
        let mut found: Vec<(i64, String, (u32, u64))> = Vec::new();
        for (p, log) in self.logs.iter().enumerate() {
            let Some(mut at) = log.offset_for_timestamp(since).map_err(from_log)? else {
                continue;
            };
            let end = log.next_offset().0;
            while at.0 < end {
                let batches = log.read(at, READ_BYTES_MAX).map_err(from_log)?;
                if batches.is_empty() {
                    break;
                }
                for b in &batches {
                    for r in b.records().filter(|r| r.offset >= at) {
                        let id = record_event_id(&r.value)?;
                        found.push((r.timestamp_ms, id, (p as u32, r.offset.0)));
                    }
                    at = b.next_offset();
                }
            }
        }
        found.sort_by_key(|(ts, _, at)| (*ts, *at));
        let mut dedup = self.lock_dedup();
        for (ts, id, at) in found {
            let hash = dedup.hash(&id);
            dedup.insert(hash, &id, at, ts);
        }
        dedup.trim(now, &window);
        Ok(())
    }

    fn lock_dedup(&self) -> std::sync::MutexGuard<'_, Dedup> {
        self.dedup.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn log(&self, partition: Partition) -> Result<&Log> {
        self.logs
            .get(partition.0 as usize)
            .ok_or_else(|| BusError::PartitionNotFound {
                topic: self.name.clone(),
                partition,
                partitions: self.config.partitions,
            })
    }

    /// A partition's log and its commit loop state.
    pub(crate) fn commit_parts(&self, partition: u32) -> Result<(&Log, &Committer)> {
        let log = self.log(Partition(partition))?;
        Ok((log, &self.committers[partition as usize]))
    }

    /// The partition of an event: its key's, or for a keyless event the
    /// batch's `sticky` one (keyless events of one publish go together, so
    /// a batch is one append and one fsync; successive publishes rotate).
    fn partition_for(&self, event: &Event, sticky: u32) -> u32 {
        match &event.key {
            Some(k) => partition_for_key(k.as_bytes(), self.config.partitions),
            None => sticky,
        }
    }

    /// Writes events (ids assigned, already validated), dropping those whose
    /// id is in the dedup window unless `dedup` is off. Returns where each
    /// one is; call [`Topic::wait_durable`] before acknowledging.
    pub(crate) fn write(&self, events: &[Event], now: i64, dedup: bool) -> Result<PendingPublish> {
        let mut results: Vec<Option<Published>> = vec![None; events.len()];
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.config.partitions as usize];
        let mut wait: HashMap<u32, u64> = HashMap::new();
        let mut d = self.lock_dedup();
        d.trim(now, &self.config.dedup);
        let hashes: Vec<u64> = if dedup {
            events.iter().map(|e| d.hash(&e.id)).collect()
        } else {
            Vec::new()
        };
        // The first event of each id in this batch, and (event, first) for
        // the later ones: filled in once the first one has its offset.
        let mut in_batch: HashTable<usize> = HashTable::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let sticky = self.round_robin.fetch_add(1, Ordering::Relaxed) % self.config.partitions;
        for (i, e) in events.iter().enumerate() {
            if dedup {
                let hash = hashes[i];
                if let Some((p, o)) = d.get(hash, &e.id) {
                    results[i] = Some(Published {
                        partition: Partition(p),
                        offset: Offset(o),
                        duplicate: true,
                    });
                    let w = wait.entry(p).or_default();
                    *w = (*w).max(o + 1);
                    continue;
                }
                // A batch of one cannot repeat itself: no table to build.
                if events.len() > 1 {
                    let same = |&j: &usize| events[j].id == e.id;
                    match in_batch.entry(hash, same, |&j| hashes[j]) {
                        hash_table::Entry::Occupied(first) => {
                            repeats.push((i, *first.get()));
                            continue;
                        }
                        hash_table::Entry::Vacant(v) => {
                            v.insert(i);
                        }
                    }
                }
            }
            groups[self.partition_for(e, sticky) as usize].push(i);
        }
        let mut written = 0u64;
        for (p, idx) in groups.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let records: Vec<Record> = idx.iter().map(|&i| event_to_record(&events[i])).collect();
            let receipt = self.logs[p].write_batch(&records).map_err(from_log)?;
            for (k, &i) in idx.iter().enumerate() {
                let offset = receipt.base_offset.0 + k as u64;
                results[i] = Some(Published {
                    partition: Partition(p as u32),
                    offset: Offset(offset),
                    duplicate: false,
                });
                if dedup {
                    let at = (p as u32, offset);
                    d.insert(hashes[i], &events[i].id, at, receipt.timestamp_ms);
                }
            }
            written += idx.len() as u64;
            wait.insert(p as u32, receipt.last_offset.0 + 1);
        }
        d.trim(now, &self.config.dedup);
        drop(d);
        // Duplicates within the batch point at their first occurrence.
        for (i, first) in repeats {
            results[i] = results[first].map(|r| Published {
                duplicate: true,
                ..r
            });
        }
        let out = results
            .into_iter()
            .map(|r| r.ok_or_else(|| BusError::Storage("a publish lost an event's result".into())))
            .collect::<Result<Vec<_>>>()?;
        self.published.fetch_add(written, Ordering::Relaxed);
        self.duplicates
            .fetch_add(events.len() as u64 - written, Ordering::Relaxed);
        Ok(PendingPublish {
            results: out,
            wait: wait.into_iter().collect(),
        })
    }

    /// Waits until everything a publish wrote (or pointed at) is durable.
    /// The partitions' group commits run side by side (scoped threads),
    /// so a batch spanning partitions waits for the slowest fsync, not the
    /// sum of them.
    pub(crate) fn wait_durable(&self, p: &PendingPublish) -> Result<()> {
        let wait = |&(part, next): &(u32, u64)| {
            self.logs[part as usize]
                .wait_durable(eddy_log::Offset(next))
                .map_err(from_log)
        };
        let Some((first, rest)) = p.wait.split_first() else {
            return Ok(());
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = rest.iter().map(|w| scope.spawn(move || wait(w))).collect();
            let mut result = wait(first);
            for handle in others {
                let r = handle
                    .join()
                    .unwrap_or_else(|_| Err(BusError::Storage("an fsync thread panicked".into())));
                result = result.and(r);
            }
            result
        })
    }

    /// Up to `max` events of `partition` from `from` on (from the first
    /// held if `from` is below it).
    pub(crate) fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<StoredEvent>> {
        let log = self.log(Partition(partition))?;
        let from = from.max(log.first_offset().0);
        let end = log.next_offset().0;
        let mut out = Vec::new();
        let mut at = from;
        let mut bytes = 0usize;
        while at < end && out.len() < max && bytes < READ_RESULT_BYTES_MAX {
            let want = (max - out.len())
                .saturating_mul(1024)
                .clamp(64 << 10, READ_BYTES_MAX);
            let batches = match log.read(eddy_log::Offset(at), want) {
                Ok(b) => b,
                // Retention deleted it meanwhile: go on from what is held.
                Err(eddy_log::LogError::OffsetBeforeStart { first, .. }) => {
                    at = first.0;
                    continue;
                }
                Err(e) => return Err(from_log(e)),
            };
            if batches.is_empty() {
                break;
            }
            for b in &batches {
                let start = at;
                for r in b.records().filter(|r| r.offset.0 >= start) {
                    if out.len() >= max || bytes >= READ_RESULT_BYTES_MAX {
                        return Ok(out);
                    }
                    bytes += r.value.len() + r.key.as_ref().map_or(0, |k| k.len());
                    out.push(record_to_event(&self.name, partition, &r)?.0);
                    at = r.offset.0 + 1;
                }
                at = at.max(b.next_offset().0);
            }
            if out.len() >= max {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// The stored record at `offset` with its broker metadata headers.
    pub(crate) fn get(&self, partition: u32, offset: u64) -> Result<Option<(StoredEvent, Meta)>> {
        let log = self.log(Partition(partition))?;
        if offset < log.first_offset().0 || offset >= log.next_offset().0 {
            return Ok(None);
        }
        let batches = match log.read(eddy_log::Offset(offset), 1) {
            Ok(b) => b,
            Err(eddy_log::LogError::OffsetBeforeStart { .. }) => return Ok(None),
            Err(e) => return Err(from_log(e)),
        };
        for b in &batches {
            if let Some(r) = b.records().find(|r| r.offset.0 == offset) {
                return record_to_event(&self.name, partition, &r).map(Some);
            }
        }
        Ok(None)
    }

    pub(crate) fn partition_infos(&self) -> Vec<PartitionInfo> {
        self.logs
            .iter()
            .enumerate()
            .map(|(p, log)| PartitionInfo {
                partition: Partition(p as u32),
                first_offset: Offset(log.first_offset().0),
                next_offset: Offset(log.next_offset().0),
                size_bytes: log.segments().iter().map(|s| s.size_bytes).sum(),
            })
            .collect()
    }
}
