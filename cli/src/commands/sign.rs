//! `kms-eth sign`: build and sign a transaction without sending it, from flags or from an
//! event of the original design.

use std::fmt;

use anyhow::Result;
use kms_eth_core::event::{error_answer, operation_of, parse_sign_event, sign_answer};
use kms_eth_core::UsageError;
use kms_eth_signer::{Signer, Transaction};

use crate::flags::{flag_error, SignArgs};
use crate::output::{emit, EventAnswer, OrEvent, Report};
use crate::session::Session;
use crate::txreport::TransactionReport;

/// A signed transaction; as text, the raw transaction and its hash.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct SignReport(pub TransactionReport);

impl fmt::Display for SignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "raw   {}", self.0.raw)?;
        write!(f, "hash  {}", self.0.hash)
    }
}

impl Report for SignReport {}

impl SignArgs {
    fn event_text(&self) -> Result<Option<String>> {
        Ok(match (&self.event, &self.event_file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|err| {
                UsageError(format!("invalid --event-file {}: {err}", path.display()))
            })?),
            (None, None) => None,
        })
    }

    /// The transaction to sign, checked before any call. A bad event is answered with an
    /// error object on stdout, as the original answered it, and exit 2.
    pub fn transaction(&self) -> Result<Transaction> {
        super::check_account(&self.account)?;
        if self.no_sidecar && self.tx.tx_type != kms_eth_core::txinputs::Kind::Eip4844 {
            return Err(UsageError(
                "invalid --no-sidecar: only EIP-4844 transactions have a sidecar; add --type 4844"
                    .into(),
            )
            .into());
        }
        if self.no_sidecar && self.tx.sidecar_form.is_some() {
            return Err(UsageError(
                "invalid --sidecar: --no-sidecar prints no sidecar; give one of them".into(),
            )
            .into());
        }
        // An event is the whole transaction: blob, delegation and sidecar flags beside it
        // would be ignored, and what is signed would not be what they say.
        let given_with_event = [
            ("--blob-file", !self.tx.blob_files.is_empty()),
            (
                "--max-fee-per-blob-gas",
                self.tx.max_fee_per_blob_gas.is_some(),
            ),
            ("--sidecar", self.tx.sidecar_form.is_some()),
            ("--no-sidecar", self.no_sidecar),
            ("--authorization", !self.tx.authorizations.is_empty()),
            ("--delegate", self.tx.delegate.is_some()),
        ];
        if self.event.is_some() || self.event_file.is_some() {
            if let Some((flag, _)) = given_with_event.iter().find(|(_, given)| *given) {
                return Err(UsageError(format!(
                    "invalid {flag}: the event is the whole transaction (a transfer of the \
                     original design); sign it without {flag}, or sign with flags instead of \
                     the event"
                ))
                .into());
            }
        }
        match self.event_text()? {
            Some(text) => parse_sign_event(&text).inspect_err(|err| {
                let _ = emit(&EventAnswer(error_answer(&operation_of(&text), err)), false);
            }),
            None => {
                let inputs =
                    super::with_placeholder_delegation(self.tx.inputs()?, self.tx.delegate)?;
                Ok(inputs.complete().map_err(flag_error)?)
            }
        }
    }

    pub async fn run(self, session: &Session) -> Result<OrEvent<SignReport>> {
        let checked = self.transaction()?;
        if !self.failover_regions.is_empty() {
            let signer =
                super::regions::failover_signer(session, &self.account, &self.failover_regions)
                    .await?;
            let signed = signer.sign_transaction(checked).await?;
            return self.report(signed, signer.address());
        }
        let signer = session.signer(&self.account).await?;
        let tx = match self.tx.delegate {
            Some(delegate) if self.event_text()?.is_none() => {
                let mut inputs = self.tx.inputs()?;
                super::delegate_self(&signer, &mut inputs, delegate).await?;
                inputs.complete().map_err(flag_error)?
            }
            _ => checked,
        };
        let signed = signer.sign_transaction(tx).await?;
        self.report(signed, signer.address())
    }

    fn report(
        &self,
        mut signed: kms_eth_signer::SignedTransaction,
        from: kms_eth_signer::Address,
    ) -> Result<OrEvent<SignReport>> {
        if self.no_sidecar {
            signed = signed.without_sidecar();
        }
        Ok(if self.event_text()?.is_some() {
            OrEvent::Event(EventAnswer(sign_answer(&signed)))
        } else {
            OrEvent::Report(SignReport(TransactionReport::new(&signed, Some(from))))
        })
    }
}
