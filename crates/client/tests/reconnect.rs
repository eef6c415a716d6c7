//! Connection loss: a request in flight fails with `Unavailable`, and the
//! next call connects again (to a server on the same address).

use std::time::Duration;

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Bus, BusError, FetchOptions, SubscriptionConfig, TopicConfig};
use eddy_client::{Client, ClientConfig};
use eddy_server::{ServerConfig, serve_native};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_fails_waiters_then_reconnects() {
    // Proves: a fetch waiting on the server fails with `Unavailable` when
    // the server goes away, and the next call reconnects on demand.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(dir.path(), config.clone()).expect("open");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_native(
        listener,
        broker.clone(),
        ServerConfig {
            shutdown_grace_ms: 0,
            ..ServerConfig::default()
        },
        async {
            let _ = stopped.await;
        },
    ));
    let client = Client::connect(addr, ClientConfig::default())
        .await
        .expect("connect");
    client
        .create_topic("t", TopicConfig::with_partitions(1))
        .await
        .expect("topic");
    client
        .create_subscription("s", SubscriptionConfig::new("t"))
        .await
        .expect("subscription");
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .fetch(
                    "s",
                    FetchOptions {
                        max: 1,
                        wait_ms: 30_000,
                    },
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    let _ = server.await;
    let result = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("fails in time")
        .expect("task");
    assert!(
        matches!(result, Err(BusError::Unavailable(_))),
        "{result:?}"
    );

    // A new server on the same address: the next call reconnects.
    let listener = TcpListener::bind(addr).await.expect("rebind");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_native(
        listener,
        broker.clone(),
        ServerConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let topics = client.list_topics().await.expect("reconnected");
    // (The broker also lists its own `$sys.alerts` topic.)
    assert!(topics.iter().any(|t| t.name == "t"), "{topics:?}");
    client.close().await;
    let _ = stop.send(());
    let _ = server.await;
    broker.close().expect("close");
}
