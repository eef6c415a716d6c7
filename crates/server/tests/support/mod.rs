//! Test support: a real broker in a temporary folder served on
//! 127.0.0.1 (port 0), and a tiny client written with `eddy_proto`'s
//! encoder and decoder. Timeouts here are hang guards only.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::Bus;
use eddy_proto::{
    Decoded, FRAME_BYTES_CAP, Frame, Hello, Message, Request, Response, Welcome, decode_frame,
    encode_frame,
};
use eddy_server::{ServerConfig, serve_native};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest any single step of a test may take before it counts as hung.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// A served broker.
pub struct Server {
    pub addr: SocketAddr,
    pub bus: Broker,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<eddy_server::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Opens a broker in a fresh folder and serves it with `config`.
    pub async fn start(config: ServerConfig) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = Broker::open(
            dir.path(),
            BrokerConfig {
                timer_interval_ms: None,
                ..BrokerConfig::default()
            },
        )
        .expect("open broker");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_native(listener, bus.clone(), config, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            bus,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// A server whose frames and `pending_bytes_max` are both 1 MiB, with
    /// the topic `topic` created.
    pub async fn with_small_budget(topic: &str) -> Server {
        let config = ServerConfig {
            max_frame_bytes: 1 << 20,
            pending_bytes_max: 1 << 20,
            ..ServerConfig::default()
        };
        let server = Server::start(config).await;
        server
            .bus
            .create_topic(topic, eddy_bus::TopicConfig::default())
            .await
            .expect("create the topic");
        server
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(HANG_GUARD, &mut self.task)
            .await
            .expect("server shut down in time")
            .expect("server task")
            .expect("server result");
        self.bus.close().expect("close broker");
    }
}

/// A raw protocol client.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects without a handshake.
    pub async fn connect_raw(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(HANG_GUARD, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and does the handshake (request id 0).
    pub async fn connect(addr: SocketAddr) -> (Client, Welcome) {
        let mut client = Client::connect_raw(addr).await;
        client
            .send(0, Request::Hello(Hello::new("server-test/0", None)))
            .await;
        let frame = client.recv().await.expect("an answer to the Hello");
        assert_eq!(frame.request_id, 0);
        match frame.message {
            Message::Response(Response::Welcome(w)) => (client, w),
            other => panic!("expected a Welcome, got {other:?}"),
        }
    }

    /// The socket, for tests that write without waiting.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends one request frame.
    pub async fn send(&mut self, request_id: u64, request: Request) {
        let mut wire = Vec::new();
        encode_frame(&Frame::new(request_id, request), FRAME_BYTES_CAP, &mut wire).expect("encode");
        self.send_bytes(&wire).await;
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next frame, or `None` once the server has closed the
    /// connection.
    pub async fn recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(HANG_GUARD, self.recv_inner())
            .await
            .expect("a frame or the end of the connection in time")
    }

    async fn recv_inner(&mut self) -> Option<Frame> {
        loop {
            match decode_frame(&self.buf, FRAME_BYTES_CAP).expect("the server sends valid frames") {
                Decoded::Frame { frame, consumed } => {
                    self.buf.drain(..consumed);
                    return Some(frame);
                }
                Decoded::Incomplete { .. } => {
                    self.buf.reserve(64 << 10);
                    match self.stream.read_buf(&mut self.buf).await {
                        Ok(0) | Err(_) => {
                            assert!(self.buf.is_empty(), "the connection ended inside a frame");
                            return None;
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }

    /// The next frame, which must be a response.
    pub async fn recv_response(&mut self) -> (u64, Response) {
        let frame = self.recv().await.expect("a frame, not the end");
        match frame.message {
            Message::Response(r) => (frame.request_id, r),
            Message::Request(r) => panic!("the server sent a request: {r:?}"),
        }
    }

    /// Sends a request and returns its response, which must be the next
    /// frame.
    pub async fn call(&mut self, request_id: u64, request: Request) -> Response {
        self.send(request_id, request).await;
        let (id, response) = self.recv_response().await;
        assert_eq!(id, request_id, "response to another request: {response:?}");
        response
    }
}
