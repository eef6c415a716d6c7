//! What a run of `eddy bench store` reports: the table (medians, spreads,
//! Eddy's ratio over PostgreSQL, latencies, disk flushes, notes) and the
//! issue's target judged.

use std::fmt::Write as _;
use std::time::Duration;

use super::postgres::{self, Settings};
use super::workload::{self, Measured, ReadWorkload};
use super::{Plan, Results, Runs, Side, Workload};
use crate::cli::bench::broker::latency::quantile;
use crate::cli::bench::report::{Row, Table};
use crate::cli::bench::target::{Judged, Verdict};
use crate::cli::bench::units::{duration, grouped, median};

/// Eddy's appends per second over PostgreSQL's, at equal durability.
pub(super) const TARGET: f64 = 10.0;

/// What the report needs besides the results.
#[derive(Debug)]
pub(super) struct Context {
    pub plan: Plan,
    /// PostgreSQL's settings; `None` when it was skipped.
    pub settings: Option<Settings>,
    /// The disk whose flushes were counted.
    pub device: Option<String>,
}

pub(super) const TABLE: Table = Table {
    columns: [
        "workload",
        "target",
        "durability",
        "median",
        "spread",
        "eddy / postgres",
        "p50",
        "p99",
        "disk flushes",
        "notes",
    ],
    widths: [26, 10, 32, 18, 17, 15, 9, 9, 24],
    right_aligned: [false, false, false, true, true, true, true, true, false],
};

pub(super) fn workload_name(w: Workload) -> &'static str {
    match w {
        Workload::Appends => "append 1 event, Exact(v)",
        Workload::Read(ReadWorkload::Scattered) => "read 1,000, scattered",
        Workload::Read(ReadWorkload::Contiguous) => "read 1,000, contiguous",
        Workload::Read(ReadWorkload::LoadFull) => "load aggregate, no snapshot",
        Workload::Read(ReadWorkload::LoadSnapshot) => "load aggregate, snapshot",
    }
}

pub(super) fn side_name(side: Side) -> &'static str {
    match side {
        Side::Eddy => "eddy",
        Side::Postgres => "postgresql",
    }
}

fn unit(w: Workload) -> &'static str {
    match w {
        Workload::Appends => "appends/s",
        Workload::Read(ReadWorkload::Scattered | ReadWorkload::Contiguous) => "reads/s",
        Workload::Read(_) => "loads/s",
    }
}

/// The median rate of a row's runs (`None` when skipped or empty).
fn row_median(runs: &Runs) -> Option<f64> {
    match runs {
        Ok(runs) if !runs.is_empty() => {
            Some(median(&runs.iter().map(Measured::rate).collect::<Vec<_>>()))
        }
        _ => None,
    }
}

fn median_of(results: &Results, row: (Workload, Side)) -> Option<f64> {
    results
        .iter()
        .find(|(r, _)| *r == row)
        .and_then(|(_, runs)| row_median(runs))
}

fn durability(side: Side, context: &Context) -> String {
    match (side, &context.settings) {
        (Side::Eddy, _) => "fsync always (group commit)".into(),
        (Side::Postgres, Some(s)) => s.durability(),
        (Side::Postgres, None) => "-".into(),
    }
}

/// What each row's client does.
fn client(w: Workload, side: Side, plan: &Plan) -> String {
    let a = plan.appenders;
    let streams = grouped(a.streams as f64);
    match (w, side) {
        (Workload::Appends, Side::Eddy) => format!(
            "{} tasks, each appending to its own streams (n % {}) of {streams} `{}<n>`, one event of {} B JSON per append; embedded `EventStore::append`{}",
            a.tasks,
            a.tasks,
            a.prefix,
            workload::EVENT_BYTES,
            if a.prefix == workload::CATEGORIZED {
                ", each event also published to the bus topic `es.order`"
            } else {
                ", no category: nothing published to the bus"
            }
        ),
        (Workload::Appends, Side::Postgres) => format!(
            "the same {} tasks; tokio-postgres, a pool of {} connections, one autocommit INSERT of the next version per append, unique (stream, version), jsonb data",
            a.tasks,
            postgres::pool_size(a.tasks)
        ),
        (Workload::Read(r), Side::Eddy) => match r {
            ReadWorkload::Scattered => {
                "one reader, read_stream(Version(0), Forward, 1000) one at a time; each event of the stream followed by 9 of other streams".into()
            }
            ReadWorkload::Contiguous => {
                "one reader, the same read of a stream appended back to back (1,000 single-event appends)".into()
            }
            ReadWorkload::LoadFull => {
                "read the scattered stream whole and fold its 1,000 ItemAdded events (serde_json)".into()
            }
            ReadWorkload::LoadSnapshot => {
                "read_stream($snap-…, Start, Backward, 1), then fold the 50 events after it (a snapshot every 100 events)".into()
            }
        },
        (Workload::Read(r), Side::Postgres) => match r {
            ReadWorkload::Scattered | ReadWorkload::Contiguous => {
                "one reader, SELECT … WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT 1001 (the unique index), rows decoded into a struct".into()
            }
            ReadWorkload::LoadFull => "the same read, and the same fold".into(),
            ReadWorkload::LoadSnapshot => {
                "the snapshot row (ORDER BY version DESC LIMIT 1), then the 50 events after it".into()
            }
        },
    }
}

/// The table: each row's median and spread, Eddy's median over
/// PostgreSQL's, the latencies of every run together, and for appends
/// the disk's flushes.
pub(super) fn table_rows(results: &Results, context: &Context) -> Vec<Row> {
    let plan = &context.plan;
    results
        .iter()
        .map(|&((w, side), ref runs)| {
            let client = client(w, side, plan);
            let mut row: Row = [
                workload_name(w).into(),
                side_name(side).into(),
                durability(side, context),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                client,
            ];
            let measured = match runs {
                Err(why) => {
                    row[3] = "skipped".into();
                    row[9] = format!("skipped: {why}");
                    return row;
                }
                Ok(m) if m.is_empty() => return row,
                Ok(m) => m,
            };
            let rates: Vec<f64> = measured.iter().map(Measured::rate).collect();
            let m = median(&rates);
            let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = rates.iter().copied().fold(0.0, f64::max);
            row[3] = format!("{} {}", grouped(m), unit(w));
            row[4] = format!("{}–{}", grouped(lo), grouped(hi));
            if side == Side::Eddy
                && let Some(pg) = median_of(results, (w, Side::Postgres)).filter(|&p| p > 0.0)
            {
                row[5] = format!("{:.2}×", m / pg);
            }
            let mut all: Vec<Duration> = measured
                .iter()
                .flat_map(|m| m.latencies.iter().copied())
                .collect();
            all.sort_unstable();
            row[6] = duration(quantile(&all, 0.5));
            row[7] = duration(quantile(&all, 0.99));
            if let Some(flushes) = flushes(measured) {
                row[8] = flushes;
            }
            let ops: u64 = measured.iter().map(|m| m.ops).sum();
            let conflicts: u64 = measured.iter().map(|m| m.conflicts).sum();
            let mut notes = format!(
                "; {} {} in {} runs of {:.1} s",
                grouped(ops as f64),
                if w == Workload::Appends {
                    "appends"
                } else {
                    "operations"
                },
                measured.len(),
                median(
                    &measured
                        .iter()
                        .map(|m| m.elapsed.as_secs_f64())
                        .collect::<Vec<_>>()
                )
            );
            if w == Workload::Appends {
                let _ = write!(notes, ", {} conflicts", grouped(conflicts as f64));
                if let Some(cpu) = cpu(measured, side) {
                    let _ = write!(notes, "; {cpu}");
                }
            }
            row[9].push_str(&notes);
            row
        })
        .collect()
}

/// The median run's CPU time per append and cores kept busy: this
/// process's, and for PostgreSQL its server processes' too.
fn cpu(runs: &[Measured], side: Side) -> Option<String> {
    let per_run: Vec<(f64, f64)> = runs
        .iter()
        .map(|m| {
            let cpu = m.cpu?.as_secs_f64();
            (m.ops > 0).then(|| (cpu / m.ops as f64, cpu / m.elapsed.as_secs_f64()))
        })
        .collect::<Option<_>>()?;
    let per_op = median(&per_run.iter().map(|p| p.0).collect::<Vec<_>>());
    let cores = median(&per_run.iter().map(|p| p.1).collect::<Vec<_>>());
    let whose = match side {
        Side::Eddy => "the bench process, store and forwarder included",
        Side::Postgres => "the bench process and the postgres processes",
    };
    Some(format!(
        "CPU {} per append, {cores:.2} cores busy ({whose})",
        duration(Duration::from_secs_f64(per_op))
    ))
}

/// The median run's flushes per second and appends per flush.
fn flushes(runs: &[Measured]) -> Option<String> {
    let per_run: Vec<(f64, f64)> = runs
        .iter()
        .filter_map(|m| {
            let f = m.flushes.filter(|&f| f > 0)? as f64;
            Some((f / m.elapsed.as_secs_f64(), m.ops as f64 / f))
        })
        .collect();
    if per_run.len() != runs.len() {
        return None;
    }
    let per_sec = median(&per_run.iter().map(|p| p.0).collect::<Vec<_>>());
    let each = median(&per_run.iter().map(|p| p.1).collect::<Vec<_>>());
    Some(format!("{}/s, {each:.1} appends each", grouped(per_sec)))
}

/// The target, judged on the medians of this run.
pub(super) fn judge(results: &Results, context: &Context) -> Vec<Judged> {
    let name = "appends, durable, vs PostgreSQL";
    let goal = format!(
        "eddy (fsync always) ≥ {TARGET}× PostgreSQL (synchronous_commit on) appends/s, 1 event per append, Exact(v), {} tasks",
        context.plan.appenders.tasks
    );
    let eddy = median_of(results, (Workload::Appends, Side::Eddy));
    let pg = median_of(results, (Workload::Appends, Side::Postgres));
    let skipped = results.iter().find_map(|((w, s), runs)| match runs {
        Err(why) if *w == Workload::Appends && *s == Side::Postgres => Some(why.clone()),
        _ => None,
    });
    let judged = match (eddy, pg) {
        (Some(e), Some(p)) if p > 0.0 => {
            let ratio = e / p;
            let unequal = context
                .settings
                .as_ref()
                .filter(|s| !s.flushes_each_commit())
                .map(|s| {
                    format!(
                        "not equal durability: PostgreSQL ran with {}, its commits were not flushed",
                        s.durability()
                    )
                });
            let uncategorized =
                (context.plan.appenders.prefix != workload::CATEGORIZED).then(|| {
                    "--uncategorized: Eddy published nothing to the bus, not its default"
                        .to_string()
                });
            let caveat = unequal.or(uncategorized);
            Judged {
                name,
                goal,
                measured: format!(
                    "{ratio:.2}× ({} vs {} appends/s, medians of {} rounds)",
                    grouped(e),
                    grouped(p),
                    context.plan.rounds
                ),
                verdict: Verdict::of(ratio >= TARGET && caveat.is_none()),
                caveat,
            }
        }
        _ => Judged {
            name,
            goal,
            measured: match skipped {
                Some(why) => format!("not measured (PostgreSQL skipped: {why})"),
                None => "not measured".into(),
            },
            verdict: Verdict::Miss,
            caveat: None,
        },
    };
    vec![judged]
}

/// The lines above the table: what PostgreSQL said about itself, and
/// where the flushes were counted.
pub(super) fn preamble(context: &Context) -> String {
    let mut md = String::new();
    match &context.settings {
        Some(s) => {
            let _ = writeln!(md, "PostgreSQL: {}.\n", s.describe());
        }
        None => md.push_str("PostgreSQL: skipped (see the table).\n\n"),
    }
    if let Some(device) = &context.device {
        let _ = writeln!(
            md,
            "Disk flushes: flush requests `{device}` (the disk of the bench directory) completed during each append run, machine-wide, from `/proc/diskstats`.\n"
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            appenders: workload::Appenders {
                tasks: 64,
                streams: 100_000,
                run_time: Duration::from_secs(10),
                prefix: workload::CATEGORIZED,
            },
            read_time: Duration::from_secs(2),
            rounds: 3,
        }
    }

    fn settings(fsync: &str) -> Settings {
        Settings {
            version: "PostgreSQL 15.20".into(),
            user: "postgres".into(),
            fsync: fsync.into(),
            synchronous_commit: "on".into(),
            wal_sync_method: "fdatasync".into(),
            full_page_writes: "on".into(),
            superuser: true,
        }
    }

    /// A run of `ops` operations in 1 s, each taking 1..=ops ms, with
    /// `flushes` disk flushes.
    fn run(ops: u64, flushes: u64) -> Measured {
        Measured {
            ops,
            elapsed: Duration::from_secs(1),
            latencies: (1..=ops).map(Duration::from_millis).collect(),
            conflicts: 0,
            flushes: Some(flushes),
            cpu: Some(Duration::from_millis(ops / 2)),
        }
    }

    fn appends(eddy: &[u64], pg: Runs) -> Results {
        vec![
            (
                (Workload::Appends, Side::Eddy),
                Ok(eddy.iter().map(|&n| run(n, n / 10)).collect()),
            ),
            ((Workload::Appends, Side::Postgres), pg),
        ]
    }

    #[test]
    fn the_table_shows_medians_spreads_and_eddys_ratio() {
        let results = appends(&[300, 100, 200], Ok(vec![run(40, 20), run(50, 25)]));
        let context = Context {
            plan: plan(),
            settings: Some(settings("on")),
            device: Some("vda".into()),
        };
        let rows = table_rows(&results, &context);
        assert_eq!(rows[0][3], "200 appends/s");
        assert_eq!(rows[0][4], "100–300");
        assert_eq!(rows[0][5], "4.00×", "200 over PostgreSQL's median of 50");
        assert_eq!(rows[0][8], "20/s, 10.0 appends each");
        assert_eq!(rows[0][2], "fsync always (group commit)");
        assert_eq!(rows[1][2], "synchronous_commit on, fsync on");
        assert_eq!(rows[1][5], "-");
        assert_eq!(
            (rows[1][6].as_str(), rows[1][7].as_str()),
            ("23.00 ms", "50.00 ms")
        );
        assert!(
            rows[0][9].contains("600 appends in 3 runs of 1.0 s, 0 conflicts"),
            "{}",
            rows[0][9]
        );
        assert!(rows[1][9].contains("a pool of 64 connections"));
        assert!(
            rows[0][9].contains("CPU 500 µs per append, 0.10 cores busy (the bench process"),
            "{}",
            rows[0][9]
        );
        let judged = judge(&results, &context);
        assert_eq!(judged[0].verdict, Verdict::Miss);
        assert!(judged[0].measured.starts_with("4.00× (200 vs 50"));
    }

    #[test]
    fn ten_times_passes_only_at_equal_durability_and_skips_say_why() {
        let results = appends(&[1000], Ok(vec![run(100, 10)]));
        let mut context = Context {
            plan: plan(),
            settings: Some(settings("on")),
            device: None,
        };
        assert_eq!(judge(&results, &context)[0].verdict, Verdict::Pass);
        context.settings = Some(settings("off"));
        let judged = judge(&results, &context);
        assert_eq!(judged[0].verdict, Verdict::Miss);
        assert!(
            judged[0]
                .caveat
                .as_deref()
                .unwrap()
                .contains("not equal durability")
        );
        context.settings = Some(settings("on"));
        context.plan.appenders.prefix = workload::UNCATEGORIZED;
        let judged = judge(&results, &context);
        assert_eq!(judged[0].verdict, Verdict::Miss, "not Eddy's default");
        assert!(
            judged[0]
                .caveat
                .as_deref()
                .unwrap()
                .contains("--uncategorized")
        );
        context.plan.appenders.prefix = workload::CATEGORIZED;

        let results = appends(&[1000], Err("cannot connect to PostgreSQL".into()));
        context.settings = None;
        let rows = table_rows(&results, &context);
        assert_eq!(rows[1][3], "skipped");
        assert!(rows[1][9].contains("skipped: cannot connect"));
        assert_eq!(rows[0][5], "-");
        let judged = judge(&results, &context);
        assert_eq!(judged[0].verdict, Verdict::Miss);
        assert!(
            judged[0]
                .measured
                .contains("PostgreSQL skipped: cannot connect")
        );
        assert!(preamble(&context).contains("PostgreSQL: skipped"));
    }
}
