//! Keyed aggregation over event-time windows, pure: no I/O, no clock. The
//! caller adds events with their event time and moves the watermark; the
//! state hands back each window once, when it closes.
//!
//! - A [`WindowSpec`] is tumbling (`size`) or hopping (`size`, `advance`):
//!   windows are `[start, start + size)` with `start` a multiple of
//!   `advance`, so an event belongs to `size / advance` windows (one when
//!   tumbling).
//! - The **watermark** says "no event older than this is expected any
//!   more"; [`Windowed::advance`] only moves it forward.
//! - A window closes once `end + allowed_lateness <= watermark`: its
//!   result is final and handed back, in the order of window ends.
//! - An event is added to each of its windows that is still open. One
//!   whose windows are all closed is **late**: counted, and handed back by
//!   [`Windowed::add`] so the caller can send it to a side topic.
//!
//! `tests` checks it against a brute-force computation over random,
//! out-of-order streams.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Most windows one event may belong to (`size / advance`).
pub const WINDOWS_PER_EVENT_MAX: u64 = 1_000;

/// A window of event time: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Its first millisecond.
    pub start_ms: i64,
    /// The millisecond after its last.
    pub end_ms: i64,
}

/// How event time is cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    size_ms: i64,
    advance_ms: i64,
}

/// A window specification that cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid window: {0}")]
pub struct WindowError(String);

impl WindowSpec {
    /// Back-to-back windows of `size_ms`.
    pub fn tumbling(size_ms: u64) -> Result<WindowSpec, WindowError> {
        WindowSpec::hopping(size_ms, size_ms)
    }

    /// Windows of `size_ms` starting every `advance_ms` (overlapping when
    /// `advance_ms < size_ms`). `size_ms` must be a multiple of
    /// `advance_ms`, at most [`WINDOWS_PER_EVENT_MAX`] times it.
    pub fn hopping(size_ms: u64, advance_ms: u64) -> Result<WindowSpec, WindowError> {
        if size_ms == 0 || advance_ms == 0 {
            return Err(WindowError("size and advance are at least 1 ms".into()));
        }
        if !size_ms.is_multiple_of(advance_ms) {
            return Err(WindowError(format!(
                "the size ({size_ms} ms) is a multiple of the advance ({advance_ms} ms)"
            )));
        }
        if size_ms / advance_ms > WINDOWS_PER_EVENT_MAX {
            return Err(WindowError(format!(
                "an event would be in {} windows, more than {WINDOWS_PER_EVENT_MAX}",
                size_ms / advance_ms
            )));
        }
        let ms = |v: u64| i64::try_from(v).map_err(|_| WindowError(format!("{v} ms is too long")));
        Ok(WindowSpec {
            size_ms: ms(size_ms)?,
            advance_ms: ms(advance_ms)?,
        })
    }

    /// The windows holding event time `t_ms`, earliest first.
    pub fn windows_of(&self, t_ms: i64) -> impl Iterator<Item = Window> + '_ {
        // The latest start at or before t, then back while the window
        // still reaches t. A time at the edge of the range has no window
        // (and counts as late).
        let last = t_ms
            .div_euclid(self.advance_ms)
            .checked_mul(self.advance_ms);
        let n = self.size_ms / self.advance_ms;
        (0..n).rev().filter_map(move |k| {
            let start = last?.checked_sub(k * self.advance_ms)?;
            Some(Window {
                start_ms: start,
                end_ms: start.checked_add(self.size_ms)?,
            })
        })
    }
}

/// A window's final result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed<K, A> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
    /// What was folded into it.
    pub value: A,
}

/// Keyed windowed aggregation state. Serializable, so it can be
/// checkpointed with the input positions it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, A: Serialize",
    deserialize = "K: Deserialize<'de>, A: Deserialize<'de>"
))]
pub struct Windowed<K: Ord, A> {
    spec: WindowSpec,
    allowed_lateness_ms: i64,
    watermark_ms: i64,
    /// Open windows by (end, start) — closing takes from the front — and
    /// in each, its keys' values.
    #[serde(with = "super::entries")]
    open: BTreeMap<(i64, i64), BTreeMap<K, A>>,
    late: u64,
    /// The keys of open windows changed since [`Windowed::take_updates`]
    /// last ran (empty in every checkpoint, which is taken right after).
    #[serde(skip)]
    dirty: BTreeMap<(i64, i64), BTreeSet<K>>,
}

impl<K: Ord + Clone, A: Default> Windowed<K, A> {
    /// Empty state; the watermark starts before all time.
    pub fn new(spec: WindowSpec, allowed_lateness_ms: u64) -> Windowed<K, A> {
        Windowed {
            spec,
            allowed_lateness_ms: i64::try_from(allowed_lateness_ms).unwrap_or(i64::MAX),
            watermark_ms: i64::MIN,
            open: BTreeMap::new(),
            late: 0,
            dirty: BTreeMap::new(),
        }
    }

    /// The watermark.
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    /// Events that came too late for every window they belong to.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Windows open now, counting each key's apart.
    pub fn open_windows(&self) -> usize {
        self.open.values().map(BTreeMap::len).sum()
    }

    fn is_closed(&self, w: Window) -> bool {
        w.end_ms.saturating_add(self.allowed_lateness_ms) <= self.watermark_ms
    }

    /// Folds an event of `key` at event time `t_ms` into each of its
    /// windows still open (`fold` is called once per window). Returns
    /// `false` if it was late for all of them (nothing changed but the
    /// late count).
    pub fn add(&mut self, key: &K, t_ms: i64, mut fold: impl FnMut(&mut A)) -> bool {
        let mut added = false;
        for w in self.spec.windows_of(t_ms) {
            if self.is_closed(w) {
                continue;
            }
            // Clones the key only where it is new: to the window, or to
            // the window's changes since the last `take_updates`.
            let at = (w.end_ms, w.start_ms);
            let keys = self.open.entry(at).or_default();
            match keys.get_mut(key) {
                Some(value) => fold(value),
                None => fold(keys.entry(key.clone()).or_default()),
            }
            let changed = self.dirty.entry(at).or_default();
            if !changed.contains(key) {
                changed.insert(key.clone());
            }
            added = true;
        }
        if !added {
            self.late += 1;
        }
        added
    }

    /// Moves the watermark to `watermark_ms` (never back) and hands back
    /// every window that closes, by window end.
    pub fn advance(&mut self, watermark_ms: i64) -> Vec<Closed<K, A>> {
        self.watermark_ms = self.watermark_ms.max(watermark_ms);
        let mut out = Vec::new();
        let (lateness, watermark) = (self.allowed_lateness_ms, self.watermark_ms);
        while let Some(entry) = self.open.first_entry() {
            let &(end, start) = entry.key();
            if end.saturating_add(lateness) > watermark {
                break;
            }
            let keys = entry.remove();
            self.dirty.remove(&(end, start));
            out.extend(closed_in((end, start), keys));
        }
        out
    }

    /// The current value of each open window changed since the last
    /// call (for results emitted on every update, not only on close).
    pub fn take_updates(&mut self) -> Vec<Closed<K, A>>
    where
        A: Clone,
    {
        let mut out = Vec::new();
        for ((end, start), keys) in std::mem::take(&mut self.dirty) {
            let Some(values) = self.open.get(&(end, start)) else {
                continue;
            };
            let window = Window {
                start_ms: start,
                end_ms: end,
            };
            out.extend(keys.into_iter().filter_map(|key| {
                let value = values.get(&key)?.clone();
                Some(Closed { key, window, value })
            }));
        }
        out
    }

    /// Closes every open window (the end of a bounded input).
    pub fn flush(&mut self) -> Vec<Closed<K, A>> {
        self.dirty.clear();
        let mut out = Vec::new();
        for (at, keys) in std::mem::take(&mut self.open) {
            out.extend(closed_in(at, keys));
        }
        out
    }
}

/// The results of the window at `(end, start)`, by key.
fn closed_in<K, A>(
    (end_ms, start_ms): (i64, i64),
    keys: BTreeMap<K, A>,
) -> impl Iterator<Item = Closed<K, A>> {
    let window = Window { start_ms, end_ms };
    keys.into_iter()
        .map(move |(key, value)| Closed { key, window, value })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn updates_are_the_open_windows_changed_since_last_asked() {
        let mut w: Windowed<&str, u32> = Windowed::new(WindowSpec::tumbling(10).unwrap(), 0);
        let add = |w: &mut Windowed<&str, u32>, k, t| w.add(&k, t, |c| *c += 1);
        add(&mut w, "a", 1);
        add(&mut w, "a", 2);
        add(&mut w, "b", 12);
        let got: Vec<_> = w
            .take_updates()
            .into_iter()
            .map(|c| (c.key, c.window.start_ms, c.value))
            .collect();
        assert_eq!(got, [("a", 0, 2), ("b", 10, 1)]);
        assert!(w.take_updates().is_empty(), "nothing changed since");
        add(&mut w, "b", 15);
        add(&mut w, "a", 3);
        // The window of "a" closes: it is a final result, not an update.
        let closed = w.advance(10);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].key, closed[0].value), ("a", 3));
        let got: Vec<_> = w
            .take_updates()
            .into_iter()
            .map(|c| (c.key, c.value))
            .collect();
        assert_eq!(got, [("b", 2)]);
        assert_eq!(w.open_windows(), 1);
    }

    #[test]
    fn windows_of_an_event() {
        let t = WindowSpec::tumbling(60_000).unwrap();
        let w: Vec<Window> = t.windows_of(61_000).collect();
        assert_eq!(
            w,
            [Window {
                start_ms: 60_000,
                end_ms: 120_000
            }]
        );
        assert_eq!(t.windows_of(i64::MIN).count(), 0);
        assert_eq!(t.windows_of(i64::MAX).count(), 0);
        let before_epoch: Vec<Window> = t.windows_of(-1).collect();
        assert_eq!(
            before_epoch,
            [Window {
                start_ms: -60_000,
                end_ms: 0
            }]
        );
        let h = WindowSpec::hopping(30, 10).unwrap();
        let w: Vec<(i64, i64)> = h.windows_of(25).map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(w, [(0, 30), (10, 40), (20, 50)]);
        assert!(WindowSpec::hopping(30, 7).is_err());
        assert!(WindowSpec::tumbling(0).is_err());
        assert!(WindowSpec::hopping(10_000, 1).is_err());
    }

    #[test]
    fn a_window_closes_once_the_watermark_passes_its_end_and_lateness() {
        let mut s: Windowed<&str, u32> = Windowed::new(WindowSpec::tumbling(10).unwrap(), 5);
        assert!(s.add(&"a", 3, |c| *c += 1));
        assert!(s.add(&"a", 12, |c| *c += 1));
        assert!(s.advance(14).is_empty(), "[0, 10) waits for its lateness");
        assert!(s.add(&"a", 7, |c| *c += 1), "late but allowed");
        let closed = s.advance(15);
        assert_eq!(
            closed,
            [Closed {
                key: "a",
                window: Window {
                    start_ms: 0,
                    end_ms: 10
                },
                value: 2
            }]
        );
        assert!(!s.add(&"a", 9, |c| *c += 1), "its window is closed");
        assert_eq!(s.late(), 1);
        assert!(s.advance(3).is_empty(), "the watermark never goes back");
        assert_eq!(s.watermark_ms(), 15);
        let rest = s.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].value, 1);
    }

    /// An event: key, event time, value.
    type Ev = (u8, i64, u32);
    /// Count and sum per key and window.
    type Sums = BTreeMap<(u8, Window), (u32, u64)>;

    /// The brute force: replays the watermark each event saw on arrival
    /// (the largest time before it, minus the delay) and puts it in every
    /// window that was still open then.
    fn brute(events: &[Ev], spec: WindowSpec, lateness: i64, delay: i64) -> (Sums, u64) {
        let mut out = Sums::new();
        let mut late = 0;
        let mut max_t = i64::MIN;
        for &(k, t, v) in events {
            let wm = max_t.saturating_sub(delay);
            let mut any = false;
            for w in spec.windows_of(t) {
                if w.end_ms + lateness > wm {
                    let e = out.entry((k, w)).or_default();
                    e.0 += 1;
                    e.1 += u64::from(v);
                    any = true;
                }
            }
            if !any {
                late += 1;
            }
            max_t = max_t.max(t);
        }
        (out, late)
    }

    fn spec() -> impl Strategy<Value = WindowSpec> {
        prop_oneof![
            (1u64..50).prop_map(|s| WindowSpec::tumbling(s).unwrap()),
            (1u64..20, 1u64..5).prop_map(|(a, n)| WindowSpec::hopping(a * n, a).unwrap()),
        ]
    }

    proptest! {
        /// Out-of-order streams with late events: every window's result,
        /// each handed back once and in end order, and the late count,
        /// equal the brute force's.
        #[test]
        fn windows_equal_a_brute_force_computation(
            events in proptest::collection::vec((0u8..3, 0i64..400, 0u32..100), 0..200),
            spec in spec(),
            lateness in 0i64..30,
            delay in 0i64..40,
        ) {
            let mut s: Windowed<u8, (u32, u64)> = Windowed::new(spec, lateness as u64);
            let mut got = Sums::new();
            let mut max_t = i64::MIN;
            let mut last_end = i64::MIN;
            let mut take = |closed: Vec<Closed<u8, (u32, u64)>>, got: &mut BTreeMap<_, _>, ordered: bool| {
                for c in closed {
                    if ordered {
                        prop_assert!(c.window.end_ms >= last_end, "closed in end order");
                        last_end = c.window.end_ms;
                    }
                    prop_assert!(got.insert((c.key, c.window), c.value).is_none(), "closed once");
                }
                Ok(())
            };
            for &(k, t, v) in &events {
                s.add(&k, t, |a| { a.0 += 1; a.1 += u64::from(v); });
                max_t = max_t.max(t);
                let closed = s.advance(max_t.saturating_sub(delay));
                take(closed, &mut got, true)?;
            }
            take(s.flush(), &mut got, false)?;
            let (expected, late) = brute(&events, spec, lateness, delay);
            prop_assert_eq!(got, expected);
            prop_assert_eq!(s.late(), late);
        }
    }
}
