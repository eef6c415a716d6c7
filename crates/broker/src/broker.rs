//! The embedded broker: opening and recovery, the catalog of topics and
//! subscriptions, and the background timer. Delivery is in `delivery.rs`,
//! dead letters in `dead.rs`, the async `Bus` face in `bus.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use eddy_bus::name::{
    ALERTS_TOPIC, Pattern, check_any_topic_name, check_subscription_name, check_topic_name,
    dead_letter_topic,
};
use eddy_bus::{
    BusError, Event, Partition, Published, ReadBatch, ReadFrom, Result, StartAt, StoredEvent,
    SubscriptionConfig, SubscriptionInfo, TopicConfig, TopicInfo, TopicStats,
};
use eddy_log::{Clock, FsyncPolicy, LogConfig, SystemClock};

use crate::config::{BrokerConfig, GROUP_COMMIT_WINDOW_US_MAX};
use crate::error::from_log;
use crate::journal::{Journal, Op, SubId, TopicId, Tp};
use crate::store::Store;
use crate::sub::{Source, Sub};
use crate::topic::Topic;

/// Bytes a record may exceed `event_bytes_max` by: envelope framing and a
/// dead letter's metadata.
const RECORD_OVERHEAD_BYTES: u32 = 64 * 1024;

/// An embedded Eddy broker on a local folder: the [`eddy_bus::Bus`]
/// interface on `eddy-log` logs. Cheap to clone; all clones share one
/// broker. Async methods need a Tokio runtime.
#[derive(Debug, Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) config: BrokerConfig,
    pub(crate) clock: Arc<dyn Clock>,
    log_config: LogConfig,
    pub(crate) catalog: RwLock<Catalog>,
    pub(crate) journal: Journal,
    /// Bumped when something a waiting consumer may want happened: a
    /// publish, a settle, a retry falling due.
    pub(crate) changed: tokio::sync::watch::Sender<u64>,
    closed: AtomicBool,
    stop: Mutex<bool>,
    /// Wakes the timer thread: to stop, or to recompute when it should
    /// wake (a retry was scheduled sooner).
    stop_cv: Condvar,
    /// The clock time the timer thread waits until (`i64::MIN` while it
    /// is not waiting, or without a timer thread); written under `stop`.
    timer_wake_ms: AtomicI64,
    timer: Mutex<Option<JoinHandle<()>>>,
    snapshot_lock: Mutex<()>,
    last_retention_ms: AtomicI64,
    /// The event store; `None` once closed.
    pub(crate) store: Mutex<Option<Arc<Store>>>,
}

/// A subscription and its lock.
#[derive(Debug)]
pub(crate) struct SubCell {
    pub(crate) id: SubId,
    pub(crate) name: String,
    pub(crate) dead_topic: String,
    pub(crate) state: Mutex<Sub>,
}

impl SubCell {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Sub> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub(crate) topics: HashMap<String, Arc<Topic>>,
    pub(crate) topics_by_id: HashMap<TopicId, Arc<Topic>>,
    pub(crate) subs: BTreeMap<String, Arc<SubCell>>,
    next_topic_id: TopicId,
    next_sub_id: SubId,
}

impl Catalog {
    pub(crate) fn topic(&self, name: &str) -> Result<&Arc<Topic>> {
        self.topics
            .get(name)
            .ok_or_else(|| BusError::TopicNotFound(name.to_string()))
    }

    pub(crate) fn sub(&self, name: &str) -> Result<&Arc<SubCell>> {
        self.subs
            .get(name)
            .ok_or_else(|| BusError::SubscriptionNotFound(name.to_string()))
    }
}

/// The partitions a subscription reads, as its [`Source`] (borrowed from
/// the catalog, read-locked for the duration of a fetch).
pub(crate) struct TopicSource<'a>(pub(crate) &'a HashMap<TopicId, Arc<Topic>>);

impl Source for TopicSource<'_> {
    fn read(&self, tp: Tp, from: u64, max: usize) -> Result<Vec<StoredEvent>> {
        match self.0.get(&tp.topic) {
            Some(t) => t.read(tp.partition, from, max),
            None => Ok(Vec::new()),
        }
    }
    fn get(&self, tp: Tp, offset: u64) -> Result<Option<StoredEvent>> {
        match self.0.get(&tp.topic) {
            Some(t) => Ok(t.get(tp.partition, offset)?.map(|(e, _)| e)),
            None => Ok(None),
        }
    }
    fn end(&self, tp: Tp) -> u64 {
        self.0
            .get(&tp.topic)
            .and_then(|t| t.logs.get(tp.partition as usize))
            .map_or(0, |l| l.next_offset().0)
    }
}

/// Where a subscription starts reading a partition.
pub(crate) fn start_offset(topic: &Topic, partition: u32, start: StartAt) -> Result<u64> {
    let log = topic.log(Partition(partition))?;
    let (first, next) = (log.first_offset().0, log.next_offset().0);
    Ok(match start {
        StartAt::Earliest => first,
        StartAt::Latest => next,
        StartAt::Offset(o) => o.0.clamp(first, next),
        StartAt::Time(t) => log
            .offset_for_timestamp(t)
            .map_err(from_log)?
            .map_or(next, |o| o.0),
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Broker {
    /// Opens (creating if needed) a broker in `dir` on the system clock.
    pub fn open(dir: impl AsRef<Path>, config: BrokerConfig) -> Result<Broker> {
        Broker::open_with_clock(dir, config, Arc::new(SystemClock))
    }

    /// Opens (creating if needed) a broker in `dir`, reading time from
    /// `clock`. Recovery happens here: the snapshot and the journal are
    /// replayed, each partition log recovers its tail, and each topic's
    /// dedup window is read back.
    pub fn open_with_clock(
        dir: impl AsRef<Path>,
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Broker> {
        let dir = dir.as_ref().to_path_buf();
        let log_config = LogConfig {
            fsync: config.fsync,
            segment_bytes_max: config.segment_bytes_max,
            record_bytes_max: u32::try_from(config.event_limits.event_bytes_max)
                .unwrap_or(u32::MAX - RECORD_OVERHEAD_BYTES)
                .saturating_add(RECORD_OVERHEAD_BYTES),
            preallocate_segments: config.preallocate_segments,
            // The journal's lock (below) keeps a second broker out.
            lock_dir: false,
            ..LogConfig::default()
        };
        log_config
            .validate()
            .map_err(|e| BusError::InvalidArgument {
                what: "broker config",
                reason: e.to_string(),
            })?;
        if config.group_commit_window_us > GROUP_COMMIT_WINDOW_US_MAX {
            return Err(BusError::InvalidArgument {
                what: "broker config",
                reason: format!(
                    "group_commit_window_us is {}, at most {GROUP_COMMIT_WINDOW_US_MAX} (1 s)",
                    config.group_commit_window_us
                ),
            });
        }
        let journal_config = LogConfig {
            fsync: config.fsync,
            segment_bytes_max: config.journal_segment_bytes_max,
            preallocate_segments: false,
            ..LogConfig::default()
        };
        let commit_window = config.group_commit_window();
        let (journal, ops) = Journal::open(
            &dir.join("state"),
            journal_config,
            commit_window,
            Arc::clone(&clock),
        )?;
        let catalog = recover(&dir, ops, &log_config, commit_window, &clock)?;
        let store = Arc::new(Store::open(
            &dir.join("store"),
            log_config.clone(),
            commit_window,
            config.store_ids_max,
            Arc::clone(&clock),
        )?);
        let (changed, _) = tokio::sync::watch::channel(0);
        let broker = Broker {
            inner: Arc::new(Inner {
                dir,
                config,
                clock,
                log_config,
                catalog: RwLock::new(catalog),
                journal,
                changed,
                closed: AtomicBool::new(false),
                stop: Mutex::new(false),
                stop_cv: Condvar::new(),
                timer_wake_ms: AtomicI64::new(i64::MIN),
                timer: Mutex::new(None),
                snapshot_lock: Mutex::new(()),
                last_retention_ms: AtomicI64::new(i64::MIN),
                store: Mutex::new(Some(Arc::clone(&store))),
            }),
        };
        broker.start_forwarder(&store)?;
        if !broker.catalog_read()?.topics.contains_key(ALERTS_TOPIC) {
            let mut cat = broker.catalog_write()?;
            broker.create_topic_locked(&mut cat, ALERTS_TOPIC, TopicConfig::default())?;
        }
        if let Some(ms) = broker.inner.config.timer_interval_ms {
            let b = broker.clone();
            let handle = std::thread::Builder::new()
                .name("eddy-broker-timer".into())
                .spawn(move || b.run_timer(ms.max(1)))
                .map_err(|e| BusError::Storage(format!("spawn the timer thread: {e}")))?;
            *lock(&broker.inner.timer) = Some(handle);
        }
        Ok(broker)
    }

    /// Stops the timer, writes a snapshot, and closes every log. Later calls
    /// on any clone fail with `Closed`.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.stop_timer();
        if let Some(store) = lock(&self.inner.store).take() {
            store.forwarder.stop();
        }
        let snap = self.snapshot();
        self.inner.closed.store(true, Ordering::SeqCst);
        let mut cat = self
            .inner
            .catalog
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *cat = Catalog::default();
        drop(cat);
        self.inner.changed.send_modify(|v| *v += 1);
        let closed = self.inner.journal.close();
        snap.and(closed)
    }

    fn stop_timer(&self) {
        if let Some(handle) = lock(&self.inner.timer).take() {
            *lock(&self.inner.stop) = true;
            self.inner.stop_cv.notify_all();
            let _ = handle.join();
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    pub(crate) fn catalog_read(&self) -> Result<RwLockReadGuard<'_, Catalog>> {
        self.check_open()?;
        Ok(self.inner.catalog.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn catalog_write(&self) -> Result<RwLockWriteGuard<'_, Catalog>> {
        self.check_open()?;
        Ok(self
            .inner
            .catalog
            .write()
            .unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The topic of the broker's own with this name, created if missing.
    pub(crate) fn own_topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.own_topic_with(name, TopicConfig::default())
    }

    /// The topic with this name, created with `config` if missing.
    pub(crate) fn own_topic_with(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        if let Some(t) = self.catalog_read()?.topics.get(name) {
            return Ok(Arc::clone(t));
        }
        let mut cat = self.catalog_write()?;
        if let Some(t) = cat.topics.get(name) {
            return Ok(Arc::clone(t));
        }
        self.create_topic_locked(&mut cat, name, config)
    }

    /// The event store, unless the broker is closed.
    pub(crate) fn store(&self) -> Result<Arc<Store>> {
        self.check_open()?;
        lock(&self.inner.store).clone().ok_or(BusError::Closed)
    }

    pub(crate) fn notify(&self) {
        self.inner.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    // ---- topics ----

    fn topic_dir(&self, id: TopicId) -> PathBuf {
        self.inner.dir.join("topics").join(id.to_string())
    }

    /// Creates a topic under the catalog's write lock and attaches the
    /// subscriptions whose filter matches it (from its beginning).
    pub(crate) fn create_topic_locked(
        &self,
        cat: &mut Catalog,
        name: &str,
        config: TopicConfig,
    ) -> Result<Arc<Topic>> {
        config.validate()?;
        if cat.topics.contains_key(name) {
            return Err(BusError::TopicExists(name.to_string()));
        }
        let id = cat.next_topic_id;
        let topic = Arc::new(Topic::open(
            id,
            name.to_string(),
            config.clone(),
            &self.topic_dir(id),
            &self.inner.log_config,
            self.inner.config.group_commit_window(),
            &self.inner.clock,
        )?);
        let mut ops = vec![Op::TopicCreated {
            id,
            name: name.to_string(),
            config: config.clone(),
        }];
        for cell in cat.subs.values() {
            let st = cell.lock();
            if st.pattern.matches(name) {
                for p in 0..config.partitions {
                    ops.push(Op::Cursor {
                        sub: cell.id,
                        tp: Tp {
                            topic: id,
                            partition: p,
                        },
                        next: 0,
                    });
                }
            }
        }
        if let Err(e) = self.inner.journal.commit(&ops) {
            let _ = fs::remove_dir_all(self.topic_dir(id));
            return Err(e);
        }
        cat.next_topic_id += 1;
        for cell in cat.subs.values() {
            let mut st = cell.lock();
            for op in &ops {
                st.apply(op);
            }
        }
        cat.topics.insert(name.to_string(), Arc::clone(&topic));
        cat.topics_by_id.insert(id, Arc::clone(&topic));
        Ok(topic)
    }

    pub(crate) fn create_topic_sync(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        check_topic_name(name)?;
        config.validate()?;
        let mut cat = self.catalog_write()?;
        let topic = self.create_topic_locked(&mut cat, name, config)?;
        Ok(topic_info(&topic))
    }

    pub(crate) fn list_topics_sync(&self) -> Result<Vec<TopicInfo>> {
        let cat = self.catalog_read()?;
        let mut out: Vec<TopicInfo> = cat.topics.values().map(|t| topic_info(t)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) fn describe_topic_sync(&self, name: &str) -> Result<TopicInfo> {
        check_any_topic_name(name)?;
        Ok(topic_info(self.catalog_read()?.topic(name)?))
    }

    pub(crate) fn delete_topic_sync(&self, name: &str) -> Result<()> {
        check_topic_name(name)?;
        let mut cat = self.catalog_write()?;
        let topic = Arc::clone(cat.topic(name)?);
        self.inner
            .journal
            .commit(&[Op::TopicDeleted { id: topic.id }])?;
        for cell in cat.subs.values() {
            cell.lock().drop_topic(topic.id);
        }
        cat.topics.remove(name);
        cat.topics_by_id.remove(&topic.id);
        drop(cat);
        // Outside the catalog lock: deleting gigabytes of segments takes
        // long, and every publish and fetch takes that lock. Readers still
        // holding the topic keep their open files; a folder left by a
        // crash meanwhile is an orphan, dropped on the next open.
        let _ = fs::remove_dir_all(self.topic_dir(topic.id));
        Ok(())
    }

    // ---- publishing and reading ----

    /// Checks a publish (topic name, batch limits, each event) and gives
    /// every event without an id a fresh one.
    fn check_publish(&self, topic: &str, events: &mut [Event]) -> Result<()> {
        check_topic_name(topic)?;
        if events.len() > PUBLISH_BATCH_MAX {
            return Err(BusError::LimitExceeded {
                what: "batch event count",
                setting: "PUBLISH_BATCH_MAX (split the batch)",
                limit: PUBLISH_BATCH_MAX as u64,
                actual: events.len() as u64,
            });
        }
        check_events(
            events,
            &self.inner.config.event_limits,
            "publish batch bytes",
            "PUBLISH_BATCH_BYTES_MAX (split the batch)",
        )
    }

    /// Publishes from an async task: the write (to the page cache) runs on
    /// the task and the fsync wait is a group commit that holds no thread
    /// ([`Broker::durable`]). A topic still to be auto-created goes the
    /// blocking way, since creating it waits for the journal's fsync.
    pub(crate) async fn publish_async(
        &self,
        topic: &str,
        mut events: Vec<Event>,
    ) -> Result<Vec<Published>> {
        self.check_publish(topic, &mut events)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let existing = self.catalog_read()?.topics.get(topic).cloned();
        let Some(t) = existing else {
            let topic = topic.to_string();
            return self
                .blocking(move |b| {
                    let t = b.topic_for_publish(&topic)?;
                    b.publish_internal(&t, &events, true)
                })
                .await;
        };
        let pending = t.write(&events, self.now_ms(), true)?;
        if self.inner.config.fsync == FsyncPolicy::Always {
            // The commit loop wakes the consumers after its fsync.
            self.durable(&t, &pending).await?;
        } else {
            self.notify();
        }
        Ok(pending.results)
    }

    fn topic_for_publish(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.catalog_read()?.topics.get(name) {
            return Ok(Arc::clone(t));
        }
        if !self.inner.config.auto_create_topics {
            return Err(BusError::TopicNotFound(name.to_string()));
        }
        let mut cat = self.catalog_write()?;
        if let Some(t) = cat.topics.get(name) {
            return Ok(Arc::clone(t));
        }
        self.create_topic_locked(&mut cat, name, TopicConfig::default())
    }

    /// Writes events to a topic of the broker's own (no name check, no
    /// dedup when `dedup` is off) and waits until they are durable.
    pub(crate) fn publish_internal(
        &self,
        topic: &Arc<Topic>,
        events: &[Event],
        dedup: bool,
    ) -> Result<Vec<Published>> {
        let pending = topic.write(events, self.now_ms(), dedup)?;
        topic.wait_durable(&pending)?;
        self.notify();
        Ok(pending.results)
    }

    pub(crate) fn read_sync(
        &self,
        topic: &str,
        partition: Partition,
        from: ReadFrom,
        max: u32,
    ) -> Result<ReadBatch> {
        check_any_topic_name(topic)?;
        if max == 0 || max > eddy_bus::READ_MAX {
            return Err(BusError::InvalidArgument {
                what: "max",
                reason: format!(
                    "a read returns 1..={} events, not {max}",
                    eddy_bus::READ_MAX
                ),
            });
        }
        let topic = Arc::clone(self.catalog_read()?.topic(topic)?);
        let log = topic.log(partition)?;
        let (first, next) = (log.first_offset().0, log.next_offset().0);
        let start = match from {
            ReadFrom::Beginning => first,
            ReadFrom::End => next,
            ReadFrom::Offset(o) if o.0 < first || o.0 > next => {
                return Err(BusError::OffsetOutOfRange {
                    requested: o,
                    first: eddy_bus::Offset(first),
                    next: eddy_bus::Offset(next),
                });
            }
            ReadFrom::Offset(o) => o.0,
            ReadFrom::Time(t) => log
                .offset_for_timestamp(t)
                .map_err(from_log)?
                .map_or(next, |o| o.0),
        };
        let events = topic.read(partition.0, start, max as usize)?;
        let next_offset = events.last().map_or(start, |e| e.offset.0 + 1);
        Ok(ReadBatch {
            events,
            next_offset: eddy_bus::Offset(next_offset),
        })
    }

    // ---- subscriptions ----

    pub(crate) fn create_subscription_sync(
        &self,
        name: &str,
        config: SubscriptionConfig,
    ) -> Result<SubscriptionInfo> {
        check_subscription_name(name)?;
        config.validate()?;
        let pattern = Pattern::parse(&config.filter)?;
        if !pattern.is_wildcard() {
            check_any_topic_name(&config.filter)?;
        }
        let mut cat = self.catalog_write()?;
        if cat.subs.contains_key(name) {
            return Err(BusError::SubscriptionExists(name.to_string()));
        }
        // Its dead-letter topic is created with the first dead letter.
        let dead_topic = dead_letter_topic(name);
        let id = cat.next_sub_id;
        let mut sub = Sub::new(id, name.to_string(), config.clone())?;
        let mut ops = vec![Op::SubCreated {
            id,
            name: name.to_string(),
            config: config.clone(),
        }];
        let mut matched: Vec<&Arc<Topic>> = if pattern.is_wildcard() {
            cat.topics
                .values()
                .filter(|t| pattern.matches(&t.name))
                .collect()
        } else {
            cat.topics.get(&config.filter).into_iter().collect()
        };
        matched.sort_by_key(|t| t.id);
        for t in matched {
            for p in 0..t.config.partitions {
                ops.push(Op::Cursor {
                    sub: id,
                    tp: Tp {
                        topic: t.id,
                        partition: p,
                    },
                    next: start_offset(t, p, config.start)?,
                });
            }
        }
        self.inner.journal.commit(&ops)?;
        for op in &ops {
            sub.apply(op);
        }
        cat.next_sub_id += 1;
        let cell = Arc::new(SubCell {
            id,
            name: name.to_string(),
            dead_topic,
            state: Mutex::new(sub),
        });
        let info = sub_info(&cat, &cell);
        cat.subs.insert(name.to_string(), cell);
        Ok(info)
    }

    pub(crate) fn list_subscriptions_sync(&self) -> Result<Vec<SubscriptionInfo>> {
        let cat = self.catalog_read()?;
        Ok(cat.subs.values().map(|c| sub_info(&cat, c)).collect())
    }

    pub(crate) fn describe_subscription_sync(&self, name: &str) -> Result<SubscriptionInfo> {
        let cat = self.catalog_read()?;
        let cell = cat.sub(name)?;
        Ok(sub_info(&cat, cell))
    }

    pub(crate) fn delete_subscription_sync(&self, name: &str) -> Result<()> {
        let mut cat = self.catalog_write()?;
        let cell = Arc::clone(cat.sub(name)?);
        let mut ops = vec![Op::SubDeleted { id: cell.id }];
        let dead = cat.topics.get(&cell.dead_topic).cloned();
        if let Some(t) = &dead {
            ops.push(Op::TopicDeleted { id: t.id });
        }
        self.inner.journal.commit(&ops)?;
        cat.subs.remove(name);
        if let Some(t) = dead {
            for c in cat.subs.values() {
                c.lock().drop_topic(t.id);
            }
            cat.topics.remove(&t.name);
            cat.topics_by_id.remove(&t.id);
            let _ = fs::remove_dir_all(self.topic_dir(t.id));
        }
        Ok(())
    }

    pub(crate) fn seek_sync(&self, name: &str, to: StartAt) -> Result<()> {
        let cat = self.catalog_read()?;
        let cell = cat.sub(name)?;
        let mut st = cell.lock();
        let mut ops = vec![Op::ClearPending { sub: cell.id }];
        for &tp in st.parts.keys() {
            let Some(topic) = cat.topics_by_id.get(&tp.topic) else {
                continue;
            };
            ops.push(Op::Cursor {
                sub: cell.id,
                tp,
                next: start_offset(topic, tp.partition, to)?,
            });
        }
        let w = self.inner.journal.write(&ops)?;
        for op in &ops {
            st.apply(op);
        }
        drop(st);
        drop(cat);
        self.inner.journal.wait(w)?;
        self.notify();
        Ok(())
    }

    // ---- stats ----

    pub(crate) fn topic_stats_sync(&self, name: &str) -> Result<TopicStats> {
        check_any_topic_name(name)?;
        let topic = Arc::clone(self.catalog_read()?.topic(name)?);
        let parts = topic.partition_infos();
        Ok(TopicStats {
            name: topic.name.clone(),
            published: topic.published.load(Ordering::Relaxed),
            duplicates: topic.duplicates.load(Ordering::Relaxed),
            events: parts
                .iter()
                .map(|p| p.next_offset.0 - p.first_offset.0)
                .sum(),
            size_bytes: parts.iter().map(|p| p.size_bytes).sum(),
        })
    }

    // ---- background work ----

    /// The timer thread: a [`tick`](Self::tick) every `interval_ms`, and
    /// also as soon as a subscription's earliest timer (a retry falling
    /// due, a lease ending) comes, so a retry is delivered at its time
    /// rather than at the next interval.
    fn run_timer(&self, interval_ms: u64) {
        let interval = i64::try_from(interval_ms).unwrap_or(i64::MAX);
        let mut last_tick = self.now_ms();
        loop {
            {
                let stop = lock(&self.inner.stop);
                if *stop {
                    return;
                }
                // Computed under `stop`: a nack that schedules a sooner
                // retry after this either is seen here or finds the timer
                // waiting, and wakes it (`wake_timer_for`).
                let now = self.now_ms();
                let next = self.next_timer_after(last_tick).unwrap_or(i64::MAX);
                let wake = last_tick.saturating_add(interval).min(next);
                if wake > now {
                    self.inner.timer_wake_ms.store(wake, Ordering::SeqCst);
                    let wait = std::time::Duration::from_millis((wake - now).unsigned_abs());
                    let (stop, _) = self
                        .inner
                        .stop_cv
                        .wait_timeout(stop, wait)
                        .unwrap_or_else(|p| p.into_inner());
                    self.inner.timer_wake_ms.store(i64::MIN, Ordering::SeqCst);
                    if *stop {
                        return;
                    }
                    if self.now_ms() < wake {
                        // Woken early: a sooner timer was set; recompute.
                        continue;
                    }
                }
            }
            last_tick = self.now_ms();
            if let Err(e) = self.tick() {
                tracing::error!(error = %e, "broker timer");
            }
        }
    }

    /// The earliest timer of any subscription after `after` (clock ms):
    /// the ones at or before it were handled by the tick at `after`.
    fn next_timer_after(&self, after: i64) -> Option<i64> {
        let cat = self.catalog_read().ok()?;
        cat.subs
            .values()
            .filter_map(|cell| cell.lock().next_timer_after(after))
            .min()
    }

    /// Wakes the timer thread if it waits past `due` (clock ms). Call
    /// without holding a subscription's lock.
    pub(crate) fn wake_timer_for(&self, due: i64) {
        if due >= self.inner.timer_wake_ms.load(Ordering::SeqCst) {
            return;
        }
        let _stop = lock(&self.inner.stop);
        if due < self.inner.timer_wake_ms.load(Ordering::SeqCst) {
            self.inner.stop_cv.notify_all();
        }
    }

    /// One round of background work: expire leases (dead-lettering as
    /// needed), wake consumers for due retries, make lazily written
    /// consumer state durable, apply retention, snapshot.
    pub fn tick(&self) -> Result<()> {
        let now = self.now_ms();
        let cells: Vec<Arc<SubCell>> = self.catalog_read()?.subs.values().cloned().collect();
        let mut due = false;
        for cell in &cells {
            let mut ops = Vec::new();
            let mut dying = Vec::new();
            let w = {
                let mut st = cell.lock();
                if !st.has_due(now) {
                    continue;
                }
                due = true;
                st.expire(now, &mut ops, &mut dying);
                self.inner.journal.write(&ops)?
            };
            self.inner.journal.wait(w)?;
            self.dead_letter(cell, dying)?;
        }
        if due {
            self.notify();
        }
        // Deliveries and lease extensions are written without waiting;
        // bound how long they may stay in the page cache only.
        let written = self.inner.journal.next_offset()?;
        self.inner.journal.wait_for_offset(written)?;
        self.store()?.forwarder.sync()?;
        let last = self.inner.last_retention_ms.load(Ordering::Relaxed);
        let every = i64::try_from(self.inner.config.retention_interval_ms).unwrap_or(i64::MAX);
        if now.saturating_sub(last) >= every {
            self.inner.last_retention_ms.store(now, Ordering::Relaxed);
            let topics: Vec<Arc<Topic>> = self
                .catalog_read()?
                .topics_by_id
                .values()
                .cloned()
                .collect();
            for t in &topics {
                for log in &t.logs {
                    log.apply_retention().map_err(from_log)?;
                }
            }
        }
        if self.inner.journal.bytes_since_snapshot() >= self.inner.config.snapshot_journal_bytes {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Writes a snapshot of all state and deletes the journal before it.
    pub fn snapshot(&self) -> Result<()> {
        let Ok(_only_one) = self.inner.snapshot_lock.try_lock() else {
            return Ok(());
        };
        let (ops, at) = {
            let cat = self.catalog_read()?;
            let mut topics: Vec<&Arc<Topic>> = cat.topics.values().collect();
            topics.sort_by_key(|t| t.id);
            let mut ops = Vec::new();
            for t in topics {
                ops.push(Op::TopicCreated {
                    id: t.id,
                    name: t.name.clone(),
                    config: t.config.clone(),
                });
            }
            // Every journal writer holds the catalog lock or a
            // subscription's lock: with all of them held, `at` is a cut.
            let guards: Vec<MutexGuard<'_, Sub>> = cat.subs.values().map(|c| c.lock()).collect();
            for st in &guards {
                ops.push(Op::SubCreated {
                    id: st.id,
                    name: st.name.clone(),
                    config: st.config.clone(),
                });
                st.snapshot_ops(&mut ops);
            }
            ops.push(Op::TopicIds {
                next_topic: cat.next_topic_id,
                next_sub: cat.next_sub_id,
            });
            let at = self.inner.journal.next_offset()?;
            (ops, at)
        };
        self.inner.journal.install_snapshot(&ops, at)
    }
}

/// Checks every event against `limits` and their bytes together against
/// [`PUBLISH_BATCH_BYTES_MAX`] (refused as `what`, naming `setting`), then
/// gives every event without an id a fresh one (UUIDv7). Shared by
/// publishes and event-store appends.
pub(crate) fn check_events(
    events: &mut [Event],
    limits: &eddy_bus::EventLimits,
    what: &'static str,
    setting: &'static str,
) -> Result<()> {
    for e in events.iter() {
        e.validate(limits)?;
    }
    let bytes: usize = events.iter().map(Event::size_bytes).sum();
    if bytes > PUBLISH_BATCH_BYTES_MAX {
        return Err(BusError::LimitExceeded {
            what,
            setting,
            limit: PUBLISH_BATCH_BYTES_MAX as u64,
            actual: bytes as u64,
        });
    }
    for e in events.iter_mut() {
        if e.id.is_empty() {
            e.id = uuid::Uuid::now_v7().to_string();
        }
    }
    Ok(())
}

/// Most events in one publish.
pub const PUBLISH_BATCH_MAX: usize = 10_000;
/// Most bytes of events (as counted by `Event::size_bytes`) in one publish;
/// within the partition log's 16 MiB batch limit with room for framing.
pub const PUBLISH_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

pub(crate) fn topic_info(t: &Topic) -> TopicInfo {
    TopicInfo {
        name: t.name.clone(),
        config: t.config.clone(),
        partitions: t.partition_infos(),
    }
}

fn sub_info(cat: &Catalog, cell: &SubCell) -> SubscriptionInfo {
    let st = cell.lock();
    let mut topics: Vec<String> = st
        .parts
        .keys()
        .filter_map(|tp| cat.topics_by_id.get(&tp.topic).map(|t| t.name.clone()))
        .collect();
    topics.dedup();
    SubscriptionInfo {
        name: cell.name.clone(),
        config: st.config.clone(),
        topics,
        dead_letter_topic: cell.dead_topic.clone(),
    }
}

/// Rebuilds the catalog from replayed ops and opens the topics.
fn recover(
    dir: &Path,
    ops: Vec<Op>,
    log_config: &LogConfig,
    commit_window: Duration,
    clock: &Arc<dyn Clock>,
) -> Result<Catalog> {
    let mut topics: BTreeMap<TopicId, (String, TopicConfig)> = BTreeMap::new();
    let mut subs: BTreeMap<SubId, Sub> = BTreeMap::new();
    let (mut next_topic, mut next_sub) = (0, 0);
    for op in ops {
        match op {
            Op::TopicCreated { id, name, config } => {
                next_topic = next_topic.max(id + 1);
                topics.insert(id, (name, config));
            }
            Op::TopicDeleted { id } => {
                topics.remove(&id);
                for s in subs.values_mut() {
                    s.drop_topic(id);
                }
            }
            Op::SubCreated { id, name, config } => {
                next_sub = next_sub.max(id + 1);
                subs.insert(id, Sub::new(id, name, config)?);
            }
            Op::SubDeleted { id } => {
                subs.remove(&id);
            }
            Op::TopicIds {
                next_topic: t,
                next_sub: s,
            } => {
                next_topic = next_topic.max(t);
                next_sub = next_sub.max(s);
            }
            other => {
                if let Some(s) = other.sub().and_then(|id| subs.get_mut(&id)) {
                    s.apply(&other);
                }
            }
        }
    }
    let topics_dir = dir.join("topics");
    fs::create_dir_all(&topics_dir)
        .map_err(|e| BusError::Storage(format!("create {}: {e}", topics_dir.display())))?;
    // Folders of topics whose creation or deletion a crash cut short.
    if let Ok(entries) = fs::read_dir(&topics_dir) {
        for entry in entries.flatten() {
            let known = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<TopicId>().ok())
                .is_some_and(|id| topics.contains_key(&id));
            if !known {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let mut cat = Catalog {
        next_topic_id: next_topic,
        next_sub_id: next_sub,
        ..Catalog::default()
    };
    let mut by_id = HashMap::new();
    for (id, (name, config)) in topics {
        let t = Arc::new(Topic::open(
            id,
            name.clone(),
            config,
            &topics_dir.join(id.to_string()),
            log_config,
            commit_window,
            clock,
        )?);
        cat.topics.insert(name, Arc::clone(&t));
        by_id.insert(id, t);
    }
    cat.topics_by_id = by_id;
    for (_, mut sub) in subs {
        // A cursor past the end of a partition (its tail was lost under a
        // weaker fsync policy than `always`) is pulled back to the end.
        for (tp, part) in sub.parts.iter_mut() {
            if let Some(log) = cat
                .topics_by_id
                .get(&tp.topic)
                .and_then(|t| t.logs.get(tp.partition as usize))
            {
                part.next = part.next.min(log.next_offset().0);
            }
        }
        let name = sub.name.clone();
        let cell = SubCell {
            id: sub.id,
            name: name.clone(),
            dead_topic: dead_letter_topic(&name),
            state: Mutex::new(sub),
        };
        cat.subs.insert(name, Arc::new(cell));
    }
    Ok(cat)
}
