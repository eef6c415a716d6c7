//! `eddy bench peers`: Eddy side by side with the brokers already running
//! on this machine, through their own Rust clients, in one run (issue 5).
//!
//! The targets: Eddy embedded (fsync `always` and `never`), Eddy as a
//! server (`eddy serve`, fsync `always`) through `eddy-client` and, for
//! W1, over HTTP; NATS JetStream (async-nats, a file-storage stream, as
//! the machine runs it: acknowledged before fsync); Redis Streams
//! (redis-rs, without persistence as the machine runs it, and for W1 with
//! `appendonly yes` + `appendfsync always`, set for the row and restored);
//! RabbitMQ (lapin, a quorum queue, publisher confirms, manual acks).
//!
//! The workloads, 1 KiB events:
//! - W1 publish: 256 in flight (Redis: pipelines of 100, its idiom);
//! - W2 fan-out: one publisher and four subscriptions each acking every
//!   event, while the publisher runs;
//! - W3 work queue: a backlog (loaded first, not timed) drained by four
//!   consumers of one subscription with explicit acks;
//! - W4 latency: publish → deliver at 5,000 and 20,000 events/s from a
//!   paced sender ([`latency`]);
//! - W5 retry: every event handed back once with a delay, then acked
//!   ([`retry`]);
//! - and each server's peak resident memory during W1.
//!
//! Each peer's module says exactly what its client does. Rows are
//! interleaved over rounds, with `sync` before each; each row's median
//! and spread are reported, and Eddy's ratio over each peer. A peer that
//! is not reachable is reported as skipped, with why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::Bus as _;
use eddy_log::FsyncPolicy;
use tokio::runtime::Runtime;

use super::disk::pattern;
use super::report::RunInfo;
use super::server::process::ServerProcess;
use super::server::sampler::Sampler;
use super::target;
use super::units::{duration, grouped};
use super::{Scratch, check_parent_exists};

mod chart;
mod eddy;
mod jetstream;
mod latency;
mod rabbitmq;
mod redis_streams;
mod report;
mod retry;

const NAME: &str = "eddy bench peers";
/// Publishes in flight at once (W1, W2).
const WINDOW: usize = 256;
/// Commands per Redis pipeline.
const PIPELINE: usize = 100;
const EVENT_BYTES: usize = 1024;
/// Subscriptions of W2.
const FAN_OUT: usize = 4;
/// Consumers of W3 and W5.
const CONSUMERS: usize = 4;
/// Most events a consumer takes at once.
const TAKE: usize = 500;

#[derive(Debug, Args)]
pub struct BenchPeersArgs {
    /// Where Eddy's scratch directory goes [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Events per W1, W2 and W3 run [default: 200000; 20000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    events: Option<u64>,
    /// Seconds each W4 run sends for [default: 5; 1 with --quick]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=600))]
    latency_secs: Option<u64>,
    /// Events per W5 run [default: 20000; 2000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    retry_events: Option<u64>,
    /// The delay W5 hands each event back with
    #[arg(long, default_value_t = retry::DELAY_MS, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    retry_delay_ms: u64,
    /// Rounds, each running every row once [default: 3; 1 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
    /// NATS with JetStream
    #[arg(long, default_value = "127.0.0.1:4222", value_name = "HOST:PORT")]
    nats: String,
    /// Redis
    #[arg(long, default_value = "127.0.0.1:6379", value_name = "HOST:PORT")]
    redis: String,
    /// RabbitMQ (user guest, password guest)
    #[arg(long, default_value = "127.0.0.1:5672", value_name = "HOST:PORT")]
    rabbitmq: String,
    /// Also write the results as a markdown section into FILE, and the
    /// chart beside it (`benchmarks-peers.png`).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Only these workloads (w1 … w5, comma-separated) [default: all]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = ["w1", "w2", "w3", "w4", "w5"])]
    only: Vec<String>,
    /// Only these targets (comma-separated) [default: all]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = ["embedded", "server", "http", "nats", "redis", "rabbitmq"])]
    targets: Vec<String>,
    /// A smoke run: small counts, one round.
    #[arg(long)]
    quick: bool,
}

/// What each row runs, from the flags.
#[derive(Debug, Clone)]
struct Plan {
    events: u64,
    latency_secs: u64,
    retry_events: u64,
    retry_delay: Duration,
    rounds: u32,
    nats: String,
    redis: String,
    rabbitmq: String,
}

impl Plan {
    fn from_args(args: &BenchPeersArgs) -> Plan {
        let quick = args.quick;
        Plan {
            events: args.events.unwrap_or(if quick { 20_000 } else { 200_000 }),
            latency_secs: args.latency_secs.unwrap_or(if quick { 1 } else { 5 }),
            retry_events: args
                .retry_events
                .unwrap_or(if quick { 2_000 } else { 20_000 }),
            retry_delay: Duration::from_millis(args.retry_delay_ms),
            rounds: args.rounds.unwrap_or(if quick { 1 } else { 3 }),
            nats: args.nats.clone(),
            redis: args.redis.clone(),
            rabbitmq: args.rabbitmq.clone(),
        }
    }

    /// The pace of a W4 run at `rate_per_sec`.
    fn pace(&self, rate_per_sec: u64) -> latency::Pace {
        latency::Pace {
            rate_per_sec,
            events: rate_per_sec * self.latency_secs,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    W1,
    W2,
    W3,
    W4 { rate_per_sec: u64 },
    W5,
}

impl Workload {
    /// The workload's flag name (`w1` … `w5`).
    fn flag(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 { .. } => "w4",
            Workload::W5 => "w5",
        }
    }

    fn name(self) -> String {
        match self {
            Workload::W1 => "W1 publish".into(),
            Workload::W2 => "W2 fan-out".into(),
            Workload::W3 => "W3 work queue".into(),
            Workload::W4 { rate_per_sec } => {
                format!("W4 latency {}/s", grouped(rate_per_sec as f64))
            }
            Workload::W5 => "W5 retry".into(),
        }
    }
}

/// One row: who, at which durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Eddy(FsyncPolicy),
    /// `eddy serve` (fsync `always`) through `eddy-client`.
    EddyServer,
    /// `eddy serve` (fsync `always`) over HTTP/JSON.
    EddyHttp,
    Nats,
    Redis {
        fsync_always: bool,
    },
    RabbitMq,
}

const REDIS: Target = Target::Redis {
    fsync_always: false,
};
const REDIS_ALWAYS: Target = Target::Redis { fsync_always: true };
const ALWAYS: Target = Target::Eddy(FsyncPolicy::Always);
const NEVER: Target = Target::Eddy(FsyncPolicy::Never);

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Eddy(_) => "eddy embedded",
            Target::EddyServer => "eddy server",
            Target::EddyHttp => "eddy server, HTTP",
            Target::Nats => "nats jetstream",
            Target::Redis { .. } => "redis streams",
            Target::RabbitMq => "rabbitmq",
        }
    }

    /// The target's flag name (`--targets`).
    fn flag(self) -> &'static str {
        match self {
            Target::Eddy(_) => "embedded",
            Target::EddyServer => "server",
            Target::EddyHttp => "http",
            Target::Nats => "nats",
            Target::Redis { .. } => "redis",
            Target::RabbitMq => "rabbitmq",
        }
    }

    fn durability(self) -> String {
        match self {
            Target::Eddy(policy) => format!("fsync {policy}"),
            Target::EddyServer | Target::EddyHttp => "fsync always".into(),
            Target::Nats => "file storage, acked before fsync (the machine's setting)".into(),
            Target::Redis {
                fsync_always: false,
            } => "no persistence (the machine's setting)".into(),
            Target::Redis { fsync_always: true } => "appendonly yes, appendfsync always".into(),
            Target::RabbitMq => "quorum queue (fsync before confirm)".into(),
        }
    }

    /// The name and durability, for the chart's legend.
    fn label(self) -> String {
        match self {
            Target::Eddy(policy) => format!("eddy, fsync {policy}"),
            Target::EddyServer => "eddy server".into(),
            Target::EddyHttp => "eddy server, HTTP".into(),
            Target::Nats => "nats jetstream".into(),
            Target::Redis {
                fsync_always: false,
            } => "redis, no persistence".into(),
            Target::Redis { fsync_always: true } => "redis, appendfsync always".into(),
            Target::RabbitMq => "rabbitmq, quorum queue".into(),
        }
    }

    /// The process whose memory W1 samples, if any.
    fn server_process(self) -> Option<&'static str> {
        match self {
            Target::Eddy(_) => None,
            Target::EddyServer | Target::EddyHttp => Some("eddy"),
            Target::Nats => Some("nats-server"),
            Target::Redis { .. } => Some("redis-server"),
            Target::RabbitMq => Some("beam.smp"),
        }
    }

    fn client(self, workload: Workload) -> String {
        let eddy_api = match self {
            Target::EddyServer => "eddy-client (native protocol), one connection each: ",
            _ => "",
        };
        let eddy = |what: &str| format!("{eddy_api}{what}");
        match (workload, self) {
            (Workload::W1, Target::Eddy(_) | Target::EddyServer) => eddy("publish, 256 in flight"),
            (_, Target::EddyHttp) => {
                "4 tasks POSTing batches of 100 (JSON, data in base64), for 3 s".into()
            }
            (Workload::W2, Target::Eddy(_) | Target::EddyServer) => {
                eddy("publish 256 in flight; 4 subscriptions, each fetch ≤ 500 + ack_all")
            }
            (Workload::W3, Target::Eddy(_) | Target::EddyServer) => {
                eddy("4 consumers: fetch ≤ 500, ack_all (durable acks)")
            }
            (Workload::W4 { .. }, Target::Eddy(_) | Target::EddyServer) => eddy(
                "a publish task per paced event; 1 consumer: fetch ≤ 500 (wait 100 ms), ack_all ≤ 8 in flight",
            ),
            (Workload::W5, Target::Eddy(_) | Target::EddyServer) => {
                eddy("4 consumers: fetch ≤ 500; nack(delay) the first delivery, ack_all the second")
            }
            (Workload::W1, Target::Nats) => "async-nats, jetstream publish, 256 acks outstanding".into(),
            (Workload::W2, Target::Nats) => {
                "publish 256 acks outstanding; 4 durable pull consumers, ack() each".into()
            }
            (Workload::W3, Target::Nats) => {
                "4 consumers of a durable pull consumer: fetch ≤ 500, ack() each (unconfirmed)".into()
            }
            (Workload::W4 { .. }, Target::Nats) => {
                "a publish + ack wait per paced event; 1 pull consumer stream (batches ≤ 500), ack() each".into()
            }
            (Workload::W5, Target::Nats) => {
                "4 continuous pulls (batches ≤ 500); Nak(delay) the first delivery, ack() the second".into()
            }
            (Workload::W1, Target::Redis { .. }) => "redis-rs, XADD pipelined ×100, one connection".into(),
            (Workload::W2, Target::Redis { .. }) => {
                "XADD ×100; 4 consumer groups, XREADGROUP COUNT 500 + XACK".into()
            }
            (Workload::W3, Target::Redis { .. }) => {
                "4 consumers of a group: XREADGROUP COUNT 500, one XACK per read".into()
            }
            (Workload::W4 { .. }, Target::Redis { .. }) => {
                "an XADD per paced event (multiplexed); 1 consumer: XREADGROUP COUNT 500 BLOCK 100 + XACK".into()
            }
            (Workload::W5, Target::Redis { .. }) => {
                "4 readers leave first deliveries pending; XAUTOCLAIM min-idle = delay every 10 ms, XACK".into()
            }
            (Workload::W1, Target::RabbitMq) => rabbitmq::CLIENT_W1.into(),
            (Workload::W2, Target::RabbitMq) => rabbitmq::CLIENT_W2.into(),
            (Workload::W3, Target::RabbitMq) => rabbitmq::CLIENT_W3.into(),
            (Workload::W4 { .. }, Target::RabbitMq) => rabbitmq::CLIENT_W4.into(),
            (Workload::W5, Target::RabbitMq) => rabbitmq::CLIENT_W5.into(),
        }
    }
}

/// The rows, in the order they run in each round.
fn rows_to_run() -> Vec<(Workload, Target)> {
    let common = [
        ALWAYS,
        NEVER,
        Target::EddyServer,
        Target::Nats,
        REDIS,
        Target::RabbitMq,
    ];
    let w1 = [
        ALWAYS,
        NEVER,
        Target::EddyServer,
        Target::EddyHttp,
        Target::Nats,
        REDIS,
        REDIS_ALWAYS,
        Target::RabbitMq,
    ];
    let mut rows: Vec<_> = w1.iter().map(|&t| (Workload::W1, t)).collect();
    let rest = [
        Workload::W2,
        Workload::W3,
        Workload::W4 {
            rate_per_sec: latency::RATES[0],
        },
        Workload::W4 {
            rate_per_sec: latency::RATES[1],
        },
        Workload::W5,
    ];
    for workload in rest {
        rows.extend(common.iter().map(|&t| (workload, t)));
    }
    rows
}

/// What one run of a row measured.
#[derive(Debug, Clone)]
enum Measured {
    /// W1–W3: events per second.
    Rate(f64),
    /// W4.
    Latency(latency::Latency),
    /// W5, and its events per second.
    Retry(retry::Retried, f64),
}

impl Measured {
    /// Events per second, or for W4 the p99 in seconds.
    fn value(&self) -> f64 {
        match self {
            Measured::Rate(rate) | Measured::Retry(_, rate) => *rate,
            Measured::Latency(latency) => latency.quantile(0.99).as_secs_f64(),
        }
    }
}

/// A row's runs, or why it was skipped.
type Runs = Result<Vec<Measured>, String>;

/// Where the Eddy server runs, and how to reach it.
struct Server {
    process: ServerProcess,
    http: Option<super::server::http::Api>,
}

pub fn run(args: &BenchPeersArgs) -> Result<()> {
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let plan = Plan::from_args(args);
    let runtime = super::async_runtime()?;
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    run.print_heading(NAME);
    println!(
        "W1–W3: {} events of 1 KiB per run; W4: {} s at each rate; W5: {} events, delay {}; {} rounds, rows interleaved",
        grouped(plan.events as f64),
        plan.latency_secs,
        grouped(plan.retry_events as f64),
        duration(plan.retry_delay),
        plan.rounds,
    );
    let process = ServerProcess::start(&scratch.join("server"))?;
    let http = match process.http {
        Some(addr) => Some(super::server::http::Api::new(addr)?),
        None => None,
    };
    let mut server = Server { process, http };
    let to_run: Vec<_> = rows_to_run()
        .into_iter()
        .filter(|(w, _)| args.only.is_empty() || args.only.iter().any(|o| o == w.flag()))
        .filter(|(_, t)| args.targets.is_empty() || args.targets.iter().any(|o| o == t.flag()))
        .collect();
    let mut results: Vec<((Workload, Target), Runs)> =
        to_run.iter().map(|&row| (row, Ok(Vec::new()))).collect();
    let mut peaks: Vec<Option<u64>> = vec![None; to_run.len()];
    for round in 0..plan.rounds {
        for (i, ((workload, target), runs)) in results.iter_mut().enumerate() {
            let Ok(measured) = runs else { continue };
            let pid = match target.server_process() {
                Some("eddy") => Some(server.process.pid()),
                Some(name) => pid_of(name),
                None => None,
            };
            let sampler = pid
                .filter(|_| *workload == Workload::W1)
                .map(Sampler::start)
                .transpose()?;
            let dir = scratch.join(&format!("eddy-{round}-{i}"));
            // Every row starts with nothing dirty in the page cache: what
            // the rows before it wrote without fsync (Eddy under `never`,
            // the preloads, the peers' files) would otherwise be written
            // back during its fsyncs.
            flush_page_cache()?;
            let result = measure(&runtime, (*workload, *target), &dir, &plan, &server);
            if let Some(sampler) = sampler {
                let peak = sampler.take().bytes;
                peaks[i] = Some(peaks[i].unwrap_or(0).max(peak));
            }
            match result {
                Ok(m) => measured.push(m),
                Err(e) => *runs = Err(format!("{e:#}")),
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    drop(runtime);
    server.process.stop()?;
    let mut rows = report::table_rows(&results, &plan);
    for (row, peak) in rows.iter_mut().zip(&peaks) {
        if let Some(bytes) = peak {
            row[7] = format!("{:.1} MiB", *bytes as f64 / (1024.0 * 1024.0));
        }
    }
    let judged = report::judge(&results, &peaks);
    report::TABLE.print_header();
    for row in &rows {
        report::TABLE.print_row(row);
    }
    target::print("Targets (issue 5):", &judged);
    if let Some(path) = &args.markdown {
        let mut md = run.markdown_heading(NAME);
        md.push_str(&report::TABLE.markdown(&rows));
        md.push_str(&target::markdown(&judged));
        let png = path.with_file_name(CHART_FILE);
        let (throughput, latencies) = report::chart_data(&results);
        if chart::write_png(&png, &throughput, &latencies)? {
            println!("chart: {}", png.display());
            md.push_str(&format!(
                "\n![Throughput and latency, Eddy and its peers]({CHART_FILE})\n"
            ));
        } else {
            println!("chart: skipped, no TrueType font found to label it");
            md.push_str("\n(No chart: the machine had no TrueType font to label it.)\n");
        }
        super::write_section(path, NAME, &md)?;
    }
    scratch.remove()
}

/// The chart's file, beside the markdown file.
const CHART_FILE: &str = "benchmarks-peers.png";

/// One run of a row.
fn measure(
    runtime: &Runtime,
    (workload, target): (Workload, Target),
    dir: &Path,
    plan: &Plan,
    server: &Server,
) -> Result<Measured> {
    let payload = Bytes::from(pattern(EVENT_BYTES));
    match target {
        Target::Eddy(fsync) => {
            let config = BrokerConfig {
                fsync,
                ..BrokerConfig::default()
            };
            let broker = Broker::open(dir, config)?;
            let buses = vec![broker.clone(); CONSUMERS + 1];
            let measured = runtime.block_on(eddy_row(&buses, workload, payload, plan));
            broker.close()?;
            measured
        }
        Target::EddyServer => runtime.block_on(async {
            let clients = super::server::connect(server.process.native, CONSUMERS + 1).await?;
            let measured = eddy_row(&clients, workload, payload, plan).await;
            super::server::close(&clients).await;
            measured
        }),
        Target::EddyHttp => {
            let Some(api) = &server.http else {
                bail!("the server has no HTTP listener");
            };
            runtime.block_on(async {
                let clients = super::server::connect(server.process.native, 1).await?;
                let topic = format!("bench.http.{}", crate::utc::now_ms());
                let run =
                    super::server::http::publish_for(api, &clients[0], &topic, 4, HTTP_TIME).await;
                let deleted = clients[0].delete_topic(&topic).await;
                super::server::close(&clients).await;
                let run = run?;
                deleted?;
                Ok(Measured::Rate(
                    run.events as f64 / run.elapsed.as_secs_f64(),
                ))
            })
        }
        Target::Nats => runtime.block_on(peer_row(
            workload,
            plan,
            payload,
            |p, n| jetstream::w1(&plan.nats, p, n),
            |p, n| jetstream::w2(&plan.nats, p, n),
            |p, n| jetstream::w3(&plan.nats, p, n),
            |p, pace| jetstream::w4(&plan.nats, p, pace),
            |p, n, d| jetstream::w5(&plan.nats, p, n, d),
        )),
        Target::Redis { fsync_always } => runtime.block_on(peer_row(
            workload,
            plan,
            payload,
            |p, n| redis_streams::w1(&plan.redis, fsync_always, p, n),
            |p, n| redis_streams::w2(&plan.redis, p, n),
            |p, n| redis_streams::w3(&plan.redis, p, n),
            |p, pace| redis_streams::w4(&plan.redis, p, pace),
            |p, n, d| redis_streams::w5(&plan.redis, p, n, d),
        )),
        Target::RabbitMq => runtime.block_on(peer_row(
            workload,
            plan,
            payload,
            |p, n| rabbitmq::w1(&plan.rabbitmq, p, n),
            |p, n| rabbitmq::w2(&plan.rabbitmq, p, n),
            |p, n| rabbitmq::w3(&plan.rabbitmq, p, n),
            |p, pace| rabbitmq::w4(&plan.rabbitmq, p, pace),
            |p, n, d| rabbitmq::w5(&plan.rabbitmq, p, n, d),
        )),
    }
}

/// How long the HTTP row publishes for.
const HTTP_TIME: Duration = Duration::from_secs(3);

/// One run of an Eddy row on `buses` (a publisher and four consumers: the
/// same broker, or connections to the server).
async fn eddy_row<B>(
    buses: &[B],
    workload: Workload,
    payload: Bytes,
    plan: &Plan,
) -> Result<Measured>
where
    B: eddy_bus::Bus + Clone + Send + Sync + 'static,
{
    let rate =
        |events: u64, elapsed: Duration| Measured::Rate(events as f64 / elapsed.as_secs_f64());
    Ok(match workload {
        Workload::W1 => rate(
            plan.events,
            eddy::w1(&buses[0], payload, plan.events).await?,
        ),
        Workload::W2 => rate(plan.events, eddy::w2(buses, payload, plan.events).await?),
        Workload::W3 => rate(plan.events, eddy::w3(buses, payload, plan.events).await?),
        Workload::W4 { rate_per_sec } => {
            let pace = plan.pace(rate_per_sec);
            Measured::Latency(eddy::w4(&buses[0], &buses[1], payload, pace).await?)
        }
        Workload::W5 => {
            let retried = eddy::w5(buses, payload, plan.retry_events, plan.retry_delay).await?;
            let rate = plan.retry_events as f64 / retried.elapsed.as_secs_f64();
            Measured::Retry(retried, rate)
        }
    })
}

/// One run of a peer's row, with the peer's function for each workload.
#[allow(clippy::too_many_arguments)]
async fn peer_row<F1, F2, F3, F4, F5>(
    workload: Workload,
    plan: &Plan,
    payload: Bytes,
    w1: impl FnOnce(Bytes, u64) -> F1,
    w2: impl FnOnce(Bytes, u64) -> F2,
    w3: impl FnOnce(Bytes, u64) -> F3,
    w4: impl FnOnce(Bytes, latency::Pace) -> F4,
    w5: impl FnOnce(Bytes, u64, Duration) -> F5,
) -> Result<Measured>
where
    F1: std::future::Future<Output = Result<Duration>>,
    F2: std::future::Future<Output = Result<Duration>>,
    F3: std::future::Future<Output = Result<Duration>>,
    F4: std::future::Future<Output = Result<latency::Latency>>,
    F5: std::future::Future<Output = Result<retry::Retried>>,
{
    let rate =
        |events: u64, elapsed: Duration| Measured::Rate(events as f64 / elapsed.as_secs_f64());
    Ok(match workload {
        Workload::W1 => rate(plan.events, w1(payload, plan.events).await?),
        Workload::W2 => rate(plan.events, w2(payload, plan.events).await?),
        Workload::W3 => rate(plan.events, w3(payload, plan.events).await?),
        Workload::W4 { rate_per_sec } => {
            Measured::Latency(w4(payload, plan.pace(rate_per_sec)).await?)
        }
        Workload::W5 => {
            let retried = w5(payload, plan.retry_events, plan.retry_delay).await?;
            let rate = plan.retry_events as f64 / retried.elapsed.as_secs_f64();
            Measured::Retry(retried, rate)
        }
    })
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
