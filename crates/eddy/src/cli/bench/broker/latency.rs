//! Latency: the time from a publish call to the event's receipt by a
//! consumer, under fsync `always`, at a steady 10,000 events/s.
//!
//! A pacer thread sends each event at its scheduled time as a single-event
//! `publish` spawned as its own task, so concurrent publishes share group
//! commits; the event's data carries its send time, in nanoseconds since an
//! `Instant` shared with the consumers. The pacer records how far behind
//! schedule it fell. Consumers of one shared subscription fetch and ack in
//! a loop and record, for every event, the time it came out of a fetch
//! minus its send time. Every sample is kept and sorted: no histogram.
//!
//! The workload ([`run`]) is written against the `Bus` trait, with the
//! publisher and the consumers on handles of their own, so `eddy bench
//! server` runs it through two client connections.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{AckId, Bus, BusError, Event, FetchOptions, Published, TopicConfig};
use eddy_log::FsyncPolicy;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use super::{STALL, close_and_remove, create_shared_subscription};
use crate::cli::bench::disk::pattern;
use crate::cli::bench::machine;
use crate::cli::bench::pacer::{self, Paced};
use crate::cli::bench::units::{self, duration, grouped, percent};

/// Events sent per second.
pub const RATE_PER_SEC: u64 = 10_000;
/// Bytes of each event's data; the first 8 are its send time.
pub const EVENT_BYTES: usize = 100;
/// Partitions of the topic: one log, as in the publish target.
pub const PARTITIONS: u32 = 1;
/// Consumer tasks.
pub const CONSUMERS: usize = 2;
/// Most events one fetch asks for.
pub const FETCH_MAX: u32 = 1000;
/// How long a fetch waits when nothing is ready.
pub const FETCH_WAIT_MS: u64 = 100;

const TOPIC: &str = "bench.latency";
const SUBSCRIPTION: &str = "bench-latency";

/// What the latency workload measured.
#[derive(Debug, Clone)]
pub struct Latency {
    /// How long the pacer sent for.
    pub send_time: Duration,
    /// Events sent (and published, and received).
    pub events: u64,
    /// Publish-to-receipt time of every event, shortest first.
    pub samples: Vec<Duration>,
    /// The furthest behind schedule the pacer sent an event.
    pub pacer_lag_max: Duration,
    /// Events the pacer sent more than 1 ms late.
    pub pacer_late: u64,
    /// Fetches by all consumers that returned events, and that returned none.
    pub fetches: u64,
    pub empty_fetches: u64,
    /// The share of the machine's CPU time its hypervisor stole while the
    /// workload ran (`None` without `/proc/stat`): on a virtual machine, a
    /// stall no process inside can avoid.
    pub steal: Option<f64>,
}

impl Latency {
    /// The sample at quantile `q` (nearest rank).
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.samples, q)
    }

    pub fn max(&self) -> Duration {
        self.samples.last().copied().unwrap_or_default()
    }

    /// The notes of a report's latency row.
    pub fn notes(&self) -> String {
        let steal = match self.steal {
            Some(share) => format!("; the hypervisor stole {} of the CPU time", percent(share)),
            None => String::new(),
        };
        format!(
            "publish to receipt: p50 {} / p99 {} / p99.9 {} / max {} over {} events sent at {}/s \
             for {}, each its own publish task; {CONSUMERS} consumers fetch ≤ {FETCH_MAX} (wait \
             {FETCH_WAIT_MS} ms) then ack_all: {} fetches with events ({:.1} events each) and {} \
             empty; pacer lag max {}, {} events sent over 1 ms late{steal}",
            duration(self.quantile(0.50)),
            duration(self.quantile(0.99)),
            duration(self.quantile(0.999)),
            duration(self.max()),
            grouped(self.events as f64),
            grouped(RATE_PER_SEC as f64),
            duration(self.send_time),
            grouped(self.fetches as f64),
            self.events as f64 / self.fetches.max(1) as f64,
            grouped(self.empty_fetches as f64),
            duration(self.pacer_lag_max),
            grouped(self.pacer_late as f64),
        )
    }
}

pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The group commit window of the latency workload's second, informational
/// run in `eddy bench broker`.
pub const WINDOW_US: u64 = 1_000;

/// Runs the paced publisher for `send_time` on a fresh broker in `dir`,
/// with `group_commit_window_us` (0, the default, for the target's run).
pub fn measure(
    runtime: &Runtime,
    dir: &Path,
    send_time: Duration,
    group_commit_window_us: u64,
) -> Result<Latency> {
    let broker = Broker::open(
        dir,
        BrokerConfig {
            fsync: FsyncPolicy::Always,
            group_commit_window_us,
            ..BrokerConfig::default()
        },
    )
    .with_context(|| format!("open a broker in {}", dir.display()))?;
    let measured = runtime.block_on(run(&broker, &broker, send_time));
    close_and_remove(&broker, dir, measured)
}

/// What the consumers share: events received, and how many to expect
/// (unknown, `u64::MAX`, until every publish returned).
#[derive(Debug)]
struct Progress {
    received: AtomicU64,
    expected: AtomicU64,
}

/// Creates the topic and the subscription through `publisher`, then sends
/// 10,000 events/s through `publisher` for `send_time` while
/// [`CONSUMERS`] tasks receive them through `consumer` (the same bus, or
/// another handle on it).
pub async fn run<B: Bus + Clone>(
    publisher: &B,
    consumer: &B,
    send_time: Duration,
) -> Result<Latency> {
    publisher
        .create_topic(TOPIC, TopicConfig::with_partitions(PARTITIONS))
        .await
        .context("create the topic")?;
    create_shared_subscription(publisher, SUBSCRIPTION, TOPIC).await?;

    let cpu_before = machine::cpu_ticks();
    let origin = Instant::now();
    let progress = Arc::new(Progress {
        received: AtomicU64::new(0),
        expected: AtomicU64::new(u64::MAX),
    });
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| tokio::spawn(receive(consumer.clone(), origin, Arc::clone(&progress))))
        .collect();
    let events = (send_time.as_secs_f64() * RATE_PER_SEC as f64).round() as u64;
    let pacer = {
        let publisher = publisher.clone();
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || pace(&handle, &publisher, origin, events))
    };
    let (publishes, paced) = pacer.await.context("the pacer panicked")?;
    let mut failed = 0;
    let mut first_error = None;
    for publish in publishes {
        match publish.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("a publish task failed: {e}"));
            }
        }
    }
    progress.expected.store(events, Ordering::SeqCst);
    let mut samples = Vec::with_capacity(events as usize);
    let (mut fetches, mut empty_fetches) = (0, 0);
    let mut consumer_error = None;
    for c in consumers {
        match c.await.context("a consumer task panicked")? {
            Ok(r) => {
                samples.extend(r.samples);
                fetches += r.fetches;
                empty_fetches += r.empty_fetches;
            }
            Err(e) => {
                consumer_error.get_or_insert(e);
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {events} publishes failed, the first with: {}",
            first_error.unwrap_or_default()
        );
    }
    if let Some(e) = consumer_error {
        return Err(e);
    }
    if samples.len() as u64 != events {
        bail!("{events} events were published, {} received", samples.len());
    }
    let steal = machine::steal_share(cpu_before, machine::cpu_ticks());
    samples.sort_unstable();
    Ok(Latency {
        send_time: paced.elapsed,
        events,
        samples,
        pacer_lag_max: paced.lag_max,
        pacer_late: paced.late,
        fetches,
        empty_fetches,
        steal,
    })
}

/// Sends `events` events at [`RATE_PER_SEC`], each as a `publish` task of
/// its own; returns the tasks and what the pacer did.
fn pace<B: Bus + Clone>(
    runtime: &Handle,
    bus: &B,
    origin: Instant,
    events: u64,
) -> (Vec<JoinHandle<Result<Published, BusError>>>, Paced) {
    let filler = pattern(EVENT_BYTES);
    let mut publishes = Vec::with_capacity(events as usize);
    let paced = pacer::pace(RATE_PER_SEC, events, |n| {
        let mut data = filler.clone();
        let sent_ns = Instant::now().duration_since(origin).as_nanos() as u64;
        data[..8].copy_from_slice(&sent_ns.to_le_bytes());
        let event = Event::new("BenchLatency", data).with_id(format!("l{n}"));
        let bus = bus.clone();
        publishes.push(runtime.spawn(async move { bus.publish(TOPIC, event).await }));
    });
    (publishes, paced)
}

/// What one consumer received.
#[derive(Debug, Default)]
struct Received {
    samples: Vec<Duration>,
    fetches: u64,
    empty_fetches: u64,
}

/// One consumer: fetch, note each event's latency, ack, until every
/// published event was received.
async fn receive<B: Bus + Clone>(
    bus: B,
    origin: Instant,
    progress: Arc<Progress>,
) -> Result<Received> {
    let options = FetchOptions {
        max: FETCH_MAX,
        wait_ms: FETCH_WAIT_MS,
    };
    // Acks go out on their own tasks, at most ACKS_IN_FLIGHT at once, so
    // that the next fetch does not wait for the last ack's fsync — as a
    // consumer that pipelines its acks does.
    let acks = Arc::new(tokio::sync::Semaphore::new(ACKS_IN_FLIGHT));
    let mut acking = tokio::task::JoinSet::new();
    let mut r = Received::default();
    let mut last_progress = Instant::now();
    while progress.received.load(Ordering::SeqCst) < progress.expected.load(Ordering::SeqCst) {
        let got = bus.fetch(SUBSCRIPTION, options.clone()).await?;
        let received_ns = origin.elapsed().as_nanos() as u64;
        if got.is_empty() {
            r.empty_fetches += 1;
            if last_progress.elapsed() > STALL {
                bail!(
                    "no event for {} with {} received",
                    units::duration(STALL),
                    progress.received.load(Ordering::SeqCst)
                );
            }
            continue;
        }
        last_progress = Instant::now();
        r.fetches += 1;
        let mut ids: Vec<AckId> = Vec::with_capacity(got.len());
        for d in got {
            if d.attempt != 1 {
                bail!("an event was delivered more than once");
            }
            let data = &d.event.event.data;
            let sent_ns = data
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .context("an event without its send time")?;
            r.samples
                .push(Duration::from_nanos(received_ns.saturating_sub(sent_ns)));
            ids.push(d.ack_id);
        }
        progress
            .received
            .fetch_add(ids.len() as u64, Ordering::SeqCst);
        let permit = Arc::clone(&acks).acquire_owned().await?;
        let bus = bus.clone();
        acking.spawn(async move {
            let results = bus.ack_all(SUBSCRIPTION, &ids).await?;
            drop(permit);
            match results.into_iter().find_map(|r| r.err()) {
                Some(e) => Err(e).context("ack an event"),
                None => Ok(()),
            }
        });
        while let Some(done) = acking.try_join_next() {
            done??;
        }
    }
    while let Some(done) = acking.join_next().await {
        done??;
    }
    Ok(r)
}

/// Acks of one consumer in flight at once.
const ACKS_IN_FLIGHT: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        // Proves p50 / p99 / max pick the samples a reader expects.
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_micros(500));
        assert_eq!(quantile(&samples, 0.99), Duration::from_micros(990));
        assert_eq!(quantile(&samples, 0.999), Duration::from_micros(999));
        assert_eq!(quantile(&samples, 1.0), Duration::from_micros(1000));
        assert_eq!(quantile(&samples[..1], 0.999), Duration::from_micros(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
