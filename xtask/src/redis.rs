//! `cargo xtask redis up|down|status`: a Redis-protocol server (the tests' Valkey) left
//! running in the background, for trying `kms-eth serve`'s shared state by hand.

use std::time::Duration;

use anyhow::{bail, Result};
use kms_eth_harness::redis::{self, Options, RedisServer};
use kms_eth_harness::resp::{Connection, Reply};

use crate::flags::RedisCmd;

pub fn run(command: RedisCmd) -> Result<()> {
    let dir = redis::service_dir();
    let _lock = dir.lock()?;
    let say = |text: String| kms_eth_harness::say("redis", text);
    match (command, dir.running()) {
        (RedisCmd::Up { .. }, Some(record)) => {
            say(format!("already running ({})", record.handle));
            out!("{}", record.url);
        }
        (
            RedisCmd::Up {
                port,
                password_file,
                append_only,
            },
            None,
        ) => {
            let options = Options {
                port,
                password_file,
                append_only,
                ..Options::default()
            };
            let server = RedisServer::start_in(&dir, &options)?;
            let data = server.data_dir().display().to_string();
            if let Some(record) = server.detach() {
                dir.save(&record)?;
                say(format!(
                    "Valkey {} running ({}; data in {data})",
                    redis::VERSION,
                    record.handle
                ));
                out!("{}", record.url);
            }
        }
        (RedisCmd::Down, _) => match dir.stop(Duration::from_secs(5))? {
            Some(record) => {
                // Its data (and the config, which holds the password if one was given) goes
                // with it: without an append-only file there is nothing to keep.
                let data = redis::data_dir(&dir, record.port);
                if data.exists() {
                    std::fs::remove_dir_all(&data)?;
                }
                out!(
                    "stopped the Redis server ({}) at {}",
                    record.handle,
                    record.url
                )
            }
            None => out!("the Redis server is not running (nothing to stop)"),
        },
        (RedisCmd::Status, None) => {
            bail!("the Redis server is not running; start it with `cargo xtask redis up`")
        }
        (RedisCmd::Status, Some(record)) => {
            let reply = Connection::connect(record.port, Duration::from_secs(5))
                .and_then(|mut connection| connection.call(&["PING"]));
            match reply {
                Ok(Reply::Simple(_)) => out!("{} ({}): answers PING", record.url, record.handle),
                Ok(Reply::Error(e)) if e.starts_with("NOAUTH") => {
                    out!("{} ({}): up, wants a password", record.url, record.handle)
                }
                Ok(other) => bail!("{} answers PING with {other:?}", record.url),
                Err(err) => bail!(
                    "the Redis server at {} does not answer: {err:#}",
                    record.url
                ),
            }
        }
    }
    Ok(())
}
