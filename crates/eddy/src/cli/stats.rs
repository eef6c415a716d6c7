//! `eddy stats [TOPIC | --sub SUB]`: counters of every topic and
//! subscription, or of one. Counters such as `published` and `acked` count
//! since the server started; `events`, `lag` and `dead letters` are
//! current.

use anyhow::Result;
use clap::Args;
use eddy_bus::{Bus, BusError, SubscriptionStats, TopicStats};
use serde_json::json;

use super::connect::Remote;
use super::json;
use super::output::{self, Out, Table};

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this topic.
    #[arg(value_name = "TOPIC", conflicts_with = "sub")]
    topic: Option<String>,
    /// Only this subscription.
    #[arg(long, value_name = "SUB")]
    sub: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

pub fn run(args: StatsArgs) -> Result<()> {
    let remote = &args.remote;
    remote.run(|bus| async move {
        let mut out = Out::new();
        if let Some(topic) = &args.topic {
            let s = remote.check(bus.topic_stats(topic).await)?;
            if remote.json {
                out.json(&json::topic_stats(&s))?;
            } else {
                out.text(&topics_table(std::slice::from_ref(&s)))?;
            }
        } else if let Some(sub) = &args.sub {
            let s = remote.check(bus.subscription_stats(sub).await)?;
            if remote.json {
                out.json(&json::subscription_stats(&s))?;
            } else {
                out.text(&subs_table(std::slice::from_ref(&s)))?;
            }
        } else {
            let mut topics = Vec::new();
            for t in remote.check(bus.list_topics().await)? {
                match bus.topic_stats(&t.name).await {
                    // Deleted since the list: not there any more.
                    Err(BusError::TopicNotFound(_)) => {}
                    other => topics.push(remote.check(other)?),
                }
            }
            let mut subs = Vec::new();
            let mut infos = remote.check(bus.list_subscriptions().await)?;
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            for s in infos {
                match bus.subscription_stats(&s.name).await {
                    Err(BusError::SubscriptionNotFound(_)) => {}
                    other => subs.push(remote.check(other)?),
                }
            }
            if remote.json {
                out.json(&json!({
                    "topics": topics.iter().map(json::topic_stats).collect::<Vec<_>>(),
                    "subscriptions": subs.iter().map(json::subscription_stats).collect::<Vec<_>>(),
                }))?;
            } else if topics.is_empty() && subs.is_empty() {
                out.line("no topics or subscriptions yet")?;
            } else {
                out.text(&topics_table(&topics))?;
                out.line("")?;
                out.text(&subs_table(&subs))?;
            }
        }
        output::ignore_broken_pipe(out.flush())
    })
}

fn topics_table(topics: &[TopicStats]) -> String {
    let mut t = Table::new(&["TOPIC", "PUBLISHED>", "DUPLICATES>", "EVENTS>", "SIZE>"]);
    for s in topics {
        t.row(vec![
            s.name.clone(),
            s.published.to_string(),
            s.duplicates.to_string(),
            s.events.to_string(),
            output::size(s.size_bytes),
        ]);
    }
    t.render()
}

fn subs_table(subs: &[SubscriptionStats]) -> String {
    let mut t = Table::new(&[
        "SUBSCRIPTION",
        "DELIVERED>",
        "ACKED>",
        "LAG>",
        "IN FLIGHT>",
        "WAITING>",
        "OLDEST UNACKED>",
        "DEAD LETTERS>",
    ]);
    for s in subs {
        t.row(vec![
            s.name.clone(),
            s.delivered.to_string(),
            s.acked.to_string(),
            s.lag.to_string(),
            s.in_flight.to_string(),
            s.waiting.to_string(),
            output::or_dash(s.oldest_unacked_age_ms.map(output::duration_ms)),
            s.dead_letters.to_string(),
        ]);
    }
    t.render()
}
