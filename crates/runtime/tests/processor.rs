//! Stream processors on the embedded broker: windowed counts with
//! out-of-order and late events against a brute-force computation, a
//! restart resuming from the checkpoint, replay, a stream–table join,
//! session windows, a stateless pipeline into a topic, and the PostgreSQL
//! sink (skipped, saying so, where PostgreSQL is not reachable).

use std::collections::BTreeMap;
use std::path::Path;

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{Bus, Event, Partition, ReadFrom, Retention, TopicConfig};
use eddy_runtime::processing::{
    Aggregate, Emit, Processor, ProcessorBuilder, ProcessorError, ProcessorMetrics, Record,
    ResultRow, Sink, WindowSpec, embedded_results,
};
use serde_json::json;

/// The metrics crate's strict checker of the Prometheus text format.
#[path = "../../metrics/tests/support/exposition.rs"]
mod exposition;

const PG: &str = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3";
const SIZE: i64 = 10_000;
const LATENESS: i64 = 1_000;
const OUT_OF_ORDER: i64 = 2_000;

fn broker(dir: &Path) -> Broker {
    Broker::open(dir, BrokerConfig::default()).unwrap()
}

/// A click on a page at an event time; `Ignored` clicks are filtered out.
#[derive(Debug, Clone)]
struct Click {
    page: u32,
    t: i64,
    ignored: bool,
}

fn event(n: usize, c: &Click) -> Event {
    let mut e = Event::new(
        if c.ignored { "Ignored" } else { "Clicked" },
        json!({ "page": format!("p{}", c.page) }).to_string(),
    )
    .with_key(format!("user-{}", n % 7));
    e.id = format!("click-{n}");
    e.time_ms = Some(c.t);
    e
}

/// A stream where time mostly moves on, some clicks are a little out of
/// order and some far behind (late), from a seed.
fn clicks(seed: u64, n: usize) -> Vec<Click> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut now = 1_000_000i64;
    (0..n)
        .map(|_| {
            now += next(400) as i64;
            let behind = match next(10) {
                0 => 2_000 + next(15_000) as i64, // far behind: often late
                1..=3 => next(2_500) as i64,      // a little out of order
                _ => 0,
            };
            Click {
                page: next(3) as u32,
                t: now - behind,
                ignored: next(8) == 0,
            }
        })
        .collect()
}

/// What the counting processor must produce, computed the slow way: the
/// watermark after each record, a record late if every window holding it
/// has closed, the count of each window that received a record.
fn brute_force(clicks: &[Click]) -> (BTreeMap<(String, i64), u64>, u64) {
    let mut wm = i64::MIN;
    let mut max = i64::MIN;
    let mut counts = BTreeMap::new();
    let mut late = 0;
    for c in clicks.iter().filter(|c| !c.ignored) {
        let start = c.t.div_euclid(SIZE) * SIZE;
        if start + SIZE + LATENESS <= wm {
            late += 1;
        } else {
            *counts.entry((format!("p{}", c.page), start)).or_insert(0) += 1;
        }
        max = max.max(c.t);
        wm = max - OUT_OF_ORDER;
    }
    (counts, late)
}

fn counting(name: &str) -> ProcessorBuilder<u64> {
    Processor::builder(name)
        .input("clicks")
        .filter(|r| r.ty != "Ignored")
        .rekey(|r| r.value()["page"].as_str().unwrap_or("?").to_string())
        .window(WindowSpec::tumbling(SIZE as u64).unwrap(), LATENESS as u64)
        .max_out_of_order_ms(OUT_OF_ORDER as u64)
        .late_events_to("clicks.late")
        .idle_poll_ms(2)
        .aggregate(|count: &mut u64, _: &Record| *count += 1)
}

/// Starts the processor, waits until it has caught up and stops it;
/// returns its results (embedded sink) and its metrics.
async fn run_to_end<A: Aggregate>(
    p: ProcessorBuilder<A>,
    bus: Broker,
    state: impl AsRef<Path>,
    sink: Sink,
) -> (Vec<ResultRow>, Arc<ProcessorMetrics>) {
    let mut p = p
        .build()
        .unwrap()
        .start(bus, state.as_ref(), sink)
        .await
        .unwrap();
    p.caught_up().await.unwrap();
    let metrics = p.metrics();
    (p.stop().await.unwrap(), metrics)
}

fn as_counts(rows: &[ResultRow]) -> BTreeMap<(String, i64), u64> {
    rows.iter()
        .map(|r| {
            assert_eq!(r.window_end_ms, r.window_start_ms + SIZE, "{r:?}");
            (
                (r.key.clone(), r.window_start_ms),
                r.value.as_u64().unwrap(),
            )
        })
        .collect()
}

async fn setup(bus: &Broker, partitions: u32) {
    bus.create_topic("clicks", TopicConfig::with_partitions(partitions))
        .await
        .unwrap();
    bus.create_topic("clicks.late", TopicConfig::default())
        .await
        .unwrap();
}

async fn publish(bus: &Broker, clicks: &[Click], from: usize) {
    publish_in(bus, clicks, from, 500).await;
}

async fn publish_in(bus: &Broker, clicks: &[Click], from: usize, batch: usize) {
    let events: Vec<Event> = clicks
        .iter()
        .enumerate()
        .map(|(i, c)| event(from + i, c))
        .collect();
    for chunk in events.chunks(batch) {
        bus.publish_batch("clicks", chunk.to_vec()).await.unwrap();
    }
}

async fn topic_len(bus: &Broker, topic: &str) -> usize {
    let b = bus
        .read(topic, Partition(0), ReadFrom::Beginning, 10_000)
        .await
        .unwrap();
    b.events.len()
}

#[tokio::test]
async fn windowed_counts_with_out_of_order_and_late_events_match_a_brute_force_computation() {
    // Small batches make many rounds, each checkpoint written while the
    // next round runs.
    for (seed, batch) in [(1, 1_000), (2, 7), (3, 50)] {
        let dir = tempfile::tempdir().unwrap();
        let bus = broker(&dir.path().join("bus"));
        setup(&bus, 1).await;
        let input = clicks(seed, 600);
        let (expected, late) = brute_force(&input);
        assert!(
            late > 10,
            "seed {seed}: the stream has late events ({late})"
        );
        publish(&bus, &input, 0).await;

        let (rows, metrics) = run_to_end(
            counting("clicks-per-page").batch_max(batch),
            bus.clone(),
            dir.path().join("state"),
            Sink::Embedded,
        )
        .await;
        assert_eq!(as_counts(&rows), expected, "seed {seed}");
        assert_eq!(metrics.late(), late, "seed {seed}");
        assert_eq!(metrics.events(), 600);
        assert_eq!(topic_len(&bus, "clicks.late").await as u64, late);
        assert_eq!(
            as_counts(&embedded_results(dir.path().join("state")).unwrap()),
            expected
        );
        let text = metrics.render();
        let samples = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let of =
            |name| exposition::value(&samples, name, &[("processor", "clicks-per-page")]).unwrap();
        assert_eq!(of("eddy_processor_late_events_total"), late as f64);
        assert_eq!(of("eddy_processor_events_total"), 600.0);
        // Every on-time record's delay is in the histogram.
        assert_eq!(
            of("eddy_processor_result_delay_seconds_count"),
            expected.values().sum::<u64>() as f64
        );
    }
}

#[tokio::test]
async fn a_restarted_processor_resumes_from_its_checkpoint_without_counting_twice() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    setup(&bus, 1).await;
    let input = clicks(7, 800);
    let (expected, late) = brute_force(&input);
    let state = dir.path().join("state");
    for (i, part) in input.chunks(300).enumerate() {
        publish(&bus, part, i * 300).await;
        run_to_end(counting("resume"), bus.clone(), &state, Sink::Embedded).await;
    }
    let rows = embedded_results(&state).unwrap();
    assert_eq!(as_counts(&rows), expected);
    // Each late event went to the side topic once.
    assert_eq!(topic_len(&bus, "clicks.late").await as u64, late);
}

#[tokio::test]
async fn a_replay_from_a_time_replaces_the_results_from_that_window_on() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    setup(&bus, 1).await;
    // In order, so that every record is on time whatever is re-read.
    let mut input = clicks(11, 400);
    input.sort_by_key(|c| c.t);
    let (expected, late) = brute_force(&input);
    assert_eq!(late, 0);
    publish(&bus, &input, 0).await;
    let state = dir.path().join("state");
    let run = |b: ProcessorBuilder<u64>| {
        let bus = bus.clone();
        let state = state.clone();
        async move {
            let mut p = b
                .build()
                .unwrap()
                .start(bus, &state, Sink::Embedded)
                .await
                .unwrap();
            p.caught_up().await.unwrap();
            as_counts(&p.stop().await.unwrap())
        }
    };
    assert_eq!(run(counting("replay")).await, expected);

    // The same code from the middle of a window: the same results.
    let mid = input[200].t;
    assert_eq!(run(counting("replay").replay_from(mid)).await, expected);

    // New code (each click counts 10) from there: windows from the one
    // holding `mid` are recomputed, earlier ones are kept.
    let floor = mid.div_euclid(SIZE) * SIZE;
    let tenfold = Processor::builder("replay")
        .input("clicks")
        .filter(|r| r.ty != "Ignored")
        .rekey(|r| r.value()["page"].as_str().unwrap_or("?").to_string())
        .window(WindowSpec::tumbling(SIZE as u64).unwrap(), LATENESS as u64)
        .max_out_of_order_ms(OUT_OF_ORDER as u64)
        .idle_poll_ms(2)
        .replay_from(mid)
        .aggregate(|count: &mut u64, _: &Record| *count += 10);
    let replaced = run(tenfold).await;
    let want: BTreeMap<_, _> = expected
        .iter()
        .map(|(k, v)| (k.clone(), if k.1 >= floor { v * 10 } else { *v }))
        .collect();
    assert_eq!(replaced, want);
    assert!(want.keys().any(|k| k.1 < floor) && want.keys().any(|k| k.1 >= floor));
}

#[tokio::test]
async fn a_stream_table_join_over_many_partitions_and_session_windows() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    bus.create_topic("customers", TopicConfig::with_partitions(2))
        .await
        .unwrap();
    bus.create_topic("orders", TopicConfig::with_partitions(4))
        .await
        .unwrap();
    // The table: the latest tier of each customer; c3 is deleted.
    for (c, tier) in [
        ("c1", json!({"tier": "gold"})),
        ("c2", json!({"tier": "silver"})),
        ("c1", json!({"tier": "platinum"})),
        ("c3", json!({"tier": "gold"})),
    ] {
        bus.publish(
            "customers",
            Event::new("Tier", tier.to_string()).with_key(c),
        )
        .await
        .unwrap();
    }
    bus.publish("customers", Event::new("Tier", "").with_key("c3"))
        .await
        .unwrap();
    // Orders: bursts per customer with gaps; amounts in cents.
    let mut orders = Vec::new();
    for (i, (c, t, amount)) in [
        ("c1", 0, 100),
        ("c1", 500, 200),
        ("c2", 700, 50),
        ("c1", 5_000, 300), // a new session for c1 (gap 1 s)
        ("c3", 800, 999),   // no tier any more: dropped by the join
        ("c2", 1_200, 25),
        ("c1", 20_000, 1), // moves the watermark past everything above
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = Event::new("OrderPlaced", json!({ "amount": amount }).to_string()).with_key(c);
        e.id = format!("o{i}");
        e.time_ms = Some(t);
        orders.push(e);
    }
    bus.publish_batch("orders", orders).await.unwrap();

    #[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
    struct Spent {
        orders: u32,
        cents: u64,
    }
    let mut p = Processor::builder("spend-by-tier")
        .input("orders")
        .join_table("customers", |mut r, customer| {
            let tier = customer?.get("tier")?.as_str()?.to_string();
            r.key = format!("{}/{tier}", r.key);
            Some(r)
        })
        .session_window(1_000, 0)
        .max_out_of_order_ms(10_000)
        .idle_poll_ms(2)
        // One event per read: the table still loads whole before a join.
        .batch_max(1)
        .aggregate_sessions(
            |s: &mut Spent, r: &Record| {
                s.orders += 1;
                s.cents += r.value()["amount"].as_u64().unwrap_or(0);
            },
            |into, other| {
                into.orders += other.orders;
                into.cents += other.cents;
            },
        )
        .build()
        .unwrap()
        .start(bus.clone(), dir.path().join("state"), Sink::Embedded)
        .await
        .unwrap();
    p.caught_up().await.unwrap();
    let rows = p.stop().await.unwrap();
    let got: Vec<(String, i64, i64, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.window_start_ms,
                r.window_end_ms,
                r.value["orders"].as_u64().unwrap(),
                r.value["cents"].as_u64().unwrap(),
            )
        })
        .collect();
    // Sessions close when written (the one at 20 s is still open).
    assert_eq!(
        got,
        [
            ("c1/platinum".to_string(), 0, 1_500, 2, 300),
            ("c1/platinum".to_string(), 5_000, 6_000, 1, 300),
            ("c2/silver".to_string(), 700, 2_200, 2, 75),
        ]
    );
}

#[tokio::test]
async fn a_stateless_pipeline_writes_records_to_a_topic() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    setup(&bus, 2).await;
    bus.create_topic("pages", TopicConfig::default())
        .await
        .unwrap();
    let input = clicks(5, 50);
    publish(&bus, &input, 0).await;
    let mut p = Processor::builder("pages")
        .input("clicks")
        .filter(|r| r.ty != "Ignored")
        .flat_map(|r| {
            // Two records per click: the page and the user.
            let mut page = r.clone();
            page.ty = "PageViewed".into();
            let mut user = r;
            user.ty = "UserActive".into();
            vec![page, user]
        })
        .map(|mut r| {
            let v = json!({ "from": r.topic, "key": r.key });
            r.set_value(v);
            r
        })
        .idle_poll_ms(2)
        .build()
        .unwrap()
        .start(
            bus.clone(),
            dir.path().join("state"),
            Sink::Topic("pages".into()),
        )
        .await
        .unwrap();
    p.caught_up().await.unwrap();
    p.stop().await.unwrap();
    let kept = input.iter().filter(|c| !c.ignored).count();
    let out = bus
        .read("pages", Partition(0), ReadFrom::Beginning, 1_000)
        .await
        .unwrap()
        .events;
    assert_eq!(out.len(), kept * 2);
    assert_eq!(
        out.iter().filter(|e| e.event.ty == "UserActive").count(),
        kept
    );
    assert!(
        out.iter()
            .all(|e| e.event.id.starts_with("pages/0/clicks/"))
    );
    for e in &out {
        let data: serde_json::Value = serde_json::from_slice(&e.event.data).unwrap();
        assert_eq!(data["from"], "clicks");
        assert_eq!(data["key"].as_str(), e.event.key.as_deref());
    }
}

#[tokio::test]
async fn other_windows_do_not_resume_a_checkpoint_but_replay_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    setup(&bus, 1).await;
    let input = clicks(4, 100);
    publish(&bus, &input, 0).await;
    let state = dir.path().join("state");
    run_to_end(counting("shape"), bus.clone(), &state, Sink::Embedded).await;
    let wider = || {
        Processor::builder("shape")
            .input("clicks")
            .window(WindowSpec::tumbling(20_000).unwrap(), 0)
            .max_out_of_order_ms(60_000) // none late: every click counted
            .idle_poll_ms(2)
            .aggregate(|c: &mut u64, _: &Record| *c += 1)
    };
    let e = wider()
        .build()
        .unwrap()
        .start(bus.clone(), &state, Sink::Embedded)
        .await;
    assert!(matches!(e, Err(ProcessorError::Config { .. })), "{e:?}");
    let (rows, _) = run_to_end(
        wider().replay_from(input.iter().map(|c| c.t).min().unwrap()),
        bus.clone(),
        &state,
        Sink::Embedded,
    )
    .await;
    assert!(
        rows.iter()
            .all(|r| r.window_end_ms - r.window_start_ms == 20_000)
    );
    assert_eq!(
        rows.iter().map(|r| r.value.as_u64().unwrap()).sum::<u64>(),
        100
    );
}

#[tokio::test]
async fn a_read_cut_short_by_the_byte_cap_does_not_end_a_partition() {
    // 40 events of 900 KB, a second apart: a read of 100 comes back with
    // fewer (the broker caps a read's bytes). A small event on another
    // topic at 25.5 s must wait for the big topic's events before it.
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    bus.create_topic("big", TopicConfig::default())
        .await
        .unwrap();
    bus.create_topic("small", TopicConfig::default())
        .await
        .unwrap();
    let blob = "x".repeat(900_000);
    for chunk in (0..40).collect::<Vec<i64>>().chunks(5) {
        let events = chunk
            .iter()
            .map(|n| {
                let mut e = Event::new("Big", json!({ "blob": blob }).to_string()).with_key("k");
                e.time_ms = Some(n * 1_000);
                e
            })
            .collect();
        bus.publish_batch("big", events).await.unwrap();
    }
    let mut e = Event::new("Small", "{}").with_key("k");
    e.time_ms = Some(25_500);
    bus.publish("small", e).await.unwrap();
    let first = bus
        .read("big", Partition(0), ReadFrom::Beginning, 100)
        .await
        .unwrap();
    assert!(first.events.len() < 40, "the read was not cut short");

    let (rows, metrics) = run_to_end(
        Processor::builder("cap")
            .input("big")
            .input("small")
            .window(WindowSpec::tumbling(1_000).unwrap(), 0)
            .batch_max(100)
            .idle_poll_ms(2)
            .aggregate(|c: &mut u64, _: &Record| *c += 1),
        bus.clone(),
        dir.path().join("state"),
        Sink::Embedded,
    )
    .await;
    assert_eq!(metrics.events(), 41);
    assert_eq!(metrics.late(), 0);
    assert_eq!(
        rows.iter().map(|r| r.value.as_u64().unwrap()).sum::<u64>(),
        41
    );
}

#[tokio::test]
async fn events_deleted_by_retention_before_they_were_read_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = BrokerConfig {
        timer_interval_ms: None,
        segment_bytes_max: 16 * 1024,
        ..BrokerConfig::default()
    };
    let bus = Broker::open_with_clock(dir.path().join("bus"), config, clock).unwrap();
    let topic = TopicConfig {
        retention: Retention {
            events_max: Some(100),
            ..Retention::default()
        },
        ..TopicConfig::with_partitions(1)
    };
    bus.create_topic("clicks", topic).await.unwrap();
    let input = clicks(8, 500);
    let first_part: Vec<Click> = input[..50]
        .iter()
        .map(|c| Click {
            ignored: false,
            ..c.clone()
        })
        .collect();
    publish_in(&bus, &first_part, 0, 20).await;
    let count = || {
        Processor::builder("retained")
            .input("clicks")
            .window(WindowSpec::tumbling(SIZE as u64).unwrap(), 0)
            .max_out_of_order_ms(60_000)
            .idle_poll_ms(2)
            .aggregate(|c: &mut u64, _: &Record| *c += 1)
    };
    let state = dir.path().join("state");
    run_to_end(count(), bus.clone(), &state, Sink::Embedded).await;
    let rest: Vec<Click> = input[50..]
        .iter()
        .map(|c| Click {
            ignored: false,
            ..c.clone()
        })
        .collect();
    publish_in(&bus, &rest, 50, 20).await;
    bus.tick().unwrap();
    let first = bus.describe_topic("clicks").await.unwrap().partitions[0]
        .first_offset
        .0;
    assert!(
        first > 50,
        "retention deleted unread events (first held: {first})"
    );

    let (rows, metrics) = run_to_end(count(), bus.clone(), &state, Sink::Embedded).await;
    assert_eq!(metrics.skipped(), first - 50);
    assert_eq!(metrics.events(), 50 + (500 - first));
    assert_eq!(
        rows.iter().map(|r| r.value.as_u64().unwrap()).sum::<u64>(),
        50 + (500 - first)
    );
}

#[tokio::test]
async fn long_keys_get_bounded_result_ids() {
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    setup(&bus, 1).await;
    bus.create_topic("counts", TopicConfig::default())
        .await
        .unwrap();
    publish(&bus, &clicks(6, 50), 0).await;
    run_to_end(
        Processor::builder("long-keys")
            .input("clicks")
            .rekey(|r| format!("{}-{}", "k".repeat(300), r.value()["page"]))
            .window(WindowSpec::tumbling(1_000).unwrap(), 0)
            .idle_poll_ms(2)
            .aggregate(|c: &mut u64, _: &Record| *c += 1),
        bus.clone(),
        dir.path().join("state"),
        Sink::Topic("counts".into()),
    )
    .await;
    let out = bus
        .read("counts", Partition(0), ReadFrom::Beginning, 1_000)
        .await
        .unwrap()
        .events;
    assert!(!out.is_empty());
    assert!(out.iter().all(|e| e.event.id.starts_with("sha256:")));
}

#[tokio::test]
async fn descriptions_that_cannot_run_are_refused() {
    let no_input = Processor::builder("p")
        .window(WindowSpec::tumbling(10).unwrap(), 0)
        .aggregate(|c: &mut u64, _: &Record| *c += 1)
        .build();
    assert!(
        matches!(no_input, Err(ProcessorError::Config { .. })),
        "{no_input:?}"
    );
    let no_agg = Processor::builder("p")
        .input("a")
        .window(WindowSpec::tumbling(10).unwrap(), 0)
        .build();
    assert!(matches!(no_agg, Err(ProcessorError::Config { .. })));
    let twice = Processor::builder("p")
        .input("a")
        .join_table("a", |r, _| Some(r))
        .build();
    assert!(matches!(twice, Err(ProcessorError::Config { .. })));
    let sessions_without_merge = Processor::builder("p")
        .input("a")
        .session_window(10, 0)
        .aggregate(|c: &mut u64, _: &Record| *c += 1)
        .build();
    assert!(matches!(
        sessions_without_merge,
        Err(ProcessorError::Config { .. })
    ));
    // A stateless processor has no table to write.
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    bus.create_topic("a", TopicConfig::default()).await.unwrap();
    let stateless = Processor::builder("p").input("a").build().unwrap();
    let e = stateless
        .start(bus.clone(), dir.path().join("s"), Sink::Embedded)
        .await;
    assert!(matches!(e, Err(ProcessorError::Config { .. })), "{e:?}");
    let missing = Processor::builder("p").input("nope").build().unwrap();
    let e = missing
        .start(bus, dir.path().join("s"), Sink::Topic("a".into()))
        .await;
    assert!(matches!(e, Err(ProcessorError::Bus { .. })), "{e:?}");
}

// ---- PostgreSQL ----

async fn pg_counts(pg: &tokio_postgres::Client, table: &str) -> BTreeMap<(String, i64), u64> {
    let q = format!("SELECT key, window_start, value::text FROM {table}");
    pg.query(&q, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let v: String = r.get(2);
            (
                (r.get::<_, String>(0), r.get::<_, i64>(1)),
                v.parse::<u64>().unwrap(),
            )
        })
        .collect()
}

async fn pg_reachable() -> bool {
    match tokio_postgres::connect(PG, tokio_postgres::NoTls).await {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped: PostgreSQL not reachable ({PG}): {e}");
            false
        }
    }
}

#[tokio::test]
async fn the_postgres_sink_holds_the_same_results_and_a_replay_replaces_them() {
    if !pg_reachable().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bus = broker(&dir.path().join("bus"));
    setup(&bus, 1).await;
    let input = clicks(21, 700);
    let (expected, _) = brute_force(&input);
    publish(&bus, &input, 0).await;
    let table = format!("eddy_test_processor_{}", std::process::id());
    let sink = Sink::Postgres {
        conn: PG.into(),
        table: table.clone(),
    };
    let name = format!("pg-{}", std::process::id());
    let state = dir.path().join("state");
    let (pg, conn) = tokio_postgres::connect(PG, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);

    run_to_end(
        counting(&name).emit(Emit::OnUpdate),
        bus.clone(),
        &state,
        sink.clone(),
    )
    .await;
    assert_eq!(pg_counts(&pg, &table).await, expected);

    let mid = input[350].t;
    run_to_end(
        counting(&name).replay_from(mid),
        bus.clone(),
        &state,
        sink.clone(),
    )
    .await;
    // Late events may be judged differently around the replay's start;
    // windows well after it are recomputed the same.
    let floor = mid.div_euclid(SIZE) * SIZE;
    let after = |m: &BTreeMap<(String, i64), u64>| {
        m.iter()
            .filter(|(k, _)| k.1 >= floor + 3 * SIZE)
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<_>>()
    };
    let replayed = pg_counts(&pg, &table).await;
    assert_eq!(after(&replayed), after(&expected));
    assert!(!after(&expected).is_empty());

    // The store lost: PostgreSQL names a checkpoint nobody has.
    std::fs::remove_dir_all(&state).unwrap();
    let lost = counting(&name)
        .build()
        .unwrap()
        .start(bus.clone(), &state, sink)
        .await;
    assert!(
        matches!(lost, Err(ProcessorError::StateMissing { .. })),
        "{lost:?}"
    );

    pg.batch_execute(&format!(
        "DROP TABLE {table}; DELETE FROM eddy_checkpoints WHERE processor = '{name}'"
    ))
    .await
    .unwrap();
}
