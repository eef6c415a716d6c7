//! The command line: `eddy <resource> <verb> [options]`.
//!
//! Each resource is a module with its own argument types and a `run`
//! function; this module only parses and dispatches.

mod bench;
mod log;
mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Eddy: an event-driven platform — durable event bus, retries, dead
/// letters, sagas, event sourcing.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the broker on a folder over the native protocol.
    Serve(serve::ServeArgs),
    /// Work with a storage log directly: append, read, inspect.
    Log(log::LogArgs),
    /// Measure Eddy's performance on this machine.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Log(args) => log::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
