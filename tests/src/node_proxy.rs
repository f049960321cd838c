//! A lying Ethereum node for the end-to-end tests: a JSON-RPC proxy on loopback in front of
//! a real anvil that tells one chosen lie per method (a fee suggestion, a chain id, a
//! receipt, a pending count; a refusal or silence after acting on a call), fails chosen
//! methods, and counts every call. With it, each of `send`'s
//! refusals is proved against a real node rather than a fake one, and "nothing was sent"
//! is read back from the proxy's count of `eth_sendRawTransaction` and from anvil itself.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::fault_proxy::{accept_loop, read_message};

/// How long a hanging answer is held back: longer than any client here waits.
const HANG: std::time::Duration = std::time::Duration::from_secs(120);

/// What the proxy does with the calls of one method instead of passing them on faithfully.
#[derive(Debug, Clone)]
pub enum Lie {
    /// Answer with this result, without asking the node.
    Answer(Value),
    /// Answer with `.1` the calls whose params include the string `.0` (a block tag such as
    /// `pending`); forward the others.
    AnswerWhen(&'static str, Value),
    /// Ask the node, then replace the field `.0` of its result object with `.1`.
    Rewrite(&'static str, Value),
    /// Close the connection without an answer, for the next `.0` calls; then forward.
    Drop(u32),
    /// Forward the call, then close the connection without passing the answer on: the node
    /// acted on it, and the client cannot know.
    Swallow,
    /// Forward the call, then answer this JSON-RPC error (code, message) instead of the
    /// node's reply: the node acted on it, and the client hears that it refused.
    ActThenRefuse(i64, &'static str),
    /// Forward the call, then keep the connection open without answering (for up to two
    /// minutes): the node acted on it, and the client waits until it gives up.
    ActThenHang,
    /// Keep the connection open without answering and without forwarding the call.
    Hang,
    /// Answer this JSON-RPC error (code, message) without asking the node.
    Refuse(i64, &'static str),
    /// Forward the call after this long: a slow node.
    Delay(std::time::Duration),
}

/// A running proxy; dropping it stops accepting connections.
#[derive(Debug)]
pub struct NodeProxy {
    url: String,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    upstream: String,
    lies: Mutex<BTreeMap<String, Lie>>,
    calls: Mutex<BTreeMap<String, u64>>,
}

impl NodeProxy {
    /// Starts a faithful proxy in front of the node at `upstream` (an http:// URL).
    pub async fn start(upstream: &str) -> io::Result<NodeProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            lies: Mutex::default(),
            calls: Mutex::default(),
        });
        let accept = tokio::spawn(accept_loop(
            listener,
            state.clone(),
            |client, state| async move { serve(client, &state).await },
        ));
        Ok(NodeProxy { url, state, accept })
    }

    /// The URL to give a client instead of the node's.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on, tells `lie` about `method`.
    pub fn lie(&self, method: &str, lie: Lie) -> &NodeProxy {
        lock(&self.state.lies).insert(method.to_owned(), lie);
        self
    }

    /// From now on, tells the truth about `method`.
    pub fn truth(&self, method: &str) -> &NodeProxy {
        lock(&self.state.lies).remove(method);
        self
    }

    /// How many calls of `method` the client made.
    pub fn calls(&self, method: &str) -> u64 {
        lock(&self.state.calls).get(method).copied().unwrap_or(0)
    }

    /// How many calls the client made, all methods together.
    pub fn all_calls(&self) -> u64 {
        lock(&self.state.calls).values().sum()
    }
}

impl Drop for NodeProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves one client connection, one JSON-RPC request at a time.
async fn serve(client: TcpStream, state: &State) -> io::Result<()> {
    let (read, mut write) = client.into_split();
    let mut read = BufReader::new(read);
    while let Some(request) = read_message(&mut read, false).await? {
        let call: Value = serde_json::from_slice(request.body()).map_err(io::Error::other)?;
        let method = call["method"].as_str().unwrap_or("batch").to_owned();
        *lock(&state.calls).entry(method.clone()).or_default() += 1;
        let lie = {
            let mut lies = lock(&state.lies);
            let lie = lies.get(&method).cloned();
            if let Some(Lie::Drop(left)) = lies.get_mut(&method) {
                *left = left.saturating_sub(1);
            }
            lie
        };
        let reply = match lie {
            Some(Lie::Drop(left)) if left > 0 => return Ok(()),
            Some(Lie::Answer(result)) => {
                json!({ "jsonrpc": "2.0", "id": call["id"], "result": result })
            }
            Some(Lie::AnswerWhen(param, result))
                if call["params"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|v| v == param)) =>
            {
                json!({ "jsonrpc": "2.0", "id": call["id"], "result": result })
            }
            Some(Lie::Rewrite(field, value)) => {
                let mut reply = forward(state, call).await?;
                if reply["result"].is_object() {
                    reply["result"][field] = value;
                }
                reply
            }
            Some(Lie::Swallow) => {
                forward(state, call).await?;
                return Ok(());
            }
            Some(Lie::ActThenRefuse(code, message)) => {
                forward(state, call.clone()).await?;
                json!({ "jsonrpc": "2.0", "id": call["id"], "error": { "code": code, "message": message } })
            }
            Some(Lie::ActThenHang) => {
                forward(state, call).await?;
                tokio::time::sleep(HANG).await;
                return Ok(());
            }
            Some(Lie::Hang) => {
                tokio::time::sleep(HANG).await;
                return Ok(());
            }
            Some(Lie::Refuse(code, message)) => {
                json!({ "jsonrpc": "2.0", "id": call["id"], "error": { "code": code, "message": message } })
            }
            Some(Lie::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                forward(state, call).await?
            }
            Some(Lie::Drop(_) | Lie::AnswerWhen(..)) | None => forward(state, call).await?,
        };
        let body = reply.to_string();
        write
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
    }
    Ok(())
}

/// The node's own reply to `call`, errors included.
async fn forward(state: &State, call: Value) -> io::Result<Value> {
    let upstream = state.upstream.clone();
    tokio::task::spawn_blocking(move || kms_eth_harness::jsonrpc::exchange(&upstream, &call))
        .await
        .map_err(io::Error::other)?
        .map_err(|err| io::Error::other(format!("{err:#}")))
}
