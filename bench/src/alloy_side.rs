//! alloy's AWS KMS signer (`alloy-signer-aws`) signing the same transactions as kms-eth: the
//! peer implementation the benchmark compares against. Each signature ends as the complete
//! EIP-2718 envelope, as kms-eth's does, so both sides do the same job.

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSigner;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer_aws::AwsSigner;
use anyhow::{bail, Context, Result};
use kms_eth_signer::Transaction;

/// alloy's signer with the benchmark's transactions in alloy's types.
#[derive(Debug)]
pub struct AlloySide {
    signer: AwsSigner,
    txs: Vec<TxEip1559>,
}

impl AlloySide {
    /// Builds alloy's signer (one GetPublicKey) on `client` and converts `txs`.
    pub async fn new(
        client: aws_sdk_kms::Client,
        key_arn: &str,
        chain_id: u64,
        txs: &[Transaction],
    ) -> Result<Self> {
        let signer = AwsSigner::new(client, key_arn.to_owned(), Some(chain_id))
            .await
            .context("building alloy's AwsSigner")?;
        let txs = txs.iter().map(to_alloy).collect::<Result<_>>()?;
        Ok(AlloySide { signer, txs })
    }

    /// The address alloy derived from the key.
    pub fn address(&self) -> [u8; 20] {
        self.signer.address().into_array()
    }

    /// alloy's signing hash of transaction `index`, to check that both sides sign the same
    /// digests.
    pub fn signing_hash(&self, index: usize) -> Result<[u8; 32]> {
        let tx = self.txs.get(index).context("no such transaction")?;
        Ok(tx.signature_hash().0)
    }

    /// Signs transaction `index` and returns the signed envelope's bytes.
    pub async fn sign(&self, index: usize) -> Result<Vec<u8>> {
        let mut tx = self.txs.get(index).context("no such transaction")?.clone();
        let signature = TxSigner::sign_transaction(&self.signer, &mut tx)
            .await
            .context("alloy's AwsSigner failed to sign")?;
        Ok(tx.into_signed(signature).encoded_2718())
    }
}

/// The same EIP-1559 transaction in alloy's types.
fn to_alloy(tx: &Transaction) -> Result<TxEip1559> {
    let Transaction::Eip1559(tx) = tx else {
        bail!("the benchmark signs EIP-1559 transactions only");
    };
    if !tx.access_list.is_empty() {
        bail!("the benchmark's transactions have no access list");
    }
    let fee = |value: &kms_eth_signer::U256| -> Result<u128> {
        u128::try_from(*value).context("a fee above 2^128 wei")
    };
    Ok(TxEip1559 {
        chain_id: tx.chain_id,
        nonce: tx.nonce,
        gas_limit: tx.gas_limit,
        max_fee_per_gas: fee(&tx.max_fee_per_gas)?,
        max_priority_fee_per_gas: fee(&tx.max_priority_fee_per_gas)?,
        to: match tx.to {
            Some(to) => TxKind::Call(Address::from(to.0)),
            None => TxKind::Create,
        },
        value: U256::from_be_bytes(tx.value.to_be_bytes::<32>()),
        access_list: Default::default(),
        input: Bytes::from(tx.input.clone()),
    })
}
