//! The audit record: one JSON line per decision, a signature handed out or a request
//! refused, with the same fields from `kms-eth serve` and from the Lambda, so that a log
//! shipper parses one schema. README.md ("The audit record") documents each field; the
//! field names and their order are part of the interface, and `version` changes if they do.
//! Writing the line is the front end's job: this module does no I/O.

use kms_eth_signer::{Address, Transaction};
use serde::Serialize;
use serde_json::Value;

use crate::policy::Denial;

/// The schema's version.
pub const VERSION: u32 = 1;

/// One decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    /// Always `"decision"`: what tells an audit line from the other log lines.
    pub audit: &'static str,
    pub version: u32,
    /// When, in RFC 3339 (UTC, seconds).
    pub time: String,
    /// `"serve"` or `"lambda"`.
    pub source: &'static str,
    /// The JSON-RPC method, or the event's operation.
    pub method: String,
    pub account: String,
    pub chain_id: Option<u64>,
    /// `"allowed"` (a policy allowed it), `"unrestricted"` (signed without a policy) or
    /// `"refused"`.
    pub decision: &'static str,
    /// The policy rule that refused it.
    pub rule: Option<&'static str>,
    /// Why it was refused, in words.
    pub reason: Option<String>,
    #[serde(rename = "type")]
    pub tx_type: Option<u8>,
    pub to: Option<String>,
    /// Wei, as decimal text.
    pub value: Option<String>,
    pub nonce: Option<u64>,
    pub gas_limit: Option<u64>,
    /// Wei per gas, as decimal text (the gas price for types 0 and 1).
    pub max_fee_per_gas: Option<String>,
    /// A transaction's hash, or the digest of a message or typed data.
    pub signed: Option<String>,
    /// The id that finds the KMS `Sign` call in CloudTrail.
    pub kms_request_id: Option<String>,
    /// The client's request id (JSON-RPC `id`, or the Lambda invocation's request id).
    pub request_id: Option<Value>,
    /// An EIP-7702 transaction's authorizations (authority, delegate, chain id, nonce).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizations: Option<Value>,
}

impl AuditRecord {
    /// A record of `method` for `account` at `unix_seconds`, to be completed with the
    /// decision and what the request was.
    pub fn new(
        source: &'static str,
        method: &str,
        account: Address,
        unix_seconds: u64,
        request_id: Option<Value>,
    ) -> AuditRecord {
        AuditRecord {
            audit: "decision",
            version: VERSION,
            time: rfc3339(unix_seconds),
            source,
            method: method.to_owned(),
            account: account.to_string(),
            chain_id: None,
            decision: "allowed",
            rule: None,
            reason: None,
            tx_type: None,
            to: None,
            value: None,
            nonce: None,
            gas_limit: None,
            max_fee_per_gas: None,
            signed: None,
            kms_request_id: None,
            request_id,
            authorizations: None,
        }
    }

    /// The transaction's fields.
    pub fn transaction(mut self, tx: &Transaction) -> AuditRecord {
        self.chain_id = tx.chain_id();
        self.tx_type = Some(tx.tx_type());
        self.to = tx.to().map(|to| to.to_string());
        self.value = Some(tx.value().to_string());
        self.nonce = Some(tx.nonce());
        self.gas_limit = Some(tx.gas_limit());
        self.max_fee_per_gas = Some(tx.max_price_per_gas().to_string());
        self
    }

    /// Signed: by a policy's leave (`restricted`) or without one.
    pub fn signed(
        mut self,
        signed: String,
        kms_request_id: Option<String>,
        restricted: bool,
    ) -> AuditRecord {
        self.decision = if restricted {
            "allowed"
        } else {
            "unrestricted"
        };
        self.signed = Some(signed);
        self.kms_request_id = kms_request_id;
        self
    }

    /// Refused by the policy.
    pub fn refused(mut self, denial: &Denial) -> AuditRecord {
        self.decision = "refused";
        self.rule = Some(denial.rule);
        self.reason = Some(denial.reason.clone());
        self
    }

    /// The record as one line of JSON, with its newline.
    pub fn line(&self) -> String {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `unix_seconds` as an RFC 3339 UTC time (`2026-12-07T20:10:00Z`), by the civil-from-days
/// algorithm (Howard Hinnant's), so that no date library is needed for one format.
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds = unix_seconds % 86_400;
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_eth_signer::{Eip1559Tx, U256};

    #[test]
    fn times_are_rfc_3339_in_utc() {
        // Values checked with `date -u -d @N +%Y-%m-%dT%H:%M:%SZ`.
        for (seconds, expected) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_796_673_600, "2026-12-07T20:00:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(seconds), expected);
        }
    }

    #[test]
    fn the_line_keeps_its_fields_and_their_order() {
        let tx = Transaction::Eip1559(Eip1559Tx {
            chain_id: 1,
            nonce: 7,
            max_fee_per_gas: U256::from(30u8),
            gas_limit: 21_000,
            to: Some(Address([0x22; 20])),
            value: U256::from(5u8),
            ..Default::default()
        });
        let refused = AuditRecord::new(
            "serve",
            "eth_sendTransaction",
            Address([0x11; 20]),
            0,
            Some(Value::from(4)),
        )
        .transaction(&tx)
        .refused(&Denial {
            rule: "recipients",
            reason: "not listed".to_owned(),
        });
        let line = refused.line();
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&line)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "audit",
                "version",
                "time",
                "source",
                "method",
                "account",
                "chain_id",
                "decision",
                "rule",
                "reason",
                "type",
                "to",
                "value",
                "nonce",
                "gas_limit",
                "max_fee_per_gas",
                "signed",
                "kms_request_id",
                "request_id"
            ]
        );
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        assert!(line.contains("\"decision\":\"refused\",\"rule\":\"recipients\""));
        assert!(line.contains("\"type\":2,"), "{line}");
        let signed = AuditRecord::new("lambda", "sign", Address([0x11; 20]), 0, None).signed(
            "0xab".to_owned(),
            Some("r-1".to_owned()),
            false,
        );
        assert_eq!(signed.decision, "unrestricted");
    }
}
