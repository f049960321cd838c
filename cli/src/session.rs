//! One session per run: the target resolved once from the target flags, its SDK
//! configuration, and the AWS clients every command shares.

use std::time::Duration;

use anyhow::Result;
use kms_eth_provisioner::{describe_account, DeployOptions};
use kms_eth_signer::KmsSigner;

use crate::flags::{AccountArgs, TargetArgs};
use crate::target::Target;

/// The target and its clients, built once in `main` and lent to the command. No IAM client
/// yet: no command calls IAM, and the IAM SDK is the largest crate of a cold build (82 s of
/// the 6 min a newcomer's first `cargo xtask deploy` compiled); the command that needs it
/// adds it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Where calls go.
    pub target: Target,
    /// The SDK configuration (credentials, region, endpoint, retries, timeouts).
    pub config: aws_config::SdkConfig,
    /// KMS: keys, public keys, signatures.
    pub kms: aws_sdk_kms::Client,
    /// CloudFormation: the accounts' stacks.
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// STS: who the caller is, and assumed roles.
    pub sts: aws_sdk_sts::Client,
}

impl Session {
    /// Resolves the target flags (starting LocalStack if needed) and builds the clients.
    pub async fn connect(args: &TargetArgs) -> Result<Session> {
        let target = Target::resolve(
            args.target,
            args.profile.clone(),
            args.region.clone(),
            args.endpoint_url.clone(),
        )
        .await?;
        Ok(Session::for_target(target).await)
    }

    /// The session for an already resolved target.
    pub async fn for_target(target: Target) -> Session {
        let config = target.sdk_config().await;
        tracing::debug!(target = %target.describe(), "AWS session ready");
        Session {
            kms: aws_sdk_kms::Client::new(&config),
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            target,
            config,
        }
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

    /// The signer for the account named by `--key-id` or `--stack-name`, checked against
    /// `--expect-address` when given.
    pub async fn signer(&self, account: &AccountArgs) -> Result<KmsSigner> {
        let key = match (&account.key.key_id, &account.key.stack_name) {
            (Some(key_id), _) => key_id.clone(),
            (None, Some(stack)) => describe_account(&self.cloudformation, stack).await?.key_arn,
            (None, None) => {
                return Err(kms_eth_core::UsageError(
                    "name the account with --key-id or --stack-name".into(),
                )
                .into())
            }
        };
        let signer = KmsSigner::new(self.kms.clone(), key).await?;
        Ok(match account.expect_address {
            Some(expected) => signer.expect_address(expected)?,
            None => signer,
        })
    }
}
