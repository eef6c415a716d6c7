//! Proves that `eddy serve` killed with SIGKILL while clients publish to it
//! loses no acknowledged publish: several connections publish batches with
//! unique ids as fast as the server acknowledges them; after a seeded
//! number of acknowledgements the process is killed; a new process on the
//! same folder must hold every acknowledged id, each once. Three cycles on
//! one folder. The seed is printed; `EDDY_CRASH_SEED` replays a run.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eddy_bus::{Bus, Event, Partition, ReadFrom, TopicConfig};
use eddy_client::{Client, ClientConfig};

const PUBLISHERS: u64 = 6;
const PARTITIONS: u32 = 3;
const CYCLES: u64 = 3;

/// A small deterministic generator.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn start(dir: &std::path::Path) -> (Child, String) {
    let mut args: Vec<std::ffi::OsString> = [
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--fsync",
        "always",
        "--dir",
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    args.push(dir.into());
    let served = support::serve(&args);
    (served.child, served.native)
}

/// Every stored event id of topic `load`, with how often it is stored.
async fn stored(client: &Client) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    for p in 0..PARTITIONS {
        let mut from = ReadFrom::Beginning;
        loop {
            let batch = client
                .read("load", Partition(p), from, 1000)
                .await
                .expect("read");
            if batch.events.is_empty() {
                break;
            }
            for e in &batch.events {
                *ids.entry(e.event.id.clone()).or_insert(0) += 1;
            }
            from = ReadFrom::Offset(batch.next_offset);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_publish() {
    let seed: u64 = std::env::var("EDDY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("EDDY_CRASH_SEED={seed}");
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();

    for cycle in 0..CYCLES {
        let (mut server, addr) = start(dir.path());
        let client = Client::connect(addr.as_str(), ClientConfig::default())
            .await
            .expect("connect");
        if cycle == 0 {
            let config = TopicConfig {
                partitions: PARTITIONS,
                ..TopicConfig::default()
            };
            client.create_topic("load", config).await.unwrap();
        } else {
            // Everything acknowledged before the last kill is there, once.
            let ids = stored(&client).await;
            for id in acked.lock().unwrap().iter() {
                assert_eq!(
                    ids.get(id),
                    Some(&1),
                    "seed {seed}: acknowledged {id} lost or doubled"
                );
            }
        }
        let kill_after = 200 + rng.below(2000);
        let count = Arc::new(AtomicU64::new(0));
        let enough = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for p in 0..PUBLISHERS {
            // A connection per publisher, so requests run side by side.
            let client = Client::connect(addr.as_str(), ClientConfig::default())
                .await
                .expect("connect");
            let (acked, count) = (Arc::clone(&acked), Arc::clone(&count));
            let enough = Arc::clone(&enough);
            let batch = 1 + rng.below(20);
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let events: Vec<Event> = (0..batch)
                        .map(|i| {
                            Event::new("load.tick", vec![0u8; 512])
                                .with_id(format!("c{cycle}-p{p}-{n}-{i}"))
                                .with_key(format!("k{i}"))
                        })
                        .collect();
                    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
                    if client.publish_batch("load", events).await.is_err() {
                        return; // the server is gone
                    }
                    acked.lock().unwrap().extend(ids);
                    if count.fetch_add(batch, Ordering::Relaxed) + batch >= kill_after {
                        enough.notify_one();
                    }
                }
            }));
        }
        // Kill once enough acknowledgements are in: by count, not time.
        let stall = std::time::Duration::from_secs(120);
        tokio::time::timeout(stall, enough.notified())
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: publishing stalled"));
        server.kill().expect("SIGKILL");
        server.wait().expect("reap");
        for t in tasks {
            t.await.expect("publisher task");
        }
        println!(
            "cycle {cycle}: killed after {} acknowledged events",
            count.load(Ordering::Relaxed)
        );
    }
    let (mut server, addr) = start(dir.path());
    let client = Client::connect(addr.as_str(), ClientConfig::default())
        .await
        .expect("connect");
    let ids = stored(&client).await;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() as u64 >= CYCLES * 200);
    for id in &acked {
        assert_eq!(
            ids.get(id),
            Some(&1),
            "seed {seed}: acknowledged {id} lost or doubled"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
