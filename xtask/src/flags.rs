//! The developer tasks' flags. The product's commands are not parsed here: any command that
//! is not a task is handed to the `kms-eth` binary unchanged, whose own flags are the only
//! list of them.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Developer tasks of kms-eth: tests, benchmarks, LocalStack, a local Ethereum node and the
/// signing Lambda.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    version,
    about,
    long_about,
    after_help = "Every other command is the product's: `cargo xtask deploy ...` builds the \
                  kms-eth binary and runs `kms-eth deploy ...` (`cargo xtask deploy --help` is \
                  deploy's help; `cargo kms-eth --help` lists the commands). `localstack` is the \
                  task above, which does what `kms-eth localstack` does and more."
)]
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
    /// Run a Redis-protocol server (Valkey, as the tests do) for `kms-eth serve`'s shared
    /// state, tried by hand.
    Redis {
        #[command(subcommand)]
        command: RedisCmd,
    },
    /// The one test command: formatting, lints and every test, end-to-end ones included,
    /// with LocalStack and anvil installed and started as needed and stopped afterwards.
    Test(TestArgs),
    /// Every benchmark in one run, against the embedded LocalStack (started if needed and
    /// stopped afterwards): signing throughput of kms-eth beside a raw SDK loop and alloy's
    /// AWS signer, local overhead per signature, KMS calls per signer, deploy and destroy
    /// latency. Prints a table and writes it as JSON under the cargo target folder; exits 1
    /// if one signer's KMS calls are not exactly 1 GetPublicKey + 1 Sign per signature.
    Bench(BenchArgs),
    /// The signing Lambda of the original design: build its deployable zip, or invoke the
    /// real handler locally under cargo-lambda's emulator (installed on first use).
    Lambda {
        #[command(subcommand)]
        command: LambdaCmd,
    },
    /// Any other command: a product command, built and run as `kms-eth <command> ...`,
    /// whose command line refuses what it does not know.
    #[command(external_subcommand)]
    Product(Vec<OsString>),
}

/// Which kind of target the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// The embedded LocalStack (started if it is not running; no AWS account needed).
    Localstack,
    /// A real AWS account, through the standard credential chain, --profile and --region.
    Aws,
}

#[derive(Debug, Subcommand)]
pub enum LocalstackCmd {
    /// Install (first time only) and start LocalStack in the background, or reuse the one
    /// already running; waits until kms, cloudformation, iam and sts are available.
    Up {
        /// Loopback port to serve on (default 4566). A LocalStack already running on
        /// another port, or an AWS_ENDPOINT_URL naming another, is then an error rather than
        /// reused.
        #[arg(long)]
        port: Option<u16>,
        /// Seconds to wait for LocalStack to become healthy.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Run LocalStack's Community image (localstack/localstack:4.5) in Docker instead of
        /// the host install, published on 127.0.0.1 only. Needs a running Docker engine;
        /// exits 2 without one.
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

#[derive(Debug, Subcommand)]
pub enum RedisCmd {
    /// Install Valkey (first time only) and start it in the background on 127.0.0.1; prints
    /// its URL (`redis://127.0.0.1:PORT/0`).
    Up {
        /// Port to serve on; a free one if left out.
        #[arg(long)]
        port: Option<u16>,
        /// A file whose first line becomes the server's password (`requirepass`).
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
        /// Keep the data in an append-only file, fsynced on every write.
        #[arg(long)]
        append_only: bool,
    },
    /// Stop the server that `up` started and remove its data.
    Down,
    /// Show whether the server is running and answers; exits 1 if not.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum LambdaCmd {
    /// Build the function's deployable zip in release mode with cargo-lambda
    /// (target/lambda/<arch>/kms-eth-lambda/bootstrap.zip) and print its path and size.
    Build {
        /// Build for arm64 (Graviton) instead of x86_64; needs the aarch64 standard library
        /// (`rustup target add aarch64-unknown-linux-gnu`).
        #[arg(long)]
        arm64: bool,
    },
    /// Run the real handler under cargo-lambda's local Lambda emulator against the target's
    /// KMS, invoke it with one event, and print its answer (exit 1 if it is an error object).
    Invoke(LambdaInvokeArgs),
}

#[derive(Debug, Args)]
pub struct LambdaInvokeArgs {
    /// The function's key (KMS_KEY_ID): key id, alias/... or key ARN.
    #[arg(
        long,
        required_unless_present = "stack_name",
        conflicts_with = "stack_name"
    )]
    pub key_id: Option<String>,
    /// The kms-eth stack whose key the function signs with.
    #[arg(long)]
    pub stack_name: Option<String>,
    /// The event, as the function receives it: '{"operation":"status"}' or
    /// '{"operation":"sign","amount":0.01,"dst_address":"0x...","nonce":0,"chain_id":1}'.
    #[arg(long)]
    pub event: String,
    /// A policy file (TOML) for the function (KMS_ETH_POLICY).
    #[arg(
        long,
        required_unless_present = "unrestricted",
        conflicts_with = "unrestricted"
    )]
    pub policy: Option<std::path::PathBuf>,
    /// Run the function without a policy (KMS_ETH_UNRESTRICTED=true): it signs anything.
    #[arg(long)]
    pub unrestricted: bool,
    /// `localstack` (the default) or `aws` (the standard credential chain).
    #[arg(long, value_enum, default_value_t = TargetKind::Localstack)]
    pub target: TargetKind,
    /// AWS profile, with --target aws.
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region, with --target aws.
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Where the end-to-end tests create keys and stacks. `aws` must be asked for
    /// explicitly: credentials being present never sends tests to a real account.
    #[arg(long, value_enum, default_value_t = TargetKind::Localstack)]
    pub target: TargetKind,
    /// AWS profile for `--target aws`.
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region for `--target aws` (LocalStack uses us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Instead of testing, find keys and stacks that earlier test runs left behind on the
    /// target (the test tag AND a test's name of the same run; a tag alone is not enough),
    /// list every one with its key and address, and once confirmed remove them: stacks are
    /// deleted, keys are scheduled for deletion with the minimum 7-day window.
    #[arg(long)]
    pub cleanup: bool,
    /// With --cleanup: confirm without asking (needed without a terminal).
    #[arg(long, short = 'y', requires = "cleanup")]
    pub yes: bool,
    /// Skip `cargo fmt --check` and `cargo clippy` (quicker local iterations).
    #[arg(long)]
    pub no_lint: bool,
    /// Extra arguments for `cargo test`, after `--` (for example a test name filter).
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Signatures per variant, per concurrency, per round. 3000 (about 8.5 s per variant and
    /// round at concurrency 1) is what keeps the rounds' ratios within 5 % of each other on
    /// a shared two-core machine; 1000 left them 4-18 % apart.
    #[arg(short = 'n', long = "signatures", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(2..))]
    pub signatures: u64,
    /// Rounds, in each of which the signing variants take turns slice by slice (the order
    /// rotates from slice to slice and from round to round).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Concurrencies (signatures in flight at once) to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: Vec<u64>,
    /// Rounds of deploy/destroy, each with one CLI stack and one raw CloudFormation stack.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub stack_rounds: u64,
    /// A smoke run to check that everything works (200 signatures, 2 rounds, 2 stack
    /// rounds, criterion's quick mode); its figures are not for publishing.
    #[arg(long)]
    pub quick: bool,
    /// Skip the criterion benchmark of the local overhead.
    #[arg(long)]
    pub no_local: bool,
    /// Loopback port for LocalStack if this run has to start it.
    #[arg(long, default_value_t = 4566)]
    pub port: u16,
    /// Run one benchmark alone, without the criterion one: `sends` (one account's
    /// eth_sendTransaction against the same service's eth_signTransaction, the node 20 ms
    /// away behind a delay proxy) or `replicas` (the same sends through three kms-eth serve
    /// on one Valkey store against one service without a store); every send checked mined
    /// in nonce order afterwards.
    #[arg(long, value_parser = ["sends", "replicas"])]
    pub only: Option<String>,
    /// Requests per variant, per concurrency, per round of the sends and replicas
    /// benchmarks (each send is a transaction mined on anvil).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(2..))]
    pub sends: u64,
}

impl BenchArgs {
    /// The arguments with `--quick` applied.
    pub fn effective(mut self) -> Self {
        if self.quick {
            self.signatures = self.signatures.min(200);
            self.rounds = self.rounds.min(2);
            self.stack_rounds = self.stack_rounds.min(2);
            self.sends = self.sends.min(50);
        }
        self
    }
}
