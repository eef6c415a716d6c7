//! Durable publish against the log it is built on: the log's own
//! `append_batch` from threads, then the broker's `publish_batch` from
//! async tasks, the same records (1 KiB, batches of 100, 4 writers) under
//! fsync `always`, each on a fresh directory for a fixed time.
//!
//! The publishing itself ([`publish_for`]) is written against the `Bus`
//! trait, so `eddy bench server` runs the same workload through the
//! network client.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Bus, Event, TopicConfig};
use eddy_log::{FsyncPolicy, LogConfig, LogStats, Record};
use tokio::runtime::Runtime;

use super::close_and_remove;
use crate::cli::bench::appenders::{self, Appended};
use crate::cli::bench::disk::pattern;
use crate::cli::bench::units;

/// Bytes of each record's value, and of each event's data.
pub const VALUE_BYTES: usize = 1024;
/// Records per `append_batch`, events per `publish_batch`.
pub const BATCH: usize = 100;
/// Appender threads, publisher tasks.
pub const WRITERS: usize = 4;
/// Partitions of the published topic, one run each: 1 is the log
/// baseline's shape (the target), 4 is informational.
pub const PARTITION_COUNTS: [u32; 2] = [1, 4];

const TOPIC: &str = "bench.publish";
const EVENT_TYPE: &str = "BenchPublished";

/// Which settings the baseline log runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSettings {
    /// `LogConfig::default()` with fsync `always`: what `eddy bench log`
    /// measures.
    Defaults,
    /// What the broker opens its partition logs with under
    /// `BrokerConfig::default()`: its segment size and pre-writing setting,
    /// no directory lock.
    BrokerPartition,
}

impl LogSettings {
    pub fn config(self) -> LogConfig {
        let log = LogConfig {
            fsync: FsyncPolicy::Always,
            ..LogConfig::default()
        };
        match self {
            LogSettings::Defaults => log,
            LogSettings::BrokerPartition => {
                let broker = BrokerConfig::default();
                LogConfig {
                    segment_bytes_max: broker.segment_bytes_max,
                    preallocate_segments: broker.preallocate_segments,
                    lock_dir: false,
                    ..log
                }
            }
        }
    }
}

/// What the appender threads achieved on one log.
#[derive(Debug, Clone)]
pub struct LogAppend {
    pub settings: LogSettings,
    pub config: LogConfig,
    /// Records acknowledged by `append_batch`, all appenders together.
    pub records: u64,
    /// Growth of the segment files (headers and framing included).
    pub disk_bytes: u64,
    pub stats: LogStats,
    /// From the start of the appenders until the last one returned.
    pub elapsed: Duration,
}

impl LogAppend {
    pub fn records_per_sec(&self) -> f64 {
        units::per_sec(self.records, self.elapsed)
    }

    pub fn payload_mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.records * VALUE_BYTES as u64, self.elapsed)
    }
}

/// Appends batches of 100 records of 1 KiB from [`WRITERS`] threads sharing
/// one fresh log in `dir` until `duration` has passed.
pub fn log_append(dir: &Path, settings: LogSettings, duration: Duration) -> Result<LogAppend> {
    let config = settings.config();
    let batch = vec![Record::new(Bytes::from(pattern(VALUE_BYTES))); BATCH];
    let Appended {
        records,
        disk_bytes,
        stats,
        elapsed,
    } = appenders::run(dir, config.clone(), &batch, WRITERS, duration)?;
    std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(LogAppend {
        settings,
        config,
        records,
        disk_bytes,
        stats,
        elapsed,
    })
}

/// What the publisher tasks achieved on one broker.
#[derive(Debug, Clone)]
pub struct Publish {
    pub partitions: u32,
    pub config: BrokerConfig,
    /// Events whose `publish_batch` returned, all publishers together.
    pub events: u64,
    /// Bytes of the topic's partition logs afterwards.
    pub disk_bytes: u64,
    /// From the start of the publishers until the last one returned.
    pub elapsed: Duration,
}

impl Publish {
    pub fn events_per_sec(&self) -> f64 {
        units::per_sec(self.events, self.elapsed)
    }

    pub fn payload_mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.events * VALUE_BYTES as u64, self.elapsed)
    }
}

/// What the publisher tasks achieved through one or more handles on a bus.
#[derive(Debug, Clone, Copy)]
pub struct PublishRun {
    /// Events whose `publish_batch` returned, all publishers together.
    pub events: u64,
    /// Bytes of the topic's partition logs afterwards.
    pub disk_bytes: u64,
    /// From the start of the publishers until the last one returned.
    pub elapsed: Duration,
}

impl PublishRun {
    pub fn events_per_sec(&self) -> f64 {
        units::per_sec(self.events, self.elapsed)
    }

    pub fn payload_mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.events * VALUE_BYTES as u64, self.elapsed)
    }
}

/// Publishes batches of 100 events of 1 KiB data (each with its own id)
/// from [`WRITERS`] tasks to a fresh topic of `partitions` partitions, in a
/// fresh broker in `dir` with fsync `always`, until `duration` has passed.
pub fn broker_publish(
    runtime: &Runtime,
    dir: &Path,
    partitions: u32,
    duration: Duration,
) -> Result<Publish> {
    let config = BrokerConfig {
        fsync: FsyncPolicy::Always,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(dir, config.clone())
        .with_context(|| format!("open a broker in {}", dir.display()))?;
    let measured = runtime.block_on(publish_for(
        std::slice::from_ref(&broker),
        TOPIC,
        partitions,
        duration,
    ));
    let PublishRun {
        events,
        disk_bytes,
        elapsed,
    } = close_and_remove(&broker, dir, measured)?;
    Ok(Publish {
        partitions,
        config,
        events,
        disk_bytes,
        elapsed,
    })
}

/// Creates `topic` with `partitions` partitions through the first of
/// `buses`, then runs [`WRITERS`] publisher tasks until `duration` has
/// passed, task `w` on `buses[w % buses.len()]` (one handle shared by all,
/// or one each), and checks that the topic counts every event once.
pub async fn publish_for<B: Bus + Clone>(
    buses: &[B],
    topic: &str,
    partitions: u32,
    duration: Duration,
) -> Result<PublishRun> {
    let first = buses.first().context("no bus to publish through")?;
    first
        .create_topic(topic, TopicConfig::with_partitions(partitions))
        .await
        .context("create the topic")?;
    let data = Bytes::from(pattern(VALUE_BYTES));
    let topic_name: Arc<str> = Arc::from(topic);
    let start = Instant::now();
    let deadline = start + duration;
    let publishers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let bus = buses[w % buses.len()].clone();
            tokio::spawn(publish_until(
                bus,
                Arc::clone(&topic_name),
                data.clone(),
                w,
                deadline,
            ))
        })
        .collect();
    let mut events = 0;
    for p in publishers {
        events += p.await.context("a publisher task panicked")??;
    }
    let elapsed = start.elapsed();
    let stats = first.topic_stats(topic).await?;
    if stats.published != events || stats.duplicates != 0 {
        bail!(
            "{events} events were published, the topic counts {} ({} duplicates)",
            stats.published,
            stats.duplicates
        );
    }
    Ok(PublishRun {
        events,
        disk_bytes: stats.size_bytes,
        elapsed,
    })
}

/// One publisher: `publish_batch` again and again until `deadline`, each
/// event with an id of its own (`<publisher>-<n>`).
async fn publish_until<B: Bus>(
    bus: B,
    topic: Arc<str>,
    data: Bytes,
    publisher: usize,
    deadline: Instant,
) -> Result<u64> {
    let mut events = 0u64;
    while Instant::now() < deadline {
        let batch: Vec<Event> = (0..BATCH as u64)
            .map(|i| {
                Event::new(EVENT_TYPE, data.clone()).with_id(format!("{publisher}-{}", events + i))
            })
            .collect();
        bus.publish_batch(&topic, batch)
            .await
            .context("publish a batch")?;
        events += BATCH as u64;
    }
    Ok(events)
}
