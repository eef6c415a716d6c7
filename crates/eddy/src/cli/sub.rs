//! `eddy sub create|list|describe|seek|delete`: manage a server's
//! subscriptions.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use eddy_bus::{
    Backoff, Bus, DeliveryMode, RetryPolicy, StartAt, SubscriptionConfig, SubscriptionInfo,
    SubscriptionStats,
};
use serde_json::json;

use super::connect::Remote;
use super::json;
use super::output::{self, Out, Table};
use super::parse::{self, Position};
use crate::utc;

#[derive(Debug, Args)]
pub struct SubArgs {
    #[command(subcommand)]
    command: SubCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum SubCommand {
    /// Create a durable subscription on a topic or a pattern of topics.
    Create(CreateArgs),
    /// List every subscription and its settings.
    List,
    /// Show a subscription's settings and live counters.
    Describe {
        /// The subscription.
        name: String,
    },
    /// Move a subscription to replay (or skip) events; pending deliveries
    /// and scheduled retries are dropped.
    Seek {
        /// The subscription.
        name: String,
        /// Where to: `beginning`, `end`, an offset (in every partition),
        /// an RFC 3339 time or a duration before now (`1h-ago`).
        #[arg(long, value_name = "POSITION", value_parser = parse::position)]
        to: Position,
    },
    /// Delete a subscription, its pending state and its dead letters.
    Delete {
        /// The subscription.
        name: String,
    },
}

/// How the consumers of a subscription share its events.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Any event to any consumer: the most throughput, no order.
    Shared,
    /// At most one event per key in flight: each key's events in order.
    Ordered,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The subscription's name: ASCII letters, digits, `_` and `-`.
    name: String,
    /// The topic, or a pattern: `orders.*` (one token), `orders.>` (one
    /// or more).
    #[arg(long, value_name = "TOPIC OR PATTERN")]
    filter: String,
    /// Where it starts in existing topics: `earliest`, `latest`, an
    /// offset, an RFC 3339 time or a duration before now (`1h-ago`).
    /// Topics created later are read from their beginning.
    #[arg(long, value_name = "POSITION", default_value = "latest",
          value_parser = parse::position)]
    start: Position,
    /// How its consumers share events.
    #[arg(long, value_enum, default_value_t = Mode::Shared)]
    mode: Mode,
    /// How long a consumer has to settle a delivery before it counts as a
    /// failed attempt.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = parse::duration_ms)]
    ack_wait: u64,
    /// Deliveries an event gets before it is dead-lettered
    /// (`max_deliveries`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        visible_alias = "max-deliveries"
    )]
    max_attempts: u32,
    /// The wait before each redelivery: `fixed(5s)`, `exponential(100ms,2)`,
    /// `quadratic(1s)` (base × attempt²) or `list(1s,10s,1m)`.
    #[arg(long, value_name = "SCHEDULE", default_value = "quadratic(1s)",
          value_parser = parse::backoff)]
    backoff: Backoff,
    /// The longest wait between attempts, e.g. `5m`.
    #[arg(long, value_name = "DURATION", value_parser = parse::duration_ms)]
    backoff_cap: Option<u64>,
    /// Spread each wait by up to ± this percentage (0..=100).
    #[arg(long, value_name = "PCT", default_value_t = 0)]
    jitter: u8,
    /// Most events pending at once (delivered, or waiting for a retry or
    /// their key).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_ack_pending: u32,
}

impl CreateArgs {
    fn config(&self) -> SubscriptionConfig {
        SubscriptionConfig {
            filter: self.filter.clone(),
            start: self.start.start_at(utc::now_ms()),
            mode: match self.mode {
                Mode::Shared => DeliveryMode::Shared,
                Mode::Ordered => DeliveryMode::Ordered,
            },
            ack_wait_ms: self.ack_wait,
            retry: RetryPolicy {
                max_deliveries: self.max_attempts,
                backoff: self.backoff.clone(),
                cap_ms: self.backoff_cap,
                jitter_pct: self.jitter,
            },
            max_ack_pending: self.max_ack_pending,
        }
    }
}

pub fn run(args: SubArgs) -> Result<()> {
    let remote = &args.remote;
    remote.run(|bus| async move {
        let mut out = Out::new();
        match args.command {
            SubCommand::Create(c) => {
                let info = remote.check(bus.create_subscription(&c.name, c.config()).await)?;
                if remote.json {
                    out.json(&json::subscription_info(&info))?;
                } else {
                    out.line(format!(
                        "created subscription {} on {} from {}; consume with `eddy consume {}`",
                        info.name,
                        info.config.filter,
                        start_text(info.config.start),
                        info.name
                    ))?;
                }
            }
            SubCommand::List => {
                let mut subs = remote.check(bus.list_subscriptions().await)?;
                subs.sort_by(|a, b| a.name.cmp(&b.name));
                if remote.json {
                    let all: Vec<_> = subs.iter().map(json::subscription_info).collect();
                    out.json(&all.into())?;
                } else {
                    out.text(&list_table(&subs))?;
                }
            }
            SubCommand::Describe { name } => {
                let info = remote.check(bus.describe_subscription(&name).await)?;
                let stats = remote.check(bus.subscription_stats(&name).await)?;
                if remote.json {
                    let mut v = json::subscription_info(&info);
                    v["stats"] = json::subscription_stats(&stats);
                    out.json(&v)?;
                } else {
                    out.text(&describe_text(&info, &stats))?;
                }
            }
            SubCommand::Seek { name, to } => {
                let to = to.start_at(utc::now_ms());
                remote.check(bus.seek(&name, to).await)?;
                if remote.json {
                    out.json(&json!({ "subscription": name, "seek": json::start_at(to) }))?;
                } else {
                    out.line(format!(
                        "moved subscription {name} to {}; pending deliveries and scheduled \
                         retries were dropped",
                        start_text(to)
                    ))?;
                }
            }
            SubCommand::Delete { name } => {
                remote.check(bus.delete_subscription(&name).await)?;
                if remote.json {
                    out.json(&json!({ "subscription": name, "deleted": true }))?;
                } else {
                    out.line(format!(
                        "deleted subscription {name}, its pending state and its dead letters"
                    ))?;
                }
            }
        }
        output::ignore_broken_pipe(out.flush())
    })
}

/// Where a subscription starts, in words.
fn start_text(s: StartAt) -> String {
    match s {
        StartAt::Earliest => "the earliest event".to_string(),
        StartAt::Latest => "the latest event (new events only)".to_string(),
        StartAt::Offset(o) => format!("offset {o}"),
        StartAt::Time(t) => utc::format_ms(t),
    }
}

/// A backoff in the form `--backoff` takes.
pub fn backoff_text(b: &Backoff) -> String {
    let d = |ms: &u64| output::duration_ms(*ms).replace(' ', "");
    match b {
        Backoff::Fixed { delay_ms } => format!("fixed({})", d(delay_ms)),
        Backoff::Exponential { initial_ms, factor } => {
            format!("exponential({},{factor})", d(initial_ms))
        }
        Backoff::Quadratic { base_ms } => format!("quadratic({})", d(base_ms)),
        Backoff::List { delays_ms } => format!(
            "list({})",
            delays_ms.iter().map(d).collect::<Vec<_>>().join(",")
        ),
    }
}

fn retry_text(r: &RetryPolicy) -> String {
    let mut text = format!(
        "up to {} deliveries, backoff {}",
        r.max_deliveries,
        backoff_text(&r.backoff)
    );
    if let Some(cap) = r.cap_ms {
        text.push_str(&format!(", capped at {}", output::duration_ms(cap)));
    }
    if r.jitter_pct > 0 {
        text.push_str(&format!(", jitter ±{}%", r.jitter_pct));
    }
    text
}

fn list_table(subs: &[SubscriptionInfo]) -> String {
    if subs.is_empty() {
        return "no subscriptions yet — create one with \
                `eddy sub create <name> --filter <topic or pattern>`\n"
            .to_string();
    }
    let mut t = Table::new(&[
        "NAME",
        "FILTER",
        "MODE",
        "ACK WAIT>",
        "MAX DELIVERIES>",
        "TOPICS",
    ]);
    for s in subs {
        t.row(vec![
            s.name.clone(),
            s.config.filter.clone(),
            json::mode_name(s.config.mode).to_string(),
            output::duration_ms(s.config.ack_wait_ms),
            s.config.retry.max_deliveries.to_string(),
            if s.topics.is_empty() {
                "-".to_string()
            } else {
                s.topics.join(",")
            },
        ]);
    }
    t.render()
}

fn describe_text(info: &SubscriptionInfo, s: &SubscriptionStats) -> String {
    let c = &info.config;
    let topics = if info.topics.is_empty() {
        "(none yet)".to_string()
    } else {
        info.topics.join(", ")
    };
    let rows = [
        ("subscription", info.name.clone()),
        ("filter", c.filter.clone()),
        ("topics", topics),
        ("mode", json::mode_name(c.mode).to_string()),
        ("started at", start_text(c.start)),
        ("ack wait", output::duration_ms(c.ack_wait_ms)),
        ("retry", retry_text(&c.retry)),
        ("max pending", c.max_ack_pending.to_string()),
        ("dlq topic", info.dead_letter_topic.clone()),
        ("", String::new()),
        (
            "lag",
            format!("{} (unsettled: pending plus not yet delivered)", s.lag),
        ),
        ("in flight", s.in_flight.to_string()),
        (
            "waiting",
            format!("{} (for a retry or for their key)", s.waiting),
        ),
        (
            "oldest unacked",
            output::or_dash(s.oldest_unacked_age_ms.map(output::duration_ms)),
        ),
        ("dead letters", s.dead_letters.to_string()),
        (
            "counters",
            format!(
                "{} delivered ({} redelivered), {} acked, {} dead-lettered since the server \
                 started",
                s.delivered, s.redelivered, s.acked, s.dead_lettered
            ),
        ),
    ];
    let mut text = String::new();
    for (name, value) in rows {
        if name.is_empty() {
            text.push('\n');
        } else {
            text.push_str(&format!("{name:<15} {value}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_text_parses_back() {
        // Proves `describe` shows a backoff in the form `--backoff` takes.
        for text in [
            "fixed(5s)",
            "exponential(100ms,3)",
            "quadratic(1s)",
            "list(1s,10s,1m30s)",
        ] {
            let b = parse::backoff(text).unwrap();
            assert_eq!(backoff_text(&b), text);
        }
    }
}
