//! Test support: a real broker in a temp dir served by `serve_http` on
//! 127.0.0.1:0, a reqwest client, and an SSE frame reader.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use eddy_auth::{Access, Open};
use eddy_broker::{Broker, BrokerConfig};
use eddy_http::{HttpConfig, serve_http};
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest anything may take before the test counts as hung.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// A response: status, content type and the body as JSON (`Null` if
/// empty).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Resp {
    async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.bytes().await.expect("body");
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
        };
        Resp {
            status,
            content_type,
            headers,
            json,
        }
    }

    /// Asserts this is a problem with this status and code.
    pub fn assert_problem(&self, status: u16, code: u64) {
        assert_eq!(self.status.as_u16(), status, "{:?}", self.json);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{:?}",
            self.json
        );
        assert_eq!(self.json["status"], status, "{:?}", self.json);
        assert_eq!(self.json["code"], code, "{:?}", self.json);
        assert_eq!(
            self.json["type"],
            format!("https://eddy.dev/errors/{code}"),
            "{:?}",
            self.json
        );
        assert!(self.json["title"].is_string() && self.json["detail"].is_string());
    }
}

/// One served broker.
pub struct Server {
    pub broker: Broker,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<eddy_http::Result<()>>>,
    _dir: TempDir,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HANG_GUARD)
        .build()
        .expect("client")
}

impl Server {
    /// A fresh broker served with the default settings.
    pub async fn start() -> Server {
        Server::start_with(HttpConfig::default()).await
    }

    /// A fresh broker served with `config`.
    pub async fn start_with(config: HttpConfig) -> Server {
        Server::start_access(config, Open).await
    }

    /// A fresh broker served through the access `make` builds around it.
    pub async fn start_access<A: Access>(
        config: HttpConfig,
        make: impl FnOnce(Broker) -> A,
    ) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("open broker");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_http(listener, make(broker.clone()), config, async {
            let _ = stopped.await;
        }));
        Server {
            broker,
            addr,
            http: client(),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::read(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        Resp::read(
            self.http
                .delete(self.url(path))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        Resp::read(r).await
    }

    /// POSTs raw bytes with these headers.
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut req = self.http.post(self.url(path)).body(body);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        Resp::read(req.send().await.expect("POST")).await
    }

    /// Sends any request.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        Resp::read(req.send().await.expect("request")).await
    }

    /// Signals shutdown without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the server down and returns what `serve_http` returned.
    pub async fn stop(mut self) -> eddy_http::Result<()> {
        self.signal_stop();
        let task = self.task.take().expect("running");
        tokio::time::timeout(HANG_GUARD, task)
            .await
            .expect("serve_http returns after shutdown")
            .expect("serve task")
    }

    /// Creates a topic and a subscription reading it from the start.
    pub async fn topic_and_sub(&self, topic: &str, sub: &str) {
        let r = self
            .post("/v1/topics", serde_json::json!({ "name": topic }))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        let r = self
            .post(
                "/v1/subscriptions",
                serde_json::json!({
                    "name": sub, "filter": topic, "start": "earliest", "ack_wait_ms": 120_000
                }),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
    }
}

/// One SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads SSE events from a response body.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
    /// Comments seen (keep-alives).
    pub comments: usize,
}

impl SseReader {
    pub fn new(r: reqwest::Response) -> SseReader {
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        SseReader {
            body: Box::pin(r.bytes_stream()),
            buf: Vec::new(),
            comments: 0,
        }
    }

    /// The next event (comments skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(HANG_GUARD, self.next_inner())
            .await
            .expect("an SSE event within the hang guard")
    }

    async fn next_inner(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 frame");
                let mut frame = Frame {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut saw_field = false;
                for line in text.lines().filter(|l| !l.is_empty()) {
                    if line.starts_with(':') {
                        self.comments += 1;
                        continue;
                    }
                    let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                    saw_field = true;
                    match field {
                        "event" => frame.event = value.into(),
                        "id" => frame.id = Some(value.into()),
                        "data" => {
                            if !frame.data.is_empty() {
                                frame.data.push('\n');
                            }
                            frame.data.push_str(value);
                        }
                        other => panic!("unexpected SSE field {other:?}"),
                    }
                }
                if saw_field {
                    return Some(frame);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => panic!("SSE body failed: {e}"),
                None => return None,
            }
        }
    }
}

/// A delivery frame's JSON.
pub fn delivery(frame: &Frame) -> Value {
    assert_eq!(frame.event, "delivery", "{frame:?}");
    let v: Value = serde_json::from_str(&frame.data).expect("delivery JSON");
    assert_eq!(frame.id.as_deref(), v["ack_id"].as_str());
    v
}
