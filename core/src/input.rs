//! What is wrong with a transaction's inputs, by field, and how each front end names it.
//!
//! The checks between a transaction's fields ([`TxInputs::check`](crate::txinputs::TxInputs::check)
//! and `complete`) serve every front end, and each calls the same field by its own name: the
//! command line `--chain-id`, the JSON-RPC transaction object `chainId`, the sign event
//! `chain_id`. So a check answers an [`InputError`]: the [`Field`] and the [`Problem`], no
//! words. The front end puts it into words with its [`Spelling`] ([`Flags`], [`JsonRpc`],
//! [`SignEvent`]) and answers the [`UsageError`] that gives, which the command line exits 2
//! on and the JSON-RPC server answers as "invalid params".
//!
//! `InputError` has no `Display` on purpose: a message needs a front end's names, so there is
//! no message without one, and a front end that forgets to choose does not compile.
//!
//! (A value parser, such as [`parse_u64`](crate::txinputs::parse_u64), is told the name its
//! caller uses for the one value it reads, and says it: it has nothing else to name.)

use kms_eth_signer::MAX_BLOBS_PER_TX;

use crate::kind::Kind;
use crate::UsageError;

/// A transaction input that core checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    ChainId,
    Nonce,
    To,
    /// That the transaction creates a contract (the command line's `--create`; elsewhere,
    /// no recipient).
    Create,
    GasLimit,
    GasPrice,
    MaxFeePerGas,
    MaxPriorityFeePerGas,
    Data,
    AccessList,
    /// EIP-7702's signed authorizations.
    Authorizations,
    /// EIP-4844's blobs.
    Blobs,
    MaxFeePerBlobGas,
}

/// What is wrong with a [`Field`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Not given, and signing needs it (the node could have been asked).
    Required,
    /// Not given, and the transaction's type needs it.
    Missing,
    /// The chain id 0, which no chain has.
    ZeroChainId,
    /// The nonce 2^64-1, which EIP-2681 keeps nonces below.
    LastNonce,
    /// A contract creation that names a recipient.
    CreationWithRecipient,
    /// No recipient, and no contract creation asked for.
    NoRecipient,
    /// A contract creation without init code.
    CreationWithoutCode,
    /// Init code above EIP-3860's limit.
    InitCodeTooLarge { bytes: usize, max: usize },
    /// No recipient on a type that cannot create a contract (EIP-4844, EIP-7702).
    CannotCreate(Kind),
    /// Authorizations on a type other than EIP-7702.
    AuthorizationsOutsideEip7702,
    /// An EIP-7702 transaction without authorizations.
    NoAuthorizations,
    /// Blobs on a type other than EIP-4844.
    BlobsOutsideEip4844,
    /// A blob fee on a type other than EIP-4844.
    BlobFeeOutsideEip4844,
    /// A max fee per blob gas of 0, which can never be paid.
    ZeroBlobFee,
    /// An EIP-4844 transaction without blobs.
    NoBlobs,
    /// More blobs than one transaction may carry.
    TooManyBlobs { blobs: usize },
    /// A gas price on a type that pays by max fee and tip.
    GasPriceWithFeeMarket(Kind),
    /// A tip above the max fee, which could never be paid in full.
    TipAboveMaxFee,
    /// A max fee or tip on a type that pays a gas price.
    FeeMarketWithGasPrice,
    /// An access list on a legacy transaction.
    AccessListInLegacy,
}

/// A transaction input that is wrong: which field, and what is wrong with it. A front end
/// names it with its [`Spelling`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub field: Field,
    pub problem: Problem,
}

impl InputError {
    pub fn new(field: Field, problem: Problem) -> Self {
        InputError { field, problem }
    }

    /// The message, in `spelling`'s names.
    pub fn message(&self, spelling: &impl Spelling) -> String {
        spelling.message(self)
    }

    /// The usage error a front end answers: the message in `spelling`'s names.
    pub fn usage(&self, spelling: &impl Spelling) -> UsageError {
        UsageError(self.message(spelling))
    }
}

/// How a front end names fields and transaction types in the messages of [`InputError`]s.
pub trait Spelling {
    /// The front end's name of `field`.
    fn field(&self, field: Field) -> &'static str;

    /// A transaction of type `kind`, as the front end's users know it ("an EIP-7702
    /// transaction").
    fn kind(&self, kind: Kind) -> &'static str;

    /// How the user asks for one of `kinds` ("--type 2930 or 1559").
    fn use_type(&self, kinds: &[Kind]) -> String;

    /// The whole message. [`describe`] words every problem with the three names above; a
    /// front end overrides this only for what it words its own way.
    fn message(&self, err: &InputError) -> String {
        describe(self, err)
    }
}

/// `invalid <field>: <problem>` (`missing <field>` for a required one), in `spelling`'s
/// names: the wording every front end shares.
pub fn describe<S: Spelling + ?Sized>(spelling: &S, err: &InputError) -> String {
    let name = |field| spelling.field(field);
    let problem = match &err.problem {
        Problem::Required => return format!("missing {}", name(err.field)),
        Problem::Missing => "missing".to_owned(),
        Problem::ZeroChainId => "0 is not a chain id".to_owned(),
        Problem::LastNonce => {
            "2^64-1 is not a valid nonce (EIP-2681 keeps nonces below it)".to_owned()
        }
        Problem::CreationWithRecipient => format!(
            "a contract creation has no recipient; leave out {}",
            name(Field::To)
        ),
        Problem::NoRecipient => format!(
            "missing. Without a recipient the transaction would create a contract and the \
             value would go to it; to create one, pass {} with its init code in {}",
            name(Field::Create),
            name(Field::Data)
        ),
        Problem::CreationWithoutCode => format!(
            "{} needs the contract's init code: a contract created from empty code has no \
             code to move what is sent to it",
            name(Field::Create)
        ),
        Problem::InitCodeTooLarge { bytes, max } => format!(
            "init code of {bytes} bytes is above the {max}-byte limit of \
             EIP-3860; the node would refuse it"
        ),
        Problem::CannotCreate(kind) => {
            let to = name(Field::To);
            let why = match kind {
                Kind::Eip7702 => " (the delegating account itself, to call its new code)",
                _ => "",
            };
            format!(
                "{} cannot create a contract; give {to}{why}",
                spelling.kind(*kind)
            )
        }
        Problem::AuthorizationsOutsideEip7702 => format!(
            "only EIP-7702 transactions carry authorizations; use {}",
            spelling.use_type(&[Kind::Eip7702])
        ),
        Problem::NoAuthorizations => format!(
            "missing: {} carries at least one; give {}",
            spelling.kind(Kind::Eip7702),
            name(Field::Authorizations)
        ),
        Problem::BlobsOutsideEip4844 => format!(
            "only EIP-4844 transactions carry blobs; add {}",
            spelling.use_type(&[Kind::Eip4844])
        ),
        Problem::BlobFeeOutsideEip4844 => format!(
            "only EIP-4844 transactions pay for blob gas; add {}",
            spelling.use_type(&[Kind::Eip4844])
        ),
        Problem::ZeroBlobFee => {
            "0 can never be paid: the blob base fee is at least 1 wei".to_owned()
        }
        Problem::NoBlobs => format!(
            "missing: {} carries at least one blob; give {}",
            spelling.kind(Kind::Eip4844),
            name(Field::Blobs)
        ),
        Problem::TooManyBlobs { blobs } => format!(
            "{blobs} blobs are more than the {MAX_BLOBS_PER_TX} a transaction may carry \
             (EIP-7594); send them in several transactions"
        ),
        Problem::GasPriceWithFeeMarket(kind) => format!(
            "{} takes {} and {} instead",
            spelling.kind(*kind),
            name(Field::MaxFeePerGas),
            name(Field::MaxPriorityFeePerGas)
        ),
        Problem::TipAboveMaxFee => format!("it is above {}", name(Field::MaxFeePerGas)),
        Problem::FeeMarketWithGasPrice => format!(
            "only EIP-1559 transactions have it; use {}",
            name(Field::GasPrice)
        ),
        Problem::AccessListInLegacy => format!(
            "legacy transactions have no access list; use {}",
            spelling.use_type(&[Kind::Eip2930, Kind::Eip1559])
        ),
    };
    format!("invalid {}: {problem}", name(err.field))
}

/// The command line's flags (`--chain-id`).
#[derive(Debug, Clone, Copy)]
pub struct Flags;

impl Spelling for Flags {
    fn field(&self, field: Field) -> &'static str {
        match field {
            Field::ChainId => "--chain-id",
            Field::Nonce => "--nonce",
            Field::To => "--to",
            Field::Create => "--create",
            Field::GasLimit => "--gas-limit",
            Field::GasPrice => "--gas-price",
            Field::MaxFeePerGas => "--max-fee-per-gas",
            Field::MaxPriorityFeePerGas => "--max-priority-fee-per-gas",
            Field::Data => "--data",
            Field::AccessList => "--access-list",
            Field::Authorizations => "--authorization",
            Field::Blobs => "--blob-file",
            Field::MaxFeePerBlobGas => "--max-fee-per-blob-gas",
        }
    }

    fn kind(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Legacy => "a legacy transaction",
            Kind::Eip2930 => "an EIP-2930 transaction",
            Kind::Eip1559 => "an EIP-1559 transaction",
            Kind::Eip4844 => "an EIP-4844 transaction",
            Kind::Eip7702 => "an EIP-7702 transaction",
        }
    }

    fn use_type(&self, kinds: &[Kind]) -> String {
        let value = |kind: &Kind| match kind {
            Kind::Legacy => "legacy",
            Kind::Eip2930 => "2930",
            Kind::Eip1559 => "1559",
            Kind::Eip4844 => "4844",
            Kind::Eip7702 => "7702",
        };
        format!(
            "--type {}",
            kinds.iter().map(value).collect::<Vec<_>>().join(" or ")
        )
    }

    /// The command line says what else the user can do: `send` asks the node for what is
    /// left out, `--delegate` makes the sender's own authorization; and it has always
    /// called every fee-market type's gas price an EIP-1559 matter.
    fn message(&self, err: &InputError) -> String {
        let name = self.field(err.field);
        match err.problem {
            Problem::Required => format!("missing {name}: sign needs it (send can ask the node)"),
            Problem::NoAuthorizations => format!(
                "{}, or --delegate for the sender's own",
                describe(self, err)
            ),
            Problem::GasPriceWithFeeMarket(_) => format!(
                "invalid {name}: EIP-1559 transactions take {} and {} instead",
                self.field(Field::MaxFeePerGas),
                self.field(Field::MaxPriorityFeePerGas)
            ),
            _ => describe(self, err),
        }
    }
}

/// The JSON-RPC transaction object's fields, in the specification's names (`chainId`).
#[derive(Debug, Clone, Copy)]
pub struct JsonRpc;

impl Spelling for JsonRpc {
    fn field(&self, field: Field) -> &'static str {
        match field {
            Field::ChainId => "chainId",
            Field::Nonce => "nonce",
            // A creation is a transaction object without `to`.
            Field::To | Field::Create => "to",
            Field::GasLimit => "gas",
            Field::GasPrice => "gasPrice",
            Field::MaxFeePerGas => "maxFeePerGas",
            Field::MaxPriorityFeePerGas => "maxPriorityFeePerGas",
            Field::Data => "input",
            Field::AccessList => "accessList",
            Field::Authorizations => "authorizationList",
            Field::Blobs => "blobs",
            Field::MaxFeePerBlobGas => "maxFeePerBlobGas",
        }
    }

    fn kind(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Legacy => "a type 0x0 (legacy) transaction",
            Kind::Eip2930 => "a type 0x1 (EIP-2930) transaction",
            Kind::Eip1559 => "a type 0x2 (EIP-1559) transaction",
            Kind::Eip4844 => "a type 0x3 (EIP-4844) transaction",
            Kind::Eip7702 => "a type 0x4 (EIP-7702) transaction",
        }
    }

    fn use_type(&self, kinds: &[Kind]) -> String {
        let values: Vec<String> = kinds
            .iter()
            .map(|kind| format!("\"{:#x}\"", kind.type_byte()))
            .collect();
        format!("\"type\": {}", values.join(" or "))
    }
}

/// The sign event's fields, as [`crate::event`] reads them (`chain_id`, `dst_address`).
#[derive(Debug, Clone, Copy)]
pub struct SignEvent;

impl Spelling for SignEvent {
    fn field(&self, field: Field) -> &'static str {
        match field {
            Field::ChainId => "chain_id",
            Field::Nonce => "nonce",
            Field::To | Field::Create => "dst_address",
            Field::GasLimit => "gas_limit",
            Field::GasPrice => "gas_price",
            Field::MaxFeePerGas => "max_fee_per_gas",
            Field::MaxPriorityFeePerGas => "max_priority_fee_per_gas",
            Field::Data => "data",
            // An event has no field for these; only a type the event parser refuses could
            // ask for them.
            Field::AccessList | Field::Authorizations | Field::Blobs | Field::MaxFeePerBlobGas => {
                "type"
            }
        }
    }

    fn kind(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Legacy => "a type 0 (legacy) transaction",
            Kind::Eip2930 => "a type 1 (EIP-2930) transaction",
            Kind::Eip1559 => "a type 2 (EIP-1559) transaction",
            Kind::Eip4844 => "a type 3 (EIP-4844) transaction",
            Kind::Eip7702 => "a type 4 (EIP-7702) transaction",
        }
    }

    fn use_type(&self, kinds: &[Kind]) -> String {
        let values: Vec<String> = kinds.iter().map(|k| k.type_byte().to_string()).collect();
        format!("\"type\": {}", values.join(" or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_FIELD: [Field; 13] = [
        Field::ChainId,
        Field::Nonce,
        Field::To,
        Field::Create,
        Field::GasLimit,
        Field::GasPrice,
        Field::MaxFeePerGas,
        Field::MaxPriorityFeePerGas,
        Field::Data,
        Field::AccessList,
        Field::Authorizations,
        Field::Blobs,
        Field::MaxFeePerBlobGas,
    ];

    #[test]
    fn every_front_end_names_a_field_as_its_users_give_it() {
        for field in EVERY_FIELD {
            assert!(Flags.field(field).starts_with("--"), "{field:?}");
            let json = JsonRpc.field(field);
            // The blob fields are the specification's, which the service refuses by name.
            assert!(
                crate::txobject::FIELDS.contains(&json)
                    || ["blobs", "maxFeePerBlobGas"].contains(&json),
                "{field:?}: {json}"
            );
            let event = SignEvent.field(field);
            assert!(
                crate::event::SIGN_EVENT_FIELDS.contains(&event),
                "{field:?}: {event}"
            );
        }
    }

    #[test]
    fn each_front_end_words_one_problem_in_its_own_names() {
        let cases = [
            (
                InputError::new(Field::MaxPriorityFeePerGas, Problem::TipAboveMaxFee),
                [
                    "invalid --max-priority-fee-per-gas: it is above --max-fee-per-gas",
                    "invalid maxPriorityFeePerGas: it is above maxFeePerGas",
                    "invalid max_priority_fee_per_gas: it is above max_fee_per_gas",
                ],
            ),
            (
                InputError::new(Field::GasLimit, Problem::Required),
                [
                    "missing --gas-limit: sign needs it (send can ask the node)",
                    "missing gas",
                    "missing gas_limit",
                ],
            ),
            (
                InputError::new(
                    Field::GasPrice,
                    Problem::GasPriceWithFeeMarket(Kind::Eip7702),
                ),
                [
                    "invalid --gas-price: EIP-1559 transactions take --max-fee-per-gas and \
                     --max-priority-fee-per-gas instead",
                    "invalid gasPrice: a type 0x4 (EIP-7702) transaction takes maxFeePerGas \
                     and maxPriorityFeePerGas instead",
                    "invalid gas_price: a type 4 (EIP-7702) transaction takes \
                     max_fee_per_gas and max_priority_fee_per_gas instead",
                ],
            ),
            (
                InputError::new(Field::AccessList, Problem::AccessListInLegacy),
                [
                    "invalid --access-list: legacy transactions have no access list; use \
                     --type 2930 or 1559",
                    "invalid accessList: legacy transactions have no access list; use \
                     \"type\": \"0x1\" or \"0x2\"",
                    "invalid type: legacy transactions have no access list; use \"type\": 1 \
                     or 2",
                ],
            ),
            (
                InputError::new(Field::To, Problem::CannotCreate(Kind::Eip7702)),
                [
                    "invalid --to: an EIP-7702 transaction cannot create a contract; give \
                     --to (the delegating account itself, to call its new code)",
                    "invalid to: a type 0x4 (EIP-7702) transaction cannot create a contract; \
                     give to (the delegating account itself, to call its new code)",
                    "invalid dst_address: a type 4 (EIP-7702) transaction cannot create a \
                     contract; give dst_address (the delegating account itself, to call its \
                     new code)",
                ],
            ),
            (
                InputError::new(Field::Authorizations, Problem::NoAuthorizations),
                [
                    "invalid --authorization: missing: an EIP-7702 transaction carries at \
                     least one; give --authorization, or --delegate for the sender's own",
                    "invalid authorizationList: missing: a type 0x4 (EIP-7702) transaction \
                     carries at least one; give authorizationList",
                    "invalid type: missing: a type 4 (EIP-7702) transaction carries at least \
                     one; give type",
                ],
            ),
        ];
        for (err, [flags, json_rpc, event]) in cases {
            assert_eq!(err.message(&Flags), flags);
            assert_eq!(err.message(&JsonRpc), json_rpc);
            assert_eq!(err.usage(&SignEvent).0, event);
        }
    }
}
