//! How a policy file's values are read: addresses (EIP-55 checked when mixed-case), ether
//! and token amounts, durations, selectors, and the rules renamed since. Each error becomes
//! the TOML parser's, with the line and the field.

use std::collections::BTreeMap;

use kms_eth_signer::{parse_amount, Address, U256};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

pub fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Address, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(D::Error::custom)
}

pub fn optional_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Address>, D::Error> {
    address(deserializer).map(Some)
}

/// A list of addresses, refusing one listed twice (a sign of a copy-paste slip).
pub fn addresses<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<Address>>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    let mut list: Vec<Address> = Vec::with_capacity(texts.len());
    for text in &texts {
        let address: Address = text.parse().map_err(D::Error::custom)?;
        if list.contains(&address) {
            return Err(D::Error::custom(format!("{address} is listed twice")));
        }
        list.push(address);
    }
    Ok(Some(list))
}

/// An ether amount: `"0.5ether"`, `"20gwei"`, `"1000wei"` or plain wei.
pub fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<U256>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_amount(&text).map(Some).map_err(D::Error::custom)
}

/// A token amount in the token's own units: with `decimals`, `"12.5"` is 12.5 tokens;
/// without, the text is the integer the contract counts in.
pub fn token_amount(text: &str, decimals: Option<u8>) -> Result<U256, String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let places = usize::from(decimals.unwrap_or(0));
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
        return Err(format!(
            "{text:?} is not an amount: write digits, as \"250\" or \"12.5\" (quoted)"
        ));
    }
    if fraction.len() > places {
        return Err(match decimals {
            None => format!(
                "{text:?} has a fraction, but the token gives no `decimals`: write the integer \
                 the contract counts in, or give decimals"
            ),
            Some(places) => format!("{text:?} has more than {places} decimals"),
        });
    }
    let padded = format!("{whole}{fraction:0<places$}");
    U256::from_str_radix(&padded, 10).map_err(|_| format!("{text:?} does not fit in 256 bits"))
}

/// A duration: `"90s"`, `"30m"`, `"1h"`, `"7d"`, in seconds.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let scale: u64 = match text.bytes().last() {
        Some(b's') => 1,
        Some(b'm') => 60,
        Some(b'h') => 60 * 60,
        Some(b'd') => 24 * 60 * 60,
        _ => 0,
    };
    // The unit, when there is one, is one ASCII byte: slicing it off cannot split a character.
    let number = if scale > 0 {
        &text[..text.len() - 1]
    } else {
        ""
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|_| scale > 0)
        .and_then(|n| n.checked_mul(scale))
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "{text:?} is not a duration: a whole number and s, m, h or d, as \"1h\""
            ))
        })
}

pub fn selectors<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<Address, Vec<[u8; 4]>>, D::Error> {
    let table = BTreeMap::<String, Vec<String>>::deserialize(deserializer)?;
    table
        .into_iter()
        .map(|(to, list)| {
            let to: Address = to.parse().map_err(D::Error::custom)?;
            let list = list
                .iter()
                .map(|selector| {
                    selector
                        .strip_prefix("0x")
                        .and_then(|digits| hex::decode(digits).ok())
                        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                        .ok_or_else(|| {
                            D::Error::custom(format!(
                                "selector {selector:?} is not 0x and 8 hex digits"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok((to, list))
        })
        .collect()
}

fn retired<'de, D: Deserializer<'de>>(deserializer: D, why: &str) -> Result<Option<()>, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer)?;
    Err(D::Error::custom(why))
}

pub fn retired_max_value_per_tx<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<()>, D::Error> {
    retired(
        deserializer,
        "max_value_per_tx is now max_cost_per_tx, which counts fees as well as value: rename it \
         (and check that the cap still suits you)",
    )
}

pub fn retired_max_value_per_24h<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<()>, D::Error> {
    retired(
        deserializer,
        "max_value_per_24h is now max_cost_per_24h, which counts fees as well as value: rename \
         it (and check that the cap still suits you)",
    )
}

pub fn retired_eth_sign<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<()>, D::Error> {
    retired(
        deserializer,
        "eth_sign is now the [account.messages] table, which governs eth_sign and personal_sign \
         alike: write `messages = { text = true }` for text messages, and `raw = true` in it \
         only to sign 32-byte digests and other raw payloads",
    )
}
