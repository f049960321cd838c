//! The command line: every subcommand and flag, with the help text users see.

use clap::{Args, Parser, Subcommand};
use kms_eth_provisioner::RemovalPolicy;
use xtask::target::TargetKind;

/// kms-eth: Ethereum accounts whose private key never leaves AWS KMS.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Cmd,
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
    /// the signer; exits 1 if the signature is invalid.
    Verify(VerifyArgs),
    /// Sign a message the way `personal_sign` (EIP-191) does.
    SignMessage(SignMessageArgs),
    /// Inspect kms-eth keys and manage their deletion.
    Key {
        #[command(subcommand)]
        command: KeyCmd,
    },
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
    /// Every benchmark in one run, against the embedded LocalStack (started if needed and
    /// stopped afterwards): signing throughput of kms-eth beside a raw SDK loop and alloy's
    /// AWS signer, local overhead per signature, KMS calls per signer, deploy and destroy
    /// latency. Prints a table and writes it as JSON under the cargo target folder; exits 1
    /// if one signer's KMS calls are not exactly 1 GetPublicKey + 1 Sign per signature.
    Bench(BenchArgs),
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

/// Where AWS calls go.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// `localstack` (the default) uses the embedded LocalStack, starting it if needed; `aws`
    /// uses a real account through the standard credential chain (environment, profiles, SSO).
    #[arg(long, value_enum, default_value_t = TargetKind::Localstack)]
    pub target: TargetKind,
    /// AWS named profile (with --target aws).
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region (LocalStack: us-east-1 unless given).
    #[arg(long)]
    pub region: Option<String>,
    /// Send AWS calls to this endpoint (AWS_ENDPOINT_URL is honoured too).
    #[arg(long)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The CloudFormation stack name (letters, digits, hyphens; starts with a letter).
    #[arg(long, default_value = "kms-eth-account")]
    pub stack_name: String,
    /// What happens to the key when the stack is deleted: `retain` keeps it (and its address
    /// and funds), `destroy` schedules its deletion after the pending window.
    #[arg(long, default_value = "retain", value_parser = parse_removal_policy)]
    pub removal_policy: RemovalPolicy,
    /// Days between scheduling the key's deletion and the deletion itself (7-30); the
    /// deletion can be cancelled until then.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(7..=30))]
    pub pending_window_days: u8,
    /// The key's alias (default alias/<stack name>).
    #[arg(long)]
    pub alias: Option<String>,
    /// The AWS principal ARN allowed to assume the signer role (default: this account).
    #[arg(long)]
    pub signer_principal: Option<String>,
    /// A stack tag KEY=VALUE (repeatable); CloudFormation copies it to the key and role.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Allow a change that replaces or removes the KMS key. A new key is a new address:
    /// funds at the old address stay with the old key.
    #[arg(long)]
    pub allow_key_replacement: bool,
    /// Answer yes to every confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the result as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The stack to delete.
    #[arg(long, default_value = "kms-eth-account")]
    pub stack_name: String,
    /// An Ethereum JSON-RPC URL: if given and the key is to be destroyed, its address's
    /// balance is checked first, and a non-zero balance stops the destroy (see --force).
    #[arg(long)]
    pub rpc_url: Option<String>,
    /// Destroy even though the address holds a balance.
    #[arg(long)]
    pub force: bool,
    /// Answer yes to the confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// List the kms-eth keys in the account and region: state, alias, address, stack.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Cancel a key's scheduled deletion and enable it again, so its account can sign.
    CancelDeletion {
        /// Key id, alias/... or key ARN.
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Schedule a (retained) key's deletion after a pending window.
    ScheduleDeletion {
        /// Key id, alias/... or key ARN.
        key: String,
        /// Days until the deletion (7-30); it can be cancelled until then.
        #[arg(long, value_parser = clap::value_parser!(u8).range(7..=30))]
        days: u8,
        /// Answer yes to the confirmation (needed without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Which account, and optionally which address it must be.
#[derive(Debug, Clone, Args)]
pub struct AccountArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Refuse unless the key is this account (an address, for example 0xAbC...): catches an
    /// alias that was pointed at another key, before anything is signed.
    #[arg(long, value_parser = parse_address)]
    pub expect_address: Option<kms_eth_signer::Address>,
}

/// Which key: a key, or the key of a kms-eth stack.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
    /// The account's KMS key: key id, alias/... or key ARN.
    #[arg(long)]
    pub key_id: Option<String>,
    /// The kms-eth stack whose key is the account.
    #[arg(long)]
    pub stack_name: Option<String>,
}

fn parse_address(text: &str) -> Result<kms_eth_signer::Address, String> {
    text.parse().map_err(|err| format!("{err}"))
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// Answer an event of the original design, '{"operation":"status"}', in its shape.
    #[arg(long)]
    pub event: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// The fields of a transaction. Amounts take units: 0.01ether, 5gwei, or plain wei.
#[derive(Debug, Clone, Default, Args)]
pub struct TxArgs {
    /// Transaction type: legacy (EIP-155), 2930 or 1559.
    #[arg(long = "type", default_value = "1559")]
    pub tx_type: String,
    /// Recipient (EIP-55 checksummed, or all lower/upper case); leave out to create a contract.
    #[arg(long)]
    pub to: Option<String>,
    /// Amount to send, for example 0.01ether, 5gwei or 1000 (wei).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub value: String,
    /// The sender's transaction count.
    #[arg(long, allow_hyphen_values = true)]
    pub nonce: Option<String>,
    /// The chain id (1 mainnet, 11155111 Sepolia, 31337 anvil, ...).
    // Negative numbers are parsed (and refused) by kms-eth, with a message naming the flag.
    #[arg(long, allow_hyphen_values = true)]
    pub chain_id: Option<String>,
    /// Gas limit.
    #[arg(long, allow_hyphen_values = true)]
    pub gas_limit: Option<String>,
    /// EIP-1559 most paid per gas (for example 30gwei).
    #[arg(long, allow_hyphen_values = true)]
    pub max_fee_per_gas: Option<String>,
    /// EIP-1559 tip per gas (for example 1gwei).
    #[arg(long, allow_hyphen_values = true)]
    pub max_priority_fee_per_gas: Option<String>,
    /// Gas price for legacy and 2930 transactions (for example 20gwei).
    #[arg(long, allow_hyphen_values = true)]
    pub gas_price: Option<String>,
    /// Call data, 0x-prefixed hex.
    #[arg(long)]
    pub data: Option<String>,
    /// Access list as JSON: [{"address":"0x...","storageKeys":["0x..."]}].
    #[arg(long)]
    pub access_list: Option<String>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    #[command(flatten)]
    pub tx: TxArgs,
    /// Sign an event of the original design instead of flags:
    /// '{"operation":"sign","amount":0.01,"dst_address":"0x...","nonce":0,"chain_id":1}'
    /// (amount in ether; optional type, gas, max_fee_per_gas, max_priority_fee_per_gas,
    /// gas_price, data).
    #[arg(long, conflicts_with = "event_file")]
    pub event: Option<String>,
    /// Read the event JSON from a file.
    #[arg(long)]
    pub event_file: Option<std::path::PathBuf>,
    /// Print every field as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    #[command(flatten)]
    pub tx: TxArgs,
    /// The node's JSON-RPC URL.
    #[arg(long)]
    pub rpc_url: String,
    /// Seconds to wait for the receipt.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signed raw transaction (0x hex), or with --message the message that was signed.
    pub input: String,
    /// Check an EIP-191 message signature instead: INPUT is the message (text, or 0x hex).
    #[arg(long, requires = "signature")]
    pub message: bool,
    /// The 65-byte r||s||v signature (0x hex), with --message.
    #[arg(long)]
    pub signature: Option<String>,
    /// The address the signature must recover to; exits 1 if it does not.
    #[arg(long)]
    pub address: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SignMessageArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// The message: text, or 0x-prefixed hex for raw bytes.
    pub message: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn parse_removal_policy(value: &str) -> Result<RemovalPolicy, String> {
    value
        .parse()
        .map_err(|e: kms_eth_provisioner::SpecError| e.to_string())
}

fn parse_tag(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
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
    /// target (by their test tag) and remove them: stacks are deleted, keys are scheduled
    /// for deletion with the minimum 7-day window.
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
    /// Signatures per variant, per concurrency, per round (the published figures use at
    /// least 1000).
    #[arg(short = 'n', long = "signatures", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..))]
    pub signatures: u64,
    /// Alternating rounds of the three signing variants (the order rotates each round).
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
}

impl BenchArgs {
    /// The arguments with `--quick` applied.
    pub fn effective(mut self) -> Self {
        if self.quick {
            self.signatures = self.signatures.min(200);
            self.rounds = self.rounds.min(2);
            self.stack_rounds = self.stack_rounds.min(2);
        }
        self
    }
}
