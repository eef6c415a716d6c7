//! Consume + ack: how fast consumers of one shared subscription drain a
//! backlog, each fetching a batch and acking it with one `ack_all`, with
//! fsync `always` for the acks. Every event must be acked exactly once.
//!
//! The backlog is preloaded by a broker opened with fsync `never` (the
//! preload is not measured), which is closed and reopened with `always`
//! before the subscription is created and the drain timed.
//!
//! Preloading ([`preload`]) and draining ([`drain`]) are written against
//! the `Bus` trait, so `eddy bench server` drains through the network
//! client the same way.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{AckId, Bus, Event, FetchOptions, TopicConfig};
use eddy_log::FsyncPolicy;
use tokio::runtime::Runtime;

use super::{STALL, close_and_remove, create_shared_subscription};
use crate::cli::bench::disk::pattern;
use crate::cli::bench::units;

/// Bytes of each event's data.
pub const EVENT_BYTES: usize = 100;
/// Partitions of the drained topic.
pub const PARTITIONS: u32 = 4;
/// Consumer tasks.
pub const CONSUMERS: usize = 4;
/// Most events one fetch asks for.
pub const FETCH_MAX: u32 = 500;
/// How long a fetch waits when nothing is ready.
pub const FETCH_WAIT_MS: u64 = 100;
/// Events per `publish_batch` while preloading.
const PRELOAD_BATCH: u64 = 10_000;

/// The drained topic, and the subscription that drains it.
pub const TOPIC: &str = "bench.consume";
const SUBSCRIPTION: &str = "bench-drain";

/// What the drain achieved.
#[derive(Debug, Clone)]
pub struct Consume {
    /// Events preloaded, and acked.
    pub events: u64,
    pub preload_time: Duration,
    /// Opening the preloaded broker again, with fsync `always`.
    pub reopen_time: Duration,
    /// From the first fetch until the last event's ack returned.
    pub elapsed: Duration,
    /// Fetches by all consumers, and how many of them returned nothing.
    pub fetches: u64,
    pub empty_fetches: u64,
    pub ack_calls: u64,
}

impl Consume {
    pub fn events_per_sec(&self) -> f64 {
        units::per_sec(self.events, self.elapsed)
    }

    pub fn payload_mib_per_sec(&self) -> f64 {
        units::mib_per_sec(self.events * EVENT_BYTES as u64, self.elapsed)
    }
}

/// Preloads `events` into a fresh broker in `dir`, then drains them.
pub fn measure(runtime: &Runtime, dir: &Path, events: u64) -> Result<Consume> {
    let start = Instant::now();
    preload_embedded(runtime, dir, events).context("preload the consume workload's topic")?;
    let preload_time = start.elapsed();

    let start = Instant::now();
    let broker = Broker::open(dir, BrokerConfig::default())
        .with_context(|| format!("reopen the broker in {}", dir.display()))?;
    let reopen_time = start.elapsed();
    let drained = runtime.block_on(drain(
        std::slice::from_ref(&broker),
        TOPIC,
        SUBSCRIPTION,
        events,
    ));
    let tally = close_and_remove(&broker, dir, drained)?;
    Ok(Consume {
        events,
        preload_time,
        reopen_time,
        elapsed: tally.elapsed,
        fetches: tally.fetches,
        empty_fetches: tally.empty_fetches,
        ack_calls: tally.ack_calls,
    })
}

/// Preloads `events` into a fresh broker in `dir` opened with fsync
/// `never`, and closes it.
fn preload_embedded(runtime: &Runtime, dir: &Path, events: u64) -> Result<()> {
    let config = BrokerConfig {
        fsync: FsyncPolicy::Never,
        ..BrokerConfig::default()
    };
    let broker =
        Broker::open(dir, config).with_context(|| format!("open a broker in {}", dir.display()))?;
    let loaded = runtime.block_on(preload(&broker, TOPIC, events));
    let closed = broker.close().context("close the preloading broker");
    loaded?;
    closed
}

/// Creates `topic` with [`PARTITIONS`] partitions and publishes `events`
/// events of [`EVENT_BYTES`] into it, in batches of 10,000.
pub async fn preload<B: Bus>(bus: &B, topic: &str, events: u64) -> Result<()> {
    preload_data(bus, topic, events, Bytes::from(pattern(EVENT_BYTES))).await
}

/// [`preload`] with `data` as every event's data.
pub async fn preload_data<B: Bus>(bus: &B, topic: &str, events: u64, data: Bytes) -> Result<()> {
    // Batches of at most 10,000 events and 4 MiB (under the broker's
    // batch limit for any event size).
    let per_batch = PRELOAD_BATCH
        .min((4 << 20) / data.len().max(1) as u64)
        .max(1);
    preload_events(bus, topic, events, per_batch, |i| {
        Event::new("BenchPreloaded", data.clone()).with_id(format!("c{i}"))
    })
    .await
}

/// Creates `topic` with [`PARTITIONS`] partitions and publishes `events`
/// events made by `event(n)`, `per_batch` per `publish_batch`; checks the
/// topic holds them all.
pub async fn preload_events<B: Bus>(
    bus: &B,
    topic: &str,
    events: u64,
    per_batch: u64,
    event: impl Fn(u64) -> Event,
) -> Result<()> {
    bus.create_topic(topic, TopicConfig::with_partitions(PARTITIONS))
        .await?;
    let mut n = 0;
    while n < events {
        let batch: Vec<Event> = (n..events.min(n + per_batch)).map(&event).collect();
        n += batch.len() as u64;
        bus.publish_batch(topic, batch).await?;
    }
    let stats = bus.topic_stats(topic).await?;
    if stats.events != events {
        bail!(
            "{events} events were preloaded, the topic holds {}",
            stats.events
        );
    }
    Ok(())
}

/// What the consumers did together.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// From the first fetch until the last event's ack returned.
    pub elapsed: Duration,
    pub fetches: u64,
    pub empty_fetches: u64,
    pub ack_calls: u64,
}

/// What one consumer did: its counters and every (partition, offset) it acked.
#[derive(Debug, Default)]
struct ConsumerTally {
    fetches: u64,
    empty_fetches: u64,
    ack_calls: u64,
    acked: Vec<(u32, u64)>,
}

/// State the consumers share: events acked so far, and when the last one
/// was.
#[derive(Debug)]
pub struct Progress {
    target: u64,
    acked: AtomicU64,
    done_at: Mutex<Option<Instant>>,
}

impl Progress {
    /// Nothing acked yet, of `target` events.
    pub fn new(target: u64) -> Progress {
        Progress {
            target,
            acked: AtomicU64::new(0),
            done_at: Mutex::new(None),
        }
    }

    /// Events acked so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Every event is acked.
    pub fn is_done(&self) -> bool {
        self.acked() >= self.target
    }

    /// Counts `n` more acked events, noting the time if they were the last.
    pub fn add(&self, n: u64) {
        if self.acked.fetch_add(n, Ordering::SeqCst) + n >= self.target {
            self.done_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(Instant::now);
        }
    }

    /// When the last event's ack returned, if it did.
    pub fn done_at(&self) -> Option<Instant> {
        *self.done_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails if no event came for [`STALL`] while some are missing.
    pub fn check_stall(&self, last_progress: Instant) -> Result<()> {
        if last_progress.elapsed() > STALL {
            bail!(
                "no event for {} with {} of {} acked",
                units::duration(STALL),
                self.acked(),
                self.target
            );
        }
        Ok(())
    }
}

/// Creates the shared `subscription` on `topic` (holding `events` events)
/// through the first of `buses`, then drains it with [`CONSUMERS`]
/// consumer tasks, consumer `c` on `buses[c % buses.len()]` (one handle
/// shared by all, or one each), and checks that every event was acked
/// exactly once.
pub async fn drain<B: Bus + Clone>(
    buses: &[B],
    topic: &str,
    subscription: &str,
    events: u64,
) -> Result<Tally> {
    let first = buses.first().context("no bus to consume through")?;
    create_shared_subscription(first, subscription, topic).await?;
    let progress = Arc::new(Progress::new(events));
    let subscription_name: Arc<str> = Arc::from(subscription);
    let start = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            tokio::spawn(consume(
                buses[c % buses.len()].clone(),
                Arc::clone(&subscription_name),
                Arc::clone(&progress),
            ))
        })
        .collect();
    let mut tally = Tally::default();
    let mut acked = Vec::with_capacity(events as usize);
    for c in consumers {
        let c = c.await.context("a consumer task panicked")??;
        tally.fetches += c.fetches;
        tally.empty_fetches += c.empty_fetches;
        tally.ack_calls += c.ack_calls;
        acked.extend(c.acked);
    }
    let done_at = progress.done_at().unwrap_or_else(Instant::now);
    tally.elapsed = done_at - start;
    check_exactly_once(first, topic, subscription, events, acked).await?;
    Ok(tally)
}

/// One consumer: fetch, ack what came, until every event is acked.
async fn consume<B: Bus>(
    bus: B,
    subscription: Arc<str>,
    progress: Arc<Progress>,
) -> Result<ConsumerTally> {
    let mut tally = ConsumerTally::default();
    let options = FetchOptions {
        max: FETCH_MAX,
        wait_ms: FETCH_WAIT_MS,
    };
    let mut last_progress = Instant::now();
    while !progress.is_done() {
        let got = bus.fetch(&subscription, options.clone()).await?;
        tally.fetches += 1;
        if got.is_empty() {
            tally.empty_fetches += 1;
            progress.check_stall(last_progress)?;
            continue;
        }
        last_progress = Instant::now();
        let mut redelivered = 0;
        let ids: Vec<AckId> = got
            .into_iter()
            .map(|d| {
                redelivered += u64::from(d.attempt != 1);
                tally.acked.push((d.event.partition.0, d.event.offset.0));
                d.ack_id
            })
            .collect();
        if redelivered > 0 {
            bail!("{redelivered} events were delivered more than once");
        }
        let results = bus.ack_all(&subscription, &ids).await?;
        tally.ack_calls += 1;
        if let Some(e) = results.into_iter().find_map(|r| r.err()) {
            return Err(e).context("ack an event");
        }
        progress.add(ids.len() as u64);
    }
    Ok(tally)
}

/// Every event of the topic was acked once, and the subscription agrees.
async fn check_exactly_once<B: Bus>(
    bus: &B,
    topic: &str,
    subscription: &str,
    events: u64,
    mut acked: Vec<(u32, u64)>,
) -> Result<()> {
    acked.sort_unstable();
    let before = acked.len();
    acked.dedup();
    if acked.len() != before {
        bail!("{} events were acked more than once", before - acked.len());
    }
    let topic = bus.describe_topic(topic).await?;
    let held = |&(p, o): &(u32, u64)| {
        topic
            .partitions
            .get(p as usize)
            .is_some_and(|info| o >= info.first_offset.0 && o < info.next_offset.0)
    };
    if !acked.iter().all(held) || acked.len() as u64 != events {
        bail!(
            "{} distinct events were acked, of {events} preloaded",
            acked.len()
        );
    }
    check_drained(bus, subscription, events).await
}

/// The subscription counts `events` acked, none redelivered, and nothing
/// left: no lag, nothing in flight.
pub async fn check_drained<B: Bus>(bus: &B, subscription: &str, events: u64) -> Result<()> {
    let stats = bus.subscription_stats(subscription).await?;
    if stats.acked != events || stats.redelivered != 0 || stats.lag != 0 || stats.in_flight != 0 {
        bail!(
            "after the drain the subscription counts {} acked, {} redelivered, \
             lag {}, {} in flight; expected {events} acked and nothing left",
            stats.acked,
            stats.redelivered,
            stats.lag,
            stats.in_flight
        );
    }
    Ok(())
}
