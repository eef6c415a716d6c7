//! Handing out and settling deliveries: the broker side of fetch, ack,
//! nack, extend and terminate, and subscription statistics.
//!
//! Each call locks one subscription, lets its state machine (`sub.rs`)
//! decide, writes the resulting ops to the journal under the lock, and
//! waits for the journal's group commit outside it. Deliveries and lease
//! extensions are not waited for: losing them in a crash only makes an
//! event come back sooner, with a lower attempt count.

use std::sync::Arc;

use eddy_bus::{AckId, BusError, Delivery, FETCH_MAX, NackOptions, Result, SubscriptionStats};

use crate::broker::{Broker, Catalog, SubCell, TopicSource};
use crate::journal::{Tp, Written};
use crate::sub::Source;

/// Longest error text kept with a failed event.
const ERROR_BYTES_MAX: usize = 4096;

fn clip(mut s: String) -> String {
    if s.len() > ERROR_BYTES_MAX {
        let mut cut = ERROR_BYTES_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl Broker {
    /// The subscription and the partition an ack id names.
    fn locate(&self, sub: &str, id: &AckId) -> Result<(Arc<SubCell>, Tp)> {
        let cat = self.catalog_read()?;
        let cell = Arc::clone(cat.sub(sub)?);
        let tp = Self::tp_of(&cat, id)?;
        Ok((cell, tp))
    }

    /// The partition an ack id names, if its topic exists.
    fn tp_of(cat: &Catalog, id: &AckId) -> Result<Tp> {
        let topic = cat
            .topics
            .get(&id.topic)
            .ok_or_else(|| BusError::UnknownDelivery(id.to_string()))?;
        Ok(Tp {
            topic: topic.id,
            partition: id.partition.0,
        })
    }

    /// One fetch attempt, without waiting and without dead-lettering:
    /// returns the deliveries and the events whose last lease ran out, for
    /// [`Broker::dead_letter`] (which may wait for fsyncs). It does no
    /// fsync itself, so it may run on an async task.
    pub(crate) fn fetch_now(&self, sub: &str, max: u32) -> Result<(Vec<Delivery>, Dying)> {
        if max == 0 || max > FETCH_MAX {
            return Err(BusError::InvalidArgument {
                what: "max",
                reason: format!("a fetch returns 1..={FETCH_MAX} deliveries, not {max}"),
            });
        }
        let cat = self.catalog_read()?;
        let cell = Arc::clone(cat.sub(sub)?);
        let now = self.now_ms();
        let mut ops = Vec::new();
        let mut dying = Vec::new();
        let result = {
            let mut st = cell.lock();
            let r = st.fetch(
                now,
                max as usize,
                &TopicSource(&cat.topics_by_id),
                &mut ops,
                &mut dying,
            );
            // What was decided is applied in memory: write it even if the
            // fetch then failed.
            self.inner.journal.write(&ops)?;
            r
        };
        Ok((result?, (cell, dying)))
    }

    /// Acks on the calling task: the journal write runs here, the wait for
    /// its fsync is a group commit that holds no thread.
    pub(crate) async fn ack_all_async(&self, sub: &str, ids: &[AckId]) -> Result<Vec<Result<()>>> {
        let (written, results, acked) = self.ack_all_write(sub, ids)?;
        self.inner.journal.durable(written).await?;
        if acked {
            self.notify();
        }
        Ok(results)
    }

    /// Settles acks and writes them to the journal, without waiting for
    /// its fsync. Also says whether anything was settled.
    fn ack_all_write(&self, sub: &str, ids: &[AckId]) -> Result<(Written, Vec<Result<()>>, bool)> {
        let cat = self.catalog_read()?;
        let cell = Arc::clone(cat.sub(sub)?);
        let now = self.now_ms();
        let mut ops = Vec::new();
        let mut st = cell.lock();
        let results = ids
            .iter()
            .map(|id| {
                let tp = Self::tp_of(&cat, id)?;
                st.ack(tp, id, now, &mut ops)
            })
            .collect::<Vec<_>>();
        let written = self.inner.journal.write(&ops)?;
        Ok((written, results, !ops.is_empty()))
    }

    pub(crate) fn nack_sync(&self, sub: &str, id: &AckId, options: NackOptions) -> Result<()> {
        let (cell, tp) = self.locate(sub, id)?;
        let now = self.now_ms();
        let mut ops = Vec::new();
        let (w, dying, next_timer) = {
            let mut st = cell.lock();
            let dying = st.nack(
                tp,
                id,
                now,
                options.delay_ms,
                options.error.map(clip),
                &mut ops,
            )?;
            (
                self.inner.journal.write(&ops)?,
                dying,
                st.next_timer_after(now),
            )
        };
        if let Some(due) = next_timer {
            self.wake_timer_for(due);
        }
        self.inner.journal.wait(w)?;
        if let Some(d) = dying {
            self.dead_letter(&cell, vec![d])?;
        }
        self.notify();
        Ok(())
    }

    pub(crate) fn extend_sync(&self, sub: &str, id: &AckId) -> Result<i64> {
        let (cell, tp) = self.locate(sub, id)?;
        let now = self.now_ms();
        let mut ops = Vec::new();
        let mut st = cell.lock();
        let deadline = st.extend(tp, id, now, &mut ops)?;
        self.inner.journal.write(&ops)?;
        Ok(deadline)
    }

    pub(crate) fn terminate_sync(&self, sub: &str, id: &AckId, reason: &str) -> Result<()> {
        let (cell, tp) = self.locate(sub, id)?;
        let now = self.now_ms();
        let d = cell
            .lock()
            .terminate(tp, id, now, &clip(reason.to_string()))?;
        self.dead_letter(&cell, vec![d])?;
        self.notify();
        Ok(())
    }

    pub(crate) fn subscription_stats_sync(&self, name: &str) -> Result<SubscriptionStats> {
        let cat = self.catalog_read()?;
        let cell = cat.sub(name)?;
        let now = self.now_ms();
        let st = cell.lock();
        let (in_flight, waiting, oldest) = st.pending_summary();
        let source = TopicSource(&cat.topics_by_id);
        let unread: u64 = st
            .parts
            .iter()
            .map(|(&tp, part)| source.end(tp).saturating_sub(part.next))
            .sum();
        let dead_letters = cat.topics.get(&cell.dead_topic).map_or(0, |t| {
            let next = t.logs[0].next_offset().0;
            next.saturating_sub(st.dead_floor)
                .saturating_sub(st.dead_removed.len() as u64)
        });
        Ok(SubscriptionStats {
            name: cell.name.clone(),
            delivered: st.counters.delivered,
            redelivered: st.counters.redelivered,
            acked: st.counters.acked,
            dead_lettered: st.counters.dead_lettered,
            lag: unread + st.pending_count(),
            in_flight,
            waiting,
            oldest_unacked_age_ms: oldest.map(|ts| now.saturating_sub(ts).max(0) as u64),
            dead_letters,
        })
    }
}

/// A subscription and the events of it to dead-letter.
pub(crate) type Dying = (Arc<SubCell>, Vec<crate::sub::Dying>);
