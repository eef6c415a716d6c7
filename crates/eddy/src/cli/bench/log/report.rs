//! The results as a table on stdout, printed as they come in, and as a
//! markdown section. Both render the same rows.

use std::fmt::Write as _;
use std::path::Path;

use eddy_log::{LogConfig, LogStats};

use super::append::CellResult;
use super::reopen::{self, Reopen};
use super::targets::Judged;
use super::{Baseline, Plan, Results};
use crate::cli::bench::disk::SEQUENTIAL_BUFFER_BYTES;
use crate::cli::bench::machine::Machine;
use crate::cli::bench::units::{self, bytes, grouped, percent};
use crate::utc;

const COLUMNS: [&str; 10] = [
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
];
/// Widths of the stdout columns but the last; numbers are right-aligned.
const WIDTHS: [usize; 9] = [21, 7, 6, 10, 15, 12, 14, 11, 11];
const RIGHT_ALIGNED: [bool; 9] = [false, true, true, true, false, true, true, true, true];

type Row = [String; 10];

pub(super) fn print_preamble(plan: &Plan, date_ms: i64, dir: &Path, machine: &Machine) {
    println!("eddy bench log — {}", utc::format_minutes(date_ms));
    for line in machine.lines() {
        println!("{line}");
    }
    println!("scratch directory: {} (removed afterwards)", dir.display());
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

pub(super) fn print_header() {
    print_row(&COLUMNS.map(String::from));
}

pub(super) fn print_baseline(baseline: &Baseline) {
    for row in baseline_rows(baseline) {
        print_row(&row);
    }
}

pub(super) fn print_cell(cell: &CellResult, baseline: &Baseline) {
    print_row(&cell_row(cell, baseline));
}

pub(super) fn print_reopen(reopen: &Reopen) {
    print_row(&reopen_row(reopen));
}

pub(super) fn print_targets(judged: &[Judged]) {
    println!("\ntargets of the storage engine");
    for j in judged {
        println!("  {}  {:<5} {}", j.verdict, j.name, j.goal);
        println!("              measured: {}", j.measured);
        if let Some(caveat) = &j.caveat {
            println!("              note: {caveat}");
        }
    }
}

fn print_row(row: &Row) {
    let mut line = String::new();
    for (i, cell) in row[..9].iter().enumerate() {
        let width = WIDTHS[i];
        if RIGHT_ALIGNED[i] {
            let _ = write!(line, "{cell:>width$}  ");
        } else {
            let _ = write!(line, "{cell:<width$}  ");
        }
    }
    line.push_str(&row[9]);
    println!("{}", line.trim_end());
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

fn fsyncs_note(stats: &LogStats) -> String {
    match stats.fsyncs {
        0 => "no fsync while appending".into(),
        n => format!(
            "{} fsyncs ({:.2} batches per fsync)",
            grouped(n as f64),
            stats.batches_appended as f64 / n as f64
        ),
    }
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
    let mut md = String::new();
    md.push_str("### Latest run of `eddy bench log`\n\n");
    let _ = writeln!(
        md,
        "Run on {} with:\n\n```sh\n{}\n```\n",
        utc::format_minutes(results.date_ms),
        results.command_line
    );
    md.push_str("Machine:\n\n");
    for line in results.machine.lines() {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(
        md,
        "- bench directory: `{}` (a scratch directory, removed afterwards)\n",
        results.scratch_dir.display()
    );
    md.push_str(&method(&results.plan));
    md.push_str(&markdown_table(&all_rows(results)));
    md.push_str("\n#### Targets\n\n");
    md.push_str("| Target | Goal | Measured | Verdict |\n|---|---|---|---|\n");
    for j in judged {
        let verdict = match &j.caveat {
            Some(caveat) => format!("**{}** ({caveat})", j.verdict),
            None => format!("**{}**", j.verdict),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            j.name,
            escape(&j.goal),
            escape(&j.measured),
            escape(&verdict)
        );
    }
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

fn markdown_table(rows: &[Row]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "| {} |", COLUMNS.join(" | "));
    let aligns: Vec<&str> = RIGHT_ALIGNED
        .iter()
        .map(|&right| if right { "---:" } else { "---" })
        .chain(["---"])
        .collect();
    let _ = writeln!(md, "| {} |", aligns.join(" | "));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md
}

/// Keeps a cell's `|` from splitting the markdown table.
fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}
