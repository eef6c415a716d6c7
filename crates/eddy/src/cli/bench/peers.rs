//! `eddy bench peers`: Eddy side by side with the brokers already running
//! on this machine, through their own Rust clients, in one run (issue 5).
//!
//! So far, workload W1 — publish throughput: 1 KiB events, asynchronous
//! with a window of 256 in flight (Redis: pipelines of 100, its idiom):
//! - Eddy embedded (`publish` from a window of 256 tasks' futures), fsync
//!   `always` and `never`;
//! - NATS JetStream (async-nats; a file-storage stream; 256 publish acks
//!   outstanding), as the machine runs it (it acknowledges before fsync);
//! - Redis Streams (redis; `XADD` pipelined ×100), without persistence
//!   (as the machine runs it) and with `appendonly yes` + `appendfsync
//!   always` (set for the row, then restored).
//!
//! W2 — fan-out: one publisher (256 in flight) and four subscriptions
//! each receiving every event, consumed and acked while the publisher
//! runs (Eddy: four subscriptions, fetch ≤ 500 + `ack_all`; NATS: four
//! durable pull consumers; Redis: four consumer groups); the rate is
//! events published per second until every subscription acked all.
//!
//! And W3 — a work queue: a backlog drained by four consumers sharing one
//! subscription, every event acked explicitly (Eddy: fetch ≤ 500, one
//! `ack_all` per fetch, durable per its fsync policy; NATS: a durable pull
//! consumer, fetches of ≤ 500, `ack()` per message, which NATS does not
//! confirm; Redis: a consumer group, `XREADGROUP COUNT 500` then one
//! `XACK` per read). The backlog is loaded first and not timed.
//!
//! Rows are interleaved over rounds; each row's median and spread are
//! reported. A peer that is not reachable is reported as skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Bus, Event, TopicConfig};
use eddy_log::FsyncPolicy;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::runtime::Runtime;

use super::disk::pattern;
use super::report::{Row, RunInfo, Table};
use super::server::process::ServerProcess;
use super::server::sampler::Sampler;
use super::units::grouped;
use super::{Scratch, check_parent_exists};
use eddy_client::{Client, ClientConfig};

const NAME: &str = "eddy bench peers";
/// Publishes in flight at once (W1).
const WINDOW: usize = 256;
/// Commands per Redis pipeline.
const PIPELINE: usize = 100;
const EVENT_BYTES: usize = 1024;

type JetStream = async_nats::jetstream::Context;
type PullConsumer =
    async_nats::jetstream::consumer::Consumer<async_nats::jetstream::consumer::pull::Config>;
type RedisConnection = redis::aio::MultiplexedConnection;

#[derive(Debug, Args)]
pub struct BenchPeersArgs {
    /// Where Eddy's scratch directory goes [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Events per W1 run [default: 200000; 20000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    events: Option<u64>,
    /// Rounds, each running every row once [default: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
    /// NATS with JetStream
    #[arg(long, default_value = "127.0.0.1:4222", value_name = "HOST:PORT")]
    nats: String,
    /// Redis
    #[arg(long, default_value = "127.0.0.1:6379", value_name = "HOST:PORT")]
    redis: String,
    /// Also write the results as a markdown section into FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// A smoke run: 20,000 events, one round.
    #[arg(long)]
    quick: bool,
}

/// The workloads so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    W1,
    W2,
    W3,
}

/// One row: who, at which durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Eddy(FsyncPolicy),
    /// `eddy serve` (fsync `always`) through `eddy-client`.
    EddyServer,
    Nats,
    Redis {
        fsync_always: bool,
    },
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Eddy(_) => "eddy embedded",
            Target::EddyServer => "eddy server",
            Target::Nats => "nats jetstream",
            Target::Redis { .. } => "redis streams",
        }
    }

    fn durability(self) -> String {
        match self {
            Target::Eddy(policy) => format!("fsync {policy}"),
            Target::EddyServer => "fsync always".into(),
            Target::Nats => "file storage, acked before fsync (the machine's setting)".into(),
            Target::Redis {
                fsync_always: false,
            } => "no persistence (the machine's setting)".into(),
            Target::Redis { fsync_always: true } => "appendonly yes, appendfsync always".into(),
        }
    }

    fn client(self, workload: Workload) -> &'static str {
        match (workload, self) {
            (Workload::W1, Target::Eddy(_)) => "Bus::publish, 256 in flight",
            (_, Target::EddyServer) => "eddy-client (native protocol), publish, 256 in flight",
            (Workload::W1, Target::Nats) => "async-nats, jetstream publish, 256 acks outstanding",
            (Workload::W1, Target::Redis { .. }) => "redis-rs, XADD pipelined ×100, one connection",
            (Workload::W2, Target::Eddy(_)) => {
                "publish 256 in flight; 4 subscriptions, each fetch ≤ 500 + ack_all"
            }
            (Workload::W2, Target::Nats) => {
                "publish 256 acks outstanding; 4 durable pull consumers, ack() each"
            }
            (Workload::W2, Target::Redis { .. }) => {
                "XADD ×100; 4 consumer groups, XREADGROUP COUNT 500 + XACK"
            }
            (Workload::W3, Target::Eddy(_)) => "4 consumers: fetch ≤ 500, ack_all (durable acks)",
            (Workload::W3, Target::Nats) => {
                "4 consumers of a durable pull consumer: fetch ≤ 500, ack() each (unconfirmed)"
            }
            (Workload::W3, Target::Redis { .. }) => {
                "4 consumers of a group: XREADGROUP COUNT 500, one XACK per read"
            }
        }
    }
}

/// A row's rate in each round, or why it was skipped.
type Rates = Result<Vec<f64>, String>;

/// The rows, in the order they run in each round.
const ROWS: [(Workload, Target); 12] = [
    (Workload::W1, Target::Eddy(FsyncPolicy::Always)),
    (Workload::W1, Target::Eddy(FsyncPolicy::Never)),
    (Workload::W1, Target::EddyServer),
    (Workload::W1, Target::Nats),
    (
        Workload::W1,
        Target::Redis {
            fsync_always: false,
        },
    ),
    (Workload::W1, Target::Redis { fsync_always: true }),
    (Workload::W2, Target::Eddy(FsyncPolicy::Always)),
    (Workload::W2, Target::Nats),
    (
        Workload::W2,
        Target::Redis {
            fsync_always: false,
        },
    ),
    (Workload::W3, Target::Eddy(FsyncPolicy::Always)),
    (Workload::W3, Target::Nats),
    (
        Workload::W3,
        Target::Redis {
            fsync_always: false,
        },
    ),
];

pub fn run(args: &BenchPeersArgs) -> Result<()> {
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let events = args
        .events
        .unwrap_or(if args.quick { 20_000 } else { 200_000 });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("eddy-bench")
        .build()
        .context("start the async runtime")?;
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    run.print_heading(NAME);
    println!(
        "W1 publish, W2 fan-out, W3 work queue: {} events of 1 KiB per run, {rounds} rounds, rows interleaved",
        grouped(events as f64)
    );
    // The servers whose memory W1 samples: Eddy's own (started here), and
    // the peers' processes found by name.
    let mut server = ServerProcess::start(&scratch.join("server"))?;
    let server_addr = server.native.to_string();
    let pids = [
        (Target::EddyServer, Some(server.pid())),
        (Target::Nats, pid_of("nats-server")),
        (
            Target::Redis {
                fsync_always: false,
            },
            pid_of("redis-server"),
        ),
        (Target::Redis { fsync_always: true }, pid_of("redis-server")),
    ];
    // Per row: the rates of each round, or why it was skipped; W1's peak
    // resident memory of the server.
    let mut results: Vec<((Workload, Target), Rates)> =
        ROWS.iter().map(|&row| (row, Ok(Vec::new()))).collect();
    let mut peaks: Vec<Option<u64>> = vec![None; ROWS.len()];
    for round in 0..rounds {
        for (i, ((workload, target), result)) in results.iter_mut().enumerate() {
            let Ok(rates) = result else { continue };
            let pid = pids
                .iter()
                .find(|(t, _)| t == target)
                .and_then(|(_, pid)| *pid)
                .filter(|_| *workload == Workload::W1);
            let sampler = pid.map(Sampler::start).transpose()?;
            let dir = scratch.join(&format!("eddy-{round}-{i}"));
            // Every row starts with nothing dirty in the page cache: what
            // the rows before it wrote without fsync (Eddy under `never`,
            // the preloads, the peers' files) would otherwise be written
            // back during its fsyncs.
            flush_page_cache()?;
            let measured = match workload {
                Workload::W1 if *target == Target::EddyServer => {
                    runtime.block_on(eddy_server_w1(&server_addr, events))
                }
                Workload::W1 => w1(&runtime, *target, &dir, events, args),
                Workload::W2 => w2(&runtime, *target, &dir, events, args),
                Workload::W3 => w3(&runtime, *target, &dir, events, args),
            };
            if let Some(sampler) = sampler {
                let peak = sampler.take().bytes;
                peaks[i] = Some(peaks[i].unwrap_or(0).max(peak));
            }
            match measured {
                Ok(elapsed) => rates.push(events as f64 / elapsed.as_secs_f64()),
                Err(e) => *result = Err(format!("{e:#}")),
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    drop(runtime);
    server.stop()?;
    let rows: Vec<Row> = [Workload::W1, Workload::W2, Workload::W3]
        .into_iter()
        .flat_map(|w| {
            let of: Vec<(Target, Rates)> = results
                .iter()
                .filter(|((workload, _), _)| *workload == w)
                .map(|((_, t), r)| (*t, r.clone()))
                .collect();
            rows(w, &of)
        })
        .collect();
    let mut rows = rows;
    for (row, peak) in rows.iter_mut().zip(&peaks) {
        if let Some(bytes) = peak {
            row[7] = format!("{:.1} MiB", *bytes as f64 / (1024.0 * 1024.0));
        }
    }
    TABLE.print_header();
    for row in &rows {
        TABLE.print_row(row);
    }
    if let Some(path) = &args.markdown {
        let mut md = run.markdown_heading(NAME);
        md.push_str(&TABLE.markdown(&rows));
        super::write_section(path, NAME, &md)?;
    }
    scratch.remove()
}

const TABLE: Table = Table {
    columns: [
        "workload",
        "target",
        "durability",
        "median",
        "spread",
        "vs eddy always",
        "vs eddy never",
        "server peak RSS",
        "",
        "client",
    ],
    widths: [9, 15, 28, 20, 16, 14, 13, 15, 0],
    right_aligned: [false, false, false, true, true, true, true, false, false],
};

fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// The table: each target's median and spread, and Eddy's medians over
/// it (how many times faster Eddy is).
fn rows(workload: Workload, results: &[(Target, Rates)]) -> Vec<Row> {
    let eddy = |policy| {
        results.iter().find_map(|(t, r)| match (t, r) {
            (Target::Eddy(p), Ok(rates)) if *p == policy && !rates.is_empty() => {
                Some(median(rates))
            }
            _ => None,
        })
    };
    let (always, never) = (eddy(FsyncPolicy::Always), eddy(FsyncPolicy::Never));
    results
        .iter()
        .map(|(target, result)| {
            let (median_cell, spread, ratios) = match result {
                Ok(rates) if !rates.is_empty() => {
                    let m = median(rates);
                    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = rates.iter().copied().fold(0.0, f64::max);
                    let ratio = |e: Option<f64>| e.map_or("-".into(), |e| format!("{:.2}×", e / m));
                    (
                        format!("{} events/s", grouped(m)),
                        format!("{}–{}", grouped(lo), grouped(hi)),
                        [ratio(always), ratio(never)],
                    )
                }
                Ok(_) => ("-".into(), "-".into(), ["-".into(), "-".into()]),
                Err(why) => (
                    "skipped".into(),
                    "-".into(),
                    ["-".into(), format!("skipped: {why}")],
                ),
            };
            let [vs_always, vs_never] = ratios;
            [
                format!("{workload:?}"),
                target.name().into(),
                target.durability(),
                median_cell,
                spread,
                vs_always,
                vs_never,
                String::new(),
                String::new(),
                target.client(workload).into(),
            ]
        })
        .collect()
}

/// One W1 run of `target`: the time to have `events` acknowledged.
fn w1(
    runtime: &Runtime,
    target: Target,
    dir: &std::path::Path,
    events: u64,
    args: &BenchPeersArgs,
) -> Result<Duration> {
    let payload = Bytes::from(pattern(EVENT_BYTES));
    match target {
        Target::Eddy(fsync) => {
            let config = BrokerConfig {
                fsync,
                ..BrokerConfig::default()
            };
            let broker = Broker::open(dir, config)?;
            let elapsed = runtime.block_on(eddy_w1(&broker, payload, events));
            broker.close()?;
            elapsed
        }
        Target::EddyServer => bail!("the server row runs on its own"),
        Target::Nats => runtime.block_on(nats_w1(&args.nats, payload, events)),
        Target::Redis { fsync_always } => {
            runtime.block_on(redis_w1(&args.redis, fsync_always, payload, events))
        }
    }
}

async fn eddy_w1(bus: &Broker, payload: Bytes, events: u64) -> Result<Duration> {
    bus.create_topic("bench.w1", TopicConfig::with_partitions(4))
        .await?;
    let start = Instant::now();
    publish_window(bus, "bench.w1", &payload, events).await?;
    Ok(start.elapsed())
}

/// W1 through `eddy-client` to the server, on a topic of its own per run.
async fn eddy_server_w1(addr: &str, events: u64) -> Result<Duration> {
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
async fn publish_window<B: Bus>(bus: &B, topic: &str, payload: &Bytes, events: u64) -> Result<()> {
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

/// A fresh JetStream file-storage stream `name` on `subject`.
async fn nats_stream(
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

/// Publishes `events` messages of `payload`, 256 acks outstanding.
async fn nats_publish_window(
    js: &JetStream,
    subject: &str,
    payload: &Bytes,
    events: u64,
) -> Result<()> {
    let mut acks = FuturesUnordered::new();
    for _ in 0..events {
        if acks.len() >= WINDOW
            && let Some(ack) = acks.next().await
        {
            ack?;
        }
        let ack = js
            .publish(subject.to_string(), payload.clone())
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
async fn nats_consumer(
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
async fn nats_ack_until(consumer: PullConsumer, acked: Arc<AtomicU64>, target: u64) -> Result<()> {
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

/// A client of Redis and one connection, within 3 s.
async fn redis_connect(addr: &str) -> Result<(redis::Client, RedisConnection)> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = tokio::time::timeout(
        Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("connecting timed out")??;
    Ok((client, con))
}

/// `XADD`s `events` entries of `payload` to `key`, in pipelines of 100.
async fn redis_xadd(
    con: &mut RedisConnection,
    key: &str,
    payload: &Bytes,
    events: u64,
) -> Result<()> {
    let mut sent = 0;
    while sent < events {
        let mut pipe = redis::pipe();
        let n = (events - sent).min(PIPELINE as u64);
        for _ in 0..n {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("d")
                .arg(payload.as_ref())
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
async fn redis_ack_until(
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

/// The pid of the first process named `name` (its `comm`), if any.
fn pid_of(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == name).then_some(pid)
        })
}

async fn nats_w1(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let name = "EDDY_BENCH_W1";
    let (js, _) = nats_stream(addr, name, "eddybench.w1").await?;
    let start = Instant::now();
    nats_publish_window(&js, "eddybench.w1", &payload, events).await?;
    let elapsed = start.elapsed();
    let _ = js.delete_stream(name).await;
    Ok(elapsed)
}

async fn redis_w1(addr: &str, fsync_always: bool, payload: Bytes, events: u64) -> Result<Duration> {
    let (_, mut con) = redis_connect(addr).await?;
    let key = "eddybench:w1";
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    // The machine runs Redis without persistence; the row with
    // `appendfsync always` turns the append-only file on for itself and
    // restores what it found.
    let before = if fsync_always {
        Some(redis_aof(&mut con, true).await?)
    } else {
        None
    };
    let start = Instant::now();
    let measured = redis_xadd(&mut con, key, &payload, events)
        .await
        .map(|()| start.elapsed());
    if let Some(before) = before {
        redis_restore(&mut con, &before).await?;
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

async fn redis_config(con: &mut RedisConnection, name: &str) -> Result<String> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(con)
        .await?;
    pair.get(1)
        .cloned()
        .with_context(|| format!("CONFIG GET {name} answered {pair:?}"))
}

async fn redis_aof(con: &mut RedisConnection, on: bool) -> Result<AofSettings> {
    let before = AofSettings {
        appendonly: redis_config(con, "appendonly").await?,
        appendfsync: redis_config(con, "appendfsync").await?,
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

async fn redis_restore(con: &mut RedisConnection, before: &AofSettings) -> Result<()> {
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

/// Writes back every dirty page of the machine (`sync`), and waits for it.
fn flush_page_cache() -> Result<()> {
    let status = std::process::Command::new("sync")
        .status()
        .context("run sync")?;
    if !status.success() {
        bail!("sync exited with {status}");
    }
    Ok(())
}

/// Subscriptions of W2.
const FAN_OUT: usize = 4;

/// One W2 run of `target`: the time from the first publish until every
/// one of the four subscriptions has acked every event.
fn w2(
    runtime: &Runtime,
    target: Target,
    dir: &std::path::Path,
    events: u64,
    args: &BenchPeersArgs,
) -> Result<Duration> {
    let payload = Bytes::from(pattern(EVENT_BYTES));
    match target {
        Target::Eddy(fsync) => {
            let config = BrokerConfig {
                fsync,
                ..BrokerConfig::default()
            };
            let broker = Broker::open(dir, config)?;
            let elapsed = runtime.block_on(eddy_w2(&broker, payload, events));
            broker.close()?;
            elapsed
        }
        Target::EddyServer => bail!("W2 has no server row yet"),
        Target::Nats => runtime.block_on(nats_w2(&args.nats, payload, events)),
        Target::Redis { .. } => runtime.block_on(redis_w2(&args.redis, payload, events)),
    }
}

async fn eddy_w2(bus: &Broker, payload: Bytes, events: u64) -> Result<Duration> {
    bus.create_topic("bench.w2", TopicConfig::with_partitions(4))
        .await?;
    for s in 0..FAN_OUT {
        super::broker::create_shared_subscription(bus, &format!("bench-w2-{s}"), "bench.w2")
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

async fn nats_w2(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let name = "EDDY_BENCH_W2";
    let (js, stream) = nats_stream(addr, name, "eddybench.w2").await?;
    let mut consumers = tokio::task::JoinSet::new();
    let start = Instant::now();
    for s in 0..FAN_OUT {
        let consumer = nats_consumer(&stream, &format!("eddy-w2-{s}"), TAKE * 4).await?;
        consumers.spawn(nats_ack_until(consumer, Arc::default(), events));
    }
    nats_publish_window(&js, "eddybench.w2", &payload, events).await?;
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _ = js.delete_stream(name).await;
    Ok(elapsed)
}

async fn redis_w2(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    use redis::AsyncCommands;
    let (client, mut con) = redis_connect(addr).await?;
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
            redis_ack_until(con, (key, &group, "c"), (Arc::default(), events), Some(100)).await
        });
    }
    redis_xadd(&mut con, key, &payload, events).await?;
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    Ok(elapsed)
}

/// Consumers of W3.
const CONSUMERS: usize = 4;
/// Most events a W3 consumer takes at once.
const TAKE: usize = 500;

/// One W3 run of `target`: load the backlog (not timed), then the time
/// for four consumers to have every event acked.
fn w3(
    runtime: &Runtime,
    target: Target,
    dir: &std::path::Path,
    events: u64,
    args: &BenchPeersArgs,
) -> Result<Duration> {
    let payload = Bytes::from(pattern(EVENT_BYTES));
    match target {
        Target::Eddy(fsync) => {
            let preload = BrokerConfig {
                fsync: FsyncPolicy::Never,
                ..BrokerConfig::default()
            };
            let broker = Broker::open(dir, preload)?;
            let loaded = runtime.block_on(super::broker::consume::preload_data(
                &broker, "bench.w3", events, payload,
            ));
            broker.close()?;
            loaded?;
            let config = BrokerConfig {
                fsync,
                ..BrokerConfig::default()
            };
            let broker = Broker::open(dir, config)?;
            let drained = runtime.block_on(super::broker::consume::drain(
                std::slice::from_ref(&broker),
                "bench.w3",
                "bench-w3",
                events,
            ));
            broker.close()?;
            Ok(drained?.elapsed)
        }
        Target::EddyServer => bail!("W3 has no server row yet"),
        Target::Nats => runtime.block_on(nats_w3(&args.nats, payload, events)),
        Target::Redis { .. } => runtime.block_on(redis_w3(&args.redis, payload, events)),
    }
}

async fn nats_w3(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    let name = "EDDY_BENCH_W3";
    let (js, stream) = nats_stream(addr, name, "eddybench.w3").await?;
    nats_publish_window(&js, "eddybench.w3", &payload, events).await?;
    let consumer = nats_consumer(&stream, "eddy-w3", CONSUMERS * TAKE * 2).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for _ in 0..CONSUMERS {
        consumers.spawn(nats_ack_until(consumer.clone(), Arc::clone(&acked), events));
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _ = js.delete_stream(name).await;
    Ok(elapsed)
}

async fn redis_w3(addr: &str, payload: Bytes, events: u64) -> Result<Duration> {
    use redis::AsyncCommands;
    let (client, mut con) = redis_connect(addr).await?;
    let key = "eddybench:w3";
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    redis_xadd(&mut con, key, &payload, events).await?;
    let _: () = con.xgroup_create(key, "g", "0").await?;
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..CONSUMERS {
        // A connection each, as four consumer processes would have.
        let con = client.get_multiplexed_async_connection().await?;
        let acked = Arc::clone(&acked);
        consumers.spawn(async move {
            redis_ack_until(con, (key, "g", &format!("c{c}")), (acked, events), None).await
        });
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let elapsed = start.elapsed();
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_eddys_median_over_the_peers_and_skips_say_why() {
        let results = vec![
            (
                Target::Eddy(FsyncPolicy::Always),
                Ok(vec![100.0, 300.0, 200.0]),
            ),
            (Target::Eddy(FsyncPolicy::Never), Ok(vec![400.0])),
            (Target::Nats, Ok(vec![50.0, 100.0, 150.0])),
            (
                Target::Redis {
                    fsync_always: false,
                },
                Err("connection refused".to_string()),
            ),
        ];
        let rows = rows(Workload::W1, &results);
        assert_eq!(rows[0][0], "W1");
        assert_eq!(rows[0][3], "200 events/s");
        assert_eq!(rows[0][4], "100–300");
        assert_eq!(
            (rows[2][5].as_str(), rows[2][6].as_str()),
            ("2.00×", "4.00×")
        );
        assert_eq!(rows[3][3], "skipped");
        assert!(rows[3][6].contains("connection refused"));
    }
}
