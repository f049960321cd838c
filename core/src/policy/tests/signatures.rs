//! Signatures of documents: typed data by its domain, permits as the approvals they grant,
//! messages by what they could be taken for, Sign-In with Ethereum by domain.

use super::*;

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
