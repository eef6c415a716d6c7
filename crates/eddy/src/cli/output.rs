//! Human-readable output: aligned tables, durations, sizes, times, event
//! lines; writing to stdout (a closed pipe is a normal end); progress bars
//! on stderr when it is a terminal.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use eddy_bus::StoredEvent;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::utc;

/// Columns of a table: a header, then rows; numeric columns align right.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; a header ending in `>` aligns right
    /// (the `>` is not shown).
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_end_matches('>')).collect(),
            right: headers.iter().map(|h| h.ends_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as columns).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// The table as text, one line per row, columns two spaces apart.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < columns {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A duration in milliseconds, readably: `250ms`, `1.5s`, `30s`, `1m 30s`,
/// `7d`.
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{:.1}s", ms as f64 / 1000.0)
        };
    }
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ];
    let mut parts = Vec::new();
    let mut rest = ms;
    for (name, per) in units {
        if rest >= per {
            parts.push(format!("{}{name}", rest / per));
            rest %= per;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time in ms since the epoch, as RFC 3339 UTC.
pub fn time(ms: i64) -> String {
    utc::format_ms(ms)
}

/// `-` for nothing.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Data as one line of text: UTF-8 as is, with control characters (and
/// invalid bytes, as U+FFFD) escaped so that one event stays one line.
pub fn printable(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text.into_owned()
    }
}

/// One event as a line: `topic/partition@offset  type  key  data`.
pub fn event_line(e: &StoredEvent) -> String {
    format!(
        "{}/{}@{}  {}  {}  {}",
        e.topic,
        e.partition,
        e.offset,
        e.event.ty,
        e.event.key.as_deref().unwrap_or("-"),
        printable(&e.event.data)
    )
}

/// Buffered stdout for a command's results.
#[derive(Debug)]
pub struct Out {
    out: io::BufWriter<io::Stdout>,
}

impl Out {
    pub fn new() -> Out {
        Out {
            out: io::BufWriter::new(io::stdout()),
        }
    }

    /// Writes text as is.
    pub fn text(&mut self, text: &str) -> Result<()> {
        self.out
            .write_all(text.as_bytes())
            .context("write to stdout")
    }

    /// Writes one line.
    pub fn line(&mut self, line: impl AsRef<str>) -> Result<()> {
        self.text(line.as_ref())?;
        self.text("\n")
    }

    /// Writes a JSON value on one line.
    pub fn json(&mut self, value: &Value) -> Result<()> {
        self.line(value.to_string())
    }

    /// Pushes what is written to stdout now.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().context("write to stdout")
    }
}

/// Treats a closed stdout (`eddy read orders | head`) as a normal end.
pub fn ignore_broken_pipe(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.chain().any(is_broken_pipe) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// A note for the person at the terminal (never for scripts: stderr).
pub fn note(text: impl AsRef<str>) {
    eprintln!("{}", text.as_ref());
}

/// A progress bar of `len` steps on stderr, or a hidden one if stderr is
/// not a terminal.
pub fn progress_bar(len: u64, what: &'static str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = format!(
        "{{bar:30}} {{human_pos}}/{{human_len}} {what} ({{rate}}, {{elapsed}}, eta {{eta}})"
    );
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", rate);
    let bar =
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The `{rate}` of a progress template: whole steps per second.
fn rate(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.0}/s", state.per_sec());
}

/// A spinner with a count and rate on stderr, or a hidden one if stderr is
/// not a terminal.
pub fn spinner(what: &'static str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = format!("{{spinner}} {{human_pos}} {what} ({{rate}}, {{elapsed}})");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("rate", rate);
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A spinner with a message and the time spent, on stderr, or a hidden
/// one if stderr is not a terminal.
pub fn busy(message: String) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {msg}… ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        // Proves the readable forms of durations and sizes.
        assert_eq!(duration_ms(250), "250ms");
        assert_eq!(duration_ms(1500), "1.5s");
        assert_eq!(duration_ms(30_000), "30s");
        assert_eq!(duration_ms(90_000), "1m 30s");
        assert_eq!(duration_ms(7 * 86_400_000), "7d");
        assert_eq!(duration_ms(86_400_000 + 3_600_000 + 1000), "1d 1h");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 << 20), "12.0 MiB");
    }

    #[test]
    fn tables_align_and_data_stays_on_one_line() {
        // Proves column alignment (left and right) and control-character
        // escaping.
        let mut t = Table::new(&["NAME", "EVENTS>", "NOTE"]);
        t.row(vec!["orders".into(), "5".into(), "-".into()]);
        t.row(vec!["a".into(), "12345".into(), "x".into()]);
        assert_eq!(
            t.render(),
            "NAME    EVENTS  NOTE\norders       5  -\na        12345  x\n"
        );
        assert_eq!(printable(b"a\nb\tc"), "a\\nb\\tc");
        assert_eq!(printable("héllo".as_bytes()), "héllo");
    }
}
