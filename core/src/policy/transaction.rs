//! A transaction judged by its effect: its worst-case cost (value and every fee it may pay),
//! the contract it may create, whom it pays, and the tokens it moves or approves.

use kms_eth_signer::{format_ether, format_gwei, Address, Transaction, GAS_PER_BLOB, U256};

use super::tokens::{self, TokenCall};
use super::{deny, AccountRules, Denial};
use crate::fees::{max_blob_cost, max_cost};

/// What a transaction the policy allows can take from the account at most.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effect {
    /// Value + gas limit x max fee per gas + blob gas x max fee per blob gas, in wei.
    pub cost: U256,
    /// Tokens it moves out (token contract, amount), for the tokens' 24-hour caps.
    pub tokens: Vec<(Address, U256)>,
}

/// The most `tx` can cost the account: its value and every fee at the most it may pay
/// (`fees.rs`'s arithmetic). A cost beyond 256 bits counts as the largest one, which every
/// cap refuses.
pub fn worst_case_cost(tx: &Transaction) -> U256 {
    let blob_fees = match tx {
        Transaction::Eip4844(tx) => {
            let blob_gas = (tx.blob_versioned_hashes.len() as u64).saturating_mul(GAS_PER_BLOB);
            max_blob_cost(blob_gas, tx.max_fee_per_blob_gas)
        }
        _ => Some(U256::ZERO),
    };
    max_cost(tx.gas_limit(), tx.max_price_per_gas(), tx.value())
        .zip(blob_fees)
        .and_then(|(cost, blobs)| cost.checked_add(blobs))
        .unwrap_or(U256::MAX)
}

impl AccountRules {
    /// Judges a transaction by every rule that needs no memory of earlier requests, and
    /// returns its effect, which the 24-hour caps then count ([`super::Ledgers::charge`]).
    pub fn check_transaction(&self, tx: &Transaction) -> Result<Effect, Denial> {
        if let Transaction::Eip7702(tx) = tx {
            if !self.authorizations {
                return Err(deny(
                    "authorizations",
                    format!(
                        "EIP-7702 transactions (carrying {} authorization(s), which set \
                         accounts' code) are not allowed for this account; the policy must say \
                         authorizations = true",
                        tx.authorization_list.len()
                    ),
                ));
            }
        }
        let chain_id = tx.chain_id();
        if let Some(allowed) = &self.chain_ids {
            if !chain_id.is_some_and(|id| allowed.contains(&id)) {
                return Err(deny(
                    "chain_ids",
                    format!(
                        "chain {} is not one of {allowed:?}",
                        chain_id.map_or_else(|| "none".to_owned(), |id| id.to_string())
                    ),
                ));
            }
        }
        if let Some(cap) = self.max_gas_per_tx {
            if tx.gas_limit() > cap {
                return Err(deny(
                    "max_gas_per_tx",
                    format!("a gas limit of {} is above {cap}", tx.gas_limit()),
                ));
            }
        }
        if let Some(cap) = self.max_fee_per_gas {
            let fee = tx.max_price_per_gas();
            if fee > cap {
                return Err(deny(
                    "max_fee_per_gas",
                    format!(
                        "{} gwei per gas is above {} gwei",
                        format_gwei(fee),
                        format_gwei(cap)
                    ),
                ));
            }
        }
        let mut effect = Effect {
            cost: worst_case_cost(tx),
            tokens: Vec::new(),
        };
        match tx.to() {
            // Init code can do anything with the value it is given, the recipients rule
            // included: only an explicit yes allows it.
            None if !self.contract_creation => {
                return Err(deny(
                    "contract_creation",
                    "contract creation is not allowed (its code can send the value anywhere); \
                     the policy must say contract_creation = true",
                ))
            }
            None => {}
            // A transfer of nothing to the account itself moves nothing out: it only spends
            // its fee (the cost caps below still judge it). The service fills an unused
            // nonce and cancels a pending transaction with it, which an allow-list of
            // recipients must not forbid.
            Some(to) if to == self.address && tx.value().is_zero() && tx.input().is_empty() => {}
            Some(to) => self.check_call(to, tx.input(), &mut effect)?,
        }
        if let Some(cap) = self.max_cost_per_tx {
            if effect.cost > cap {
                return Err(deny(
                    "max_cost_per_tx",
                    format!(
                        "it may cost {} ether (value and fees at their most), above {} ether",
                        format_ether(effect.cost),
                        format_ether(cap)
                    ),
                ));
            }
        }
        Ok(effect)
    }

    /// A call to `to` with `input`: the recipients, selectors and token rules.
    fn check_call(&self, to: Address, input: &[u8], effect: &mut Effect) -> Result<(), Denial> {
        let token = self.token(to);
        if let Some(allowed) = &self.recipients {
            if token.is_none() && !allowed.contains(&to) {
                return Err(deny(
                    "recipients",
                    format!("{to} is not an allowed recipient"),
                ));
            }
        }
        if let Some(selectors) = self.selectors.get(&to) {
            match input.len() {
                0 => {}
                1..=3 => {
                    return Err(deny(
                        "selectors",
                        format!(
                            "call data of {} byte(s) is no function call on {to} (it runs the \
                             contract's fallback); only the listed functions are allowed",
                            input.len()
                        ),
                    ))
                }
                _ => {
                    if !selectors.iter().any(|s| s[..] == input[..4]) {
                        return Err(deny(
                            "selectors",
                            format!(
                                "function 0x{} is not allowed on {to}",
                                hex::encode(&input[..4])
                            ),
                        ));
                    }
                }
            }
        }
        let call = match tokens::decode(input) {
            Some(Ok(call)) => Some(call),
            Some(Err(why)) => {
                return Err(deny(
                    "tokens",
                    format!("call data to {to} has a token function's selector, but {why}"),
                ))
            }
            None => None,
        };
        match (token, call) {
            (Some(token), Some(call)) => {
                let moved = token.check_call(&call)?;
                if !moved.is_zero() {
                    effect.tokens.push((to, moved));
                }
            }
            // The listed token's other functions: only those its selectors list, or a plain
            // payment to it if it is also a listed recipient.
            (Some(_), None) => {
                let listed = self.selectors.contains_key(&to)
                    || (input.is_empty()
                        && self.recipients.as_ref().is_none_or(|r| r.contains(&to)));
                if !listed {
                    return Err(deny(
                        "tokens",
                        format!(
                            "the call to token {to} is none of transfer, transferFrom, \
                             approve, increaseAllowance, decreaseAllowance or \
                             setApprovalForAll; list its selector under [account.selectors] \
                             to allow it"
                        ),
                    ));
                }
            }
            (None, Some(call)) if call.is_revocation() => {}
            // Permit2's approve names the token it approves.
            (
                None,
                Some(TokenCall::Permit2Approve {
                    token,
                    spender,
                    amount,
                    ..
                }),
            ) => match self.token(token) {
                Some(rules) => rules.check_approval(spender, amount, "a Permit2 approve")?,
                None => {
                    return Err(deny(
                        "tokens",
                        format!(
                            "a Permit2 approve of {token}, which is not a token listed in \
                             [[account.tokens]]"
                        ),
                    ))
                }
            },
            (None, Some(_)) => {
                return Err(deny(
                    "tokens",
                    format!(
                        "the call moves or approves tokens of {to}, which is not a token \
                         listed in [[account.tokens]]: no rule would count what it moves"
                    ),
                ))
            }
            (None, None) => {}
        }
        Ok(())
    }
}
