//! `eddy bench broker`: the embedded broker against the log it is built
//! on, in one run.
//!
//! 1. Idle memory: the resident memory a fresh broker gains per idle topic
//!    (one partition) and per idle subscription, measured first, before
//!    the other workloads have grown the heap; then the time to reopen
//!    that broker.
//! 2. The log baseline: `Log::append_batch` of 1 KiB records in batches of
//!    100 from 4 threads, fsync `always`, with the log's default settings
//!    and with the settings the broker gives its partition logs (the
//!    reference of the publish target: same shape, same settings).
//! 3. Durable publish: `publish_batch` of 100 events of 1 KiB from 4 tasks,
//!    fsync `always`, to a topic of 1 partition (one log, the baseline's
//!    shape) and of 4 partitions.
//! 4. Consume + ack: a preloaded topic of 4 partitions drained by 4
//!    consumers of one shared subscription, each fetching up to 500 events
//!    and acking them with `ack_all`, fsync `always`; every event must be
//!    acked exactly once.
//! 5. Latency: single-event publishes paced at 10,000 events/s, fsync
//!    `always`, each timed from its send to its receipt by a consumer.
//!
//! The results go to stdout as a table, with a PASS/MISS verdict for each
//! target of the broker, and optionally to a markdown file.

pub(super) mod consume;
mod idle;
pub(super) mod latency;
pub(super) mod publish;
mod report;
mod targets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use eddy_broker::Broker;
use eddy_bus::{Bus, StartAt, SubscriptionConfig};

use super::report::RunInfo;
use super::{Scratch, check_parent_exists, parse_seconds, target};

/// The benchmark's name in its report, and its markdown section's.
const NAME: &str = "eddy bench broker";

#[derive(Debug, Args)]
pub struct BenchBrokerArgs {
    /// Where to create the scratch directory, removed afterwards. It must be
    /// on the disk to measure [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Seconds the log baseline and each publish workload run; the latency
    /// workload runs at least 2 s [default: 3; 0.5 with --quick]
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// Events of 100 B preloaded and then drained by the consume + ack
    /// workload [default: 400000; 50000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    consume_events: Option<u64>,
    /// Idle topics created for the memory measurement, and as many
    /// subscriptions [default: 10000; 1000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    idle_objects: Option<u32>,
    /// Also write the results as a markdown section into FILE: the section
    /// between this benchmark's markers is replaced, the rest of FILE kept.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// A smoke run: 0.5 s workloads (2 s of latency), 50,000 events to
    /// drain, 1,000 idle topics. Explicit sizes and times still win
    #[arg(long)]
    quick: bool,
}

/// What to measure, after defaults.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// How long the log baseline and each publish workload run.
    run_time: Duration,
    /// How long the paced publisher of the latency workload runs.
    latency_time: Duration,
    consume_events: u64,
    idle_objects: u32,
    quick: bool,
}

/// The latency workload's shortest run.
const LATENCY_TIME_MIN: Duration = Duration::from_secs(2);

impl Plan {
    fn from_args(args: &BenchBrokerArgs) -> Plan {
        let (seconds, consume_events, idle_objects) = if args.quick {
            (0.5, 50_000, 1_000)
        } else {
            (3.0, 400_000, 10_000)
        };
        let run_time = Duration::from_secs_f64(args.seconds.unwrap_or(seconds));
        Plan {
            run_time,
            latency_time: run_time.max(LATENCY_TIME_MIN),
            consume_events: args.consume_events.unwrap_or(consume_events),
            idle_objects: args.idle_objects.unwrap_or(idle_objects),
            quick: args.quick,
        }
    }
}

/// Everything one run measured, and where.
#[derive(Debug)]
struct Results {
    plan: Plan,
    run: RunInfo,
    idle: idle::Idle,
    /// The log with the settings the broker gives its partition logs: the
    /// reference of the publish target.
    log: publish::LogAppend,
    /// The log with its default settings, as `eddy bench log` runs it.
    log_defaults: publish::LogAppend,
    /// Broker publishes, one per entry of [`publish::PARTITION_COUNTS`].
    publishes: Vec<publish::Publish>,
    consume: consume::Consume,
    latency: latency::Latency,
    /// The same with a group commit window of [`latency::WINDOW_US`].
    windowed_latency: latency::Latency,
}

pub fn run(args: &BenchBrokerArgs) -> Result<()> {
    let plan = Plan::from_args(args);
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let runtime = super::async_runtime()?;
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    report::print_preamble(&plan, &run);

    report::TABLE.print_header();
    let idle = idle::measure(&runtime, &scratch.join("idle"), plan.idle_objects)?;
    report::print_idle(&idle);
    let log_defaults = publish::log_append(
        &scratch.join("log-defaults"),
        publish::LogSettings::Defaults,
        plan.run_time,
    )?;
    let log = publish::log_append(
        &scratch.join("log"),
        publish::LogSettings::BrokerPartition,
        plan.run_time,
    )?;
    report::print_log(&log_defaults, &log);
    report::print_log(&log, &log);
    let mut publishes = Vec::new();
    for partitions in publish::PARTITION_COUNTS {
        let dir = scratch.join(&format!("publish-{partitions}"));
        let result = publish::broker_publish(&runtime, &dir, partitions, plan.run_time)?;
        report::print_publish(&result, &log);
        publishes.push(result);
    }
    let consume = consume::measure(&runtime, &scratch.join("consume"), plan.consume_events)?;
    report::print_consume(&consume);
    let latency = latency::measure(&runtime, &scratch.join("latency"), plan.latency_time, 0)?;
    report::print_latency(&latency);
    let windowed_latency = latency::measure(
        &runtime,
        &scratch.join("latency-windowed"),
        plan.latency_time,
        latency::WINDOW_US,
    )?;
    report::print_windowed_latency(&windowed_latency);
    drop(runtime);

    let results = Results {
        plan,
        run,
        idle,
        log,
        log_defaults,
        publishes,
        consume,
        latency,
        windowed_latency,
    };
    let verdicts = targets::judge(&results)?;
    target::print("targets of the embedded broker", &verdicts);
    if let Some(path) = &args.markdown {
        super::write_section(path, NAME, &report::markdown(&results, &verdicts))?;
    }
    scratch.remove()
}

/// The lease and the pending limit of the subscriptions the consume and
/// latency workloads drain.
const ACK_WAIT_MS: u64 = 60_000;
const MAX_ACK_PENDING: u32 = 100_000;
/// A consumer that gets nothing for this long while events are missing
/// fails the benchmark instead of waiting forever.
pub(super) const STALL: Duration = Duration::from_secs(30);

/// Creates the subscription `name` that a workload's consumers share:
/// `topic` from its earliest event, with [`ACK_WAIT_MS`] and
/// [`MAX_ACK_PENDING`].
pub(super) async fn create_shared_subscription<B: Bus>(
    bus: &B,
    name: &str,
    topic: &str,
) -> Result<()> {
    let config = SubscriptionConfig::new(topic)
        .start_at(StartAt::Earliest)
        .ack_wait_ms(ACK_WAIT_MS);
    let config = SubscriptionConfig {
        max_ack_pending: MAX_ACK_PENDING,
        ..config
    };
    bus.create_subscription(name, config)
        .await
        .context("create the subscription")?;
    Ok(())
}

/// Closes the broker a workload ran on in `dir` and removes `dir`, then
/// returns what the workload `measured`. Its own error comes before a
/// failure to close.
fn close_and_remove<T>(broker: &Broker, dir: &Path, measured: Result<T>) -> Result<T> {
    let closed = broker
        .close()
        .with_context(|| format!("close the broker in {}", dir.display()));
    let measured = measured?;
    closed?;
    std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(measured)
}
