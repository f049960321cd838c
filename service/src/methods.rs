//! Which JSON-RPC methods the service answers and how: the ones it answers itself (accounts
//! and signatures), the reads it passes through to the node (an allow-list: a node's
//! `anvil_*`, `admin_*`, `debug_*` or `personal_*` methods change the node or its accounts,
//! and a client of the signing service has no business calling them), and the settings of
//! the JSON-RPC side that the front end chooses. A leaf: the rest reads it.

use std::time::Duration;

/// The methods the service answers itself.
pub const OWN: [&str; 13] = [
    "eth_accounts",
    "eth_requestAccounts",
    "eth_sign",
    "personal_sign",
    "eth_signTransaction",
    "eth_sendTransaction",
    "eth_signTypedData",
    "eth_signTypedData_v3",
    "eth_signTypedData_v4",
    "eth_chainId",
    // The operator's controls of the transactions the service sent (`controls.rs`).
    "kmseth_txStatus",
    "kmseth_speedUp",
    "kmseth_cancel",
];

/// The methods passed through to the node: reads, which change nothing on the chain or the
/// node's accounts (filters keep a little state on the node, for the clients that poll).
pub const READS: [&str; 37] = [
    "eth_blockNumber",
    "eth_getBalance",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getProof",
    "eth_call",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_simulateV1",
    "eth_getTransactionCount",
    "eth_getTransactionByHash",
    "eth_getTransactionByBlockHashAndIndex",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getTransactionReceipt",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getBlockTransactionCountByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getUncleCountByBlockHash",
    "eth_getUncleCountByBlockNumber",
    "eth_getLogs",
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_uninstallFilter",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_blobBaseFee",
    "eth_syncing",
    "eth_protocolVersion",
    "net_version",
    "net_listening",
    "net_peerCount",
    "web3_clientVersion",
];

/// A transaction signed elsewhere, passed through only with `--allow-raw`.
pub const RAW: &str = "eth_sendRawTransaction";

/// How the service answers a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Answered by the service (accounts, signatures, the chain id it signs for).
    Own,
    /// Passed through to the node.
    Read,
    /// `eth_sendRawTransaction`, passed through if the operator allowed it.
    Raw,
    /// Not available through the service.
    Refused,
}

/// How `method` is answered under `settings`.
pub fn route(method: &str, settings: &RpcSettings) -> Route {
    if OWN.contains(&method) {
        Route::Own
    } else if READS.contains(&method) {
        Route::Read
    } else if method == RAW && settings.allow_raw {
        Route::Raw
    } else {
        Route::Refused
    }
}

/// Whether `method` acts (signs or broadcasts) rather than reads: such a request must carry
/// an id, so that its answer can be matched to it.
pub fn acts(method: &str) -> bool {
    method == RAW
        || (OWN.contains(&method)
            && !matches!(
                method,
                "eth_accounts" | "eth_requestAccounts" | "eth_chainId" | "kmseth_txStatus"
            ))
}

/// The JSON-RPC side's settings, chosen by the front end.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// Whether `eth_sendRawTransaction` is passed through (`--allow-raw`).
    pub allow_raw: bool,
    /// The most requests one batch may hold (`--max-batch`).
    pub max_batch: usize,
    /// How long a request may work before it is answered with what is known (a broadcast
    /// whose outcome is not known yet is answered with its hash and nonce): shorter than the
    /// HTTP side's timeout, so that the answer is the service's own, with the request's id.
    pub answer_within: Duration,
}

impl Default for RpcSettings {
    fn default() -> RpcSettings {
        RpcSettings {
            allow_raw: false,
            max_batch: 100,
            answer_within: Duration::from_secs(54),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_pass_and_raw_transactions_only_when_allowed() {
        let settings = RpcSettings::default();
        for method in ["eth_getBalance", "eth_call", "net_version", "eth_getLogs"] {
            assert_eq!(route(method, &settings), Route::Read, "{method}");
        }
        for method in [
            "anvil_setCode",
            "anvil_setBalance",
            "admin_addPeer",
            "debug_traceTransaction",
            "personal_unlockAccount",
            "eth_sendRawTransaction",
            "evm_mine",
            "hardhat_impersonateAccount",
            "",
        ] {
            assert_eq!(route(method, &settings), Route::Refused, "{method}");
        }
        let raw = RpcSettings {
            allow_raw: true,
            ..RpcSettings::default()
        };
        assert_eq!(route(RAW, &raw), Route::Raw);
        assert!(acts(RAW) && acts("personal_sign") && !acts("eth_accounts") && !acts("eth_call"));
        // No method is in two lists.
        assert!(OWN.iter().all(|m| !READS.contains(m)));
    }
}
