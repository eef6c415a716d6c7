//! Keyed aggregation over event-time **session windows**, pure: a key's
//! events closer than `gap` to one another form one session, which ends
//! `gap` after its last event.
//!
//! - An event at `t` opens the interval `[t, t + gap)`; it merges with every
//!   open session of its key that the interval overlaps (their results are
//!   combined with the caller's `merge`).
//! - A session closes once `end + allowed_lateness <= watermark`: its result
//!   is final and handed back, in the order of session ends.
//! - An event is **late** if its own interval is closed on arrival
//!   (`t + gap + allowed_lateness <= watermark`, judged on the event alone,
//!   whatever open session it would join), or if it overlaps a session of
//!   its key that has closed (that result was handed back already). Late
//!   events change nothing but the late count.
//!
//! Closed sessions are remembered only while a later event could still
//! touch them (`end > watermark - lateness - gap`), so the state holds the
//! open sessions and a bounded tail.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::window::{Closed, Window};

/// Keyed session-window state. Serializable, to be checkpointed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sessions<K: Ord, A> {
    gap_ms: i64,
    allowed_lateness_ms: i64,
    watermark_ms: i64,
    /// Per key, its open sessions by start: (end, value).
    open: BTreeMap<K, BTreeMap<i64, (i64, A)>>,
    /// Open sessions by (end, key, start), to close in end order.
    by_end: BTreeSet<(i64, K, i64)>,
    /// Per key, recently closed sessions as (start, end).
    closed: BTreeMap<K, Vec<(i64, i64)>>,
    late: u64,
}

impl<K: Ord + Clone, A: Default> Sessions<K, A> {
    /// Empty state: sessions end `gap_ms` after their last event.
    pub fn new(gap_ms: u64, allowed_lateness_ms: u64) -> Sessions<K, A> {
        Sessions {
            gap_ms: i64::try_from(gap_ms.max(1)).unwrap_or(i64::MAX),
            allowed_lateness_ms: i64::try_from(allowed_lateness_ms).unwrap_or(i64::MAX),
            watermark_ms: i64::MIN,
            open: BTreeMap::new(),
            by_end: BTreeSet::new(),
            closed: BTreeMap::new(),
            late: 0,
        }
    }

    /// Events that came too late.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.by_end.len()
    }

    fn closed_at(&self, end: i64) -> bool {
        end.saturating_add(self.allowed_lateness_ms) <= self.watermark_ms
    }

    /// Adds an event of `key` at `t_ms`: merges the sessions it joins
    /// (`merge(into, other)`), then folds the event in (`fold`). Returns
    /// `false` if it was late (nothing changed but the late count).
    pub fn add(
        &mut self,
        key: &K,
        t_ms: i64,
        fold: impl FnOnce(&mut A),
        mut merge: impl FnMut(&mut A, A),
    ) -> bool {
        let (start, end) = (t_ms, t_ms.saturating_add(self.gap_ms));
        let touches_closed = self
            .closed
            .get(key)
            .is_some_and(|c| c.iter().any(|&(s, e)| s < end && start < e));
        // Open sessions overlapping [start, end): sorted and disjoint, so
        // they are the last ones starting before `end` that end after `start`.
        let joined: Vec<(i64, i64)> = match self.open.get(key) {
            Some(sessions) => sessions
                .range(..end)
                .rev()
                .take_while(|(_, (e, _))| *e > start)
                .map(|(&s, (e, _))| (s, *e))
                .collect(),
            None => Vec::new(),
        };
        if touches_closed || self.closed_at(end) {
            self.late += 1;
            return false;
        }
        let sessions = self.open.entry(key.clone()).or_default();
        let (mut lo, mut hi) = (start, end);
        let mut value = A::default();
        for &(s, e) in joined.iter().rev() {
            if let Some((_, v)) = sessions.remove(&s) {
                merge(&mut value, v);
            }
            self.by_end.remove(&(e, key.clone(), s));
            lo = lo.min(s);
            hi = hi.max(e);
        }
        fold(&mut value);
        sessions.insert(lo, (hi, value));
        self.by_end.insert((hi, key.clone(), lo));
        true
    }

    /// Takes the open session of `key` starting at `start` out of `open`.
    fn take(&mut self, key: &K, start: i64) -> A {
        let value = self
            .open
            .get_mut(key)
            .and_then(|s| s.remove(&start))
            .map(|(_, v)| v)
            .unwrap_or_default();
        if self.open.get(key).is_some_and(BTreeMap::is_empty) {
            self.open.remove(key);
        }
        value
    }

    /// Moves the watermark forward and hands back every session that
    /// closes, by end.
    pub fn advance(&mut self, watermark_ms: i64) -> Vec<Closed<K, A>> {
        self.watermark_ms = self.watermark_ms.max(watermark_ms);
        let mut out = Vec::new();
        while let Some(&(end, ref key, start)) = self.by_end.first() {
            if !self.closed_at(end) {
                break;
            }
            let key = key.clone();
            self.by_end.pop_first();
            let value = self.take(&key, start);
            self.closed
                .entry(key.clone())
                .or_default()
                .push((start, end));
            out.push(Closed {
                key,
                window: Window {
                    start_ms: start,
                    end_ms: end,
                },
                value,
            });
        }
        // A later event that is not late ends after watermark - lateness,
        // so it starts after that minus the gap: older closed sessions
        // cannot be touched any more.
        let horizon = self
            .watermark_ms
            .saturating_sub(self.allowed_lateness_ms)
            .saturating_sub(self.gap_ms);
        self.closed.retain(|_, c| {
            c.retain(|&(_, e)| e > horizon);
            !c.is_empty()
        });
        out
    }

    /// Closes every open session (the end of a bounded input).
    pub fn flush(&mut self) -> Vec<Closed<K, A>> {
        let mut out = Vec::new();
        for (end, key, start) in std::mem::take(&mut self.by_end) {
            let value = self.take(&key, start);
            out.push(Closed {
                key,
                window: Window {
                    start_ms: start,
                    end_ms: end,
                },
                value,
            });
        }
        self.open.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn sum(into: &mut (u32, u64), other: (u32, u64)) {
        into.0 += other.0;
        into.1 += other.1;
    }

    #[test]
    fn events_closer_than_the_gap_make_one_session() {
        let mut s: Sessions<&str, (u32, u64)> = Sessions::new(10, 0);
        for t in [0, 5, 30, 12] {
            assert!(s.add(&"a", t, |a| a.0 += 1, sum));
        }
        // 0, 5 and 12 chain into [0, 22); 30 is alone: [30, 40).
        assert_eq!(s.open_sessions(), 2);
        let closed = s.advance(22);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            closed[0].window,
            Window {
                start_ms: 0,
                end_ms: 22
            }
        );
        assert_eq!(closed[0].value.0, 3);
        // 15 would join the closed session: late.
        assert!(!s.add(&"a", 15, |a| a.0 += 1, sum));
        // 25 joins [30, 40) (25 + 10 > 30).
        assert!(s.add(&"a", 25, |a| a.0 += 1, sum));
        let rest = s.flush();
        assert_eq!(
            rest[0].window,
            Window {
                start_ms: 25,
                end_ms: 40
            }
        );
        assert_eq!((rest[0].value.0, s.late()), (2, 1));
    }

    type Ev = (u8, i64, u32);

    /// The sessions of the accepted events, computed offline: per key,
    /// sorted by time, a new session wherever the next event is at or past
    /// the current session's end.
    fn offline(accepted: &[Ev], gap: i64) -> BTreeMap<(u8, Window), (u32, u64)> {
        let mut by_key: BTreeMap<u8, Vec<(i64, u32)>> = BTreeMap::new();
        for &(k, t, v) in accepted {
            by_key.entry(k).or_default().push((t, v));
        }
        let mut out = BTreeMap::new();
        for (k, mut evs) in by_key {
            evs.sort();
            let mut cur: Option<(i64, i64, (u32, u64))> = None;
            for (t, v) in evs {
                cur = match cur {
                    Some((s, e, mut acc)) if t < e => {
                        acc.0 += 1;
                        acc.1 += u64::from(v);
                        Some((s, e.max(t + gap), acc))
                    }
                    prev => {
                        if let Some((s, e, acc)) = prev {
                            out.insert(
                                (
                                    k,
                                    Window {
                                        start_ms: s,
                                        end_ms: e,
                                    },
                                ),
                                acc,
                            );
                        }
                        Some((t, t + gap, (1, u64::from(v))))
                    }
                };
            }
            if let Some((s, e, acc)) = cur {
                out.insert(
                    (
                        k,
                        Window {
                            start_ms: s,
                            end_ms: e,
                        },
                    ),
                    acc,
                );
            }
        }
        out
    }

    proptest! {
        /// The sessions handed back are exactly the offline sessions of the
        /// events accepted; an event is refused exactly when, on arrival,
        /// its interval was closed or touched a session closed by then.
        #[test]
        fn sessions_equal_the_offline_grouping_and_lateness_is_exact(
            events in proptest::collection::vec((0u8..3, 0i64..400, 0u32..100), 0..150),
            gap in 1i64..40,
            lateness in 0i64..30,
            delay in 0i64..60,
        ) {
            let mut s: Sessions<u8, (u32, u64)> = Sessions::new(gap as u64, lateness as u64);
            let mut got = BTreeMap::new();
            let mut accepted = Vec::new();
            let mut arrivals = Vec::new();
            let mut max_t = i64::MIN;
            let mut last_end = i64::MIN;
            for &(k, t, v) in &events {
                let wm = s.watermark_ms;
                let ok = s.add(&k, t, |a| { a.0 += 1; a.1 += u64::from(v); }, sum);
                arrivals.push((k, t, wm, ok));
                if ok {
                    accepted.push((k, t, v));
                }
                max_t = max_t.max(t);
                for c in s.advance(max_t.saturating_sub(delay)) {
                    prop_assert!(c.window.end_ms >= last_end, "closed in end order");
                    last_end = c.window.end_ms;
                    prop_assert!(got.insert((c.key, c.window), c.value).is_none());
                }
            }
            for c in s.flush() {
                prop_assert!(got.insert((c.key, c.window), c.value).is_none());
            }
            prop_assert_eq!(&got, &offline(&accepted, gap));
            let refused = arrivals.iter().filter(|a| !a.3).count() as u64;
            prop_assert_eq!(s.late(), refused);
            for (k, t, wm, ok) in arrivals {
                let closed_then = |w: &Window| w.end_ms + lateness <= wm;
                let touches = got.keys().any(|(key, w)| {
                    *key == k && closed_then(w) && w.start_ms < t + gap && t < w.end_ms
                });
                let own_closed = t + gap + lateness <= wm;
                prop_assert_eq!(ok, !(touches || own_closed), "event {} of key {} at watermark {}", t, k, wm);
            }
        }
    }
}
