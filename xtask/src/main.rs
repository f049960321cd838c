//! `cargo xtask`: the kms-eth command line. Parses flags, runs one subcommand, and maps the
//! outcome to an exit code: 0 success, 1 failure, 2 bad usage.

mod chain;
mod flags;
mod localstack;
mod test;

use std::process::ExitCode;

use clap::Parser;
use xtask::UsageError;

fn main() -> ExitCode {
    let flags = flags::Flags::parse();
    let result = match flags.command {
        flags::Cmd::Localstack { command } => localstack::run(command),
        flags::Cmd::Chain { command } => chain::run(command),
        flags::Cmd::Test(args) => test::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.chain().any(|cause| cause.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
