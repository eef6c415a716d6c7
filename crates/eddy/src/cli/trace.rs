//! `eddy trace CORRELATION-ID`: the flow of one business transaction as it
//! really happened, drawn from the bus as a Mermaid sequence diagram.
//!
//! It reads every topic (not the bus's own `$` topics) for the events of
//! the correlation — those whose `correlationid` is the id, and the one
//! whose id it is — and every subscription's dead letters. Then:
//! - each event is a message from its `source` (a service written with
//!   `eddy-runtime` publishes as its name) to the bus;
//! - the bus delivers it to each service that published an event caused by
//!   it (`causationid`), or reported a failure handling it;
//! - a failed handler call (a `HandlerFailed` report, which a service
//!   writes to its outcomes topic) is a note on that service: retried,
//!   handed back for redelivery, or failed for good;
//! - a dead-lettered event is a message from the bus to the dead-letter
//!   queue, with its attempts and last error.
//!
//! The scan is bounded: `--since` skips older events, and at most
//! `--max-events` events of the correlation are kept.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use eddy_bus::{Bus, DeadLetter, Offset, ReadFrom, StoredEvent};
use eddy_runtime::HANDLER_FAILED;

use super::connect::{Remote, with_folder};
use super::exit::Usage;
use super::parse::{self, Position};

/// Events read per request.
const CHUNK: u32 = 1000;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The correlation id (for `eddy demo shop`, an order id).
    correlation_id: String,
    /// Read an embedded bus's folder (not in use by another process)
    /// instead of a server.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Skip events older than this: an RFC 3339 time or a duration before
    /// now (`15m-ago`).
    #[arg(long, value_name = "TIME", value_parser = parse::position)]
    since: Option<Position>,
    /// Keep at most this many events of the correlation.
    #[arg(long, default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_events: u64,
    #[command(flatten)]
    remote: Remote,
}

pub fn run(args: TraceArgs) -> Result<()> {
    let since = match args.since {
        None => None,
        Some(Position::Time(ms)) => Some(ms),
        Some(Position::Ago(ms)) => Some(parse::ago(crate::utc::now_ms(), ms)),
        Some(_) => bail!(Usage(
            "--since takes a time (2026-05-01T12:00:00Z) or a duration before now (15m-ago)".into()
        )),
    };
    let query = Query {
        id: args.correlation_id.clone(),
        since,
        max_events: args.max_events as usize,
    };
    let text = match &args.dir {
        Some(dir) => {
            let found = with_folder(dir, async |bus| collect(bus, &query).await)?;
            render(&found, &query.id)?
        }
        None => {
            let mut text = None;
            args.remote.run(|client| {
                let (query, text) = (&query, &mut text);
                async move {
                    let found = collect(&client, query).await?;
                    *text = Some(render(&found, &query.id)?);
                    Ok(())
                }
            })?;
            text.unwrap_or_default()
        }
    };
    print!("{text}");
    Ok(())
}

#[derive(Debug)]
struct Query {
    id: String,
    since: Option<i64>,
    max_events: usize,
}

/// The events and dead letters of one correlation.
#[derive(Debug, Default)]
pub struct Found {
    pub events: Vec<StoredEvent>,
    pub dead: Vec<DeadLetter>,
    /// More events matched than `--max-events`.
    pub truncated: bool,
}

fn in_correlation(event: &eddy_bus::Event, id: &str) -> bool {
    event.id == id || event.correlation_id.as_deref() == Some(id)
}

async fn collect<B: Bus>(bus: &B, query: &Query) -> Result<Found> {
    let mut found = Found::default();
    for topic in bus.list_topics().await? {
        if topic.name.starts_with('$') {
            continue;
        }
        for p in &topic.partitions {
            let end = p.next_offset;
            let mut from = match query.since {
                Some(ms) => ReadFrom::Time(ms),
                None => ReadFrom::Beginning,
            };
            loop {
                let batch = bus.read(&topic.name, p.partition, from, CHUNK).await?;
                for e in batch.events {
                    if e.offset >= end {
                        break;
                    }
                    if in_correlation(&e.event, &query.id) {
                        if found.events.len() == query.max_events {
                            found.truncated = true;
                        } else {
                            found.events.push(e);
                        }
                    }
                }
                if batch.next_offset >= end || batch.next_offset == offset_of(from) {
                    break;
                }
                from = ReadFrom::Offset(batch.next_offset);
            }
        }
    }
    for sub in bus.list_subscriptions().await? {
        let mut next = 0;
        loop {
            let page = bus.dead_letters(&sub.name, next, CHUNK).await?;
            let Some(last) = page.last() else { break };
            let Some(after) = last.id.checked_add(1) else {
                break;
            };
            next = after;
            found.dead.extend(
                page.into_iter()
                    .filter(|d| in_correlation(&d.event.event, &query.id)),
            );
        }
    }
    found.events.sort_by(|a, b| {
        (a.timestamp_ms, &a.topic, a.partition, a.offset).cmp(&(
            b.timestamp_ms,
            &b.topic,
            b.partition,
            b.offset,
        ))
    });
    Ok(found)
}

/// The offset a read starts at, when it is one (to stop on no progress).
fn offset_of(from: ReadFrom) -> Offset {
    match from {
        ReadFrom::Offset(o) => o,
        _ => Offset(u64::MAX),
    }
}

/// A failed handler call, as a service reported it.
#[derive(Debug, serde::Deserialize)]
struct Failure {
    service: String,
    event_id: String,
    attempt: u32,
    error: String,
    next: String,
}

/// Mermaid participant ids: `p_` and the name's letters and digits
/// (never a Mermaid keyword such as `end`), made unique. The bus's own
/// participants are kept apart from services of the same name.
#[derive(Debug, Default)]
struct Participants {
    ids: HashMap<(bool, String), String>,
    order: Vec<(String, String)>,
}

impl Participants {
    /// A service (or any event source).
    fn id(&mut self, name: &str) -> String {
        self.participant(false, name)
    }

    /// One of the trace's own: the bus, the dead-letter queue.
    fn own(&mut self, name: &str) -> String {
        self.participant(true, name)
    }

    fn participant(&mut self, own: bool, name: &str) -> String {
        let key = (own, name.to_string());
        if let Some(id) = self.ids.get(&key) {
            return id.clone();
        }
        let mut id: String = "p_".to_string();
        id.extend(
            name.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
        while self.order.iter().any(|(taken, _)| *taken == id) {
            id.push('_');
        }
        self.ids.insert(key, id.clone());
        self.order.push((id.clone(), name.to_string()));
        id
    }
}

/// Text for inside a Mermaid message or note: no line breaks, no `;` or
/// `#` (which Mermaid reads as syntax), bounded.
fn clean(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| match c {
            '\n' | '\r' | ';' => ' ',
            '#' => '№',
            c => c,
        })
        .collect();
    if s.chars().count() > 80 {
        s = s.chars().take(79).collect::<String>() + "…";
    }
    s
}

/// The failed calls of one consumer on one event, a note per delivery:
/// its failed tries, the last error, and what happened next; each
/// redelivery is a message of its own.
fn draw_failures(lines: &mut Vec<String>, (bus, to): (&str, &str), ty: &str, mine: &[&Failure]) {
    let mut i = 0;
    while i < mine.len() {
        let attempt = mine[i].attempt;
        let tries = mine[i..]
            .iter()
            .take_while(|f| f.attempt == attempt)
            .count();
        let last = mine[i + tries - 1];
        if attempt > 1 {
            lines.push(format!(
                "    {bus}->>{to}: {} (delivery {attempt})",
                clean(ty)
            ));
        }
        let next = match last.next.as_str() {
            "retry" => "retried in-process",
            "redeliver" => "handed back for redelivery after the backoff",
            "dead-letter" => "failed for good",
            other => other,
        };
        let tries = if tries == 1 {
            "1 try failed".to_string()
        } else {
            format!("{tries} tries failed")
        };
        lines.push(format!(
            "    Note over {to}: ✗ delivery {attempt}: {tries}: {} — {next}",
            clean(&last.error)
        ));
        i += mine[i..]
            .iter()
            .take_while(|f| f.attempt == attempt)
            .count();
    }
}

/// The Mermaid sequence diagram of a correlation.
pub fn render(found: &Found, id: &str) -> Result<String> {
    if found.events.is_empty() && found.dead.is_empty() {
        bail!(eddy_bus::BusError::InvalidArgument {
            what: "correlation id",
            reason: format!(
                "no event on the bus has the id or the correlation id {id:?} (or it is older than --since)"
            ),
        });
    }
    let mut people = Participants::default();
    let bus = people.own("Event Bus");
    let mut lines = Vec::new();
    let failures: Vec<Failure> = found
        .events
        .iter()
        .filter(|e| e.event.ty == HANDLER_FAILED)
        .filter_map(|e| serde_json::from_slice(&e.event.data).ok())
        .collect();
    let mut consumers: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &found.events {
        if e.event.ty == HANDLER_FAILED {
            continue;
        }
        if let Some(cause) = e.event.causation_id.as_deref() {
            consumers.entry(cause).or_default().push(&e.event.source);
        }
    }
    for f in &failures {
        consumers
            .entry(f.event_id.as_str())
            .or_default()
            .push(&f.service);
    }
    for e in &found.events {
        let event = &e.event;
        if event.ty == HANDLER_FAILED {
            continue;
        }
        let from = people.id(&event.source);
        lines.push(format!(
            "    {from}->>{bus}: {} ({})",
            clean(&event.ty),
            clean(&e.topic)
        ));
        let mut delivered = HashSet::new();
        for consumer in consumers.get(event.id.as_str()).into_iter().flatten() {
            if !delivered.insert(*consumer) {
                continue;
            }
            let to = people.id(consumer);
            lines.push(format!("    {bus}->>{to}: {}", clean(&event.ty)));
            let mine: Vec<&Failure> = failures
                .iter()
                .filter(|f| f.event_id == event.id && f.service == *consumer)
                .collect();
            draw_failures(&mut lines, (&bus, &to), &event.ty, &mine);
            // It handled the event in the end if it published something
            // the event caused after being handed it back.
            let succeeded = found.events.iter().any(|c| {
                c.event.ty != HANDLER_FAILED
                    && c.event.causation_id.as_deref() == Some(event.id.as_str())
                    && c.event.source == *consumer
            });
            if let Some(last) = mine.last()
                && last.next == "redeliver"
                && succeeded
            {
                lines.push(format!(
                    "    {bus}->>{to}: {} (delivery {})",
                    clean(&event.ty),
                    last.attempt + 1
                ));
            }
        }
        for d in found.dead.iter().filter(|d| d.event.event.id == event.id) {
            let dlq = people.own("Dead-letter queue");
            lines.push(format!(
                "    {bus}->>{dlq}: {} dead-lettered by {} after {} attempts ({})",
                clean(&event.ty),
                clean(&d.subscription),
                d.attempts,
                d.reason.as_str()
            ));
            if let Some(error) = &d.last_error {
                lines.push(format!("    Note over {dlq}: last error: {}", clean(error)));
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "sequenceDiagram");
    let _ = writeln!(
        out,
        "    %% correlation {}: {} events, {} dead letters{}",
        clean(id),
        found.events.len(),
        found.dead.len(),
        if found.truncated {
            " (more matched than --max-events)"
        } else {
            ""
        }
    );
    for (pid, name) in &people.order {
        let _ = writeln!(out, "    participant {pid} as {}", clean(name));
    }
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_bus::{DeadReason, Event, Partition};

    fn stored(topic: &str, offset: u64, event: Event) -> StoredEvent {
        StoredEvent {
            topic: topic.into(),
            partition: Partition(0),
            offset: Offset(offset),
            timestamp_ms: 1000 + offset as i64,
            event,
        }
    }

    #[test]
    fn a_flow_with_a_retry_and_a_dead_letter_is_drawn_as_it_happened() {
        let placed = Event::new("OrderPlaced", "{}")
            .with_id("o-1")
            .with_source("storefront")
            .with_correlation_id("o-1");
        let reserved = Event::new("InventoryReserved", "{}")
            .with_id("r-1")
            .with_source("inventory")
            .with_correlation_id("o-1")
            .with_causation_id("o-1");
        let failed = Event::new(
            HANDLER_FAILED,
            r#"{"service":"notification","event_id":"r-1","attempt":1,"error":"451; try later","next":"redeliver"}"#,
        )
        .with_source("notification")
        .with_correlation_id("o-1")
        .with_causation_id("r-1");
        let unrelated = Event::new("OrderPlaced", "{}").with_id("o-2");
        let found = Found {
            events: vec![
                stored("shop.orders", 0, placed),
                stored("shop.inventory", 1, reserved.clone()),
                stored("shop.failures", 2, failed),
            ],
            dead: vec![DeadLetter {
                id: 0,
                subscription: "notification-on-inventory".into(),
                event: stored("shop.inventory", 1, reserved),
                attempts: 4,
                last_error: Some("451 try later".into()),
                reason: DeadReason::MaxDeliveries,
                dead_at_ms: 5000,
                redrives: 0,
            }],
            truncated: false,
        };
        assert!(!in_correlation(&unrelated, "o-1"));
        let text = render(&found, "o-1").unwrap();
        let expected = "\
sequenceDiagram
    %% correlation o-1: 3 events, 1 dead letters
    participant p_Event_Bus as Event Bus
    participant p_storefront as storefront
    participant p_inventory as inventory
    participant p_notification as notification
    participant p_Dead_letter_queue as Dead-letter queue
    p_storefront->>p_Event_Bus: OrderPlaced (shop.orders)
    p_Event_Bus->>p_inventory: OrderPlaced
    p_inventory->>p_Event_Bus: InventoryReserved (shop.inventory)
    p_Event_Bus->>p_notification: InventoryReserved
    Note over p_notification: ✗ delivery 1: 1 try failed: 451  try later — handed back for redelivery after the backoff
    p_Event_Bus->>p_Dead_letter_queue: InventoryReserved dead-lettered by notification-on-inventory after 4 attempts (max_deliveries)
    Note over p_Dead_letter_queue: last error: 451 try later
";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_unknown_correlation_is_an_error_that_says_so() {
        let err = render(&Found::default(), "nope").unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }

    #[test]
    fn participant_ids_are_mermaid_safe_and_unique() {
        let mut p = Participants::default();
        assert_eq!(p.id("a-b"), "p_a_b");
        assert_eq!(p.id("a_b"), "p_a_b_");
        assert_eq!(p.id("end"), "p_end", "never a Mermaid keyword");
        assert_eq!(p.id("a-b"), "p_a_b");
        assert_eq!(p.own("Event Bus"), "p_Event_Bus");
        assert_ne!(p.id("Event Bus"), "p_Event_Bus", "a service is not the bus");
    }
}
