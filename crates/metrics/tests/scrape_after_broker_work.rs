//! Scrapes of a real embedded broker worked through a `Metered` bus: the
//! rendered figures match what the broker reports, the latency histograms
//! count exactly the calls made, and the whole text is a valid exposition.

use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{
    Bus, BusError, Event, FetchOptions, NackOptions, PushOptions, StartAt, SubscriptionConfig,
    TopicConfig,
};
use eddy_metrics::{Listener, Metrics};
use futures_util::StreamExt;

#[path = "support/exposition.rs"]
mod exposition;

use exposition::{Sample, parse, value};

const T0_MS: i64 = 1_767_225_600_000;

fn open(dir: &tempfile::TempDir) -> Broker {
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    Broker::open_with_clock(dir.path(), config, Arc::new(ManualClock::new(T0_MS))).unwrap()
}

/// Parses `text` with the strict checker, failing the test with the text.
fn check(text: &str) -> Vec<Sample> {
    parse(text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"))
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

// Proves the main flow: 3 publishes, a fetch of 3, 2 acks and a nack, the
// redelivery fetched, one failed ack. The per-topic and per-subscription
// figures equal the broker's own stats; the request histograms count each
// call once per family; publish → deliver counts the 3 first deliveries
// only, each exactly 3 ms late by the injected clock; the ack error is
// counted by code; and the text passes the strict format checker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_after_publish_fetch_ack_nack_matches_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir);
    // The broker's manual clock stamps every append at T0; the metrics
    // clock reads 3 ms later.
    let metrics = Metrics::with_clock(Arc::new(|| T0_MS + 3));
    let bus = metrics.metered(broker.clone());

    bus.create_topic("t", TopicConfig::with_partitions(1))
        .await
        .unwrap();
    bus.create_subscription(
        "s",
        SubscriptionConfig::new("t").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    for i in 0..3 {
        bus.publish("t", Event::new("Happened", format!("{i}")))
            .await
            .unwrap();
    }
    let first = bus.fetch("s", FetchOptions::now(10)).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|d| d.attempt == 1));
    bus.ack("s", &first[0].ack_id).await.unwrap();
    bus.ack("s", &first[1].ack_id).await.unwrap();
    let nack = NackOptions {
        delay_ms: Some(0),
        error: Some("boom".into()),
    };
    bus.nack("s", &first[2].ack_id, nack).await.unwrap();
    let again = bus.fetch("s", FetchOptions::now(10)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    let err = bus.ack("s", &first[0].ack_id).await.unwrap_err();
    assert_eq!(err.code(), 4001, "{err}");

    // Scrape the broker itself, so the scrape adds nothing to the counts.
    let text = metrics.render(bus.inner()).await;
    let samples = check(&text);

    // Exact lines, as a Prometheus server reads them.
    assert!(
        text.contains("\neddy_published_total{topic=\"t\"} 3\n"),
        "{text}"
    );
    assert!(text.contains("\neddy_up 1\n"));
    assert!(text.contains("\neddy_scrape_errors_total 0\n"));

    // Per topic and per subscription: what the broker reports.
    let topic = broker.topic_stats("t").await.unwrap();
    let t = [("topic", "t")];
    assert_eq!(
        get(&samples, "eddy_published_total", &t),
        topic.published as f64
    );
    assert_eq!(get(&samples, "eddy_publish_duplicates_total", &t), 0.0);
    assert_eq!(get(&samples, "eddy_topic_events", &t), 3.0);
    assert_eq!(
        get(&samples, "eddy_topic_bytes", &t),
        topic.size_bytes as f64
    );
    assert!(topic.size_bytes > 0);

    let sub = broker.subscription_stats("s").await.unwrap();
    assert_eq!(
        (
            sub.delivered,
            sub.redelivered,
            sub.acked,
            sub.in_flight,
            sub.lag
        ),
        (4, 1, 2, 1, 1)
    );
    let s = [("subscription", "s")];
    assert_eq!(get(&samples, "eddy_delivered_total", &s), 4.0);
    assert_eq!(get(&samples, "eddy_redelivered_total", &s), 1.0);
    assert_eq!(get(&samples, "eddy_acked_total", &s), 2.0);
    assert_eq!(get(&samples, "eddy_dead_lettered_total", &s), 0.0);
    assert_eq!(get(&samples, "eddy_subscription_lag", &s), 1.0);
    assert_eq!(get(&samples, "eddy_subscription_in_flight", &s), 1.0);
    assert_eq!(
        get(&samples, "eddy_subscription_waiting", &s),
        sub.waiting as f64
    );
    assert_eq!(get(&samples, "eddy_dead_letters", &s), 0.0);
    assert_eq!(
        get(&samples, "eddy_oldest_unacked_age_seconds", &s),
        sub.oldest_unacked_age_ms.unwrap_or(0) as f64 / 1e3
    );

    // Every topic and subscription the broker lists is rendered, with its
    // own figures (the dead-letter and system topics included).
    for info in broker.list_topics().await.unwrap() {
        let st = broker.topic_stats(&info.name).await.unwrap();
        let l = [("topic", info.name.as_str())];
        assert_eq!(
            get(&samples, "eddy_published_total", &l),
            st.published as f64
        );
        assert_eq!(get(&samples, "eddy_topic_events", &l), st.events as f64);
    }
    for info in broker.list_subscriptions().await.unwrap() {
        let st = broker.subscription_stats(&info.name).await.unwrap();
        let l = [("subscription", info.name.as_str())];
        assert_eq!(
            get(&samples, "eddy_delivered_total", &l),
            st.delivered as f64
        );
    }

    // Request latency: one observation per call, by family.
    let count = |op| {
        get(
            &samples,
            "eddy_request_duration_seconds_count",
            &[("op", op)],
        )
    };
    assert_eq!(count("publish"), 3.0);
    assert_eq!(count("fetch"), 2.0);
    assert_eq!(count("ack"), 3.0);
    assert_eq!(count("nack"), 1.0);
    assert_eq!(count("admin"), 2.0);
    assert_eq!(count("read"), 0.0);
    assert_eq!(count("stats"), 0.0);
    let publish_inf = get(
        &samples,
        "eddy_request_duration_seconds_bucket",
        &[("op", "publish"), ("le", "+Inf")],
    );
    assert_eq!(publish_inf, 3.0);

    // Errors, by family and code.
    let errors: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "eddy_request_errors_total")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].has_labels(&[("op", "ack"), ("code", "4001")]));
    assert_eq!(errors[0].value, 1.0);

    // Publish → deliver: the 3 first deliveries, each 3 ms late; the
    // redelivery is not counted.
    let bucket = |le| {
        get(
            &samples,
            "eddy_publish_to_deliver_seconds_bucket",
            &[("le", le)],
        )
    };
    assert_eq!(bucket("0.001"), 0.0);
    assert_eq!(bucket("0.0025"), 0.0);
    assert_eq!(bucket("0.005"), 3.0);
    assert_eq!(bucket("3600"), 3.0);
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        get(&samples, "eddy_publish_to_deliver_seconds_count", &[]),
        3.0
    );
    let sum = get(&samples, "eddy_publish_to_deliver_seconds_sum", &[]);
    assert!((sum - 0.009).abs() < 1e-12, "{sum}");

    // The bound is stated in the output.
    assert!(text.starts_with("# eddy-metrics: at most 10000 topics and 10000 subscriptions"));

    broker.close().unwrap();
}

// Proves that scraping through the metered bus records the scrape's own
// calls (2 listings as admin, one stats call per topic and subscription),
// as `render` documents, and that connection gauges appear in a real
// scrape next to the bus's figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_through_the_metered_bus_counts_its_own_calls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir);
    let metrics = Metrics::new();
    let bus = metrics.metered(broker.clone());
    let _native = metrics.connection(Listener::Native);

    let text = metrics.render(&bus).await;
    let samples = check(&text);
    let count = |op| {
        get(
            &samples,
            "eddy_request_duration_seconds_count",
            &[("op", op)],
        )
    };
    assert_eq!(count("admin"), 2.0);
    let topics = broker.list_topics().await.unwrap().len();
    let subs = broker.list_subscriptions().await.unwrap().len();
    assert_eq!(count("stats"), (topics + subs) as f64);
    assert_eq!(
        get(&samples, "eddy_connections", &[("listener", "native")]),
        1.0
    );
    assert_eq!(
        get(&samples, "eddy_connections", &[("listener", "http")]),
        0.0
    );
    broker.close().unwrap();
}

// Proves that push delivery (`subscribe`, the trait's default) on a
// metered bus goes through the metered fetch: its first deliveries are in
// the publish → deliver histogram and its fetches in the fetch histogram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_subscribe_is_measured_through_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir);
    let metrics = Metrics::with_clock(Arc::new(|| T0_MS + 20));
    let bus = metrics.metered(broker.clone());
    bus.create_topic("t", TopicConfig::with_partitions(2))
        .await
        .unwrap();
    bus.create_subscription(
        "s",
        SubscriptionConfig::new("t").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    bus.publish_batch("t", vec![Event::new("A", "1"), Event::new("B", "2")])
        .await
        .unwrap();

    let options = PushOptions {
        credit: 2,
        wait_ms: 1000,
    };
    let mut stream = bus.subscribe("s", options);
    for _ in 0..2 {
        let d = stream.next().await.expect("a delivery").unwrap();
        bus.ack("s", &d.delivery.ack_id).await.unwrap();
    }
    drop(stream);

    let samples = check(&metrics.render(bus.inner()).await);
    let count = |op| {
        get(
            &samples,
            "eddy_request_duration_seconds_count",
            &[("op", op)],
        )
    };
    assert!(count("fetch") >= 1.0);
    assert_eq!(count("publish"), 1.0);
    assert_eq!(
        get(&samples, "eddy_publish_to_deliver_seconds_count", &[]),
        2.0
    );
    let bucket = |le| {
        get(
            &samples,
            "eddy_publish_to_deliver_seconds_bucket",
            &[("le", le)],
        )
    };
    assert_eq!(bucket("0.01"), 0.0);
    assert_eq!(bucket("0.025"), 2.0);
    broker.close().unwrap();
}

// Proves that a scrape of a closed bus still succeeds: `eddy_up 0`, both
// failed listings counted in `eddy_scrape_errors_total`, no topic or
// subscription series, the process metrics still there, valid text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_of_a_closed_bus_reports_down_and_counts_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir);
    let metrics = Metrics::new();
    let bus = metrics.metered(broker.clone());
    bus.create_topic("t", TopicConfig::default()).await.unwrap();
    broker.close().unwrap();
    assert_eq!(bus.list_topics().await.unwrap_err(), BusError::Closed);

    let samples = check(&metrics.render(&broker).await);
    assert_eq!(get(&samples, "eddy_up", &[]), 0.0);
    assert_eq!(get(&samples, "eddy_scrape_errors_total", &[]), 2.0);
    assert!(!samples.iter().any(|s| s.name == "eddy_published_total"));
    assert_eq!(
        get(
            &samples,
            "eddy_request_errors_total",
            &[("op", "admin"), ("code", "9004")]
        ),
        1.0
    );
}

// Proves that event-store calls through the metered bus are timed each
// under its own operation, and that their failures are counted by code:
// two appends (one a conflict, 7001), a stream read, a `$all` read, an
// info, a metadata change and two deletes (one of a missing stream, 7002).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_calls_are_timed_and_their_errors_counted() {
    use eddy_bus::{AllFilter, Direction, EventStore, ExpectedVersion, StreamFrom, StreamMetadata};
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir);
    let metrics = Metrics::new();
    let bus = metrics.metered(broker.clone());
    let one = || vec![Event::new("OrderPlaced", "{}")];
    bus.append("order-1", ExpectedVersion::NoStream, one())
        .await
        .unwrap();
    let conflict = bus
        .append("order-1", ExpectedVersion::NoStream, one())
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), 7001);
    bus.read_stream("order-1", StreamFrom::Start, Direction::Forward, 10)
        .await
        .unwrap();
    bus.read_all(0, AllFilter::All, 10, 0).await.unwrap();
    bus.stream_info("order-1").await.unwrap();
    bus.set_stream_metadata("order-1", StreamMetadata::default())
        .await
        .unwrap();
    bus.delete_stream("order-1", ExpectedVersion::Any)
        .await
        .unwrap();
    let missing = bus
        .delete_stream("order-1", ExpectedVersion::Any)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), 7002);

    let samples = check(&metrics.render(&broker).await);
    let count = |op| {
        get(
            &samples,
            "eddy_request_duration_seconds_count",
            &[("op", op)],
        )
    };
    for (op, n) in [
        ("store_append", 2.0),
        ("store_read_stream", 1.0),
        ("store_read_all", 1.0),
        ("store_info", 1.0),
        ("store_metadata", 1.0),
        ("store_delete", 2.0),
        ("publish", 0.0),
        ("read", 0.0),
    ] {
        assert_eq!(count(op), n, "{op}");
    }
    let errors = |op, code| {
        get(
            &samples,
            "eddy_request_errors_total",
            &[("op", op), ("code", code)],
        )
    };
    assert_eq!(errors("store_append", "7001"), 1.0);
    assert_eq!(errors("store_delete", "7002"), 1.0);
    broker.close().unwrap();
}
