//! The token rules against a real ERC-20 with EIP-2612 permits on anvil (cases 4 and 5 of
//! issue 24): transfers, approvals, permits and Permit2 documents through a running service,
//! each rule at its limit and one unit over, with balances and allowances read back from the
//! token and KMS `Sign` calls counted.

use kms_eth_e2e::tokens::{
    allowance, approve_data, deploy_token, increase_allowance_data, permit_typed_data,
    submit_permit, token_balance, transfer_data, transfer_from_data,
};
use kms_eth_signer::U256;
use serde_json::{json, Value};

use super::guarded::{denied_by, ether, Guarded};
use super::{receipt, OTHER, RECIPIENT};

/// Nobody the policy lists.
const STRANGER: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
/// Uniswap's Permit2, at its address on every chain (not deployed on the test node: the
/// documents are judged, never used).
const PERMIT2: &str = "0x000000000022D473030F116dDEE9F6B43aC78BA3";

/// Whole tokens of 18 decimals, as the test token has.
fn tokens(whole: &str) -> U256 {
    ether(whole)
}

fn one_more(amount: U256) -> U256 {
    amount + U256::from(1u8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_transfers_and_approvals_are_counted_by_the_tokens_rules() {
    let mut listed = String::new();
    let mut unlisted = String::new();
    let guarded = Guarded::start_with(|address, node| {
        listed = deploy_token(node.url(), address, tokens("1000"));
        unlisted = deploy_token(node.url(), address, tokens("1000"));
        // The unlisted token is a listed recipient: before the token rules, that was all a
        // transfer of it needed.
        format!(
            "recipients = [\"{RECIPIENT}\", \"{unlisted}\"]\n\
             [[account.tokens]]\naddress = \"{listed}\"\ndecimals = 18\n\
             recipients = [\"{RECIPIENT}\"]\nspenders = [\"{OTHER}\"]\n\
             max_amount_per_tx = \"100\"\nmax_amount_per_24h = \"150\"\nmax_approval = \"50\"\n"
        )
    })
    .await;
    let url = guarded.node.url().to_owned();
    let me = guarded.address.clone();
    // The gas is given: a call that would revert (a transferFrom without an allowance) then
    // reaches the policy instead of failing in the node's estimate first.
    let call = |token: &str, data: String| {
        guarded.send(json!({ "to": token, "data": data, "gas": "0x186a0" }))
    };
    let sent = |reply: Value| {
        assert!(reply["result"].is_string(), "{reply}");
        receipt(&url, &reply["result"]);
    };
    let before = guarded.signs();

    // Per transaction: at the cap, and one unit over; a recipient not listed.
    sent(call(&listed, transfer_data(RECIPIENT, tokens("100"))));
    for (data, rule) in [
        (
            transfer_data(RECIPIENT, one_more(tokens("100"))),
            "tokens.max_amount_per_tx",
        ),
        (
            transfer_data(STRANGER, U256::from(1u8)),
            "tokens.recipients",
        ),
        (
            transfer_from_data(&me, STRANGER, U256::from(1u8)),
            "tokens.recipients",
        ),
        // 100 moved: 51 more would be above the 24-hour 150.
        (
            transfer_data(RECIPIENT, tokens("51")),
            "tokens.max_amount_per_24h",
        ),
        (
            approve_data(OTHER, one_more(tokens("50"))),
            "tokens.max_approval",
        ),
        (
            increase_allowance_data(OTHER, one_more(tokens("50"))),
            "tokens.max_approval",
        ),
        (approve_data(STRANGER, U256::from(1u8)), "tokens.spenders"),
        (approve_data(OTHER, U256::MAX), "tokens.unlimited_approval"),
        // One to three bytes, and a bare selector: no token function the rules can judge.
        ("0xa9".to_owned(), "tokens"),
        ("0xa905".to_owned(), "tokens"),
        ("0xa9059c".to_owned(), "tokens"),
        ("0xa9059cbb".to_owned(), "tokens"),
    ] {
        assert_eq!(denied_by(&call(&listed, data.clone())), rule, "{data}");
    }
    assert_eq!(
        denied_by(&call(&unlisted, transfer_data(RECIPIENT, U256::from(1u8)))),
        "tokens"
    );
    // Exactly the rest of the 24-hour cap, and the largest approval allowed.
    sent(call(&listed, transfer_data(RECIPIENT, tokens("50"))));
    assert_eq!(
        denied_by(&call(&listed, transfer_data(RECIPIENT, U256::from(1u8)))),
        "tokens.max_amount_per_24h"
    );
    sent(call(&listed, approve_data(OTHER, tokens("50"))));

    assert_eq!(
        guarded.signs(),
        before + 3,
        "a refusal made a KMS Sign call"
    );
    assert_eq!(guarded.nonce(), 3);
    assert_eq!(token_balance(&url, &listed, RECIPIENT), tokens("150"));
    assert_eq!(token_balance(&url, &listed, &me), tokens("850"));
    assert_eq!(token_balance(&url, &listed, STRANGER), U256::ZERO);
    assert_eq!(token_balance(&url, &unlisted, RECIPIENT), U256::ZERO);
    assert_eq!(allowance(&url, &listed, &me, OTHER), tokens("50"));
    assert_eq!(allowance(&url, &listed, &me, STRANGER), U256::ZERO);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A Permit2 `PermitSingle` letting `spender` take `amount` of `token` (a uint160).
fn permit_single(chain: u64, token: &str, spender: &str, amount: U256) -> Value {
    let field = |name: &str, kind: &str| json!({ "name": name, "type": kind });
    json!({
        "types": {
            "EIP712Domain": [field("name", "string"), field("chainId", "uint256"), field("verifyingContract", "address")],
            "PermitDetails": [field("token", "address"), field("amount", "uint160"), field("expiration", "uint48"), field("nonce", "uint48")],
            "PermitSingle": [field("details", "PermitDetails"), field("spender", "address"), field("sigDeadline", "uint256")],
        },
        "primaryType": "PermitSingle",
        "domain": { "name": "Permit2", "chainId": chain, "verifyingContract": PERMIT2 },
        "message": {
            "details": { "token": token, "amount": amount.to_string(), "expiration": now() + 600, "nonce": 0 },
            "spender": spender,
            "sigDeadline": (now() + 600).to_string(),
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permits_are_judged_as_the_approvals_they_grant() {
    let mut token = String::new();
    let guarded = Guarded::start_with(|address, node| {
        token = deploy_token(node.url(), address, tokens("1000"));
        format!(
            "[[account.typed_data_domains]]\nverifying_contract = \"{token}\"\nmax_deadline = \"1h\"\n\
             [[account.typed_data_domains]]\nname = \"Permit2\"\nverifying_contract = \"{PERMIT2}\"\n\
             [[account.tokens]]\naddress = \"{token}\"\ndecimals = 18\nspenders = [\"{OTHER}\"]\n\
             max_approval = \"50\"\n"
        )
    })
    .await;
    let url = guarded.node.url().to_owned();
    let me = guarded.address.clone();
    let chain = guarded.node.chain_id();
    let sign = |document: &Value| {
        guarded
            .served
            .call("eth_signTypedData_v4", json!([me, document.to_string()]))
    };
    let permit = |spender: &str, value: U256, deadline: u64| {
        permit_typed_data(&url, &token, &me, spender, value, U256::from(deadline))
    };
    let before = guarded.signs();
    // Case 4: a Permit2 unlimited allowance, to a spender outside the list and to one in it.
    let unlimited = (U256::from(1u8) << 160) - U256::from(1u8);
    for (document, rule) in [
        (
            permit_single(chain, &token, STRANGER, unlimited),
            "tokens.spenders",
        ),
        (
            permit_single(chain, &token, OTHER, unlimited),
            "tokens.unlimited_approval",
        ),
        (
            permit_single(chain, &token, OTHER, one_more(tokens("50"))),
            "tokens.max_approval",
        ),
        (
            permit(STRANGER, U256::from(1u8), now() + 600),
            "tokens.spenders",
        ),
        (
            permit(OTHER, U256::MAX, now() + 600),
            "tokens.unlimited_approval",
        ),
        (
            permit(OTHER, one_more(tokens("50")), now() + 600),
            "tokens.max_approval",
        ),
        (
            permit(OTHER, tokens("1"), now() + 7_200),
            "typed_data_domains.max_deadline",
        ),
    ] {
        assert_eq!(denied_by(&sign(&document)), rule, "{document}");
    }
    assert_eq!(guarded.signs(), before, "a refusal made a KMS Sign call");
    // At the cap and within the hour: signed, and the token honours it.
    let allowed = permit(OTHER, tokens("50"), now() + 3_000);
    let signature = sign(&allowed);
    let signature = signature["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{signature}"));
    submit_permit(&url, &token, &allowed, signature);
    assert_eq!(allowance(&url, &token, &me, OTHER), tokens("50"));
    assert_eq!(allowance(&url, &token, &me, STRANGER), U256::ZERO);
    assert_eq!(guarded.signs(), before + 1);
    assert_eq!(
        guarded.nonce(),
        0,
        "a permit is a signature, not a transaction"
    );
}
