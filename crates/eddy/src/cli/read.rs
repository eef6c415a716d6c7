//! `eddy read TOPIC`: replay a topic from an offset or a time, without a
//! subscription.
//!
//! Without `--follow` it reads up to the end each partition had when the
//! command started, then stops. With `--follow` it then polls for new
//! events (every [`FOLLOW_POLL_MS`]) until Ctrl-C or `--max`.
//!
//! Events of different partitions are interleaved by append time (ties by
//! partition), within each partition in offset order; memory holds at most
//! one read chunk per partition. An offset given to `--from` for all
//! partitions is clamped to what each one holds; for one `--partition`, an
//! offset it does not hold is an error (exit 5).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use eddy_bus::{Bus, BusError, Offset, Partition, READ_MAX, ReadFrom, StoredEvent};
use eddy_client::Client;
use indicatif::ProgressBar;

use super::connect::Remote;
use super::json;
use super::output::{self, Out};
use super::parse::{self, Position};
use crate::utc;

/// How often `--follow` asks for new events once it has caught up.
pub const FOLLOW_POLL_MS: u64 = 250;
/// Events asked for per read, across all partitions (each partition asks
/// for a share, at least [`CHUNK_MIN`]).
const CHUNK_TOTAL: u32 = 10_000;
const CHUNK_MIN: u32 = 16;

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The topic.
    topic: String,
    /// Read only this partition [default: all, interleaved by time].
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Where to start: `beginning`, `end`, an offset (`42`), an RFC 3339
    /// time (`2026-05-01T12:00:00Z`) or a duration before now (`15m-ago`).
    #[arg(long, value_name = "POSITION", default_value = "beginning",
          value_parser = parse::position)]
    from: Position,
    /// Stop after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
    /// After the end, keep waiting for new events until Ctrl-C.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    remote: Remote,
}

/// One partition being read.
#[derive(Debug)]
struct Cursor {
    partition: Partition,
    /// How the first read starts; `None` once it has been made.
    start: Option<ReadFrom>,
    /// The offset to read next, once known.
    next: Option<u64>,
    /// Where reading stops (the partition's end when the command started),
    /// or `u64::MAX` with `--follow`.
    end: u64,
    /// The first offset read, once known.
    first: Option<u64>,
    buf: VecDeque<StoredEvent>,
}

impl Cursor {
    fn done(&self) -> bool {
        self.buf.is_empty() && self.next.is_some_and(|n| n >= self.end)
    }

    /// The merge key of the next event: its time, then its partition.
    fn key(&self, index: usize) -> Option<Reverse<(i64, u32, usize)>> {
        self.buf
            .front()
            .map(|e| Reverse((e.timestamp_ms, self.partition.0, index)))
    }
}

struct Reader<'a> {
    bus: &'a Client,
    args: &'a ReadArgs,
    cursors: Vec<Cursor>,
    chunk: u32,
    out: Out,
    printed: u64,
    limit: u64,
    progress: ProgressBar,
}

pub fn run(args: ReadArgs) -> Result<()> {
    let remote = args.remote.clone();
    remote.run(|bus| async move {
        let result = read(&bus, &args).await;
        output::ignore_broken_pipe(result)
    })
}

async fn read(bus: &Client, args: &ReadArgs) -> Result<()> {
    let remote = &args.remote;
    let info = remote.check(bus.describe_topic(&args.topic).await)?;
    let partitions = info.partitions.len() as u32;
    let selected: Vec<_> = match args.partition {
        Some(p) if p >= partitions => {
            return remote.check(Err(BusError::PartitionNotFound {
                topic: args.topic.clone(),
                partition: Partition(p),
                partitions,
            }));
        }
        Some(p) => vec![info.partitions[p as usize]],
        None => info.partitions.clone(),
    };
    let now = utc::now_ms();
    let cursors = selected
        .iter()
        .map(|p| {
            let start = match args.from {
                Position::Beginning => ReadFrom::Beginning,
                Position::End => ReadFrom::End,
                Position::Offset(o) if args.partition.is_some() => ReadFrom::Offset(Offset(o)),
                Position::Offset(o) => {
                    ReadFrom::Offset(Offset(o.clamp(p.first_offset.0, p.next_offset.0)))
                }
                Position::Time(t) => ReadFrom::Time(t),
                Position::Ago(ms) => ReadFrom::Time(parse::ago(now, ms)),
            };
            Cursor {
                partition: p.partition,
                start: Some(start),
                next: None,
                end: if args.follow {
                    u64::MAX
                } else {
                    p.next_offset.0
                },
                first: None,
                buf: VecDeque::new(),
            }
        })
        .collect::<Vec<_>>();
    let chunk = (CHUNK_TOTAL / cursors.len().max(1) as u32).clamp(CHUNK_MIN, READ_MAX);
    // A bar only where it cannot tangle with the events: stderr on a
    // terminal, stdout not.
    let bar = !args.follow && std::io::stderr().is_terminal() && !std::io::stdout().is_terminal();
    let mut reader = Reader {
        bus,
        args,
        cursors,
        chunk,
        out: Out::new(),
        printed: 0,
        limit: args.max.unwrap_or(u64::MAX),
        progress: if bar {
            output::progress_bar(0, "events")
        } else {
            ProgressBar::hidden()
        },
    };
    if !args.follow {
        let full = reader.drain().await?;
        reader.progress.finish_and_clear();
        reader.out.flush()?;
        if reader.printed == 0 && !full {
            output::note(format!(
                "no events in {} from {}",
                args.topic,
                describe_position(args.from)
            ));
        }
        return Ok(());
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let follow = async {
        loop {
            if reader.drain().await? {
                return reader.out.flush();
            }
            reader.out.flush()?;
            tokio::time::sleep(Duration::from_millis(FOLLOW_POLL_MS)).await;
        }
    };
    tokio::select! {
        result = follow => result,
        _ = &mut ctrl_c => Ok(()),
    }
}

impl Reader<'_> {
    /// Prints every event available now (up to each cursor's end), merged
    /// by time; `true` if `--max` was reached.
    async fn drain(&mut self) -> Result<bool> {
        let mut heap = BinaryHeap::new();
        for i in 0..self.cursors.len() {
            self.refill(i).await?;
            heap.extend(self.cursors[i].key(i));
        }
        if self.progress.length() == Some(0) {
            let total: u64 = self
                .cursors
                .iter()
                .map(|c| {
                    let first = c.first.unwrap_or(c.end);
                    c.end.saturating_sub(first)
                })
                .sum();
            self.progress.set_length(total.min(self.limit));
        }
        while let Some(Reverse((_, _, i))) = heap.pop() {
            let Some(event) = self.cursors[i].buf.pop_front() else {
                continue;
            };
            if self.args.remote.json {
                self.out.json(&json::stored_event(&event))?;
            } else {
                self.out.line(output::event_line(&event))?;
            }
            self.printed += 1;
            self.progress.inc(1);
            if self.printed >= self.limit {
                return Ok(true);
            }
            if self.cursors[i].buf.is_empty() {
                self.refill(i).await?;
            }
            heap.extend(self.cursors[i].key(i));
        }
        Ok(false)
    }

    /// Reads the next chunk of cursor `i` if its buffer is empty and it has
    /// not reached its end.
    async fn refill(&mut self, i: usize) -> Result<()> {
        let c = &mut self.cursors[i];
        if !c.buf.is_empty() || c.done() {
            return Ok(());
        }
        let from = match (c.start.take(), c.next) {
            (Some(start), _) => start,
            (None, Some(next)) => ReadFrom::Offset(Offset(next)),
            (None, None) => return Ok(()),
        };
        let batch = self.args.remote.check(
            self.bus
                .read(&self.args.topic, c.partition, from, self.chunk)
                .await,
        )?;
        c.first.get_or_insert(
            batch
                .events
                .first()
                .map_or(batch.next_offset.0, |e| e.offset.0),
        );
        c.next = Some(batch.next_offset.0);
        let end = c.end;
        c.buf
            .extend(batch.events.into_iter().filter(|e| e.offset.0 < end));
        Ok(())
    }
}

fn describe_position(p: Position) -> String {
    match p {
        Position::Beginning => "the beginning".to_string(),
        Position::End => "the end".to_string(),
        Position::Offset(o) => format!("offset {o}"),
        Position::Time(t) => utc::format_ms(t),
        Position::Ago(ms) => format!("{} ago", output::duration_ms(ms)),
    }
}
