//! A minimal blocking client of the Redis protocol (RESP2): commands written as arrays of
//! bulk strings, replies read back whole. Enough for the harness to see a server answer
//! and for tests to ping, authenticate and read a key, without a client crate's runtime.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The deepest array nesting read: replies here are flat, and a bound keeps a hostile or
/// broken server from recursing without end.
const MAX_DEPTH: usize = 8;
/// The largest bulk string or array accepted, so that a garbled length is an error and not
/// an allocation of gigabytes.
const MAX_LEN: usize = 64 * 1024 * 1024;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Simple(String),
    /// `-ERR ...`, `-NOAUTH ...`: the server refused the command.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$3 abc`, or `$-1` (`None`: no such key).
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`, or `*-1` (`None`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, when it is a simple or bulk string.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(text) => Some(text.clone()),
            Reply::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// One connection to a server on 127.0.0.1.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `127.0.0.1:port`; every read and write afterwards is bounded by `timeout`.
    pub fn connect(port: u16, timeout: Duration) -> Result<Self> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&address, timeout)
            .with_context(|| format!("connecting to the Redis server at {address}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            reader: BufReader::new(stream),
        })
    }

    /// Sends one command (`["SET", "k", "v"]`) and reads its reply. A refusal is
    /// `Ok(Reply::Error(..))`; only a broken connection or reply is an error.
    pub fn call(&mut self, args: &[&str]) -> Result<Reply> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        let name = args.first().copied().unwrap_or("(empty)");
        self.reader
            .get_mut()
            .write_all(&request)
            .with_context(|| format!("sending {name} to the Redis server"))?;
        read_reply(&mut self.reader, 0).with_context(|| format!("reading the reply to {name}"))
    }
}

fn read_line(reader: &mut impl BufRead) -> Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        bail!("the connection closed in the middle of a reply");
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn length(text: &str) -> Result<Option<usize>> {
    let length: i64 = text
        .parse()
        .with_context(|| format!("a length that is not a number: {text:?}"))?;
    if length < 0 {
        return Ok(None);
    }
    let length = usize::try_from(length)?;
    if length > MAX_LEN {
        bail!("a length of {length} bytes, over the {MAX_LEN} this client reads");
    }
    Ok(Some(length))
}

fn read_reply(reader: &mut impl BufRead, depth: usize) -> Result<Reply> {
    if depth > MAX_DEPTH {
        bail!("replies nested deeper than {MAX_DEPTH} arrays");
    }
    let line = read_line(reader)?;
    let Some(kind) = line.chars().next() else {
        bail!("an empty reply line");
    };
    let rest = &line[kind.len_utf8()..];
    Ok(match kind {
        '+' => Reply::Simple(rest.to_owned()),
        '-' => Reply::Error(rest.to_owned()),
        ':' => Reply::Integer(
            rest.parse()
                .with_context(|| format!("an integer reply that is not one: {rest:?}"))?,
        ),
        '$' => match length(rest)? {
            None => Reply::Bulk(None),
            Some(length) => {
                let mut bytes = vec![0; length + 2];
                reader.read_exact(&mut bytes)?;
                if !bytes.ends_with(b"\r\n") {
                    bail!("a bulk string not ended by CRLF");
                }
                bytes.truncate(length);
                Reply::Bulk(Some(bytes))
            }
        },
        '*' => match length(rest)? {
            None => Reply::Array(None),
            Some(count) => Reply::Array(Some(
                (0..count)
                    .map(|_| read_reply(reader, depth + 1))
                    .collect::<Result<_>>()?,
            )),
        },
        other => bail!("a reply of unknown kind {other:?} (is this a Redis server?)"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply> {
        read_reply(&mut std::io::Cursor::new(bytes), 0)
    }

    #[test]
    fn every_kind_of_reply_is_read_and_garbage_is_refused() {
        assert_eq!(parse(b"+PONG\r\n").unwrap(), Reply::Simple("PONG".into()));
        assert_eq!(
            parse(b"-NOAUTH Authentication required.\r\n").unwrap(),
            Reply::Error("NOAUTH Authentication required.".into())
        );
        assert_eq!(parse(b":-42\r\n").unwrap(), Reply::Integer(-42));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$3\r\na\r\n\r\n:1\r\n").unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"a\r\n".to_vec())),
                Reply::Integer(1)
            ]))
        );
        for garbage in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"+PONG",
            b"$5\r\nab\r\n",
            b"$99999999999\r\n",
            b":x\r\n",
            b"*9\r\n*9\r\n*9\r\n*9\r\n*9\r\n*9\r\n*9\r\n*9\r\n*9\r\n*9\r\n",
        ] {
            assert!(parse(garbage).is_err(), "{garbage:?}");
        }
    }
}
