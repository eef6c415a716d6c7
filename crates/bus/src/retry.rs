//! Retry policies: how many deliveries an event gets and how long the bus
//! waits before each redelivery.

use crate::error::{BusError, Result};

/// Longest explicit backoff list.
pub const BACKOFF_LIST_LEN_MAX: usize = 100;
/// Largest number of deliveries a subscription may allow per event.
pub const MAX_DELIVERIES_MAX: u32 = 10_000;

/// The wait before redelivery number `n + 1`, after failed attempt `n`
/// (1-based), before the cap and jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backoff {
    /// Always `delay_ms`.
    Fixed {
        /// The wait.
        delay_ms: u64,
    },
    /// `initial_ms · factorⁿ⁻¹`: 1 s, 2 s, 4 s … for (1000, 2).
    Exponential {
        /// The first wait.
        initial_ms: u64,
        /// The growth factor, at least 1.
        factor: u32,
    },
    /// `base_ms · n²`: the seed's 1 s, 4 s, 9 s for a base of 1000.
    Quadratic {
        /// The first wait.
        base_ms: u64,
    },
    /// The `n`-th entry; the last one repeats.
    List {
        /// The waits, at least one.
        delays_ms: Vec<u64>,
    },
}

/// What a subscription does with an event whose delivery failed (a nack, or
/// a lease that ran out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries an event gets; after the last one fails it moves to the
    /// dead-letter queue. At least 1.
    pub max_deliveries: u32,
    /// The waits between deliveries.
    pub backoff: Backoff,
    /// No wait is longer than this.
    pub cap_ms: Option<u64>,
    /// Spread each wait by up to ± this percentage (0..=100), so that events
    /// that failed together are not retried together. The spread is a hash
    /// of the event's position and attempt: the same inputs give the same
    /// wait, in a test and after a restart.
    pub jitter_pct: u8,
}

impl Default for RetryPolicy {
    /// Five deliveries, waits of 1 s, 4 s, 9 s, 16 s (quadratic), no jitter.
    fn default() -> Self {
        RetryPolicy {
            max_deliveries: 5,
            backoff: Backoff::Quadratic { base_ms: 1000 },
            cap_ms: None,
            jitter_pct: 0,
        }
    }
}

impl RetryPolicy {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(BusError::InvalidArgument {
                what: "retry policy",
                reason,
            })
        };
        if self.max_deliveries == 0 || self.max_deliveries > MAX_DELIVERIES_MAX {
            return bad(format!(
                "max_deliveries must be 1..={MAX_DELIVERIES_MAX}, not {}",
                self.max_deliveries
            ));
        }
        if self.jitter_pct > 100 {
            return bad(format!(
                "jitter_pct must be 0..=100, not {}",
                self.jitter_pct
            ));
        }
        match &self.backoff {
            Backoff::Exponential { factor: 0, .. } => {
                bad("the exponential factor must be ≥ 1".into())
            }
            Backoff::List { delays_ms } if delays_ms.is_empty() => {
                bad("a backoff list needs at least one delay".into())
            }
            Backoff::List { delays_ms } if delays_ms.len() > BACKOFF_LIST_LEN_MAX => bad(format!(
                "a backoff list holds at most {BACKOFF_LIST_LEN_MAX} delays"
            )),
            _ => Ok(()),
        }
    }

    /// The wait after failed attempt `attempt` (1-based), for the event
    /// identified by `seed` (any stable number; it only drives the jitter).
    pub fn delay_ms(&self, attempt: u32, seed: u64) -> u64 {
        let n = u64::from(attempt.max(1));
        let raw = match &self.backoff {
            Backoff::Fixed { delay_ms } => *delay_ms,
            Backoff::Exponential { initial_ms, factor } => {
                let pow = u64::from(*factor).saturating_pow((n - 1).min(64) as u32);
                initial_ms.saturating_mul(pow)
            }
            Backoff::Quadratic { base_ms } => base_ms.saturating_mul(n.saturating_mul(n)),
            Backoff::List { delays_ms } => {
                let i = usize::try_from(n - 1).unwrap_or(usize::MAX);
                delays_ms.get(i).or(delays_ms.last()).copied().unwrap_or(0)
            }
        };
        let capped = self.cap_ms.map_or(raw, |cap| raw.min(cap));
        if self.jitter_pct == 0 || capped == 0 {
            return capped;
        }
        // A spread in [-j, +j] of the wait, from a hash of (seed, attempt).
        let span = capped / 100 * u64::from(self.jitter_pct)
            + capped % 100 * u64::from(self.jitter_pct) / 100;
        let r = mix(seed ^ (n << 48));
        let offset = r % (2 * span + 1);
        let jittered = capped - span + offset;
        self.cap_ms.map_or(jittered, |cap| jittered.min(cap))
    }
}

/// A 64-bit mixer (splitmix64's finalizer).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            max_deliveries: 10,
            backoff,
            cap_ms: None,
            jitter_pct: 0,
        }
    }

    #[test]
    fn schedules() {
        let q = policy(Backoff::Quadratic { base_ms: 1000 });
        assert_eq!([1, 2, 3].map(|n| q.delay_ms(n, 0)), [1000, 4000, 9000]);
        let e = policy(Backoff::Exponential {
            initial_ms: 100,
            factor: 2,
        });
        assert_eq!([1, 2, 3, 4].map(|n| e.delay_ms(n, 0)), [100, 200, 400, 800]);
        assert_eq!(
            e.delay_ms(u32::MAX, 0),
            u64::MAX,
            "saturates, never overflows"
        );
        let f = policy(Backoff::Fixed { delay_ms: 250 });
        assert_eq!([1, 7].map(|n| f.delay_ms(n, 0)), [250, 250]);
        let l = policy(Backoff::List {
            delays_ms: vec![5, 50, 500],
        });
        assert_eq!(
            [1, 2, 3, 4, 9].map(|n| l.delay_ms(n, 0)),
            [5, 50, 500, 500, 500]
        );
    }

    #[test]
    fn cap_and_jitter() {
        let mut q = policy(Backoff::Quadratic { base_ms: 1000 });
        q.cap_ms = Some(5000);
        assert_eq!([1, 2, 3].map(|n| q.delay_ms(n, 0)), [1000, 4000, 5000]);
        q.jitter_pct = 20;
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let d = q.delay_ms(1, seed);
            assert!((800..=1200).contains(&d), "{d}");
            assert_eq!(d, q.delay_ms(1, seed), "deterministic");
            seen.insert(d);
            assert!(q.delay_ms(3, seed) <= 5000, "the cap holds after jitter");
        }
        assert!(seen.len() > 50, "jitter spreads the waits");
    }

    #[test]
    fn validation() {
        assert!(RetryPolicy::default().validate().is_ok());
        let p = RetryPolicy {
            max_deliveries: 0,
            ..RetryPolicy::default()
        };
        assert!(p.validate().is_err());
        let p = policy(Backoff::List { delays_ms: vec![] });
        assert!(p.validate().is_err());
        let p = policy(Backoff::Exponential {
            initial_ms: 1,
            factor: 0,
        });
        assert!(p.validate().is_err());
        let p = RetryPolicy {
            jitter_pct: 101,
            ..RetryPolicy::default()
        };
        assert!(p.validate().is_err());
    }
}
