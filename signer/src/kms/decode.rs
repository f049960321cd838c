//! Pure reading of KMS's answers: `GetPublicKey` into the key's ARN and public key (or why
//! the key is no Ethereum account), `Sign` into a checked signature, `DescribeKey` into the
//! key's state. No I/O: the answers are values, so every check is unit-tested offline.

use aws_sdk_kms::operation::describe_key::DescribeKeyOutput;
use aws_sdk_kms::operation::get_public_key::GetPublicKeyOutput;
use aws_sdk_kms::operation::sign::SignOutput;
use aws_sdk_kms::primitives::DateTimeFormat;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};

use super::error::{state_advice, KmsError, KmsErrorKind};
use crate::hash::B256;
use crate::public_key::PublicKey;
use crate::signature::{finalize_prepared, parse_der, PreparedKey, Signature};

/// A key that can sign for an Ethereum account, as `GetPublicKey` described it.
#[derive(Debug)]
pub(super) struct AccountKey {
    /// The ARN the key id resolved to.
    pub key_arn: String,
    pub public_key: PublicKey,
}

/// The key in a `GetPublicKey` answer, if it is a secp256k1 signing key. `key_id` is the key
/// as the caller gave it and `request_id` the answer's, for the error.
pub(super) fn account_key(
    answer: &GetPublicKeyOutput,
    key_id: &str,
    request_id: Option<&str>,
) -> Result<AccountKey, KmsError> {
    // Every refusal below comes from this one answer, so each names its request id.
    let refuse = |kind| KmsError::new(kind, key_id, request_id);
    let incomplete = |field| {
        refuse(KmsErrorKind::IncompleteResponse {
            operation: "GetPublicKey",
            field,
        })
    };
    let key_spec = answer.key_spec().ok_or_else(|| incomplete("KeySpec"))?;
    if *key_spec != KeySpec::EccSecgP256K1 {
        return Err(refuse(KmsErrorKind::WrongKeySpec {
            key_spec: key_spec.as_str().to_owned(),
        }));
    }
    let key_usage = answer.key_usage().ok_or_else(|| incomplete("KeyUsage"))?;
    if *key_usage != KeyUsageType::SignVerify {
        return Err(refuse(KmsErrorKind::WrongKeyUsage {
            key_usage: key_usage.as_str().to_owned(),
        }));
    }
    let der = answer.public_key().ok_or_else(|| incomplete("PublicKey"))?;
    let key_arn = answer
        .key_id()
        .ok_or_else(|| incomplete("KeyId"))?
        .to_owned();
    let public_key = PublicKey::from_spki_der(der.as_ref())
        .map_err(|source| refuse(KmsErrorKind::PublicKey(source)))?;
    Ok(AccountKey {
        key_arn,
        public_key,
    })
}

/// The signature of `digest` in a `Sign` answer, checked: strict DER, low `s`, and recovery
/// to `key`'s address.
pub(super) fn signature(
    answer: &SignOutput,
    digest: &B256,
    key: &PreparedKey,
    key_id: &str,
    request_id: Option<&str>,
) -> Result<Signature, KmsError> {
    let refuse = |kind| KmsError::new(kind, key_id, request_id);
    let der = answer.signature().ok_or_else(|| {
        refuse(KmsErrorKind::IncompleteResponse {
            operation: "Sign",
            field: "Signature",
        })
    })?;
    parse_der(der.as_ref())
        .and_then(|(r, s)| finalize_prepared(digest, &r, &s, key))
        .map_err(|source| refuse(KmsErrorKind::BadSignature(source)))
}

/// What `DescribeKey` says about a key's state.
#[derive(Debug)]
pub(super) struct Described {
    pub state: KeyState,
    deletion_date: Option<String>,
    request_id: Option<String>,
}

impl Described {
    /// The error for a key that cannot sign in this state.
    pub fn into_error(self, key_id: String) -> KmsError {
        let kind = KmsErrorKind::KeyState {
            detail: state_advice(&key_id, &self.state, self.deletion_date.as_deref()),
            state: self.state,
        };
        KmsError::new(kind, key_id, self.request_id.as_deref())
    }
}

/// The key state and deletion date in a `DescribeKey` answer, if it has a state.
pub(super) fn described(answer: &DescribeKeyOutput, request_id: Option<&str>) -> Option<Described> {
    let metadata = answer.key_metadata()?;
    Some(Described {
        state: metadata.key_state()?.clone(),
        deletion_date: metadata.deletion_date().map(|date| {
            date.fmt(DateTimeFormat::DateTime)
                .unwrap_or_else(|_| date.to_string())
        }),
        request_id: request_id.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::primitives::{Blob, DateTime};
    use aws_sdk_kms::types::KeyMetadata;
    use k256::ecdsa::SigningKey;

    use super::*;
    use crate::signature::{encode_der, recover_signer};

    /// The EIP-155 example's key (0x46...46, which the leak scan knows).
    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x46; 32]).unwrap()
    }

    /// The SubjectPublicKeyInfo KMS returns for a secp256k1 key.
    fn spki(key: &SigningKey) -> Blob {
        let mut der = hex::decode("3056301006072a8648ce3d020106052b8104000a034200").unwrap();
        der.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
        Blob::new(der)
    }

    fn get_public_key(
    ) -> aws_sdk_kms::operation::get_public_key::builders::GetPublicKeyOutputBuilder {
        GetPublicKeyOutput::builder()
            .key_id("arn:aws:kms:us-east-1:1:key/k1")
            .key_spec(KeySpec::EccSecgP256K1)
            .key_usage(KeyUsageType::SignVerify)
            .public_key(spki(&key()))
    }

    fn refusal(answer: GetPublicKeyOutput) -> String {
        let err = account_key(&answer, "alias/k1", Some("r1")).unwrap_err();
        assert_eq!(err.request_id(), Some("r1"));
        err.to_string()
    }

    #[test]
    fn a_secp256k1_signing_key_is_an_account_named_by_its_arn() {
        let key = account_key(&get_public_key().build(), "alias/k1", None).unwrap();
        assert_eq!(key.key_arn, "arn:aws:kms:us-east-1:1:key/k1");
        assert_eq!(
            key.public_key,
            PublicKey::from(*self::key().verifying_key())
        );
    }

    #[test]
    fn a_key_that_is_no_account_is_refused_with_the_answers_request_id() {
        let rsa = get_public_key().key_spec(KeySpec::Rsa2048).build();
        assert!(refusal(rsa).contains("key spec RSA_2048 is not ECC_SECG_P256K1"));
        let encrypting = get_public_key()
            .key_usage(KeyUsageType::EncryptDecrypt)
            .build();
        assert!(refusal(encrypting).contains("key usage ENCRYPT_DECRYPT is not SIGN_VERIFY"));
        let garbled = get_public_key().public_key(Blob::new(b"not der")).build();
        let err = account_key(&garbled, "alias/k1", None).unwrap_err();
        assert!(matches!(err.kind(), KmsErrorKind::PublicKey(_)), "{err:?}");
        for (answer, field) in [
            (get_public_key().set_key_spec(None).build(), "KeySpec"),
            (get_public_key().set_key_usage(None).build(), "KeyUsage"),
            (get_public_key().set_public_key(None).build(), "PublicKey"),
            (get_public_key().set_key_id(None).build(), "KeyId"),
        ] {
            assert_eq!(
                refusal(answer),
                format!("KMS GetPublicKey for key alias/k1 returned no {field} (request id r1)")
            );
        }
    }

    #[test]
    fn a_sign_answer_is_checked_to_recover_to_the_key() {
        let digest: B256 = [7; 32];
        let (signature, _) = key().sign_prehash_recoverable(&digest).unwrap();
        let (r, s) = signature.split_bytes();
        let der = encode_der(&r.into(), &s.into());
        let prepared = PreparedKey::new(PublicKey::from(*key().verifying_key()));
        let answer = SignOutput::builder()
            .signature(Blob::new(der.clone()))
            .build();
        let checked = super::signature(&answer, &digest, &prepared, "k1", None).unwrap();
        assert!(checked.is_low_s());
        assert_eq!(
            recover_signer(&digest, &checked).unwrap(),
            prepared.key().address()
        );

        // Another digest's signature does not recover to the key; a missing one is named.
        let other = super::signature(&answer, &[8; 32], &prepared, "k1", Some("r1"));
        let err = other.unwrap_err();
        assert!(
            matches!(err.kind(), KmsErrorKind::BadSignature(_)),
            "{err:?}"
        );
        assert_eq!(err.request_id(), Some("r1"));
        let empty = SignOutput::builder().build();
        let err = super::signature(&empty, &digest, &prepared, "k1", Some("r1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KMS Sign for key k1 returned no Signature (request id r1)"
        );
        let garbled = SignOutput::builder()
            .signature(Blob::new(&der[1..]))
            .build();
        let err = super::signature(&garbled, &digest, &prepared, "k1", None).unwrap_err();
        assert!(
            matches!(err.kind(), KmsErrorKind::BadSignature(_)),
            "{err:?}"
        );
    }

    #[test]
    fn describe_key_gives_the_state_and_deletion_date() {
        let metadata = KeyMetadata::builder()
            .key_id("abc")
            .key_state(KeyState::PendingDeletion)
            .deletion_date(DateTime::from_secs(1_798_156_800))
            .build()
            .unwrap();
        let answer = DescribeKeyOutput::builder().key_metadata(metadata).build();
        let described = described(&answer, Some("r2")).unwrap();
        assert_eq!(described.state, KeyState::PendingDeletion);
        let err = described.into_error("alias/old".into());
        assert_eq!(err.request_id(), Some("r2"));
        assert!(
            err.to_string()
                .contains("scheduled for deletion on 2026-12-25T00:00:00Z"),
            "{err}"
        );
        assert!(super::described(&DescribeKeyOutput::builder().build(), None).is_none());
    }
}
