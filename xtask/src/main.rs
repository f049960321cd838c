//! `cargo xtask`: the kms-eth command line. Parses flags, runs one subcommand, and maps the
//! outcome to an exit code: 0 success, 1 failure, 2 bad usage.

/// `println!` for command output, except that a closed stdout (`cargo xtask ... | head`)
/// ends the program quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout(), $($arg)*) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod bench;
mod chain;
mod deploy;
mod destroy;
mod flags;
mod key;
mod localstack;
mod send;
mod sign;
mod sign_message;
mod status;
mod test;
mod txargs;
mod ui;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use xtask::UsageError;

fn main() -> ExitCode {
    let flags = flags::Flags::parse();
    let result = match flags.command {
        flags::Cmd::Deploy(args) => deploy::run(args),
        flags::Cmd::Destroy(args) => destroy::run(args),
        flags::Cmd::Key { command } => key::run(command),
        flags::Cmd::Status(args) => status::run(args),
        flags::Cmd::Sign(args) => sign::run(args),
        flags::Cmd::Send(args) => send::run(args),
        flags::Cmd::Verify(args) => verify::run(args),
        flags::Cmd::SignMessage(args) => sign_message::run(args),
        flags::Cmd::Localstack { command } => localstack::run(command),
        flags::Cmd::Chain { command } => chain::run(command),
        flags::Cmd::Test(args) => test::run(args),
        flags::Cmd::Bench(args) => bench::run(args),
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
