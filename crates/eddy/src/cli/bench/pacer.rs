//! The paced sender the latency workloads share: it calls `send(n)` at
//! event `n`'s scheduled time, sleeping until then, and records how far
//! behind schedule it fell (on a stalled machine, the sender itself is
//! late). A blocking loop: run it on a thread of its own.

use std::time::{Duration, Instant};

/// What the pacer did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Paced {
    /// From the first send's schedule to the last send.
    pub elapsed: Duration,
    /// The furthest behind schedule an event was sent.
    pub lag_max: Duration,
    /// Events sent more than 1 ms late.
    pub late: u64,
}

/// Calls `send(n)` for `n` in `0..events` at `rate_per_sec`.
pub fn pace(rate_per_sec: u64, events: u64, mut send: impl FnMut(u64)) -> Paced {
    let period_ns = 1_000_000_000 / rate_per_sec.max(1);
    let mut paced = Paced::default();
    let start = Instant::now();
    for n in 0..events {
        let due = start + Duration::from_nanos(n * period_ns);
        let mut now = Instant::now();
        while now < due {
            std::thread::sleep(due - now);
            now = Instant::now();
        }
        let lag = now - due;
        paced.lag_max = paced.lag_max.max(lag);
        paced.late += u64::from(lag > Duration::from_millis(1));
        send(n);
    }
    paced.elapsed = start.elapsed();
    paced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_sent_once_in_order_and_not_before_its_time() {
        // 50 events at 10,000/s: the last is due 4.9 ms after the first.
        let start = Instant::now();
        let mut sent = Vec::new();
        let paced = pace(10_000, 50, |n| sent.push((n, start.elapsed())));
        assert_eq!(
            sent.iter().map(|&(n, _)| n).collect::<Vec<_>>(),
            (0..50).collect::<Vec<_>>()
        );
        for &(n, at) in &sent {
            assert!(
                at >= Duration::from_micros(n * 100),
                "event {n} sent early at {at:?}"
            );
        }
        assert!(paced.elapsed >= Duration::from_micros(4_900));
    }
}
