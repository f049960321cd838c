//! A TLS front for a test server that speaks none (the tests' Valkey is built without TLS),
//! as a managed store's endpoint is: a certificate authority and a server certificate for
//! `localhost` and 127.0.0.1 made by the machine's `openssl`, and Python's `ssl` module
//! terminating TLS on a free loopback port and passing the bytes on. The client trusts the
//! authority through `SSL_CERT_FILE`, which rustls-native-certs reads instead of the
//! system's store.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::run::scratch_dir;

/// Terminates TLS on `port()` and forwards to the upstream port; stopped when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    child: Child,
    port: u16,
    ca: PathBuf,
}

const TERMINATOR: &str = r#"
import asyncio, ssl, sys
cert, key, port, upstream = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()

async def handle(reader, writer):
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TlsProxy {
    /// TLS on a free loopback port in front of 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> TlsProxy {
        let port = kms_eth_harness::process::free_port().unwrap();
        let dir = scratch_dir().join(format!("tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p256 = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(p256);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=kms-eth test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(&dir, &ca);
        let mut request = vec!["req"];
        request.extend(p256);
        request.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&dir, &request);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "1",
                "-extfile",
                "server.ext",
            ],
        );
        let mut child = Command::new("python3")
            .args(["-c", TERMINATOR])
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .args([port.to_string(), upstream.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the TLS terminator did not start");
        TlsProxy {
            child,
            port,
            ca: dir.join("ca.pem"),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The authority the server's certificate chains to (for `SSL_CERT_FILE`).
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
