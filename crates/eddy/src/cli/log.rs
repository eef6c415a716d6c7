//! `eddy log …`: append to, read from and inspect a storage log directly,
//! without a server.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use eddy_log::{AppendReceipt, FsyncPolicy, Log, LogConfig, Offset, Record, StoredRecord};

use crate::utc;

/// Lines per batch appended by `eddy log append`.
const APPEND_BATCH_RECORDS: usize = 1000;
/// Bytes after which a batch is appended early, well below the log's
/// default `batch_bytes_max` (16 MiB) even with a 1 MiB line on top.
const APPEND_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Bytes asked of the log per read call by `eddy log read`.
const READ_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Append each line of stdin as a record.
    Append(AppendArgs),
    /// Print records, one per line: offset, timestamp, key, value.
    Read(ReadArgs),
    /// Print the segments of a log and what opening it repaired.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
struct DirArg {
    /// The log directory.
    #[arg(long, value_name = "DIR", default_value = "./eddy-data/log")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct AppendArgs {
    #[command(flatten)]
    dir: DirArg,
    /// When appends are fsynced: `always`, `interval(<ms>)` or `never`.
    #[arg(long, value_name = "POLICY", default_value = "always")]
    fsync: FsyncPolicy,
    /// A key given to every appended record.
    #[arg(long, value_name = "K")]
    key: Option<String>,
}

#[derive(Debug, Args)]
struct ReadArgs {
    #[command(flatten)]
    dir: DirArg,
    /// First offset to print (default: the first offset held).
    #[arg(long, value_name = "N")]
    from: Option<u64>,
    /// Print at most this many records (default: all).
    #[arg(long, value_name = "N")]
    max: Option<u64>,
}

#[derive(Debug, Args)]
struct InfoArgs {
    #[command(flatten)]
    dir: DirArg,
}

pub fn run(args: LogArgs) -> Result<()> {
    match args.command {
        LogCommand::Append(args) => append(&args),
        LogCommand::Read(args) => read(&args),
        LogCommand::Info(args) => info(&args),
    }
}

fn append(args: &AppendArgs) -> Result<()> {
    let dir = &args.dir.dir;
    let config = LogConfig {
        fsync: args.fsync,
        ..LogConfig::default()
    };
    let log = open(dir, config)?;
    let key = args.key.clone().map(Bytes::from);
    let span = append_lines(&log, io::stdin().lock(), key.as_ref())?;
    log.close()
        .with_context(|| format!("close the log in {}", dir.display()))?;
    match span {
        Some((first, last)) => println!(
            "appended {} records to {}: offsets {first}..={last}",
            last.0 - first.0 + 1,
            dir.display()
        ),
        None => println!("appended nothing to {}: stdin was empty", dir.display()),
    }
    Ok(())
}

/// Appends every line of `input` in batches; returns the first and last
/// offsets appended, if any.
fn append_lines(
    log: &Log,
    mut input: impl BufRead,
    key: Option<&Bytes>,
) -> Result<Option<(Offset, Offset)>> {
    let mut span: Option<(Offset, Offset)> = None;
    let mut batch = Vec::with_capacity(APPEND_BATCH_RECORDS);
    let mut batch_bytes = 0;
    let mut line = Vec::new();
    // A line longer than a record may be is refused, not read whole into memory.
    let line_bytes_max = u64::from(log.config().record_bytes_max);
    loop {
        line.clear();
        let n = io::Read::take(&mut input, line_bytes_max + 2)
            .read_until(b'\n', &mut line)
            .context("read stdin")?;
        if n as u64 > line_bytes_max && !line.ends_with(b"\n") {
            bail!(
                "a line of stdin is longer than `record_bytes_max` = {line_bytes_max} bytes; \
                 split it or raise the limit"
            );
        }
        if n > 0 {
            let record = Record::new(Bytes::copy_from_slice(strip_newline(&line)));
            batch_bytes += record.value.len();
            batch.push(match key {
                Some(k) => record.with_key(k.clone()),
                None => record,
            });
        }
        let full = batch.len() >= APPEND_BATCH_RECORDS || batch_bytes >= APPEND_BATCH_BYTES;
        if !batch.is_empty() && (full || n == 0) {
            let receipt = append_batch(log, &batch)?;
            span = Some((
                span.map_or(receipt.base_offset, |s| s.0),
                receipt.last_offset,
            ));
            batch.clear();
            batch_bytes = 0;
        }
        if n == 0 {
            return Ok(span);
        }
    }
}

fn append_batch(log: &Log, batch: &[Record]) -> Result<AppendReceipt> {
    log.append_batch(batch).with_context(|| {
        format!(
            "append {} records to the log in {}",
            batch.len(),
            log.dir().display()
        )
    })
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn read(args: &ReadArgs) -> Result<()> {
    let dir = &args.dir.dir;
    let log = open_existing(dir)?;
    let from = args.from.map_or_else(|| log.first_offset(), Offset);
    let max = args.max.unwrap_or(u64::MAX);
    let mut out = BufWriter::new(io::stdout().lock());
    let printed = print_records(&log, from, max, &mut out)
        .and_then(|()| out.flush().context("write to stdout"));
    ignore_broken_pipe(printed)?;
    log.close()
        .with_context(|| format!("close the log in {}", dir.display()))
}

/// Prints up to `max` records from `from` on.
fn print_records(log: &Log, from: Offset, max: u64, out: &mut impl Write) -> Result<()> {
    let mut next = from;
    let mut printed = 0;
    while printed < max {
        let batches = log
            .read(next, READ_CHUNK_BYTES)
            .with_context(|| format!("read from offset {next}"))?;
        let before = next;
        // The first batch may start before `next`; its earlier records are skipped.
        let records = batches.iter().flat_map(|b| b.records());
        for record in records.filter(|r| r.offset >= before) {
            if printed == max {
                break;
            }
            write_record(out, &record)?;
            printed += 1;
            next = Offset(record.offset.0 + 1);
        }
        if next == before {
            break; // the end of the log
        }
    }
    Ok(())
}

fn write_record(out: &mut impl Write, record: &StoredRecord) -> Result<()> {
    let key = record
        .key
        .as_ref()
        .map_or("-".into(), |k| String::from_utf8_lossy(k));
    writeln!(
        out,
        "{}\t{}\t{}\t{}",
        record.offset,
        utc::format_ms(record.timestamp_ms),
        key,
        String::from_utf8_lossy(&record.value)
    )
    .context("write to stdout")
}

/// Treats a closed stdout (`eddy log read | head`) as a normal end.
fn ignore_broken_pipe(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.chain().any(is_broken_pipe) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn info(args: &InfoArgs) -> Result<()> {
    let dir = &args.dir.dir;
    let log = open_existing(dir)?;
    println!("log {}", dir.display());
    print_recovery(&log);
    print_segments(&log);
    log.close()
        .with_context(|| format!("close the log in {}", dir.display()))
}

fn print_recovery(log: &Log) {
    let r = log.recovery();
    println!(
        "offsets {}..{} ({} records) in {} segment(s)",
        r.first_offset,
        r.next_offset,
        r.next_offset.0 - r.first_offset.0,
        r.segments
    );
    if r.is_clean() && r.indexes_rebuilt.is_empty() {
        println!("recovery: clean, nothing to repair");
        return;
    }
    println!("recovery:");
    for t in &r.truncations {
        println!(
            "  cut {} bytes off {} at byte {}: {}",
            t.bytes_removed,
            t.path.display(),
            t.position,
            t.reason
        );
    }
    for path in &r.segments_removed {
        println!("  removed segment {}", path.display());
    }
    for path in &r.indexes_rebuilt {
        println!("  rebuilt index {}", path.display());
    }
}

fn print_segments(log: &Log) {
    println!(
        "{:>12}  {:>12}  {:>10}  {:>12}  {:<24}  {:<24}  active",
        "base offset", "next offset", "records", "bytes", "first timestamp", "last timestamp"
    );
    let ts = |t: Option<i64>| t.map_or("-".into(), utc::format_ms);
    for s in log.segments() {
        println!(
            "{:>12}  {:>12}  {:>10}  {:>12}  {:<24}  {:<24}  {}",
            s.base_offset,
            s.next_offset,
            s.next_offset.0 - s.base_offset.0,
            s.size_bytes,
            ts(s.first_timestamp_ms),
            ts(s.last_timestamp_ms),
            if s.active { "yes" } else { "no" }
        );
    }
}

fn open(dir: &Path, config: LogConfig) -> Result<Log> {
    Log::open(dir, config).with_context(|| format!("open the log in {}", dir.display()))
}

/// Opens a log that must already exist (reading never creates one).
fn open_existing(dir: &Path) -> Result<Log> {
    if !dir.is_dir() {
        bail!("no log in {}: the directory does not exist", dir.display());
    }
    open(dir, LogConfig::default())
}
