//! The flags of `kms-eth serve`, the JSON-RPC signing service.

use clap::Args;
use kms_eth_core::fees::DEFAULT_FEE_CAP;
use kms_eth_core::txinputs::{parse_u64, parse_wei};
use kms_eth_signer::U256;

use super::parse::{checked, parse_tag};

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
    /// The chain the service signs for; the upstream node must be on it (checked at start).
    /// Needed unless the policy lists chain_ids in every [[account]] block.
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
    /// Pass eth_sendRawTransaction (transactions signed elsewhere) through to the node.
    #[arg(long)]
    pub allow_raw: bool,
    /// The most requests one JSON-RPC batch may hold; a larger batch is refused whole.
    #[arg(long, default_value_t = 100)]
    pub max_batch: usize,
}
