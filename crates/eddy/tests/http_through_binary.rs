//! Proves the HTTP API end to end through the real binary: a CloudEvents
//! binary-mode publish and a plain JSON batch are stored, a subscription
//! consumes them over HTTP (fetch + ack), `/metrics` counts the work in
//! Prometheus text, `/healthz` answers, bad requests get
//! `application/problem+json` while the server keeps serving, a token
//! without permission is refused with 403, and HTTPS works with the
//! server's certificate.

mod support;

use std::process::Child;

use eddy_auth::TokenHash;
use serde_json::{Value, json};

struct Server {
    child: Child,
    http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let served = support::serve(args);
    Server {
        child: served.child,
        http: served.http.expect("an http line in the banner"),
    }
}

async fn problem(response: reqwest::Response, status: u16, code: u64) {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_consume_metrics_and_errors_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&[
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--dir",
        data.to_str().unwrap(),
    ]);
    let (http, base) = (reqwest::Client::new(), server.http.clone());
    let health: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let created = http
        .post(format!("{base}/v1/topics"))
        .json(&json!({"name": "orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let sub = http
        .post(format!("{base}/v1/subscriptions"))
        .json(&json!({"name": "billing", "filter": "orders", "start": "earliest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status().as_u16(), 201);

    // A CloudEvents producer in binary mode.
    let binary = http
        .post(format!("{base}/v1/topics/orders/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "order-1")
        .header("ce-source", "/shop")
        .header("ce-type", "OrderPlaced")
        .header("ce-key", "customer-7")
        .header("content-type", "application/json")
        .body(r#"{"total":42}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status().as_u16(), 200);
    // Plain JSON, a batch of two.
    let batch = http
        .post(format!("{base}/v1/topics/orders/events"))
        .json(&json!([{"type": "OrderPlaced", "data": {"total": 1}}, {"type": "OrderPlaced", "data": "two"}]))
        .send()
        .await
        .unwrap();
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["results"].as_array().unwrap().len(), 2);

    // Bad requests: problems, and the server keeps serving.
    let bad_json = http
        .post(format!("{base}/v1/topics/orders/events"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(bad_json, 400, 1003).await;
    let oversize = http
        .post(format!("{base}/v1/topics/orders/events"))
        .json(&json!({"type": "Big", "data": "x".repeat(2 << 20)}))
        .send()
        .await
        .unwrap();
    problem(oversize, 413, 1004).await;
    let missing = http
        .post(format!("{base}/v1/topics/nowhere/events"))
        .json(&json!({"type": "X"}))
        .send()
        .await
        .unwrap();
    problem(missing, 404, 2001).await;

    // Consume over HTTP: fetch, then ack.
    let fetched: Value = http
        .post(format!("{base}/v1/subscriptions/billing/fetch"))
        .json(&json!({"max": 10, "wait_ms": 1000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deliveries = fetched["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3, "{fetched}");
    let first = &deliveries[0]["event"];
    assert_eq!(first["id"], "order-1");
    assert_eq!(first["type"], "OrderPlaced");
    assert_eq!(first["key"], "customer-7");
    assert_eq!(first["data"]["total"], 42);
    let ids: Vec<Value> = deliveries.iter().map(|d| d["ack_id"].clone()).collect();
    let acked: Value = http
        .post(format!("{base}/v1/subscriptions/billing/ack"))
        .json(&json!({"ack_ids": ids}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        acked["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true),
        "{acked}"
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "eddy_published_total{topic=\"orders\"} 3",
        "eddy_acked_total{subscription=\"billing\"} 3",
        "eddy_subscription_lag{subscription=\"billing\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in:\n{metrics}"
        );
    }
    assert!(metrics.contains("eddy_connections{listener=\"http\"}"));
    assert!(metrics.contains("eddy_request_duration_seconds_bucket{op=\"publish\""));
    let doc: Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/topics/{name}/events"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_tls_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("eddy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
data_dir = "{data}"
[native]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[tls]
cert = "{cert}"
key = "{key}"
[[tokens]]
name = "ops"
hash = "{ops}"
grants = [{{ topics = ">", allow = ["admin"] }}]
[[tokens]]
name = "reader"
hash = "{reader}"
grants = [{{ topics = "orders.>", allow = ["subscribe"] }}]
"#,
            data = dir.path().join("data").display(),
            cert = cert.display(),
            key = key.display(),
            ops = TokenHash::of("eddy_ops"),
            reader = TokenHash::of("eddy_reader"),
        ),
    )
    .unwrap();
    let server = start(&["--config", config.to_str().unwrap()]);
    assert!(server.http.starts_with("https://"), "{}", server.http);
    let base = server.http.replace("127.0.0.1", "localhost");
    let root = reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(root)
        .resolve(
            "localhost",
            base.trim_start_matches("https://localhost:")
                .parse::<u16>()
                .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
                .unwrap(),
        )
        .build()
        .unwrap();

    let anonymous = https.get(format!("{base}/v1/topics")).send().await.unwrap();
    problem(anonymous, 401, 6001).await;
    let created = https
        .post(format!("{base}/v1/topics"))
        .bearer_auth("eddy_ops")
        .json(&json!({"name": "orders.created"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let denied = https
        .post(format!("{base}/v1/topics/orders.created/events"))
        .bearer_auth("eddy_reader")
        .json(&json!({"type": "OrderPlaced"}))
        .send()
        .await
        .unwrap();
    problem(denied, 403, 6002).await;
    let read = https
        .get(format!(
            "{base}/v1/topics/orders.created/partitions/0/events?from=beginning"
        ))
        .bearer_auth("eddy_reader")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let read: Value = read.json().await.unwrap();
    assert_eq!(
        read["events"].as_array().unwrap().len(),
        0,
        "the denied publish stored nothing"
    );

    // Plain HTTP to the TLS port gets no answer it could mistake for one.
    let plain = reqwest::Client::new()
        .get(server.http.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}
