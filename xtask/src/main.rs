//! `cargo xtask`: kms-eth's developer tasks (test, bench, localstack, chain, redis, lambda).
//! `main` only dispatches; the product's commands are handed to the `kms-eth` binary
//! unchanged.

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
mod flags;
mod lambda;
mod localstack;
mod product;
mod redis;
mod test;

use std::process::ExitCode;

use clap::Parser;

/// A mistake in what was asked for (a flag that does not apply): exit 2, like clap's own.
/// The product has its own (`kms_eth_core::UsageError`); the two never meet, since a product
/// command's exit code is the exec'd binary's, and sharing one would make xtask build core
/// (or core the harness), which it must not.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let flags = flags::Flags::parse();
    let result = match flags.command {
        flags::Cmd::Localstack { command } => localstack::run(command),
        flags::Cmd::Chain { command } => chain::run(command),
        flags::Cmd::Redis { command } => redis::run(command),
        flags::Cmd::Test(args) => test::run(args),
        flags::Cmd::Bench(args) => bench::run(args),
        flags::Cmd::Lambda { command } => lambda::run(command),
        flags::Cmd::Product(args) => product::run(&args),
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
