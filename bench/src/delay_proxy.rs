//! A node 20 ms away: a TCP proxy on loopback in front of anvil that holds every byte the
//! client sends for a fixed delay before passing it on (answers come back at once), so each
//! request, on a new or a kept-alive connection, reaches the node that much later, as it
//! would a remote node. Order is kept and requests pipelined on one connection are each
//! delayed by the same amount, not one after the other.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running proxy; dropping it stops accepting connections.
#[derive(Debug)]
pub struct DelayProxy {
    url: String,
    accept: JoinHandle<()>,
}

impl DelayProxy {
    /// A proxy on a free loopback port in front of `upstream` (`127.0.0.1:PORT`), adding
    /// `delay` to every request.
    pub async fn start(upstream: SocketAddr, delay: Duration) -> Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the delay proxy")?;
        let url = format!("http://{}", listener.local_addr()?);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(node) = TcpStream::connect(upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = node.set_nodelay(true);
                        relay(client, node, delay).await;
                    }
                });
            }
        });
        Ok(DelayProxy { url, accept })
    }

    /// The URL to give the service instead of the node's.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `client` to `node` with each chunk held for `delay` after it arrived, and `node`
/// back to `client` at once, until either side closes.
async fn relay(client: TcpStream, node: TcpStream, delay: Duration) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut node_read, mut node_write) = node.into_split();
    let (chunks, mut delayed) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0
                || chunks
                    .send((Instant::now() + delay, buffer[..read].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = delayed.recv().await {
            tokio::time::sleep_until(due).await;
            if node_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = node_write.shutdown().await;
    };
    let back = async move {
        let _ = tokio::io::copy(&mut node_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(reader, writer, back);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_request_arrives_the_delay_later_and_the_answer_comes_back() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = upstream.local_addr().unwrap();
        // An echo server: what it reads, it writes back.
        tokio::spawn(async move {
            let (mut stream, _) = upstream.accept().await.unwrap();
            let mut buffer = [0u8; 16];
            while let Ok(read) = stream.read(&mut buffer).await {
                if read == 0 || stream.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
        });
        let proxy = DelayProxy::start(address, Duration::from_millis(50))
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.url().trim_start_matches("http://"))
            .await
            .unwrap();
        for message in [&b"first"[..], b"second"] {
            let sent = std::time::Instant::now();
            client.write_all(message).await.unwrap();
            let mut answer = vec![0u8; message.len()];
            client.read_exact(&mut answer).await.unwrap();
            let took = sent.elapsed();
            assert_eq!(answer, message);
            assert!(took >= Duration::from_millis(50), "{took:?}");
            assert!(took < Duration::from_millis(500), "{took:?}");
        }
    }
}
