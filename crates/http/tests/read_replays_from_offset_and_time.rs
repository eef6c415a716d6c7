//! Replay without a subscription: reading a partition from the beginning,
//! an offset, the end, or a time (ms or RFC 3339), with `max` and
//! `next_offset` to page on.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_offset_time_and_end() {
    // Proves each `from` form returns the events the bus holds from that
    // position, `max` bounds the page, and `next_offset` continues it.
    let s = Server::start().await;
    s.post("/v1/topics", json!({"name": "audit"})).await;
    for i in 0..5 {
        let r = s
            .post(
                "/v1/topics/audit/events",
                json!({"type": "Audited", "data": i}),
            )
            .await;
        assert_eq!(r.json["results"][0]["offset"], i);
    }
    let r = s
        .get("/v1/topics/audit/partitions/0/events?from=offset:2&max=2")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let offsets: Vec<u64> = r.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["offset"].as_u64())
        .collect();
    assert_eq!(offsets, [2, 3]);
    assert_eq!(r.json["events"][0]["data"], 2);
    assert_eq!(r.json["next_offset"], 4);
    let r = s
        .get("/v1/topics/audit/partitions/0/events?from=offset:4")
        .await;
    assert_eq!(r.json["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.json["next_offset"], 5);

    let r = s.get("/v1/topics/audit/partitions/0/events?from=end").await;
    assert_eq!(r.json, json!({"events": [], "next_offset": 5}));

    let all = s.get("/v1/topics/audit/partitions/0/events").await.json["events"].clone();
    let stamps: Vec<i64> = all
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["timestamp"].as_i64())
        .collect();
    assert_eq!(stamps.len(), 5);
    let t = stamps[3];
    let first = stamps.iter().position(|&s| s >= t).expect("a match") as u64;
    let r = s
        .get(&format!(
            "/v1/topics/audit/partitions/0/events?from=time:{t}"
        ))
        .await;
    assert_eq!(r.json["events"][0]["offset"], first, "{:?}", r.json);
    let r = s
        .get("/v1/topics/audit/partitions/0/events?from=time:1970-01-01T00:00:00Z")
        .await;
    assert_eq!(r.json["events"].as_array().map(Vec::len), Some(5));
    let r = s
        .get("/v1/topics/audit/partitions/0/events?from=time:2999-01-01T00:00:00Z")
        .await;
    assert_eq!(r.json["events"], json!([]));
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reads_are_problems() {
    // Proves a missing partition is 404 (2003), an offset not held is 400
    // (5001), and bad query or path values are 400 (1003) or, above
    // `max_read_events`, 400 (1004).
    let s = Server::start().await;
    s.post("/v1/topics", json!({"name": "audit"})).await;
    s.get("/v1/topics/audit/partitions/3/events")
        .await
        .assert_problem(404, 2003);
    s.get("/v1/topics/audit/partitions/0/events?from=offset:99")
        .await
        .assert_problem(400, 5001);
    s.get("/v1/topics/nope/partitions/0/events")
        .await
        .assert_problem(404, 2001);
    for bad in [
        "from=soon",
        "from=offset:x",
        "max=abc",
        "max=0",
        "colour=red",
    ] {
        s.get(&format!("/v1/topics/audit/partitions/0/events?{bad}"))
            .await
            .assert_problem(400, 1003);
    }
    s.get("/v1/topics/audit/partitions/x/events")
        .await
        .assert_problem(400, 1003);
    s.get("/v1/topics/audit/partitions/0/events?max=10001")
        .await
        .assert_problem(400, 1004);
    s.stop().await.expect("clean stop");
}
