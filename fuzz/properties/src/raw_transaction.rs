//! The property of the fuzz target `raw_transaction`: the strict raw-transaction decoder
//! (`SignedTransaction::decode`), which `kms-eth verify` runs on user input.
//!
//! Properties: decoding never panics; an accepted input is canonical RLP by an independent
//! checker written here (minimal lengths, single bytes below 0x80 written bare, nothing left
//! over); re-encoding the decoded transaction and signature gives exactly the input bytes, and
//! its hash is the Keccak-256 of the signed envelope (the input itself, or for a type-3
//! network form the input without its blob sidecar); and signer recovery never panics.

use kms_eth_signer::{keccak256, SignedTransaction};

/// Checks the property on one input; a violation panics (a crash, for libFuzzer).
pub fn check(data: &[u8]) {
    let Ok(signed) = SignedTransaction::decode(data) else {
        return;
    };
    let rlp = match data.first() {
        Some(0x01..=0x04) => &data[1..],
        _ => data,
    };
    assert_eq!(
        canonical_item(rlp),
        Some(rlp.len()),
        "accepted a transaction that is not one canonical RLP item"
    );
    let again = signed.tx.clone().into_signed(signed.signature);
    assert_eq!(
        again.raw, data,
        "the decoded transaction re-encodes to other bytes"
    );
    let envelope = signed.clone().without_sidecar().raw;
    if envelope != data {
        assert_eq!(data.first(), Some(&0x03), "only type 3 has a sidecar");
        assert_eq!(canonical_item(&envelope[1..]), Some(envelope.len() - 1));
    }
    assert_eq!(again.hash, keccak256(&envelope));
    assert_eq!(signed, again);
    let _ = signed.recover_signer();
}

/// The length of the canonical RLP item at the start of `input`, or `None` if it is not
/// canonical (or runs past the end).
fn canonical_item(input: &[u8]) -> Option<usize> {
    let (&first, rest) = input.split_first()?;
    let (header, payload_len, is_list) = match first {
        0x00..=0x7f => return Some(1),
        0x80..=0xb7 => (1, usize::from(first - 0x80), false),
        0xb8..=0xbf => (
            1 + usize::from(first - 0xb7),
            long_length(rest, first - 0xb7)?,
            false,
        ),
        0xc0..=0xf7 => (1, usize::from(first - 0xc0), true),
        0xf8..=0xff => (
            1 + usize::from(first - 0xf7),
            long_length(rest, first - 0xf7)?,
            true,
        ),
    };
    let payload = input.get(header..header.checked_add(payload_len)?)?;
    if is_list {
        let mut at = 0;
        while at < payload.len() {
            at += canonical_item(&payload[at..])?;
        }
    } else if payload_len == 1 && payload[0] < 0x80 {
        // A single byte below 0x80 is its own encoding.
        return None;
    }
    Some(header + payload_len)
}

/// A long-form RLP length: big-endian, without leading zeros, and at least 56 (shorter
/// payloads must use the short form).
fn long_length(bytes: &[u8], width: u8) -> Option<usize> {
    let digits = bytes.get(..usize::from(width))?;
    if digits.first() == Some(&0) || digits.len() > std::mem::size_of::<usize>() {
        return None;
    }
    let length = digits
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    (length >= 56).then_some(length)
}
