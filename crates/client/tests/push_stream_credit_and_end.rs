//! Push streams over the wire, against an in-process `eddy-server` on
//! 127.0.0.1 serving a real broker (manual clock, background timer off):
//! credit bounds what is pushed and comes back when a delivery is dropped,
//! dropping the stream ends it on the server, and a server shutdown, a
//! closed connection or a missing subscription end the stream with an
//! error instead of leaving it hanging.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eddy_broker::{Broker, BrokerConfig, Clock, ManualClock};
use eddy_bus::{
    Bus, BusError, DeliveryStream, Event, FetchOptions, PushDelivery, PushOptions, StartAt,
    SubscriptionConfig, TopicConfig,
};
use eddy_client::{Client, ClientConfig};
use eddy_server::{ServerConfig, serve_native};
use futures_util::{FutureExt, StreamExt};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A guard against a hang, not a timing assertion: everything awaited
/// under it finishes at once when the code is right.
const HANG_GUARD: Duration = Duration::from_secs(20);

const ACK_WAIT_MS: u64 = 5_000;

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still pending after {HANG_GUARD:?}"))
}

/// A server on a broker, and a client connected to it.
struct Served {
    client: Client,
    clock: Arc<ManualClock>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<eddy_server::Result<()>>,
    broker: Broker,
    _dir: TempDir,
}

impl Served {
    async fn start(config: ServerConfig) -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_767_225_600_000));
        let broker_config = BrokerConfig {
            timer_interval_ms: None,
            ..BrokerConfig::default()
        };
        let broker =
            Broker::open_with_clock(dir.path(), broker_config, clock.clone()).expect("open");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_native(listener, broker.clone(), config, async {
            let _ = stopped.await;
        }));
        let client = Client::connect(addr, ClientConfig::default())
            .await
            .expect("connect");
        Served {
            client,
            clock,
            addr,
            stop: Some(stop),
            task,
            broker,
            _dir: dir,
        }
    }

    /// Topic `t` (one partition) with `events` events, and subscription
    /// `s` on it from the earliest.
    async fn with_events(&self, events: usize) {
        let c = &self.client;
        c.create_topic("t", TopicConfig::with_partitions(1))
            .await
            .expect("topic");
        let config = SubscriptionConfig::new("t")
            .start_at(StartAt::Earliest)
            .ack_wait_ms(ACK_WAIT_MS);
        c.create_subscription("s", config)
            .await
            .expect("subscription");
        let batch = (0..events)
            .map(|i| Event::new("Tick", format!("{i}")))
            .collect();
        c.publish_batch("t", batch).await.expect("publish");
    }

    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("the server's shutdown", self.task)
            .await
            .expect("server task")
            .expect("server result");
        self.broker.close().expect("close");
    }
}

fn credit(credit: u32) -> PushOptions {
    PushOptions {
        credit,
        wait_ms: 1000,
    }
}

async fn next_delivery(stream: &mut DeliveryStream) -> PushDelivery {
    within("the next push delivery", stream.next())
        .await
        .expect("the stream goes on")
        .expect("a delivery")
}

fn offsets<'a>(pushed: impl IntoIterator<Item = &'a PushDelivery>) -> Vec<u64> {
    pushed
        .into_iter()
        .map(|p| p.delivery.event.offset.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_bounds_deliveries_until_they_are_dropped() {
    // Proves: with credit 4 and 10 events, exactly 4 are pushed while all 4
    // are held — the server has leased exactly 4, and no fifth reached the
    // client before a later response on the same connection (frames are
    // routed in order); acking and dropping one lets exactly one more
    // through; dropping four at once (their credit granted back together)
    // lets exactly four more through.
    let served = Served::start(ServerConfig::default()).await;
    served.with_events(10).await;
    let client = &served.client;
    let mut stream = client.subscribe("s", credit(4));
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(next_delivery(&mut stream).await);
    }
    assert_eq!(offsets(&held), [0, 1, 2, 3]);
    let stats = client.subscription_stats("s").await.expect("stats");
    assert_eq!(stats.in_flight, 4, "leased for the stream: {stats:?}");
    assert_eq!(stats.delivered, 4, "{stats:?}");
    assert!(
        stream.next().now_or_never().is_none(),
        "a fifth delivery while 4 credits are held"
    );

    let first = held.remove(0);
    client.ack("s", &first.delivery.ack_id).await.expect("ack");
    drop(first);
    held.push(next_delivery(&mut stream).await);
    assert_eq!(
        offsets(&held),
        [1, 2, 3, 4],
        "the freed credit takes one more"
    );
    let stats = client.subscription_stats("s").await.expect("stats");
    assert_eq!(
        (stats.in_flight, stats.delivered, stats.acked),
        (4, 5, 1),
        "{stats:?}"
    );
    assert!(
        stream.next().now_or_never().is_none(),
        "a sixth delivery after one credit came back"
    );

    // Dropping unsettled deliveries returns their credit too (their leases
    // stay): four more come, and no more.
    held.clear();
    for _ in 0..4 {
        held.push(next_delivery(&mut stream).await);
    }
    assert_eq!(offsets(&held), [5, 6, 7, 8]);
    let stats = client.subscription_stats("s").await.expect("stats");
    assert_eq!((stats.in_flight, stats.delivered), (8, 9), "{stats:?}");
    assert!(
        stream.next().now_or_never().is_none(),
        "more than the 4 credits dropped came back"
    );
    drop((held, stream));
    served.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_ends_it_on_the_server() {
    // Proves: dropping a push stream sends `Unsubscribe` and the server
    // ends its stream: with one request in flight allowed per connection,
    // the stream's connection can make another call only once the server's
    // `StreamEnd` has freed the stream's slot. The ended stream leases
    // nothing more — its credit returned after the end goes nowhere, and a
    // fetch gets every event it did not take — while the deliveries it
    // pushed keep their leases until they run out (then they come again).
    let served = Served::start(ServerConfig {
        max_in_flight_requests: 1,
        ..ServerConfig::default()
    })
    .await;
    served.with_events(10).await;
    let watcher = &served.client;
    let subscriber = Client::connect(served.addr, ClientConfig::default())
        .await
        .expect("connect");
    let mut stream = subscriber.subscribe("s", credit(4));
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(next_delivery(&mut stream).await);
    }
    let deadline_ms = held[3].delivery.lease_deadline_ms;
    drop(stream);
    let described = within(
        "a call on the connection of the dropped stream",
        subscriber.describe_subscription("s"),
    )
    .await
    .expect("describe");
    assert_eq!(described.name, "s");
    drop(held);

    let stats = watcher.subscription_stats("s").await.expect("stats");
    assert_eq!(
        (stats.in_flight, stats.delivered),
        (4, 4),
        "the pushed deliveries keep their leases, nothing more was leased: {stats:?}"
    );
    let rest = watcher
        .fetch("s", FetchOptions::now(100))
        .await
        .expect("fetch");
    let rest_offsets: Vec<u64> = rest.iter().map(|d| d.event.offset.0).collect();
    assert_eq!(rest_offsets, [4, 5, 6, 7, 8, 9]);
    let ids: Vec<_> = rest.iter().map(|d| d.ack_id.clone()).collect();
    for outcome in watcher.ack_all("s", &ids).await.expect("ack") {
        outcome.expect("acked");
    }

    // A run-out lease is a failed attempt: the event comes again after the
    // first retry backoff (1 s by default).
    let now_ms = served.clock.now_ms();
    served.clock.advance_ms(deadline_ms + 1_000 - now_ms);
    let again = watcher
        .fetch("s", FetchOptions::now(100))
        .await
        .expect("fetch");
    let again: Vec<(u64, u32)> = again
        .iter()
        .map(|d| (d.event.offset.0, d.attempt))
        .collect();
    assert_eq!(
        again,
        [(0, 2), (1, 2), (2, 2), (3, 2)],
        "the unsettled pushed deliveries come again once their leases run out"
    );
    subscriber.close().await;
    served.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_ends_the_stream_with_an_error() {
    // Proves: when the server shuts down, an open push stream (here
    // waiting for events, holding one delivery) ends with `Unavailable`
    // and then ends for good, instead of waiting forever.
    let served = Served::start(ServerConfig::default()).await;
    served.with_events(1).await;
    let mut stream = served.client.subscribe("s", credit(2));
    let held = next_delivery(&mut stream).await;
    let client = served.client.clone();
    let stopping = tokio::spawn(served.shut_down());
    let end = within("the stream's end", stream.next()).await;
    assert!(
        matches!(end, Some(Err(BusError::Unavailable(_)))),
        "the stream ends with Unavailable: {end:?}"
    );
    assert!(
        within("the stream after its end", stream.next())
            .await
            .is_none(),
        "nothing after the end"
    );
    within("the server's shutdown", stopping)
        .await
        .expect("shutdown task");
    drop((held, client));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connection_ends_the_stream_and_a_new_one_can_start() {
    // Proves: a stream does not survive its connection: `Client::close`
    // ends it with `Unavailable` (saying to subscribe again); subscribing
    // again connects anew and pushes what was not yet taken.
    let served = Served::start(ServerConfig::default()).await;
    served.with_events(2).await;
    let client = &served.client;
    let mut stream = client.subscribe("s", credit(1));
    let first = next_delivery(&mut stream).await;
    assert_eq!(first.delivery.event.offset.0, 0);
    client.close().await;
    match within("the stream's end", stream.next()).await {
        Some(Err(BusError::Unavailable(why))) => {
            assert!(why.contains("subscribe again"), "{why}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(stream.next().await.is_none(), "nothing after the end");
    // Its delivery is still leased, and can be settled on the new connection.
    client.ack("s", &first.delivery.ack_id).await.expect("ack");
    drop(first);

    let mut again = client.subscribe("s", credit(1));
    let second = next_delivery(&mut again).await;
    assert_eq!(second.delivery.event.offset.0, 1);
    drop((second, again));
    served.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_on_a_missing_subscription_ends_with_its_error() {
    // Proves: a `Subscribe` the server refuses ends the stream with the
    // bus's error (here `SubscriptionNotFound`) and frees its in-flight
    // slot (with one request allowed, a later call goes through); a credit
    // of 0 is refused before anything is sent.
    let served = Served::start(ServerConfig {
        max_in_flight_requests: 1,
        ..ServerConfig::default()
    })
    .await;
    let client = &served.client;
    let mut stream = client.subscribe("nope", credit(4));
    let end = within("the refused stream", stream.next()).await;
    assert!(
        matches!(&end, Some(Err(BusError::SubscriptionNotFound(s))) if s == "nope"),
        "{end:?}"
    );
    assert!(stream.next().await.is_none(), "nothing after the end");
    within("a call after the refused stream", client.list_topics())
        .await
        .expect("list topics");

    let mut refused = client.subscribe("nope", credit(0));
    let first = refused.next().await;
    assert!(
        matches!(
            first,
            Some(Err(BusError::InvalidArgument { what: "credit", .. }))
        ),
        "{first:?}"
    );
    assert!(refused.next().await.is_none());
    served.shut_down().await;
}
