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

use crate::broker::{Broker, Catalog, SubCell, TopicSource, TopicsById};
use crate::journal::Tp;

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
    fn sub_and_topics(&self, name: &str) -> Result<(Arc<SubCell>, TopicsById)> {
        let cat = self.catalog_read()?;
        Ok((Arc::clone(cat.sub(name)?), Arc::clone(&cat.topics_by_id)))
    }

    /// The subscription, the topics, and the partition an ack id names.
    fn locate(&self, sub: &str, id: &AckId) -> Result<(Arc<SubCell>, TopicsById, Tp)> {
        let cat = self.catalog_read()?;
        let cell = Arc::clone(cat.sub(sub)?);
        let tp = Self::tp_of(&cat, id)?;
        Ok((cell, Arc::clone(&cat.topics_by_id), tp))
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

    /// One fetch attempt, without waiting.
    pub(crate) fn fetch_sync(&self, sub: &str, max: u32) -> Result<Vec<Delivery>> {
        if max == 0 || max > FETCH_MAX {
            return Err(BusError::InvalidArgument {
                what: "max",
                reason: format!("a fetch returns 1..={FETCH_MAX} deliveries, not {max}"),
            });
        }
        let (cell, topics) = self.sub_and_topics(sub)?;
        let source = TopicSource(Arc::clone(&topics));
        let now = self.now_ms();
        let mut ops = Vec::new();
        let mut dying = Vec::new();
        let result = {
            let mut st = cell.lock();
            let r = st.fetch(now, max as usize, &source, &mut ops, &mut dying);
            // What was decided is applied in memory: write it even if the
            // fetch then failed.
            self.inner.journal.write(&ops)?;
            r
        };
        self.dead_letter(&cell, &topics, dying)?;
        result
    }

    pub(crate) fn ack_all_sync(&self, sub: &str, ids: &[AckId]) -> Result<Vec<Result<()>>> {
        let cat = self.catalog_read()?;
        let cell = Arc::clone(cat.sub(sub)?);
        let now = self.now_ms();
        let mut ops = Vec::new();
        let w = {
            let mut st = cell.lock();
            let results = ids
                .iter()
                .map(|id| {
                    let tp = Self::tp_of(&cat, id)?;
                    st.ack(tp, id, now, &mut ops)
                })
                .collect::<Vec<_>>();
            (self.inner.journal.write(&ops)?, results)
        };
        drop(cat);
        self.inner.journal.wait(w.0)?;
        if !ops.is_empty() {
            self.notify();
        }
        Ok(w.1)
    }

    pub(crate) fn nack_sync(&self, sub: &str, id: &AckId, options: NackOptions) -> Result<()> {
        let (cell, topics, tp) = self.locate(sub, id)?;
        let now = self.now_ms();
        let mut ops = Vec::new();
        let (w, dying) = {
            let mut st = cell.lock();
            let dying = st.nack(
                tp,
                id,
                now,
                options.delay_ms,
                options.error.map(clip),
                &mut ops,
            )?;
            (self.inner.journal.write(&ops)?, dying)
        };
        self.inner.journal.wait(w)?;
        if let Some(d) = dying {
            self.dead_letter(&cell, &topics, vec![d])?;
        }
        self.notify();
        Ok(())
    }

    pub(crate) fn extend_sync(&self, sub: &str, id: &AckId) -> Result<i64> {
        let (cell, _, tp) = self.locate(sub, id)?;
        let now = self.now_ms();
        let mut ops = Vec::new();
        let mut st = cell.lock();
        let deadline = st.extend(tp, id, now, &mut ops)?;
        self.inner.journal.write(&ops)?;
        Ok(deadline)
    }

    pub(crate) fn terminate_sync(&self, sub: &str, id: &AckId, reason: &str) -> Result<()> {
        let (cell, topics, tp) = self.locate(sub, id)?;
        let now = self.now_ms();
        let d = cell
            .lock()
            .terminate(tp, id, now, &clip(reason.to_string()))?;
        self.dead_letter(&cell, &topics, vec![d])?;
        self.notify();
        Ok(())
    }

    pub(crate) fn subscription_stats_sync(&self, name: &str) -> Result<SubscriptionStats> {
        let (cell, topics) = self.sub_and_topics(name)?;
        let now = self.now_ms();
        let dead_topic = self.catalog_read()?.topics.get(&cell.dead_topic).cloned();
        let st = cell.lock();
        let (in_flight, waiting, oldest) = st.pending_summary();
        let unread: u64 = st
            .parts
            .iter()
            .map(|(tp, part)| {
                let end = topics
                    .get(&tp.topic)
                    .and_then(|t| t.logs.get(tp.partition as usize))
                    .map_or(0, |l| l.next_offset().0);
                end.saturating_sub(part.next)
            })
            .sum();
        let dead_letters = dead_topic.map_or(0, |t| {
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
