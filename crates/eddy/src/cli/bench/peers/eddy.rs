//! The Eddy rows, written against the `Bus` trait: embedded (every handle
//! the same `Broker`), and `eddy serve` through `eddy-client` (a
//! connection per handle). `buses[0]` publishes and administers; the
//! consumers use `buses[1..]`, round robin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use eddy_bus::{AckId, Bus, Event, FetchOptions, NackOptions, TopicConfig};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{CONSUMERS, FAN_OUT, TAKE, WINDOW, latency, retry};
use crate::cli::bench::broker::consume::drain;
use crate::cli::bench::broker::create_shared_subscription;

/// Partitions of every topic the Eddy rows use.
const PARTITIONS: u32 = 4;

/// A topic name of its own for each run (the server outlives the runs),
/// and a stem for its subscriptions' names.
fn fresh(workload: &str) -> (String, String) {
    let now = crate::utc::now_ms();
    (
        format!("bench.{workload}.{now}"),
        format!("bench-{workload}-{now}"),
    )
}

/// The bus of consumer `i`: `buses[1..]` round robin, or `buses[0]` alone.
fn consumer_bus<B>(buses: &[B], i: usize) -> &B {
    match buses.len() {
        0 | 1 => &buses[0],
        n => &buses[1 + i % (n - 1)],
    }
}

/// W1: publish `events` events, 256 in flight, into a fresh topic.
pub(super) async fn w1<B: Bus>(bus: &B, payload: Bytes, events: u64) -> Result<Duration> {
    let (topic, _) = fresh("w1");
    bus.create_topic(&topic, TopicConfig::with_partitions(PARTITIONS))
        .await?;
    let start = Instant::now();
    publish_window(bus, &topic, |_| payload.clone(), events).await?;
    let elapsed = start.elapsed();
    bus.delete_topic(&topic).await?;
    Ok(elapsed)
}

/// Publishes `events` events to `topic`, the `n`th with `data(n)`, 256 in
/// flight, each with its own id and one of 64 keys.
pub(super) async fn publish_window<B: Bus>(
    bus: &B,
    topic: &str,
    data: impl Fn(u64) -> Bytes,
    events: u64,
) -> Result<()> {
    let mut in_flight = FuturesUnordered::new();
    for n in 0..events {
        if in_flight.len() >= WINDOW
            && let Some(done) = in_flight.next().await
        {
            done?;
        }
        let event = Event::new("BenchPeers", data(n))
            .with_id(format!("p-{n}"))
            .with_key(format!("k{}", n % 64));
        in_flight.push(bus.publish(topic, event));
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(())
}

/// W2: one publisher (`buses[0]`, 256 in flight) and four subscriptions,
/// each read by a consumer on a bus of its own that fetches ≤ 500 and
/// acks each fetch with `ack_all`, while the publisher runs; the time
/// until every subscription acked every event.
pub(super) async fn w2<B: Bus + Clone + Send + Sync + 'static>(
    buses: &[B],
    payload: Bytes,
    events: u64,
) -> Result<Duration> {
    let (topic, stem) = fresh("w2");
    let publisher = &buses[0];
    publisher
        .create_topic(&topic, TopicConfig::with_partitions(PARTITIONS))
        .await?;
    let names: Vec<String> = (0..FAN_OUT).map(|s| format!("{stem}-{s}")).collect();
    for name in &names {
        create_shared_subscription(publisher, name, &topic).await?;
    }
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for (s, name) in names.iter().enumerate() {
        let bus = consumer_bus(buses, s).clone();
        let name = name.clone();
        consumers.spawn(async move {
            let options = FetchOptions {
                max: TAKE as u32,
                wait_ms: 100,
            };
            let mut acked = 0;
            while acked < events {
                let batch = bus.fetch(&name, options.clone()).await?;
                let ids: Vec<AckId> = batch.into_iter().map(|d| d.ack_id).collect();
                if ids.is_empty() {
                    continue;
                }
                for result in bus.ack_all(&name, &ids).await? {
                    result?;
                }
                acked += ids.len() as u64;
            }
            anyhow::Ok(())
        });
    }
    publish_window(publisher, &topic, |_| payload.clone(), events).await?;
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    for name in &names {
        publisher.delete_subscription(name).await?;
    }
    publisher.delete_topic(&topic).await?;
    Ok(elapsed)
}

/// W3: a backlog of `events` events published through `buses[0]` one by
/// one, 256 in flight, as the peers' backlogs are (not timed), then
/// drained by four consumers of one subscription on `buses[1..]`: fetch
/// ≤ 500, one `ack_all` per fetch, durable per the fsync policy; the time
/// until every event was acked.
pub(super) async fn w3<B: Bus + Clone + Send + Sync + 'static>(
    buses: &[B],
    payload: Bytes,
    events: u64,
) -> Result<Duration> {
    let (topic, subscription) = fresh("w3");
    buses[0]
        .create_topic(&topic, TopicConfig::with_partitions(PARTITIONS))
        .await?;
    publish_window(&buses[0], &topic, |_| payload.clone(), events).await?;
    let consumers = if buses.len() > 1 { &buses[1..] } else { buses };
    let drained = drain(consumers, &topic, &subscription, events).await?;
    buses[0].delete_subscription(&subscription).await?;
    buses[0].delete_topic(&topic).await?;
    Ok(drained.elapsed)
}

/// W4 on any Eddy bus: `publisher` sends at the pace, each event its own
/// `publish` task; one consumer on `consumer` fetches (≤ 500, waiting up
/// to 100 ms) and acks each batch with `ack_all` on a task of its own, at
/// most 8 in flight, so the next fetch does not wait for an ack's fsync.
pub(super) async fn w4<B: Bus + Clone>(
    publisher: &B,
    consumer: &B,
    payload: Bytes,
    pace: latency::Pace,
) -> Result<latency::Latency> {
    let (topic, subscription) = fresh(&format!("w4-{}", pace.rate_per_sec));
    publisher
        .create_topic(&topic, TopicConfig::with_partitions(PARTITIONS))
        .await?;
    create_shared_subscription(publisher, &subscription, &topic).await?;
    let origin = Instant::now();
    let receiver = tokio::spawn(receive(
        consumer.clone(),
        subscription.clone(),
        origin,
        pace.events,
    ));
    let sender = publisher.clone();
    let send_topic = topic.clone();
    let paced = latency::pace(pace, &payload, origin, move |n, data| {
        let (bus, topic) = (sender.clone(), send_topic.clone());
        async move {
            let event = Event::new("BenchLatency", data).with_id(format!("l{n}"));
            bus.publish(&topic, event).await?;
            Ok(())
        }
    })
    .await;
    let samples = receiver.await.context("the consumer panicked")?;
    let measured = latency::Latency::new(samples?, paced?, pace);
    publisher.delete_subscription(&subscription).await?;
    publisher.delete_topic(&topic).await?;
    measured
}

/// W4's consumer: the age of every event it receives, until `events`.
async fn receive<B: Bus + Clone>(
    bus: B,
    subscription: String,
    origin: Instant,
    events: u64,
) -> Result<Vec<Duration>> {
    let options = FetchOptions {
        max: TAKE as u32,
        wait_ms: 100,
    };
    let acks = Arc::new(tokio::sync::Semaphore::new(8));
    let mut acking = tokio::task::JoinSet::new();
    let mut samples = Vec::with_capacity(events as usize);
    let mut stall = latency::StallGuard::new();
    while (samples.len() as u64) < events {
        let got = bus.fetch(&subscription, options.clone()).await?;
        let mut ids: Vec<AckId> = Vec::with_capacity(got.len());
        for d in got {
            samples.push(latency::age(&d.event.event.data, origin)?);
            ids.push(d.ack_id);
        }
        stall.check(samples.len())?;
        if ids.is_empty() {
            continue;
        }
        let permit = Arc::clone(&acks).acquire_owned().await?;
        let (bus, subscription) = (bus.clone(), subscription.clone());
        acking.spawn(async move {
            let results = bus.ack_all(&subscription, &ids).await?;
            drop(permit);
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            anyhow::Ok(())
        });
        while let Some(done) = acking.try_join_next() {
            done??;
        }
    }
    while let Some(done) = acking.join_next().await {
        done??;
    }
    Ok(samples)
}

/// W5 on any Eddy bus: a backlog of `events` numbered events (loaded
/// first, not timed), drained by four consumers of one subscription that
/// fetch ≤ 500; a first delivery is `nack`ed with `delay` (the nacks of a
/// fetch concurrently), a redelivery acked with the fetch's `ack_all`.
pub(super) async fn w5<B: Bus + Clone + Send + Sync + 'static>(
    buses: &[B],
    payload: Bytes,
    events: u64,
    delay: Duration,
) -> Result<retry::Retried> {
    let (topic, subscription) = fresh("w5");
    let bus = &buses[0];
    bus.create_topic(&topic, TopicConfig::with_partitions(PARTITIONS))
        .await?;
    create_shared_subscription(bus, &subscription, &topic).await?;
    publish_window(bus, &topic, |n| retry::numbered(&payload, n), events).await?;
    let tracker = Arc::new(retry::Tracker::default());
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..CONSUMERS {
        let (bus, tracker) = (consumer_bus(buses, c).clone(), Arc::clone(&tracker));
        let subscription = subscription.clone();
        consumers.spawn(async move {
            let options = FetchOptions {
                max: TAKE as u32,
                wait_ms: 100,
            };
            let nack = NackOptions {
                delay_ms: Some(delay.as_millis() as u64),
                error: None,
            };
            let mut stall = latency::StallGuard::new();
            let mut taken = 0;
            while tracker.redelivered() < events {
                let got = bus.fetch(&subscription, options.clone()).await?;
                taken += got.len();
                stall.check(taken)?;
                let (mut back, mut done) = (Vec::new(), Vec::new());
                for d in got {
                    match tracker.delivered(retry::number(&d.event.event.data)?) {
                        retry::Verdict::HandBack => back.push(d.ack_id),
                        retry::Verdict::Ack | retry::Verdict::Duplicate => done.push(d.ack_id),
                    }
                }
                let nacks: FuturesUnordered<_> = back
                    .iter()
                    .map(|id| bus.nack(&subscription, id, nack.clone()))
                    .collect();
                for nacked in nacks.collect::<Vec<_>>().await {
                    nacked?;
                }
                if !done.is_empty() {
                    for acked in bus.ack_all(&subscription, &done).await? {
                        acked?;
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let retried = tracker.finish(events, start.elapsed());
    bus.delete_subscription(&subscription).await?;
    bus.delete_topic(&topic).await?;
    retried
}
