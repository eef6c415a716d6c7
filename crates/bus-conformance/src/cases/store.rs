//! The event store: expected versions, retried appends, stream and `$all`
//! reads, waiting reads, catch-up subscriptions, stream settings, delete
//! and re-create, bad input, restarts. Every case runs on a harness whose
//! bus is also an [`EventStore`] ([`StoreHarness`]).

use std::future::Future;
use std::time::Duration;

use eddy_bus::store::{APPEND_EVENTS_MAX, STORE_READ_MAX};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, BusError, CatchUp, Direction, Event, EventStore,
    ExpectedVersion, StreamFrom, StreamMetadata, StreamSlice, WAIT_MS_MAX,
};

use crate::StoreHarness;
use crate::support::assert_within;

/// A guard against a hang: the future must finish within a minute (not a
/// timing assertion; a conforming store finishes as soon as it can).
async fn settles<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still pending after a minute"))
}

/// An event of type `ty` whose data is `data`.
fn ev(ty: &str, data: &str) -> Event {
    Event::new(ty, data.to_string())
}

async fn append<S: EventStore>(
    store: &S,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<Event>,
) -> AppendResult {
    store
        .append(stream, expected, events)
        .await
        .unwrap_or_else(|e| panic!("append to {stream:?} expecting {expected}: {e:?}"))
}

async fn read<S: EventStore>(
    store: &S,
    stream: &str,
    from: StreamFrom,
    direction: Direction,
    max: u32,
) -> StreamSlice {
    store
        .read_stream(stream, from, direction, max)
        .await
        .unwrap_or_else(|e| panic!("read {stream:?} from {from:?} {direction:?}: {e:?}"))
}

async fn read_all<S: EventStore>(store: &S, from: u64, filter: AllFilter, max: u32) -> AllSlice {
    store
        .read_all(from, filter.clone(), max, 0)
        .await
        .unwrap_or_else(|e| panic!("read $all from {from} through {filter:?}: {e:?}"))
}

/// The versions of a slice's events, in order.
fn versions(slice: &StreamSlice) -> Vec<u64> {
    slice.events.iter().map(|e| e.version).collect()
}

/// The data of a stream's every readable event, forward.
async fn stream_data<S: EventStore>(store: &S, stream: &str) -> Vec<(u64, String)> {
    let slice = read(store, stream, StreamFrom::Start, Direction::Forward, 10_000).await;
    slice
        .events
        .iter()
        .map(|e| {
            (
                e.version,
                String::from_utf8_lossy(&e.event.data).into_owned(),
            )
        })
        .collect()
}

/// The data of `$all` events, checking that positions increase.
fn all_data(slice: &AllSlice) -> Vec<String> {
    let mut last = None;
    slice
        .events
        .iter()
        .map(|e| {
            assert!(
                last < Some(e.position),
                "$all positions increase: {slice:?}"
            );
            last = Some(e.position);
            String::from_utf8_lossy(&e.event.data).into_owned()
        })
        .collect()
}

/// Asserts a `WrongExpectedVersion` for `stream` naming the actual version.
#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(
    result: Result<T, BusError>,
    stream: &str,
    expected: &str,
    actual: Option<u64>,
) {
    match result {
        Err(BusError::WrongExpectedVersion {
            stream: s,
            expected: e,
            actual: a,
        }) => assert_eq!(
            (s.as_str(), e.as_str(), a),
            (stream, expected, actual),
            "the conflict names the stream, what was expected and the actual version"
        ),
        other => panic!("expected WrongExpectedVersion on {stream:?}, got {other:?}"),
    }
}

pub async fn store_append_checks_the_expected_version<H: StoreHarness>(h: &H) {
    // Proves: each kind of expected version is checked against the stream
    // (missing, then existing), a conflict names the actual version and
    // stores nothing, and a successful append numbers its events on from
    // the stream's last version, at increasing positions.
    let (store, _env) = h.open().await;
    let s = "cart-1";
    let one = || vec![ev("ItemAdded", "x")];
    assert_conflict(
        store.append(s, ExpectedVersion::Exists, one()).await,
        s,
        "exists",
        None,
    );
    assert_conflict(
        store.append(s, ExpectedVersion::Exact(0), one()).await,
        s,
        "0",
        None,
    );
    let first = append(
        &store,
        s,
        ExpectedVersion::NoStream,
        vec![ev("CartOpened", "0"), ev("ItemAdded", "1")],
    )
    .await;
    assert_eq!(
        (first.first_version, first.last_version, first.duplicate),
        (0, 1, false)
    );
    assert_conflict(
        store.append(s, ExpectedVersion::NoStream, one()).await,
        s,
        "no_stream",
        Some(1),
    );
    assert_conflict(
        store.append(s, ExpectedVersion::Exact(0), one()).await,
        s,
        "0",
        Some(1),
    );
    let exact = append(&store, s, ExpectedVersion::Exact(1), vec![ev("T", "2")]).await;
    let exists = append(&store, s, ExpectedVersion::Exists, vec![ev("T", "3")]).await;
    let any = append(&store, s, ExpectedVersion::Any, vec![ev("T", "4")]).await;
    assert_eq!(
        [exact.first_version, exists.first_version, any.first_version],
        [2, 3, 4]
    );
    assert!(first.position < exact.position && exact.position < exists.position);
    assert!(exists.position < any.position);
    let all = read(&store, s, StreamFrom::Start, Direction::Forward, 100).await;
    assert_eq!(versions(&all), [0, 1, 2, 3, 4], "conflicts stored nothing");
    assert_eq!(all.last_version, Some(4));
    assert_eq!(all.events[4].position, any.position);
    assert_eq!(all.events[1].position, first.position);
    assert_eq!(
        store.stream_info(s).await.expect("info").last_version,
        Some(4)
    );
}

pub async fn store_retried_append_is_a_duplicate_success<H: StoreHarness>(h: &H) {
    // Proves: appending events whose ids the stream holds at the versions
    // they got is a success marked duplicate — the first append's versions
    // and position, nothing stored — even when its expected version no
    // longer holds; an append that repeats only some of them is a
    // conflict, not a half-append.
    let (store, _env) = h.open().await;
    let s = "order-7";
    let batch = vec![
        ev("OrderPlaced", "a").with_id("id-1"),
        ev("ItemAdded", "b").with_id("id-2"),
    ];
    let first = append(&store, s, ExpectedVersion::NoStream, batch.clone()).await;
    append(
        &store,
        s,
        ExpectedVersion::Exact(1),
        vec![ev("OrderPaid", "c").with_id("id-3")],
    )
    .await;
    let again = append(&store, s, ExpectedVersion::NoStream, batch).await;
    assert!(again.duplicate, "a retry is marked duplicate");
    assert_eq!(
        (again.first_version, again.last_version, again.position),
        (first.first_version, first.last_version, first.position)
    );
    let partial = store
        .append(
            s,
            ExpectedVersion::Any,
            vec![
                ev("ItemAdded", "b").with_id("id-2"),
                ev("ItemAdded", "d").with_id("id-4"),
            ],
        )
        .await;
    assert!(
        matches!(partial, Err(BusError::WrongExpectedVersion { .. })),
        "{partial:?}"
    );
    assert_eq!(
        stream_data(&store, s).await,
        [(0, "a".into()), (1, "b".into()), (2, "c".into())]
    );
    let read_ids: Vec<String> = read(&store, s, StreamFrom::Start, Direction::Forward, 10)
        .await
        .events
        .into_iter()
        .map(|e| e.event.id)
        .collect();
    assert_eq!(read_ids, ["id-1", "id-2", "id-3"], "ids are kept");
}

pub async fn store_event_id_of_another_stream_is_refused<H: StoreHarness>(h: &H) {
    // Proves: an append carrying an id that is already another stream's
    // event fails with EventIdInUse naming that stream and version, and
    // stores nothing; events without an id get one each.
    let (store, _env) = h.open().await;
    append(
        &store,
        "order-1",
        ExpectedVersion::Any,
        vec![ev("A", "0"), ev("B", "1").with_id("shared-id")],
    )
    .await;
    let other = store
        .append(
            "order-2",
            ExpectedVersion::Any,
            vec![ev("C", "x"), ev("D", "y").with_id("shared-id")],
        )
        .await;
    match other {
        Err(BusError::EventIdInUse {
            id,
            stream,
            version,
        }) => assert_eq!(
            (id.as_str(), stream.as_str(), version),
            ("shared-id", "order-1", 1)
        ),
        other => panic!("expected EventIdInUse, got {other:?}"),
    }
    assert_eq!(
        store
            .stream_info("order-2")
            .await
            .expect("info")
            .last_version,
        None
    );
    let slice = read(&store, "order-1", StreamFrom::Start, Direction::Forward, 10).await;
    assert!(
        !slice.events[0].event.id.is_empty(),
        "an event without an id gets one"
    );
}

pub async fn store_read_stream_both_ways_with_next<H: StoreHarness>(h: &H) {
    // Proves: a stream reads forward and backward in pages, each saying
    // where the next starts until the end (or start) is reached; every
    // attribute of an event round-trips with its stream, version,
    // position and the store's append time; a stream never written reads
    // as empty with no last version.
    let (store, env) = h.open().await;
    let s = "cart-9";
    let full = Event {
        subject: Some("cart-9".into()),
        time_ms: Some(1_700_000_000_123),
        data_content_type: Some("application/json".into()),
        key: Some("customer-7".into()),
        correlation_id: Some("flow-1".into()),
        causation_id: Some("cmd-1".into()),
        headers: vec![("zeta".into(), "1".into()), ("alpha".into(), "2".into())],
        ..ev("CartOpened", "0").with_id("cart-9-opened")
    };
    let before = h.now_ms(&env);
    let first = append(&store, s, ExpectedVersion::NoStream, vec![full.clone()]).await;
    let after = h.now_ms(&env);
    for i in 1..5 {
        append(
            &store,
            s,
            ExpectedVersion::Any,
            vec![ev("ItemAdded", &i.to_string())],
        )
        .await;
    }
    let page = |from, direction| read(&store, s, from, direction, 2);
    let f1 = page(StreamFrom::Start, Direction::Forward).await;
    assert_eq!(
        (versions(&f1), f1.next, f1.last_version),
        (vec![0, 1], Some(2), Some(4))
    );
    let f2 = page(StreamFrom::Version(2), Direction::Forward).await;
    assert_eq!((versions(&f2), f2.next), (vec![2, 3], Some(4)));
    let f3 = page(StreamFrom::Version(4), Direction::Forward).await;
    assert_eq!((versions(&f3), f3.next), (vec![4], None));
    let b1 = page(StreamFrom::Start, Direction::Backward).await;
    assert_eq!(
        (versions(&b1), b1.next, b1.last_version),
        (vec![4, 3], Some(2), Some(4))
    );
    let b2 = page(StreamFrom::Version(2), Direction::Backward).await;
    assert_eq!((versions(&b2), b2.next), (vec![2, 1], Some(0)));
    let b3 = page(StreamFrom::Version(0), Direction::Backward).await;
    assert_eq!((versions(&b3), b3.next), (vec![0], None));
    let past = page(StreamFrom::Version(10), Direction::Forward).await;
    assert_eq!(
        (versions(&past), past.next, past.last_version),
        (vec![], None, Some(4))
    );

    let e = &f1.events[0];
    assert_eq!(e.event, full, "every attribute round-trips");
    assert_eq!(
        (e.stream.as_str(), e.version, e.position),
        (s, 0, first.position)
    );
    assert_within(
        e.timestamp_ms,
        before,
        after,
        "the append time is the store's clock",
    );

    let none = read(
        &store,
        "cart-404",
        StreamFrom::Start,
        Direction::Forward,
        10,
    )
    .await;
    assert!(none.events.is_empty());
    assert_eq!((none.last_version, none.next), (None, None));
    let info = store.stream_info("cart-404").await.expect("info");
    assert_eq!((info.last_version, info.deleted), (None, false));
    assert_eq!(info.metadata, StreamMetadata::default());
}

pub async fn store_all_filters_and_pages<H: StoreHarness>(h: &H) {
    // Proves: `$all` holds every event in position order; system streams
    // are left out unless a filter asks for them; category, type and
    // prefix filters pass what they name; paging by `next` yields each
    // event once; a read at the head is empty, and one past it refused.
    let (store, _env) = h.open().await;
    let any = ExpectedVersion::Any;
    append(&store, "order-1", any, vec![ev("OrderPlaced", "o1")]).await;
    append(&store, "user-1", any, vec![ev("UserJoined", "u1")]).await;
    append(
        &store,
        "order-2",
        any,
        vec![ev("OrderPlaced", "o2"), ev("OrderPaid", "o2p")],
    )
    .await;
    append(&store, "$snap-order-1", any, vec![ev("Snapshot", "s")]).await;
    append(&store, "orders-9", any, vec![ev("OrderPlaced", "x")]).await;

    let all = read_all(&store, 0, AllFilter::All, 100).await;
    assert_eq!(all_data(&all), ["o1", "u1", "o2", "o2p", "x"]);
    assert_eq!(all.next, all.head, "the read went through to the head");
    assert_eq!(all.events[2].stream, "order-2");
    assert_eq!(all.events[3].version, 1);
    let orders = read_all(&store, 0, AllFilter::Category("order".into()), 100).await;
    assert_eq!(all_data(&orders), ["o1", "o2", "o2p"]);
    let placed = read_all(&store, 0, AllFilter::EventType("OrderPlaced".into()), 100).await;
    assert_eq!(all_data(&placed), ["o1", "o2", "x"]);
    let system = read_all(&store, 0, AllFilter::StreamPrefix("$".into()), 100).await;
    assert_eq!(all_data(&system), ["s"]);

    let mut from = 0;
    let mut paged = Vec::new();
    loop {
        let page = read_all(&store, from, AllFilter::All, 2).await;
        assert!(page.events.len() <= 2);
        if page.events.is_empty() {
            assert_eq!(page.next, page.head);
            break;
        }
        assert!(page.next > from, "a page moves on");
        from = page.next;
        paged.extend(all_data(&page));
    }
    assert_eq!(paged, ["o1", "u1", "o2", "o2p", "x"]);
    let at_head = read_all(&store, all.head, AllFilter::All, 10).await;
    assert!(at_head.events.is_empty());
    assert_eq!(at_head.next, all.head);
    let past = store.read_all(all.head + 1, AllFilter::All, 10, 0).await;
    assert!(
        matches!(past, Err(BusError::InvalidArgument { .. })),
        "{past:?}"
    );
}

pub async fn store_read_all_waits_for_an_append<H: StoreHarness>(h: &H) {
    // Proves: a `$all` read with `wait_ms` that finds nothing returns
    // empty once the wait is over, and one that is waiting returns the
    // event appended meanwhile that passes its filter (an event that does
    // not pass does not end it).
    let (store, _env) = h.open().await;
    append(
        &store,
        "order-1",
        ExpectedVersion::Any,
        vec![ev("OrderPlaced", "old")],
    )
    .await;
    let head = read_all(&store, 0, AllFilter::All, 10).await.head;
    let quiet = settles("a short wait", store.read_all(head, AllFilter::All, 10, 50))
        .await
        .expect("a read that waits");
    assert!(quiet.events.is_empty(), "{quiet:?}");
    assert_eq!(quiet.next, head);

    let waiting = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .read_all(head, AllFilter::Category("order".into()), 10, 30_000)
                .await
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    append(
        &store,
        "user-1",
        ExpectedVersion::Any,
        vec![ev("UserJoined", "u")],
    )
    .await;
    append(
        &store,
        "order-2",
        ExpectedVersion::Any,
        vec![ev("OrderPlaced", "new")],
    )
    .await;
    let got = settles("the waiting read", waiting)
        .await
        .expect("the read task")
        .expect("the waiting read");
    assert_eq!(
        all_data(&got),
        ["new"],
        "the waiting read returns the new event"
    );
    assert_eq!(got.events[0].stream, "order-2");
}

pub async fn store_catch_up_reads_history_then_live<H: StoreHarness>(h: &H) {
    // Proves: a catch-up subscription hands out the history in position
    // order, then an event appended after it caught up, each once, and its
    // position moves past every event handed out.
    let (store, _env) = h.open().await;
    for i in 0..3 {
        let data = format!("h{i}");
        append(
            &store,
            "order-1",
            ExpectedVersion::Any,
            vec![ev("OrderPlaced", &data)],
        )
        .await;
        append(
            &store,
            "user-1",
            ExpectedVersion::Any,
            vec![ev("UserJoined", &data)],
        )
        .await;
    }
    let mut sub = CatchUp::new(store.clone(), AllFilter::Category("order".into()), 0).batch(2);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = settles("the history", sub.next()).await.expect("an event");
        seen.push(String::from_utf8_lossy(&e.event.data).into_owned());
    }
    assert_eq!(seen, ["h0", "h1", "h2"]);
    let nothing = settles("a caught-up read", sub.try_next(0))
        .await
        .expect("a read");
    assert!(nothing.is_none(), "nothing more: {nothing:?}");
    assert!(sub.is_live(), "the history is read");
    let live = append(
        &store,
        "order-1",
        ExpectedVersion::Any,
        vec![ev("OrderPaid", "live")],
    )
    .await;
    let e = settles("the live event", sub.next())
        .await
        .expect("an event");
    assert_eq!((e.position, e.version), (live.position, 3));
    assert!(sub.position() > live.position);
}

pub async fn store_settings_hide_events_and_delete_numbers_on<H: StoreHarness>(h: &H) {
    // Proves: `max_count`, `truncate_before` and `max_age_ms` hide the
    // events they name, and `stream_info` shows them; a delete checks its
    // expected version, then the stream reads as not existing (a second
    // delete: StreamNotFound); a later append re-creates it, numbering on
    // after the deleted events.
    let (store, env) = h.open().await;
    for i in 0..5 {
        append(
            &store,
            "log-1",
            ExpectedVersion::Any,
            vec![ev("Line", &i.to_string())],
        )
        .await;
    }
    let keep3 = StreamMetadata {
        max_count: Some(3),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata("log-1", keep3)
        .await
        .expect("set");
    let shown = |slice: &StreamSlice| versions(slice);
    let fwd = read(&store, "log-1", StreamFrom::Start, Direction::Forward, 100).await;
    assert_eq!(shown(&fwd), [2, 3, 4]);
    let back = read(&store, "log-1", StreamFrom::Start, Direction::Backward, 100).await;
    assert_eq!(shown(&back), [4, 3, 2]);
    assert_eq!(
        store.stream_info("log-1").await.expect("info").metadata,
        keep3
    );
    let from4 = StreamMetadata {
        truncate_before: Some(4),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata("log-1", from4)
        .await
        .expect("set");
    assert_eq!(stream_data(&store, "log-1").await, [(4, "4".into())]);

    append(
        &store,
        "tmp-1",
        ExpectedVersion::Any,
        vec![ev("Old", "old")],
    )
    .await;
    h.advance(&env, 10_000).await;
    append(
        &store,
        "tmp-1",
        ExpectedVersion::Any,
        vec![ev("New", "new")],
    )
    .await;
    let young = StreamMetadata {
        max_age_ms: Some(5_000),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata("tmp-1", young)
        .await
        .expect("set");
    assert_eq!(stream_data(&store, "tmp-1").await, [(1, "new".into())]);

    assert_conflict(
        store
            .delete_stream("log-1", ExpectedVersion::Exact(1))
            .await,
        "log-1",
        "1",
        Some(4),
    );
    assert_conflict(
        store
            .delete_stream("log-1", ExpectedVersion::NoStream)
            .await,
        "log-1",
        "no_stream",
        Some(4),
    );
    store
        .delete_stream("log-1", ExpectedVersion::Exact(4))
        .await
        .expect("delete");
    let info = store.stream_info("log-1").await.expect("info");
    assert_eq!((info.last_version, info.deleted), (None, true));
    let gone = read(&store, "log-1", StreamFrom::Start, Direction::Forward, 100).await;
    assert!(gone.events.is_empty());
    assert_eq!(gone.last_version, None);
    let again = store.delete_stream("log-1", ExpectedVersion::Any).await;
    assert!(
        matches!(again, Err(BusError::StreamNotFound(ref s)) if s == "log-1"),
        "{again:?}"
    );
    let never = store.delete_stream("log-404", ExpectedVersion::Any).await;
    assert!(
        matches!(never, Err(BusError::StreamNotFound(_))),
        "{never:?}"
    );
    assert_conflict(
        store
            .append("log-1", ExpectedVersion::Exists, vec![ev("Line", "x")])
            .await,
        "log-1",
        "exists",
        None,
    );
    let back = append(
        &store,
        "log-1",
        ExpectedVersion::NoStream,
        vec![ev("Line", "again")],
    )
    .await;
    assert_eq!(
        back.first_version, 5,
        "numbering goes on after the deleted events"
    );
    assert_eq!(stream_data(&store, "log-1").await, [(5, "again".into())]);
    let info = store.stream_info("log-1").await.expect("info");
    assert_eq!((info.last_version, info.deleted), (Some(5), false));
}

pub async fn store_bad_input_is_refused<H: StoreHarness>(h: &H) {
    // Proves: bad stream names, empty or oversized appends, read sizes
    // out of range, a wait over the limit and a position past the head
    // each get their typed error, and change nothing.
    let (store, _env) = h.open().await;
    let any = ExpectedVersion::Any;
    let start = (StreamFrom::Start, Direction::Forward);
    for bad in ["", "order 1", "a..b", "$", "ordér-1"] {
        let r = store.append(bad, any, vec![ev("X", "")]).await;
        assert!(
            matches!(r, Err(BusError::InvalidName { .. })),
            "append {bad:?}: {r:?}"
        );
        let r = store.read_stream(bad, start.0, start.1, 10).await;
        assert!(
            matches!(r, Err(BusError::InvalidName { .. })),
            "read {bad:?}: {r:?}"
        );
        let r = store.stream_info(bad).await;
        assert!(
            matches!(r, Err(BusError::InvalidName { .. })),
            "info {bad:?}: {r:?}"
        );
        let r = store.delete_stream(bad, any).await;
        assert!(
            matches!(r, Err(BusError::InvalidName { .. })),
            "delete {bad:?}: {r:?}"
        );
        let r = store
            .set_stream_metadata(bad, StreamMetadata::default())
            .await;
        assert!(
            matches!(r, Err(BusError::InvalidName { .. })),
            "meta {bad:?}: {r:?}"
        );
    }
    let empty = store.append("order-1", any, vec![]).await;
    assert!(
        matches!(empty, Err(BusError::InvalidArgument { .. })),
        "{empty:?}"
    );
    let many = vec![ev("X", ""); APPEND_EVENTS_MAX + 1];
    let too_many = store.append("order-1", any, many).await;
    assert!(
        matches!(too_many, Err(BusError::InvalidArgument { .. })),
        "{too_many:?}"
    );
    let no_type = store.append("order-1", any, vec![ev("", "")]).await;
    assert!(no_type.is_err(), "an event without a type: {no_type:?}");
    for max in [0, STORE_READ_MAX + 1] {
        let r = store.read_stream("order-1", start.0, start.1, max).await;
        assert!(
            matches!(r, Err(BusError::InvalidArgument { .. })),
            "max {max}: {r:?}"
        );
        let r = store.read_all(0, AllFilter::All, max, 0).await;
        assert!(
            matches!(r, Err(BusError::InvalidArgument { .. })),
            "max {max}: {r:?}"
        );
    }
    let long = store.read_all(0, AllFilter::All, 10, WAIT_MS_MAX + 1).await;
    assert!(
        matches!(long, Err(BusError::InvalidArgument { .. })),
        "{long:?}"
    );
    let head = read_all(&store, 0, AllFilter::All, 10).await;
    assert!(head.events.is_empty(), "nothing was stored: {head:?}");
    let past = store.read_all(head.head + 1, AllFilter::All, 10, 0).await;
    assert!(
        matches!(past, Err(BusError::InvalidArgument { .. })),
        "{past:?}"
    );
    assert_eq!(
        store
            .stream_info("order-1")
            .await
            .expect("info")
            .last_version,
        None
    );
}

pub async fn store_restart_keeps_streams_ids_and_settings<H: StoreHarness>(h: &H) {
    // Proves: after a restart, streams keep their versions, positions and
    // settings, a deleted stream stays deleted, a retried append is still
    // a duplicate, and new appends number on.
    let (store, env) = h.open().await;
    let placed = vec![
        ev("OrderPlaced", "0").with_id("o-0"),
        ev("ItemAdded", "1").with_id("o-1"),
    ];
    let first = append(&store, "order-1", ExpectedVersion::NoStream, placed.clone()).await;
    let settings = StreamMetadata {
        max_count: Some(10),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata("order-1", settings)
        .await
        .expect("set");
    append(&store, "tmp-1", ExpectedVersion::Any, vec![ev("T", "t")]).await;
    store
        .delete_stream("tmp-1", ExpectedVersion::Any)
        .await
        .expect("delete");
    let before = read_all(&store, 0, AllFilter::All, 100).await;

    let store = h.restart(store, &env).await;
    let info = store.stream_info("order-1").await.expect("info");
    assert_eq!((info.last_version, info.metadata), (Some(1), settings));
    assert!(store.stream_info("tmp-1").await.expect("info").deleted);
    let after = read_all(&store, 0, AllFilter::All, 100).await;
    assert_eq!(after.events, before.events, "$all is the same");
    let retry = append(&store, "order-1", ExpectedVersion::NoStream, placed).await;
    assert!(retry.duplicate, "ids are remembered across a restart");
    assert_eq!(retry.position, first.position);
    let next = append(
        &store,
        "order-1",
        ExpectedVersion::Exact(1),
        vec![ev("OrderPaid", "2")],
    )
    .await;
    assert_eq!(next.first_version, 2);
    assert!(next.position > first.position);
}
