//! Idle memory: the resident memory a broker gains per idle topic and per
//! idle subscription, and the time to reopen a broker holding them.
//!
//! A fresh broker (fsync `never`, so that creating thousands of objects
//! does not wait for thousands of fsyncs; memory does not depend on it)
//! creates N topics of one partition, then N subscriptions, each on one
//! topic by its exact name. `VmRSS` of `/proc/self/status` is read before
//! and, after a short settle, after; the difference is divided by 2N. This
//! runs first in the benchmark, before the other workloads grow the heap,
//! so that memory they freed is not reused here and hides the growth.
//!
//! Each partition log holds its segment file open, so the broker needs
//! about N open files: the soft open-files limit is raised toward the hard
//! one if it is too low (with `prlimit`, as the standard library has no
//! call for it), and the benchmark stops with an explanation if that is
//! not enough.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{Bus, SubscriptionConfig, TopicConfig};
use eddy_log::FsyncPolicy;
use tokio::runtime::Runtime;

use crate::cli::bench::memory::Rss;

/// Policy of the broker whose memory is measured.
pub const FSYNC: FsyncPolicy = FsyncPolicy::Never;
/// Time between the last creation and the second reading of `VmRSS`
/// (several rounds of the broker's background timer).
pub const SETTLE: Duration = Duration::from_millis(500);
/// Open files wanted beyond one per idle topic: the journal, the broker's
/// own topics, the runtime, the standard streams.
const SPARE_FILES: u64 = 256;

/// The open-files limit, and what was done about it.
#[derive(Debug, Clone, Copy)]
pub struct OpenFilesLimit {
    /// The soft limit the benchmark ran with (`None`: unlimited).
    pub soft: Option<u64>,
    /// It was raised from this.
    pub raised_from: Option<u64>,
}

/// What the idle workload measured.
#[derive(Debug, Clone)]
pub struct Idle {
    /// Topics created, and as many subscriptions.
    pub objects: u32,
    pub before: Rss,
    pub after: Rss,
    pub topics_time: Duration,
    pub subscriptions_time: Duration,
    /// Files the process held open with every object created.
    pub open_files: Option<u64>,
    pub limit: OpenFilesLimit,
    pub close_time: Duration,
    /// Opening the broker again (fsync `always`, its default).
    pub reopen_time: Duration,
}

impl Idle {
    /// Growth of `VmRSS` per topic or subscription (they are as many).
    pub fn bytes_per_object(&self) -> f64 {
        self.after.total.saturating_sub(self.before.total) as f64 / (2.0 * f64::from(self.objects))
    }
}

/// Creates `objects` topics and subscriptions in a fresh broker in `dir`,
/// then closes and reopens it.
pub fn measure(runtime: &Runtime, dir: &Path, objects: u32) -> Result<Idle> {
    let limit = ensure_open_files(u64::from(objects) + SPARE_FILES + open_files().unwrap_or(0))?;
    let broker = Broker::open(
        dir,
        BrokerConfig {
            fsync: FSYNC,
            ..BrokerConfig::default()
        },
    )
    .with_context(|| format!("open a broker in {}", dir.display()))?;
    let created = runtime.block_on(create(&broker, objects, limit));
    let start = Instant::now();
    let closed = broker
        .close()
        .with_context(|| format!("close the broker in {}", dir.display()));
    let close_time = start.elapsed();
    let (before, after, topics_time, subscriptions_time, open_files) = created?;
    closed?;

    let start = Instant::now();
    let broker = Broker::open(dir, BrokerConfig::default())
        .with_context(|| format!("reopen the broker in {}", dir.display()))?;
    let reopen_time = start.elapsed();
    let checked = runtime.block_on(async {
        let topics = broker.list_topics().await?;
        let subscriptions = broker.list_subscriptions().await?;
        let topics = topics.iter().filter(|t| !t.name.starts_with('$')).count();
        if topics != objects as usize || subscriptions.len() != objects as usize {
            bail!(
                "reopened with {topics} topics and {} subscriptions, {objects} of each were created",
                subscriptions.len()
            );
        }
        Ok(())
    });
    let closed = broker
        .close()
        .with_context(|| format!("close the reopened broker in {}", dir.display()));
    checked?;
    closed?;
    std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(Idle {
        objects,
        before,
        after,
        topics_time,
        subscriptions_time,
        open_files,
        limit,
        close_time,
        reopen_time,
    })
}

fn topic_name(i: u32) -> String {
    format!("bench.idle.t{i:07}")
}

type Created = (Rss, Rss, Duration, Duration, Option<u64>);

async fn create(broker: &Broker, objects: u32, limit: OpenFilesLimit) -> Result<Created> {
    let hint = || match limit.soft {
        Some(soft) => {
            format!(" (each topic partition holds a file open; this process may open {soft} files)")
        }
        None => String::new(),
    };
    let before = Rss::of_self()?;
    let start = Instant::now();
    for i in 0..objects {
        broker
            .create_topic(&topic_name(i), TopicConfig::with_partitions(1))
            .await
            .with_context(|| format!("create idle topic {} of {objects}{}", i + 1, hint()))?;
    }
    let topics_time = start.elapsed();
    let start = Instant::now();
    for i in 0..objects {
        broker
            .create_subscription(
                &format!("bench-idle-s{i:07}"),
                SubscriptionConfig::new(topic_name(i)),
            )
            .await
            .with_context(|| format!("create idle subscription {} of {objects}", i + 1))?;
    }
    let subscriptions_time = start.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = Rss::of_self()?;
    Ok((before, after, topics_time, subscriptions_time, open_files()))
}

/// Files this process holds open.
fn open_files() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64)
}

/// (soft, hard) open-files limits from `/proc/self/limits`; `None` is unlimited.
fn read_open_files_limit() -> Result<(Option<u64>, Option<u64>)> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("read /proc/self/limits")?;
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .context("no open-files limit in /proc/self/limits")?;
    let mut fields = line.split_whitespace();
    let mut value = || -> Result<Option<u64>> {
        match fields.next() {
            Some("unlimited") => Ok(None),
            Some(n) => Ok(Some(n.parse().with_context(|| format!("limit `{n}`"))?)),
            None => bail!("a short open-files line in /proc/self/limits"),
        }
    };
    Ok((value()?, value()?))
}

/// Makes sure this process may open `needed` files, raising the soft limit
/// up to the hard one if need be.
fn ensure_open_files(needed: u64) -> Result<OpenFilesLimit> {
    let (soft, hard) = read_open_files_limit()?;
    if soft.is_none_or(|soft| soft >= needed) {
        return Ok(OpenFilesLimit {
            soft,
            raised_from: None,
        });
    }
    let target = hard.map_or(needed, |hard| hard.max(soft.unwrap_or(0)));
    let hard_text = hard.map_or("unlimited".to_string(), |h| h.to_string());
    if target > soft.unwrap_or(0) {
        // Raising one's own soft limit up to the hard one needs no privilege.
        let _ = Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={target}:{hard_text}"))
            .status();
    }
    let (now, _) = read_open_files_limit()?;
    if now.is_some_and(|now| now < needed) {
        bail!(
            "the idle memory workload needs about {needed} open files (one per idle topic), \
             but this process may open {} (hard limit {hard_text}{}); \
             raise it with `ulimit -n` or pass a smaller --idle-objects",
            now.unwrap_or(0),
            if now == soft {
                ", and raising it with `prlimit` did not work"
            } else {
                ""
            }
        );
    }
    Ok(OpenFilesLimit {
        soft: now,
        raised_from: (now != soft).then_some(soft.unwrap_or(0)),
    })
}
