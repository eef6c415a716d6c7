//! `eddy demo shop` through the real binary: in one process on an embedded
//! bus, and as one process per service against a real `eddy serve`; then
//! `eddy trace` draws an order's flow from what the run left on the bus.

mod support;

use support::{Server, run};

/// The run id the demo printed (`… (seed 7, run abc123)`).
fn run_id(stdout: &str) -> String {
    let at = stdout.find("run ").expect("the banner names the run") + 4;
    stdout[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

#[test]
fn the_shop_runs_in_one_process_and_its_orders_can_be_traced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shop");
    let data = data.to_str().unwrap();
    let demo = run(
        &[
            "demo",
            "shop",
            "--dir",
            data,
            "--orders",
            "30",
            "--rate",
            "0",
            "--seed",
            "7",
            "--backoff-base-ms",
            "10",
            "--outage-ms",
            "0",
            "--out-of-stock-rate",
            "0",
            "--payment-failure-rate",
            "0",
            "--email-failure-rate",
            "0",
        ],
        &[],
        None,
    );
    demo.ok().stdout_has(&[
        "placed 30",
        "shipped 30",
        "not final 0",
        "in this process",
        "in the processor's embedded store",
        "(no --postgres given)",
        "analytics processor: ",
    ]);
    // The analytics table: one minute (or two, if the run straddled one)
    // adding up to the orders placed and shipped.
    let totals = |stdout: &str| {
        let mut placed_shipped = (0, 0);
        for line in stdout.lines().filter(|l| l.contains(" UTC ")) {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let n = |i: usize| cells[cells.len() - 6 + i].parse::<u32>().unwrap();
            placed_shipped.0 += n(1);
            placed_shipped.1 += n(3);
        }
        placed_shipped
    };
    assert_eq!(totals(&demo.stdout), (30, 30), "{}", demo.stdout);
    // Alone, recomputing from the start: the same table.
    let replay = run(
        &[
            "demo",
            "analytics",
            "--dir",
            data,
            "--replay-from",
            "2020-01-01T00:00:00Z",
            "--metrics",
        ],
        &[],
        None,
    );
    replay
        .ok()
        .stdout_has(&["replaying from 2020-01-01T00:00:00.000Z"]);
    assert_eq!(totals(&replay.stdout), (30, 30), "{}", replay.stdout);
    let order = format!("o-{}-3", run_id(&demo.stdout));
    let trace = run(&["trace", &order, "--dir", data], &[], None);
    trace.ok().stdout_has(&[
        "sequenceDiagram",
        "p_storefront->>p_Event_Bus: OrderPlaced (shop.orders)",
        "p_Event_Bus->>p_payment: InventoryReserved",
        "p_shipping->>p_Event_Bus: ShipmentCreated (shop.shipping)",
        "p_order->>p_Event_Bus: OrderShipped (shop.orders)",
    ]);
    run(&["trace", "o-nothing-1", "--dir", data], &[], None)
        .code(5)
        .stderr_has(&["no event on the bus has the id or the correlation id"]);
}

#[test]
fn the_shop_runs_as_a_process_per_service_against_a_server() {
    let server = Server::start();
    let demo = server.eddy(&[
        "demo",
        "shop",
        "--server",
        server.addr(),
        "--orders",
        "40",
        "--rate",
        "200",
        "--seed",
        "11",
        "--backoff-base-ms",
        "10",
        "--email-failure-rate",
        "1",
        "--outage-at-ms",
        "0",
        "--outage-ms",
        "150",
    ]);
    demo.ok().stdout_has(&[
        "placed 40",
        "not final 0",
        "one process each",
        "dead-lettered: ",
    ]);
    // Every email fails at first: each order's notification was retried.
    let order = format!("o-{}-0", run_id(&demo.stdout));
    server.eddy(&["trace", &order]).ok().stdout_has(&[
        "Note over p_notification: ✗ delivery 1",
        "participant p_order as order",
    ]);
}
