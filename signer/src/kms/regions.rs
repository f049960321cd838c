//! One account signed for in several Regions: a multi-Region KMS key has the same key
//! material, and so the same address, in each, and `MultiRegionSigner` asks the Regions in
//! order, going on to the next when one cannot be reached or throttles past its retries.
//! A refusal that another Region would repeat (a disabled key, a wrong signature, missing
//! permissions) is returned at once.

use aws_sdk_kms::error::SdkError;

use crate::address::Address;
use crate::hash::B256;
use crate::kms::{KmsError, KmsErrorKind, KmsSigner};
use crate::sign::Signer;
use crate::signature::Signature;
use crate::Error;

/// The same account's key in several Regions, tried in the order given.
#[derive(Debug, Clone)]
pub struct MultiRegionSigner {
    regions: Vec<(String, KmsSigner)>,
    address: Address,
}

impl MultiRegionSigner {
    /// The signers, each with its Region, first the one to ask first. Refused when there is
    /// none, or when one is another address (not a replica of the same key).
    pub fn new(regions: Vec<(String, KmsSigner)>) -> Result<Self, KmsError> {
        let Some((_, first)) = regions.first() else {
            return Err(KmsError::new(
                KmsErrorKind::IncompleteResponse {
                    operation: "GetPublicKey",
                    field: "a Region",
                },
                "",
                None,
            ));
        };
        let expected = first.address();
        for (_, signer) in &regions {
            if signer.address() != expected {
                return Err(KmsError::new(
                    KmsErrorKind::AddressMismatch {
                        key_arn: signer.key_arn().to_owned(),
                        expected,
                        actual: signer.address(),
                    },
                    signer.key_id(),
                    None,
                ));
            }
        }
        Ok(MultiRegionSigner {
            regions,
            address: expected,
        })
    }

    /// The Regions, in the order they are asked.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(|(region, _)| region.as_str())
    }

    /// Signs with the first Region that answers, and says which one did.
    pub async fn sign_digest_in_region(&self, digest: &B256) -> Result<(Signature, &str), Error> {
        let mut last = None;
        for (region, signer) in &self.regions {
            match signer.sign_digest(digest).await {
                Ok(signature) => return Ok((signature, region)),
                Err(err) if matches!(&err, Error::Kms(kms) if fails_over(kms)) => {
                    tracing::warn!(region = %region, error = %err, "KMS Region unavailable; trying the next");
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        // `new` refuses an empty list, so at least one Region was asked.
        Err(last.unwrap_or_else(|| {
            KmsError::new(
                KmsErrorKind::IncompleteResponse {
                    operation: "Sign",
                    field: "a Region",
                },
                "",
                None,
            )
            .into()
        }))
    }
}

/// Whether another Region may succeed where this one failed: no answer at all (the
/// endpoint is down or unreachable), a server error, or throttling past the retries.
pub fn fails_over(err: &KmsError) -> bool {
    match err.kind() {
        KmsErrorKind::Throttled { .. } => true,
        KmsErrorKind::Sign(sdk) => unanswered(sdk),
        KmsErrorKind::GetPublicKey(sdk) => unanswered(sdk),
        _ => false,
    }
}

fn unanswered<E>(err: &SdkError<E>) -> bool {
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => service.raw().status().is_server_error(),
        _ => false,
    }
}

impl Signer for MultiRegionSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_digest(&self, digest: &B256) -> Result<Signature, Error> {
        self.sign_digest_in_region(digest)
            .await
            .map(|(signature, _)| signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::types::KeyState;

    fn error(kind: KmsErrorKind) -> KmsError {
        KmsError::new(kind, "mrk-1", None)
    }

    #[test]
    fn only_throttling_and_no_answer_fail_over() {
        assert!(fails_over(&error(KmsErrorKind::Throttled {
            operation: "Sign",
            max_attempts: 10,
        })));
        for kind in [
            KmsErrorKind::KeyNotFound,
            KmsErrorKind::KeyState {
                state: KeyState::Disabled,
                detail: String::new(),
            },
            KmsErrorKind::WrongKeySpec {
                key_spec: "ECC_NIST_P256".into(),
            },
        ] {
            assert!(!fails_over(&error(kind)));
        }
    }

    #[test]
    fn no_region_is_refused() {
        assert!(MultiRegionSigner::new(Vec::new()).is_err());
    }
}
