//! `eddy bench store`: the event store against PostgreSQL, in one run
//! (issue 7).
//!
//! - Appends: N tasks (64 by default) for a fixed time, each appending one
//!   event (256 B of JSON) at a time with an exact expected version
//!   (`NoStream` for a stream's first event) to a stream chosen at random
//!   among its own — stream `order-<n>` of 100,000 belongs to task
//!   `n % N`, so each stream has one writer and conflicts should not
//!   happen (they are counted). Eddy: the embedded broker's store, fsync
//!   `always`. PostgreSQL: the same appends as `INSERT`s in autocommit on
//!   a pool of min(N, 64) connections, `synchronous_commit = on`
//!   ([`postgres`] says exactly how).
//! - Reads: one reader reading a 1,000-event stream whole, one read at a
//!   time: a stream whose events were appended one at a time among nine
//!   times as many appends to other streams (scattered), and one appended
//!   back to back (contiguous).
//! - Aggregate loads: an order folded from the scattered stream's 1,000
//!   `ItemAdded` events, without a snapshot, and from its latest snapshot
//!   (written every 100 events, the latest 50 events before the end) plus
//!   the 50 events after it.
//!
//! Rows are interleaved over rounds (who goes first alternates), `sync`
//! before each; each row's median and spread are reported, with Eddy's
//! ratio over PostgreSQL, and the disk flushes each append row caused. A
//! server that cannot be reached is reported as skipped, with why.

mod cpu;
mod eddy;
mod postgres;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::report::RunInfo;
use super::units::grouped;
use super::{Scratch, check_parent_exists, parse_seconds, target};
use workload::{Appenders, Measured, ReadWorkload};

const NAME: &str = "eddy bench store";

#[derive(Debug, Args)]
pub struct BenchStoreArgs {
    /// Where Eddy's scratch directory goes, removed afterwards; it must be
    /// on the disk to measure [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Concurrent appenders on each side (PostgreSQL: a pool of at most 64
    /// connections)
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    appenders: u64,
    /// Streams the appends are spread over
    #[arg(long, default_value_t = 100_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    streams: u64,
    /// Seconds each append run lasts [default: 10; 2 with --quick]
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// Seconds each read and load run lasts [default: 2; 0.5 with --quick]
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    read_seconds: Option<f64>,
    /// Rounds, each running every row once [default: 3; 1 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
    /// PostgreSQL, as a libpq-style connection string (trust auth); with no
    /// `user`, `postgres` then `root` are tried
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 dbname=test",
        value_name = "CONN"
    )]
    postgres: String,
    /// Also write the results as a markdown section into FILE: the section
    /// between this benchmark's markers is replaced, the rest of FILE kept.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Name the appends' streams `order<n>`, without a category, so the
    /// store publishes none of their events to the bus (`es.order`): what
    /// that forwarding costs. PostgreSQL's rows do not change
    #[arg(long)]
    uncategorized: bool,
    /// Only these workloads (comma-separated) [default: both]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = ["appends", "reads"])]
    only: Vec<String>,
    /// Only these targets (comma-separated) [default: both]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = ["eddy", "postgres"])]
    targets: Vec<String>,
    /// A smoke run: 2 s of appends, 0.5 s of each read, one round.
    #[arg(long)]
    quick: bool,
}

impl BenchStoreArgs {
    fn runs(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == workload)
    }

    fn runs_on(&self, side: Side) -> bool {
        let flag = match side {
            Side::Eddy => "eddy",
            Side::Postgres => "postgres",
        };
        self.targets.is_empty() || self.targets.iter().any(|t| t == flag)
    }
}

/// What each row runs, from the flags.
#[derive(Debug, Clone, Copy)]
struct Plan {
    appenders: Appenders,
    read_time: Duration,
    rounds: u32,
}

impl Plan {
    fn from_args(args: &BenchStoreArgs) -> Plan {
        let quick = args.quick;
        let secs = |s: Option<f64>, normal: f64, short: f64| {
            Duration::from_secs_f64(s.unwrap_or(if quick { short } else { normal }))
        };
        Plan {
            appenders: Appenders {
                tasks: args.appenders,
                streams: args.streams,
                run_time: secs(args.seconds, 10.0, 2.0),
                prefix: if args.uncategorized {
                    workload::UNCATEGORIZED
                } else {
                    workload::CATEGORIZED
                },
            },
            read_time: secs(args.read_seconds, 2.0, 0.5),
            rounds: args.rounds.unwrap_or(if quick { 1 } else { 3 }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Appends,
    Read(ReadWorkload),
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::Appends,
        Workload::Read(ReadWorkload::Scattered),
        Workload::Read(ReadWorkload::Contiguous),
        Workload::Read(ReadWorkload::LoadFull),
        Workload::Read(ReadWorkload::LoadSnapshot),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Eddy,
    Postgres,
}

/// A row's runs, or why it was skipped.
type Runs = std::result::Result<Vec<Measured>, String>;

/// Every row's runs so far.
type Results = Vec<((Workload, Side), Runs)>;

pub fn run(args: &BenchStoreArgs) -> Result<()> {
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let plan = Plan::from_args(args);
    let runtime = super::async_runtime()?;
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    run.print_heading(NAME);
    let a = plan.appenders;
    println!(
        "appends: {} tasks for {:.1} s over {} streams {}<n>; reads and loads: {:.1} s each; {} rounds, rows interleaved",
        a.tasks,
        a.run_time.as_secs_f64(),
        grouped(a.streams as f64),
        a.prefix,
        plan.read_time.as_secs_f64(),
        plan.rounds
    );
    let server = runtime.block_on(postgres::probe(&args.postgres));
    match &server {
        Ok(server) => println!("{}", server.settings.describe()),
        Err(why) => println!("PostgreSQL skipped: {why}"),
    }
    let device = block_device(scratch.path());

    let mut results: Results = Workload::ALL
        .iter()
        .flat_map(|&w| [(w, Side::Eddy), (w, Side::Postgres)])
        .filter(|&(w, side)| {
            let kind = match w {
                Workload::Appends => "appends",
                Workload::Read(_) => "reads",
            };
            args.runs(kind) && args.runs_on(side)
        })
        .map(|(w, side)| match (&server, side) {
            (Err(why), Side::Postgres) => ((w, side), Err(why.clone())),
            _ => ((w, side), Ok(Vec::new())),
        })
        .collect();
    for round in 0..plan.rounds {
        let sides = if round % 2 == 0 {
            [Side::Eddy, Side::Postgres]
        } else {
            [Side::Postgres, Side::Eddy]
        };
        let sides: Vec<Side> = sides.into_iter().filter(|&s| args.runs_on(s)).collect();
        for &side in sides.iter().filter(|_| args.runs("appends")) {
            if side == Side::Postgres && server.is_err() {
                continue;
            }
            // Nothing dirty in the page cache from the rows before.
            flush_page_cache()?;
            let before = device.as_deref().and_then(disk_flushes);
            let measured = match (side, &server) {
                (Side::Eddy, _) => Ok(eddy::appends(
                    &runtime,
                    &scratch.join(&format!("appends-{round}")),
                    plan.appenders,
                )?),
                (Side::Postgres, Ok(server)) => postgres::appends(&runtime, server, plan.appenders),
                (Side::Postgres, Err(why)) => bail!("PostgreSQL was skipped: {why}"),
            };
            let after = device.as_deref().and_then(disk_flushes);
            let measured = measured.map(|mut m| {
                m.flushes = before.zip(after).map(|(b, a)| a.saturating_sub(b));
                m
            });
            record(&mut results, Workload::Appends, side, round, measured);
            let _ = std::fs::remove_dir_all(scratch.join(&format!("appends-{round}")));
        }
        for &side in sides.iter().filter(|_| args.runs("reads")) {
            if side == Side::Postgres && server.is_err() {
                continue;
            }
            flush_page_cache()?;
            let dir = scratch.join(&format!("reads-{round}"));
            let measured = match (side, &server) {
                (Side::Eddy, _) => Ok(eddy::reads(&runtime, &dir, plan.read_time)?),
                (Side::Postgres, Ok(server)) => postgres::reads(&runtime, server, plan.read_time),
                (Side::Postgres, Err(why)) => bail!("PostgreSQL was skipped: {why}"),
            };
            match measured {
                Ok(all) => {
                    for (what, m) in all {
                        record(&mut results, Workload::Read(what), side, round, Ok(m));
                    }
                }
                Err(e) => {
                    for w in Workload::ALL
                        .into_iter()
                        .filter(|w| *w != Workload::Appends)
                    {
                        record(&mut results, w, side, round, Err(anyhow::anyhow!("{e:#}")));
                    }
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let settings = match &server {
        Ok(server) => {
            // The figures are worth more than the clean-up.
            if let Err(e) = server.drop_schema(&runtime) {
                println!("PostgreSQL: the schema eddy_bench is left behind: {e:#}");
            }
            Some(server.settings.clone())
        }
        Err(_) => None,
    };
    drop(runtime);

    let context = report::Context {
        plan,
        settings,
        device,
    };
    let rows = report::table_rows(&results, &context);
    let judged = report::judge(&results, &context);
    println!();
    report::TABLE.print_header();
    for row in &rows {
        report::TABLE.print_row(row);
    }
    target::print("Targets (issue 7):", &judged);
    if let Some(path) = &args.markdown {
        let mut md = run.markdown_heading(NAME);
        md.push_str(&report::preamble(&context));
        md.push_str(&report::TABLE.markdown(&rows));
        md.push_str(&target::markdown(&judged));
        super::write_section(path, NAME, &md)?;
    }
    scratch.remove()
}

/// Adds a run to a row (an error skips the row from then on), and prints it.
fn record(
    results: &mut Results,
    workload: Workload,
    side: Side,
    round: u32,
    measured: Result<Measured>,
) {
    let Some((_, runs)) = results.iter_mut().find(|(row, _)| *row == (workload, side)) else {
        return;
    };
    match (measured, runs) {
        (Ok(m), Ok(runs)) => {
            println!(
                "  round {}: {:<28} {:<10} {:>10}/s{}",
                round + 1,
                report::workload_name(workload),
                report::side_name(side),
                grouped(m.rate()),
                if m.conflicts > 0 {
                    format!(" ({} conflicts)", m.conflicts)
                } else {
                    String::new()
                }
            );
            runs.push(m);
        }
        (Err(e), runs) => {
            println!(
                "  round {}: {} {} failed: {e:#}",
                round + 1,
                report::workload_name(workload),
                report::side_name(side)
            );
            *runs = Err(format!("{e:#}"));
        }
        (Ok(_), Err(_)) => {}
    }
}

/// Writes back every dirty page of the machine (`sync`), and waits for it.
fn flush_page_cache() -> Result<()> {
    let status = std::process::Command::new("sync")
        .status()
        .context("run sync")?;
    if !status.success() {
        bail!("sync exited with {status}");
    }
    Ok(())
}

/// The block device (`vda`) of the file system holding `dir`, from the
/// /proc/mounts entry with the longest mount point containing it.
fn block_device(dir: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount_point) = (fields.next()?, fields.next()?);
            let device = device.strip_prefix("/dev/")?;
            dir.starts_with(mount_point.replace("\\040", " "))
                .then(|| (mount_point.len(), device.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, device)| device)
}

/// Flush requests `device` completed since boot (/proc/diskstats, Linux
/// 5.5 and later).
fn disk_flushes(device: &str) -> Option<u64> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    flushes_in(&stats, device)
}

fn flushes_in(diskstats: &str, device: &str) -> Option<u64> {
    diskstats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&device))
            .then(|| fields.get(18)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_are_read_from_the_devices_line() {
        let stats = " 254 0 vda 126061 14830 14365794 226085 69101 99782 57759088 291154 0 31096 522861 13473 63 1178048 4706 14821 914\n \
                     253 0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 8 0 old 1 2 3 4 5 6 7 8 9 10 11\n";
        assert_eq!(flushes_in(stats, "vda"), Some(14821));
        assert_eq!(flushes_in(stats, "zram0"), Some(0));
        assert_eq!(
            flushes_in(stats, "old"),
            None,
            "a kernel without flush counts"
        );
        assert_eq!(flushes_in(stats, "sdz"), None);
    }
}
