//! A Redis-protocol server per test (Valkey, installed by the harness on first use): started
//! in well under a second on a free loopback port, killed with SIGKILL and restarted on the
//! same port by the test, stopped and its data removed when the value is dropped.

use std::path::PathBuf;

use crate::run::scratch_dir;

pub use kms_eth_harness::redis::{Options as RedisOptions, RedisServer};
pub use kms_eth_harness::resp::Reply as RedisReply;

/// A fresh server with no password and no persistence: `url()` is what the service is given.
pub fn redis_server() -> RedisServer {
    redis_server_with(&RedisOptions::default())
}

/// A fresh server started with `options`; the test fails with the reason (and the log's
/// last lines) if it does not come up.
pub fn redis_server_with(options: &RedisOptions) -> RedisServer {
    RedisServer::start(options).unwrap_or_else(|err| panic!("starting a Redis server: {err:#}"))
}

/// A fresh server that requires `password`, and the file (in the run's scratch folder,
/// owner-only) it was read from: what a test hands to a service's password-file flag.
pub fn redis_server_with_password(password: &str) -> (RedisServer, PathBuf) {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let file = scratch_dir().join(format!(
        "redis-password-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    std::io::Write::write_all(&mut options.open(&file).unwrap(), password.as_bytes()).unwrap();
    let server = redis_server_with(&RedisOptions {
        password_file: Some(file.clone()),
        ..RedisOptions::default()
    });
    (server, file)
}

/// One command on a new connection to `server` (with `AUTH password` first when given); a
/// refusal is `RedisReply::Error`, and a server that cannot be reached fails the test.
pub fn redis_call(server: &RedisServer, password: Option<&str>, args: &[&str]) -> RedisReply {
    let mut connection = server
        .connect()
        .unwrap_or_else(|err| panic!("connecting to {}: {err:#}", server.url()));
    if let Some(password) = password {
        let auth = connection.call(&["AUTH", password]).unwrap();
        assert_eq!(
            auth,
            RedisReply::Simple("OK".into()),
            "AUTH on {}",
            server.url()
        );
    }
    connection
        .call(args)
        .unwrap_or_else(|err| panic!("{args:?} on {}: {err:#}", server.url()))
}
