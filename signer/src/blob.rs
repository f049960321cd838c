//! EIP-4844 blobs and the sidecar that carries them beside a type-3 transaction: the simple
//! encoding of bytes into blobs, versioned hashes, and the sidecar in both network forms
//! (EIP-4844's one proof per blob, and EIP-7594's cell proofs). Building and checking the
//! KZG commitments and proofs needs the `kzg` feature (c-kzg with Ethereum's trusted setup);
//! everything else here is pure code that never panics.

use sha2::{Digest, Sha256};

use crate::hash::B256;

/// Bytes in one blob: 4096 field elements of 32 bytes.
pub const BYTES_PER_BLOB: usize = 131_072;
/// Field elements in one blob.
pub const FIELD_ELEMENTS_PER_BLOB: usize = 4_096;
/// Blob gas one blob uses (EIP-4844's `GAS_PER_BLOB`).
pub const GAS_PER_BLOB: u64 = 131_072;
/// The most blobs one transaction may carry (EIP-7594's `MAX_BLOBS_PER_TX`, in force since
/// Osaka; before it the limit was the block's, 6 under Cancun).
pub const MAX_BLOBS_PER_TX: usize = 6;
/// Cell proofs per blob in the EIP-7594 form (one per cell of the extended blob).
pub const CELLS_PER_EXT_BLOB: usize = 128;
/// The version byte of a KZG versioned hash.
pub const VERSIONED_HASH_VERSION_KZG: u8 = 0x01;
/// Bytes of a KZG commitment or proof (a compressed BLS12-381 G1 point).
pub const BYTES_PER_COMMITMENT: usize = 48;
/// The most data bytes one blob holds in the simple encoding: the first field element
/// holds the length, each other one 31 bytes (its first byte stays 0, which keeps every
/// field element below the BLS12-381 modulus).
pub const SIMPLE_ENCODING_CAPACITY: usize = (FIELD_ELEMENTS_PER_BLOB - 1) * 31;

/// A KZG commitment or proof, 48 bytes.
pub type Bytes48 = [u8; BYTES_PER_COMMITMENT];

/// One blob, 131072 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob(pub Box<[u8; BYTES_PER_BLOB]>);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 128 KiB of hex helps nobody; the first bytes and a digest tell blobs apart.
        let digest = Sha256::digest(self.0.as_slice());
        write!(
            f,
            "Blob(0x{}.., sha256 {})",
            hex::encode(&self.0[..8]),
            hex::encode(&digest[..8])
        )
    }
}

impl Blob {
    /// A blob from exactly [`BYTES_PER_BLOB`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Blob> {
        let boxed: Box<[u8]> = bytes.into();
        boxed.try_into().ok().map(Blob)
    }

    /// A blob from a vector of exactly [`BYTES_PER_BLOB`] bytes, without a copy.
    pub fn from_vec(bytes: Vec<u8>) -> Option<Blob> {
        bytes.into_boxed_slice().try_into().ok().map(Blob)
    }

    /// The blob's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Which network form a sidecar takes: which proofs it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SidecarForm {
    /// EIP-7594 (Osaka and later): wrapper version 1 and 128 cell proofs per blob. What
    /// mainnet's nodes take since Osaka.
    #[default]
    Eip7594,
    /// EIP-4844 (Cancun, Prague): one KZG proof per blob.
    Eip4844,
}

impl SidecarForm {
    /// How many proofs a sidecar of this form carries for `blobs` blobs.
    pub fn proof_count(self, blobs: usize) -> usize {
        match self {
            SidecarForm::Eip4844 => blobs,
            SidecarForm::Eip7594 => blobs.saturating_mul(CELLS_PER_EXT_BLOB),
        }
    }

    /// The form's name as reports show it.
    pub fn name(self) -> &'static str {
        match self {
            SidecarForm::Eip7594 => "eip7594",
            SidecarForm::Eip4844 => "eip4844",
        }
    }
}

/// The blobs of a type-3 transaction with their KZG commitments and proofs. It travels with
/// the transaction to the node (`eth_sendRawTransaction`) but is not signed and is not part
/// of the transaction's hash; the transaction commits to it through its versioned hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSidecar {
    pub form: SidecarForm,
    pub blobs: Vec<Blob>,
    /// One commitment per blob.
    pub commitments: Vec<Bytes48>,
    /// One proof per blob (EIP-4844), or [`CELLS_PER_EXT_BLOB`] per blob, blob by blob
    /// (EIP-7594).
    pub proofs: Vec<Bytes48>,
}

/// Why a sidecar could not be built or does not match its transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The data given for a blob is empty.
    #[error("the data is empty: a blob of nothing still pays for 131072 bytes of blob gas")]
    EmptyData,
    /// The data does not fit in one blob.
    #[error(
        "{len} bytes do not fit in one blob: the simple encoding holds at most \
         {SIMPLE_ENCODING_CAPACITY} bytes per blob (31 of every 32)"
    )]
    TooLarge {
        /// The data's length.
        len: usize,
    },
    /// The sidecar's lists do not fit together or with the transaction.
    #[error("{0}")]
    Mismatch(String),
    /// A blob is not a list of field elements below the BLS12-381 modulus.
    #[error("blob {index} is not a valid blob: {reason}")]
    InvalidBlob {
        /// The blob's position.
        index: usize,
        /// What the KZG library objected to.
        reason: String,
    },
    /// A commitment's versioned hash is not the transaction's.
    #[error(
        "blob {index}'s commitment hashes to {computed}, but the transaction's versioned hash \
         {index} is {signed}: the sidecar is not the one the transaction was signed with"
    )]
    HashMismatch {
        /// The blob's position.
        index: usize,
        /// The versioned hash of the sidecar's commitment.
        computed: String,
        /// The versioned hash the transaction carries.
        signed: String,
    },
    /// The KZG proofs do not verify.
    #[error("the sidecar's KZG proofs do not verify against its blobs and commitments")]
    BadProofs,
    /// The KZG library failed.
    #[error("the KZG library failed: {0}")]
    Kzg(String),
}

/// The versioned hash of a KZG commitment: `0x01 || sha256(commitment)[1..]`.
pub fn kzg_to_versioned_hash(commitment: &Bytes48) -> B256 {
    let mut hash: B256 = Sha256::digest(commitment).into();
    hash[0] = VERSIONED_HASH_VERSION_KZG;
    hash
}

/// `data` in one blob with the simple encoding (the one alloy's `SimpleCoder` and `cast
/// send --blob` use): the first field element holds the data's length as a big-endian
/// u64 in its bytes 1..9, then each field element holds 31 bytes of data in its bytes
/// 1..32; its byte 0, and everything after the data, is 0.
pub fn encode_simple(data: &[u8]) -> Result<Blob, BlobError> {
    if data.is_empty() {
        return Err(BlobError::EmptyData);
    }
    if data.len() > SIMPLE_ENCODING_CAPACITY {
        return Err(BlobError::TooLarge { len: data.len() });
    }
    // Built on the heap: a 128 KiB array on the stack is copied several times in a debug
    // build, and a few such frames overflow a thread's stack.
    let mut blob = vec![0u8; BYTES_PER_BLOB];
    blob[1..9].copy_from_slice(&(data.len() as u64).to_be_bytes());
    for (chunk, element) in data.chunks(31).zip(blob.chunks_mut(32).skip(1)) {
        element[1..1 + chunk.len()].copy_from_slice(chunk);
    }
    Blob::from_vec(blob).ok_or(BlobError::TooLarge { len: data.len() })
}

/// The data a blob holds in the simple encoding, or `None` if it is not such a blob.
pub fn decode_simple(blob: &Blob) -> Option<Vec<u8>> {
    let bytes = blob.as_bytes();
    let len_bytes: [u8; 8] = bytes.get(1..9)?.try_into().ok()?;
    let len = usize::try_from(u64::from_be_bytes(len_bytes)).ok()?;
    if bytes[0] != 0 || len == 0 || len > SIMPLE_ENCODING_CAPACITY {
        return None;
    }
    let mut data = Vec::with_capacity(len);
    for element in bytes.chunks(32).skip(1) {
        if element[0] != 0 {
            return None;
        }
        let take = (len - data.len()).min(31);
        data.extend_from_slice(&element[1..1 + take]);
        if data.len() == len {
            break;
        }
    }
    Some(data)
}

impl BlobSidecar {
    /// The versioned hashes of the sidecar's commitments, in order: what the transaction
    /// signs.
    pub fn versioned_hashes(&self) -> Vec<B256> {
        self.commitments.iter().map(kzg_to_versioned_hash).collect()
    }

    /// Checks that the lists fit together: one commitment per blob, and as many proofs as
    /// the form has.
    pub fn check_shape(&self) -> Result<(), BlobError> {
        let blobs = self.blobs.len();
        if self.commitments.len() != blobs {
            return Err(BlobError::Mismatch(format!(
                "the sidecar has {blobs} blobs and {} commitments; each blob has one",
                self.commitments.len()
            )));
        }
        let proofs = self.form.proof_count(blobs);
        if self.proofs.len() != proofs {
            return Err(BlobError::Mismatch(format!(
                "the {} sidecar has {blobs} blobs and {} proofs; it needs {proofs}",
                self.form.name(),
                self.proofs.len()
            )));
        }
        Ok(())
    }

    /// Checks that the sidecar is the one `versioned_hashes` commit to: its shape, each
    /// commitment's versioned hash, and (with the `kzg` feature) every proof.
    pub fn check_against(&self, versioned_hashes: &[B256]) -> Result<(), BlobError> {
        self.check_shape()?;
        if versioned_hashes.len() != self.blobs.len() {
            return Err(BlobError::Mismatch(format!(
                "the transaction signs {} versioned hashes but the sidecar has {} blobs",
                versioned_hashes.len(),
                self.blobs.len()
            )));
        }
        for (index, (computed, signed)) in self
            .versioned_hashes()
            .iter()
            .zip(versioned_hashes)
            .enumerate()
        {
            if computed != signed {
                return Err(BlobError::HashMismatch {
                    index,
                    computed: format!("0x{}", hex::encode(computed)),
                    signed: format!("0x{}", hex::encode(signed)),
                });
            }
        }
        #[cfg(feature = "kzg")]
        self.verify_proofs()?;
        Ok(())
    }
}

#[cfg(feature = "kzg")]
mod kzg {
    //! KZG commitments and proofs with c-kzg and the trusted setup it bundles (Ethereum's
    //! KZG ceremony output).

    use c_kzg::{ethereum_kzg_settings, Bytes48 as KzgBytes48, KzgSettings};

    use super::{Blob, BlobError, BlobSidecar, SidecarForm, CELLS_PER_EXT_BLOB};

    fn settings() -> &'static KzgSettings {
        // Precompute 0: loading is fastest, and a command signs a handful of blobs at most.
        ethereum_kzg_settings(0)
    }

    /// c-kzg's copies of `blobs`, made in place on the heap (see `encode_simple`).
    fn kzg_blobs(blobs: &[Blob]) -> Vec<c_kzg::Blob> {
        let mut copies = vec![c_kzg::Blob::default(); blobs.len()];
        for (copy, blob) in copies.iter_mut().zip(blobs) {
            copy.copy_from_slice(blob.as_bytes());
        }
        copies
    }

    fn invalid(index: usize) -> impl Fn(c_kzg::Error) -> BlobError {
        move |err| BlobError::InvalidBlob {
            index,
            reason: format!(
                "a field element is not below the BLS12-381 modulus, or the KZG library \
                 refused it ({err:?})"
            ),
        }
    }

    impl BlobSidecar {
        /// The sidecar of `blobs` in `form`: each blob's commitment and its proof (EIP-4844)
        /// or its 128 cell proofs (EIP-7594).
        pub fn build(blobs: Vec<Blob>, form: SidecarForm) -> Result<BlobSidecar, BlobError> {
            let kzg = settings();
            let mut commitments = Vec::with_capacity(blobs.len());
            let mut proofs = Vec::with_capacity(form.proof_count(blobs.len()));
            for (index, b) in kzg_blobs(&blobs).iter().enumerate() {
                let commitment = kzg.blob_to_kzg_commitment(b).map_err(invalid(index))?;
                let commitment_bytes = commitment.to_bytes();
                match form {
                    SidecarForm::Eip4844 => {
                        let proof = kzg
                            .compute_blob_kzg_proof(b, &commitment_bytes)
                            .map_err(invalid(index))?;
                        proofs.push(proof.to_bytes().into_inner());
                    }
                    SidecarForm::Eip7594 => {
                        let (_, cell_proofs) = kzg
                            .compute_cells_and_kzg_proofs(b)
                            .map_err(invalid(index))?;
                        proofs.extend(cell_proofs.iter().map(|p| p.to_bytes().into_inner()));
                    }
                }
                commitments.push(commitment_bytes.into_inner());
            }
            Ok(BlobSidecar {
                form,
                blobs,
                commitments,
                proofs,
            })
        }

        /// Verifies every proof against its blob and commitment.
        pub fn verify_proofs(&self) -> Result<(), BlobError> {
            self.check_shape()?;
            let kzg = settings();
            let commitments: Vec<KzgBytes48> = self
                .commitments
                .iter()
                .map(|c| KzgBytes48::new(*c))
                .collect();
            let proofs: Vec<KzgBytes48> = self.proofs.iter().map(|p| KzgBytes48::new(*p)).collect();
            let verified = match self.form {
                SidecarForm::Eip4844 => {
                    let blobs = kzg_blobs(&self.blobs);
                    kzg.verify_blob_kzg_proof_batch(&blobs, &commitments, &proofs)
                }
                SidecarForm::Eip7594 => {
                    let mut cells = Vec::with_capacity(proofs.len());
                    let mut cell_commitments = Vec::with_capacity(proofs.len());
                    let mut indices = Vec::with_capacity(proofs.len());
                    for (index, (b, commitment)) in
                        kzg_blobs(&self.blobs).iter().zip(&commitments).enumerate()
                    {
                        let blob_cells = kzg.compute_cells(b).map_err(invalid(index))?;
                        cells.extend(blob_cells.iter().cloned());
                        cell_commitments
                            .extend(std::iter::repeat_n(*commitment, CELLS_PER_EXT_BLOB));
                        indices.extend(0..CELLS_PER_EXT_BLOB as u64);
                    }
                    kzg.verify_cell_kzg_proof_batch(&cell_commitments, &indices, &cells, &proofs)
                }
            };
            match verified {
                Ok(true) => Ok(()),
                Ok(false) => Err(BlobError::BadProofs),
                // A commitment or proof that is not a point on the curve.
                Err(c_kzg::Error::CError(_)) => Err(BlobError::BadProofs),
                Err(err) => Err(BlobError::Kzg(format!("{err:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_simple_encoding_puts_the_length_first_and_31_bytes_in_each_element() {
        let data: Vec<u8> = (1..=40).collect();
        let blob = encode_simple(&data).unwrap();
        let b = blob.as_bytes();
        assert_eq!(&b[..32], &{
            let mut first = [0u8; 32];
            first[8] = 40;
            first
        });
        assert_eq!(b[32], 0);
        assert_eq!(&b[33..64], &data[..31]);
        assert_eq!(b[64], 0);
        assert_eq!(&b[65..74], &data[31..]);
        assert!(b[74..].iter().all(|&x| x == 0));
        assert_eq!(decode_simple(&blob).unwrap(), data);
    }

    #[test]
    fn the_simple_encoding_refuses_empty_and_oversized_data() {
        assert_eq!(encode_simple(&[]), Err(BlobError::EmptyData));
        let full = vec![0xff; SIMPLE_ENCODING_CAPACITY];
        assert_eq!(decode_simple(&encode_simple(&full).unwrap()).unwrap(), full);
        assert_eq!(
            encode_simple(&[1; SIMPLE_ENCODING_CAPACITY + 1]),
            Err(BlobError::TooLarge {
                len: SIMPLE_ENCODING_CAPACITY + 1
            })
        );
    }

    #[test]
    fn a_versioned_hash_is_version_one_and_sha256_of_the_commitment() {
        let commitment = [7u8; 48];
        let hash = kzg_to_versioned_hash(&commitment);
        let digest = Sha256::digest(commitment);
        assert_eq!(hash[0], 1);
        assert_eq!(&hash[1..], &digest[1..]);
    }

    #[cfg(feature = "kzg")]
    #[test]
    fn sidecars_of_both_forms_verify_and_a_changed_byte_does_not() {
        let blob = encode_simple(b"hello blobs").unwrap();
        for form in [SidecarForm::Eip4844, SidecarForm::Eip7594] {
            let sidecar = BlobSidecar::build(vec![blob.clone()], form).unwrap();
            assert_eq!(sidecar.proofs.len(), form.proof_count(1));
            sidecar.check_against(&sidecar.versioned_hashes()).unwrap();
            let mut tampered = sidecar.clone();
            tampered.blobs[0].0[40] ^= 1;
            assert_eq!(tampered.verify_proofs(), Err(BlobError::BadProofs));
            let mut wrong_hash = sidecar.versioned_hashes();
            wrong_hash[0][31] ^= 1;
            assert!(matches!(
                sidecar.check_against(&wrong_hash),
                Err(BlobError::HashMismatch { index: 0, .. })
            ));
        }
        // A field element at or above the modulus is not a blob.
        let mut bad = vec![0u8; BYTES_PER_BLOB];
        bad[0] = 0xff;
        let bad = Blob::from_vec(bad).unwrap();
        assert!(matches!(
            BlobSidecar::build(vec![bad], SidecarForm::Eip4844),
            Err(BlobError::InvalidBlob { index: 0, .. })
        ));
    }
}
