//! `eddy demo shop`: the seed's e-commerce order flow, run end to end —
//! in this process on an embedded bus (the default), or as one process per
//! service against `eddy serve` (`--server`).

pub mod analytics;
pub mod saga;
pub mod shop;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::Bus;
use eddy_client::{Client, ClientConfig};
use eddy_runtime::processing::ProcessorMetrics;

use shop::{Shared, ShopConfig, Summary};

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(subcommand)]
    demo: Demo,
}

#[derive(Debug, Subcommand)]
enum Demo {
    /// The seed's e-commerce order flow: order, inventory, payment,
    /// shipping, notification and analytics services, choreographed, with
    /// injected failures; ends with a summary.
    Shop(ShopArgs),
    /// One service of the shop, against a server (what `shop --server`
    /// starts, one process per service; it stops when its stdin closes).
    #[command(hide = true)]
    Service(ServiceArgs),
    /// The shop's analytics processor alone, on the embedded bus in --dir:
    /// catches up with what the shop's topics hold (or recomputes from
    /// --replay-from), prints the order counts and revenue per minute,
    /// and stops.
    Analytics(AnalyticsArgs),
}

#[derive(Debug, Args)]
struct AnalyticsArgs {
    /// The embedded bus's folder (a `demo shop` run's --dir).
    #[arg(long, default_value = "eddy-demo", value_name = "DIR")]
    dir: PathBuf,
    /// Keep the results in this PostgreSQL database (a libpq connection
    /// string, e.g. `host=127.0.0.1 user=postgres dbname=test`), in the
    /// table shop_analytics; without it they stay in the processor's
    /// embedded store.
    #[arg(long, value_name = "CONNECTION")]
    postgres: Option<String>,
    /// Recompute every minute from this time on (RFC 3339), replacing
    /// what the processor wrote.
    #[arg(long, value_name = "TIME", value_parser = super::parse::rfc3339_ms)]
    replay_from: Option<i64>,
    /// Minutes to print (the latest).
    #[arg(long, default_value_t = 10)]
    minutes: usize,
    /// Also print the processor's metrics, in the Prometheus text format.
    #[arg(long)]
    metrics: bool,
    /// The processor's name (tests run several over one bus).
    #[arg(long, hide = true, default_value = analytics::NAME)]
    name: String,
    /// Its result table.
    #[arg(long, hide = true, default_value = analytics::TABLE)]
    table: String,
    /// Events read per partition per round.
    #[arg(long, hide = true, default_value_t = 1_000)]
    batch: u32,
}

/// The failures a run injects, shared by the driver and the services.
#[derive(Debug, Clone, Args)]
struct Failures {
    /// The seed of every injected failure (random if not given; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Share of orders whose item is out of stock.
    #[arg(long, default_value_t = 0.1, value_name = "0..1")]
    out_of_stock_rate: f64,
    /// Share of payments the gateway declines.
    #[arg(long, default_value_t = 0.1, value_name = "0..1")]
    payment_failure_rate: f64,
    /// Share of email sends that fail with a transient error (retried,
    /// then dead-lettered).
    #[arg(long, default_value_t = 0.3, value_name = "0..1")]
    email_failure_rate: f64,
    /// The payment gateway is down from this many milliseconds after the
    /// first order …
    #[arg(long, default_value_t = 500, value_name = "MS")]
    outage_at_ms: u64,
    /// … for this many milliseconds (0: no outage).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    outage_ms: u64,
    /// Redelivery waits of 1, 4 and 9 times this, then the dead-letter
    /// queue (the seed's 1 s, 4 s, 9 s is 1000).
    #[arg(long, default_value_t = 250, value_name = "MS")]
    backoff_base_ms: u64,
}

#[derive(Debug, Args)]
struct ShopArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 200)]
    orders: u32,
    /// Orders placed per second (0: as fast as the bus takes them).
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[command(flatten)]
    failures: Failures,
    /// The embedded bus's folder (kept, so that `eddy trace --dir` can
    /// read the run afterwards).
    #[arg(long, default_value = "eddy-demo", value_name = "DIR")]
    dir: PathBuf,
    /// Run each service as its own process against this `eddy serve`
    /// (its native-protocol address) instead of in-process on `--dir`.
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// The access token for --server, if it wants one.
    #[arg(long, env = "EDDY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Longest wait for every order to reach a final state.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    deadline_s: u64,
    /// How the services coordinate: `choreography` (each reacts to the
    /// others' events) or `orchestration` (a saga orchestrator sends each
    /// step's command and compensates in reverse on a failure).
    #[arg(long, value_enum, default_value_t = Style::Choreography)]
    style: Style,
    /// Share of shipments that fail (orchestration).
    #[arg(long, default_value_t = 0.1, value_name = "0..1")]
    shipment_failure_rate: f64,
    /// Per-attempt timeout of each saga step (orchestration); above the
    /// 2 s lease of commands and replies, so that after a crash what the
    /// dead process held comes back before the step times out.
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    step_timeout_ms: u64,
    /// Print each saga event as the orchestrator records it.
    #[arg(long)]
    trace_sagas: bool,
    /// Keep the analytics (order counts by status and revenue per minute)
    /// in this PostgreSQL database (a libpq connection string, e.g.
    /// `host=127.0.0.1 user=postgres dbname=test`), table shop_analytics;
    /// without it they stay in the processor's embedded store in --dir.
    #[arg(long, value_name = "CONNECTION")]
    postgres: Option<String>,
    /// The run id (orchestration; a run given the same id, folder and
    /// seed resumes the sagas of the first).
    #[arg(long, hide = true)]
    run: Option<String>,
    /// Test support: stop right after recording the first saga event that
    /// matches `<Type>:<step>:<do|undo>` (`*` for any), to be killed.
    #[arg(long, hide = true)]
    pause_after: Option<String>,
}

/// How the shop's services coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Style {
    /// Services react to each other's events; no coordinator.
    Choreography,
    /// A saga orchestrator drives each order.
    Orchestration,
}

#[derive(Debug, Args)]
struct ServiceArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    server: String,
    #[arg(long, env = "EDDY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long)]
    run: String,
    /// When the run's first order was placed (ms since the epoch): where
    /// the outage window starts from.
    #[arg(long)]
    start_ms: i64,
    /// Where the service keeps its processed-id store.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    failures: Failures,
}

impl Failures {
    fn config(&self, run: String) -> Result<ShopConfig> {
        for (name, rate) in [
            ("--out-of-stock-rate", self.out_of_stock_rate),
            ("--payment-failure-rate", self.payment_failure_rate),
            ("--email-failure-rate", self.email_failure_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bail!(super::exit::Usage(format!(
                    "{name} {rate} is not a share between 0 and 1"
                )));
            }
        }
        if self.backoff_base_ms == 0 || self.backoff_base_ms > 60_000 {
            bail!(super::exit::Usage(
                "--backoff-base-ms must be within 1..=60000".into()
            ));
        }
        Ok(ShopConfig {
            seed: self.seed.unwrap_or_else(random_seed),
            out_of_stock_rate: self.out_of_stock_rate,
            payment_failure_rate: self.payment_failure_rate,
            email_failure_rate: self.email_failure_rate,
            outage: (self.outage_ms > 0).then(|| {
                (
                    Duration::from_millis(self.outage_at_ms),
                    Duration::from_millis(self.outage_ms),
                )
            }),
            backoff_base_ms: self.backoff_base_ms,
            run,
            ..ShopConfig::default()
        })
    }

    /// The flags that give a service process the same failures.
    fn flags(&self, seed: u64) -> Vec<String> {
        vec![
            format!("--seed={seed}"),
            format!("--out-of-stock-rate={}", self.out_of_stock_rate),
            format!("--payment-failure-rate={}", self.payment_failure_rate),
            format!("--email-failure-rate={}", self.email_failure_rate),
            format!("--outage-at-ms={}", self.outage_at_ms),
            format!("--outage-ms={}", self.outage_ms),
            format!("--backoff-base-ms={}", self.backoff_base_ms),
        ]
    }
}

fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn run(args: DemoArgs) -> Result<()> {
    match args.demo {
        Demo::Shop(args) => shop_command(args),
        Demo::Service(args) => service_command(args),
        Demo::Analytics(args) => analytics_command(args),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn shop_command(args: ShopArgs) -> Result<()> {
    // A run id of the clock's milliseconds, base 36: short, and new each
    // run, so that runs sharing a folder or a server are told apart.
    let run = args
        .run
        .clone()
        .unwrap_or_else(|| radix36(now_ms() as u64 % 36u64.pow(6)));
    let mut config = args.failures.config(run)?;
    if args.style == Style::Orchestration {
        config.orders = args.orders;
        return orchestration(&args, config);
    }
    config.orders = args.orders;
    config.rate = args.rate;
    config.deadline = Duration::from_secs(args.deadline_s);
    println!(
        "eddy demo shop: {} orders at {}, seed {} (run {}); out of stock {}%, payments declined {}%, \
         emails failing {}%, gateway outage {}",
        config.orders,
        if config.rate == 0 {
            "full speed".to_string()
        } else {
            format!("{}/s", config.rate)
        },
        config.seed,
        config.run,
        config.out_of_stock_rate * 100.0,
        config.payment_failure_rate * 100.0,
        config.email_failure_rate * 100.0,
        match config.outage {
            Some((at, len)) => format!(
                "{} ms after the first order, for {} ms",
                at.as_millis(),
                len.as_millis()
            ),
            None => "none".into(),
        },
    );
    let summary = match &args.server {
        None => {
            println!(
                "services: {} in this process, on the embedded bus in {}",
                shop::SERVICES.join(", "),
                args.dir.display()
            );
            let postgres = args
                .postgres
                .clone()
                .map(|c| (c, analytics::TABLE.to_string()));
            let target = analytics::Target::new(&args.dir, analytics::NAME, postgres);
            let rt = runtime()?;
            let (summary, shared, figures) =
                rt.block_on(embedded_with(&args.dir, &config, Some(&target)))?;
            print!("{}", shop::render(&summary, &config, Some(&shared)));
            if let Some(figures) = figures {
                print_analytics(&rt, &target, &figures, 5)?;
            }
            summary
        }
        Some(server) => {
            println!(
                "services: {}, one process each, against the server at {server}",
                shop::SERVICES.join(", ")
            );
            let summary =
                runtime()?.block_on(distributed(server, args.token.as_deref(), &args, &config))?;
            print!("{}", shop::render(&summary, &config, None));
            println!(
                "analytics: the analytics processor runs with the embedded bus (without --server)"
            );
            summary
        }
    };
    let example = format!("o-{}-0", config.run);
    let place = match &args.server {
        None => format!("--dir {}", args.dir.display()),
        Some(server) => format!("--server {server}"),
    };
    println!("trace one order's flow: eddy trace {example} {place}");
    if !summary.all_final() {
        bail!(
            "{} of {} orders reached no final state within {} s: {} (seed {}; rerun with --seed {} to \
             reproduce)",
            summary.not_final.len(),
            summary.placed,
            args.deadline_s,
            shop::missing(&summary),
            config.seed,
            config.seed
        );
    }
    Ok(())
}

/// `--style orchestration`: every order a saga, on the embedded bus in
/// `--dir` (or against `--server`), orchestrator and participants in this
/// process.
fn orchestration(args: &ShopArgs, shop: shop::ShopConfig) -> Result<()> {
    if !(0.0..=1.0).contains(&args.shipment_failure_rate) {
        bail!(super::exit::Usage(format!(
            "--shipment-failure-rate {} is not a share between 0 and 1",
            args.shipment_failure_rate
        )));
    }
    if args.step_timeout_ms == 0 || args.step_timeout_ms > 600_000 {
        bail!(super::exit::Usage(
            "--step-timeout-ms must be within 1..=600000".into()
        ));
    }
    let run = saga::SagaRun {
        shop,
        shipment_failure_rate: args.shipment_failure_rate,
        step_timeout_ms: args.step_timeout_ms,
        pause_after: args.pause_after.clone(),
        trace: args.trace_sagas,
    };
    println!(
        "eddy demo shop --style orchestration: {} orders as sagas (reserve inventory → process payment → \
         create shipment → send notification), seed {} (run {})",
        run.shop.orders, run.shop.seed, run.shop.run
    );
    let deadline = Duration::from_secs(args.deadline_s);
    let report = match &args.server {
        None => {
            println!(
                "orchestrator and services in this process, on the embedded bus and event store in {}",
                args.dir.display()
            );
            runtime()?.block_on(async {
                let bus = Broker::open(args.dir.join("bus"), BrokerConfig::default())
                    .with_context(|| format!("open the embedded bus in {}", args.dir.display()))?;
                let connect = || {
                    let bus = bus.clone();
                    async move { Ok::<_, anyhow::Error>(bus) }
                };
                let report =
                    saga::run_on(connect, run.clone(), &args.dir.join("services"), deadline).await;
                bus.close().context("close the embedded bus")?;
                report
            })?
        }
        Some(server) => {
            println!("orchestrator and services in this process, against the server at {server}");
            let data = std::env::temp_dir().join(format!("eddy-saga-demo-{}", run.shop.run));
            let report = runtime()?.block_on(async {
                let client_config = ClientConfig {
                    token: args.token.clone(),
                    client_name: "eddy-demo-saga".into(),
                    ..ClientConfig::default()
                };
                let connect = || {
                    let client_config = client_config.clone();
                    async move {
                        Client::connect(server.as_str(), client_config)
                            .await
                            .with_context(|| {
                                format!(
                                    "connect to the server at {server} (is `eddy serve` running?)"
                                )
                            })
                    }
                };
                saga::run_on(connect, run.clone(), &data, deadline).await
            });
            let _ = std::fs::remove_dir_all(&data);
            report?
        }
    };
    print!("{}", saga::render(&report, &run));
    let place = match &args.server {
        None => format!("--dir {}", args.dir.display()),
        Some(server) => format!("--server {server}"),
    };
    println!("see one saga: eddy saga show o-{}-0 {place}", run.shop.run);
    saga::verdict(&report)
}

fn radix36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// One run on the embedded bus in `dir`, every service in this process.
pub async fn embedded(
    dir: &std::path::Path,
    config: &ShopConfig,
) -> Result<(Summary, Arc<Shared>)> {
    let (summary, shared, _) = embedded_with(dir, config, None).await?;
    Ok((summary, shared))
}

/// [`embedded`], with the analytics processor writing to `analytics`.
pub async fn embedded_with(
    dir: &std::path::Path,
    config: &ShopConfig,
    analytics: Option<&analytics::Target>,
) -> Result<(Summary, Arc<Shared>, Option<Arc<ProcessorMetrics>>)> {
    let bus = Broker::open(dir.join("bus"), BrokerConfig::default())
        .with_context(|| format!("open the embedded bus in {}", dir.display()))?;
    let result = embedded_on(&bus, &dir.join("services"), config, analytics).await;
    bus.close().context("close the embedded bus")?;
    result
}

/// Runs `run` with the analytics processor beside it (when asked), and
/// stops the processor once it has caught up with what `run` left.
async fn beside_analytics<B: Bus + Clone, T>(
    bus: &B,
    target: Option<&analytics::Target>,
    run: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, Option<Arc<ProcessorMetrics>>)> {
    let processor = match target {
        Some(t) => Some(
            t.start(bus.clone(), analytics::processor(analytics::NAME)?)
                .await?,
        ),
        None => None,
    };
    let out = run.await?;
    let figures = match processor {
        Some(mut p) => {
            p.caught_up().await?;
            let figures = p.metrics();
            p.stop().await?;
            Some(figures)
        }
        None => None,
    };
    Ok((out, figures))
}

async fn embedded_on(
    bus: &Broker,
    data: &std::path::Path,
    config: &ShopConfig,
    analytics: Option<&analytics::Target>,
) -> Result<(Summary, Arc<Shared>, Option<Arc<ProcessorMetrics>>)> {
    shop::setup(bus, config).await?;
    let ((summary, shared), figures) =
        beside_analytics(bus, analytics, run_services(bus, data, config)).await?;
    Ok((summary, shared, figures))
}

async fn run_services(
    bus: &Broker,
    data: &std::path::Path,
    config: &ShopConfig,
) -> Result<(Summary, Arc<Shared>)> {
    let mut marks = shop::marks(bus).await?;
    let shared = Arc::new(Shared::default());
    let gateway = shop::gateway(config);
    let mut running = Vec::new();
    for name in shop::SERVICES {
        running.push(shop::start_service(
            name, bus, config, &shared, &gateway, data,
        )?);
    }
    let (started, first_ms) = (Instant::now(), now_ms());
    let placing = shop::place_orders(bus, config);
    let waiting = shop::await_final(bus, config, marks.clone(), started);
    let (placed, summary) = tokio::join!(placing, waiting);
    placed.context("place the orders")?;
    let mut summary = summary?;
    settle(bus, config).await?;
    for service in running {
        service.stop().await;
    }
    shop::tally(bus, &mut marks, first_ms, &mut summary).await?;
    Ok((summary, shared))
}

/// Waits until no subscription has work left (retries of emails still
/// scheduled after their orders were final), up to the longest backoff.
async fn settle<B: Bus>(bus: &B, config: &ShopConfig) -> Result<()> {
    let give_up = Instant::now() + Duration::from_millis(30 * config.backoff_base_ms + 5000);
    loop {
        let mut busy = false;
        for name in shop::subscriptions() {
            let s = bus.subscription_stats(name).await?;
            busy |= s.lag > 0 || s.in_flight > 0 || s.waiting > 0;
        }
        if !busy || Instant::now() >= give_up {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One run against a server, each service its own process.
async fn distributed(
    server: &str,
    token: Option<&str>,
    args: &ShopArgs,
    config: &ShopConfig,
) -> Result<Summary> {
    let client_config = ClientConfig {
        token: token.map(str::to_string),
        client_name: "eddy-demo-shop".into(),
        ..ClientConfig::default()
    };
    let bus = Client::connect(server, client_config)
        .await
        .with_context(|| format!("connect to the server at {server} (is `eddy serve` running?)"))?;
    shop::setup(&bus, config).await?;
    let mut marks = shop::marks(&bus).await?;
    let data = std::env::temp_dir().join(format!("eddy-demo-{}", config.run));
    // The services start first; the outage window counts from this time.
    let start_ms = now_ms() + 500;
    let exe = std::env::current_exe().context("find the eddy executable")?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for name in shop::SERVICES {
        let mut command = Command::new(&exe);
        command
            .args(["demo", "service", "--name", name, "--server", server])
            .args(["--run", &config.run, "--start-ms", &start_ms.to_string()])
            .arg("--data")
            .arg(&data)
            .args(args.failures.flags(config.seed))
            .stdin(Stdio::piped());
        if let Some(token) = token {
            command.env("EDDY_TOKEN", token);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start the {name} service"))?;
        children.push((name.to_string(), child));
    }
    let wait = start_ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let started = Instant::now();
    let placing = shop::place_orders(&bus, config);
    let waiting = shop::await_final(&bus, config, marks.clone(), started);
    let (placed, summary) = tokio::join!(placing, waiting);
    placed.context("place the orders")?;
    let mut summary = summary?;
    settle(&bus, config).await?;
    // Closing a service's stdin stops it: it finishes what it holds.
    for (name, mut child) in children {
        drop(child.stdin.take());
        let status = child
            .wait()
            .with_context(|| format!("wait for the {name} service"))?;
        if !status.success() {
            eprintln!("the {name} service exited with {status}");
        }
    }
    let _ = std::fs::remove_dir_all(&data);
    shop::tally(&bus, &mut marks, start_ms, &mut summary).await?;
    bus.close().await;
    Ok(summary)
}

fn print_analytics(
    rt: &tokio::runtime::Runtime,
    target: &analytics::Target,
    figures: &ProcessorMetrics,
    minutes: usize,
) -> Result<()> {
    let rows = rt.block_on(target.rows())?;
    println!(
        "analytics: orders by status and revenue per minute of event time, {}:",
        target.describe()
    );
    print!("{}", analytics::render(&rows, minutes));
    let ms = |q| {
        figures
            .delay_quantile_ms(q)
            .map_or("-".into(), |v| format!("≤{v} ms"))
    };
    println!(
        "analytics processor: {} events read, {} late, {} checkpoints; event → result committed p50 {}, p99 {}",
        figures.events(),
        figures.late(),
        figures.commits(),
        ms(0.5),
        ms(0.99)
    );
    Ok(())
}

/// `eddy demo analytics`: the processor alone, until it has caught up.
fn analytics_command(args: AnalyticsArgs) -> Result<()> {
    let postgres = args.postgres.clone().map(|c| (c, args.table.clone()));
    let target = analytics::Target::new(&args.dir, &args.name, postgres);
    let rt = runtime()?;
    let figures = rt.block_on(async {
        let bus = Broker::open(args.dir.join("bus"), BrokerConfig::default())
            .with_context(|| format!("open the embedded bus in {}", args.dir.display()))?;
        let mut processor = analytics::processor(&args.name)?.batch_max(args.batch);
        if let Some(from) = args.replay_from {
            println!(
                "replaying from {}: the minutes from the one holding it on are recomputed",
                crate::utc::format_ms(from)
            );
            processor = processor.replay_from(from);
        }
        let mut p = target.start(bus.clone(), processor).await?;
        p.caught_up().await?;
        let figures = p.metrics();
        p.stop().await?;
        bus.close().context("close the embedded bus")?;
        anyhow::Ok(figures)
    })?;
    print_analytics(&rt, &target, &figures, args.minutes)?;
    if args.metrics {
        print!("{}", figures.render());
    }
    Ok(())
}

fn service_command(args: ServiceArgs) -> Result<()> {
    let mut config = args.failures.config(args.run.clone())?;
    config.seed = args.failures.seed.unwrap_or(config.seed);
    runtime()?.block_on(async {
        let client_config = ClientConfig {
            token: args.token.clone(),
            client_name: format!("eddy-demo-{}", args.name),
            ..ClientConfig::default()
        };
        let bus = Client::connect(args.server.as_str(), client_config)
            .await
            .with_context(|| format!("connect to {}", args.server))?;
        let shared = Arc::new(Shared::default());
        let gateway = shop::gateway_from(&config, args.start_ms, now_ms());
        let running =
            shop::start_service(&args.name, &bus, &config, &shared, &gateway, &args.data)?;
        // Until the driver closes our stdin (or it is gone).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await
        .context("watch stdin")?;
        running.stop().await;
        bus.close().await;
        Ok(())
    })
}
