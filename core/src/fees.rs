//! What a transaction can cost at most, the least gas it can run on, and which chains carry
//! real value: the arithmetic behind the checks made before a transaction is signed.
//!
//! Every sum here is checked: a cost that does not fit in 256 bits is an error, never a
//! wrapped small number that would pass a threshold.

use kms_eth_signer::{AccessListItem, U256};

use crate::txinputs::{Kind, TxInputs};

/// The default cap on a fee per gas that a node suggests (`send --fee-cap`). Far above what
/// Ethereum mainnet has asked in normal times, far below the node that answered a tip of
/// 2,000,000 gwei.
pub const DEFAULT_FEE_CAP: &str = "500gwei";

/// The default worst-case cost above which `send` asks before it signs (`--confirm-above`).
pub const DEFAULT_CONFIRM_ABOVE: &str = "0.1ether";

/// The most a transaction can take from its sender: gas limit x the most it pays per gas,
/// plus the value. `None` when that does not fit in 256 bits.
pub fn max_cost(gas_limit: u64, price_per_gas: U256, value: U256) -> Option<U256> {
    U256::from(gas_limit)
        .checked_mul(price_per_gas)?
        .checked_add(value)
}

/// The most a blob transaction can pay for its blob gas: blob gas x max fee per blob gas.
/// `None` when that does not fit in 256 bits.
pub fn max_blob_cost(blob_gas: u64, max_fee_per_blob_gas: U256) -> Option<U256> {
    U256::from(blob_gas).checked_mul(max_fee_per_blob_gas)
}

/// A replacement's fee bump in percent, `12.5%` or `12.5`: at least 10 (below it nodes
/// answer "replacement transaction underpriced") and at most 1000.
pub fn parse_bump(text: &str) -> Result<f64, String> {
    let percent: f64 = text
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage such as 12.5%"))?;
    if !(10.0..=1000.0).contains(&percent) {
        return Err(format!(
            "{percent} % is outside 10 % (below it nodes answer \"replacement transaction \
             underpriced\") to 1000 %"
        ));
    }
    Ok(percent)
}

/// The least replacement fee a node takes over `fee`: `bump_percent` more (rounded up), and
/// at least one wei more, so that a zero fee is bumped too. Geth's pool wants 10 % more on
/// both fees of a replacement (100 % on the blob fee); below that it answers "replacement
/// transaction underpriced". `None` when it does not fit in 256 bits.
pub fn bumped_fee(fee: U256, bump_percent: f64) -> Option<U256> {
    // Parts per million, so that 12.5 % is exact.
    let ppm = U256::from((bump_percent.max(0.0) * 10_000.0).round() as u64);
    let million = U256::from(1_000_000u64);
    let raised = fee.checked_mul(million.checked_add(ppm)?)?;
    let raised = raised.div_ceil(million);
    Some(raised.max(fee.checked_add(U256::from(1u64))?))
}

impl TxInputs {
    /// The most the transaction pays per gas: its max fee (EIP-1559) or its gas price.
    pub fn price_per_gas(&self) -> Option<U256> {
        match self.kind {
            Kind::Eip1559 | Kind::Eip4844 | Kind::Eip7702 => self.max_fee_per_gas,
            Kind::Legacy | Kind::Eip2930 => self.gas_price,
        }
    }
}

/// The gas a transaction uses before any code runs (the yellow paper's intrinsic gas, with
/// EIP-2028 calldata, EIP-2930 access lists, EIP-3860 init code, and 25000 per EIP-7702
/// authorization, the cost of an empty account that EIP-7702 charges up front). A gas
/// limit below it is refused by every node; an estimate below it is a node that does not
/// know or lies.
pub fn intrinsic_gas(
    create: bool,
    data: &[u8],
    access_list: &[AccessListItem],
    authorizations: usize,
) -> u64 {
    let zeros = data.iter().filter(|b| **b == 0).count() as u64;
    let non_zeros = data.len() as u64 - zeros;
    let mut gas = 21_000 + zeros * 4 + non_zeros * 16;
    if create {
        gas += 32_000 + 2 * (data.len() as u64).div_ceil(32);
    }
    for item in access_list {
        gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
    }
    gas + 25_000 * authorizations as u64
}

/// Public networks: chains where an address holds real value, or is as reachable by anyone
/// as if it did. A key whose private half LocalStack keeps in its own files is never used
/// on them.
const PUBLIC_NETWORKS: [(u64, &str); 24] = [
    (1, "Ethereum mainnet"),
    (10, "OP Mainnet"),
    (56, "BNB Smart Chain"),
    (100, "Gnosis"),
    (137, "Polygon PoS"),
    (250, "Fantom"),
    (324, "zkSync Era"),
    (1101, "Polygon zkEVM"),
    (5000, "Mantle"),
    (8453, "Base"),
    (17000, "Holesky"),
    (42161, "Arbitrum One"),
    (42220, "Celo"),
    (43114, "Avalanche C-Chain"),
    (59144, "Linea"),
    (80002, "Polygon Amoy"),
    (81457, "Blast"),
    (84532, "Base Sepolia"),
    (421614, "Arbitrum Sepolia"),
    (534352, "Scroll"),
    (560048, "Hoodi"),
    (7777777, "Zora"),
    (11155111, "Sepolia"),
    (11155420, "OP Sepolia"),
];

/// The name of the public network `chain_id` is, if it is one.
pub fn public_network(chain_id: u64) -> Option<&'static str> {
    PUBLIC_NETWORKS
        .iter()
        .find(|(id, _)| *id == chain_id)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bumped_fee_is_at_least_the_nodes_replacement_minimum() {
        let gwei = |n: u64| U256::from(n) * U256::from(1_000_000_000u64);
        assert_eq!(super::bumped_fee(gwei(8), 12.5), Some(gwei(9)));
        assert_eq!(super::bumped_fee(gwei(10), 10.0), Some(gwei(11)));
        // Rounded up: 10 % of 15 wei is 1.5 wei.
        assert_eq!(
            super::bumped_fee(U256::from(15u64), 10.0),
            Some(U256::from(17u64))
        );
        // A zero fee still moves.
        assert_eq!(super::bumped_fee(U256::ZERO, 10.0), Some(U256::from(1u64)));
        assert_eq!(super::bumped_fee(U256::MAX, 10.0), None);
    }

    use super::*;

    #[test]
    fn max_cost_is_checked_not_wrapped() {
        let gwei = U256::from(1_000_000_000u64);
        assert_eq!(
            max_cost(21_000, gwei, U256::from(5u8)),
            Some(U256::from(21_000_000_000_005u64))
        );
        assert_eq!(max_cost(2, U256::MAX, U256::ZERO), None);
        assert_eq!(max_cost(1, U256::MAX, U256::from(1u8)), None);
        assert_eq!(max_cost(0, U256::MAX, U256::MAX), Some(U256::MAX));
        assert_eq!(
            max_blob_cost(2 * 131_072, U256::from(3u8)),
            Some(U256::from(786_432u64))
        );
        assert_eq!(max_blob_cost(2, U256::MAX), None);
    }

    #[test]
    fn intrinsic_gas_counts_calldata_creation_and_access_lists() {
        assert_eq!(intrinsic_gas(false, &[], &[], 0), 21_000);
        assert_eq!(intrinsic_gas(false, &[0, 1], &[], 0), 21_000 + 4 + 16);
        // 33 bytes of init code are two words.
        assert_eq!(
            intrinsic_gas(true, &[1; 33], &[], 0),
            21_000 + 33 * 16 + 32_000 + 4
        );
        let item = AccessListItem {
            address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse()
                .unwrap(),
            storage_keys: vec![[0; 32], [1; 32]],
        };
        assert_eq!(
            intrinsic_gas(false, &[], &[item], 0),
            21_000 + 2_400 + 3_800
        );
        assert_eq!(intrinsic_gas(false, &[], &[], 2), 21_000 + 50_000);
    }

    #[test]
    fn public_networks_are_named_and_local_ones_are_not() {
        assert_eq!(public_network(1), Some("Ethereum mainnet"));
        assert_eq!(public_network(11155111), Some("Sepolia"));
        assert_eq!(public_network(31337), None);
        assert_eq!(public_network(1337), None);
    }
}
