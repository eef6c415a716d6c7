//! `eddy bench process`: a stream processor's throughput against the raw
//! consume + ack of the same bus, and its end-to-end delay, in one run.
//!
//! 1. Raw: `eddy bench runtime`'s drain — a preloaded topic of 4
//!    partitions, 4 consumers of one shared subscription fetching up to
//!    500 events and acking each batch with one `ack_all`, fsync `always`.
//! 2. Processor: the same backlog (1,000 keys) through a keyed count in
//!    1-second tumbling windows of event time, results upserted into the
//!    machine's PostgreSQL with the checkpoint in the same transaction
//!    (each window's row updated at every checkpoint), state fsynced in
//!    the processor's embedded store. Timed from start until the
//!    checkpoint holding the last event committed; the table's counts
//!    must add up to the events.
//!
//!    The two alternate over several rounds, each on a fresh backlog.
//! 3. Delay: on a fresh bus (fsync `always`), a paced publisher sends
//!    10,000 events/s, each its own `publish` task stamped with the wall
//!    clock as its event time, while the processor runs; every event's
//!    delay is the time its checkpoint committed (its row visible in
//!    PostgreSQL) minus its stamp. Every sample is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Bus, Event, TopicConfig};
use eddy_runtime::processing::{Processor, Record, Sink, WindowSpec};
use tokio::runtime::{Handle, Runtime};

use super::broker::consume;
use super::pacer;
use super::report::{Row, RunInfo};
use super::runtime::{self, TABLE, drain_row};
use super::units::{grouped, median, percent};
use super::{Scratch, check_parent_exists, target};
use crate::utc;

const NAME: &str = "eddy bench process";
const TOPIC: &str = "bench.process";
const PARTITIONS: u32 = 4;
/// Distinct keys counted.
const KEYS: u64 = 1_000;
/// The tumbling window.
const WINDOW_MS: u64 = 1_000;
/// The watermark's slack behind the newest event time.
const OUT_OF_ORDER_MS: u64 = 1_000;
/// The paced publisher's rate.
const RATE_PER_SEC: u64 = 10_000;
/// The throughput target: the processor's rate over the raw drain's.
const TARGET: f64 = 0.5;
const TABLE_NAME: &str = "eddy_bench_process";
const DEFAULT_PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3";
/// Longest a drain or the processor may go without progress.
const STALL: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct BenchProcessArgs {
    /// Where to create the scratch directory, removed afterwards
    /// [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Events preloaded for each drain [default: 200000; 20000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    events: Option<u64>,
    /// Rounds of raw and processor drains, alternating [default: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
    /// Seconds the paced publisher sends for [default: 10; 3 with --quick]
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=600))]
    send_secs: Option<u64>,
    /// The PostgreSQL database (a libpq connection string); its table
    /// eddy_bench_process is replaced.
    #[arg(long, value_name = "CONNECTION", default_value = DEFAULT_PG)]
    postgres: String,
    /// Also write the results as a markdown section into FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// A smoke run: smaller backlogs, a shorter paced run.
    #[arg(long)]
    quick: bool,
}

fn event(n: u64) -> Event {
    Event::new("BenchCounted", runtime::EVENT_JSON)
        .with_id(format!("p{n}"))
        .with_key(format!("k{}", n % KEYS))
}

pub fn run(args: &BenchProcessArgs) -> Result<()> {
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let events = args
        .events
        .unwrap_or(if args.quick { 20_000 } else { 200_000 });
    let rounds = args.rounds.unwrap_or(3);
    let send_secs = args.send_secs.unwrap_or(if args.quick { 3 } else { 10 });
    let runtime = super::async_runtime()?;
    let pg = runtime
        .block_on(Pg::connect(&args.postgres))
        .with_context(|| {
            format!(
                "this benchmark writes to PostgreSQL, which is not reachable at `{}` (start it, or pass --postgres)",
                args.postgres
            )
        })?;
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    run.print_heading(NAME);
    println!(
        "{rounds} rounds of raw and processor drains of {} events each ({KEYS} keys); then {} events/s for {send_secs} s",
        grouped(events as f64),
        grouped(RATE_PER_SEC as f64)
    );
    let mut rows = Vec::new();
    TABLE.print_header();
    let (mut raw, mut processed) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = scratch.join(&format!("raw-{round}"));
        let broker = preloaded(&runtime, &dir, events)?;
        let elapsed = runtime::raw_drain(&runtime, broker, &dir, TOPIC, events)?;
        raw.push(events as f64 / elapsed.as_secs_f64());
        let row = runtime::raw_row(events, elapsed, round);
        TABLE.print_row(&row);
        rows.push(row);

        let dir = scratch.join(&format!("processor-{round}"));
        let broker = preloaded(&runtime, &dir, events)?;
        let drained = runtime.block_on(drain_processor(&broker, &dir, &pg, events));
        broker.close()?;
        let (elapsed, commits) = drained?;
        processed.push(events as f64 / elapsed.as_secs_f64());
        let row = drain_row(
            "processor → PostgreSQL",
            events,
            elapsed,
            round,
            &format!(
                "count by key in 1 s tumbling windows, {KEYS} keys; {commits} checkpoints (state fsynced, rows + checkpoint in one PostgreSQL transaction); counts in the table add up"
            ),
        );
        TABLE.print_row(&row);
        rows.push(row);
    }

    let dir = scratch.join("delay");
    let delay = runtime.block_on(paced(&dir, &pg, send_secs))?;
    let row: Row = [
        "processor delay".into(),
        grouped(delay.samples.len() as f64),
        "always".into(),
        format!("p50 {} ms", delay.quantile(0.5)),
        "-".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        delay.notes(),
    ];
    TABLE.print_row(&row);
    rows.push(row);
    drop(runtime);

    let raw_rate = median(&raw);
    let rate = median(&processed);
    let ratio = rate / raw_rate;
    let verdicts = vec![target::Judged {
        name: "throughput",
        goal: format!(
            "a keyed tumbling-window count into PostgreSQL: ≥ {} of the raw consume + ack rate in the same run",
            percent(TARGET)
        ),
        measured: format!(
            "median of {rounds} rounds: {} events/s vs {} raw = {}",
            grouped(rate),
            grouped(raw_rate),
            percent(ratio)
        ),
        verdict: target::Verdict::of(ratio >= TARGET),
        caveat: None,
    }];
    target::print("targets of stream processing", &verdicts);
    println!(
        "publish → result row at {}/s: p50 {} ms, p99 {} ms, max {} ms (no target set)",
        grouped(RATE_PER_SEC as f64),
        delay.quantile(0.5),
        delay.quantile(0.99),
        delay.quantile(1.0)
    );
    if let Some(path) = &args.markdown {
        let mut md = run.markdown_heading(NAME);
        md.push_str(&TABLE.markdown(&rows));
        md.push_str(&target::markdown(&verdicts));
        super::write_section(path, NAME, &md)?;
    }
    scratch.remove()
}

/// Preloads `events` keyed events under fsync `never`, then reopens the
/// broker with `always`.
fn preloaded(runtime: &Runtime, dir: &Path, events: u64) -> Result<Broker> {
    runtime::preloaded_with(runtime, dir, |bus| async move {
        consume::preload_events(&bus, TOPIC, events, 10_000, event).await
    })
}

/// The benchmark's PostgreSQL: for resetting and checking the result table.
struct Pg {
    client: tokio_postgres::Client,
    conn: String,
}

impl Pg {
    async fn connect(conn: &str) -> Result<Pg> {
        let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(Pg {
            client,
            conn: conn.to_string(),
        })
    }

    /// Drops the result table and the processor's checkpoint.
    async fn reset(&self, processor: &str) -> Result<()> {
        self.client
            .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE_NAME}"))
            .await?;
        // The sink creates the checkpoint table on first use.
        let _ = self
            .client
            .execute(
                "DELETE FROM eddy_checkpoints WHERE processor = $1",
                &[&processor],
            )
            .await;
        Ok(())
    }

    /// The sum of the table's counts.
    async fn total(&self) -> Result<i64> {
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT coalesce(sum((value #>> '{{}}')::bigint), 0)::bigint FROM {TABLE_NAME}"
                ),
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}

/// What the processor's checkpoints reported.
#[derive(Debug, Default)]
struct Heard {
    /// When the checkpoint holding the last expected event committed.
    done_at: Option<Instant>,
    events: u64,
    /// Delay of every record (ms), when asked for.
    delays: Vec<i64>,
}

/// The benchmark's processor, telling `heard` of each checkpoint.
async fn start(
    bus: &Broker,
    state: &Path,
    pg: &Pg,
    name: &str,
    expected: Arc<Mutex<u64>>,
    heard: Arc<Mutex<Heard>>,
    delays: bool,
) -> Result<eddy_runtime::processing::RunningProcessor<u64>> {
    pg.reset(name).await?;
    let p = Processor::builder(name)
        .input(TOPIC)
        .window(WindowSpec::tumbling(WINDOW_MS)?, 0)
        // Concurrent publishes to 4 partitions land a little out of
        // order; a second of slack keeps the paced run's events on time.
        .max_out_of_order_ms(OUT_OF_ORDER_MS)
        .on_checkpoint(move |c| {
            let want = *expected.lock().unwrap_or_else(|p| p.into_inner());
            let mut h = heard.lock().unwrap_or_else(|p| p.into_inner());
            h.events = c.events_total;
            if delays {
                h.delays
                    .extend(c.event_times_ms.iter().map(|t| c.committed_ms - t));
            }
            if c.events_total >= want && h.done_at.is_none() {
                h.done_at = Some(Instant::now());
            }
        })
        .aggregate(|count: &mut u64, _: &Record| *count += 1)
        .build()?;
    let sink = Sink::Postgres {
        conn: pg.conn.clone(),
        table: TABLE_NAME.into(),
    };
    Ok(p.start(bus.clone(), state.join("processor"), sink).await?)
}

/// Waits until the processor's checkpoints covered `events`.
async fn wait_for(heard: &Mutex<Heard>, events: u64) -> Result<Instant> {
    let mut last = (0, Instant::now());
    loop {
        let (seen, done) = {
            let h = heard.lock().unwrap_or_else(|p| p.into_inner());
            (h.events, h.done_at)
        };
        if let Some(at) = done {
            return Ok(at);
        }
        if seen != last.0 {
            last = (seen, Instant::now());
        } else if last.1.elapsed() > STALL {
            bail!("the processor made no progress for 60 s at {seen} of {events} events");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the processor over the preloaded backlog; returns the time until
/// its last checkpoint, and how many it committed.
async fn drain_processor(
    bus: &Broker,
    dir: &Path,
    pg: &Pg,
    events: u64,
) -> Result<(Duration, u64)> {
    let heard = Arc::new(Mutex::new(Heard::default()));
    let started = Instant::now();
    let p = start(
        bus,
        dir,
        pg,
        "bench-process",
        Arc::new(Mutex::new(events)),
        Arc::clone(&heard),
        false,
    )
    .await?;
    let done = wait_for(&heard, events).await?;
    let commits = p.metrics().commits();
    p.stop().await?;
    let total = pg.total().await?;
    if total != events as i64 {
        bail!("the processor's counts add up to {total}, not {events}");
    }
    Ok((done - started, commits))
}

/// The delay samples, sorted (ms).
struct Delay {
    samples: Vec<i64>,
    /// Events later than the watermark's slack (not in the samples).
    late: u64,
    commits: u64,
    send_time: Duration,
    pacer: pacer::Paced,
}

impl Delay {
    fn quantile(&self, q: f64) -> i64 {
        if self.samples.is_empty() {
            return 0;
        }
        let rank = (q * self.samples.len() as f64).ceil() as usize;
        self.samples[rank.clamp(1, self.samples.len()) - 1]
    }

    fn notes(&self) -> String {
        format!(
            "publish → result row committed in PostgreSQL: p50 {} / p99 {} / p99.9 {} / max {} ms over {} events sent at {}/s for {:.1} s, each its own publish task, {KEYS} keys, 1 s windows, watermark {OUT_OF_ORDER_MS} ms behind, {} late; {} checkpoints ({:.0} events each); the processor waits 10 ms when a round finds nothing; pacer lag max {} ms",
            self.quantile(0.5),
            self.quantile(0.99),
            self.quantile(0.999),
            self.quantile(1.0),
            grouped(self.samples.len() as f64),
            grouped(RATE_PER_SEC as f64),
            self.send_time.as_secs_f64(),
            self.late,
            grouped(self.commits as f64),
            self.samples.len() as f64 / self.commits.max(1) as f64,
            self.pacer.lag_max.as_millis(),
        )
    }
}

/// Publishes at a steady rate while the processor runs.
async fn paced(dir: &Path, pg: &Pg, send_secs: u64) -> Result<Delay> {
    let bus = Broker::open(dir, BrokerConfig::default())?;
    bus.create_topic(TOPIC, TopicConfig::with_partitions(PARTITIONS))
        .await?;
    let events = send_secs * RATE_PER_SEC;
    let heard = Arc::new(Mutex::new(Heard::default()));
    let p = start(
        &bus,
        dir,
        pg,
        "bench-process-delay",
        Arc::new(Mutex::new(events)),
        Arc::clone(&heard),
        true,
    )
    .await?;
    let pacer = {
        let bus = bus.clone();
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut publishes = Vec::with_capacity(events as usize);
            let paced = pacer::pace(RATE_PER_SEC, events, |n| {
                let mut e = event(n);
                e.time_ms = Some(utc::now_ms());
                let bus = bus.clone();
                publishes.push(handle.spawn(async move { bus.publish(TOPIC, e).await }));
            });
            (publishes, paced)
        })
    };
    let (publishes, paced) = pacer.await.context("the pacer panicked")?;
    for publish in publishes {
        publish.await.context("a publish task panicked")??;
    }
    wait_for(&heard, events).await?;
    let (commits, late) = (p.metrics().commits(), p.metrics().late());
    p.stop().await?;
    bus.close()?;
    let total = pg.total().await?;
    if total + late as i64 != events as i64 {
        bail!("the processor's counts add up to {total} and {late} late, not {events}");
    }
    let mut samples = std::mem::take(&mut heard.lock().unwrap_or_else(|p| p.into_inner()).delays);
    samples.sort_unstable();
    Ok(Delay {
        samples,
        late,
        commits,
        send_time: paced.elapsed,
        pacer: paced,
    })
}
