//! [`KmsError`], the one error of [`KmsSigner`](super::KmsSigner), with its messages, and the
//! pure reading of a failed KMS call: throttled, no such key, or a key state that forbids it.

use std::fmt;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::get_public_key::GetPublicKeyError;
use aws_sdk_kms::operation::sign::SignError;
use aws_sdk_kms::types::KeyState;

use crate::address::Address;
use crate::public_key::{PublicKeyError, ETHEREUM_KEY_SPEC};
use crate::signature::SignatureError;

/// Why a KMS key cannot be used as an Ethereum account, or a KMS call failed.
///
/// One error for every failure: [`KmsError::kind`] says what went wrong, and every error
/// names the key as the caller gave it and, for failed calls, the KMS request id, which AWS
/// support asks for. The message is meant for the user as is.
#[derive(Debug)]
pub struct KmsError {
    kind: KmsErrorKind,
    key_id: String,
    request_id: Option<String>,
}

/// What went wrong, in a [`KmsError`]: only what differs from one failure to another; the
/// key and the request id are in the error itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum KmsErrorKind {
    /// The key does not exist in this account and region (or the caller may not see it).
    KeyNotFound,
    /// The key exists but its state forbids signing (Disabled, PendingDeletion, ...).
    KeyState {
        /// The KMS key state, for example [`KeyState::PendingDeletion`]; states KMS only
        /// names in an error message are [`KeyState::Unknown`] with that message.
        state: KeyState,
        /// More about the state and what to do, from DescribeKey when it is permitted.
        detail: String,
    },
    /// The key is not a secp256k1 key.
    WrongKeySpec {
        /// The key spec KMS reported.
        key_spec: String,
    },
    /// The key is not a signing key.
    WrongKeyUsage {
        /// The key usage KMS reported.
        key_usage: String,
    },
    /// The public key KMS returned is not a usable secp256k1 key.
    PublicKey(PublicKeyError),
    /// A KMS response lacked a field it always carries.
    IncompleteResponse {
        /// The KMS operation.
        operation: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// KMS answered `Sign` with a signature that is malformed or does not recover to the
    /// key's address. This should never happen; the request id lets AWS support look.
    BadSignature(SignatureError),
    /// KMS kept refusing with `ThrottlingException` until the signer's retries ran out: the
    /// account's KMS request quota is exhausted, by this process or by others sharing it.
    Throttled {
        /// The KMS operation (`GetPublicKey` or `Sign`).
        operation: &'static str,
        /// The most attempts the signer's retry policy makes for one call.
        max_attempts: u32,
    },
    /// The key is not the account the caller expected: typically an alias that was pointed
    /// at another key. Nothing was signed.
    AddressMismatch {
        /// The ARN the key id resolved to.
        key_arn: String,
        /// The address the caller expected.
        expected: Address,
        /// The address of the key KMS resolved.
        actual: Address,
    },
    /// `GetPublicKey` failed for another reason (credentials, network, permissions, ...).
    GetPublicKey(Box<SdkError<GetPublicKeyError>>),
    /// `Sign` failed for another reason (credentials, network, permissions, ...).
    Sign(Box<SdkError<SignError>>),
}

impl KmsError {
    pub(super) fn new(
        kind: KmsErrorKind,
        key_id: impl Into<String>,
        request_id: Option<&str>,
    ) -> Self {
        KmsError {
            kind,
            key_id: key_id.into(),
            request_id: request_id.map(str::to_owned),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &KmsErrorKind {
        &self.kind
    }

    /// What went wrong, by value: for a caller that keeps the SDK error.
    pub fn into_kind(self) -> KmsErrorKind {
        self.kind
    }

    /// The key as the caller gave it (a key id, alias or ARN).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The request id of the KMS call that failed or reported the problem, when there was
    /// an answer to take it from.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_id = &self.key_id;
        let request_id = self.request_id.as_deref().unwrap_or("unknown");
        match &self.kind {
            KmsErrorKind::KeyNotFound => write!(
                f,
                "KMS key {key_id} was not found in this account and region (request id \
                 {request_id}); check the key id, alias or ARN and the region"
            ),
            KmsErrorKind::KeyState { state, detail } => write!(
                f,
                "KMS key {key_id} cannot sign: its state is {}{detail}",
                state.as_str()
            ),
            KmsErrorKind::WrongKeySpec { key_spec } => write!(
                f,
                "KMS key {key_id}: key spec {key_spec} is not {ETHEREUM_KEY_SPEC}; an Ethereum \
                 account needs a key created with KeySpec={ETHEREUM_KEY_SPEC}"
            ),
            KmsErrorKind::WrongKeyUsage { key_usage } => write!(
                f,
                "KMS key {key_id}: key usage {key_usage} is not SIGN_VERIFY; an Ethereum \
                 account needs a key created with KeyUsage=SIGN_VERIFY"
            ),
            KmsErrorKind::PublicKey(source) => write!(f, "KMS key {key_id}: {source}"),
            KmsErrorKind::IncompleteResponse { operation, field } => write!(
                f,
                "KMS {operation} for key {key_id} returned no {field} (request id {request_id})"
            ),
            KmsErrorKind::BadSignature(_) => write!(
                f,
                "KMS Sign with key {key_id} returned an unusable signature (request id \
                 {request_id})"
            ),
            KmsErrorKind::Throttled {
                operation,
                max_attempts,
            } => write!(
                f,
                "KMS throttled {operation} for key {key_id} and was still refusing when the \
                 signer stopped retrying (up to {max_attempts} attempts with backoff, fewer \
                 once the retry quota is used up; request id {request_id}); lower the request \
                 rate (fewer concurrent signatures), or ask AWS for a higher KMS request quota"
            ),
            KmsErrorKind::AddressMismatch {
                key_arn,
                expected,
                actual,
            } => write!(
                f,
                "KMS key {key_id} is account {actual}, not the expected {expected}; if \
                 {key_id} is an alias, it now points at another key ({key_arn}): point it \
                 back, or use the key id of the account you meant"
            ),
            KmsErrorKind::GetPublicKey(err) if unreachable(err) => {
                write_unreachable(f, "GetPublicKey", key_id)
            }
            KmsErrorKind::Sign(err) if unreachable(err) => write_unreachable(f, "Sign", key_id),
            KmsErrorKind::GetPublicKey(_) => write!(
                f,
                "KMS GetPublicKey for key {key_id} failed (request id {request_id})"
            ),
            KmsErrorKind::Sign(_) => write!(
                f,
                "KMS Sign with key {key_id} failed (request id {request_id})"
            ),
        }
    }
}

/// Whether the call never got an answer (no connection, or no answer in time): nothing the
/// user typed is wrong, and the message says where to look instead of "failed".
fn unreachable<E>(err: &SdkError<E>) -> bool {
    matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    )
}

fn write_unreachable(f: &mut fmt::Formatter<'_>, operation: &str, key_id: &str) -> fmt::Result {
    write!(
        f,
        "cannot reach the KMS endpoint for {operation} with key {key_id}: check the endpoint \
         (--endpoint-url, AWS_ENDPOINT_URL), the region and the network (for LocalStack: \
         `cargo xtask localstack up`), then run the same command again"
    )
}

impl std::error::Error for KmsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            KmsErrorKind::PublicKey(source) => Some(source),
            KmsErrorKind::BadSignature(source) => Some(source),
            KmsErrorKind::GetPublicKey(source) => Some(&**source),
            KmsErrorKind::Sign(source) => Some(&**source),
            _ => None,
        }
    }
}

/// A KMS operation whose failures the signer reports: its name in messages, and the kind
/// that keeps the SDK error of any failure that is not about the key.
pub(super) trait Operation: ProvideErrorMetadata + Sized {
    /// The KMS operation, as messages name it.
    const NAME: &'static str;

    /// The kind for a failure that is not about the key, keeping the SDK error.
    fn other(err: SdkError<Self>) -> KmsErrorKind;
}

impl Operation for GetPublicKeyError {
    const NAME: &'static str = "GetPublicKey";

    fn other(err: SdkError<Self>) -> KmsErrorKind {
        KmsErrorKind::GetPublicKey(Box::new(err))
    }
}

impl Operation for SignError {
    const NAME: &'static str = "Sign";

    fn other(err: SdkError<Self>) -> KmsErrorKind {
        KmsErrorKind::Sign(Box::new(err))
    }
}

/// What a failed call says on its own, before the signer asks anything more.
#[derive(Debug)]
pub(super) enum Failure {
    /// The whole story: throttling, no such key, or the SDK's error.
    Kind(KmsErrorKind),
    /// The key's state forbids the call; DescribeKey may tell more (the deletion date).
    State(KeyState),
}

/// The error code KMS (and every AWS JSON service) gives a throttled request.
const THROTTLING: &str = "ThrottlingException";

/// Reads a failed call of operation `E`. Refusals are told apart by their error code, as
/// the SDK itself tells its modelled errors apart, so one reading serves every operation.
pub(super) fn classify<E: Operation>(err: SdkError<E>, max_attempts: u32) -> Failure {
    match err.code() {
        Some(THROTTLING) => Failure::Kind(KmsErrorKind::Throttled {
            operation: E::NAME,
            max_attempts,
        }),
        Some("NotFoundException") => Failure::Kind(KmsErrorKind::KeyNotFound),
        Some("DisabledException") => Failure::State(KeyState::Disabled),
        Some("KMSInvalidStateException") => Failure::State(state_from_message(err.message())),
        _ => Failure::Kind(E::other(err)),
    }
}

/// What the user can do about a key in `state`, as a suffix for the error message.
pub(super) fn state_advice(key_id: &str, state: &KeyState, deletion_date: Option<&str>) -> String {
    match state {
        KeyState::PendingDeletion => {
            let when = deletion_date
                .map(|date| format!(", scheduled for deletion on {date}"))
                .unwrap_or_default();
            format!(
                "{when}; until then the deletion can be cancelled with \
                 `aws kms cancel-key-deletion --key-id {key_id}` followed by \
                 `aws kms enable-key --key-id {key_id}`"
            )
        }
        KeyState::Disabled => format!("; enable it with `aws kms enable-key --key-id {key_id}`"),
        _ => String::new(),
    }
}

/// The key state named in a `KMSInvalidStateException` message. KMS words it differently
/// from the state names (AWS: "... is pending deletion."), so both forms are recognised; an
/// unrecognised message becomes [`KeyState::Unknown`] carrying the message itself.
fn state_from_message(message: Option<&str>) -> KeyState {
    let message = message.unwrap_or_default();
    let squashed: String = message
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let known = [
        KeyState::PendingDeletion,
        KeyState::PendingReplicaDeletion,
        KeyState::PendingImport,
        KeyState::Unavailable,
        KeyState::Disabled,
        KeyState::Creating,
        KeyState::Updating,
    ];
    known
        .into_iter()
        .find(|state| squashed.contains(&state.as_str().to_ascii_lowercase()))
        .unwrap_or_else(|| KeyState::from(format!("not usable ({message})").as_str()))
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::config::http::HttpResponse;
    use aws_sdk_kms::error::ErrorMetadata;
    use aws_sdk_kms::types::error::{
        DisabledException, KmsInvalidStateException, NotFoundException,
    };
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// `error` as the SDK reads a refusal off the wire (built with its code in the metadata).
    fn refused<E>(error: E) -> SdkError<E, HttpResponse> {
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap();
        SdkError::service_error(error, HttpResponse::new(status, SdkBody::empty()))
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    #[test]
    fn refusals_read_the_same_for_every_operation() {
        let not_found = || NotFoundException::builder().meta(meta("NotFoundException", "gone"));
        let disabled = || DisabledException::builder().meta(meta("DisabledException", "off"));
        let pending = || {
            let message = "arn:aws:kms:us-east-1:1:key/abc is pending deletion.";
            KmsInvalidStateException::builder()
                .message(message)
                .meta(meta("KMSInvalidStateException", message))
        };
        let read = |failure: Failure| match failure {
            Failure::Kind(KmsErrorKind::KeyNotFound) => "not found".to_owned(),
            Failure::Kind(KmsErrorKind::Throttled {
                operation,
                max_attempts,
            }) => format!("throttled {operation} {max_attempts}"),
            Failure::Kind(KmsErrorKind::Sign(_)) => "Sign's own".to_owned(),
            Failure::Kind(KmsErrorKind::GetPublicKey(_)) => "GetPublicKey's own".to_owned(),
            Failure::State(state) => format!("state {}", state.as_str()),
            other => format!("{other:?}"),
        };
        let sign = [
            SignError::NotFoundException(not_found().build()),
            SignError::DisabledException(disabled().build()),
            SignError::KmsInvalidStateException(pending().build()),
            SignError::generic(meta(THROTTLING, "Rate exceeded")),
            SignError::generic(meta("AccessDeniedException", "denied")),
        ]
        .map(|e| read(classify(refused(e), 3)));
        let get_public_key = [
            GetPublicKeyError::NotFoundException(not_found().build()),
            GetPublicKeyError::DisabledException(disabled().build()),
            GetPublicKeyError::KmsInvalidStateException(pending().build()),
            GetPublicKeyError::generic(meta(THROTTLING, "Rate exceeded")),
            GetPublicKeyError::generic(meta("AccessDeniedException", "denied")),
        ]
        .map(|e| read(classify(refused(e), 3)));
        assert_eq!(
            sign,
            [
                "not found",
                "state Disabled",
                "state PendingDeletion",
                "throttled Sign 3",
                "Sign's own"
            ]
        );
        assert_eq!(
            get_public_key,
            [
                "not found",
                "state Disabled",
                "state PendingDeletion",
                "throttled GetPublicKey 3",
                "GetPublicKey's own"
            ]
        );
        // No answer at all keeps the SDK's error.
        let stalled = SdkError::<SignError, HttpResponse>::timeout_error("stalled");
        assert_eq!(read(classify(stalled, 3)), "Sign's own");
    }

    #[test]
    fn messages_name_the_key_and_request_id_once_for_every_kind() {
        let address = |byte| Address([byte; 20]);
        let cases = [
            (
                KmsErrorKind::WrongKeySpec {
                    key_spec: "RSA_2048".into(),
                },
                "KMS key k1: key spec RSA_2048 is not ECC_SECG_P256K1; an Ethereum account \
                 needs a key created with KeySpec=ECC_SECG_P256K1",
            ),
            (
                KmsErrorKind::WrongKeyUsage {
                    key_usage: "ENCRYPT_DECRYPT".into(),
                },
                "KMS key k1: key usage ENCRYPT_DECRYPT is not SIGN_VERIFY; an Ethereum account \
                 needs a key created with KeyUsage=SIGN_VERIFY",
            ),
            (
                KmsErrorKind::IncompleteResponse {
                    operation: "Sign",
                    field: "Signature",
                },
                "KMS Sign for key k1 returned no Signature (request id r1)",
            ),
            (
                KmsErrorKind::BadSignature(SignatureError::HighS),
                "KMS Sign with key k1 returned an unusable signature (request id r1)",
            ),
            (
                KmsErrorKind::Throttled {
                    operation: "Sign",
                    max_attempts: 10,
                },
                "KMS throttled Sign for key k1 and was still refusing when the signer stopped \
                 retrying (up to 10 attempts with backoff, fewer once the retry quota is used \
                 up; request id r1); lower the request rate (fewer concurrent signatures), or \
                 ask AWS for a higher KMS request quota",
            ),
            (
                KmsErrorKind::AddressMismatch {
                    key_arn: "arn:k2".into(),
                    expected: address(1),
                    actual: address(2),
                },
                "KMS key k1 is account 0x0202020202020202020202020202020202020202, not the \
                 expected 0x0101010101010101010101010101010101010101; if k1 is an alias, it \
                 now points at another key (arn:k2): point it back, or use the key id of the \
                 account you meant",
            ),
            (
                KmsErrorKind::KeyState {
                    state: KeyState::Disabled,
                    detail: state_advice("k1", &KeyState::Disabled, None),
                },
                "KMS key k1 cannot sign: its state is Disabled; enable it with \
                 `aws kms enable-key --key-id k1`",
            ),
        ];
        for (kind, message) in cases {
            assert_eq!(KmsError::new(kind, "k1", Some("r1")).to_string(), message);
        }
    }

    #[test]
    fn state_is_read_from_aws_and_localstack_wordings() {
        assert_eq!(
            state_from_message(Some("arn:aws:kms:us-east-1:1:key/abc is pending deletion.")),
            KeyState::PendingDeletion
        );
        assert_eq!(
            state_from_message(Some("key is in PendingDeletion state")),
            KeyState::PendingDeletion
        );
        assert_eq!(
            state_from_message(Some("key is disabled")),
            KeyState::Disabled
        );
        assert_eq!(state_from_message(None).as_str(), "not usable ()");
    }

    #[test]
    fn pending_deletion_advice_names_date_and_cancellation() {
        let advice = state_advice(
            "k1",
            &KeyState::PendingDeletion,
            Some("2026-12-25T00:00:00Z"),
        );
        assert!(advice.contains("2026-12-25T00:00:00Z"));
        assert!(advice.contains("cancel-key-deletion --key-id k1"));
    }
}
