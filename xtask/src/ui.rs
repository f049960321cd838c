//! What the account commands share: confirmations, progress display, exit-code
//! classification of provisioning errors, and setting up the AWS clients.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use kms_eth_provisioner::{DeployOptions, Progress, ProvisionError};
use xtask::target::Target;
use xtask::UsageError;

use kms_eth_signer::KmsSigner;

use crate::flags::{AccountArgs, TargetArgs};

/// Asks `question` on the terminal. `--yes` answers it; without a terminal the question
/// cannot be asked, and the answer is never assumed.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{question} This needs confirmation, and there is no terminal to ask on; pass --yes to confirm"
        ))
        .into());
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed; nothing was changed")
    }
}

/// Shows provisioning progress on stderr, so stdout stays clean for `--json`.
pub fn show_progress(progress: Progress) {
    match progress {
        Progress::Note(note) => eprintln!("[kms-eth] {note}"),
        Progress::ChangeSet(changes) => {
            eprintln!("[kms-eth] change set:");
            for change in changes {
                let replacement = match change.replacement.as_deref() {
                    Some("True") => " (REPLACES the resource)",
                    Some("Conditional") => " (may replace the resource)",
                    _ => "",
                };
                eprintln!(
                    "    {:<8} {:<24} {}{replacement}",
                    change.action, change.resource_type, change.logical_id
                );
            }
        }
        Progress::Event(event) => eprintln!(
            "  {}  {:<16} {:<22} {}{}",
            event.timestamp,
            event.logical_id,
            event.resource_type,
            event.status,
            event.reason.map(|r| format!("  {r}")).unwrap_or_default()
        ),
    }
}

/// Maps a provisioning error to the CLI's exit codes: inputs the user can fix (bad values,
/// a missing stack, an endpoint that does not answer) are usage errors (exit 2).
pub fn classify(err: ProvisionError) -> anyhow::Error {
    match err {
        ProvisionError::Spec(_)
        | ProvisionError::StackNotFound { .. }
        | ProvisionError::Unreachable { .. } => UsageError(err.to_string()).into(),
        other => other.into(),
    }
}

/// Resolves the target flags (starting LocalStack if needed) and loads the SDK config.
pub struct Aws {
    pub target: Target,
    pub config: aws_config::SdkConfig,
}

impl Aws {
    pub async fn connect(args: &TargetArgs) -> Result<Aws> {
        let target = Target::resolve(
            args.target,
            args.profile.clone(),
            args.region.clone(),
            args.endpoint_url.clone(),
        )?;
        let config = target.sdk_config().await;
        Ok(Aws { target, config })
    }

    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.config)
    }

    pub fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.config)
    }

    /// Stack polling suited to the target: LocalStack answers at once, AWS takes seconds.
    pub fn deploy_options(&self) -> DeployOptions {
        DeployOptions {
            poll_interval: if self.target.is_localstack() {
                Duration::from_millis(300)
            } else {
                Duration::from_secs(3)
            },
            ..DeployOptions::default()
        }
    }
}

/// Runs an async command body on a fresh runtime.
pub fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Checks the account flags before any call (a stack name must be a valid one).
pub fn check_account(account: &AccountArgs) -> Result<()> {
    if let Some(stack) = &account.key.stack_name {
        kms_eth_provisioner::validate_stack_name(stack)
            .map_err(|err| UsageError(err.to_string()))?;
    }
    Ok(())
}

/// The signer for the account named by `--key-id` or `--stack-name`, checked against
/// `--expect-address` when given.
pub async fn signer_for(aws: &Aws, account: &AccountArgs) -> Result<KmsSigner> {
    let key = match (&account.key.key_id, &account.key.stack_name) {
        (Some(key_id), _) => key_id.clone(),
        (None, Some(stack)) => {
            kms_eth_provisioner::describe_account(&aws.cloudformation(), stack)
                .await
                .map_err(classify)?
                .key_arn
        }
        (None, None) => {
            return Err(UsageError("name the account with --key-id or --stack-name".into()).into())
        }
    };
    let signer = KmsSigner::new(aws.kms(), key).await?;
    Ok(match account.expect_address {
        Some(expected) => signer.expect_address(expected)?,
        None => signer,
    })
}
