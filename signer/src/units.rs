//! Ether amounts as people write them (`0.01ether`, `5gwei`, `21000`), parsed exactly into wei
//! without floating point, and written back in ether.

use ruint::aliases::U256;

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Nothing was given.
    #[error("an empty amount: write a number with an optional unit, like 0.01ether, 5gwei or 21000 (wei)")]
    Empty,
    /// The amount is negative.
    #[error("{0:?} is negative; amounts are zero or more")]
    Negative(String),
    /// The number part is not a decimal number.
    #[error("{0:?} is not a number with an optional unit (like 0.01ether, 5gwei or 21000)")]
    Malformed(String),
    /// The unit is not one of wei, gwei, ether.
    #[error("{input:?} has the unknown unit {unit:?}: use wei, gwei or ether")]
    UnknownUnit {
        /// The amount as given.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// The amount has a fraction of a wei.
    #[error("{0:?} is not a whole number of wei (1 wei is the smallest amount)")]
    FractionalWei(String),
    /// The amount does not fit in 256 bits.
    #[error("{0:?} is too large: it does not fit in 256 bits")]
    Overflow(String),
}

/// Parses an amount into wei: a decimal number and an optional unit (`wei`, `gwei`, `ether`
/// or `eth`, any case, with or without a space); a bare number is wei.
pub fn parse_amount(input: &str) -> Result<U256, AmountError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if text.starts_with('-') {
        return Err(AmountError::Negative(input.to_owned()));
    }
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let decimals = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "wei" => 0,
        "gwei" => 9,
        "ether" | "eth" => 18,
        _ => {
            return Err(AmountError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.trim().to_owned(),
            })
        }
    };
    let number = number.trim();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return Err(AmountError::Malformed(input.to_owned()));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > decimals {
        return Err(AmountError::FractionalWei(input.to_owned()));
    }
    let overflow = || AmountError::Overflow(input.to_owned());
    // Whole and fraction together, scaled to wei: "1.5" ether is "15" followed by 17 zeros.
    let mut scaled = String::with_capacity(whole.len() + decimals);
    scaled.push_str(whole);
    scaled.push_str(fraction);
    scaled.extend(std::iter::repeat_n('0', decimals - fraction.len()));
    let scaled = scaled.trim_start_matches('0');
    if scaled.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(scaled, 10).map_err(|_| overflow())
}

/// Writes wei as ether, exactly (`1500000000000000000` is `1.5`).
pub fn format_ether(wei: U256) -> String {
    format_scaled(wei, 18)
}

/// Writes wei as gwei, exactly (`1500000000` is `1.5`): how fees per gas are read.
pub fn format_gwei(wei: U256) -> String {
    format_scaled(wei, 9)
}

/// `wei` divided by 10^`decimals`, with every significant digit.
fn format_scaled(wei: U256, decimals: usize) -> String {
    let digits = wei.to_string();
    let (whole, fraction) = if digits.len() > decimals {
        digits.split_at(digits.len() - decimals)
    } else {
        ("0", digits.as_str())
    };
    let fraction = format!("{fraction:0>decimals$}");
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wei(s: &str) -> U256 {
        s.parse().unwrap()
    }

    #[test]
    fn units_scale_exactly() {
        assert_eq!(parse_amount("0.01ether"), Ok(wei("10000000000000000")));
        assert_eq!(parse_amount("1 ETH"), Ok(wei("1000000000000000000")));
        assert_eq!(parse_amount("5gwei"), Ok(wei("5000000000")));
        assert_eq!(parse_amount("1.5gwei"), Ok(wei("1500000000")));
        assert_eq!(parse_amount("21000"), Ok(wei("21000")));
        assert_eq!(parse_amount("7wei"), Ok(wei("7")));
        assert_eq!(parse_amount(".5ether"), Ok(wei("500000000000000000")));
        assert_eq!(parse_amount("2.ether"), Ok(wei("2000000000000000000")));
        assert_eq!(parse_amount("0"), Ok(U256::ZERO));
        assert_eq!(parse_amount("1.000wei"), Ok(wei("1")));
    }

    #[test]
    fn bad_amounts_are_named() {
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        assert!(matches!(
            parse_amount("-1ether"),
            Err(AmountError::Negative(_))
        ));
        assert!(matches!(
            parse_amount("1.5wei"),
            Err(AmountError::FractionalWei(_))
        ));
        assert!(matches!(
            parse_amount("0.0000000001gwei"),
            Err(AmountError::FractionalWei(_))
        ));
        assert!(matches!(
            parse_amount("1btc"),
            Err(AmountError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_amount("1e18"),
            Err(AmountError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_amount("1.2.3"),
            Err(AmountError::Malformed(_))
        ));
        assert!(matches!(parse_amount("."), Err(AmountError::Malformed(_))));
        assert!(matches!(
            parse_amount("0x10"),
            Err(AmountError::UnknownUnit { .. })
        ));
        let too_big = format!("{}0", U256::MAX);
        assert!(matches!(
            parse_amount(&too_big),
            Err(AmountError::Overflow(_))
        ));
        assert_eq!(parse_amount(&U256::MAX.to_string()), Ok(U256::MAX));
    }

    #[test]
    fn ether_is_written_exactly() {
        assert_eq!(format_ether(wei("1500000000000000000")), "1.5");
        assert_eq!(format_ether(wei("1")), "0.000000000000000001");
        assert_eq!(format_ether(U256::ZERO), "0");
        assert_eq!(format_ether(wei("2000000000000000000")), "2");
        assert_eq!(format_gwei(wei("1500000000")), "1.5");
        assert_eq!(format_gwei(wei("7")), "0.000000007");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(input in ".{0,80}") {
            let _ = parse_amount(&input);
        }

        #[test]
        fn ether_round_trips(bytes in any::<[u8; 32]>()) {
            let value = U256::from_be_bytes(bytes);
            prop_assert_eq!(parse_amount(&format!("{}ether", format_ether(value))), Ok(value));
        }
    }
}
