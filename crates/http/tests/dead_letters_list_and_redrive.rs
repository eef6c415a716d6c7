//! The dead-letter queue over HTTP: a terminated delivery is listed and
//! shown with its reason, redriven into its subscription (fetched again
//! with fresh attempts) or to another topic, and purged.

mod common;

use common::Server;
use serde_json::{Value, json};

async fn fetch_one(s: &Server, sub: &str) -> Value {
    let r = s
        .post(
            &format!("/v1/subscriptions/{sub}/fetch"),
            json!({"max": 1, "wait_ms": 10_000}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["deliveries"][0].clone()
}

async fn terminate(s: &Server, sub: &str, d: &Value, reason: &str) {
    let r = s
        .post(
            &format!("/v1/subscriptions/{sub}/terminate"),
            json!({"ack_id": d["ack_id"], "reason": reason}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_list_show_redrive_purge() {
    // Proves each dead-letter route on a real broker, and their problems.
    let s = Server::start().await;
    s.topic_and_sub("orders", "billing").await;
    s.post("/v1/topics", json!({"name": "orders.retry"})).await;
    s.post(
        "/v1/topics/orders/events",
        json!({"id": "o-1", "type": "OrderPlaced", "data": {"n": 1}}),
    )
    .await;

    let d = fetch_one(&s, "billing").await;
    terminate(&s, "billing", &d, "card declined").await;
    let r = s.get("/v1/subscriptions/billing/dead-letters").await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let letters = r.json["dead_letters"].as_array().expect("letters").clone();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["reason"], "terminated");
    assert_eq!(letter["subscription"], "billing");
    assert_eq!(letter["attempts"], 1);
    assert_eq!(letter["event"]["id"], "o-1");
    assert_eq!(letter["event"]["topic"], "orders");
    assert_eq!(letter["event"]["data"], json!({"n": 1}));
    let id = letter["id"].as_u64().expect("id");
    assert_eq!(r.json["next_from"], id + 1);
    let r = s
        .get(&format!(
            "/v1/subscriptions/billing/dead-letters?from={}",
            id + 1
        ))
        .await;
    assert_eq!(r.json["dead_letters"], json!([]));
    let r = s
        .get(&format!("/v1/subscriptions/billing/dead-letters/{id}"))
        .await;
    assert_eq!(r.json["event"]["id"], "o-1");
    let r = s.get("/v1/subscriptions/billing/dead-letters/9999").await;
    r.assert_problem(404, 5002);
    assert_eq!(r.json["dead_letter_id"], 9999);
    assert_eq!(
        s.get("/v1/subscriptions/billing/stats").await.json["dead_letters"],
        1
    );

    // Redrive into the subscription: delivered again, from attempt 1.
    let r = s
        .post(
            "/v1/subscriptions/billing/dead-letters/redrive",
            json!({"all": true}),
        )
        .await;
    assert_eq!(r.json, json!({"redriven": 1}));
    let d = fetch_one(&s, "billing").await;
    assert_eq!(d["event"]["id"], "o-1");
    assert_eq!(d["attempt"], 1);
    assert_eq!(
        s.get("/v1/subscriptions/billing/dead-letters").await.json["dead_letters"],
        json!([])
    );

    // Redrive to a topic.
    terminate(&s, "billing", &d, "again").await;
    let id =
        s.get("/v1/subscriptions/billing/dead-letters").await.json["dead_letters"][0]["id"].clone();
    let r = s
        .post(
            "/v1/subscriptions/billing/dead-letters/redrive",
            json!({"ids": [id], "to_topic": "orders.retry"}),
        )
        .await;
    assert_eq!(r.json, json!({"redriven": 1}));
    let r = s.get("/v1/topics/orders.retry/partitions/0/events").await;
    assert_eq!(r.json["events"][0]["id"], "o-1");

    // Purge.
    s.post("/v1/topics/orders/events", json!({"type": "OrderPlaced"}))
        .await;
    let d = fetch_one(&s, "billing").await;
    terminate(&s, "billing", &d, "bad").await;
    let r = s
        .post(
            "/v1/subscriptions/billing/dead-letters/purge",
            json!({"all": true}),
        )
        .await;
    assert_eq!(r.json, json!({"purged": 1}));
    assert_eq!(
        s.get("/v1/subscriptions/billing/dead-letters").await.json["dead_letters"],
        json!([])
    );

    for bad in [
        json!({}),
        json!({"ids": [1], "all": true}),
        json!({"ids": []}),
    ] {
        s.post(
            "/v1/subscriptions/billing/dead-letters/redrive",
            bad.clone(),
        )
        .await
        .assert_problem(400, 1003);
        s.post("/v1/subscriptions/billing/dead-letters/purge", bad)
            .await
            .assert_problem(400, 1003);
    }
    s.get("/v1/subscriptions/nope/dead-letters")
        .await
        .assert_problem(404, 3001);
    s.stop().await.expect("clean stop");
}
