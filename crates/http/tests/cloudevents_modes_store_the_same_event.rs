//! The three CloudEvents HTTP modes — binary, structured and batched —
//! store the same event as plain JSON does: every attribute and extension
//! lands in its field, and reading it back gives the same JSON.

mod common;

use common::Server;
use serde_json::{Value, json};

/// The stored JSON with the fields that differ per publish removed.
fn attributes(mut v: Value) -> Value {
    let m = v.as_object_mut().expect("object");
    for field in ["id", "offset", "timestamp"] {
        m.remove(field).expect("field present");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_structured_and_batched_modes_store_the_same_event() {
    // Proves each mode's attribute mapping (including percent-decoding,
    // Eddy's extensions and other extensions as headers) by comparing the
    // stored events to the expected JSON and to each other.
    let s = Server::start().await;
    s.post("/v1/topics", json!({"name": "orders"})).await;

    let r = s
        .post_raw(
            "/v1/topics/orders/events",
            &[
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
                ("ce-id", "e-binary"),
                ("ce-source", "/shop"),
                ("ce-type", "OrderPlaced"),
                ("ce-subject", "order%201"),
                ("ce-time", "2026-05-01T12:34:56.789+02:00"),
                ("ce-dataschema", "https://schemas/order"),
                ("ce-key", "o-1"),
                ("ce-correlationid", "c-1"),
                ("ce-causationid", "x-1"),
                ("ce-traceparent", "00-abc-def-01"),
                ("ce-tenant", "acme"),
            ],
            r#"{"n":1,"items":["a"]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let structured = json!({
        "specversion": "1.0", "id": "e-structured", "source": "/shop", "type": "OrderPlaced",
        "subject": "order 1", "time": "2026-05-01T10:34:56.789Z",
        "dataschema": "https://schemas/order", "datacontenttype": "application/json",
        "data": {"n": 1, "items": ["a"]}, "key": "o-1", "correlationid": "c-1",
        "causationid": "x-1", "traceparent": "00-abc-def-01", "tenant": "acme"
    });
    let r = s
        .post_raw(
            "/v1/topics/orders/events",
            &[(
                "content-type",
                "application/cloudevents+json; charset=utf-8",
            )],
            structured.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let mut batch_event = structured.clone();
    batch_event["id"] = json!("e-batch-1");
    let mut second = structured.clone();
    second["id"] = json!("e-batch-2");
    let r = s
        .post_raw(
            "/v1/topics/orders/events",
            &[("content-type", "application/cloudevents-batch+json")],
            json!([batch_event, second]).to_string(),
        )
        .await;
    assert_eq!(
        r.json["results"].as_array().map(Vec::len),
        Some(2),
        "{:?}",
        r.json
    );
    let mut plain = structured.clone();
    let m = plain.as_object_mut().expect("object");
    m.remove("tenant");
    m.insert("id".into(), json!("e-plain"));
    m.insert("headers".into(), json!({"tenant": "acme"}));
    let r = s.post("/v1/topics/orders/events", plain).await;
    assert_eq!(r.status, 200, "{:?}", r.json);

    let r = s
        .get("/v1/topics/orders/partitions/0/events?from=beginning")
        .await;
    let events = r.json["events"].as_array().expect("events").clone();
    assert_eq!(events.len(), 5);
    let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "e-binary",
            "e-structured",
            "e-batch-1",
            "e-batch-2",
            "e-plain"
        ]
    );
    let expected = json!({
        "specversion": "1.0", "source": "/shop", "type": "OrderPlaced",
        "subject": "order 1", "time": "2026-05-01T10:34:56.789Z",
        "dataschema": "https://schemas/order", "datacontenttype": "application/json",
        "data": {"n": 1, "items": ["a"]}, "key": "o-1", "correlationid": "c-1",
        "causationid": "x-1", "traceparent": "00-abc-def-01", "headers": {"tenant": "acme"},
        "topic": "orders", "partition": 0
    });
    for e in events {
        assert_eq!(attributes(e.clone()), expected, "{e}");
    }
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_data_that_is_not_json_comes_back_as_base64() {
    // Proves a binary-mode body under a non-JSON type is stored as bytes
    // with that type, and read back as data_base64; a structured text
    // event's JSON string is its data.
    let s = Server::start().await;
    s.post("/v1/topics", json!({"name": "blobs"})).await;
    let r = s
        .post_raw(
            "/v1/topics/blobs/events",
            &[
                ("content-type", "application/octet-stream"),
                ("ce-specversion", "1.0"),
                ("ce-id", "b-1"),
                ("ce-source", "/s"),
                ("ce-type", "Blob"),
            ],
            vec![0u8, 1, 2, 255],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let text = json!({"specversion": "1.0", "id": "t-1", "source": "/s", "type": "Text",
        "datacontenttype": "text/plain", "data": "hello"});
    s.post_raw(
        "/v1/topics/blobs/events",
        &[("content-type", "application/cloudevents+json")],
        text.to_string(),
    )
    .await;
    let r = s.get("/v1/topics/blobs/partitions/0/events").await;
    let e = &r.json["events"][0];
    assert_eq!(e["datacontenttype"], "application/octet-stream");
    assert_eq!(e["data_base64"], "AAEC/w==");
    assert!(e.get("data").is_none());
    let e = &r.json["events"][1];
    assert_eq!(
        e["data_base64"], "aGVsbG8=",
        "the text itself, not its JSON quoting"
    );
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cloudevent_publishes_nothing() {
    // Proves a batch with one bad event (wrong specversion), a structured
    // event without a source, and a bad ce-time are 400 problems, and
    // nothing of them was stored.
    let s = Server::start().await;
    s.post("/v1/topics", json!({"name": "orders"})).await;
    let good = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "T"});
    let bad = json!({"specversion": "0.3", "id": "2", "source": "/s", "type": "T"});
    s.post_raw(
        "/v1/topics/orders/events",
        &[("content-type", "application/cloudevents-batch+json")],
        json!([good, bad]).to_string(),
    )
    .await
    .assert_problem(400, 1003);
    s.post_raw(
        "/v1/topics/orders/events",
        &[("content-type", "application/cloudevents+json")],
        json!({"specversion": "1.0", "id": "1", "type": "T"}).to_string(),
    )
    .await
    .assert_problem(400, 1003);
    s.post_raw(
        "/v1/topics/orders/events",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "T"),
            ("ce-time", "yesterday"),
        ],
        "x",
    )
    .await
    .assert_problem(400, 1003);
    let r = s.get("/v1/topics/orders/partitions/0/events").await;
    assert_eq!(r.json["events"], json!([]));
    assert_eq!(s.get("/v1/topics/orders/stats").await.json["published"], 0);
    s.stop().await.expect("clean stop");
}
