//! W4, latency: publish → deliver at a fixed rate, the same pacer for
//! every target.
//!
//! A pacer thread sends event `n` at `start + n / rate`, sleeping until
//! then, and spawns its publish as a task of its own (so publishes overlap
//! as a busy producer's do); it records how far behind schedule each send
//! was. The first 8 bytes of each event's data are its send time, in
//! nanoseconds since an `Instant` the consumer shares (one process, one
//! monotonic clock). The consumer notes, for every event, its receipt time
//! minus that stamp. Every sample is kept and sorted: no histogram.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tokio::runtime::Handle;

use crate::cli::bench::pacer;
use crate::cli::bench::units::duration;

/// The fixed rates W4 runs at, events per second.
pub(super) const RATES: [u64; 2] = [5_000, 20_000];

/// A consumer that receives nothing for this long gives up.
pub(super) const STALL: Duration = Duration::from_secs(20);

/// How many events at which rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pace {
    pub rate_per_sec: u64,
    pub events: u64,
}

/// `payload` with its first 8 bytes replaced by the time since `origin`.
pub(super) fn stamp(payload: &[u8], origin: Instant) -> Bytes {
    let mut data = payload.to_vec();
    let sent_ns = origin.elapsed().as_nanos() as u64;
    data[..8].copy_from_slice(&sent_ns.to_le_bytes());
    Bytes::from(data)
}

/// How long ago (relative to `origin`) the event with `data` was stamped.
pub(super) fn age(data: &[u8], origin: Instant) -> Result<Duration> {
    let now_ns = origin.elapsed().as_nanos() as u64;
    let sent_ns = data
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .context("an event without its send time")?;
    Ok(Duration::from_nanos(now_ns.saturating_sub(sent_ns)))
}

pub(super) use crate::cli::bench::pacer::Paced;

/// Sends `pace.events` events at `pace.rate_per_sec`: at each event's
/// time, `send(n, stamped data)` is spawned as a task on the runtime.
/// Returns when every send finished; the first failed send is the error.
pub(super) async fn pace<F, Fut>(
    pace: Pace,
    payload: &Bytes,
    origin: Instant,
    mut send: F,
) -> Result<Paced>
where
    F: FnMut(u64, Bytes) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let handle = Handle::current();
    let payload = payload.clone();
    let pacer = tokio::task::spawn_blocking(move || {
        let mut sends = Vec::with_capacity(pace.events as usize);
        let paced = pacer::pace(pace.rate_per_sec, pace.events, |n| {
            sends.push(handle.spawn(send(n, stamp(&payload, origin))));
        });
        (sends, paced)
    });
    let (sends, paced) = pacer.await.context("the pacer panicked")?;
    let mut failed = 0;
    let mut first = None;
    for sent in sends {
        if let Err(e) = sent.await.context("a send panicked").and_then(|r| r) {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    if let Some(e) = first {
        return Err(e.context(format!("{failed} of {} sends failed", pace.events)));
    }
    Ok(paced)
}

/// What W4 measured for one target at one rate.
#[derive(Debug, Clone)]
pub(super) struct Latency {
    /// Publish-to-receipt time of every event, shortest first.
    pub samples: Vec<Duration>,
    pub paced: Paced,
}

impl Latency {
    /// Checks that every sent event was received once, and sorts.
    pub fn new(mut samples: Vec<Duration>, paced: Paced, pace: Pace) -> Result<Latency> {
        if samples.len() as u64 != pace.events {
            bail!(
                "{} events were sent, {} received",
                pace.events,
                samples.len()
            );
        }
        samples.sort_unstable();
        Ok(Latency { samples, paced })
    }

    /// The sample at quantile `q` (nearest rank).
    pub fn quantile(&self, q: f64) -> Duration {
        crate::cli::bench::broker::latency::quantile(&self.samples, q)
    }
}

/// Fails when a consumer has received nothing new for [`STALL`].
#[derive(Debug)]
pub(super) struct StallGuard {
    last: Instant,
    received: usize,
}

impl StallGuard {
    pub fn new() -> StallGuard {
        StallGuard {
            last: Instant::now(),
            received: 0,
        }
    }

    /// Called after every receive attempt with the samples so far.
    pub fn check(&mut self, received: usize) -> Result<()> {
        if received > self.received {
            self.received = received;
            self.last = Instant::now();
        } else if self.last.elapsed() > STALL {
            bail!("no event for {} with {received} received", duration(STALL));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_as_the_time_since_it_was_made() {
        let origin = Instant::now();
        let data = stamp(&[7u8; 32], origin);
        assert_eq!(&data[8..], &[7u8; 24]);
        // Stamped at the origin: its age is the time since the origin.
        let mut old = data.to_vec();
        old[..8].copy_from_slice(&0u64.to_le_bytes());
        let before = origin.elapsed();
        let measured = age(&old, origin).unwrap();
        assert!(before <= measured && measured <= origin.elapsed());
        assert!(age(&[1, 2, 3], origin).is_err());
    }

    #[test]
    fn latency_refuses_a_count_that_is_not_what_was_sent() {
        let pace = Pace {
            rate_per_sec: 10,
            events: 3,
        };
        let samples = vec![Duration::from_millis(3), Duration::from_millis(1)];
        assert!(Latency::new(samples.clone(), Paced::default(), pace).is_err());
        let mut all = samples;
        all.push(Duration::from_millis(2));
        let latency = Latency::new(all, Paced::default(), pace).unwrap();
        assert_eq!(latency.quantile(0.5), Duration::from_millis(2));
        assert_eq!(latency.quantile(1.0), Duration::from_millis(3));
    }
}
