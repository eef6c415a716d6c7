//! A fixed-bucket histogram of durations on atomics: an observation is two
//! relaxed increments and one compare-and-swap loop for the sum, no lock.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::text::Float;

/// Upper bounds of the request latency buckets, in nanoseconds:
/// 0.1 ms … 10 s.
pub(crate) const REQUEST_BUCKETS_NS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the publish → deliver buckets, in nanoseconds: 1 ms …
/// 1 h (timestamps are whole milliseconds, and a consumer that is behind
/// sees events minutes or hours old).
pub(crate) const DELIVERY_BUCKETS_NS: &[u64] = &[
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    300_000_000_000,
    1_800_000_000_000,
    3_600_000_000_000,
];

/// A histogram with fixed upper bounds (ascending, in nanoseconds) and one
/// more bucket for everything above the last.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds_ns: &'static [u64],
    /// Per bucket, not cumulative; one more than `bounds_ns` (`+Inf`).
    counts: Box<[AtomicU64]>,
    /// The sum of the observations in seconds, as `f64` bits.
    sum_bits: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds_ns: &'static [u64]) -> Histogram {
        debug_assert!(bounds_ns.windows(2).all(|w| w[0] < w[1]));
        Histogram {
            bounds_ns,
            counts: (0..=bounds_ns.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation of `ns` nanoseconds.
    pub(crate) fn observe_ns(&self, ns: u64) {
        // The first bucket whose bound is ≥ ns (`le` is inclusive).
        let i = self.bounds_ns.partition_point(|&b| b < ns);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let secs = ns as f64 / 1e9;
        // A CAS loop instead of an integer sum: nanoseconds in a u64 wrap
        // after ~584 years of summed time, which long-polling fetches
        // of a busy server could reach.
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + secs).to_bits())
            });
    }

    /// The current values. Each bucket is read once, and the count is
    /// their total, so a scrape racing an observation is still consistent
    /// (`le="+Inf"` = `_count`); only `_sum` may lag or lead by one
    /// observation.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            bounds_ns: self.bounds_ns,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        }
    }
}

/// A histogram's values at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    bounds_ns: &'static [u64],
    counts: Vec<u64>,
    sum_seconds: f64,
}

impl Snapshot {
    /// `(le, count in this bucket alone)` for each bucket, `+Inf` last.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.bounds_ns
            .iter()
            .map(|&ns| Float(ns as f64 / 1e9).to_string())
            .chain(std::iter::once("+Inf".to_string()))
            .zip(self.counts.iter().copied())
    }

    /// Observations in all.
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Their sum in seconds.
    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves that bounds are inclusive (an observation equal to a bound
    // lands in that bucket), that values above the last bound land in
    // +Inf, and that count and sum follow.
    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = Histogram::new(REQUEST_BUCKETS_NS);
        h.observe_ns(0);
        h.observe_ns(100_000);
        h.observe_ns(100_001);
        h.observe_ns(20_000_000_000);
        let s = h.snapshot();
        let b: Vec<(String, u64)> = s.buckets().collect();
        assert_eq!(b.len(), REQUEST_BUCKETS_NS.len() + 1);
        assert_eq!(b[0], ("0.0001".to_string(), 2));
        assert_eq!(b[1], ("0.00025".to_string(), 1));
        assert_eq!(b[15], ("10".to_string(), 0));
        assert_eq!(b[16], ("+Inf".to_string(), 1));
        assert_eq!(s.count(), 4);
        assert!((s.sum_seconds() - 20.000_200_001).abs() < 1e-9);
    }

    // Proves the `le` spellings of both bucket sets are the exact decimal
    // bounds (no float noise such as 0.00025000000000000006).
    #[test]
    fn bucket_bounds_print_as_exact_decimals() {
        let req: Vec<String> = Histogram::new(REQUEST_BUCKETS_NS)
            .snapshot()
            .buckets()
            .map(|(le, _)| le)
            .collect();
        assert_eq!(
            req.join(","),
            "0.0001,0.00025,0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,+Inf"
        );
        let del: Vec<String> = Histogram::new(DELIVERY_BUCKETS_NS)
            .snapshot()
            .buckets()
            .map(|(le, _)| le)
            .collect();
        assert_eq!(
            del.join(","),
            "0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,300,1800,3600,+Inf"
        );
    }
}
