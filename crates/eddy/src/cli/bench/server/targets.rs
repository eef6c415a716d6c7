//! The server's performance targets, and whether a run met them.

use std::time::Duration;

use anyhow::{Context, Result};

use super::report::drain_rate;
use super::{Results, consume, latency, publish};
use crate::cli::bench::target::{Judged, Verdict};
use crate::cli::bench::units;

/// Native-protocol publish and consume + ack: share of the embedded
/// engine's figure in the same run.
const NATIVE_RATIO_MIN: f64 = 0.70;
/// p99 publish-to-receipt latency over the native protocol at 10,000
/// events/s.
const LATENCY_P99_MAX: Duration = Duration::from_millis(3);
/// Resident memory of an idle server (strictly less).
const IDLE_RSS_MAX: u64 = 30 * 1024 * 1024;

pub fn judge(results: &Results) -> Result<Vec<Judged>> {
    Ok(vec![
        publish_ratio(results)?,
        consume_ratio(results)?,
        latency_p99(results),
        idle_memory(results),
    ])
}

fn quick_caveat(results: &Results) -> Option<String> {
    results
        .plan
        .quick
        .then(|| "quick run: short workloads, indicative only".to_string())
}

/// `X events/s with <connections>`, for each native run but `best`.
fn others(rates: &[(String, f64)], best: usize, reference: f64) -> String {
    let others: Vec<String> = rates
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, (how, rate))| {
            format!(
                "{} events/s with {how} ({})",
                units::grouped(*rate),
                units::percent(rate / reference)
            )
        })
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!("; {}", others.join("; "))
    }
}

fn publish_ratio(results: &Results) -> Result<Judged> {
    let embedded = results.embedded_publish.events_per_sec();
    let rates: Vec<(String, f64)> = results
        .native_publishes
        .iter()
        .map(|n| {
            (
                n.connections.describe(publish::WRITERS),
                n.result.events_per_sec(),
            )
        })
        .collect();
    let best = best_of(&rates).context("no native publish result")?;
    let (how, rate) = &rates[best];
    let ratio = rate / embedded;
    Ok(Judged {
        name: "native publish",
        goal: format!(
            "durable publish (fsync always) over the native protocol, {} tasks × batches of \
             {} events of {}, {} partitions: ≥ {} of the embedded broker's figure in the same \
             run",
            publish::WRITERS,
            publish::BATCH,
            units::bytes(publish::VALUE_BYTES as u64),
            super::PUBLISH_PARTITIONS,
            units::percent(NATIVE_RATIO_MIN)
        ),
        measured: format!(
            "best: {} events/s with {how} vs {} embedded = {}{}",
            units::grouped(*rate),
            units::grouped(embedded),
            units::percent(ratio),
            others(&rates, best, embedded)
        ),
        verdict: Verdict::of(ratio >= NATIVE_RATIO_MIN),
        caveat: quick_caveat(results),
    })
}

fn consume_ratio(results: &Results) -> Result<Judged> {
    let embedded = results.embedded_consume.events_per_sec();
    let events = results.plan.consume_events;
    let rates: Vec<(String, f64)> = results
        .native_consumes
        .iter()
        .map(|n| {
            (
                n.connections.describe(consume::CONSUMERS),
                drain_rate(events, &n.result),
            )
        })
        .collect();
    let best = best_of(&rates).context("no native consume result")?;
    let (how, rate) = &rates[best];
    let ratio = rate / embedded;
    Ok(Judged {
        name: "native consume",
        goal: format!(
            "consume + ack (fsync always) over the native protocol, {} consumers of a shared \
             subscription, fetch ≤ {} then ack_all: ≥ {} of the embedded broker's figure in \
             the same run",
            consume::CONSUMERS,
            consume::FETCH_MAX,
            units::percent(NATIVE_RATIO_MIN)
        ),
        measured: format!(
            "best: {} events/s with {how} vs {} embedded = {}{} ({} events, each acked \
             exactly once)",
            units::grouped(*rate),
            units::grouped(embedded),
            units::percent(ratio),
            others(&rates, best, embedded),
            units::grouped(events as f64)
        ),
        verdict: Verdict::of(ratio >= NATIVE_RATIO_MIN),
        caveat: quick_caveat(results),
    })
}

/// Index of the highest rate.
fn best_of(rates: &[(String, f64)]) -> Option<usize> {
    (0..rates.len()).max_by(|&a, &b| rates[a].1.total_cmp(&rates[b].1))
}

fn latency_p99(results: &Results) -> Judged {
    let l = &results.native_latency.result;
    let e = &results.embedded_latency;
    Judged {
        name: "latency",
        goal: format!(
            "publish-to-receipt p99 over the native protocol at {} events/s (fsync always): ≤ {}",
            units::grouped(latency::RATE_PER_SEC as f64),
            units::duration(LATENCY_P99_MAX)
        ),
        measured: format!(
            "p99 {} (p50 {}, p99.9 {}, max {}) over {} events; embedded in the same run: \
             p99 {} (p50 {})",
            units::duration(l.quantile(0.99)),
            units::duration(l.quantile(0.50)),
            units::duration(l.quantile(0.999)),
            units::duration(l.max()),
            units::grouped(l.events as f64),
            units::duration(e.quantile(0.99)),
            units::duration(e.quantile(0.50)),
        ),
        verdict: Verdict::of(l.quantile(0.99) <= LATENCY_P99_MAX),
        caveat: quick_caveat(results),
    }
}

fn idle_memory(results: &Results) -> Judged {
    let s = &results.server;
    Judged {
        name: "idle memory",
        goal: format!(
            "resident memory of an idle server: < {}",
            units::bytes(IDLE_RSS_MAX)
        ),
        measured: format!(
            "{} VmRSS (RssAnon {}, RssFile {}) after one client came and went; under load: \
             peak {} during the native publish workloads",
            units::bytes(s.idle.total),
            units::bytes(s.idle.anon),
            units::bytes(s.idle.file),
            units::bytes(s.load.bytes),
        ),
        verdict: Verdict::of(s.idle.total < IDLE_RSS_MAX),
        caveat: None,
    }
}
