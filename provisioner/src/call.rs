//! Every CloudFormation and KMS call the provisioner makes goes through here, so each one
//! leaves one debug event: the operation, the stack or key it was about, the request id, how
//! long it took and how it ended.
//!
//! Only names and ids are logged, never request or response bodies: those hold templates,
//! tags and policies that are the user's business, not a log's.

use std::future::Future;
use std::time::Instant;

use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::operation::RequestId;

use crate::error::{aws, ProvisionError};

/// What a call was about, for the log.
#[derive(Debug, Clone, Copy)]
pub enum On<'a> {
    /// A stack, by name or id.
    Stack(&'a str),
    /// A KMS key, by id, ARN or alias.
    Key(&'a str),
    /// The whole account and region (listing calls).
    Account,
}

/// Runs one AWS call and logs it, handing back the SDK's own result: for the callers that
/// look at the error themselves (a missing stack, a best-effort clean-up).
pub(crate) async fn timed<T, E, R>(
    operation: &'static str,
    on: On<'_>,
    call: impl Future<Output = Result<T, SdkError<E, R>>>,
) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    Result<T, SdkError<E, R>>: RequestId,
{
    let started = Instant::now();
    let result = call.await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let outcome = match &result {
        Ok(_) => "ok",
        // No answer came back, so there is no error code to show.
        Err(SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => "unreachable",
        Err(err) => err.code().unwrap_or("error"),
    };
    let (stack, key_id) = match on {
        On::Stack(stack) => (Some(stack), None),
        On::Key(key_id) => (None, Some(key_id)),
        On::Account => (None, None),
    };
    tracing::debug!(
        operation,
        stack,
        key_id,
        request_id = result.request_id(),
        latency_ms,
        outcome,
        "AWS call"
    );
    result
}

/// Runs one AWS call and logs it, turning a failure into a [`ProvisionError`] that names the
/// call.
pub async fn call<T, E, R>(
    operation: &'static str,
    on: On<'_>,
    call: impl Future<Output = Result<T, SdkError<E, R>>>,
) -> Result<T, ProvisionError>
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
    SdkError<E, R>: RequestId,
    Result<T, SdkError<E, R>>: RequestId,
{
    timed(operation, on, call).await.map_err(aws(operation))
}
