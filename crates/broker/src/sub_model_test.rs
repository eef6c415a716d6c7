//! Model-based property test of one subscription's delivery state machine
//! ([`Sub`] in `sub.rs`), with no broker, files or clock around it.
//!
//! Random runs publish events (with keys `a`, `b`, `c` or none) into a few
//! in-memory partitions and drive a `Sub` (shared or ordered mode, 1 to 4
//! deliveries, 1 to 6 pending events at most, leases of 1 to 100 ms, small
//! fixed, quadratic, exponential or listed backoffs) with fetches, lease
//! expiries, acks, nacks (with and without a delay), extensions,
//! terminations, forged and stale delivery ids, clock moves, dead-lettering
//! that succeeds ([`Sub::finish_dying`]) or fails ([`Sub::abort_dying`]),
//! redrives from the dead-letter queue, and restarts that rebuild the `Sub`
//! from its op journal or from a snapshot. A plain model (a list of events
//! per partition, each unread, pending, acked or dead), written from the
//! delivery semantics and not from `sub.rs`, predicts every outcome.
//!
//! After every step it proves that:
//! - the `Sub` holds exactly the model's state: each partition's cursor,
//!   the pending offsets and, for each, attempts, generation, key, append
//!   time, ready/leased state (due time, delivery seq, deadline), the
//!   in-memory dying mark and the last error; `pending_count`,
//!   `pending_summary`, the counters, the removed dead letters, and
//!   `has_due` at every time where a timer could fire;
//! - pending events are below the cursor, and no event is both settled
//!   and pending;
//! - in ordered mode at most one event per key is leased or being
//!   dead-lettered, and at most one is in flight counting those waiting for
//!   a retry (unless a redrive put an older event back in front of one);
//!   no event is delivered while an older event of its key is pending, so
//!   events of a key are first delivered in offset order (keyed events go
//!   to their key's partition, as the bus publishes them);
//! - a fetch first fails every lease that ran out (a retry after the
//!   backoff from the deadline, or dead-lettering after the last attempt,
//!   exactly the expected ones), then delivers due retries before new
//!   events, never an event that is leased, settled, not yet due or
//!   blocked by its key, with attempt = previous attempts + 1, a fresh
//!   increasing delivery seq and a lease of `ack_wait_ms`; it reads new
//!   events only while fewer than `max_ack_pending` are pending, delivers
//!   every new event it reads unless its key blocks it, and stops only when
//!   `max` deliveries are out, the pending limit is reached, or every
//!   partition is read to its end;
//! - ack, nack, extend and terminate succeed only on the current delivery
//!   of an event before its deadline, and otherwise fail with the right
//!   error (`AlreadyAcked`, `DeadLettered`, `LeaseExpired`,
//!   `UnknownDelivery`) without changing anything or emitting an op;
//!   nack, expiry and terminate start dead-lettering exactly when they
//!   should, with the right attempts, generation, reason and error;
//! - a rebuilt `Sub` (from the journal, or from a snapshot) carries on
//!   exactly like the model, in-memory dying marks and recent dead letters
//!   being the only things a restart forgets.
//!
//! At the end of a run it proves that replaying the journal into a fresh
//! `Sub`, and replaying `snapshot_ops`, both give the live state (cursors,
//! entries, delivery seq, counts, timers, dead-letter bookkeeping); then,
//! with a generous clock and consumers that ack everything (dead letters
//! redriven), that every published event is acked exactly once, and that
//! recovery still gives the same state.
//!
//! Two hand-written cases at the end pin the ordered-mode redrive bug the
//! property test found (an event redriven behind a key's in-flight event
//! was delivered at once, making two of the key in flight).

use std::collections::{BTreeMap, BTreeSet};

use eddy_bus::name::{key_hash, partition_for_key};
use eddy_bus::{
    AckId, Backoff, BusError, DeadLetter, DeadReason, Delivery, DeliveryMode, Event, Offset,
    Partition, Result, RetryPolicy, StartAt, StoredEvent, SubscriptionConfig,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use crate::journal::{Op, Tp};
use crate::sub::{Dying, Entry, EntryState, Source, Sub};

type Check<T = ()> = std::result::Result<T, TestCaseError>;

const TOPIC: &str = "t";
const SUB_ID: u32 = 7;
const SUB_NAME: &str = "s";
const KEYS: [&str; 3] = ["a", "b", "c"];
const START_MS: i64 = 1_000_000;
/// A clock step of the final drain: longer than any lease or backoff here.
const DRAIN_STEP_MS: u64 = 10_000;
const DRAIN_ROUNDS_MAX: usize = 100;
const FETCH_MAX: usize = 4;

fn tp(p: usize) -> Tp {
    Tp {
        topic: 0,
        partition: p as u32,
    }
}

// ---------------------------------------------------------------------------
// The source: partitions as vectors.

#[derive(Debug, Default)]
struct MemSource {
    parts: Vec<Vec<StoredEvent>>,
}

impl MemSource {
    fn part(&self, tp: Tp) -> &[StoredEvent] {
        if tp.topic != 0 {
            return &[];
        }
        self.parts
            .get(tp.partition as usize)
            .map_or(&[], Vec::as_slice)
    }

    fn event(&self, p: usize, offset: u64) -> &StoredEvent {
        &self.parts[p][offset as usize]
    }
}

impl Source for MemSource {
    fn read(&self, tp: Tp, from: u64, max: usize) -> Result<Vec<StoredEvent>> {
        let part = self.part(tp);
        let from = usize::try_from(from).map_or(part.len(), |f| f.min(part.len()));
        Ok(part[from..].iter().take(max).cloned().collect())
    }

    fn get(&self, tp: Tp, offset: u64) -> Result<Option<StoredEvent>> {
        Ok(usize::try_from(offset)
            .ok()
            .and_then(|o| self.part(tp).get(o))
            .cloned())
    }

    fn end(&self, tp: Tp) -> u64 {
        self.part(tp).len() as u64
    }
}

// ---------------------------------------------------------------------------
// The model.

/// An entry's last error as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LastErr {
    None,
    Text(String),
    /// Some text saying that the lease expired.
    Expired,
}

impl LastErr {
    fn matches(&self, actual: &Option<String>) -> bool {
        match (self, actual) {
            (LastErr::None, None) => true,
            (LastErr::Text(t), Some(a)) => t == a,
            (LastErr::Expired, Some(a)) => a.contains("expired"),
            _ => false,
        }
    }
}

/// A pending event.
#[derive(Debug, Clone)]
struct MEntry {
    /// Deliveries in this generation.
    attempts: u32,
    state: EntryState,
    /// On its way to the dead-letter queue (in memory only).
    dying: bool,
    /// The last error, in memory.
    last_error: LastErr,
    /// The last error as last written to the journal.
    journaled_error: LastErr,
}

impl MEntry {
    fn fresh(due_ms: i64) -> MEntry {
        MEntry {
            attempts: 0,
            state: EntryState::Ready { due_ms },
            dying: false,
            last_error: LastErr::None,
            journaled_error: LastErr::None,
        }
    }

    fn leased(&self) -> bool {
        matches!(self.state, EntryState::Leased { .. })
    }

    /// Leased, or being dead-lettered.
    fn held(&self) -> bool {
        self.dying || self.leased()
    }

    /// Held, or delivered and waiting for a retry.
    fn in_flight(&self) -> bool {
        self.held() || self.attempts > 0
    }

    fn timer_ms(&self) -> i64 {
        match self.state {
            EntryState::Ready { due_ms } => due_ms,
            EntryState::Leased { deadline_ms, .. } => deadline_ms,
        }
    }
}

#[derive(Debug, Clone)]
enum MState {
    Unread,
    Pending(MEntry),
    Acked,
    /// Dead-lettered; `recent` until a restart forgets it.
    Dead {
        recent: bool,
    },
}

#[derive(Debug, Clone)]
struct MEvent {
    key: Option<usize>,
    ts_ms: i64,
    /// Times it was redriven.
    generation: u32,
    state: MState,
    /// Successful acks, over all generations.
    acks: u32,
}

#[derive(Debug, Clone, Default)]
struct MPart {
    events: Vec<MEvent>,
    cursor: u64,
}

/// A delivery handed out.
#[derive(Debug, Clone, Copy)]
struct Given {
    p: usize,
    offset: u64,
    seq: u64,
    generation: u32,
}

impl Given {
    fn ack_id(&self) -> AckId {
        AckId {
            topic: TOPIC.to_string(),
            partition: Partition(self.p as u32),
            offset: Offset(self.offset),
            seq: self.seq,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AlreadyAcked,
    DeadLettered,
    LeaseExpired,
    Unknown,
}

const ANY_ERROR: [Kind; 4] = [
    Kind::AlreadyAcked,
    Kind::DeadLettered,
    Kind::LeaseExpired,
    Kind::Unknown,
];

fn kind(e: &BusError) -> Option<Kind> {
    match e {
        BusError::AlreadyAcked(_) => Some(Kind::AlreadyAcked),
        BusError::DeadLettered(_) => Some(Kind::DeadLettered),
        BusError::LeaseExpired(_) => Some(Kind::LeaseExpired),
        BusError::UnknownDelivery(_) => Some(Kind::Unknown),
        _ => None,
    }
}

/// What a settling call must do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Ok,
    Err(Vec<Kind>),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    delivered: u64,
    redelivered: u64,
    acked: u64,
    dead_lettered: u64,
}

#[derive(Debug)]
struct Model {
    ordered: bool,
    ack_wait_ms: u64,
    max_ack_pending: u64,
    retry: RetryPolicy,
    now: i64,
    parts: Vec<MPart>,
    /// Every delivery handed out.
    given: Vec<Given>,
    max_seq: u64,
    /// The dead-letter queue.
    dlq: Vec<DeadLetter>,
    next_dl_id: u64,
    removed_dl: BTreeSet<u64>,
    /// Since the last restart.
    counters: Counters,
    /// Ordered mode: the highest offset of each (partition, key) delivered
    /// for the first time in generation 0.
    first_delivered: BTreeMap<(usize, usize), u64>,
}

impl Model {
    fn event(&self, p: usize, o: u64) -> &MEvent {
        &self.parts[p].events[o as usize]
    }

    fn event_mut(&mut self, p: usize, o: u64) -> &mut MEvent {
        &mut self.parts[p].events[o as usize]
    }

    fn entry(&self, p: usize, o: u64) -> Option<&MEntry> {
        match &self.event(p, o).state {
            MState::Pending(e) => Some(e),
            _ => None,
        }
    }

    fn entry_mut(&mut self, p: usize, o: u64) -> Option<&mut MEntry> {
        match &mut self.event_mut(p, o).state {
            MState::Pending(e) => Some(e),
            _ => None,
        }
    }

    /// (partition, offset, entry) of every pending event.
    fn pending(&self) -> impl Iterator<Item = (usize, u64, &MEntry)> {
        self.parts.iter().enumerate().flat_map(|(p, part)| {
            part.events
                .iter()
                .enumerate()
                .filter_map(move |(o, ev)| match &ev.state {
                    MState::Pending(e) => Some((p, o as u64, e)),
                    _ => None,
                })
        })
    }

    /// The ordering key of an event, in ordered mode.
    fn okey(&self, p: usize, o: u64) -> Option<usize> {
        self.event(p, o).key.filter(|_| self.ordered)
    }

    /// Pending events of `key` in partition `p`.
    fn pending_of_key(&self, p: usize, key: usize) -> impl Iterator<Item = (u64, &MEntry)> {
        self.pending()
            .filter(move |&(p2, o, _)| p2 == p && self.okey(p, o) == Some(key))
            .map(|(_, o, e)| (o, e))
    }

    /// (held, in flight, whether one was redriven) over the pending events
    /// of `key` in partition `p`.
    fn key_load(&self, p: usize, key: usize) -> (usize, usize, bool) {
        let (mut held, mut in_flight, mut redriven) = (0, 0, false);
        for (o, e) in self.pending_of_key(p, key) {
            held += usize::from(e.held());
            in_flight += usize::from(e.in_flight());
            redriven |= self.event(p, o).generation > 0;
        }
        (held, in_flight, redriven)
    }

    /// Whether the pending event may be delivered once due: ready, and in
    /// ordered mode the oldest pending event of its key, with no event of
    /// its key held.
    fn eligible(&self, p: usize, o: u64) -> bool {
        let Some(e) = self.entry(p, o) else {
            return false;
        };
        if e.held() {
            return false;
        }
        let Some(key) = self.okey(p, o) else {
            return true;
        };
        self.pending_of_key(p, key)
            .all(|(o2, e2)| o2 == o || (o2 > o && !e2.held()))
    }

    fn due_ready(&self, now: i64) -> Vec<(usize, u64)> {
        self.pending()
            .filter(|&(p, o, e)| e.timer_ms() <= now && self.eligible(p, o))
            .map(|(p, o, _)| (p, o))
            .collect()
    }

    /// When things move on their own: a lease runs out, or a deliverable
    /// event is due.
    fn timers(&self) -> Vec<i64> {
        self.pending()
            .filter(|&(p, o, e)| !e.dying && (e.leased() || self.eligible(p, o)))
            .map(|(_, _, e)| e.timer_ms())
            .collect()
    }

    /// Times around every timer.
    fn interesting_times(&self) -> Vec<i64> {
        let mut times = vec![self.now, self.now - 1, i64::MAX];
        for (_, _, e) in self.pending() {
            times.extend([e.timer_ms(), e.timer_ms() - 1]);
        }
        times
    }

    fn backoff(&self, attempts: u32) -> u64 {
        // No jitter: the seed does not matter.
        self.retry.delay_ms(attempts, 0)
    }

    /// Fails every lease that ran out by `now`; returns the events that
    /// start dying.
    fn expire(&mut self, now: i64) -> Vec<(usize, u64)> {
        let expired: Vec<(usize, u64)> = self
            .pending()
            .filter(|(_, _, e)| !e.dying && e.leased() && e.timer_ms() <= now)
            .map(|(p, o, _)| (p, o))
            .collect();
        let mut dying = Vec::new();
        let max = self.retry.max_deliveries;
        for (p, o) in expired {
            let delay = {
                let e = self.entry(p, o).expect("pending");
                self.backoff(e.attempts)
            };
            let e = self.entry_mut(p, o).expect("pending");
            e.last_error = LastErr::Expired;
            if e.attempts >= max {
                e.dying = true;
                dying.push((p, o));
            } else {
                e.state = EntryState::Ready {
                    due_ms: e.timer_ms().saturating_add_unsigned(delay),
                };
                e.journaled_error = LastErr::Expired;
            }
        }
        dying
    }

    /// What acking (or nacking, extending, terminating) `g` must do now.
    fn predict(&self, g: &Given) -> Expect {
        let ev = self.event(g.p, g.offset);
        if g.generation != ev.generation {
            // A delivery from before the event was dead-lettered and
            // redriven: any refusal will do.
            return Expect::Err(ANY_ERROR.to_vec());
        }
        match &ev.state {
            MState::Unread => Expect::Err(ANY_ERROR.to_vec()),
            MState::Pending(e) if e.dying => Expect::Err(vec![Kind::DeadLettered]),
            MState::Pending(e) => match e.state {
                EntryState::Leased { seq, deadline_ms } if seq == g.seq => {
                    if self.now < deadline_ms {
                        Expect::Ok
                    } else {
                        Expect::Err(vec![Kind::LeaseExpired])
                    }
                }
                _ => Expect::Err(vec![Kind::LeaseExpired]),
            },
            MState::Acked => Expect::Err(vec![Kind::AlreadyAcked]),
            MState::Dead { recent: true } => Expect::Err(vec![Kind::DeadLettered]),
            // A restart forgot that it died.
            MState::Dead { recent: false } => {
                Expect::Err(vec![Kind::DeadLettered, Kind::AlreadyAcked])
            }
        }
    }

    fn is_current(&self, g: &Given) -> bool {
        self.predict(g) == Expect::Ok
    }

    fn restart(&mut self) {
        for part in &mut self.parts {
            for ev in &mut part.events {
                match &mut ev.state {
                    MState::Pending(e) => {
                        e.dying = false;
                        e.last_error = e.journaled_error.clone();
                    }
                    MState::Dead { recent } => *recent = false,
                    _ => {}
                }
            }
        }
        self.counters = Counters::default();
    }

    fn all_acked(&self) -> bool {
        self.dlq.is_empty()
            && self.parts.iter().all(|part| {
                part.cursor == part.events.len() as u64
                    && part
                        .events
                        .iter()
                        .all(|ev| matches!(ev.state, MState::Acked))
            })
    }
}

// ---------------------------------------------------------------------------
// Actions.

#[derive(Debug, Clone)]
struct Setup {
    partitions: usize,
    config: SubscriptionConfig,
}

#[derive(Debug, Clone)]
enum Action {
    /// Publishes an event with key `KEYS[k]` (to its key's partition) or
    /// none (to `partition`).
    Publish {
        key: Option<usize>,
        partition: usize,
    },
    Fetch {
        max: usize,
    },
    /// The broker's timer: fails the leases that ran out.
    Expire,
    /// Settles a delivery: one whose lease runs (if any, when `live`), or
    /// any delivery ever handed out.
    Ack {
        pick: usize,
        live: bool,
    },
    Nack {
        pick: usize,
        live: bool,
        delay_ms: Option<u64>,
        error: bool,
    },
    Extend {
        pick: usize,
        live: bool,
    },
    Terminate {
        pick: usize,
        live: bool,
    },
    /// Acks or extends a delivery id that was never handed out.
    Forged {
        pick: usize,
        how: u8,
    },
    Advance {
        ms: u64,
    },
    FinishDying {
        pick: usize,
    },
    AbortDying {
        pick: usize,
    },
    /// Redrives a dead letter into the subscription (or, with `pending`,
    /// tries to redrive an event that is pending).
    Redrive {
        pick: usize,
        pending: bool,
    },
    /// Rebuilds the `Sub` from its journal or from a snapshot, forgetting
    /// what was only in memory.
    Restart {
        snapshot: bool,
    },
}

fn backoff_strategy() -> impl Strategy<Value = Backoff> {
    prop_oneof![
        (0u64..=50).prop_map(|delay_ms| Backoff::Fixed { delay_ms }),
        (0u64..=20).prop_map(|base_ms| Backoff::Quadratic { base_ms }),
        (1u64..=20, 1u32..=3)
            .prop_map(|(initial_ms, factor)| Backoff::Exponential { initial_ms, factor }),
        prop::collection::vec(0u64..=50, 1..=3).prop_map(|delays_ms| Backoff::List { delays_ms }),
    ]
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    (
        1usize..=3,
        any::<bool>(),
        1u32..=4,
        1u32..=6,
        1u64..=100,
        backoff_strategy(),
        prop::option::weighted(0.3, 0u64..=60),
    )
        .prop_map(
            |(partitions, ordered, max_deliveries, max_ack_pending, ack_wait_ms, backoff, cap)| {
                let mode = if ordered {
                    DeliveryMode::Ordered
                } else {
                    DeliveryMode::Shared
                };
                Setup {
                    partitions,
                    config: SubscriptionConfig {
                        filter: TOPIC.to_string(),
                        start: StartAt::Earliest,
                        mode,
                        ack_wait_ms,
                        retry: RetryPolicy {
                            max_deliveries,
                            backoff,
                            cap_ms: cap,
                            jitter_pct: 0,
                        },
                        max_ack_pending,
                    },
                }
            },
        )
}

fn action_strategy() -> impl Strategy<Value = Action> {
    let live = || prop::bool::weighted(0.8);
    prop_oneof![
        5 => (prop::option::weighted(0.7, 0usize..KEYS.len()), 0usize..3)
            .prop_map(|(key, partition)| Action::Publish { key, partition }),
        4 => (1usize..=FETCH_MAX).prop_map(|max| Action::Fetch { max }),
        1 => Just(Action::Expire),
        4 => (any::<usize>(), live()).prop_map(|(pick, live)| Action::Ack { pick, live }),
        2 => (any::<usize>(), live(), prop::option::of(0u64..=150), any::<bool>()).prop_map(
            |(pick, live, delay_ms, error)| Action::Nack { pick, live, delay_ms, error }
        ),
        1 => (any::<usize>(), live()).prop_map(|(pick, live)| Action::Extend { pick, live }),
        1 => (any::<usize>(), live()).prop_map(|(pick, live)| Action::Terminate { pick, live }),
        1 => (any::<usize>(), 0u8..4).prop_map(|(pick, how)| Action::Forged { pick, how }),
        3 => prop_oneof![4 => 0u64..=60, 1 => 61u64..=400].prop_map(|ms| Action::Advance { ms }),
        2 => any::<usize>().prop_map(|pick| Action::FinishDying { pick }),
        1 => any::<usize>().prop_map(|pick| Action::AbortDying { pick }),
        2 => (any::<usize>(), prop::bool::weighted(0.15))
            .prop_map(|(pick, pending)| Action::Redrive { pick, pending }),
        1 => any::<bool>().prop_map(|snapshot| Action::Restart { snapshot }),
    ]
}

// ---------------------------------------------------------------------------
// The harness: the `Sub`, its source and journal, and the model.

#[derive(Debug)]
struct Harness {
    config: SubscriptionConfig,
    sub: Sub,
    src: MemSource,
    /// Every op since the last snapshot (or the start).
    journal: Vec<Op>,
    /// Dying events not yet finished or aborted.
    dying: Vec<Dying>,
    m: Model,
}

fn outcome<T: std::fmt::Debug>(
    what: &str,
    r: &Result<T>,
    expect: &Expect,
    ops: &[Op],
) -> Check<bool> {
    match (r, expect) {
        (Ok(_), Expect::Ok) => Ok(true),
        (Err(e), Expect::Err(kinds)) => {
            prop_assert!(
                kind(e).is_some_and(|k| kinds.contains(&k)),
                "{what}: got {e:?}, expected one of {kinds:?}"
            );
            prop_assert!(ops.is_empty(), "{what}: refused, yet emitted {ops:?}");
            Ok(false)
        }
        (r, expect) => Err(TestCaseError::fail(format!(
            "{what}: got {r:?}, expected {expect:?}"
        ))),
    }
}

fn fresh_sub(config: &SubscriptionConfig, ops: &[Op]) -> Sub {
    let mut sub = Sub::new(SUB_ID, SUB_NAME.to_string(), config.clone()).expect("valid config");
    for op in ops {
        sub.apply(op);
    }
    sub
}

fn snapshot(sub: &Sub) -> Vec<Op> {
    let mut ops = Vec::new();
    sub.snapshot_ops(&mut ops);
    ops
}

/// A snapshot without the last errors (which are not all journaled).
fn snapshot_without_errors(sub: &Sub) -> Vec<Op> {
    snapshot(sub)
        .into_iter()
        .map(|op| match op {
            Op::Put {
                sub,
                tp,
                offset,
                entry,
            } => Op::Put {
                sub,
                tp,
                offset,
                entry: Entry {
                    last_error: None,
                    ..entry
                },
            },
            op => op,
        })
        .collect()
}

/// Checks that two subscriptions hold the same state and timers.
fn same_state(live: &Sub, other: &Sub, what: &str, times: &[i64]) -> Check {
    prop_assert_eq!(live.next_seq, other.next_seq, "{}: next delivery seq", what);
    let tps = |s: &Sub| s.parts.keys().copied().collect::<Vec<_>>();
    prop_assert_eq!(tps(live), tps(other), "{}: partitions", what);
    for (tp, a) in &live.parts {
        let b = &other.parts[tp];
        prop_assert_eq!(a.next, b.next, "{}: cursor of {:?}", what, tp);
        let entries = |part: &crate::sub::Part| {
            part.pending
                .iter()
                .map(|(&o, e)| {
                    (
                        o,
                        Entry {
                            last_error: None,
                            ..e.clone()
                        },
                    )
                })
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(entries(a), entries(b), "{}: pending of {:?}", what, tp);
    }
    prop_assert_eq!(live.pending_count(), other.pending_count(), "{}", what);
    prop_assert_eq!(live.pending_summary(), other.pending_summary(), "{}", what);
    prop_assert_eq!(live.dead_floor, other.dead_floor, "{}", what);
    prop_assert_eq!(&live.dead_removed, &other.dead_removed, "{}", what);
    for &t in times {
        prop_assert_eq!(
            live.has_due(t),
            other.has_due(t),
            "{}: has_due({})",
            what,
            t
        );
    }
    prop_assert_eq!(
        snapshot_without_errors(live),
        snapshot_without_errors(other),
        "{}: snapshot",
        what
    );
    Ok(())
}

impl Harness {
    fn new(setup: &Setup) -> Harness {
        let mut journal = Vec::new();
        for p in 0..setup.partitions {
            journal.push(Op::Cursor {
                sub: SUB_ID,
                tp: tp(p),
                next: 0,
            });
        }
        let config = setup.config.clone();
        Harness {
            sub: fresh_sub(&config, &journal),
            src: MemSource {
                parts: vec![Vec::new(); setup.partitions],
            },
            journal,
            dying: Vec::new(),
            m: Model {
                ordered: config.mode == DeliveryMode::Ordered,
                ack_wait_ms: config.ack_wait_ms,
                max_ack_pending: u64::from(config.max_ack_pending),
                retry: config.retry.clone(),
                now: START_MS,
                parts: vec![MPart::default(); setup.partitions],
                given: Vec::new(),
                max_seq: 0,
                dlq: Vec::new(),
                next_dl_id: 0,
                removed_dl: BTreeSet::new(),
                counters: Counters::default(),
                first_delivered: BTreeMap::new(),
            },
            config,
        }
    }

    fn step(&mut self, action: &Action) -> Check {
        match *action {
            Action::Publish { key, partition } => self.publish(key, partition),
            Action::Fetch { max } => self.fetch(max).map(drop),
            Action::Expire => self.expire(),
            Action::Ack { pick, live } => match self.pick_given(pick, live) {
                Some(g) => self.ack(g).map(drop),
                None => Ok(()),
            },
            Action::Nack {
                pick,
                live,
                delay_ms,
                error,
            } => self.nack(pick, live, delay_ms, error),
            Action::Extend { pick, live } => self.extend(pick, live),
            Action::Terminate { pick, live } => self.terminate(pick, live),
            Action::Forged { pick, how } => self.forged(pick, how),
            Action::Advance { ms } => {
                self.m.now += ms as i64;
                Ok(())
            }
            Action::FinishDying { pick } => self.finish_dying(pick),
            Action::AbortDying { pick } => self.abort_dying(pick),
            Action::Redrive { pick, pending } => self.redrive(pick, pending),
            Action::Restart { snapshot } => {
                self.restart(snapshot);
                Ok(())
            }
        }
    }

    fn publish(&mut self, key: Option<usize>, partition: usize) -> Check {
        let n = self.src.parts.len();
        let p = match key {
            Some(k) => partition_for_key(KEYS[k].as_bytes(), n as u32) as usize,
            None => partition % n,
        };
        let offset = self.src.parts[p].len() as u64;
        let mut event = Event::new("Tested", "").with_id(format!("{p}-{offset}"));
        if let Some(k) = key {
            event = event.with_key(KEYS[k]);
        }
        self.src.parts[p].push(StoredEvent {
            topic: TOPIC.to_string(),
            partition: Partition(p as u32),
            offset: Offset(offset),
            timestamp_ms: self.m.now,
            event,
        });
        self.m.parts[p].events.push(MEvent {
            key,
            ts_ms: self.m.now,
            generation: 0,
            state: MState::Unread,
            acks: 0,
        });
        Ok(())
    }

    fn pick_given(&self, pick: usize, live: bool) -> Option<Given> {
        let current: Vec<Given> = if live {
            self.m
                .given
                .iter()
                .filter(|g| self.m.is_current(g))
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        let pool = if current.is_empty() {
            &self.m.given
        } else {
            &current
        };
        (!pool.is_empty()).then(|| pool[pick % pool.len()])
    }

    /// Checks the dying events a fetch or expiry returned against the
    /// model's expiry.
    fn check_expired(&mut self, dying: &[Dying]) -> Check {
        let expected = self.m.expire(self.m.now);
        let mut got: Vec<(usize, u64)> = dying
            .iter()
            .map(|d| (d.tp.partition as usize, d.offset))
            .collect();
        got.sort_unstable();
        prop_assert_eq!(&got, &expected, "events dead-lettered by lease expiry");
        for d in dying {
            self.check_dying(d, DeadReason::MaxDeliveries)?;
        }
        Ok(())
    }

    /// Checks a dying event against the model entry (already marked dying).
    fn check_dying(&self, d: &Dying, reason: DeadReason) -> Check {
        prop_assert_eq!(d.tp.topic, 0);
        let p = d.tp.partition as usize;
        let ev = self.m.event(p, d.offset);
        let Some(e) = self.m.entry(p, d.offset) else {
            return Err(TestCaseError::fail(format!(
                "dying {d:?} is not pending in the model"
            )));
        };
        prop_assert!(e.dying, "{:?} is not dying in the model", d);
        prop_assert_eq!(d.attempts, e.attempts, "attempts of {:?}", d);
        prop_assert_eq!(d.generation, ev.generation, "generation of {:?}", d);
        prop_assert_eq!(d.reason, reason, "reason of {:?}", d);
        prop_assert!(
            e.last_error.matches(&d.last_error),
            "last error of {d:?}: expected {:?}",
            e.last_error
        );
        Ok(())
    }

    fn expire(&mut self) -> Check {
        let mut ops = Vec::new();
        let mut dying = Vec::new();
        self.sub.expire(self.m.now, &mut ops, &mut dying);
        self.journal.extend(ops);
        self.check_expired(&dying)?;
        self.dying.extend(dying);
        Ok(())
    }

    /// Checks one delivery against the model and leases it there.
    fn accept(&mut self, d: &Delivery) -> Check {
        let now = self.m.now;
        prop_assert_eq!(&d.ack_id.topic, TOPIC);
        let p = d.ack_id.partition.0 as usize;
        let o = d.ack_id.offset.0;
        prop_assert_eq!(&d.event, self.src.event(p, o), "event of {}/{}", p, o);
        prop_assert_eq!(
            d.lease_deadline_ms,
            now.saturating_add_unsigned(self.m.ack_wait_ms),
            "lease deadline of {}/{}",
            p,
            o
        );
        let generation = self.m.event(p, o).generation;
        let key = self.m.okey(p, o);
        let Some(e) = self.m.entry(p, o) else {
            return Err(TestCaseError::fail(format!("{p}/{o} is not pending")));
        };
        prop_assert_eq!(d.attempt, e.attempts + 1, "attempt of {}/{}", p, o);
        if let Some(k) = key
            && generation == 0
            && e.attempts == 0
        {
            let last = self.m.first_delivered.insert((p, k), o);
            prop_assert!(
                last.is_none_or(|last| last < o),
                "key {} of partition {p}: offset {o} delivered first after {last:?}",
                KEYS[k]
            );
        }
        let seq = d.ack_id.seq;
        let e = self.m.entry_mut(p, o).expect("pending");
        e.attempts += 1;
        e.state = EntryState::Leased {
            seq,
            deadline_ms: d.lease_deadline_ms,
        };
        e.journaled_error = e.last_error.clone();
        let attempts = e.attempts;
        self.m.max_seq = self.m.max_seq.max(seq);
        self.m.given.push(Given {
            p,
            offset: o,
            seq,
            generation,
        });
        self.m.counters.delivered += 1;
        if attempts > 1 {
            self.m.counters.redelivered += 1;
        }
        Ok(())
    }

    fn fetch(&mut self, max: usize) -> Check<Vec<Given>> {
        let now = self.m.now;
        let cursors: Vec<u64> = self.m.parts.iter().map(|p| p.cursor).collect();
        let mut ops = Vec::new();
        let mut dying = Vec::new();
        let r = self.sub.fetch(now, max, &self.src, &mut ops, &mut dying);
        self.journal.extend(ops);
        let out = r.map_err(|e| TestCaseError::fail(format!("fetch failed: {e}")))?;
        self.check_expired(&dying)?;
        self.dying.extend(dying);
        prop_assert!(out.len() <= max, "{} deliveries for max {}", out.len(), max);
        let mut last_seq = self.m.max_seq;
        for d in &out {
            prop_assert!(
                d.ack_id.seq > last_seq,
                "delivery seq {} is not fresh (last {last_seq})",
                d.ack_id.seq
            );
            last_seq = d.ack_id.seq;
        }
        let is_new = |d: &Delivery| d.ack_id.offset.0 >= cursors[d.ack_id.partition.0 as usize];
        let retries = out.iter().take_while(|d| !is_new(d)).count();
        prop_assert!(
            out[retries..].iter().all(is_new),
            "pending events delivered after new ones: {out:?}"
        );
        // Pending events first: each must be deliverable when handed out.
        for d in &out[..retries] {
            let (p, o) = (d.ack_id.partition.0 as usize, d.ack_id.offset.0);
            prop_assert!(
                self.m.due_ready(now).contains(&(p, o)),
                "{p}/{o} delivered, but it is not deliverable: {:?} (key {:?})",
                self.m.entry(p, o),
                self.m.okey(p, o)
            );
            self.accept(d)?;
        }
        if retries < max {
            let left = self.m.due_ready(now);
            prop_assert!(
                left.is_empty(),
                "{} deliveries for max {max}, yet {left:?} are due and deliverable",
                out.len()
            );
        }
        // Then new events, in offset order per partition.
        let mut fresh: BTreeMap<(usize, u64), &Delivery> = BTreeMap::new();
        for d in &out[retries..] {
            let at = (d.ack_id.partition.0 as usize, d.ack_id.offset.0);
            prop_assert!(fresh.insert(at, d).is_none(), "{at:?} delivered twice");
        }
        let mut read_any = false;
        for (p, &cursor) in cursors.iter().enumerate() {
            let next = self.sub.parts[&tp(p)].next;
            let end = self.src.parts[p].len() as u64;
            prop_assert!(
                cursor <= next && next <= end,
                "cursor of {p} moved from {cursor} to {next} (end {end})"
            );
            for o in cursor..next {
                read_any = true;
                let blocked = self
                    .m
                    .okey(p, o)
                    .is_some_and(|k| self.m.pending_of_key(p, k).next().is_some());
                self.m.event_mut(p, o).state = MState::Pending(MEntry::fresh(0));
                match fresh.remove(&(p, o)) {
                    Some(d) => {
                        prop_assert!(
                            !blocked,
                            "{p}/{o} delivered while an older event of its key is pending"
                        );
                        self.accept(d)?;
                    }
                    None => prop_assert!(
                        blocked,
                        "{p}/{o} was read but neither delivered nor blocked by its key"
                    ),
                }
            }
            self.m.parts[p].cursor = next;
        }
        prop_assert!(fresh.is_empty(), "unread events delivered: {fresh:?}");
        let pending = self.sub.pending_count();
        let cap = self.m.max_ack_pending;
        if read_any {
            prop_assert!(pending <= cap, "reading new events made {pending} pending");
        }
        let all_read = self
            .m
            .parts
            .iter()
            .all(|part| part.cursor == part.events.len() as u64);
        prop_assert!(
            out.len() == max || pending >= cap || all_read,
            "fetch stopped early: {} of {max} deliveries, {pending} pending of {cap}",
            out.len()
        );
        Ok(out
            .iter()
            .map(|d| Given {
                p: d.ack_id.partition.0 as usize,
                offset: d.ack_id.offset.0,
                seq: d.ack_id.seq,
                generation: self
                    .m
                    .event(d.ack_id.partition.0 as usize, d.ack_id.offset.0)
                    .generation,
            })
            .collect())
    }

    /// Acks `g`; returns whether it succeeded.
    fn ack(&mut self, g: Given) -> Check<bool> {
        let expect = self.m.predict(&g);
        let mut ops = Vec::new();
        let r = self.sub.ack(tp(g.p), &g.ack_id(), self.m.now, &mut ops);
        let ok = outcome(&format!("ack of {g:?}"), &r, &expect, &ops)?;
        self.journal.extend(ops);
        if ok {
            let ev = self.m.event_mut(g.p, g.offset);
            ev.state = MState::Acked;
            ev.acks += 1;
            self.m.counters.acked += 1;
        }
        Ok(ok)
    }

    fn nack(&mut self, pick: usize, live: bool, delay_ms: Option<u64>, error: bool) -> Check {
        let Some(g) = self.pick_given(pick, live) else {
            return Ok(());
        };
        let expect = self.m.predict(&g);
        let error = error.then(|| format!("failed {}", g.seq));
        let mut ops = Vec::new();
        let now = self.m.now;
        let r = self
            .sub
            .nack(tp(g.p), &g.ack_id(), now, delay_ms, error.clone(), &mut ops);
        let ok = outcome(&format!("nack of {g:?}"), &r, &expect, &ops)?;
        self.journal.extend(ops);
        if !ok {
            return Ok(());
        }
        let e = self.m.entry(g.p, g.offset).expect("pending");
        let last_error = error.map_or(e.last_error.clone(), LastErr::Text);
        let wait = delay_ms.unwrap_or_else(|| self.m.backoff(e.attempts));
        let last = e.attempts >= self.m.retry.max_deliveries;
        let e = self.m.entry_mut(g.p, g.offset).expect("pending");
        e.last_error = last_error.clone();
        if last {
            e.dying = true;
            let Ok(Some(d)) = r else {
                return Err(TestCaseError::fail(format!(
                    "nack of the last attempt of {g:?} gave {r:?}, not dead-lettering"
                )));
            };
            self.check_dying(&d, DeadReason::MaxDeliveries)?;
            self.dying.push(d);
        } else {
            prop_assert!(matches!(r, Ok(None)), "nack of {:?} gave {:?}", g, r);
            e.state = EntryState::Ready {
                due_ms: now.saturating_add_unsigned(wait),
            };
            e.journaled_error = last_error;
        }
        Ok(())
    }

    fn extend(&mut self, pick: usize, live: bool) -> Check {
        let Some(g) = self.pick_given(pick, live) else {
            return Ok(());
        };
        let expect = self.m.predict(&g);
        let mut ops = Vec::new();
        let now = self.m.now;
        let r = self.sub.extend(tp(g.p), &g.ack_id(), now, &mut ops);
        let ok = outcome(&format!("extend of {g:?}"), &r, &expect, &ops)?;
        self.journal.extend(ops);
        if ok {
            let deadline_ms = now.saturating_add_unsigned(self.m.ack_wait_ms);
            prop_assert_eq!(r, Ok(deadline_ms), "extend of {:?}", g);
            let e = self.m.entry_mut(g.p, g.offset).expect("pending");
            e.state = EntryState::Leased {
                seq: g.seq,
                deadline_ms,
            };
            e.journaled_error = e.last_error.clone();
        }
        Ok(())
    }

    fn terminate(&mut self, pick: usize, live: bool) -> Check {
        let Some(g) = self.pick_given(pick, live) else {
            return Ok(());
        };
        let expect = self.m.predict(&g);
        let reason = format!("poison {}", g.seq);
        let r = self
            .sub
            .terminate(tp(g.p), &g.ack_id(), self.m.now, &reason);
        if outcome(&format!("terminate of {g:?}"), &r, &expect, &[])? {
            let e = self.m.entry_mut(g.p, g.offset).expect("pending");
            e.dying = true;
            e.last_error = LastErr::Text(reason);
            let d = r.expect("checked");
            self.check_dying(&d, DeadReason::Terminated)?;
            self.dying.push(d);
        }
        Ok(())
    }

    /// Settles a delivery id that was never handed out.
    fn forged(&mut self, pick: usize, how: u8) -> Check {
        let n = self.src.parts.len();
        let events: Vec<(usize, u64)> = (0..n)
            .flat_map(|p| (0..self.src.parts[p].len() as u64).map(move |o| (p, o)))
            .collect();
        let (p, offset, seq, expect) = match how {
            // A seq not handed out yet.
            0 => {
                let (p, o) = events
                    .get(pick % events.len().max(1))
                    .copied()
                    .unwrap_or((0, 0));
                let dying = events.contains(&(p, o)) && self.m.entry(p, o).is_some_and(|e| e.dying);
                let kinds = if dying {
                    vec![Kind::Unknown, Kind::DeadLettered]
                } else {
                    vec![Kind::Unknown]
                };
                (p, o, self.m.max_seq + 1 + (pick % 3) as u64, kinds)
            }
            // An offset not published yet.
            1 => {
                let p = pick % n;
                let o = self.src.parts[p].len() as u64 + (pick % 3) as u64;
                (
                    p,
                    o,
                    1 + (pick as u64 % (self.m.max_seq + 1)),
                    vec![Kind::Unknown],
                )
            }
            // A partition the subscription does not read.
            2 => (n + pick % 2, 0, 1, vec![Kind::Unknown]),
            // A real seq with the offset of another event.
            _ => {
                let Some(g) = self.pick_given(pick, false) else {
                    return Ok(());
                };
                let others: Vec<(usize, u64)> = events
                    .iter()
                    .copied()
                    .filter(|&(p, o)| (p, o) != (g.p, g.offset) && o < self.m.parts[p].cursor)
                    .collect();
                if others.is_empty() {
                    return Ok(());
                }
                let (p, o) = others[pick / 7 % others.len()];
                (p, o, g.seq, ANY_ERROR.to_vec())
            }
        };
        let g = Given {
            p,
            offset,
            seq,
            generation: 0,
        };
        let expect = Expect::Err(expect);
        let mut ops = Vec::new();
        if pick.is_multiple_of(2) {
            let r = self.sub.ack(tp(p), &g.ack_id(), self.m.now, &mut ops);
            outcome(&format!("ack of forged {g:?}"), &r, &expect, &ops)?;
        } else {
            let r = self.sub.extend(tp(p), &g.ack_id(), self.m.now, &mut ops);
            outcome(&format!("extend of forged {g:?}"), &r, &expect, &ops)?;
        }
        Ok(())
    }

    fn finish_dying(&mut self, pick: usize) -> Check {
        if self.dying.is_empty() {
            return Ok(());
        }
        let d = self.dying.remove(pick % self.dying.len());
        let mut ops = Vec::new();
        self.sub.finish_dying(&d, &mut ops);
        self.journal.extend(ops);
        let p = d.tp.partition as usize;
        prop_assert!(
            self.m.entry(p, d.offset).is_some_and(|e| e.dying),
            "model: {d:?} is not dying"
        );
        self.m.event_mut(p, d.offset).state = MState::Dead { recent: true };
        self.m.counters.dead_lettered += 1;
        self.m.dlq.push(DeadLetter {
            id: self.m.next_dl_id,
            subscription: SUB_NAME.to_string(),
            event: self.src.event(p, d.offset).clone(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            reason: d.reason,
            dead_at_ms: self.m.now,
            redrives: d.generation,
        });
        self.m.next_dl_id += 1;
        Ok(())
    }

    fn abort_dying(&mut self, pick: usize) -> Check {
        if self.dying.is_empty() {
            return Ok(());
        }
        let d = self.dying.remove(pick % self.dying.len());
        self.sub.abort_dying(&d);
        // The event is no longer dying: a late finish changes nothing.
        let mut ops = Vec::new();
        self.sub.finish_dying(&d, &mut ops);
        prop_assert!(
            ops.is_empty(),
            "finish after abort of {:?} emitted {:?}",
            d,
            ops
        );
        let e = self
            .m
            .entry_mut(d.tp.partition as usize, d.offset)
            .filter(|e| e.dying);
        prop_assert!(e.is_some(), "model: {:?} is not dying", d);
        if let Some(e) = e {
            e.dying = false;
            e.last_error = e.journaled_error.clone();
        }
        Ok(())
    }

    fn redrive(&mut self, pick: usize, pending: bool) -> Check {
        let now = self.m.now;
        let mut ops = Vec::new();
        if pending {
            let pending: Vec<(usize, u64)> = self.m.pending().map(|(p, o, _)| (p, o)).collect();
            if pending.is_empty() {
                return Ok(());
            }
            let (p, o) = pending[pick % pending.len()];
            let dl = DeadLetter {
                id: 1_000_000,
                subscription: SUB_NAME.to_string(),
                event: self.src.event(p, o).clone(),
                attempts: 1,
                last_error: None,
                reason: DeadReason::Terminated,
                dead_at_ms: now,
                redrives: 0,
            };
            let r = self.sub.redrive(tp(p), &dl, now, &mut ops);
            prop_assert!(!r, "redrive of pending {}/{} accepted", p, o);
            prop_assert!(ops.is_empty(), "refused redrive emitted {:?}", ops);
            return Ok(());
        }
        if self.m.dlq.is_empty() {
            return Ok(());
        }
        let dl = self.m.dlq.remove(pick % self.m.dlq.len());
        let (p, o) = (dl.event.partition.0 as usize, dl.event.offset.0);
        let r = self.sub.redrive(tp(p), &dl, now, &mut ops);
        prop_assert!(r, "redrive of dead letter {:?} refused", dl);
        let op = Op::DeadLetterRemoved {
            sub: SUB_ID,
            id: dl.id,
        };
        self.sub.apply(&op);
        ops.push(op);
        self.journal.extend(ops);
        self.m.removed_dl.insert(dl.id);
        let ev = self.m.event_mut(p, o);
        prop_assert!(
            matches!(ev.state, MState::Dead { .. }),
            "model: redriven {p}/{o} is not dead"
        );
        ev.generation = dl.redrives + 1;
        ev.state = MState::Pending(MEntry::fresh(now));
        Ok(())
    }

    fn restart(&mut self, from_snapshot: bool) {
        if from_snapshot {
            self.journal = snapshot(&self.sub);
        }
        self.sub = fresh_sub(&self.config, &self.journal);
        self.dying.clear();
        self.m.restart();
    }

    /// Compares the `Sub` with the model, and checks the invariants.
    fn check(&self) -> Check {
        let (sub, m) = (&self.sub, &self.m);
        let tps: Vec<Tp> = sub.parts.keys().copied().collect();
        prop_assert_eq!(tps, (0..m.parts.len()).map(tp).collect::<Vec<_>>());
        let (mut pending, mut leased, mut oldest) = (0u64, 0u64, None::<i64>);
        for (p, mp) in m.parts.iter().enumerate() {
            let part = &sub.parts[&tp(p)];
            prop_assert_eq!(part.next, mp.cursor, "cursor of partition {}", p);
            let want: Vec<u64> = m
                .pending()
                .filter(|&(p2, _, _)| p2 == p)
                .map(|(_, o, _)| o)
                .collect();
            let got: Vec<u64> = part.pending.keys().copied().collect();
            prop_assert_eq!(&got, &want, "pending offsets of partition {}", p);
            for (&o, e) in &part.pending {
                prop_assert!(o < part.next, "{p}/{o} pending at or after the cursor");
                let ev = m.event(p, o);
                let me = m.entry(p, o).expect("pending");
                let key = m.okey(p, o).map(|k| key_hash(KEYS[k].as_bytes()));
                prop_assert_eq!(
                    (e.attempts, e.generation, e.key, e.ts_ms, e.state, e.dying),
                    (
                        me.attempts,
                        ev.generation,
                        key,
                        ev.ts_ms,
                        me.state,
                        me.dying
                    ),
                    "entry {}/{} (attempts, generation, key, ts, state, dying)",
                    p,
                    o
                );
                // A dying entry keeps its journaled error; the new one
                // travels in its `Dying`.
                prop_assert!(
                    me.journaled_error.matches(&e.last_error),
                    "last error of {p}/{o}: {:?}, expected {:?}",
                    e.last_error,
                    me.journaled_error
                );
                pending += 1;
                leased += u64::from(me.leased());
                oldest = Some(oldest.map_or(ev.ts_ms, |t: i64| t.min(ev.ts_ms)));
            }
            for (o, ev) in mp.events.iter().enumerate() {
                prop_assert!(ev.acks <= 1, "{p}/{o} acked {} times", ev.acks);
            }
            if m.ordered {
                for (k, name) in KEYS.iter().enumerate() {
                    let (held, in_flight, redriven) = m.key_load(p, k);
                    let events = || m.pending_of_key(p, k).collect::<Vec<_>>();
                    prop_assert!(
                        held <= 1,
                        "{held} events of key {name} in partition {p} leased: {:?}",
                        events()
                    );
                    // A redrive puts an old event back before the one in
                    // flight, which then waits for it.
                    prop_assert!(
                        in_flight <= 1 || redriven,
                        "{in_flight} events of key {name} in partition {p} in flight: {:?}",
                        events()
                    );
                }
            }
        }
        prop_assert_eq!(sub.pending_count(), pending, "pending count");
        prop_assert_eq!(
            sub.pending_summary(),
            (leased, pending - leased, oldest),
            "pending summary"
        );
        prop_assert!(sub.next_seq > m.max_seq, "next seq {}", sub.next_seq);
        let c = &sub.counters;
        prop_assert_eq!(
            Counters {
                delivered: c.delivered,
                redelivered: c.redelivered,
                acked: c.acked,
                dead_lettered: c.dead_lettered,
            },
            m.counters,
            "counters"
        );
        prop_assert_eq!(&sub.dead_removed, &m.removed_dl, "removed dead letters");
        let timers = m.timers();
        for t in m.interesting_times() {
            prop_assert_eq!(
                sub.has_due(t),
                timers.iter().any(|&timer| timer <= t),
                "has_due({}) at {}; pending {:?}",
                t,
                m.now,
                m.pending().collect::<Vec<_>>()
            );
        }
        Ok(())
    }

    /// Replays the journal, and a snapshot, into fresh subscriptions, and
    /// compares them with the live one. No event may be dying.
    fn check_recovery(&self) -> Check {
        prop_assert!(self.dying.is_empty());
        let times = self.m.interesting_times();
        let replayed = fresh_sub(&self.config, &self.journal);
        same_state(&self.sub, &replayed, "journal replay", &times)?;
        let snap = snapshot(&self.sub);
        let restored = fresh_sub(&self.config, &snap);
        same_state(&self.sub, &restored, "snapshot", &times)?;
        prop_assert_eq!(snapshot(&restored), snap, "a snapshot of a snapshot");
        Ok(())
    }

    /// Consumers that ack everything, a generous clock and redriven dead
    /// letters: every event ends acked exactly once.
    fn drain(&mut self) -> Check {
        for _ in 0..DRAIN_ROUNDS_MAX {
            while !self.m.dlq.is_empty() {
                self.redrive(0, false)?;
                self.check()?;
            }
            if self.m.all_acked() {
                break;
            }
            self.m.now += DRAIN_STEP_MS as i64;
            loop {
                let got = self.fetch(FETCH_MAX)?;
                self.check()?;
                let finished = !self.dying.is_empty();
                while !self.dying.is_empty() {
                    self.finish_dying(0)?;
                    self.check()?;
                }
                if got.is_empty() && !finished {
                    break;
                }
                for g in got {
                    prop_assert!(self.ack(g)?, "ack of fresh delivery {:?} refused", g);
                    self.check()?;
                }
            }
        }
        prop_assert!(
            self.m.all_acked(),
            "not every event acked after draining: {:?}",
            self.m.parts
        );
        for (p, part) in self.m.parts.iter().enumerate() {
            for (o, ev) in part.events.iter().enumerate() {
                prop_assert_eq!(ev.acks, 1, "acks of {}/{}", p, o);
            }
        }
        Ok(())
    }
}

/// 256 cases, or `PROPTEST_CASES`.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

fn run(setup: &Setup, actions: &[Action]) -> Check {
    let mut h = Harness::new(setup);
    h.check()?;
    for action in actions {
        h.step(action)?;
        h.check()?;
    }
    while !h.dying.is_empty() {
        h.finish_dying(0)?;
        h.check()?;
    }
    h.check_recovery()?;
    h.drain()?;
    h.check_recovery()
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Keep failures out of the source tree; a failure prints its case.
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases())
    })]

    #[test]
    fn sub_matches_model(
        setup in setup_strategy(),
        actions in prop::collection::vec(action_strategy(), 1..150),
    ) {
        run(&setup, &actions)?;
    }
}

// ---------------------------------------------------------------------------
// Regression cases, found by `sub_matches_model`.

/// One ordered subscription on one partition, driven by hand.
#[derive(Debug)]
struct Rig {
    sub: Sub,
    src: MemSource,
    now: i64,
}

impl Rig {
    fn ordered() -> Rig {
        let config = SubscriptionConfig {
            filter: TOPIC.to_string(),
            start: StartAt::Earliest,
            mode: DeliveryMode::Ordered,
            ack_wait_ms: 100,
            retry: RetryPolicy {
                max_deliveries: 3,
                backoff: Backoff::Fixed { delay_ms: 10 },
                cap_ms: None,
                jitter_pct: 0,
            },
            max_ack_pending: 10,
        };
        let cursor = Op::Cursor {
            sub: SUB_ID,
            tp: tp(0),
            next: 0,
        };
        Rig {
            sub: fresh_sub(&config, &[cursor]),
            src: MemSource {
                parts: vec![Vec::new()],
            },
            now: START_MS,
        }
    }

    fn publish(&mut self, key: &str) {
        let offset = self.src.parts[0].len() as u64;
        self.src.parts[0].push(StoredEvent {
            topic: TOPIC.to_string(),
            partition: Partition(0),
            offset: Offset(offset),
            timestamp_ms: self.now,
            event: Event::new("Tested", "").with_key(key),
        });
    }

    /// Fetches; returns the offsets delivered.
    fn fetch(&mut self) -> Vec<(u64, AckId)> {
        let (mut ops, mut dying) = (Vec::new(), Vec::new());
        let out = self
            .sub
            .fetch(self.now, 10, &self.src, &mut ops, &mut dying)
            .expect("fetch");
        assert!(dying.is_empty());
        out.into_iter()
            .map(|d| (d.ack_id.offset.0, d.ack_id))
            .collect()
    }

    /// Terminates a delivery and stores its dead letter; returns it.
    fn kill(&mut self, id: &AckId) -> DeadLetter {
        let d = self
            .sub
            .terminate(tp(0), id, self.now, "poison")
            .expect("terminate");
        self.sub.finish_dying(&d, &mut Vec::new());
        DeadLetter {
            id: 0,
            subscription: SUB_NAME.to_string(),
            event: self.src.event(0, d.offset).clone(),
            attempts: d.attempts,
            last_error: d.last_error,
            reason: d.reason,
            dead_at_ms: self.now,
            redrives: d.generation,
        }
    }

    fn redrive(&mut self, dl: &DeadLetter) {
        assert!(self.sub.redrive(tp(0), dl, self.now, &mut Vec::new()));
    }

    fn ack(&mut self, id: &AckId) {
        self.sub
            .ack(tp(0), id, self.now, &mut Vec::new())
            .expect("ack");
    }
}

/// Ordered mode: an event redriven into its subscription while a younger
/// event of its key is leased must wait until that one is settled (at most
/// one event per key in flight).
#[test]
fn ordered_redrive_waits_for_the_leased_event_of_its_key() {
    let mut rig = Rig::ordered();
    rig.publish("a");
    let first = rig.fetch();
    assert_eq!(first.iter().map(|d| d.0).collect::<Vec<_>>(), [0]);
    let dl = rig.kill(&first[0].1);
    rig.publish("a");
    let second = rig.fetch();
    assert_eq!(second.iter().map(|d| d.0).collect::<Vec<_>>(), [1]);
    rig.redrive(&dl);
    let during = rig.fetch();
    assert_eq!(
        during.iter().map(|d| d.0).collect::<Vec<_>>(),
        Vec::<u64>::new(),
        "offset 1 of key a is leased: the redriven offset 0 must wait"
    );
    rig.ack(&second[0].1);
    let after = rig.fetch();
    assert_eq!(after.iter().map(|d| d.0).collect::<Vec<_>>(), [0]);
}

/// Ordered mode: an event redriven into its subscription becomes the oldest
/// pending event of its key, so the younger one (read, never delivered)
/// must wait for it.
#[test]
fn ordered_redrive_goes_before_the_waiting_events_of_its_key() {
    let mut rig = Rig::ordered();
    rig.publish("a");
    rig.publish("a");
    let first = rig.fetch();
    assert_eq!(first.iter().map(|d| d.0).collect::<Vec<_>>(), [0]);
    let dl = rig.kill(&first[0].1);
    rig.redrive(&dl);
    let during = rig.fetch();
    assert_eq!(
        during.iter().map(|d| d.0).collect::<Vec<_>>(),
        [0],
        "one event of key a at a time, the oldest first"
    );
    rig.ack(&during[0].1);
    let after = rig.fetch();
    assert_eq!(after.iter().map(|d| d.0).collect::<Vec<_>>(), [1]);
}
