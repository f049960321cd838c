//! Transactions judged by their effect: cost, gas, creation, authorizations, call data,
//! token transfers and approvals.

use super::*;

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

#[test]
fn a_transfer_of_nothing_to_the_account_itself_passes_the_recipients_rule_and_nothing_more() {
    // The service fills an unused nonce and cancels a transaction with it.
    let p = policy(&format!(
        "chain_ids = [1]\nrecipients = [\"{FRIEND}\"]\nmax_cost_per_tx = \"0.001ether\""
    ));
    let cancel = call(Some(ME), 0, &[]);
    assert_eq!(rule(&p, &cancel), None);
    // Value or data to itself is judged like any call.
    assert_eq!(rule(&p, &call(Some(ME), 1, &[])), Some("recipients"));
    assert_eq!(
        rule(&p, &call(Some(ME), 0, &[0x12, 0x34, 0x56, 0x78])),
        Some("recipients")
    );
    // Its fee still counts.
    let p = policy(&format!(
        "chain_ids = [1]\nrecipients = [\"{FRIEND}\"]\nmax_cost_per_tx = \"0.0001ether\""
    ));
    assert_eq!(rule(&p, &cancel), Some("max_cost_per_tx"));
}
