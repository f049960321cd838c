//! The transaction type (EIP-2718) as the checks and their messages see it: a leaf that
//! `txinputs` (the checks) and `input` (how each front end words their errors) both use.

/// The transaction type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Legacy,
    Eip2930,
    Eip1559,
    /// EIP-4844: an EIP-1559 call that carries blobs.
    Eip4844,
    /// EIP-7702: an EIP-1559 call that also installs code delegations.
    Eip7702,
}

impl Kind {
    /// Whether the type pays by max fee and tip (EIP-1559's fee market) rather than a gas
    /// price.
    pub fn has_fee_market(self) -> bool {
        matches!(self, Kind::Eip1559 | Kind::Eip4844 | Kind::Eip7702)
    }

    /// The EIP-2718 type byte.
    pub fn type_byte(self) -> u8 {
        match self {
            Kind::Legacy => 0,
            Kind::Eip2930 => 1,
            Kind::Eip1559 => 2,
            Kind::Eip4844 => 3,
            Kind::Eip7702 => 4,
        }
    }
}
