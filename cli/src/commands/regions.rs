//! A signer over several Regions' replicas of one multi-Region key (`sign
//! --failover-region`): the command's own Region first, then each one given. A Region that
//! cannot be reached even for the public key is left out with a warning, as long as one
//! answers.

use anyhow::Result;
use kms_eth_core::UsageError;
use kms_eth_signer::{fails_over, KmsSigner, MultiRegionSigner};

use crate::flags::AccountArgs;
use crate::msg;
use crate::session::Session;

/// The signer of `account`'s key (`--key-id`) in the session's Region and in `regions`.
pub async fn failover_signer(
    session: &Session,
    account: &AccountArgs,
    regions: &[String],
) -> Result<MultiRegionSigner> {
    let Some(key_id) = &account.key.key_id else {
        return Err(
            UsageError("--failover-region needs --key-id (the multi-Region key)".into()).into(),
        );
    };
    let home = session
        .config
        .region()
        .map_or_else(|| "the default Region".to_owned(), |r| r.to_string());
    let mut clients = vec![(home, session.kms.clone())];
    for region in regions {
        clients.push((region.clone(), client_in(session, region)));
    }
    let mut signers = Vec::new();
    let mut unreachable = Vec::new();
    for (region, client) in clients {
        match KmsSigner::new(client, key_id.clone()).await {
            Ok(signer) => signers.push((region, signer)),
            Err(err) if fails_over(&err) => {
                msg::warn(format!(
                    "Region {region} cannot be reached ({err}); going on without it"
                ));
                unreachable.push(err);
            }
            Err(err) => return Err(err.into()),
        }
    }
    if signers.is_empty() {
        if let Some(err) = unreachable.pop() {
            return Err(err.into());
        }
    }
    let signer = MultiRegionSigner::new(signers)?;
    let signer = match account.expect_address {
        Some(expected) if expected != kms_eth_signer::Signer::address(&signer) => {
            return Err(UsageError(format!(
                "the key is {}, not --expect-address {expected}",
                kms_eth_signer::Signer::address(&signer)
            ))
            .into())
        }
        _ => signer,
    };
    Ok(signer)
}

/// A KMS client of `region`, otherwise configured as the session's.
pub fn client_in(session: &Session, region: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::from(&session.config)
        .region(aws_sdk_kms::config::Region::new(region.to_owned()))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}
