//! What a run of `eddy bench peers` reports: the table (medians,
//! spreads, Eddy's ratios, notes), the targets judged, and the
//! chart's data.

use std::time::Duration;

use super::{ALWAYS, Measured, NEVER, Plan, REDIS, REDIS_ALWAYS, Runs, Target, Workload};
use super::{chart, latency, retry};
use crate::cli::bench::report::{Row, Table};
use crate::cli::bench::target::{Judged, Verdict};
use crate::cli::bench::units::{duration, grouped, median};

pub(super) const TABLE: Table = Table {
    columns: [
        "workload",
        "target",
        "durability",
        "median",
        "spread",
        "vs eddy always",
        "vs eddy never",
        "server peak RSS",
        "",
        "client; notes",
    ],
    widths: [20, 17, 28, 20, 22, 14, 13, 15, 0],
    right_aligned: [false, false, false, true, true, true, true, false, false],
};

/// The median of a row's runs' values (`None` when skipped or empty).
fn row_median(runs: &Runs) -> Option<f64> {
    match runs {
        Ok(runs) if !runs.is_empty() => Some(median(
            &runs.iter().map(Measured::value).collect::<Vec<_>>(),
        )),
        _ => None,
    }
}

/// The median of a row, looked up by workload and target.
fn median_of(results: &[((Workload, Target), Runs)], row: (Workload, Target)) -> Option<f64> {
    results
        .iter()
        .find(|(r, _)| *r == row)
        .and_then(|(_, runs)| row_median(runs))
}

/// Every W4 run's samples of a row together, shortest first.
fn merged_latency(runs: &[Measured]) -> Vec<Duration> {
    let mut all: Vec<Duration> = runs
        .iter()
        .filter_map(|m| match m {
            Measured::Latency(l) => Some(l.samples.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    all.sort_unstable();
    all
}

/// The table: each row's median and spread, and Eddy's medians over it
/// (for throughput, how many times faster Eddy is; for W4, Eddy's p99
/// over the row's).
pub(super) fn table_rows(results: &[((Workload, Target), Runs)], plan: &Plan) -> Vec<Row> {
    results
        .iter()
        .map(|&((workload, target), ref runs)| {
            let latency = matches!(workload, Workload::W4 { .. });
            let show = |v: f64| {
                if latency {
                    format!("p99 {}", duration(Duration::from_secs_f64(v)))
                } else {
                    format!("{} events/s", grouped(v))
                }
            };
            let (median_cell, spread, ratios, notes) = match runs {
                Ok(measured) if !measured.is_empty() => {
                    let values: Vec<f64> = measured.iter().map(Measured::value).collect();
                    let m = median(&values);
                    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = values.iter().copied().fold(0.0, f64::max);
                    let ratio = |eddy: Target| {
                        median_of(results, (workload, eddy)).map_or("-".into(), |e| {
                            if latency {
                                format!("{:.2}× p99", e / m)
                            } else {
                                format!("{:.2}×", e / m)
                            }
                        })
                    };
                    let spread = if latency {
                        format!(
                            "{}–{}",
                            duration(Duration::from_secs_f64(lo)),
                            duration(Duration::from_secs_f64(hi))
                        )
                    } else {
                        format!("{}–{}", grouped(lo), grouped(hi))
                    };
                    (
                        show(m),
                        spread,
                        [ratio(ALWAYS), ratio(NEVER)],
                        notes_of(measured, plan),
                    )
                }
                Ok(_) => (
                    "-".into(),
                    "-".into(),
                    ["-".into(), "-".into()],
                    String::new(),
                ),
                Err(why) => (
                    "skipped".into(),
                    "-".into(),
                    ["-".into(), "-".into()],
                    format!("skipped: {why}"),
                ),
            };
            let [vs_always, vs_never] = ratios;
            let client = target.client(workload);
            [
                workload.name(),
                target.name().into(),
                target.durability(),
                median_cell,
                spread,
                vs_always,
                vs_never,
                String::new(),
                String::new(),
                if notes.is_empty() {
                    client
                } else {
                    format!("{client}; {notes}")
                },
            ]
        })
        .collect()
}

/// What a row's runs add to its client column: W4's percentiles over
/// every run's samples and the pacer's worst lag; W5's delays.
fn notes_of(runs: &[Measured], plan: &Plan) -> String {
    match runs.first() {
        Some(Measured::Latency(_)) => {
            let all = merged_latency(runs);
            let q = |q| duration(crate::cli::bench::broker::latency::quantile(&all, q));
            let lag = runs
                .iter()
                .filter_map(|m| match m {
                    Measured::Latency(l) => Some(l.paced.lag_max),
                    _ => None,
                })
                .max()
                .unwrap_or_default();
            format!(
                "all runs: p50 {} / p99 {} / p99.9 {} / max {}; pacer lag max {}",
                q(0.5),
                q(0.99),
                q(0.999),
                q(1.0),
                duration(lag)
            )
        }
        Some(Measured::Retry(..)) => {
            let mut delays: Vec<Duration> = runs
                .iter()
                .filter_map(|m| match m {
                    Measured::Retry(r, _) => Some(r.delays.iter().copied()),
                    _ => None,
                })
                .flatten()
                .collect();
            delays.sort_unstable();
            let retried = retry::Retried {
                elapsed: Duration::ZERO,
                delays,
            };
            retried.summary(plan.retry_delay)
        }
        _ => String::new(),
    }
}

/// The targets, judged on the medians of this run.
pub(super) fn judge(results: &[((Workload, Target), Runs)], peaks: &[Option<u64>]) -> Vec<Judged> {
    let m = |row| median_of(results, row);
    let at_least = |name, eddy: (Workload, Target), peer: (Workload, Target), goal: f64| {
        judged_ratio(
            name,
            m(eddy),
            m(peer),
            goal,
            true,
            &format!("{} / {}", eddy.1.label(), peer.1.label()),
        )
    };
    let w4 = Workload::W4 {
        rate_per_sec: latency::RATES[0],
    };
    let mut judged = vec![
        at_least(
            "W1, fsync always, vs NATS",
            (Workload::W1, ALWAYS),
            (Workload::W1, Target::Nats),
            2.0,
        ),
        at_least(
            "W1, fsync always, vs Redis always",
            (Workload::W1, ALWAYS),
            (Workload::W1, REDIS_ALWAYS),
            4.0,
        ),
        at_least(
            "W1, fsync never, vs Redis",
            (Workload::W1, NEVER),
            (Workload::W1, REDIS),
            1.0,
        ),
        at_least(
            "W3, durable acks, vs NATS",
            (Workload::W3, ALWAYS),
            (Workload::W3, Target::Nats),
            2.0,
        ),
        at_least(
            "W3, durable acks, vs Redis",
            (Workload::W3, ALWAYS),
            (Workload::W3, REDIS),
            1.0,
        ),
        judged_ratio(
            "W4 at 5,000/s, fsync always, vs NATS",
            m((w4, ALWAYS)),
            m((w4, Target::Nats)),
            0.5,
            false,
            "p99, eddy fsync always / nats jetstream",
        ),
        judged_ratio(
            "W4 at 5,000/s, fsync never, vs Redis",
            m((w4, NEVER)),
            m((w4, REDIS)),
            1.0,
            false,
            "p99, eddy fsync never / redis",
        ),
    ];
    let peak = |target| {
        results
            .iter()
            .position(|(row, _)| *row == (Workload::W1, target))
            .and_then(|i| peaks[i])
            .map(|b| b as f64)
    };
    judged.push(judged_ratio(
        "server peak memory during W1 vs nats-server",
        peak(Target::EddyServer),
        peak(Target::Nats),
        0.5,
        false,
        "peak RSS, eddy serve / nats-server",
    ));
    judged
}

/// A target on a ratio `eddy / peer`: at least `goal` when `higher`, at
/// most `goal` otherwise; a MISS when either side was not measured.
fn judged_ratio(
    name: &'static str,
    eddy: Option<f64>,
    peer: Option<f64>,
    goal: f64,
    higher: bool,
    what: &str,
) -> Judged {
    let goal_text = format!("{what} {} {goal}×", if higher { "≥" } else { "≤" });
    match (eddy, peer) {
        (Some(e), Some(p)) if p > 0.0 => {
            let ratio = e / p;
            let met = if higher { ratio >= goal } else { ratio <= goal };
            Judged {
                name,
                goal: goal_text,
                measured: format!("{ratio:.2}×"),
                verdict: Verdict::of(met),
                caveat: None,
            }
        }
        _ => Judged {
            name,
            goal: goal_text,
            measured: "not measured (a row was skipped)".into(),
            verdict: Verdict::Miss,
            caveat: None,
        },
    }
}

/// The chart's bars: every throughput row's median and spread, and every
/// W4 row's percentiles over all its runs.
pub(super) fn chart_data(
    results: &[((Workload, Target), Runs)],
) -> (Vec<chart::Throughput>, Vec<chart::Latencies>) {
    let mut throughput = Vec::new();
    let mut latencies = Vec::new();
    for ((workload, target), runs) in results {
        let Ok(runs) = runs else { continue };
        if runs.is_empty() {
            continue;
        }
        match workload {
            Workload::W4 { rate_per_sec } => {
                let all = merged_latency(runs);
                let ms =
                    |q| crate::cli::bench::broker::latency::quantile(&all, q).as_secs_f64() * 1e3;
                latencies.push(chart::Latencies {
                    rate: format!("{}/s", grouped(*rate_per_sec as f64)),
                    target: target.label(),
                    p50_ms: ms(0.5),
                    p99_ms: ms(0.99),
                    p999_ms: ms(0.999),
                });
            }
            _ => {
                let values: Vec<f64> = runs.iter().map(Measured::value).collect();
                throughput.push(chart::Throughput {
                    workload: workload.name(),
                    target: target.label(),
                    median: median(&values),
                    min: values.iter().copied().fold(f64::INFINITY, f64::min),
                    max: values.iter().copied().fold(0.0, f64::max),
                });
            }
        }
    }
    (throughput, latencies)
}

#[cfg(test)]
mod tests {
    use super::super::BenchPeersArgs;
    use super::*;

    fn rates(values: &[f64]) -> Runs {
        Ok(values.iter().map(|&v| Measured::Rate(v)).collect())
    }

    fn plan() -> Plan {
        Plan::from_args(&BenchPeersArgs {
            dir: None,
            events: None,
            latency_secs: None,
            retry_events: None,
            retry_delay_ms: retry::DELAY_MS,
            rounds: None,
            nats: String::new(),
            redis: String::new(),
            rabbitmq: String::new(),
            markdown: None,
            only: Vec::new(),
            targets: Vec::new(),
            quick: true,
        })
    }

    #[test]
    fn ratios_are_eddys_median_over_the_peers_and_skips_say_why() {
        let results = vec![
            ((Workload::W1, ALWAYS), rates(&[100.0, 300.0, 200.0])),
            ((Workload::W1, NEVER), rates(&[400.0])),
            ((Workload::W1, Target::Nats), rates(&[50.0, 100.0, 150.0])),
            ((Workload::W1, REDIS), Err("connection refused".to_string())),
        ];
        let rows = table_rows(&results, &plan());
        assert_eq!(rows[0][0], "W1 publish");
        assert_eq!(rows[0][3], "200 events/s");
        assert_eq!(rows[0][4], "100–300");
        assert_eq!(
            (rows[2][5].as_str(), rows[2][6].as_str()),
            ("2.00×", "4.00×")
        );
        assert_eq!(rows[3][3], "skipped");
        assert!(rows[3][9].contains("connection refused"));
    }

    #[test]
    fn latency_rows_compare_p99s_and_targets_judge_both_ways() {
        let w4 = Workload::W4 {
            rate_per_sec: latency::RATES[0],
        };
        let run = |ms: u64| {
            let samples: Vec<Duration> = (1..=100)
                .map(|i| Duration::from_micros(i * ms * 10))
                .collect();
            let pace = latency::Pace {
                rate_per_sec: 1,
                events: 100,
            };
            Measured::Latency(
                latency::Latency::new(samples, latency::Paced::default(), pace).unwrap(),
            )
        };
        // p99 of run(ms) is 0.99 ms × ms.
        let results = vec![
            ((w4, ALWAYS), Ok(vec![run(1)])),
            ((w4, NEVER), Ok(vec![run(1)])),
            ((w4, Target::Nats), Ok(vec![run(4)])),
            ((w4, REDIS), Ok(vec![run(1)])),
        ];
        let rows = table_rows(&results, &plan());
        assert_eq!(rows[2][3], "p99 3.96 ms");
        assert_eq!(rows[2][5], "0.25× p99");
        let judged = judge(&results, &vec![None; results.len()]);
        let verdict = |name: &str| {
            judged
                .iter()
                .find(|j| j.name.starts_with(name))
                .unwrap()
                .verdict
        };
        assert_eq!(verdict("W4 at 5,000/s, fsync always"), Verdict::Pass);
        assert_eq!(verdict("W4 at 5,000/s, fsync never"), Verdict::Pass);
        // Rows that did not run are misses, not passes.
        assert_eq!(verdict("W1, fsync always, vs NATS"), Verdict::Miss);
        assert_eq!(verdict("server peak memory"), Verdict::Miss);
    }
}
