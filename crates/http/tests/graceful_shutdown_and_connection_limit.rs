//! Stopping and limiting the server: on shutdown it stops accepting,
//! finishes a request in flight, ends SSE streams, and returns; beyond
//! `max_connections` a connection is closed unanswered until a slot frees.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HANG_GUARD, Server, SseReader, client};
use eddy_auth::{Access, Open};
use eddy_broker::Broker;
use eddy_bus::{Bus, BusError, Event, StartAt, SubscriptionConfig, TopicConfig};
use eddy_http::HttpConfig;
use serde_json::json;
use tokio::sync::Notify;

/// Open access that signals each request it serves.
struct Signalling {
    inner: Open<Broker>,
    served: Arc<Notify>,
}

impl Access for Signalling {
    type Bus = Broker;

    fn bus_for(&self, token: Option<&str>) -> Result<Broker, BusError> {
        self.served.notify_one();
        self.inner.bus_for(token)
    }
}

/// Waits (bounded) until nothing listens at `addr` any more.
async fn wait_until_refused(addr: SocketAddr) {
    let deadline = Instant::now() + HANG_GUARD;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the server still accepts connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight() {
    // Proves: a long-poll fetch that is being served when shutdown begins
    // still gets its answer (the event published after the signal), new
    // connections are refused meanwhile, and serve_http returns Ok —
    // well within a grace far longer than the hang guard.
    let served = Arc::new(Notify::new());
    let signal = Arc::clone(&served);
    let config = HttpConfig {
        shutdown_grace_ms: 120_000,
        ..HttpConfig::default()
    };
    let mut s = Server::start_access(config, move |broker| Signalling {
        inner: Open(broker),
        served: signal,
    })
    .await;
    s.broker
        .create_topic("jobs", TopicConfig::default())
        .await
        .expect("topic");
    s.broker
        .create_subscription(
            "workers",
            SubscriptionConfig::new("jobs").start_at(StartAt::Earliest),
        )
        .await
        .expect("subscription");

    let url = s.url("/v1/subscriptions/workers/fetch");
    let in_flight = tokio::spawn(async move {
        client()
            .post(url)
            .json(&json!({"max": 1, "wait_ms": 15_000}))
            .send()
            .await
            .expect("the in-flight request is answered")
    });
    tokio::time::timeout(HANG_GUARD, served.notified())
        .await
        .expect("the fetch reached the server");
    s.signal_stop();
    wait_until_refused(s.addr).await;
    s.broker
        .publish("jobs", Event::new("JobQueued", "{}"))
        .await
        .expect("publish");
    let r = tokio::time::timeout(HANG_GUARD, in_flight)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(
        body["deliveries"][0]["event"]["type"], "JobQueued",
        "{body}"
    );
    s.stop().await.expect("serve_http returns Ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_sse_streams() {
    // Proves an open SSE stream ends cleanly on shutdown (instead of
    // holding the server until the grace runs out), so serve_http returns.
    let config = HttpConfig {
        shutdown_grace_ms: 120_000,
        ..HttpConfig::default()
    };
    let mut s = Server::start_with(config).await;
    s.topic_and_sub("orders", "mailer").await;
    s.post("/v1/topics/orders/events", json!({"type": "T"}))
        .await;
    let r = s
        .http
        .get(s.url("/v1/subscriptions/mailer/events"))
        .send()
        .await
        .expect("SSE");
    let mut sse = SseReader::new(r);
    assert_eq!(sse.next().await.expect("a delivery").event, "delivery");
    s.signal_stop();
    assert_eq!(sse.next().await, None, "the stream ends");
    s.stop().await.expect("serve_http returns Ok");
}

/// Sends a request on a raw connection and reads the status line; `None`
/// if the server closed the connection unanswered.
fn status_line(conn: &mut TcpStream) -> Option<String> {
    conn.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let _ = conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut buf = [0u8; 512];
    match conn.read(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed() {
    // Proves with max_connections = 2: two kept-alive connections are
    // served, a third is closed unanswered, and once one of the two
    // closes a new connection is served again.
    let config = HttpConfig {
        max_connections: 2,
        ..HttpConfig::default()
    };
    let s = Server::start_with(config).await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        let mut a = TcpStream::connect(addr).expect("a");
        let mut b = TcpStream::connect(addr).expect("b");
        assert_eq!(status_line(&mut a).as_deref(), Some("HTTP/1.1 200 OK"));
        assert_eq!(status_line(&mut b).as_deref(), Some("HTTP/1.1 200 OK"));
        let mut c = TcpStream::connect(addr).expect("c: the kernel accepts");
        assert_eq!(status_line(&mut c), None, "over the limit: closed");
        drop(a);
        // The slot frees once the server sees `a` close: poll, bounded.
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let mut d = TcpStream::connect(addr).expect("d");
            if status_line(&mut d).as_deref() == Some("HTTP/1.1 200 OK") {
                break;
            }
            assert!(Instant::now() < deadline, "the freed slot was never reused");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            status_line(&mut b).as_deref(),
            Some("HTTP/1.1 200 OK"),
            "b still served"
        );
    })
    .await
    .expect("raw connections");
    s.stop().await.expect("clean stop");
}
