//! One subscription's delivery state machine, free of I/O and clocks.
//!
//! For each partition it reads, a subscription keeps a cursor (`next`: the
//! first offset not yet read) and the *pending* events below it: delivered
//! and leased, or waiting for a retry or for their key. Every offset below
//! `next` that is not pending is settled (acked or dead-lettered). Changes
//! are [`Op`]s: the broker computes them here under the subscription's
//! lock, applies them with [`Sub::apply`] and writes them to the journal;
//! recovery replays the same ops through the same `apply`.
//!
//! A *timer* is kept for every entry that may move on its own: a lease
//! (its deadline) and a retry (its due time). In ordered mode only the
//! oldest pending event of each key has a timer, which is what keeps one
//! event per key in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use eddy_bus::name::{Pattern, key_hash};
use eddy_bus::{
    AckId, BusError, DeadLetter, DeadReason, Delivery, DeliveryMode, Offset, Result, StoredEvent,
    SubscriptionConfig,
};

use crate::journal::{Op, SubId, Tp};
use crate::topic::READ_RESULT_BYTES_MAX;

/// A pending event of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Deliveries so far.
    pub(crate) attempts: u32,
    /// Times it was redriven from the dead-letter queue.
    pub(crate) generation: u32,
    /// Its key's hash, in ordered mode.
    pub(crate) key: Option<u64>,
    /// Its append time.
    pub(crate) ts_ms: i64,
    pub(crate) state: EntryState,
    /// The last failure, for its dead letter.
    pub(crate) last_error: Option<String>,
    /// Being moved to the dead-letter queue (in memory only: a restart
    /// finds it leased and expired, and moves it again).
    pub(crate) dying: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryState {
    /// Deliverable from `due_ms` (0: at once, or when its key frees up).
    Ready { due_ms: i64 },
    /// Delivered as delivery `seq`; the lease ends at `deadline_ms`.
    Leased { seq: u64, deadline_ms: i64 },
}

impl Entry {
    fn timer_ms(&self) -> i64 {
        match self.state {
            EntryState::Ready { due_ms } => due_ms,
            EntryState::Leased { deadline_ms, .. } => deadline_ms,
        }
    }
}

/// A subscription's view of one partition.
#[derive(Debug, Default)]
pub(crate) struct Part {
    /// First offset not yet read.
    pub(crate) next: u64,
    pub(crate) pending: BTreeMap<u64, Entry>,
    /// Ordered mode: the pending events of each key.
    keys: HashMap<u64, KeyQueue>,
}

/// Ordered mode: one key's pending events in a partition.
#[derive(Debug, Default)]
struct KeyQueue {
    offsets: BTreeSet<u64>,
    /// How many of them are leased (normally 0 or 1; a redrive of an old
    /// event while a newer one is in flight can make both pending).
    leased: u32,
}

fn is_leased(e: &Entry) -> bool {
    matches!(e.state, EntryState::Leased { .. })
}

impl Part {
    /// Whether the entry at `offset` may move on its own (has a timer): a
    /// lease always (it must expire); a ready event without a key (`key`
    /// is `None` in shared mode) always; a ready event with a key only if
    /// it is its key's oldest pending event and none of the key is leased.
    fn schedulable(&self, offset: u64, e: &Entry, key: Option<u64>) -> bool {
        if e.dying {
            return false;
        }
        if is_leased(e) {
            return true;
        }
        match key.and_then(|k| self.keys.get(&k)) {
            Some(q) => q.leased == 0 && q.offsets.first() == Some(&offset),
            None => true,
        }
    }
}

/// Counters since the broker opened.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SubCounters {
    pub(crate) delivered: u64,
    pub(crate) redelivered: u64,
    pub(crate) acked: u64,
    pub(crate) dead_lettered: u64,
}

/// An event on its way to the dead-letter queue.
#[derive(Debug, Clone)]
pub(crate) struct Dying {
    pub(crate) tp: Tp,
    pub(crate) offset: u64,
    pub(crate) attempts: u32,
    pub(crate) generation: u32,
    pub(crate) reason: DeadReason,
    pub(crate) last_error: Option<String>,
}

/// Where a subscription reads events from: the topic partitions.
pub(crate) trait Source {
    /// Up to `max` events of `tp` from `from` on; if retention deleted
    /// `from`, from the first event still held.
    fn read(&self, tp: Tp, from: u64, max: usize) -> Result<Vec<StoredEvent>>;
    /// The event at `offset`, if still held.
    fn get(&self, tp: Tp, offset: u64) -> Result<Option<StoredEvent>>;
    /// The offset after the last readable event of `tp`.
    fn end(&self, tp: Tp) -> u64;
}

/// How many recently dead-lettered events a subscription remembers, to
/// answer a late ack with `DeadLettered` instead of `AlreadyAcked`.
const RECENT_DEAD_MAX: usize = 4096;

/// Upper bound of the tuples in `timers` at one time.
const TP_MAX: Tp = Tp {
    topic: u32::MAX,
    partition: u32::MAX,
};

/// One subscription's state.
#[derive(Debug)]
pub(crate) struct Sub {
    pub(crate) id: SubId,
    pub(crate) name: String,
    pub(crate) config: SubscriptionConfig,
    pub(crate) pattern: Pattern,
    /// Boxed: a map node holds 11 slots, and most subscriptions read one
    /// partition.
    pub(crate) parts: BTreeMap<Tp, Box<Part>>,
    /// (time, partition, offset) of every entry with a timer.
    timers: BTreeSet<(i64, Tp, u64)>,
    pub(crate) next_seq: u64,
    /// Deliveries numbered below this were dropped by a seek.
    seek_seq: u64,
    pending_count: u64,
    /// Dead letters below this id left the queue.
    pub(crate) dead_floor: u64,
    /// Dead letters at or above the floor that left the queue.
    pub(crate) dead_removed: BTreeSet<u64>,
    pub(crate) counters: SubCounters,
    recent_dead: VecDeque<(Tp, u64)>,
    recent_dead_set: HashSet<(Tp, u64)>,
    rr: usize,
}

impl Sub {
    pub(crate) fn new(id: SubId, name: String, config: SubscriptionConfig) -> Result<Sub> {
        let pattern = Pattern::parse(&config.filter)?;
        Ok(Sub {
            id,
            name,
            config,
            pattern,
            parts: BTreeMap::new(),
            timers: BTreeSet::new(),
            next_seq: 1,
            seek_seq: 0,
            pending_count: 0,
            dead_floor: 0,
            dead_removed: BTreeSet::new(),
            counters: SubCounters::default(),
            recent_dead: VecDeque::new(),
            recent_dead_set: HashSet::new(),
            rr: 0,
        })
    }

    fn ordered(&self) -> bool {
        self.config.mode == DeliveryMode::Ordered
    }

    pub(crate) fn pending_count(&self) -> u64 {
        self.pending_count
    }

    /// Applies one op of this subscription (ops of others are ignored).
    pub(crate) fn apply(&mut self, op: &Op) {
        match op {
            Op::Cursor { sub, tp, next } if *sub == self.id => {
                self.parts.entry(*tp).or_default().next = *next;
            }
            Op::Put {
                sub,
                tp,
                offset,
                entry,
            } if *sub == self.id => self.put(*tp, *offset, entry.clone()),
            Op::Settle { sub, tp, offset } if *sub == self.id => self.settle(*tp, *offset),
            Op::ClearPending { sub } if *sub == self.id => {
                for part in self.parts.values_mut() {
                    part.pending.clear();
                    part.keys.clear();
                }
                self.timers.clear();
                self.pending_count = 0;
                self.seek_seq = self.next_seq;
            }
            Op::Seq { sub, next, seek } if *sub == self.id => {
                self.next_seq = *next;
                self.seek_seq = *seek;
            }
            Op::DeadLetterRemoved { sub, id } if *sub == self.id && *id >= self.dead_floor => {
                self.dead_removed.insert(*id);
            }
            Op::DeadLetterFloor { sub, floor } if *sub == self.id => {
                self.dead_floor = self.dead_floor.max(*floor);
                self.dead_removed = self.dead_removed.split_off(&self.dead_floor);
            }
            _ => {}
        }
    }

    fn put(&mut self, tp: Tp, offset: u64, entry: Entry) {
        let ordered = self.ordered();
        if let EntryState::Leased { seq, .. } = entry.state {
            self.next_seq = self.next_seq.max(seq + 1);
        }
        let key = entry.key.filter(|_| ordered);
        let part = self.parts.entry(tp).or_default();
        let head_before = key.and_then(|k| part.keys.get(&k)?.offsets.first().copied());
        let old = part.pending.insert(offset, entry.clone());
        match &old {
            Some(old) => {
                self.timers.remove(&(old.timer_ms(), tp, offset));
            }
            None => self.pending_count += 1,
        }
        if let Some(k) = key {
            let q = part.keys.entry(k).or_default();
            q.offsets.insert(offset);
            if old.as_ref().is_some_and(is_leased) {
                q.leased -= 1;
            }
            if is_leased(&entry) {
                q.leased += 1;
            }
        }
        if part.schedulable(offset, &entry, key) {
            self.timers.insert((entry.timer_ms(), tp, offset));
        }
        if let Some(k) = key {
            self.refresh_head(tp, k, head_before);
        }
    }

    fn settle(&mut self, tp: Tp, offset: u64) {
        let ordered = self.ordered();
        let Some(part) = self.parts.get_mut(&tp) else {
            return;
        };
        let Some(old) = part.pending.remove(&offset) else {
            return;
        };
        self.pending_count -= 1;
        self.timers.remove(&(old.timer_ms(), tp, offset));
        let Some(k) = old.key.filter(|_| ordered) else {
            return;
        };
        let Some(q) = part.keys.get_mut(&k) else {
            return;
        };
        let head_before = q.offsets.first().copied();
        q.offsets.remove(&offset);
        if is_leased(&old) {
            q.leased -= 1;
        }
        if q.offsets.is_empty() {
            part.keys.remove(&k);
        }
        self.refresh_head(tp, k, head_before);
    }

    /// After a key's queue changed: the ready event that was its head loses
    /// its timer, and the ready event that is its head now gets one if
    /// nothing of the key is leased.
    fn refresh_head(&mut self, tp: Tp, k: u64, head_before: Option<u64>) {
        let Some(part) = self.parts.get(&tp) else {
            return;
        };
        if let Some(h) = head_before
            && let Some(e) = part.pending.get(&h)
            && !is_leased(e)
        {
            self.timers.remove(&(e.timer_ms(), tp, h));
        }
        let head = part.keys.get(&k).and_then(|q| q.offsets.first().copied());
        if let Some(h) = head
            && let Some(e) = part.pending.get(&h)
            && !is_leased(e)
            && part.schedulable(h, e, Some(k))
        {
            self.timers.insert((e.timer_ms(), tp, h));
        }
    }

    /// Forgets the partitions of a deleted topic.
    pub(crate) fn drop_topic(&mut self, topic: u32) {
        let gone: Vec<Tp> = self
            .parts
            .keys()
            .filter(|tp| tp.topic == topic)
            .copied()
            .collect();
        for tp in gone {
            if let Some(part) = self.parts.remove(&tp) {
                self.pending_count -= part.pending.len() as u64;
                for (offset, e) in part.pending {
                    self.timers.remove(&(e.timer_ms(), tp, offset));
                }
            }
        }
    }

    fn jitter_seed(tp: Tp, offset: u64) -> u64 {
        (u64::from(tp.topic) << 40) ^ (u64::from(tp.partition) << 32) ^ offset
    }

    /// Emits (and applies) a `Put` of this subscription.
    fn emit_put(&mut self, ops: &mut Vec<Op>, tp: Tp, offset: u64, entry: Entry) {
        let op = Op::Put {
            sub: self.id,
            tp,
            offset,
            entry,
        };
        self.emit(ops, op);
    }

    /// Emits an op and applies it.
    fn emit(&mut self, ops: &mut Vec<Op>, op: Op) {
        self.apply(&op);
        ops.push(op);
    }

    /// Handles every lease that ran out by `now`: a failed attempt, retried
    /// after the backoff, or dead-lettered after the last one.
    pub(crate) fn expire(&mut self, now: i64, ops: &mut Vec<Op>, dying: &mut Vec<Dying>) {
        let expired: Vec<(Tp, u64)> = self
            .timers
            .range(..=(now, TP_MAX, u64::MAX))
            .filter_map(|&(_, tp, offset)| {
                let e = self.parts.get(&tp)?.pending.get(&offset)?;
                matches!(e.state, EntryState::Leased { .. }).then_some((tp, offset))
            })
            .collect();
        for (tp, offset) in expired {
            let e = &self.parts[&tp].pending[&offset];
            let EntryState::Leased { deadline_ms, .. } = e.state else {
                continue;
            };
            let error = format!("lease of {} ms expired", self.config.ack_wait_ms);
            if e.attempts >= self.config.retry.max_deliveries {
                let mut e = e.clone();
                e.last_error = Some(error);
                dying.push(self.start_dying(tp, offset, e, DeadReason::MaxDeliveries));
            } else {
                let delay = self
                    .config
                    .retry
                    .delay_ms(e.attempts, Self::jitter_seed(tp, offset));
                let entry = Entry {
                    state: EntryState::Ready {
                        due_ms: deadline_ms.saturating_add_unsigned(delay),
                    },
                    last_error: Some(error),
                    ..e.clone()
                };
                self.emit_put(ops, tp, offset, entry);
            }
        }
    }

    /// Marks an entry as on its way to the dead-letter queue: it has no
    /// timer and refuses settling until [`Sub::finish_dying`].
    fn start_dying(&mut self, tp: Tp, offset: u64, entry: Entry, reason: DeadReason) -> Dying {
        self.timers.remove(&(entry.timer_ms(), tp, offset));
        let d = Dying {
            tp,
            offset,
            attempts: entry.attempts,
            generation: entry.generation,
            reason,
            last_error: entry.last_error.clone(),
        };
        // Only the flag changes: the entry stays as journaled, so an abort
        // leaves memory equal to what a replay would rebuild (the new error
        // travels in the `Dying`, into the dead letter).
        if let Some(e) = self
            .parts
            .get_mut(&tp)
            .and_then(|p| p.pending.get_mut(&offset))
        {
            e.dying = true;
        }
        d
    }

    /// The dead letter is stored: the event is settled.
    pub(crate) fn finish_dying(&mut self, d: &Dying, ops: &mut Vec<Op>) {
        let still = self
            .parts
            .get(&d.tp)
            .and_then(|p| p.pending.get(&d.offset))
            .is_some_and(|e| e.dying);
        if still {
            self.emit(
                ops,
                Op::Settle {
                    sub: self.id,
                    tp: d.tp,
                    offset: d.offset,
                },
            );
            self.counters.dead_lettered += 1;
            self.remember_dead(d.tp, d.offset);
        }
    }

    /// Storing the dead letter failed: the event stays pending and expires
    /// (and is dead-lettered) again.
    pub(crate) fn abort_dying(&mut self, d: &Dying) {
        let ordered = self.ordered();
        if let Some(part) = self.parts.get_mut(&d.tp)
            && let Some(e) = part.pending.get_mut(&d.offset)
        {
            e.dying = false;
            let e = e.clone();
            if part.schedulable(d.offset, &e, e.key.filter(|_| ordered)) {
                self.timers.insert((e.timer_ms(), d.tp, d.offset));
            }
        }
    }

    fn remember_dead(&mut self, tp: Tp, offset: u64) {
        if self.recent_dead_set.insert((tp, offset)) {
            self.recent_dead.push_back((tp, offset));
            if self.recent_dead.len() > RECENT_DEAD_MAX
                && let Some(old) = self.recent_dead.pop_front()
            {
                self.recent_dead_set.remove(&old);
            }
        }
    }

    /// Hands out up to `max` deliveries at `now`: due retries first, then
    /// new events, within `max_ack_pending` and, in ordered mode, one per
    /// key. Expired leases are handled first (see [`Sub::expire`]).
    pub(crate) fn fetch(
        &mut self,
        now: i64,
        max: usize,
        source: &dyn Source,
        ops: &mut Vec<Op>,
        dying: &mut Vec<Dying>,
    ) -> Result<Vec<Delivery>> {
        self.expire(now, ops, dying);
        let mut out = Vec::new();
        let ready: Vec<(Tp, u64)> = self
            .timers
            .range(..=(now, TP_MAX, u64::MAX))
            .filter_map(|&(_, tp, offset)| {
                let e = self.parts.get(&tp)?.pending.get(&offset)?;
                matches!(e.state, EntryState::Ready { .. }).then_some((tp, offset))
            })
            .take(max)
            .collect();
        for (tp, offset) in ready {
            match source.get(tp, offset)? {
                Some(event) => out.push(self.lease(now, tp, offset, event, ops)),
                None => {
                    // Retention deleted it before it could be redelivered.
                    tracing::warn!(
                        subscription = %self.name, topic = tp.topic, partition = tp.partition,
                        offset, "a pending event was deleted by retention; skipping it"
                    );
                    self.emit(
                        ops,
                        Op::Settle {
                            sub: self.id,
                            tp,
                            offset,
                        },
                    );
                }
            }
        }
        if out.len() < max {
            self.read_new(now, max, source, ops, &mut out)?;
        }
        Ok(out)
    }

    /// Leases the pending entry at `offset` (a retry, or a new event just
    /// put) as a new delivery.
    fn lease(
        &mut self,
        now: i64,
        tp: Tp,
        offset: u64,
        event: StoredEvent,
        ops: &mut Vec<Op>,
    ) -> Delivery {
        let e = self.parts[&tp].pending[&offset].clone();
        self.lease_entry(now, tp, offset, e, event, ops)
    }

    /// Leases `e` (the entry of `offset`, pending or new) as a new
    /// delivery: one `Put`.
    fn lease_entry(
        &mut self,
        now: i64,
        tp: Tp,
        offset: u64,
        e: Entry,
        event: StoredEvent,
        ops: &mut Vec<Op>,
    ) -> Delivery {
        let seq = self.next_seq;
        let deadline_ms = now.saturating_add_unsigned(self.config.ack_wait_ms);
        let attempt = e.attempts + 1;
        self.emit_put(
            ops,
            tp,
            offset,
            Entry {
                attempts: attempt,
                state: EntryState::Leased { seq, deadline_ms },
                ..e
            },
        );
        self.counters.delivered += 1;
        if attempt > 1 {
            self.counters.redelivered += 1;
        }
        Delivery {
            ack_id: AckId {
                topic: event.topic.clone(),
                partition: event.partition,
                offset: Offset(offset),
                seq,
            },
            attempt,
            lease_deadline_ms: deadline_ms,
            event,
        }
    }

    /// Reads new events from the partitions, round-robin, into `out`.
    fn read_new(
        &mut self,
        now: i64,
        max: usize,
        source: &dyn Source,
        ops: &mut Vec<Op>,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        let tps: Vec<Tp> = self.parts.keys().copied().collect();
        if tps.is_empty() {
            return Ok(());
        }
        let start = self.rr % tps.len();
        self.rr = self.rr.wrapping_add(1);
        let ordered = self.ordered();
        let cap = u64::from(self.config.max_ack_pending);
        // A fetch is bounded in bytes as a read is: past the bound it
        // returns what it has; the rest waits for the next fetch.
        let mut bytes: usize = out.iter().map(|d| d.event.event.data.len()).sum();
        for i in 0..tps.len() {
            let tp = tps[(start + i) % tps.len()];
            loop {
                if out.len() >= max || self.pending_count >= cap || bytes >= READ_RESULT_BYTES_MAX {
                    return Ok(());
                }
                let next = self.parts[&tp].next;
                if next >= source.end(tp) {
                    break;
                }
                let budget = (cap - self.pending_count).min((max - out.len()) as u64) as usize;
                let events = source.read(tp, next, budget.max(1))?;
                let Some(last) = events.last() else { break };
                let new_next = last.offset.0 + 1;
                for event in events {
                    let offset = event.offset.0;
                    if self.parts[&tp].pending.contains_key(&offset) {
                        continue; // redriven into the subscription already
                    }
                    let key = event
                        .event
                        .key
                        .as_ref()
                        .filter(|_| ordered)
                        .map(|k| key_hash(k.as_bytes()));
                    let part = &self.parts[&tp];
                    let blocked = key
                        .and_then(|k| part.keys.get(&k))
                        .is_some_and(|q| !q.offsets.is_empty());
                    let entry = Entry {
                        attempts: 0,
                        generation: 0,
                        key,
                        ts_ms: event.timestamp_ms,
                        state: EntryState::Ready { due_ms: 0 },
                        last_error: None,
                        dying: false,
                    };
                    if blocked {
                        self.emit_put(ops, tp, offset, entry);
                    } else {
                        bytes += event.event.data.len();
                        out.push(self.lease_entry(now, tp, offset, entry, event, ops));
                    }
                }
                self.emit(
                    ops,
                    Op::Cursor {
                        sub: self.id,
                        tp,
                        next: new_next,
                    },
                );
            }
        }
        Ok(())
    }

    /// Finds the pending entry a delivery id names, or says why not.
    fn check(&self, tp: Tp, id: &AckId, now: i64) -> Result<&Entry> {
        let offset = id.offset.0;
        let part = self
            .parts
            .get(&tp)
            .ok_or_else(|| BusError::UnknownDelivery(id.to_string()))?;
        let Some(e) = part.pending.get(&offset) else {
            if offset < part.next && id.seq < self.next_seq && id.seq >= self.seek_seq {
                return Err(if self.recent_dead_set.contains(&(tp, offset)) {
                    BusError::DeadLettered(id.to_string())
                } else {
                    BusError::AlreadyAcked(id.to_string())
                });
            }
            return Err(BusError::UnknownDelivery(id.to_string()));
        };
        if e.dying {
            return Err(BusError::DeadLettered(id.to_string()));
        }
        match e.state {
            EntryState::Leased { seq, deadline_ms } if seq == id.seq => {
                if now >= deadline_ms {
                    Err(BusError::LeaseExpired(id.to_string()))
                } else {
                    Ok(e)
                }
            }
            _ if id.seq < self.next_seq && e.attempts > 0 => {
                Err(BusError::LeaseExpired(id.to_string()))
            }
            _ => Err(BusError::UnknownDelivery(id.to_string())),
        }
    }

    /// Acks a delivery.
    pub(crate) fn ack(&mut self, tp: Tp, id: &AckId, now: i64, ops: &mut Vec<Op>) -> Result<()> {
        self.check(tp, id, now)?;
        self.emit(
            ops,
            Op::Settle {
                sub: self.id,
                tp,
                offset: id.offset.0,
            },
        );
        self.counters.acked += 1;
        Ok(())
    }

    /// Fails a delivery: a retry after `delay_ms` (or the backoff), or the
    /// dead-letter queue after the last attempt.
    pub(crate) fn nack(
        &mut self,
        tp: Tp,
        id: &AckId,
        now: i64,
        delay_ms: Option<u64>,
        error: Option<String>,
        ops: &mut Vec<Op>,
    ) -> Result<Option<Dying>> {
        let e = self.check(tp, id, now)?.clone();
        let offset = id.offset.0;
        let e = Entry {
            last_error: error.or(e.last_error.clone()),
            ..e
        };
        if e.attempts >= self.config.retry.max_deliveries {
            return Ok(Some(self.start_dying(
                tp,
                offset,
                e,
                DeadReason::MaxDeliveries,
            )));
        }
        let delay = delay_ms.unwrap_or_else(|| {
            self.config
                .retry
                .delay_ms(e.attempts, Self::jitter_seed(tp, offset))
        });
        let entry = Entry {
            state: EntryState::Ready {
                due_ms: now.saturating_add_unsigned(delay),
            },
            ..e
        };
        self.emit_put(ops, tp, offset, entry);
        Ok(None)
    }

    /// Extends a lease; returns the new deadline.
    pub(crate) fn extend(
        &mut self,
        tp: Tp,
        id: &AckId,
        now: i64,
        ops: &mut Vec<Op>,
    ) -> Result<i64> {
        let e = self.check(tp, id, now)?.clone();
        let deadline_ms = now.saturating_add_unsigned(self.config.ack_wait_ms);
        let entry = Entry {
            state: EntryState::Leased {
                seq: id.seq,
                deadline_ms,
            },
            ..e
        };
        self.emit_put(ops, tp, id.offset.0, entry);
        Ok(deadline_ms)
    }

    /// Sends a delivery straight to the dead-letter queue.
    pub(crate) fn terminate(
        &mut self,
        tp: Tp,
        id: &AckId,
        now: i64,
        reason: &str,
    ) -> Result<Dying> {
        let e = self.check(tp, id, now)?.clone();
        let e = Entry {
            last_error: Some(reason.to_string()),
            ..e
        };
        Ok(self.start_dying(tp, id.offset.0, e, DeadReason::Terminated))
    }

    /// Puts a redriven dead letter back as a fresh pending event. Returns
    /// `false` if it is pending already.
    pub(crate) fn redrive(&mut self, tp: Tp, dl: &DeadLetter, now: i64, ops: &mut Vec<Op>) -> bool {
        let offset = dl.event.offset.0;
        if self
            .parts
            .get(&tp)
            .is_some_and(|p| p.pending.contains_key(&offset))
        {
            return false;
        }
        let key = dl
            .event
            .event
            .key
            .as_deref()
            .filter(|_| self.ordered())
            .map(|k| key_hash(k.as_bytes()));
        if self.recent_dead_set.remove(&(tp, offset)) {
            self.recent_dead.retain(|x| *x != (tp, offset));
        }
        self.emit_put(
            ops,
            tp,
            offset,
            Entry {
                attempts: 0,
                generation: dl.redrives + 1,
                key,
                ts_ms: dl.event.timestamp_ms,
                state: EntryState::Ready { due_ms: now },
                last_error: None,
                dying: false,
            },
        );
        true
    }

    /// The ops that rebuild this subscription's consumer state (for a
    /// snapshot; the `SubCreated` op comes first, from the caller).
    pub(crate) fn snapshot_ops(&self, ops: &mut Vec<Op>) {
        ops.push(Op::Seq {
            sub: self.id,
            next: self.next_seq,
            seek: self.seek_seq,
        });
        for (&tp, part) in &self.parts {
            ops.push(Op::Cursor {
                sub: self.id,
                tp,
                next: part.next,
            });
            for (&offset, e) in &part.pending {
                ops.push(Op::Put {
                    sub: self.id,
                    tp,
                    offset,
                    entry: Entry {
                        dying: false,
                        ..e.clone()
                    },
                });
            }
        }
        ops.push(Op::DeadLetterFloor {
            sub: self.id,
            floor: self.dead_floor,
        });
        for &id in &self.dead_removed {
            ops.push(Op::DeadLetterRemoved { sub: self.id, id });
        }
    }

    /// (leased, waiting, oldest append time) over pending events.
    pub(crate) fn pending_summary(&self) -> (u64, u64, Option<i64>) {
        let mut leased = 0;
        let mut oldest: Option<i64> = None;
        for part in self.parts.values() {
            for e in part.pending.values() {
                if matches!(e.state, EntryState::Leased { .. }) {
                    leased += 1;
                }
                oldest = Some(oldest.map_or(e.ts_ms, |o| o.min(e.ts_ms)));
            }
        }
        (leased, self.pending_count - leased, oldest)
    }

    /// Whether any timer is due at `now` (a retry to deliver or a lease to
    /// expire).
    pub(crate) fn has_due(&self, now: i64) -> bool {
        self.timers.first().is_some_and(|&(t, _, _)| t <= now)
    }

    /// When the earliest timer after `after` falls due, if any. (Retries
    /// due at or before `after` keep their timers until delivered.)
    pub(crate) fn next_timer_after(&self, after: i64) -> Option<i64> {
        use std::ops::Bound;
        self.timers
            .range((Bound::Excluded((after, TP_MAX, u64::MAX)), Bound::Unbounded))
            .next()
            .map(|&(t, _, _)| t)
    }
}
