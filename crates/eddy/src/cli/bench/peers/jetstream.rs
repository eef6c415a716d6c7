//! The NATS JetStream rows (async-nats): a file-storage stream, publish
//! acks outstanding, durable pull consumers with explicit acks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{CONSUMERS, FAN_OUT, TAKE, WINDOW, latency, retry};

type JetStream = async_nats::jetstream::Context;
type PullConsumer =
    async_nats::jetstream::consumer::Consumer<async_nats::jetstream::consumer::pull::Config>;

/// A fresh JetStream file-storage stream `name` on `subject`.
async fn stream(
    addr: &str,
    name: &str,
    subject: &str,
) -> Result<(JetStream, async_nats::jetstream::stream::Stream)> {
    let client = tokio::time::timeout(Duration::from_secs(3), async_nats::connect(addr))
        .await
        .context("connecting timed out")??;
    let js = async_nats::jetstream::new(client);
    let _ = js.delete_stream(name).await;
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .context("create the JetStream stream")?;
    Ok((js, stream))
}

/// Publishes `events` messages, the `n`th with `data(n)`, 256 acks
/// outstanding.
async fn publish_window(
    js: &JetStream,
    subject: &str,
    data: impl Fn(u64) -> Bytes,
    events: u64,
) -> Result<()> {
    let mut acks = FuturesUnordered::new();
    for n in 0..events {
        if acks.len() >= WINDOW
            && let Some(ack) = acks.next().await
        {
            ack?;
        }
        let ack = js
            .publish(subject.to_string(), data(n))
            .await
            .context("publish")?;
        acks.push(ack.into_future());
    }
    while let Some(ack) = acks.next().await {
        ack?;
    }
    Ok(())
}

/// A durable pull consumer with explicit acks.
async fn consumer(
    stream: &async_nats::jetstream::stream::Stream,
    name: &str,
    max_ack_pending: usize,
) -> Result<PullConsumer> {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_string()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: max_ack_pending as i64,
            ..Default::default()
        })
        .await
        .context("create a pull consumer")
}

/// Fetches (≤ 500 at a time) and acks each message until `acked` reaches
/// `target`.
async fn ack_until(consumer: PullConsumer, acked: Arc<AtomicU64>, target: u64) -> Result<()> {
    while acked.load(Ordering::Relaxed) < target {
        let mut batch = consumer
            .fetch()
            .max_messages(TAKE)
            .expires(Duration::from_millis(200))
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
            message
                .ack()
                .await
                .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            acked.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

pub(super) async fn w1(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let name = "EDDY_BENCH_W1";
    let (js, _) = stream(addr, name, "eddybench.w1").await?;
    let start = Instant::now();
    publish_window(&js, "eddybench.w1", |_| payload.clone(), events).await?;
    let elapsed = start.elapsed();
    let _ = js.delete_stream(name).await;
    Ok(elapsed)
}

pub(super) async fn w2(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let name = "EDDY_BENCH_W2";
    let (js, stream) = stream(addr, name, "eddybench.w2").await?;
    let mut consumers = tokio::task::JoinSet::new();
    let start = Instant::now();
    for s in 0..FAN_OUT {
        let consumer = consumer(&stream, &format!("eddy-w2-{s}"), TAKE * 4).await?;
        consumers.spawn(ack_until(consumer, Arc::default(), events));
    }
    publish_window(&js, "eddybench.w2", |_| payload.clone(), events).await?;
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _ = js.delete_stream(name).await;
    Ok(elapsed)
}

pub(super) async fn w3(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let name = "EDDY_BENCH_W3";
    let (js, stream) = stream(addr, name, "eddybench.w3").await?;
    publish_window(&js, "eddybench.w3", |_| payload.clone(), events).await?;
    let consumer = consumer(&stream, "eddy-w3", CONSUMERS * TAKE * 2).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for _ in 0..CONSUMERS {
        consumers.spawn(ack_until(consumer.clone(), Arc::clone(&acked), events));
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _ = js.delete_stream(name).await;
    Ok(elapsed)
}

/// A continuous pull of `consumer` (batches of ≤ 500 requested ahead).
/// Unlike fetches that expire, it loses nothing: a message the server
/// sends to an expired fetch comes back only after the ack wait (30 s).
async fn pull(consumer: &PullConsumer) -> Result<async_nats::jetstream::consumer::pull::Stream> {
    consumer
        .stream()
        .max_messages_per_batch(TAKE)
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pull: {e}"))
}

/// W4: a file-storage stream; each paced send publishes and awaits its
/// ack; one durable pull consumer read as a continuous stream (batches of
/// ≤ 500 pulled ahead), `ack()` per message.
pub(super) async fn w4(
    addr: &str,
    payload: Bytes,
    pace: latency::Pace,
) -> Result<latency::Latency> {
    let name = format!("EDDY_BENCH_W4_{}", pace.rate_per_sec);
    let subject = format!("eddybench.w4.{}", pace.rate_per_sec);
    let (js, stream) = stream(addr, &name, &subject).await?;
    let consumer = consumer(&stream, "eddy-w4", TAKE * 2).await?;
    let origin = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut messages = pull(&consumer).await?;
        let mut samples = Vec::with_capacity(pace.events as usize);
        let mut stall = latency::StallGuard::new();
        while (samples.len() as u64) < pace.events {
            match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
                Ok(Some(message)) => {
                    let message = message.map_err(|e| anyhow::anyhow!("pull: {e}"))?;
                    samples.push(latency::age(&message.payload, origin)?);
                    message
                        .ack()
                        .await
                        .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                }
                Ok(None) => anyhow::bail!("the consumer's message stream ended"),
                Err(_) => {}
            }
            stall.check(samples.len())?;
        }
        anyhow::Ok(samples)
    });
    let (sender, send_subject) = (js.clone(), subject.clone());
    let paced = latency::pace(pace, &payload, origin, move |_, data| {
        let (js, subject) = (sender.clone(), send_subject.clone());
        async move {
            js.publish(subject, data).await?.await?;
            Ok(())
        }
    })
    .await;
    let samples = receiver.await.context("the consumer panicked")?;
    let _ = js.delete_stream(&name).await;
    latency::Latency::new(samples?, paced?, pace)
}

/// W5: a backlog of `events` numbered messages (published first, not
/// timed), drained by four continuous pulls (batches ≤ 500) of one
/// durable pull consumer; a first delivery is answered with a delayed negative ack
/// (`AckKind::Nak(Some(delay))`), a redelivery with `ack()`.
pub(super) async fn w5(
    addr: &str,
    payload: Bytes,
    events: u64,
    delay: Duration,
) -> Result<retry::Retried> {
    use async_nats::jetstream::AckKind;
    let name = "EDDY_BENCH_W5";
    let (js, stream) = stream(addr, name, "eddybench.w5").await?;
    publish_window(
        &js,
        "eddybench.w5",
        |n| retry::numbered(&payload, n),
        events,
    )
    .await?;
    let consumer = consumer(&stream, "eddy-w5", CONSUMERS * TAKE * 2).await?;
    let tracker = Arc::new(retry::Tracker::default());
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for _ in 0..CONSUMERS {
        let (consumer, tracker) = (consumer.clone(), Arc::clone(&tracker));
        consumers.spawn(async move {
            let mut messages = pull(&consumer).await?;
            let mut stall = latency::StallGuard::new();
            let mut taken = 0;
            while tracker.redelivered() < events {
                let next = tokio::time::timeout(Duration::from_millis(100), messages.next());
                if let Ok(next) = next.await {
                    let message = next
                        .context("the consumer's message stream ended")?
                        .map_err(|e| anyhow::anyhow!("pull: {e}"))?;
                    taken += 1;
                    let kind = match tracker.delivered(retry::number(&message.payload)?) {
                        retry::Verdict::HandBack => AckKind::Nak(Some(delay)),
                        retry::Verdict::Ack | retry::Verdict::Duplicate => AckKind::Ack,
                    };
                    message
                        .ack_with(kind)
                        .await
                        .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                }
                stall.check(taken)?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let retried = tracker.finish(events, start.elapsed());
    let _ = js.delete_stream(name).await;
    retried
}
