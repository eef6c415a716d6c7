//! `eddy`: the command-line interface of Eddy.
//!
//! Commands are laid out by resource, then verb (`eddy topic create`,
//! `eddy dlq redrive`, `eddy bench log`); each resource lives in its own
//! module under [`cli`]. The exit code of a failure says what kind it was
//! (`cli::exit_code`; the table is in `eddy --help` and in `cli`'s docs).

mod cli;
mod utc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of context: "open the log in x: …".
            eprintln!("error: {err:#}");
            ExitCode::from(cli::exit_code(&err))
        }
    }
}
