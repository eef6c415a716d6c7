//! Proves: a push stream opened with credit 2 delivers exactly 2 events
//! and no more until the client grants credit (checked after a `Ping`
//! round trip: the server would have pushed by then if it were going to,
//! and a correct server never will); each `Credit` lets exactly that many
//! more through; pushed deliveries ack like fetched ones; `Unsubscribe`
//! ends the stream with a `StreamEnd` without error.

mod support;

use eddy_bus::{AckId, Event, StartAt, SubscriptionConfig, TopicConfig};
use eddy_proto::{Request, Response};
use eddy_server::ServerConfig;
use support::{Client, Server};

const STREAM: u64 = 10;

/// Reads frames until the `Pong` of a fresh `Ping`, collecting the ack ids
/// of deliveries pushed on the stream meanwhile.
async fn deliveries_until_pong(c: &mut Client, ping_id: u64, got: &mut Vec<AckId>) {
    c.send(ping_id, Request::Ping).await;
    loop {
        match c.recv_response().await {
            (id, Response::Pong) if id == ping_id => return,
            (STREAM, Response::Deliver(ds)) => got.extend(ds.into_iter().map(|d| d.ack_id)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads frames until `want` deliveries have been pushed in all.
async fn deliveries_until(c: &mut Client, want: usize, got: &mut Vec<AckId>) {
    while got.len() < want {
        match c.recv_response().await {
            (STREAM, Response::Deliver(ds)) => got.extend(ds.into_iter().map(|d| d.ack_id)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stays_within_credit() {
    let server = Server::start(ServerConfig::default()).await;
    let (mut c, _) = Client::connect(server.addr).await;
    let topic = Request::CreateTopic {
        name: "pushed".into(),
        config: TopicConfig::with_partitions(1),
    };
    assert!(matches!(c.call(1, topic).await, Response::TopicCreated(_)));
    let events = (0..5).map(|i| Event::new("Tick", format!("{i}"))).collect();
    let publish = Request::Publish {
        topic: "pushed".into(),
        events,
    };
    assert!(matches!(c.call(2, publish).await, Response::Published(_)));
    let sub = Request::CreateSubscription {
        name: "watcher".into(),
        config: SubscriptionConfig::new("pushed").start_at(StartAt::Earliest),
    };
    assert!(matches!(
        c.call(3, sub).await,
        Response::SubscriptionCreated(_)
    ));

    let subscribe = Request::Subscribe {
        subscription: "watcher".into(),
        credit: 2,
    };
    c.send(STREAM, subscribe).await;
    let mut got = Vec::new();
    deliveries_until(&mut c, 2, &mut got).await;
    deliveries_until_pong(&mut c, 100, &mut got).await;
    assert_eq!(got.len(), 2, "no delivery beyond the credit");

    c.send(STREAM, Request::Credit { credit: 2 }).await;
    deliveries_until(&mut c, 4, &mut got).await;
    deliveries_until_pong(&mut c, 101, &mut got).await;
    assert_eq!(got.len(), 4, "exactly the granted credit more");

    // More credit than events left: the last one comes.
    c.send(STREAM, Request::Credit { credit: 5 }).await;
    deliveries_until(&mut c, 5, &mut got).await;
    let offsets: Vec<u64> = got.iter().map(|id| id.offset.0).collect();
    assert_eq!(
        offsets,
        vec![0, 1, 2, 3, 4],
        "each event pushed once, in order"
    );

    // Pushed deliveries are settled like fetched ones. The stream may push
    // nothing more (no events left), so the next frame is the Acked.
    let ack = Request::Ack {
        subscription: "watcher".into(),
        ids: got.clone(),
    };
    assert_eq!(c.call(4, ack).await, Response::Acked(vec![Ok(()); 5]));

    c.send(STREAM, Request::Unsubscribe).await;
    let (id, end) = c.recv_response().await;
    assert_eq!(id, STREAM);
    assert_eq!(end, Response::StreamEnd { error: None });

    // The stream's id is free again afterwards.
    assert_eq!(c.call(STREAM, Request::Ping).await, Response::Pong);
    drop(c);
    server.shutdown().await;
}
