//! The HTTP API's settings.

use eddy_bus::{READ_MAX, WAIT_MS_MAX};

use crate::error::{HttpError, Result};

/// Most deliveries an SSE stream may hold unsettled (`max_in_flight`).
pub const SSE_MAX_IN_FLIGHT_MAX: u32 = 1000;

/// Settings of the HTTP API. [`HttpConfig::default`] suits a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest request body. The default, 16 MiB, holds a batch of 10,000
    /// events of 1 KiB each (JSON or base64), or one 1 MiB event.
    pub max_body_bytes: usize,
    /// Most connections open at once; a connection beyond is closed as
    /// soon as it is accepted.
    pub max_connections: u32,
    /// An SSE stream with nothing to send writes a keep-alive comment this
    /// often.
    pub sse_keepalive_ms: u64,
    /// How long each fetch behind an SSE stream waits for events.
    pub push_wait_ms: u64,
    /// On shutdown, how long in-flight requests get to finish before their
    /// connections are closed.
    pub shutdown_grace_ms: u64,
    /// Most events in one publish request.
    pub max_batch_events: usize,
    /// Most events (or dead letters) one read request returns.
    pub max_read_events: u32,
    /// A connection with no bytes read or written for this long is closed
    /// (it must exceed the longest fetch wait, 60 s, and the SSE keep-alive).
    pub idle_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 16 * 1024 * 1024,
            max_connections: 1024,
            sse_keepalive_ms: 15_000,
            push_wait_ms: 1000,
            shutdown_grace_ms: 30_000,
            max_batch_events: 10_000,
            max_read_events: 10_000,
            idle_timeout_ms: 300_000,
        }
    }
}

impl HttpConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |setting: &'static str, reason: String| Err(HttpError::Config { setting, reason });
        if self.max_body_bytes < 1024 {
            return bad(
                "max_body_bytes",
                format!("must be at least 1024, not {}", self.max_body_bytes),
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1, not 0".into());
        }
        if !(100..=3_600_000).contains(&self.sse_keepalive_ms) {
            return bad(
                "sse_keepalive_ms",
                format!("must be 100..=3600000, not {}", self.sse_keepalive_ms),
            );
        }
        if self.push_wait_ms == 0 || self.push_wait_ms > WAIT_MS_MAX {
            return bad(
                "push_wait_ms",
                format!("must be 1..={WAIT_MS_MAX}, not {}", self.push_wait_ms),
            );
        }
        if self.shutdown_grace_ms > 3_600_000 {
            return bad(
                "shutdown_grace_ms",
                format!("must be at most 3600000, not {}", self.shutdown_grace_ms),
            );
        }
        if self.max_batch_events == 0 {
            return bad("max_batch_events", "must be at least 1, not 0".into());
        }
        if self.max_read_events == 0 || self.max_read_events > READ_MAX {
            return bad(
                "max_read_events",
                format!("must be 1..={READ_MAX}, not {}", self.max_read_events),
            );
        }
        let floor = WAIT_MS_MAX
            .max(self.sse_keepalive_ms)
            .max(self.push_wait_ms);
        if self.idle_timeout_ms <= floor {
            return bad(
                "idle_timeout_ms",
                format!(
                    "must exceed the longest fetch wait and the SSE keep-alive ({floor} ms), not {}",
                    self.idle_timeout_ms
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_name_their_setting() {
        // Proves the defaults pass, and a bad value is refused naming the
        // setting to fix.
        assert!(HttpConfig::default().validate().is_ok());
        let cases: [(HttpConfig, &str); 4] = [
            (
                HttpConfig {
                    max_connections: 0,
                    ..HttpConfig::default()
                },
                "max_connections",
            ),
            (
                HttpConfig {
                    max_read_events: READ_MAX + 1,
                    ..HttpConfig::default()
                },
                "max_read_events",
            ),
            (
                HttpConfig {
                    idle_timeout_ms: 1000,
                    ..HttpConfig::default()
                },
                "idle_timeout_ms",
            ),
            (
                HttpConfig {
                    push_wait_ms: 0,
                    ..HttpConfig::default()
                },
                "push_wait_ms",
            ),
        ];
        for (config, name) in cases {
            match config.validate() {
                Err(HttpError::Config { setting, .. }) => assert_eq!(setting, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
