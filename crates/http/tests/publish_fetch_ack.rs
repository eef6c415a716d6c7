//! Plain JSON over HTTP end to end: topics and subscriptions are managed,
//! events published one by one and in batches (ids generated, duplicates
//! detected), fetched with leases, acked with per-id outcomes, nacked,
//! extended, and replayed by a seek.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_subscriptions_are_managed() {
    // Proves create (201) / list / describe / conflict (409, 2002) /
    // delete (204) / not found (404, 2001 and 3001) for both resources.
    let s = Server::start().await;
    let r = s
        .post(
            "/v1/topics",
            json!({"name": "orders.placed", "partitions": 2,
            "retention": {"events_max": 1000}, "dedup": {"age_ms": 5000}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["name"], "orders.placed");
    assert_eq!(r.json["config"]["partitions"], 2);
    assert_eq!(r.json["config"]["retention"]["events_max"], 1000);
    assert_eq!(
        r.json["config"]["dedup"],
        json!({"age_ms": 5000, "entries_max": 100_000})
    );
    assert_eq!(r.json["partitions"].as_array().map(Vec::len), Some(2));
    s.post("/v1/topics", json!({"name": "orders.placed"}))
        .await
        .assert_problem(409, 2002);
    let r = s.get("/v1/topics").await;
    let names: Vec<&str> = r.json["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"orders.placed"), "{names:?}");
    assert_eq!(s.get("/v1/topics/orders.placed").await.status, 200);

    let r = s
        .post(
            "/v1/subscriptions",
            json!({"name": "payments", "filter": "orders.*",
            "start": {"offset": 0}, "mode": "ordered", "ack_wait_ms": 5000,
            "retry": {"max_deliveries": 3, "backoff": {"kind": "fixed", "delay_ms": 10}},
            "max_ack_pending": 50}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let c = &r.json["config"];
    assert_eq!(
        (c["mode"].clone(), c["start"].clone()),
        (json!("ordered"), json!({"offset": 0}))
    );
    assert_eq!(
        c["retry"]["backoff"],
        json!({"kind": "fixed", "delay_ms": 10})
    );
    assert_eq!(r.json["topics"], json!(["orders.placed"]));
    s.post(
        "/v1/subscriptions",
        json!({"name": "payments", "filter": "x"}),
    )
    .await
    .assert_problem(409, 3002);
    let r = s.get("/v1/subscriptions").await;
    assert_eq!(r.json["subscriptions"][0]["name"], "payments");
    assert_eq!(
        s.get("/v1/subscriptions/payments").await.json["config"]["max_ack_pending"],
        50
    );

    assert_eq!(s.delete("/v1/subscriptions/payments").await.status, 204);
    s.get("/v1/subscriptions/payments")
        .await
        .assert_problem(404, 3001);
    assert_eq!(s.delete("/v1/topics/orders.placed").await.status, 204);
    s.get("/v1/topics/orders.placed")
        .await
        .assert_problem(404, 2001);
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_plain_json_then_fetch_and_ack() {
    // Proves a plain event gets a generated id, the default source and a
    // JSON content type; a batch is published in order; a repeated id is a
    // duplicate; fetch hands out leased deliveries in the StoredEvent
    // shape; ack gives one outcome per id; stats count it all.
    let s = Server::start().await;
    s.topic_and_sub("orders", "billing").await;
    let r = s
        .post(
            "/v1/topics/orders/events",
            json!({"type": "OrderPlaced",
            "data": {"id": 1}, "key": "o-1", "headers": {"tenant": "acme"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        r.json,
        json!({"results": [{"partition": 0, "offset": 0, "duplicate": false}]})
    );
    let r = s
        .post(
            "/v1/topics/orders/events",
            json!([
                {"id": "b1", "type": "OrderPaid", "source": "/billing", "data_base64": "AAEC"},
                {"id": "b2", "type": "OrderShipped", "time": "2026-01-01T00:00:00Z"},
            ]),
        )
        .await;
    assert_eq!(r.json["results"][0]["offset"], 1);
    assert_eq!(r.json["results"][1]["offset"], 2);
    let r = s
        .post(
            "/v1/topics/orders/events",
            json!({"id": "b1", "type": "OrderPaid"}),
        )
        .await;
    assert_eq!(
        r.json["results"][0],
        json!({"partition": 0, "offset": 1, "duplicate": true})
    );

    let r = s
        .post("/v1/subscriptions/billing/fetch", json!({"max": 10}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let deliveries = r.json["deliveries"].as_array().expect("deliveries").clone();
    assert_eq!(deliveries.len(), 3);
    let first = &deliveries[0];
    assert_eq!(first["attempt"], 1);
    assert!(first["lease_deadline_ms"].as_i64().expect("deadline") > 0);
    let e = &first["event"];
    assert!(
        !e["id"].as_str().expect("id").is_empty(),
        "an id was generated"
    );
    assert_eq!(e["source"], "/eddy/http");
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["datacontenttype"], "application/json");
    assert_eq!(e["data"], json!({"id": 1}));
    assert_eq!(e["key"], "o-1");
    assert_eq!(e["headers"], json!({"tenant": "acme"}));
    assert_eq!(
        (
            e["topic"].clone(),
            e["partition"].clone(),
            e["offset"].clone()
        ),
        (json!("orders"), json!(0), json!(0))
    );
    assert!(e["timestamp"].as_i64().expect("timestamp") > 0);
    assert_eq!(deliveries[1]["event"]["data_base64"], "AAEC");
    assert_eq!(deliveries[1]["event"]["source"], "/billing");
    assert_eq!(deliveries[2]["event"]["time"], "2026-01-01T00:00:00.000Z");

    let mut ids: Vec<String> = deliveries
        .iter()
        .map(|d| d["ack_id"].as_str().expect("ack id").to_string())
        .collect();
    ids.push("not-an-ack-id".into());
    ids.push("orders/0/99/1".into());
    let r = s
        .post("/v1/subscriptions/billing/ack", json!({"ack_ids": ids}))
        .await;
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["ack_id"], ids[i].as_str());
        assert_eq!(result["ok"], i < 3, "{result}");
    }
    assert_eq!(results[3]["error"]["code"], 1003);
    assert!(results[4]["error"]["code"].as_u64().expect("code") >= 4001);
    let r = s
        .post(
            "/v1/subscriptions/billing/ack",
            json!({"ack_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(r.json["results"][0]["error"]["title"], "AlreadyAcked");
    let r = s.post_raw("/v1/subscriptions/billing/fetch", &[], "").await;
    assert_eq!(r.json, json!({"deliveries": []}), "an empty body is {{}}");

    let r = s.get("/v1/topics/orders/stats").await;
    assert_eq!(
        (r.json["published"].clone(), r.json["duplicates"].clone()),
        (json!(3), json!(1))
    );
    let r = s.get("/v1/subscriptions/billing/stats").await;
    assert_eq!(
        (r.json["delivered"].clone(), r.json["acked"].clone()),
        (json!(3), json!(3))
    );
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_extend_and_seek() {
    // Proves extend moves the lease forward, nack redelivers with the next
    // attempt, terminate and nack refuse a settled delivery (409), and a
    // seek back to the start replays acked events.
    let s = Server::start().await;
    s.topic_and_sub("jobs", "workers").await;
    s.post("/v1/topics/jobs/events", json!({"type": "JobQueued"}))
        .await;
    let r = s.post("/v1/subscriptions/workers/fetch", json!({})).await;
    let d = r.json["deliveries"][0].clone();
    let ack_id = d["ack_id"].as_str().expect("ack id").to_string();
    let r = s
        .post(
            "/v1/subscriptions/workers/extend",
            json!({"ack_id": ack_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(r.json["lease_deadline_ms"].as_i64() >= d["lease_deadline_ms"].as_i64());
    let r = s
        .post(
            "/v1/subscriptions/workers/nack",
            json!({"ack_id": ack_id, "delay_ms": 0, "error": "busy"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json);
    s.post("/v1/subscriptions/workers/nack", json!({"ack_id": ack_id}))
        .await
        .assert_problem(409, 4003);
    let r = s
        .post(
            "/v1/subscriptions/workers/fetch",
            json!({"max": 1, "wait_ms": 10_000}),
        )
        .await;
    let d = r.json["deliveries"][0].clone();
    assert_eq!(d["attempt"], 2, "{:?}", r.json);
    let r = s
        .post(
            "/v1/subscriptions/workers/ack",
            json!({"ack_ids": [d["ack_id"]]}),
        )
        .await;
    assert_eq!(r.json["results"][0]["ok"], true);
    s.post(
        "/v1/subscriptions/workers/terminate",
        json!({"ack_id": d["ack_id"], "reason": "x"}),
    )
    .await
    .assert_problem(409, 4001);

    let r = s
        .post("/v1/subscriptions/workers/seek", json!({"to": "earliest"}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json);
    let r = s
        .post("/v1/subscriptions/workers/fetch", json!({"max": 5}))
        .await;
    assert_eq!(r.json["deliveries"][0]["event"]["offset"], 0, "replayed");
    s.post(
        "/v1/subscriptions/workers/seek",
        json!({"to": {"time": "not a time"}}),
    )
    .await
    .assert_problem(400, 1003);
    s.post("/v1/subscriptions/workers/fetch", json!({"max": 0}))
        .await
        .assert_problem(400, 1003);
    s.stop().await.expect("clean stop");
}
