//! The command line's flags: every subcommand and flag, with the help text users see.

use kms_eth_core::fees::{DEFAULT_CONFIRM_ABOVE, DEFAULT_FEE_CAP};
use kms_eth_core::input::{Flags, InputError};
use kms_eth_core::txinputs::{
    bad, parse_access_list, parse_address, parse_authorization, parse_blob_file, parse_hex,
    parse_kind, parse_sidecar_form, parse_u64, parse_wei, AccessList, Bytes, Kind, TxInputs,
};
use kms_eth_signer::{
    Address, Blob, BlobSidecar, SidecarForm, SignedAuthorization, MAX_BLOBS_PER_TX, U256,
};

use crate::target::TargetKind;
use clap::{Args, Parser, Subcommand};
use kms_eth_provisioner::{FunctionArch, RemovalPolicy};

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
    /// Inspect kms-eth keys and manage their deletion.
    Key {
        #[command(subcommand)]
        command: KeyCmd,
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
    /// rules that need shared state, max_value_per_24h and requests_per_minute, are refused).
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
}

fn parse_lambda_arch(text: &str) -> Result<FunctionArch, String> {
    text.parse()
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
    #[arg(long = "rpc-url", value_name = "URL")]
    pub rpc_urls: Vec<String>,
    /// Schedule the deletion without looking at any chain: whatever the address holds,
    /// on any chain, is lost once the key is deleted.
    #[arg(long, conflicts_with = "rpc_urls")]
    pub skip_balance_check: bool,
    /// Go on although the address holds a balance or has sent transactions (destroy: or
    /// its address cannot be read).
    #[arg(long)]
    pub force: bool,
}

/// `kms-eth fleet ...`. Exit codes besides 0, 1 and 2: `plan` exits 4 when changes are
/// pending and 5 when something needs a person (drift, a refused stack); `apply` exits 5
/// when it left drifted stacks alone and nothing failed.
#[derive(Debug, Subcommand)]
pub enum FleetCmd {
    /// For every target, region and account: create, update (with the difference), no
    /// change, busy, refused, or drift (key disabled or pending deletion, alias moved, key
    /// policy or signer-role trust changed outside kms-eth); kms-eth keys the manifest does
    /// not name are listed as unmanaged. Changes nothing. Exit 0: nothing to do; 4: changes
    /// pending; 5: drift or a refused stack, which apply will not fix.
    Plan(FleetPlanArgs),
    /// Show the plan, then create and update the stacks, several targets at once. One failing
    /// stack does not stop the others; drifted and refused stacks are left alone. Running it
    /// again after a crash or a kill converges. Exit 1 if any stack failed or was refused, 5
    /// if drift was left alone.
    Apply(FleetApplyArgs),
    /// The address book: target, account id, region, name, alias, key ARN, key state and
    /// address of every account of the manifest (and balance and nonce with --rpc-url), in
    /// the manifest's order.
    Status(FleetStatusArgs),
    /// Delete the manifest's stacks (or one target's), after listing what becomes of every
    /// key and checking the funds at the addresses whose keys are scheduled for deletion.
    Destroy(FleetDestroyArgs),
}

/// The manifest flag every fleet command takes.
#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// The fleet manifest (TOML; README, "Fleets", documents every field).
    #[arg(long, value_name = "FILE")]
    pub manifest: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct FleetPlanArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
}

#[derive(Debug, Args)]
pub struct FleetApplyArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Apply the plan without asking (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How many targets are worked on at once (each target's stacks go together, key
    /// creation paced under KMS's CreateKey quota of 5 per second per account and region).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

#[derive(Debug, Args)]
pub struct FleetStatusArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Print the address book as CSV (with a header line) instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// A node to read each address's balance and nonce from.
    #[arg(long, value_name = "URL")]
    pub rpc_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct FleetDestroyArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Only this target's stacks (its name in the manifest).
    #[arg(long, value_name = "TARGET")]
    pub only: Option<String>,
    /// What is checked at the addresses of keys scheduled for deletion (removal policy
    /// DESTROY); one is needed when the fleet has such keys.
    #[command(flatten)]
    pub funds: FundsCheckArgs,
    /// Answer yes to the confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How many targets are worked on at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// List the kms-eth keys in the account and region: state, alias, address, stack.
    List,
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

/// The fields of a transaction. Amounts take units: 0.01ether, 5gwei, or plain wei. Each
/// flag is parsed by the service core's checked parser for it, straight into the type the
/// transaction needs; the checks between flags follow in `TxInputs::check`.
#[derive(Debug, Clone, Args)]
pub struct TxArgs {
    /// Transaction type: legacy (EIP-155), 2930, 1559, 4844 (blobs, with --blob-file) or
    /// 7702 (with --authorization or --delegate).
    #[arg(long = "type", default_value = "1559", value_parser = checked(parse_kind))]
    pub tx_type: Kind,
    /// Recipient (EIP-55 checksummed, or all lower/upper case). Required unless --create.
    #[arg(long, value_parser = checked(parse_address))]
    pub to: Option<Address>,
    /// Create a contract: no recipient, and --data is its init code (required). Without
    /// --create, a missing --to is an error rather than a contract creation that would lock
    /// the value away.
    #[arg(long, conflicts_with = "to")]
    pub create: bool,
    /// Amount to send, for example 0.01ether, 5gwei or 1000 (wei).
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = checked(parse_wei))]
    pub value: U256,
    /// The sender's transaction count (send: the node's pending count when left out).
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_u64))]
    pub nonce: Option<u64>,
    /// The chain id (1 mainnet, 11155111 Sepolia, 31337 anvil, ...); required. send checks
    /// that the node is on this chain, and never takes the chain id from the node.
    // Negative numbers are parsed (and refused) by kms-eth, with a message naming the flag.
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_u64))]
    pub chain_id: Option<u64>,
    /// Gas limit.
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_u64))]
    pub gas_limit: Option<u64>,
    /// EIP-1559 most paid per gas (for example 30gwei).
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_wei))]
    pub max_fee_per_gas: Option<U256>,
    /// EIP-1559 tip per gas (for example 1gwei).
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_wei))]
    pub max_priority_fee_per_gas: Option<U256>,
    /// Gas price for legacy and 2930 transactions (for example 20gwei).
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_wei))]
    pub gas_price: Option<U256>,
    /// Call data, 0x-prefixed hex.
    #[arg(long, value_parser = checked(parse_hex))]
    pub data: Option<Bytes>,
    /// Access list as JSON: [{"address":"0x...","storageKeys":["0x..."]}].
    #[arg(long, value_parser = checked(parse_access_list))]
    pub access_list: Option<AccessList>,
    /// A signed EIP-7702 authorization (type 7702; repeatable): its JSON
    /// ({"chainId","address","nonce","yParity","r","s"}, as sign-authorization prints it) or
    /// a file holding it.
    #[arg(long = "authorization", value_parser = checked(parse_authorization))]
    pub authorizations: Vec<SignedAuthorization>,
    /// Type 7702 in one command: the sender authorizes its own delegation to this contract
    /// (chain id the transaction's, nonce the transaction's + 1, as EIP-7702 requires when
    /// the same account authorizes and sends).
    #[arg(long, value_parser = checked(parse_address))]
    pub delegate: Option<Address>,
    /// A file to carry as a blob (type 4844; repeatable, at most 6, one blob each). Its
    /// bytes are put in the blob with the simple encoding of alloy's SimpleCoder (what
    /// `cast send --blob` writes): the first 32-byte field element holds the length, then
    /// 31 bytes of the file in each field element after a zero byte, zeros after the end.
    /// A file holds 1 to 126945 bytes.
    #[arg(long = "blob-file", value_name = "FILE", value_parser = checked(parse_blob_file))]
    pub blob_files: Vec<Blob>,
    /// EIP-4844 most paid per unit of blob gas (for example 10gwei); each blob uses 131072.
    /// send: twice the node's eth_blobBaseFee when left out, within --fee-cap.
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_wei))]
    pub max_fee_per_blob_gas: Option<U256>,
    /// The proofs of the blob sidecar sent with a type-4844 transaction: 7594 (the default:
    /// 128 cell proofs per blob, EIP-7594, what nodes take since the Osaka upgrade) or 4844
    /// (one KZG proof per blob, for chains before Osaka). Neither is signed.
    #[arg(long = "sidecar", value_parser = checked(parse_sidecar_form))]
    pub sidecar_form: Option<SidecarForm>,
    /// The sidecar built from --blob-file (KZG proofs take a moment; built once).
    #[arg(skip)]
    pub built_sidecar: std::sync::OnceLock<BlobSidecar>,
}

impl TxArgs {
    /// The transaction as given, with the checks between flags done (the rest is left for
    /// the node, or reported missing by `sign`).
    pub fn inputs(&self) -> anyhow::Result<TxInputs> {
        let inputs = TxInputs {
            kind: self.tx_type,
            to: self.to,
            create: self.create,
            value: self.value,
            nonce: self.nonce,
            chain_id: self.chain_id,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            gas_price: self.gas_price,
            data: self.data.clone().unwrap_or_default(),
            access_list: self.access_list.clone().unwrap_or_default(),
            authorizations: self.authorizations.clone(),
            max_fee_per_blob_gas: self.max_fee_per_blob_gas,
            sidecar: None,
        };
        if self.delegate.is_some() && self.tx_type != Kind::Eip7702 {
            return Err(kms_eth_core::txinputs::bad(
                "--delegate",
                "a delegation travels in an EIP-7702 transaction; add --type 7702",
            ));
        }
        if self.sidecar_form.is_some() && self.tx_type != Kind::Eip4844 {
            return Err(bad(
                "--sidecar",
                "only EIP-4844 transactions have a sidecar; add --type 4844",
            ));
        }
        let mut inputs = inputs;
        // Everything that needs only the blobs, not their KZG proofs, is checked first: the
        // proofs take seconds, and a mistyped flag should not wait for them.
        if self.tx_type == Kind::Eip4844 && !self.blob_files.is_empty() {
            let mut probe = inputs.clone();
            probe.sidecar = Some(BlobSidecar {
                form: self.sidecar_form.unwrap_or(SidecarForm::Eip7594),
                blobs: self.blob_files.clone(),
                commitments: Vec::new(),
                proofs: Vec::new(),
            });
            probe.check().map_err(flag_error)?;
        }
        inputs.sidecar = self.sidecar()?;
        inputs.check().map_err(flag_error)?;
        Ok(inputs)
    }

    /// The blob sidecar of `--blob-file`, with its KZG commitments and proofs in the
    /// `--sidecar` form; built once, after the cheap checks.
    fn sidecar(&self) -> anyhow::Result<Option<BlobSidecar>> {
        if self.blob_files.is_empty() {
            return Ok(None);
        }
        if self.tx_type != Kind::Eip4844 {
            return Err(bad(
                "--blob-file",
                "only EIP-4844 transactions carry blobs; add --type 4844",
            ));
        }
        if self.blob_files.len() > MAX_BLOBS_PER_TX {
            return Err(bad(
                "--blob-file",
                format!(
                    "{} files are more than the {MAX_BLOBS_PER_TX} blobs a transaction may \
                     carry (EIP-7594); send them in several transactions",
                    self.blob_files.len()
                ),
            ));
        }
        if let Some(built) = self.built_sidecar.get() {
            return Ok(Some(built.clone()));
        }
        let form = self.sidecar_form.unwrap_or(SidecarForm::Eip7594);
        let built = BlobSidecar::build(self.blob_files.clone(), form)
            .map_err(|err| bad("--blob-file", err))?;
        Ok(Some(self.built_sidecar.get_or_init(|| built).clone()))
    }
}

/// A check between transaction flags that failed, as the command line says it: named by
/// its flags, a usage error (exit 2).
pub fn flag_error(err: InputError) -> kms_eth_core::UsageError {
    err.usage(&Flags)
}

/// A clap value parser from one of the service core's checked parsers. Its error is the
/// core's own message (`invalid --nonce: "-1" is negative`), shown as clap shows its own
/// errors, with exit code 2.
fn checked<T>(parse: fn(&str, &str) -> anyhow::Result<T>) -> Checked<T> {
    Checked(parse)
}

/// See [`checked`].
#[derive(Clone)]
struct Checked<T>(fn(&str, &str) -> anyhow::Result<T>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Checked<T> {
    type Value = T;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        use clap::error::ErrorKind;
        let flag = arg
            .and_then(clap::Arg::get_long)
            .map_or_else(|| "value".to_owned(), |long| format!("--{long}"));
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(
                ErrorKind::InvalidUtf8,
                format!("invalid {flag}: not UTF-8\n"),
            )
        })?;
        (self.0)(&flag, text)
            .map_err(|err| clap::Error::raw(ErrorKind::ValueValidation, format!("{err:#}\n")))
    }
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
    /// Type 4844: print the signed transaction without its blob sidecar (the form a block
    /// holds; a node takes only the network form, printed by default, with the sidecar).
    #[arg(long)]
    pub no_sidecar: bool,
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
    /// The most per gas that send accepts from the node's fee suggestions (max fee, tip, gas
    /// price or max fee per blob gas); a suggestion above it stops the send. Fees given as
    /// flags are not capped.
    #[arg(long, default_value = DEFAULT_FEE_CAP, value_parser = checked(parse_wei))]
    pub fee_cap: U256,
    /// Ask before signing when the worst-case cost (gas limit x max fee per gas + blob gas x
    /// max fee per blob gas + value) is above this amount; --yes answers.
    #[arg(long, default_value = DEFAULT_CONFIRM_ABOVE, value_parser = checked(parse_wei))]
    pub confirm_above: U256,
    /// Seconds to wait for the receipt. A transaction that was broadcast but whose outcome
    /// is still unknown then exits 3.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Answer yes to the cost confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The upstream node's JSON-RPC URL: signed transactions are broadcast to it, and every
    /// method the service does not answer itself is passed through to it.
    #[arg(long)]
    pub rpc_url: String,
    /// Address and port to listen on. Anything but a loopback address needs
    /// --auth-token-file.
    #[arg(long, default_value = "127.0.0.1:8545")]
    pub listen: std::net::SocketAddr,
    /// An account's KMS key: key id, alias/... or key ARN (repeatable).
    #[arg(long = "key-id")]
    pub key_ids: Vec<String>,
    /// A kms-eth stack whose key is an account (repeatable).
    #[arg(long = "stack-name")]
    pub stack_names: Vec<String>,
    /// Serve every enabled kms-eth key carrying this tag, KEY=VALUE (repeatable: all must
    /// match). Untagged, disabled and pending-deletion keys are skipped.
    #[arg(long = "key-tag", value_parser = parse_tag)]
    pub key_tags: Vec<(String, String)>,
    /// The policy file (TOML): what each account may sign. Reloaded on SIGHUP.
    #[arg(long, conflicts_with = "unrestricted")]
    pub policy: Option<std::path::PathBuf>,
    /// Run without a policy: sign whatever is asked (said in /readyz and every audit line).
    #[arg(long)]
    pub unrestricted: bool,
    /// A file holding the bearer token clients must send (`Authorization: Bearer ...`).
    #[arg(long)]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// The chain the upstream node must be on; checked at start.
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_u64))]
    pub chain_id: Option<u64>,
    /// The most per gas accepted from the node's fee suggestions for eth_sendTransaction.
    #[arg(long, default_value = DEFAULT_FEE_CAP, value_parser = checked(parse_wei))]
    pub fee_cap: U256,
    /// Where the rolling 24-hour spend of each account is kept, so a restart does not reset
    /// max_value_per_24h (default: serve/spend.json in the kms-eth state folder).
    #[arg(long)]
    pub state_file: Option<std::path::PathBuf>,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds a request may take before it is answered with a timeout error.
    #[arg(long, default_value_t = 60)]
    pub request_timeout: u64,
    /// Requests handled at once; more are answered 503 until one finishes.
    #[arg(long, default_value_t = 256)]
    pub max_concurrent_requests: usize,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signed raw transaction (0x hex), or with --message the message that was signed.
    #[arg(required_unless_present_any = ["typed_data", "authorization", "raw_file"])]
    pub input: Option<String>,
    /// Read the signed raw transaction (0x hex) from this file instead of INPUT; `-` reads
    /// standard input. A blob transaction's network form is some 256 KiB of hex per blob,
    /// more than one command-line argument may hold.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["input", "message", "typed_data", "authorization"])]
    pub raw_file: Option<std::path::PathBuf>,
    /// Check an EIP-191 message signature instead: INPUT is the message's text (its bytes
    /// as 0x hex with --hex).
    #[arg(long, requires = "signature")]
    pub message: bool,
    /// The 65-byte r||s||v signature (0x hex), with --message or --typed-data.
    #[arg(long)]
    pub signature: Option<String>,
    /// Check an EIP-712 signature instead: the typed data JSON file that was signed (INPUT
    /// is then not given).
    #[arg(long, requires = "signature", conflicts_with_all = ["message", "input", "chain_id", "allow_unprotected"])]
    pub typed_data: Option<std::path::PathBuf>,
    /// Check a signed EIP-7702 authorization instead (its JSON, or a file holding it):
    /// recovers the account that signed it.
    #[arg(long, conflicts_with_all = ["message", "input", "typed_data", "signature", "chain_id", "allow_unprotected"])]
    pub authorization: Option<String>,
    /// With --message: INPUT is 0x hex bytes, not text.
    #[arg(long, requires = "message")]
    pub hex: bool,
    /// The chain the transaction must be for; exits 1 if it is for another.
    #[arg(long, conflicts_with = "message", allow_hyphen_values = true, value_parser = checked(parse_u64))]
    pub chain_id: Option<u64>,
    /// Accept a transaction valid on every chain (a legacy one without EIP-155 chain id, or
    /// chain id 0), which anyone can replay anywhere; without it such a transaction exits 1.
    #[arg(long, conflicts_with = "message")]
    pub allow_unprotected: bool,
    /// The address the signature must recover to; exits 1 if it does not.
    #[arg(long)]
    pub address: Option<String>,
}

#[derive(Debug, Args)]
pub struct SignAuthorizationArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// The contract whose code the account delegates to.
    #[arg(long, value_parser = checked(parse_address))]
    pub delegate: Address,
    /// The chain the authorization is valid on. 0 makes it valid on every chain, which
    /// needs --any-chain.
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_u64))]
    pub chain_id: u64,
    /// The account's nonce when the authorization is applied. When the account sends the
    /// type-4 transaction itself, that is its transaction's nonce + 1 (`sign`/`send
    /// --delegate` compute it).
    #[arg(long, allow_hyphen_values = true, value_parser = checked(parse_u64), required_unless_present = "rpc_url", conflicts_with = "rpc_url")]
    pub nonce: Option<u64>,
    /// Read the nonce from this node (the account's pending count, for a transaction that
    /// another account sends); the node must be on --chain-id.
    #[arg(long)]
    pub rpc_url: Option<String>,
    /// Allow --chain-id 0: anyone could then install the delegation on every chain where
    /// the account's nonce matches.
    #[arg(long)]
    pub any_chain: bool,
}

#[derive(Debug, Args)]
pub struct SignTypedDataArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// A file holding the typed data JSON.
    #[arg(required_unless_present = "data", conflicts_with = "data")]
    pub file: Option<std::path::PathBuf>,
    /// The typed data JSON itself, instead of a file.
    #[arg(long)]
    pub data: Option<String>,
}

#[derive(Debug, Args)]
pub struct SignMessageArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// The message's text (signed as its UTF-8 bytes, even if it looks like hex).
    pub message: String,
    /// The message is 0x hex: sign the bytes it spells, not its text.
    #[arg(long)]
    pub hex: bool,
}

fn parse_removal_policy(value: &str) -> Result<RemovalPolicy, String> {
    value
        .parse()
        .map_err(|e: kms_eth_provisioner::SpecError| e.to_string())
}

/// The tag keys kms-eth itself writes and reads (the account tag that marks its keys, the
/// tests' run tag); a user's `--tag` may not set them.
pub const RESERVED_TAG_PREFIX: &str = "kms-eth:";

fn parse_signer_principal(value: &str) -> Result<String, String> {
    kms_eth_provisioner::validate_signer_principal(value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_tag(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        // A key forged with kms-eth's own tags would be taken for what those tags say (a
        // test leftover that `test --cleanup` removes, another stack's account).
        Some((key, _)) if key.starts_with(RESERVED_TAG_PREFIX) => Err(format!(
            "the tag key {key:?} starts with {RESERVED_TAG_PREFIX:?}, which is reserved for the \
             tags kms-eth sets itself; choose another key"
        )),
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tags_with_the_reserved_prefix_are_refused() {
        for tag in [
            "kms-eth:test-run=x",
            "kms-eth:account=treasury",
            "kms-eth:=x",
        ] {
            let err = parse_tag(tag).unwrap_err();
            assert!(err.contains("reserved"), "{tag}: {err}");
        }
        assert_eq!(
            parse_tag("kms-eth-team=payments").unwrap(),
            ("kms-eth-team".to_owned(), "payments".to_owned())
        );
        assert_eq!(
            parse_tag("Kms-Eth:x=1").unwrap().0,
            "Kms-Eth:x",
            "tag keys are case-sensitive, as in AWS"
        );
        assert!(parse_tag("=x").is_err());
    }
}
