//! The storage engine's performance targets, and whether a run met them.

use std::time::Duration;

use anyhow::{Context, Result};
use eddy_log::FsyncPolicy;

use super::append::{APPENDER_COUNTS, CellResult, Workload};
use super::{MIB, Results};
use crate::cli::bench::target::{Judged, Verdict};
use crate::cli::bench::units;

/// (i): share of raw sequential write + fsync bandwidth under `always`.
const ALWAYS_RATIO_MIN: f64 = 0.60;
/// (ii): records/s under `never` with 100 B records in batches of 100.
const NEVER_RECORDS_PER_SEC_MIN: f64 = 2_000_000.0;
/// (iii): reopen time of a clean 1 GiB log.
const REOPEN_TIME_MAX: Duration = Duration::from_secs(1);
const REOPEN_TARGET_BYTES: u64 = 1024 * MIB;

pub fn judge(results: &Results) -> Result<Vec<Judged>> {
    Ok(vec![
        always_bandwidth(results)?,
        never_records(results)?,
        reopen_time(results),
    ])
}

/// The result of a workload with batches of 100 records.
fn cell(
    results: &Results,
    value_bytes: usize,
    appenders: usize,
    fsync: FsyncPolicy,
) -> Result<&CellResult> {
    let wanted = Workload {
        value_bytes,
        batch_records: 100,
        appenders,
        fsync,
    };
    results
        .cells
        .iter()
        .find(|c| c.workload == wanted)
        .with_context(|| format!("no result for the workload {wanted:?}"))
}

fn quick_caveat(results: &Results) -> Option<String> {
    results
        .plan
        .quick
        .then(|| "quick run: short cells, indicative only".to_string())
}

/// (i) `always`, 1 KiB records, 4 appenders, batches of 100: at least 60%
/// of the raw sequential write + fsync bandwidth.
fn always_bandwidth(results: &Results) -> Result<Judged> {
    let cell = cell(results, 1024, 4, FsyncPolicy::Always)?;
    let raw = results.baseline.sequential.mib_per_sec();
    let ratio = cell.disk_mib_per_sec() / raw;
    Ok(Judged {
        name: "(i)",
        goal: format!(
            "fsync always, 1 KiB records, batches of 100, 4 appenders: \
             ≥ {} of raw sequential write + fsync",
            units::percent(ALWAYS_RATIO_MIN)
        ),
        measured: format!(
            "{:.1} MiB/s on disk vs {raw:.1} MiB/s raw = {}",
            cell.disk_mib_per_sec(),
            units::percent(ratio)
        ),
        verdict: Verdict::of(ratio >= ALWAYS_RATIO_MIN),
        caveat: quick_caveat(results),
    })
}

/// (ii) `never`, 100 B records, batches of 100: at least 2,000,000
/// records/s with either appender count.
fn never_records(results: &Results) -> Result<Judged> {
    let mut measured = Vec::new();
    let mut best: f64 = 0.0;
    for appenders in APPENDER_COUNTS {
        let rate = cell(results, 100, appenders, FsyncPolicy::Never)?.records_per_sec();
        best = best.max(rate);
        measured.push(format!(
            "{} records/s with {}",
            units::grouped(rate),
            units::count(appenders, "appender")
        ));
    }
    Ok(Judged {
        name: "(ii)",
        goal: format!(
            "fsync never, 100 B records, batches of 100: ≥ {} records/s \
             (with 1 or 4 appenders; either counts)",
            units::grouped(NEVER_RECORDS_PER_SEC_MIN)
        ),
        measured: measured.join("; "),
        verdict: Verdict::of(best >= NEVER_RECORDS_PER_SEC_MIN),
        caveat: quick_caveat(results),
    })
}

/// (iii) reopening a clean 1 GiB log takes under 1 s: the median warm open
/// and, where it could be measured, the cold one.
fn reopen_time(results: &Results) -> Judged {
    let reopen = &results.reopen;
    let payload = reopen.records * super::reopen::VALUE_BYTES as u64;
    let caveat = (payload < REOPEN_TARGET_BYTES).then(|| {
        format!(
            "the log holds {} of records, the target is for {}",
            units::bytes(payload),
            units::bytes(REOPEN_TARGET_BYTES)
        )
    });
    Judged {
        name: "(iii)",
        goal: format!(
            "reopen of a clean 1 GiB log: < {} (median of {} warm opens, and the cold open)",
            units::duration(REOPEN_TIME_MAX),
            super::reopen::OPENS
        ),
        measured: format!(
            "warm median {} (min {}, max {}); cold {}; {}",
            units::duration(reopen.median()),
            units::duration(reopen.min()),
            units::duration(reopen.max()),
            reopen
                .cold
                .map_or("not measured (needs root)".into(), units::duration),
            units::count(reopen.segments, "segment")
        ),
        verdict: Verdict::of(
            reopen.median() < REOPEN_TIME_MAX
                && reopen.cold.is_none_or(|cold| cold < REOPEN_TIME_MAX),
        ),
        caveat,
    }
}
