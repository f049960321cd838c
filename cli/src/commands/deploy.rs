//! `kms-eth deploy`: create or update one account's stack (with the signing Lambda when
//! `--with-lambda` asks for it) and report its address.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use aws_credential_types::provider::ProvideCredentials;
use kms_eth_core::policy::Policy;
use kms_eth_core::UsageError;
use kms_eth_provisioner::{
    bucket_name, check_deployed_code, current_inputs, deploy, describe_account, function_name,
    guarded_changes, key_info, needs_default_principals, object_key, resolve,
    validate_signing_profile, AccountRequest, AssetStore, DeployAction, FunctionPolicy,
    FunctionSpec, LambdaReader, ProvisionError, RemovalPolicy, SpecError,
};
use kms_eth_signer::KmsSigner;
use serde::Serialize;

use crate::flags::{DeployArgs, LambdaArgs, TargetArgs};
use crate::output::Report;
use crate::session::Session;
use crate::stack_lock;
use crate::target::{Target, TargetKind};
use crate::{msg, ui};

/// What deploy did and the account it left.
#[derive(Debug, Serialize)]
pub struct DeployReport {
    /// `created`, `updated` or `unchanged`.
    pub action: &'static str,
    pub stack_name: String,
    pub stack_id: String,
    pub key_id: String,
    pub key_arn: String,
    pub alias: String,
    pub signer_role_arn: String,
    /// Who may assume the signer role, and so sign.
    pub signer_principals: Vec<String>,
    pub removal_policy: &'static str,
    pub pending_window_days: Option<u8>,
    pub address: String,
    /// The signing Lambda's ARN, when the stack has it (`--with-lambda`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    /// Its execution role's ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_role_arn: Option<String>,
    /// Where its code is: `s3://kms-eth-assets-ACCOUNT-REGION/kms-eth-lambda/SHA256.zip?versionId=V`,
    /// the object version the template pins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_code: Option<String>,
    /// The key's replicas (`--replica-region`), each `created` or `present`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaReport>,
}

/// One replica of a multi-Region stack's key.
#[derive(Debug, Serialize)]
pub struct ReplicaReport {
    pub region: String,
    pub key_arn: String,
    /// `created`, or `present` (found and checked).
    pub action: &'static str,
    /// The replica's address, read in its Region: the stack's own.
    pub address: String,
}

impl fmt::Display for DeployReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stack           {}", self.stack_id)?;
        writeln!(f, "key id          {}", self.key_id)?;
        writeln!(f, "alias           {}", self.alias)?;
        writeln!(f, "signer role     {}", self.signer_role_arn)?;
        writeln!(f, "assumed by      {}", self.signer_principals.join(", "))?;
        writeln!(f, "removal policy  {}", self.removal_policy)?;
        if let Some(function) = &self.function_arn {
            writeln!(f, "function        {function}")?;
        }
        if let Some(code) = &self.function_code {
            writeln!(f, "function code   {code}")?;
        }
        for replica in &self.replicas {
            writeln!(
                f,
                "replica         {} {} ({})",
                replica.region, replica.key_arn, replica.action
            )?;
        }
        write!(f, "address         {}", self.address)
    }
}

impl Report for DeployReport {}

impl DeployArgs {
    /// The account as these flags ask for it (what is left out is kept or defaulted once
    /// the stack is known), validated before anything is started or called.
    pub fn spec(&self) -> Result<AccountRequest> {
        let request = AccountRequest {
            stack_name: self.stack_name.clone(),
            alias: self.alias.clone(),
            removal_policy: self.removal_policy,
            pending_window_days: self.pending_window_days,
            signer_principals: self.signer_principals.clone(),
            tags: (!self.tags.is_empty()).then(|| self.tags.clone()),
            // Its code's location is known once the account and region are.
            function: None,
            replica_regions: self.replica_regions.clone(),
        };
        request
            .validate()
            .map_err(|err| UsageError(err.to_string()))?;
        Ok(request)
    }

    /// Every check before anything is started or called: the account's flags, and for
    /// `--with-lambda` the zip, the policy and whether the target can run a function.
    pub fn check(&self, target: &TargetArgs) -> Result<()> {
        self.spec()?;
        if self.lambda.with_lambda {
            self.lambda.inputs()?;
            refuse_lambda_without_docker(target.target)?;
        }
        Ok(())
    }

    pub async fn run(self, session: &Session) -> Result<DeployReport> {
        let mut request = self.spec()?;
        let lambda = if self.lambda.with_lambda {
            Some(self.lambda.inputs()?)
        } else {
            None
        };
        if let Some(lambda) = &lambda {
            request.function =
                Some(lambda.spec(&session.account_and_region().await?, &request.stack_name));
        }
        msg::note(format!(
            "deploying stack {} to {}",
            request.stack_name,
            session.target.describe()
        ));
        let cloudformation = &session.cloudformation;
        // A redeploy keeps every value not given; a new stack's signer role trusts the
        // identity running the deploy unless told otherwise.
        // An operation still running on the stack (an interrupted deploy) is waited for
        // first: only then are its inputs the ones to keep.
        let options = session.deploy_options();
        let mut show = ui::show_progress;
        // Read once before the stack's lock (an unreachable endpoint is said as for every
        // CloudFormation call), then again under it: the inputs kept are the ones no other
        // kms-eth command is changing.
        current_inputs(cloudformation, &request.stack_name, &options, &mut show).await?;
        let (account, region) = session.account_and_region().await?;
        let _lock = stack_lock::hold(&account, &region, &request.stack_name, "deploy")?;
        let current =
            current_inputs(cloudformation, &request.stack_name, &options, &mut show).await?;
        let default_principals = if needs_default_principals(&request, current.as_ref()) {
            vec![session.caller_principal().await?]
        } else {
            Vec::new()
        };
        let mut spec = resolve(&request, current.as_ref(), &default_principals);
        spec.validate().map_err(|err| UsageError(err.to_string()))?;
        let changes = guarded_changes(current.as_ref(), &spec);
        if !changes.is_empty() {
            msg::note(format!(
                "this deploy changes who may sign with stack {} or what happens to its key:",
                spec.stack_name
            ));
            for change in &changes {
                msg::detail(change);
            }
            let what: Vec<&str> = changes.iter().map(|c| c.what).collect();
            ui::confirm(
                format!(
                    "Change the {} of stack {}?",
                    what.join(" and the "),
                    spec.stack_name
                ),
                self.yes,
            )
            .await?;
        }
        // The code goes up only once the change is confirmed: the bucket is a change too.
        // The template pins the object version the upload wrote (or read back and compared).
        let function_code = match (&lambda, spec.function.as_mut()) {
            (Some(lambda), Some(function)) => Some(lambda.upload(session, function).await?),
            _ => None,
        };
        let mut options = session.deploy_options();
        let mut outcome = deploy(cloudformation, &spec, &options, &mut ui::show_progress).await;
        if let (Err(ProvisionError::KeyReplacement { stack_name, action }), true) =
            (&outcome, self.allow_key_replacement)
        {
            // Even when allowed, the user sees which key and address are given up.
            let current = describe_account(cloudformation, stack_name).await?;
            let key = key_info(&session.kms, &current.key_id).await?;
            ui::confirm(
                format!(
                    "This deploy will {action} KMS key {} (address {}), and the account gets a new key \
                     and a new address. With removal policy {} the old key is {}. Continue?",
                    key.key_id,
                    key.address.map_or("unknown".to_owned(), |a| a.to_string()),
                    current.removal_policy,
                    match current.removal_policy {
                        RemovalPolicy::Retain => "kept",
                        RemovalPolicy::Destroy => "scheduled for deletion",
                    }
                ),
                self.yes,
            )
            .await?;
            options.allow_key_replacement = true;
            outcome = deploy(cloudformation, &spec, &options, &mut ui::show_progress).await;
        }
        if let Err(ProvisionError::RollbackComplete { stack_name }) = &outcome {
            ui::confirm(
                format!(
                    "Stack {stack_name} is in ROLLBACK_COMPLETE after an earlier failed create. \
                     Delete it and create it again?"
                ),
                self.yes,
            )
            .await?;
            options.recreate_failed = true;
            outcome = deploy(cloudformation, &spec, &options, &mut ui::show_progress).await;
        }
        let (action, stack) = outcome?;
        // What Lambda runs must be the zip uploaded: a planted object or a changed function
        // fails the deploy here, before anyone is told the function is ready.
        if let (Some(lambda), Some(function_arn)) = (&lambda, &stack.function_arn) {
            let (_, region) = session.account_and_region().await?;
            let reader =
                LambdaReader::new(&region, credentials(session).await?, endpoint(session))?;
            check_deployed_code(&reader, function_arn, &lambda.zip).await?;
        }
        // The address comes from the key itself, through the same code that signs.
        let signer = KmsSigner::new(session.kms.clone(), stack.key_arn.clone()).await?;
        if let Some(LambdaInputs {
            policy: FunctionPolicy::Toml(text),
            ..
        }) = &lambda
        {
            // A new stack's address is known only now; the function refuses to start without
            // a block for it, so say so while the deploy is still on screen.
            let covered = Policy::parse(text).is_ok_and(|p| p.account(signer.address()).is_ok());
            if !covered {
                msg::warn(format!(
                    "the --lambda-policy file has no [[account]] block for {}: the function will \
                     refuse to start until it has one (deploy again with it added)",
                    signer.address()
                ));
            }
        }
        let replicas = replicate(session, &stack, signer.address()).await?;
        let action = match action {
            DeployAction::Created => "created",
            DeployAction::Updated => "updated",
            DeployAction::Unchanged => {
                msg::note(format!(
                    "stack {} is up to date: nothing to do",
                    stack.stack_name
                ));
                "unchanged"
            }
        };
        Ok(DeployReport {
            action,
            stack_name: stack.stack_name,
            stack_id: stack.stack_id,
            key_id: stack.key_id,
            key_arn: stack.key_arn,
            alias: stack.alias_name,
            signer_role_arn: stack.signer_role_arn,
            signer_principals: stack.signer_principals,
            removal_policy: stack.removal_policy.as_str(),
            pending_window_days: stack.pending_window_days,
            address: signer.address().to_string(),
            function_arn: stack.function_arn,
            function_role_arn: stack.function_role_arn,
            function_code,
            replicas,
        })
    }
}

/// The stack's key replicated into each of its replica Regions (none: nothing to do), each
/// replica's address read in its Region and required to be the stack's.
async fn replicate(
    session: &Session,
    stack: &kms_eth_provisioner::AccountStack,
    address: kms_eth_signer::Address,
) -> Result<Vec<ReplicaReport>> {
    if stack.replica_regions.is_empty() {
        return Ok(Vec::new());
    }
    let outcomes =
        kms_eth_provisioner::ensure_replicas(&session.kms, &stack.key_arn, &stack.replica_regions)
            .await?;
    let mut replicas = Vec::new();
    for outcome in outcomes {
        for repaired in &outcome.repaired {
            msg::warn(format!("replica in {}: {repaired}", outcome.region));
        }
        let client = super::regions::client_in(session, &outcome.region);
        let replica = KmsSigner::new(client, outcome.key_arn.clone())
            .await?
            .expect_address(address)?;
        replicas.push(ReplicaReport {
            region: outcome.region,
            key_arn: outcome.key_arn,
            action: outcome.action,
            address: replica.address().to_string(),
        });
    }
    Ok(replicas)
}

/// What `--with-lambda` was given, read and checked before any call.
#[derive(Debug)]
struct LambdaInputs {
    zip: Vec<u8>,
    arch: kms_eth_provisioner::FunctionArch,
    policy: FunctionPolicy,
    signing_profile: Option<String>,
}

impl LambdaArgs {
    /// The zip's bytes and the policy, each refused by its flag's name (exit 2).
    fn inputs(&self) -> Result<LambdaInputs> {
        let zip =
            match &self.lambda_zip {
                None => return Err(UsageError(
                    "--with-lambda needs the function's zip: give --lambda-zip PATH (`cargo xtask \
                     lambda build` builds it and prints its path), or run `cargo xtask deploy \
                     --with-lambda ...` from the clone, which builds it and passes it"
                        .into(),
                )
                .into()),
                Some(path) => read_zip(path)?,
            };
        let policy =
            match (&self.lambda_policy, self.lambda_unrestricted) {
                (Some(path), false) => FunctionPolicy::Toml(read_policy(path)?),
                (None, true) => FunctionPolicy::Unrestricted,
                _ => return Err(UsageError(
                    "--with-lambda needs --lambda-policy FILE (what the function may sign; the \
                     format of `serve --policy`) or, to let it sign whatever it is asked, \
                     --lambda-unrestricted"
                        .into(),
                )
                .into()),
            };
        if let Some(arn) = &self.lambda_signing_profile {
            validate_signing_profile(arn)
                .map_err(|err| UsageError(format!("invalid --lambda-signing-profile: {err}")))?;
        }
        let inputs = LambdaInputs {
            zip,
            arch: self.lambda_arch.unwrap_or_default(),
            policy,
            signing_profile: self.lambda_signing_profile.clone(),
        };
        // The template's own limits, checked with stand-in names.
        inputs
            .spec(
                &("000000000000".to_owned(), "us-east-1".to_owned()),
                "stack",
            )
            .validate()
            .map_err(|err: SpecError| UsageError(err.to_string()))?;
        Ok(inputs)
    }
}

impl LambdaInputs {
    /// The function as the template takes it, in `account` and `region`'s asset bucket.
    fn spec(&self, (account, region): &(String, String), stack_name: &str) -> FunctionSpec {
        FunctionSpec {
            code_bucket: bucket_name(account, region),
            code_key: object_key(&self.zip),
            // Known once uploaded.
            code_version: String::new(),
            name: function_name(stack_name),
            signing_profile: self.signing_profile.clone(),
            arch: self.arch,
            policy: self.policy.clone(),
        }
    }

    /// Puts the zip in the asset bucket (made on first use, checked and repaired on every
    /// deploy) and pins its object version in `function`; `s3://BUCKET/KEY?versionId=V`.
    async fn upload(&self, session: &Session, function: &mut FunctionSpec) -> Result<String> {
        let (account, region) = session.account_and_region().await?;
        let deployer = session.deploying_principal().await?;
        let store = AssetStore::new(
            &account,
            &region,
            &deployer,
            credentials(session).await?,
            endpoint(session),
        )?;
        let asset = store.upload(&self.zip, &mut ui::show_progress).await?;
        if !asset.uploaded {
            msg::note(format!(
                "the function's code is already in s3://{}/{} (version {}, read back: the same \
                 bytes): nothing uploaded",
                asset.bucket, asset.key, asset.version
            ));
        }
        if asset.key != function.code_key {
            anyhow::bail!(
                "the asset store put the zip at {}, not {}",
                asset.key,
                function.code_key
            );
        }
        function.code_version = asset.version.clone();
        Ok(format!(
            "s3://{}/{}?versionId={}",
            asset.bucket, asset.key, asset.version
        ))
    }
}

/// The session's credentials, for the calls made without an SDK client (S3, Lambda).
async fn credentials(session: &Session) -> Result<aws_credential_types::Credentials> {
    session
        .config
        .credentials_provider()
        .context("no AWS credentials for the asset bucket and the function")?
        .provide_credentials()
        .await
        .context("loading the AWS credentials for the asset bucket and the function")
}

/// The session's explicit endpoint (LocalStack's), if any.
fn endpoint(session: &Session) -> Option<String> {
    match &session.target {
        Target::LocalStack { endpoint, .. } => Some(endpoint.clone()),
        Target::Aws { endpoint, .. } => endpoint.clone(),
    }
}

/// The zip's bytes; a missing file, or one that is not a zip, is refused by the flag's name.
fn read_zip(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|err| {
        UsageError(format!(
            "invalid --lambda-zip {}: {err}; `cargo xtask lambda build` builds it",
            path.display()
        ))
    })?;
    // Every zip starts with a local file header, "PK\x03\x04".
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err(UsageError(format!(
            "invalid --lambda-zip {}: not a zip file; `cargo xtask lambda build` builds the \
             function's (target/lambda/x86_64/kms-eth-lambda/bootstrap.zip)",
            path.display()
        ))
        .into());
    }
    Ok(bytes)
}

/// The policy file's text, checked as the function will check it at its cold start.
fn read_policy(path: &Path) -> Result<String> {
    let bad = |reason: String| {
        UsageError(format!(
            "invalid --lambda-policy {}: {reason}",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|err| bad(err.to_string()))?;
    let policy = Policy::parse(&text).map_err(|err| bad(err.to_string()))?;
    for account in policy.accounts() {
        account.check_without_service().map_err(bad)?;
    }
    Ok(text)
}

/// LocalStack runs Lambda functions only in Docker, and its stack would fail half-way
/// (`AWS::Lambda::Function` CREATE_FAILED) after the bucket, key and roles were made: refuse
/// before anything is called when no Docker engine answers on this machine.
fn refuse_lambda_without_docker(target: TargetKind) -> Result<()> {
    if target != TargetKind::Localstack || docker_engine_answers() {
        return Ok(());
    }
    Err(UsageError(
        "--with-lambda cannot deploy to LocalStack here: LocalStack runs Lambda functions only in \
         Docker, and no Docker engine answers on this machine (DOCKER_HOST, /var/run/docker.sock). \
         Nothing was changed. To run the function's handler locally against LocalStack's KMS, use \
         `cargo xtask lambda invoke (--key-id K | --stack-name S) --event JSON`; to deploy it, \
         use --target aws"
            .into(),
    )
    .into())
}

/// Whether a Docker engine accepts connections: at DOCKER_HOST when it names a Unix socket or
/// a TCP address, else at the default socket. A connection is all that is checked.
fn docker_engine_answers() -> bool {
    let timeout = std::time::Duration::from_secs(2);
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => {
            if let Some(socket) = host.strip_prefix("unix://") {
                std::os::unix::net::UnixStream::connect(socket).is_ok()
            } else if let Some(address) = host.strip_prefix("tcp://") {
                std::net::ToSocketAddrs::to_socket_addrs(address)
                    .ok()
                    .and_then(|mut addresses| addresses.next())
                    .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, timeout).is_ok())
            } else {
                false
            }
        }
        _ => std::os::unix::net::UnixStream::connect("/var/run/docker.sock").is_ok(),
    }
}
