//! The broker as an [`eddy_bus::Bus`]: each call runs the blocking core on
//! Tokio's blocking pool (it may wait for an fsync), and a fetch that finds
//! nothing waits for the broker's change signal.

use std::time::Duration;

use eddy_bus::{
    AckId, Bus, BusError, DeadLetter, DeadLetterSelection, Delivery, Event, FetchOptions,
    NackOptions, Partition, Published, ReadBatch, ReadFrom, RedriveTarget, Result, SeekTo,
    SubscriptionConfig, SubscriptionInfo, SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
    WAIT_MS_MAX,
};

use crate::broker::Broker;

impl Broker {
    /// Runs `f` on a clone of the broker on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Broker) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let b = self.clone();
        tokio::task::spawn_blocking(move || f(&b))
            .await
            .map_err(|e| BusError::Storage(format!("a broker task failed: {e}")))?
    }
}

impl Broker {
    /// One fetch attempt on the calling task: a fetch reads and writes
    /// (without fsync) but never waits for the disk, so it skips the hop to
    /// the blocking pool. Dead-lettering, which waits for fsyncs, goes there
    /// when needed.
    async fn fetch_inline(&self, subscription: &str, max: u32) -> Result<Vec<Delivery>> {
        let (got, (cell, dying)) = self.fetch_now(subscription, max)?;
        if !dying.is_empty() {
            self.blocking(move |b| b.dead_letter(&cell, dying)).await?;
        }
        Ok(got)
    }
}

impl Bus for Broker {
    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        let name = name.to_string();
        self.blocking(move |b| b.create_topic_sync(&name, config))
            .await
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        self.blocking(|b| b.list_topics_sync()).await
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        let name = name.to_string();
        self.blocking(move |b| b.describe_topic_sync(&name)).await
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |b| b.delete_topic_sync(&name)).await
    }

    async fn publish(&self, topic: &str, event: Event) -> Result<Published> {
        let mut r = self.publish_async(topic, vec![event]).await?;
        r.pop()
            .ok_or_else(|| BusError::Storage("a publish returned no result".into()))
    }

    async fn publish_batch(&self, topic: &str, events: Vec<Event>) -> Result<Vec<Published>> {
        self.publish_async(topic, events).await
    }

    async fn read(
        &self,
        topic: &str,
        partition: Partition,
        from: ReadFrom,
        max: u32,
    ) -> Result<ReadBatch> {
        let topic = topic.to_string();
        self.blocking(move |b| b.read_sync(&topic, partition, from, max))
            .await
    }

    async fn create_subscription(
        &self,
        name: &str,
        config: SubscriptionConfig,
    ) -> Result<SubscriptionInfo> {
        let name = name.to_string();
        self.blocking(move |b| b.create_subscription_sync(&name, config))
            .await
    }

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        self.blocking(|b| b.list_subscriptions_sync()).await
    }

    async fn describe_subscription(&self, name: &str) -> Result<SubscriptionInfo> {
        let name = name.to_string();
        self.blocking(move |b| b.describe_subscription_sync(&name))
            .await
    }

    async fn delete_subscription(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |b| b.delete_subscription_sync(&name))
            .await
    }

    async fn seek(&self, subscription: &str, to: SeekTo) -> Result<()> {
        let sub = subscription.to_string();
        self.blocking(move |b| b.seek_sync(&sub, to)).await
    }

    async fn fetch(&self, subscription: &str, options: FetchOptions) -> Result<Vec<Delivery>> {
        if options.wait_ms > WAIT_MS_MAX {
            return Err(BusError::InvalidArgument {
                what: "wait_ms",
                reason: format!(
                    "a fetch waits at most {WAIT_MS_MAX} ms, not {}",
                    options.wait_ms
                ),
            });
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(options.wait_ms);
        let mut changed = self.inner.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let got = self.fetch_inline(subscription, options.max).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the broker is gone: one last look.
                Ok(Err(_)) | Err(_) => return self.fetch_inline(subscription, options.max).await,
            }
        }
    }

    async fn ack_all(&self, subscription: &str, ids: &[AckId]) -> Result<Vec<Result<()>>> {
        self.ack_all_async(subscription, ids).await
    }

    async fn nack(&self, subscription: &str, id: &AckId, options: NackOptions) -> Result<()> {
        let sub = subscription.to_string();
        let id = id.clone();
        self.blocking(move |b| b.nack_sync(&sub, &id, options))
            .await
    }

    async fn extend(&self, subscription: &str, id: &AckId) -> Result<i64> {
        let sub = subscription.to_string();
        let id = id.clone();
        self.blocking(move |b| b.extend_sync(&sub, &id)).await
    }

    async fn terminate(&self, subscription: &str, id: &AckId, reason: &str) -> Result<()> {
        let sub = subscription.to_string();
        let id = id.clone();
        let reason = reason.to_string();
        self.blocking(move |b| b.terminate_sync(&sub, &id, &reason))
            .await
    }

    async fn dead_letters(
        &self,
        subscription: &str,
        from: u64,
        max: u32,
    ) -> Result<Vec<DeadLetter>> {
        let sub = subscription.to_string();
        self.blocking(move |b| b.dead_letters_sync(&sub, from, max))
            .await
    }

    async fn dead_letter(&self, subscription: &str, id: u64) -> Result<DeadLetter> {
        let sub = subscription.to_string();
        self.blocking(move |b| b.dead_letter_sync(&sub, id)).await
    }

    async fn redrive(
        &self,
        subscription: &str,
        selection: DeadLetterSelection,
        target: RedriveTarget,
    ) -> Result<u64> {
        let sub = subscription.to_string();
        self.blocking(move |b| b.redrive_sync(&sub, selection, target))
            .await
    }

    async fn purge(&self, subscription: &str, selection: DeadLetterSelection) -> Result<u64> {
        let sub = subscription.to_string();
        self.blocking(move |b| b.purge_sync(&sub, selection)).await
    }

    async fn topic_stats(&self, name: &str) -> Result<TopicStats> {
        let name = name.to_string();
        self.blocking(move |b| b.topic_stats_sync(&name)).await
    }

    async fn subscription_stats(&self, name: &str) -> Result<SubscriptionStats> {
        let name = name.to_string();
        self.blocking(move |b| b.subscription_stats_sync(&name))
            .await
    }
}
