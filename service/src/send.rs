//! `eth_sendTransaction`: a nonce reserved from the account's pipeline (`pipeline.rs`), the
//! signature, and the broadcast in nonce order, all in a task of its own, so that a request
//! cut off by its time limit never leaves a nonce reserved and unused, nor a signed
//! transaction half handed over. A broadcast whose outcome is not known is never signed
//! again: the client is told the hash, nonce and sender (`data`), so that a retry (with that
//! nonce) cannot pay twice, and the tracker watches it like any other.

use std::sync::{Arc, Mutex};

use kms_eth_core::txobject::{parse_tx_object, TxRequest};
use kms_eth_node::fill::fill_fees_and_gas;
use kms_eth_signer::{Address, SignedTransaction};
use serde_json::{json, Value};

use crate::audit;
use crate::book::Outcome;
use crate::error::{failure, RpcFailure, INTERNAL, SERVER_ERROR};
use crate::pipeline::{self, broadcast_one};
use crate::service::Service;
use crate::sign::sign_transaction;

/// How long a hole waits for the next request to take its nonce before it is filled with a
/// transfer to the account itself (which costs its fee).
pub const HOLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A transaction handed over for broadcast, of which the client must hear if nothing else.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub hash: String,
    pub nonce: u64,
    pub from: Address,
}

/// What a request handed over for broadcast, if anything: set before the hand-over, so that
/// a request cut off by its time limit can still name it. Shared with the request's task.
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<Mutex<Option<Broadcast>>>);

impl InFlight {
    fn set(&self, broadcast: Option<Broadcast>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = broadcast;
    }

    /// The error that tells the client its broadcast's outcome is not known (`why`), or
    /// `None` if nothing was handed over.
    pub fn outcome_unknown(&self, why: &str) -> Option<RpcFailure> {
        let broadcast = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some(unknown(&broadcast, why))
    }
}

/// The outcome of `broadcast` is not known: the error names it, with the way to retry
/// that cannot pay twice.
fn unknown(broadcast: &Broadcast, why: &str) -> RpcFailure {
    let Broadcast { hash, nonce, from } = broadcast;
    RpcFailure::new(
        SERVER_ERROR,
        format!(
            "the outcome of transaction {hash} (nonce {nonce} from {from}) is not known: {why}. \
             It was handed to the node, or is waiting for its turn, and may be mined: look it \
             up (eth_getTransactionByHash, or kmseth_txStatus) before sending again, or send \
             again with \"nonce\": \"{nonce:#x}\", which can replace it but never be mined \
             beside it"
        ),
    )
    .with_data(json!({
        "outcome": "unknown",
        "hash": hash,
        "nonce": nonce,
        "from": from.to_string(),
    }))
}

/// Signs and broadcasts `request` (already judged by the policy and charged) in a task of
/// its own, and answers the hash.
pub async fn send_transaction(
    service: &Arc<Service>,
    request: TxRequest,
    in_flight: &InFlight,
) -> Result<Value, RpcFailure> {
    let task = tokio::spawn(audit::carried(send_in_task(
        service.clone(),
        request,
        in_flight.clone(),
    )));
    task.await.unwrap_or_else(|err| {
        Err(RpcFailure::new(
            INTERNAL,
            format!("the send stopped unexpectedly: {err}"),
        ))
    })
}

async fn send_in_task(
    service: Arc<Service>,
    mut request: TxRequest,
    in_flight: InFlight,
) -> Result<Value, RpcFailure> {
    let address = request.from;
    let reservation = pipeline::reserve(&service, address, request.inputs.nonce).await?;
    let nonce = reservation.nonce;
    request.inputs.nonce = Some(nonce);
    let account = service.account(&address)?;
    let signed = match sign_transaction(&service, account, &request).await {
        Ok(signed) => signed,
        Err(failure) => {
            give_back(&service, address, nonce, reservation.replacement).await;
            return Err(failure);
        }
    };
    let broadcast = Broadcast {
        hash: format!("0x{}", hex::encode(signed.hash)),
        nonce,
        from: address,
    };
    in_flight.set(Some(broadcast.clone()));
    let outcome = if reservation.replacement {
        broadcast_now(&service, address, &signed).await
    } else {
        pipeline::broadcast_in_order(&service, address, signed).await
    };
    if matches!(outcome, Outcome::Refused { .. }) {
        fill_later(&service, address, nonce);
    }
    answered(outcome, &broadcast, reservation.replacement).map(Value::from)
}

/// The answer to a request whose transaction's broadcast came to `outcome`: its hash, or why
/// not. `replacement`: it replaced a transaction the account had sent, whose nonce it did
/// not reserve.
fn answered(
    outcome: Outcome,
    broadcast: &Broadcast,
    replacement: bool,
) -> Result<String, RpcFailure> {
    let refused = |message: &str, node: &Value| {
        pipeline::refused(
            &broadcast.hash,
            broadcast.nonce,
            broadcast.from,
            message,
            node,
        )
    };
    match outcome {
        Outcome::Sent => Ok(broadcast.hash.clone()),
        Outcome::Unknown(why) => Err(unknown(broadcast, &why)),
        // Never signed again on the node's word: it may have the transaction after all.
        Outcome::InUse(message) if !replacement => Err(unknown(
            broadcast,
            &format!(
                "the node answered \"{message}\" and does not show the transaction: another \
                 sender may have used the nonce, or the node lags; the next request takes a \
                 new nonce"
            ),
        )),
        Outcome::InUse(message) => Err(refused(&message, &Value::Null)),
        Outcome::Lost(why) => Err(RpcFailure::new(
            SERVER_ERROR,
            format!(
                "transaction {} (nonce {} from {}) was not broadcast: {why}. Nothing was sent; \
                 send it again",
                broadcast.hash, broadcast.nonce, broadcast.from
            ),
        )),
        Outcome::Refused { message, node } => Err(refused(&message, &node)),
    }
}

/// A reserved nonce left unused (a replacement reserved nothing); a hole left behind is
/// filled unless a request takes it first.
async fn give_back(service: &Arc<Service>, address: Address, nonce: u64, replacement: bool) {
    if !replacement && pipeline::give_back(service, address, nonce).await {
        tracing::warn!(account = %address, nonce, "a nonce was left unused below later ones: it is filled unless a request takes it");
        fill_later(service, address, nonce);
    }
}

/// Fills the hole at `nonce`, if it is one, after [`HOLE_GRACE`], unless a request took it.
fn fill_later(service: &Arc<Service>, address: Address, nonce: u64) {
    let service = service.clone();
    tokio::spawn(async move {
        tokio::time::sleep(HOLE_GRACE).await;
        fill_hole(&service, address, nonce).await;
    });
}

/// Fills the hole at `nonce` with a transfer of nothing to the account itself, judged by
/// the policy like any request. If it cannot (the policy, KMS or the node refuses), the
/// nonce is given back and the failure reported; the tracker tries again.
pub async fn fill_hole(service: &Arc<Service>, address: Address, nonce: u64) {
    let Ok(account) = service.account(&address) else {
        return;
    };
    match pipeline::reserve_hole(service, address, nonce).await {
        Ok(true) => {}
        Ok(false) => return, // taken by a request meanwhile
        Err(err) => {
            tracing::warn!(account = %address, nonce, error = %format!("{err:#}"), "a hole could not be reserved for its fill; the tracker tries again");
            return;
        }
    }
    let result = self_transfer(service, address, nonce, None).await;
    account.pipeline.filled(nonce, result.is_ok());
    match result {
        Ok(hash) => {
            service.metrics.gap_filled();
            tracing::info!(account = %address, nonce, hash, "a nonce left unused was filled with a transfer to the account itself");
        }
        Err(failure) => {
            service.metrics.gap_unfilled();
            tracing::error!(account = %address, nonce, error = %failure.message, "a nonce left unused could not be filled: later transactions wait behind it; the tracker tries again");
        }
    }
}

/// Broadcasts a transaction that replaces one the account already sent (its nonce is spent
/// either way), outside the pipeline's order, and tracks it as a new version.
pub async fn broadcast_now(
    service: &Arc<Service>,
    address: Address,
    signed: &SignedTransaction,
) -> Outcome {
    let answer = broadcast_one(service, signed.raw_hex()).await;
    let outcome = pipeline::judge(service, signed, answer).await;
    if matches!(outcome, Outcome::Sent | Outcome::Unknown(_)) {
        service.tracker.track(address, signed).await;
    }
    outcome
}

/// What a cancel replaces: the fees it pays, and the costliest version before it (the
/// 24-hour ledger counts the cancel only above it).
#[derive(Debug, Clone, Copy)]
pub struct Replaces {
    pub max_fee: kms_eth_signer::U256,
    pub priority: kms_eth_signer::U256,
    pub previous_worst: kms_eth_signer::U256,
}

/// Signs and sends a zero-value transfer from `address` to itself with `nonce`, already
/// reserved or spent (`replacement`): it fills a hole, or cancels the transaction with that
/// nonce. Judged and charged by the policy like any request (a cancel only above the
/// version it replaces, whose fees it outbids), its fees otherwise asked of the node.
/// Answers the hash.
pub async fn self_transfer(
    service: &Arc<Service>,
    address: Address,
    nonce: u64,
    replaces: Option<Replaces>,
) -> Result<String, RpcFailure> {
    let replacement = replaces.is_some();
    let result = self_transfer_signed(service, address, nonce, replaces).await;
    let signed = match result {
        Ok(signed) => signed,
        Err(failure) => {
            // A hole stays a hole: the tracker tries again at its next look, not at once
            // (a KMS or policy that refused would refuse again).
            if !replacement {
                pipeline::give_back(service, address, nonce).await;
            }
            return Err(failure);
        }
    };
    let broadcast = Broadcast {
        hash: format!("0x{}", hex::encode(signed.hash)),
        nonce,
        from: address,
    };
    let outcome = if replacement {
        broadcast_now(service, address, &signed).await
    } else {
        pipeline::broadcast_in_order(service, address, signed).await
    };
    answered(outcome, &broadcast, replacement)
}

async fn self_transfer_signed(
    service: &Arc<Service>,
    address: Address,
    nonce: u64,
    replaces: Option<Replaces>,
) -> Result<SignedTransaction, RpcFailure> {
    let mut tx = json!({
        "from": address.to_string(),
        "to": address.to_string(),
        "value": "0x0",
        "gas": "0x5208",
        "nonce": format!("{nonce:#x}"),
        "chainId": format!("{:#x}", service.chain_id),
    });
    if let Some(replaces) = replaces {
        tx["maxFeePerGas"] = json!(format!("{:#x}", replaces.max_fee));
        tx["maxPriorityFeePerGas"] = json!(format!("{:#x}", replaces.priority));
    }
    let mut request = parse_tx_object(&tx).map_err(failure)?;
    fill_fees_and_gas(&service.node, address, &mut request.inputs, service.fee_cap)
        .await
        .map_err(failure)?;
    match replaces {
        Some(replaces) => {
            let tx = request.inputs.complete().map_err(|err| {
                RpcFailure::new(
                    crate::error::INVALID_PARAMS,
                    err.message(&kms_eth_core::input::JsonRpc),
                )
            })?;
            service
                .check_replacement(address, &tx, replaces.previous_worst)
                .await?;
            service
                .tracker
                .charged(
                    address,
                    nonce,
                    kms_eth_core::policy::transaction::worst_case_cost(&tx),
                )
                .await;
        }
        None => service.check_policy(address, &request.inputs, true).await?,
    }
    let account = service.account(&address)?;
    sign_transaction(service, account, &request).await
}
