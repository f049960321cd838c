//! `cargo xtask`: the kms-eth command line. Parses flags, runs one subcommand, and maps the
//! outcome to an exit code: 0 success, 1 failure, 2 bad usage.

mod chain;
mod deploy;
mod destroy;
mod flags;
mod key;
mod localstack;
mod test;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use xtask::UsageError;

fn main() -> ExitCode {
    let flags = flags::Flags::parse();
    let result = match flags.command {
        flags::Cmd::Deploy(args) => deploy::run(args),
        flags::Cmd::Destroy(args) => destroy::run(args),
        flags::Cmd::Key { command } => key::run(command),
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
