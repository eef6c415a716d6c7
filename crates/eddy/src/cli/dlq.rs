//! `eddy dlq list|show|redrive|purge`: review and act on a subscription's
//! dead-letter queue.
//!
//! Redrive and purge print how many dead letters they moved or removed.
//! They do not ask for confirmation (scripts run them); `--all` is required
//! to act on the whole queue, and shows a spinner while the server works.

use std::io::IsTerminal;

use anyhow::Result;
use clap::{ArgGroup, Args, Subcommand};
use eddy_bus::{Bus, DeadLetter, DeadLetterSelection, RedriveTarget};
use eddy_client::Client;
use serde_json::json;

use super::connect::Remote;
use super::json;
use super::output::{self, Out, Table};

/// Dead letters asked for per list call.
const LIST_PAGE: u32 = 1000;

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List the dead letters of a subscription, oldest first.
    List {
        /// The subscription.
        subscription: String,
        /// Show at most this many.
        #[arg(long, value_name = "N", default_value_t = 100)]
        max: u64,
        /// Start at this dead-letter id.
        #[arg(long, value_name = "ID", default_value_t = 0)]
        from: u64,
    },
    /// Show one dead letter: the event, its attempts, last error and why
    /// it died.
    Show {
        /// The subscription.
        subscription: String,
        /// The dead letter's id (see `eddy dlq list`).
        id: u64,
    },
    /// Deliver dead letters again: back into the subscription with fresh
    /// attempts, or published to another topic; they leave the queue.
    #[command(override_usage = "eddy dlq redrive [OPTIONS] <SUBSCRIPTION> <--all | ID...>")]
    Redrive(RedriveArgs),
    /// Discard dead letters.
    #[command(override_usage = "eddy dlq purge [OPTIONS] <SUBSCRIPTION> <--all | ID...>")]
    Purge(Selection),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["all", "ids"])))]
struct Selection {
    /// The subscription.
    subscription: String,
    /// These dead letters (ids from `eddy dlq list`).
    #[arg(value_name = "ID")]
    ids: Vec<u64>,
    /// Every dead letter of the subscription.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
}

#[derive(Debug, Args)]
struct RedriveArgs {
    #[command(flatten)]
    selection: Selection,
    /// Publish them to this topic (as new events, same ids) instead of
    /// redelivering them in the subscription.
    #[arg(long, value_name = "TOPIC")]
    to_topic: Option<String>,
}

impl Selection {
    fn selection(&self) -> DeadLetterSelection {
        if self.all {
            DeadLetterSelection::All
        } else {
            DeadLetterSelection::Ids(self.ids.clone())
        }
    }
}

pub fn run(args: DlqArgs) -> Result<()> {
    let remote = &args.remote;
    remote.run(|bus| async move {
        let mut out = Out::new();
        match args.command {
            DlqCommand::List {
                subscription,
                max,
                from,
            } => list(&bus, remote, &mut out, &subscription, max, from).await?,
            DlqCommand::Show { subscription, id } => {
                let d = remote.check(bus.dead_letter(&subscription, id).await)?;
                if remote.json {
                    out.json(&json::dead_letter(&d))?;
                } else {
                    out.text(&show_text(&d))?;
                }
            }
            DlqCommand::Redrive(r) => {
                let s = &r.selection;
                let target = match &r.to_topic {
                    Some(t) => RedriveTarget::Topic(t.clone()),
                    None => RedriveTarget::Subscription,
                };
                let spinner = spin(&bus, s, "redriving").await;
                let result = bus
                    .redrive(&s.subscription, s.selection(), target.clone())
                    .await;
                spinner.finish_and_clear();
                let n = remote.check(result)?;
                let into = match &target {
                    RedriveTarget::Topic(t) => format!("published to topic {t}"),
                    RedriveTarget::Subscription => {
                        format!("back into subscription {}", s.subscription)
                    }
                };
                if remote.json {
                    let target = match target {
                        RedriveTarget::Topic(t) => json!({ "topic": t }),
                        RedriveTarget::Subscription => json!("subscription"),
                    };
                    out.json(&json!({
                        "subscription": s.subscription,
                        "redriven": n,
                        "target": target,
                    }))?;
                } else {
                    out.line(format!("redrove {n} dead letter{}: {into}", plural(n)))?;
                }
            }
            DlqCommand::Purge(s) => {
                let spinner = spin(&bus, &s, "purging").await;
                let result = bus.purge(&s.subscription, s.selection()).await;
                spinner.finish_and_clear();
                let n = remote.check(result)?;
                if remote.json {
                    out.json(&json!({ "subscription": s.subscription, "purged": n }))?;
                } else {
                    out.line(format!(
                        "purged {n} dead letter{} of subscription {}",
                        plural(n),
                        s.subscription
                    ))?;
                }
            }
        }
        output::ignore_broken_pipe(out.flush())
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// For `--all`, a spinner naming how many dead letters the queue holds
/// (none when stderr is not a terminal).
async fn spin(bus: &Client, s: &Selection, verb: &str) -> indicatif::ProgressBar {
    if !s.all || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let what = match bus.subscription_stats(&s.subscription).await {
        Ok(st) => format!("{} dead letters", st.dead_letters),
        Err(_) => "the dead letters".to_string(),
    };
    output::busy(format!("{verb} {what} of {}", s.subscription))
}

async fn list(
    bus: &Client,
    remote: &Remote,
    out: &mut Out,
    subscription: &str,
    max: u64,
    from: u64,
) -> Result<()> {
    let mut letters: Vec<DeadLetter> = Vec::new();
    let mut at = from;
    while (letters.len() as u64) < max {
        let want = u32::try_from(max - letters.len() as u64)
            .unwrap_or(u32::MAX)
            .min(LIST_PAGE);
        let page = remote.check(bus.dead_letters(subscription, at, want).await)?;
        let Some(last) = page.last() else { break };
        at = last.id + 1;
        letters.extend(page);
    }
    if remote.json {
        let all: Vec<_> = letters.iter().map(json::dead_letter).collect();
        return out.json(&all.into());
    }
    if letters.is_empty() {
        return out.line(format!(
            "the dead-letter queue of {subscription} is empty{}",
            if from > 0 {
                format!(" from id {from}")
            } else {
                String::new()
            }
        ));
    }
    let mut t = Table::new(&[
        "ID>",
        "DEAD AT",
        "REASON",
        "ATTEMPTS>",
        "EVENT",
        "TYPE",
        "LAST ERROR",
    ]);
    for d in &letters {
        let e = &d.event;
        t.row(vec![
            d.id.to_string(),
            output::time(d.dead_at_ms),
            d.reason.as_str().to_string(),
            d.attempts.to_string(),
            format!("{}/{}@{}", e.topic, e.partition, e.offset),
            e.event.ty.clone(),
            output::or_dash(
                d.last_error
                    .as_deref()
                    .map(|s| output::printable(s.as_bytes())),
            ),
        ]);
    }
    out.text(&t.render())?;
    if letters.len() as u64 == max {
        output::note(format!(
            "showing {max}; more may follow: `eddy dlq list {subscription} --from {at}`"
        ));
    }
    Ok(())
}

fn show_text(d: &DeadLetter) -> String {
    let e = &d.event;
    let ev = &e.event;
    let mut rows: Vec<(&str, String)> = vec![
        (
            "dead letter",
            format!("{} of subscription {}", d.id, d.subscription),
        ),
        ("reason", d.reason.as_str().to_string()),
        ("attempts", d.attempts.to_string()),
        (
            "last error",
            output::or_dash(
                d.last_error
                    .as_deref()
                    .map(|s| output::printable(s.as_bytes())),
            ),
        ),
        ("dead at", output::time(d.dead_at_ms)),
        (
            "redriven",
            format!("{} time(s) before this death", d.redrives),
        ),
        (
            "event",
            format!(
                "{}/{}@{} appended {}",
                e.topic,
                e.partition,
                e.offset,
                output::time(e.timestamp_ms)
            ),
        ),
        ("id", ev.id.clone()),
        ("type", ev.ty.clone()),
        ("source", ev.source.clone()),
    ];
    let optional = [
        ("subject", ev.subject.clone()),
        ("time", ev.time_ms.map(output::time)),
        ("content type", ev.data_content_type.clone()),
        ("data schema", ev.data_schema.clone()),
        ("key", ev.key.clone()),
        ("correlation id", ev.correlation_id.clone()),
        ("causation id", ev.causation_id.clone()),
        ("traceparent", ev.traceparent.clone()),
    ];
    rows.extend(optional.into_iter().filter_map(|(n, v)| v.map(|v| (n, v))));
    for (name, value) in &ev.headers {
        rows.push(("header", format!("{name}={value}")));
    }
    let mut text = String::new();
    for (name, value) in rows {
        text.push_str(&format!("{name:<15} {value}\n"));
    }
    text.push_str(&format!("data ({} bytes):\n", ev.data.len()));
    text.push_str(&output::printable(&ev.data));
    text.push('\n');
    text
}
