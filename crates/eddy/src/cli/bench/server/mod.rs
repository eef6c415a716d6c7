//! `eddy bench server`: a running `eddy serve` on loopback against the
//! embedded broker, in one run, so that every ratio compares figures
//! measured minutes apart on the same disk.
//!
//! 1. The server: this executable started as `eddy serve` on a fresh
//!    folder with fsync `always`, both listeners on loopback ports the
//!    kernel picks (read from its banner). Its resident memory at rest is
//!    read once a client has connected and gone, before any workload; a
//!    thread then samples it every 50 ms, keeping each workload's peak.
//! 2. Publish: the broker bench's workload (`publish_batch` of 100 events
//!    of 1 KiB from 4 tasks to a topic of 4 partitions, each event with
//!    its own id) on an embedded broker, then through `eddy-client` with
//!    one connection per task and with one shared connection, then over
//!    HTTP (`POST /v1/topics/{topic}/events`).
//! 3. Consume + ack: the broker bench's drain (4 consumers of one shared
//!    subscription, fetch up to 500, one `ack_all` per fetch) of a backlog
//!    of 100 B events: embedded; then, on a backlog preloaded through the
//!    server, through `eddy-client` (per-task and shared connections) and
//!    over HTTP, each on a subscription of its own.
//! 4. Latency: the broker bench's paced 10,000 events/s, embedded and then
//!    through two client connections (one publishing, one fetching).
//! 5. The server is stopped with SIGTERM and must exit with status 0.
//!
//! Every workload runs under fsync `always`. Without an HTTP listener
//! (no `http:` line in the banner), the HTTP rows say they were skipped.

pub(super) mod http;
pub(super) mod process;
mod report;
pub(super) mod sampler;
mod targets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use eddy_bus::Bus;
use eddy_client::{Client, ClientConfig};

use super::broker::consume::{self, Tally};
use super::broker::latency::{self, Latency};
use super::broker::publish::{self, PublishRun};
use super::memory::{self, Rss};
use super::report::RunInfo;
use super::{Scratch, check_parent_exists, parse_seconds, target};
use process::{ServerProcess, Stopped};
use sampler::{Peak, Sampler};

/// The benchmark's name in its report, and its markdown section's.
const NAME: &str = "eddy bench server";

/// Partitions of the published topics.
const PUBLISH_PARTITIONS: u32 = 4;
/// Time between the idle client's disconnection and the idle reading.
const IDLE_SETTLE: Duration = Duration::from_millis(500);
/// The publish workloads run in this many interleaved rounds (embedded,
/// native one way, native the other, then again), each the run time over
/// the rounds, and count the total: the disk's flush speed drifts from
/// second to second, and a ratio taken between runs seconds apart moved
/// with it by ±15 %.
const PUBLISH_ROUNDS: u32 = 3;
/// The topic the HTTP workload publishes to.
const HTTP_TOPIC: &str = "bench.publish.http";

#[derive(Debug, Args)]
pub struct BenchServerArgs {
    /// Where to create the scratch directory (the server's data folder and
    /// the embedded brokers'), removed afterwards. It must be on the disk
    /// to measure [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Seconds each publish workload runs; the latency workloads run at
    /// least 2 s [default: 3; 0.5 with --quick]
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// Also write the results as a markdown section into FILE: the section
    /// between this benchmark's markers is replaced, the rest of FILE kept.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// A smoke run: 0.5 s publish workloads (2 s of latency), backlogs of
    /// 50,000 events. An explicit --seconds still wins
    #[arg(long)]
    quick: bool,
}

/// What to measure, after defaults.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// How long each publish workload runs.
    run_time: Duration,
    /// How long the paced publisher of each latency workload runs.
    latency_time: Duration,
    /// Events of each drained backlog.
    consume_events: u64,
    quick: bool,
}

/// The latency workloads' shortest run.
const LATENCY_TIME_MIN: Duration = Duration::from_secs(2);

impl Plan {
    fn from_args(args: &BenchServerArgs) -> Plan {
        let (seconds, consume_events) = if args.quick {
            (0.5, 50_000)
        } else {
            (3.0, 400_000)
        };
        let run_time = Duration::from_secs_f64(args.seconds.unwrap_or(seconds));
        Plan {
            run_time,
            latency_time: run_time.max(LATENCY_TIME_MIN),
            consume_events,
            quick: args.quick,
        }
    }
}

/// How the tasks of a native workload reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connections {
    /// One `Client` (one TCP connection) per task.
    PerTask,
    /// One `Client` whose clones all tasks share, pipelining on it.
    Shared,
}

impl Connections {
    const ALL: [Connections; 2] = [Connections::PerTask, Connections::Shared];

    /// Connections for `tasks` tasks.
    fn count(self, tasks: usize) -> usize {
        match self {
            Connections::PerTask => tasks,
            Connections::Shared => 1,
        }
    }

    /// For names of topics and subscriptions.
    fn slug(self) -> &'static str {
        match self {
            Connections::PerTask => "per-task",
            Connections::Shared => "shared",
        }
    }

    /// For the table's connections column.
    fn column(self) -> &'static str {
        match self {
            Connections::PerTask => "1 per task",
            Connections::Shared => "1 shared",
        }
    }

    /// For prose: `4 connections, one per task`.
    fn describe(self, tasks: usize) -> String {
        match self {
            Connections::PerTask => format!("{tasks} connections, one per task"),
            Connections::Shared => format!("1 connection shared by {tasks} tasks"),
        }
    }
}

/// A workload over the native protocol, and the server's peak memory
/// while it ran.
#[derive(Debug, Clone)]
struct Native<T> {
    connections: Connections,
    /// Over all rounds, for a workload run in rounds.
    result: T,
    server: Peak,
    /// Events/s of each round, for a workload run in rounds.
    rates: Vec<f64>,
}

/// The latency workload over the native protocol (one connection
/// publishing, one fetching), and the server's peak memory meanwhile.
#[derive(Debug, Clone)]
struct NativeLatency {
    result: Latency,
    server: Peak,
}

/// A workload over HTTP: run, skipped, or failed.
#[derive(Debug, Clone)]
enum Http<T> {
    Ran {
        result: T,
        server: Peak,
    },
    /// No HTTP listener in the banner.
    Skipped,
    Failed(String),
}

/// What was measured about the server process itself.
#[derive(Debug, Clone)]
struct ServerInfo {
    args: Vec<String>,
    native: SocketAddr,
    http: Option<SocketAddr>,
    /// At rest, after one client came and went.
    idle: Rss,
    /// The highest reading during the native publish workloads.
    load: Peak,
    /// `VmHWM` just before it was stopped.
    high_water: u64,
    stopped: Stopped,
}

/// Everything one run measured, and where.
#[derive(Debug)]
struct Results {
    plan: Plan,
    run: RunInfo,
    server: ServerInfo,
    /// Over all rounds.
    embedded_publish: publish::Publish,
    /// Events/s of each round.
    embedded_publish_rates: Vec<f64>,
    native_publishes: Vec<Native<PublishRun>>,
    http_publish: Http<PublishRun>,
    embedded_consume: consume::Consume,
    /// Loading the backlog the native and HTTP drains share, through the
    /// server.
    preload_time: Duration,
    native_consumes: Vec<Native<Tally>>,
    http_consume: Http<Tally>,
    embedded_latency: Latency,
    native_latency: NativeLatency,
}

pub fn run(args: &BenchServerArgs) -> Result<()> {
    let plan = Plan::from_args(args);
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let runtime = super::async_runtime()?;
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    report::print_preamble(&plan, &run);

    let mut server = ServerProcess::start(&scratch.join("server"))?;
    report::print_server(&server);
    let idle = runtime.block_on(idle_memory(&server))?;
    report::TABLE.print_header();
    report::print_idle(&idle);
    let sampler = Sampler::start(server.pid())?;
    let addr = server.native;
    let api = server.http.map(http::Api::new).transpose()?;
    let embedded_dir = |name: &str| scratch.join(&format!("embedded-{name}"));

    // Publish: embedded and native (both ways) in interleaved rounds, then
    // HTTP.
    let round_time = plan.run_time / PUBLISH_ROUNDS;
    let mut embedded_rounds = Vec::new();
    let mut native_rounds: Vec<Vec<(PublishRun, Peak)>> = vec![Vec::new(); Connections::ALL.len()];
    for round in 0..PUBLISH_ROUNDS {
        let dir = embedded_dir(&format!("publish-{round}"));
        let embedded = publish::broker_publish(&runtime, &dir, PUBLISH_PARTITIONS, round_time)?;
        embedded_rounds.push(embedded);
        for (k, connections) in Connections::ALL.into_iter().enumerate() {
            sampler.take();
            let result = runtime.block_on(native_publish(addr, connections, round_time))?;
            native_rounds[k].push((result, sampler.take()));
        }
    }
    let (embedded_publish, embedded_publish_rates) = sum_publishes(embedded_rounds)?;
    report::print_embedded_publish(&embedded_publish, &embedded_publish_rates);
    let mut native_publishes = Vec::new();
    for (connections, rounds) in Connections::ALL.into_iter().zip(native_rounds) {
        let server = rounds
            .iter()
            .fold(Peak::default(), |peak, (_, p)| peak.max(*p));
        let rates = rounds.iter().map(|(r, _)| r.events_per_sec()).collect();
        let result = rounds
            .into_iter()
            .map(|(r, _)| r)
            .reduce(|a, b| PublishRun {
                events: a.events + b.events,
                disk_bytes: a.disk_bytes + b.disk_bytes,
                elapsed: a.elapsed + b.elapsed,
            })
            .context("no publish round ran")?;
        let native = Native {
            connections,
            result,
            server,
            rates,
        };
        report::print_native_publish(&native, &embedded_publish);
        native_publishes.push(native);
    }
    let load = native_publishes
        .iter()
        .fold(Peak::default(), |peak, n| peak.max(n.server));
    let http_publish = over_http(&sampler, api.as_ref(), |api| {
        runtime.block_on(http_publish(addr, api, plan.run_time))
    });
    report::print_http_publish(&http_publish, &embedded_publish);

    // Consume + ack: embedded, then a backlog preloaded through the server,
    // drained natively (both ways), then over HTTP.
    let embedded_consume =
        consume::measure(&runtime, &embedded_dir("consume"), plan.consume_events)?;
    report::print_embedded_consume(&embedded_consume);
    let preload_time = runtime.block_on(preload(addr, plan.consume_events))?;
    let mut native_consumes = Vec::new();
    for connections in Connections::ALL {
        sampler.take();
        let result = runtime.block_on(native_drain(addr, connections, plan.consume_events))?;
        let native = Native {
            connections,
            result,
            server: sampler.take(),
            rates: Vec::new(),
        };
        report::print_native_consume(&native, &embedded_consume, preload_time);
        native_consumes.push(native);
    }
    let http_consume = over_http(&sampler, api.as_ref(), |api| {
        runtime.block_on(http_drain(addr, api, plan.consume_events))
    });
    report::print_http_consume(&http_consume, &embedded_consume, plan.consume_events);

    // Latency at 10,000 events/s: embedded, then native.
    let embedded_latency =
        latency::measure(&runtime, &embedded_dir("latency"), plan.latency_time, 0)?;
    report::print_embedded_latency(&embedded_latency);
    sampler.take();
    let result = runtime.block_on(native_latency(addr, plan.latency_time))?;
    let native_latency = NativeLatency {
        result,
        server: sampler.take(),
    };
    report::print_native_latency(&native_latency);

    let high_water = memory::high_water_mark(server.pid())?;
    drop(sampler);
    let stopped = server.stop()?;
    let server = ServerInfo {
        args: server.args.clone(),
        native: server.native,
        http: server.http,
        idle,
        load,
        high_water,
        stopped,
    };
    report::print_load(&server);
    report::print_stop(&server);
    drop(runtime);

    let results = Results {
        plan,
        run,
        server,
        embedded_publish,
        embedded_publish_rates,
        native_publishes,
        http_publish,
        embedded_consume,
        preload_time,
        native_consumes,
        http_consume,
        embedded_latency,
        native_latency,
    };
    let verdicts = targets::judge(&results)?;
    target::print("targets of the server", &verdicts);
    if let Some(path) = &args.markdown {
        super::write_section(path, NAME, &report::markdown(&results, &verdicts))?;
    }
    scratch.remove()
}

/// The embedded publish rounds as one total, and each round's events/s.
fn sum_publishes(rounds: Vec<publish::Publish>) -> Result<(publish::Publish, Vec<f64>)> {
    let rates = rounds
        .iter()
        .map(publish::Publish::events_per_sec)
        .collect();
    let total = rounds
        .into_iter()
        .reduce(|a, b| publish::Publish {
            events: a.events + b.events,
            disk_bytes: a.disk_bytes + b.disk_bytes,
            elapsed: a.elapsed + b.elapsed,
            ..a
        })
        .context("no publish round ran")?;
    Ok((total, rates))
}

/// Runs an HTTP workload if there is an HTTP listener; a failure is
/// reported in its row rather than ending the benchmark (the HTTP rows are
/// informational).
fn over_http<T>(
    sampler: &Sampler,
    api: Option<&http::Api>,
    workload: impl FnOnce(&http::Api) -> Result<T>,
) -> Http<T> {
    let Some(api) = api else {
        return Http::Skipped;
    };
    sampler.take();
    match workload(api) {
        Ok(result) => Http::Ran {
            result,
            server: sampler.take(),
        },
        Err(e) => Http::Failed(format!("{e:#}")),
    }
}

pub(crate) async fn connect(addr: SocketAddr, connections: usize) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = Client::connect(addr, ClientConfig::default())
            .await
            .with_context(|| format!("connect to the server at {addr}"))?;
        clients.push(client);
    }
    Ok(clients)
}

pub(crate) async fn close(clients: &[Client]) {
    for client in clients {
        client.close().await;
    }
}

/// Resident memory of the server at rest, once a client has connected,
/// listed the topics and disconnected.
async fn idle_memory(server: &ServerProcess) -> Result<Rss> {
    let clients = connect(server.native, 1).await?;
    clients[0]
        .list_topics()
        .await
        .context("list the server's topics")?;
    close(&clients).await;
    drop(clients);
    tokio::time::sleep(IDLE_SETTLE).await;
    Rss::of_process(server.pid()).context("read the server's memory")
}

/// The publish workload through `eddy-client`; the topic is deleted
/// afterwards, so that the next workload starts on an empty server.
async fn native_publish(
    addr: SocketAddr,
    connections: Connections,
    duration: Duration,
) -> Result<PublishRun> {
    let clients = connect(addr, connections.count(publish::WRITERS)).await?;
    let topic = format!("bench.publish.{}", connections.slug());
    let result = publish::publish_for(&clients, &topic, PUBLISH_PARTITIONS, duration).await;
    let deleted = clients[0].delete_topic(&topic).await;
    close(&clients).await;
    let result = result.with_context(|| format!("publish natively, {}", connections.slug()))?;
    deleted.with_context(|| format!("delete the topic {topic}"))?;
    Ok(result)
}

async fn http_publish(addr: SocketAddr, api: &http::Api, duration: Duration) -> Result<PublishRun> {
    let native = connect(addr, 1).await?;
    let result = http::publish_for(api, &native[0], HTTP_TOPIC, PUBLISH_PARTITIONS, duration).await;
    let deleted = native[0].delete_topic(HTTP_TOPIC).await;
    close(&native).await;
    let result = result?;
    deleted.with_context(|| format!("delete the topic {HTTP_TOPIC}"))?;
    Ok(result)
}

/// Loads the backlog the native and HTTP drains share, through the
/// server; returns how long it took.
async fn preload(addr: SocketAddr, events: u64) -> Result<Duration> {
    let clients = connect(addr, 1).await?;
    let start = Instant::now();
    let loaded = consume::preload(&clients[0], consume::TOPIC, events).await;
    let time = start.elapsed();
    close(&clients).await;
    loaded.context("preload the backlog through the server")?;
    Ok(time)
}

/// The drain through `eddy-client`, on a subscription of its own.
async fn native_drain(addr: SocketAddr, connections: Connections, events: u64) -> Result<Tally> {
    let clients = connect(addr, connections.count(consume::CONSUMERS)).await?;
    let subscription = format!("bench-native-{}", connections.slug());
    let drained = consume::drain(&clients, consume::TOPIC, &subscription, events).await;
    close(&clients).await;
    drained.with_context(|| format!("drain natively, {}", connections.slug()))
}

async fn http_drain(addr: SocketAddr, api: &http::Api, events: u64) -> Result<Tally> {
    let native = connect(addr, 1).await?;
    let drained = http::drain(api, &native[0], consume::TOPIC, "bench-http", events).await;
    close(&native).await;
    drained
}

/// The latency workload: one connection publishes, another fetches.
async fn native_latency(addr: SocketAddr, send_time: Duration) -> Result<Latency> {
    let clients = connect(addr, 2).await?;
    let measured = latency::run(&clients[0], &clients[1], send_time).await;
    close(&clients).await;
    measured.context("measure the latency through the server")
}
