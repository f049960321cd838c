//! The signing Lambda's handler: at a cold start the key's address (one `GetPublicKey`)
//! and the owner's policy; then, per invocation, the event contract's answer
//! ([`kms_eth_core::event`] defines it), with the policy checked before KMS is asked.
//!
//! Configuration comes from the function's environment: `KMS_KEY_ID` (the original's name)
//! is the key; `KMS_ETH_POLICY` is a policy file's TOML text (see [`kms_eth_core::policy`])
//! with a block for this key's address, or `KMS_ETH_UNRESTRICTED=true` says, on purpose,
//! that there is none. A function with neither refuses to start: a signing endpoint that
//! signs anything must be a decision, not a default.

use std::fmt;

use anyhow::{bail, Context, Result};
use kms_eth_core::audit::AuditRecord;
use kms_eth_core::event::{
    error_answer, operation_of, parse_event, sign_answer, status_answer, Request,
};
use kms_eth_core::policy::{AccountRules, Policy};
use kms_eth_signer::KmsSigner;
use serde_json::Value;

/// The environment variable naming the key (id, ARN or alias), as in the original.
pub const KEY_ID_VAR: &str = "KMS_KEY_ID";
/// The environment variable holding the policy's TOML text.
pub const POLICY_VAR: &str = "KMS_ETH_POLICY";
/// The environment variable that, set to `true`, runs the function without a policy.
pub const UNRESTRICTED_VAR: &str = "KMS_ETH_UNRESTRICTED";

/// What the function may sign.
#[derive(Debug)]
enum Rules {
    Policy(Box<AccountRules>),
    Unrestricted,
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rules::Policy(_) => "policy",
            Rules::Unrestricted => "unrestricted",
        })
    }
}

/// The handler of one function instance.
#[derive(Debug)]
pub struct Handler {
    signer: KmsSigner,
    rules: Rules,
}

impl Handler {
    /// The cold start: reads the configuration from `env` (the process environment, in the
    /// function), checks it, and reads the key's public key once.
    pub async fn cold_start(
        kms: aws_sdk_kms::Client,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Handler> {
        let key_id = env(KEY_ID_VAR)
            .filter(|id| !id.trim().is_empty())
            .with_context(|| {
                format!("{KEY_ID_VAR} is not set: set it to the key's id, ARN or alias")
            })?;
        // The policy is checked before KMS is called: a bad one must not wait for the key.
        let policy = match (env(POLICY_VAR), env(UNRESTRICTED_VAR).as_deref()) {
            (Some(text), _) => {
                Some(Policy::parse(&text).map_err(|err| anyhow::anyhow!("{POLICY_VAR}: {err}"))?)
            }
            (None, Some("true")) => None,
            (None, _) => bail!(
                "no policy: set {POLICY_VAR} to the policy's TOML text, or {UNRESTRICTED_VAR}=true \
                 to sign whatever the function is asked to"
            ),
        };
        let signer = KmsSigner::new(kms, key_id).await?;
        let rules = match policy {
            None => Rules::Unrestricted,
            Some(policy) => {
                let rules = policy
                    .account(signer.address())
                    .map_err(|denial| anyhow::anyhow!("{POLICY_VAR}: {}", denial.reason))?
                    .clone();
                // Each instance has its own memory and Lambda runs many: a cap kept in one
                // would not hold for the function. Refuse rather than pretend.
                rules
                    .check_without_service()
                    .map_err(|why| anyhow::anyhow!("{POLICY_VAR}: {why}"))?;
                Rules::Policy(Box::new(rules))
            }
        };
        tracing::info!(address = %signer.address(), rules = %rules, "cold start");
        Ok(Handler { signer, rules })
    }

    /// The answer to one event, as JSON: the contract's answer, or its error object. Never
    /// a panic, and never a KMS call for an event that is malformed or refused.
    /// `request_id` is the invocation's, for the audit record.
    pub async fn answer(&self, event: &str, request_id: Option<&str>) -> Value {
        let operation = operation_of(event);
        match self.try_answer(event, request_id).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::warn!(operation, error = %format!("{err:#}"), "refused");
                error_answer(&operation, &err)
            }
        }
    }

    async fn try_answer(&self, event: &str, request_id: Option<&str>) -> Result<Value> {
        match parse_event(event)? {
            Request::Status => Ok(status_answer(self.signer.address())),
            Request::Sign(tx) => {
                let record = AuditRecord::new(
                    "lambda",
                    "sign",
                    self.signer.address(),
                    unix_now(),
                    request_id.map(Value::from),
                )
                .transaction(&tx);
                if let Rules::Policy(rules) = &self.rules {
                    if let Err(denial) = rules.check_transaction(&tx) {
                        write_audit(&record.refused(&denial));
                        return Err(denial.into());
                    }
                }
                // The event contract requires a chain id (never 0), which is what
                // `Signer::sign_transaction` checks before it signs this same digest; the
                // KMS request id goes in the audit record.
                if tx.chain_id().is_none_or(|id| id == 0) {
                    bail!("invalid chain_id: a transaction without a chain id can be replayed");
                }
                let (signature, kms_request_id) = self
                    .signer
                    .sign_digest_with_request_id(&tx.signing_hash())
                    .await?;
                let signed = (*tx).into_signed(signature);
                // CloudTrail records that the key signed; this line records what.
                write_audit(&record.signed(
                    format!("0x{}", hex_of(&signed.hash)),
                    kms_request_id,
                    matches!(self.rules, Rules::Policy(_)),
                ));
                Ok(sign_answer(&signed))
            }
        }
    }
}

/// Writes an audit record to stderr in one `write` (a line Lambda keeps whole in the log).
fn write_audit(record: &AuditRecord) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(record.line().as_bytes());
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
