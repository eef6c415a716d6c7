//! Proves: a client may send many requests before reading any response
//! (pipelining); every one is answered exactly once, with its own request
//! id and its own response kind, whatever order they finish in.

mod support;

use std::collections::HashMap;

use eddy_bus::{Event, TopicConfig};
use eddy_proto::{FRAME_BYTES_CAP, Frame, Request, Response, encode_frame};
use eddy_server::ServerConfig;
use support::{Client, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_answered_by_id() {
    let server = Server::start(ServerConfig::default()).await;
    let (mut c, welcome) = Client::connect(server.addr).await;
    let created = c
        .call(
            1,
            Request::CreateTopic {
                name: "pipe".into(),
                config: TopicConfig::with_partitions(1),
            },
        )
        .await;
    assert!(matches!(created, Response::TopicCreated(_)));

    // 200 requests in one write, ids 1000.., three kinds interleaved.
    let count = 200u64;
    assert!(count <= u64::from(welcome.max_in_flight_requests));
    let mut wire = Vec::new();
    for i in 0..count {
        let request = match i % 3 {
            0 => Request::Publish {
                topic: "pipe".into(),
                events: vec![Event::new("Tick", format!("{i}"))],
            },
            1 => Request::Ping,
            _ => Request::DescribeTopic {
                name: "missing".into(),
            },
        };
        encode_frame(&Frame::new(1000 + i, request), FRAME_BYTES_CAP, &mut wire).expect("encode");
    }
    c.send_bytes(&wire).await;

    let mut answers = HashMap::new();
    for _ in 0..count {
        let (id, response) = c.recv_response().await;
        assert!(
            answers.insert(id, response).is_none(),
            "request {id} answered twice"
        );
    }
    let mut offsets = Vec::new();
    for i in 0..count {
        let response = answers.remove(&(1000 + i)).expect("every request answered");
        match (i % 3, response) {
            (0, Response::Published(p)) => offsets.push(p[0].offset.0),
            (1, Response::Pong) => {}
            (2, Response::Error(e)) => assert_eq!(e.code, 2001),
            (kind, other) => panic!("request {i} (kind {kind}) got {other:?}"),
        }
    }
    assert!(answers.is_empty(), "answers to ids never sent: {answers:?}");
    offsets.sort_unstable();
    let expected: Vec<u64> = (0..offsets.len() as u64).collect();
    assert_eq!(offsets, expected, "each publish stored once");

    // The connection still works afterwards.
    assert_eq!(c.call(5000, Request::Ping).await, Response::Pong);
    drop(c);
    server.shutdown().await;
}
