//! `eddy topic create|list|describe|delete`: manage a server's topics.

use anyhow::Result;
use clap::{Args, Subcommand};
use eddy_bus::{Bus, DedupWindow, Retention, TopicConfig, TopicInfo};
use serde_json::json;

use super::connect::Remote;
use super::output::{self, Out, Table};
use super::{json, parse};

#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List every topic: partitions, events held, size, retention.
    List,
    /// Show a topic's settings and each partition's offsets and size.
    Describe {
        /// The topic.
        name: String,
    },
    /// Delete a topic and every event in it.
    Delete {
        /// The topic.
        name: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The topic's name: dot-separated tokens such as `orders.placed`.
    name: String,
    /// Partitions (fixed at creation); events with the same key go to the
    /// same partition, in order.
    #[arg(long, default_value_t = 1, value_name = "N")]
    partitions: u32,
    /// Delete events once they are this old (whole segments at a time),
    /// e.g. `7d` [default: keep forever].
    #[arg(long, value_name = "DURATION", value_parser = parse::duration_ms)]
    retention_age: Option<u64>,
    /// Keep at most about this many bytes per partition, e.g. `10GiB`.
    #[arg(long, value_name = "SIZE", value_parser = parse::size_bytes)]
    retention_bytes: Option<u64>,
    /// Keep at most about this many events per partition.
    #[arg(long, value_name = "N")]
    retention_events: Option<u64>,
    /// How long a published event id is remembered to drop a second
    /// publish of it [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = parse::duration_ms)]
    dedup_window: Option<u64>,
    /// Most event ids remembered for deduplication [default: 100000].
    #[arg(long, value_name = "N")]
    dedup_entries: Option<u32>,
}

pub fn run(args: TopicArgs) -> Result<()> {
    let remote = &args.remote;
    remote.run(|bus| async move {
        let mut out = Out::new();
        match args.command {
            TopicCommand::Create(c) => {
                let config = c.config();
                let info = remote.check(bus.create_topic(&c.name, config).await)?;
                if remote.json {
                    out.json(&json::topic_info(&info))?;
                } else {
                    out.line(format!(
                        "created topic {} with {} partition{}, retention {}",
                        info.name,
                        info.config.partitions,
                        plural(info.config.partitions.into()),
                        retention_text(&info.config.retention)
                    ))?;
                }
            }
            TopicCommand::List => {
                let topics = remote.check(bus.list_topics().await)?;
                if remote.json {
                    let all: Vec<_> = topics.iter().map(json::topic_info).collect();
                    out.json(&all.into())?;
                } else {
                    out.text(&list_table(&topics))?;
                }
            }
            TopicCommand::Describe { name } => {
                let info = remote.check(bus.describe_topic(&name).await)?;
                if remote.json {
                    out.json(&json::topic_info(&info))?;
                } else {
                    out.text(&describe_text(&info))?;
                }
            }
            TopicCommand::Delete { name } => {
                remote.check(bus.delete_topic(&name).await)?;
                if remote.json {
                    out.json(&json!({ "topic": name, "deleted": true }))?;
                } else {
                    out.line(format!("deleted topic {name} and its events"))?;
                }
            }
        }
        output::ignore_broken_pipe(out.flush())
    })
}

impl CreateArgs {
    fn config(&self) -> TopicConfig {
        let defaults = DedupWindow::default();
        TopicConfig {
            partitions: self.partitions,
            retention: Retention {
                age_max_ms: self.retention_age,
                bytes_max: self.retention_bytes,
                events_max: self.retention_events,
            },
            dedup: DedupWindow {
                age_ms: self.dedup_window.unwrap_or(defaults.age_ms),
                entries_max: self.dedup_entries.unwrap_or(defaults.entries_max),
            },
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Events held by a topic, summed over partitions.
fn events_held(info: &TopicInfo) -> u64 {
    info.partitions
        .iter()
        .map(|p| p.next_offset.0.saturating_sub(p.first_offset.0))
        .sum()
}

/// `forever`, or the limits that apply: `7d, 10.0 GiB/partition`.
fn retention_text(r: &Retention) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = r.age_max_ms {
        parts.push(output::duration_ms(ms));
    }
    if let Some(b) = r.bytes_max {
        parts.push(format!("{}/partition", output::size(b)));
    }
    if let Some(n) = r.events_max {
        parts.push(format!("{n} events/partition"));
    }
    if parts.is_empty() {
        "forever".to_string()
    } else {
        parts.join(", ")
    }
}

fn list_table(topics: &[TopicInfo]) -> String {
    if topics.is_empty() {
        return "no topics yet — create one with `eddy topic create <name>`\n".to_string();
    }
    let mut t = Table::new(&["NAME", "PARTITIONS>", "EVENTS>", "SIZE>", "RETENTION"]);
    for info in topics {
        t.row(vec![
            info.name.clone(),
            info.config.partitions.to_string(),
            events_held(info).to_string(),
            output::size(info.partitions.iter().map(|p| p.size_bytes).sum()),
            retention_text(&info.config.retention),
        ]);
    }
    t.render()
}

fn describe_text(info: &TopicInfo) -> String {
    let c = &info.config;
    let mut text = format!(
        "topic       {}\npartitions  {}\nevents      {}\nretention   {}\ndedup       ids for {}, at most {}\n\n",
        info.name,
        c.partitions,
        events_held(info),
        retention_text(&c.retention),
        output::duration_ms(c.dedup.age_ms),
        c.dedup.entries_max
    );
    let mut t = Table::new(&[
        "PARTITION>",
        "FIRST OFFSET>",
        "NEXT OFFSET>",
        "EVENTS>",
        "SIZE>",
    ]);
    for p in &info.partitions {
        t.row(vec![
            p.partition.to_string(),
            p.first_offset.to_string(),
            p.next_offset.to_string(),
            p.next_offset.0.saturating_sub(p.first_offset.0).to_string(),
            output::size(p.size_bytes),
        ]);
    }
    text.push_str(&t.render());
    text
}
