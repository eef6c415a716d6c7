//! What the benchmarks' reports have in common: the heading that says
//! when, how and where a run happened, and the table of results, printed
//! on stdout as its rows come in and rendered again as markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use eddy_log::LogStats;

use super::machine::{self, Machine};
use super::units::grouped;
use crate::utc;

/// When, how and where a benchmark ran.
#[derive(Debug)]
pub struct RunInfo {
    pub date_ms: i64,
    pub command_line: String,
    pub scratch_dir: PathBuf,
    pub machine: Machine,
}

impl RunInfo {
    /// A run starting now, with its files in `scratch_dir`.
    pub fn start(scratch_dir: &Path) -> RunInfo {
        RunInfo {
            date_ms: utc::now_ms(),
            command_line: machine::command_line(),
            scratch_dir: scratch_dir.to_path_buf(),
            machine: Machine::describe(scratch_dir),
        }
    }

    /// The first lines on stdout: the benchmark `name`, the date, the
    /// machine and the scratch directory.
    pub fn print_heading(&self, name: &str) {
        println!("{name} — {}", utc::format_minutes(self.date_ms));
        for line in self.machine.lines() {
            println!("{line}");
        }
        println!(
            "scratch directory: {} (removed afterwards)",
            self.scratch_dir.display()
        );
    }

    /// The start of the markdown section of the benchmark `name`: the date,
    /// the command line and the machine.
    pub fn markdown_heading(&self, name: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "### Latest run of `{name}`\n");
        let _ = writeln!(
            md,
            "Run on {} with:\n\n```sh\n{}\n```\n",
            utc::format_minutes(self.date_ms),
            self.command_line
        );
        md.push_str("Machine:\n\n");
        for line in self.machine.lines() {
            let _ = writeln!(md, "- {line}");
        }
        let _ = writeln!(
            md,
            "- bench directory: `{}` (a scratch directory, removed afterwards)\n",
            self.scratch_dir.display()
        );
        md
    }
}

/// One row of a results table: nine short columns, then the notes.
pub type Row = [String; 10];

/// The columns of a results table.
#[derive(Debug)]
pub struct Table {
    pub columns: [&'static str; 10],
    /// Widths of the stdout columns but the last (the notes).
    pub widths: [usize; 9],
    /// Which of those columns are right-aligned (the numbers).
    pub right_aligned: [bool; 9],
}

impl Table {
    pub fn print_header(&self) {
        self.print_row(&self.columns.map(String::from));
    }

    pub fn print_row(&self, row: &Row) {
        let mut line = String::new();
        for (i, cell) in row[..9].iter().enumerate() {
            let width = self.widths[i];
            if self.right_aligned[i] {
                let _ = write!(line, "{cell:>width$}  ");
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        line.push_str(&row[9]);
        println!("{}", line.trim_end());
    }

    /// The table with `rows`, as markdown.
    pub fn markdown(&self, rows: &[Row]) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "| {} |", self.columns.join(" | "));
        let aligns: Vec<&str> = self
            .right_aligned
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
}

/// Keeps a cell's `|` from splitting a markdown table.
pub fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

/// The fsyncs of a log's append workload, for the notes column.
pub fn fsyncs_note(stats: &LogStats) -> String {
    match stats.fsyncs {
        0 => "no fsync while appending".into(),
        n => format!(
            "{} fsyncs ({:.2} batches per fsync)",
            grouped(n as f64),
            stats.batches_appended as f64 / n as f64
        ),
    }
}
