//! The encodings of each transaction type: the preimage of its signing hash, its signed
//! envelope, and for a type-3 transaction with a sidecar the network form that carries it.

use rlp::RlpStream;
use ruint::aliases::U256;

use super::{AccessListItem, Eip4844Tx, LegacyTx, SignedTransaction, Transaction};
use crate::address::Address;
use crate::blob::{BlobSidecar, SidecarForm};
use crate::hash::{keccak256, keccak256_concat, B256};
use crate::signature::Signature;

impl Transaction {
    /// The hash the sender signs.
    pub fn signing_hash(&self) -> B256 {
        match self {
            Transaction::Legacy(tx) => {
                let mut s = RlpStream::new();
                match tx.chain_id {
                    // EIP-155: the chain id and two empty values take the signature's place.
                    Some(chain_id) => {
                        s.begin_list(9);
                        append_legacy_fields(&mut s, tx);
                        s.append(&chain_id);
                        s.append(&0u8);
                        s.append(&0u8);
                    }
                    None => {
                        s.begin_list(6);
                        append_legacy_fields(&mut s, tx);
                    }
                }
                keccak256(s.out())
            }
            typed => keccak256_concat(&[&[typed.tx_type()], &typed.encode_typed_payload(None)]),
        }
    }

    /// Attaches `signature` and encodes the signed envelope (for a type-3 transaction with
    /// a sidecar, the network form; its hash is still the envelope's without the sidecar).
    pub fn into_signed(self, signature: Signature) -> SignedTransaction {
        let envelope = match &self {
            Transaction::Legacy(tx) => {
                let parity = u64::from(signature.y_parity);
                let v = match tx.chain_id {
                    Some(chain_id) => {
                        U256::from(chain_id) * U256::from(2) + U256::from(35 + parity)
                    }
                    None => U256::from(27 + parity),
                };
                let mut s = RlpStream::new_list(9);
                append_legacy_fields(&mut s, tx);
                append_u256(&mut s, &v);
                append_signature_scalars(&mut s, &signature);
                s.out().to_vec()
            }
            typed => {
                let mut raw = vec![typed.tx_type()];
                raw.extend_from_slice(&typed.encode_typed_payload(Some(&signature)));
                raw
            }
        };
        let hash = keccak256(&envelope);
        let raw = match &self {
            Transaction::Eip4844(Eip4844Tx {
                sidecar: Some(sidecar),
                ..
            }) => encode_network_form(&envelope, sidecar),
            _ => envelope,
        };
        SignedTransaction {
            tx: self,
            signature,
            raw,
            hash,
        }
    }

    /// The RLP list of a typed transaction's fields, with the signature appended if given.
    fn encode_typed_payload(&self, signature: Option<&Signature>) -> Vec<u8> {
        let extra = if signature.is_some() { 3 } else { 0 };
        let mut s = RlpStream::new();
        match self {
            Transaction::Legacy(_) => return Vec::new(),
            Transaction::Eip2930(tx) => {
                s.begin_list(8 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.gas_price);
                s.append(&tx.gas_limit);
                append_to(&mut s, tx.to.as_ref());
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
            }
            Transaction::Eip1559(tx) => {
                s.begin_list(9 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.max_priority_fee_per_gas);
                append_u256(&mut s, &tx.max_fee_per_gas);
                s.append(&tx.gas_limit);
                append_to(&mut s, tx.to.as_ref());
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
            }
            Transaction::Eip4844(tx) => {
                s.begin_list(11 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.max_priority_fee_per_gas);
                append_u256(&mut s, &tx.max_fee_per_gas);
                s.append(&tx.gas_limit);
                append_to(&mut s, Some(&tx.to));
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
                append_u256(&mut s, &tx.max_fee_per_blob_gas);
                s.begin_list(tx.blob_versioned_hashes.len());
                for hash in &tx.blob_versioned_hashes {
                    s.append(&hash.as_slice());
                }
            }
            Transaction::Eip7702(tx) => {
                s.begin_list(10 + extra);
                s.append(&tx.chain_id);
                s.append(&tx.nonce);
                append_u256(&mut s, &tx.max_priority_fee_per_gas);
                append_u256(&mut s, &tx.max_fee_per_gas);
                s.append(&tx.gas_limit);
                append_to(&mut s, Some(&tx.to));
                append_u256(&mut s, &tx.value);
                s.append(&tx.input);
                append_access_list(&mut s, &tx.access_list);
                s.begin_list(tx.authorization_list.len());
                for authorization in &tx.authorization_list {
                    authorization.append_to(&mut s);
                }
            }
        }
        if let Some(signature) = signature {
            s.append(&u8::from(signature.y_parity));
            append_signature_scalars(&mut s, signature);
        }
        s.out().to_vec()
    }
}

/// The network form of a signed type-3 envelope (`0x03 || rlp(signed fields)`) with its
/// sidecar: `0x03 || rlp([signed fields, blobs, commitments, proofs])` (EIP-4844), or
/// `0x03 || rlp([signed fields, 1, blobs, commitments, cell proofs])` (EIP-7594).
fn encode_network_form(envelope: &[u8], sidecar: &BlobSidecar) -> Vec<u8> {
    let signed_fields = envelope.get(1..).unwrap_or_default();
    let mut s = RlpStream::new();
    match sidecar.form {
        SidecarForm::Eip4844 => {
            s.begin_list(4);
            s.append_raw(signed_fields, 1);
        }
        SidecarForm::Eip7594 => {
            s.begin_list(5);
            s.append_raw(signed_fields, 1);
            s.append(&1u8);
        }
    }
    s.begin_list(sidecar.blobs.len());
    for blob in &sidecar.blobs {
        s.append(&blob.as_bytes());
    }
    for points in [&sidecar.commitments, &sidecar.proofs] {
        s.begin_list(points.len());
        for point in points {
            s.append(&point.as_slice());
        }
    }
    let mut raw = vec![0x03];
    raw.extend_from_slice(&s.out());
    raw
}

fn append_legacy_fields(s: &mut RlpStream, tx: &LegacyTx) {
    s.append(&tx.nonce);
    append_u256(s, &tx.gas_price);
    s.append(&tx.gas_limit);
    append_to(s, tx.to.as_ref());
    append_u256(s, &tx.value);
    s.append(&tx.input);
}

fn append_u256(s: &mut RlpStream, value: &U256) {
    s.append(&value.to_be_bytes_trimmed_vec());
}

fn append_to(s: &mut RlpStream, to: Option<&Address>) {
    match to {
        Some(address) => s.append(&address.0.as_slice()),
        None => s.append_empty_data(),
    };
}

fn append_signature_scalars(s: &mut RlpStream, signature: &Signature) {
    append_u256(s, &U256::from_be_bytes(signature.r));
    append_u256(s, &U256::from_be_bytes(signature.s));
}

fn append_access_list(s: &mut RlpStream, list: &[AccessListItem]) {
    s.begin_list(list.len());
    for item in list {
        s.begin_list(2);
        s.append(&item.address.0.as_slice());
        s.begin_list(item.storage_keys.len());
        for key in &item.storage_keys {
            s.append(&key.as_slice());
        }
    }
}
