//! The shared state of several `serve` replicas (`serve --state redis://...`, a leaf): one
//! Redis-protocol store holding each account's nonce book, 24-hour ledger, request rate and
//! tracked transactions, every update one Lua script (atomic on the server), so that any
//! number of replicas behave as one service. A replica that cannot reach the store signs
//! nothing: every call here fails, and the caller refuses the request.
//!
//! Keys of account A on chain C share the hash tag `{C:A}` (one cluster slot, so a script
//! may touch them all): `kms-eth:{C:A}:next`, `:reserved`, `:owners`, `:holes`, `:tracked`, `:ledger`,
//! `:rate`, `:watcher`, and `kms-eth:{C:A}:done:NONCE` / `kms-eth:done:HASH` for finished
//! transactions (README's "Replicas" section lists what each holds). The nonce scripts are
//! `store/nonces.rs`'s.

mod nonces;

use std::time::Duration;

use anyhow::{Context, Result};
use kms_eth_signer::Address;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

pub use nonces::Reserved;

/// How long a finished transaction stays known to `kmseth_txStatus`.
const DONE_FOR: u64 = 7 * 24 * 3600;

/// Where the store is, without its password (which never appears in a URL, a log or an
/// error, nor in this type's `Debug`).
#[derive(Clone)]
pub struct StoreConfig {
    /// `redis://HOST:PORT/DB` or `rediss://HOST:PORT/DB`.
    pub url: String,
    /// From `--state-password-file` or `KMS_ETH_STATE_PASSWORD`.
    pub password: Option<String>,
    /// How long a reserved nonce stays a replica's without being broadcast before the
    /// others take it back (`--lease`).
    pub lease: Duration,
}

/// The connection to the store, shared by every request of a replica.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    /// The URL as shown to users (no password).
    shown: String,
    lease_ms: u64,
    /// This replica's name in the `watcher` keys.
    replica: String,
    chain_id: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.shown).finish()
    }
}

/// A store URL checked: no credentials in it (checked first, so that no message repeats
/// them), and the scheme.
pub fn parse_url(url: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if rest.split('/').next().unwrap_or_default().contains('@') {
        return Err(
            "invalid --state: the URL carries credentials; a password on the command line is \
             seen by every user of the machine. Give it in --state-password-file or \
             KMS_ETH_STATE_PASSWORD, and the URL without it"
                .to_owned(),
        );
    }
    if scheme != "redis" && scheme != "rediss" {
        return Err(format!(
            "invalid --state {url}: give redis://HOST:PORT/DB, or rediss://HOST:PORT/DB for TLS"
        ));
    }
    Ok(url.to_owned())
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("lease", &self.lease)
            .finish()
    }
}

impl Store {
    /// A client of the store at `config.url` for the accounts of `chain_id`. It connects on
    /// first use and again after each loss: a replica started while the store is down comes
    /// up, says not ready, and serves once the store answers.
    pub fn open(config: &StoreConfig, chain_id: u64) -> Result<Store> {
        let shown = parse_url(&config.url).map_err(kms_eth_core::UsageError)?;
        let client = redis::Client::open(config.url.as_str())
            .with_context(|| format!("invalid --state {shown}"))?;
        let client = match &config.password {
            Some(password) => {
                let info = client.get_connection_info().clone();
                let settings = info.redis_settings().clone().set_password(password);
                redis::Client::open(info.set_redis_settings(settings))
                    .with_context(|| format!("invalid --state {shown}"))?
            }
            None => client,
        };
        // Every call is bounded: a store that hangs refuses requests quickly, it does not
        // hold them.
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, settings)
            .with_context(|| format!("connecting to the state store {shown}"))?;
        Ok(Store {
            conn,
            shown,
            lease_ms: u64::try_from(config.lease.as_millis()).unwrap_or(u64::MAX),
            replica: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default()
            ),
            chain_id,
        })
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|err| self.unreachable(err))
    }

    /// The time on the store's clock, in Unix seconds: what the 24-hour ledgers are counted
    /// by, so that replicas whose clocks differ keep one ledger.
    pub async fn now(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let (seconds, _): (String, String) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(|err| self.unreachable(err))?;
        seconds
            .parse()
            .map_err(|_| anyhow::anyhow!("the state store answered {seconds:?} for the time"))
    }

    /// The error of a call that failed: the store's URL and what went wrong.
    fn unreachable(&self, err: redis::RedisError) -> anyhow::Error {
        anyhow::anyhow!("the state store {} did not answer: {err}", self.shown)
    }

    /// The key `what` of `account`'s state.
    fn key(&self, account: Address, what: &str) -> String {
        format!("kms-eth:{{{}:{account}}}:{what}", self.chain_id)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|err| self.unreachable(err))
    }

    /// Changes the value `field` of the hash `key` (or the string `key` with `field`
    /// `None`) with `change`, which sees the current value and answers the new one (`None`:
    /// removed) or its own refusal. The write happens only if nobody else wrote since the
    /// read; else it reads again (optimistic, so a replica never holds a lock it could die
    /// with).
    async fn modify<E>(
        &self,
        key: &str,
        field: Option<&str>,
        mut change: impl FnMut(Option<&str>) -> Result<Option<String>, E>,
    ) -> Result<Result<(), E>> {
        static CAS: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
            Script::new(
                r"
local cur
if ARGV[1] == '' then cur = redis.call('GET', KEYS[1]) else cur = redis.call('HGET', KEYS[1], ARGV[1]) end
if ARGV[2] == '1' then
  if cur ~= ARGV[3] then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == '0' then
  if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('HDEL', KEYS[1], ARGV[1]) end
elseif ARGV[1] == '' then
  redis.call('SET', KEYS[1], ARGV[5])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
end
return 1",
            )
        });
        for _ in 0..100 {
            let mut conn = self.conn.clone();
            let current: Option<String> = match field {
                Some(field) => conn.hget(key, field).await,
                None => conn.get(key).await,
            }
            .map_err(|err| self.unreachable(err))?;
            let new = match change(current.as_deref()) {
                Ok(new) => new,
                Err(refusal) => return Ok(Err(refusal)),
            };
            if new == current {
                return Ok(Ok(()));
            }
            let args = [
                field.unwrap_or_default().to_owned(),
                if current.is_some() { "1" } else { "0" }.to_owned(),
                current.unwrap_or_default(),
                if new.is_some() { "1" } else { "0" }.to_owned(),
                new.unwrap_or_default(),
            ];
            let written: i64 = self.run(&CAS, &[key.to_owned()], &args).await?;
            if written == 1 {
                return Ok(Ok(()));
            }
        }
        anyhow::bail!(
            "the state store {}: {key} kept changing under 100 attempts to update it",
            self.shown
        )
    }

    /// The 24-hour ledger of `account` (JSON), changed by `change` atomically.
    pub async fn modify_ledger<E>(
        &self,
        account: Address,
        change: impl FnMut(Option<&str>) -> Result<Option<String>, E>,
    ) -> Result<Result<(), E>> {
        self.modify(&self.key(account, "ledger"), None, change)
            .await
    }

    /// Counts one signing request of `account` in the last minute, unless `limit` were
    /// already made: answers whether it was admitted.
    pub async fn admit(&self, account: Address, limit: u32) -> Result<bool> {
        static RATE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
            Script::new(
                r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], now, string.format('%d-%d', now, seq))
redis.call('PEXPIRE', KEYS[1], 60000)
return 1",
            )
        });
        let keys = [self.key(account, "rate"), self.key(account, "rate-seq")];
        let admitted: i64 = self.run(&RATE, &keys, &[limit.to_string()]).await?;
        Ok(admitted == 1)
    }

    /// Whether this replica watches `account`'s transactions for the next `ttl`: one
    /// replica at a time does (its claim renewed at each look), another takes over when it
    /// stops renewing.
    pub async fn watches(&self, account: Address, ttl: Duration) -> Result<bool> {
        static WATCHER: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
            Script::new(
                r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1",
            )
        });
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mine: i64 = self
            .run(
                &WATCHER,
                &[self.key(account, "watcher")],
                &[self.replica.clone(), ttl.to_string()],
            )
            .await?;
        Ok(mine == 1)
    }

    /// `account`'s tracked transactions: nonce and JSON.
    pub async fn tracked(&self, account: Address) -> Result<Vec<(u64, String)>> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, String)> = conn
            .hgetall(self.key(account, "tracked"))
            .await
            .map_err(|err| self.unreachable(err))?;
        Ok(all
            .into_iter()
            .filter_map(|(nonce, json)| Some((nonce.parse().ok()?, json)))
            .collect())
    }

    /// The tracked transaction of `account` with `nonce` (JSON), changed by `change`.
    pub async fn modify_tracked(
        &self,
        account: Address,
        nonce: u64,
        change: impl FnMut(Option<&str>) -> Result<Option<String>, std::convert::Infallible>,
    ) -> Result<()> {
        self.modify(
            &self.key(account, "tracked"),
            Some(&nonce.to_string()),
            change,
        )
        .await
        .map(|_| ())
    }

    /// Remembers a finished transaction (JSON) by its account and nonce and by each of its
    /// hashes, for a week.
    pub async fn put_done(
        &self,
        account: Address,
        nonce: u64,
        hashes: &[String],
        json: &str,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.set_ex(self.key(account, &format!("done:{nonce}")), json, DONE_FOR);
        for hash in hashes {
            pipe.set_ex(
                format!("kms-eth:done:{}", hash.to_ascii_lowercase()),
                json,
                DONE_FOR,
            );
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|err| self.unreachable(err))
    }

    /// A finished transaction by hash.
    pub async fn done_by_hash(&self, hash: &str) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        conn.get(format!("kms-eth:done:{}", hash.to_ascii_lowercase()))
            .await
            .map_err(|err| self.unreachable(err))
    }

    /// A finished transaction by account and nonce.
    pub async fn done_by_nonce(&self, account: Address, nonce: u64) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        conn.get(self.key(account, &format!("done:{nonce}")))
            .await
            .map_err(|err| self.unreachable(err))
    }
}
