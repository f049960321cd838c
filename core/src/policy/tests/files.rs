//! The 24-hour ledgers, policy files good and bad (the README's worked policy among them),
//! and any bytes answered without a panic.

use super::*;

#[test]
fn charges_within_a_minute_share_one_entry_counted_from_the_later_one() {
    let p = policy("max_cost_per_24h = \"10wei\"");
    let rules = rules_of(&p);
    let cost = |wei: u64| Effect {
        cost: U256::from(wei),
        tokens: Vec::new(),
    };
    let mut ledgers = Ledgers::default();
    let start = 1_000_000;
    for second in 0..60 {
        ledgers.charge(rules, start + second, &cost(0)).unwrap();
    }
    ledgers.charge(rules, start, &cost(3)).unwrap();
    ledgers.charge(rules, start + 30, &cost(3)).unwrap();
    let saved = serde_json::to_value(&ledgers).unwrap();
    let entries = saved[rules.address.to_string()]["entries"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(entries, 1, "{saved}");
    // A day after the first charge both still count (never forgotten sooner than a day)...
    let mut probe = ledgers.clone();
    assert!(probe.charge(rules, start + ONE_DAY, &cost(5)).is_err());
    // ...and a day after the second, neither does.
    ledgers
        .charge(rules, start + 30 + ONE_DAY, &cost(10))
        .unwrap();
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
    // The later charges come more than a minute after the first: entries of their own.
    let later = start + 61;
    ledgers.charge(rules, start, &costs(6, 60)).unwrap();
    assert_eq!(
        ledgers.charge(rules, later, &costs(5, 0)).unwrap_err().rule,
        "max_cost_per_24h"
    );
    // Refused by the token cap: the cost is not counted either.
    assert_eq!(
        ledgers
            .charge(rules, later, &costs(4, 41))
            .unwrap_err()
            .rule,
        "tokens.max_amount_per_24h"
    );
    ledgers.charge(rules, later, &costs(4, 40)).unwrap();
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
    let readme = include_str!("../../../../README.md");
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
