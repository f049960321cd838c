//! The property of the fuzz target `spki`: the SubjectPublicKeyInfo parser for what KMS
//! `GetPublicKey` returns.
//!
//! Properties: `PublicKey::from_spki_der` never panics, and anything it accepts is exactly
//! the canonical 88-byte secp256k1 SPKI of the key it returns (the fixed 23-byte header for
//! id-ecPublicKey, secp256k1 and the BIT STRING, then the uncompressed point), which is also
//! what k256's own SPKI encoder writes for that key. So one key has one accepted encoding.

use k256::pkcs8::EncodePublicKey;
use kms_eth_signer::PublicKey;

/// Checks the property on one input; a violation panics (a crash, for libFuzzer).
pub fn check(data: &[u8]) {
    if let Ok(key) = PublicKey::from_spki_der(data) {
        let mut canonical = HEADER.to_vec();
        canonical.extend_from_slice(&key.to_uncompressed());
        assert_eq!(
            data, canonical,
            "accepted an SPKI that is not the canonical encoding of its key"
        );
        let theirs = k256::PublicKey::from(key.verifying_key())
            .to_public_key_der()
            .expect("k256 cannot encode a key that from_spki_der accepted");
        assert_eq!(theirs.as_bytes(), data);
        let _ = key.address();
    }
}

/// SEQUENCE { SEQUENCE { id-ecPublicKey, secp256k1 }, BIT STRING (65 bytes, no unused bits) }.
const HEADER: [u8; 23] = [
    0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x0a, 0x03, 0x42, 0x00,
];
