//! Regression tests for what the fuzz targets in `fuzz/` found: each test is named after the
//! bug and holds the input that showed it.

// Helpers outside #[test] functions build fixed inputs and may panic on failure, like tests.
#![allow(clippy::unwrap_used)]

use kms_eth_signer::{PublicKey, PublicKeyError};

/// The x coordinate of the secp256k1 generator, the public key of the private key 1. Its y
/// coordinate is even.
const GENERATOR_X: &str = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

/// An SPKI for secp256k1 holding a 33-byte point: SEQUENCE { id-ecPublicKey, secp256k1 },
/// BIT STRING (34 bytes: no unused bits, then the point with the given SEC1 tag).
fn short_point_spki(tag: &str) -> Vec<u8> {
    hex::decode(format!(
        "3036301006072a8648ce3d020106052b8104000a032200{tag}{GENERATOR_X}"
    ))
    .unwrap()
}

fn assert_refused_as_malformed(der: &[u8]) {
    let result = PublicKey::from_spki_der(der);
    assert!(
        matches!(result, Err(PublicKeyError::Malformed { ref reason }) if reason.contains("uncompressed")),
        "{} gave {result:?}",
        hex::encode(der)
    );
}

/// `from_spki_der` accepted an SPKI whose point was compressed (`0x02 || x`): the same key
/// as the 88-byte SPKI KMS writes, so one key had two accepted encodings. The spki fuzz
/// target's canonical-encoding property fails on this input.
#[test]
fn spki_with_a_compressed_point_is_refused() {
    assert_refused_as_malformed(&short_point_spki("02"));
    // The other parity names the negated point, also a valid key, and is refused the same way.
    assert_refused_as_malformed(&short_point_spki("03"));
}

/// Likewise for the SEC1 "compact" form (`0x05 || x`), which k256 also decodes.
#[test]
fn spki_with_a_compact_point_is_refused() {
    assert_refused_as_malformed(&short_point_spki("05"));
}
