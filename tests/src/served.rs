//! `kms-eth serve` run as users run it: the product's binary on a free loopback port, its
//! stderr (notes and audit lines) kept in a file, stopped with SIGTERM as a service manager
//! would. Plus a raw HTTP client, for the requests a well-behaved client never sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{kms_eth_binary, kms_eth_command, TestCommand};

/// A running signing service. Dropping it stops it.
#[derive(Debug)]
pub struct Served {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
    log: PathBuf,
}

impl Served {
    /// The service in front of the node at `node` for the key `key_id`, with no policy.
    pub fn unrestricted(node: &str, key_id: &str) -> Served {
        Served::start(&["--rpc-url", node, "--key-id", key_id, "--unrestricted"])
    }

    /// Starts `kms-eth serve` with `args` (target flags are added) on a free port, and waits
    /// until `/healthz` answers.
    pub fn start(args: &[&str]) -> Served {
        let port = kms_eth_harness::process::free_port().unwrap();
        let address = format!("127.0.0.1:{port}");
        Self::start_on(&address, args)
    }

    /// As [`Served::start`], listening on `listen`. Without `--chain-id` among `args`, the
    /// chain of the node at `--rpc-url` is given as `--chain-id`, as an operator pins the
    /// chain they mean (a test of the start's refusals runs the command itself).
    pub fn start_on(listen: &str, args: &[&str]) -> Served {
        Self::launch(listen, args, true, &[])
    }

    /// As [`Served::start`], with `env` added to the service's environment.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Served {
        let port = kms_eth_harness::process::free_port().unwrap();
        Self::launch(&format!("127.0.0.1:{port}"), args, true, env)
    }

    /// As [`Served::start`], with `args` exactly as given (no `--chain-id` added).
    pub fn start_as_given(args: &[&str]) -> Served {
        let port = kms_eth_harness::process::free_port().unwrap();
        Self::launch(&format!("127.0.0.1:{port}"), args, false, &[])
    }

    fn launch(listen: &str, args: &[&str], pin_chain: bool, env: &[(&str, &str)]) -> Served {
        let chain_id;
        let mut args = args.to_vec();
        if pin_chain && !args.contains(&"--chain-id") {
            if let Some(url) = args
                .iter()
                .position(|arg| *arg == "--rpc-url")
                .and_then(|at| args.get(at + 1))
            {
                chain_id = kms_eth_harness::jsonrpc::quantity(
                    &kms_eth_harness::jsonrpc::call(url, "eth_chainId", json!([])).unwrap(),
                )
                .unwrap()
                .to_string();
                args.extend(["--chain-id", &chain_id]);
            }
        }
        let args = &args[..];
        let log = crate::run::scratch_dir().join(format!(
            "kms-eth-serve-{}-{}.log",
            std::process::id(),
            listen.replace([':', '.'], "-")
        ));
        // A test that puts a proxy in front of KMS gives its own --endpoint-url.
        let base = if args.contains(&"--endpoint-url") {
            TestCommand::new(kms_eth_binary()).args([
                "serve",
                "--listen",
                listen,
                "--region",
                "us-east-1",
            ])
        } else {
            kms_eth_command(&["serve", "--listen", listen])
        };
        let mut base = base.args(args);
        for (key, value) in env {
            base = base.env(key, value);
        }
        let mut command = base.into_command();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let port = listen.rsplit(':').next().unwrap();
        let served = Served {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            address: format!("127.0.0.1:{port}"),
            log,
        };
        served.wait_until_healthy();
        served
    }

    fn wait_until_healthy(&self) {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = raw_request(&self.address, "GET /healthz HTTP/1.1", &[], b"") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "kms-eth serve did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything the service wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The reply to one JSON-RPC call (result or error object).
    pub fn call(&self, method: &str, params: Value) -> Value {
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        kms_eth_harness::jsonrpc::exchange(&self.url, &request).unwrap()
    }

    /// The result of one JSON-RPC call; panics with the error if there is one.
    pub fn result(&self, method: &str, params: Value) -> Value {
        let reply = self.call(method, params);
        match reply.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {reply}\n{}", self.log()),
        }
    }

    /// Sends `signal` to the service (SIGHUP reloads its policy).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(child) = &self.child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// Stops the service with SIGTERM and waits for it; returns its exit code.
    /// Stops the service (SIGTERM) and waits for it, in place: before another is started on
    /// the same account, whose state it locks.
    pub fn stop_in_place(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    pub fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        child.wait().ok()?.code()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sends one raw HTTP/1.1 request (`request_line`, extra `headers`, `body`) and returns the
/// status and body of the answer.
pub fn raw_request(
    address: &str,
    request_line: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{request_line}\r\nHost: {address}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
