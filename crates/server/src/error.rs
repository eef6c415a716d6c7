//! `ServerError`: why a server did not start.

/// Why [`crate::serve_native`] refused to start. Once serving, the server
/// does not fail as a whole: a broken connection ends only itself, and an
/// error accepting a connection is logged and retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A [`crate::ServerConfig`] setting is out of its range.
    #[error("invalid server setting `{setting}`: {reason}")]
    InvalidConfig {
        /// The setting.
        setting: &'static str,
        /// Its allowed range, and the value given.
        reason: String,
    },
    /// The TLS certificate or key cannot be used; the text says why.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The result type of this crate.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;
