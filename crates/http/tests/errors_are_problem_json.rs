//! Every failure is `application/problem+json` with the bus's code: bad
//! JSON, unknown topics, oversize events and bodies, bad binary-mode
//! CloudEvents, unknown routes and methods, wrong media types, bad or
//! missing tokens, refused permissions — and none of them, nor garbage on
//! the socket, stops the server serving others.

mod common;

use std::io::{Read, Write};

use common::{Server, client};
use eddy_auth::{Grant, Permission, TokenHash, Tokens};
use eddy_bus::{Bus, TopicConfig};
use eddy_http::HttpConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_are_problems() {
    // Proves the status and code of each kind of bad request.
    let s = Server::start().await;
    s.post("/v1/topics", json!({"name": "orders"})).await;
    let json_ct = [("content-type", "application/json")];

    s.post_raw("/v1/topics", &json_ct, "{\"name\": ")
        .await
        .assert_problem(400, 1003);
    s.post_raw("/v1/topics/orders/events", &json_ct, "[{\"type\": 1}]")
        .await
        .assert_problem(400, 1003);
    s.post("/v1/topics", json!({"name": "x", "colour": "red"}))
        .await
        .assert_problem(400, 1003);
    s.post_raw("/v1/topics", &[("content-type", "text/plain")], "{}")
        .await
        .assert_problem(415, 1003);
    s.post_raw(
        "/v1/topics/orders/events",
        &[("content-type", "text/plain")],
        "hi",
    )
    .await
    .assert_problem(415, 1003);
    s.post("/v1/topics", json!({"name": "Bad Name!"}))
        .await
        .assert_problem(400, 1001);

    let r = s.post("/v1/topics/nope/events", json!({"type": "T"})).await;
    r.assert_problem(404, 2001);
    assert_eq!(r.json["title"], "TopicNotFound");
    assert_eq!(r.json["topic"], "nope");

    // One event over the bus's 1 MiB limit, in a body well under 16 MiB.
    let big = vec![b'x'; 1024 * 1024 + 1];
    let r = s
        .post_raw(
            "/v1/topics/orders/events",
            &[
                ("content-type", "application/octet-stream"),
                ("ce-specversion", "1.0"),
                ("ce-id", "big"),
                ("ce-source", "/s"),
                ("ce-type", "T"),
            ],
            big,
        )
        .await;
    r.assert_problem(413, 1004);
    assert_eq!(r.json["setting"], "event_bytes_max");

    let r = s
        .post_raw(
            "/v1/topics/orders/events",
            &[
                ("content-type", "text/plain"),
                ("ce-specversion", "1.0"),
                ("ce-source", "/s"),
                ("ce-type", "T"),
            ],
            "no id",
        )
        .await;
    r.assert_problem(400, 1003);
    assert!(r.json["detail"].as_str().expect("detail").contains("ce-id"));
    assert_eq!(s.get("/v1/topics/orders/stats").await.json["published"], 0);

    let r = s.get("/v1/nothing/here").await;
    r.assert_problem(404, 1003);
    s.send(s.http.put(s.url("/v1/topics")))
        .await
        .assert_problem(405, 1003);
    s.send(
        s.http
            .get(s.url("/v1/topics"))
            .header("authorization", "Basic abc"),
    )
    .await
    .assert_problem(401, 6001);

    assert_eq!(s.get("/healthz").await.json, json!({"status": "ok"}));
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_bytes_is_413() {
    // Proves the body limit: a request body over `max_body_bytes` is a
    // 413 problem (1004) naming the setting; one under it is served.
    let config = HttpConfig {
        max_body_bytes: 1024,
        ..HttpConfig::default()
    };
    let s = Server::start_with(config).await;
    s.post("/v1/topics", json!({"name": "orders"})).await;
    let data = "x".repeat(4096);
    let r = s
        .post(
            "/v1/topics/orders/events",
            json!({"type": "T", "data": data}),
        )
        .await;
    r.assert_problem(413, 1004);
    assert_eq!(r.json["setting"], "max_body_bytes");
    let r = s
        .post(
            "/v1/topics/orders/events",
            json!({"type": "T", "data": "small"}),
        )
        .await;
    assert_eq!(r.status, 200);
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked() {
    // Proves: with token access, no token and an unknown token are 401
    // (6001) with `WWW-Authenticate: Bearer`; a token may do what it is
    // granted (publish) and gets 403 (6002) for what it is not (create a
    // topic); /healthz needs no token.
    let token = eddy_auth::generate_token().expect("token");
    let hash = TokenHash::of(&token);
    let s = Server::start_access(HttpConfig::default(), move |broker| {
        Tokens::new(broker)
            .with(
                "orders-service",
                hash,
                vec![Grant::new("orders.>", &[Permission::Publish]).expect("grant")],
            )
            .expect("tokens")
    })
    .await;
    s.broker
        .create_topic("orders.placed", TopicConfig::default())
        .await
        .expect("topic");
    let r = s
        .post("/v1/topics/orders.placed/events", json!({"type": "T"}))
        .await;
    r.assert_problem(401, 6001);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = s
        .send(
            s.http
                .get(s.url("/v1/topics"))
                .bearer_auth("eddy_not_a_token"),
        )
        .await;
    r.assert_problem(401, 6001);
    let r = s
        .send(
            s.http
                .post(s.url("/v1/topics/orders.placed/events"))
                .bearer_auth(&token)
                .json(&json!({"type": "T"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let r = s
        .send(
            s.http
                .post(s.url("/v1/topics"))
                .bearer_auth(&token)
                .json(&json!({"name": "orders.new"})),
        )
        .await;
    r.assert_problem(403, 6002);
    assert_eq!(s.get("/healthz").await.status, 200);
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socket_does_not_stop_the_server() {
    // Proves a connection sending bytes that are not HTTP, one that sends
    // a truncated request and hangs up, and one with a huge header do not
    // disturb the server: requests on other connections are served.
    let s = Server::start().await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        let timeout = Some(std::time::Duration::from_secs(10));
        let mut garbage = std::net::TcpStream::connect(addr).expect("connect");
        garbage.set_read_timeout(timeout).expect("timeout");
        garbage
            .write_all(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
            .expect("write");
        let mut answer = Vec::new();
        let _ = garbage.read_to_end(&mut answer);
        let mut truncated = std::net::TcpStream::connect(addr).expect("connect");
        truncated
            .write_all(b"POST /v1/topics HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"na")
            .expect("write");
        drop(truncated);
        let mut huge = std::net::TcpStream::connect(addr).expect("connect");
        huge.set_read_timeout(timeout).expect("timeout");
        let header = format!(
            "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        );
        let _ = huge.write_all(header.as_bytes());
        let _ = huge.read_to_end(&mut answer);
    })
    .await
    .expect("raw connections");
    let r = client()
        .get(s.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let r = s.post("/v1/topics", json!({"name": "still.serving"})).await;
    assert_eq!(r.status, 201);
    s.stop().await.expect("clean stop");
}
