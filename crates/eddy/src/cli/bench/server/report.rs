//! The results as a table on stdout, printed as they come in, and as a
//! markdown section. Both render the same rows.

use std::fmt::Write as _;
use std::time::Duration;

use super::process::{FSYNC, ServerProcess};
use super::sampler::{self, Peak};
use super::{
    HTTP_TOPIC, Http, IDLE_SETTLE, NAME, Native, NativeLatency, PUBLISH_PARTITIONS, PUBLISH_ROUNDS,
    Plan, Results, ServerInfo, http,
};
use crate::cli::bench::broker::consume::{self, Consume, Tally};
use crate::cli::bench::broker::latency::{self, Latency};
use crate::cli::bench::broker::publish::{self, Publish, PublishRun};
use crate::cli::bench::memory::Rss;
use crate::cli::bench::report::{Row, RunInfo, Table};
use crate::cli::bench::target::{self, Judged};
use crate::cli::bench::units::{self, bytes, duration, grouped, percent};

/// The table's columns; numbers are right-aligned.
pub(super) const TABLE: Table = Table {
    columns: [
        "workload",
        "event",
        "batch",
        "tasks",
        "connections",
        "fsync",
        "result",
        "MiB/s",
        "vs embedded",
        "notes",
    ],
    widths: [24, 6, 6, 7, 13, 22, 18, 7, 11],
    right_aligned: [false, true, true, true, false, false, true, true, true],
};

pub(super) fn print_preamble(plan: &Plan, run: &RunInfo) {
    run.print_heading(NAME);
    println!(
        "publish workloads: {:.2} s each (embedded and native in {PUBLISH_ROUNDS} interleaved \
         rounds); latency: {:.2} s each; backlogs of {} events drained",
        plan.run_time.as_secs_f64(),
        plan.latency_time.as_secs_f64(),
        grouped(plan.consume_events as f64),
    );
    if plan.quick {
        println!("quick run: short workloads and small sizes, figures are indicative only");
    }
}

pub(super) fn print_server(server: &ServerProcess) {
    println!(
        "server: eddy {} (pid {})",
        server.args.join(" "),
        server.pid()
    );
    println!("  native protocol on {}", server.native);
    match server.http {
        Some(addr) => println!("  HTTP on {addr}"),
        None => println!("  no HTTP listener in its banner: the HTTP rows are skipped"),
    }
    println!();
}

pub(super) fn print_idle(idle: &Rss) {
    TABLE.print_row(&idle_row(idle));
}

pub(super) fn print_embedded_publish(p: &Publish, rates: &[f64]) {
    TABLE.print_row(&embedded_publish_row(p, rates));
}

pub(super) fn print_native_publish(n: &Native<PublishRun>, embedded: &Publish) {
    TABLE.print_row(&native_publish_row(n, embedded));
}

pub(super) fn print_http_publish(h: &Http<PublishRun>, embedded: &Publish) {
    TABLE.print_row(&http_publish_row(h, embedded));
}

pub(super) fn print_embedded_consume(c: &Consume) {
    TABLE.print_row(&embedded_consume_row(c));
}

pub(super) fn print_native_consume(n: &Native<Tally>, embedded: &Consume, preload: Duration) {
    TABLE.print_row(&native_consume_row(n, embedded, preload));
}

pub(super) fn print_http_consume(h: &Http<Tally>, embedded: &Consume, events: u64) {
    TABLE.print_row(&http_consume_row(h, embedded, events));
}

pub(super) fn print_embedded_latency(l: &Latency) {
    TABLE.print_row(&embedded_latency_row(l));
}

pub(super) fn print_native_latency(l: &NativeLatency) {
    TABLE.print_row(&native_latency_row(l));
}

pub(super) fn print_load(server: &ServerInfo) {
    TABLE.print_row(&load_row(server));
}

pub(super) fn print_stop(server: &ServerInfo) {
    TABLE.print_row(&stop_row(server));
}

/// Events/s of a drain of `events`.
pub(super) fn drain_rate(events: u64, t: &Tally) -> f64 {
    units::per_sec(events, t.elapsed)
}

/// ` over 3 interleaved rounds (a / b / c events/s)`, or nothing for a
/// workload run once.
fn rounds_note(rates: &[f64]) -> String {
    if rates.len() < 2 {
        return String::new();
    }
    let each: Vec<String> = rates.iter().map(|r| grouped(*r)).collect();
    format!(
        " over {} interleaved rounds ({} events/s)",
        rates.len(),
        each.join(" / ")
    )
}

fn peak_note(peak: &Peak) -> String {
    if peak.samples == 0 {
        return "server VmRSS not sampled (too short)".into();
    }
    format!(
        "server VmRSS peak {} ({} samples)",
        bytes(peak.bytes),
        grouped(peak.samples as f64)
    )
}

fn idle_row(idle: &Rss) -> Row {
    [
        "server memory, idle".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        FSYNC.into(),
        bytes(idle.total),
        "-".into(),
        "-".into(),
        format!(
            "VmRSS of the `eddy serve` process (RssAnon {}, RssFile {}) on an empty data \
             folder, read {} after one client connected, listed the topics and disconnected, \
             before any workload",
            bytes(idle.anon),
            bytes(idle.file),
            duration(IDLE_SETTLE),
        ),
    ]
}

fn embedded_publish_row(p: &Publish, rates: &[f64]) -> Row {
    [
        "embedded publish_batch".into(),
        bytes(publish::VALUE_BYTES as u64),
        publish::BATCH.to_string(),
        publish::WRITERS.to_string(),
        "in-process".into(),
        p.config.fsync.to_string(),
        format!("{} events/s", grouped(p.events_per_sec())),
        format!("{:.1}", p.payload_mib_per_sec()),
        "100.0%".into(),
        format!(
            "{} events in {}{}, each with its own id; {} partitions; a Broker in the bench \
             process (BrokerConfig::default()); the reference of *vs embedded* for the \
             publish rows",
            grouped(p.events as f64),
            duration(p.elapsed),
            rounds_note(rates),
            p.partitions,
        ),
    ]
}

fn native_publish_row(n: &Native<PublishRun>, embedded: &Publish) -> Row {
    let r = &n.result;
    [
        "native publish_batch".into(),
        bytes(publish::VALUE_BYTES as u64),
        publish::BATCH.to_string(),
        publish::WRITERS.to_string(),
        n.connections.column().into(),
        FSYNC.into(),
        format!("{} events/s", grouped(r.events_per_sec())),
        format!("{:.1}", r.payload_mib_per_sec()),
        percent(r.events_per_sec() / embedded.events_per_sec()),
        format!(
            "{} events in {}{}, each with its own id, through eddy-client ({}, requests \
             pipelined); {} partitions; {}",
            grouped(r.events as f64),
            duration(r.elapsed),
            rounds_note(&n.rates),
            n.connections.describe(publish::WRITERS),
            PUBLISH_PARTITIONS,
            peak_note(&n.server),
        ),
    ]
}

/// A row for an HTTP workload that did not run: `name` and the reason.
fn http_not_run<T>(name: &str, event: String, batch: String, h: &Http<T>) -> Option<Row> {
    let (result, why) = match h {
        Http::Ran { .. } => return None,
        Http::Skipped => (
            "skipped",
            "skipped: no HTTP listener (the server's banner has no `http:` line)".to_string(),
        ),
        Http::Failed(e) => ("failed", format!("failed: {e}")),
    };
    Some([
        name.into(),
        event,
        batch,
        "4".into(),
        "keep-alive".into(),
        FSYNC.into(),
        result.into(),
        "-".into(),
        "-".into(),
        why,
    ])
}

fn http_publish_row(h: &Http<PublishRun>, embedded: &Publish) -> Row {
    let name = "http POST events";
    let event = bytes(publish::VALUE_BYTES as u64);
    if let Some(row) = http_not_run(name, event.clone(), publish::BATCH.to_string(), h) {
        return row;
    }
    let Http::Ran { result: r, server } = h else {
        unreachable!("handled above")
    };
    [
        name.into(),
        event,
        publish::BATCH.to_string(),
        publish::WRITERS.to_string(),
        "keep-alive".into(),
        FSYNC.into(),
        format!("{} events/s", grouped(r.events_per_sec())),
        format!("{:.1}", r.payload_mib_per_sec()),
        percent(r.events_per_sec() / embedded.events_per_sec()),
        format!(
            "{} events in {}, each with its own id: POST /v1/topics/{HTTP_TOPIC}/events, a \
             JSON array of {} events with `data_base64`, {} tasks sharing one HTTP client \
             (a kept-alive connection per task); {} partitions; informational; {}",
            grouped(r.events as f64),
            duration(r.elapsed),
            publish::BATCH,
            publish::WRITERS,
            PUBLISH_PARTITIONS,
            peak_note(server),
        ),
    ]
}

fn embedded_consume_row(c: &Consume) -> Row {
    [
        "embedded fetch + ack_all".into(),
        bytes(consume::EVENT_BYTES as u64),
        format!("≤ {}", consume::FETCH_MAX),
        consume::CONSUMERS.to_string(),
        "in-process".into(),
        "always (preload never)".into(),
        format!("{} events/s", grouped(c.events_per_sec())),
        format!("{:.1}", c.payload_mib_per_sec()),
        "100.0%".into(),
        format!(
            "{} events drained in {}, each acked exactly once (checked); {} partitions; \
             fetch wait {} ms; {} fetches ({} empty), {} ack_all calls; preloaded with fsync \
             never, then reopened with always; the reference of *vs embedded* for the \
             consume rows",
            grouped(c.events as f64),
            duration(c.elapsed),
            consume::PARTITIONS,
            consume::FETCH_WAIT_MS,
            grouped(c.fetches as f64),
            grouped(c.empty_fetches as f64),
            grouped(c.ack_calls as f64),
        ),
    ]
}

fn native_consume_row(n: &Native<Tally>, embedded: &Consume, preload: Duration) -> Row {
    let t = &n.result;
    let rate = drain_rate(embedded.events, t);
    [
        "native fetch + ack_all".into(),
        bytes(consume::EVENT_BYTES as u64),
        format!("≤ {}", consume::FETCH_MAX),
        consume::CONSUMERS.to_string(),
        n.connections.column().into(),
        FSYNC.into(),
        format!("{} events/s", grouped(rate)),
        format!("{:.1}", rate * consume::EVENT_BYTES as f64 / units::MIB),
        percent(rate / embedded.events_per_sec()),
        format!(
            "{} events drained in {} through eddy-client ({}), each acked exactly once \
             (checked), on a subscription of its own; fetch wait {} ms; {} fetches ({} \
             empty), {} ack_all calls; the backlog was preloaded through the server (fsync \
             always) in {}; {}",
            grouped(embedded.events as f64),
            duration(t.elapsed),
            n.connections.describe(consume::CONSUMERS),
            consume::FETCH_WAIT_MS,
            grouped(t.fetches as f64),
            grouped(t.empty_fetches as f64),
            grouped(t.ack_calls as f64),
            duration(preload),
            peak_note(&n.server),
        ),
    ]
}

fn http_consume_row(h: &Http<Tally>, embedded: &Consume, events: u64) -> Row {
    let name = "http fetch + ack";
    let event = bytes(consume::EVENT_BYTES as u64);
    let batch = format!("≤ {}", consume::FETCH_MAX);
    if let Some(row) = http_not_run(name, event.clone(), batch.clone(), h) {
        return row;
    }
    let Http::Ran { result: t, server } = h else {
        unreachable!("handled above")
    };
    let rate = drain_rate(events, t);
    [
        name.into(),
        event,
        batch,
        consume::CONSUMERS.to_string(),
        "keep-alive".into(),
        FSYNC.into(),
        format!("{} events/s", grouped(rate)),
        format!("{:.1}", rate * consume::EVENT_BYTES as f64 / units::MIB),
        percent(rate / embedded.events_per_sec()),
        format!(
            "{} events drained in {}: POST /v1/subscriptions/bench-http/fetch \
             {{\"max\":{},\"wait_ms\":{}}}, then POST …/ack with the ack ids, {} tasks sharing \
             one HTTP client; the same backlog as the native rows, on a subscription of its \
             own; checked over the native protocol: all acked, none redelivered, nothing \
             left; {} fetches ({} empty), {} acks; informational; {}",
            grouped(events as f64),
            duration(t.elapsed),
            consume::FETCH_MAX,
            http::FETCH_WAIT_MS,
            consume::CONSUMERS,
            grouped(t.fetches as f64),
            grouped(t.empty_fetches as f64),
            grouped(t.ack_calls as f64),
            peak_note(server),
        ),
    ]
}

fn latency_row(name: &str, connections: &str, l: &Latency, notes: String) -> Row {
    [
        name.into(),
        bytes(latency::EVENT_BYTES as u64),
        "1".into(),
        format!("1 + {}", latency::CONSUMERS),
        connections.into(),
        "always".into(),
        format!("p99 {}", duration(l.quantile(0.99))),
        "-".into(),
        "-".into(),
        notes,
    ]
}

fn embedded_latency_row(l: &Latency) -> Row {
    latency_row(
        "embedded latency",
        "in-process",
        l,
        format!("{}; informational", l.notes()),
    )
}

fn native_latency_row(n: &NativeLatency) -> Row {
    latency_row(
        "native latency",
        "1 pub + 1 sub",
        &n.result,
        format!(
            "{}; the publisher's and the consumers' requests go through two eddy-client \
             connections; {}",
            n.result.notes(),
            peak_note(&n.server)
        ),
    )
}

fn load_row(s: &ServerInfo) -> Row {
    [
        "server memory, load".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        FSYNC.into(),
        format!("peak {}", bytes(s.load.bytes)),
        "-".into(),
        "-".into(),
        format!(
            "highest VmRSS of the server over {} readings every {} during the native publish \
             workloads; highest over the whole run (VmHWM, read before stopping): {}",
            grouped(s.load.samples as f64),
            duration(sampler::PERIOD),
            bytes(s.high_water),
        ),
    ]
}

fn stop_row(s: &ServerInfo) -> Row {
    let last = s
        .stopped
        .last_lines
        .last()
        .map_or("nothing".to_string(), |l| format!("`{l}`"));
    [
        "server stop".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        FSYNC.into(),
        format!(
            "{} in {}",
            exit(&s.stopped.status),
            duration(s.stopped.time)
        ),
        "-".into(),
        "-".into(),
        format!("SIGTERM, then waited for the process; its last line on stdout: {last}"),
    ]
}

fn exit(status: &std::process::ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit {code}"),
        None => status.to_string(),
    }
}

/// The whole markdown section: context, the table and the targets.
pub(super) fn markdown(results: &Results, judged: &[Judged]) -> String {
    let mut md = results.run.markdown_heading(NAME);
    md.push_str(&method(results));
    md.push_str(&TABLE.markdown(&all_rows(results)));
    md.push_str(&target::markdown(judged));
    md
}

fn method(results: &Results) -> String {
    let plan = &results.plan;
    let s = &results.server;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "The server was this executable, started as:\n\n```sh\neddy {}\n```\n",
        s.args.join(" ")
    );
    let http = match s.http {
        Some(addr) => format!("HTTP on {addr}"),
        None => "no HTTP listener in its banner, so the HTTP rows were skipped".into(),
    };
    let _ = writeln!(
        text,
        "It listened on loopback (native protocol on {}; {http}) and ran on a fresh data \
         folder inside the bench directory. The bench process is its client: one Tokio \
         multi-thread runtime (a worker per CPU) for the embedded broker and the clients, \
         sharing the machine's CPUs with the server. *fsync* is the durability of every \
         row: under `always` a publish or ack returns only after an fsync that covers it \
         (group commit), in the bench process (embedded rows) or in the server; only the \
         embedded consume row's backlog is loaded under `never`, and that load is not \
         timed. Each publish row runs for {:.2} s: 4 tasks publish batches of 100 events of \
         1 KiB, each with its own id, to a fresh topic of {PUBLISH_PARTITIONS} partitions \
         (deleted afterwards); *MiB/s* counts event data only. The embedded and native \
         publish rows run in {PUBLISH_ROUNDS} interleaved rounds (embedded, native one way, \
         the other, and again), each a third of that time, and give the total over the \
         rounds: the disk's flush speed drifts from second to second. Each consume row drains a \
         backlog of {} events of 100 B with 4 consumers of one shared subscription (fetch up \
         to 500, then one ack for all), timed from the first fetch to the return of the ack \
         that completed it. *vs embedded* divides events/s by the embedded row of the same \
         workload, measured in the same run (the server stays up, idle, meanwhile). The latency rows send 10,000 \
         events/s for {:.2} s and time each event from just before its `publish` call to \
         the return of the fetch that delivered it; every sample is kept, percentiles are \
         nearest-rank. Memory is the server's `VmRSS` from `/proc/<pid>/status`.\n",
        s.native,
        plan.run_time.as_secs_f64(),
        grouped(plan.consume_events as f64),
        plan.latency_time.as_secs_f64(),
    );
    if plan.quick {
        text.push_str(
            "This was a `--quick` run: short workloads and small sizes, \
             figures are indicative only.\n\n",
        );
    }
    text
}

fn all_rows(r: &Results) -> Vec<Row> {
    let mut rows = vec![
        idle_row(&r.server.idle),
        embedded_publish_row(&r.embedded_publish, &r.embedded_publish_rates),
    ];
    rows.extend(
        r.native_publishes
            .iter()
            .map(|n| native_publish_row(n, &r.embedded_publish)),
    );
    rows.push(http_publish_row(&r.http_publish, &r.embedded_publish));
    rows.push(embedded_consume_row(&r.embedded_consume));
    rows.extend(
        r.native_consumes
            .iter()
            .map(|n| native_consume_row(n, &r.embedded_consume, r.preload_time)),
    );
    rows.push(http_consume_row(
        &r.http_consume,
        &r.embedded_consume,
        r.plan.consume_events,
    ));
    rows.push(embedded_latency_row(&r.embedded_latency));
    rows.push(native_latency_row(&r.native_latency));
    rows.push(load_row(&r.server));
    rows.push(stop_row(&r.server));
    rows
}
