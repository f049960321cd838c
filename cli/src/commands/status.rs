//! `kms-eth status`: an account's key, state, alias and address, or the original design's
//! answer to `{"operation":"status"}`.

use std::fmt;

use anyhow::Result;
use kms_eth_core::event::{operation_of, parse_event, status_answer, Request};
use kms_eth_core::UsageError;
use kms_eth_provisioner::key_info;
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
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key id   {}", self.key_id)?;
        writeln!(f, "state    {}", self.key_state)?;
        writeln!(f, "alias    {}", self.alias.as_deref().unwrap_or("-"))?;
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
        Ok(OrEvent::Report(StatusReport {
            key_id: info.key_id,
            key_arn: info.arn,
            key_state: info.state.as_str().to_owned(),
            alias: info.alias,
            stack_name: info.stack,
            address,
        }))
    }
}
