//! `eddy bench runtime`: what the application runtime costs over the bus
//! it runs on, and the demo shop's throughput, in one run.
//!
//! 1. Raw: the broker bench's drain — a preloaded topic of 4 partitions,
//!    4 consumers of one shared subscription fetching up to 500 events and
//!    acking each batch with one `ack_all`, fsync `always`.
//! 2. Runtime: the same backlog drained by an `eddy-runtime` service with
//!    a no-op handler that decodes each event's JSON into a struct, every
//!    event acked once (checked).
//!
//!    The two alternate over several rounds, each on a fresh backlog.
//! 3. The demo: `eddy demo shop` on the embedded bus, no failures
//!    injected, orders placed as fast as the bus takes them; orders per
//!    second from the first order until every order is final.
//!
//! The backlog's events carry 100 B of JSON.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use eddy_broker::{Broker, BrokerConfig};
use eddy_log::FsyncPolicy;
use eddy_runtime::{Service, ServiceConfig};
use tokio::runtime::Runtime;

use super::broker::consume;
use super::report::{Row, RunInfo, Table};
use super::units::{grouped, percent};
use super::{Scratch, check_parent_exists, target};
use crate::cli::demo::{embedded, shop::ShopConfig};

const NAME: &str = "eddy bench runtime";
const TOPIC: &str = "bench.runtime";
/// The service's handler slots: as many events in flight as the raw
/// drain's 4 consumers × 500.
const CONCURRENCY: u32 = 2048;
/// The overhead target: the service's rate over the raw drain's.
const TARGET: f64 = 0.8;

#[derive(Debug, Args)]
pub struct BenchRuntimeArgs {
    /// Where to create the scratch directory, removed afterwards
    /// [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Events preloaded for each drain [default: 200000; 20000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    events: Option<u64>,
    /// Rounds of raw and runtime drains, alternating [default: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
    /// Orders of the demo run [default: 2000; 300 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    orders: Option<u32>,
    /// Also write the results as a markdown section into FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// A smoke run: smaller backlogs and demo.
    #[arg(long)]
    quick: bool,
}

/// JSON of 100 bytes, as the handler decodes it.
pub(super) const EVENT_JSON: &str = r#"{"order":"o-000001","sku":"sku-lamp","quantity":2,"amount_cents":12345,"note":"a 100-byte event"}"#;

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)] // decoded, as a real handler would, and dropped
struct BenchOrder {
    order: String,
    sku: String,
    quantity: u32,
    amount_cents: u64,
}

pub fn run(args: &BenchRuntimeArgs) -> Result<()> {
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let events = args
        .events
        .unwrap_or(if args.quick { 20_000 } else { 200_000 });
    let rounds = args.rounds.unwrap_or(3);
    let orders = args.orders.unwrap_or(if args.quick { 300 } else { 2000 });
    let runtime = super::async_runtime()?;
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    run.print_heading(NAME);
    println!(
        "{rounds} rounds of raw and runtime drains of {} events each; a demo of {} orders",
        grouped(events as f64),
        grouped(f64::from(orders))
    );
    let mut rows = Vec::new();
    TABLE.print_header();
    let (mut raw, mut service) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = scratch.join(&format!("raw-{round}"));
        let elapsed = drain_raw(&runtime, &dir, events)?;
        raw.push(elapsed);
        let row = raw_row(events, elapsed, round);
        TABLE.print_row(&row);
        rows.push(row);
        let dir = scratch.join(&format!("service-{round}"));
        let elapsed = drain_service(&runtime, &dir, events)?;
        service.push(elapsed);
        let row = drain_row(
            "runtime no-op handler",
            events,
            elapsed,
            round,
            &format!(
                "a Service, concurrency {CONCURRENCY}, handler decodes the JSON into a struct; acks batched by the service"
            ),
        );
        TABLE.print_row(&row);
        rows.push(row);
    }
    let demo_dir = scratch.join("demo");
    let config = ShopConfig {
        orders,
        rate: 0,
        out_of_stock_rate: 0.0,
        payment_failure_rate: 0.0,
        email_failure_rate: 0.0,
        outage: None,
        run: "bench".into(),
        ..ShopConfig::default()
    };
    let (summary, _) = runtime.block_on(embedded(&demo_dir, &config))?;
    if !summary.all_final() {
        bail!("the demo left {} orders not final", summary.not_final.len());
    }
    let per_sec = f64::from(orders) / summary.elapsed.as_secs_f64();
    let row: Row = [
        "demo shop".into(),
        "-".into(),
        "always".into(),
        format!("{} orders/s", grouped(per_sec)),
        "-".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        format!(
            "{} orders in {:.2} s from the first order to the last final event; six services \
             in one process, no failures injected; each order is 7 events and 22 deliveries (to every subscription on their topics)",
            grouped(f64::from(orders)),
            summary.elapsed.as_secs_f64()
        ),
    ];
    TABLE.print_row(&row);
    rows.push(row);
    drop(runtime);

    let raw_rate = median_rate(events, &raw);
    let service_rate = median_rate(events, &service);
    let ratio = service_rate / raw_rate;
    let verdicts = vec![target::Judged {
        name: "overhead",
        goal: format!(
            "a no-op handler on the embedded bus: ≥ {} of the raw consume + ack rate in the same run",
            percent(TARGET)
        ),
        measured: format!(
            "median of {rounds} rounds: {} events/s vs {} raw = {}",
            grouped(service_rate),
            grouped(raw_rate),
            percent(ratio)
        ),
        verdict: target::Verdict::of(ratio >= TARGET),
        caveat: None,
    }];
    target::print("targets of the runtime", &verdicts);
    if let Some(path) = &args.markdown {
        let mut md = run.markdown_heading(NAME);
        md.push_str(&TABLE.markdown(&rows));
        md.push_str(&target::markdown(&verdicts));
        super::write_section(path, NAME, &md)?;
    }
    scratch.remove()
}

/// The table of the drain benchmarks (this one and `eddy bench process`).
pub(super) const TABLE: Table = Table {
    columns: [
        "workload", "events", "fsync", "result", "round", "", "", "", "", "notes",
    ],
    widths: [22, 8, 7, 22, 5, 0, 0, 0, 0],
    right_aligned: [false, true, false, true, true, false, false, false, false],
};

pub(super) fn drain_row(
    what: &str,
    events: u64,
    elapsed: Duration,
    round: u32,
    notes: &str,
) -> Row {
    let rate = events as f64 / elapsed.as_secs_f64();
    [
        what.to_string(),
        grouped(events as f64),
        "always".into(),
        format!("{} events/s", grouped(rate)),
        (round + 1).to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        format!("drained in {:.2} s; {notes}", elapsed.as_secs_f64()),
    ]
}

fn median_rate(events: u64, elapsed: &[Duration]) -> f64 {
    let mut rates: Vec<f64> = elapsed
        .iter()
        .map(|e| events as f64 / e.as_secs_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Preloads `events` JSON events under fsync `never`, then reopens the
/// broker with `always` for the drain.
fn preloaded(runtime: &Runtime, dir: &Path, events: u64) -> Result<Broker> {
    preloaded_with(runtime, dir, |bus| async move {
        let data = Bytes::from_static(EVENT_JSON.as_bytes());
        consume::preload_data(&bus, TOPIC, events, data).await
    })
}

/// Runs `preload` on a fresh broker in `dir` opened with fsync `never`,
/// then reopens it with `always`.
pub(super) fn preloaded_with<F: std::future::Future<Output = Result<()>>>(
    runtime: &Runtime,
    dir: &Path,
    preload: impl FnOnce(Broker) -> F,
) -> Result<Broker> {
    let config = BrokerConfig {
        fsync: FsyncPolicy::Never,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(dir, config)?;
    let loaded = runtime.block_on(preload(broker.clone()));
    broker.close()?;
    loaded?;
    Broker::open(dir, BrokerConfig::default())
        .with_context(|| format!("reopen the broker in {}", dir.display()))
}

fn drain_raw(runtime: &Runtime, dir: &Path, events: u64) -> Result<Duration> {
    let broker = preloaded(runtime, dir, events)?;
    raw_drain(runtime, broker, dir, TOPIC, events)
}

/// Drains `topic` of the preloaded `broker` (in `dir`) with the raw
/// consumers, closes it and removes `dir`; returns the drain's time.
pub(super) fn raw_drain(
    runtime: &Runtime,
    broker: Broker,
    dir: &Path,
    topic: &str,
    events: u64,
) -> Result<Duration> {
    let drained = runtime.block_on(consume::drain(
        std::slice::from_ref(&broker),
        topic,
        "bench-raw",
        events,
    ));
    broker.close()?;
    std::fs::remove_dir_all(dir)?;
    Ok(drained?.elapsed)
}

/// The row of a raw drain.
pub(super) fn raw_row(events: u64, elapsed: Duration, round: u32) -> Row {
    drain_row(
        "raw fetch + ack_all",
        events,
        elapsed,
        round,
        "4 consumers, fetch ≤ 500, one ack_all per fetch",
    )
}

fn drain_service(runtime: &Runtime, dir: &Path, events: u64) -> Result<Duration> {
    let broker = preloaded(runtime, dir, events)?;
    let drained = runtime.block_on(async {
        super::broker::create_shared_subscription(&broker, "bench-service", TOPIC).await?;
        let config = ServiceConfig {
            name: "bench".into(),
            concurrency: CONCURRENCY,
            fetch_wait_ms: 100,
            ..ServiceConfig::default()
        };
        let service = Service::new(broker.clone(), config).on(
            "bench-service",
            "BenchPreloaded",
            |_ctx, order: BenchOrder| async move {
                std::hint::black_box(order);
                Ok(())
            },
        );
        let start = Instant::now();
        let running = service.start();
        let mut last = (0, Instant::now());
        loop {
            let handled = running.stats().handled.load(Ordering::Relaxed);
            if handled >= events {
                break;
            }
            if handled != last.0 {
                last = (handled, Instant::now());
            } else if last.1.elapsed() > super::broker::STALL {
                bail!("the service stalled at {handled} of {events} events");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let stats = running.stop().await;
        let elapsed = start.elapsed();
        let errors = stats.bus_errors.load(Ordering::Relaxed)
            + stats.terminated.load(Ordering::Relaxed)
            + stats.nacked.load(Ordering::Relaxed);
        if errors > 0 {
            bail!("the service met {errors} errors, nacks or dead letters");
        }
        consume::check_drained(&broker, "bench-service", events).await?;
        Ok(elapsed)
    });
    broker.close()?;
    std::fs::remove_dir_all(dir)?;
    drained
}
