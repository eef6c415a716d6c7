//! `eddy bench …`: performance measurements on this machine.
//!
//! The helpers here (raw-disk baseline, machine description, number
//! formatting, a scratch directory) are shared by every benchmark.

mod disk;
mod log;
mod machine;
mod units;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
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
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Log(args) => log::run(&args),
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
