//! Proves a connection whose `pending_bytes_max` is spent by requests in
//! flight still answers them: while a new request waits for budget, the
//! ones holding it go on, finish and free it. Each read here reserves the
//! whole budget (its possible response is larger), so ten pipelined reads
//! can only be answered one after the other; all ten answers must come.
//! (A design that ran a connection's requests on its reader's task and
//! stopped polling them while waiting for budget deadlocked here.)

mod support;

use eddy_bus::{Bus, Event, Partition, ReadFrom};
use eddy_proto::{Request, Response};
use support::{Client, Server};

const READS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_over_the_budget_are_all_answered() {
    let server = Server::with_small_budget("orders").await;
    server
        .bus
        .publish("orders", Event::new("Placed", "o1"))
        .await
        .unwrap();

    let (mut client, _) = Client::connect(server.addr).await;
    for id in 1..=READS {
        let read = Request::Read {
            topic: "orders".into(),
            partition: Partition(0),
            from: ReadFrom::Beginning,
            max: 10,
        };
        client.send(id, read).await;
    }
    // `recv` fails the test if an answer does not come in time.
    let mut answered = Vec::new();
    for _ in 0..READS {
        match client.recv_response().await {
            (id, Response::ReadBatch(b)) => {
                assert_eq!(b.events.len(), 1);
                answered.push(id);
            }
            other => panic!("expected a read batch, got {other:?}"),
        }
    }
    answered.sort_unstable();
    assert_eq!(answered, (1..=READS).collect::<Vec<_>>());
    server.shutdown().await;
}
