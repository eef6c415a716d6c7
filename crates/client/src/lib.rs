//! `eddy-client`: Eddy's Rust client for the native protocol — the
//! [`eddy_bus::Bus`] and [`eddy_bus::EventStore`] interfaces, served by a
//! remote `eddy-server` over TCP, optionally in TLS.
//!
//! [`Client::connect`] opens a TCP connection, does the TLS handshake if
//! [`ClientConfig::tls`] is set, then the `Hello` → `Welcome` handshake,
//! and from then on every `Bus` and `EventStore` method sends one request
//! frame (`eddy-proto`) and waits for its response. Requests are
//! pipelined: many callers (clones of one [`Client`]) share the
//! connection, each request gets an id from a counter, and a reader task
//! routes each response to its caller by id, joining list responses split
//! over several frames (MORE).
//! An `Error` frame becomes the [`BusError`] it stands for
//! (`WireError::to_bus_error`), so a remote bus fails exactly like a local
//! one.
//!
//! Push: [`Bus::subscribe`] opens a push stream over the wire (`Subscribe`;
//! the server sends `Deliver` frames within the stream's credit). Each
//! [`PushDelivery`](eddy_bus::PushDelivery) holds one credit until the
//! application drops it; returned credit is gathered and granted back in
//! one `Credit` frame for many drops, so at most `credit` deliveries are
//! ever leased to the stream and not yet dropped. Dropping the stream
//! sends `Unsubscribe`; deliveries not settled keep their leases until
//! these run out. A stream lives on one connection: if the connection is
//! lost (or [`Client::close`]d) the stream ends with
//! [`BusError::Unavailable`], and the caller subscribes again — a reconnect
//! never resumes a stream silently. `PushOptions::wait_ms` is not used: the
//! server decides how long its fetches wait.
//!
//! Limits: at most the server's `max_in_flight_requests` requests are in
//! flight at once (an open push stream counts as one, until the server's
//! `StreamEnd`; more callers wait for a slot), and no frame is larger than
//! the server's `max_frame_bytes` (a request that would be is refused with
//! `LimitExceeded` before anything is sent). Frames to send queue in a
//! bounded channel; a push stream buffers at most its credit of
//! deliveries. A server that breaks the protocol (pushing beyond credit,
//! say) loses the connection.
//!
//! Connection loss: every request waiting on the connection fails with
//! [`BusError::Unavailable`] — its effect on the server is then unknown —
//! and the **next** call connects again (reconnect on demand; nothing is
//! retried automatically).
//!
//! It is **not** a server and holds no data.
//!
//! ```no_run
//! use eddy_bus::{Bus, Event, PushOptions};
//! use eddy_client::{Client, ClientConfig, ClientTls};
//! use futures_util::StreamExt;
//!
//! # async fn demo() -> eddy_bus::Result<()> {
//! let bus = Client::connect("127.0.0.1:7420", ClientConfig::default()).await?;
//! bus.publish("orders.placed", Event::new("OrderPlaced", "{}")).await?;
//!
//! let mut stream = bus.subscribe("payments", PushOptions::default());
//! while let Some(pushed) = stream.next().await {
//!     let pushed = pushed?;
//!     // ... handle pushed.delivery.event ...
//!     bus.ack("payments", &pushed.delivery.ack_id).await?;
//!     // dropping `pushed` returns its credit
//! }
//!
//! // TLS, trusting a self-signed certificate issued for "localhost":
//! let pem = std::fs::read("eddy.crt").expect("certificate");
//! let config = ClientConfig {
//!     tls: Some(ClientTls::from_pem(&pem)?.with_server_name("localhost")),
//!     ..ClientConfig::default()
//! };
//! let secure = Client::connect("127.0.0.1:7443", config).await?;
//! # Ok(()) }
//! ```

mod push;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_bus::{
    AckId, Bus, BusError, DeadLetter, DeadLetterSelection, Delivery, DeliveryStream, Event,
    FetchOptions, NackOptions, Partition, Published, PushOptions, ReadBatch, ReadFrom,
    RedriveTarget, Result, SeekTo, SubscriptionConfig, SubscriptionInfo, SubscriptionStats,
    TopicConfig, TopicInfo, TopicStats,
};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, Direction, EventStore, ExpectedVersion, StreamFrom,
    StreamInfo, StreamMetadata, StreamSlice,
};
use eddy_proto::{
    Decoded, FRAME_BYTES_CAP, FRAME_BYTES_MIN, Frame, HANDSHAKE_FRAME_BYTES, Hello, Message,
    ProtoError, Request, Response, SUPPORTED_VERSIONS, Welcome, decode_frame, encode_frame,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;

pub use tls::{ClientTls, ServerAddr};

use crate::push::StreamRoute;
use crate::tls::Tls;

/// Frames queued for the writer task of one connection.
const WRITE_QUEUE_FRAMES: usize = 64;

/// Settings of a [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Sent in the `Hello`, if the server wants credentials.
    pub token: Option<String>,
    /// Sent in the `Hello` (name and version), for the server's logs.
    pub client_name: String,
    /// How long connecting and the handshakes (TLS and `Hello`) may take,
    /// in ms.
    pub connect_timeout_ms: u64,
    /// Speak TLS to the server, trusting these roots; `None`: plain TCP.
    pub tls: Option<ClientTls>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            token: None,
            client_name: concat!("eddy-client/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout_ms: 10_000,
            tls: None,
        }
    }
}

/// A connection to an Eddy server, implementing [`Bus`]. Cheap to clone:
/// clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addrs: Vec<SocketAddr>,
    config: ClientConfig,
    /// The TLS connector and server name, if `config.tls` is set.
    tls: Option<Tls>,
    /// The live connection; a plain lock, held only to read or swap it.
    conn: std::sync::Mutex<Option<Arc<Conn>>>,
    /// Held while connecting, so that one caller reconnects for all.
    connecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

/// What a waiting caller gets: the response (joined if continued), or the
/// error it stands for.
type Reply = Result<Response>;

/// A caller waiting for its response, with its in-flight slot.
#[derive(Debug)]
struct Waiter {
    reply: oneshot::Sender<Reply>,
    _slot: OwnedSemaphorePermit,
}

/// Where the frames of one request id go.
#[derive(Debug)]
enum Route {
    /// A caller waiting for one response.
    Call(Waiter),
    /// A push stream, until its `StreamEnd`.
    Stream(StreamRoute),
}

/// The requests in flight on a connection; `None` once it is lost.
#[derive(Debug, Default)]
struct Pending(Mutex<Option<HashMap<u64, Route>>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Route>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the connection lost: every waiter's sender is dropped, so it
    /// fails with `Unavailable`, and every push stream ends with
    /// `Unavailable` saying `why`.
    fn fail_all(&self, why: &str) {
        let routes = self.lock().take();
        for route in routes.into_iter().flat_map(HashMap::into_values) {
            if let Route::Stream(stream) = route {
                stream.lost(why);
            }
        }
    }

    fn is_lost(&self) -> bool {
        self.lock().is_none()
    }

    fn remove(&self, id: u64) -> Option<Route> {
        self.lock().as_mut().and_then(|m| m.remove(&id))
    }
}

/// One live connection.
#[derive(Debug)]
struct Conn {
    frames: mpsc::Sender<Vec<u8>>,
    pending: Arc<Pending>,
    slots: Arc<Semaphore>,
    max_frame_bytes: u32,
    tasks: [AbortHandle; 2],
}

impl Conn {
    fn shut(&self) {
        self.pending.fail_all("the connection was closed");
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Queues a frame that is not a request of its own (`Credit`,
    /// `Unsubscribe`) for the stream `id`.
    async fn send_on_stream(&self, id: u64, request: Request) -> Result<()> {
        let mut wire = Vec::new();
        encode_frame(&Frame::new(id, request), self.max_frame_bytes, &mut wire)
            .map_err(encode_error)?;
        self.frames
            .send(wire)
            .await
            .map_err(|_| unavailable("the connection to the server was lost"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shut();
    }
}

fn unavailable(what: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(what.to_string())
}

fn unexpected(response: &Response) -> BusError {
    BusError::Unavailable(format!(
        "protocol: unexpected response kind {}",
        response.kind().name()
    ))
}

/// Whether the bytes a server sent look like a TLS record (an alert or a
/// handshake) rather than a frame.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, ..])
}

impl Client {
    /// Connects to the server at `addr` (`"host:port"`, a `SocketAddr`, …)
    /// and does the handshake. With [`ClientConfig::tls`], the server's
    /// certificate must be for the host of `addr` unless
    /// [`ClientTls::with_server_name`] says otherwise. Fails with
    /// `InvalidArgument` if the TLS settings cannot be used, and with
    /// `Unavailable` if the server cannot be reached or the TLS handshake
    /// fails (an unknown certificate, say).
    pub async fn connect(addr: impl ServerAddr, config: ClientConfig) -> Result<Client> {
        let host = addr.host();
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.connector(&host))
            .transpose()?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| unavailable(format!("resolving the server address: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(unavailable("the server address resolves to nothing"));
        }
        let inner = Arc::new(Inner {
            addrs,
            config,
            tls,
            conn: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        });
        let client = Client { inner };
        client.connection().await?;
        Ok(client)
    }

    /// Closes the connection: requests in flight fail with `Unavailable`,
    /// and so do its push streams. A later call connects again.
    pub async fn close(&self) {
        if let Some(conn) = self.slot().take() {
            conn.shut();
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Conn>>> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection, if there is one and it is not lost.
    fn live(&self) -> Option<Arc<Conn>> {
        self.slot()
            .as_ref()
            .filter(|c| !c.pending.is_lost())
            .cloned()
    }

    /// The live connection, connecting if there is none (or it was lost).
    /// Every request passes here: the common case takes only a plain lock.
    async fn connection(&self) -> Result<Arc<Conn>> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(conn) = self.live() {
            return Ok(conn); // another caller reconnected meanwhile
        }
        let timeout = Duration::from_millis(self.inner.config.connect_timeout_ms);
        let conn = tokio::time::timeout(timeout, self.open())
            .await
            .map_err(|_| unavailable("connecting to the server timed out"))??;
        let conn = Arc::new(conn);
        *self.slot() = Some(Arc::clone(&conn));
        Ok(conn)
    }

    async fn open(&self) -> Result<Conn> {
        let mut last = None;
        let mut stream = None;
        for addr in &self.inner.addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some((s, *addr));
                    break;
                }
                Err(e) => last = Some(format!("connecting to {addr}: {e}")),
            }
        }
        let Some((mut stream, addr)) = stream else {
            return Err(unavailable(last.unwrap_or_default()));
        };
        let _ = stream.set_nodelay(true);
        match &self.inner.tls {
            None => {
                let (welcome, buf) = self.hello(&mut stream).await?;
                let (read, write) = stream.into_split();
                Ok(start_conn(read, write, buf, &welcome))
            }
            Some(tls) => {
                let mut stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|e| {
                        unavailable(format!(
                            "TLS handshake with {addr} (server name `{}`) failed: {e}",
                            tls.server_name.to_str()
                        ))
                    })?;
                let (welcome, buf) = self.hello(&mut stream).await?;
                let (read, write) = tokio::io::split(stream);
                Ok(start_conn(read, write, buf, &welcome))
            }
        }
    }

    /// The `Hello` → `Welcome` handshake; returns the `Welcome` and the
    /// bytes read after it.
    async fn hello<S>(&self, stream: &mut S) -> Result<(Welcome, Vec<u8>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = &self.inner.config;
        let hello = Frame::new(
            0,
            Request::Hello(Hello::new(config.client_name.clone(), config.token.clone())),
        );
        let mut wire = Vec::new();
        encode_frame(&hello, HANDSHAKE_FRAME_BYTES, &mut wire).map_err(encode_error)?;
        stream
            .write_all(&wire)
            .await
            .map_err(|e| unavailable(format!("sending the Hello: {e}")))?;
        stream
            .flush()
            .await
            .map_err(|e| unavailable(format!("sending the Hello: {e}")))?;
        let mut buf = Vec::new();
        let read = read_frame(stream, &mut buf, HANDSHAKE_FRAME_BYTES).await;
        if read.is_err() && self.inner.tls.is_none() && looks_like_tls(&buf) {
            return Err(unavailable(
                "the server answered in TLS: set `ClientConfig::tls` to connect to it",
            ));
        }
        let welcome = match read? {
            Some(Frame {
                message: Message::Response(Response::Welcome(w)),
                ..
            }) => w,
            Some(Frame {
                message: Message::Response(Response::Error(e)),
                ..
            }) => return Err(e.to_bus_error()),
            Some(Frame {
                message: Message::Response(r),
                ..
            }) => return Err(unexpected(&r)),
            Some(_) => return Err(unavailable("protocol: the server sent a request")),
            None => return Err(unavailable("the server closed the connection")),
        };
        if !SUPPORTED_VERSIONS.contains(&welcome.version)
            || !(FRAME_BYTES_MIN..=FRAME_BYTES_CAP).contains(&welcome.max_frame_bytes)
            || welcome.max_in_flight_requests == 0
        {
            return Err(unavailable(format!(
                "protocol: the server's Welcome is not acceptable: {welcome:?}"
            )));
        }
        Ok((welcome, buf))
    }

    /// Sends `request` as a new request: takes an in-flight slot, registers
    /// the route `route` builds around it, and queues the frame. Returns the
    /// connection and the request's id.
    async fn start(
        &self,
        request: Request,
        route: impl FnOnce(OwnedSemaphorePermit) -> Route,
    ) -> Result<(Arc<Conn>, u64)> {
        let conn = self.connection().await?;
        let slot = Arc::clone(&conn.slots)
            .acquire_owned()
            .await
            .map_err(|_| unavailable("the connection is closed"))?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut wire = Vec::new();
        encode_frame(&Frame::new(id, request), conn.max_frame_bytes, &mut wire)
            .map_err(encode_error)?;
        // A place in the write queue first: from registering the route to
        // queueing its frame nothing awaits, so a caller that gives up
        // leaves no route whose request was never sent.
        let queued = conn
            .frames
            .reserve()
            .await
            .map_err(|_| unavailable("the connection to the server was lost"))?;
        {
            let mut pending = conn.pending.lock();
            let Some(map) = pending.as_mut() else {
                return Err(unavailable("the connection to the server was lost"));
            };
            map.insert(id, route(slot));
        }
        queued.send(wire);
        Ok((conn, id))
    }

    /// Sends `request` and waits for its response; an `Error` frame is
    /// returned as its `BusError`.
    async fn call(&self, request: Request) -> Result<Response> {
        let (tx, rx) = oneshot::channel();
        let waiter = |slot| {
            Route::Call(Waiter {
                reply: tx,
                _slot: slot,
            })
        };
        self.start(request, waiter).await?;
        match rx.await {
            Ok(Ok(Response::Error(e))) => Err(e.to_bus_error()),
            Ok(reply) => reply,
            Err(_) => Err(unavailable("the connection to the server was lost")),
        }
    }
}

/// Starts the reader and writer tasks of a connection that has had its
/// handshake; `buf` holds the bytes read after the `Welcome`.
fn start_conn<R, W>(read: R, write: W, buf: Vec<u8>, welcome: &Welcome) -> Conn
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let max_frame_bytes = welcome.max_frame_bytes;
    let pending = Arc::new(Pending(Mutex::new(Some(HashMap::new()))));
    let (frames, queue) = mpsc::channel(WRITE_QUEUE_FRAMES);
    let reader = tokio::spawn(read_loop(read, buf, max_frame_bytes, Arc::clone(&pending)));
    let writer = tokio::spawn(write_loop(write, queue, Arc::clone(&pending)));
    let slots = usize::try_from(welcome.max_in_flight_requests)
        .unwrap_or(1)
        .min(Semaphore::MAX_PERMITS);
    Conn {
        frames,
        pending,
        slots: Arc::new(Semaphore::new(slots)),
        max_frame_bytes,
        tasks: [reader.abort_handle(), writer.abort_handle()],
    }
}

/// A request that cannot be sent: too large for a frame, or a list too long.
fn encode_error(e: ProtoError) -> BusError {
    match e {
        ProtoError::FrameTooLarge { limit, actual } => BusError::LimitExceeded {
            what: "request frame",
            setting: "max_frame_bytes",
            limit: u64::from(limit),
            actual,
        },
        ProtoError::ListTooLong {
            what,
            limit,
            actual,
        } => BusError::LimitExceeded {
            what,
            setting: "protocol list items",
            limit: u64::from(limit),
            actual,
        },
        other => BusError::InvalidArgument {
            what: "request",
            reason: other.to_string(),
        },
    }
}

/// Reads the next frame; `None` at a clean end of stream.
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    max_frame_bytes: u32,
) -> Result<Option<Frame>> {
    loop {
        match decode_frame(buf, max_frame_bytes) {
            Ok(Decoded::Frame { frame, consumed }) => {
                buf.drain(..consumed);
                return Ok(Some(frame));
            }
            Ok(Decoded::Incomplete { needed }) => {
                buf.reserve(needed.min(64 << 10));
                match stream.read_buf(buf).await {
                    Ok(0) if buf.is_empty() => return Ok(None),
                    Ok(0) => return Err(unavailable("the connection ended inside a frame")),
                    Ok(_) => {}
                    Err(e) => return Err(unavailable(format!("reading from the server: {e}"))),
                }
            }
            Err(e) => return Err(unavailable(format!("protocol: {e}"))),
        }
    }
}

/// Routes responses to their waiters and push streams until the
/// connection ends, then fails every waiter and ends every stream.
async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    mut buf: Vec<u8>,
    max_frame_bytes: u32,
    pending: Arc<Pending>,
) {
    // Continued responses being joined; only for requests still awaited,
    // so what is kept is bounded by the requests in flight.
    let mut partial: HashMap<u64, Response> = HashMap::new();
    let why = loop {
        let frame = match read_frame(&mut read, &mut buf, max_frame_bytes).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break "the server closed the connection".to_string(),
            Err(BusError::Unavailable(why)) => break why,
            Err(e) => break e.to_string(),
        };
        let Message::Response(response) = frame.message else {
            break "protocol: the server sent a request".to_string();
        };
        let id = frame.request_id;
        match target(&pending, id, !frame.more) {
            Target::Stream(stream) => match stream.receive(response) {
                Ok(true) => {}
                // The stream is over: its id and in-flight slot are free.
                Ok(false) => drop(pending.remove(id)),
                Err(violation) => break violation,
            },
            Target::Gone => {
                partial.remove(&id);
            }
            Target::Joining => match partial.remove(&id) {
                None => {
                    partial.insert(id, response);
                }
                Some(mut joined) => match joined.absorb(response) {
                    Ok(()) => {
                        partial.insert(id, joined);
                    }
                    Err(e) => reply_to(&pending, id, Err(unavailable(format!("protocol: {e}")))),
                },
            },
            Target::Call(waiter) => {
                let reply = match partial.remove(&id) {
                    None => Ok(response),
                    Some(mut joined) => match joined.absorb(response) {
                        Ok(()) => Ok(joined),
                        Err(e) => Err(unavailable(format!("protocol: {e}"))),
                    },
                };
                // The caller may have given up; nothing to do then.
                let _ = waiter.reply.send(reply);
            }
        }
    };
    pending.fail_all(&why);
}

/// Where a frame goes, found under one lock of `pending`.
enum Target {
    /// An open push stream's frame.
    Stream(Arc<push::StreamShared>),
    /// The final frame of a call: its waiter, taken out.
    Call(Waiter),
    /// A continued frame of a call still awaited.
    Joining,
    /// No one waits for it (the caller gave up, or the id is unknown).
    Gone,
}

fn target(pending: &Pending, id: u64, last: bool) -> Target {
    let mut routes = pending.lock();
    let Some(map) = routes.as_mut() else {
        return Target::Gone;
    };
    match map.get(&id) {
        Some(Route::Stream(stream)) => Target::Stream(stream.shared()),
        Some(Route::Call(_)) if !last => Target::Joining,
        Some(Route::Call(_)) => match map.remove(&id) {
            Some(Route::Call(waiter)) => Target::Call(waiter),
            _ => Target::Gone,
        },
        None => Target::Gone,
    }
}

/// Answers the call `id`, if it is still awaited.
fn reply_to(pending: &Pending, id: u64, reply: Reply) {
    if let Target::Call(waiter) = target(pending, id, true) {
        let _ = waiter.reply.send(reply);
    }
}

/// Most bytes of queued frames joined into one write.
const WRITE_BATCH_BYTES: usize = 64 << 10;

/// Writes queued frames until the queue closes or a write fails: the
/// frames already queued behind the first go out in the same write, so
/// a caller with many calls in flight costs one system call per batch
/// rather than per call.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut queue: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Pending>,
) {
    let mut buf = Vec::new();
    while let Some(first) = queue.recv().await {
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < WRITE_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => buf.extend_from_slice(&next),
                Err(_) => break,
            }
        }
        if write.write_all(&buf).await.is_err() {
            break;
        }
        // A TLS stream holds written bytes until flushed (for TCP this is
        // a no-op): flush once the queue is empty.
        if queue.is_empty() && write.flush().await.is_err() {
            break;
        }
    }
    pending.fail_all("the connection to the server was lost");
}

impl Bus for Client {
    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo> {
        let name = name.to_string();
        match self.call(Request::CreateTopic { name, config }).await? {
            Response::TopicCreated(t) => Ok(t),
            other => Err(unexpected(&other)),
        }
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        match self.call(Request::ListTopics).await? {
            Response::Topics(t) => Ok(t),
            other => Err(unexpected(&other)),
        }
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        let name = name.to_string();
        match self.call(Request::DescribeTopic { name }).await? {
            Response::Topic(t) => Ok(t),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        match self.call(Request::DeleteTopic { name }).await? {
            Response::TopicDeleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn publish(&self, topic: &str, event: Event) -> Result<Published> {
        let mut published = self.publish_batch(topic, vec![event]).await?;
        match (published.pop(), published.is_empty()) {
            (Some(p), true) => Ok(p),
            _ => Err(unavailable(
                "protocol: a publish of one event was answered with another count",
            )),
        }
    }

    async fn publish_batch(&self, topic: &str, events: Vec<Event>) -> Result<Vec<Published>> {
        let count = events.len();
        let topic = topic.to_string();
        match self.call(Request::Publish { topic, events }).await? {
            Response::Published(p) if p.len() == count => Ok(p),
            Response::Published(p) => Err(unavailable(format!(
                "protocol: {count} events published, {} outcomes",
                p.len()
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn read(
        &self,
        topic: &str,
        partition: Partition,
        from: ReadFrom,
        max: u32,
    ) -> Result<ReadBatch> {
        let request = Request::Read {
            topic: topic.to_string(),
            partition,
            from,
            max,
        };
        match self.call(request).await? {
            Response::ReadBatch(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    async fn create_subscription(
        &self,
        name: &str,
        config: SubscriptionConfig,
    ) -> Result<SubscriptionInfo> {
        let name = name.to_string();
        match self
            .call(Request::CreateSubscription { name, config })
            .await?
        {
            Response::SubscriptionCreated(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        match self.call(Request::ListSubscriptions).await? {
            Response::Subscriptions(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn describe_subscription(&self, name: &str) -> Result<SubscriptionInfo> {
        let name = name.to_string();
        match self.call(Request::DescribeSubscription { name }).await? {
            Response::Subscription(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_subscription(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        match self.call(Request::DeleteSubscription { name }).await? {
            Response::SubscriptionDeleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn seek(&self, subscription: &str, to: SeekTo) -> Result<()> {
        let subscription = subscription.to_string();
        match self.call(Request::Seek { subscription, to }).await? {
            Response::Sought => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn fetch(&self, subscription: &str, options: FetchOptions) -> Result<Vec<Delivery>> {
        let subscription = subscription.to_string();
        match self
            .call(Request::Fetch {
                subscription,
                options,
            })
            .await?
        {
            Response::Deliveries(d) => Ok(d),
            other => Err(unexpected(&other)),
        }
    }

    async fn ack_all(&self, subscription: &str, ids: &[AckId]) -> Result<Vec<Result<()>>> {
        let count = ids.len();
        let request = Request::Ack {
            subscription: subscription.to_string(),
            ids: ids.to_vec(),
        };
        match self.call(request).await? {
            Response::Acked(outcomes) if outcomes.len() == count => Ok(outcomes
                .into_iter()
                .map(|o| o.map_err(|e| e.to_bus_error()))
                .collect()),
            Response::Acked(outcomes) => Err(unavailable(format!(
                "protocol: {count} ids acked, {} outcomes",
                outcomes.len()
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn nack(&self, subscription: &str, id: &AckId, options: NackOptions) -> Result<()> {
        let request = Request::Nack {
            subscription: subscription.to_string(),
            id: id.clone(),
            options,
        };
        match self.call(request).await? {
            Response::Nacked => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn extend(&self, subscription: &str, id: &AckId) -> Result<i64> {
        let request = Request::Extend {
            subscription: subscription.to_string(),
            id: id.clone(),
        };
        match self.call(request).await? {
            Response::Extended { lease_deadline_ms } => Ok(lease_deadline_ms),
            other => Err(unexpected(&other)),
        }
    }

    async fn terminate(&self, subscription: &str, id: &AckId, reason: &str) -> Result<()> {
        let request = Request::Terminate {
            subscription: subscription.to_string(),
            id: id.clone(),
            reason: reason.to_string(),
        };
        match self.call(request).await? {
            Response::Terminated => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn subscribe(&self, subscription: &str, options: PushOptions) -> DeliveryStream {
        push::subscribe(self.clone(), subscription.to_string(), options)
    }

    async fn dead_letters(
        &self,
        subscription: &str,
        from: u64,
        max: u32,
    ) -> Result<Vec<DeadLetter>> {
        let request = Request::DeadLetters {
            subscription: subscription.to_string(),
            from,
            max,
        };
        match self.call(request).await? {
            Response::DeadLetterList(d) => Ok(d),
            other => Err(unexpected(&other)),
        }
    }

    async fn dead_letter(&self, subscription: &str, id: u64) -> Result<DeadLetter> {
        let request = Request::DeadLetter {
            subscription: subscription.to_string(),
            id,
        };
        match self.call(request).await? {
            Response::DeadLetterShown(d) => Ok(*d),
            other => Err(unexpected(&other)),
        }
    }

    async fn redrive(
        &self,
        subscription: &str,
        selection: DeadLetterSelection,
        target: RedriveTarget,
    ) -> Result<u64> {
        let request = Request::Redrive {
            subscription: subscription.to_string(),
            selection,
            target,
        };
        match self.call(request).await? {
            Response::Redriven { count } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    async fn purge(&self, subscription: &str, selection: DeadLetterSelection) -> Result<u64> {
        let request = Request::Purge {
            subscription: subscription.to_string(),
            selection,
        };
        match self.call(request).await? {
            Response::Purged { count } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    async fn topic_stats(&self, name: &str) -> Result<TopicStats> {
        let name = name.to_string();
        match self.call(Request::TopicStats { name }).await? {
            Response::TopicStatsShown(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn subscription_stats(&self, name: &str) -> Result<SubscriptionStats> {
        let name = name.to_string();
        match self.call(Request::SubscriptionStats { name }).await? {
            Response::SubscriptionStatsShown(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }
}

impl EventStore for Client {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<AppendResult> {
        let request = Request::Append {
            stream: stream.to_string(),
            expected,
            events,
        };
        match self.call(request).await? {
            Response::Appended(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: u32,
    ) -> Result<StreamSlice> {
        let request = Request::ReadStream {
            stream: stream.to_string(),
            from,
            direction,
            max,
        };
        match self.call(request).await? {
            Response::StreamSlice(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// A read that waits (`wait_ms`) holds one of the connection's request
    /// slots until it is answered.
    async fn read_all(
        &self,
        from: u64,
        filter: AllFilter,
        max: u32,
        wait_ms: u64,
    ) -> Result<AllSlice> {
        let request = Request::ReadAll {
            from,
            filter,
            max,
            wait_ms,
        };
        match self.call(request).await? {
            Response::AllSlice(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        let stream = stream.to_string();
        match self.call(Request::StreamInfo { stream }).await? {
            Response::StreamInfoShown(i) => Ok(i),
            other => Err(unexpected(&other)),
        }
    }

    async fn set_stream_metadata(&self, stream: &str, metadata: StreamMetadata) -> Result<()> {
        let stream = stream.to_string();
        match self
            .call(Request::SetStreamMetadata { stream, metadata })
            .await?
        {
            Response::MetadataSet => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<()> {
        let stream = stream.to_string();
        match self
            .call(Request::DeleteStream { stream, expected })
            .await?
        {
            Response::StreamDeleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}
