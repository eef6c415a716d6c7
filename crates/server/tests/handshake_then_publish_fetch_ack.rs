//! Proves: over a real TCP connection, the handshake answers with a
//! `Welcome` carrying the configured limits, and then create topic,
//! publish (a batch), create subscription (from the earliest event), fetch
//! and ack give the bus's results, in the protocol's response kinds.

mod support;

use eddy_bus::{Event, FetchOptions, StartAt, SubscriptionConfig, TopicConfig};
use eddy_proto::{PROTOCOL_VERSION, Request, Response};
use eddy_server::ServerConfig;
use support::{Client, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_then_publish_fetch_ack() {
    let config = ServerConfig {
        server_name: "eddy-test".into(),
        max_in_flight_requests: 7,
        max_frame_bytes: 1 << 20,
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;
    let (mut c, welcome) = Client::connect(server.addr).await;
    assert_eq!(welcome.version, PROTOCOL_VERSION);
    assert_eq!(welcome.server, "eddy-test");
    assert_eq!(welcome.max_frame_bytes, 1 << 20);
    assert_eq!(welcome.max_in_flight_requests, 7);

    let created = c
        .call(
            1,
            Request::CreateTopic {
                name: "orders".into(),
                config: TopicConfig::with_partitions(1),
            },
        )
        .await;
    assert!(
        matches!(&created, Response::TopicCreated(t) if t.name == "orders"),
        "{created:?}"
    );

    let events: Vec<Event> = (0..3)
        .map(|i| Event::new("OrderPlaced", format!("{{\"n\":{i}}}")).with_key("order-1"))
        .collect();
    let published = c
        .call(
            2,
            Request::Publish {
                topic: "orders".into(),
                events: events.clone(),
            },
        )
        .await;
    let Response::Published(published) = published else {
        panic!("expected Published, got {published:?}");
    };
    let offsets: Vec<u64> = published.iter().map(|p| p.offset.0).collect();
    assert_eq!(offsets, vec![0, 1, 2]);
    assert!(published.iter().all(|p| !p.duplicate));

    let sub = c
        .call(
            3,
            Request::CreateSubscription {
                name: "billing".into(),
                config: SubscriptionConfig::new("orders").start_at(StartAt::Earliest),
            },
        )
        .await;
    assert!(
        matches!(&sub, Response::SubscriptionCreated(s) if s.name == "billing"),
        "{sub:?}"
    );

    let fetched = c
        .call(
            4,
            Request::Fetch {
                subscription: "billing".into(),
                options: FetchOptions::now(10),
            },
        )
        .await;
    let Response::Deliveries(deliveries) = fetched else {
        panic!("expected Deliveries, got {fetched:?}");
    };
    assert_eq!(deliveries.len(), 3);
    for (d, sent) in deliveries.iter().zip(&events) {
        assert_eq!(d.event.event.data, sent.data);
        assert_eq!(d.event.event.key.as_deref(), Some("order-1"));
        assert_eq!(d.attempt, 1);
    }

    let ids = deliveries.iter().map(|d| d.ack_id.clone()).collect();
    let acked = c
        .call(
            5,
            Request::Ack {
                subscription: "billing".into(),
                ids,
            },
        )
        .await;
    assert_eq!(acked, Response::Acked(vec![Ok(()), Ok(()), Ok(())]));

    // Acking again fails per id, with the bus's error code (4001).
    let again = c
        .call(
            6,
            Request::Ack {
                subscription: "billing".into(),
                ids: vec![deliveries[0].ack_id.clone()],
            },
        )
        .await;
    let Response::Acked(outcomes) = again else {
        panic!("expected Acked, got {again:?}");
    };
    assert!(
        matches!(&outcomes[..], [Err(e)] if e.code == 4001),
        "{outcomes:?}"
    );

    // A bus error is an Error frame with the bus's code.
    let missing = c
        .call(
            7,
            Request::DescribeTopic {
                name: "nope".into(),
            },
        )
        .await;
    assert!(
        matches!(&missing, Response::Error(e) if e.code == 2001),
        "{missing:?}"
    );

    drop(c);
    server.shutdown().await;
}
