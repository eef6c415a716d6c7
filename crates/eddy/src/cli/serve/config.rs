//! `eddy serve`'s settings: defaults that suit a laptop, overridden by a
//! TOML file (`--config`), then by environment variables, then by flags.
//! The file's reference is `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use eddy_auth::TokenConfig;
use eddy_broker::FsyncPolicy;
use serde::Deserialize;

/// Eddy's own default port for the native protocol; no service of this
/// machine's (PostgreSQL, Redis, RabbitMQ, NATS, MariaDB, Mosquitto) uses it.
pub const NATIVE_PORT_DEFAULT: u16 = 7420;
/// Eddy's own default port for the HTTP API, next to the native one.
pub const HTTP_PORT_DEFAULT: u16 = 7421;
/// Largest configuration file read.
const CONFIG_BYTES_MAX: u64 = 16 << 20;

/// The configuration file, as written. Every field is optional; unknown
/// fields are refused (a typo must not pass silently).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The data folder.
    pub data_dir: Option<PathBuf>,
    /// `always`, `interval(10ms)` or `never`.
    pub fsync: Option<String>,
    /// Create a topic on first publish instead of refusing.
    pub auto_create_topics: Option<bool>,
    /// Under `always`: least microseconds between two fsyncs of a busy log.
    pub group_commit_window_us: Option<u64>,
    /// The native-protocol listener.
    #[serde(default)]
    pub native: NativeSection,
    /// The HTTP listener.
    #[serde(default)]
    pub http: HttpSection,
    /// TLS for both listeners.
    pub tls: Option<TlsSection>,
    /// Size limits of events.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Access tokens; none means the server is open (loopback only).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// `[native]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeSection {
    pub listen: Option<SocketAddr>,
    pub max_connections: Option<u32>,
    pub max_frame_bytes: Option<u32>,
    pub max_in_flight_requests: Option<u32>,
    pub write_queue_frames: Option<u32>,
}

/// `[http]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// An address, or `"off"` for no HTTP listener.
    pub listen: Option<String>,
    pub max_connections: Option<u32>,
    pub max_body_bytes: Option<u64>,
}

/// `[tls]`: PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub event_bytes_max: Option<usize>,
    pub headers_max: Option<usize>,
}

impl FileConfig {
    /// Reads and parses `path`; errors name the file and the line.
    pub fn read(path: &Path) -> Result<FileConfig> {
        let len = std::fs::metadata(path)
            .with_context(|| format!("read the config file {}", path.display()))?
            .len();
        if len > CONFIG_BYTES_MAX {
            bail!(
                "the config file {} is {len} bytes; the limit is {CONFIG_BYTES_MAX}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the config file {}", path.display()))?;
        FileConfig::parse(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> Result<FileConfig> {
        Ok(toml::from_str(text)?)
    }
}

/// Where the HTTP listener goes, if anywhere.
pub fn parse_http_listen(s: &str) -> Result<Option<SocketAddr>> {
    if s == "off" {
        return Ok(None);
    }
    s.parse().map(Some).with_context(|| {
        format!("`{s}` is not an address like 127.0.0.1:{HTTP_PORT_DEFAULT}, nor `off`")
    })
}

/// Parses an fsync policy, with the error saying what is accepted.
pub fn parse_fsync(s: &str) -> Result<FsyncPolicy> {
    s.parse::<FsyncPolicy>().map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_typos_are_refused() {
        // Proves: every section parses into its fields; an unknown key
        // fails naming it; a bad token hash is caught later (by Tokens).
        let text = r#"
            data_dir = "/var/lib/eddy"
            fsync = "interval(10ms)"
            auto_create_topics = true
            group_commit_window_us = 1000
            [native]
            listen = "0.0.0.0:7420"
            max_connections = 10
            [http]
            listen = "off"
            [tls]
            cert = "cert.pem"
            key = "key.pem"
            [limits]
            event_bytes_max = 65536
            [[tokens]]
            name = "orders"
            hash = "sha256:00"
            grants = [{ topics = "orders.>", allow = ["publish"] }]
        "#;
        let c = FileConfig::parse(text).unwrap();
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/var/lib/eddy")));
        assert_eq!(c.group_commit_window_us, Some(1000));
        assert_eq!(c.native.listen, Some("0.0.0.0:7420".parse().unwrap()));
        assert_eq!(c.native.max_connections, Some(10));
        assert_eq!(
            parse_http_listen(c.http.listen.as_deref().unwrap()).unwrap(),
            None
        );
        assert_eq!(c.tls.unwrap().key, PathBuf::from("key.pem"));
        assert_eq!(c.limits.event_bytes_max, Some(65536));
        assert_eq!(c.tokens[0].grants[0].allow, ["publish"]);
        let typo = FileConfig::parse("[native]\nlisten_on = \"x\"\n").unwrap_err();
        assert!(format!("{typo:#}").contains("listen_on"), "{typo:#}");
        assert!(FileConfig::parse("fsync = 3").is_err());
    }
}
