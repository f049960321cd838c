//! Multiples of a point known in advance (the generator, or a signer's public key), so
//! that `k·P` is 64 table lookups and additions instead of a full double-and-add. For public
//! scalars only: verifying a signature, where every input is public. The lookups depend on
//! the bits of `k`, so this must never multiply a secret.
//!
//! `finalize` verifies each signature KMS returns with `R = u1·G + u2·Q`. k256's general
//! multi-scalar multiplication does that in about 80 µs here (128 doublings, ~160 additions,
//! constant-time table selects); with both points' tables it takes about 36 µs, which at
//! concurrency 1 against a 3 ms LocalStack `Sign` is 1.5 % of every signature.

use std::sync::OnceLock;

use k256::elliptic_curve::BatchNormalize;
use k256::{AffinePoint, ProjectivePoint, Scalar};

/// Multiples 1..=15 of the point times 16^i for i in 0..64 (radix-16 digits of a 256-bit
/// scalar), 960 affine points (about 84 KiB), built in about 1 ms.
pub struct FixedBase {
    /// Row i holds `j·16^i·P` for j in 1..=15, rows one after another.
    multiples: Vec<AffinePoint>,
}

/// Multiples per row: the non-zero radix-16 digits.
const ROW: usize = 15;

impl FixedBase {
    /// The table of `point`.
    pub fn new(point: &ProjectivePoint) -> FixedBase {
        let mut projective = Vec::with_capacity(64 * ROW);
        let mut base = *point;
        for _ in 0..64 {
            let mut multiple = base;
            for _ in 0..ROW {
                projective.push(multiple);
                multiple += &base;
            }
            // 16·base, the next row's base, after the fifteenth addition.
            base = multiple;
        }
        // One field inversion for all 960 points (Montgomery's trick), not one each.
        let multiples = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(
            projective.as_slice(),
        );
        FixedBase { multiples }
    }

    /// The table of the generator, built on first use and kept for the process.
    pub fn generator() -> &'static FixedBase {
        static GENERATOR: OnceLock<FixedBase> = OnceLock::new();
        GENERATOR.get_or_init(|| FixedBase::new(&ProjectivePoint::GENERATOR))
    }

    /// `k·P`, in time that depends on `k`: for public scalars only.
    pub fn mul_vartime(&self, k: &Scalar) -> ProjectivePoint {
        // Radix-16 digits of k, least significant first: byte 31 of the big-endian bytes
        // holds digits 0 and 1.
        let digits = k
            .to_bytes()
            .into_iter()
            .rev()
            .flat_map(|byte| [usize::from(byte & 0x0f), usize::from(byte >> 4)]);
        self.multiples
            .chunks_exact(ROW)
            .zip(digits)
            .filter_map(|(row, digit)| digit.checked_sub(1).and_then(|j| row.get(j)))
            .fold(ProjectivePoint::IDENTITY, |sum, multiple| sum + multiple)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::ops::Reduce;
    use k256::FieldBytes;
    use proptest::prelude::*;

    fn scalar(bytes: [u8; 32]) -> Scalar {
        <Scalar as Reduce<k256::U256>>::reduce_bytes(&FieldBytes::from(bytes))
    }

    #[test]
    fn edge_scalars_multiply_as_k256_does() {
        let point = ProjectivePoint::GENERATOR * scalar([7; 32]);
        let table = FixedBase::new(&point);
        let mut edges = vec![Scalar::ZERO, Scalar::ONE, -Scalar::ONE, scalar([0xff; 32])];
        // Every digit value in every position, and single high digits.
        edges.extend((0..16u8).map(|d| scalar([d * 0x11; 32])));
        edges.extend((0..32).map(|i| {
            let mut bytes = [0; 32];
            bytes[i] = 0xf0;
            scalar(bytes)
        }));
        for k in edges {
            assert_eq!(table.mul_vartime(&k), point * k, "k = {k:?}");
            assert_eq!(
                FixedBase::generator().mul_vartime(&k),
                ProjectivePoint::GENERATOR * k
            );
        }
    }

    proptest! {
        #[test]
        fn random_scalars_multiply_as_k256_does(point in any::<[u8; 32]>(), k in any::<[u8; 32]>()) {
            let point = ProjectivePoint::GENERATOR * scalar(point);
            let k = scalar(k);
            prop_assert_eq!(FixedBase::new(&point).mul_vartime(&k), point * k);
            prop_assert_eq!(FixedBase::generator().mul_vartime(&k), ProjectivePoint::GENERATOR * k);
        }
    }
}
