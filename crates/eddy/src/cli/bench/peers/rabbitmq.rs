//! The RabbitMQ rows (lapin): a quorum queue, publisher confirms, manual
//! acks.
//!
//! Every queue is a durable quorum queue of its own (`eddy-bench-…`,
//! deleted before and after the run), every message persistent (delivery
//! mode 2) and published on a channel with publisher confirms. Publishing
//! and consuming use a connection each, as RabbitMQ advises (flow control
//! that slows a publishing connection then does not hold back its
//! consumers' acks); each consumer has a channel of its own with a
//! prefetch (`basic.qos`) of 1,000 and acks manually: it takes the
//! deliveries already buffered, up to 100, and acks them with one
//! `multiple` ack (the counterpart of Eddy's `ack_all` per fetch and of
//! Redis's one `XACK` per read; AMQP 0-9-1 does not confirm acks).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind, PublisherConfirm,
};

use super::{CONSUMERS, FAN_OUT, TAKE, WINDOW, latency, retry};

/// What the W1 row's client does.
pub(super) const CLIENT_W1: &str =
    "lapin, persistent basic_publish to a quorum queue, 256 confirms outstanding";
/// What the W2 row's client does.
pub(super) const CLIENT_W2: &str = "publish 256 confirms outstanding to a fanout exchange; 4 quorum queues, a consumer each (prefetch 1000), one multiple ack per ≤ 100";
/// What the W3 row's client does.
pub(super) const CLIENT_W3: &str = "4 consumers of one quorum queue, a channel each (prefetch 1000), one multiple ack per ≤ 100 (unconfirmed)";
/// What the W4 row's client does.
pub(super) const CLIENT_W4: &str = "each paced send publishes and awaits its confirm; one consumer (prefetch 1000), one multiple ack per ≤ 100";

/// What the W5 row's client does.
pub(super) const CLIENT_W5: &str = "4 consumers (prefetch 1000), ≤ 100 at a time: republish first deliveries to a retry quorum queue (TTL = delay, dead-letters back at-least-once), await the confirms, one multiple ack";

/// Deliveries a consumer's channel may hold unacked (`basic.qos`).
const PREFETCH: u16 = (TAKE * 2) as u16;
/// Most deliveries one `multiple` ack covers.
const ACK_EVERY: usize = 100;
/// How long a consumer waits for a delivery before it looks again whether
/// the consumers sharing its queue have acked everything.
const IDLE: Duration = Duration::from_millis(100);
/// `delivery_mode` of a persistent message.
const PERSISTENT: u8 = 2;

/// A connection to RabbitMQ at `addr` (`host:port`, as guest/guest on the
/// vhost `/`, or a whole `amqp://` URI), within 3 s.
async fn connect(addr: &str) -> Result<Connection> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("amqp://guest:guest@{addr}/%2f")
    };
    tokio::time::timeout(
        Duration::from_secs(3),
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .context("connecting timed out")?
    .with_context(|| format!("connect to RabbitMQ at {addr}"))
}

/// A connection to publish on, and its channel with publisher confirms.
async fn publisher(addr: &str) -> Result<(Connection, Channel)> {
    let connection = connect(addr).await?;
    let channel = confirm_channel(&connection).await?;
    Ok((connection, channel))
}

/// A channel of `connection` with publisher confirms.
async fn confirm_channel(connection: &Connection) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .context("open a channel")?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .context("turn publisher confirms on")?;
    Ok(channel)
}

/// A fresh durable quorum queue `name` with `arguments` besides its type:
/// deleted first if it exists.
async fn quorum_queue(channel: &Channel, name: &str, mut arguments: FieldTable) -> Result<()> {
    delete_queue(channel, name).await?;
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, arguments)
        .await
        .with_context(|| format!("declare the quorum queue {name}"))?;
    Ok(())
}

/// Deletes the queue `name`, if there is one.
async fn delete_queue(channel: &Channel, name: &str) -> Result<()> {
    channel
        .queue_delete(name.into(), QueueDeleteOptions::default())
        .await
        .with_context(|| format!("delete the queue {name}"))?;
    Ok(())
}

/// Publishes `data` as a persistent message; the returned future is its
/// confirm.
async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    data: &[u8],
) -> Result<PublisherConfirm> {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            data,
            BasicProperties::default().with_delivery_mode(PERSISTENT),
        )
        .await
        .context("publish")
}

/// Waits for a publish's confirm; a nack is an error.
async fn confirmed(confirm: PublisherConfirm) -> Result<()> {
    match confirm.await.context("publisher confirm")? {
        Confirmation::Ack(_) => Ok(()),
        Confirmation::Nack(_) => bail!("RabbitMQ nacked a publish"),
        Confirmation::NotRequested => bail!("publisher confirms are off on the channel"),
    }
}

/// Publishes `events` persistent messages, the n-th with `data(n)`, 256
/// confirms outstanding, and waits for the last confirm.
async fn publish_window(
    channel: &Channel,
    (exchange, routing_key): (&str, &str),
    data: impl Fn(u64) -> Bytes,
    events: u64,
) -> Result<()> {
    let mut confirms = FuturesUnordered::new();
    for n in 0..events {
        if confirms.len() >= WINDOW
            && let Some(confirm) = confirms.next().await
        {
            confirm?;
        }
        let confirm = publish(channel, exchange, routing_key, &data(n)).await?;
        confirms.push(confirmed(confirm));
    }
    while let Some(confirm) = confirms.next().await {
        confirm?;
    }
    Ok(())
}

/// A channel for one consumer, with a prefetch of 1,000.
async fn consumer_channel(connection: &Connection) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .context("open a channel")?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .context("set the prefetch")?;
    Ok(channel)
}

/// Starts consuming `queue` on `channel`, with manual acks.
async fn consume(channel: &Channel, queue: &str) -> Result<Consumer> {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consume {queue}"))
}

/// A consumer's next delivery, or why there is none.
fn delivered(next: Option<lapin::Result<Delivery>>) -> Result<Delivery> {
    next.context("the consumer was cancelled")?
        .context("consume")
}

/// A consumer's next batch: waits up to [`IDLE`] for a delivery (`None`
/// if none came), then takes the deliveries already buffered, up to 100
/// in all.
async fn next_batch(consumer: &mut Consumer) -> Result<Option<Vec<Delivery>>> {
    let Ok(next) = tokio::time::timeout(IDLE, consumer.next()).await else {
        return Ok(None);
    };
    let mut batch = vec![delivered(next)?];
    while batch.len() < ACK_EVERY
        && let Some(next) = consumer.next().now_or_never()
    {
        batch.push(delivered(next)?);
    }
    Ok(Some(batch))
}

/// Acks a batch of one channel's deliveries with one `multiple` ack.
async fn ack_batch(batch: &[Delivery]) -> Result<()> {
    if let Some(last) = batch.last() {
        last.ack(BasicAckOptions { multiple: true })
            .await
            .context("ack")?;
    }
    Ok(())
}

/// Consumes until `acked` — shared by the consumers of one queue — reaches
/// `target`, calling `received` with the data of each delivery as it is
/// taken. Acks in batches: the deliveries already buffered, at most 100,
/// with one `multiple` ack. Returns when its last ack was sent (`None` if
/// it acked nothing); fails when no ack was counted for
/// [`latency::STALL`].
async fn ack_until(
    mut consumer: Consumer,
    mut received: impl FnMut(&[u8]) -> Result<()>,
    acked: Arc<AtomicU64>,
    target: u64,
) -> Result<Option<Instant>> {
    let mut last_ack = None;
    let mut stall = latency::StallGuard::new();
    loop {
        let count = acked.load(Ordering::Relaxed);
        if count >= target {
            return Ok(last_ack);
        }
        stall.check(count as usize)?;
        let Some(batch) = next_batch(&mut consumer).await? else {
            continue;
        };
        for delivery in &batch {
            received(&delivery.data)?;
        }
        ack_batch(&batch).await?;
        last_ack = Some(Instant::now());
        acked.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
}

/// W1: the time to publish `events` persistent messages to a quorum queue,
/// 256 confirms outstanding, until the last confirm arrived.
pub(super) async fn w1(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let queue = "eddy-bench-w1";
    let (connection, channel) = publisher(addr).await?;
    quorum_queue(&channel, queue, FieldTable::default()).await?;
    let start = Instant::now();
    publish_window(&channel, ("", queue), |_| payload.clone(), events).await?;
    let elapsed = start.elapsed();
    delete_queue(&channel, queue).await?;
    let _ = connection.close(200, "OK".into()).await;
    Ok(elapsed)
}

/// W2, fan-out: a fanout exchange bound to four quorum queues, a consumer
/// on each; the time from the first publish (256 confirms outstanding)
/// until every consumer acked all `events`.
pub(super) async fn w2(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let exchange = "eddy-bench-w2";
    let queues: Vec<String> = (0..FAN_OUT).map(|q| format!("eddy-bench-w2-{q}")).collect();
    let (connection, channel) = publisher(addr).await?;
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .context("delete the exchange")?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .context("declare the fanout exchange")?;
    let consumers = connect(addr).await?;
    let mut subscriptions = Vec::with_capacity(FAN_OUT);
    for queue in &queues {
        quorum_queue(&channel, queue, FieldTable::default()).await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("bind a queue to the exchange")?;
        // The queues are empty: consuming starts before the clock.
        subscriptions.push(consume(&consumer_channel(&consumers).await?, queue).await?);
    }
    let start = Instant::now();
    let mut acking = tokio::task::JoinSet::new();
    for consumer in subscriptions {
        acking.spawn(ack_until(consumer, |_| Ok(()), Arc::default(), events));
    }
    publish_window(&channel, (exchange, ""), |_| payload.clone(), events).await?;
    while let Some(done) = acking.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    for queue in &queues {
        delete_queue(&channel, queue).await?;
    }
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .context("delete the exchange")?;
    let _ = consumers.close(200, "OK".into()).await;
    let _ = connection.close(200, "OK".into()).await;
    Ok(elapsed)
}

/// W3, a work queue: `events` messages loaded into one quorum queue
/// (confirmed, not timed), then the time for four consumers, each on its
/// own channel, to have acked them all (until the last ack was sent).
pub(super) async fn w3(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let queue = "eddy-bench-w3";
    let (connection, channel) = publisher(addr).await?;
    quorum_queue(&channel, queue, FieldTable::default()).await?;
    publish_window(&channel, ("", queue), |_| payload.clone(), events).await?;
    let consumers = connect(addr).await?;
    let mut channels = Vec::with_capacity(CONSUMERS);
    for _ in 0..CONSUMERS {
        channels.push(consumer_channel(&consumers).await?);
    }
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut acking = tokio::task::JoinSet::new();
    for consumer in channels {
        let acked = Arc::clone(&acked);
        acking.spawn(async move {
            let subscription = consume(&consumer, queue).await?;
            ack_until(subscription, |_| Ok(()), acked, events).await
        });
    }
    // A consumer left idle at the end notices only after a wait: the
    // clock stops at the last ack.
    let mut last_ack = start;
    while let Some(done) = acking.join_next().await {
        last_ack = last_ack.max(done??.unwrap_or(start));
    }
    let elapsed = last_ack - start;
    delete_queue(&channel, queue).await?;
    let _ = consumers.close(200, "OK".into()).await;
    let _ = connection.close(200, "OK".into()).await;
    Ok(elapsed)
}

/// W4, latency: a quorum queue with one consumer (prefetch 1,000, acks as
/// above); each paced send publishes one persistent message and awaits its
/// confirm. Every delivery's publish-to-receipt time is a sample.
pub(super) async fn w4(
    addr: &str,
    payload: Bytes,
    pace: latency::Pace,
) -> Result<latency::Latency> {
    let queue = format!("eddy-bench-w4-{}", pace.rate_per_sec);
    let (connection, channel) = publisher(addr).await?;
    quorum_queue(&channel, &queue, FieldTable::default()).await?;
    let consumers = connect(addr).await?;
    let subscription = consume(&consumer_channel(&consumers).await?, &queue).await?;
    let origin = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(pace.events as usize);
        let record = |data: &[u8]| -> Result<()> {
            samples.push(latency::age(data, origin)?);
            Ok(())
        };
        ack_until(subscription, record, Arc::default(), pace.events).await?;
        anyhow::Ok(samples)
    });
    let (sender, send_queue) = (channel.clone(), queue.clone());
    // lapin numbers a publish's confirm and queues its frames in two
    // steps: concurrent publishes on one channel can pair a confirm with
    // another's message and leave one waiting for ever. One at a time.
    let publishing = Arc::new(tokio::sync::Mutex::new(()));
    let paced = latency::pace(pace, &payload, origin, move |_, data| {
        let (channel, queue) = (sender.clone(), send_queue.clone());
        let publishing = Arc::clone(&publishing);
        async move {
            let confirm = {
                let _turn = publishing.lock().await;
                publish(&channel, "", &queue, &data).await?
            };
            confirmed(confirm).await
        }
    })
    .await;
    let samples = receiver.await.context("the consumer panicked")?;
    delete_queue(&channel, &queue).await?;
    let _ = consumers.close(200, "OK".into()).await;
    let _ = connection.close(200, "OK".into()).await;
    latency::Latency::new(samples?, paced?, pace)
}

/// The arguments of a retry queue that holds each message `delay`, then
/// dead-letters it through the default exchange back to `queue`, at least
/// once.
fn retry_arguments(queue: &str, delay: Duration) -> FieldTable {
    let text = |s: &str| AMQPValue::LongString(s.into());
    let mut arguments = FieldTable::default();
    arguments
        .insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(delay.as_millis() as i64),
        )
        .insert("x-dead-letter-exchange".into(), text(""))
        .insert("x-dead-letter-routing-key".into(), text(queue))
        .insert("x-dead-letter-strategy".into(), text("at-least-once"))
        .insert("x-overflow".into(), text("reject-publish"));
    arguments
}

/// W5, as RabbitMQ does delayed retries without plugins: a backlog of
/// `events` numbered messages in a quorum queue (published first,
/// confirmed, not timed), drained by four consumers, each on a channel of
/// its own (prefetch 1,000, manual acks). A first delivery is handed back
/// by publishing it, persistent and confirmed, to a retry queue — also a
/// durable quorum queue: RabbitMQ 3.10 accepts both its arguments — with
/// `x-message-ttl` = `delay`, which dead-letters each message when it
/// expires through the default exchange (`x-dead-letter-exchange` "")
/// back to the main queue (`x-dead-letter-routing-key`), at least once
/// (`x-dead-letter-strategy` at-least-once, with the `x-overflow`
/// reject-publish it requires); a redelivery (or a duplicate) is acked.
/// Each consumer takes the deliveries already buffered, up to 100,
/// publishes their hand-backs on a confirm channel of its own (on the
/// publishing connection), awaits those confirms, and only then acks the
/// whole batch with one `multiple` ack.
pub(super) async fn w5(
    addr: &str,
    payload: Bytes,
    events: u64,
    delay: Duration,
) -> Result<retry::Retried> {
    let (queue, retry_queue) = ("eddy-bench-w5", "eddy-bench-w5-retry");
    let (connection, channel) = publisher(addr).await?;
    quorum_queue(&channel, queue, FieldTable::default()).await?;
    quorum_queue(&channel, retry_queue, retry_arguments(queue, delay)).await?;
    publish_window(
        &channel,
        ("", queue),
        |n| retry::numbered(&payload, n),
        events,
    )
    .await?;
    let consumers = connect(addr).await?;
    let mut channels = Vec::with_capacity(CONSUMERS);
    for _ in 0..CONSUMERS {
        channels.push((
            consumer_channel(&consumers).await?,
            confirm_channel(&connection).await?,
        ));
    }
    let tracker = Arc::new(retry::Tracker::default());
    // Deliveries taken by all consumers: the run stalled if this stops.
    let taken = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (consumer, hand_back) in channels {
        let (tracker, taken) = (Arc::clone(&tracker), Arc::clone(&taken));
        tasks.spawn(async move {
            let mut subscription = consume(&consumer, queue).await?;
            let mut stall = latency::StallGuard::new();
            while tracker.redelivered() < events {
                stall.check(taken.load(Ordering::Relaxed) as usize)?;
                let Some(batch) = next_batch(&mut subscription).await? else {
                    continue;
                };
                let mut confirms = Vec::new();
                for delivery in &batch {
                    match tracker.delivered(retry::number(&delivery.data)?) {
                        retry::Verdict::HandBack => confirms.push(confirmed(
                            publish(&hand_back, "", retry_queue, &delivery.data).await?,
                        )),
                        retry::Verdict::Ack | retry::Verdict::Duplicate => {}
                    }
                }
                futures_util::future::try_join_all(confirms).await?;
                ack_batch(&batch).await?;
                taken.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let retried = tracker.finish(events, start.elapsed());
    delete_queue(&channel, queue).await?;
    delete_queue(&channel, retry_queue).await?;
    let _ = consumers.close(200, "OK".into()).await;
    let _ = connection.close(200, "OK".into()).await;
    retried
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "127.0.0.1:5672";
    /// The longest a workload of the test may take (each takes well under
    /// a second here): past it the test fails naming the workload, where
    /// it would otherwise hang CI.
    const BOUND: Duration = Duration::from_secs(120);

    async fn bounded<T>(name: &str, work: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(BOUND, work)
            .await
            .unwrap_or_else(|_| panic!("{name} did not finish within {BOUND:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_against_the_local_rabbitmq() {
        match bounded("connect", connect(ADDR)).await {
            Ok(connection) => drop(connection.close(200, "OK".into()).await),
            Err(e) => {
                eprintln!("skipped: RabbitMQ not reachable at {ADDR}: {e:#}");
                return;
            }
        }
        let payload = Bytes::from(vec![7u8; 1024]);
        let events = 1_000;
        for (name, run) in [
            ("W1", bounded("W1", w1(ADDR, payload.clone(), events)).await),
            ("W2", bounded("W2", w2(ADDR, payload.clone(), events)).await),
            ("W3", bounded("W3", w3(ADDR, payload.clone(), events)).await),
        ] {
            let elapsed = run.unwrap_or_else(|e| panic!("{name}: {e:#}"));
            eprintln!("{name}: {events} events in {elapsed:?}");
            assert!(elapsed > Duration::ZERO, "{name}");
        }
        let pace = latency::Pace {
            rate_per_sec: 2_000,
            events,
        };
        let measured = bounded("W4", w4(ADDR, payload.clone(), pace))
            .await
            .unwrap_or_else(|e| panic!("W4: {e:#}"));
        assert_eq!(measured.samples.len(), 1_000);
        let at = |q: f64| measured.samples[((q * 1_000.0) as usize).min(999)];
        eprintln!(
            "W4 at 2,000/s: p50 {:?}, p99 {:?}, max {:?}",
            at(0.5),
            at(0.99),
            at(1.0)
        );
        let delay = Duration::from_millis(100);
        let retried = bounded("W5", w5(ADDR, payload, events, delay))
            .await
            .unwrap_or_else(|e| panic!("W5: {e:#}"));
        assert_eq!(retried.delays.len(), 1_000);
        eprintln!(
            "W5: {events} events in {:?} ({:.0}/s), {}",
            retried.elapsed,
            events as f64 / retried.elapsed.as_secs_f64(),
            retried.summary(delay)
        );
        assert!(
            retried.quantile(0.5) >= delay,
            "a message came back before its TTL: {}",
            retried.summary(delay)
        );
    }
}
