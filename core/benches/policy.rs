//! The policy's cost per request, without the network: an ERC-20 `transfer` judged by a
//! token policy (call data decoded, recipient and caps checked), and a Permit2 `PermitSingle`
//! judged as the approval it grants. In criterion's `local_overhead` group, so `cargo xtask
//! bench` compares both with the same bare k256 recovery (target: at most 0.5x).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kms_eth_core::policy::Policy;
use kms_eth_core::typed_data::{parse_typed_data_value, TypedDataRequest};
use kms_eth_signer::{Address, Eip1559Tx, Transaction, U256};
use serde_json::json;

/// How many different requests the benchmark cycles through.
const CASES: usize = 64;
const ACCOUNT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const TOKEN: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const PERMIT2: &str = "0x000000000022D473030F116dDEE9F6B43aC78BA3";
const PAYEES: [&str; 3] = [
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
];
/// A moment before every permit's deadline.
const NOW: u64 = 1_900_000_000;

/// A hot wallet's policy: one token paid to three payees, permits to one spender.
fn policy() -> Policy {
    let payees = PAYEES.map(|p| format!("\"{p}\"")).join(", ");
    let text = format!(
        r#"[[account]]
address = "{ACCOUNT}"
chain_ids = [1]
recipients = []
max_cost_per_tx = "0.01ether"
max_fee_per_gas = "100gwei"
max_gas_per_tx = 100000
[[account.typed_data_domains]]
name = "Permit2"
chain_id = 1
verifying_contract = "{PERMIT2}"
max_deadline = "1h"
[[account.tokens]]
address = "{TOKEN}"
decimals = 6
recipients = [{payees}]
spenders = ["{}"]
max_amount_per_tx = "500"
max_approval = "1000"
"#,
        PAYEES[0]
    );
    Policy::parse(&text).unwrap_or_else(|err| fail(&format!("the benchmark's policy: {err}")))
}

/// Stops the benchmark: its inputs are wrong, so its figures would be too.
fn fail(why: &str) -> ! {
    eprintln!("could not prepare the benchmark inputs: {why}");
    std::process::exit(1)
}

/// An ERC-20 `transfer(payee, amount)` to [`TOKEN`], its call data encoded by hand.
fn transfer(i: u64) -> Transaction {
    let mut input = vec![0xa9, 0x05, 0x9c, 0xbb];
    let mut to = [0u8; 32];
    to[12..].copy_from_slice(&hex::decode(&PAYEES[i as usize % 3][2..]).unwrap_or_default());
    input.extend_from_slice(&to);
    input.extend_from_slice(&U256::from(1_000_000 + i).to_be_bytes::<32>());
    Transaction::Eip1559(Eip1559Tx {
        chain_id: 1,
        nonce: i,
        max_priority_fee_per_gas: U256::from(1_000_000_000u64),
        max_fee_per_gas: U256::from(30_000_000_000u64),
        gas_limit: 60_000,
        to: TOKEN.parse().ok(),
        input,
        ..Default::default()
    })
}

/// A Permit2 `PermitSingle` of `amount` for the listed spender, parsed as the service
/// parses it before the policy sees it.
fn permit_single(i: u64) -> TypedDataRequest {
    let document = json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "PermitDetails": [
                {"name": "token", "type": "address"}, {"name": "amount", "type": "uint160"},
                {"name": "expiration", "type": "uint48"}, {"name": "nonce", "type": "uint48"}
            ],
            "PermitSingle": [
                {"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"},
                {"name": "sigDeadline", "type": "uint256"}
            ]
        },
        "primaryType": "PermitSingle",
        "domain": {"name": "Permit2", "chainId": 1, "verifyingContract": PERMIT2},
        "message": {
            "details": {"token": TOKEN, "amount": (1_000 + i).to_string(), "expiration": NOW + 600, "nonce": i},
            "spender": PAYEES[0], "sigDeadline": NOW + 60
        }
    });
    parse_typed_data_value("typedData", &document)
        .unwrap_or_else(|err| fail(&format!("the benchmark's permit: {err:#}")))
}

fn policy_checks(c: &mut Criterion) {
    let policy = policy();
    let account: Address = ACCOUNT.parse().unwrap_or_default();
    let rules = match policy.account(account) {
        Ok(rules) => rules,
        Err(denial) => fail(&format!("the benchmark's policy: {denial}")),
    };
    let transfers: Vec<Transaction> = (0..CASES as u64).map(transfer).collect();
    let permits: Vec<TypedDataRequest> = (0..CASES as u64).map(permit_single).collect();
    // Every case must be allowed: a benchmark of refusals would measure the early exit.
    assert!(transfers
        .iter()
        .all(|tx| rules.check_transaction(tx).is_ok()));
    assert!(permits
        .iter()
        .all(|permit| rules.check_typed_data(permit, NOW).is_ok()));
    let mut group = c.benchmark_group("local_overhead");
    let mut index = 0;
    group.bench_function("policy_erc20_transfer", |b| {
        b.iter(|| {
            index = (index + 1) % CASES;
            rules.check_transaction(black_box(&transfers[index]))
        })
    });
    let mut index = 0;
    group.bench_function("policy_permit2_document", |b| {
        b.iter(|| {
            index = (index + 1) % CASES;
            rules.check_typed_data(black_box(&permits[index]), NOW)
        })
    });
    group.finish();
}

criterion_group!(benches, policy_checks);
criterion_main!(benches);
