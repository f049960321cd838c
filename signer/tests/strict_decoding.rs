//! Regression tests for the decoder's strictness: encodings that the `rlp` crate's lenient
//! accessors let through, and that must be refused because they give one transaction a
//! second hash.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kms_eth_signer::{SignedTransaction, TxError};

/// The signed transaction of the EIP-155 worked example.
const EIP155_RAW: &str = "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83";

fn decode(hex_raw: &str) -> Result<SignedTransaction, TxError> {
    SignedTransaction::decode(&hex::decode(hex_raw).unwrap())
}

#[test]
fn the_canonical_encoding_decodes() {
    let decoded = decode(EIP155_RAW).unwrap();
    assert_eq!(hex::encode(&decoded.raw), EIP155_RAW);
}

#[test]
fn long_form_single_byte_integer_is_refused() {
    // The nonce 9 written as 0x81 0x09 instead of 0x09, with the list length grown by one.
    let raw = EIP155_RAW.replacen("f86c09", "f86d8109", 1);
    assert_eq!(decode(&raw).unwrap_err(), TxError::NonCanonical);
}

#[test]
fn list_in_place_of_the_recipient_is_refused() {
    // `to` as a list of twenty one-byte items (0xd4 ...) instead of a 20-byte string (0x94 ...).
    let raw = EIP155_RAW.replacen("9435353535", "d435353535", 1);
    assert_eq!(decode(&raw).unwrap_err(), TxError::NonCanonical);
}

#[test]
fn stray_byte_at_the_end_of_the_list_is_refused() {
    // An incomplete item (0x81 with no payload) inside the list's declared length.
    let raw = format!("{}81", EIP155_RAW.replacen("f86c", "f86d", 1));
    assert_eq!(decode(&raw).unwrap_err(), TxError::NonCanonical);
}

#[test]
fn bytes_after_the_transaction_are_refused() {
    assert_eq!(
        decode(&format!("{EIP155_RAW}00")).unwrap_err(),
        TxError::TrailingBytes(1)
    );
}

#[test]
fn leading_zero_in_an_integer_is_refused() {
    // The gas limit 21000 (0x825208) written with a leading zero byte (0x83005208).
    let raw = EIP155_RAW
        .replacen("f86c", "f86d", 1)
        .replacen("825208", "83005208", 1);
    assert_eq!(
        decode(&raw).unwrap_err(),
        TxError::NonCanonicalInteger { field: "gas_limit" }
    );
}

#[test]
fn a_blob_transaction_with_more_blobs_than_any_fork_allows_is_refused() {
    use kms_eth_signer::{Address, Eip4844Tx, Signature, Transaction, U256};
    let with = |blobs: usize| {
        Transaction::Eip4844(Eip4844Tx {
            chain_id: 1,
            nonce: 0,
            max_priority_fee_per_gas: U256::from(1u64),
            max_fee_per_gas: U256::from(2u64),
            gas_limit: 21_000,
            to: Address([0x42; 20]),
            value: U256::ZERO,
            input: Vec::new(),
            access_list: Vec::new(),
            max_fee_per_blob_gas: U256::from(1u64),
            blob_versioned_hashes: vec![[0x01; 32]; blobs],
            sidecar: None,
        })
        .into_signed(Signature {
            r: [0x11; 32],
            s: [0x22; 32],
            y_parity: false,
        })
        .raw
    };
    // Nine (Prague's limit per block) decode as far as the signature; ten are refused as such.
    let nine = SignedTransaction::decode(&with(9));
    assert!(
        !matches!(&nine, Err(TxError::Rlp { reason }) if reason.contains("blob versioned hashes")),
        "{nine:?}"
    );
    let ten = SignedTransaction::decode(&with(10)).unwrap_err();
    assert!(
        matches!(&ten, TxError::Rlp { reason } if reason.contains("10 blob versioned hashes")),
        "{ten:?}"
    );
}
