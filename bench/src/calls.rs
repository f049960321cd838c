//! Counting the KMS calls a signer makes: an SDK interceptor registered on the client
//! counts every operation by name, so the counts are what the SDK really sent, whatever the
//! signer's code says it does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_kms::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use kms_eth_signer::{KmsSigner, Signer, Transaction};
use serde::{Deserialize, Serialize};

use crate::alloy_side;

/// Counts KMS operations (one per call, however many attempts it took) and attempts (HTTP
/// requests, which include retries), by operation name.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<Counts>>,
}

/// What a [`CallCounter`] saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Calls by operation name, as the SDK names them (`GetPublicKey`, `Sign`, ...).
    pub operations: BTreeMap<String, u64>,
    /// HTTP attempts by operation name; more than the calls means the SDK retried.
    pub attempts: BTreeMap<String, u64>,
}

impl Counts {
    /// How many `operation` calls were made.
    pub fn calls(&self, operation: &str) -> u64 {
        self.operations.get(operation).copied().unwrap_or(0)
    }
}

impl CallCounter {
    /// A KMS client like the one `config` makes, with this counter attached.
    pub fn client(&self, config: &SdkConfig) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::from(config)
            .interceptor(self.clone())
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// A copy of the counts so far.
    pub fn counts(&self) -> Counts {
        match self.counts.lock() {
            Ok(counts) => counts.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn add(&self, cfg: &ConfigBag, attempt: bool) {
        // The operation's metadata is in the config bag for every operation the SDK runs.
        let name = cfg
            .load::<Metadata>()
            .map_or_else(|| "unknown".to_owned(), |m| m.name().to_owned());
        let mut counts = match self.counts.lock() {
            Ok(counts) => counts,
            Err(poisoned) => poisoned.into_inner(),
        };
        let map = if attempt {
            &mut counts.attempts
        } else {
            &mut counts.operations
        };
        *map.entry(name).or_default() += 1;
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "kms-eth-bench call counter"
    }

    // Once per operation. Not `read_before_execution`: client interceptors run that hook
    // before the operation's own configuration (which names the operation) is applied.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.add(cfg, false);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.add(cfg, true);
        Ok(())
    }
}

/// The call counts of one signer making `signatures` transaction signatures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallReport {
    /// Signatures made.
    pub signatures: usize,
    /// kms-eth's `KmsSigner`: built once, then `signatures` transactions.
    pub kms_eth: Counts,
    /// alloy's `AwsSigner` doing the same, for comparison.
    pub alloy: Counts,
    /// Whether kms-eth made exactly one GetPublicKey, one Sign per signature and nothing
    /// else (in particular no DescribeKey).
    pub kms_eth_as_required: bool,
}

/// Builds one signer of each kind on a counting client and signs `txs` with it.
pub async fn count(
    config: &SdkConfig,
    key_arn: &str,
    chain_id: u64,
    txs: &[Transaction],
) -> Result<CallReport> {
    let counter = CallCounter::default();
    let signer = KmsSigner::new(counter.client(config), key_arn)
        .await
        .context("building the counted KmsSigner")?;
    for tx in txs {
        signer
            .sign_transaction(tx.clone())
            .await
            .context("signing with the counted KmsSigner")?;
    }
    let kms_eth = counter.counts();

    let counter = CallCounter::default();
    let alloy = alloy_side::AlloySide::new(counter.client(config), key_arn, chain_id, txs).await?;
    for index in 0..txs.len() {
        alloy.sign(index).await?;
    }
    let alloy = counter.counts();

    let signatures = txs.len() as u64;
    let kms_eth_as_required = kms_eth.operations.len() == 2
        && kms_eth.calls("GetPublicKey") == 1
        && kms_eth.calls("Sign") == signatures;
    Ok(CallReport {
        signatures: txs.len(),
        kms_eth,
        alloy,
        kms_eth_as_required,
    })
}
