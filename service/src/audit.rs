//! The service's audit log: one JSON line on stderr per signature, saying what CloudTrail
//! cannot (the method, the account, what was signed, the policy's decision) with the KMS
//! request id that finds the same call in CloudTrail. Log shippers and the tests read these
//! lines as they come, so their shape is part of the service's interface.

use std::io::Write as _;

use kms_eth_signer::Address;
use serde_json::{json, Value};

/// One signature, as its audit line tells it.
#[derive(Debug)]
pub struct Signature<'a> {
    /// The JSON-RPC method that asked for it.
    pub method: &'a str,
    pub account: Address,
    pub chain_id: Option<u64>,
    /// A transaction's hash, or a message's or typed data's digest.
    pub signed: &'a str,
    pub kms_request_id: Option<&'a str>,
    /// Whether a policy allowed it (false: the service runs without one).
    pub restricted: bool,
    /// An EIP-7702 transaction's authorizations (authority, delegate, chain id, nonce): what
    /// its hash alone does not say, and what decides whose code it changes.
    pub authorizations: Option<Value>,
}

impl Signature<'_> {
    /// The audit line, as a JSON object.
    fn line(self) -> Value {
        let mut line = json!({
            "audit": "signature",
            "method": self.method,
            "account": self.account.to_string(),
            "chain_id": self.chain_id,
            "signed": self.signed,
            "kms_request_id": self.kms_request_id,
            "policy": if self.restricted { "allowed" } else { "unrestricted" },
        });
        if let Some(authorizations) = self.authorizations {
            line["authorizations"] = authorizations;
        }
        line
    }

    /// Writes the audit line to stderr.
    ///
    /// The line is formatted first and written with one `write` call: stderr is unbuffered,
    /// and `eprintln!` of a JSON value makes a system call per token (dozens a line, on the
    /// path of every signature), which a pipe's reader could also see as a line in pieces. A
    /// line up to `PIPE_BUF` (4 KiB on Linux; these are about 300 bytes) reaches a pipe whole.
    pub fn write(self) {
        let mut text = self.line().to_string();
        text.push('\n');
        // As `eprintln!` does, a stderr that cannot be written is not the request's failure.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::Signature;
    use kms_eth_signer::Address;
    use serde_json::json;

    #[test]
    fn the_line_keeps_its_fields_and_their_order() {
        let signature = |authorizations| Signature {
            method: "eth_sendTransaction",
            account: Address([0x11; 20]),
            chain_id: Some(31337),
            signed: "0xabcd",
            kms_request_id: None,
            restricted: true,
            authorizations,
        };
        let account = Address([0x11; 20]).to_string();
        assert_eq!(
            signature(None).line().to_string(),
            format!(
                "{{\"audit\":\"signature\",\"method\":\"eth_sendTransaction\",\"account\":\
                 \"{account}\",\"chain_id\":31337,\"signed\":\"0xabcd\",\"kms_request_id\":null,\
                 \"policy\":\"allowed\"}}"
            )
        );
        let with = signature(Some(json!([{ "nonce": 1 }]))).line().to_string();
        assert!(
            with.ends_with(",\"policy\":\"allowed\",\"authorizations\":[{\"nonce\":1}]}"),
            "{with}"
        );
    }
}
