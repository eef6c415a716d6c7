//! W5, the retry path: a backlog in which every event fails once — its
//! first delivery is handed back with a delay — and is acked when it comes
//! again. Measured: events per second until every event was acked, and
//! the delay each redelivery actually had (from the hand-back to the
//! redelivery), against the delay asked for.
//!
//! Every event's data starts with its number (8 bytes, little-endian), so
//! each target's consumers can tell the first delivery from the second
//! without relying on the target's own attempt counter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use crate::cli::bench::units::duration;

/// The delay each first delivery is handed back with, unless a flag says.
pub(super) const DELAY_MS: u64 = 100;

/// `payload` with its first 8 bytes replaced by `n`.
pub(super) fn numbered(payload: &[u8], n: u64) -> Bytes {
    let mut data = payload.to_vec();
    data[..8].copy_from_slice(&n.to_le_bytes());
    Bytes::from(data)
}

/// The number in an event's data.
pub(super) fn number(data: &[u8]) -> Result<u64> {
    data.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .context("an event without its number")
}

/// What a W5 run measured.
#[derive(Debug, Clone)]
pub(super) struct Retried {
    pub elapsed: Duration,
    /// The delay of every redelivery, shortest first.
    pub delays: Vec<Duration>,
}

impl Retried {
    pub fn quantile(&self, q: f64) -> Duration {
        crate::cli::bench::broker::latency::quantile(&self.delays, q)
    }

    /// The delay's p50 / p99 / max against what was asked.
    pub fn summary(&self, asked: Duration) -> String {
        format!(
            "delay asked {}, got p50 {} / p99 {} / max {}",
            duration(asked),
            duration(self.quantile(0.5)),
            duration(self.quantile(0.99)),
            duration(self.quantile(1.0)),
        )
    }
}

/// Which events were handed back and when, and the delays of their
/// redeliveries; shared by a run's consumers.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When each event was handed back; `None` once its redelivery was
    /// recorded.
    handed_back: HashMap<u64, Option<Instant>>,
    delays: Vec<Duration>,
}

/// What a consumer does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Its first delivery: hand it back with the delay.
    HandBack,
    /// Its redelivery: ack it.
    Ack,
    /// Delivered again after its redelivery was recorded: ack it, and it
    /// is not counted again.
    Duplicate,
}

impl Tracker {
    /// Decides on the delivery of event `n`, noting the time of a
    /// hand-back (call it just before handing back) or a redelivery.
    pub fn delivered(&self, n: u64) -> Verdict {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.handed_back.get_mut(&n) {
            None => {
                state.handed_back.insert(n, Some(now));
                Verdict::HandBack
            }
            Some(at) => match at.take() {
                Some(at) => {
                    state.delays.push(now - at);
                    Verdict::Ack
                }
                None => Verdict::Duplicate,
            },
        }
    }

    /// Redeliveries recorded so far.
    pub fn redelivered(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .delays
            .len() as u64
    }

    /// The run's result, once every one of `events` events was
    /// redelivered.
    pub fn finish(&self, events: u64, elapsed: Duration) -> Result<Retried> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.delays.len() as u64 != events {
            bail!("{events} events, {} redelivered", state.delays.len());
        }
        let mut delays = std::mem::take(&mut state.delays);
        delays.sort_unstable();
        Ok(Retried { elapsed, delays })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_delivery_is_handed_back_the_second_acked_and_counted_once() {
        let tracker = Tracker::default();
        assert_eq!(tracker.delivered(7), Verdict::HandBack);
        assert_eq!(tracker.delivered(8), Verdict::HandBack);
        assert_eq!(tracker.delivered(7), Verdict::Ack);
        assert_eq!(tracker.delivered(7), Verdict::Duplicate);
        assert_eq!(tracker.redelivered(), 1);
        assert!(tracker.finish(2, Duration::from_secs(1)).is_err());
        assert_eq!(tracker.delivered(8), Verdict::Ack);
        let retried = tracker.finish(2, Duration::from_secs(1)).unwrap();
        assert_eq!(retried.delays.len(), 2);
        assert!(retried.delays[0] <= retried.delays[1]);
    }

    #[test]
    fn numbers_round_trip_through_the_data() {
        let data = numbered(&[9u8; 16], 42);
        assert_eq!(number(&data).unwrap(), 42);
        assert_eq!(&data[8..], &[9u8; 8]);
        assert!(number(&[1]).is_err());
    }
}
