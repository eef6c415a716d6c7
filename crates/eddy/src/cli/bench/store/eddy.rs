//! The Eddy rows: the embedded broker's event store (`impl EventStore for
//! Broker`), opened in the scratch directory with `BrokerConfig::default()`
//! (fsync `always`: an append returns after the group commit's
//! fdatasync), called directly.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{BusError, Direction, Event, EventStore, ExpectedVersion, StreamFrom};
use eddy_log::FsyncPolicy;
use tokio::runtime::Runtime;

use super::workload::{
    self, AppendTarget, Appenders, Measured, Outcome, Page, ReadTarget, ReadWorkload,
};

/// The expected version of an append to a stream whose last version is
/// `last`.
pub(super) fn expected(last: Option<u64>) -> ExpectedVersion {
    match last {
        Some(v) => ExpectedVersion::Exact(v),
        None => ExpectedVersion::NoStream,
    }
}

/// The store, as the workloads see it.
#[derive(Debug, Clone)]
struct Eddy(Broker);

impl AppendTarget for Eddy {
    async fn append(
        &self,
        stream: &str,
        last: Option<u64>,
        ty: &'static str,
        data: String,
    ) -> Result<Outcome> {
        let mut event = Event::new(ty, data);
        event.data_content_type = Some("application/json".into());
        match self.0.append(stream, expected(last), vec![event]).await {
            Ok(r) => Ok(Outcome::Appended(r.last_version)),
            Err(BusError::WrongExpectedVersion { .. }) => Ok(Outcome::Conflict),
            Err(e) => Err(e).with_context(|| format!("append to {stream}")),
        }
    }

    async fn last_version(&self, stream: &str) -> Result<Option<u64>> {
        Ok(self.0.stream_info(stream).await?.last_version)
    }
}

impl ReadTarget for Eddy {
    async fn read_forward(&self, stream: &str, from: u64, max: u32) -> Result<Page> {
        let slice = self
            .0
            .read_stream(stream, StreamFrom::Version(from), Direction::Forward, max)
            .await?;
        Ok(Page {
            events: slice
                .events
                .into_iter()
                .map(|e| (e.version, e.event.data))
                .collect(),
            next: slice.next,
        })
    }

    async fn read_last(&self, stream: &str) -> Result<Option<(u64, Bytes)>> {
        let slice = self
            .0
            .read_stream(stream, StreamFrom::Start, Direction::Backward, 1)
            .await?;
        Ok(slice
            .events
            .into_iter()
            .next()
            .map(|e| (e.version, e.event.data)))
    }
}

/// One run of the appenders on a fresh store in `dir`.
pub(super) fn appends(runtime: &Runtime, dir: &Path, plan: Appenders) -> Result<Measured> {
    let broker = Broker::open(dir, BrokerConfig::default())
        .with_context(|| format!("open a broker in {}", dir.display()))?;
    let (measured, cpu) = super::cpu::during(&[], || {
        runtime.block_on(workload::run_appends(Eddy(broker.clone()), plan))
    });
    broker.close()?;
    Ok(Measured { cpu, ..measured? })
}

/// The reads and loads, each for `run_time`, on the read data set written
/// to a fresh store in `dir` (under fsync `never`, not timed), which is
/// then reopened as the appends run it (fsync `always`).
pub(super) fn reads(
    runtime: &Runtime,
    dir: &Path,
    run_time: Duration,
) -> Result<Vec<(ReadWorkload, Measured)>> {
    let (setup, expected) = workload::read_setup();
    let config = BrokerConfig {
        fsync: FsyncPolicy::Never,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(dir, config)?;
    let written = runtime.block_on(workload::write_setup(&Eddy(broker.clone()), setup));
    broker.close()?;
    written?;
    let broker = Broker::open(dir, BrokerConfig::default())
        .with_context(|| format!("reopen the broker in {}", dir.display()))?;
    let measured = runtime.block_on(workload::run_all_reads(
        &Eddy(broker.clone()),
        expected,
        run_time,
    ));
    broker.close()?;
    measured
}
