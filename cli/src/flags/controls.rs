//! The flags of `kms-eth tx status|speed-up|cancel`: the operator's controls of the
//! transactions a running `kms-eth serve` sent, asked of that service.

use clap::{Args, Subcommand};
use kms_eth_core::txinputs::{parse_address, parse_u64};
use kms_eth_signer::Address;

use super::parse::checked;

#[derive(Debug, Subcommand)]
pub enum TxCmd {
    /// What became of a transaction the service sent: pending (with every version's hash),
    /// stuck (and why the tracker could not replace it), mined (hash and block) or replaced
    /// by another transaction.
    Status(TxTarget),
    /// Replace a pending transaction with the same one at higher fees (--bump more, and a
    /// max fee of at least twice the base fee plus the tip), within the service's policy.
    SpeedUp {
        #[command(flatten)]
        target: TxTarget,
        /// How much higher the fees are, in percent (at least 10, what nodes require).
        #[arg(long, value_parser = kms_eth_core::fees::parse_bump)]
        bump: Option<f64>,
    },
    /// Replace a pending transaction with a transfer of nothing to the account itself at
    /// its nonce, at higher fees: the original can then never be mined. Costs the fee.
    Cancel {
        #[command(flatten)]
        target: TxTarget,
        /// How much higher the fees are, in percent (at least 10, what nodes require).
        #[arg(long, value_parser = kms_eth_core::fees::parse_bump)]
        bump: Option<f64>,
    },
}

/// Which transaction, and which service.
#[derive(Debug, Args)]
pub struct TxTarget {
    /// The transaction's hash (any of its versions).
    #[arg(required_unless_present = "nonce", conflicts_with = "nonce")]
    pub hash: Option<String>,
    /// The transaction by its nonce instead of its hash.
    #[arg(long, value_parser = checked(parse_u64))]
    pub nonce: Option<u64>,
    /// The account, with --nonce; needed only if the service has several.
    #[arg(long, requires = "nonce", value_parser = checked(parse_address))]
    pub from: Option<Address>,
    /// The running `kms-eth serve`.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub url: String,
    /// A file holding the service's bearer token, if it has one (--auth-token-file of serve).
    #[arg(long)]
    pub auth_token_file: Option<std::path::PathBuf>,
}
