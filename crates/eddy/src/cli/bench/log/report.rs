//! The results as a table on stdout, printed as they come in, and as a
//! markdown section. Both render the same rows.

use eddy_log::LogConfig;

use super::append::CellResult;
use super::reopen::{self, Reopen};
use super::{Baseline, NAME, Plan, Results};
use crate::cli::bench::disk::SEQUENTIAL_BUFFER_BYTES;
use crate::cli::bench::report::{Row, RunInfo, Table, fsyncs_note};
use crate::cli::bench::target::{self, Judged};
use crate::cli::bench::units::{self, bytes, grouped, percent};

/// The table's columns; numbers are right-aligned.
pub(super) const TABLE: Table = Table {
    columns: [
        "workload",
        "record",
        "batch",
        "appenders",
        "fsync",
        "records/s",
        "payload MiB/s",
        "disk MiB/s",
        "vs raw seq",
        "notes",
    ],
    widths: [21, 7, 6, 10, 15, 12, 14, 11, 11],
    right_aligned: [false, true, true, true, false, true, true, true, true],
};

pub(super) fn print_preamble(plan: &Plan, run: &RunInfo) {
    run.print_heading(NAME);
    println!(
        "each append workload: {:.2} s on a fresh log, segment_bytes_max {}",
        plan.cell_time.as_secs_f64(),
        bytes(LogConfig::default().segment_bytes_max)
    );
    if plan.quick {
        println!("quick run: short cells and small files, figures are indicative only");
    }
    println!();
}

pub(super) fn print_baseline(baseline: &Baseline) {
    for row in baseline_rows(baseline) {
        TABLE.print_row(&row);
    }
}

pub(super) fn print_cell(cell: &CellResult, baseline: &Baseline) {
    TABLE.print_row(&cell_row(cell, baseline));
}

pub(super) fn print_reopen(reopen: &Reopen) {
    TABLE.print_row(&reopen_row(reopen));
}

fn baseline_rows(baseline: &Baseline) -> Vec<Row> {
    let seq = &baseline.sequential;
    let (low, high) = seq.mib_per_sec_range();
    let mut rows = vec![[
        "raw sequential write".into(),
        bytes(SEQUENTIAL_BUFFER_BYTES as u64),
        "-".into(),
        "1".into(),
        "once, at end".into(),
        "-".into(),
        "-".into(),
        format!("{:.1}", seq.mib_per_sec()),
        percent(1.0),
        format!(
            "median of {} runs of {}: {} each; runs ranged {low:.1} to {high:.1} MiB/s",
            seq.runs.len(),
            bytes(seq.bytes),
            units::duration(seq.median()),
        ),
    ]];
    for sync in &baseline.sync_writes {
        let (name, how) = if sync.prewritten {
            (
                "raw overwrite + fdatasync",
                "overwriting pre-written blocks",
            )
        } else {
            ("raw append + fdatasync", "appending (file grows)")
        };
        rows.push([
            name.into(),
            bytes(sync.write_bytes as u64),
            "1".into(),
            "1".into(),
            "every write".into(),
            grouped(sync.ops_per_sec()),
            "-".into(),
            format!("{:.1}", sync.mib_per_sec()),
            percent(sync.mib_per_sec() / seq.mib_per_sec()),
            format!(
                "records/s = writes/s; mean latency {}; {how}",
                units::duration(sync.mean_latency())
            ),
        ]);
    }
    rows
}

fn cell_row(cell: &CellResult, baseline: &Baseline) -> Row {
    let w = &cell.workload;
    [
        "log append".into(),
        bytes(w.value_bytes as u64),
        w.batch_records.to_string(),
        w.appenders.to_string(),
        w.fsync.to_string(),
        grouped(cell.records_per_sec()),
        format!("{:.1}", cell.payload_mib_per_sec()),
        format!("{:.1}", cell.disk_mib_per_sec()),
        percent(cell.disk_mib_per_sec() / baseline.sequential.mib_per_sec()),
        format!(
            "{} records in {}; {}; {} rolls, {} into pre-written segments",
            grouped(cell.records as f64),
            units::duration(cell.elapsed),
            fsyncs_note(&cell.stats),
            cell.stats.rolls,
            cell.stats.rolls_prewritten,
        ),
    ]
}

fn reopen_row(r: &Reopen) -> Row {
    [
        "log reopen (clean)".into(),
        bytes(reopen::VALUE_BYTES as u64),
        reopen::BATCH_RECORDS.to_string(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        format!(
            "{} in {}, the active one full ({}; open scans it whole) ({} records); open min {} / median {} / max {} of {}, warm; {}",
            bytes(r.log_bytes),
            units::count(r.segments, "segment"),
            bytes(r.active_bytes),
            grouped(r.records as f64),
            units::duration(r.min()),
            units::duration(r.median()),
            units::duration(r.max()),
            r.times.len(),
            r.cold.map_or(
                "cold cache: not measured (dropping the page cache needs root)".into(),
                |c| format!("cold cache (page cache dropped): {}", units::duration(c))
            ),
        ),
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
        "Each append workload ran for {:.2} s on a fresh log (default `segment_bytes_max`, \
         {}), its appender threads sharing one `Log`. *records/s* counts records whose \
         `append_batch` returned; *payload MiB/s* counts record values only; *disk MiB/s* \
         is the growth of the segment files, framing included; *vs raw seq* divides disk \
         MiB/s by the raw sequential write + fsync bandwidth (first row). Under `interval` \
         and `never` an append returns before its data is on disk, so those rows can exceed \
         the raw figure. The reopen times `Log::open` of a cleanly closed log whose active \
         segment is full (open scans the active segment whole), five times with the page \
         cache warm and once after dropping it.\n\n",
        plan.cell_time.as_secs_f64(),
        bytes(LogConfig::default().segment_bytes_max)
    );
    if plan.quick {
        text.push_str(
            "This was a `--quick` run: short cells and small files, \
             figures are indicative only.\n\n",
        );
    }
    text
}

fn all_rows(results: &Results) -> Vec<Row> {
    let mut rows: Vec<Row> = baseline_rows(&results.baseline);
    rows.extend(results.cells.iter().map(|c| cell_row(c, &results.baseline)));
    rows.push(reopen_row(&results.reopen));
    rows
}
