//! The results as a table on stdout, printed as they come in, and as a
//! markdown section. Both render the same rows.

use std::time::Duration;

use super::consume::{self, Consume};
use super::idle::{self, Idle};
use super::latency::{self, Latency};
use super::publish::{self, LogAppend, LogSettings, Publish};
use super::{ACK_WAIT_MS, MAX_ACK_PENDING, NAME, Plan, Results};
use crate::cli::bench::report::{Row, RunInfo, Table, fsyncs_note};
use crate::cli::bench::target::{self, Judged};
use crate::cli::bench::units::{bytes, duration, grouped, percent};

/// The table's columns; numbers are right-aligned.
pub(super) const TABLE: Table = Table {
    columns: [
        "workload",
        "event",
        "batch",
        "tasks",
        "partitions",
        "fsync",
        "result",
        "MiB/s",
        "vs log",
        "notes",
    ],
    widths: [22, 6, 6, 11, 10, 22, 18, 7, 7],
    right_aligned: [false, true, true, true, true, false, true, true, true],
};

pub(super) fn print_preamble(plan: &Plan, run: &RunInfo) {
    run.print_heading(NAME);
    println!(
        "log and publish workloads: {:.2} s each; latency: {:.2} s; {} events drained; \
         {} idle topics and subscriptions",
        plan.run_time.as_secs_f64(),
        plan.latency_time.as_secs_f64(),
        grouped(plan.consume_events as f64),
        grouped(f64::from(plan.idle_objects)),
    );
    if plan.quick {
        println!("quick run: short workloads and small sizes, figures are indicative only");
    }
    println!();
}

pub(super) fn print_idle(idle: &Idle) {
    for row in idle_rows(idle) {
        TABLE.print_row(&row);
    }
}

pub(super) fn print_log(log: &LogAppend, reference: &LogAppend) {
    TABLE.print_row(&log_row(log, reference));
}

pub(super) fn print_publish(p: &Publish, log: &LogAppend) {
    TABLE.print_row(&publish_row(p, log));
}

pub(super) fn print_consume(c: &Consume) {
    TABLE.print_row(&consume_row(c));
}

pub(super) fn print_latency(l: &Latency) {
    TABLE.print_row(&latency_row(l));
}

pub(super) fn print_windowed_latency(l: &Latency) {
    TABLE.print_row(&windowed_latency_row(l));
}

fn idle_rows(i: &Idle) -> Vec<Row> {
    let n = grouped(f64::from(i.objects));
    let delta = |after: u64, before: u64| {
        if after >= before {
            format!("+{}", bytes(after - before))
        } else {
            format!("-{}", bytes(before - after))
        }
    };
    let limit = match (i.limit.soft, i.limit.raised_from) {
        (None, _) => "no open-files limit".to_string(),
        (Some(soft), None) => format!("open-files limit {}", grouped(soft as f64)),
        (Some(soft), Some(from)) => format!(
            "open-files limit raised from {} to {}",
            grouped(from as f64),
            grouped(soft as f64)
        ),
    };
    let open = i.open_files.map_or("open files unknown".to_string(), |f| {
        format!("{} files open", grouped(f as f64))
    });
    vec![
        [
            "idle topics + subs".into(),
            "-".into(),
            "-".into(),
            "1".into(),
            "1 per topic".into(),
            idle::FSYNC.to_string(),
            format!("{} B/object", grouped(i.bytes_per_object())),
            "-".into(),
            "-".into(),
            format!(
                "VmRSS {} → {} ({}; RssAnon {}, RssFile {}) for {n} topics of 1 partition + \
                 {n} subscriptions (each on one topic by exact name), read {} after the last \
                 creation; created in {} (topics) + {} (subscriptions), one call at a time; \
                 {open} ({limit}); fsync never, as memory does not depend on it",
                bytes(i.before.total),
                bytes(i.after.total),
                delta(i.after.total, i.before.total),
                delta(i.after.anon, i.before.anon),
                delta(i.after.file, i.before.file),
                duration(idle::SETTLE),
                duration(i.topics_time),
                duration(i.subscriptions_time),
            ),
        ],
        [
            "broker reopen".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "1 per topic".into(),
            "always".into(),
            format!("{} open", duration(i.reopen_time)),
            "-".into(),
            "-".into(),
            format!(
                "Broker::open of the idle broker above ({n} topics + {n} subscriptions, \
                 no events), after a clean close that took {}; informational",
                duration(i.close_time)
            ),
        ],
    ]
}

fn log_row(log: &LogAppend, reference: &LogAppend) -> Row {
    let (name, which) = match log.settings {
        LogSettings::BrokerPartition => (
            "log append",
            "the settings the broker gives a partition log (from BrokerConfig::default()); \
             the reference of *vs log* and of the publish target",
        ),
        LogSettings::Defaults => (
            "log append, defaults",
            "LogConfig::default(), as `eddy bench log` runs it; informational",
        ),
    };
    [
        name.into(),
        bytes(publish::VALUE_BYTES as u64),
        publish::BATCH.to_string(),
        format!("{} threads", publish::WRITERS),
        "1 log".into(),
        log.config.fsync.to_string(),
        format!("{} records/s", grouped(log.records_per_sec())),
        format!("{:.1}", log.payload_mib_per_sec()),
        percent(log.records_per_sec() / reference.records_per_sec()),
        format!(
            "{} records in {}; {}; {} on disk per record; segments of {}, pre-written {}; \
             {which}",
            grouped(log.records as f64),
            duration(log.elapsed),
            fsyncs_note(&log.stats),
            bytes_per(log.disk_bytes, log.records),
            bytes(log.config.segment_bytes_max),
            on_off(log.config.preallocate_segments),
        ),
    ]
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn bytes_per(total: u64, count: u64) -> String {
    if count == 0 {
        return "-".into();
    }
    format!("{:.0} B", total as f64 / count as f64)
}

fn publish_row(p: &Publish, log: &LogAppend) -> Row {
    let role = if p.partitions == 1 {
        "the target's row (same shape as the log: one log)"
    } else {
        "informational"
    };
    [
        "broker publish_batch".into(),
        bytes(publish::VALUE_BYTES as u64),
        publish::BATCH.to_string(),
        format!("{} tasks", publish::WRITERS),
        p.partitions.to_string(),
        p.config.fsync.to_string(),
        format!("{} events/s", grouped(p.events_per_sec())),
        format!("{:.1}", p.payload_mib_per_sec()),
        percent(p.events_per_sec() / log.records_per_sec()),
        format!(
            "{} events in {}, each with its own id; {} on disk per event; \
             BrokerConfig::default() (segments of {}, pre-written {}); {role}",
            grouped(p.events as f64),
            duration(p.elapsed),
            bytes_per(p.disk_bytes, p.events),
            bytes(p.config.segment_bytes_max),
            on_off(p.config.preallocate_segments),
        ),
    ]
}

fn consume_row(c: &Consume) -> Row {
    [
        "broker fetch + ack_all".into(),
        bytes(consume::EVENT_BYTES as u64),
        format!("≤ {}", consume::FETCH_MAX),
        format!("{} tasks", consume::CONSUMERS),
        consume::PARTITIONS.to_string(),
        "always (preload never)".into(),
        format!("{} events/s", grouped(c.events_per_sec())),
        format!("{:.1}", c.payload_mib_per_sec()),
        "-".into(),
        format!(
            "{} events drained in {}, each acked exactly once (checked: none twice, none \
             missing, none redelivered); shared subscription from earliest, ack_wait {} s, \
             max_ack_pending {}; fetch wait {} ms; {} fetches ({} empty), {} ack_all calls; \
             preloaded with fsync never in {}, then closed and reopened with always in {}",
            grouped(c.events as f64),
            duration(c.elapsed),
            ACK_WAIT_MS / 1000,
            grouped(f64::from(MAX_ACK_PENDING)),
            consume::FETCH_WAIT_MS,
            grouped(c.fetches as f64),
            grouped(c.empty_fetches as f64),
            grouped(c.ack_calls as f64),
            duration(c.preload_time),
            duration(c.reopen_time),
        ),
    ]
}

fn windowed_latency_row(l: &Latency) -> Row {
    let mut row = latency_row(l);
    row[0] = "broker latency, window".into();
    row[9] = format!(
        "the row above with `group_commit_window_us` = {} (fsyncs of a busy log at least \
         {} apart); informational. {}",
        latency::WINDOW_US,
        duration(Duration::from_micros(latency::WINDOW_US)),
        row[9]
    );
    row
}

fn latency_row(l: &Latency) -> Row {
    [
        "broker latency".into(),
        bytes(latency::EVENT_BYTES as u64),
        "1".into(),
        format!("{} tasks", latency::CONSUMERS),
        latency::PARTITIONS.to_string(),
        "always".into(),
        format!("p99 {}", duration(l.quantile(0.99))),
        "-".into(),
        "-".into(),
        l.notes(),
    ]
}

/// The whole markdown section: context, the table and the targets.
pub(super) fn markdown(results: &Results, judged: &[Judged]) -> String {
    let mut md = results.run.markdown_heading(NAME);
    md.push_str(&method(&results.plan));
    md.push_str(&TABLE.markdown(&all_rows(results)));
    md.push_str(&target::markdown(judged));
    md
}

fn method(plan: &Plan) -> String {
    let mut text = format!(
        "One process, one Tokio multi-thread runtime (a worker per CPU); every broker call \
         goes through the async `Bus` trait, which runs the broker's blocking core on \
         Tokio's blocking pool. Each workload runs on a fresh directory. *fsync* is the \
         durability of the row: under `always` a publish or ack returns only after an fsync \
         that covers it (group commit). The idle-memory workload runs first, before the \
         others grow the heap. The log rows and the publish rows run for {:.2} s each: 4 \
         writers append batches of 100 records (log: threads calling `append_batch`) or \
         publish batches of 100 events (broker: tasks calling `publish_batch`), 1 KiB \
         values / data; *MiB/s* counts values / data only; *vs log* divides records or \
         events per second by the `log append` row, whose log has the settings the broker \
         gives its partition logs (so the ratio is the broker's own cost); the \
         `log append, defaults` row shows the log's default settings for comparison. The consume row drains a \
         preloaded backlog and is timed from the first fetch to the return of the ack that \
         completed it. The latency row sends 10,000 events/s for {:.2} s and times each \
         from just before its `publish` call to the return of the fetch that delivered it; \
         every sample is kept, and percentiles are nearest-rank.\n\n",
        plan.run_time.as_secs_f64(),
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

fn all_rows(results: &Results) -> Vec<Row> {
    let mut rows = idle_rows(&results.idle);
    rows.push(log_row(&results.log_defaults, &results.log));
    rows.push(log_row(&results.log, &results.log));
    rows.extend(
        results
            .publishes
            .iter()
            .map(|p| publish_row(p, &results.log)),
    );
    rows.push(consume_row(&results.consume));
    rows.push(latency_row(&results.latency));
    rows.push(windowed_latency_row(&results.windowed_latency));
    rows
}
