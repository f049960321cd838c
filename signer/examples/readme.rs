//! The library example of the README ("The signer library"), as a program that compiles:
//! `cargo test` builds every example, and `tests/readme.rs` checks that the README shows
//! exactly the lines between the markers below, so the README cannot drift from the API.
//!
//! Running it signs a transaction with `alias/my-account` in the AWS account (or
//! `AWS_ENDPOINT_URL`) of the environment.

use aws_config::BehaviorVersion;
use kms_eth_signer::{Eip1559Tx, KmsSigner, Signer, Transaction, U256};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tx = Eip1559Tx {
        chain_id: 1,
        nonce: 0,
        max_priority_fee_per_gas: U256::from(1_000_000_000u64),
        max_fee_per_gas: U256::from(30_000_000_000u64),
        gas_limit: 21_000,
        to: Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse()?),
        value: U256::from(1u64),
        input: Vec::new(),
        access_list: Vec::new(),
    };
    // README begin
    let kms = aws_sdk_kms::Client::new(&aws_config::load_defaults(BehaviorVersion::latest()).await);
    let signer = KmsSigner::new(kms, "alias/my-account").await?; // one GetPublicKey
    println!("{}", signer.address()); // EIP-55, cached
    let signed = signer.sign_transaction(Transaction::Eip1559(tx)).await?;
    println!("{} {}", signed.raw_hex(), hex::encode(signed.hash)); // for eth_sendRawTransaction

    // README end
    Ok(())
}
