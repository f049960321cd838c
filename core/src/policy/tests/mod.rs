//! The policy engine's rules one by one: each refuses what it names with its own rule name,
//! allows a request exactly at its limit and refuses one unit over; bad policy files are
//! refused with their line. The helpers every part uses are here; `transactions` (cost,
//! creation, calls, tokens), `signatures` (typed data, permits, messages) and `files` (the
//! ledger, policy files, the README's policy, any bytes) hold the tests.

use kms_eth_signer::{Eip1559Tx, Eip4844Tx, LegacyTx, Transaction, U256};
use serde_json::{json, Value};

use super::*;
use crate::typed_data::parse_typed_data_value;

const ME: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const FRIEND: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const OTHER: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const TOKEN: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const PERMIT2: &str = "0x000000000022D473030F116dDEE9F6B43aC78BA3";
/// 24 hours in seconds, written out here rather than taken from the code under test.
const ONE_DAY: u64 = 86_400;

fn policy(rules: &str) -> Policy {
    Policy::parse(&format!("[[account]]\naddress = \"{ME}\"\n{rules}"))
        .unwrap_or_else(|err| panic!("{rules}: {err}"))
}

fn rules_of(policy: &Policy) -> &AccountRules {
    policy.account(ME.parse().unwrap()).unwrap()
}

/// An EIP-1559 transaction of 21,000 gas at 30 gwei (630,000 gwei of fees at most).
fn call(to: Option<&str>, value: u64, data: &[u8]) -> Transaction {
    Transaction::Eip1559(Eip1559Tx {
        chain_id: 1,
        nonce: 0,
        max_priority_fee_per_gas: U256::from(1_000_000_000u64),
        max_fee_per_gas: U256::from(30_000_000_000u64),
        gas_limit: 21_000,
        to: to.map(|a| a.parse().unwrap()),
        value: U256::from(value),
        input: data.to_vec(),
        access_list: Vec::new(),
    })
}

const FEES: u64 = 21_000 * 30_000_000_000;

fn rule(policy: &Policy, tx: &Transaction) -> Option<&'static str> {
    rules_of(policy).check_transaction(tx).err().map(|d| d.rule)
}

/// ABI call data built by hand from the functions' published selectors, independently of
/// the `sol!` bindings under test.
fn abi(selector: &str, words: &[[u8; 32]]) -> Vec<u8> {
    let mut data = hex::decode(selector).unwrap();
    for word in words {
        data.extend_from_slice(word);
    }
    data
}

fn word_address(address: &str) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&hex::decode(&address[2..]).unwrap());
    word
}

fn word(amount: U256) -> [u8; 32] {
    amount.to_be_bytes()
}

fn transfer(to: &str, amount: u64) -> Vec<u8> {
    abi("a9059cbb", &[word_address(to), word(U256::from(amount))])
}

fn approve(spender: &str, amount: U256) -> Vec<u8> {
    abi("095ea7b3", &[word_address(spender), word(amount)])
}

mod files;
mod signatures;
mod transactions;
