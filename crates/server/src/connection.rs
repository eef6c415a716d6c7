//! One client connection: the handshake, the reader loop that admits
//! requests and spawns their tasks, and the one writer that sends every
//! frame.
//!
//! ```text
//!   socket ─read─▶ reader loop ──spawn──▶ request tasks ─┐
//!                      │  └─────spawn──▶ push streams ───┤ bounded channel
//!                      └──(8013, Welcome, Error)─────────┤ (write_queue_frames)
//!                                                         ▼
//!   socket ◀─write── writer ◀─────────────────────────────┘
//! ```
//!
//! A request is in flight from the moment the reader admits it until the
//! writer takes its final response off the queue — before writing it, so
//! the client can never see a response while its id still looks in use.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use eddy_auth::Access;
use eddy_bus::{Bus, BusError, EventStore};
use eddy_proto::{
    Decoded, FRAME_HEADER_BYTES, Frame, HANDSHAKE_FRAME_BYTES, Message, ProtoError, Request,
    Response, Welcome, WireError, decode_frame, encode_response,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::dispatch::execute;
use crate::push::{PushStream, StreamControl};

/// Most bytes read from the socket at once (a larger frame takes several
/// reads): a header claiming a large frame allocates only as its bytes
/// arrive.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// The writer gathers queued frames into one write up to about this size.
const WRITE_BATCH_BYTES: usize = 64 << 10;

/// A frame for the writer.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The request it belongs to.
    pub(crate) request_id: u64,
    /// What to send.
    pub(crate) response: Response,
    /// It is the request's final response: its id stops being in flight.
    pub(crate) settles: bool,
    /// The request's share of the connection's `pending_bytes_max`,
    /// given back once the response is written.
    pub(crate) budget: Option<OwnedSemaphorePermit>,
}

/// The requests in flight on one connection, by id; a push stream's entry
/// holds its control.
type InFlight = Arc<Mutex<HashMap<u64, Option<Arc<StreamControl>>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves one connection until the client leaves, breaks the protocol, or
/// `stop` turns true (then in-flight requests finish first). The client
/// is served on the bus `access` gives for its `Hello`'s token; if it gives
/// none, the client gets the `Error` (6001) in answer to its `Hello` and
/// the connection closes.
pub(crate) async fn serve<A, R, W>(
    reader: R,
    writer: W,
    access: Arc<A>,
    config: Arc<ServerConfig>,
    stop: watch::Receiver<bool>,
) where
    A: Access,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = InFlight::default();
    let (out, queue) = mpsc::channel(config.write_queue_frames as usize);
    let frames = FrameReader {
        reader,
        buf: BytesMut::new(),
    };
    let read_side = async {
        let mut greeter = Greeter {
            frames,
            config: &config,
            out: &out,
            stop: stop.clone(),
        };
        let bus = match greeter.handshake(&*access).await {
            Ok(bus) => bus,
            Err(closing) => {
                finish_without_requests(closing, &out).await;
                return;
            }
        };
        let read_side = Reader {
            frames: greeter.frames,
            budget: Arc::new(Semaphore::new(config.pending_bytes_max as usize)),
            bus,
            config: Arc::clone(&config),
            in_flight: Arc::clone(&in_flight),
            out,
            tasks: JoinSet::new(),
            stop,
        };
        read_side.run().await;
    };
    // Both halves run on this task; request and push tasks are spawned
    // (and aborted if this task is).
    tokio::join!(
        read_side,
        write_loop(
            writer,
            queue,
            Arc::clone(&in_flight),
            config.max_frame_bytes
        )
    );
}

/// A connection closing before its handshake completed: only an error
/// frame, if any, to send.
async fn finish_without_requests(closing: Closing, out: &mpsc::Sender<Outgoing>) {
    let (request_id, error) = match closing {
        Closing::Drain | Closing::Broken => return,
        Closing::Protocol { request_id, error } => (request_id, WireError::from(&error)),
        Closing::Refused { request_id, error } => (request_id, error),
    };
    let _ = out
        .send(Outgoing {
            request_id,
            response: Response::Error(error),
            settles: false,
            budget: None,
        })
        .await;
}

/// Why the reader stopped.
enum Closing {
    /// The client closed its side cleanly, or the server is shutting down:
    /// finish what is in flight.
    Drain,
    /// The connection broke: abandon what is in flight.
    Broken,
    /// The client broke the protocol: abandon what is in flight and send
    /// this error as the last frame.
    Protocol { request_id: u64, error: ProtoError },
    /// The client may not be served (its `Hello` was refused): send this
    /// error and close.
    Refused { request_id: u64, error: WireError },
}

enum ReadError {
    Proto { request_id: u64, error: ProtoError },
    Eof { partial: bool },
    Io(io::Error),
}

/// The socket's read half and the bytes read but not yet decoded.
struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
}

/// A connection before its `Hello`.
struct Greeter<'a, R> {
    frames: FrameReader<R>,
    config: &'a ServerConfig,
    out: &'a mpsc::Sender<Outgoing>,
    stop: watch::Receiver<bool>,
}

struct Reader<B, R> {
    frames: FrameReader<R>,
    /// Bytes of `pending_bytes_max` not reserved by a request in flight.
    budget: Arc<Semaphore>,
    bus: B,
    config: Arc<ServerConfig>,
    in_flight: InFlight,
    out: mpsc::Sender<Outgoing>,
    tasks: JoinSet<()>,
    stop: watch::Receiver<bool>,
}

impl<B: Bus + EventStore + Clone, R: AsyncRead + Unpin> Reader<B, R> {
    async fn run(mut self) {
        match self.requests().await {
            Closing::Drain => {
                for control in lock(&self.in_flight).values().flatten() {
                    control.stop(false);
                }
                while self.tasks.join_next().await.is_some() {}
            }
            Closing::Broken => self.abandon().await,
            closing @ (Closing::Protocol { .. } | Closing::Refused { .. }) => {
                tracing::debug!("closing a connection after a protocol error");
                self.abandon().await;
                finish_without_requests(closing, &self.out).await;
            }
        }
        // Dropping `self.out`, the last sender, ends the writer once it
        // has sent everything queued.
    }

    async fn abandon(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Reads and admits requests until the connection closes.
    async fn requests(&mut self) -> Closing {
        let mut stop = self.stop.clone();
        let limit = self.config.max_frame_bytes;
        loop {
            let frame = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Closing::Drain,
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => continue,
                read = self.frames.read(limit) => match read {
                    Ok(read) => read,
                    Err(e) => return closing(e),
                },
            };
            if let Err(error) = self.admit(frame.0, frame.1).await {
                return error;
            }
        }
    }

    /// Handles one frame: starts a request or push stream, or steers one.
    /// A request first reserves its share of `pending_bytes_max` (its
    /// frame and the most its response can hold, capped at the whole
    /// budget); while the budget is spent, the connection reads nothing
    /// more, and the client's writes back up into its own socket.
    async fn admit(&mut self, frame: Frame, frame_bytes: usize) -> Result<(), Closing> {
        let request_id = frame.request_id;
        let protocol = |error| Closing::Protocol { request_id, error };
        let request = match frame.message {
            Message::Request(Request::Hello(_)) => {
                return Err(protocol(ProtoError::UnexpectedKind {
                    kind: 0x01,
                    why: "the connection has had its Hello",
                }));
            }
            Message::Response(r) => {
                return Err(protocol(ProtoError::UnexpectedKind {
                    kind: r.kind().number(),
                    why: "a client sends requests, not responses",
                }));
            }
            Message::Request(Request::Credit { credit }) => {
                if let Some(Some(control)) = lock(&self.in_flight).get(&request_id) {
                    control.grant(credit);
                }
                return Ok(());
            }
            Message::Request(Request::Unsubscribe) => {
                if let Some(Some(control)) = lock(&self.in_flight).get(&request_id) {
                    control.stop(true);
                }
                return Ok(());
            }
            Message::Request(request) => request,
        };
        let limit = self.config.max_in_flight_requests;
        let admitted = {
            let mut in_flight = lock(&self.in_flight);
            if in_flight.contains_key(&request_id) {
                return Err(protocol(ProtoError::DuplicateRequestId(request_id)));
            }
            if in_flight.len() >= limit as usize {
                None
            } else {
                let control = matches!(request, Request::Subscribe { .. })
                    .then(|| Arc::new(StreamControl::default()));
                in_flight.insert(request_id, control.clone());
                Some(control)
            }
        };
        let Some(control) = admitted else {
            let refused = Outgoing {
                request_id,
                response: Response::Error(WireError::from(&ProtoError::TooManyInFlight { limit })),
                settles: false,
                budget: None,
            };
            return self.out.send(refused).await.map_err(|_| Closing::Broken);
        };
        let reserve = (frame_bytes as u64 + response_bytes_max(&request))
            .min(self.config.pending_bytes_max) as u32;
        let budget = {
            let mut stop = self.stop.clone();
            tokio::select! {
                permit = Arc::clone(&self.budget).acquire_many_owned(reserve) => permit.ok(),
                _ = stop.wait_for(|s| *s) => None,
            }
        };
        let Some(budget) = budget else {
            lock(&self.in_flight).remove(&request_id);
            return Err(Closing::Drain);
        };
        let bus = self.bus.clone();
        let out = self.out.clone();
        match (request, control) {
            (
                Request::Subscribe {
                    subscription,
                    credit,
                },
                Some(control),
            ) => {
                let stream = PushStream {
                    budget,
                    bus,
                    request_id,
                    subscription,
                    credit,
                    wait_ms: self.config.push_wait_ms,
                    control,
                    out,
                };
                self.tasks.spawn(stream.run());
            }
            (request, _) => {
                self.tasks.spawn(async move {
                    let response = execute(&bus, request).await;
                    let _ = out
                        .send(Outgoing {
                            request_id,
                            response,
                            settles: true,
                            budget: Some(budget),
                        })
                        .await;
                });
            }
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> Greeter<'_, R> {
    /// Reads the `Hello`, asks `access` for the bus to serve its token on,
    /// and answers with a `Welcome`.
    async fn handshake<A: Access>(&mut self, access: &A) -> Result<A::Bus, Closing> {
        let limit = Duration::from_millis(self.config.handshake_timeout_ms);
        let mut stop = self.stop.clone();
        let read = tokio::select! {
            read = tokio::time::timeout(limit, self.frames.read(HANDSHAKE_FRAME_BYTES)) => read,
            _ = stop.wait_for(|s| *s) => return Err(Closing::Broken),
        };
        let frame = match read {
            Err(_elapsed) => return Err(Closing::Broken),
            Ok(read) => read.map_err(closing)?.0,
        };
        let request_id = frame.request_id;
        let hello = match frame.message {
            Message::Request(Request::Hello(hello)) => hello,
            other => {
                return Err(Closing::Protocol {
                    request_id,
                    error: ProtoError::UnexpectedKind {
                        kind: other.kind().number(),
                        why: "the first frame must be a Hello",
                    },
                });
            }
        };
        let version = hello
            .negotiate()
            .map_err(|error| Closing::Protocol { request_id, error })?;
        let bus = access
            .bus_for(hello.token.as_deref())
            .map_err(|e| Closing::Refused {
                request_id,
                error: WireError::from(&e),
            })?;
        let welcome = Welcome {
            version,
            server: self.config.server_name.clone(),
            max_frame_bytes: self.config.max_frame_bytes,
            max_in_flight_requests: self.config.max_in_flight_requests,
        };
        let sent = self.out.send(Outgoing {
            request_id,
            response: Response::Welcome(welcome),
            settles: false,
            budget: None,
        });
        sent.await.map_err(|_| Closing::Broken)?;
        Ok(bus)
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads the next frame, refusing lengths above `limit`. Cancel-safe:
    /// bytes read stay in `self.buf` for the next call.
    /// Returns the frame and its length in bytes.
    async fn read(&mut self, limit: u32) -> Result<(Frame, usize), ReadError> {
        loop {
            match decode_frame(&self.buf, limit) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    self.buf.advance(consumed);
                    return Ok((frame, consumed));
                }
                Ok(Decoded::Incomplete { needed }) => {
                    self.buf.reserve(needed.min(READ_CHUNK_BYTES));
                    let n = self
                        .reader
                        .read_buf(&mut self.buf)
                        .await
                        .map_err(ReadError::Io)?;
                    if n == 0 {
                        return Err(ReadError::Eof {
                            partial: !self.buf.is_empty(),
                        });
                    }
                }
                Err(error) => {
                    return Err(ReadError::Proto {
                        request_id: header_request_id(&self.buf),
                        error,
                    });
                }
            }
        }
    }
}

/// The most bytes a response to `request` can hold, for reserving its
/// share of `pending_bytes_max`: results bounded by the bus's read limit
/// (reads, fetches, lists, store reads) reserve that bound; the rest a
/// little.
fn response_bytes_max(request: &Request) -> u64 {
    /// A read or fetch returns at most about this many bytes of events
    /// (the embedded broker's `READ_RESULT_BYTES_MAX`), plus framing.
    const RESULT_BYTES_MAX: u64 = 17 << 20;
    const SMALL_BYTES_MAX: u64 = 4 << 10;
    match request {
        Request::Read { .. }
        | Request::ReadStream { .. }
        | Request::ReadAll { .. }
        | Request::Fetch { .. }
        | Request::Subscribe { .. }
        | Request::DeadLetters { .. }
        | Request::DeadLetter { .. }
        | Request::ListTopics
        | Request::ListSubscriptions => RESULT_BYTES_MAX,
        _ => SMALL_BYTES_MAX,
    }
}

/// What a failed read means for the connection.
fn closing(e: ReadError) -> Closing {
    match e {
        ReadError::Proto { request_id, error } => Closing::Protocol { request_id, error },
        ReadError::Eof { partial: false } => Closing::Drain,
        ReadError::Eof { partial: true } => Closing::Protocol {
            request_id: 0,
            error: ProtoError::Truncated {
                what: "frame (the connection ended inside it)",
                at: 0,
            },
        },
        ReadError::Io(error) => {
            tracing::debug!(%error, "a connection's read failed");
            Closing::Broken
        }
    }
}

/// The request id of the frame at the start of `buf`, if its header is
/// there; else 0.
fn header_request_id(buf: &[u8]) -> u64 {
    buf.get(6..FRAME_HEADER_BYTES)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The connection's one writer: encodes queued responses (splitting large
/// lists over frames) and writes them, several per write when more are
/// queued. Ends when every sender is gone, or the socket fails.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<Outgoing>,
    in_flight: InFlight,
    max_frame_bytes: u32,
) {
    let mut buf = Vec::new();
    let mut written = Vec::new();
    while let Some(first) = queue.recv().await {
        buf.clear();
        written.extend(encode(first, &in_flight, max_frame_bytes, &mut buf));
        while buf.len() < WRITE_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => written.extend(encode(next, &in_flight, max_frame_bytes, &mut buf)),
                Err(_) => break,
            }
        }
        if let Err(error) = writer.write_all(&buf).await {
            tracing::debug!(%error, "a connection's write failed");
            return;
        }
        // Written: their share of the budget is free again.
        written.clear();
    }
    let _ = writer.shutdown().await;
}

/// Appends one response's frames to `buf`, first freeing its request id if
/// it is the final response. A response that cannot be encoded (an item
/// larger than a frame) is replaced by an `Error` saying so.
/// Returns the response's share of the budget, to be dropped once written.
fn encode(
    out: Outgoing,
    in_flight: &InFlight,
    max_frame_bytes: u32,
    buf: &mut Vec<u8>,
) -> Option<OwnedSemaphorePermit> {
    if out.settles {
        lock(in_flight).remove(&out.request_id);
    }
    let Err(error) = encode_response(out.request_id, &out.response, max_frame_bytes, buf) else {
        return out.budget;
    };
    let bus_error = match error {
        ProtoError::FrameTooLarge { limit, actual } => BusError::LimitExceeded {
            what: "response item",
            setting: "max_frame_bytes",
            limit: u64::from(limit),
            actual,
        },
        other => BusError::Unavailable(format!("the response could not be encoded: {other}")),
    };
    let response = Response::Error(WireError::from(&bus_error));
    if let Err(e) = encode_response(out.request_id, &response, max_frame_bytes, buf) {
        tracing::warn!(error = %e, "an error response could not be encoded");
    }
    out.budget
}
