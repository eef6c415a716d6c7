//! `Guarded`: a bus that checks each call against one principal's grants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eddy_bus::{
    AckId, Bus, DeadLetter, DeadLetterSelection, Delivery, Event, FetchOptions, NackOptions,
    Partition, Published, ReadBatch, ReadFrom, RedriveTarget, Result, SeekTo, SubscriptionConfig,
    SubscriptionInfo, SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
};

use crate::grant::{Permission, Principal};

/// Most subscription filters a principal remembers; past it the memory
/// is cleared and refilled as subscriptions are used.
pub const FILTER_CACHE_MAX: usize = 4096;

/// A principal and what it has learned of subscription filters.
#[derive(Debug)]
pub(crate) struct Holder {
    pub(crate) principal: Principal,
    /// Subscription name → its filter, so that consuming a subscription
    /// does not look the subscription up on every call.
    filters: Mutex<HashMap<String, String>>,
}

impl Holder {
    pub(crate) fn new(principal: Principal) -> Holder {
        Holder {
            principal,
            filters: Mutex::new(HashMap::new()),
        }
    }

    fn filters(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.filters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The bus as one principal may use it: each call is checked against the
/// principal's grants before it reaches the bus, and refused with
/// `PermissionDenied` (6002) — nothing changes — when a grant is missing.
/// Lists show only what the principal has some grant on.
///
/// Consuming a subscription needs `subscribe` on every topic its filter
/// can select. The filter is looked up once and remembered; since a
/// subscription may be deleted and created again with another filter, each
/// fetched delivery is checked too, and one outside the grants is given
/// back (nack with no delay: it counts as an attempt), the memory dropped, and the fetch refused.
///
/// As an [`EventStore`](eddy_bus::EventStore) (when `B` is one), a stream is
/// guarded as the bus topic its events are published to, `es.<category>`:
/// appending needs `publish` on it, reading it (`read_stream`,
/// `stream_info`) `subscribe`, and its settings and deletion `admin`. A
/// stream that has no such topic — no category (`orders`), or a system
/// stream (`$snap-order-1`) — needs the permission on every store topic:
/// a grant covering `es.>` (`es.>` itself, or `>`). A `read_all` with
/// `Category(c)` needs `subscribe` on `es.<c>`; with any other filter it
/// may return events of any stream, so it needs `subscribe` covering
/// `es.>`. Names are checked before permissions, so a bad name is an
/// `InvalidName` whoever asks; a refused call never reaches the store.
#[derive(Debug)]
pub struct Guarded<B> {
    pub(crate) bus: B,
    who: Arc<Holder>,
}

impl<B: Clone> Clone for Guarded<B> {
    fn clone(&self) -> Self {
        Guarded {
            bus: self.bus.clone(),
            who: Arc::clone(&self.who),
        }
    }
}

impl<B> Guarded<B> {
    /// Who this bus serves.
    pub fn principal(&self) -> &Principal {
        &self.who.principal
    }
}

impl<B: Bus> Guarded<B> {
    pub(crate) fn new(bus: B, who: Arc<Holder>) -> Guarded<B> {
        Guarded { bus, who }
    }

    /// The filter of subscription `name`, remembered or looked up.
    async fn filter(&self, name: &str) -> Result<String> {
        if let Some(f) = self.who.filters().get(name) {
            return Ok(f.clone());
        }
        let info = self.bus.describe_subscription(name).await?;
        let filter = info.config.filter;
        let mut filters = self.who.filters();
        if filters.len() >= FILTER_CACHE_MAX {
            filters.clear();
        }
        filters.insert(name.to_string(), filter.clone());
        Ok(filter)
    }

    fn forget(&self, name: &str) {
        self.who.filters().remove(name);
    }

    /// `Ok` if `permission` covers every topic of subscription `name`.
    async fn check_sub(&self, permission: Permission, name: &str) -> Result<()> {
        let filter = self.filter(name).await?;
        if self.principal().may_all(permission, &filter) {
            Ok(())
        } else {
            Err(self
                .principal()
                .denied(permission, &format!("subscription {name} ({filter})")))
        }
    }

    fn check(&self, permission: Permission, topic: &str) -> Result<()> {
        self.principal().check(permission, topic)
    }

    /// Settling a delivery needs `subscribe` on its event's topic.
    fn check_settle(&self, id: &AckId) -> Result<()> {
        self.check(Permission::Subscribe, &id.topic)
    }
}

impl<B: Bus + Clone> Bus for Guarded<B> {
    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        self.check(Permission::Admin, name)?;
        self.bus.create_topic(name, config).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let mut all = self.bus.list_topics().await?;
        all.retain(|t| self.principal().sees(&t.name));
        Ok(all)
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        if !self.principal().sees(name) {
            return Err(self.principal().denied(Permission::Subscribe, name));
        }
        self.bus.describe_topic(name).await
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        self.check(Permission::Admin, name)?;
        self.bus.delete_topic(name).await
    }

    async fn publish(&self, topic: &str, event: Event) -> Result<Published> {
        self.check(Permission::Publish, topic)?;
        self.bus.publish(topic, event).await
    }

    async fn publish_batch(&self, topic: &str, events: Vec<Event>) -> Result<Vec<Published>> {
        self.check(Permission::Publish, topic)?;
        self.bus.publish_batch(topic, events).await
    }

    async fn read(
        &self,
        topic: &str,
        partition: Partition,
        from: ReadFrom,
        max: u32,
    ) -> Result<ReadBatch> {
        self.check(Permission::Subscribe, topic)?;
        self.bus.read(topic, partition, from, max).await
    }

    async fn create_subscription(
        &self,
        name: &str,
        config: SubscriptionConfig,
    ) -> Result<SubscriptionInfo> {
        self.principal()
            .check_all(Permission::Subscribe, &config.filter)?;
        self.forget(name);
        self.bus.create_subscription(name, config).await
    }

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        let mut all = self.bus.list_subscriptions().await?;
        all.retain(|s| self.principal().sees_all(&s.config.filter));
        Ok(all)
    }

    async fn describe_subscription(&self, name: &str) -> Result<SubscriptionInfo> {
        let info = self.bus.describe_subscription(name).await?;
        if !self.principal().sees_all(&info.config.filter) {
            return Err(self
                .principal()
                .denied(Permission::Subscribe, &format!("subscription {name}")));
        }
        Ok(info)
    }

    async fn delete_subscription(&self, name: &str) -> Result<()> {
        self.check_sub(Permission::Admin, name).await?;
        self.forget(name);
        self.bus.delete_subscription(name).await
    }

    async fn seek(&self, subscription: &str, to: SeekTo) -> Result<()> {
        self.check_sub(Permission::Admin, subscription).await?;
        self.bus.seek(subscription, to).await
    }

    async fn fetch(&self, subscription: &str, options: FetchOptions) -> Result<Vec<Delivery>> {
        self.check_sub(Permission::Subscribe, subscription).await?;
        let deliveries = self.bus.fetch(subscription, options).await?;
        let (mine, foreign): (Vec<Delivery>, Vec<Delivery>) = deliveries
            .into_iter()
            .partition(|d| self.principal().may(Permission::Subscribe, &d.event.topic));
        if foreign.is_empty() {
            return Ok(mine);
        }
        // The subscription changed under the remembered filter: give every
        // delivery back and refuse; the next call looks the filter up anew.
        self.forget(subscription);
        let topic = foreign[0].event.topic.clone();
        let give_back = NackOptions {
            delay_ms: Some(0),
            error: Some(format!(
                "given back: not granted to {}",
                self.principal().name()
            )),
        };
        for d in mine.iter().chain(&foreign) {
            let _ = self
                .bus
                .nack(subscription, &d.ack_id, give_back.clone())
                .await;
        }
        Err(self.principal().denied(Permission::Subscribe, &topic))
    }

    async fn ack_all(&self, subscription: &str, ids: &[AckId]) -> Result<Vec<Result<()>>> {
        if ids.iter().all(|id| self.check_settle(id).is_ok()) {
            return self.bus.ack_all(subscription, ids).await;
        }
        // Ack the permitted ids; the others get their own refusal.
        let allowed: Vec<AckId> = ids
            .iter()
            .filter(|id| self.check_settle(id).is_ok())
            .cloned()
            .collect();
        let mut outcomes = self.bus.ack_all(subscription, &allowed).await?.into_iter();
        Ok(ids
            .iter()
            .map(|id| match self.check_settle(id) {
                Ok(()) => outcomes.next().unwrap_or(Ok(())),
                Err(e) => Err(e),
            })
            .collect())
    }

    async fn nack(&self, subscription: &str, id: &AckId, options: NackOptions) -> Result<()> {
        self.check_settle(id)?;
        self.bus.nack(subscription, id, options).await
    }

    async fn extend(&self, subscription: &str, id: &AckId) -> Result<i64> {
        self.check_settle(id)?;
        self.bus.extend(subscription, id).await
    }

    async fn terminate(&self, subscription: &str, id: &AckId, reason: &str) -> Result<()> {
        self.check_settle(id)?;
        self.bus.terminate(subscription, id, reason).await
    }

    async fn dead_letters(
        &self,
        subscription: &str,
        from: u64,
        max: u32,
    ) -> Result<Vec<DeadLetter>> {
        self.check_sub(Permission::Subscribe, subscription).await?;
        self.bus.dead_letters(subscription, from, max).await
    }

    async fn dead_letter(&self, subscription: &str, id: u64) -> Result<DeadLetter> {
        self.check_sub(Permission::Subscribe, subscription).await?;
        self.bus.dead_letter(subscription, id).await
    }

    async fn redrive(
        &self,
        subscription: &str,
        selection: DeadLetterSelection,
        target: RedriveTarget,
    ) -> Result<u64> {
        self.check_sub(Permission::Admin, subscription).await?;
        if let RedriveTarget::Topic(topic) = &target {
            self.check(Permission::Publish, topic)?;
        }
        self.bus.redrive(subscription, selection, target).await
    }

    async fn purge(&self, subscription: &str, selection: DeadLetterSelection) -> Result<u64> {
        self.check_sub(Permission::Admin, subscription).await?;
        self.bus.purge(subscription, selection).await
    }

    async fn topic_stats(&self, name: &str) -> Result<TopicStats> {
        if !self.principal().sees(name) {
            return Err(self.principal().denied(Permission::Subscribe, name));
        }
        self.bus.topic_stats(name).await
    }

    async fn subscription_stats(&self, name: &str) -> Result<SubscriptionStats> {
        self.check_sub(Permission::Subscribe, name).await?;
        self.bus.subscription_stats(name).await
    }
}
