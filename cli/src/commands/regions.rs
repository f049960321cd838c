//! A signer over several Regions' replicas of one multi-Region key (`sign
//! --failover-region`, `serve --failover-region` and a stack's replica Regions): the
//! command's own Region first, then each one given. A Region that cannot be reached even for
//! the public key is left out with a warning, as long as one answers.

use anyhow::Result;
use kms_eth_core::UsageError;
use kms_eth_signer::{arn_in_region, fails_over, KmsError, KmsSigner, MultiRegionSigner};

use crate::flags::AccountArgs;
use crate::msg;
use crate::session::Session;

/// The session's Region, as a Region list names it.
pub fn home_region(session: &Session) -> String {
    session
        .config
        .region()
        .map_or_else(|| "the default Region".to_owned(), |r| r.to_string())
}

/// The signer of `account`'s key in the session's Region and in `regions`. A key named by
/// `--key-id` is asked for in each Region with the caller's credentials, so the first Region
/// may be down from the start; a stack's key is read through its signer role in the
/// session's Region (CloudFormation and STS are asked there), and its replicas with the
/// same credentials.
pub async fn failover_signer(
    session: &Session,
    account: &AccountArgs,
    regions: &[String],
) -> Result<MultiRegionSigner> {
    let home = home_region(session);
    let mut signers = Vec::new();
    let mut unreachable = Vec::new();
    let mut keep = |region: &str, built: Result<KmsSigner, KmsError>| -> Result<()> {
        match built {
            Ok(signer) => signers.push((region.to_owned(), signer)),
            Err(err) if fails_over(&err) => {
                msg::warn(format!(
                    "Region {region} cannot be reached ({err}); going on without it"
                ));
                unreachable.push(err);
            }
            Err(err) => return Err(err.into()),
        }
        Ok(())
    };
    match &account.key.key_id {
        Some(key_id) => {
            keep(
                &home,
                KmsSigner::new(session.kms.clone(), key_id.clone()).await,
            )?;
            for region in regions {
                let key = arn_in_region(key_id, region);
                keep(
                    region,
                    KmsSigner::new(client_in(session, region), key).await,
                )?;
            }
        }
        None => {
            let first = session.signer(account).await?;
            for region in regions {
                keep(region, first.replica(region).await)?;
            }
            signers.insert(0, (home, first));
        }
    }
    if signers.is_empty() {
        if let Some(err) = unreachable.pop() {
            return Err(err.into());
        }
    }
    let signer = MultiRegionSigner::new(signers)?;
    match account.expect_address {
        Some(expected) if expected != signer.address() => Err(UsageError(format!(
            "the key is {}, not --expect-address {expected}",
            signer.address()
        ))
        .into()),
        _ => Ok(signer),
    }
}

/// A KMS client of `region`, otherwise configured as the session's.
pub fn client_in(session: &Session, region: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::from(&session.config)
        .region(aws_sdk_kms::config::Region::new(region.to_owned()))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}
