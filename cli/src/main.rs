//! `kms-eth`: the command line. Parses flags, checks every input, builds one session,
//! runs one command, prints its report, and decides the exit code, once, from the report's
//! verdict or the error's type.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use kms_eth::commands::send::OutcomeUnknown;
use kms_eth::flags::{Cli, Cmd};
use kms_eth::output::{emit, Report};
use kms_eth::{msg, Session, UsageError};
use kms_eth_fleet::Verdict;
use kms_eth_provisioner::ProvisionError;
use kms_eth_signer::{KmsError, KmsErrorKind};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            msg::error(&err);
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Runs the command; the exit code its report asks for (0 for most).
async fn run(cli: Cli) -> Result<u8> {
    let json = cli.json;
    // Every input is checked before LocalStack is started or anything is called.
    match &cli.command {
        Cmd::Deploy(args) => args.check(&cli.target)?,
        Cmd::Destroy(args) => kms_eth::commands::destroy::check(args)?,
        Cmd::Status(args) => args.check()?,
        Cmd::Sign(args) => drop(args.transaction()?),
        Cmd::SignAuthorization(args) => args.check()?,
        Cmd::Send(args) => args.check()?,
        Cmd::SignMessage(args) => args.check()?,
        Cmd::Serve(args) => args.check()?,
        Cmd::SignTypedData(args) => drop(args.request()?),
        Cmd::Key { command } => command.check()?,
        Cmd::Account {
            command: kms_eth::flags::AccountCmd::Migrate(args),
        } => args.check()?,
        Cmd::Fleet { command } => command.check(json)?,
        Cmd::Tx { command } => command.check()?,
        Cmd::Verify(_) | Cmd::Localstack { .. } => {}
    }
    // One session, built only by the commands that call AWS: `verify` and `localstack`
    // never start LocalStack. An address of a LocalStack key looks like any other, so
    // every command that shows one says where it comes from.
    let session = || async {
        let session = Session::connect(&cli.target).await?;
        if session.target.is_localstack() {
            msg::note(
                "LocalStack target: every address shown is a local test key, whose private key \
                 LocalStack keeps unprotected in its files; never send real funds to it",
            );
        }
        anyhow::Ok(session)
    };
    match cli.command {
        Cmd::Verify(args) => print(args.run()?, json),
        Cmd::Tx { command } => print(command.run().await?, json),
        Cmd::Localstack { command } => print(
            tokio::task::spawn_blocking(move || command.run()).await??,
            json,
        ),
        Cmd::Deploy(args) => print(args.run(&session().await?).await?, json),
        Cmd::Destroy(args) => print(args.run(&session().await?).await?, json),
        Cmd::Status(args) => print(args.run(&session().await?).await?, json),
        Cmd::Sign(args) => print(args.run(&session().await?).await?, json),
        Cmd::Send(args) => print(args.run(&session().await?).await?, json),
        Cmd::SignMessage(args) => print(args.run(&session().await?).await?, json),
        Cmd::Serve(args) => print(args.run(&session().await?).await?, json),
        Cmd::SignTypedData(args) => print(args.run(&session().await?).await?, json),
        Cmd::SignAuthorization(args) => print(args.run(&session().await?).await?, json),
        Cmd::Key { command } => print(command.run(&session().await?).await?, json),
        Cmd::Account {
            command: kms_eth::flags::AccountCmd::Migrate(args),
        } => print(args.run(&session().await?).await?, json),
        Cmd::Fleet { command } => print(command.run(&session().await?).await?, json),
    }
}

fn print(report: impl Report, json: bool) -> Result<u8> {
    emit(&report, json)?;
    Ok(verdict_code(report.verdict()))
}

/// The exit codes, the one table (README lists them). A report that was printed:
/// - 0, clean: nothing is left to do or to look at;
/// - 4, changes pending (`fleet plan`): apply would create or update stacks;
/// - 5, needs attention (`fleet plan`, `apply`, `status`): drift or a refused stack, which a
///   person must look at, and nothing failed;
/// - 1, failed (the fleet commands): a stack or target could not be read, applied or
///   deleted.
fn verdict_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Clean => 0,
        Verdict::ChangesPending => 4,
        Verdict::NeedsAttention => 5,
        Verdict::Failed => 1,
    }
}

/// The rest of the table, for a command that ended in an error:
/// - 3, outcome unknown: a transaction was broadcast (or may have been) and what became of
///   it is not known; sending again could pay twice, so scripts must tell this apart;
/// - 2, bad usage: an invalid flag or value, a missing confirmation, and a key or stack that
///   does not exist (the same class of mistake: the name given is wrong);
/// - 1, failure: everything else, an unreachable endpoint included (nothing the user typed
///   is wrong; running it again may work).
fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<OutcomeUnknown>() {
            return 3;
        }
        if cause.is::<UsageError>() {
            return 2;
        }
        if let Some(err) = cause.downcast_ref::<ProvisionError>() {
            match err {
                ProvisionError::Spec(_) | ProvisionError::StackNotFound { .. } => return 2,
                _ => return 1,
            }
        }
        if let Some(err) = cause.downcast_ref::<KmsError>() {
            if matches!(err.kind(), KmsErrorKind::KeyNotFound) {
                return 2;
            }
        }
    }
    1
}

/// What a user debugging a failure sees: nothing extra by default, each AWS and node call
/// with `-v`, everything with `-vv`; `RUST_LOG` (`target=level,...`) overrides both.
/// `Targets` rather than `EnvFilter`: the same syntax for what users write, without the
/// regex engine in the build.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let ours = "warn,kms_eth=debug,kms_eth_signer=debug,kms_eth_provisioner=debug,\
                kms_eth_node=debug,kms_eth_service=debug,kms_eth_fleet=debug";
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| {
            text.parse::<Targets>()
                .inspect_err(|err| msg::warn(format!("RUST_LOG={text:?} ignored: {err}")))
                .ok()
        })
        .unwrap_or_else(|| {
            let default = match verbose {
                0 => "warn",
                1 => ours,
                _ => "debug",
            };
            default.parse().unwrap_or_default()
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .with(filter)
        .init();
}
