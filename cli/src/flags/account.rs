//! The flags of one account's stack and key: `deploy` (with the signing Lambda's),
//! `destroy` and its funds check, `status`, `key ...`, and which account a command uses.

use clap::{Args, Subcommand};
use kms_eth_core::txinputs::parse_address;
use kms_eth_provisioner::{FunctionArch, RemovalPolicy};
use kms_eth_signer::Address;

use super::parse::{
    checked, parse_lambda_arch, parse_removal_policy, parse_signer_principal, parse_tag,
};

/// A redeploy keeps the stack's current value of every flag left out; a new stack takes the
/// defaults named below.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The CloudFormation stack name (letters, digits, hyphens; starts with a letter).
    #[arg(long, default_value = "kms-eth-account")]
    pub stack_name: String,
    /// What happens to the key when the stack is deleted: `retain` keeps it (and its address
    /// and funds), `destroy` schedules its deletion after the pending window. New stacks:
    /// retain. Changing it on an existing stack needs confirmation (or --yes).
    #[arg(long, value_parser = parse_removal_policy)]
    pub removal_policy: Option<RemovalPolicy>,
    /// Days between scheduling the key's deletion and the deletion itself (7-30); the
    /// deletion can be cancelled until then. New stacks: 30.
    #[arg(long, value_parser = clap::value_parser!(u8).range(7..=30))]
    pub pending_window_days: Option<u8>,
    /// The key's alias. New stacks: alias/<stack name>.
    #[arg(long)]
    pub alias: Option<String>,
    /// A principal allowed to assume the signer role, the only one that may sign (repeatable):
    /// an IAM ARN (arn:aws:iam::ACCOUNT:role/NAME, :user/NAME or :root) or a 12-digit
    /// account id. New stacks: the identity running the deploy (a role session counts as its
    /// role; give a role with a path here, since the session's ARN does not show the path).
    /// Changing them on an existing stack needs confirmation (or --yes).
    #[arg(long = "signer-principal", value_parser = parse_signer_principal)]
    pub signer_principals: Vec<String>,
    /// A stack tag KEY=VALUE (repeatable); CloudFormation copies it to the key and role.
    /// Given tags replace the stack's tags; without any, a redeploy keeps them.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Make the key multi-Region and replicate it into this Region (repeatable), with the
    /// KMS API after the stack: each replica with the key's policy, tags and alias, and the
    /// same address. Added to the stack's Regions (a redeploy keeps them and never removes a
    /// replica); a replica already there is checked, not made again. Only a new stack's key
    /// can be made multi-Region (on an existing one it is a key replacement). LocalStack's
    /// CloudFormation ignores MultiRegion: there the deploy stops after the stack, saying so.
    #[arg(long = "replica-region", value_name = "REGION")]
    pub replica_regions: Vec<String>,
    /// Allow a change that replaces or removes the KMS key. A new key is a new address:
    /// funds at the old address stay with the old key.
    #[arg(long)]
    pub allow_key_replacement: bool,
    /// Answer yes to every confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The function's configuration, with --with-lambda.
    #[command(flatten)]
    pub lambda: LambdaArgs,
}

/// The signing Lambda that `deploy --with-lambda` adds to the account's stack.
#[derive(Debug, Clone, Args)]
pub struct LambdaArgs {
    /// Add the signing Lambda (the original design's function, `lambda/`) to the stack: its
    /// code is uploaded to the account and region's asset bucket (kms-eth-assets-ACCOUNT-REGION,
    /// made on first use), its role may only read the public key and sign with this key.
    /// A stack deployed with it and redeployed without it loses it (after confirmation).
    /// LocalStack runs Lambda functions only in Docker: without a Docker engine this is refused.
    #[arg(long)]
    pub with_lambda: bool,
    /// The function's deployable zip, built by `cargo xtask lambda build` (`cargo xtask
    /// deploy --with-lambda` builds it and passes it here).
    #[arg(long, value_name = "PATH", requires = "with_lambda")]
    pub lambda_zip: Option<std::path::PathBuf>,
    /// The architecture the zip was built for: x86_64 (the default) or arm64.
    #[arg(long, value_name = "ARCH", requires = "with_lambda", value_parser = parse_lambda_arch)]
    pub lambda_arch: Option<FunctionArch>,
    /// What the function may sign: a policy file (TOML, the format of `serve --policy`; the
    /// rules that need shared state or a node, max_cost_per_24h, a token's max_amount_per_24h,
    /// requests_per_minute and simulate, are refused).
    #[arg(
        long,
        value_name = "FILE",
        requires = "with_lambda",
        conflicts_with = "lambda_unrestricted"
    )]
    pub lambda_policy: Option<std::path::PathBuf>,
    /// Let the function sign whatever it is asked to (instead of --lambda-policy).
    #[arg(long, requires = "with_lambda")]
    pub lambda_unrestricted: bool,
    /// Require Lambda code signing: only code signed by this AWS Signer profile version
    /// (arn:aws:signer:REGION:ACCOUNT:/signing-profiles/NAME/VERSION) deploys. Give the signed
    /// zip (the signing job's output) as --lambda-zip. Real AWS only: LocalStack does not check
    /// signatures.
    #[arg(long, value_name = "ARN", requires = "with_lambda")]
    pub lambda_signing_profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The stack to delete.
    #[arg(long, default_value = "kms-eth-account")]
    pub stack_name: String,
    /// What is checked at the key's address before it is scheduled for deletion (with
    /// removal policy DESTROY; a RETAIN stack keeps its key and needs neither flag).
    #[command(flatten)]
    pub funds: FundsCheckArgs,
    /// Answer yes to the confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Where the funds at a key's address are looked for before the key's deletion is
/// scheduled: one of `--rpc-url` and `--skip-balance-check` is required.
#[derive(Debug, Clone, Args)]
pub struct FundsCheckArgs {
    /// An Ethereum JSON-RPC URL of a chain where the address may hold funds (repeatable:
    /// one per chain). Each node's chain id is shown; the address's native balance and
    /// nonce are read on each, and a balance above 0, or a nonce above 0 (the address has
    /// sent transactions, so it is in use), stops the deletion unless --force. A node that
    /// does not answer is an error. Tokens, and chains not given, are not checked.
    /// Each node comes with the chain id it must answer, `CHAIN_ID=URL` (for example
    /// `1=https://...`), or with --chain-id when it is the only one: a node on another chain
    /// would report another chain's balance.
    #[arg(long = "rpc-url", value_name = "[CHAIN_ID=]URL")]
    pub rpc_urls: Vec<String>,
    /// The chain id the one --rpc-url must answer (instead of CHAIN_ID=URL).
    #[arg(long, value_name = "ID", requires = "rpc_urls")]
    pub chain_id: Option<u64>,
    /// Schedule the deletion without looking at any chain: whatever the address holds,
    /// on any chain, is lost once the key is deleted.
    #[arg(long, conflicts_with = "rpc_urls")]
    pub skip_balance_check: bool,
    /// Go on although the address holds a balance or has sent transactions (destroy: or
    /// its address cannot be read).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// List the kms-eth keys in the account and region: state, alias, address, stack.
    List,
    /// Bring an existing private key into KMS, keeping its address: a new key with origin
    /// EXTERNAL, the key wrapped and imported, then the address KMS derives compared with the
    /// expected one (another address: the key is disabled and scheduled for deletion, and
    /// the command fails). A copy of the key existed outside KMS: see README.
    Import(ImportArgs),
    /// Replicate a multi-Region key (its key id is `mrk-...`) into other Regions, each
    /// replica with the primary's key policy, description, tags and aliases: the same
    /// address there, for `sign --failover-region`.
    Replicate {
        /// The primary key: key id, alias/... or key ARN, in the command's Region.
        key: String,
        /// A Region to replicate it to (repeatable).
        #[arg(long = "to-region", value_name = "REGION", required = true)]
        regions: Vec<String>,
    },
    /// Cancel a kms-eth key's scheduled deletion. KMS leaves the key Disabled (its address
    /// cannot sign) unless --enable is given. Keys without kms-eth's account tag are
    /// refused.
    CancelDeletion {
        /// Key id, alias/... or key ARN.
        key: String,
        /// Enable the key too, so that its address can sign again.
        #[arg(long)]
        enable: bool,
    },
    /// Schedule a (retained) kms-eth key's deletion after a pending window, once the funds
    /// at its address are checked (--rpc-url) or the check is explicitly skipped
    /// (--skip-balance-check).
    ScheduleDeletion {
        /// Key id, alias/... or key ARN.
        key: String,
        /// Days until the deletion (7-30); it can be cancelled until then.
        #[arg(long, value_parser = clap::value_parser!(u8).range(7..=30))]
        days: u8,
        #[command(flatten)]
        funds: FundsCheckArgs,
        /// Answer yes to the confirmation (needed without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Which account, and optionally which address it must be.
#[derive(Debug, Clone, Args)]
pub struct AccountArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Refuse unless the key is this account (an address, for example 0xAbC...): catches an
    /// alias that was pointed at another key, before anything is signed.
    #[arg(long, value_parser = checked(parse_address))]
    pub expect_address: Option<Address>,
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

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// Answer an event of the original design, '{"operation":"status"}', in its shape.
    #[arg(long)]
    pub event: Option<String>,
}

/// `key import`: where the key comes from, and the KMS key it goes into.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("source")
        .required(true)
        .args(["keystore", "private_key_stdin"])
))]
pub struct ImportArgs {
    /// A Web3 Secret Storage keystore (the JSON file geth, clef, cast and ethers write;
    /// scrypt or pbkdf2). Its password is asked on the terminal, or read from
    /// --password-file.
    #[arg(long, value_name = "FILE")]
    pub keystore: Option<std::path::PathBuf>,
    /// The keystore's password: the first line of FILE (its line ending is not part of it).
    #[arg(long, value_name = "FILE", requires = "keystore")]
    pub password_file: Option<std::path::PathBuf>,
    /// Read the private key from standard input instead: 32 bytes of hex, or a PEM private
    /// key (PKCS#8 or SEC1) on secp256k1.
    #[arg(long)]
    pub private_key_stdin: bool,
    /// The new key's alias, alias/NAME; NAME is the account's name in `key list`. Refused
    /// when the alias exists.
    #[arg(long)]
    pub alias: String,
    /// Refuse unless the key is this address (checked before anything is created).
    #[arg(long, value_parser = checked(parse_address))]
    pub expect_address: Option<Address>,
    /// When the imported material expires (RFC 3339, e.g. 2027-01-31T00:00:00Z): KMS then
    /// deletes it and the key cannot sign until the same key is imported again. Without
    /// it, the material does not expire.
    #[arg(long, value_name = "TIME")]
    pub valid_to: Option<String>,
    /// The key's description.
    #[arg(long, default_value = "kms-eth Ethereum account (imported key)")]
    pub description: String,
    /// A tag KEY=VALUE for the key (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Rotate an account: move everything account A holds on one chain (the listed ERC-20
    /// tokens, then the native coin minus the exact fee of its own transfer, leaving 0 wei)
    /// to account B, waiting for each receipt; with --retire, then schedule A's key for
    /// deletion once A is seen to hold nothing. Re-run after a crash: it finishes what is
    /// in flight and moves only what is left.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Account A's key (key id, alias/... or ARN), signed with the caller's credentials.
    #[arg(long)]
    pub from_key: Option<String>,
    /// Account A's stack (its signer role signs).
    #[arg(long)]
    pub from_stack: Option<String>,
    /// Account B's key.
    #[arg(long)]
    pub to_key: Option<String>,
    /// Account B's stack.
    #[arg(long)]
    pub to_stack: Option<String>,
    /// The node of the chain to migrate on.
    #[arg(long, value_name = "URL")]
    pub rpc_url: String,
    /// The chain id the node must be on.
    #[arg(long)]
    pub chain_id: u64,
    /// An ERC-20 token to move (repeatable); moved before the native coin. Tokens not
    /// listed stay at A, and --retire cannot see them.
    #[arg(long = "token", value_parser = checked(parse_address))]
    pub tokens: Vec<Address>,
    /// The most paid per gas (the sweep pays twice the base fee plus the tip).
    #[arg(long, default_value = kms_eth_core::fees::DEFAULT_FEE_CAP, value_parser = checked(kms_eth_core::txinputs::parse_wei))]
    pub fee_cap: kms_eth_signer::U256,
    /// Seconds to wait for each receipt.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Then schedule A's key for deletion, refused while A holds the native coin or a
    /// listed token.
    #[arg(long)]
    pub retire: bool,
    /// Days until the retired key's deletion (7-30); it can be cancelled until then.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(7..=30))]
    pub days: u8,
    /// Answer yes to every confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}
