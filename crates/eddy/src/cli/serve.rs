//! `eddy serve`: the embedded broker on a folder, served over the native
//! protocol (`docs/protocol.md`) until SIGTERM or Ctrl-C.
//!
//! This first version takes its settings from flags only; the TOML config
//! file, the HTTP API and tokens come with the rest of issue 4. Without
//! tokens the server is open, so it listens on loopback addresses only.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use eddy_broker::{Broker, BrokerConfig, FsyncPolicy};
use eddy_server::{ServerConfig, serve_native};

/// Eddy's own default port for the native protocol; no service of this
/// machine's (PostgreSQL, Redis, RabbitMQ, NATS, MariaDB, Mosquitto) uses it.
pub const NATIVE_PORT_DEFAULT: u16 = 7420;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The data folder.
    #[arg(long, value_name = "DIR", default_value = "./eddy-data")]
    dir: PathBuf,
    /// Address of the native-protocol listener (loopback only for now:
    /// there are no tokens yet).
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], NATIVE_PORT_DEFAULT)))]
    listen: SocketAddr,
    /// Durability: `always` (fsync before every acknowledgement, with
    /// group commit), `interval(10ms)`, or `never`.
    #[arg(long, value_name = "POLICY", default_value = "always", value_parser = parse_fsync)]
    fsync: FsyncPolicy,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    s.parse::<FsyncPolicy>().map_err(|e| e.to_string())
}

pub fn run(args: ServeArgs) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: without access tokens (not implemented yet) Eddy \
             serves loopback addresses only; use --listen 127.0.0.1:{NATIVE_PORT_DEFAULT}",
            args.listen
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> Result<()> {
    let config = BrokerConfig {
        fsync: args.fsync,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(&args.dir, config)
        .with_context(|| format!("open the broker in {}", args.dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("read the listening address")?;
    println!("eddy serve: native protocol on {addr}");
    println!("  data:       {}", args.dir.display());
    println!("  durability: fsync {}", args.fsync);
    println!("  access:     open (no tokens configured; loopback only)");
    println!("  stop with Ctrl-C or SIGTERM: in-flight work finishes, then the broker closes");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listen for SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    serve_native(listener, broker.clone(), ServerConfig::default(), shutdown)
        .await
        .context("serve")?;
    broker.close().context("close the broker")?;
    println!("eddy serve: stopped; everything acknowledged is on disk");
    Ok(())
}
