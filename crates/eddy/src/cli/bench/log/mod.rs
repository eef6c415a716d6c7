//! `eddy bench log`: the storage engine against the raw disk, in one run.
//!
//! 1. The raw baseline: sequential 1 MiB writes and one fsync; a loop of
//!    4 KiB appends each followed by fdatasync.
//! 2. Log append throughput for every combination of record size, batch
//!    size, appender count and fsync policy, each on a fresh log for a
//!    fixed time.
//! 3. The time to reopen a clean log of about 1 GiB.
//!
//! The results go to stdout as a table, with a PASS/MISS verdict for each
//! target of the storage engine, and optionally to a markdown file.

mod append;
mod reopen;
mod report;
mod targets;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::disk::{self, SequentialWrite, SyncWrites};
use super::report::RunInfo;
use super::{Scratch, check_parent_exists, parse_seconds, target};

const MIB: u64 = 1024 * 1024;
/// The benchmark's name in its report, and its markdown section's.
const NAME: &str = "eddy bench log";

#[derive(Debug, Args)]
pub struct BenchLogArgs {
    /// Where to create the scratch directory, removed afterwards. It must be
    /// on the disk to measure [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Seconds each append workload runs [default: 2; 0.3 with --quick]
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// MiB written by each of the 5 runs of the raw sequential-write baseline [default: 256; 64
    /// with --quick]
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    baseline_mib: Option<u64>,
    /// MiB of 1 KiB records in the log whose reopen is timed [default: 1024;
    /// 64 with --quick]
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    reopen_mib: Option<u64>,
    /// Also write the results as a markdown section into FILE: the section
    /// between this benchmark's markers is replaced, the rest of FILE kept.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// A smoke run: 0.3 s per workload, 64 MiB baseline and reopen log.
    /// Explicit sizes and times still win
    #[arg(long)]
    quick: bool,
}

/// What to measure, after defaults.
#[derive(Debug, Clone, Copy)]
struct Plan {
    cell_time: Duration,
    baseline_bytes: u64,
    reopen_bytes: u64,
    quick: bool,
}

impl Plan {
    fn from_args(args: &BenchLogArgs) -> Plan {
        let (seconds, baseline_mib, reopen_mib) = if args.quick {
            (0.3, 64, 64)
        } else {
            (2.0, 256, 1024)
        };
        Plan {
            cell_time: Duration::from_secs_f64(args.seconds.unwrap_or(seconds)),
            baseline_bytes: args.baseline_mib.unwrap_or(baseline_mib) * MIB,
            reopen_bytes: args.reopen_mib.unwrap_or(reopen_mib) * MIB,
            quick: args.quick,
        }
    }
}

/// The raw disk figures everything else is compared with.
#[derive(Debug, Clone)]
struct Baseline {
    sequential: SequentialWrite,
    sync_writes: Vec<SyncWrites>,
}

/// Everything one run measured, and where.
#[derive(Debug)]
struct Results {
    plan: Plan,
    run: RunInfo,
    baseline: Baseline,
    cells: Vec<append::CellResult>,
    reopen: reopen::Reopen,
}

pub fn run(args: &BenchLogArgs) -> Result<()> {
    let plan = Plan::from_args(args);
    if let Some(path) = &args.markdown {
        check_parent_exists(path)?;
    }
    let scratch = Scratch::create(args.dir.as_deref())?;
    let run = RunInfo::start(scratch.path());
    report::print_preamble(&plan, &run);

    report::TABLE.print_header();
    let baseline = measure_baseline(&scratch, &plan)?;
    report::print_baseline(&baseline);
    let cells = append::run_matrix(&scratch, plan.cell_time, |cell| {
        report::print_cell(cell, &baseline);
    })?;
    let reopen = reopen::measure(&scratch.join("reopen"), plan.reopen_bytes)?;
    report::print_reopen(&reopen);

    let results = Results {
        plan,
        run,
        baseline,
        cells,
        reopen,
    };
    let verdicts = targets::judge(&results)?;
    target::print("targets of the storage engine", &verdicts);
    if let Some(path) = &args.markdown {
        super::write_section(path, NAME, &report::markdown(&results, &verdicts))?;
    }
    scratch.remove()
}

fn measure_baseline(scratch: &Scratch, plan: &Plan) -> Result<Baseline> {
    let sequential = disk::sequential_write(scratch.path(), plan.baseline_bytes)
        .context("measure the raw sequential write")?;
    let sync_writes = disk::SYNC_WRITE_LOOPS
        .iter()
        .map(|&(bytes, prewritten)| {
            disk::sync_writes(scratch.path(), plan.cell_time, bytes, prewritten)
                .context("measure a raw write + fdatasync loop")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Baseline {
        sequential,
        sync_writes,
    })
}
