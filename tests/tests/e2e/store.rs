//! The Redis-protocol server the shared-state tests run against (`kms_eth_e2e::store`): it
//! answers on loopback only, a kill refuses connections until a restart brings it back on the
//! same port, a password is required and never written out, and it has what the service's
//! store uses (Lua scripts by SHA, `SET ... PX ... NX`).

use std::io::ErrorKind;

use kms_eth_e2e::{
    redis_call, redis_server, redis_server_with, redis_server_with_password, RedisOptions,
    RedisReply, RedisServer,
};
use kms_eth_harness::process;

fn pong() -> RedisReply {
    RedisReply::Simple("PONG".into())
}

fn ok() -> RedisReply {
    RedisReply::Simple("OK".into())
}

fn bulk(text: &str) -> RedisReply {
    RedisReply::Bulk(Some(text.as_bytes().to_vec()))
}

/// Whether a connection to the server's port is refused (nothing listens there).
fn refused(server: &RedisServer) -> bool {
    match server.connect() {
        Ok(_) => false,
        Err(err) => err
            .root_cause()
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::ConnectionRefused),
    }
}

#[test]
fn a_killed_server_refuses_connections_until_it_restarts_on_its_port() {
    let mut server = redis_server();
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/0"));
    assert!(
        process::only_loopback_listens(port) && !process::listening_addresses(port).is_empty(),
        "the server listens on {:?}, not on loopback only",
        process::listening_addresses(port)
    );
    assert_eq!(redis_call(&server, None, &["PING"]), pong());
    assert_eq!(redis_call(&server, None, &["SET", "k", "v"]), ok());

    let pid = server.pid().unwrap();
    server.kill().unwrap();
    assert_eq!(server.pid(), None);
    assert!(
        !process::is_running(pid, "valkey-server"),
        "pid {pid} still runs"
    );
    assert!(refused(&server), "port {port} still answers after the kill");

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(pid));
    assert_eq!(redis_call(&server, None, &["PING"]), pong());
    assert_eq!(
        redis_call(&server, None, &["GET", "k"]),
        RedisReply::Bulk(None),
        "without an append-only file a restart starts empty"
    );

    let data = server.data_dir().to_path_buf();
    let pid = server.pid().unwrap();
    drop(server);
    assert!(
        !process::is_running(pid, "valkey-server"),
        "dropped, still runs"
    );
    assert!(!data.exists(), "{} outlived its server", data.display());
    assert!(process::port_is_free(port));
}

#[test]
fn a_password_is_required_and_written_to_neither_the_command_line_nor_the_log() {
    let password = "kmsEthRedisTest password\"\n";
    let (server, _file) = redis_server_with_password(password.trim_end());
    let password = password.trim_end();
    let mut anonymous = server.connect().unwrap();
    let refusal = anonymous.call(&["PING"]).unwrap();
    assert!(
        matches!(&refusal, RedisReply::Error(e) if e.starts_with("NOAUTH")),
        "{refusal:?}"
    );
    let wrong = anonymous.call(&["AUTH", "not-it"]).unwrap();
    assert!(
        matches!(&wrong, RedisReply::Error(e) if e.starts_with("WRONGPASS")),
        "{wrong:?}"
    );
    assert_eq!(redis_call(&server, Some(password), &["PING"]), pong());

    let pid = server.pid().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    for (what, text) in [
        (
            "command line",
            String::from_utf8_lossy(&cmdline).into_owned(),
        ),
        ("log", log),
    ] {
        assert!(
            !text.contains("kmsEthRedisTest"),
            "the password is in the {what}"
        );
    }
}

#[test]
fn an_append_only_server_keeps_acknowledged_writes_across_a_kill() {
    let mut server = redis_server_with(&RedisOptions {
        append_only: true,
        ..RedisOptions::default()
    });
    assert_eq!(redis_call(&server, None, &["SET", "nonce", "7"]), ok());
    server.kill().unwrap();
    server.restart().unwrap();
    assert_eq!(redis_call(&server, None, &["GET", "nonce"]), bulk("7"));
}

#[test]
fn the_server_runs_scripts_by_sha_and_sets_with_expiry_only_if_absent() {
    let server = redis_server();
    let script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let sha = redis_call(&server, None, &["SCRIPT", "LOAD", script])
        .text()
        .unwrap();
    assert_eq!(
        redis_call(&server, None, &["EVALSHA", &sha, "1", "n", "5"]),
        RedisReply::Integer(5)
    );
    let set = ["SET", "lease", "a", "PX", "60000", "NX"];
    assert_eq!(redis_call(&server, None, &set), ok());
    assert_eq!(redis_call(&server, None, &set), RedisReply::Bulk(None));
    let ttl = redis_call(&server, None, &["PTTL", "lease"]);
    assert!(
        matches!(ttl, RedisReply::Integer(ms) if ms > 0 && ms <= 60_000),
        "{ttl:?}"
    );
}
