//! Push delivery over Server-Sent Events: deliveries arrive as frames, a
//! manual-ack stream holds at most `max_in_flight` unsettled deliveries
//! and gets exactly one more per ack, an auto-ack stream settles as it
//! sends, and a bad stream request is a problem before any frame.

mod common;

use common::{Server, SseReader, delivery};
use serde_json::{Value, json};

async fn stats(s: &Server, sub: &str) -> Value {
    s.get(&format!("/v1/subscriptions/{sub}/stats")).await.json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_ack_stream_holds_at_most_max_in_flight() {
    // Proves: with N = 3 and N + 5 events published, the stream sends N
    // deliveries and the bus has handed out exactly N (no credit left);
    // acking one through POST .../ack lets exactly one more through; acking
    // the rest delivers everything, in order.
    const N: usize = 3;
    let s = Server::start().await;
    s.topic_and_sub("orders", "mailer").await;
    let batch: Vec<Value> = (0..N + 5)
        .map(|i| json!({"type": "OrderPlaced", "data": i}))
        .collect();
    s.post("/v1/topics/orders/events", Value::Array(batch))
        .await;

    let r = s
        .http
        .get(s.url(&format!(
            "/v1/subscriptions/mailer/events?max_in_flight={N}"
        )))
        .send()
        .await
        .expect("SSE");
    let mut sse = SseReader::new(r);
    let mut ack_ids = Vec::new();
    for i in 0..N {
        let d = delivery(&sse.next().await.expect("a delivery"));
        assert_eq!(d["event"]["offset"], i as u64);
        assert_eq!(d["event"]["data"], i as u64);
        ack_ids.push(d["ack_id"].as_str().expect("ack id").to_string());
    }
    let st = stats(&s, "mailer").await;
    assert_eq!(
        st["delivered"], N as u64,
        "no credit, no more fetched: {st}"
    );
    assert_eq!(st["in_flight"], N as u64);

    let r = s
        .post(
            "/v1/subscriptions/mailer/ack",
            json!({"ack_ids": [ack_ids[0]]}),
        )
        .await;
    assert_eq!(r.json["results"][0]["ok"], true);
    let d = delivery(&sse.next().await.expect("one more"));
    assert_eq!(d["event"]["offset"], N as u64);
    ack_ids.push(d["ack_id"].as_str().expect("ack id").to_string());
    let st = stats(&s, "mailer").await;
    assert_eq!(st["delivered"], N as u64 + 1, "exactly one more: {st}");
    assert_eq!(st["in_flight"], N as u64);

    // Settle as we go: everything arrives.
    let r = s
        .post(
            "/v1/subscriptions/mailer/ack",
            json!({"ack_ids": ack_ids[1..]}),
        )
        .await;
    assert!(
        r.json["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["ok"] == true)
    );
    for offset in N + 1..N + 5 {
        let d = delivery(&sse.next().await.expect("a delivery"));
        assert_eq!(d["event"]["offset"], offset as u64);
        let r = s
            .post(
                "/v1/subscriptions/mailer/ack",
                json!({"ack_ids": [d["ack_id"]]}),
            )
            .await;
        assert_eq!(r.json["results"][0]["ok"], true);
    }
    let st = stats(&s, "mailer").await;
    assert_eq!(
        (st["acked"].clone(), st["lag"].clone()),
        (json!(N + 5), json!(0)),
        "{st}"
    );
    drop(sse);
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_ack_stream_settles_as_it_sends() {
    // Proves ack=auto: with 2 credits, 6 events all arrive without any
    // client ack, and each one sent before the last was acked by the
    // server.
    let s = Server::start().await;
    s.topic_and_sub("orders", "audit").await;
    let batch: Vec<Value> = (0..6).map(|i| json!({"type": "T", "data": i})).collect();
    s.post("/v1/topics/orders/events", Value::Array(batch))
        .await;
    let r = s
        .http
        .get(s.url("/v1/subscriptions/audit/events?ack=auto&max_in_flight=2"))
        .send()
        .await
        .expect("SSE");
    let mut sse = SseReader::new(r);
    for i in 0..6u64 {
        let d = delivery(&sse.next().await.expect("a delivery"));
        assert_eq!(d["event"]["offset"], i);
        assert_eq!(d["attempt"], 1);
    }
    let st = stats(&s, "audit").await;
    assert!(st["acked"].as_u64() >= Some(5), "{st}");
    assert_eq!(st["redelivered"], 0);
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stream_requests_are_problems() {
    // Proves an unknown subscription (404, 3001), a max_in_flight out of
    // 1..=1000 and an unknown ack mode (400, 1003) are refused before the
    // stream starts.
    let s = Server::start().await;
    s.topic_and_sub("orders", "audit").await;
    s.get("/v1/subscriptions/nope/events")
        .await
        .assert_problem(404, 3001);
    for q in ["max_in_flight=0", "max_in_flight=1001", "ack=sometimes"] {
        s.get(&format!("/v1/subscriptions/audit/events?{q}"))
            .await
            .assert_problem(400, 1003);
    }
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_returns_its_credit() {
    // Proves a manual-ack stream with one credit is not stuck forever on
    // a delivery the client never settles: once its lease runs out the
    // credit comes back and the next delivery (here the redelivery,
    // attempt 2, or the next event) is sent.
    let s = Server::start().await;
    s.post("/v1/topics", json!({"name": "orders"})).await;
    let r = s
        .post(
            "/v1/subscriptions",
            json!({"name": "slow", "filter": "orders",
            "start": "earliest", "ack_wait_ms": 200}),
        )
        .await;
    assert_eq!(r.status, 201);
    s.post(
        "/v1/topics/orders/events",
        json!([{"type": "A"}, {"type": "B"}]),
    )
    .await;
    let r = s
        .http
        .get(s.url("/v1/subscriptions/slow/events?max_in_flight=1"))
        .send()
        .await
        .expect("SSE");
    let mut sse = SseReader::new(r);
    let first = delivery(&sse.next().await.expect("first"));
    let second = delivery(
        &sse.next()
            .await
            .expect("a second one after the lease ran out"),
    );
    assert_ne!(first["ack_id"], second["ack_id"]);
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_sends_keep_alives() {
    // Proves a stream with nothing to deliver writes keep-alive comments
    // every `sse_keepalive_ms`.
    let config = eddy_http::HttpConfig {
        sse_keepalive_ms: 100,
        ..eddy_http::HttpConfig::default()
    };
    let s = Server::start_with(config).await;
    s.topic_and_sub("orders", "idle").await;
    let r = s
        .http
        .get(s.url("/v1/subscriptions/idle/events"))
        .send()
        .await
        .expect("SSE");
    let mut body = r.bytes_stream();
    use futures_util::StreamExt as _;
    let chunk = tokio::time::timeout(common::HANG_GUARD, body.next())
        .await
        .expect("a chunk")
        .expect("not ended")
        .expect("bytes");
    assert_eq!(&chunk[..], b": keep-alive\n\n");
    drop(body);
    s.stop().await.expect("clean stop");
}
