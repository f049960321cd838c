//! Token rules: per ERC-20 contract, who may receive it, who may be allowed to spend it, and
//! how much. Call data is decoded with alloy's `sol!` bindings of the standard functions, and
//! data that carries a token function's selector but does not decode exactly as that
//! function is refused: its effect could not be judged.

use alloy_sol_types::{sol, SolCall};
use kms_eth_signer::{Address, U256};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::{de, deny, Denial};

sol! {
    /// ERC-20's functions that move a holder's tokens or let someone else move them, and
    /// the common allowance extensions; ERC-721/1155's operator approval.
    interface IToken {
        function transfer(address to, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
        function increaseAllowance(address spender, uint256 added) external returns (bool);
        function decreaseAllowance(address spender, uint256 subtracted) external returns (bool);
        function setApprovalForAll(address operator, bool approved) external;
    }

    /// Uniswap's Permit2 (`AllowanceTransfer.approve`): an approval of `token`, held by the
    /// Permit2 contract on the caller's behalf.
    interface IPermit2 {
        function approve(address token, address spender, uint160 amount, uint48 expiration) external;
    }
}

/// From this amount on, an approval counts as unlimited: 2^160 - 1 is Permit2's "maximum
/// allowance", and no token's supply comes near it, so a larger one is unlimited in effect
/// (2^256 - 1 being the usual spelling).
pub fn unlimited() -> U256 {
    (U256::from(1u8) << 160) - U256::from(1u8)
}

/// The rules of one token contract.
#[derive(Debug, Clone)]
pub struct TokenRules {
    pub address: Address,
    /// With it, the amounts below were written in whole tokens.
    pub decimals: Option<u8>,
    /// Who may receive it through `transfer` and `transferFrom` (left out: anyone).
    pub recipients: Option<Vec<Address>>,
    /// Who may be allowed to spend it (`approve`, `increaseAllowance`, permits): only these.
    pub spenders: Vec<Address>,
    pub max_amount_per_tx: Option<U256>,
    pub max_amount_per_24h: Option<U256>,
    pub max_approval: Option<U256>,
    pub unlimited_approval: bool,
}

/// A decoded call of a token function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCall {
    Transfer {
        to: Address,
        amount: U256,
    },
    TransferFrom {
        from: Address,
        to: Address,
        amount: U256,
    },
    Approve {
        spender: Address,
        amount: U256,
    },
    IncreaseAllowance {
        spender: Address,
        added: U256,
    },
    DecreaseAllowance,
    SetApprovalForAll {
        operator: Address,
        approved: bool,
    },
    /// Permit2's `approve`, sent to the Permit2 contract, approving `token`.
    Permit2Approve {
        token: Address,
        spender: Address,
        amount: U256,
        expiration: u64,
    },
}

impl TokenCall {
    /// Whether the call only takes an approval back, which can lose nothing.
    pub fn is_revocation(&self) -> bool {
        match self {
            TokenCall::Approve { amount, .. } | TokenCall::Permit2Approve { amount, .. } => {
                amount.is_zero()
            }
            TokenCall::DecreaseAllowance => true,
            TokenCall::SetApprovalForAll { approved, .. } => !approved,
            _ => false,
        }
    }
}

fn ours(address: alloy_sol_types::private::Address) -> Address {
    Address(address.0 .0)
}

/// Decodes `input` exactly (the data must be the canonical encoding, nothing after it) as
/// the function its selector names. `None`: not a token function's selector.
fn exactly<C: SolCall>(input: &[u8]) -> Result<C, String> {
    let call = C::abi_decode_validate(input)
        .map_err(|err| format!("it does not decode as {}: {err}", C::SIGNATURE))?;
    if call.abi_encode() != input {
        return Err(format!(
            "it is not the exact encoding of {} (extra or non-canonical bytes)",
            C::SIGNATURE
        ));
    }
    Ok(call)
}

/// The token call `input` is, if its selector is one of a token function's.
pub fn decode(input: &[u8]) -> Option<Result<TokenCall, String>> {
    use IToken::*;
    let selector: [u8; 4] = input.get(..4)?.try_into().ok()?;
    Some(match selector {
        transferCall::SELECTOR => exactly::<transferCall>(input).map(|c| TokenCall::Transfer {
            to: ours(c.to),
            amount: c.amount,
        }),
        transferFromCall::SELECTOR => {
            exactly::<transferFromCall>(input).map(|c| TokenCall::TransferFrom {
                from: ours(c.from),
                to: ours(c.to),
                amount: c.amount,
            })
        }
        approveCall::SELECTOR => exactly::<approveCall>(input).map(|c| TokenCall::Approve {
            spender: ours(c.spender),
            amount: c.amount,
        }),
        increaseAllowanceCall::SELECTOR => {
            exactly::<increaseAllowanceCall>(input).map(|c| TokenCall::IncreaseAllowance {
                spender: ours(c.spender),
                added: c.added,
            })
        }
        decreaseAllowanceCall::SELECTOR => {
            exactly::<decreaseAllowanceCall>(input).map(|_| TokenCall::DecreaseAllowance)
        }
        setApprovalForAllCall::SELECTOR => {
            exactly::<setApprovalForAllCall>(input).map(|c| TokenCall::SetApprovalForAll {
                operator: ours(c.operator),
                approved: c.approved,
            })
        }
        IPermit2::approveCall::SELECTOR => {
            exactly::<IPermit2::approveCall>(input).map(|c| TokenCall::Permit2Approve {
                token: ours(c.token),
                spender: ours(c.spender),
                amount: U256::from(c.amount),
                expiration: c.expiration.to::<u64>(),
            })
        }
        _ => return None,
    })
}

impl TokenRules {
    fn shown(&self, amount: U256) -> String {
        match self.decimals {
            Some(places) => format_units(amount, places),
            None => amount.to_string(),
        }
    }

    /// A transfer of `amount` to `to`: the recipient and the per-transaction cap.
    pub fn check_transfer(&self, to: Address, amount: U256) -> Result<(), Denial> {
        if let Some(allowed) = &self.recipients {
            if !allowed.contains(&to) {
                return Err(deny(
                    "tokens.recipients",
                    format!("{to} is not an allowed recipient of token {}", self.address),
                ));
            }
        }
        if let Some(cap) = self.max_amount_per_tx {
            if amount > cap {
                return Err(deny(
                    "tokens.max_amount_per_tx",
                    format!(
                        "a transfer of {} of token {} is above {}",
                        self.shown(amount),
                        self.address,
                        self.shown(cap)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An approval (or a permit) letting `spender` move `amount`: listed spenders only,
    /// within `max_approval`, unlimited ones only if the policy says so. Zero revokes and
    /// is always allowed.
    pub fn check_approval(&self, spender: Address, amount: U256, how: &str) -> Result<(), Denial> {
        if amount.is_zero() {
            return Ok(());
        }
        if !self.spenders.contains(&spender) {
            return Err(deny(
                "tokens.spenders",
                format!(
                    "{how} lets {spender} spend token {}, and it is not one of the token's \
                     spenders",
                    self.address
                ),
            ));
        }
        if amount >= unlimited() && !self.unlimited_approval {
            return Err(deny(
                "tokens.unlimited_approval",
                format!(
                    "{how} is unlimited (an amount of 2^160 - 1 or more) for token {}; the \
                     policy must say unlimited_approval = true",
                    self.address
                ),
            ));
        }
        if let Some(cap) = self.max_approval {
            if amount > cap {
                return Err(deny(
                    "tokens.max_approval",
                    format!(
                        "{how} of {} of token {} is above {}",
                        self.shown(amount),
                        self.address,
                        self.shown(cap)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A call of a token function on this token. Returns the amount it moves out, for the
    /// 24-hour cap.
    pub fn check_call(&self, call: &TokenCall) -> Result<U256, Denial> {
        match call {
            TokenCall::Transfer { to, amount } | TokenCall::TransferFrom { to, amount, .. } => {
                self.check_transfer(*to, *amount)?;
                Ok(*amount)
            }
            TokenCall::Approve { spender, amount } => self
                .check_approval(*spender, *amount, "approve")
                .map(|()| U256::ZERO),
            // The allowance already given is not known here, so the increase is judged as
            // if it were the whole allowance; the cap still bounds each step.
            TokenCall::IncreaseAllowance { spender, added } => self
                .check_approval(*spender, *added, "increaseAllowance")
                .map(|()| U256::ZERO),
            TokenCall::DecreaseAllowance => Ok(U256::ZERO),
            TokenCall::SetApprovalForAll { operator, approved } => self
                .check_approval(
                    *operator,
                    if *approved { U256::MAX } else { U256::ZERO },
                    "setApprovalForAll",
                )
                .map(|()| U256::ZERO),
            TokenCall::Permit2Approve {
                spender, amount, ..
            } => self
                .check_approval(*spender, *amount, "a Permit2 approve")
                .map(|()| U256::ZERO),
        }
    }
}

/// `amount` of a token with `places` decimals, as text: `12.5`.
fn format_units(amount: U256, places: u8) -> String {
    let scale = U256::from(10u8).pow(U256::from(places));
    let (whole, fraction) = (amount / scale, amount % scale);
    if fraction.is_zero() {
        return whole.to_string();
    }
    let digits = format!("{fraction:0>width$}", width = usize::from(places));
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `[[account.tokens]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    #[serde(deserialize_with = "de::address")]
    address: Address,
    decimals: Option<u8>,
    #[serde(default, deserialize_with = "de::addresses")]
    recipients: Option<Vec<Address>>,
    #[serde(default, deserialize_with = "de::addresses")]
    spenders: Option<Vec<Address>>,
    max_amount_per_tx: Option<String>,
    max_amount_per_24h: Option<String>,
    max_approval: Option<String>,
    #[serde(default)]
    unlimited_approval: bool,
}

/// Reads `[[account.tokens]]`, refusing a token listed twice and amounts that do not fit
/// the token's decimals.
pub fn tokens<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<TokenRules>, D::Error> {
    let written = Vec::<Written>::deserialize(deserializer)?;
    let mut tokens: Vec<TokenRules> = Vec::with_capacity(written.len());
    for token in written {
        let address = token.address;
        if tokens.iter().any(|other| other.address == address) {
            return Err(D::Error::custom(format!(
                "token {address} is listed twice; merge its two blocks"
            )));
        }
        if token.decimals.is_some_and(|places| places > 36) {
            return Err(D::Error::custom(format!(
                "token {address}: decimals must be at most 36 (ERC-20 tokens use 0 to 18)"
            )));
        }
        let amount = |name: &str, text: Option<String>| {
            text.map(|text| de::token_amount(&text, token.decimals))
                .transpose()
                .map_err(|err| D::Error::custom(format!("token {address}: {name}: {err}")))
        };
        let max_approval = amount("max_approval", token.max_approval)?;
        if token.unlimited_approval && max_approval.is_some() {
            return Err(D::Error::custom(format!(
                "token {address}: unlimited_approval = true and max_approval contradict each \
                 other; keep one"
            )));
        }
        tokens.push(TokenRules {
            address,
            decimals: token.decimals,
            recipients: token.recipients,
            spenders: token.spenders.unwrap_or_default(),
            max_amount_per_tx: amount("max_amount_per_tx", token.max_amount_per_tx)?,
            max_amount_per_24h: amount("max_amount_per_24h", token.max_amount_per_24h)?,
            max_approval,
            unlimited_approval: token.unlimited_approval,
        });
    }
    Ok(tokens)
}
