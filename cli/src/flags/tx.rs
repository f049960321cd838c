//! The flags of what is signed and checked: a transaction's fields (`TxArgs`, with the
//! checks between them), `sign`, `send`, `sign-message`, `sign-typed-data`,
//! `sign-authorization` and `verify`.

use clap::Args;
use kms_eth_core::fees::{DEFAULT_CONFIRM_ABOVE, DEFAULT_FEE_CAP};
use kms_eth_core::input::{Flags, InputError};
use kms_eth_core::txinputs::{
    bad, parse_access_list, parse_address, parse_authorization, parse_blob_file, parse_hex,
    parse_kind, parse_sidecar_form, parse_u64, parse_wei, AccessList, Bytes, Kind, TxInputs,
};
use kms_eth_signer::{
    Address, Blob, BlobSidecar, SidecarForm, SignedAuthorization, MAX_BLOBS_PER_TX, U256,
};

use super::parse::checked;
use super::AccountArgs;

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
    /// Another Region with a replica of the key (a multi-Region key, named by its key id
    /// `mrk-...` or ARN; repeatable, tried in order): when the command's Region cannot be
    /// reached or throttles past its retries, the next one signs, with the same address.
    #[arg(long = "failover-region", value_name = "REGION", requires = "key_id")]
    pub failover_regions: Vec<String>,
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
