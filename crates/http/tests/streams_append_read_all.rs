//! The event store over HTTP: append with an expected version (a conflict
//! is 409 problem+json naming the actual version), read a stream both ways
//! by pages, settings and info, delete and re-create, `$all` with filters,
//! paging and a long poll answered by an append, and tokens guarding
//! streams as their `es.<category>` topics.

mod common;

use common::Server;
use eddy_auth::{Grant, Permission, TokenHash, Tokens};
use eddy_http::HttpConfig;
use serde_json::{Value, json};

fn versions(slice: &Value) -> Vec<u64> {
    slice["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["version"].as_u64().expect("version"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_read_settings_and_delete() {
    let s = Server::start().await;
    let r = s
        .post(
            "/v1/streams/order-1?expected=no_stream",
            json!([
                {"type": "OrderPlaced", "id": "e-0", "data": {"total": 3}},
                {"type": "ItemAdded", "data": {"sku": "a"}}
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        (
            &r.json["first_version"],
            &r.json["last_version"],
            &r.json["duplicate"]
        ),
        (&json!(0), &json!(1), &json!(false))
    );
    let position = r.json["position"].as_u64().expect("position");

    // A conflict: 409, WrongExpectedVersion with its fields; nothing stored.
    let r = s
        .post(
            "/v1/streams/order-1?expected=no_stream",
            json!({"type": "X"}),
        )
        .await;
    r.assert_problem(409, 7001);
    assert_eq!(r.json["title"], "WrongExpectedVersion");
    assert_eq!(
        (
            &r.json["stream"],
            &r.json["expected"],
            &r.json["actual_version"]
        ),
        (&json!("order-1"), &json!("no_stream"), &json!(1))
    );
    s.post("/v1/streams/order-1?expected=latest", json!({"type": "X"}))
        .await
        .assert_problem(400, 1003);
    // A retry of the first event by id is a duplicate success.
    let r = s
        .post(
            "/v1/streams/order-1?expected=no_stream",
            json!({"type": "OrderPlaced", "id": "e-0", "data": {"total": 3}}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.json["duplicate"]),
        (200, &json!(true))
    );
    for i in 2..5 {
        let r = s
            .post(
                &format!("/v1/streams/order-1?expected={}", i - 1),
                json!({"type": "ItemAdded", "data": i}),
            )
            .await;
        assert_eq!(r.json["first_version"], i, "{:?}", r.json);
    }

    // Reads: pages both ways, the event's JSON shape.
    let page = s.get("/v1/streams/order-1?max=2").await;
    assert_eq!(page.status, 200, "{:?}", page.json);
    assert_eq!(versions(&page.json), [0, 1]);
    assert_eq!(
        (&page.json["next"], &page.json["last_version"]),
        (&json!(2), &json!(4))
    );
    let e = &page.json["events"][0];
    assert_eq!(
        (
            &e["id"],
            &e["type"],
            &e["data"],
            &e["stream"],
            &e["position"]
        ),
        (
            &json!("e-0"),
            &json!("OrderPlaced"),
            &json!({"total": 3}),
            &json!("order-1"),
            &json!(position - 1)
        )
    );
    assert_eq!(e["specversion"], "1.0");
    assert!(e["timestamp"].is_i64());
    let back = s
        .get("/v1/streams/order-1?direction=backward&from=3&max=2")
        .await;
    assert_eq!(versions(&back.json), [3, 2]);
    assert_eq!(back.json["next"], 1);
    let end = s.get("/v1/streams/order-1?from=4").await;
    assert_eq!(
        (versions(&end.json), &end.json["next"]),
        (vec![4], &Value::Null)
    );
    let none = s.get("/v1/streams/order-404").await;
    assert_eq!(
        (versions(&none.json), &none.json["last_version"]),
        (vec![], &Value::Null)
    );
    s.get("/v1/streams/order-1?direction=up")
        .await
        .assert_problem(400, 1003);
    s.get("/v1/streams/order-1?max=0")
        .await
        .assert_problem(400, 1003);
    s.get("/v1/streams/bad%20name")
        .await
        .assert_problem(400, 1001);

    // Settings, then info.
    let put = s
        .send(
            s.http
                .put(s.url("/v1/streams/order-1/metadata"))
                .json(&json!({"max_count": 2})),
        )
        .await;
    assert_eq!(put.status, 204, "{:?}", put.json);
    assert_eq!(versions(&s.get("/v1/streams/order-1").await.json), [3, 4]);
    let info = s.get("/v1/streams/order-1/metadata").await;
    assert_eq!(
        info.json,
        json!({
            "stream": "order-1",
            "last_version": 4,
            "metadata": {"max_age_ms": null, "max_count": 2, "truncate_before": null},
            "deleted": false
        })
    );
    s.send(
        s.http
            .put(s.url("/v1/streams/order-1/metadata"))
            .json(&json!({"colour": "red"})),
    )
    .await
    .assert_problem(400, 1003);

    // Delete: a stale expected version is 409; then gone (404 again);
    // re-created numbering on.
    s.delete("/v1/streams/order-1?expected=2")
        .await
        .assert_problem(409, 7001);
    let r = s.delete("/v1/streams/order-1?expected=4").await;
    assert_eq!(r.status, 204, "{:?}", r.json);
    let r = s.delete("/v1/streams/order-1").await;
    r.assert_problem(404, 7002);
    assert_eq!(r.json["stream"], "order-1");
    let info = s.get("/v1/streams/order-1/metadata").await;
    assert_eq!(
        (&info.json["deleted"], &info.json["last_version"]),
        (&json!(true), &Value::Null)
    );
    let r = s
        .post(
            "/v1/streams/order-1?expected=no_stream",
            json!({"type": "Again"}),
        )
        .await;
    assert_eq!(r.json["first_version"], 5, "{:?}", r.json);

    // An event id of another stream: 409 EventIdInUse.
    let r = s
        .post("/v1/streams/order-2", json!({"type": "X", "id": "e-0"}))
        .await;
    r.assert_problem(409, 7003);
    assert_eq!(
        (&r.json["event_id"], &r.json["stream"], &r.json["version"]),
        (&json!("e-0"), &json!("order-1"), &json!(0))
    );
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_filters_pages_and_waits() {
    let s = Server::start().await;
    for (stream, ty) in [
        ("order-1", "OrderPlaced"),
        ("user-1", "UserJoined"),
        ("order-2", "OrderPlaced"),
        ("$snap-order-1", "Snapshot"),
    ] {
        let r = s
            .post(&format!("/v1/streams/{stream}"), json!({"type": ty}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
    }
    let streams = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["stream"].as_str().expect("stream").to_string())
            .collect()
    };
    let all = s.get("/v1/all").await;
    assert_eq!(streams(&all.json), ["order-1", "user-1", "order-2"]);
    assert_eq!(all.json["next"], all.json["head"]);
    let head = all.json["head"].as_u64().expect("head");
    assert_eq!(
        streams(&s.get("/v1/all?category=order").await.json),
        ["order-1", "order-2"]
    );
    assert_eq!(
        streams(&s.get("/v1/all?type=UserJoined").await.json),
        ["user-1"]
    );
    assert_eq!(
        streams(&s.get("/v1/all?prefix=%24").await.json),
        ["$snap-order-1"]
    );
    let first = s.get("/v1/all?max=2").await;
    assert_eq!(streams(&first.json), ["order-1", "user-1"]);
    let next = first.json["next"].as_u64().expect("next");
    let rest = s.get(&format!("/v1/all?from={next}")).await;
    assert_eq!(streams(&rest.json), ["order-2"]);
    s.get("/v1/all?category=order&type=X")
        .await
        .assert_problem(400, 1003);
    s.get("/v1/all?wait_ms=60001")
        .await
        .assert_problem(400, 1003);
    s.get(&format!("/v1/all?from={}", head + 1))
        .await
        .assert_problem(400, 1003);

    // A long poll: answered by the matching append made while it waits.
    let waiting = {
        let (http, url) = (
            s.http.clone(),
            s.url(&format!("/v1/all?from={head}&category=cart&wait_ms=30000")),
        );
        tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .expect("GET")
                .json::<Value>()
                .await
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    s.post("/v1/streams/user-2", json!({"type": "UserJoined"}))
        .await;
    s.post("/v1/streams/cart-1", json!({"type": "CartOpened"}))
        .await;
    let got = tokio::time::timeout(common::HANG_GUARD, waiting)
        .await
        .expect("the long poll is answered")
        .expect("task")
        .expect("JSON");
    assert_eq!(streams(&got), ["cart-1"]);
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_streams_as_their_category_topics() {
    let token = eddy_auth::generate_token().expect("token");
    let hash = TokenHash::of(&token);
    let s = Server::start_access(HttpConfig::default(), move |broker| {
        Tokens::new(broker)
            .with(
                "order-writer",
                hash,
                vec![Grant::new("es.order", &[Permission::Publish]).expect("grant")],
            )
            .expect("tokens")
    })
    .await;
    let post = |path: &str| {
        s.http
            .post(s.url(path))
            .bearer_auth(&token)
            .json(&json!({"type": "OrderPlaced"}))
    };
    let r = s.send(post("/v1/streams/order-1")).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let r = s.send(post("/v1/streams/user-1")).await;
    r.assert_problem(403, 6002);
    assert_eq!(
        r.json["detail"].as_str().map(|d| d.contains("es.user")),
        Some(true)
    );
    s.send(post("/v1/streams/$snap-order-1"))
        .await
        .assert_problem(403, 6002);
    let get = |path: &str| s.http.get(s.url(path)).bearer_auth(&token);
    s.send(get("/v1/streams/order-1"))
        .await
        .assert_problem(403, 6002);
    s.send(get("/v1/all")).await.assert_problem(403, 6002);
    s.send(
        s.http
            .delete(s.url("/v1/streams/order-1"))
            .bearer_auth(&token),
    )
    .await
    .assert_problem(403, 6002);
    s.stop().await.expect("clean stop");
}
