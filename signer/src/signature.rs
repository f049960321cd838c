//! ECDSA signatures: strict DER parsing of what KMS returns, low-s normalisation (EIP-2),
//! the recovery id, and public key recovery. Pure code that never panics on any input.

use std::fmt;

use k256::ecdsa::{RecoveryId, VerifyingKey};
use k256::elliptic_curve::ops::{LinearCombinationExt, Reduce};
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::scalar::IsHigh;
use k256::elliptic_curve::subtle::CtOption;
use k256::elliptic_curve::PrimeField;
use k256::{FieldBytes, ProjectivePoint, Scalar};

use crate::address::Address;
use crate::fixed_base::FixedBase;
use crate::hash::B256;
use crate::public_key::PublicKey;

/// A recoverable secp256k1 signature as Ethereum uses it: `r`, `s` (big-endian) and the
/// parity of the y coordinate of the point `R` (the recovery id, 0 or 1).
///
/// Every `Signature` this crate hands out from a signer has a low `s` and has been recovered
/// to the signer's address. Decoded signatures may have a high `s`; [`Signature::is_low_s`]
/// tells, and [`recover_signer`] refuses them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The x coordinate of `R`, reduced modulo the curve order.
    pub r: [u8; 32],
    /// The proof scalar.
    pub s: [u8; 32],
    /// Whether the y coordinate of `R` is odd.
    pub y_parity: bool,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The bytes are not a strict DER `SEQUENCE { INTEGER r, INTEGER s }`.
    #[error("the signature is not strict DER: {reason}")]
    Der {
        /// What was wrong with the encoding.
        reason: &'static str,
    },
    /// `r` or `s` is zero or not below the curve order `n`.
    #[error("signature {component} is zero or not below the secp256k1 curve order")]
    ScalarOutOfRange {
        /// `"r"` or `"s"`.
        component: &'static str,
    },
    /// `s` is above `n/2`. EIP-2 makes such signatures invalid in transactions.
    #[error("signature s is in the upper half of the curve order, which EIP-2 forbids (high-s)")]
    HighS,
    /// The signature does not verify against the expected public key, so no recovery id
    /// leads back to it: it was made by another key or for another digest.
    #[error("the signature does not verify against the expected public key (no recovery id recovers it)")]
    NoRecoveryId,
    /// A 65-byte `r || s || v` signature is malformed.
    #[error("not an r||s||v signature: {reason}")]
    InvalidRsv {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No public key can be recovered from the signature and digest.
    #[error("no public key can be recovered from this signature")]
    Unrecoverable,
}

impl Signature {
    /// Whether `s <= n/2`, as EIP-2 requires.
    pub fn is_low_s(&self) -> bool {
        scalar_from_bytes(&self.s).is_some_and(|s| !bool::from(s.is_high()))
    }

    /// The 65-byte `r || s || v` form with `v = 27 + parity`, as `personal_sign` returns.
    pub fn to_rsv_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = 27 + u8::from(self.y_parity);
        out
    }

    /// Parses the 65-byte `r || s || v` form; `v` may be 0/1 or 27/28.
    pub fn from_rsv_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        let bytes: &[u8; 65] = bytes.try_into().map_err(|_| SignatureError::InvalidRsv {
            reason: "it must be exactly 65 bytes",
        })?;
        let y_parity = match bytes[64] {
            0 | 27 => false,
            1 | 28 => true,
            _ => {
                return Err(SignatureError::InvalidRsv {
                    reason: "v must be 0, 1, 27 or 28",
                })
            }
        };
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..64]);
        Ok(Signature { r, s, y_parity })
    }

    fn to_k256(self) -> Result<k256::ecdsa::Signature, SignatureError> {
        let r = scalar_from_bytes(&self.r)
            .ok_or(SignatureError::ScalarOutOfRange { component: "r" })?;
        let s = scalar_from_bytes(&self.s)
            .ok_or(SignatureError::ScalarOutOfRange { component: "s" })?;
        k256::ecdsa::Signature::from_scalars(r, s)
            .map_err(|_| SignatureError::ScalarOutOfRange { component: "r" })
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("r", &format_args!("0x{}", hex::encode(self.r)))
            .field("s", &format_args!("0x{}", hex::encode(self.s)))
            .field("y_parity", &self.y_parity)
            .finish()
    }
}

/// A non-zero scalar below the curve order, or `None`.
fn scalar_from_bytes(bytes: &[u8; 32]) -> Option<Scalar> {
    let scalar: Option<Scalar> = Scalar::from_repr(FieldBytes::from(*bytes)).into();
    scalar.filter(|s| !bool::from(s.is_zero()))
}

fn ct_option<T>(value: CtOption<T>) -> Option<T> {
    value.into()
}

/// Parses a DER-encoded ECDSA signature strictly: one short-form `SEQUENCE` of exactly two
/// minimal, positive `INTEGER`s and nothing after it, with `0 < r, s < n`.
///
/// Returns `(r, s)` as 32-byte big-endian values (shorter integers are left-padded).
pub fn parse_der(der: &[u8]) -> Result<([u8; 32], [u8; 32]), SignatureError> {
    let err = |reason| SignatureError::Der { reason };
    let (&tag, rest) = der.split_first().ok_or(err("empty input"))?;
    if tag != 0x30 {
        return Err(err("does not start with a SEQUENCE"));
    }
    let (&len, body) = rest.split_first().ok_or(err("truncated SEQUENCE length"))?;
    // Two INTEGERs of at most 33 bytes each fit in 70 bytes, so the length is always short form.
    if len >= 0x80 {
        return Err(err("SEQUENCE length is not in short form"));
    }
    if usize::from(len) != body.len() {
        return Err(err("SEQUENCE length does not match the input length"));
    }
    let (r, body) = der_integer(body)?;
    let (s, body) = der_integer(body)?;
    if !body.is_empty() {
        return Err(err("trailing bytes after s"));
    }
    if scalar_from_bytes(&r).is_none() {
        return Err(SignatureError::ScalarOutOfRange { component: "r" });
    }
    if scalar_from_bytes(&s).is_none() {
        return Err(SignatureError::ScalarOutOfRange { component: "s" });
    }
    Ok((r, s))
}

/// Reads one minimal, positive DER `INTEGER` of at most 32 significant bytes.
fn der_integer(input: &[u8]) -> Result<([u8; 32], &[u8]), SignatureError> {
    let err = |reason| SignatureError::Der { reason };
    let (&tag, rest) = input.split_first().ok_or(err("missing INTEGER"))?;
    if tag != 0x02 {
        return Err(err("expected an INTEGER"));
    }
    let (&len, rest) = rest.split_first().ok_or(err("truncated INTEGER length"))?;
    let len = usize::from(len);
    if len == 0 {
        return Err(err("empty INTEGER"));
    }
    if len > 33 {
        return Err(err("INTEGER longer than 33 bytes"));
    }
    if rest.len() < len {
        return Err(err("INTEGER runs past the end of the input"));
    }
    let (mut value, rest) = rest.split_at(len);
    if let [first, ..] = value {
        if first & 0x80 != 0 {
            return Err(err("negative INTEGER"));
        }
    }
    if let [0, second, ..] = value {
        if second & 0x80 == 0 {
            return Err(err("INTEGER has a superfluous leading zero byte"));
        }
        value = &value[1..];
    }
    if value.len() > 32 {
        return Err(err("INTEGER wider than 256 bits"));
    }
    let mut out = [0u8; 32];
    out[32 - value.len()..].copy_from_slice(value);
    Ok((out, rest))
}

/// Encodes `(r, s)` as a minimal DER `SEQUENCE { INTEGER r, INTEGER s }`.
pub fn encode_der(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, value: &[u8; 32]) {
        let start = value.iter().position(|&b| b != 0).unwrap_or(31);
        let digits = &value[start..];
        let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        // At most 33 bytes, so the length always fits in one byte.
        out.push(u8::try_from(digits.len() + usize::from(pad)).unwrap_or(33));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(digits);
    }
    let mut body = Vec::with_capacity(70);
    integer(&mut body, r);
    integer(&mut body, s);
    let mut out = Vec::with_capacity(72);
    out.push(0x30);
    out.push(u8::try_from(body.len()).unwrap_or(70));
    out.extend_from_slice(&body);
    out
}

/// Replaces `s` by `n - s` when `s > n/2` (EIP-2). Returns the new `s` and whether it changed,
/// which flips the recovery id.
pub fn normalize_s(s: &[u8; 32]) -> Result<([u8; 32], bool), SignatureError> {
    let scalar = scalar_from_bytes(s).ok_or(SignatureError::ScalarOutOfRange { component: "s" })?;
    if bool::from(scalar.is_high()) {
        Ok(((-scalar).to_bytes().into(), true))
    } else {
        Ok((*s, false))
    }
}

/// Turns a raw `(r, s)` from a signer into an Ethereum signature for `digest` made by `key`:
/// normalises `s`, verifies the signature against `key`, and finds the recovery id.
///
/// One multi-scalar multiplication does all of it: `R = (z/s)·G + (r/s)·Q` is rebuilt from
/// the known public key `Q`. `R.x == r` is exactly ECDSA verification, and the y parity of
/// that same `R` is the recovery id, so recovering with it gives back `Q` by construction
/// (the unit tests, the alloy cross-check and every end-to-end test recover each signature
/// independently to make sure). This costs about one public key recovery, instead of a
/// verification plus a recovery.
pub fn finalize(
    digest: &B256,
    r: &[u8; 32],
    s: &[u8; 32],
    key: &PublicKey,
) -> Result<Signature, SignatureError> {
    let q = ProjectivePoint::from(*key.verifying_key().as_affine());
    finalize_by(digest, r, s, |u1, u2| {
        ProjectivePoint::lincomb_ext(&[(ProjectivePoint::GENERATOR, u1), (q, u2)])
    })
}

/// A public key with its table of multiples, for a signer that verifies many signatures of
/// one key: [`finalize_prepared`] then costs about half of [`finalize`] (36 µs against 80 for
/// the multiplication), for about 1 ms and 84 KiB once.
pub struct PreparedKey {
    key: PublicKey,
    multiples: FixedBase,
}

impl PreparedKey {
    /// Builds `key`'s table.
    pub fn new(key: PublicKey) -> PreparedKey {
        let multiples = FixedBase::new(&ProjectivePoint::from(*key.verifying_key().as_affine()));
        PreparedKey { key, multiples }
    }

    /// The key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedKey")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

/// [`finalize`] with the tables of the generator and of the key: the same checks and the
/// same result, in about half the time. Verification only handles public values, so the
/// variable-time multiplication leaks nothing.
pub fn finalize_prepared(
    digest: &B256,
    r: &[u8; 32],
    s: &[u8; 32],
    key: &PreparedKey,
) -> Result<Signature, SignatureError> {
    finalize_by(digest, r, s, |u1, u2| {
        FixedBase::generator().mul_vartime(&u1) + key.multiples.mul_vartime(&u2)
    })
}

/// The body of [`finalize`], given how to compute `u1·G + u2·Q`.
fn finalize_by(
    digest: &B256,
    r: &[u8; 32],
    s: &[u8; 32],
    combine: impl FnOnce(Scalar, Scalar) -> ProjectivePoint,
) -> Result<Signature, SignatureError> {
    let r_scalar =
        scalar_from_bytes(r).ok_or(SignatureError::ScalarOutOfRange { component: "r" })?;
    let (s, _) = normalize_s(s)?;
    let s_scalar =
        scalar_from_bytes(&s).ok_or(SignatureError::ScalarOutOfRange { component: "s" })?;

    let z = <Scalar as Reduce<k256::U256>>::reduce_bytes(&FieldBytes::from(*digest));
    let s_inv =
        ct_option(s_scalar.invert()).ok_or(SignatureError::ScalarOutOfRange { component: "s" })?;
    let big_r = combine(z * s_inv, r_scalar * s_inv).to_affine();
    // R.x must equal r exactly: if it only matched modulo n (R.x >= n, probability ~2^-128)
    // the recovery id would need a bit that Ethereum signatures cannot carry.
    if big_r.x() != FieldBytes::from(*r) {
        return Err(SignatureError::NoRecoveryId);
    }
    Ok(Signature {
        r: *r,
        s,
        y_parity: big_r.y_is_odd().into(),
    })
}

/// Recovers the public key that made `signature` over `digest`. High-s signatures are refused.
pub fn recover_public_key(
    digest: &B256,
    signature: &Signature,
) -> Result<PublicKey, SignatureError> {
    let k256_signature = signature.to_k256()?;
    if !signature.is_low_s() {
        return Err(SignatureError::HighS);
    }
    let recovery_id = RecoveryId::new(signature.y_parity, false);
    VerifyingKey::recover_from_prehash(digest, &k256_signature, recovery_id)
        .map(PublicKey::from)
        .map_err(|_| SignatureError::Unrecoverable)
}

/// Recovers the address that made `signature` over `digest`. High-s signatures are refused.
pub fn recover_signer(digest: &B256, signature: &Signature) -> Result<Address, SignatureError> {
    recover_public_key(digest, signature).map(|key| key.address())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::keccak256;
    use k256::ecdsa::SigningKey;
    use proptest::prelude::*;

    /// n, the order of the secp256k1 group.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];

    fn key(seed: u8) -> SigningKey {
        let mut bytes = [0u8; 32];
        bytes[31] = seed.max(1);
        SigningKey::from_slice(&bytes).unwrap()
    }

    fn raw_sign(key: &SigningKey, digest: &B256) -> ([u8; 32], [u8; 32]) {
        let (sig, _) = key.sign_prehash_recoverable(digest).unwrap();
        (sig.r().to_bytes().into(), sig.s().to_bytes().into())
    }

    fn negate(s: &[u8; 32]) -> [u8; 32] {
        (-scalar_from_bytes(s).unwrap()).to_bytes().into()
    }

    #[test]
    fn strict_der_rejects_non_canonical_encodings_each_by_its_own_rule() {
        let der = |reason| SignatureError::Der { reason };
        let range = |component| SignatureError::ScalarOutOfRange { component };
        // Each case breaks exactly one rule, so the error says which rule caught it: a case
        // that tripped an earlier check would leave its own rule untested.
        let cases = [
            ("", "empty", der("empty input")),
            (
                "3100",
                "not a SEQUENCE",
                der("does not start with a SEQUENCE"),
            ),
            // The SEQUENCE length covers the extra byte, so only the trailing rule applies.
            (
                "3007 020101 020101 ff",
                "trailing byte",
                der("trailing bytes after s"),
            ),
            (
                "308106 020101 020101",
                "long-form length",
                der("SEQUENCE length is not in short form"),
            ),
            (
                "3006 020101 020101 00",
                "length mismatch",
                der("SEQUENCE length does not match the input length"),
            ),
            (
                "3007 02020001 020101",
                "superfluous leading zero in r",
                der("INTEGER has a superfluous leading zero byte"),
            ),
            ("3006 020181 020101", "negative r", der("negative INTEGER")),
            ("3005 020101 0200", "empty s", der("empty INTEGER")),
            ("3006 020100 020101", "r is zero", range("r")),
            ("3006 020101 020100", "s is zero", range("s")),
            (
                "3006 020101 030101",
                "s not an INTEGER",
                der("expected an INTEGER"),
            ),
            ("3003 020101", "missing s", der("missing INTEGER")),
            (
                "3004 020101 02",
                "truncated s length",
                der("truncated INTEGER length"),
            ),
            (
                "3006 020101 0202 01",
                "s runs past the end",
                der("INTEGER runs past the end of the input"),
            ),
            (
                "30",
                "truncated SEQUENCE length",
                der("truncated SEQUENCE length"),
            ),
        ];
        for (hex_der, what, expected) in cases {
            let bytes = hex::decode(hex_der.replace(' ', "")).unwrap();
            assert_eq!(parse_der(&bytes), Err(expected), "DER with {what}");
        }
        // Integers too long for a scalar, each rule on its own.
        let mut wide = vec![0x30, 0x26, 0x02, 0x21, 0x01];
        wide.extend([0u8; 32]);
        wide.extend([0x02, 0x01, 0x01]);
        assert_eq!(parse_der(&wide), Err(der("INTEGER wider than 256 bits")));
        let mut long = vec![0x30, 0x27, 0x02, 0x22];
        long.extend([0x01; 34]);
        long.extend([0x02, 0x01, 0x01]);
        assert_eq!(parse_der(&long), Err(der("INTEGER longer than 33 bytes")));
    }

    #[test]
    fn der_accepts_short_integers_and_needed_padding() {
        // r = 1 (one byte), s = 0x80 (needs a 0x00 pad to stay positive).
        let (r, s) = parse_der(&hex::decode("300702010102020080").unwrap()).unwrap();
        assert_eq!(r[31], 1);
        assert_eq!(s[31], 0x80);
        assert!(r[..31].iter().chain(&s[..31]).all(|&b| b == 0));
    }

    #[test]
    fn der_rejects_scalars_at_or_above_the_order() {
        let one = {
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        };
        let der = encode_der(&N, &one);
        assert_eq!(
            parse_der(&der),
            Err(SignatureError::ScalarOutOfRange { component: "r" })
        );
        let der = encode_der(&one, &[0xff; 32]);
        assert_eq!(
            parse_der(&der),
            Err(SignatureError::ScalarOutOfRange { component: "s" })
        );
    }

    #[test]
    fn a_signature_from_another_key_has_no_recovery_id() {
        let digest = keccak256(b"hello");
        let (r, s) = raw_sign(&key(1), &digest);
        let other = PublicKey::from(*key(2).verifying_key());
        assert_eq!(
            finalize(&digest, &r, &s, &other),
            Err(SignatureError::NoRecoveryId)
        );
    }

    #[test]
    fn high_s_is_refused_by_recovery() {
        let digest = keccak256(b"hello");
        let signing = key(3);
        let (r, s) = raw_sign(&signing, &digest);
        let public = PublicKey::from(*signing.verifying_key());
        let low = finalize(&digest, &r, &s, &public).unwrap();
        let high = Signature {
            s: negate(&low.s),
            y_parity: !low.y_parity,
            ..low
        };
        assert!(!high.is_low_s());
        assert_eq!(recover_signer(&digest, &high), Err(SignatureError::HighS));
    }

    #[test]
    fn rsv_bytes_round_trip_and_reject_bad_v() {
        let sig = Signature {
            r: [1; 32],
            s: [2; 32],
            y_parity: true,
        };
        let bytes = sig.to_rsv_bytes();
        assert_eq!(bytes[64], 28);
        assert_eq!(Signature::from_rsv_bytes(&bytes), Ok(sig));
        let mut bad = bytes;
        bad[64] = 29;
        assert!(Signature::from_rsv_bytes(&bad).is_err());
        assert!(Signature::from_rsv_bytes(&bytes[..64]).is_err());
    }

    proptest! {
        #[test]
        fn high_s_normalises_back_and_recovers_the_signer(
            digest in any::<[u8; 32]>(),
            seed in 1u8..=255,
        ) {
            let signing = key(seed);
            let public = PublicKey::from(*signing.verifying_key());
            let (r, s) = raw_sign(&signing, &digest);
            let low = finalize(&digest, &r, &s, &public).unwrap();
            // KMS may return either s or n - s; both must give the same Ethereum signature.
            let from_high = finalize(&digest, &r, &negate(&s), &public).unwrap();
            prop_assert_eq!(low, from_high);
            prop_assert!(low.is_low_s());
            prop_assert_eq!(recover_signer(&digest, &low).unwrap(), public.address());
        }

        #[test]
        fn the_prepared_key_finalizes_exactly_as_the_plain_one(
            digest in any::<[u8; 32]>(),
            seed in 1u8..=255,
            high in any::<bool>(),
        ) {
            let signing = key(seed);
            let public = PublicKey::from(*signing.verifying_key());
            let prepared = PreparedKey::new(public);
            let (r, mut s) = raw_sign(&signing, &digest);
            if high {
                s = negate(&s);
            }
            let plain = finalize(&digest, &r, &s, &public);
            prop_assert!(plain.is_ok());
            prop_assert_eq!(finalize_prepared(&digest, &r, &s, &prepared), plain);
            // Another key's table finds no recovery id, as the plain path does not.
            let other = PreparedKey::new(PublicKey::from(*key(seed.wrapping_add(1).max(1)).verifying_key()));
            prop_assert_eq!(
                finalize_prepared(&digest, &r, &s, &other),
                Err(SignatureError::NoRecoveryId)
            );
        }

        #[test]
        fn der_round_trips(r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
            let der = encode_der(&r, &s);
            match (scalar_from_bytes(&r), scalar_from_bytes(&s)) {
                (Some(_), Some(_)) => prop_assert_eq!(parse_der(&der).unwrap(), (r, s)),
                _ => prop_assert!(parse_der(&der).is_err()),
            }
        }

        #[test]
        fn random_bytes_never_panic_the_der_parser(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_der(&bytes);
        }

        #[test]
        fn random_signatures_never_panic_recovery(
            digest in any::<[u8; 32]>(), r in any::<[u8; 32]>(), s in any::<[u8; 32]>(), y_parity in any::<bool>(),
        ) {
            let _ = recover_signer(&digest, &Signature { r, s, y_parity });
            let public = PublicKey::from(*key(9).verifying_key());
            let plain = finalize(&digest, &r, &s, &public);
            prop_assert_eq!(finalize_prepared(&digest, &r, &s, &PreparedKey::new(public)), plain);
        }
    }
}
