//! Running the router: a listener with a connection limit, idle timeout
//! and forced close, under axum's server with graceful shutdown.
//!
//! [`serve_listener`] takes any [`axum::serve::Listener`], so a TLS
//! listener (one whose `Io` is a TLS stream) serves the same way as
//! [`serve_http`]'s TCP one.

use axum::Router;
use std::fmt::Debug;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use eddy_auth::Access;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};

use crate::config::HttpConfig;
use crate::error::Result;
use crate::routes;

/// Serves the API on `listener` until `shutdown` completes.
///
/// Then it stops accepting, closes idle connections, lets requests in
/// flight finish (SSE streams end at once) and returns once every
/// connection is closed — or after `shutdown_grace_ms`, closing those
/// left. Connections beyond `max_connections` are closed as soon as they
/// are accepted; a connection idle for `idle_timeout_ms` is closed.
/// Built on `axum::serve` (HTTP/1.1).
pub async fn serve_http<A: Access>(
    listener: TcpListener,
    access: A,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_listener(listener, access, config, Router::new(), shutdown).await
}

/// [`serve_http`] on any axum [`Listener`] (a TLS one, say), with the
/// routes of `extra` (say, `/metrics`) merged in; `extra` must have no
/// fallback of its own.
pub async fn serve_listener<L, A>(
    listener: L,
    access: A,
    config: HttpConfig,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()>
where
    L: Listener,
    L::Addr: Debug,
    A: Access,
{
    config.validate()?;
    let (drain_tx, drain_rx) = watch::channel(false);
    let (close_tx, close_rx) = watch::channel(false);
    let app = routes::build(access, &config, Some(drain_rx.clone())).merge(extra);
    let listener = Limited {
        inner: listener,
        slots: Arc::new(Semaphore::new(config.max_connections as usize)),
        close: close_rx,
        idle: Duration::from_millis(config.idle_timeout_ms),
    };
    let mut draining = drain_rx;
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = draining.wait_for(|d| *d).await;
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        done = &mut server => return done.map_err(Into::into),
        () = shutdown => {}
    }
    tracing::info!("HTTP server shutting down");
    drain_tx.send_replace(true);
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    match tokio::time::timeout(grace, &mut server).await {
        Ok(done) => done.map_err(Into::into),
        Err(_) => {
            tracing::warn!(
                grace_ms = config.shutdown_grace_ms,
                "HTTP requests still running after the shutdown grace; closing their connections"
            );
            close_tx.send_replace(true);
            Ok(())
        }
    }
}

/// A listener that admits at most `slots` connections at once, each
/// wrapped in a [`Conn`].
struct Limited<L> {
    inner: L,
    slots: Arc<Semaphore>,
    close: watch::Receiver<bool>,
    idle: Duration,
}

impl<L: Listener> Listener for Limited<L> {
    type Io = Conn<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                tracing::debug!("connection refused: `max_connections` reached");
                drop(io);
                continue;
            };
            let mut close = self.close.clone();
            let closed = Box::pin(async move {
                // Sender gone: the server stopped, close as well.
                let _ = close.wait_for(|c| *c).await;
            });
            let conn = Conn {
                io,
                _slot: slot,
                closed,
                idle: self.idle,
                last_active: Instant::now(),
                idle_timer: Box::pin(tokio::time::sleep(self.idle)),
            };
            return (conn, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One accepted connection: holds its slot until dropped, fails its I/O
/// once the server closes it or it is idle too long.
struct Conn<S> {
    io: S,
    _slot: OwnedSemaphorePermit,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    idle: Duration,
    last_active: Instant,
    idle_timer: Pin<Box<Sleep>>,
}

impl<S> Conn<S> {
    /// An error if the connection must end now; registers the waker for
    /// both reasons otherwise.
    fn check(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.closed.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection",
            ));
        }
        while self.idle_timer.as_mut().poll(cx).is_ready() {
            let due = self.last_active + self.idle;
            if Instant::now() >= due {
                return Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle too long",
                ));
            }
            self.idle_timer.as_mut().reset(due);
        }
        None
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.last_active = Instant::now();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.last_active = Instant::now();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.last_active = Instant::now();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection wrapped as the listener wraps it, and its peer.
    async fn pair(
        idle: Duration,
    ) -> (
        Conn<tokio::net::TcpStream>,
        tokio::net::TcpStream,
        watch::Sender<bool>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let peer = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (io, _) = listener.accept().await.expect("accept");
        let (close_tx, mut close) = watch::channel(false);
        let conn = Conn {
            io,
            _slot: Arc::new(Semaphore::new(1))
                .try_acquire_owned()
                .expect("slot"),
            closed: Box::pin(async move {
                let _ = close.wait_for(|c| *c).await;
            }),
            idle,
            last_active: Instant::now(),
            idle_timer: Box::pin(tokio::time::sleep(idle)),
        };
        (conn, peer, close_tx)
    }

    async fn read(conn: &mut Conn<tokio::net::TcpStream>) -> io::Result<usize> {
        let mut bytes = [0u8; 16];
        let mut buf = ReadBuf::new(&mut bytes);
        std::future::poll_fn(|cx| Pin::new(&mut *conn).poll_read(cx, &mut buf)).await?;
        Ok(buf.filled().len())
    }

    #[tokio::test]
    async fn an_idle_connection_fails_its_reads() {
        // Proves a connection with no traffic for `idle` fails its pending
        // read with TimedOut (so hyper drops it and its slot).
        let (mut conn, _peer, _close) = pair(Duration::from_millis(50)).await;
        let started = Instant::now();
        let e = read(&mut conn).await.expect_err("idle");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn closing_fails_pending_reads_and_traffic_is_served() {
        // Proves bytes from the peer are read through, and the server's
        // close signal fails a read that is waiting, with ConnectionAborted.
        let (mut conn, peer, close) = pair(Duration::from_secs(3600)).await;
        peer.try_write(b"hi").expect("write");
        assert_eq!(read(&mut conn).await.expect("bytes"), 2);
        let reading = tokio::spawn(async move { read(&mut conn).await });
        close.send_replace(true);
        let e = reading.await.expect("task").expect_err("closed");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
    }
}
