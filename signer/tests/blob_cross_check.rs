//! EIP-4844 blob transactions against an independent implementation (alloy with c-kzg): the
//! simple encoding, commitments, proofs and versioned hashes of both sidecar forms equal
//! alloy's `SidecarBuilder<SimpleCoder>`, and the network form's bytes and hash equal
//! alloy's, which decodes ours back and recovers our signer.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{
    SignableTransaction, TxEip4844, TxEip4844Variant, TxEip4844WithSidecar, TxEnvelope,
};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_eips::eip4844::builder::{SidecarBuilder, SimpleCoder};
use alloy_eips::eip4844::BlobTransactionSidecar;
use alloy_eips::eip7594::{BlobTransactionSidecarEip7594, BlobTransactionSidecarVariant};
use alloy_primitives::Bytes;
use kms_eth_signer::{
    decode_simple, encode_simple, BlobSidecar, Eip4844Tx, InsecureLocalSigner, SidecarForm,
    SignedTransaction, Signer, Transaction, TxError, U256,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// KZG commitments or proofs.
type Points = Vec<[u8; 48]>;

/// alloy's sidecar of `data` (one blob: the data fits in one) in `form`.
fn alloy_sidecar(data: &[u8], form: SidecarForm) -> BlobTransactionSidecarVariant {
    let builder = SidecarBuilder::<SimpleCoder>::from_slice(data);
    match form {
        SidecarForm::Eip4844 => BlobTransactionSidecarVariant::Eip4844(
            builder.build::<BlobTransactionSidecar>().unwrap(),
        ),
        SidecarForm::Eip7594 => BlobTransactionSidecarVariant::Eip7594(
            builder.build::<BlobTransactionSidecarEip7594>().unwrap(),
        ),
    }
}

fn blob_tx(files: &[Vec<u8>], form: SidecarForm, nonce: u64) -> Eip4844Tx {
    let blobs = files.iter().map(|d| encode_simple(d).unwrap()).collect();
    let sidecar = BlobSidecar::build(blobs, form).unwrap();
    Eip4844Tx {
        chain_id: 31337,
        nonce,
        max_priority_fee_per_gas: U256::from(1_000_000_000u64),
        max_fee_per_gas: U256::from(30_000_000_000u64),
        gas_limit: 21_000,
        to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap(),
        value: U256::from(5u8),
        input: vec![0xab, 0xcd],
        access_list: Vec::new(),
        max_fee_per_blob_gas: U256::from(7u8),
        blob_versioned_hashes: sidecar.versioned_hashes(),
        sidecar: Some(sidecar),
    }
}

fn form() -> impl Strategy<Value = SidecarForm> {
    prop_oneof![Just(SidecarForm::Eip4844), Just(SidecarForm::Eip7594)]
}

proptest! {
    // Each case computes KZG proofs twice (ours and alloy's): a few cases cover the forms.
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn sidecar_and_network_form_match_alloy(
        data in vec(any::<u8>(), 1..5_000),
        form in form(),
        nonce in any::<u64>(),
        key in 1u8..=127,
    ) {
        let tx = blob_tx(std::slice::from_ref(&data), form, nonce);
        let ours_sidecar = tx.sidecar.clone().unwrap();
        let theirs_sidecar = alloy_sidecar(&data, form);

        // The simple encoding, commitments, proofs and versioned hashes.
        let (blobs, commitments, proofs): (Vec<Vec<u8>>, Points, Points) =
            match &theirs_sidecar {
                BlobTransactionSidecarVariant::Eip4844(s) => (
                    s.blobs.iter().map(|b| b.to_vec()).collect(),
                    s.commitments.iter().map(|c| c.0).collect(),
                    s.proofs.iter().map(|p| p.0).collect(),
                ),
                BlobTransactionSidecarVariant::Eip7594(s) => (
                    s.blobs.iter().map(|b| b.to_vec()).collect(),
                    s.commitments.iter().map(|c| c.0).collect(),
                    s.cell_proofs.iter().map(|p| p.0).collect(),
                ),
            };
        prop_assert_eq!(blobs.len(), 1);
        prop_assert_eq!(ours_sidecar.blobs[0].as_bytes(), blobs[0].as_slice());
        prop_assert_eq!(&ours_sidecar.commitments, &commitments);
        prop_assert_eq!(&ours_sidecar.proofs, &proofs);
        let their_hashes: Vec<[u8; 32]> =
            theirs_sidecar.versioned_hashes().map(|h| h.0).collect();
        prop_assert_eq!(&tx.blob_versioned_hashes, &their_hashes);
        prop_assert_eq!(decode_simple(&ours_sidecar.blobs[0]).unwrap(), data);

        // The signing hash, the network form, and the hash without the sidecar.
        // A key of one repeated byte chosen by proptest (not a fixed key that the leak
        // scan's list must carry).
        let secret = [key; 32];
        let signer = InsecureLocalSigner::from_private_key(&secret).unwrap();
        let tx = Transaction::Eip4844(tx);
        let signature = signer.sign_digest_sync(&tx.signing_hash()).unwrap();
        let ours = tx.clone().into_signed(signature);
        let Transaction::Eip4844(t) = tx else { unreachable!() };
        let theirs_tx = TxEip4844 {
            chain_id: t.chain_id,
            nonce: t.nonce,
            max_priority_fee_per_gas: 1_000_000_000,
            max_fee_per_gas: 30_000_000_000,
            gas_limit: t.gas_limit,
            to: t.to.0.into(),
            value: t.value,
            input: Bytes::from(t.input.clone()),
            access_list: Default::default(),
            max_fee_per_blob_gas: 7,
            blob_versioned_hashes: their_hashes.iter().map(|h| (*h).into()).collect(),
        };
        prop_assert_eq!(theirs_tx.signature_hash().0, ours.tx.signing_hash());
        let alloy_signature = alloy_primitives::Signature::new(
            U256::from_be_bytes(ours.signature.r),
            U256::from_be_bytes(ours.signature.s),
            ours.signature.y_parity,
        );
        let with_sidecar = TxEip4844Variant::TxEip4844WithSidecar(
            TxEip4844WithSidecar::from_tx_and_sidecar(theirs_tx, theirs_sidecar),
        );
        let envelope = TxEnvelope::Eip4844(with_sidecar.into_signed(alloy_signature));
        prop_assert_eq!(envelope.encoded_2718(), ours.raw.clone());
        prop_assert_eq!(envelope.tx_hash().0, ours.hash);

        // alloy reads our network form and recovers our signer; so does our decoder.
        let decoded = TxEnvelope::decode_2718(&mut ours.raw.as_slice()).unwrap();
        prop_assert_eq!(decoded.recover_signer().unwrap().0 .0, signer.address().0);
        let back = SignedTransaction::decode(&ours.raw).unwrap();
        prop_assert_eq!(&back, &ours);
        prop_assert_eq!(back.recover_signer().unwrap(), signer.address());
        let Transaction::Eip4844(t) = &back.tx else { unreachable!() };
        t.sidecar.as_ref().unwrap().check_against(&t.blob_versioned_hashes).unwrap();
    }
}

fn signed(tx: Eip4844Tx) -> SignedTransaction {
    // The alloy cross-check's key (on the leak scan's list).
    let signer = InsecureLocalSigner::from_private_key(&[7; 32]).unwrap();
    let tx = Transaction::Eip4844(tx);
    let signature = signer.sign_digest_sync(&tx.signing_hash()).unwrap();
    tx.into_signed(signature)
}

#[test]
fn the_hash_and_signature_do_not_cover_the_sidecar() {
    let with = signed(blob_tx(
        &[b"abc".to_vec(), b"def".to_vec()],
        SidecarForm::Eip7594,
        0,
    ));
    let mut bare_tx = blob_tx(&[b"abc".to_vec(), b"def".to_vec()], SidecarForm::Eip4844, 0);
    bare_tx.sidecar = None;
    let bare = signed(bare_tx);
    assert_eq!(with.hash, bare.hash);
    assert_eq!(with.signature, bare.signature);
    assert!(with.raw.len() > 2 * 131_072 && bare.raw.len() < 400);
    // The signed transaction alone decodes too, without a sidecar.
    let decoded = SignedTransaction::decode(&bare.raw).unwrap();
    assert_eq!(decoded, bare);
}

/// Rewrites the network form of `tx` with `edit` applied to its outer RLP items.
fn reencoded(tx: &SignedTransaction, edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let outer = rlp::Rlp::new(&tx.raw[1..]);
    let mut items: Vec<Vec<u8>> = outer.iter().map(|item| item.as_raw().to_vec()).collect();
    edit(&mut items);
    let mut s = rlp::RlpStream::new_list(items.len());
    for item in &items {
        s.append_raw(item, 1);
    }
    let mut raw = vec![0x03];
    raw.extend_from_slice(&s.out());
    raw
}

#[test]
fn malformed_sidecars_are_refused_by_the_decoder() {
    let tx = signed(blob_tx(&[b"abc".to_vec()], SidecarForm::Eip7594, 3));
    let sidecar_error = |raw: &[u8]| match SignedTransaction::decode(raw) {
        Err(TxError::BadSidecar { reason }) => reason,
        other => panic!("expected a sidecar error, got {other:?}"),
    };
    // Wrapper version 2.
    let raw = reencoded(&tx, |items| items[1] = vec![0x02]);
    assert!(sidecar_error(&raw).contains("wrapper version 2"));
    // A cell proof missing.
    let raw = reencoded(&tx, |items| {
        let proofs = rlp::Rlp::new(&items[4]);
        let mut s = rlp::RlpStream::new_list(127);
        for proof in proofs.iter().take(127) {
            s.append_raw(proof.as_raw(), 1);
        }
        items[4] = s.out().to_vec();
    });
    assert!(sidecar_error(&raw).contains("127 proofs; it needs 128"));
    // A short commitment.
    let raw = reencoded(&tx, |items| {
        let mut s = rlp::RlpStream::new_list(1);
        s.append(&[0u8; 47].as_slice());
        items[3] = s.out().to_vec();
    });
    assert!(sidecar_error(&raw).contains("48 bytes, one is 47"));
    // Three items: neither form.
    let raw = reencoded(&tx, |items| items.truncate(3));
    assert!(sidecar_error(&raw).contains("this one has 3"));
    // A sidecar whose proofs were swapped for another blob's decodes (its shape is right)
    // but does not verify.
    let other = signed(blob_tx(&[b"xyz".to_vec()], SidecarForm::Eip7594, 3));
    let raw = reencoded(&tx, |items| {
        items[4] = rlp::Rlp::new(&other.raw[1..])
            .at(4)
            .unwrap()
            .as_raw()
            .to_vec();
    });
    let decoded = SignedTransaction::decode(&raw).unwrap();
    let Transaction::Eip4844(t) = &decoded.tx else {
        unreachable!()
    };
    assert_eq!(
        t.sidecar
            .as_ref()
            .unwrap()
            .check_against(&t.blob_versioned_hashes),
        Err(kms_eth_signer::BlobError::BadProofs)
    );
}

#[test]
fn bare_type_3_without_hashes_or_with_a_wrong_version_is_refused() {
    let mut tx = blob_tx(&[b"abc".to_vec()], SidecarForm::Eip4844, 0);
    tx.sidecar = None;
    let mut empty = tx.clone();
    empty.blob_versioned_hashes.clear();
    assert_eq!(
        SignedTransaction::decode(&signed(empty).raw).unwrap_err(),
        TxError::EmptyBlobHashes
    );
    let mut version = tx;
    version.blob_versioned_hashes[0][0] = 0x02;
    assert_eq!(
        SignedTransaction::decode(&signed(version).raw).unwrap_err(),
        TxError::BadVersionedHash { index: 0 }
    );
}
