//! Dead letters: moving an event to its subscription's dead-letter topic
//! (`$dlq.<subscription>`), raising the alert, and the operator's list,
//! inspect, redrive and purge.
//!
//! A dead letter is the original event stored in the dead-letter topic
//! with the broker's metadata as `eddy:` headers (original topic,
//! partition, offset, append time, attempts, reason, last error, time of
//! death). Its id is its offset there. Leaving the queue (redrive, purge)
//! is consumer state in the journal; the dead-letter topic itself is
//! append-only.

use std::sync::Arc;

use eddy_bus::name::ALERTS_TOPIC;
use eddy_bus::{
    BusError, DeadLetter, DeadLetterSelection, DeadReason, Event, Offset, Partition, RedriveTarget,
    Result, StoredEvent,
};

use crate::broker::{Broker, SubCell};
use crate::codec::META_PREFIX;
use crate::journal::{Op, Tp};
use crate::sub::{Dying, Sub};
use crate::topic::Topic;

const M_SUB: &str = "eddy:subscription";
const M_TOPIC: &str = "eddy:topic";
const M_PARTITION: &str = "eddy:partition";
const M_OFFSET: &str = "eddy:offset";
const M_TS: &str = "eddy:timestamp";
const M_ATTEMPTS: &str = "eddy:attempts";
const M_REASON: &str = "eddy:reason";
const M_ERROR: &str = "eddy:error";
const M_DEAD_AT: &str = "eddy:dead_at";
const M_GENERATION: &str = "eddy:generation";

/// The event type of a dead-letter alert on `$sys.alerts`.
pub const DEAD_LETTER_ALERT_TYPE: &str = "eddy.deadlettered";

/// Bytes of events one redrive-to-topic append carries at most (the log's
/// `batch_bytes_max` is 16 MiB).
const REDRIVE_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Most dead letters one list returns.
const LIST_MAX: u32 = 10_000;

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Broker {
    /// Moves dying events to the dead-letter topic, settles them, and
    /// raises an alert for each. Returns once the settling is durable.
    pub(crate) fn dead_letter(&self, cell: &SubCell, dying: Vec<Dying>) -> Result<()> {
        if dying.is_empty() {
            return Ok(());
        }
        let dead_topic = self.own_topic(&cell.dead_topic);
        let alerts = self.catalog_read()?.topics.get(ALERTS_TOPIC).cloned();
        for d in dying {
            let result = match &dead_topic {
                Ok(t) => self.dead_letter_one(cell, t, alerts.as_ref(), &d),
                Err(e) => Err(e.clone()),
            };
            if let Err(e) = result {
                cell.lock().abort_dying(&d);
                return Err(e);
            }
        }
        Ok(())
    }

    fn dead_letter_one(
        &self,
        cell: &SubCell,
        dead_topic: &Arc<Topic>,
        alerts: Option<&Arc<Topic>>,
        d: &Dying,
    ) -> Result<()> {
        let topic = self.catalog_read()?.topics_by_id.get(&d.tp.topic).cloned();
        let original = match topic {
            Some(t) => t.get(d.tp.partition, d.offset)?.map(|(e, _)| e),
            None => None,
        };
        let now = self.now_ms();
        let mut dead_id = None;
        if let Some(orig) = &original {
            let mut event = orig.event.clone();
            let meta = [
                (M_SUB, cell.name.clone()),
                (M_TOPIC, orig.topic.clone()),
                (M_PARTITION, orig.partition.0.to_string()),
                (M_OFFSET, orig.offset.0.to_string()),
                (M_TS, orig.timestamp_ms.to_string()),
                (M_ATTEMPTS, d.attempts.to_string()),
                (M_REASON, d.reason.as_str().to_string()),
                (M_DEAD_AT, now.to_string()),
                (M_GENERATION, d.generation.to_string()),
            ];
            event
                .headers
                .extend(meta.into_iter().map(|(k, v)| (k.to_string(), v)));
            if let Some(err) = &d.last_error {
                event.headers.push((M_ERROR.to_string(), err.clone()));
            }
            let published = self.publish_internal(dead_topic, &[event], false)?;
            dead_id = published.first().map(|p| p.offset.0);
        } else {
            tracing::warn!(
                subscription = %cell.name, offset = d.offset,
                "an event to dead-letter was deleted by retention; dropping it"
            );
        }
        let mut ops = Vec::new();
        let w = {
            let mut st = cell.lock();
            st.finish_dying(d, &mut ops);
            self.inner.journal.write(&ops)?
        };
        self.inner.journal.wait(w)?;
        let Some(orig) = original else { return Ok(()) };
        tracing::warn!(
            subscription = %cell.name, topic = %orig.topic, partition = orig.partition.0,
            offset = orig.offset.0, event_id = %orig.event.id, attempts = d.attempts,
            reason = d.reason.as_str(), error = d.last_error.as_deref().unwrap_or(""),
            "event dead-lettered"
        );
        if let Some(alerts) = alerts {
            let data = format!(
                "{{\"subscription\":{},\"topic\":{},\"partition\":{},\"offset\":{},\
                 \"event_id\":{},\"event_type\":{},\"attempts\":{},\"reason\":{},\
                 \"error\":{},\"dead_letter_id\":{}}}",
                json_str(&cell.name),
                json_str(&orig.topic),
                orig.partition.0,
                orig.offset.0,
                json_str(&orig.event.id),
                json_str(&orig.event.ty),
                d.attempts,
                json_str(d.reason.as_str()),
                d.last_error.as_deref().map_or("null".to_string(), json_str),
                dead_id.map_or("null".to_string(), |i| i.to_string()),
            );
            let alert = Event {
                id: uuid::Uuid::now_v7().to_string(),
                source: "eddy".into(),
                ty: DEAD_LETTER_ALERT_TYPE.into(),
                subject: Some(cell.name.clone()),
                data_content_type: Some("application/json".into()),
                data: data.into(),
                key: Some(cell.name.clone()),
                correlation_id: orig.event.correlation_id.clone(),
                causation_id: Some(orig.event.id.clone()),
                ..Event::default()
            };
            self.publish_internal(alerts, &[alert], false)?;
        }
        Ok(())
    }

    /// The subscription and its dead-letter topic (`None` before the
    /// first dead letter).
    fn dead_topic_of(&self, sub: &str) -> Result<(Arc<SubCell>, Option<Arc<Topic>>)> {
        let cat = self.catalog_read()?;
        let cell = Arc::clone(cat.sub(sub)?);
        let topic = cat.topics.get(&cell.dead_topic).cloned();
        Ok((cell, topic))
    }

    pub(crate) fn dead_letters_sync(
        &self,
        sub: &str,
        from: u64,
        max: u32,
    ) -> Result<Vec<DeadLetter>> {
        if max == 0 || max > LIST_MAX {
            return Err(BusError::InvalidArgument {
                what: "max",
                reason: format!("a list returns 1..={LIST_MAX} dead letters, not {max}"),
            });
        }
        let (cell, topic) = self.dead_topic_of(sub)?;
        let Some(topic) = topic else {
            return Ok(Vec::new());
        };
        let (floor, removed) = {
            let st = cell.lock();
            (st.dead_floor, st.dead_removed.clone())
        };
        let mut at = from.max(floor);
        let mut out = Vec::new();
        while out.len() < max as usize {
            let batch = topic.read(0, at, (max as usize - out.len()).max(64))?;
            let Some(last) = batch.last() else { break };
            at = last.offset.0 + 1;
            for e in batch {
                if e.offset.0 < floor || removed.contains(&e.offset.0) {
                    continue;
                }
                if out.len() < max as usize {
                    let (_, meta) = topic
                        .get(0, e.offset.0)?
                        .ok_or(BusError::DeadLetterNotFound(e.offset.0))?;
                    out.push(to_dead_letter(&cell.name, e, &meta)?);
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn dead_letter_sync(&self, sub: &str, id: u64) -> Result<DeadLetter> {
        let (cell, topic) = self.dead_topic_of(sub)?;
        let topic = topic.ok_or(BusError::DeadLetterNotFound(id))?;
        let gone = {
            let st = cell.lock();
            id < st.dead_floor || st.dead_removed.contains(&id)
        };
        if gone {
            return Err(BusError::DeadLetterNotFound(id));
        }
        let (e, meta) = topic.get(0, id)?.ok_or(BusError::DeadLetterNotFound(id))?;
        to_dead_letter(&cell.name, e, &meta)
    }

    /// The dead letters a selection names; every id must be in the queue.
    fn select(&self, sub: &str, selection: &DeadLetterSelection) -> Result<Vec<DeadLetter>> {
        match selection {
            DeadLetterSelection::Ids(ids) => ids
                .iter()
                .map(|&id| self.dead_letter_sync(sub, id))
                .collect(),
            DeadLetterSelection::All => {
                let mut out = Vec::new();
                let mut from = 0;
                loop {
                    let page = self.dead_letters_sync(sub, from, LIST_MAX)?;
                    let Some(last) = page.last() else { break };
                    from = last.id + 1;
                    out.extend(page);
                }
                Ok(out)
            }
        }
    }

    pub(crate) fn redrive_sync(
        &self,
        sub: &str,
        selection: DeadLetterSelection,
        target: RedriveTarget,
    ) -> Result<u64> {
        let letters = self.select(sub, &selection)?;
        let cat = self.catalog_read()?;
        let cell = Arc::clone(cat.sub(sub)?);
        let now = self.now_ms();
        match target {
            RedriveTarget::Subscription => {
                // Check every one before changing anything.
                let mut places = Vec::with_capacity(letters.len());
                for dl in &letters {
                    let topic = cat
                        .topics
                        .get(&dl.event.topic)
                        .filter(|t| {
                            t.logs
                                .get(dl.event.partition.0 as usize)
                                .is_some_and(|l| dl.event.offset.0 >= l.first_offset().0)
                        })
                        .ok_or(BusError::RedriveSourceGone(dl.id))?;
                    let tp = Tp {
                        topic: topic.id,
                        partition: dl.event.partition.0,
                    };
                    if !cell.lock().parts.contains_key(&tp) {
                        return Err(BusError::RedriveSourceGone(dl.id));
                    }
                    places.push(tp);
                }
                drop(cat);
                let ids: Vec<u64> = letters.iter().map(|dl| dl.id).collect();
                self.remove_dead_letters(&cell, &ids, |st, ops| {
                    for (dl, tp) in letters.iter().zip(places) {
                        st.redrive(tp, dl, now, ops);
                    }
                })?;
            }
            RedriveTarget::Topic(name) => {
                eddy_bus::name::check_topic_name(&name)?;
                let topic = Arc::clone(cat.topic(&name)?);
                drop(cat);
                // In batches that stay well under the log's batch limit.
                let mut batch: Vec<Event> = Vec::new();
                let mut bytes = 0;
                for dl in &letters {
                    let size = dl.event.event.size_bytes() + 256;
                    if !batch.is_empty() && bytes + size > REDRIVE_BATCH_BYTES {
                        self.publish_internal(&topic, &batch, false)?;
                        batch.clear();
                        bytes = 0;
                    }
                    batch.push(dl.event.event.clone());
                    bytes += size;
                }
                if !batch.is_empty() {
                    self.publish_internal(&topic, &batch, false)?;
                }
                let ids: Vec<u64> = letters.iter().map(|dl| dl.id).collect();
                self.remove_dead_letters(&cell, &ids, |_, _| {})?;
            }
        }
        self.notify();
        Ok(letters.len() as u64)
    }

    /// Takes dead letters out of the queue, after `before` (under the same
    /// lock, in the same journal write), and waits until that is durable.
    fn remove_dead_letters(
        &self,
        cell: &SubCell,
        ids: &[u64],
        before: impl FnOnce(&mut Sub, &mut Vec<Op>),
    ) -> Result<()> {
        let mut ops = Vec::new();
        let w = {
            let mut st = cell.lock();
            before(&mut st, &mut ops);
            for &id in ids {
                let op = Op::DeadLetterRemoved { sub: cell.id, id };
                st.apply(&op);
                ops.push(op);
            }
            self.inner.journal.write(&ops)?
        };
        self.inner.journal.wait(w)
    }

    pub(crate) fn purge_sync(&self, sub: &str, selection: DeadLetterSelection) -> Result<u64> {
        let (cell, topic) = self.dead_topic_of(sub)?;
        let mut ops = Vec::new();
        let count = match &selection {
            DeadLetterSelection::All => {
                let next = topic.map_or(0, |t| t.logs[0].next_offset().0);
                let w = {
                    let mut st = cell.lock();
                    let count = next
                        .saturating_sub(st.dead_floor)
                        .saturating_sub(st.dead_removed.len() as u64);
                    let op = Op::DeadLetterFloor {
                        sub: cell.id,
                        floor: next,
                    };
                    st.apply(&op);
                    ops.push(op);
                    (self.inner.journal.write(&ops)?, count)
                };
                self.inner.journal.wait(w.0)?;
                w.1
            }
            DeadLetterSelection::Ids(ids) => {
                for &id in ids {
                    self.dead_letter_sync(sub, id)?;
                }
                self.remove_dead_letters(&cell, ids, |_, _| {})?;
                ids.len() as u64
            }
        };
        Ok(count)
    }
}

/// A dead letter from its stored form.
fn to_dead_letter(sub: &str, stored: StoredEvent, meta: &[(String, String)]) -> Result<DeadLetter> {
    let get = |name: &str| {
        meta.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let bad =
        |what: &str| BusError::Corrupt(format!("dead letter {}: bad {what}", stored.offset.0));
    let num = |name: &str| -> Result<u64> {
        get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad(name))
    };
    let topic = get(M_TOPIC).ok_or_else(|| bad(M_TOPIC))?.to_string();
    let partition = u32::try_from(num(M_PARTITION)?).map_err(|_| bad(M_PARTITION))?;
    let offset = num(M_OFFSET)?;
    let ts: i64 = get(M_TS)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad(M_TS))?;
    let dead_at: i64 = get(M_DEAD_AT)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad(M_DEAD_AT))?;
    let reason = match get(M_REASON) {
        Some("terminated") => DeadReason::Terminated,
        Some("max_deliveries") => DeadReason::MaxDeliveries,
        _ => return Err(bad(M_REASON)),
    };
    debug_assert!(meta.iter().all(|(k, _)| k.starts_with(META_PREFIX)));
    Ok(DeadLetter {
        id: stored.offset.0,
        subscription: sub.to_string(),
        attempts: u32::try_from(num(M_ATTEMPTS)?).map_err(|_| bad(M_ATTEMPTS))?,
        last_error: get(M_ERROR).map(str::to_string),
        reason,
        dead_at_ms: dead_at,
        redrives: u32::try_from(num(M_GENERATION)?).map_err(|_| bad(M_GENERATION))?,
        event: StoredEvent {
            topic,
            partition: Partition(partition),
            offset: Offset(offset),
            timestamp_ms: ts,
            event: stored.event,
        },
    })
}
