//! The publish and consume + ack workloads over the server's HTTP/JSON
//! API, with the same shapes as over the native protocol: 4 tasks
//! publishing batches of 100 events of 1 KiB (`POST
//! /v1/topics/{topic}/events`, a JSON array, the data in `data_base64`),
//! and 4 consumers of one shared subscription fetching up to 500
//! deliveries (`POST /v1/subscriptions/{name}/fetch`) and acking them in
//! one call (`POST /v1/subscriptions/{name}/ack`). The tasks share one
//! HTTP client, whose pool keeps a connection alive per task.
//!
//! Topics and subscriptions are created, and the results checked, over the
//! native protocol.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eddy_bus::Bus;
use eddy_client::Client;
use serde_json::{Value, json};

use crate::cli::bench::broker::consume::{self, Progress, Tally};
use crate::cli::bench::broker::publish::{self, PublishRun};
use crate::cli::bench::broker::{STALL, create_shared_subscription};
use crate::cli::bench::disk::pattern;

/// How long one fetch waits when nothing is ready.
pub const FETCH_WAIT_MS: u64 = 1000;
/// The type of each published event.
const EVENT_TYPE: &str = "BenchPublished";
/// Most characters of a failed response's body quoted in the error.
const ERROR_BODY_CHARS: usize = 300;

/// An HTTP client for the server's API at `addr`.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Arc<str>,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(STALL)
            .pool_max_idle_per_host(publish::WRITERS.max(consume::CONSUMERS))
            .build()
            .context("build the HTTP client")?;
        Ok(Api {
            http,
            base: Arc::from(format!("http://{addr}/v1")),
        })
    }

    /// POSTs `body` (JSON text) to `path` under `/v1`; returns the
    /// response's body, failing unless the status is a success.
    async fn post(&self, path: &str, body: String) -> Result<bytes::Bytes> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("read the response to POST {url}"))?;
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .take(ERROR_BODY_CHARS)
                .collect();
            bail!("POST {url} answered {status}: {text}");
        }
        Ok(body)
    }
}

/// Creates `topic` (4 partitions, through `native`), publishes into it
/// over HTTP from [`publish::WRITERS`] tasks until `duration` has passed,
/// and checks that the topic counts every event once.
pub async fn publish_for(
    api: &Api,
    native: &Client,
    topic: &str,
    partitions: u32,
    duration: Duration,
) -> Result<PublishRun> {
    native
        .create_topic(topic, eddy_bus::TopicConfig::with_partitions(partitions))
        .await
        .context("create the topic")?;
    let data: Arc<str> = Arc::from(crate::cli::json::base64(&pattern(publish::VALUE_BYTES)));
    let path: Arc<str> = Arc::from(format!("/topics/{topic}/events"));
    let start = Instant::now();
    let deadline = start + duration;
    let publishers: Vec<_> = (0..publish::WRITERS)
        .map(|w| {
            tokio::spawn(publish_until(
                api.clone(),
                Arc::clone(&path),
                Arc::clone(&data),
                w,
                deadline,
            ))
        })
        .collect();
    let mut events = 0;
    for p in publishers {
        events += p.await.context("a publisher task panicked")??;
    }
    let elapsed = start.elapsed();
    let stats = native.topic_stats(topic).await?;
    if stats.published != events || stats.duplicates != 0 {
        bail!(
            "{events} events were published over HTTP, the topic counts {} ({} duplicates)",
            stats.published,
            stats.duplicates
        );
    }
    Ok(PublishRun {
        events,
        disk_bytes: stats.size_bytes,
        elapsed,
    })
}

/// One publisher: a POST of [`publish::BATCH`] events again and again until
/// `deadline`, each event with an id of its own (`h<publisher>-<n>`).
async fn publish_until(
    api: Api,
    path: Arc<str>,
    data_base64: Arc<str>,
    publisher: usize,
    deadline: Instant,
) -> Result<u64> {
    let mut events = 0u64;
    let one_len = data_base64.len() + EVENT_TYPE.len() + 64;
    while Instant::now() < deadline {
        let mut body = String::with_capacity(publish::BATCH * one_len + 2);
        body.push('[');
        for i in 0..publish::BATCH as u64 {
            if i > 0 {
                body.push(',');
            }
            let _ = write!(
                body,
                r#"{{"type":"{EVENT_TYPE}","id":"h{publisher}-{}","data_base64":"{data_base64}"}}"#,
                events + i
            );
        }
        body.push(']');
        api.post(&path, body).await.context("publish a batch")?;
        events += publish::BATCH as u64;
    }
    Ok(events)
}

/// Creates the shared `subscription` on `topic` (holding `events` events,
/// through `native`), drains it over HTTP with [`consume::CONSUMERS`]
/// tasks, and checks through `native` that every event was acked once and
/// none redelivered.
pub async fn drain(
    api: &Api,
    native: &Client,
    topic: &str,
    subscription: &str,
    events: u64,
) -> Result<Tally> {
    create_shared_subscription(native, subscription, topic).await?;
    let progress = Arc::new(Progress::new(events));
    let start = Instant::now();
    let consumers: Vec<_> = (0..consume::CONSUMERS)
        .map(|_| {
            tokio::spawn(consume(
                api.clone(),
                subscription.to_string(),
                Arc::clone(&progress),
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for c in consumers {
        let c = c.await.context("a consumer task panicked")??;
        tally.fetches += c.fetches;
        tally.empty_fetches += c.empty_fetches;
        tally.ack_calls += c.ack_calls;
    }
    tally.elapsed = progress.done_at().unwrap_or_else(Instant::now) - start;
    consume::check_drained(native, subscription, events).await?;
    Ok(tally)
}

/// One consumer: fetch, ack what came, until every event is acked.
async fn consume(api: Api, subscription: String, progress: Arc<Progress>) -> Result<Tally> {
    let fetch_path = format!("/subscriptions/{subscription}/fetch");
    let ack_path = format!("/subscriptions/{subscription}/ack");
    let fetch_body = json!({ "max": consume::FETCH_MAX, "wait_ms": FETCH_WAIT_MS }).to_string();
    let mut tally = Tally::default();
    let mut last_progress = Instant::now();
    while !progress.is_done() {
        let body = api.post(&fetch_path, fetch_body.clone()).await?;
        tally.fetches += 1;
        let ack_ids = ack_ids(&body)?;
        if ack_ids.is_empty() {
            tally.empty_fetches += 1;
            progress.check_stall(last_progress)?;
            continue;
        }
        last_progress = Instant::now();
        let n = ack_ids.len() as u64;
        api.post(&ack_path, json!({ "ack_ids": ack_ids }).to_string())
            .await
            .context("ack the deliveries")?;
        tally.ack_calls += 1;
        progress.add(n);
    }
    Ok(tally)
}

/// The ack ids of a fetch response, `{"deliveries":[{"ack_id":…},…]}`,
/// as they came; fails on a delivery that is not a first attempt.
fn ack_ids(body: &[u8]) -> Result<Vec<Value>> {
    let mut response: Value =
        serde_json::from_slice(body).context("the fetch response is not JSON")?;
    let Some(Value::Array(deliveries)) = response.get_mut("deliveries").map(Value::take) else {
        bail!("the fetch response has no `deliveries` array");
    };
    deliveries
        .into_iter()
        .map(|mut d| {
            if d.get("attempt")
                .and_then(Value::as_u64)
                .is_some_and(|a| a != 1)
            {
                bail!("an event was delivered more than once");
            }
            match d.get_mut("ack_id").map(Value::take) {
                Some(id) if !id.is_null() => Ok(id),
                _ => bail!("a delivery without an `ack_id`"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_ids_are_taken_as_they_came() {
        // Proves the fetch response is read for its ack ids, whatever their
        // JSON form, and that a redelivery or a malformed response fails.
        let ok = br#"{"deliveries":[{"ack_id":"t/0/5/1","attempt":1},{"ack_id":7}]}"#;
        assert_eq!(ack_ids(ok).unwrap(), vec![json!("t/0/5/1"), json!(7)]);
        assert!(ack_ids(br#"{"deliveries":[]}"#).unwrap().is_empty());
        assert!(ack_ids(br#"{"deliveries":[{"ack_id":"a","attempt":2}]}"#).is_err());
        assert!(ack_ids(br#"{"deliveries":[{"attempt":1}]}"#).is_err());
        assert!(ack_ids(br#"{"events":[]}"#).is_err());
    }
}
