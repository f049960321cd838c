//! A TCP gate in front of a node, for restarting it as a real one goes away: `close` refuses
//! new connections and cuts the open ones, so nothing reaches the node while it shuts down;
//! `open` listens again on the same port. (anvil answers requests after SIGTERM that the
//! state it writes at SIGTERM no longer holds; a real node restarting is simply unreachable
//! for a while, which is what the gate makes it.) Plain threads, so it works whatever the
//! test's runtime is doing.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A running gate.
#[derive(Debug)]
pub struct TcpGate {
    address: SocketAddr,
    upstream: SocketAddr,
    open: Option<Opened>,
}

#[derive(Debug)]
struct Opened {
    closing: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: JoinHandle<()>,
}

impl TcpGate {
    /// A gate on a free loopback port, forwarding to `upstream` (`host:port`).
    pub fn start(upstream: SocketAddr) -> io::Result<TcpGate> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let mut gate = TcpGate {
            address,
            upstream,
            open: None,
        };
        gate.open = Some(gate.serve(listener));
        Ok(gate)
    }

    /// The URL to give a client instead of the node's.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Refuses new connections and cuts the open ones.
    pub fn close(&mut self) {
        let Some(opened) = self.open.take() else {
            return;
        };
        opened.closing.store(true, Ordering::SeqCst);
        // Wake the accept loop, which then drops the listener.
        let _ = TcpStream::connect(self.address);
        let _ = opened.accept.join();
        for stream in opened
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens again, on the same port.
    pub fn open(&mut self) -> io::Result<()> {
        if self.open.is_none() {
            let listener = TcpListener::bind(self.address)?;
            self.open = Some(self.serve(listener));
        }
        Ok(())
    }

    fn serve(&self, listener: TcpListener) -> Opened {
        let closing = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (upstream, flag, open_streams) = (self.upstream, closing.clone(), streams.clone());
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(node) = TcpStream::connect(upstream) else {
                    continue;
                };
                let pairs = [
                    (client.try_clone(), node.try_clone()),
                    (node.try_clone(), client.try_clone()),
                ];
                if let Ok(mut open) = open_streams.lock() {
                    open.extend(client.try_clone());
                    open.extend(node.try_clone());
                }
                for pair in pairs {
                    if let (Ok(mut from), Ok(mut to)) = pair {
                        std::thread::spawn(move || {
                            let _ = io::copy(&mut from, &mut to);
                            let _ = to.shutdown(Shutdown::Write);
                        });
                    }
                }
            }
        });
        Opened {
            closing,
            streams,
            accept,
        }
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.close();
    }
}
