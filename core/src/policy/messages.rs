//! Message rules: `personal_sign` and `eth_sign` sign the same EIP-191 envelope, so one rule
//! family governs both. A message is judged by what it could be taken for: a raw payload (32
//! bytes, as a digest is; a transaction; typed data; an EIP-191 envelope; bytes that are not
//! text) is refused unless the policy allows raw payloads, since contracts such as Safe and
//! OpenZeppelin's verifiers accept such signatures as approvals; text is refused unless
//! allowed; Sign-In with Ethereum (EIP-4361) messages can be allowed by domain alone.

use kms_eth_signer::Address;
use serde::Deserialize;

use super::{deny, AccountRules, Denial};

/// `[account.messages]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRules {
    /// Any message that is text and not a raw payload.
    #[serde(default)]
    pub text: bool,
    /// Raw payloads as well: 32-byte digests, transactions, typed data, binary data.
    #[serde(default)]
    pub raw: bool,
    /// Sign-In with Ethereum messages for these domains.
    #[serde(default)]
    pub siwe: Vec<SiweRule>,
}

/// A domain (and, if given, a chain) the account may sign in to with EIP-4361.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiweRule {
    /// The RFC 3986 authority the message names (`app.example.com`, `localhost:3000`).
    pub domain: String,
    pub chain_id: Option<u64>,
}

/// The first line of an EIP-4361 message ends with this.
const SIWE_INTRO: &str = " wants you to sign in with your Ethereum account:";

/// Why `data` is a raw payload rather than a message a person reads, if it is one.
pub fn raw_payload(data: &[u8]) -> Option<&'static str> {
    if data.len() == 32 {
        return Some("is 32 bytes, as a transaction's or typed data's hash is");
    }
    if data.first() == Some(&0x19) {
        return Some(
            "starts with 0x19, as EIP-191 envelopes do (0x1901 and a typed-data hash among them)",
        );
    }
    if decodes_as_transaction(data) {
        return Some("decodes as a transaction");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return Some("is not text (not UTF-8)");
    };
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(text) {
        if fields.contains_key("types") || fields.contains_key("primaryType") {
            return Some(
                "is typed data (sign it with eth_signTypedData_v4, under the typed-data rules)",
            );
        }
    }
    None
}

/// Whether `data` is the RLP of a transaction: a type byte (1 to 4) and one list of eight
/// items or more, or one legacy list of six or nine items.
fn decodes_as_transaction(data: &[u8]) -> bool {
    let whole_list = |bytes: &[u8]| -> Option<usize> {
        let rlp = rlp::Rlp::new(bytes);
        let info = rlp.payload_info().ok()?;
        (rlp.is_list() && info.header_len + info.value_len == bytes.len())
            .then(|| rlp.item_count().ok())
            .flatten()
    };
    match data.split_first() {
        Some((1..=4, envelope)) => whole_list(envelope).is_some_and(|items| items >= 8),
        _ => whole_list(data).is_some_and(|items| items == 6 || items == 9),
    }
}

/// An EIP-4361 message's fields the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub domain: String,
    pub address: Address,
    pub chain_id: u64,
}

/// Reads `text` as an EIP-4361 message. `None`: it does not claim to be one; an error: it
/// claims to be one but is not well formed.
pub fn parse_sign_in(text: &str) -> Option<Result<SignIn, String>> {
    let mut lines = text.split('\n');
    let intro = lines.next()?.strip_suffix(SIWE_INTRO)?;
    let domain = intro.split_once("://").map_or(intro, |(_, rest)| rest);
    Some((|| {
        if domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(format!("its domain {domain:?} is not an authority"));
        }
        let address: Address = lines
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|err| format!("its second line is not the address: {err}"))?;
        let field = |name: &str| -> Result<&str, String> {
            let mut found = text
                .split('\n')
                .filter_map(|line| line.strip_prefix(name)?.strip_prefix(": "));
            match (found.next(), found.next()) {
                (Some(value), None) if !value.is_empty() => Ok(value),
                (None, _) | (Some(_), None) => Err(format!("it has no {name}")),
                (Some(_), Some(_)) => Err(format!("it has {name} twice")),
            }
        };
        if field("Version")? != "1" {
            return Err("its Version is not 1".to_owned());
        }
        field("URI")?;
        field("Nonce")?;
        field("Issued At")?;
        let chain_id = field("Chain ID")?
            .parse()
            .map_err(|_| "its Chain ID is not a number".to_owned())?;
        Ok(SignIn {
            domain: domain.to_owned(),
            address,
            chain_id,
        })
    })())
}

impl AccountRules {
    /// Judges a message for `personal_sign` or `eth_sign` (both sign `data` in the EIP-191
    /// envelope).
    pub fn check_message(&self, data: &[u8]) -> Result<(), Denial> {
        let rules = &self.messages;
        if let Some(why) = raw_payload(data) {
            if rules.raw {
                return Ok(());
            }
            return Err(deny(
                "messages.raw",
                format!(
                    "the message {why}; a signature over it can pass for an approval, so it is \
                     signed only if the policy says raw = true in [account.messages]"
                ),
            ));
        }
        // Not a raw payload: UTF-8 text.
        let text = String::from_utf8_lossy(data);
        match parse_sign_in(&text) {
            Some(Err(why)) => Err(deny(
                "messages.siwe",
                format!("the message claims to be a Sign-In with Ethereum message, but {why}"),
            )),
            Some(Ok(sign_in)) if sign_in.address != self.address => Err(deny(
                "messages.siwe",
                format!(
                    "the Sign-In with Ethereum message is for {}, not this account",
                    sign_in.address
                ),
            )),
            Some(Ok(sign_in)) if !rules.siwe.is_empty() => {
                let allowed = rules.siwe.iter().any(|rule| {
                    rule.domain.eq_ignore_ascii_case(&sign_in.domain)
                        && rule.chain_id.is_none_or(|id| id == sign_in.chain_id)
                });
                if allowed {
                    Ok(())
                } else {
                    Err(deny(
                        "messages.siwe",
                        format!(
                            "signing in to {} on chain {} is not allowed by [account.messages] \
                             siwe",
                            sign_in.domain, sign_in.chain_id
                        ),
                    ))
                }
            }
            _ if rules.text => Ok(()),
            _ => Err(deny(
                "messages",
                "signing messages is not allowed for this account; the policy must allow them \
                 in [account.messages] (text = true, or siwe domains)",
            )),
        }
    }
}
