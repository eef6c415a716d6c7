//! The Eddy rows: embedded, and `eddy serve` through `eddy-client`.

use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use eddy_broker::Broker;
use eddy_bus::{Bus, Event, TopicConfig};
use eddy_client::{Client, ClientConfig};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{EVENT_BYTES, FAN_OUT, TAKE, WINDOW};
use crate::cli::bench::disk::pattern;

pub(super) async fn w1(bus: &Broker, payload: Bytes, events: u64) -> Result<Duration> {
    bus.create_topic("bench.w1", TopicConfig::with_partitions(4))
        .await?;
    let start = Instant::now();
    publish_window(bus, "bench.w1", &payload, events).await?;
    Ok(start.elapsed())
}

/// W1 through `eddy-client` to the server, on a topic of its own per run.
pub(super) async fn server_w1(addr: &str, events: u64) -> Result<Duration> {
    let client = Client::connect(addr, ClientConfig::default()).await?;
    let topic = format!("bench.w1.{}", crate::utc::now_ms());
    client
        .create_topic(&topic, TopicConfig::with_partitions(4))
        .await?;
    let payload = Bytes::from(pattern(EVENT_BYTES));
    let start = Instant::now();
    publish_window(&client, &topic, &payload, events).await?;
    let elapsed = start.elapsed();
    client.delete_topic(&topic).await?;
    client.close().await;
    Ok(elapsed)
}

/// Publishes `events` events of `payload` to `topic`, 256 in flight, each
/// with its own id and one of 64 keys.
pub(super) async fn publish_window<B: Bus>(
    bus: &B,
    topic: &str,
    payload: &Bytes,
    events: u64,
) -> Result<()> {
    let mut in_flight = FuturesUnordered::new();
    for n in 0..events {
        if in_flight.len() >= WINDOW
            && let Some(done) = in_flight.next().await
        {
            done?;
        }
        let event = Event::new("BenchPeers", payload.clone())
            .with_id(format!("p-{n}"))
            .with_key(format!("k{}", n % 64));
        in_flight.push(bus.publish(topic, event));
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(())
}

pub(super) async fn w2(bus: &Broker, payload: Bytes, events: u64) -> Result<Duration> {
    bus.create_topic("bench.w2", TopicConfig::with_partitions(4))
        .await?;
    for s in 0..FAN_OUT {
        crate::cli::bench::broker::create_shared_subscription(
            bus,
            &format!("bench-w2-{s}"),
            "bench.w2",
        )
        .await?;
    }
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for s in 0..FAN_OUT {
        let bus = bus.clone();
        consumers.spawn(async move {
            let name = format!("bench-w2-{s}");
            let mut acked = 0;
            while acked < events {
                let options = eddy_bus::FetchOptions {
                    max: TAKE as u32,
                    wait_ms: 100,
                };
                let batch = bus.fetch(&name, options).await?;
                let ids: Vec<eddy_bus::AckId> = batch.into_iter().map(|d| d.ack_id).collect();
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
    publish_window(bus, "bench.w2", &payload, events).await?;
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    Ok(start.elapsed())
}
