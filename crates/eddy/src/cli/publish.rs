//! `eddy publish TOPIC [DATA]`: publish one event from the arguments, or
//! one event per line of stdin.
//!
//! Data is stored as the bytes given. Unless `--content-type` says
//! otherwise, an event's `datacontenttype` is `application/json` when its
//! data parses as JSON (any JSON value, so `42` and `"text"` with quotes
//! count), and `text/plain` otherwise.
//!
//! From stdin, empty lines are skipped and a trailing `\r` is dropped.
//! Lines are read by a thread of their own and published in batches of up
//! to [`BATCH_EVENTS`] events or [`BATCH_BYTES`] bytes: a batch goes as
//! soon as no more lines are waiting, so a slow producer
//! (`tail -f log | eddy publish logs`) sees each line published promptly
//! and a fast one gets full batches. Memory stays bounded by one batch and
//! a short queue of lines.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use clap::Args;
use eddy_broker::PUBLISH_BATCH_BYTES_MAX;
use eddy_bus::{Bus, Event, Published};
use eddy_client::Client;
use serde_json::json;
use tokio::sync::mpsc;

use super::connect::Remote;
use super::exit::Usage;
use super::output::{self, Out};
use super::{json, parse};

/// Most events per `publish_batch` from stdin.
pub const BATCH_EVENTS: usize = 1000;
/// Bytes of data after which a batch goes early: with one event of the
/// largest size on top it stays below the broker's batch limit.
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Lines read ahead of publishing.
const LINES_QUEUED: usize = 1024;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The topic.
    topic: String,
    /// The event's data. Without it, or with `-`, each line of stdin is
    /// one event.
    data: Option<String>,
    /// The event type (CloudEvents `type`), e.g. `OrderPlaced`.
    #[arg(long = "type", value_name = "TYPE")]
    ty: String,
    /// The partition key: events with the same key keep their order.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// The event source (CloudEvents `source`).
    #[arg(long, value_name = "URI", default_value = "eddy-cli")]
    source: String,
    /// The event id, for idempotent publishing (a second publish with
    /// the same id within the dedup window is dropped) [default: a new
    /// UUIDv7 from the server]. Only for a single event.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// A header `name=value` (lowercase letters and digits in the name);
    /// repeat for more.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse::header)]
    headers: Vec<(String, String)>,
    /// The CloudEvents `subject`.
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    /// The correlation id.
    #[arg(long, value_name = "ID")]
    correlation_id: Option<String>,
    /// The causation id.
    #[arg(long, value_name = "ID")]
    causation_id: Option<String>,
    /// A W3C `traceparent`.
    #[arg(long, value_name = "TRACEPARENT")]
    traceparent: Option<String>,
    /// The CloudEvents `time`, in RFC 3339 form.
    #[arg(long, value_name = "TIME", value_parser = parse::rfc3339_ms)]
    time: Option<i64>,
    /// The CloudEvents `dataschema`.
    #[arg(long, value_name = "URI")]
    data_schema: Option<String>,
    /// The `datacontenttype` [default: application/json for data that
    /// parses as JSON, else text/plain].
    #[arg(long, value_name = "MEDIA TYPE")]
    content_type: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

pub fn run(args: PublishArgs) -> Result<()> {
    let from_stdin = matches!(args.data.as_deref(), None | Some("-"));
    if from_stdin && args.id.is_some() {
        return Err(Usage(
            "--id names a single event; events read from stdin each get their own id \
             (leave out --id, or give the data as an argument)"
                .into(),
        )
        .into());
    }
    let remote = args.remote.clone();
    remote.run(|bus| async move {
        if from_stdin {
            publish_stdin(&bus, &args).await
        } else {
            publish_one(&bus, &args).await
        }
    })
}

impl PublishArgs {
    /// The event for `data`, with every attribute given.
    fn event(&self, data: Bytes) -> Event {
        let content_type = self.content_type.clone().unwrap_or_else(|| {
            if serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_ok() {
                "application/json".to_string()
            } else {
                "text/plain".to_string()
            }
        });
        Event {
            id: self.id.clone().unwrap_or_default(),
            source: self.source.clone(),
            ty: self.ty.clone(),
            subject: self.subject.clone(),
            time_ms: self.time,
            data_content_type: Some(content_type),
            data_schema: self.data_schema.clone(),
            data,
            key: self.key.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            traceparent: self.traceparent.clone(),
            headers: self.headers.clone(),
        }
    }
}

async fn publish_one(bus: &Client, args: &PublishArgs) -> Result<()> {
    let data = Bytes::from(args.data.clone().unwrap_or_default());
    let published = args
        .remote
        .check(bus.publish(&args.topic, args.event(data)).await)?;
    let mut out = Out::new();
    if args.remote.json {
        out.json(&json::published(&args.topic, &published))?;
    } else {
        let mut line = format!(
            "published to {}/{}@{}",
            args.topic, published.partition, published.offset
        );
        if published.duplicate {
            line.push_str(" (a duplicate id: nothing new stored, this is the first one)");
        }
        out.line(line)?;
    }
    output::ignore_broken_pipe(out.flush())
}

/// What a stdin publish stored, per partition: count, first and last
/// offset.
#[derive(Debug, Default)]
struct Summary {
    events: u64,
    duplicates: u64,
    partitions: BTreeMap<u32, (u64, u64, u64)>,
}

impl Summary {
    fn add(&mut self, results: &[Published]) {
        for p in results {
            self.events += 1;
            if p.duplicate {
                self.duplicates += 1;
            }
            let entry = self
                .partitions
                .entry(p.partition.0)
                .or_insert((0, p.offset.0, p.offset.0));
            entry.0 += 1;
            entry.1 = entry.1.min(p.offset.0);
            entry.2 = entry.2.max(p.offset.0);
        }
    }
}

async fn publish_stdin(bus: &Client, args: &PublishArgs) -> Result<()> {
    if std::io::stdin().is_terminal() {
        output::note("reading events from stdin, one per line; end with Ctrl-D");
    }
    let (tx, mut lines) = mpsc::channel::<Result<Vec<u8>>>(LINES_QUEUED);
    std::thread::spawn(move || read_lines(std::io::stdin().lock(), &tx));
    let progress = output::spinner("events published");
    let started = std::time::Instant::now();
    let mut summary = Summary::default();
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH_EVENTS);
    let mut batch_bytes = 0;
    let mut line_no: u64 = 0;
    let mut ended = false;
    while !ended {
        // Wait for one line, then take what is already queued.
        match lines.recv().await {
            Some(line) => {
                line_no += 1;
                push_line(args, &mut batch, &mut batch_bytes, line?);
            }
            None => ended = true,
        }
        while !ended && batch.len() < BATCH_EVENTS && batch_bytes < BATCH_BYTES {
            match lines.try_recv() {
                Ok(line) => {
                    line_no += 1;
                    push_line(args, &mut batch, &mut batch_bytes, line?);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => ended = true,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let count = batch.len() as u64;
        let results = bus
            .publish_batch(&args.topic, std::mem::take(&mut batch))
            .await;
        batch_bytes = 0;
        let results = args.remote.check(results).with_context(|| {
            format!(
                "publishing lines up to {line_no} of stdin; the {} event(s) before this batch \
                 are published",
                summary.events
            )
        })?;
        summary.add(&results);
        progress.inc(count);
    }
    progress.finish_and_clear();
    print_summary(args, &summary, started.elapsed())
}

/// Adds a line of stdin to the batch as an event (empty lines are skipped).
fn push_line(args: &PublishArgs, batch: &mut Vec<Event>, batch_bytes: &mut usize, line: Vec<u8>) {
    if line.is_empty() {
        return;
    }
    *batch_bytes += line.len();
    batch.push(args.event(Bytes::from(line)));
}

/// Sends each line of `input` (without its line ending) until the end, an
/// error, or a line too long to publish.
fn read_lines(mut input: impl BufRead, tx: &mpsc::Sender<Result<Vec<u8>>>) {
    // A line longer than any publish may be is refused, not read whole.
    let line_bytes_max = PUBLISH_BATCH_BYTES_MAX as u64;
    loop {
        let mut line = Vec::new();
        let read = (&mut input)
            .take(line_bytes_max + 2)
            .read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => return,
            Ok(n) if n as u64 > line_bytes_max && !line.ends_with(b"\n") => Err(anyhow!(
                "a line of stdin is longer than {} bytes, more than a publish may carry; \
                 split it, or publish it as a single event's argument",
                line_bytes_max
            )),
            Ok(_) => {
                if line.ends_with(b"\n") {
                    line.pop();
                }
                if line.ends_with(b"\r") {
                    line.pop();
                }
                Ok(line)
            }
            Err(e) => Err(anyhow::Error::new(e).context("read stdin")),
        };
        let stop = item.is_err();
        if tx.blocking_send(item).is_err() || stop {
            return;
        }
    }
}

fn print_summary(args: &PublishArgs, s: &Summary, elapsed: std::time::Duration) -> Result<()> {
    let mut out = Out::new();
    if args.remote.json {
        let partitions: Vec<_> = s
            .partitions
            .iter()
            .map(|(p, (n, first, last))| {
                json!({ "partition": p, "events": n, "first_offset": first, "last_offset": last })
            })
            .collect();
        out.json(&json!({
            "topic": args.topic,
            "events": s.events,
            "duplicates": s.duplicates,
            "partitions": partitions,
        }))?;
    } else if s.events == 0 {
        out.line("published nothing: stdin held no lines")?;
    } else {
        let mut line = format!(
            "published {} event{} to {} in {}",
            s.events,
            if s.events == 1 { "" } else { "s" },
            args.topic,
            output::duration_ms(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        );
        if s.duplicates > 0 {
            line.push_str(&format!(
                " ({} duplicate id{}: nothing new stored for those)",
                s.duplicates,
                if s.duplicates == 1 { "" } else { "s" }
            ));
        }
        out.line(line)?;
        for (p, (n, first, last)) in &s.partitions {
            out.line(format!(
                "  partition {p}: {n} event{} within offsets {first}..={last}",
                if *n == 1 { "" } else { "s" }
            ))?;
        }
    }
    output::ignore_broken_pipe(out.flush())
}
