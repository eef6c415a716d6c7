//! `eddy consume SUB`: fetch deliveries of a subscription, print each, and
//! ack it once printed.
//!
//! Without `--follow` it stops after `--max` deliveries (default 1) or as
//! soon as a fetch finds nothing within `--wait-ms`: fewer than `--max` is
//! still success (exit 0), with a note on stderr saying how many came.
//! With `--follow` it long-polls until Ctrl-C, or until `--max` if given.
//!
//! Each fetched batch is printed and flushed to stdout first, then acked
//! with one `ack_all` (or, with `--nack` / `--terminate`, settled as a
//! failure): an event is settled only once its line is out, so an
//! interruption (Ctrl-C, a closed pipe) can only cause a redelivery, never
//! a loss. A Ctrl-C during a fetch drops that fetch; anything the server
//! handed out for it is delivered again once its lease runs out.

use anyhow::{Context, Result};
use clap::Args;
use eddy_bus::{Bus, Delivery, FETCH_MAX, FetchOptions, NackOptions, WAIT_MS_MAX};
use eddy_client::Client;

use super::connect::Remote;
use super::json;
use super::output::{self, Out};

/// How long each fetch of `--follow` waits for events.
const FOLLOW_WAIT_MS: u64 = 30_000;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The subscription.
    subscription: String,
    /// Stop after this many deliveries [default: 1; with --follow, no
    /// limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
    /// Keep consuming until Ctrl-C (or --max).
    #[arg(long)]
    follow: bool,
    /// Print without acking: the events are delivered again when their
    /// lease (the subscription's ack wait) runs out.
    #[arg(long, group = "settle")]
    no_ack: bool,
    /// Nack each delivery after printing it, as a failed attempt: it is
    /// retried after the subscription's backoff, or dead-lettered if that
    /// was its last attempt.
    #[arg(long, group = "settle")]
    nack: bool,
    /// With --nack: the error to record with the failed attempt.
    #[arg(long, value_name = "MESSAGE", requires = "nack")]
    error: Option<String>,
    /// Send each delivery straight to the dead-letter queue after printing
    /// it, with this reason (a non-retryable error).
    #[arg(long, value_name = "REASON", group = "settle")]
    terminate: Option<String>,
    /// Without --follow: stop when no event arrives within this long.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=WAIT_MS_MAX))]
    wait_ms: u64,
    #[command(flatten)]
    remote: Remote,
}

pub fn run(args: ConsumeArgs) -> Result<()> {
    let remote = args.remote.clone();
    remote.run(|bus| async move { consume(&bus, &args).await })
}

/// Why consuming stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// `--max` deliveries were consumed.
    Max,
    /// A fetch found nothing within the wait.
    Drained,
    /// Ctrl-C.
    Interrupted,
}

async fn consume(bus: &Client, args: &ConsumeArgs) -> Result<()> {
    let limit = match (args.max, args.follow) {
        (Some(n), _) => n,
        (None, false) => 1,
        (None, true) => u64::MAX,
    };
    let wait_ms = if args.follow {
        FOLLOW_WAIT_MS
    } else {
        args.wait_ms
    };
    let mut out = Out::new();
    let mut consumed: u64 = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let stop = loop {
        if consumed >= limit {
            break Stop::Max;
        }
        let want = u32::try_from(limit - consumed)
            .unwrap_or(u32::MAX)
            .min(FETCH_MAX);
        let fetch = bus.fetch(&args.subscription, FetchOptions { max: want, wait_ms });
        let deliveries = tokio::select! {
            fetched = fetch => args.remote.check(fetched)?,
            _ = &mut ctrl_c => break Stop::Interrupted,
        };
        if deliveries.is_empty() {
            if args.follow {
                continue;
            }
            break Stop::Drained;
        }
        consumed += deliveries.len() as u64;
        if let Err(e) = print(&mut out, &deliveries, args.remote.json) {
            // A closed stdout ends the command: these were not seen, so
            // they are not acked.
            return output::ignore_broken_pipe(Err(e));
        }
        settle(bus, args, &deliveries).await?;
    };
    match stop {
        Stop::Drained if consumed == 0 => output::note(format!(
            "nothing to consume: no event was ready in subscription {} within {} ms",
            args.subscription, wait_ms
        )),
        Stop::Drained => output::note(format!(
            "consumed {consumed} of --max {limit}: no more arrived within {wait_ms} ms"
        )),
        Stop::Interrupted if consumed > 0 => {
            output::note(format!("stopped after {consumed} deliveries"));
        }
        _ => {}
    }
    Ok(())
}

/// Prints deliveries and flushes them out.
fn print(out: &mut Out, deliveries: &[Delivery], as_json: bool) -> Result<()> {
    for d in deliveries {
        if as_json {
            out.json(&json::delivery(d))?;
        } else {
            out.line(output::event_line(&d.event))?;
        }
    }
    out.flush()
}

/// Settles printed deliveries as the flags say (ack by default); the first
/// refused settlement is the error (after a note for each one refused).
async fn settle(bus: &Client, args: &ConsumeArgs, deliveries: &[Delivery]) -> Result<()> {
    let sub = &args.subscription;
    let ids: Vec<_> = deliveries.iter().map(|d| d.ack_id.clone()).collect();
    let (verb, outcomes) = if args.no_ack {
        return Ok(());
    } else if args.nack {
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in &ids {
            let options = NackOptions {
                delay_ms: None,
                error: args.error.clone(),
            };
            outcomes.push(bus.nack(sub, id, options).await);
        }
        ("nack", outcomes)
    } else if let Some(reason) = &args.terminate {
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in &ids {
            outcomes.push(bus.terminate(sub, id, reason).await);
        }
        ("terminate", outcomes)
    } else {
        ("ack", args.remote.check(bus.ack_all(sub, &ids).await)?)
    };
    let mut first = None;
    for (id, outcome) in ids.iter().zip(outcomes) {
        if let Err(e) = outcome {
            output::note(format!("{verb} of {id} refused: {e}"));
            first.get_or_insert((id, e));
        }
    }
    match first {
        Some((id, e)) => args
            .remote
            .check(Err::<(), _>(e))
            .with_context(|| format!("{verb} {id}")),
        None => Ok(()),
    }
}
