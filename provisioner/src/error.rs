//! Everything that can go wrong while provisioning, one documented variant per failure.

use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;

use crate::account::SpecError;
use crate::events::StackEvent;

/// Why a provisioning operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The requested account is not valid (found before any AWS call).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The function's code could not be put in the asset bucket, or Lambda could not be read.
    #[error("{0}")]
    Asset(String),
    /// The deployed function runs other code than the zip kms-eth uploaded.
    #[error(
        "the function {function} runs code whose SHA-256 is {found}, not the zip's {wanted}:          its code was changed outside kms-eth, or the asset bucket served other bytes. Do not          invoke it; find out who can change the function (lambda:UpdateFunctionCode) or write          to the asset bucket, then deploy again"
    )]
    FunctionCode {
        /// The function's ARN.
        function: String,
        /// Base64 of the SHA-256 Lambda reports.
        found: String,
        /// Base64 of the zip's SHA-256.
        wanted: String,
    },
    /// There is no stack of that name in this account and region.
    #[error("there is no stack named {stack_name} in this account and region")]
    StackNotFound {
        /// The stack name.
        stack_name: String,
    },
    /// The stack exists but was not made by kms-eth (it lacks the account outputs).
    #[error("stack {stack_name} is not a kms-eth account: it has no {missing} output")]
    NotAnAccountStack {
        /// The stack name.
        stack_name: String,
        /// The first output that is missing.
        missing: &'static str,
    },
    /// Another operation on the stack is still running.
    #[error("stack {stack_name} is busy ({status}); wait until it finishes and try again")]
    StackBusy {
        /// The stack name.
        stack_name: String,
        /// Its current status.
        status: String,
    },
    /// The stack is in a failed state that CloudFormation itself must be helped out of.
    #[error(
        "stack {stack_name} is in {status}; resolve it in CloudFormation first (continue the \
         rollback or delete the stack), then deploy again"
    )]
    StackBroken {
        /// The stack name.
        stack_name: String,
        /// Its current status.
        status: String,
    },
    /// Only the stack's tags differ, and CloudFormation would not update them.
    #[error(
        "CloudFormation made no update to stack {stack_name} although its tags differ from the \
         ones asked for (LocalStack ignores updates that change only a stack's tags; AWS applies \
         them): nothing was changed"
    )]
    TagsNotApplied {
        /// The stack name.
        stack_name: String,
    },
    /// `cancel-deletion` was asked for a key that is not pending deletion.
    #[error("key {key_id} is not pending deletion (its state is {state}); nothing to cancel")]
    NotPendingDeletion {
        /// The key.
        key_id: String,
        /// Its state.
        state: String,
    },
    /// An earlier create failed and left the stack in ROLLBACK_COMPLETE, where it can only be
    /// deleted. Deleting and recreating it needs the user's confirmation.
    #[error(
        "stack {stack_name} is in ROLLBACK_COMPLETE after an earlier failed create; it must be \
         deleted before it can be created again (confirm when asked, or pass --yes)"
    )]
    RollbackComplete {
        /// The stack name.
        stack_name: String,
    },
    /// The change would replace or remove the KMS key, which changes the account's address
    /// (and strands funds at the old one).
    #[error(
        "refusing to deploy: the change would {action} the KMS key of stack {stack_name}, and a new \
         key is a new Ethereum address; pass --allow-key-replacement if that is really intended"
    )]
    KeyReplacement {
        /// The stack name.
        stack_name: String,
        /// `replace` or `remove`.
        action: &'static str,
    },
    /// CloudFormation could not create the change set.
    #[error("CloudFormation could not prepare the change for stack {stack_name}: {reason}")]
    ChangeSetFailed {
        /// The stack name.
        stack_name: String,
        /// CloudFormation's reason.
        reason: String,
    },
    /// The stack operation failed; the events say why.
    #[error("stack {stack_name} ended in {status}{}", describe_failures(.failures))]
    StackFailed {
        /// The stack name.
        stack_name: String,
        /// The final status.
        status: String,
        /// The events that explain the failure.
        failures: Vec<StackEvent>,
    },
    /// A stack operation did not finish in time.
    #[error("stack {stack_name} did not finish within {seconds} s (last status {status})")]
    Timeout {
        /// The stack name.
        stack_name: String,
        /// How long was waited.
        seconds: u64,
        /// The status when giving up.
        status: String,
    },
    /// The AWS endpoint could not be reached at all.
    #[error(
        "cannot reach the AWS endpoint for {operation}: {message}; check that the endpoint is \
         up (for LocalStack: `cargo xtask localstack up`) and the network, then run the same \
         command again: a deploy is safe to re-run and picks up from wherever it was interrupted"
    )]
    Unreachable {
        /// The API call.
        operation: &'static str,
        /// What the connection attempt said.
        message: String,
    },
    /// An AWS call failed.
    #[error("{operation} failed (request id {}): {message}", request_id.as_deref().unwrap_or("unknown"))]
    Aws {
        /// The API call.
        operation: &'static str,
        /// The error code and message.
        message: String,
        /// The AWS request id.
        request_id: Option<String>,
    },
    /// The key could not be read as an Ethereum account.
    #[error(transparent)]
    Signer(#[from] kms_eth_signer::KmsError),
    /// The key material to import was refused before any call.
    #[error(transparent)]
    Material(#[from] crate::material::MaterialError),
    /// Key material can only be imported into a key with origin EXTERNAL.
    #[error(
        "key {key_id} has origin {origin}, not EXTERNAL: KMS imports material only into a key \
         made for it (`kms-eth key import` makes one)"
    )]
    NotExternal {
        /// The key.
        key_id: String,
        /// Its origin.
        origin: String,
    },
    /// Replicas were asked of a key that is not a multi-Region primary.
    #[error(
        "key {key_id} is not a multi-Region primary key, so it cannot be replicated: a key is \
         made multi-Region when it is created, never after (`deploy --replica-region` on a \
         stack made without it would replace the key, which deploy refuses). On LocalStack, \
         CloudFormation ignores the key's MultiRegion property and always makes a key in one \
         Region; there, make a multi-Region key with the KMS API and use `kms-eth key \
         replicate` (see README, Surviving a Region)"
    )]
    NotMultiRegion {
        /// The key.
        key_id: String,
    },
    /// After the import, KMS holds another address than the material's.
    #[error(
        "after the import, key {key_id} is address {actual}, not {expected}: the key was \
         disabled and scheduled for deletion, and nothing signs with it"
    )]
    ImportedAddressMismatch {
        /// The key.
        key_id: String,
        /// The material's address.
        expected: kms_eth_signer::Address,
        /// What KMS derives.
        actual: kms_eth_signer::Address,
    },
}

fn describe_failures(failures: &[StackEvent]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let reasons: Vec<String> = failures
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.logical_id,
                e.status,
                e.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!("; because: {}", reasons.join("; "))
}

/// Turns an SDK error into a [`ProvisionError`] naming the call, keeping the request id and
/// telling an unreachable endpoint apart from a refusal.
pub(crate) fn aws<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> ProvisionError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
    SdkError<E, R>: RequestId,
{
    move |err| match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ProvisionError::Unreachable {
            operation,
            message: DisplayErrorContext(&err).to_string(),
        },
        _ => ProvisionError::Aws {
            operation,
            request_id: err.request_id().map(str::to_owned),
            message: match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => DisplayErrorContext(&err).to_string(),
            },
        },
    }
}
