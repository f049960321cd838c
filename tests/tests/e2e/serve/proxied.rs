//! A funded KMS account served without a policy, with the node behind the lying-node proxy
//! and KMS behind the counting fault proxy: what the tests of broadcasts, routes and
//! requests start from, to make the node lie and to count what reached the node and KMS.

use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::node_proxy::NodeProxy;
use kms_eth_e2e::served::Served;
use kms_eth_e2e::{funded_account, localstack_endpoint, TestKey};
use kms_eth_harness::anvil::Anvil;
use serde_json::{json, Value};

/// A served account between the two proxies.
pub struct Proxied {
    pub key: TestKey,
    pub address: String,
    /// The real node, to read the chain back from.
    pub node: Anvil,
    pub node_proxy: NodeProxy,
    pub kms_proxy: FaultProxy,
    pub served: Served,
}

impl Proxied {
    /// `kms-eth serve --unrestricted` with `extra` flags, in front of the node proxy.
    pub async fn start(extra: &[&str]) -> Proxied {
        let (key, address, node) = funded_account().await;
        let node_proxy = NodeProxy::start(node.url()).await.unwrap();
        let kms_proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
        let served = Served::start(&Self::args(&key, &node_proxy, &kms_proxy, extra));
        Proxied {
            key,
            address,
            node,
            node_proxy,
            kms_proxy,
            served,
        }
    }

    /// Stops the service and starts it again with `extra` flags.
    pub fn restart(&mut self, extra: &[&str]) {
        let args = Self::args(&self.key, &self.node_proxy, &self.kms_proxy, extra);
        self.served.stop_in_place();
        self.served = Served::start(&args);
    }

    fn args<'a>(
        key: &'a TestKey,
        node_proxy: &'a NodeProxy,
        kms_proxy: &'a FaultProxy,
        extra: &[&'a str],
    ) -> Vec<&'a str> {
        let mut args = vec![
            "--rpc-url",
            node_proxy.url(),
            "--key-id",
            &key.id,
            "--unrestricted",
            "--endpoint-url",
            kms_proxy.endpoint(),
        ];
        args.extend(extra);
        args
    }

    /// How many KMS `Sign` calls the service made.
    pub fn signs(&self) -> u64 {
        self.kms_proxy.counts("Sign").attempts()
    }

    /// The reply to `method` with `params`, under the request id `id`.
    pub fn call(&self, id: Value, method: &str, params: Value) -> Value {
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        kms_eth_harness::jsonrpc::exchange(&self.served.url, &request).unwrap()
    }
}
