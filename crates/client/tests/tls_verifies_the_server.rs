//! TLS: the client does the TLS handshake before its `Hello`, and trusts
//! only the roots it is given, for the server name it is given (by default
//! the host it connects to). Against an in-process `eddy-server` whose
//! listener wraps each connection in TLS (`eddy_server::tls_acceptor`),
//! with a self-signed certificate for "localhost" made by rcgen.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use eddy_auth::Open;
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{
    Bus, BusError, Event, FetchOptions, PushOptions, StartAt, SubscriptionConfig, TopicConfig,
};
use eddy_client::{Client, ClientConfig, ClientTls};
use eddy_server::{Listening, ServerConfig, serve_native_with, tls_acceptor};
use futures_util::StreamExt;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A guard against a hang, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still pending after {HANG_GUARD:?}"))
}

/// A self-signed certificate for "localhost": (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A broker served over TLS with the certificate `cert_pem`.
struct TlsServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<eddy_server::Result<()>>,
    broker: Broker,
    _dir: TempDir,
}

impl TlsServer {
    async fn start(cert_pem: &str, key_pem: &str) -> TlsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = BrokerConfig {
            timer_interval_ms: None,
            ..BrokerConfig::default()
        };
        let broker = Broker::open(dir.path(), config).expect("open");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let listening = Listening {
            tls: Some(tls_acceptor(cert_pem.as_bytes(), key_pem.as_bytes()).expect("acceptor")),
            on_connection: None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_native_with(
            listener,
            Open(broker.clone()),
            listening,
            ServerConfig::default(),
            async {
                let _ = stopped.await;
            },
        ));
        TlsServer {
            addr,
            stop,
            task,
            broker,
            _dir: dir,
        }
    }

    async fn shut_down(self) {
        let _ = self.stop.send(());
        within("the server's shutdown", self.task)
            .await
            .expect("server task")
            .expect("server result");
        self.broker.close().expect("close");
    }
}

fn tls_config(tls: ClientTls) -> ClientConfig {
    ClientConfig {
        tls: Some(tls),
        connect_timeout_ms: 5_000,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_certificate_carries_the_protocol() {
    // Proves: with the server's certificate as root and the server name it
    // was issued for, the client connects over TLS and publish, fetch, ack
    // and a push stream work; connecting by the name "localhost" needs no
    // server name set (it defaults to the host of the address).
    let (cert, key) = self_signed();
    let server = TlsServer::start(&cert, &key).await;
    let roots = ClientTls::from_pem(cert.as_bytes()).expect("roots");
    let client = within(
        "connecting over TLS",
        Client::connect(
            server.addr,
            tls_config(roots.clone().with_server_name("localhost")),
        ),
    )
    .await
    .expect("connect over TLS");

    client
        .create_topic("t", TopicConfig::with_partitions(1))
        .await
        .expect("topic");
    let sub = SubscriptionConfig::new("t").start_at(StartAt::Earliest);
    client.create_subscription("s", sub).await.expect("sub");
    client
        .publish("t", Event::new("Tick", "0").with_id("e0"))
        .await
        .expect("publish");
    let got = client
        .fetch("s", FetchOptions::now(10))
        .await
        .expect("fetch");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.event.id, "e0");
    client.ack("s", &got[0].ack_id).await.expect("ack");

    client
        .publish("t", Event::new("Tick", "1").with_id("e1"))
        .await
        .expect("publish");
    let mut stream = client.subscribe(
        "s",
        PushOptions {
            credit: 2,
            wait_ms: 1000,
        },
    );
    let pushed = within("a push delivery over TLS", stream.next())
        .await
        .expect("the stream goes on")
        .expect("a delivery");
    assert_eq!(pushed.delivery.event.event.id, "e1");
    client.ack("s", &pushed.delivery.ack_id).await.expect("ack");
    drop((pushed, stream));
    client.close().await;

    // The default server name: the host of the address, here "localhost".
    let by_name = format!("localhost:{}", server.addr.port());
    let named = within(
        "connecting to localhost over TLS",
        Client::connect(by_name.as_str(), tls_config(roots)),
    )
    .await
    .expect("connect by name");
    let topics = named.list_topics().await.expect("list");
    assert!(topics.iter().any(|t| t.name == "t"), "{topics:?}");
    named.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_or_misnamed_certificate_is_refused() {
    // Proves: a server certificate that does not chain to the client's
    // roots, or is not for the server name (here the default, the IP
    // connected to), fails the connect with `Unavailable` saying the TLS
    // handshake failed on the certificate.
    let (cert, key) = self_signed();
    let (other_cert, _) = self_signed();
    let server = TlsServer::start(&cert, &key).await;

    let wrong_root = ClientTls::from_pem(other_cert.as_bytes())
        .expect("roots")
        .with_server_name("localhost");
    let refused = within(
        "connecting with the wrong root",
        Client::connect(server.addr, tls_config(wrong_root)),
    )
    .await;
    match refused {
        Err(BusError::Unavailable(why)) => {
            assert!(why.contains("TLS") && why.contains("certificate"), "{why}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }

    let default_name = ClientTls::from_pem(cert.as_bytes()).expect("roots");
    let refused = within(
        "connecting to the IP with a certificate for localhost",
        Client::connect(server.addr, tls_config(default_name)),
    )
    .await;
    match refused {
        Err(BusError::Unavailable(why)) => {
            assert!(why.contains("TLS") && why.contains("certificate"), "{why}");
            assert!(why.contains("127.0.0.1"), "names the server name: {why}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_client_to_a_tls_port_fails_cleanly() {
    // Proves: a client without TLS connecting to a TLS listener fails at
    // once with `Unavailable` saying the server speaks TLS (and in any case
    // within its `connect_timeout_ms`), instead of hanging.
    let (cert, key) = self_signed();
    let server = TlsServer::start(&cert, &key).await;
    let config = ClientConfig {
        connect_timeout_ms: 3_000,
        ..ClientConfig::default()
    };
    let refused = within(
        "a plain connect to a TLS port",
        Client::connect(server.addr, config),
    )
    .await;
    match refused {
        // Told at once (the server's TLS alert), not by the timeout.
        Err(BusError::Unavailable(why)) => {
            assert!(why.contains("TLS") && !why.contains("timed out"), "{why}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    server.shut_down().await;
}
