//! Proves the event store through the server: each store request gets its
//! own response kind (a conflict its 7001 error with the actual version),
//! a waiting `ReadAll` is a long poll that holds up nothing else on the
//! connection and is answered when an append lands, and a stream slice
//! too large for one frame continues over frames within the limit.

mod support;

use bytes::Bytes;
use eddy_bus::{AllFilter, Direction, Event, ExpectedVersion, StreamFrom, StreamMetadata};
use eddy_proto::{FRAME_BYTES_MIN, Message, Request, Response};
use eddy_server::ServerConfig;
use support::{Client, Server};

fn append(stream: &str, expected: ExpectedVersion, events: Vec<Event>) -> Request {
    Request::Append {
        stream: stream.into(),
        expected,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_request_is_answered_with_its_kind() {
    let server = Server::start(ServerConfig::default()).await;
    let (mut c, _) = Client::connect(server.addr).await;
    let placed = Event::new("OrderPlaced", "{}").with_id("e-1");
    match c
        .call(
            1,
            append("order-1", ExpectedVersion::NoStream, vec![placed]),
        )
        .await
    {
        Response::Appended(r) => assert_eq!((r.first_version, r.duplicate), (0, false)),
        other => panic!("{other:?}"),
    }
    match c
        .call(
            2,
            append(
                "order-1",
                ExpectedVersion::Exact(5),
                vec![Event::new("X", "")],
            ),
        )
        .await
    {
        Response::Error(e) => {
            assert_eq!(e.code, 7001);
            let err = e.to_bus_error();
            assert!(
                matches!(
                    err,
                    eddy_bus::BusError::WrongExpectedVersion {
                        actual: Some(0),
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let read = Request::ReadStream {
        stream: "order-1".into(),
        from: StreamFrom::Start,
        direction: Direction::Backward,
        max: 10,
    };
    match c.call(3, read).await {
        Response::StreamSlice(s) => {
            assert_eq!(s.events.len(), 1);
            assert_eq!(s.events[0].event.id, "e-1");
            assert_eq!((s.last_version, s.next), (Some(0), None));
        }
        other => panic!("{other:?}"),
    }
    let metadata = StreamMetadata {
        max_count: Some(5),
        ..StreamMetadata::default()
    };
    let set = Request::SetStreamMetadata {
        stream: "order-1".into(),
        metadata,
    };
    assert_eq!(c.call(4, set).await, Response::MetadataSet);
    let info = Request::StreamInfo {
        stream: "order-1".into(),
    };
    match c.call(5, info).await {
        Response::StreamInfoShown(i) => {
            assert_eq!(
                (i.last_version, i.metadata, i.deleted),
                (Some(0), metadata, false)
            );
        }
        other => panic!("{other:?}"),
    }
    let delete = Request::DeleteStream {
        stream: "order-1".into(),
        expected: ExpectedVersion::Exact(0),
    };
    assert_eq!(c.call(6, delete.clone()).await, Response::StreamDeleted);
    match c.call(7, delete).await {
        Response::Error(e) => assert_eq!(e.code, 7002),
        other => panic!("{other:?}"),
    }
    drop(c);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_all_is_answered_when_an_append_lands() {
    let server = Server::start(ServerConfig::default()).await;
    let (mut c, _) = Client::connect(server.addr).await;
    // The store is empty: this read waits (up to 30 s).
    c.send(
        1,
        Request::ReadAll {
            from: 0,
            filter: AllFilter::Category("order".into()),
            max: 10,
            wait_ms: 30_000,
        },
    )
    .await;
    // Meanwhile the connection serves other requests.
    assert_eq!(c.call(2, Request::Ping).await, Response::Pong);
    let user = append(
        "user-1",
        ExpectedVersion::Any,
        vec![Event::new("Joined", "")],
    );
    assert!(matches!(c.call(3, user).await, Response::Appended(_)));
    // An event that does not pass the filter does not end the wait; one
    // that does, does.
    c.send(
        4,
        append(
            "order-1",
            ExpectedVersion::Any,
            vec![Event::new("OrderPlaced", "")],
        ),
    )
    .await;
    let mut slice = None;
    for _ in 0..2 {
        match c.recv_response().await {
            (1, Response::AllSlice(s)) => slice = Some(s),
            (4, Response::Appended(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let slice = slice.expect("the read was answered");
    assert_eq!(slice.events.len(), 1);
    assert_eq!(slice.events[0].stream, "order-1");
    assert_eq!(slice.next, slice.head);
    drop(c);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_stream_slice_continues_over_frames() {
    let config = ServerConfig {
        max_frame_bytes: FRAME_BYTES_MIN,
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;
    let (mut c, welcome) = Client::connect(server.addr).await;
    assert_eq!(welcome.max_frame_bytes, FRAME_BYTES_MIN);
    let events: Vec<Event> = (0..30)
        .map(|i| Event::new("Line", Bytes::from(vec![b'a' + i as u8; 6000])))
        .collect();
    for chunk in events.chunks(5) {
        let r = c
            .call(1, append("log-1", ExpectedVersion::Any, chunk.to_vec()))
            .await;
        assert!(matches!(r, Response::Appended(_)), "{r:?}");
    }
    c.send(
        2,
        Request::ReadStream {
            stream: "log-1".into(),
            from: StreamFrom::Start,
            direction: Direction::Forward,
            max: 100,
        },
    )
    .await;
    let mut frames = 0;
    let mut whole: Option<Response> = None;
    loop {
        let frame = c.recv().await.expect("a frame");
        assert_eq!(frame.request_id, 2);
        frames += 1;
        let Message::Response(r) = frame.message else {
            panic!("a response")
        };
        match &mut whole {
            None => whole = Some(r),
            Some(w) => w.absorb(r).expect("the same kind"),
        }
        if !frame.more {
            break;
        }
    }
    assert!(frames > 1, "{frames} frame(s)");
    match whole {
        Some(Response::StreamSlice(s)) => {
            let versions: Vec<u64> = s.events.iter().map(|e| e.version).collect();
            assert_eq!(versions, (0..30).collect::<Vec<_>>());
            assert_eq!((s.last_version, s.next), (Some(29), None));
            assert!(
                s.events
                    .iter()
                    .zip(&events)
                    .all(|(r, e)| r.event.data == e.data)
            );
        }
        other => panic!("{other:?}"),
    }
    drop(c);
    server.shutdown().await;
}
