//! A topic or subscription deleted between the scrape's listing and its
//! stats call is left out without failing the scrape or counting an error;
//! any other failed stats call is counted in `eddy_scrape_errors_total` and
//! its series left out, while everything else is still rendered.

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{
    AckId, Bus, BusError, DeadLetter, DeadLetterSelection, Delivery, Event, FetchOptions,
    NackOptions, Partition, Published, ReadBatch, ReadFrom, RedriveTarget, Result, SeekTo, StartAt,
    SubscriptionConfig, SubscriptionInfo, SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
};
use eddy_metrics::Metrics;

#[path = "support/exposition.rs"]
mod exposition;

/// The broker, except that its listings also name a deleted topic and a
/// deleted subscription (as if they were deleted right after the listing),
/// and the stats of topic `broken` fail with a storage error.
struct StaleListing {
    broker: Broker,
    gone_topic: TopicInfo,
    gone_subscription: SubscriptionInfo,
}

impl Bus for StaleListing {
    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        self.broker.create_topic(name, config).await
    }
    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let mut list = self.broker.list_topics().await?;
        list.push(self.gone_topic.clone());
        Ok(list)
    }
    async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        self.broker.describe_topic(name).await
    }
    async fn delete_topic(&self, name: &str) -> Result<()> {
        self.broker.delete_topic(name).await
    }
    async fn publish(&self, topic: &str, event: Event) -> Result<Published> {
        self.broker.publish(topic, event).await
    }
    async fn publish_batch(&self, topic: &str, events: Vec<Event>) -> Result<Vec<Published>> {
        self.broker.publish_batch(topic, events).await
    }
    async fn read(&self, t: &str, p: Partition, from: ReadFrom, max: u32) -> Result<ReadBatch> {
        self.broker.read(t, p, from, max).await
    }
    async fn create_subscription(
        &self,
        name: &str,
        config: SubscriptionConfig,
    ) -> Result<SubscriptionInfo> {
        self.broker.create_subscription(name, config).await
    }
    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        let mut list = self.broker.list_subscriptions().await?;
        list.push(self.gone_subscription.clone());
        Ok(list)
    }
    async fn describe_subscription(&self, name: &str) -> Result<SubscriptionInfo> {
        self.broker.describe_subscription(name).await
    }
    async fn delete_subscription(&self, name: &str) -> Result<()> {
        self.broker.delete_subscription(name).await
    }
    async fn seek(&self, subscription: &str, to: SeekTo) -> Result<()> {
        self.broker.seek(subscription, to).await
    }
    async fn fetch(&self, subscription: &str, options: FetchOptions) -> Result<Vec<Delivery>> {
        self.broker.fetch(subscription, options).await
    }
    async fn ack_all(&self, subscription: &str, ids: &[AckId]) -> Result<Vec<Result<()>>> {
        self.broker.ack_all(subscription, ids).await
    }
    async fn nack(&self, subscription: &str, id: &AckId, options: NackOptions) -> Result<()> {
        self.broker.nack(subscription, id, options).await
    }
    async fn extend(&self, subscription: &str, id: &AckId) -> Result<i64> {
        self.broker.extend(subscription, id).await
    }
    async fn terminate(&self, subscription: &str, id: &AckId, reason: &str) -> Result<()> {
        self.broker.terminate(subscription, id, reason).await
    }
    async fn dead_letters(&self, s: &str, from: u64, max: u32) -> Result<Vec<DeadLetter>> {
        self.broker.dead_letters(s, from, max).await
    }
    async fn dead_letter(&self, subscription: &str, id: u64) -> Result<DeadLetter> {
        self.broker.dead_letter(subscription, id).await
    }
    async fn redrive(
        &self,
        s: &str,
        selection: DeadLetterSelection,
        target: RedriveTarget,
    ) -> Result<u64> {
        self.broker.redrive(s, selection, target).await
    }
    async fn purge(&self, subscription: &str, selection: DeadLetterSelection) -> Result<u64> {
        self.broker.purge(subscription, selection).await
    }
    async fn topic_stats(&self, name: &str) -> Result<TopicStats> {
        if name == "broken" {
            return Err(BusError::Storage("disk on fire".into()));
        }
        self.broker.topic_stats(name).await
    }
    async fn subscription_stats(&self, name: &str) -> Result<SubscriptionStats> {
        self.broker.subscription_stats(name).await
    }
}

// Proves the scrape survives names that vanish under it: the gone topic
// and subscription are skipped silently, the failing `broken` topic is
// skipped and counted once, the rest is rendered and the text is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_skips_topics_and_subscriptions_gone_since_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let clock = Arc::new(ManualClock::new(1_767_225_600_000));
    let broker = Broker::open_with_clock(dir.path(), config, clock).unwrap();
    for name in ["t", "broken", "gone"] {
        broker
            .create_topic(name, TopicConfig::default())
            .await
            .unwrap();
    }
    let earliest = |filter: &str| SubscriptionConfig::new(filter).start_at(StartAt::Earliest);
    broker
        .create_subscription("s", earliest("t"))
        .await
        .unwrap();
    broker
        .create_subscription("gone-sub", earliest("gone"))
        .await
        .unwrap();
    let gone_topic = broker.describe_topic("gone").await.unwrap();
    let gone_subscription = broker.describe_subscription("gone-sub").await.unwrap();
    broker.delete_subscription("gone-sub").await.unwrap();
    broker.delete_topic("gone").await.unwrap();
    broker.publish("t", Event::new("E", "x")).await.unwrap();
    let bus = StaleListing {
        broker: broker.clone(),
        gone_topic,
        gone_subscription,
    };

    let metrics = Metrics::new();
    let text = metrics.render(&bus).await;
    let samples = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let get = |name, labels: &[(&str, &str)]| exposition::value(&samples, name, labels);

    assert_eq!(get("eddy_up", &[]), Some(1.0));
    assert_eq!(get("eddy_scrape_errors_total", &[]), Some(1.0));
    assert_eq!(get("eddy_published_total", &[("topic", "t")]), Some(1.0));
    assert_eq!(get("eddy_published_total", &[("topic", "broken")]), None);
    assert_eq!(get("eddy_published_total", &[("topic", "gone")]), None);
    assert_eq!(
        get("eddy_delivered_total", &[("subscription", "s")]),
        Some(0.0)
    );
    assert_eq!(
        get("eddy_subscription_lag", &[("subscription", "s")]),
        Some(1.0)
    );
    assert!(
        !samples
            .iter()
            .any(|s| s.label("subscription") == Some("gone-sub"))
    );

    // The counter accumulates over scrapes.
    let again = exposition::parse(&metrics.render(&bus).await).unwrap();
    assert_eq!(
        exposition::value(&again, "eddy_scrape_errors_total", &[]),
        Some(2.0)
    );
    broker.close().unwrap();
}
