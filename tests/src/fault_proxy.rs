//! A fault-injecting HTTP proxy for the end-to-end tests: it sits on loopback between an AWS
//! client and LocalStack, forwards requests, and answers a chosen share of KMS calls with
//! `ThrottlingException` or drops their connection, so that retries and error paths are
//! exercised against the real service rather than a fake.
//!
//! It speaks just enough HTTP/1.1 for the AWS SDK: keep-alive connections, requests and
//! responses framed by `Content-Length` or chunked encoding. Only KMS calls (those with an
//! `X-Amz-Target: TrentService.<Operation>` header) are subject to faults; every call is
//! counted by operation (KMS's, or CloudFormation's `Action`), so tests can assert how many
//! calls a client made.
//!
//! Besides the random faults it has deliberate ones, each for a path that LocalStack never
//! takes by itself: it stalls the next KMS `Sign` calls (the connection stays open and
//! silent, as a hung load balancer leaves it), replaces the signature in `Sign` answers with
//! a well-formed one that does not verify, shows a chosen stack status in CloudFormation's
//! `DescribeStacks` answers for a while (LocalStack finishes a create in half a second, so an
//! operation still running is otherwise never seen), and marks a resource's change in
//! `DescribeChangeSet` answers as a replacement (LocalStack never replaces a KMS key: its
//! `AWS::KMS::Key` schema has no create-only properties, where AWS replaces the key for a
//! new key spec or usage).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy did with the calls of one operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Calls passed on to LocalStack and answered by it.
    pub forwarded: u64,
    /// Calls answered with `ThrottlingException` by the proxy.
    pub throttled: u64,
    /// Calls whose connection the proxy closed without an answer.
    pub dropped: u64,
    /// Calls the proxy held without ever answering (a stalled connection).
    pub stalled: u64,
    /// Answers the proxy changed before passing them on (a tampered signature, a held
    /// stack status).
    pub rewritten: u64,
}

impl Counts {
    /// Every call the client made, whatever happened to it.
    pub fn attempts(&self) -> u64 {
        self.forwarded + self.throttled + self.dropped + self.stalled
    }
}

/// A running proxy. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    /// The share of KMS calls to throttle, in parts per million.
    throttle_ppm: AtomicU32,
    /// The share of KMS calls whose connection is dropped, in parts per million.
    drop_ppm: AtomicU32,
    /// A xorshift generator: faults are pseudo-random but the same for the same call order.
    rng: AtomicU64,
    counts: Mutex<BTreeMap<String, Counts>>,
    /// How many of the next KMS `Sign` calls to stall.
    stall_signs: AtomicU32,
    /// Whether `Sign` answers get another signature.
    tamper_signatures: AtomicBool,
    /// A stack (by name), the status to show for it, and until when.
    held_status: Mutex<Option<(String, String, Instant)>>,
    /// The logical id of a resource whose change is shown as a replacement.
    replaced: Mutex<Option<String>>,
    /// A public key (base64 DER, as KMS sends it) answered by every `GetPublicKey` instead of
    /// the key's.
    public_key: Mutex<Option<String>>,
    /// A Region whose requests (by their SigV4 credential scope) are dropped unanswered, as
    /// when that Region's endpoint is down.
    refused_region: Mutex<Option<String>>,
}

enum Fate {
    Forward,
    Throttle,
    Drop,
    Stall,
}

/// How long a stalled call is held: far longer than any attempt timeout a client sets, so
/// the client always gives up first.
const STALL: Duration = Duration::from_secs(300);

/// The DER signature `(r, s) = (1, 1)`, base64 as KMS sends it: well-formed, with valid
/// scalars and low s, so it passes every check before verification, and no key's signature
/// of any digest.
const WRONG_SIGNATURE_BASE64: &str = "MAYCAQECAQE=";

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (an `http://` endpoint
    /// such as `http://127.0.0.1:4566`), injecting no faults until told to.
    pub async fn start(upstream: &str) -> io::Result<Self> {
        let authority = upstream
            .strip_prefix("http://")
            .ok_or_else(|| io::Error::other(format!("{upstream} is not an http:// endpoint")))?
            .trim_end_matches('/');
        let upstream = tokio::net::lookup_host(authority)
            .await?
            .next()
            .ok_or_else(|| io::Error::other(format!("{authority} does not resolve")))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            upstream,
            throttle_ppm: AtomicU32::new(0),
            drop_ppm: AtomicU32::new(0),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            counts: Mutex::new(BTreeMap::new()),
            stall_signs: AtomicU32::new(0),
            tamper_signatures: AtomicBool::new(false),
            held_status: Mutex::new(None),
            replaced: Mutex::new(None),
            public_key: Mutex::new(None),
            refused_region: Mutex::new(None),
        });
        let accept = tokio::spawn(accept_loop(
            listener,
            state.clone(),
            |client, state| async move { serve(client, &state).await },
        ));
        Ok(FaultProxy {
            endpoint,
            state,
            accept,
        })
    }

    /// The proxy's endpoint URL, to give a client instead of LocalStack's.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// From now on, throttle the share `throttle` (0.0 to 1.0) of KMS calls and drop the
    /// connection of the share `drop` of the others.
    pub fn set_faults(&self, throttle: f64, drop: f64) {
        let ppm = |share: f64| (share.clamp(0.0, 1.0) * 1_000_000.0).round() as u32;
        self.state
            .throttle_ppm
            .store(ppm(throttle), Ordering::SeqCst);
        self.state.drop_ppm.store(ppm(drop), Ordering::SeqCst);
    }

    /// Holds the next `count` KMS `Sign` calls without answering, keeping their connections
    /// open: the client sees a stalled connection, not a refusal.
    pub fn stall_next_signs(&self, count: u32) {
        self.state.stall_signs.store(count, Ordering::SeqCst);
    }

    /// From now on (while `on`), every `Sign` answer carries a well-formed signature that is
    /// not the key's: what a tampered or corrupted answer would look like to the client.
    pub fn tamper_signatures(&self, on: bool) {
        self.state.tamper_signatures.store(on, Ordering::SeqCst);
    }

    /// For `duration` from now, `DescribeStacks` answers show stack `stack` in `status`
    /// (say `CREATE_IN_PROGRESS`) and without its parameters, whatever its real status: as
    /// LocalStack shows a stack while it creates it.
    pub fn hold_stack_status(&self, stack: &str, status: &str, duration: Duration) {
        *lock(&self.state.held_status) = Some((
            stack.to_owned(),
            status.to_owned(),
            Instant::now() + duration,
        ));
    }

    /// From now on, `DescribeChangeSet` answers show the change of resource `logical_id` as
    /// a replacement (`Replacement: True`), as AWS does for a change it can only make by
    /// replacing the resource.
    pub fn show_replacement_of(&self, logical_id: &str) {
        *lock(&self.state.replaced) = Some(logical_id.to_owned());
    }

    /// Answers every `GetPublicKey` with `spki_base64` (another key's public key) instead
    /// of the key's, or passes them on again with `None`: what KMS holding other material
    /// than the client imported would look like.
    pub fn replace_public_keys(&self, spki_base64: Option<&str>) {
        *lock(&self.state.public_key) = spki_base64.map(str::to_owned);
    }

    /// Drops, unanswered, every request signed for `region` (or none again with `None`).
    pub fn refuse_region(&self, region: Option<&str>) {
        *lock(&self.state.refused_region) = region.map(str::to_owned);
    }

    /// What happened so far to the calls of `operation` (for example `"Sign"`).
    pub fn counts(&self, operation: &str) -> Counts {
        self.all_counts()
            .get(operation)
            .copied()
            .unwrap_or_default()
    }

    /// What happened so far, by operation (KMS operation names; `other` for the rest).
    pub fn all_counts(&self) -> BTreeMap<String, Counts> {
        lock(&self.state.counts).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts connections until the task is aborted, each served by `serve` on a task of
/// its own (both test proxies accept this way).
pub(crate) async fn accept_loop<S, F, Fut>(listener: TcpListener, state: Arc<S>, serve: F)
where
    S: Send + Sync + 'static,
    F: Fn(TcpStream, Arc<S>) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    while let Ok((client, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            // A connection ends with an I/O error when either side hangs up mid-message;
            // for a proxy that is an ordinary end, and the client sees it as such.
            let _ = serve(client, state).await;
        });
    }
}

/// Serves one client connection: each request is forwarded over this connection's own
/// upstream connection, or answered with a fault.
async fn serve(client: TcpStream, state: &State) -> io::Result<()> {
    let (client_read, mut client_write) = client.into_split();
    let mut client_read = BufReader::new(client_read);
    let mut upstream: Upstream = None;
    loop {
        let Some(request) = read_message(&mut client_read, false).await? else {
            return Ok(());
        };
        let operation = request
            .header("x-amz-target")
            .and_then(|target| target.strip_prefix("TrentService."))
            .map(str::to_owned);
        let fate = match operation.as_deref() {
            _ if state.refuses(&request) => Fate::Drop,
            Some("Sign") if state.take_stall() => Fate::Stall,
            Some(_) => state.fate(),
            None => Fate::Forward,
        };
        let label = operation
            .or_else(|| query_action(request.body()))
            .unwrap_or_else(|| "other".to_owned());
        match fate {
            Fate::Stall => {
                state.count(&label, |c| c.stalled += 1);
                // Neither an answer nor a close: the client's attempt timeout must end it.
                tokio::time::sleep(STALL).await;
                return Ok(());
            }
            Fate::Drop => {
                state.count(&label, |c| c.dropped += 1);
                // Returning closes both halves: the client sees the connection end with no
                // answer, as when a load balancer or the network drops it.
                return Ok(());
            }
            Fate::Throttle => {
                state.count(&label, |c| c.throttled += 1);
                client_write.write_all(&throttling_response()).await?;
            }
            Fate::Forward => {
                let response = forward(&mut upstream, state.upstream, &request.raw).await?;
                state.count(&label, |c| c.forwarded += 1);
                match state.rewrite(&label, &response)? {
                    Some(rewritten) => {
                        state.count(&label, |c| c.rewritten += 1);
                        client_write.write_all(&rewritten).await?;
                    }
                    None => client_write.write_all(&response.raw).await?,
                }
                if response.close_delimited {
                    return Ok(());
                }
            }
        }
    }
}

/// One upstream connection of a client connection: opened on first use, reopened when
/// LocalStack has closed it.
type Upstream = Option<(
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
)>;

/// Sends `request` upstream and reads the answer. LocalStack closes connections that have
/// been idle for a few seconds while the client keeps its side open for longer, so a
/// connection that turns out closed before any answer is reopened and the request sent
/// again, once: the request never reached LocalStack, and the client must not see a fault
/// that was not injected.
async fn forward(
    upstream: &mut Upstream,
    address: SocketAddr,
    request: &[u8],
) -> io::Result<Message> {
    for attempt in 0..2 {
        if upstream.is_none() {
            let stream = TcpStream::connect(address).await?;
            let (read, write) = stream.into_split();
            *upstream = Some((BufReader::new(read), write));
        }
        let Some((read, write)) = upstream.as_mut() else {
            continue;
        };
        let answered = match write.write_all(request).await {
            Ok(()) => read_message(read, true).await,
            Err(err) => Err(err),
        };
        match answered {
            Ok(Some(response)) => return Ok(response),
            Ok(None) | Err(_) if attempt == 0 => *upstream = None,
            Ok(None) => return Err(io::Error::other("LocalStack closed the connection")),
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::other("LocalStack closed the connection"))
}

impl State {
    /// Whether `request` is signed for the refused Region (its SigV4 credential scope,
    /// `Credential=KEY/DATE/REGION/SERVICE/aws4_request`).
    fn refuses(&self, request: &Message) -> bool {
        let Some(region) = lock(&self.refused_region).clone() else {
            return false;
        };
        request
            .header("authorization")
            .is_some_and(|auth| auth.contains(&format!("/{region}/")))
    }

    /// Whether to stall this `Sign` call (one of the next ones asked for).
    fn take_stall(&self) -> bool {
        self.stall_signs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    /// The answer to pass on instead of `response` to a call of `operation`, if one of the
    /// deliberate faults applies; `None` passes it on unchanged.
    fn rewrite(&self, operation: &str, response: &Message) -> io::Result<Option<Vec<u8>>> {
        match operation {
            "GetPublicKey" => {
                let Some(replacement) = lock(&self.public_key).clone() else {
                    return Ok(None);
                };
                let body = response.decoded_body()?;
                let mut answer: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|err| {
                        io::Error::other(format!("GetPublicKey answered no JSON: {err}"))
                    })?;
                if answer.get("PublicKey").is_none() {
                    return Ok(None);
                }
                answer["PublicKey"] = replacement.into();
                Ok(Some(response.with_body(answer.to_string().as_bytes())))
            }
            "Sign" if self.tamper_signatures.load(Ordering::SeqCst) => {
                let body = response.decoded_body()?;
                let mut answer: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|err| io::Error::other(format!("Sign answered no JSON: {err}")))?;
                // An error answer has no signature to tamper with.
                if answer.get("Signature").is_none() {
                    return Ok(None);
                }
                answer["Signature"] = WRONG_SIGNATURE_BASE64.into();
                Ok(Some(response.with_body(answer.to_string().as_bytes())))
            }
            "DescribeStacks" => {
                let held = lock(&self.held_status).clone();
                let Some((stack, status, until)) = held else {
                    return Ok(None);
                };
                let body = response.decoded_body()?;
                let text = String::from_utf8_lossy(&body);
                if Instant::now() >= until
                    || !text.contains(&format!("<StackName>{stack}</StackName>"))
                {
                    return Ok(None);
                }
                let (Some(start), Some(end)) =
                    (text.find("<StackStatus>"), text.find("</StackStatus>"))
                else {
                    return Ok(None);
                };
                let mut shown = format!("{}<StackStatus>{status}{}", &text[..start], &text[end..]);
                // As LocalStack shows a stack it is creating: without its parameters, which
                // it lists only once the create is complete.
                if let (Some(start), Some(end)) =
                    (shown.find("<Parameters>"), shown.find("</Parameters>"))
                {
                    shown.replace_range(start..end + "</Parameters>".len(), "");
                }
                Ok(Some(response.with_body(shown.as_bytes())))
            }
            "DescribeChangeSet" => {
                let Some(logical_id) = lock(&self.replaced).clone() else {
                    return Ok(None);
                };
                let body = response.decoded_body()?;
                let text = String::from_utf8_lossy(&body);
                let Some(shown) = shown_as_replacement(&text, &logical_id) else {
                    return Ok(None);
                };
                Ok(Some(response.with_body(shown.as_bytes())))
            }
            _ => Ok(None),
        }
    }

    fn fate(&self) -> Fate {
        let roll = (self.next_random() % 1_000_000) as u32;
        let throttle = self.throttle_ppm.load(Ordering::SeqCst);
        let drop = self.drop_ppm.load(Ordering::SeqCst);
        if roll < throttle {
            Fate::Throttle
        } else if roll < throttle.saturating_add(drop) {
            Fate::Drop
        } else {
            Fate::Forward
        }
    }

    fn next_random(&self) -> u64 {
        let step = |mut x: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let previous = self
            .rng
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| Some(step(x)))
            .unwrap_or_else(|x| x);
        step(previous)
    }

    fn count(&self, operation: &str, update: impl FnOnce(&mut Counts)) {
        update(lock(&self.counts).entry(operation.to_owned()).or_default());
    }
}

/// The answer KMS gives a throttled call: HTTP 400 with the AWS JSON error body.
fn throttling_response() -> Vec<u8> {
    let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded (injected by the kms-eth test proxy)"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         x-amzn-RequestId: kms-eth-fault-proxy\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One HTTP/1.1 message, exactly as it was received.
pub(crate) struct Message {
    pub(crate) raw: Vec<u8>,
    headers: Vec<(String, String)>,
    /// A response without length framing: it ends when the connection does.
    close_delimited: bool,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Where the head (start line and headers, with the blank line) ends.
    fn head_len(&self) -> usize {
        self.raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.raw.len(), |at| at + 4)
    }

    /// The body as sent, framing included.
    pub(crate) fn body(&self) -> &[u8] {
        &self.raw[self.head_len()..]
    }

    /// The body without chunked framing.
    fn decoded_body(&self) -> io::Result<Vec<u8>> {
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if !chunked {
            return Ok(self.body().to_vec());
        }
        let mut rest = self.body();
        let mut body = Vec::new();
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| io::Error::other("a chunk without its size line"))?;
            let size_text = String::from_utf8_lossy(&rest[..line_end]);
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                return Ok(body);
            }
            let chunk = rest
                .get(line_end + 2..line_end + 2 + size)
                .ok_or_else(|| io::Error::other("a chunk runs past the message"))?;
            body.extend_from_slice(chunk);
            rest = rest.get(line_end + 4 + size..).unwrap_or_default();
        }
    }

    /// The same message with `body` in place of its own, framed by `Content-Length`.
    fn with_body(&self, body: &[u8]) -> Vec<u8> {
        let head = String::from_utf8_lossy(&self.raw[..self.head_len()]);
        let mut out = String::new();
        for line in head.split("\r\n").filter(|line| !line.is_empty()) {
            let name = line.split(':').next().unwrap_or_default().trim();
            if !name.eq_ignore_ascii_case("content-length")
                && !name.eq_ignore_ascii_case("transfer-encoding")
            {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut raw = out.into_bytes();
        raw.extend_from_slice(body);
        raw
    }
}

/// A `DescribeChangeSet` answer with the change of `logical_id` marked as a replacement, or
/// `None` if the answer has no change of that resource.
fn shown_as_replacement(xml: &str, logical_id: &str) -> Option<String> {
    let named = xml.find(&format!(
        "<LogicalResourceId>{logical_id}</LogicalResourceId>"
    ))?;
    let start = xml[..named].rfind("<ResourceChange>")?;
    let end = named + xml[named..].find("</ResourceChange>")?;
    let change = &xml[start..end];
    let marked = match (change.find("<Replacement>"), change.find("</Replacement>")) {
        (Some(open), Some(close)) => {
            format!("{}<Replacement>True{}", &change[..open], &change[close..])
        }
        // An answer without the element (an Add, say) gets one.
        _ => format!("{change}<Replacement>True</Replacement>"),
    };
    Some(format!("{}{marked}{}", &xml[..start], &xml[end..]))
}

/// The `Action` of a query-protocol request body (CloudFormation's, STS's), if it has one.
fn query_action(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

/// Reads one request or response, or `None` if the peer closed the connection between
/// messages.
pub(crate) async fn read_message<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    is_response: bool,
) -> io::Result<Option<Message>> {
    let mut raw = Vec::new();
    let mut headers = Vec::new();
    let mut first_line = String::new();
    loop {
        let mut line = Vec::new();
        let read = reader.read_until(b'\n', &mut line).await?;
        if read == 0 {
            return if raw.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if text.is_empty() {
            break;
        }
        if first_line.is_empty() {
            first_line = text;
        } else if let Some((key, value)) = text.split_once(':') {
            headers.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut message = Message {
        raw,
        headers,
        close_delimited: false,
    };
    let status = first_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok());
    let bodiless = is_response && matches!(status, Some(100..=199 | 204 | 304));
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let length = message
        .header("content-length")
        .and_then(|len| len.parse::<usize>().ok());
    match (bodiless, chunked, length) {
        (true, _, _) => {}
        (false, true, _) => read_chunked(reader, &mut message.raw).await?,
        (false, false, Some(length)) => {
            let start = message.raw.len();
            message.raw.resize(start + length, 0);
            reader.read_exact(&mut message.raw[start..]).await?;
        }
        // A request without framing has no body; a response without it runs to the end of
        // the connection.
        (false, false, None) if is_response => {
            reader.read_to_end(&mut message.raw).await?;
            message.close_delimited = true;
        }
        (false, false, None) => {}
    }
    Ok(Some(message))
}

/// Copies a chunked body, chunk sizes, trailers and all, into `raw`.
async fn read_chunked<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    raw: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&line);
        let size_text = String::from_utf8_lossy(&line);
        let size_text = size_text.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, then the blank line that ends the message.
            loop {
                let mut trailer = Vec::new();
                if reader.read_until(b'\n', &mut trailer).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                raw.extend_from_slice(&trailer);
                if trailer == b"\r\n" || trailer == b"\n" {
                    return Ok(());
                }
            }
        }
        let start = raw.len();
        // The chunk and its closing CRLF.
        raw.resize(start + size + 2, 0);
        reader.read_exact(&mut raw[start..]).await?;
    }
}
