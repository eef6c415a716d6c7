//! [`Metered`]: any [`Bus`] with every call timed and every error counted.

use std::future::Future;
use std::time::Instant;

use eddy_bus::{
    AckId, Bus, DeadLetter, DeadLetterSelection, Delivery, Event, FetchOptions, NackOptions,
    Partition, Published, ReadBatch, ReadFrom, RedriveTarget, Result, SeekTo, SubscriptionConfig,
    SubscriptionInfo, SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, Direction, EventStore, ExpectedVersion, StreamFrom,
    StreamInfo, StreamMetadata, StreamSlice,
};

use crate::registry::{Metrics, Op};

/// A [`Bus`] that delegates every call to `B` and records into its
/// [`Metrics`]: the call's duration in `eddy_request_duration_seconds`
/// (by operation family), its error code in `eddy_request_errors_total`,
/// and for a fetch the publish → deliver latency of each first delivery.
///
/// Durations are wall time from the call to its answer: a fetch's
/// long-poll wait (`wait_ms`) is included, so a quiet subscription shows
/// slow fetches. Push delivery ([`Bus::subscribe`], not overridden) runs on
/// this bus's `fetch` and is measured the same way.
///
/// When `B` is an [`EventStore`], so is this bus: each store operation is
/// its own family (`store_append`, `store_read_stream`, `store_read_all` —
/// its `wait_ms` included —, `store_info`, `store_metadata`,
/// `store_delete`).
///
/// Made by [`Metrics::metered`]. Clone when `B` is (clones share the
/// registry).
#[derive(Debug, Clone)]
pub struct Metered<B> {
    bus: B,
    metrics: Metrics,
}

impl<B: Bus> Metered<B> {
    pub(crate) fn new(bus: B, metrics: Metrics) -> Metered<B> {
        Metered { bus, metrics }
    }

    /// The bus underneath (calls on it are not recorded).
    pub fn inner(&self) -> &B {
        &self.bus
    }

    /// The bus underneath, unwrapped.
    pub fn into_inner(self) -> B {
        self.bus
    }

    /// The registry this bus records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs `call`, recording its duration and its error under `op`.
    async fn timed<T>(&self, op: Op, call: impl Future<Output = Result<T>>) -> Result<T> {
        let start = Instant::now();
        let result = call.await;
        self.metrics
            .record(op, start.elapsed(), result.as_ref().err());
        result
    }
}

impl<B: Bus> Bus for Metered<B> {
    // ---- topics ----

    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        self.timed(Op::Admin, self.bus.create_topic(name, config))
            .await
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        self.timed(Op::Admin, self.bus.list_topics()).await
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        self.timed(Op::Admin, self.bus.describe_topic(name)).await
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        self.timed(Op::Admin, self.bus.delete_topic(name)).await
    }

    // ---- publishing ----

    async fn publish(&self, topic: &str, event: Event) -> Result<Published> {
        self.timed(Op::Publish, self.bus.publish(topic, event))
            .await
    }

    async fn publish_batch(&self, topic: &str, events: Vec<Event>) -> Result<Vec<Published>> {
        self.timed(Op::Publish, self.bus.publish_batch(topic, events))
            .await
    }

    // ---- stream reading ----

    async fn read(
        &self,
        topic: &str,
        partition: Partition,
        from: ReadFrom,
        max: u32,
    ) -> Result<ReadBatch> {
        self.timed(Op::Read, self.bus.read(topic, partition, from, max))
            .await
    }

    // ---- subscriptions ----

    async fn create_subscription(
        &self,
        name: &str,
        config: SubscriptionConfig,
    ) -> Result<SubscriptionInfo> {
        self.timed(Op::Admin, self.bus.create_subscription(name, config))
            .await
    }

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        self.timed(Op::Admin, self.bus.list_subscriptions()).await
    }

    async fn describe_subscription(&self, name: &str) -> Result<SubscriptionInfo> {
        self.timed(Op::Admin, self.bus.describe_subscription(name))
            .await
    }

    async fn delete_subscription(&self, name: &str) -> Result<()> {
        self.timed(Op::Admin, self.bus.delete_subscription(name))
            .await
    }

    async fn seek(&self, subscription: &str, to: SeekTo) -> Result<()> {
        self.timed(Op::Admin, self.bus.seek(subscription, to)).await
    }

    // ---- delivery ----

    async fn fetch(&self, subscription: &str, options: FetchOptions) -> Result<Vec<Delivery>> {
        let got = self
            .timed(Op::Fetch, self.bus.fetch(subscription, options))
            .await?;
        if got.iter().any(|d| d.attempt == 1) {
            let now_ms = self.metrics.now_ms();
            for d in got.iter().filter(|d| d.attempt == 1) {
                self.metrics
                    .record_first_delivery(now_ms, d.event.timestamp_ms);
            }
        }
        Ok(got)
    }

    /// Records the call, and each failed item under `op="ack"` too.
    async fn ack_all(&self, subscription: &str, ids: &[AckId]) -> Result<Vec<Result<()>>> {
        let outcomes = self
            .timed(Op::Ack, self.bus.ack_all(subscription, ids))
            .await?;
        for e in outcomes.iter().filter_map(|r| r.as_ref().err()) {
            self.metrics.record_error(Op::Ack, e);
        }
        Ok(outcomes)
    }

    async fn ack(&self, subscription: &str, id: &AckId) -> Result<()> {
        self.timed(Op::Ack, self.bus.ack(subscription, id)).await
    }

    async fn nack(&self, subscription: &str, id: &AckId, options: NackOptions) -> Result<()> {
        self.timed(Op::Nack, self.bus.nack(subscription, id, options))
            .await
    }

    async fn extend(&self, subscription: &str, id: &AckId) -> Result<i64> {
        self.timed(Op::Extend, self.bus.extend(subscription, id))
            .await
    }

    async fn terminate(&self, subscription: &str, id: &AckId, reason: &str) -> Result<()> {
        self.timed(Op::Terminate, self.bus.terminate(subscription, id, reason))
            .await
    }

    // `subscribe` keeps the trait's default: a push stream on `self.fetch`,
    // so its fetches are recorded like any other.

    // ---- dead letters ----

    async fn dead_letters(
        &self,
        subscription: &str,
        from: u64,
        max: u32,
    ) -> Result<Vec<DeadLetter>> {
        self.timed(
            Op::DeadLetters,
            self.bus.dead_letters(subscription, from, max),
        )
        .await
    }

    async fn dead_letter(&self, subscription: &str, id: u64) -> Result<DeadLetter> {
        self.timed(Op::DeadLetters, self.bus.dead_letter(subscription, id))
            .await
    }

    async fn redrive(
        &self,
        subscription: &str,
        selection: DeadLetterSelection,
        target: RedriveTarget,
    ) -> Result<u64> {
        self.timed(
            Op::DeadLetters,
            self.bus.redrive(subscription, selection, target),
        )
        .await
    }

    async fn purge(&self, subscription: &str, selection: DeadLetterSelection) -> Result<u64> {
        self.timed(Op::DeadLetters, self.bus.purge(subscription, selection))
            .await
    }

    // ---- statistics ----

    async fn topic_stats(&self, name: &str) -> Result<TopicStats> {
        self.timed(Op::Stats, self.bus.topic_stats(name)).await
    }

    async fn subscription_stats(&self, name: &str) -> Result<SubscriptionStats> {
        self.timed(Op::Stats, self.bus.subscription_stats(name))
            .await
    }
}

impl<B: Bus + EventStore> EventStore for Metered<B> {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<AppendResult> {
        self.timed(Op::StoreAppend, self.bus.append(stream, expected, events))
            .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: u32,
    ) -> Result<StreamSlice> {
        self.timed(
            Op::StoreReadStream,
            self.bus.read_stream(stream, from, direction, max),
        )
        .await
    }

    async fn read_all(
        &self,
        from: u64,
        filter: AllFilter,
        max: u32,
        wait_ms: u64,
    ) -> Result<AllSlice> {
        self.timed(
            Op::StoreReadAll,
            self.bus.read_all(from, filter, max, wait_ms),
        )
        .await
    }

    async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        self.timed(Op::StoreInfo, self.bus.stream_info(stream))
            .await
    }

    async fn set_stream_metadata(&self, stream: &str, metadata: StreamMetadata) -> Result<()> {
        self.timed(
            Op::StoreMetadata,
            self.bus.set_stream_metadata(stream, metadata),
        )
        .await
    }

    async fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<()> {
        self.timed(Op::StoreDelete, self.bus.delete_stream(stream, expected))
            .await
    }
}
