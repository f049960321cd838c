//! The policy engine's rules one by one: each refuses what it names with its own rule name,
//! allows a request exactly at its limit and refuses one unit over; bad policy files are
//! refused with their line.

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

#[test]
fn each_rule_refuses_what_it_names_and_allows_the_rest() {
    let p = policy(&format!(
        "chain_ids = [1]\nrecipients = [\"{FRIEND}\"]\nmax_fee_per_gas = \"20gwei\""
    ));
    // The fee rule speaks first: the transaction offers 30 gwei.
    assert_eq!(
        rule(&p, &call(Some(FRIEND), 1, &[])),
        Some("max_fee_per_gas")
    );
    let p = policy(&format!(
        "chain_ids = [1]\nrecipients = [\"{FRIEND}\"]\n[account.selectors]\n\"{FRIEND}\" = [\"0x12345678\"]"
    ));
    assert_eq!(rule(&p, &call(Some(FRIEND), 1, &[])), None);
    assert_eq!(rule(&p, &call(Some(OTHER), 1, &[])), Some("recipients"));
    assert_eq!(
        rule(&p, &call(Some(FRIEND), 0, &[0x87, 0x65, 0x43, 0x21])),
        Some("selectors")
    );
    assert_eq!(
        rule(&p, &call(Some(FRIEND), 0, &[0x12, 0x34, 0x56, 0x78, 0])),
        None
    );
    let legacy = Transaction::Legacy(LegacyTx {
        chain_id: Some(5),
        nonce: 0,
        gas_price: U256::from(1u8),
        gas_limit: 21_000,
        to: Some(FRIEND.parse().unwrap()),
        value: U256::ZERO,
        input: Vec::new(),
    });
    assert_eq!(rule(&p, &legacy), Some("chain_ids"));
}

#[test]
fn the_cost_cap_counts_value_and_fees_at_their_most_to_the_wei() {
    let cap = 1_000 + FEES;
    let p = policy(&format!("max_cost_per_tx = \"{cap}wei\""));
    assert_eq!(rule(&p, &call(Some(FRIEND), 1_000, &[])), None);
    assert_eq!(
        rule(&p, &call(Some(FRIEND), 1_001, &[])),
        Some("max_cost_per_tx")
    );
    // A zero-value transaction is refused on its fees alone.
    let p = policy(&format!("max_cost_per_tx = \"{}wei\"", FEES - 1));
    assert_eq!(
        rule(&p, &call(Some(FRIEND), 0, &[])),
        Some("max_cost_per_tx")
    );
    // Blob fees count too: 2 blobs x 2^17 blob gas x 3 wei.
    let blobs = Transaction::Eip4844(Eip4844Tx {
        chain_id: 1,
        max_fee_per_gas: U256::from(30_000_000_000u64),
        gas_limit: 21_000,
        to: FRIEND.parse().unwrap(),
        max_fee_per_blob_gas: U256::from(3u8),
        blob_versioned_hashes: vec![Default::default(); 2],
        ..Default::default()
    });
    let with_blobs = FEES + 2 * 131_072 * 3;
    assert_eq!(transaction::worst_case_cost(&blobs), U256::from(with_blobs));
    let p = policy(&format!("max_cost_per_tx = \"{with_blobs}wei\""));
    assert_eq!(rule(&p, &blobs), None);
    let p = policy(&format!("max_cost_per_tx = \"{}wei\"", with_blobs - 1));
    assert_eq!(rule(&p, &blobs), Some("max_cost_per_tx"));
}

#[test]
fn the_gas_cap_allows_its_limit_and_refuses_one_more() {
    let p = policy("max_gas_per_tx = 21000");
    assert_eq!(rule(&p, &call(Some(FRIEND), 1, &[])), None);
    let p = policy("max_gas_per_tx = 20999");
    assert_eq!(
        rule(&p, &call(Some(FRIEND), 1, &[])),
        Some("max_gas_per_tx")
    );
}

#[test]
fn contract_creation_is_refused_unless_allowed_whatever_else_the_policy_says() {
    let creation = call(None, 0, &[0x60, 0x00]);
    assert_eq!(rule(&policy(""), &creation), Some("contract_creation"));
    // With recipients listed, init code could still forward the value anywhere.
    let p = policy(&format!("recipients = [\"{FRIEND}\"]"));
    assert_eq!(rule(&p, &creation), Some("contract_creation"));
    assert_eq!(rule(&policy("contract_creation = true"), &creation), None);
}

#[test]
fn eip_7702_transactions_are_refused_unless_the_policy_allows_authorizations() {
    let delegation = Transaction::Eip7702(kms_eth_signer::Eip7702Tx {
        chain_id: 1,
        max_fee_per_gas: U256::from(1u8),
        gas_limit: 60_000,
        to: FRIEND.parse().unwrap(),
        ..Default::default()
    });
    assert_eq!(rule(&policy(""), &delegation), Some("authorizations"));
    assert_eq!(rule(&policy("authorizations = true"), &delegation), None);
    let p = policy(&format!(
        "authorizations = true\nrecipients = [\"{OTHER}\"]"
    ));
    assert_eq!(rule(&p, &delegation), Some("recipients"));
}

#[test]
fn call_data_of_one_to_three_bytes_runs_a_fallback_and_is_refused_where_selectors_are_listed() {
    let p = policy(&format!(
        "[account.selectors]\n\"{FRIEND}\" = [\"0x12345678\"]"
    ));
    for length in 1..=3 {
        let data = vec![0x12; length];
        assert_eq!(
            rule(&p, &call(Some(FRIEND), 0, &data)),
            Some("selectors"),
            "{length} bytes"
        );
        // Elsewhere they are a plain call of the recipient's fallback.
        assert_eq!(rule(&p, &call(Some(OTHER), 0, &data)), None);
    }
    assert_eq!(
        rule(&p, &call(Some(FRIEND), 0, &[0x12, 0x34, 0x56, 0x78])),
        None
    );
    // To a listed token, the bytes are no token function: refused.
    let p = policy(&format!("[[account.tokens]]\naddress = \"{TOKEN}\""));
    for length in 1..=3 {
        assert_eq!(
            rule(&p, &call(Some(TOKEN), 0, &vec![0xa9; length])),
            Some("tokens")
        );
    }
}

#[test]
fn token_transfers_are_judged_by_recipient_and_amount_to_the_unit() {
    let p = policy(&format!(
        "recipients = [\"{OTHER}\"]\n[[account.tokens]]\naddress = \"{TOKEN}\"\ndecimals = 6\n\
         recipients = [\"{FRIEND}\"]\nmax_amount_per_tx = \"1.5\""
    ));
    let rules = rules_of(&p);
    // A listed token need not be a listed recipient; its rules judge the call.
    let effect = rules
        .check_transaction(&call(Some(TOKEN), 0, &transfer(FRIEND, 1_500_000)))
        .unwrap();
    assert_eq!(
        effect.tokens,
        vec![(TOKEN.parse().unwrap(), U256::from(1_500_000u64))]
    );
    assert_eq!(
        rule(&p, &call(Some(TOKEN), 0, &transfer(FRIEND, 1_500_001))),
        Some("tokens.max_amount_per_tx")
    );
    assert_eq!(
        rule(&p, &call(Some(TOKEN), 0, &transfer(OTHER, 1))),
        Some("tokens.recipients")
    );
    let transfer_from = abi(
        "23b872dd",
        &[word_address(ME), word_address(OTHER), word(U256::from(1u8))],
    );
    assert_eq!(
        rule(&p, &call(Some(TOKEN), 0, &transfer_from)),
        Some("tokens.recipients")
    );
    // Data that carries transfer's selector but is not its exact encoding.
    let mut long = transfer(FRIEND, 1);
    long.push(0);
    let mut dirty = transfer(FRIEND, 1);
    dirty[4] = 1; // a bit above the address's 20 bytes
    for data in [long, dirty, transfer(FRIEND, 1)[..35].to_vec()] {
        assert_eq!(rule(&p, &call(Some(TOKEN), 0, &data)), Some("tokens"));
    }
    // A token function on a contract that is not a listed token moves what no rule counts.
    assert_eq!(
        rule(&p, &call(Some(OTHER), 0, &transfer(FRIEND, 1))),
        Some("tokens")
    );
}

#[test]
fn approvals_go_only_to_listed_spenders_within_the_cap_and_revocations_always_pass() {
    let p = policy(&format!(
        "[[account.tokens]]\naddress = \"{TOKEN}\"\nspenders = [\"{FRIEND}\"]\nmax_approval = \"1000\""
    ));
    assert_eq!(
        rule(
            &p,
            &call(Some(TOKEN), 0, &approve(FRIEND, U256::from(1_000u64)))
        ),
        None
    );
    assert_eq!(
        rule(
            &p,
            &call(Some(TOKEN), 0, &approve(FRIEND, U256::from(1_001u64)))
        ),
        Some("tokens.max_approval")
    );
    assert_eq!(
        rule(&p, &call(Some(TOKEN), 0, &approve(OTHER, U256::from(1u8)))),
        Some("tokens.spenders")
    );
    assert_eq!(
        rule(&p, &call(Some(TOKEN), 0, &approve(OTHER, U256::ZERO))),
        None
    );
    let unlimited = policy(&format!(
        "[[account.tokens]]\naddress = \"{TOKEN}\"\nspenders = [\"{FRIEND}\"]"
    ));
    assert_eq!(
        rule(
            &unlimited,
            &call(Some(TOKEN), 0, &approve(FRIEND, U256::MAX))
        ),
        Some("tokens.unlimited_approval")
    );
    let increase = abi("39509351", &[word_address(FRIEND), word(U256::MAX)]);
    assert_eq!(
        rule(&unlimited, &call(Some(TOKEN), 0, &increase)),
        Some("tokens.unlimited_approval")
    );
    let allowed = policy(&format!(
        "[[account.tokens]]\naddress = \"{TOKEN}\"\nspenders = [\"{FRIEND}\"]\nunlimited_approval = true"
    ));
    assert_eq!(
        rule(&allowed, &call(Some(TOKEN), 0, &approve(FRIEND, U256::MAX))),
        None
    );
    // Permit2's approve names the token it approves; a revocation of an unlisted token
    // passes, an approval does not.
    let permit2 = |token: &str, amount: U256| {
        abi(
            "87517c45",
            &[
                word_address(token),
                word_address(FRIEND),
                word(amount),
                word(U256::from(1u8)),
            ],
        )
    };
    assert_eq!(
        rule(
            &p,
            &call(Some(PERMIT2), 0, &permit2(TOKEN, U256::from(1_001u64)))
        ),
        Some("tokens.max_approval")
    );
    assert_eq!(
        rule(
            &p,
            &call(Some(PERMIT2), 0, &permit2(OTHER, U256::from(1u8)))
        ),
        Some("tokens")
    );
    assert_eq!(
        rule(&p, &call(Some(OTHER), 0, &approve(FRIEND, U256::ZERO))),
        None
    );
}

fn typed(
    primary: &str,
    types: Value,
    domain: Value,
    message: Value,
) -> crate::typed_data::TypedDataRequest {
    let mut all = json!({
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"}
        ]
    });
    for (name, fields) in types.as_object().unwrap() {
        all[name] = fields.clone();
    }
    let document =
        json!({"types": all, "primaryType": primary, "domain": domain, "message": message});
    parse_typed_data_value("typedData", &document).unwrap()
}

/// An EIP-2612 permit of `value` for `spender` on [`TOKEN`], until `deadline`.
fn permit(spender: &str, value: U256, deadline: u64) -> crate::typed_data::TypedDataRequest {
    typed(
        "Permit",
        json!({"Permit": [
            {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"}
        ]}),
        json!({"name": "USD Coin", "chainId": 1, "verifyingContract": TOKEN}),
        json!({"owner": ME, "spender": spender, "value": value.to_string(), "nonce": 0, "deadline": deadline}),
    )
}

/// A Permit2 `PermitSingle` of `amount` (a uint160) for `spender`.
fn permit_single(
    spender: &str,
    amount: U256,
    expiration: u64,
    deadline: u64,
) -> crate::typed_data::TypedDataRequest {
    typed(
        "PermitSingle",
        json!({
            "PermitDetails": [
                {"name": "token", "type": "address"}, {"name": "amount", "type": "uint160"},
                {"name": "expiration", "type": "uint48"}, {"name": "nonce", "type": "uint48"}
            ],
            "PermitSingle": [
                {"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"},
                {"name": "sigDeadline", "type": "uint256"}
            ]
        }),
        json!({"name": "Permit2", "chainId": 1, "verifyingContract": PERMIT2}),
        json!({
            "details": {"token": TOKEN, "amount": amount.to_string(), "expiration": expiration, "nonce": 0},
            "spender": spender, "sigDeadline": deadline
        }),
    )
}

fn typed_rule(
    policy: &Policy,
    request: &crate::typed_data::TypedDataRequest,
    now: u64,
) -> Option<&'static str> {
    rules_of(policy)
        .check_typed_data(request, now)
        .err()
        .map(|d| d.rule)
}

#[test]
fn typed_data_is_refused_unless_its_domain_is_listed() {
    let mail = parse_typed_data_value(
        "typedData",
        &serde_json::from_str(crate::typed_data::tests::MAIL).unwrap(),
    )
    .unwrap();
    assert_eq!(
        typed_rule(&policy(""), &mail, 0),
        Some("typed_data_domains")
    );
    let p = policy("[[account.typed_data_domains]]\nname = \"Ether Mail\"\nchain_id = 1");
    assert_eq!(typed_rule(&p, &mail, 0), None);
    let p = policy("[[account.typed_data_domains]]\nname = \"Ether Mail\"\nchain_id = 5");
    assert_eq!(typed_rule(&p, &mail, 0), Some("typed_data_domains"));
}

#[test]
fn permits_are_judged_as_the_approvals_they_grant_to_the_unit_and_the_second() {
    let now = 1_800_000_000;
    let p = policy(&format!(
        "[[account.typed_data_domains]]\nverifying_contract = \"{TOKEN}\"\nmax_deadline = \"1h\"\n\
         [[account.typed_data_domains]]\nname = \"Permit2\"\nmax_deadline = \"1h\"\n\
         [[account.tokens]]\naddress = \"{TOKEN}\"\nspenders = [\"{FRIEND}\"]\nmax_approval = \"500\""
    ));
    let at_cap = permit(FRIEND, U256::from(500u64), now + 3_600);
    assert_eq!(typed_rule(&p, &at_cap, now), None);
    for (request, expected) in [
        (
            permit(FRIEND, U256::from(501u64), now),
            "tokens.max_approval",
        ),
        (permit(OTHER, U256::from(1u8), now), "tokens.spenders"),
        (
            permit(FRIEND, U256::from(1u8), now + 3_601),
            "typed_data_domains.max_deadline",
        ),
        (permit(FRIEND, U256::MAX, now), "tokens.unlimited_approval"),
        (
            permit_single(FRIEND, tokens::unlimited(), now, now),
            "tokens.unlimited_approval",
        ),
        (
            permit_single(OTHER, U256::from(1u8), now, now),
            "tokens.spenders",
        ),
        // The allowance's expiration counts, not only the signature's deadline.
        (
            permit_single(FRIEND, U256::from(1u8), now + 3_601, now),
            "typed_data_domains.max_deadline",
        ),
    ] {
        assert_eq!(
            typed_rule(&p, &request, now),
            Some(expected),
            "{:?}",
            request.message
        );
    }
    assert_eq!(
        typed_rule(
            &p,
            &permit_single(FRIEND, U256::from(500u64), now + 3_600, now),
            now
        ),
        None
    );
    // A permit of a token with no rules of its own is refused.
    let p = policy("[[account.typed_data_domains]]\nname = \"Permit2\"");
    assert_eq!(
        typed_rule(&p, &permit_single(FRIEND, U256::from(1u8), now, now), now),
        Some("tokens")
    );
    // A "Permit" that is not one: its effect cannot be judged.
    let fake = typed(
        "Permit",
        json!({"Permit": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}]}),
        json!({"name": "USD Coin", "chainId": 1, "verifyingContract": TOKEN}),
        json!({"spender": FRIEND, "amount": "1"}),
    );
    let p = policy(&format!(
        "[[account.typed_data_domains]]\nverifying_contract = \"{TOKEN}\"\n\
         [[account.tokens]]\naddress = \"{TOKEN}\"\nspenders = [\"{FRIEND}\"]"
    ));
    assert_eq!(typed_rule(&p, &fake, now), Some("typed_data_domains"));
}

#[test]
fn messages_are_refused_unless_allowed_and_raw_payloads_need_their_own_yes() {
    let tx_rlp = {
        // An unsigned EIP-1559 transaction: type 2 and a list of nine items.
        let mut stream = rlp::RlpStream::new_list(9);
        for _ in 0..9 {
            stream.append_empty_data();
        }
        let mut bytes = vec![2u8];
        bytes.extend_from_slice(&stream.out());
        bytes
    };
    let text = policy("[account.messages]\ntext = true");
    let raw = policy("[account.messages]\ntext = true\nraw = true");
    assert_eq!(
        rules_of(&policy(""))
            .check_message(b"hello")
            .unwrap_err()
            .rule,
        "messages"
    );
    assert!(rules_of(&text).check_message(b"hello").is_ok());
    for payload in [
        vec![b'a'; 32],
        tx_rlp,
        vec![0x19, 0x01, 0xaa],
        vec![0xff, 0xfe],
        br#"{"types":{},"primaryType":"Mail"}"#.to_vec(),
    ] {
        assert_eq!(
            rules_of(&text).check_message(&payload).unwrap_err().rule,
            "messages.raw",
            "{payload:?}"
        );
        assert!(rules_of(&raw).check_message(&payload).is_ok());
    }
    // 31 and 33 bytes of text are text.
    assert!(rules_of(&text).check_message(&[b'a'; 31]).is_ok());
    assert!(rules_of(&text).check_message(&[b'a'; 33]).is_ok());
}

fn sign_in(domain: &str, address: &str, chain: u64) -> Vec<u8> {
    format!(
        "{domain} wants you to sign in with your Ethereum account:\n{address}\n\nSign in.\n\n\
         URI: https://{domain}/login\nVersion: 1\nChain ID: {chain}\nNonce: 32891756\n\
         Issued At: 2026-12-07T16:25:24Z"
    )
    .into_bytes()
}

#[test]
fn sign_in_with_ethereum_is_allowed_by_domain_and_chain_alone() {
    let p = policy("[account.messages]\nsiwe = [{ domain = \"app.example.com\", chain_id = 1 }]");
    let rules = rules_of(&p);
    assert!(rules
        .check_message(&sign_in("app.example.com", ME, 1))
        .is_ok());
    assert!(rules
        .check_message(&sign_in("https://app.example.com", ME, 1))
        .is_ok());
    for (message, why) in [
        (sign_in("evil.example", ME, 1), "another domain"),
        (sign_in("app.example.com", ME, 5), "another chain"),
        (sign_in("app.example.com", OTHER, 1), "another account"),
        (
            String::from_utf8(sign_in("app.example.com", ME, 1))
                .unwrap()
                .replace("Version: 1", "Version: 2")
                .into_bytes(),
            "a malformed one",
        ),
    ] {
        assert_eq!(
            rules.check_message(&message).unwrap_err().rule,
            "messages.siwe",
            "{why}"
        );
    }
    assert_eq!(rules.check_message(b"hello").unwrap_err().rule, "messages");
}

#[test]
fn the_24_hour_caps_count_cost_and_tokens_over_exactly_a_day() {
    let p = policy(&format!(
        "max_cost_per_24h = \"10wei\"\n[[account.tokens]]\naddress = \"{TOKEN}\"\nmax_amount_per_24h = \"100\""
    ));
    let rules = rules_of(&p);
    let costs = |cost: u64, moved: u64| Effect {
        cost: U256::from(cost),
        tokens: if moved > 0 {
            vec![(TOKEN.parse().unwrap(), U256::from(moved))]
        } else {
            Vec::new()
        },
    };
    let mut ledgers = Ledgers::default();
    let start = 1_000_000;
    ledgers.charge(rules, start, &costs(6, 60)).unwrap();
    assert_eq!(
        ledgers
            .charge(rules, start + 1, &costs(5, 0))
            .unwrap_err()
            .rule,
        "max_cost_per_24h"
    );
    // Refused by the token cap: the cost is not counted either.
    assert_eq!(
        ledgers
            .charge(rules, start + 1, &costs(4, 41))
            .unwrap_err()
            .rule,
        "tokens.max_amount_per_24h"
    );
    ledgers.charge(rules, start + 1, &costs(4, 40)).unwrap();
    let saved = serde_json::to_string(&ledgers).unwrap();
    let restored: Ledgers = serde_json::from_str(&saved).unwrap();
    assert_eq!(restored, ledgers);
    // One second short of a day after the first charge, it still counts; at a day, not.
    let mut probe = restored.clone();
    assert_eq!(
        probe
            .charge(rules, start + ONE_DAY - 1, &costs(1, 0))
            .unwrap_err()
            .rule,
        "max_cost_per_24h"
    );
    let mut probe = restored;
    probe.charge(rules, start + ONE_DAY, &costs(6, 60)).unwrap();
    assert_eq!(DAY_SECS, ONE_DAY);
    assert_eq!(
        rules.service_only_rules(),
        ["max_cost_per_24h", "tokens.max_amount_per_24h"]
    );
}

#[test]
fn bad_policies_are_refused_with_the_line_and_what_to_do() {
    let account = format!("[[account]]\naddress = \"{ME}\"\n");
    for (text, expected) in [
        (format!("{account}chain_id = [1]"), "unknown field `chain_id`"),
        (format!("{account}\nmax_cost_per_tx = \"1btc\""), "line 4"),
        ("[[account]]\naddress = \"0x1234\"".to_owned(), "line 2"),
        (format!("{account}recipients = [\"nope\"]"), "recipients"),
        (format!("{account}recipients = [\"{FRIEND}\", \"{FRIEND}\"]"), "listed twice"),
        (format!("{account}[account.selectors]\n\"{FRIEND}\" = [\"0xa9\"]"), "8 hex digits"),
        (format!("{account}chain_ids = [0]"), "0 is not a chain id"),
        (format!("{account}max_gas_per_tx = 0"), "max_gas_per_tx = 0"),
        (format!("{account}{account}"), "line 3"),
        (format!("{account}\nmax_value_per_tx = \"1ether\""), "line 4"),
        (format!("{account}max_value_per_tx = \"1ether\""), "max_cost_per_tx"),
        (format!("{account}max_value_per_24h = \"1ether\""), "max_cost_per_24h"),
        (format!("{account}eth_sign = true"), "[account.messages]"),
        (format!("{account}[account.messages]\nsign = true"), "unknown field `sign`"),
        (format!("{account}[[account.tokens]]\naddress = \"{TOKEN}\"\n[[account.tokens]]\naddress = \"{TOKEN}\""), "listed twice"),
        (format!("{account}[[account.tokens]]\naddress = \"{TOKEN}\"\nmax_approval = \"1.5\""), "decimals"),
        (format!("{account}[[account.tokens]]\naddress = \"{TOKEN}\"\ndecimals = 6\nmax_approval = \"1.1234567\""), "more than 6 decimals"),
        (format!("{account}[[account.tokens]]\naddress = \"{TOKEN}\"\nmax_approval = \"1\"\nunlimited_approval = true"), "contradict"),
        (format!("{account}[[account.typed_data_domains]]\nmax_deadline = \"1h\""), "at least one of"),
        (format!("{account}[[account.typed_data_domains]]\nname = \"A\"\n[[account.typed_data_domains]]\nname = \"A\""), "listed twice"),
        (format!("{account}[[account.typed_data_domains]]\nname = \"A\"\nmax_deadline = \"1 hour\""), "not a duration"),
        (format!("{account}[[account.typed_data_domains]]\nname = \"A\"\nmax_deadline = \"1é\""), "not a duration"),
        ("[[acount]]".to_owned(), "unknown field `acount`"),
    ] {
        let err = Policy::parse(&text).expect_err(&text).to_string();
        assert!(err.contains(expected), "{text}\n=> {err}");
    }
    // Amounts with decimals read as whole tokens.
    let p = policy(&format!(
        "[[account.tokens]]\naddress = \"{TOKEN}\"\ndecimals = 6\nmax_approval = \"12.5\""
    ));
    assert_eq!(
        rules_of(&p).tokens[0].max_approval,
        Some(U256::from(12_500_000u64))
    );
}

#[test]
fn the_worked_policy_in_the_readme_reads_and_allows_only_what_it_says() {
    let readme = include_str!("../../../README.md");
    let worked = readme
        .split("**A worked policy")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has the worked policy in a toml block");
    let policy = Policy::parse(worked).unwrap_or_else(|err| panic!("{err}"));
    let rules = &policy.accounts()[0];
    let usdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
    let on_base = |to: &str, value: u64, data: Vec<u8>| {
        Transaction::Eip1559(Eip1559Tx {
            chain_id: 8453,
            max_fee_per_gas: U256::from(1_000_000_000u64),
            gas_limit: 60_000,
            to: Some(to.parse().unwrap()),
            value: U256::from(value),
            input: data,
            ..Default::default()
        })
    };
    let judge = |tx: Transaction| rules.check_transaction(&tx).err().map(|d| d.rule);
    // 500 USDC (6 decimals) to a payee: allowed; a unit more, another payee, an approval,
    // a native payment: refused.
    assert_eq!(judge(on_base(usdc, 0, transfer(OTHER, 500_000_000))), None);
    assert_eq!(
        judge(on_base(usdc, 0, transfer(OTHER, 500_000_001))),
        Some("tokens.max_amount_per_tx")
    );
    assert_eq!(
        judge(on_base(usdc, 0, transfer(ME, 1))),
        Some("tokens.recipients")
    );
    assert_eq!(
        judge(on_base(usdc, 0, approve(OTHER, U256::from(1u8)))),
        Some("tokens.spenders")
    );
    assert_eq!(judge(on_base(OTHER, 1, Vec::new())), Some("recipients"));
    assert_eq!(rules.check_message(b"hello").unwrap_err().rule, "messages");
}

/// Pseudo-random bytes (xorshift), the same on every run.
fn noise(state: &mut u64, length: usize) -> Vec<u8> {
    (0..length)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}

#[test]
fn messages_and_call_data_of_any_bytes_get_an_answer_never_a_panic() {
    let p = policy(&format!(
        "[account.messages]\ntext = true\n[[account.tokens]]\naddress = \"{TOKEN}\"\nspenders = [\"{FRIEND}\"]"
    ));
    let rules = rules_of(&p);
    let mut state = 0x9e37_79b9_7f4a_7c15;
    // Prefixes that steer the bytes into each decoder: RLP lists, typed envelopes, EIP-191,
    // JSON, a Sign-In first line, and every token selector.
    let prefixes: [&[u8]; 12] = [
        b"",
        &[0xc0],
        &[0xf8],
        &[0x02, 0xf8],
        &[0x19, 0x01],
        b"{\"types\":",
        b"app wants you to sign in with your Ethereum account:\n",
        &[0xa9, 0x05, 0x9c, 0xbb],
        &[0x23, 0xb8, 0x72, 0xdd],
        &[0x09, 0x5e, 0xa7, 0xb3],
        &[0xa2, 0x2c, 0xb4, 0x65],
        &[0x87, 0x51, 0x7c, 0x45],
    ];
    for round in 0..20_000 {
        let mut data = prefixes[round % prefixes.len()].to_vec();
        let length = (round * 7) % 140;
        data.extend(noise(&mut state, length));
        let _ = rules.check_message(&data);
        let _ = rules.check_transaction(&call(Some(TOKEN), 0, &data));
        let _ = tokens::decode(&data);
    }
}
