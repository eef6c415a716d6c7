//! `eddy stream append|read|info|delete|meta|all`: the event store of a
//! server — streams appended with an expected version, read forward or
//! backward, their settings, soft deletes, and the global feed `$all`.
//!
//! `read` and `all` page through what is there when the command starts
//! (`--max` stops sooner); `all --follow` then goes on as a catch-up
//! subscription ([`CatchUp`]): every event that passes the filter, once,
//! in position order, until Ctrl-C or `--max`. Memory holds one page.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use eddy_bus::store::STORE_READ_MAX;
use eddy_bus::{
    AllFilter, CatchUp, Direction, Event, EventStore, ExpectedVersion, RecordedEvent, StreamFrom,
    StreamInfo, StreamMetadata,
};
use eddy_client::Client;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use super::connect::Remote;
use super::exit::Usage;
use super::json;
use super::output::{self, Out};

/// Events asked for per read.
const PAGE_EVENTS: u32 = 1000;

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(subcommand)]
    command: StreamCommand,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Append an event to a stream, if the stream is where --expected says.
    Append(AppendArgs),
    /// Print a stream's events, forward (from its first) or backward.
    Read(ReadArgs),
    /// Show a stream's last version, settings and whether it was deleted.
    Info {
        /// The stream.
        stream: String,
    },
    /// Delete a stream (soft): it reads as not existing until an append
    /// re-creates it, numbering on.
    Delete {
        /// The stream.
        stream: String,
        /// Delete only if the stream is here: `any`, `exists`, or the
        /// version of its last event.
        #[arg(long, value_name = "EXPECTED", default_value = "any", value_parser = expected)]
        expected: ExpectedVersion,
    },
    /// Replace a stream's settings: what it keeps readable.
    Meta(MetaArgs),
    /// Print the global feed `$all` in position order, optionally filtered;
    /// with --follow, keep printing new events as they are appended.
    All(AllArgs),
}

#[derive(Debug, Args)]
struct AppendArgs {
    /// The stream: `<category>-<id>`, e.g. `order-123`.
    stream: String,
    /// The event type, e.g. `OrderPlaced`.
    #[arg(long = "type", value_name = "TYPE")]
    ty: String,
    /// The event's data.
    #[arg(long, value_name = "DATA")]
    data: String,
    /// The event id: appending the same ids again at the same versions is
    /// a success marked duplicate (a retry) [default: a new UUIDv7 from the
    /// server].
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Append only if the stream is here: `any`, `no_stream`, `exists`, or
    /// the version of its last event.
    #[arg(long, value_name = "EXPECTED", default_value = "any", value_parser = expected)]
    expected: ExpectedVersion,
    /// The event source (CloudEvents `source`).
    #[arg(long, value_name = "URI", default_value = "eddy-cli")]
    source: String,
    /// The `datacontenttype` [default: application/json for data that
    /// parses as JSON, else text/plain].
    #[arg(long, value_name = "MEDIA TYPE")]
    content_type: Option<String>,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// The stream.
    stream: String,
    /// The version to start at [default: the first readable event, or the
    /// last one with --backward].
    #[arg(long, value_name = "VERSION")]
    from: Option<u64>,
    /// Read towards older events.
    #[arg(long)]
    backward: bool,
    /// Stop after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
}

#[derive(Debug, Args)]
struct MetaArgs {
    /// The stream.
    stream: String,
    /// Events older than this many ms are no longer read.
    #[arg(long, value_name = "MS")]
    max_age_ms: Option<u64>,
    /// Only the last N events are read.
    #[arg(long, value_name = "N")]
    max_count: Option<u64>,
    /// Events below this version are no longer read.
    #[arg(long, value_name = "VERSION")]
    truncate_before: Option<u64>,
    /// Remove every setting (the settings are replaced as a whole, so the
    /// flags left out are removed too).
    #[arg(long, conflicts_with_all = ["max_age_ms", "max_count", "truncate_before"])]
    clear: bool,
}

#[derive(Debug, Args)]
struct AllArgs {
    /// The `$all` position to start at (an event's printed position plus
    /// one goes on after it).
    #[arg(long, value_name = "POSITION", default_value_t = 0)]
    from: u64,
    /// Only events of this category's streams (`order` for `order-*`).
    #[arg(long, value_name = "CATEGORY", group = "filter")]
    category: Option<String>,
    /// Only events of this type.
    #[arg(long = "type", value_name = "TYPE", group = "filter")]
    ty: Option<String>,
    /// Only events of streams whose name starts with this (`$` for the
    /// system's streams, otherwise left out).
    #[arg(long, value_name = "PREFIX", group = "filter")]
    prefix: Option<String>,
    /// After the end, keep printing new events until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Stop after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
}

fn expected(text: &str) -> Result<ExpectedVersion, String> {
    text.parse::<ExpectedVersion>().map_err(|e| match e {
        eddy_bus::BusError::InvalidArgument { reason, .. } => reason,
        other => other.to_string(),
    })
}

pub fn run(args: StreamArgs) -> Result<()> {
    let remote = &args.remote;
    remote.run(|bus| async move {
        let result = match args.command {
            StreamCommand::Append(a) => append(&bus, remote, a).await,
            StreamCommand::Read(a) => read(&bus, remote, a).await,
            StreamCommand::Info { stream } => info(&bus, remote, &stream).await,
            StreamCommand::Delete { stream, expected } => {
                delete(&bus, remote, &stream, expected).await
            }
            StreamCommand::Meta(a) => meta(&bus, remote, a).await,
            StreamCommand::All(a) => all(&bus, remote, a).await,
        };
        output::ignore_broken_pipe(result)
    })
}

async fn append(bus: &Client, remote: &Remote, a: AppendArgs) -> Result<()> {
    let data = Bytes::from(a.data);
    let content_type = a.content_type.unwrap_or_else(|| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_ok() {
            "application/json".to_string()
        } else {
            "text/plain".to_string()
        }
    });
    let event = Event {
        id: a.id.unwrap_or_default(),
        source: a.source,
        data_content_type: Some(content_type),
        ..Event::new(a.ty, data)
    };
    let r = remote.check(bus.append(&a.stream, a.expected, vec![event]).await)?;
    let mut out = Out::new();
    if remote.json {
        out.json(&json::append_result(&a.stream, &r))?;
    } else {
        let mut line = format!(
            "appended to {} at version {} (position {})",
            a.stream, r.last_version, r.position
        );
        if r.duplicate {
            line.push_str(" — a retry: this id was stored before, nothing new");
        }
        out.line(line)?;
    }
    out.flush()
}

async fn read(bus: &Client, remote: &Remote, a: ReadArgs) -> Result<()> {
    let direction = if a.backward {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let mut from = a.from.map_or(StreamFrom::Start, StreamFrom::Version);
    let limit = a.max.unwrap_or(u64::MAX);
    let mut out = Out::new();
    let mut printed = 0u64;
    let mut last_version = None;
    while printed < limit {
        let want = u32::try_from(limit - printed)
            .unwrap_or(u32::MAX)
            .min(PAGE_EVENTS);
        let slice = remote.check(bus.read_stream(&a.stream, from, direction, want).await)?;
        last_version = slice.last_version;
        for e in &slice.events {
            print_event(&mut out, remote, e, false)?;
            printed += 1;
        }
        match slice.next {
            Some(next) => from = StreamFrom::Version(next),
            None => break,
        }
    }
    out.flush()?;
    if printed == 0 {
        match last_version {
            None => output::note(format!("stream {} does not exist", a.stream)),
            Some(v) => output::note(format!(
                "no events of {} to read from there (its last version is {v})",
                a.stream
            )),
        }
    }
    Ok(())
}

async fn info(bus: &Client, remote: &Remote, stream: &str) -> Result<()> {
    let info = remote.check(bus.stream_info(stream).await)?;
    let mut out = Out::new();
    if remote.json {
        out.json(&json::stream_info(&info))?;
    } else {
        out.text(&info_text(&info))?;
    }
    out.flush()
}

fn info_text(i: &StreamInfo) -> String {
    let m = &i.metadata;
    format!(
        "stream           {}\nlast version     {}\ndeleted          {}\nmax age          {}\nmax count        {}\ntruncate before  {}\n",
        i.stream,
        i.last_version
            .map_or_else(|| "none (no stream)".to_string(), |v| v.to_string()),
        if i.deleted { "yes" } else { "no" },
        m.max_age_ms
            .map_or_else(|| "-".to_string(), output::duration_ms),
        output::or_dash(m.max_count),
        output::or_dash(m.truncate_before),
    )
}

async fn delete(
    bus: &Client,
    remote: &Remote,
    stream: &str,
    expected: ExpectedVersion,
) -> Result<()> {
    remote.check(bus.delete_stream(stream, expected).await)?;
    let mut out = Out::new();
    if remote.json {
        out.json(&json!({ "stream": stream, "deleted": true }))?;
    } else {
        out.line(format!(
            "deleted stream {stream}; an append re-creates it, numbering on"
        ))?;
    }
    out.flush()
}

async fn meta(bus: &Client, remote: &Remote, a: MetaArgs) -> Result<()> {
    let metadata = StreamMetadata {
        max_age_ms: a.max_age_ms,
        max_count: a.max_count,
        truncate_before: a.truncate_before,
    };
    if metadata == StreamMetadata::default() && !a.clear {
        return Err(Usage(
            "give --max-age-ms, --max-count or --truncate-before (they replace the stream's \
             settings), or --clear to remove them all; see them with `eddy stream info`"
                .into(),
        )
        .into());
    }
    remote.check(bus.set_stream_metadata(&a.stream, metadata).await)?;
    let mut out = Out::new();
    if remote.json {
        out.json(&json!({
            "stream": a.stream,
            "metadata": json::stream_metadata(&metadata),
        }))?;
    } else if a.clear {
        out.line(format!("removed every setting of {}", a.stream))?;
    } else {
        out.line(format!("set the settings of {}", a.stream))?;
    }
    out.flush()
}

impl AllArgs {
    fn filter(&self) -> AllFilter {
        match (&self.category, &self.ty, &self.prefix) {
            (Some(c), _, _) => AllFilter::Category(c.clone()),
            (_, Some(t), _) => AllFilter::EventType(t.clone()),
            (_, _, Some(p)) => AllFilter::StreamPrefix(p.clone()),
            _ => AllFilter::All,
        }
    }
}

async fn all(bus: &Client, remote: &Remote, a: AllArgs) -> Result<()> {
    let filter = a.filter();
    let limit = a.max.unwrap_or(u64::MAX);
    let mut out = Out::new();
    let mut printed = 0u64;
    if a.follow {
        let mut sub = CatchUp::new(bus.clone(), filter, a.from).batch(PAGE_EVENTS);
        // Listening from here on: a Ctrl-C after the first event printed
        // always ends the command cleanly.
        let mut interrupt = signal(SignalKind::interrupt()).context("listen for Ctrl-C")?;
        while printed < limit {
            let event = tokio::select! {
                e = sub.next() => remote.check(e)?,
                _ = interrupt.recv() => break,
            };
            print_event(&mut out, remote, &event, true)?;
            printed += 1;
            // Each event shows as it comes.
            out.flush()?;
        }
        return out.flush();
    }
    // Up to the head as it is now.
    let mut from = a.from;
    let mut end = None;
    while printed < limit {
        let want = u32::try_from(limit - printed)
            .unwrap_or(u32::MAX)
            .min(PAGE_EVENTS)
            .min(STORE_READ_MAX);
        let slice = remote.check(bus.read_all(from, filter.clone(), want, 0).await)?;
        let end = *end.get_or_insert(slice.head);
        for e in slice.events.iter().filter(|e| e.position < end) {
            print_event(&mut out, remote, e, true)?;
            printed += 1;
        }
        if slice.next >= end || slice.next == from {
            break;
        }
        from = slice.next;
    }
    out.flush()?;
    if printed == 0 {
        output::note(format!("no events in $all from position {}", a.from));
    }
    Ok(())
}

/// One event: JSON, or a line — `order-1@3  OrderPlaced  data`, after
/// its position (`#12  `) for `$all`.
fn print_event(out: &mut Out, remote: &Remote, e: &RecordedEvent, position: bool) -> Result<()> {
    if remote.json {
        return out.json(&json::recorded_event(e));
    }
    let line = format!(
        "{}@{}  {}  {}",
        e.stream,
        e.version,
        e.event.ty,
        output::printable(&e.event.data)
    );
    if position {
        out.line(format!("#{}  {line}", e.position))
    } else {
        out.line(line)
    }
}
