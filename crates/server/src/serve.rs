//! The accept loop: connection slots, refusals, graceful shutdown.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use eddy_auth::{Access, Open};
use eddy_bus::{Bus, BusError, EventStore};
use eddy_proto::{Response, WireError, encode_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::connection;
use crate::error::Result;

/// Most refused connections being told so at once; beyond it, an extra
/// connection is closed without a word.
const REFUSALS_MAX: usize = 64;
/// How long a refused connection gets to read its `Error` frame.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (for example, out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `bus` over Eddy's native protocol on `listener` until `shutdown`
/// completes.
///
/// Each connection gets the handshake, then any number of pipelined
/// requests (at most `max_in_flight_requests` at once), each executed on
/// `bus` concurrently, and push streams for `Subscribe`. A connection
/// beyond `max_connections` gets an `Error` frame (`LimitExceeded`, 1004,
/// request id 0) and is closed. A client that breaks the protocol gets an
/// `Error` frame with its 8xxx code and only its connection is closed.
///
/// When `shutdown` completes, the server stops accepting, stops reading
/// new requests, ends push streams (`StreamEnd` with `Unavailable`), lets
/// requests in flight finish and send their responses, and closes each
/// connection; connections still busy after `shutdown_grace_ms` are cut.
/// Returns then. Fails at once, before accepting anything, only if
/// `config` is invalid.
pub async fn serve_native<B: Bus + EventStore + Clone>(
    listener: TcpListener,
    bus: B,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    serve_native_with(listener, Open(bus), Listening::default(), config, shutdown).await
}

/// Called for each connection accepted into a slot; what it returns is
/// held until the connection closes (a metrics gauge's guard, say).
pub type ConnectionHook = Arc<dyn Fn() -> Box<dyn Any + Send> + Send + Sync>;

/// How a listener's connections are carried and watched.
#[derive(Clone, Default)]
pub struct Listening {
    /// Wrap each connection in TLS (the handshake must complete within
    /// `handshake_timeout_ms`, and counts against `max_connections`).
    pub tls: Option<TlsAcceptor>,
    /// Told of each connection.
    pub on_connection: Option<ConnectionHook>,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("tls", &self.tls.is_some())
            .field("on_connection", &self.on_connection.is_some())
            .finish()
    }
}

/// [`serve_native`] with access control, TLS and a connection hook: each
/// client is served on the bus that `access` gives for the token in its
/// `Hello`; a client it refuses gets the error (`Unauthenticated`, 6001)
/// in answer to its `Hello`, and is closed.
pub async fn serve_native_with<A: Access>(
    listener: TcpListener,
    access: A,
    listening: Listening,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    config.validate()?;
    let config = Arc::new(config);
    let access = Arc::new(access);
    let slots = Arc::new(Semaphore::new(config.max_connections as usize));
    let refusals = Arc::new(Semaphore::new(REFUSALS_MAX));
    let (stop_tx, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => {
                    let _ = socket.set_nodelay(true);
                    if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                        let access = Arc::clone(&access);
                        let config = Arc::clone(&config);
                        let stop = stop.clone();
                        let watched = listening.on_connection.as_ref().map(|hook| hook());
                        let tls = listening.tls.clone();
                        connections.spawn(async move {
                            match tls {
                                None => {
                                    let (reader, writer) = socket.into_split();
                                    connection::serve(reader, writer, access, config, stop).await;
                                }
                                Some(tls) => {
                                    let limit = Duration::from_millis(config.handshake_timeout_ms);
                                    match tokio::time::timeout(limit, tls.accept(socket)).await {
                                        Ok(Ok(stream)) => {
                                            let (reader, writer) = tokio::io::split(stream);
                                            connection::serve(reader, writer, access, config, stop)
                                                .await;
                                        }
                                        Ok(Err(error)) => {
                                            tracing::debug!(%error, "a TLS handshake failed");
                                        }
                                        Err(_) => tracing::debug!("a TLS handshake timed out"),
                                    }
                                }
                            }
                            drop(watched);
                            drop(slot);
                        });
                    } else if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                        connections.spawn(refuse(socket, config.max_connections, permit));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("connections still busy after `shutdown_grace_ms`; closing them");
        connections.shutdown().await;
    }
    Ok(())
}

/// Tells a connection over `max_connections` why it is closed: an `Error`
/// frame, then the end of the stream. What the client sent is read and
/// discarded, so that closing does not reset the connection before the
/// client has read the error.
async fn refuse(mut socket: TcpStream, limit: u32, _permit: OwnedSemaphorePermit) {
    let error = BusError::LimitExceeded {
        what: "connections",
        setting: "max_connections",
        limit: u64::from(limit),
        actual: u64::from(limit) + 1,
    };
    let mut frame = Vec::new();
    let response = Response::Error(WireError::from(&error));
    if encode_response(0, &response, eddy_proto::HANDSHAKE_FRAME_BYTES, &mut frame).is_err() {
        return;
    }
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        socket.write_all(&frame).await?;
        socket.shutdown().await?;
        let mut sink = [0u8; 4096];
        while socket.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}
