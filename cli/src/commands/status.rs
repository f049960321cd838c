//! `kms-eth status`: an account's key, state, alias and address (and a multi-Region key's
//! state in each of its Regions), or the original design's answer to
//! `{"operation":"status"}`.

use std::fmt;

use anyhow::Result;
use kms_eth_core::event::{operation_of, parse_event, status_answer, Request};
use kms_eth_core::UsageError;
use kms_eth_provisioner::{key_info, key_regions, region_keys};
use serde::Serialize;

use crate::flags::StatusArgs;
use crate::output::{EventAnswer, OrEvent, Report};
use crate::session::Session;

/// An account as KMS describes it.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub key_id: String,
    pub key_arn: String,
    pub key_state: String,
    pub alias: Option<String>,
    pub stack_name: Option<String>,
    pub address: String,
    /// A multi-Region key in every Region it is in, the primary first (none for a key in
    /// one Region).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionStatus>,
}

/// A multi-Region key's copy in one Region, as read there.
#[derive(Debug, Serialize)]
pub struct RegionStatus {
    pub region: String,
    /// `primary` or `replica`.
    pub role: &'static str,
    pub key_arn: String,
    /// Its state there, or why it could not be read.
    pub key_state: String,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key id   {}", self.key_id)?;
        writeln!(f, "state    {}", self.key_state)?;
        writeln!(f, "alias    {}", self.alias.as_deref().unwrap_or("-"))?;
        for region in &self.regions {
            writeln!(
                f,
                "region   {} {} {}",
                region.region, region.role, region.key_state
            )?;
        }
        write!(f, "address  {}", self.address)
    }
}

impl Report for StatusReport {}

impl StatusArgs {
    /// Checks the flags and the event before any call.
    pub fn check(&self) -> Result<()> {
        super::check_account(&self.account)?;
        let Some(event) = self.event.as_deref() else {
            return Ok(());
        };
        // The operation first: a sign event here is a mistake of command, whatever its fields.
        if operation_of(event) == "sign" {
            return Err(UsageError(
                "invalid --event: status answers {\"operation\":\"status\"}; sign events go to `kms-eth sign --event`".into(),
            )
            .into());
        }
        match parse_event(event)? {
            Request::Status => Ok(()),
            Request::Sign(_) => Err(UsageError(
                "invalid --event: status answers {\"operation\":\"status\"}".into(),
            )
            .into()),
        }
    }

    pub async fn run(self, session: &Session) -> Result<OrEvent<StatusReport>> {
        let signer = session.reader(&self.account).await?;
        let address = signer.address().to_string();
        if self.event.is_some() {
            // The original operation's answer, exactly.
            return Ok(OrEvent::Event(EventAnswer(status_answer(signer.address()))));
        }
        let info = key_info(&session.kms, signer.key_arn()).await?;
        let regions = if key_regions(&session.kms, signer.key_arn())
            .await?
            .multi_region
        {
            region_keys(&session.kms, signer.key_arn())
                .await?
                .into_iter()
                .map(|key| RegionStatus {
                    region: key.region,
                    role: key.role,
                    key_arn: key.key_arn,
                    key_state: match key.state {
                        Ok(state) => state.as_str().to_owned(),
                        Err(err) => format!("cannot be read: {err}"),
                    },
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(OrEvent::Report(StatusReport {
            key_id: info.key_id,
            key_arn: info.arn,
            key_state: info.state.as_str().to_owned(),
            alias: info.alias,
            stack_name: info.stack,
            address,
            regions,
        }))
    }
}
