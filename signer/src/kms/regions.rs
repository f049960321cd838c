//! One account signed for in several Regions: a multi-Region KMS key has the same key
//! material, and so the same address, in each, and `MultiRegionSigner` asks the Regions in
//! order, going on to the next when one cannot be reached or throttles past its retries.
//! A refusal that another Region would repeat (a disabled key, a wrong signature, missing
//! permissions) is returned at once. A Region that failed is asked after the others until a
//! signature or a [`MultiRegionSigner::check`] finds it answering again, so that one outage
//! costs one failover, not one per signature.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kms::error::SdkError;

use crate::address::Address;
use crate::hash::B256;
use crate::kms::{KmsError, KmsErrorKind, KmsSigner};
use crate::sign::Signer;
use crate::signature::Signature;
use crate::Error;

/// The same account's key in several Regions, tried in the order given, the Regions last
/// seen down after the others. Cheap to clone: clones share the Regions and their health.
#[derive(Debug, Clone)]
pub struct MultiRegionSigner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    regions: Vec<Region>,
    address: Address,
}

#[derive(Debug)]
struct Region {
    name: String,
    signer: KmsSigner,
    state: Mutex<State>,
}

/// What one Region has shown so far.
#[derive(Debug, Default)]
struct State {
    /// Why the Region was last seen down; `None` while it answers.
    down: Option<String>,
    signatures: u64,
    failovers: u64,
}

/// One Region of a [`MultiRegionSigner`] as last seen, by a signature or a [`check`].
///
/// [`check`]: MultiRegionSigner::check
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionHealth {
    /// The Region.
    pub region: String,
    /// The key's ARN there.
    pub key_arn: String,
    /// Whether its last call was answered.
    pub up: bool,
    /// Why it is down, when it is.
    pub error: Option<String>,
    /// Signatures it made.
    pub signatures: u64,
    /// Signatures that moved on from it to another Region.
    pub failovers: u64,
}

impl Region {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
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
        let regions = regions
            .into_iter()
            .map(|(name, signer)| Region {
                name,
                signer,
                state: Mutex::default(),
            })
            .collect();
        Ok(MultiRegionSigner {
            inner: Arc::new(Inner {
                regions,
                address: expected,
            }),
        })
    }

    /// A key in one Region only: signs as `signer` does, with its health reported the same
    /// way as a multi-Region key's.
    pub fn one(region: impl Into<String>, signer: KmsSigner) -> Self {
        let address = signer.address();
        MultiRegionSigner {
            inner: Arc::new(Inner {
                regions: vec![Region {
                    name: region.into(),
                    signer,
                    state: Mutex::default(),
                }],
                address,
            }),
        }
    }

    /// The account's address, the same in every Region.
    pub fn address(&self) -> Address {
        self.inner.address
    }

    /// The Regions, in the order given.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.inner.regions.iter().map(|r| r.name.as_str())
    }

    /// The key's ARN in the Region that would be asked first now (the first one up).
    pub fn key_arn(&self) -> &str {
        self.ordered()
            .first()
            .map_or("", |region| region.signer.key_arn())
    }

    /// Every Region's health as last seen, in the order given.
    pub fn health(&self) -> Vec<RegionHealth> {
        self.inner
            .regions
            .iter()
            .map(|region| {
                let state = region.state();
                RegionHealth {
                    region: region.name.clone(),
                    key_arn: region.signer.key_arn().to_owned(),
                    up: state.down.is_none(),
                    error: state.down.clone(),
                    signatures: state.signatures,
                    failovers: state.failovers,
                }
            })
            .collect()
    }

    /// Asks every Region at once whether its key answers (one `GetPublicKey` each, a single
    /// attempt of at most `timeout`), records it, and returns every Region's health. A
    /// Region taken out by a failed signature comes back in this way; a key in one Region
    /// is not probed (its signatures say how it is).
    pub async fn check(&self, timeout: Duration) -> Vec<RegionHealth> {
        if self.inner.regions.len() > 1 {
            let probes = self.inner.regions.iter().map(|region| async move {
                let outcome = region.signer.probe(timeout).await;
                region.state().down = outcome.err().map(|err| err.to_string());
            });
            futures_util::future::join_all(probes).await;
        }
        self.health()
    }

    /// The Regions up, in the order given, then the ones down (asked last, in case they
    /// are back).
    fn ordered(&self) -> Vec<&Region> {
        let (mut up, down): (Vec<&Region>, Vec<&Region>) = self
            .inner
            .regions
            .iter()
            .partition(|region| region.state().down.is_none());
        up.extend(down);
        up
    }

    /// Signs with the first Region that answers, and says which one did.
    pub async fn sign_digest_in_region(&self, digest: &B256) -> Result<(Signature, &str), Error> {
        self.sign(digest)
            .await
            .map(|(signature, _, region)| (signature, region))
    }

    /// [`KmsSigner::sign_digest_with_request_id`] in the first Region that answers: the
    /// signature and the request id of the `Sign` call that made it.
    pub async fn sign_digest_with_request_id(
        &self,
        digest: &B256,
    ) -> Result<(Signature, Option<String>), Error> {
        self.sign(digest)
            .await
            .map(|(signature, request_id, _)| (signature, request_id))
    }

    async fn sign(&self, digest: &B256) -> Result<(Signature, Option<String>, &str), Error> {
        let mut last = None;
        for region in self.ordered() {
            match region.signer.sign_digest_with_request_id(digest).await {
                Ok((signature, request_id)) => {
                    let mut state = region.state();
                    state.down = None;
                    state.signatures += 1;
                    return Ok((signature, request_id, region.name.as_str()));
                }
                Err(err) if matches!(&err, Error::Kms(kms) if fails_over(kms)) => {
                    tracing::warn!(region = %region.name, error = %err, "KMS Region unavailable; trying the next");
                    let mut state = region.state();
                    state.down = Some(err.to_string());
                    state.failovers += 1;
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
        self.inner.address
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
