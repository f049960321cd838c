//! A fault-injecting HTTP proxy for the end-to-end tests: it sits on loopback between an AWS
//! client and LocalStack, forwards requests, and answers a chosen share of KMS calls with
//! `ThrottlingException` or drops their connection, so that retries and error paths are
//! exercised against the real service rather than a fake.
//!
//! It speaks just enough HTTP/1.1 for the AWS SDK: keep-alive connections, requests and
//! responses framed by `Content-Length` or chunked encoding. Only KMS calls (those with an
//! `X-Amz-Target: TrentService.<Operation>` header) are subject to faults; every call is
//! counted by operation, so tests can assert how many calls a client made.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
}

impl Counts {
    /// Every call the client made, whatever happened to it.
    pub fn attempts(&self) -> u64 {
        self.forwarded + self.throttled + self.dropped
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
}

enum Fate {
    Forward,
    Throttle,
    Drop,
}

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
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
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

    /// What happened so far to the calls of `operation` (for example `"Sign"`).
    pub fn counts(&self, operation: &str) -> Counts {
        self.all_counts()
            .get(operation)
            .copied()
            .unwrap_or_default()
    }

    /// What happened so far, by operation (KMS operation names; `other` for the rest).
    pub fn all_counts(&self) -> BTreeMap<String, Counts> {
        self.state
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((client, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            // A connection ends with an I/O error when either side hangs up mid-message;
            // for a proxy that is an ordinary end, and the client sees it as such.
            let _ = serve(client, &state).await;
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
        let fate = match &operation {
            Some(_) => state.fate(),
            None => Fate::Forward,
        };
        let label = operation.unwrap_or_else(|| "other".to_owned());
        match fate {
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
                client_write.write_all(&response.raw).await?;
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
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(counts.entry(operation.to_owned()).or_default());
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
