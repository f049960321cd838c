//! A funded KMS account served under a policy, with KMS behind a counting proxy: what the
//! policy tests of `effects` and `token_effects` start from, and how they read a refusal.

use std::path::PathBuf;

use kms_eth_e2e::chain::{balance, nonce};
use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::served::Served;
use kms_eth_e2e::{funded_account, localstack_endpoint, TestKey};
use kms_eth_harness::anvil::Anvil;
use kms_eth_signer::U256;
use serde_json::{json, Value};

use super::write_temp;

/// A funded KMS account on its own anvil, served under a policy with KMS behind a counting
/// proxy.
pub struct Guarded {
    _key: TestKey,
    pub address: String,
    pub node: Anvil,
    proxy: FaultProxy,
    pub served: Served,
    /// The policy file (rewrite it and send SIGHUP to change the rules).
    pub policy: PathBuf,
}

impl Guarded {
    /// `rules` is the account block's body; the chain is pinned to the node's.
    pub async fn start(rules: &str) -> Guarded {
        Guarded::start_with(|_, _| rules.to_owned()).await
    }

    /// As [`Guarded::start`], with rules written once the account and its node exist (to
    /// name contracts deployed on it).
    pub async fn start_with(rules: impl FnOnce(&str, &Anvil) -> String) -> Guarded {
        let (key, address, node) = funded_account().await;
        let rules = rules(&address, &node);
        let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
        let policy = write_temp(
            &format!("effects-{}.toml", &address[2..10]),
            &format!(
                "[[account]]\naddress = \"{address}\"\nchain_ids = [{}]\n{rules}",
                node.chain_id()
            ),
        );
        let state = kms_eth_e2e::scratch_dir().join(format!("effects-{}", &address[2..10]));
        let served = Served::start(&[
            "--rpc-url",
            node.url(),
            "--key-id",
            &key.id,
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--endpoint-url",
            proxy.endpoint(),
        ]);
        Guarded {
            _key: key,
            address,
            node,
            proxy,
            served,
            policy,
        }
    }

    pub fn send(&self, tx: Value) -> Value {
        let mut tx = tx;
        tx["from"] = json!(self.address);
        self.served.call("eth_sendTransaction", json!([tx]))
    }

    pub fn signs(&self) -> u64 {
        self.proxy.counts("Sign").attempts()
    }

    pub fn balance(&self, address: &str) -> U256 {
        balance(self.node.url(), address)
    }

    pub fn nonce(&self) -> u64 {
        nonce(self.node.url(), &self.address)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.policy);
    }
}

/// The rule a refusal names (and that it is the policy's error, -32003).
pub fn denied_by(reply: &Value) -> String {
    assert_eq!(reply["error"]["code"], -32003, "{reply}");
    reply["error"]["data"]["rule"]
        .as_str()
        .unwrap_or_else(|| panic!("no data.rule: {reply}"))
        .to_owned()
}

pub fn ether(text: &str) -> U256 {
    kms_eth_signer::parse_amount(&format!("{text}ether")).unwrap()
}

pub fn quantity(amount: U256) -> String {
    format!("{amount:#x}")
}
