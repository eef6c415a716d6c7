//! Proves `pending_bytes_max` and back-pressure: a client that pipelines
//! large reads and never reads the responses is stopped — the server reads
//! no more of its requests once its budget is spent, so its writes back up
//! into its own socket after a bounded amount, and the server holds about
//! one budget of responses for it — while another client on the same
//! server keeps being served, including a response larger than that
//! budget.
//!
//! The memory check is what needs the budget: without it the server would
//! read up to `max_in_flight_requests` (256) of the reads and hold each
//! one's 3 MiB response, 768 MiB, until the client reads. (The request
//! bytes it takes are bounded by that limit and the socket buffers either
//! way.) The server runs in this process, so its memory is this process's
//! resident memory.

mod support;

use eddy_bus::{Bus, Event, Partition, ReadFrom};
use eddy_proto::{FRAME_BYTES_CAP, Frame, Request, Response, encode_frame};
use support::{Client, Server};

const EVENT_BYTES: usize = 64 << 10;
const EVENTS: u64 = 48; // a full read is 3 MiB: more than the budget

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_stalls_only_itself() {
    let server = Server::with_small_budget("big").await;
    for _ in 0..EVENTS {
        server
            .bus
            .publish("big", Event::new("blob", vec![7u8; EVENT_BYTES]))
            .await
            .unwrap();
    }
    let read = |id| {
        let request = Request::Read {
            topic: "big".into(),
            partition: Partition(0),
            from: ReadFrom::Beginning,
            max: 1000,
        };
        let mut wire = Vec::new();
        encode_frame(&Frame::new(id, request), FRAME_BYTES_CAP, &mut wire).unwrap();
        wire
    };

    let rss_before = resident_bytes();
    let (stalled, _) = Client::connect(server.addr).await;
    let (mut good, _) = Client::connect(server.addr).await;
    let (mut accepted, mut unchanged_rounds, mut id) = (0usize, 0, 1u64);
    let mut pending = read(id);
    for round in 0..200 {
        // Write as much as the socket takes right now.
        let before = accepted;
        loop {
            match stalled.stream().try_write(&pending) {
                Ok(n) => {
                    accepted += n;
                    pending.drain(..n);
                    if pending.is_empty() {
                        id += 1;
                        pending = read(id);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        unchanged_rounds = if accepted == before {
            unchanged_rounds + 1
        } else {
            0
        };
        // Meanwhile the other client is served: a publish, and a read whose
        // response (3 MiB, in frames of 1 MiB) exceeds the budget.
        let published = good
            .call(
                2 * round + 1,
                Request::Publish {
                    topic: "big".into(),
                    events: vec![Event::new("tick", "x")],
                },
            )
            .await;
        assert!(matches!(published, Response::Published(_)), "{published:?}");
        good.send(
            2 * round + 2,
            Request::Read {
                topic: "big".into(),
                partition: Partition(0),
                from: ReadFrom::Beginning,
                max: EVENTS as u32,
            },
        )
        .await;
        let mut events = 0;
        while events < EVENTS as usize {
            match good.recv_response().await {
                (_, Response::ReadBatch(b)) => events += b.events.len(),
                other => panic!("expected a read batch, got {other:?}"),
            }
        }
        if unchanged_rounds >= 10 {
            break;
        }
    }
    assert!(
        unchanged_rounds >= 10,
        "the stalled client's writes never backed up ({accepted} bytes accepted)"
    );
    // What the server took from it is bounded by socket buffers and one
    // budget, not by what it sent: far below what it tried to send.
    assert!(accepted < 32 << 20, "{accepted} bytes accepted");
    // And what it holds for it is about one budget (1 MiB), with the good
    // client's reads (3 MiB each, one at a time): far below 768 MiB.
    let grown = resident_bytes().saturating_sub(rss_before);
    assert!(
        grown < 256 << 20,
        "the server holds {} MiB more while the client stalls",
        grown >> 20
    );
    drop(stalled);
    server.shutdown().await;
}

/// This process's resident memory (`VmRSS`), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status");
    kib * 1024
}
