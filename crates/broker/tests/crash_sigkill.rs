//! Crash test: a real child process publishes, acks and nacks (with a
//! one-hour retry delay) under `fsync = always` and is killed with SIGKILL
//! after a random number of confirmed operations, six times over the same
//! folder. After each kill, a copy of the folder is opened and checked:
//! no acknowledged publish is missing or moved, no confirmed ack is
//! forgotten (the event is never delivered again), and every confirmed
//! nack's retry is still scheduled — not delivered early, not forgotten.
//! The child also appends to event-store streams with exact expected
//! versions: every confirmed append is there at its versions, and no
//! stream has a gap or a partial append.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, Clock, ManualClock, SystemClock};
use eddy_bus::{Bus, Direction, Event, EventStore, FetchOptions, Partition, ReadFrom, StreamFrom};

const CYCLES: u64 = 8;

/// What the children confirmed, over all cycles so far.
#[derive(Default)]
struct Confirmed {
    published: BTreeMap<String, (u32, u64)>,
    acked: BTreeSet<String>,
    nacked: BTreeSet<String>,
    /// Confirmed appends: stream → version → event id.
    appended: BTreeMap<String, BTreeMap<u64, String>>,
}

/// A small deterministic generator, seeded per run and printed on failure.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn run_child_and_kill(dir: &Path, cycle: u64, kill_after: u64, confirmed: &mut Confirmed) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy-broker-crash-child"))
        .arg(dir)
        .arg(cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash child");
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let (mut lines, mut killed) = (0, false);
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).expect("read child stdout") == 0 {
            break; // dead, and its pipe drained
        }
        if !line.ends_with('\n') {
            continue; // cut by the kill: never a complete confirmation
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["P", id, p, o] => {
                let at = (p.parse().unwrap(), o.parse().unwrap());
                assert!(
                    confirmed.published.insert(id.to_string(), at).is_none(),
                    "{id} published twice"
                );
            }
            ["A", id] => {
                confirmed.acked.insert(id.to_string());
            }
            ["N", id] => {
                confirmed.nacked.insert(id.to_string());
            }
            ["S", stream, first, ids @ ..] => {
                let first: u64 = first.parse().unwrap();
                let at = confirmed.appended.entry(stream.to_string()).or_default();
                for (i, id) in ids.iter().enumerate() {
                    let prev = at.insert(first + i as u64, id.to_string());
                    assert!(
                        prev.is_none(),
                        "{stream} version {} confirmed twice",
                        first + i as u64
                    );
                }
            }
            _ => panic!("unexpected child output: {line:?}"),
        }
        lines += 1;
        if lines == kill_after && !killed {
            child.kill().expect("SIGKILL the child"); // SIGKILL on Unix
            killed = true;
        }
    }
    let status = child.wait().expect("wait for the child");
    assert!(killed, "the child exited on its own: {status}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn fetch_everything(bus: &Broker) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let got = bus.fetch("work", FetchOptions::now(10_000)).await.unwrap();
        if got.is_empty() {
            return ids;
        }
        ids.extend(got.into_iter().map(|d| d.event.event.id));
    }
}

async fn check(dir: &Path, confirmed: &Confirmed, seed: u64) {
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let bus = Broker::open_with_clock(dir, config, clock.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: reopen after SIGKILL: {e}"));

    // Every confirmed append is in its stream at its versions; every
    // stream's events are numbered without a gap, and each append is whole
    // (its events' ids are the child's, `s<cycle>-<appender>-<n>-<i>`,
    // with every i of one n present).
    for (stream, confirmed_versions) in &confirmed.appended {
        let slice = bus
            .read_stream(stream, StreamFrom::Start, Direction::Forward, 10_000)
            .await
            .unwrap();
        let stored: BTreeMap<u64, String> = slice
            .events
            .iter()
            .map(|e| (e.version, e.event.id.clone()))
            .collect();
        for (v, e) in slice.events.iter().enumerate() {
            assert_eq!(e.version, v as u64, "seed {seed}: {stream} has a gap");
        }
        for (v, id) in confirmed_versions {
            assert_eq!(
                stored.get(v),
                Some(id),
                "seed {seed}: {stream} lost version {v}"
            );
        }
        let mut appends: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for id in stored.values() {
            let (append, i) = id.rsplit_once('-').unwrap();
            appends
                .entry(append.to_string())
                .or_default()
                .push(i.parse().unwrap());
        }
        for (append, is) in appends {
            let n: u64 = append.rsplit_once('-').unwrap().1.parse().unwrap();
            let whole: Vec<u64> = (0..n % 3 + 1).collect();
            assert_eq!(
                is, whole,
                "seed {seed}: append {append} of {stream} is partial"
            );
        }
    }

    // Every acknowledged publish is stored, at the place it was acknowledged at.
    let mut stored: HashMap<String, (u32, u64)> = HashMap::new();
    for p in 0..2 {
        let mut from = ReadFrom::Beginning;
        loop {
            let batch = bus
                .read("orders", Partition(p), from, 10_000)
                .await
                .unwrap();
            if batch.events.is_empty() {
                break;
            }
            for e in batch.events {
                assert!(
                    stored.insert(e.event.id.clone(), (p, e.offset.0)).is_none(),
                    "seed {seed}: {} stored twice",
                    e.event.id
                );
            }
            from = ReadFrom::Offset(batch.next_offset);
        }
    }
    for (id, at) in &confirmed.published {
        assert_eq!(
            stored.get(id),
            Some(at),
            "seed {seed}: acknowledged publish {id}"
        );
    }
    // Idempotent publishing survives the crash too.
    if let Some((id, at)) = confirmed.published.iter().next_back() {
        let again = bus
            .publish(
                "orders",
                Event::new("OrderPlaced", "again").with_id(id.clone()),
            )
            .await
            .unwrap();
        assert!(
            again.duplicate,
            "seed {seed}: {id} republished after the crash"
        );
        assert_eq!((again.partition.0, again.offset.0), *at);
    }

    // Now: neither acked nor nacked (due in an hour) events come back.
    for id in fetch_everything(&bus).await {
        assert!(
            !confirmed.acked.contains(&id),
            "seed {seed}: acked {id} redelivered"
        );
        assert!(
            !confirmed.nacked.contains(&id),
            "seed {seed}: nacked {id} redelivered early"
        );
    }
    // Two hours later: every nacked event is delivered again; acked ones still not.
    clock.advance_ms(2 * 3600 * 1000);
    let later: BTreeSet<String> = fetch_everything(&bus).await.into_iter().collect();
    for id in &confirmed.nacked {
        assert!(
            later.contains(id),
            "seed {seed}: the retry of {id} was forgotten"
        );
    }
    for id in &later {
        assert!(
            !confirmed.acked.contains(id),
            "seed {seed}: acked {id} redelivered"
        );
    }
    bus.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_publishes_acks_and_retries_survive_sigkill() {
    let seed = std::env::var("EDDY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemClock.now_ms() as u64 | 1);
    eprintln!("crash test seed {seed} (set EDDY_CRASH_SEED to replay the kill points)");
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("broker");
    let mut confirmed = Confirmed::default();
    for cycle in 0..CYCLES {
        let kill_after = 20 + rng.below(600);
        run_child_and_kill(&dir, cycle, kill_after, &mut confirmed);
        let copy = root.path().join(format!("check-{cycle}"));
        copy_dir(&dir, &copy);
        check(&copy, &confirmed, seed).await;
        std::fs::remove_dir_all(&copy).unwrap();
    }
    let appended: usize = confirmed.appended.values().map(BTreeMap::len).sum();
    eprintln!(
        "confirmed: {} publishes, {} acks, {} nacks, {appended} appended events",
        confirmed.published.len(),
        confirmed.acked.len(),
        confirmed.nacked.len()
    );
    assert!(!confirmed.acked.is_empty() && !confirmed.nacked.is_empty());
    assert!(appended > 0, "the children appended to the event store");
}
