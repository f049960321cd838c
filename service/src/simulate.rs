//! The policy's `simulate` rule: a transaction is run on the node before it is signed, and
//! one that would revert is refused. `eth_simulateV1` where the node has it, else
//! `eth_call`. It trusts the node: a lying node can make a harmful transaction look fine,
//! so simulation only adds refusals to the other rules, never allowances.

use std::sync::atomic::{AtomicBool, Ordering};

use kms_eth_core::policy::Denial;
use kms_eth_node::{Nodes, RpcError};
use kms_eth_signer::{Address, Transaction};
use serde_json::{json, Value};

/// JSON-RPC's "method not found", and the codes nodes use for "not supported".
const NOT_THERE: [i64; 2] = [-32601, -32004];

fn refuse(reason: String) -> Denial {
    Denial {
        rule: "simulate",
        reason,
    }
}

/// The call `tx` makes from `from`, as `eth_call` takes it. Fees are left out: the
/// simulation asks whether the call reverts, not whether the fees would be paid.
fn call_object(from: Address, tx: &Transaction) -> Value {
    let mut call = json!({
        "from": from.to_string(),
        "value": format!("0x{:x}", tx.value()),
        "input": format!("0x{}", hex::encode(tx.input())),
    });
    if let Some(to) = tx.to() {
        call["to"] = json!(to.to_string());
    }
    call
}

/// How the node is asked. A node without `eth_simulateV1` says so once; after that only
/// `eth_call` is asked, so a simulated send costs one node call, not two.
#[derive(Debug, Default)]
pub struct Simulator {
    without_v1: AtomicBool,
}

impl Simulator {
    /// Runs `tx` on `node` as `from` would send it; refuses it if it reverts, or if the node
    /// cannot say (the rule then holds nothing up that it was asked to check).
    pub async fn simulate(
        &self,
        node: &Nodes,
        from: Address,
        tx: &Transaction,
    ) -> Result<(), Denial> {
        let call = call_object(from, tx);
        if !self.without_v1.load(Ordering::Relaxed) {
            let simulated = node
                .call(
                    "eth_simulateV1",
                    json!([{ "blockStateCalls": [{ "calls": [call.clone()] }] }, "latest"]),
                )
                .await;
            match simulated {
                Ok(answer) => return judge_simulation(&answer),
                Err(err)
                    if err
                        .downcast_ref::<RpcError>()
                        .and_then(|rpc| rpc.code)
                        .is_some_and(|code| NOT_THERE.contains(&code)) =>
                {
                    self.without_v1.store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(refuse(format!("the node could not simulate it: {err:#}"))),
            }
        }
        node.call("eth_call", json!([call, "latest"]))
            .await
            .map(|_| ())
            .map_err(|err| refuse(format!("the node's eth_call says it would fail: {err:#}")))
    }
}

/// An `eth_simulateV1` answer: the call's status.
fn judge_simulation(answer: &Value) -> Result<(), Denial> {
    let result = &answer[0]["calls"][0];
    match result["status"].as_str() {
        Some("0x1") => Ok(()),
        Some(_) => Err(refuse(format!(
            "the node's simulation says it would revert: {}",
            result["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        ))),
        None => Err(refuse(format!(
            "the node's eth_simulateV1 answer has no status: {answer}"
        ))),
    }
}
