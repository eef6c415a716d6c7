//! Proves: with `max_in_flight_requests` = 1 and a push stream open (it
//! counts as in flight), one more request gets error 8013 and the
//! connection stays usable; reusing an id in flight is error 8014 and
//! closes the connection; a connection over `max_connections` gets an
//! `Error` (1004) and is closed; and shutdown ends open push streams with
//! a `StreamEnd` carrying `Unavailable` (9005), then closes the
//! connection and returns.

mod support;

use eddy_bus::{StartAt, SubscriptionConfig, TopicConfig};
use eddy_proto::{Request, Response};
use eddy_server::ServerConfig;
use support::{Client, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_limit_and_shutdown() {
    let config = ServerConfig {
        max_in_flight_requests: 1,
        max_connections: 2,
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;
    let (mut c, welcome) = Client::connect(server.addr).await;
    assert_eq!(welcome.max_in_flight_requests, 1);
    let topic = Request::CreateTopic {
        name: "quiet".into(),
        config: TopicConfig::with_partitions(1),
    };
    assert!(matches!(c.call(1, topic).await, Response::TopicCreated(_)));
    let sub = Request::CreateSubscription {
        name: "idle".into(),
        config: SubscriptionConfig::new("quiet").start_at(StartAt::Earliest),
    };
    assert!(matches!(
        c.call(2, sub).await,
        Response::SubscriptionCreated(_)
    ));

    // An open stream on an empty topic holds the only slot.
    let subscribe = Request::Subscribe {
        subscription: "idle".into(),
        credit: 1,
    };
    c.send(10, subscribe.clone()).await;
    let refused = c.call(11, Request::Ping).await;
    assert!(
        matches!(&refused, Response::Error(e) if e.code == 8013),
        "{refused:?}"
    );

    // Unsubscribing frees it.
    c.send(10, Request::Unsubscribe).await;
    assert_eq!(
        c.recv_response().await,
        (10, Response::StreamEnd { error: None })
    );
    assert_eq!(c.call(12, Request::Ping).await, Response::Pong);

    // A third connection is one too many.
    let (mut other, _) = Client::connect(server.addr).await;
    let mut extra = Client::connect_raw(server.addr).await;
    let (id, response) = extra.recv_response().await;
    assert_eq!(id, 0);
    assert!(
        matches!(&response, Response::Error(e) if e.code == 1004),
        "{response:?}"
    );
    assert!(extra.recv().await.is_none());
    drop(extra);

    // Reusing the id of an open stream closes the connection.
    other.send(20, subscribe.clone()).await;
    other.send(20, Request::Ping).await;
    let (id, response) = other.recv_response().await;
    assert_eq!(id, 20);
    assert!(
        matches!(&response, Response::Error(e) if e.code == 8014),
        "{response:?}"
    );
    assert!(other.recv().await.is_none());

    // Shutdown ends the open stream, then the connection.
    c.send(30, subscribe).await;
    assert_eq!(
        c.call(31, Request::Ping).await,
        Response::Error(eddy_proto::WireError::from(
            &eddy_proto::ProtoError::TooManyInFlight { limit: 1 }
        ))
    );
    let shutdown = tokio::spawn(server.shutdown());
    let (id, end) = c.recv_response().await;
    assert_eq!(id, 30);
    assert!(
        matches!(&end, Response::StreamEnd { error: Some(e) } if e.code == 9005),
        "{end:?}"
    );
    assert!(c.recv().await.is_none());
    tokio::time::timeout(support::HANG_GUARD, shutdown)
        .await
        .expect("shutdown in time")
        .expect("shutdown task");
}
