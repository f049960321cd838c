//! The flags of `kms-eth serve`, the JSON-RPC signing service.

use std::time::Duration;

use clap::Args;
use kms_eth_core::fees::DEFAULT_FEE_CAP;
use kms_eth_core::txinputs::{parse_u64, parse_wei};
use kms_eth_service::{parse_allowed_host, parse_origin, AllowedHost, BrowserRules, EdgeConfig};
use kms_eth_signer::U256;

use super::parse::{checked, parse_tag};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The upstream node's JSON-RPC URL: signed transactions are broadcast to it, and every
    /// method the service does not answer itself is passed through to it. Repeatable, for
    /// several nodes of the same chain: each must be on the chain the service signs for
    /// (checked at start: a node on another chain is refused by name); reads go to the
    /// healthiest and move on to the next when one gives no answer, signed transactions go
    /// to every healthy node, and a node that stops answering, or changes chain, is taken out
    /// until it is back (checked every --readiness-interval, shown in /readyz and /metrics).
    #[arg(long = "rpc-url", value_name = "URL", required = true)]
    pub rpc_urls: Vec<String>,
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
    /// Another Region where every multi-Region key served (mrk-...) has a replica
    /// (repeatable): signatures are made in the command's own Region and move on to the next
    /// Region when one cannot be reached, answers with a server error or throttles, under the
    /// same address; a Region that failed is asked last until the readiness check finds it
    /// answering again. Without it, a --stack-name account uses its stack's replica Regions
    /// (`deploy --replica-region`). Each Region's health is in /readyz (`regions`) and
    /// /metrics (kms_eth_kms_region_up).
    #[arg(long = "failover-region", value_name = "REGION")]
    pub failover_regions: Vec<String>,
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
    /// The folder of the service's ledger (spend.json, the rolling 24-hour caps, so that a
    /// restart does not reset them, and its lock, so that two services never count one
    /// account's caps apart). Default: $KMS_ETH_HOME/serve, else the per-user data folder
    /// ($XDG_DATA_HOME/kms-eth/serve or ~/.local/share/kms-eth/serve); never the current
    /// folder, so services started from different folders still share one ledger.
    #[arg(long)]
    pub state_dir: Option<std::path::PathBuf>,
    /// Keep the account's nonces, 24-hour ledger, request rates and tracked transactions in
    /// a Redis-protocol store shared with other replicas of this service, instead of in this
    /// process and --state-dir: redis://HOST:PORT/DB, or rediss://HOST:PORT/DB for TLS. Any
    /// number of replicas on one store behave as one service; one that cannot reach it signs
    /// nothing and is not ready. The password never goes in the URL: see
    /// --state-password-file.
    #[arg(long)]
    pub state: Option<String>,
    /// A file holding the store's password (else KMS_ETH_STATE_PASSWORD, else none).
    #[arg(long, requires = "state")]
    pub state_password_file: Option<std::path::PathBuf>,
    /// Seconds a nonce reserved by a replica stays its own before being broadcast: after
    /// that (a replica that died or hangs), the other replicas take it back and fill it, and
    /// the late replica does not broadcast. Longer than a KMS signature ever takes.
    #[arg(long, default_value_t = 30, requires = "state", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease: u64,
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
    // The edge: browser safety, slow bodies, readiness, the metrics listener.
    /// A web origin, scheme://host[:port], whose pages may call the service (repeatable):
    /// CORS headers and preflights are answered for it alone. A request carrying any other
    /// Origin header is refused (403).
    #[arg(long = "allow-origin", value_parser = parse_origin)]
    pub allow_origins: Vec<String>,
    /// A host name clients reach the service by, NAME (any port) or NAME:PORT (repeatable).
    /// The listen address (and localhost on loopback) is always allowed; any other Host
    /// header is refused (403), which is what stops DNS rebinding.
    #[arg(long = "allow-host", value_parser = parse_allowed_host)]
    pub allow_hosts: Vec<AllowedHost>,
    /// Seconds a client may take to send its request body (answered 408 after).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Seconds between the background checks behind /readyz (each: one KMS call per key
    /// and one node call); requests read the last check's report.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub readiness_interval: u64,
    /// Serve /metrics and /readyz (and /healthz) on this address without the token, and
    /// not on --listen. Without it, they are on --listen and need the token if one is set.
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    // The transaction tracker.
    /// Seconds between the tracker's looks at the transactions the service broadcast and
    /// that are not yet mined (transactions-ACCOUNT.json in --state-dir, resumed after a restart; each locked, so that one account is served by one service at a time).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub track_interval: u64,
    /// Blocks after which the account's oldest transaction not yet mined is replaced with
    /// higher fees (within the policy's caps and --fee-cap).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub bump_after_blocks: u64,
    /// How much higher a replacement's fees are, in percent (at least 10, the node's
    /// replacement minimum; the max fee is also at least twice the base fee plus the tip).
    #[arg(long, default_value = "12.5%", value_parser = kms_eth_core::fees::parse_bump)]
    pub bump: f64,
}

impl ServeArgs {
    /// The service's edge settings, from the flags above.
    pub fn edge_config(&self) -> EdgeConfig {
        EdgeConfig {
            browser: BrowserRules {
                origins: self.allow_origins.clone(),
                hosts: self.allow_hosts.clone(),
            },
            body_timeout: Duration::from_secs(self.body_timeout),
            readiness_interval: Duration::from_secs(self.readiness_interval),
            metrics_listen: self.metrics_listen,
        }
    }

    /// The transaction tracker's settings, from the flags above.
    pub fn tracker_settings(&self) -> kms_eth_service::TrackerSettings {
        kms_eth_service::TrackerSettings {
            interval: Duration::from_secs(self.track_interval),
            bump_after_blocks: self.bump_after_blocks,
            bump_percent: self.bump,
        }
    }
}
