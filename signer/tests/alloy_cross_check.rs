//! Cross-checks against an independent implementation (alloy): for random transactions of
//! every type, our signing hash and signed envelope equal alloy's, alloy's decoder recovers
//! our signer, and our decoder reads alloy's encoding back to the same transaction.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{
    SignableTransaction, TxEip1559, TxEip2930, TxEip4844, TxEip7702, TxEnvelope, TxLegacy,
};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_eips::eip2930::{AccessList as AlloyAccessList, AccessListItem as AlloyItem};
use alloy_primitives::{Bytes, TxKind};
use kms_eth_signer::{
    AccessListItem, Address, Authorization, Eip1559Tx, Eip2930Tx, Eip4844Tx, Eip7702Tx,
    InsecureLocalSigner, LegacyTx, SignedAuthorization, SignedTransaction, Signer, Transaction,
    U256,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn arb_u256() -> impl Strategy<Value = U256> {
    prop_oneof![
        Just(U256::ZERO),
        any::<u64>().prop_map(U256::from),
        any::<[u8; 32]>().prop_map(U256::from_be_bytes),
    ]
}

fn arb_to() -> impl Strategy<Value = Option<Address>> {
    proptest::option::of(any::<[u8; 20]>().prop_map(Address))
}

fn arb_access_list() -> impl Strategy<Value = Vec<AccessListItem>> {
    vec(
        (any::<[u8; 20]>(), vec(any::<[u8; 32]>(), 0..3)).prop_map(|(address, storage_keys)| {
            AccessListItem {
                address: Address(address),
                storage_keys,
            }
        }),
        0..3,
    )
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    let legacy = (
        proptest::option::of(any::<u64>()),
        any::<u64>(),
        any::<u128>(),
        any::<u64>(),
        arb_to(),
        arb_u256(),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(chain_id, nonce, gas_price, gas_limit, to, value, input)| {
                Transaction::Legacy(LegacyTx {
                    chain_id,
                    nonce,
                    gas_price: U256::from(gas_price),
                    gas_limit,
                    to,
                    value,
                    input,
                })
            },
        );
    let eip2930 = (
        any::<u64>(),
        any::<u64>(),
        any::<u128>(),
        any::<u64>(),
        arb_to(),
        arb_u256(),
        vec(any::<u8>(), 0..64),
        arb_access_list(),
    )
        .prop_map(
            |(chain_id, nonce, gas_price, gas_limit, to, value, input, access_list)| {
                Transaction::Eip2930(Eip2930Tx {
                    chain_id,
                    nonce,
                    gas_price: U256::from(gas_price),
                    gas_limit,
                    to,
                    value,
                    input,
                    access_list,
                })
            },
        );
    let eip1559 = (
        any::<u64>(),
        any::<u64>(),
        any::<u128>(),
        any::<u128>(),
        any::<u64>(),
        arb_to(),
        arb_u256(),
        vec(any::<u8>(), 0..64),
        arb_access_list(),
    )
        .prop_map(
            |(chain_id, nonce, tip, max_fee, gas_limit, to, value, input, access_list)| {
                Transaction::Eip1559(Eip1559Tx {
                    chain_id,
                    nonce,
                    max_priority_fee_per_gas: U256::from(tip),
                    max_fee_per_gas: U256::from(max_fee),
                    gas_limit,
                    to,
                    value,
                    input,
                    access_list,
                })
            },
        );
    let eip7702 = (
        (
            any::<u64>(),
            any::<u64>(),
            any::<u128>(),
            any::<u128>(),
            any::<u64>(),
        ),
        any::<[u8; 20]>(),
        arb_u256(),
        vec(any::<u8>(), 0..64),
        arb_access_list(),
        vec(arb_authorization(), 1..3),
    )
        .prop_map(
            |(
                (chain_id, nonce, tip, max_fee, gas_limit),
                to,
                value,
                input,
                access_list,
                authorization_list,
            )| {
                Transaction::Eip7702(Eip7702Tx {
                    chain_id,
                    nonce,
                    max_priority_fee_per_gas: U256::from(tip),
                    max_fee_per_gas: U256::from(max_fee),
                    gas_limit,
                    to: Address(to),
                    value,
                    input,
                    access_list,
                    authorization_list,
                })
            },
        );
    let eip4844 = (
        (
            any::<u64>(),
            any::<u64>(),
            any::<u128>(),
            any::<u128>(),
            any::<u64>(),
        ),
        any::<[u8; 20]>(),
        arb_u256(),
        vec(any::<u8>(), 0..64),
        arb_access_list(),
        any::<u128>(),
        vec(any::<[u8; 31]>(), 1..7),
    )
        .prop_map(
            |(
                (chain_id, nonce, tip, max_fee, gas_limit),
                to,
                value,
                input,
                access_list,
                blob_fee,
                hashes,
            )| {
                Transaction::Eip4844(Eip4844Tx {
                    chain_id,
                    nonce,
                    max_priority_fee_per_gas: U256::from(tip),
                    max_fee_per_gas: U256::from(max_fee),
                    gas_limit,
                    to: Address(to),
                    value,
                    input,
                    access_list,
                    max_fee_per_blob_gas: U256::from(blob_fee),
                    // Versioned hashes carry the KZG version byte.
                    blob_versioned_hashes: hashes
                        .iter()
                        .map(|rest| {
                            let mut hash = [1u8; 32];
                            hash[1..].copy_from_slice(rest);
                            hash
                        })
                        .collect(),
                    sidecar: None,
                })
            },
        );
    prop_oneof![legacy, eip2930, eip1559, eip4844, eip7702]
}

/// An authorization signed by a key of its own (a real signature, so it recovers).
fn arb_authorization() -> impl Strategy<Value = SignedAuthorization> {
    (any::<u64>(), any::<[u8; 20]>(), any::<u64>(), 1u8..=127).prop_map(
        |(chain_id, address, nonce, key)| {
            let authorization = Authorization {
                chain_id,
                address: Address(address),
                nonce,
            };
            // A key of one repeated byte, chosen by proptest (so not a fixed key that the
            // leak scan's list must carry).
            let secret = [key; 32];
            let signer = InsecureLocalSigner::from_private_key(&secret).unwrap();
            let signature = signer
                .sign_digest_sync(&authorization.signing_hash())
                .unwrap();
            authorization.into_signed(signature)
        },
    )
}

fn alloy_authorization(signed: &SignedAuthorization) -> alloy_eips::eip7702::SignedAuthorization {
    let a = &signed.authorization;
    let theirs = alloy_eips::eip7702::Authorization {
        chain_id: U256::from(a.chain_id),
        address: a.address.0.into(),
        nonce: a.nonce,
    };
    theirs.into_signed(alloy_primitives::Signature::new(
        U256::from_be_bytes(signed.signature.r),
        U256::from_be_bytes(signed.signature.s),
        signed.signature.y_parity,
    ))
}

fn kind(to: Option<Address>) -> TxKind {
    to.map_or(TxKind::Create, |a| TxKind::Call(a.0.into()))
}

fn fee(value: U256) -> u128 {
    u128::try_from(value).unwrap()
}

fn access_list(list: &[AccessListItem]) -> AlloyAccessList {
    AlloyAccessList(
        list.iter()
            .map(|item| AlloyItem {
                address: item.address.0.into(),
                storage_keys: item.storage_keys.iter().map(|k| (*k).into()).collect(),
            })
            .collect(),
    )
}

/// Checks one alloy transaction against ours: the same signing hash, the same signed
/// envelope and hash, and alloy recovers our signer from our raw bytes.
fn check<T>(theirs: T, ours: &SignedTransaction, signer: Address) -> Result<(), TestCaseError>
where
    T: SignableTransaction<alloy_primitives::Signature>,
    TxEnvelope: From<alloy_consensus::Signed<T>>,
{
    prop_assert_eq!(theirs.signature_hash().0, ours.tx.signing_hash());
    let signature = alloy_primitives::Signature::new(
        U256::from_be_bytes(ours.signature.r),
        U256::from_be_bytes(ours.signature.s),
        ours.signature.y_parity,
    );
    let envelope = TxEnvelope::from(theirs.into_signed(signature));
    prop_assert_eq!(envelope.encoded_2718(), ours.raw.clone());
    prop_assert_eq!(envelope.tx_hash().0, ours.hash);

    let decoded = TxEnvelope::decode_2718(&mut ours.raw.as_slice())
        .map_err(|e| TestCaseError::fail(format!("alloy refused our encoding: {e}")))?;
    prop_assert_eq!(decoded.recover_signer().unwrap().0 .0, signer.0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoding_signing_hash_and_recovery_match_alloy(tx in arb_tx(), key in any::<[u8; 32]>()) {
        let Ok(signer) = InsecureLocalSigner::from_private_key(&key) else {
            // Zero or above the curve order: not a private key (probability ~2^-128).
            return Ok(());
        };
        let signature = signer.sign_digest_sync(&tx.signing_hash()).unwrap();
        let ours = tx.clone().into_signed(signature);

        // Our own decoder reads our encoding back and recovers the signer.
        let decoded = SignedTransaction::decode(&ours.raw).unwrap();
        prop_assert_eq!(&decoded, &ours);
        prop_assert_eq!(decoded.recover_signer().unwrap(), signer.address());

        match tx {
            Transaction::Legacy(t) => check(
                TxLegacy {
                    chain_id: t.chain_id,
                    nonce: t.nonce,
                    gas_price: fee(t.gas_price),
                    gas_limit: t.gas_limit,
                    to: kind(t.to),
                    value: t.value,
                    input: Bytes::from(t.input),
                },
                &ours,
                signer.address(),
            )?,
            Transaction::Eip2930(t) => check(
                TxEip2930 {
                    chain_id: t.chain_id,
                    nonce: t.nonce,
                    gas_price: fee(t.gas_price),
                    gas_limit: t.gas_limit,
                    to: kind(t.to),
                    value: t.value,
                    input: Bytes::from(t.input),
                    access_list: access_list(&t.access_list),
                },
                &ours,
                signer.address(),
            )?,
            Transaction::Eip1559(t) => check(
                TxEip1559 {
                    chain_id: t.chain_id,
                    nonce: t.nonce,
                    max_priority_fee_per_gas: fee(t.max_priority_fee_per_gas),
                    max_fee_per_gas: fee(t.max_fee_per_gas),
                    gas_limit: t.gas_limit,
                    to: kind(t.to),
                    value: t.value,
                    input: Bytes::from(t.input),
                    access_list: access_list(&t.access_list),
                },
                &ours,
                signer.address(),
            )?,
            Transaction::Eip4844(t) => check(
                TxEip4844 {
                    chain_id: t.chain_id,
                    nonce: t.nonce,
                    max_priority_fee_per_gas: fee(t.max_priority_fee_per_gas),
                    max_fee_per_gas: fee(t.max_fee_per_gas),
                    gas_limit: t.gas_limit,
                    to: t.to.0.into(),
                    value: t.value,
                    input: Bytes::from(t.input),
                    access_list: access_list(&t.access_list),
                    max_fee_per_blob_gas: fee(t.max_fee_per_blob_gas),
                    blob_versioned_hashes: t.blob_versioned_hashes.iter().map(|h| (*h).into()).collect(),
                },
                &ours,
                signer.address(),
            )?,
            Transaction::Eip7702(t) => {
                for signed in &t.authorization_list {
                    let theirs = alloy_authorization(signed);
                    prop_assert_eq!(theirs.signature_hash().0, signed.authorization.signing_hash());
                    prop_assert_eq!(
                        theirs.recover_authority().unwrap().0 .0,
                        signed.recover_authority().unwrap().0
                    );
                }
                check(
                    TxEip7702 {
                        chain_id: t.chain_id,
                        nonce: t.nonce,
                        max_priority_fee_per_gas: fee(t.max_priority_fee_per_gas),
                        max_fee_per_gas: fee(t.max_fee_per_gas),
                        gas_limit: t.gas_limit,
                        to: t.to.0.into(),
                        value: t.value,
                        input: Bytes::from(t.input),
                        access_list: access_list(&t.access_list),
                        authorization_list: t.authorization_list.iter().map(alloy_authorization).collect(),
                    },
                    &ours,
                    signer.address(),
                )?
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in vec(any::<u8>(), 0..256)) {
        if let Ok(decoded) = SignedTransaction::decode(&bytes) {
            let _ = decoded.recover_signer();
        }
    }

    #[test]
    fn corrupted_transactions_never_panic_the_decoder(
        tx in arb_tx(), index in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let signer = InsecureLocalSigner::from_private_key(&[7; 32]).unwrap();
        let signature = signer.sign_digest_sync(&tx.signing_hash()).unwrap();
        let mut raw = tx.into_signed(signature).raw;
        let i = index.index(raw.len());
        raw[i] = byte;
        if let Ok(decoded) = SignedTransaction::decode(&raw) {
            let _ = decoded.recover_signer();
        }
    }
}
