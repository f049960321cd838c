//! Typed-data rules: EIP-712 documents are signed only for the domains the policy lists, and
//! a permit (EIP-2612's `Permit`, DAI's, Uniswap Permit2's `PermitSingle`, `PermitBatch`,
//! `PermitTransferFrom` and their batch and witness forms) is judged as the approval it
//! grants: the token's rules decide the spender and the amount, the domain's `max_deadline`
//! how long it may stay usable. A document whose primary type names a permit but whose
//! fields are not that permit's is refused: its effect could not be judged.

use alloy_dyn_abi::DynSolValue;
use kms_eth_signer::{Address, U256};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::{de, deny, AccountRules, Denial};
use crate::typed_data::{Domain, TypedDataRequest};

/// An EIP-712 domain the account may sign typed data for, and what it constrains.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TypedDataDomain {
    pub name: Option<String>,
    pub chain_id: Option<u64>,
    #[serde(default, deserialize_with = "de::optional_address")]
    pub verifying_contract: Option<Address>,
    /// Permits only: the furthest their deadline (and a Permit2 allowance's expiration) may
    /// be from now, in seconds.
    #[serde(default, deserialize_with = "de::duration")]
    pub max_deadline: Option<u64>,
    /// Permits only: if given, the spenders permits in this domain may name (each must also
    /// be one of the token's spenders).
    #[serde(default, deserialize_with = "de::addresses")]
    pub spenders: Option<Vec<Address>>,
}

impl TypedDataDomain {
    fn matches(&self, domain: &Domain) -> bool {
        self.name
            .as_ref()
            .is_none_or(|name| domain.name.as_ref() == Some(name))
            && self.chain_id.is_none_or(|id| domain.chain_id == Some(id))
            && self
                .verifying_contract
                .is_none_or(|contract| domain.verifying_contract == Some(contract))
    }
}

/// Reads `[[account.typed_data_domains]]`, refusing a rule that names no field (it would
/// allow every domain) and one listed twice.
pub fn domains<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<TypedDataDomain>, D::Error> {
    let domains = Vec::<TypedDataDomain>::deserialize(deserializer)?;
    for (index, domain) in domains.iter().enumerate() {
        if domain.name.is_none() && domain.chain_id.is_none() && domain.verifying_contract.is_none()
        {
            return Err(D::Error::custom(
                "a typed_data_domains entry must name at least one of name, chain_id and \
                 verifying_contract (an empty one would allow every domain)",
            ));
        }
        if domains[..index].iter().any(|other| {
            (&other.name, other.chain_id, other.verifying_contract)
                == (&domain.name, domain.chain_id, domain.verifying_contract)
        }) {
            return Err(D::Error::custom(format!(
                "the domain {:?} on chain {:?} at {:?} is listed twice; merge the two entries",
                domain.name.as_deref().unwrap_or(""),
                domain.chain_id,
                domain.verifying_contract.map(|a| a.to_string())
            )));
        }
    }
    Ok(domains)
}

/// One approval a permit grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token: Address,
    pub spender: Address,
    pub amount: U256,
    /// Until when (unix seconds) it can be used: the latest of its deadlines.
    pub until: U256,
}

fn field<'a>(value: &'a DynSolValue, name: &str) -> Result<&'a DynSolValue, String> {
    let (_, names, values) = value
        .as_custom_struct()
        .ok_or_else(|| format!("it is not a struct where {name} should be"))?;
    names
        .iter()
        .position(|n| n == name)
        .and_then(|index| values.get(index))
        .ok_or_else(|| format!("it has no field {name}"))
}

fn address_of(value: &DynSolValue, name: &str) -> Result<Address, String> {
    field(value, name)?
        .as_address()
        .map(|a| Address(a.0 .0))
        .ok_or_else(|| format!("its {name} is not an address"))
}

fn uint_of(value: &DynSolValue, name: &str) -> Result<U256, String> {
    field(value, name)?
        .as_uint()
        .map(|(n, _)| n)
        .ok_or_else(|| format!("its {name} is not an unsigned integer"))
}

/// A list field: an array of structs (batch permits).
fn list_of<'a>(value: &'a DynSolValue, name: &str) -> Result<&'a [DynSolValue], String> {
    let list = field(value, name)?;
    list.as_array()
        .or_else(|| list.as_fixed_array())
        .ok_or_else(|| format!("its {name} is not a list"))
}

/// The primary types of the permits [`grants`] reads.
const PERMITS: [&str; 7] = [
    "Permit",
    "PermitSingle",
    "PermitBatch",
    "PermitTransferFrom",
    "PermitWitnessTransferFrom",
    "PermitBatchTransferFrom",
    "PermitBatchWitnessTransferFrom",
];

/// The approvals a permit grants. `None`: the primary type is not a permit's.
pub fn grants(request: &TypedDataRequest) -> Option<Result<Vec<Grant>, String>> {
    PERMITS
        .contains(&request.primary_type.as_str())
        .then(|| decode_grants(request))
}

/// A Permit2 allowance (`PermitDetails`), usable until its expiration or its signature's
/// deadline, whichever is later.
fn permit2_allowance(
    details: &DynSolValue,
    spender: Address,
    deadline: U256,
) -> Result<Grant, String> {
    Ok(Grant {
        token: address_of(details, "token")?,
        spender,
        amount: uint_of(details, "amount")?,
        until: uint_of(details, "expiration")?.max(deadline),
    })
}

/// A Permit2 signature transfer (`TokenPermissions`): the spender may pull the amount once.
fn permit2_transfer(
    permitted: &DynSolValue,
    spender: Address,
    deadline: U256,
) -> Result<Grant, String> {
    Ok(Grant {
        token: address_of(permitted, "token")?,
        spender,
        amount: uint_of(permitted, "amount")?,
        until: deadline,
    })
}

fn decode_grants(request: &TypedDataRequest) -> Result<Vec<Grant>, String> {
    let message = &request.message;
    let primary = request.primary_type.as_str();
    let spender = address_of(message, "spender")?;
    match primary {
        // EIP-2612 (`value`) or DAI's (`allowed`, unlimited when true): the domain's
        // contract is the token.
        "Permit" => {
            let token = request
                .domain
                .verifying_contract
                .ok_or("its domain names no verifyingContract (the token)")?;
            if let Ok(allowed) = field(message, "allowed") {
                let allowed = allowed.as_bool().ok_or("its allowed is not a bool")?;
                // DAI's expiry 0 means the permit never expires.
                let expiry = uint_of(message, "expiry")?;
                return Ok(vec![Grant {
                    token,
                    spender,
                    amount: if allowed { U256::MAX } else { U256::ZERO },
                    until: if expiry.is_zero() { U256::MAX } else { expiry },
                }]);
            }
            Ok(vec![Grant {
                token,
                spender,
                amount: uint_of(message, "value")?,
                until: uint_of(message, "deadline")?,
            }])
        }
        "PermitSingle" => Ok(vec![permit2_allowance(
            field(message, "details")?,
            spender,
            uint_of(message, "sigDeadline")?,
        )?]),
        "PermitBatch" => {
            let deadline = uint_of(message, "sigDeadline")?;
            list_of(message, "details")?
                .iter()
                .map(|details| permit2_allowance(details, spender, deadline))
                .collect()
        }
        "PermitBatchTransferFrom" | "PermitBatchWitnessTransferFrom" => {
            let deadline = uint_of(message, "deadline")?;
            list_of(message, "permitted")?
                .iter()
                .map(|permitted| permit2_transfer(permitted, spender, deadline))
                .collect()
        }
        // PermitTransferFrom and PermitWitnessTransferFrom.
        _ => Ok(vec![permit2_transfer(
            field(message, "permitted")?,
            spender,
            uint_of(message, "deadline")?,
        )?]),
    }
}

impl AccountRules {
    /// Judges typed data: its domain must be listed, and a permit must be an approval the
    /// token's rules allow, usable no later than the domain's `max_deadline` from `now`
    /// (unix seconds).
    pub fn check_typed_data(&self, request: &TypedDataRequest, now: u64) -> Result<(), Denial> {
        let domain = &request.domain;
        let Some(rule) = self.typed_data_domains.iter().find(|d| d.matches(domain)) else {
            return Err(deny(
                "typed_data_domains",
                format!(
                    "the domain {:?} on chain {} at {} is not one of the allowed domains; \
                     typed data is signed only for domains the policy lists",
                    domain.name.as_deref().unwrap_or(""),
                    domain
                        .chain_id
                        .map_or_else(|| "none".to_owned(), |id| id.to_string()),
                    domain
                        .verifying_contract
                        .map_or_else(|| "no contract".to_owned(), |a| a.to_string())
                ),
            ));
        };
        let grants = match grants(request) {
            None => return Ok(()),
            Some(Ok(grants)) => grants,
            Some(Err(why)) => {
                return Err(deny(
                    "typed_data_domains",
                    format!(
                        "the document claims to be a {} permit, but {why}",
                        request.primary_type
                    ),
                ))
            }
        };
        let how = format!("a {} permit", request.primary_type);
        for grant in grants {
            let Some(token) = self.token(grant.token) else {
                return Err(deny(
                    "tokens",
                    format!(
                        "{how} approves {}, which is not a token listed in [[account.tokens]]",
                        grant.token
                    ),
                ));
            };
            if let Some(spenders) = &rule.spenders {
                if !grant.amount.is_zero() && !spenders.contains(&grant.spender) {
                    return Err(deny(
                        "typed_data_domains.spenders",
                        format!(
                            "{how} names {} as spender, not one of this domain's spenders",
                            grant.spender
                        ),
                    ));
                }
            }
            token.check_approval(grant.spender, grant.amount, &how)?;
            if let Some(max) = rule.max_deadline {
                let latest = U256::from(now).saturating_add(U256::from(max));
                if grant.until > latest {
                    return Err(deny(
                        "typed_data_domains.max_deadline",
                        format!(
                            "{how} stays usable until {}, more than {max} seconds from now \
                             ({now})",
                            grant.until
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
