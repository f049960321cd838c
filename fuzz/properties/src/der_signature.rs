//! The property of the fuzz target `der_signature`: the strict DER parser for the ECDSA
//! signatures KMS `Sign` returns.
//!
//! Properties: `parse_der` never panics; anything it accepts is exactly the minimal DER
//! encoding of the `(r, s)` it returns (so one signature has one accepted encoding) and is
//! read the same by k256's own DER decoder; and the first 64 bytes, read as `r || s`, encode
//! and parse back to themselves exactly when k256 calls both valid scalars.

use kms_eth_signer::{encode_der, parse_der};

/// Checks the property on one input; a violation panics (a crash, for libFuzzer).
pub fn check(data: &[u8]) {
    if let Ok((r, s)) = parse_der(data) {
        assert_eq!(
            encode_der(&r, &s),
            data,
            "accepted a DER signature that is not the canonical encoding of its (r, s)"
        );
        // An independent decoder must agree on the values.
        let theirs = k256::ecdsa::Signature::from_der(data)
            .expect("k256 refuses a DER signature that parse_der accepted");
        assert_eq!(theirs.r().to_bytes()[..], r);
        assert_eq!(theirs.s().to_bytes()[..], s);
    }

    if let Some(rs) = data.get(..64) {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&rs[..32]);
        s.copy_from_slice(&rs[32..]);
        // k256 checks 0 < r, s < n for a fixed-width signature.
        let valid = k256::ecdsa::Signature::from_slice(rs).is_ok();
        assert_eq!(
            parse_der(&encode_der(&r, &s)).ok(),
            valid.then_some((r, s)),
            "encode_der then parse_der does not give back a valid (r, s), or accepts an invalid one"
        );
    }
}
