//! The command line: `eddy <resource> <verb> [options]`.
//!
//! Each resource is a module with its own argument types and a `run`
//! function; this module only parses and dispatches. To add a command, add
//! its module, a variant of [`Command`] and its line in [`run`].
//!
//! Commands that talk to a server (`topic`, `publish`, `consume`, `read`,
//! `sub`, `dlq`, `stats`, `stream`) share the flags of [`connect::Remote`]:
//! `--server` (env `EDDY_SERVER`, default `127.0.0.1:7420`), `--token`
//! (env `EDDY_TOKEN`), `--tls-ca` / `--tls-server-name` for a server
//! speaking TLS, and `--json`. Their output is for people by default
//! and stable JSON with `--json` ([`json`]). Exit codes are in [`exit`]:
//!
//! | code | meaning                                                  |
//! |------|----------------------------------------------------------|
//! | 0    | success (also when there was nothing to consume or read) |
//! | 1    | unexpected or internal error                             |
//! | 2    | usage error                                              |
//! | 3    | not found (2001, 2003, 3001, 5002, 7002)                 |
//! | 4    | already exists or conflict (2002, 3002, 4001–4004, 5003, 7001, 7003) |
//! | 5    | bad input refused by the server (1xxx, 5001)             |
//! | 6    | not authenticated or permission denied (6001, 6002)      |
//! | 7    | server unavailable (cannot connect, 9004, 9005)          |
//! | 8    | server-side storage failure (9001–9003)                  |

mod bench;
mod connect;
mod consume;
pub(crate) mod demo;
mod dlq;
mod exit;
mod json;
mod log;
mod output;
mod parse;
mod publish;
mod read;
mod saga;
mod serve;
mod stats;
mod stream;
mod sub;
mod token;
mod topic;
mod trace;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use exit::exit_code;

/// Eddy: an event-driven platform — durable event bus, retries, dead
/// letters, sagas, event sourcing.
#[derive(Debug, Parser)]
#[command(
    name = "eddy",
    version,
    propagate_version = true,
    after_help = exit::EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a demonstration: `eddy demo shop`, the seed's e-commerce order
    /// flow with injected failures.
    Demo(demo::DemoArgs),
    /// Serve the broker on a folder over the native protocol and HTTP.
    Serve(serve::ServeArgs),
    /// Create access tokens for a server's config file.
    Token(token::TokenArgs),
    /// Create, list, describe and delete topics.
    Topic(topic::TopicArgs),
    /// Publish an event from arguments, or one per line of stdin.
    Publish(publish::PublishArgs),
    /// Consume a subscription: print deliveries and ack them.
    Consume(consume::ConsumeArgs),
    /// Read (replay) a topic from an offset or a time, without a
    /// subscription.
    Read(read::ReadArgs),
    /// Create, list, describe, seek and delete subscriptions.
    Sub(sub::SubArgs),
    /// List, show, redrive and purge a subscription's dead letters.
    Dlq(dlq::DlqArgs),
    /// Counters of topics and subscriptions: published, lag, in flight,
    /// dead letters.
    Stats(stats::StatsArgs),
    /// The sagas an orchestrator runs: list them, show one's history.
    Saga(saga::SagaArgs),
    /// The event store: append to and read streams (with expected
    /// versions), their settings, deletes, and the global feed `$all`.
    Stream(stream::StreamArgs),
    /// Draw one business transaction's flow (a correlation id) from the
    /// bus as a Mermaid sequence diagram.
    Trace(trace::TraceArgs),
    /// Work with a storage log directly: append, read, inspect.
    Log(log::LogArgs),
    /// Measure Eddy's performance on this machine.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Token(args) => token::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Read(args) => read::run(args),
        Command::Sub(args) => sub::run(args),
        Command::Dlq(args) => dlq::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Saga(args) => saga::run(args),
        Command::Stream(args) => stream::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Log(args) => log::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
