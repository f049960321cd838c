//! A signed transaction as a report with every field (`sign`, `send`, `verify`).

use std::fmt;

pub use kms_eth_core::txinputs::{parse_address, parse_hex, Kind, TxInputs};
use kms_eth_signer::{format_ether, Address, SignedTransaction, Transaction};
use serde::Serialize;

use crate::output::{field_lines, Report};

/// Every field of a signed transaction (`sign --json`, `send --json`, `verify`). Amounts
/// are decimal strings of wei (they do not fit in a JSON number); hashes and bytes are
/// 0x hex.
#[derive(Debug, Clone, Serialize)]
pub struct TransactionReport {
    /// 0 legacy, 1 EIP-2930, 2 EIP-1559, 3 EIP-4844, 4 EIP-7702.
    #[serde(rename = "type")]
    pub tx_type: u8,
    pub chain_id: Option<u64>,
    pub nonce: u64,
    pub to: Option<String>,
    pub value: String,
    pub value_ether: String,
    pub from: Option<String>,
    pub hash: String,
    pub raw: String,
    pub r: String,
    pub s: String,
    pub y_parity: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gas_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fee_per_gas: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_priority_fee_per_gas: Option<String>,
    pub gas_limit: u64,
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_list: Option<Vec<AccessListEntry>>,
    /// EIP-4844 (type 3): the most paid per unit of blob gas, in wei.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fee_per_blob_gas: Option<String>,
    /// EIP-4844 (type 3): the versioned hashes of the blobs' commitments, which are signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_versioned_hashes: Option<Vec<String>>,
    /// EIP-4844 (type 3) in the network form: the sidecar sent with it (not signed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<SidecarEntry>,
    /// EIP-7702 authorizations (type 4), with the account each one recovers to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_list: Option<Vec<AuthorizationEntry>>,
}

/// A signed EIP-7702 authorization, in the JSON-RPC spec's names, plus who signed it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationEntry {
    pub chain_id: u64,
    pub address: String,
    pub nonce: u64,
    pub y_parity: u8,
    pub r: String,
    pub s: String,
    /// The account the signature recovers to (it delegates its code), or why it does not.
    pub authority: String,
}

impl AuthorizationEntry {
    /// The entry of `signed`.
    pub fn new(signed: &kms_eth_signer::SignedAuthorization) -> AuthorizationEntry {
        let a = &signed.authorization;
        AuthorizationEntry {
            chain_id: a.chain_id,
            address: a.address.to_string(),
            nonce: a.nonce,
            y_parity: u8::from(signed.signature.y_parity),
            r: hex0x(signed.signature.r),
            s: hex0x(signed.signature.s),
            authority: signed
                .recover_authority()
                .map_or_else(|err| format!("invalid: {err}"), |a| a.to_string()),
        }
    }
}

/// A blob sidecar: its form, how many blobs (their bytes are in `raw`), and every
/// commitment and proof.
#[derive(Debug, Clone, Serialize)]
pub struct SidecarEntry {
    /// `eip7594` (wrapper version 1, 128 cell proofs per blob) or `eip4844` (one proof per
    /// blob).
    pub form: &'static str,
    pub blobs: usize,
    /// The blob gas the blobs use: 131072 each.
    pub blob_gas: u64,
    pub commitments: Vec<String>,
    pub proofs: Vec<String>,
}

impl SidecarEntry {
    /// The entry of `sidecar`.
    pub fn new(sidecar: &kms_eth_signer::BlobSidecar) -> SidecarEntry {
        SidecarEntry {
            form: sidecar.form.name(),
            blobs: sidecar.blobs.len(),
            blob_gas: kms_eth_signer::GAS_PER_BLOB.saturating_mul(sidecar.blobs.len() as u64),
            commitments: sidecar.commitments.iter().map(hex0x).collect(),
            proofs: sidecar.proofs.iter().map(hex0x).collect(),
        }
    }
}

/// One access list entry, in the JSON-RPC spec's names.
#[derive(Debug, Clone, Serialize)]
pub struct AccessListEntry {
    pub address: String,
    #[serde(rename = "storageKeys")]
    pub storage_keys: Vec<String>,
}

fn hex0x(bytes: impl AsRef<[u8]>) -> String {
    format!("0x{}", hex::encode(bytes))
}

impl TransactionReport {
    /// The report of `signed`, sent from `from` when known.
    pub fn new(signed: &SignedTransaction, from: Option<Address>) -> TransactionReport {
        let tx = &signed.tx;
        let (gas_price, fees, gas_limit, input, access_list) = match tx {
            Transaction::Legacy(t) => (Some(t.gas_price), None, t.gas_limit, &t.input, None),
            Transaction::Eip2930(t) => (
                Some(t.gas_price),
                None,
                t.gas_limit,
                &t.input,
                Some(&t.access_list),
            ),
            Transaction::Eip1559(t) => (
                None,
                Some((t.max_fee_per_gas, t.max_priority_fee_per_gas)),
                t.gas_limit,
                &t.input,
                Some(&t.access_list),
            ),
            Transaction::Eip4844(t) => (
                None,
                Some((t.max_fee_per_gas, t.max_priority_fee_per_gas)),
                t.gas_limit,
                &t.input,
                Some(&t.access_list),
            ),
            Transaction::Eip7702(t) => (
                None,
                Some((t.max_fee_per_gas, t.max_priority_fee_per_gas)),
                t.gas_limit,
                &t.input,
                Some(&t.access_list),
            ),
        };
        let authorization_list = match tx {
            Transaction::Eip7702(t) => Some(
                t.authorization_list
                    .iter()
                    .map(AuthorizationEntry::new)
                    .collect(),
            ),
            _ => None,
        };
        let blob_tx = match tx {
            Transaction::Eip4844(t) => Some(t),
            _ => None,
        };
        TransactionReport {
            max_fee_per_blob_gas: blob_tx.map(|t| t.max_fee_per_blob_gas.to_string()),
            blob_versioned_hashes: blob_tx
                .map(|t| t.blob_versioned_hashes.iter().map(hex0x).collect()),
            sidecar: blob_tx
                .and_then(|t| t.sidecar.as_ref())
                .map(SidecarEntry::new),
            tx_type: tx.tx_type(),
            chain_id: tx.chain_id(),
            nonce: tx.nonce(),
            to: tx.to().map(|a| a.to_string()),
            value: tx.value().to_string(),
            value_ether: format_ether(tx.value()),
            from: from.map(|a| a.to_string()),
            hash: hex0x(signed.hash),
            raw: signed.raw_hex(),
            r: hex0x(signed.signature.r),
            s: hex0x(signed.signature.s),
            y_parity: u8::from(signed.signature.y_parity),
            gas_price: gas_price.map(|p| p.to_string()),
            max_fee_per_gas: fees.map(|(max, _)| max.to_string()),
            max_priority_fee_per_gas: fees.map(|(_, tip)| tip.to_string()),
            gas_limit,
            data: hex0x(input),
            authorization_list,
            access_list: access_list.map(|list| {
                list.iter()
                    .map(|item| AccessListEntry {
                        address: item.address.to_string(),
                        storage_keys: item.storage_keys.iter().map(hex0x).collect(),
                    })
                    .collect()
            }),
        }
    }
}

impl fmt::Display for TransactionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        field_lines(self, f)
    }
}

impl Report for TransactionReport {}
