//! Test support for `tests/crash_sigkill.rs`: a broker under publish, ack
//! and nack load that prints each confirmed operation, to be killed with
//! SIGKILL at a random moment. Not part of the public interface.
//!
//! Usage: `eddy-broker-crash-child <dir> <cycle>`. Prints, once each call
//! has returned:
//! - `P <event id> <partition> <offset>` for a confirmed publish,
//! - `A <event id>` for a confirmed ack,
//! - `N <event id>` for a confirmed nack with a one-hour delay,
//! - `S <stream> <first version> <event id>…` for a confirmed event-store
//!   append (with the exact expected version) of those events.

use std::io::Write;
use std::sync::{Arc, Mutex};

use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{
    Backoff, Bus, BusError, Event, EventStore, ExpectedVersion, FetchOptions, NackOptions,
    RetryPolicy, StartAt, SubscriptionConfig, TopicConfig,
};

/// Whether the child nacks (rather than acks) this event.
fn nacks(id: &str) -> bool {
    id.bytes().map(u64::from).sum::<u64>() % 4 == 0
}

fn say(out: &Mutex<std::io::Stdout>, line: String) {
    let out = out.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = out.lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BusError> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, cycle) = (&args[1], &args[2]);
    let bus = Broker::open(
        dir,
        BrokerConfig {
            timer_interval_ms: None,
            ..BrokerConfig::default()
        },
    )?;
    match bus
        .create_topic("orders", TopicConfig::with_partitions(2))
        .await
    {
        Ok(_) | Err(BusError::TopicExists(_)) => {}
        Err(e) => return Err(e),
    }
    let config = SubscriptionConfig::new("orders")
        .start_at(StartAt::Earliest)
        .ack_wait_ms(60_000)
        .retry(RetryPolicy {
            max_deliveries: 100,
            backoff: Backoff::Fixed { delay_ms: 10 },
            cap_ms: None,
            jitter_pct: 0,
        });
    match bus.create_subscription("work", config).await {
        Ok(_) | Err(BusError::SubscriptionExists(_)) => {}
        Err(e) => return Err(e),
    }
    let out = Arc::new(Mutex::new(std::io::stdout()));

    let publisher = {
        let (bus, out, cycle) = (bus.clone(), Arc::clone(&out), cycle.clone());
        tokio::spawn(async move {
            for n in 0u64.. {
                let events: Vec<Event> = (0..n % 5 + 1)
                    .map(|i| {
                        Event::new("OrderPlaced", format!("order {n}/{i}"))
                            .with_id(format!("c{cycle}-{n}-{i}"))
                            .with_key(format!("k{}", n % 7))
                    })
                    .collect();
                let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
                let published = bus.publish_batch("orders", events).await?;
                let mut lines = String::new();
                for (id, p) in ids.iter().zip(published) {
                    lines.push_str(&format!("P {id} {} {}\n", p.partition.0, p.offset.0));
                }
                say(&out, lines);
            }
            Ok::<(), BusError>(())
        })
    };
    let consumer = {
        let (bus, out) = (bus.clone(), Arc::clone(&out));
        tokio::spawn(async move {
            loop {
                let got = bus
                    .fetch(
                        "work",
                        FetchOptions {
                            max: 20,
                            wait_ms: 50,
                        },
                    )
                    .await?;
                let (nack, ack): (Vec<_>, Vec<_>) =
                    got.into_iter().partition(|d| nacks(&d.event.event.id));
                for d in nack {
                    let options = NackOptions {
                        delay_ms: Some(3_600_000),
                        error: Some("try again in an hour".into()),
                    };
                    bus.nack("work", &d.ack_id, options).await?;
                    say(&out, format!("N {}\n", d.event.event.id));
                }
                let ids: Vec<_> = ack.iter().map(|d| d.ack_id.clone()).collect();
                let results = bus.ack_all("work", &ids).await?;
                let mut lines = String::new();
                for (d, r) in ack.iter().zip(results) {
                    r?;
                    lines.push_str(&format!("A {}\n", d.event.event.id));
                }
                say(&out, lines);
            }
            #[allow(unreachable_code)]
            Ok::<(), BusError>(())
        })
    };
    // Appenders: each owns some streams and appends 1..=3 events at a
    // time with the exact version it knows (read back at start).
    let mut appenders = Vec::new();
    for a in 0..3u64 {
        let (bus, out, cycle) = (bus.clone(), Arc::clone(&out), cycle.clone());
        appenders.push(tokio::spawn(async move {
            let streams: Vec<String> = (0..4).map(|s| format!("acct-{a}x{s}")).collect();
            let mut versions = Vec::new();
            for s in &streams {
                versions.push(bus.stream_info(s).await?.last_version);
            }
            for n in 0u64.. {
                let k = (n % streams.len() as u64) as usize;
                let events: Vec<Event> = (0..n % 3 + 1)
                    .map(|i| {
                        Event::new("Deposited", format!("{n}/{i}"))
                            .with_id(format!("s{cycle}-{a}-{n}-{i}"))
                    })
                    .collect();
                let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
                let expected =
                    versions[k].map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                let r = bus.append(&streams[k], expected, events).await?;
                versions[k] = Some(r.last_version);
                say(
                    &out,
                    format!("S {} {} {}\n", streams[k], r.first_version, ids.join(" ")),
                );
            }
            Ok::<(), BusError>(())
        }));
    }
    let (p, c) = tokio::join!(publisher, consumer);
    p.map_err(|e| BusError::Storage(e.to_string()))??;
    c.map_err(|e| BusError::Storage(e.to_string()))??;
    for a in appenders {
        a.await.map_err(|e| BusError::Storage(e.to_string()))??;
    }
    Ok(())
}
