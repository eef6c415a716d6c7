//! Runs the `Bus` and `EventStore` conformance suites against the network
//! client: each case gets a fresh broker (manual clock, background timer
//! off) served by an in-process `eddy-server` on 127.0.0.1 (port 0), and a
//! `Client` connected to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_broker::{Broker, BrokerConfig, Clock, ManualClock};
use eddy_bus_conformance::{Harness, bus_conformance_tests, store_conformance_tests};
use eddy_client::{Client, ClientConfig};
use eddy_server::{ServerConfig, serve_native};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest a server may take to shut down before the test counts as hung.
const HANG_GUARD: Duration = Duration::from_secs(20);

struct Remote;

/// One running server and its broker.
struct Served {
    broker: Broker,
    stop: oneshot::Sender<()>,
    task: JoinHandle<eddy_server::Result<()>>,
}

struct Env {
    dir: TempDir,
    clock: Arc<ManualClock>,
    served: Mutex<Option<Served>>,
}

fn config() -> BrokerConfig {
    BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    }
}

/// Opens the broker in `env.dir`, serves it, and connects a client.
async fn start(dir: &TempDir, clock: &Arc<ManualClock>) -> (Client, Served) {
    let broker = Broker::open_with_clock(dir.path(), config(), clock.clone()).expect("open");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_native(
        listener,
        broker.clone(),
        ServerConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let client = Client::connect(addr, ClientConfig::default())
        .await
        .expect("connect");
    let served = Served { broker, stop, task };
    (client, served)
}

impl Harness for Remote {
    type Bus = Client;
    type Env = Env;

    async fn open(&self) -> (Client, Env) {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_767_225_600_000));
        let (client, served) = start(&dir, &clock).await;
        let env = Env {
            dir,
            clock,
            served: Mutex::new(Some(served)),
        };
        (client, env)
    }

    fn now_ms(&self, env: &Env) -> i64 {
        env.clock.now_ms()
    }

    async fn advance(&self, env: &Env, ms: u64) {
        env.clock.advance_ms(i64::try_from(ms).expect("ms"));
    }

    async fn restart(&self, bus: Client, env: &Env) -> Client {
        bus.close().await;
        let served = env.served.lock().expect("lock").take().expect("served");
        let _ = served.stop.send(());
        tokio::time::timeout(HANG_GUARD, served.task)
            .await
            .expect("server shut down in time")
            .expect("server task")
            .expect("server result");
        served.broker.close().expect("close");
        let (client, served) = start(&env.dir, &env.clock).await;
        *env.served.lock().expect("lock") = Some(served);
        client
    }
}

bus_conformance_tests!(Remote);
store_conformance_tests!(Remote);
