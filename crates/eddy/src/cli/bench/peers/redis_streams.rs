//! The Redis Streams rows (redis-rs): `XADD` pipelines, consumer groups
//! read with `XREADGROUP` and acked with `XACK`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use super::{CONSUMERS, FAN_OUT, PIPELINE, TAKE, latency, retry};

type RedisConnection = redis::aio::MultiplexedConnection;

/// A client of Redis and one connection, within 3 s.
async fn connect(addr: &str) -> Result<(redis::Client, RedisConnection)> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = tokio::time::timeout(
        Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("connecting timed out")??;
    Ok((client, con))
}

/// `XADD`s `events` entries to `key`, the `n`th with `data(n)`, in
/// pipelines of 100.
async fn xadd(
    con: &mut RedisConnection,
    key: &str,
    data: impl Fn(u64) -> Bytes,
    events: u64,
) -> Result<()> {
    let mut sent = 0;
    while sent < events {
        let mut pipe = redis::pipe();
        let n = (events - sent).min(PIPELINE as u64);
        for i in sent..sent + n {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("d")
                .arg(data(i).as_ref())
                .ignore();
        }
        let _: () = pipe.query_async(&mut *con).await?;
        sent += n;
    }
    Ok(())
}

/// Reads (≤ 500 at a time) as `consumer` of `group` and acks each read
/// with one `XACK`, until `acked` reaches `target`; a read with nothing
/// to return waits up to `block_ms` (W2, where the publisher is still
/// running) or returns at once (W3, a backlog), as the runs before this
/// helper did.
async fn ack_until(
    mut con: RedisConnection,
    (key, group, consumer): (&str, &str, &str),
    (acked, target): (Arc<AtomicU64>, u64),
    block_ms: Option<usize>,
) -> Result<()> {
    use redis::AsyncCommands;
    use redis::streams::{StreamReadOptions, StreamReadReply};
    let options = StreamReadOptions::default()
        .group(group, consumer)
        .count(TAKE);
    let options = match block_ms {
        Some(ms) => options.block(ms),
        None => options,
    };
    while acked.load(Ordering::Relaxed) < target {
        let reply: Option<StreamReadReply> = con.xread_options(&[key], &[">"], &options).await?;
        let ids: Vec<String> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|id| id.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let n: u64 = con.xack(key, group, &ids).await?;
        acked.fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

pub(super) async fn w1(
    addr: &str,
    fsync_always: bool,
    payload: Bytes,
    events: u64,
) -> Result<Duration> {
    let (_, mut con) = connect(addr).await?;
    let key = "eddybench:w1";
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    // The machine runs Redis without persistence; the row with
    // `appendfsync always` turns the append-only file on for itself and
    // restores what it found.
    let before = if fsync_always {
        Some(aof(&mut con, true).await?)
    } else {
        None
    };
    let start = Instant::now();
    let measured = xadd(&mut con, key, |_| payload.clone(), events)
        .await
        .map(|()| start.elapsed());
    if let Some(before) = before {
        restore(&mut con, &before).await?;
    }
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    measured
}

/// Redis's `appendonly` and `appendfsync` before the row changed them.
#[derive(Debug)]
struct AofSettings {
    appendonly: String,
    appendfsync: String,
}

async fn config(con: &mut RedisConnection, name: &str) -> Result<String> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(con)
        .await?;
    pair.get(1)
        .cloned()
        .with_context(|| format!("CONFIG GET {name} answered {pair:?}"))
}

async fn aof(con: &mut RedisConnection, on: bool) -> Result<AofSettings> {
    let before = AofSettings {
        appendonly: config(con, "appendonly").await?,
        appendfsync: config(con, "appendfsync").await?,
    };
    if on {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendfsync")
            .arg("always")
            .query_async(con)
            .await?;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendonly")
            .arg("yes")
            .query_async(con)
            .await?;
        // Turning the file on rewrites it in the background first.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query_async(con)
                .await?;
            if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_enabled:1") {
                break;
            }
            if Instant::now() > deadline {
                bail!("Redis did not finish turning on its append-only file in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(before)
}

async fn restore(con: &mut RedisConnection, before: &AofSettings) -> Result<()> {
    for (name, value) in [
        ("appendonly", &before.appendonly),
        ("appendfsync", &before.appendfsync),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(con)
            .await?;
    }
    Ok(())
}

pub(super) async fn w2(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    use redis::AsyncCommands;
    let (client, mut con) = connect(addr).await?;
    let key = "eddybench:w2";
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    let groups: Vec<String> = (0..FAN_OUT).map(|g| format!("g{g}")).collect();
    for group in &groups {
        let _: () = con.xgroup_create_mkstream(key, group, "$").await?;
    }
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for group in groups {
        let con = client.get_multiplexed_async_connection().await?;
        consumers.spawn(async move {
            ack_until(con, (key, &group, "c"), (Arc::default(), events), Some(100)).await
        });
    }
    xadd(&mut con, key, |_| payload.clone(), events).await?;
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    Ok(elapsed)
}

pub(super) async fn w3(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    use redis::AsyncCommands;
    let (client, mut con) = connect(addr).await?;
    let key = "eddybench:w3";
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    xadd(&mut con, key, |_| payload.clone(), events).await?;
    let _: () = con.xgroup_create(key, "g", "0").await?;
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..CONSUMERS {
        // A connection each, as four consumer processes would have.
        let con = client.get_multiplexed_async_connection().await?;
        let acked = Arc::clone(&acked);
        consumers.spawn(async move {
            ack_until(con, (key, "g", &format!("c{c}")), (acked, events), None).await
        });
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    Ok(elapsed)
}

/// W4: each paced send is one `XADD` on a shared multiplexed connection
/// (concurrent sends are pipelined by the client); one consumer of a
/// group, `XREADGROUP COUNT 500 BLOCK 100` then one `XACK` per read.
pub(super) async fn w4(
    addr: &str,
    payload: Bytes,
    pace: latency::Pace,
) -> Result<latency::Latency> {
    use redis::AsyncCommands;
    use redis::streams::{StreamReadOptions, StreamReadReply};
    let (client, mut con) = connect(addr).await?;
    let key = format!("eddybench:w4:{}", pace.rate_per_sec);
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut con).await?;
    let _: () = con.xgroup_create_mkstream(&key, "g", "$").await?;
    let origin = Instant::now();
    let mut reader = client.get_multiplexed_async_connection().await?;
    let read_key = key.clone();
    let receiver = tokio::spawn(async move {
        let options = StreamReadOptions::default()
            .group("g", "c")
            .count(TAKE)
            .block(100);
        let mut samples = Vec::with_capacity(pace.events as usize);
        let mut stall = latency::StallGuard::new();
        while (samples.len() as u64) < pace.events {
            let reply: Option<StreamReadReply> =
                reader.xread_options(&[&read_key], &[">"], &options).await?;
            let mut ids = Vec::new();
            for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                let data: Vec<u8> = entry.get("d").context("an entry without its data")?;
                samples.push(latency::age(&data, origin)?);
                ids.push(entry.id);
            }
            stall.check(samples.len())?;
            if !ids.is_empty() {
                let _: u64 = reader.xack(&read_key, "g", &ids).await?;
            }
        }
        anyhow::Ok(samples)
    });
    let (sender, send_key) = (con.clone(), key.clone());
    let paced = latency::pace(pace, &payload, origin, move |_, data| {
        let (mut con, key) = (sender.clone(), send_key.clone());
        async move {
            let _: String = redis::cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("d")
                .arg(data.as_ref())
                .query_async(&mut con)
                .await?;
            Ok(())
        }
    })
    .await;
    let samples = receiver.await.context("the consumer panicked")?;
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut con).await?;
    latency::Latency::new(samples?, paced?, pace)
}

/// W5, as Redis Streams does retries: a backlog of `events` numbered
/// entries (added first, not timed) read by four consumers of a group
/// (`XREADGROUP COUNT 500`), which leave each first delivery pending
/// instead of acking it; a fifth connection claims entries pending for
/// `delay` with `XAUTOCLAIM … COUNT 500` (scanning again every 10 ms once
/// a pass is through) and `XACK`s them.
pub(super) async fn w5(
    addr: &str,
    payload: Bytes,
    events: u64,
    delay: Duration,
) -> Result<retry::Retried> {
    use redis::AsyncCommands;
    use redis::streams::{StreamAutoClaimReply, StreamReadOptions, StreamReadReply};
    let (client, mut con) = connect(addr).await?;
    let key = "eddybench:w5";
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    xadd(&mut con, key, |n| retry::numbered(&payload, n), events).await?;
    let _: () = con.xgroup_create(key, "g", "0").await?;
    let tracker = Arc::new(retry::Tracker::default());
    let read = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONSUMERS {
        let mut con = client.get_multiplexed_async_connection().await?;
        let (tracker, read) = (Arc::clone(&tracker), Arc::clone(&read));
        tasks.spawn(async move {
            let options = StreamReadOptions::default()
                .group("g", format!("c{c}"))
                .count(TAKE);
            while read.load(Ordering::Relaxed) < events {
                let reply: Option<StreamReadReply> =
                    con.xread_options(&[key], &[">"], &options).await?;
                let entries: Vec<_> = reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .collect();
                if entries.is_empty() {
                    break;
                }
                for entry in &entries {
                    let data: Vec<u8> = entry.get("d").context("an entry without its data")?;
                    tracker.delivered(retry::number(&data)?);
                }
                read.fetch_add(entries.len() as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    let mut claimer = client.get_multiplexed_async_connection().await?;
    let claimed = Arc::clone(&tracker);
    tasks.spawn(async move {
        let mut cursor = "0-0".to_string();
        let mut stall = latency::StallGuard::new();
        while claimed.redelivered() < events {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(key)
                .arg("g")
                .arg("claimer")
                .arg(delay.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(TAKE)
                .query_async(&mut claimer)
                .await?;
            let mut ids = Vec::with_capacity(reply.claimed.len());
            for entry in reply.claimed {
                let data: Vec<u8> = entry.get("d").context("an entry without its data")?;
                // An entry claimed before its reader noted it stays pending
                // and is claimed again.
                if claimed.delivered(retry::number(&data)?) != retry::Verdict::HandBack {
                    ids.push(entry.id);
                }
            }
            if !ids.is_empty() {
                let _: u64 = claimer.xack(key, "g", &ids).await?;
            }
            stall.check(claimed.redelivered() as usize)?;
            cursor = reply.next_stream_id;
            if cursor == "0-0" {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        anyhow::Ok(())
    });
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let retried = tracker.finish(events, start.elapsed());
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    retried
}
