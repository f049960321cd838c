//! HTTP/1.1 requests to the signing service written byte for byte, every header as given
//! (`Host` and `Origin` included, none added but `Content-Length` and `Connection: close`),
//! as a browser or an attacker writes them; the answer read back with its headers. For the
//! tests of what the service's edge refuses, where the client's own choices are the point.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// An HTTP answer: status, headers (names in lower case), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header named `name` (lower case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON; panics with the answer if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }

    /// The JSON-RPC error code of the body; panics with the answer if there is none.
    pub fn error_code(&self) -> i64 {
        self.json()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no JSON-RPC error: {self:?}"))
    }
}

/// Sends the request line and headers of `head` (each line without its CRLF) and `body` to
/// `address`, and reads the whole answer.
pub fn exchange(address: &str, head: &[&str], body: &[u8]) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut text = head.join("\r\n");
    text.push_str(&format!(
        "\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    stream.write_all(text.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    parse_answer(&answer)
}

/// Reads an answer's status line, headers and body.
pub fn parse_answer(answer: &[u8]) -> std::io::Result<Answer> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP answer: {text:?}"),
        )
    })?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// `GET /readyz` on `address` with `headers` until it answers `status`, for up to `within`;
/// returns the report. Panics with the last answer if it never does.
pub fn readyz_until(address: &str, headers: &[&str], status: u16, within: Duration) -> Value {
    let started = Instant::now();
    let host = format!("Host: {address}");
    let mut head = vec!["GET /readyz HTTP/1.1", host.as_str()];
    head.extend_from_slice(headers);
    loop {
        let answer = exchange(address, &head, b"");
        if let Ok(answer) = &answer {
            if answer.status == status {
                return answer.json();
            }
        }
        assert!(
            started.elapsed() < within,
            "/readyz did not answer {status} within {within:?}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
