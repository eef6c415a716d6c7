//! The embedded broker's performance targets, and whether a run met them.

use std::time::Duration;

use anyhow::{Context, Result};

use super::Results;
use super::{consume, publish};
use crate::cli::bench::target::{Judged, Verdict};
use crate::cli::bench::units;

/// Durable publish to one partition: share of the log's own figure.
const PUBLISH_RATIO_MIN: f64 = 0.50;
/// Consume + ack of a backlog, events/s.
const CONSUME_PER_SEC_MIN: f64 = 300_000.0;
/// p99 publish-to-receipt latency at 10,000 events/s.
const LATENCY_P99_MAX: Duration = Duration::from_millis(2);
/// Resident memory per idle topic or subscription.
const IDLE_BYTES_MAX: f64 = 2048.0;

pub fn judge(results: &Results) -> Result<Vec<Judged>> {
    Ok(vec![
        publish_ratio(results)?,
        consume_rate(results),
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

/// Durable publish, 1 partition, fsync `always`, 4 publishers of batches
/// of 100 events of 1 KiB: at least 50% of the log's own records/s.
fn publish_ratio(results: &Results) -> Result<Judged> {
    let one = results
        .publishes
        .iter()
        .find(|p| p.partitions == 1)
        .context("no result for the 1-partition publish")?;
    let log = results.log.records_per_sec();
    let ratio = one.events_per_sec() / log;
    let defaults = results.log_defaults.records_per_sec();
    Ok(Judged {
        name: "publish",
        goal: format!(
            "durable publish (fsync always), 1 partition, {} publishers × batches of {} \
             events of {}: ≥ {} of the log's own append_batch, same shape and settings",
            publish::WRITERS,
            publish::BATCH,
            units::bytes(publish::VALUE_BYTES as u64),
            units::percent(PUBLISH_RATIO_MIN)
        ),
        measured: format!(
            "{} events/s vs {} records/s = {} (vs the log with its default settings, \
             {} records/s: {})",
            units::grouped(one.events_per_sec()),
            units::grouped(log),
            units::percent(ratio),
            units::grouped(defaults),
            units::percent(one.events_per_sec() / defaults)
        ),
        verdict: Verdict::of(ratio >= PUBLISH_RATIO_MIN),
        caveat: quick_caveat(results),
    })
}

fn consume_rate(results: &Results) -> Judged {
    let c = &results.consume;
    let caveat = match quick_caveat(results) {
        Some(q) => Some(q),
        None if c.events < 400_000 => Some(format!(
            "drained {} events; the target is for a backlog of 400,000",
            units::grouped(c.events as f64)
        )),
        None => None,
    };
    Judged {
        name: "consume",
        goal: format!(
            "consume + ack (fsync always), {} consumers of a shared subscription, fetch ≤ {} \
             then ack_all: ≥ {} events/s",
            consume::CONSUMERS,
            consume::FETCH_MAX,
            units::grouped(CONSUME_PER_SEC_MIN)
        ),
        measured: format!(
            "{} events/s ({} events in {}, each acked exactly once)",
            units::grouped(c.events_per_sec()),
            units::grouped(c.events as f64),
            units::duration(c.elapsed)
        ),
        verdict: Verdict::of(c.events_per_sec() >= CONSUME_PER_SEC_MIN),
        caveat,
    }
}

fn latency_p99(results: &Results) -> Judged {
    let l = &results.latency;
    Judged {
        name: "latency",
        goal: format!(
            "publish-to-receipt p99 at {} events/s (fsync always): ≤ {}",
            units::grouped(super::latency::RATE_PER_SEC as f64),
            units::duration(LATENCY_P99_MAX)
        ),
        measured: format!(
            "p99 {} (p50 {}, p99.9 {}, max {}) over {} events",
            units::duration(l.quantile(0.99)),
            units::duration(l.quantile(0.50)),
            units::duration(l.quantile(0.999)),
            units::duration(l.max()),
            units::grouped(l.events as f64)
        ),
        verdict: Verdict::of(l.quantile(0.99) <= LATENCY_P99_MAX),
        caveat: quick_caveat(results),
    }
}

fn idle_memory(results: &Results) -> Judged {
    let i = &results.idle;
    let caveat = (i.objects < 10_000).then(|| {
        format!(
            "{} topics and subscriptions; the target is for 10,000 of each",
            units::grouped(f64::from(i.objects))
        )
    });
    Judged {
        name: "idle memory",
        goal: format!(
            "resident memory per idle topic (1 partition) or subscription: ≤ {}",
            units::bytes(IDLE_BYTES_MAX as u64)
        ),
        measured: format!(
            "{} B per object ({} more VmRSS for {} topics + {} subscriptions)",
            units::grouped(i.bytes_per_object()),
            units::bytes(i.after.total.saturating_sub(i.before.total)),
            units::grouped(f64::from(i.objects)),
            units::grouped(f64::from(i.objects))
        ),
        verdict: Verdict::of(i.bytes_per_object() <= IDLE_BYTES_MAX),
        caveat,
    }
}
