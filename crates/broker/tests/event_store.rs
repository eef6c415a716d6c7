//! The embedded event store: optimistic concurrency, idempotent appends,
//! stream and `$all` reads, catch-up subscriptions racing appends, stream
//! settings, reopening, and the events reaching the bus.

use std::collections::BTreeSet;
use std::sync::Arc;

use eddy_broker::{Broker, BrokerConfig, ManualClock};
use eddy_bus::{
    AllFilter, Bus, BusError, CatchUp, Direction, Event, EventStore, ExpectedVersion, FetchOptions,
    StartAt, StreamFrom, StreamMetadata, SubscriptionConfig,
};

fn ev(ty: &str, data: &str) -> Event {
    Event::new(ty, data.to_string())
}

fn open(dir: &std::path::Path) -> Broker {
    Broker::open(dir, BrokerConfig::default()).unwrap()
}

async fn versions(store: &Broker, stream: &str) -> Vec<(u64, String)> {
    let slice = store
        .read_stream(stream, StreamFrom::Start, Direction::Forward, 10_000)
        .await
        .unwrap();
    slice
        .events
        .into_iter()
        .map(|e| (e.version, String::from_utf8(e.event.data.to_vec()).unwrap()))
        .collect()
}

#[tokio::test]
async fn appends_number_events_and_reads_go_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = store
        .append(
            "order-1",
            ExpectedVersion::NoStream,
            vec![ev("OrderPlaced", "a"), ev("ItemAdded", "b")],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.first_version, r.last_version, r.duplicate),
        (0, 1, false)
    );
    let r2 = store
        .append(
            "order-1",
            ExpectedVersion::Exact(1),
            vec![ev("ItemAdded", "c")],
        )
        .await
        .unwrap();
    assert_eq!(r2.first_version, 2);
    assert!(r2.position > r.position);
    assert_eq!(
        versions(&store, "order-1").await,
        vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]
    );

    let back = store
        .read_stream("order-1", StreamFrom::Start, Direction::Backward, 2)
        .await
        .unwrap();
    let got: Vec<u64> = back.events.iter().map(|e| e.version).collect();
    assert_eq!(
        (got, back.next, back.last_version),
        (vec![2, 1], Some(0), Some(2))
    );
    let rest = store
        .read_stream("order-1", StreamFrom::Version(0), Direction::Backward, 2)
        .await
        .unwrap();
    assert_eq!(rest.events.len(), 1);
    assert_eq!(rest.next, None);
    let fwd = store
        .read_stream("order-1", StreamFrom::Version(1), Direction::Forward, 1)
        .await
        .unwrap();
    assert_eq!((fwd.events[0].version, fwd.next), (1, Some(2)));

    let none = store
        .read_stream("order-2", StreamFrom::Start, Direction::Forward, 10)
        .await
        .unwrap();
    assert!(none.events.is_empty());
    assert_eq!(none.last_version, None);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let bad_name = store
        .append("order 1", ExpectedVersion::Any, vec![ev("X", "")])
        .await;
    assert!(
        matches!(bad_name, Err(BusError::InvalidName { .. })),
        "{bad_name:?}"
    );
    let empty = store.append("order-1", ExpectedVersion::Any, vec![]).await;
    assert!(
        matches!(empty, Err(BusError::InvalidArgument { .. })),
        "{empty:?}"
    );
    let bad_event = store
        .append("order-1", ExpectedVersion::Any, vec![ev("", "")])
        .await;
    assert!(bad_event.is_err());
    let max = store
        .read_stream("order-1", StreamFrom::Start, Direction::Forward, 0)
        .await;
    assert!(matches!(max, Err(BusError::InvalidArgument { .. })));
    let past = store.read_all(1_000, AllFilter::All, 10, 0).await;
    assert!(
        matches!(past, Err(BusError::InvalidArgument { .. })),
        "{past:?}"
    );
    assert_eq!(
        store.stream_info("order-1").await.unwrap().last_version,
        None
    );
    assert!(
        store
            .read_all(0, AllFilter::All, 10, 0)
            .await
            .unwrap()
            .events
            .is_empty()
    );
}

/// Two writers (many, here) appending with the same expected version:
/// exactly one wins each round, every other gets a conflict that names the
/// stream's actual version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_writers_with_the_same_expected_version_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append(
            "account-1",
            ExpectedVersion::NoStream,
            vec![ev("Opened", "0")],
        )
        .await
        .unwrap();
    for round in 0..30u64 {
        let mut tasks = Vec::new();
        for writer in 0..6 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .append(
                        "account-1",
                        ExpectedVersion::Exact(round),
                        vec![ev("Deposited", &format!("{round}/{writer}"))],
                    )
                    .await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    assert_eq!(r.first_version, round + 1);
                    wins += 1;
                }
                Err(BusError::WrongExpectedVersion {
                    stream,
                    expected,
                    actual,
                }) => {
                    assert_eq!(stream, "account-1");
                    assert_eq!(expected, round.to_string());
                    assert_eq!(
                        actual,
                        Some(round + 1),
                        "the conflict names the actual version"
                    );
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(versions(&store, "account-1").await.len(), 31);
}

#[tokio::test]
async fn expected_version_kinds_and_the_conflict_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let e = store
        .append("cart-1", ExpectedVersion::Exists, vec![ev("X", "")])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "stream \"cart-1\" is at version none (no stream), not exists"
    );
    store
        .append("cart-1", ExpectedVersion::Any, vec![ev("X", "")])
        .await
        .unwrap();
    let e = store
        .append("cart-1", ExpectedVersion::NoStream, vec![ev("X", "")])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "stream \"cart-1\" is at version 0, not no_stream"
    );
    store
        .append("cart-1", ExpectedVersion::Exists, vec![ev("X", "")])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_retried_append_is_a_success_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let batch = vec![ev("A", "1").with_id("id-1"), ev("B", "2").with_id("id-2")];
    let first = store
        .append("order-7", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    store
        .append(
            "order-7",
            ExpectedVersion::Exact(1),
            vec![ev("C", "3").with_id("id-3")],
        )
        .await
        .unwrap();
    // The retry's expected version no longer holds; its ids say it landed.
    let again = store
        .append("order-7", ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.first_version, again.position),
        (first.first_version, first.position)
    );
    assert_eq!(versions(&store, "order-7").await.len(), 3);
    // Only part of it there: a conflict, not a half-append.
    let partial = store
        .append(
            "order-7",
            ExpectedVersion::Any,
            vec![ev("B", "2").with_id("id-2"), ev("D", "4").with_id("id-4")],
        )
        .await;
    assert!(
        matches!(partial, Err(BusError::WrongExpectedVersion { .. })),
        "{partial:?}"
    );
    // Another stream's id.
    let other = store
        .append(
            "order-8",
            ExpectedVersion::Any,
            vec![ev("A", "1").with_id("id-1")],
        )
        .await;
    assert!(
        matches!(other, Err(BusError::EventIdInUse { ref stream, version: 0, .. }) if stream == "order-7"),
        "{other:?}"
    );
    assert_eq!(versions(&store, "order-7").await.len(), 3);
}

#[tokio::test]
async fn all_and_its_filters_are_in_position_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append(
            "order-1",
            ExpectedVersion::Any,
            vec![ev("OrderPlaced", "o1")],
        )
        .await
        .unwrap();
    store
        .append("user-1", ExpectedVersion::Any, vec![ev("UserJoined", "u1")])
        .await
        .unwrap();
    store
        .append(
            "order-2",
            ExpectedVersion::Any,
            vec![ev("OrderPlaced", "o2"), ev("OrderPaid", "o2p")],
        )
        .await
        .unwrap();
    store
        .append(
            "$snap-order-1",
            ExpectedVersion::Any,
            vec![ev("Snapshot", "s")],
        )
        .await
        .unwrap();
    store
        .append(
            "orders-9",
            ExpectedVersion::Any,
            vec![ev("OrderPlaced", "x")],
        )
        .await
        .unwrap();

    let data = |slice: eddy_bus::AllSlice| -> Vec<String> {
        let mut last = None;
        slice
            .events
            .into_iter()
            .map(|e| {
                assert!(last < Some(e.position), "positions increase");
                last = Some(e.position);
                String::from_utf8(e.event.data.to_vec()).unwrap()
            })
            .collect()
    };
    let all = store.read_all(0, AllFilter::All, 100, 0).await.unwrap();
    assert_eq!(all.next, all.head);
    assert_eq!(
        data(all),
        ["o1", "u1", "o2", "o2p", "x"],
        "system streams left out"
    );
    let orders = store
        .read_all(0, AllFilter::Category("order".into()), 100, 0)
        .await
        .unwrap();
    assert_eq!(data(orders), ["o1", "o2", "o2p"]);
    let placed = store
        .read_all(0, AllFilter::EventType("OrderPlaced".into()), 100, 0)
        .await
        .unwrap();
    assert_eq!(data(placed), ["o1", "o2", "x"]);
    let system = store
        .read_all(0, AllFilter::StreamPrefix("$".into()), 100, 0)
        .await
        .unwrap();
    assert_eq!(data(system), ["s"]);
    // Paging: two at a time, each read going on from the last.
    let mut from = 0;
    let mut paged = Vec::new();
    loop {
        let page = store.read_all(from, AllFilter::All, 2, 0).await.unwrap();
        if page.events.is_empty() {
            break;
        }
        from = page.next;
        paged.extend(data(page));
    }
    assert_eq!(paged, ["o1", "u1", "o2", "o2p", "x"]);
}

/// A catch-up subscription started while writers append: it reads the
/// history, switches to live, and hands out every event exactly once in
/// position order — no gap and no duplicate at the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catch_up_subscription_racing_appends_has_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..200 {
        store
            .append(
                &format!("order-{}", i % 7),
                ExpectedVersion::Any,
                vec![ev("OrderPlaced", &i.to_string())],
            )
            .await
            .unwrap();
    }
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    store
                        .append(
                            &format!("order-w{w}"),
                            ExpectedVersion::Any,
                            vec![ev("ItemAdded", &format!("{w}/{i}"))],
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let total = 200 + 3 * 150;
    let mut sub = CatchUp::new(store.clone(), AllFilter::Category("order".into()), 0).batch(16);
    let mut seen = Vec::new();
    let mut went_live_at = None;
    while seen.len() < total {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), sub.next())
            .await
            .expect("every appended event arrives")
            .unwrap();
        if went_live_at.is_none() && sub.is_live() {
            went_live_at = Some(seen.len());
        }
        seen.push(e.position);
    }
    for w in writers {
        w.await.unwrap();
    }
    // Nothing more than what was appended.
    assert!(sub.try_next(0).await.unwrap().is_none());
    let all: Vec<u64> = store
        .read_all(0, AllFilter::All, 10_000, 0)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(seen, all, "every event once, in position order");
    assert!(went_live_at.is_some(), "it switched to live events");
}

#[tokio::test]
async fn stream_settings_hide_events_and_a_deleted_stream_numbers_on() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = BrokerConfig {
        timer_interval_ms: None,
        ..BrokerConfig::default()
    };
    let store = Broker::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    for i in 0..5 {
        store
            .append(
                "log-1",
                ExpectedVersion::Any,
                vec![ev("Line", &i.to_string())],
            )
            .await
            .unwrap();
    }
    let meta = |m: StreamMetadata| m;
    store
        .set_stream_metadata(
            "log-1",
            meta(StreamMetadata {
                max_count: Some(3),
                ..StreamMetadata::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        versions(&store, "log-1")
            .await
            .iter()
            .map(|v| v.0)
            .collect::<Vec<_>>(),
        [2, 3, 4]
    );
    store
        .set_stream_metadata(
            "log-1",
            StreamMetadata {
                truncate_before: Some(4),
                ..StreamMetadata::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        versions(&store, "log-1")
            .await
            .iter()
            .map(|v| v.0)
            .collect::<Vec<_>>(),
        [4]
    );

    // Max age: events older than the clock allows are not read.
    store
        .append("tmp-1", ExpectedVersion::Any, vec![ev("Old", "")])
        .await
        .unwrap();
    clock.advance_ms(10_000);
    store
        .append("tmp-1", ExpectedVersion::Any, vec![ev("New", "")])
        .await
        .unwrap();
    store
        .set_stream_metadata(
            "tmp-1",
            StreamMetadata {
                max_age_ms: Some(5_000),
                ..StreamMetadata::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        versions(&store, "tmp-1")
            .await
            .iter()
            .map(|v| v.0)
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(
        store
            .stream_info("tmp-1")
            .await
            .unwrap()
            .metadata
            .max_age_ms,
        Some(5_000)
    );

    // Delete: reads as absent; a stale expected version is refused first.
    let stale = store
        .delete_stream("log-1", ExpectedVersion::Exact(1))
        .await;
    assert!(
        matches!(
            stale,
            Err(BusError::WrongExpectedVersion {
                actual: Some(4),
                ..
            })
        ),
        "{stale:?}"
    );
    store
        .delete_stream("log-1", ExpectedVersion::Exact(4))
        .await
        .unwrap();
    let info = store.stream_info("log-1").await.unwrap();
    assert!(info.deleted);
    assert_eq!(info.last_version, None);
    assert!(versions(&store, "log-1").await.is_empty());
    assert!(matches!(
        store.delete_stream("log-1", ExpectedVersion::Any).await,
        Err(BusError::StreamNotFound(_))
    ));
    // Written again: it exists again, numbering on after the deleted events.
    let r = store
        .append(
            "log-1",
            ExpectedVersion::NoStream,
            vec![ev("Line", "again")],
        )
        .await
        .unwrap();
    assert_eq!(r.first_version, 5);
    assert_eq!(versions(&store, "log-1").await, vec![(5, "again".into())]);
    assert!(!store.stream_info("log-1").await.unwrap().deleted);
    store.close().unwrap();
}

#[tokio::test]
async fn reopening_rebuilds_versions_settings_and_remembered_ids() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .append(
                "order-1",
                ExpectedVersion::NoStream,
                vec![ev("A", "a").with_id("x-1")],
            )
            .await
            .unwrap();
        store
            .append(
                "order-1",
                ExpectedVersion::Exact(0),
                vec![ev("B", "b").with_id("x-2")],
            )
            .await
            .unwrap();
        store
            .append("order-2", ExpectedVersion::NoStream, vec![ev("A", "c")])
            .await
            .unwrap();
        store
            .delete_stream("order-2", ExpectedVersion::Any)
            .await
            .unwrap();
        store.close().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        versions(&store, "order-1").await,
        vec![(0, "a".into()), (1, "b".into())]
    );
    let conflict = store
        .append("order-1", ExpectedVersion::Exact(0), vec![ev("C", "")])
        .await;
    assert!(matches!(
        conflict,
        Err(BusError::WrongExpectedVersion {
            actual: Some(1),
            ..
        })
    ));
    let retry = store
        .append(
            "order-1",
            ExpectedVersion::Exact(0),
            vec![ev("B", "b").with_id("x-2")],
        )
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert!(store.stream_info("order-2").await.unwrap().deleted);
    let all = store.read_all(0, AllFilter::All, 100, 0).await.unwrap();
    assert_eq!(all.events.len(), 3, "$all keeps every event");
}

/// Appended events reach the bus on `es.<category>`, keyed by stream, with
/// the store's coordinates; system streams do not.
#[tokio::test]
async fn appended_events_are_published_to_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    bus.create_subscription(
        "audit",
        SubscriptionConfig::new("es.>").start_at(StartAt::Earliest),
    )
    .await
    .unwrap();
    bus.append(
        "order-1",
        ExpectedVersion::Any,
        vec![ev("OrderPlaced", "1").with_id("p-1")],
    )
    .await
    .unwrap();
    bus.append(
        "$snap-order-1",
        ExpectedVersion::Any,
        vec![ev("Snapshot", "")],
    )
    .await
    .unwrap();
    bus.append(
        "payment-1",
        ExpectedVersion::Any,
        vec![ev("PaymentTaken", "2")],
    )
    .await
    .unwrap();
    bus.append("order-1", ExpectedVersion::Any, vec![ev("OrderPaid", "3")])
        .await
        .unwrap();

    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.len() < 3 && tokio::time::Instant::now() < deadline {
        for d in bus
            .fetch(
                "audit",
                FetchOptions {
                    max: 10,
                    wait_ms: 1_000,
                },
            )
            .await
            .unwrap()
        {
            bus.ack("audit", &d.ack_id).await.unwrap();
            got.push(d.event);
        }
    }
    let header = |e: &eddy_bus::StoredEvent, n: &str| {
        e.event
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    let mut seen: Vec<(String, String, Option<String>, Option<String>)> = got
        .iter()
        .map(|e| {
            (
                e.topic.clone(),
                e.event.ty.clone(),
                e.event.key.clone(),
                header(e, "esversion"),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "es.order".into(),
                "OrderPaid".into(),
                Some("order-1".into()),
                Some("1".into())
            ),
            (
                "es.order".into(),
                "OrderPlaced".into(),
                Some("order-1".into()),
                Some("0".into())
            ),
            (
                "es.payment".into(),
                "PaymentTaken".into(),
                Some("payment-1".into()),
                Some("0".into())
            ),
        ]
    );
    let placed = got.iter().find(|e| e.event.ty == "OrderPlaced").unwrap();
    assert_eq!(placed.event.id, "p-1", "the bus event keeps the stored id");
    assert_eq!(header(placed, "esstream").as_deref(), Some("order-1"));
    let topics: BTreeSet<String> = bus
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!topics.iter().any(|t| t.contains("snap")), "{topics:?}");
    bus.close().unwrap();
}

/// A stream of large events reads in slices of about
/// `READ_RESULT_BYTES_MAX` whatever `max` asks, each saying where to go
/// on, forward and backward; paging yields every event once.
#[tokio::test]
async fn a_read_of_large_events_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let big = |i: u64| Event::new("Blob", vec![b'a' + (i % 26) as u8; 1_000_000]);
    for chunk in 0..5 {
        let events = (0..4).map(|i| big(chunk * 4 + i)).collect();
        store
            .append("blob-1", ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    let limit = eddy_broker::READ_RESULT_BYTES_MAX;
    for direction in [Direction::Forward, Direction::Backward] {
        let mut from = StreamFrom::Start;
        let mut seen = Vec::new();
        let mut slices = 0;
        loop {
            let slice = store
                .read_stream("blob-1", from, direction, 10_000)
                .await
                .unwrap();
            slices += 1;
            let bytes: usize = slice.events.iter().map(|e| e.event.data.len()).sum();
            assert!(bytes <= limit + 1_000_000, "{bytes} bytes in one read");
            assert_eq!(slice.last_version, Some(19));
            seen.extend(slice.events.iter().map(|e| e.version));
            match slice.next {
                Some(v) => from = StreamFrom::Version(v),
                None => break,
            }
        }
        assert!(
            slices > 1,
            "{direction:?}: a bounded read takes several slices"
        );
        let mut expected: Vec<u64> = (0..20).collect();
        if direction == Direction::Backward {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{direction:?}: every event once, in order");
    }
}
