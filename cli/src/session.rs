//! One session per run: the target resolved once from the target flags, its SDK
//! configuration, and the AWS clients every command shares.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sts::error::DisplayErrorContext;
use kms_eth_provisioner::{caller_principal, describe_account, AccountStack, DeployOptions};
use kms_eth_signer::KmsSigner;

use crate::flags::{AccountArgs, TargetArgs};
use crate::msg;
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
        let session = Session::for_target(target).await;
        session.check_profile().await?;
        Ok(session)
    }

    /// With `--profile`, its credentials are loaded once before anything else, so that a
    /// profile that does not exist (or holds no credentials) is said as such, not later as an
    /// endpoint that cannot be reached.
    async fn check_profile(&self) -> Result<()> {
        use aws_credential_types::provider::ProvideCredentials;
        let Target::Aws {
            profile: Some(profile),
            ..
        } = &self.target
        else {
            return Ok(());
        };
        let Some(provider) = self.config.credentials_provider() else {
            return Ok(());
        };
        if let Err(err) = provider.provide_credentials().await {
            return Err(kms_eth_core::UsageError(format!(
                "invalid --profile {profile}: its credentials could not be loaded ({}); `aws \
                 configure list-profiles` lists the profiles of this machine",
                DisplayErrorContext(err)
            ))
            .into());
        }
        Ok(())
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

    /// The principal a trust policy names for whoever runs this command (a role session
    /// counts as its role), from sts:GetCallerIdentity.
    pub async fn caller_principal(&self) -> Result<String> {
        let identity = self.caller_identity().await?;
        let arn = identity.arn().unwrap_or_default();
        let principal =
            caller_principal(arn).map_err(|err| kms_eth_core::UsageError(err.to_string()))?;
        let caveat = if arn.contains(":assumed-role/") {
            " (the role of your session; if that role has a path, give its full ARN with \
             --signer-principal, since the session's ARN does not show it)"
        } else {
            ""
        };
        msg::note(format!(
            "the signer role will trust {principal}, who runs this deploy{caveat}; \
             --signer-principal names others"
        ));
        Ok(principal)
    }

    /// Who runs this command: sts:GetCallerIdentity.
    async fn caller_identity(
        &self,
    ) -> Result<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput> {
        self.sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|err| anyhow::anyhow!("{}", DisplayErrorContext(err)))
            .context("sts:GetCallerIdentity failed (who is running this deploy, in which account?)")
    }

    /// The AWS account id (sts:GetCallerIdentity) and region this session acts in: they name
    /// the asset bucket of `deploy --with-lambda`.
    /// The principal running this command as IAM policies name it (a role session as its
    /// role), for the asset bucket's policy; no note is shown.
    pub async fn deploying_principal(&self) -> Result<String> {
        let identity = self.caller_identity().await?;
        caller_principal(identity.arn().unwrap_or_default())
            .map_err(|err| kms_eth_core::UsageError(err.to_string()).into())
    }

    pub async fn account_and_region(&self) -> Result<(String, String)> {
        let identity = self.caller_identity().await?;
        let account = identity
            .account()
            .context("sts:GetCallerIdentity answered without an account id")?;
        let region = self.config.region().context(
            "no AWS region: give --region (or set AWS_REGION, or a region in the profile)",
        )?;
        Ok((account.to_owned(), region.to_string()))
    }

    /// The signer for the account named by `--key-id` or `--stack-name`, checked against
    /// `--expect-address` when given. `--key-id` signs with the caller's own credentials;
    /// `--stack-name` assumes the stack's signer role, the one principal its key policy lets
    /// sign.
    pub async fn signer(&self, account: &AccountArgs) -> Result<KmsSigner> {
        self.account_key(account, true).await
    }

    /// The account's key read with the caller's own credentials, for commands that show an
    /// account but never sign (`status`): reading the public key needs no signer role.
    pub async fn reader(&self, account: &AccountArgs) -> Result<KmsSigner> {
        self.account_key(account, false).await
    }

    async fn account_key(&self, account: &AccountArgs, sign: bool) -> Result<KmsSigner> {
        let (kms, key) = match (&account.key.key_id, &account.key.stack_name) {
            (Some(key_id), _) => (self.kms.clone(), key_id.clone()),
            (None, Some(stack)) => {
                let stack = describe_account(&self.cloudformation, stack).await?;
                let kms = if sign {
                    self.kms_as_signer_role(&stack).await?
                } else {
                    self.kms.clone()
                };
                (kms, stack.key_arn)
            }
            (None, None) => {
                return Err(kms_eth_core::UsageError(
                    "name the account with --key-id or --stack-name".into(),
                )
                .into())
            }
        };
        let signer = KmsSigner::new(kms, key).await?;
        Ok(match account.expect_address {
            Some(expected) => signer.expect_address(expected)?,
            None => signer,
        })
    }

    /// A KMS client acting as the stack's signer role. One sts:AssumeRole first, so that a
    /// caller the role does not trust gets a clear error before anything else; then a
    /// provider that assumes the role again before its credentials expire (they last an
    /// hour, and `kms-eth serve` signs for longer).
    async fn kms_as_signer_role(&self, stack: &AccountStack) -> Result<aws_sdk_kms::Client> {
        let role = &stack.signer_role_arn;
        let assumed = self
            .sts
            .assume_role()
            .role_arn(role)
            .role_session_name(format!("kms-eth-{}", std::process::id()))
            .send()
            .await
            .map_err(|err| anyhow::anyhow!("{}", DisplayErrorContext(err)))
            .with_context(|| {
                format!(
                    "cannot assume the signer role {role} of stack {0}: only the principals it \
                     trusts may sign for the stack; `kms-eth deploy --stack-name {0} \
                     --signer-principal ...`, naming them and you, changes who it trusts",
                    stack.stack_name
                )
            })?;
        // One debug event, like every other AWS call (`-v`), never the credentials.
        tracing::debug!(
            operation = "AssumeRole",
            role = %role,
            request_id = aws_sdk_sts::operation::RequestId::request_id(&assumed).unwrap_or("unknown"),
            outcome = "ok",
            "STS call"
        );
        assumed
            .credentials()
            .context("sts:AssumeRole answered without credentials")?;
        let refreshing = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name(format!("kms-eth-{}", std::process::id()))
            .configure(&self.config)
            .build()
            .await;
        let config = aws_sdk_kms::config::Builder::from(&self.config)
            .credentials_provider(refreshing)
            .build();
        Ok(aws_sdk_kms::Client::from_conf(config))
    }
}
