//! Where AWS calls go: the embedded LocalStack (the default) or a real AWS account, turned
//! into an `aws_config::SdkConfig` the same way for the CLI, the benchmarks and the end-to-end
//! tests.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::config::Credentials;

/// Which kind of target the user chose (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// The embedded LocalStack (started if it is not running; no AWS account needed).
    Localstack,
    /// A real AWS account, through the standard credential chain, --profile and --region.
    Aws,
}

/// The region used against LocalStack when none is given.
pub const LOCALSTACK_REGION: &str = "us-east-1";

/// Where AWS requests are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A LocalStack endpoint, with LocalStack's fixed test credentials.
    LocalStack {
        /// For example `http://127.0.0.1:4566`.
        endpoint: String,
        /// The region to use.
        region: String,
    },
    /// A real AWS account through the standard credential chain (environment, profiles,
    /// SSO, instance roles) and the standard region resolution.
    Aws {
        /// A named profile, like `--profile` of the AWS CLI.
        profile: Option<String>,
        /// A region, like `--region` of the AWS CLI.
        region: Option<String>,
        /// An explicit endpoint (otherwise `AWS_ENDPOINT_URL` or the AWS default).
        endpoint: Option<String>,
    },
}

impl Target {
    /// Resolves the target flags. LocalStack: `endpoint` if given, else `AWS_ENDPOINT_URL`,
    /// else the harness's LocalStack, started if it is not running. AWS: the standard
    /// credential chain with the given profile, region and endpoint.
    pub async fn resolve(
        kind: TargetKind,
        profile: Option<String>,
        region: Option<String>,
        endpoint: Option<String>,
    ) -> anyhow::Result<Target> {
        Ok(match kind {
            TargetKind::Localstack => {
                if profile.is_some() {
                    return Err(kms_eth_core::UsageError(
                        "--profile chooses AWS credentials; it only applies with --target aws"
                            .into(),
                    )
                    .into());
                }
                let endpoint = match endpoint {
                    Some(endpoint) => endpoint,
                    // Starting LocalStack blocks (it may install it first): off the runtime.
                    None => {
                        tokio::task::spawn_blocking(|| {
                            kms_eth_harness::localstack::up(&kms_eth_harness::localstack::Options {
                                quiet_when_running: true,
                                ..Default::default()
                            })
                        })
                        .await??
                        .endpoint
                    }
                };
                Target::LocalStack {
                    endpoint,
                    region: region.unwrap_or_else(|| LOCALSTACK_REGION.into()),
                }
            }
            TargetKind::Aws => Target::Aws {
                profile,
                region,
                endpoint,
            },
        })
    }

    /// Whether this is LocalStack (which answers in milliseconds, so it is polled often).
    pub fn is_localstack(&self) -> bool {
        matches!(self, Target::LocalStack { .. })
    }

    /// A short human-readable description, for progress output.
    pub fn describe(&self) -> String {
        match self {
            Target::LocalStack { endpoint, region } => {
                format!("LocalStack at {endpoint} ({region})")
            }
            Target::Aws {
                profile, region, ..
            } => format!(
                "AWS (profile {}, region {})",
                profile.as_deref().unwrap_or("default"),
                region.as_deref().unwrap_or("from the environment")
            ),
        }
    }

    /// Builds the SDK configuration. Throttling is retried by the SDK's standard retry
    /// mode with jittered exponential backoff; connecting is bounded so that an unreachable
    /// endpoint fails in seconds rather than hanging.
    pub async fn sdk_config(&self) -> SdkConfig {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        match self {
            Target::LocalStack { endpoint, region } => {
                loader
                    .endpoint_url(endpoint)
                    .region(Region::new(region.clone()))
                    .credentials_provider(Credentials::new(
                        "test",
                        "test",
                        None,
                        None,
                        "localstack",
                    ))
                    .load()
                    .await
            }
            Target::Aws {
                profile,
                region,
                endpoint,
            } => {
                let mut loader = loader;
                if let Some(profile) = profile {
                    // The profile's credentials, as `aws --profile` takes them: the default
                    // chain would prefer AWS_ACCESS_KEY_ID from the environment over the
                    // profile named, and act in whatever account those keys belong to.
                    let credentials =
                        aws_config::profile::ProfileFileCredentialsProvider::builder()
                            .profile_name(profile)
                            .build();
                    loader = loader
                        .profile_name(profile)
                        .credentials_provider(credentials);
                }
                if let Some(region) = region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(endpoint) = endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                loader.load().await
            }
        }
    }
}
