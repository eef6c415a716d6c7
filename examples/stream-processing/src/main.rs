//! Stream processing on Eddy, end to end, on an embedded folder:
//!
//! 1. **page views per country per minute**: click events joined with a
//!    table of users (built from the `users` topic, latest profile per
//!    user), re-keyed by country, counted in 1-minute tumbling windows of
//!    event time; a watermark 10 s behind the newest click, windows held
//!    open 30 s for stragglers, later clicks counted as late and sent to
//!    `clicks.late`. Results go to PostgreSQL (`--postgres`) — rows and the
//!    processor's checkpoint in one transaction — or to the processor's
//!    embedded store.
//! 2. **browsing sessions per user**: the same clicks in session windows
//!    (a session ends after 30 s without a click), each closed
//!    session published to the `sessions` topic.
//! 3. **replay**: the first processor restarted from minute 5, recomputing
//!    (and replacing) its results from there: they come out the same.
//!
//! ```sh
//! cargo run -p eddy-example-stream-processing -- /tmp/sp-example
//! cargo run -p eddy-example-stream-processing -- /tmp/sp-example \
//!     --postgres "host=127.0.0.1 user=postgres dbname=test"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Bus, Event, Partition, ReadFrom, TopicConfig};
use eddy_runtime::processing::{
    PostgresSink, Processor, ProcessorBuilder, Record, ResultRow, Sink, WindowSpec,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

const MINUTE: i64 = 60_000;
const CLICKS: usize = 600;

/// One country's page views in one minute.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Views {
    views: u64,
}

/// One browsing session.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    pages: u64,
}

fn views_per_country(name: &str) -> Result<ProcessorBuilder<Views>> {
    Ok(Processor::builder(name)
        .input("clicks")
        .filter(|r| r.ty == "PageViewed")
        .join_table("users", |mut r, user| {
            let country = user.and_then(|u| u.get("country")?.as_str());
            r.key = country.unwrap_or("unknown").to_string();
            Some(r)
        })
        .window(WindowSpec::tumbling(MINUTE as u64)?, 30_000)
        .max_out_of_order_ms(10_000)
        .late_events_to("clicks.late")
        .aggregate(|v: &mut Views, _: &Record| v.views += 1))
}

fn sessions() -> ProcessorBuilder<Session> {
    Processor::builder("sessions")
        .input("clicks")
        .filter(|r| r.ty == "PageViewed")
        .session_window(30_000, 0)
        .max_out_of_order_ms(10_000)
        .aggregate_sessions(
            |s: &mut Session, _: &Record| s.pages += 1,
            |into, other| into.pages += other.pages,
        )
}

/// What a run found.
#[derive(Debug)]
struct Outcome {
    /// (country, minute start) → views.
    views: BTreeMap<(String, i64), u64>,
    clicks: u64,
    late: u64,
    late_on_side_topic: u64,
    sessions_published: u64,
    replay_equal: bool,
    metrics: String,
}

/// Ten users in three countries; user 7 moves from France to Japan.
async fn publish_users(bus: &Broker) -> Result<()> {
    for u in 0..10 {
        let country = ["de", "fr", "jp"][u % 3];
        let profile = json!({ "country": country }).to_string();
        bus.publish(
            "users",
            Event::new("UserProfile", profile).with_key(format!("u{u}")),
        )
        .await?;
    }
    let moved = json!({ "country": "jp" }).to_string();
    bus.publish("users", Event::new("UserProfile", moved).with_key("u7"))
        .await?;
    Ok(())
}

/// Clicks over ten minutes, starting 20 minutes ago: most in order, some
/// a few seconds out of order, one in 40 three minutes behind (late); each
/// user away one minute in four.
async fn publish_clicks(bus: &Broker, start: i64) -> Result<()> {
    let mut events = Vec::new();
    for n in 0..CLICKS {
        let mut t = start + (n as i64) * 10 * MINUTE / CLICKS as i64;
        if n % 7 == 3 {
            t -= 4_000;
        }
        if n % 40 == 39 {
            t -= 3 * MINUTE;
        }
        // Each user is away one minute in four: their sessions end.
        let mut user = (n * 7) % 10;
        if ((t - start) / MINUTE + user as i64) % 4 == 0 {
            user = (user + 1) % 10;
        }
        let user = format!("u{user}");
        let mut e = Event::new(
            "PageViewed",
            json!({ "page": format!("/p/{}", n % 13) }).to_string(),
        )
        .with_key(user)
        .with_id(format!("click-{n}"));
        e.time_ms = Some(t);
        events.push(e);
    }
    bus.publish_batch("clicks", events).await?;
    Ok(())
}

async fn rows(
    sink: &Sink,
    embedded: Vec<ResultRow>,
    name: &str,
) -> Result<BTreeMap<(String, i64), u64>> {
    let rows = match sink {
        Sink::Postgres { conn, table } => {
            PostgresSink::connect(conn, name, table)
                .await?
                .rows()
                .await?
        }
        _ => embedded,
    };
    Ok(rows
        .iter()
        .map(|r| {
            let v: Views = serde_json::from_value(r.value.clone()).unwrap_or_default();
            ((r.key.clone(), r.window_start_ms), v.views)
        })
        .collect())
}

async fn topic_len(bus: &Broker, topic: &str) -> Result<u64> {
    let b = bus
        .read(topic, Partition(0), ReadFrom::Beginning, 10_000)
        .await?;
    Ok(b.events.len() as u64)
}

async fn run(dir: &Path, postgres: Option<String>) -> Result<Outcome> {
    let bus = Broker::open(dir.join("bus"), BrokerConfig::default())
        .with_context(|| format!("open the bus in {}", dir.display()))?;
    for (topic, partitions) in [
        ("users", 2),
        ("clicks", 4),
        ("clicks.late", 1),
        ("sessions", 1),
    ] {
        bus.create_topic(topic, TopicConfig::with_partitions(partitions))
            .await?;
    }
    publish_users(&bus).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start = (now - 20 * MINUTE).div_euclid(MINUTE) * MINUTE;
    publish_clicks(&bus, start).await?;

    // A name of this run's own, so that runs sharing a database do not
    // mix their checkpoints.
    let name = format!("views-per-country-{}", now % 1_000_000);
    let sink = match postgres {
        Some(conn) => Sink::Postgres {
            conn,
            table: "example_views_per_country".into(),
        },
        None => Sink::Embedded,
    };
    let state = dir.join("processors");
    let mut views = views_per_country(&name)?
        .build()?
        .start(bus.clone(), state.join(&name), sink.clone())
        .await?;
    let mut sessions = sessions()
        .build()?
        .start(
            bus.clone(),
            state.join("sessions"),
            Sink::Topic("sessions".into()),
        )
        .await?;
    views.caught_up().await?;
    sessions.caught_up().await?;
    let figures = views.metrics();
    let first = rows(&sink, views.stop().await?, &name).await?;
    sessions.stop().await?;

    // Replay from minute 5: every window from there is recomputed.
    let mut replay = views_per_country(&name)?
        .replay_from(start + 5 * MINUTE)
        .build()?
        .start(bus.clone(), state.join(&name), sink.clone())
        .await?;
    replay.caught_up().await?;
    let again = rows(&sink, replay.stop().await?, &name).await?;

    let outcome = Outcome {
        clicks: figures.events(),
        late: figures.late(),
        late_on_side_topic: topic_len(&bus, "clicks.late").await?,
        sessions_published: topic_len(&bus, "sessions").await?,
        replay_equal: again == first,
        metrics: figures.render(),
        views: first,
    };
    bus.close()?;
    Ok(outcome)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("eddy-sp-{}", std::process::id())));
    let postgres = match (args.next().as_deref(), args.next()) {
        (Some("--postgres"), Some(conn)) => Some(conn),
        _ => None,
    };
    let where_ = match &postgres {
        Some(_) => "in PostgreSQL, table example_views_per_country".to_string(),
        None => format!(
            "in the embedded store under {}",
            dir.join("processors").display()
        ),
    };
    let outcome = run(&dir, postgres).await?;
    println!("folder: {}", dir.display());
    println!("page views per country per minute ({where_}):");
    for ((country, minute), views) in &outcome.views {
        println!(
            "  minute {:>2}  {country:<8} {views:>4}",
            (minute / MINUTE) % 60
        );
    }
    println!(
        "clicks read: {}; late: {} (on clicks.late: {}); sessions published: {}",
        outcome.clicks, outcome.late, outcome.late_on_side_topic, outcome.sessions_published
    );
    println!(
        "replayed from minute 5, the same results: {}",
        outcome.replay_equal
    );
    println!("the processor's metrics, for Prometheus:");
    for line in outcome
        .metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .take(6)
    {
        println!("  {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_runs_and_its_numbers_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let o = super::run(dir.path(), None).await.unwrap();
        assert_eq!(o.clicks, super::CLICKS as u64);
        // Every click is counted once: in a window, or as late.
        let counted: u64 = o.views.values().sum();
        assert_eq!(counted + o.late, o.clicks, "{o:?}");
        // Those three minutes behind, bar any whose window was still open.
        assert!(o.late > 0 && o.late <= 15, "{o:?}");
        assert_eq!(o.late_on_side_topic, o.late);
        // Nobody is unknown; user 7 counts for Japan, not France.
        assert!(
            o.views
                .keys()
                .all(|(c, _)| ["de", "fr", "jp"].contains(&c.as_str()))
        );
        assert!(o.sessions_published > 0);
        assert!(o.replay_equal);
        assert!(o.metrics.contains("eddy_processor_events_total"));
    }
}
