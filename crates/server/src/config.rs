//! `ServerConfig`: the limits of a native-protocol server.

use eddy_bus::WAIT_MS_MAX;
use eddy_proto::{FRAME_BYTES_CAP, FRAME_BYTES_DEFAULT, FRAME_BYTES_MIN};

use crate::error::{Result, ServerError};

/// Most requests in flight per connection that a server may allow.
pub const IN_FLIGHT_REQUESTS_CAP: u32 = 65_536;
/// Largest `pending_bytes_max`: 4 GiB.
pub const PENDING_BYTES_CAP: u64 = 4 << 30;
/// Most frames a server may queue for one connection's writer.
pub const WRITE_QUEUE_FRAMES_CAP: u32 = 65_536;

/// Settings of a native-protocol server. Every queue and count it keeps
/// is bounded by one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Sent in the `Welcome` (name and version).
    pub server_name: String,
    /// Most connections served at once; one more gets an `Error` frame
    /// (`LimitExceeded`, 1004) and is closed. At least 1.
    pub max_connections: u32,
    /// Largest frame length either side may send after the handshake
    /// (sent in the `Welcome`), `FRAME_BYTES_MIN..=FRAME_BYTES_CAP`
    /// (64 KiB ..= 64 MiB). A larger frame from a client closes its
    /// connection with error 8001.
    pub max_frame_bytes: u32,
    /// Most requests a client may have in flight on one connection (sent
    /// in the `Welcome`; an open push stream counts as one),
    /// 1..=[`IN_FLIGHT_REQUESTS_CAP`]. One more is answered with error
    /// 8013 and not executed.
    pub max_in_flight_requests: u32,
    /// Most responses queued for one connection's writer,
    /// 1..=[`WRITE_QUEUE_FRAMES_CAP`]. When a client reads slowly, the
    /// queue fills and that connection's requests wait for it; nothing
    /// grows without bound.
    pub write_queue_frames: u32,
    /// Most bytes one connection may have reserved for requests in flight
    /// and their responses not yet written, at least `max_frame_bytes`.
    /// Each request reserves its frame and the most its response can hold
    /// (about 17 MiB for reads and fetches, 4 KiB for the rest; capped at
    /// this budget) until its response is written; while the budget is
    /// spent the connection reads no more requests, so a client that does
    /// not read its responses stalls only itself, holding at most this.
    pub pending_bytes_max: u64,
    /// How long each fetch of a push stream waits for events, in ms,
    /// 1..=`WAIT_MS_MAX`. It bounds nothing the client sees (a stream
    /// fetches again at once); it only sets how often an idle stream
    /// polls the bus.
    pub push_wait_ms: u64,
    /// How long a new connection has to send its `Hello`, in ms; a
    /// connection that has not by then is closed, so that silent clients
    /// cannot hold every connection slot. At least 1.
    pub handshake_timeout_ms: u64,
    /// After the shutdown signal, how long to wait for open connections
    /// to finish their requests before closing them anyway, in ms.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            server_name: concat!("eddy-server/", env!("CARGO_PKG_VERSION")).to_string(),
            max_connections: 1024,
            max_frame_bytes: FRAME_BYTES_DEFAULT,
            max_in_flight_requests: 256,
            write_queue_frames: 64,
            pending_bytes_max: 64 << 20,
            push_wait_ms: 1000,
            handshake_timeout_ms: 10_000,
            shutdown_grace_ms: 30_000,
        }
    }
}

impl ServerConfig {
    /// Checks every setting against its range.
    pub fn validate(&self) -> Result<()> {
        fn bad(setting: &'static str, reason: String) -> Result<()> {
            Err(ServerError::InvalidConfig { setting, reason })
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1, not 0".into());
        }
        if !(FRAME_BYTES_MIN..=FRAME_BYTES_CAP).contains(&self.max_frame_bytes) {
            return bad(
                "max_frame_bytes",
                format!(
                    "must be {FRAME_BYTES_MIN}..={FRAME_BYTES_CAP}, not {}",
                    self.max_frame_bytes
                ),
            );
        }
        if !(1..=IN_FLIGHT_REQUESTS_CAP).contains(&self.max_in_flight_requests) {
            return bad(
                "max_in_flight_requests",
                format!(
                    "must be 1..={IN_FLIGHT_REQUESTS_CAP}, not {}",
                    self.max_in_flight_requests
                ),
            );
        }
        if !(1..=WRITE_QUEUE_FRAMES_CAP).contains(&self.write_queue_frames) {
            return bad(
                "write_queue_frames",
                format!(
                    "must be 1..={WRITE_QUEUE_FRAMES_CAP}, not {}",
                    self.write_queue_frames
                ),
            );
        }
        if self.pending_bytes_max < u64::from(self.max_frame_bytes)
            || self.pending_bytes_max > PENDING_BYTES_CAP
        {
            return bad(
                "pending_bytes_max",
                format!(
                    "must be max_frame_bytes ({})..={PENDING_BYTES_CAP}, not {}",
                    self.max_frame_bytes, self.pending_bytes_max
                ),
            );
        }
        if !(1..=WAIT_MS_MAX).contains(&self.push_wait_ms) {
            return bad(
                "push_wait_ms",
                format!("must be 1..={WAIT_MS_MAX}, not {}", self.push_wait_ms),
            );
        }
        if self.handshake_timeout_ms == 0 {
            return bad("handshake_timeout_ms", "must be at least 1, not 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_ranges_are_checked() {
        // Proves: the defaults pass validation, and a setting out of its
        // range is refused by name.
        assert_eq!(ServerConfig::default().validate(), Ok(()));
        let bad = ServerConfig {
            max_frame_bytes: FRAME_BYTES_MIN - 1,
            ..ServerConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ServerError::InvalidConfig {
                setting: "max_frame_bytes",
                ..
            })
        ));
        let bad = ServerConfig {
            max_in_flight_requests: 0,
            ..ServerConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
