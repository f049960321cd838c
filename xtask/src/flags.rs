//! The command line: every subcommand and flag, with the help text users see.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// kms-eth: Ethereum accounts whose private key never leaves AWS KMS.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the embedded LocalStack (KMS, CloudFormation, IAM, STS on 127.0.0.1).
    Localstack {
        #[command(subcommand)]
        command: LocalstackCmd,
    },
    /// Run a local Ethereum node (anvil) for trying transactions out.
    Chain {
        #[command(subcommand)]
        command: ChainCmd,
    },
    /// The one test command: formatting, lints and every test, end-to-end ones included,
    /// with LocalStack and anvil installed and started as needed and stopped afterwards.
    Test(TestArgs),
}

#[derive(Debug, Subcommand)]
pub enum LocalstackCmd {
    /// Install (first time only) and start LocalStack in the background, or reuse the one
    /// already running; waits until kms, cloudformation, iam and sts are available.
    Up {
        /// Loopback port to serve on.
        #[arg(long, default_value_t = 4566)]
        port: u16,
        /// Seconds to wait for LocalStack to become healthy.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Run the official Docker image instead of the host install (needs a Docker engine).
        #[arg(long)]
        docker: bool,
    },
    /// Stop the LocalStack that `up` started (and nothing else).
    Down,
    /// Show whether LocalStack is running and the state of each service; exits 1 if not
    /// running.
    Status {
        /// Print the health document as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print LocalStack's log.
    Logs {
        /// Only the last N lines.
        #[arg(long, short = 'n')]
        lines: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChainCmd {
    /// Install anvil (first time only) and start it in the background on 127.0.0.1.
    Up {
        /// Port to serve on; a free one if left out.
        #[arg(long)]
        port: Option<u16>,
        /// Seconds to wait for the node to answer.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop the node that `up` started.
    Down,
    /// Show whether the node is running, its URL and chain id; exits 1 if not running.
    Status,
}

/// Where the end-to-end tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestTarget {
    /// The embedded LocalStack (no AWS account needed).
    Localstack,
    /// A real AWS account, chosen by the standard credential chain, --profile and --region.
    Aws,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Where the end-to-end tests create keys and stacks. `aws` must be asked for
    /// explicitly: credentials being present never sends tests to a real account.
    #[arg(long, value_enum, default_value_t = TestTarget::Localstack)]
    pub target: TestTarget,
    /// AWS profile for `--target aws`.
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region for `--target aws` (LocalStack uses us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Instead of testing, find keys and stacks that earlier test runs left behind on the
    /// target (by their test tag) and remove them: stacks are deleted, keys are scheduled
    /// for deletion with the minimum 7-day window.
    #[arg(long)]
    pub cleanup: bool,
    /// Skip `cargo fmt --check` and `cargo clippy` (quicker local iterations).
    #[arg(long)]
    pub no_lint: bool,
    /// Extra arguments for `cargo test`, after `--` (for example a test name filter).
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}
