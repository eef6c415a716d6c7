//! The flags every server command shares (`--server`, `--token`, `--json`,
//! and `--tls-ca` / `--tls-server-name` for a server speaking TLS)
//! and running a command against a server: a current-thread Tokio runtime,
//! a [`Client`] connection, and Ctrl-C for the commands that follow.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use eddy_client::{Client, ClientConfig, ClientTls};

use super::exit::{ExplainExt, Usage, explain_connect};

/// The default server address: the default listener of `eddy serve`.
pub const SERVER_DEFAULT: &str = "127.0.0.1:7420";

/// How to reach the server, and how to print.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The server's native-protocol address.
    #[arg(
        long,
        global = true,
        help_heading = "Server options",
        value_name = "HOST:PORT",
        env = "EDDY_SERVER",
        default_value = SERVER_DEFAULT
    )]
    pub server: String,
    /// The access token, if the server wants one.
    #[arg(
        long,
        global = true,
        help_heading = "Server options",
        value_name = "TOKEN",
        env = "EDDY_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print JSON for scripts instead of text: one document, or one object
    /// per line (NDJSON) for streams of events.
    #[arg(long, global = true, help_heading = "Server options")]
    pub json: bool,
    /// Speak TLS to the server, trusting the certificates in this PEM file
    /// (its CA, or its self-signed certificate).
    #[arg(
        long,
        global = true,
        help_heading = "Server options",
        value_name = "PEM FILE",
        env = "EDDY_TLS_CA"
    )]
    pub tls_ca: Option<PathBuf>,
    /// With --tls-ca: the name the server's certificate must carry
    /// [default: the host of --server].
    #[arg(
        long,
        global = true,
        help_heading = "Server options",
        value_name = "NAME",
        env = "EDDY_TLS_SERVER_NAME"
    )]
    pub tls_server_name: Option<String>,
}

impl Remote {
    /// Connects, then runs `command` with the connection on a
    /// current-thread runtime.
    pub fn run<F, Fut>(&self, command: F) -> Result<()>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the async runtime")?;
        let config = ClientConfig {
            token: self.token.clone(),
            client_name: concat!("eddy-cli/", env!("CARGO_PKG_VERSION")).to_string(),
            tls: self.tls()?,
            ..ClientConfig::default()
        };
        runtime.block_on(async {
            let client = Client::connect(self.server.as_str(), config)
                .await
                .map_err(|e| explain_connect(e, &self.server))?;
            let result = command(client.clone()).await;
            client.close().await;
            result
        })
    }

    /// The TLS settings of `--tls-ca` and `--tls-server-name`.
    fn tls(&self) -> Result<Option<ClientTls>> {
        let Some(path) = &self.tls_ca else {
            if self.tls_server_name.is_some() {
                return Err(Usage(
                    "--tls-server-name needs --tls-ca: TLS is used only with the roots to trust"
                        .into(),
                )
                .into());
            }
            return Ok(None);
        };
        let pem = std::fs::read(path)
            .map_err(|e| Usage(format!("cannot read --tls-ca {}: {e}", path.display())))?;
        let tls = ClientTls::from_pem(&pem)
            .map_err(|e| Usage(format!("--tls-ca {}: {e}", path.display())))?;
        Ok(Some(match &self.tls_server_name {
            Some(name) => tls.with_server_name(name.clone()),
            None => tls,
        }))
    }

    /// A bus result explained for this server.
    pub fn check<T>(&self, result: eddy_bus::Result<T>) -> Result<T> {
        result.explain(&self.server)
    }
}

/// Runs `f` on the embedded bus in the folder `dir` (not in use by another
/// process; `eddy demo shop --dir` keeps its bus in `bus` inside), then
/// closes the bus.
pub fn with_folder<T>(
    dir: &std::path::Path,
    f: impl AsyncFnOnce(&eddy_broker::Broker) -> Result<T>,
) -> Result<T> {
    let folder = if dir.join("bus").is_dir() {
        dir.join("bus")
    } else {
        dir.to_path_buf()
    };
    if !folder.is_dir() {
        anyhow::bail!(super::exit::Usage(format!(
            "--dir {}: no such folder",
            dir.display()
        )));
    }
    let bus = eddy_broker::Broker::open(&folder, eddy_broker::BrokerConfig::default())
        .with_context(|| format!("open the embedded bus in {}", folder.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result = runtime.block_on(f(&bus));
    bus.close().context("close the embedded bus")?;
    result
}
