//! Runs the `Bus` and `EventStore` conformance suites against the embedded
//! engine, with a manual clock and the background timer off, each case on
//! a fresh folder.

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, Clock, ManualClock};
use eddy_bus_conformance::{Harness, bus_conformance_tests, store_conformance_tests};
use tempfile::TempDir;

struct Embedded;

struct Env {
    dir: TempDir,
    clock: Arc<ManualClock>,
}

fn config() -> BrokerConfig {
    BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    }
}

impl Harness for Embedded {
    type Bus = Broker;
    type Env = Env;

    async fn open(&self) -> (Broker, Env) {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_767_225_600_000));
        let bus = Broker::open_with_clock(dir.path(), config(), clock.clone()).expect("open");
        (bus, Env { dir, clock })
    }

    fn now_ms(&self, env: &Env) -> i64 {
        env.clock.now_ms()
    }

    async fn advance(&self, env: &Env, ms: u64) {
        env.clock.advance_ms(i64::try_from(ms).expect("ms"));
    }

    async fn restart(&self, bus: Broker, env: &Env) -> Broker {
        bus.close().expect("close");
        Broker::open_with_clock(env.dir.path(), config(), env.clock.clone()).expect("reopen")
    }
}

bus_conformance_tests!(Embedded);
store_conformance_tests!(Embedded);
