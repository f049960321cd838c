//! The command line's flags: every subcommand and flag, with the help text users see. The
//! top level (`Cli`, `Cmd`, the target flags) is here; each command's flags are in the
//! module of its job, and every type is re-exported so that `flags::X` names it.

mod account;
mod controls;
mod fleet;
mod parse;
mod serve;
mod tx;

pub use account::{
    AccountArgs, AccountCmd, DeployArgs, DestroyArgs, FundsCheckArgs, ImportArgs, KeyArgs, KeyCmd,
    LambdaArgs, MigrateArgs, StatusArgs,
};
pub use controls::{TxCmd, TxTarget};
pub use fleet::{
    FleetApplyArgs, FleetCmd, FleetDestroyArgs, FleetPlanArgs, FleetStatusArgs, ManifestArgs,
};
pub use parse::RESERVED_TAG_PREFIX;
pub use serve::ServeArgs;
pub use tx::{
    flag_error, SendArgs, SignArgs, SignAuthorizationArgs, SignMessageArgs, SignTypedDataArgs,
    TxArgs, VerifyArgs,
};

use crate::target::TargetKind;
use clap::{Args, Parser, Subcommand};

/// kms-eth: Ethereum accounts whose private key never leaves AWS KMS.
///
/// Exit codes: 0 success; 1 failure (AWS or the node refused or could not be reached, a
/// signature did not verify, a transaction reverted); 2 bad usage (an invalid flag or
/// value, a key or stack that does not exist, a confirmation that could not be asked); 3 a
/// transaction was broadcast but its outcome is not known (check it before sending again).
#[derive(Debug, Parser)]
#[command(name = "kms-eth", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the result as JSON on stdout (the field names are the same in every command;
    /// progress and messages still go to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Show what happens underneath (each AWS call with its request id and latency); -vv
    /// for more. `RUST_LOG` works too.
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create or update the CloudFormation stack of one Ethereum account (KMS key, alias,
    /// signer role) and print its address. Re-running with the same flags changes nothing.
    Deploy(DeployArgs),
    /// Delete an account's stack. Shows first what happens to the key (kept, or scheduled
    /// for deletion) and asks for confirmation.
    Destroy(DestroyArgs),
    /// Show an account: key id, state, alias and EIP-55 address.
    Status(StatusArgs),
    /// Build and sign a transaction without sending it; prints the raw transaction and hash.
    Sign(SignArgs),
    /// Sign a transaction, filling in what is not given from the node, broadcast it and wait
    /// for its receipt.
    Send(SendArgs),
    /// Decode a signed raw transaction (or check an EIP-191 message signature) and recover
    /// the signer; exits 1 if the signature is invalid. Needs no AWS access.
    Verify(VerifyArgs),
    /// Sign a message the way `personal_sign` (EIP-191) does.
    SignMessage(SignMessageArgs),
    /// Sign an EIP-7702 authorization: the account's consent that its code be a delegate
    /// contract's. Prints it as JSON, as --authorization takes it.
    SignAuthorization(SignAuthorizationArgs),
    /// Sign EIP-712 typed data (the eth_signTypedData_v4 JSON: types, primaryType, domain,
    /// message); prints the 65-byte signature and the digest.
    SignTypedData(SignTypedDataArgs),
    /// A JSON-RPC signing service in front of a node: applications send
    /// eth_sendTransaction, eth_signTransaction, personal_sign, ... to it; it refuses what
    /// the policy does not allow before KMS is asked, signs with KMS, and passes every other
    /// method through to the node. /healthz, /readyz and /metrics (Prometheus) beside it.
    Serve(ServeArgs),
    /// Many accounts across AWS accounts and regions from one manifest (a TOML file of
    /// targets and the Ethereum accounts each holds): plan, apply, status, destroy.
    Fleet {
        #[command(subcommand)]
        command: FleetCmd,
    },
    /// An account's life beyond one key: `account migrate` moves its funds to another.
    Account {
        #[command(subcommand)]
        command: AccountCmd,
    },
    /// Inspect kms-eth keys and manage their deletion.
    Key {
        #[command(subcommand)]
        command: KeyCmd,
    },
    /// The transactions a running `kms-eth serve` sent: status, speed-up, cancel (asked of
    /// the service, which tracks them until they are mined).
    Tx {
        #[command(subcommand)]
        command: TxCmd,
    },
    /// The LocalStack that `--target localstack` started: where it is, and stopping it.
    Localstack {
        #[command(subcommand)]
        command: LocalstackCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocalstackCmd {
    /// Whether the LocalStack this program starts runs, its endpoint and pid; exit 1 if
    /// not running.
    Status,
    /// Stop the LocalStack that `--target localstack` started (by pid; nothing else).
    Down,
}

/// Where AWS calls go.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// `localstack` (the default) uses the embedded LocalStack, starting it if needed; `aws`
    /// uses a real account through the standard credential chain (environment, profiles, SSO).
    #[arg(long, value_enum, default_value_t = TargetKind::Localstack, global = true)]
    pub target: TargetKind,
    /// AWS named profile (with --target aws).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region (LocalStack: us-east-1 unless given).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Send AWS calls to this endpoint (AWS_ENDPOINT_URL is honoured too).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
}
