//! Error counts by `BusError` code for one operation family: a fixed table
//! of slots claimed lock-free, so the number of series is bounded whatever
//! codes a `Bus` implementation returns.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Distinct codes counted per operation family; further codes are counted
/// together as `code="other"`. `BusError` has 23 codes today.
pub(crate) const ERROR_CODES_MAX: usize = 32;

/// A free slot's code. `BusError` codes start at 1000.
const FREE: u32 = 0;

#[derive(Debug)]
pub(crate) struct ErrorCounts {
    codes: [AtomicU32; ERROR_CODES_MAX],
    counts: [AtomicU64; ERROR_CODES_MAX],
    other: AtomicU64,
}

impl Default for ErrorCounts {
    fn default() -> Self {
        ErrorCounts {
            codes: std::array::from_fn(|_| AtomicU32::new(FREE)),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            other: AtomicU64::new(0),
        }
    }
}

impl ErrorCounts {
    /// Counts one error with this code.
    pub(crate) fn add(&self, code: u16) {
        let code = u32::from(code) + 1; // never FREE, even for a code 0
        for (slot, count) in self.codes.iter().zip(&self.counts) {
            let mut current = slot.load(Ordering::Acquire);
            if current == FREE {
                current =
                    match slot.compare_exchange(FREE, code, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => code,
                        Err(taken) => taken,
                    };
            }
            if current == code {
                count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.other.fetch_add(1, Ordering::Relaxed);
    }

    /// `(code, count)` by code, then `(None, count)` for the overflow if
    /// any. Codes claimed but not yet counted are left out.
    pub(crate) fn snapshot(&self) -> Vec<(Option<u16>, u64)> {
        let mut out: Vec<(Option<u16>, u64)> = self
            .codes
            .iter()
            .zip(&self.counts)
            .filter_map(|(slot, count)| {
                let code = slot.load(Ordering::Acquire);
                let n = count.load(Ordering::Relaxed);
                (code != FREE && n > 0).then(|| (u16::try_from(code - 1).ok(), n))
            })
            .collect();
        out.sort();
        let other = self.other.load(Ordering::Relaxed);
        if other > 0 {
            out.push((None, other));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves that each code gets one series, sorted by code, and that codes
    // beyond the table's size are counted together instead of growing it.
    #[test]
    fn codes_are_counted_apart_up_to_the_bound_then_together() {
        let e = ErrorCounts::default();
        e.add(4001);
        e.add(2001);
        e.add(4001);
        assert_eq!(e.snapshot(), vec![(Some(2001), 1), (Some(4001), 2)]);

        for code in 0..40u16 {
            e.add(code);
        }
        let snap = e.snapshot();
        assert_eq!(snap.len(), ERROR_CODES_MAX + 1);
        // 2 codes were there, 30 more fit, 10 overflow.
        assert_eq!(snap.last(), Some(&(None, 10)));
        assert_eq!(snap[0], (Some(0), 1));
        let total: u64 = snap.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 43);
    }
}
