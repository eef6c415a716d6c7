//! `eddy bench …`: performance measurements on this machine.
//!
//! The helpers here and in the modules beside the benchmarks' own (raw-disk
//! baseline, log appender threads, machine description, resident memory,
//! number formatting, the report's table and heading, target verdicts, a
//! scratch directory, argument checks) are shared by every benchmark.
//! `server` also reuses `broker`'s workloads, which are generic over `Bus`.

mod appenders;
mod broker;
mod disk;
mod log;
mod machine;
mod memory;
mod pacer;
mod peers;
mod process;
mod report;
mod runtime;
mod server;
mod store;
mod target;
mod units;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tempfile::TempDir;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Storage engine throughput and reopen time, against the raw disk.
    Log(log::BenchLogArgs),
    /// Embedded broker publish, consume and latency against the log, and
    /// the memory of idle topics and subscriptions.
    Broker(broker::BenchBrokerArgs),
    /// A running `eddy serve` on loopback, over the native protocol and
    /// HTTP, against the embedded broker in the same run; its latency and
    /// memory.
    Server(server::BenchServerArgs),
    /// The application runtime's overhead over the bus (a no-op handler
    /// against a raw consume + ack), and the demo shop's orders per second.
    Runtime(runtime::BenchRuntimeArgs),
    /// Eddy side by side with the brokers running on this machine (NATS
    /// JetStream, Redis Streams, RabbitMQ), through their own clients, in
    /// one run: publish, fan-out, work queue, latency and retry.
    Peers(peers::BenchPeersArgs),
    /// The event store against the machine's PostgreSQL, in one run:
    /// durable appends with an exact expected version, stream reads and
    /// aggregate loads with and without a snapshot.
    Store(store::BenchStoreArgs),
    /// A stream processor (keyed tumbling-window count into the machine's
    /// PostgreSQL) against the raw consume + ack of the same bus, and its
    /// publish → result-row delay at 10,000 events/s.
    Process(process::BenchProcessArgs),
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Log(args) => log::run(&args),
        BenchCommand::Broker(args) => broker::run(&args),
        BenchCommand::Server(args) => server::run(&args),
        BenchCommand::Runtime(args) => runtime::run(&args),
        BenchCommand::Peers(args) => peers::run(&args),
        BenchCommand::Store(args) => store::run(&args),
        BenchCommand::Process(args) => process::run(&args),
    }
}

/// A directory for a benchmark's files, created inside `parent` (the
/// current directory by default, so the disk measured is the project's)
/// and removed when dropped.
#[derive(Debug)]
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn create(parent: Option<&Path>) -> Result<Scratch> {
        let parent = match parent {
            Some(parent) => parent.to_path_buf(),
            None => std::env::current_dir().context("find the current directory")?,
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("create the bench directory {}", parent.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(".eddy-bench-")
            .tempdir_in(&parent)
            .with_context(|| format!("create a scratch directory in {}", parent.display()))?;
        Ok(Scratch { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the scratch directory.
    fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Removes the directory, reporting failure (dropping ignores it).
    fn remove(self) -> Result<()> {
        let path = self.dir.path().to_path_buf();
        self.dir
            .close()
            .with_context(|| format!("remove the scratch directory {}", path.display()))
    }
}

/// A `--seconds` value: more than 0, at most an hour.
fn parse_seconds(s: &str) -> Result<f64> {
    let seconds: f64 = s
        .parse()
        .with_context(|| format!("`{s}` is not a number"))?;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        bail!("must be more than 0 and at most 3600 seconds");
    }
    Ok(seconds)
}

/// Fails before measuring, rather than after, if the markdown report
/// cannot be written to `path`.
fn check_parent_exists(path: &Path) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    match parent {
        Some(dir) if !dir.is_dir() => bail!(
            "cannot write the markdown report to {}: {} is not a directory",
            path.display(),
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// The multi-threaded async runtime a benchmark runs its workloads on.
fn async_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("eddy-bench")
        .build()
        .context("start the async runtime")
}

/// Writes `body` into the markdown file at `path` between the markers of
/// section `name`, replacing that section if present and keeping the rest
/// of the file (hand-written notes, other benchmarks' sections), and says
/// so on stdout.
fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    std::fs::write(path, replace_section(&old, name, body))
        .with_context(|| format!("write {}", path.display()))?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn replace_section(old: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- {name}: begin (generated; edits here are overwritten) -->");
    let end = format!("<!-- {name}: end -->");
    let section = format!("{begin}\n{}\n{end}\n", body.trim_end());
    match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{section}{}",
            &old[..b],
            &old[e + end.len()..].trim_start_matches('\n')
        ),
        _ if old.trim().is_empty() => section,
        _ => format!("{}\n\n{section}", old.trim_end()),
    }
}

#[cfg(test)]
mod section_tests {
    use super::replace_section;

    #[test]
    fn a_section_is_added_then_replaced_in_place() {
        // Proves the generated section is appended once, then replaced in
        // place on the next run, keeping hand-written text around it.
        let first = replace_section("# Notes\n\nkept\n", "b", "run 1");
        assert!(first.starts_with("# Notes\n\nkept\n\n<!-- b: begin"));
        let edited = format!("{first}\ntail kept\n");
        let second = replace_section(&edited, "b", "run 2");
        assert!(second.contains("run 2") && !second.contains("run 1"));
        assert!(second.starts_with("# Notes\n\nkept\n"));
        assert!(second.ends_with("tail kept\n"));
        assert_eq!(
            replace_section("", "b", "x"),
            replace_section("  \n", "b", "x")
        );
    }
}
