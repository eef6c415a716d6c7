//! The crate's error type.

/// What stopped the HTTP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A setting of [`HttpConfig`](crate::HttpConfig) is out of range.
    #[error("invalid HTTP setting `{setting}`: {reason}")]
    Config {
        /// The setting.
        setting: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The listener failed.
    #[error("HTTP server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The result type of this crate.
pub type Result<T, E = HttpError> = std::result::Result<T, E>;
