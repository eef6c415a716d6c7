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
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use eddy_broker::{Broker, BrokerConfig};
use eddy_log::FsyncPolicy;
use tokio::runtime::Runtime;

use super::disk::pattern;
use super::report::{Row, RunInfo, Table};
use super::server::process::ServerProcess;
use super::server::sampler::Sampler;
use super::units::grouped;
use super::{Scratch, check_parent_exists};

mod eddy;
mod jetstream;
mod redis_streams;

const NAME: &str = "eddy bench peers";
/// Publishes in flight at once (W1).
const WINDOW: usize = 256;
/// Commands per Redis pipeline.
const PIPELINE: usize = 100;
const EVENT_BYTES: usize = 1024;

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
                    runtime.block_on(eddy::server_w1(&server_addr, events))
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
            let elapsed = runtime.block_on(eddy::w1(&broker, payload, events));
            broker.close()?;
            elapsed
        }
        Target::EddyServer => bail!("the server row runs on its own"),
        Target::Nats => runtime.block_on(jetstream::w1(&args.nats, payload, events)),
        Target::Redis { fsync_always } => runtime.block_on(redis_streams::w1(
            &args.redis,
            fsync_always,
            payload,
            events,
        )),
    }
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
            let elapsed = runtime.block_on(eddy::w2(&broker, payload, events));
            broker.close()?;
            elapsed
        }
        Target::EddyServer => bail!("W2 has no server row yet"),
        Target::Nats => runtime.block_on(jetstream::w2(&args.nats, payload, events)),
        Target::Redis { .. } => runtime.block_on(redis_streams::w2(&args.redis, payload, events)),
    }
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
        Target::Nats => runtime.block_on(jetstream::w3(&args.nats, payload, events)),
        Target::Redis { .. } => runtime.block_on(redis_streams::w3(&args.redis, payload, events)),
    }
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
