//! `eddy serve`: the embedded broker on a folder, served to other
//! processes over the native protocol (`docs/protocol.md`) and HTTP, until
//! SIGTERM or Ctrl-C.
//!
//! Settings come from defaults, then the TOML file given with `--config`
//! (`docs/configuration.md`), then `EDDY_*` environment variables, then
//! flags. Without tokens the server is open, and so it listens on
//! loopback addresses only; any other address needs tokens.

mod config;
mod http_listener;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use eddy_auth::{Access, Open, Tokens};
use eddy_broker::{Broker, BrokerConfig, Clock, FsyncPolicy, ManualClock};
use eddy_http::{HttpConfig, serve_listener};
use eddy_metrics::{Listener as MetricsListener, Metrics};
use eddy_server::{Listening, ServerConfig, serve_native_with, tls_acceptor};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use config::{FileConfig, parse_fsync, parse_http_listen};
pub use config::{HTTP_PORT_DEFAULT, NATIVE_PORT_DEFAULT};
use http_listener::HttpListener;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, value_name = "FILE", env = "EDDY_CONFIG")]
    config: Option<PathBuf>,
    /// The data folder [default: ./eddy-data].
    #[arg(long, value_name = "DIR", env = "EDDY_DATA_DIR")]
    dir: Option<PathBuf>,
    /// Address of the native-protocol listener [default: 127.0.0.1:7420].
    #[arg(long, value_name = "ADDR", env = "EDDY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of the HTTP listener, or `off` [default: 127.0.0.1:7421].
    #[arg(long, value_name = "ADDR", env = "EDDY_HTTP_LISTEN")]
    http: Option<String>,
    /// Durability: `always` (fsync before every acknowledgement, with
    /// group commit), `interval(10ms)`, or `never` [default: always].
    #[arg(long, value_name = "POLICY", env = "EDDY_FSYNC")]
    fsync: Option<String>,
    /// TLS certificate chain (PEM) for both listeners; needs --tls-key.
    #[arg(long, value_name = "FILE", env = "EDDY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for both listeners; needs --tls-cert.
    #[arg(long, value_name = "FILE", env = "EDDY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// For Eddy's own conformance tests: read time from a manual clock
    /// starting at this Unix time in ms, moved by `advance <ms>` lines on
    /// stdin (each answered by `clock <ms>` on stdout); the background
    /// timer is off.
    #[arg(long, value_name = "MS", hide = true)]
    manual_clock_ms: Option<i64>,
}

/// Every setting of a server, resolved.
#[derive(Debug)]
struct Settings {
    dir: PathBuf,
    fsync: FsyncPolicy,
    native: SocketAddr,
    http: Option<SocketAddr>,
    tls: Option<(PathBuf, PathBuf)>,
    broker: BrokerConfig,
    server: ServerConfig,
    http_config: HttpConfig,
    file: FileConfig,
}

impl Settings {
    /// Defaults, overridden by the file, then by the environment and flags
    /// (clap has already put the environment under the flags).
    fn resolve(args: &ServeArgs) -> Result<Settings> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let fsync = match args.fsync.as_deref().or(file.fsync.as_deref()) {
            Some(s) => parse_fsync(s).context("the fsync setting")?,
            None => FsyncPolicy::Always,
        };
        let http = match args.http.as_deref().or(file.http.listen.as_deref()) {
            Some(s) => parse_http_listen(s).context("the HTTP listener")?,
            None => Some(SocketAddr::from(([127, 0, 0, 1], HTTP_PORT_DEFAULT))),
        };
        let tls = match (&args.tls_cert, &args.tls_key, &file.tls) {
            (Some(c), Some(k), _) => Some((c.clone(), k.clone())),
            (_, _, Some(t)) => Some((t.cert.clone(), t.key.clone())),
            _ => None,
        };
        let mut broker = BrokerConfig {
            fsync,
            ..BrokerConfig::default()
        };
        if let Some(auto) = file.auto_create_topics {
            broker.auto_create_topics = auto;
        }
        if let Some(us) = file.group_commit_window_us {
            broker.group_commit_window_us = us;
        }
        if let Some(n) = file.limits.event_bytes_max {
            broker.event_limits.event_bytes_max = n;
        }
        if let Some(n) = file.limits.headers_max {
            broker.event_limits.headers_max = n;
        }
        let mut server = ServerConfig::default();
        let n = &file.native;
        server.max_connections = n.max_connections.unwrap_or(server.max_connections);
        server.max_frame_bytes = n.max_frame_bytes.unwrap_or(server.max_frame_bytes);
        server.max_in_flight_requests = n
            .max_in_flight_requests
            .unwrap_or(server.max_in_flight_requests);
        server.write_queue_frames = n.write_queue_frames.unwrap_or(server.write_queue_frames);
        server.validate().context("the [native] settings")?;
        let mut http_config = HttpConfig::default();
        if let Some(n) = file.http.max_connections {
            http_config.max_connections = n;
        }
        if let Some(n) = file.http.max_body_bytes {
            http_config.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        http_config.validate().context("the [http] settings")?;
        Ok(Settings {
            dir: args
                .dir
                .clone()
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from("./eddy-data")),
            fsync,
            native: args
                .listen
                .or(file.native.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], NATIVE_PORT_DEFAULT))),
            http,
            tls,
            broker,
            server,
            http_config,
            file,
        })
    }

    /// The listeners that are not on a loopback address.
    fn exposed(&self) -> Vec<SocketAddr> {
        std::iter::once(self.native)
            .chain(self.http)
            .filter(|a| !a.ip().is_loopback())
            .collect()
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    let settings = Settings::resolve(&args)?;
    if settings.file.tokens.is_empty() && !settings.exposed().is_empty() {
        bail!(
            "refusing to listen on {} without access tokens: anyone who can reach it could \
             read and write every topic. Create a token with `eddy token create --name <who> \
             --allow admin:'>'`, put the printed [[tokens]] entry in a config file, and start \
             with `eddy serve --config <file>` (see docs/configuration.md); or listen on \
             127.0.0.1 for development",
            settings
                .exposed()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(serve(settings, args.manual_clock_ms))
}

async fn serve(settings: Settings, manual_clock_ms: Option<i64>) -> Result<()> {
    let tls = match &settings.tls {
        Some((cert, key)) => {
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("read the TLS file {}", p.display()))
            };
            Some(tls_acceptor(&read(cert)?, &read(key)?).context("set up TLS")?)
        }
        None => None,
    };
    let mut broker_config = settings.broker.clone();
    let manual = manual_clock_ms.map(|ms| Arc::new(ManualClock::new(ms)));
    let clock: Arc<dyn Clock> = match &manual {
        Some(m) => {
            broker_config.timer_interval_ms = None;
            m.clone()
        }
        None => Arc::new(eddy_broker::SystemClock),
    };
    let broker = Broker::open_with_clock(&settings.dir, broker_config, clock)
        .with_context(|| format!("open the broker in {}", settings.dir.display()))?;
    if let Some(clock) = manual {
        // A thread of its own: a runtime task blocked reading stdin would
        // keep the runtime from shutting down.
        std::thread::spawn(move || drive_manual_clock(&clock));
    }
    // Every listener serves the same metered bus; /metrics reads it.
    let metrics = Metrics::new();
    let bus = metrics.metered(broker.clone());
    let served = Served {
        settings: &settings,
        tls,
        metrics,
        broker: broker.clone(),
    };
    let result = if settings.file.tokens.is_empty() {
        served
            .listen(Open(bus), "open (no tokens configured; loopback only)")
            .await
    } else {
        let tokens = Tokens::from_config(bus, &settings.file.tokens)
            .context("the [[tokens]] of the config file")?;
        let access = format!("{} token(s) required", tokens.len());
        served.listen(tokens, &access).await
    };
    let closed = broker.close().context("close the broker");
    result?;
    closed?;
    println!("eddy serve: stopped; everything acknowledged is on disk");
    Ok(())
}

/// What the listeners share.
struct Served<'a> {
    settings: &'a Settings,
    tls: Option<TlsAcceptor>,
    metrics: Metrics,
    /// The bus itself, unmetered, for /metrics to read.
    broker: Broker,
}

impl Served<'_> {
    /// Binds the listeners, prints the banner, and serves until SIGTERM or
    /// Ctrl-C.
    async fn listen<A: Access + Clone>(self, access: A, access_note: &str) -> Result<()> {
        let Served {
            settings,
            tls,
            metrics,
            broker,
        } = self;
        let native = tokio::net::TcpListener::bind(settings.native)
            .await
            .with_context(|| format!("listen on {} (native protocol)", settings.native))?;
        let native_addr = native.local_addr().context("read the listening address")?;
        let scheme = if tls.is_some() { "tls" } else { "tcp" };
        let http = match settings.http {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listen on {addr} (HTTP)"))?;
                Some(
                    HttpListener::new(listener, tls.clone(), metrics.clone())
                        .context("read the HTTP listening address")?,
                )
            }
            None => None,
        };
        // The first line is read by scripts and tests: keep it.
        println!("eddy serve: native protocol on {native_addr}");
        println!("  native:     {scheme}://{native_addr}");
        match &http {
            Some(h) => {
                let web = if tls.is_some() { "https" } else { "http" };
                let addr = axum::serve::Listener::local_addr(h).context("HTTP address")?;
                println!("  http:       {web}://{addr}  (API under /v1, /metrics, /healthz)");
            }
            None => println!("  http:       off"),
        }
        println!("  data:       {}", settings.dir.display());
        println!("  durability: fsync {}", settings.fsync);
        println!("  access:     {access_note}");
        println!("  stop with Ctrl-C or SIGTERM: in-flight work finishes, then the broker closes");
        let (stop_tx, stop) = watch::channel(false);
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listen for SIGTERM")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            let _ = stop_tx.send(true);
        });
        let native_metrics = metrics.clone();
        let listening = Listening {
            tls,
            on_connection: Some(Arc::new(move || {
                Box::new(native_metrics.connection(MetricsListener::Native))
            })),
        };
        let stopped = |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let http_served = async {
            let Some(http) = http else { return Ok(()) };
            let scrape = metrics.clone();
            let extra = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let (metrics, broker) = (scrape.clone(), broker.clone());
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            metrics.render(&broker).await,
                        )
                    }
                }),
            );
            serve_listener(
                http,
                access.clone(),
                settings.http_config.clone(),
                extra,
                stopped(stop.clone()),
            )
            .await
            .context("serve HTTP")
        };
        let native_served = async {
            serve_native_with(
                native,
                access.clone(),
                listening,
                settings.server.clone(),
                stopped(stop.clone()),
            )
            .await
            .context("serve the native protocol")
        };
        let (native_result, http_result) = tokio::join!(native_served, http_served);
        native_result?;
        http_result?;
        Ok(())
    }
}

/// Moves the manual clock as stdin says (`advance <ms>`), answering each
/// line with the clock's time (`clock <ms>`).
fn drive_manual_clock(clock: &ManualClock) {
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { return };
        if let Some(ms) = line
            .strip_prefix("advance ")
            .and_then(|m| m.trim().parse().ok())
        {
            clock.advance_ms(ms);
        }
        println!("clock {}", clock.now_ms());
    }
}
