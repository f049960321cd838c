//! One account's nonce book in the shared store: the same rules as `core/src/nonce.rs`'s
//! `NonceState`, each step one Lua script, with a lease on every reservation. A replica that
//! dies after reserving a nonce and before broadcasting it leaves a reservation that runs
//! out; the next replica to look takes it back as a hole, which is then reserved or filled
//! like any other. A reservation is claimed (and its transaction tracked, in the same
//! script) just before the broadcast: a lease that ran out before that is lost, and the
//! transaction is not broadcast, so no nonce is ever used twice.
//!
//! Lua numbers are doubles: nonces are exact up to 2^53, far above any account's count,
//! and the book refuses to go beyond it.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use anyhow::Result;
use kms_eth_signer::Address;
use redis::Script;

use super::Store;

/// What a reservation in the store came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// The nonce is this replica's until its lease runs out.
    Nonce(u64),
    /// A nonce the account already used, named by the client: a replacement.
    Replacement(u64),
    /// The book has not taken the node's count yet.
    NotStarted,
    /// Reserved by a request whose transaction is not broadcast yet.
    Waiting,
    /// Above the next nonce.
    Gap { next: u64 },
    /// Every nonce the store can count is used.
    Exhausted,
}

/// The time on the store's clock (every replica reads the same one), in milliseconds, and
/// the leases that ran out taken back: holes, unless their transaction is tracked (a
/// replica claimed it and died before the broadcast: the watcher broadcasts it again).
/// Each reservation has an owner (the token of the request that made it, in KEYS[5]): only
/// that request may claim it or give it back, so a late replica never takes a nonce that
/// was reserved again after its lease ran out.
const RECLAIM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], n)
  redis.call('HDEL', KEYS[5], n)
  if redis.call('HEXISTS', KEYS[4], n) == 0 then redis.call('ZADD', KEYS[3], n, n) end
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{RECLAIM}\n{body}"))
}

static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local next = redis.call('GET', KEYS[1])
if not next then return {'not_started', '0'} end
next = tonumber(next)
local until_ = now + tonumber(ARGV[1])
local named = ARGV[2]
if named == '' then
  local hole = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if hole then
    redis.call('ZREM', KEYS[3], hole)
    redis.call('ZADD', KEYS[2], until_, hole)
    redis.call('HSET', KEYS[5], hole, ARGV[3])
    return {'reserved', hole}
  end
  if next >= 9007199254740991 then return {'exhausted', '0'} end
  local n = string.format('%d', next)
  redis.call('SET', KEYS[1], string.format('%d', next + 1))
  redis.call('ZADD', KEYS[2], until_, n)
  redis.call('HSET', KEYS[5], n, ARGV[3])
  return {'reserved', n}
end
local nn = tonumber(named)
if redis.call('ZREM', KEYS[3], named) == 1 then
  redis.call('ZADD', KEYS[2], until_, named)
  redis.call('HSET', KEYS[5], named, ARGV[3])
  return {'reserved', named}
end
if nn == next then
  if next >= 9007199254740991 then return {'exhausted', '0'} end
  redis.call('SET', KEYS[1], string.format('%d', next + 1))
  redis.call('ZADD', KEYS[2], until_, named)
  redis.call('HSET', KEYS[5], named, ARGV[3])
  return {'reserved', named}
end
if redis.call('ZSCORE', KEYS[2], named) then return {'waiting', named} end
if nn < next then return {'replacement', named} end
return {'gap', string.format('%d', next)}",
    )
});

static START: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i]) end
return 1",
    )
});

static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[3] then
  -- Claimed already by this very request (a retry after an answer that was lost)?
  if ARGV[2] ~= '' and redis.call('HGET', KEYS[4], ARGV[1]) == ARGV[2] then return 1 end
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[2]) end
return 1",
    )
});

static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local n = ARGV[1]
if ARGV[2] == '1' then
  redis.call('HDEL', KEYS[4], n)
else
  if redis.call('HGET', KEYS[5], n) ~= ARGV[3] then return 0 end
  redis.call('ZREM', KEYS[2], n)
  redis.call('HDEL', KEYS[5], n)
end
local next = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(n) + 1 == next then
  next = tonumber(n)
  while true do
    local top = redis.call('ZREVRANGE', KEYS[3], 0, 0)[1]
    if top and tonumber(top) + 1 == next then
      redis.call('ZREM', KEYS[3], top)
      next = tonumber(top)
    else
      break
    end
  end
  redis.call('SET', KEYS[1], string.format('%d', next))
  return 0
end
redis.call('ZADD', KEYS[3], n, n)
return 1",
    )
});

static USED_UP_TO: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local next = redis.call('GET', KEYS[1])
if next and tonumber(next) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1])
return 0",
    )
});

static GAPS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local next = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
local to = math.min(tonumber(ARGV[2]), next, tonumber(ARGV[1]) + 1000)
local made = 0
for n = tonumber(ARGV[1]), to - 1 do
  local s = string.format('%d', n)
  if not redis.call('ZSCORE', KEYS[2], s) and redis.call('HEXISTS', KEYS[4], s) == 0 then
    made = made + redis.call('ZADD', KEYS[3], n, s)
  end
end
return made",
    )
});

static HOLES: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
return redis.call('ZRANGE', KEYS[3], 0, 999)",
    )
});

static RESERVE_HOLE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[3])
return 1",
    )
});

fn number(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("the state store answered {text:?} for a nonce"))
}

impl Store {
    /// The book's keys of `account`: next, reserved (with their leases), holes, tracked,
    /// and each reservation's owner.
    fn book(&self, account: Address) -> [String; 5] {
        ["next", "reserved", "holes", "tracked", "owners"].map(|what| self.key(account, what))
    }

    /// A new owner token: this replica's name and a count.
    pub fn token(&self) -> String {
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{count}", self.replica)
    }

    /// How long a reservation is its owner's.
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ms)
    }

    /// Reserves a nonce for `account` for the owner `token`: `named` by the client, or the
    /// next one.
    pub async fn reserve(
        &self,
        account: Address,
        named: Option<u64>,
        token: &str,
    ) -> Result<Reserved> {
        let args = [
            self.lease_ms.to_string(),
            named.map(|n| n.to_string()).unwrap_or_default(),
            token.to_owned(),
        ];
        let (what, n): (String, String) = self.run(&RESERVE, &self.book(account), &args).await?;
        Ok(match what.as_str() {
            "reserved" => Reserved::Nonce(number(&n)?),
            "replacement" => Reserved::Replacement(number(&n)?),
            "not_started" => Reserved::NotStarted,
            "waiting" => Reserved::Waiting,
            "gap" => Reserved::Gap { next: number(&n)? },
            _ => Reserved::Exhausted,
        })
    }

    /// Takes the node's count of `account`'s transactions, unless another replica did: the
    /// book starts after the highest tracked nonce, the untracked ones between being holes
    /// (`NonceState::start_after`).
    pub async fn start(
        &self,
        account: Address,
        node_count: u64,
        tracked: &BTreeSet<u64>,
    ) -> Result<()> {
        let after = tracked
            .last()
            .and_then(|top| top.checked_add(1))
            .unwrap_or(0)
            .max(node_count);
        let mut args = vec![after.to_string()];
        args.extend(
            (node_count..after)
                .filter(|nonce| !tracked.contains(nonce))
                .map(|nonce| nonce.to_string()),
        );
        self.run::<i64>(&START, &self.book(account), &args)
            .await
            .map(drop)
    }

    /// Claims `nonce`, reserved by `token`, for its broadcast, and tracks its transaction
    /// (`tracked`, JSON; empty for one the client broadcasts). False: the lease ran out and
    /// the nonce may be another's now; nothing may be broadcast with it. A claim repeated
    /// after a lost answer finds its own transaction tracked and answers true again.
    pub async fn claim(
        &self,
        account: Address,
        nonce: u64,
        token: &str,
        tracked: &str,
    ) -> Result<bool> {
        let args = [nonce.to_string(), tracked.to_owned(), token.to_owned()];
        let claimed: i64 = self.run(&CLAIM, &self.book(account), &args).await?;
        Ok(claimed == 1)
    }

    /// Gives back `nonce`, reserved by `token` (or `claimed`, its transaction then no longer
    /// tracked) but never broadcast. Returns whether it left a hole. A reservation whose
    /// lease ran out is not this request's to give back: nothing changes.
    pub async fn give_back(
        &self,
        account: Address,
        nonce: u64,
        token: &str,
        claimed: bool,
    ) -> Result<bool> {
        let args = [
            nonce.to_string(),
            if claimed { "1" } else { "0" }.to_owned(),
            token.to_owned(),
        ];
        let hole: i64 = self.run(&GIVE_BACK, &self.book(account), &args).await?;
        Ok(hole == 1)
    }

    /// The node counts `count` transactions of `account` as mined (`NonceState::used_up_to`).
    pub async fn used_up_to(&self, account: Address, count: u64) -> Result<()> {
        self.run::<i64>(&USED_UP_TO, &self.book(account), &[count.to_string()])
            .await
            .map(drop)
    }

    /// Makes holes of the nonces in `from..to` below the count that nothing reserves or
    /// tracks (`NonceState::gaps`), at most 1000 at a time.
    pub async fn gaps(&self, account: Address, from: u64, to: u64) -> Result<usize> {
        let args = [from.to_string(), to.to_string()];
        let made: i64 = self.run(&GAPS, &self.book(account), &args).await?;
        Ok(usize::try_from(made).unwrap_or_default())
    }

    /// The holes of `account`, lowest first (leases that ran out taken back first).
    pub async fn holes(&self, account: Address) -> Result<Vec<u64>> {
        let holes: Vec<String> = self.run(&HOLES, &self.book(account), &[]).await?;
        holes.iter().map(|n| number(n)).collect()
    }

    /// Reserves the hole at `nonce`, if it still is one.
    pub async fn reserve_hole(&self, account: Address, nonce: u64, token: &str) -> Result<bool> {
        let args = [
            nonce.to_string(),
            self.lease_ms.to_string(),
            token.to_owned(),
        ];
        let reserved: i64 = self.run(&RESERVE_HOLE, &self.book(account), &args).await?;
        Ok(reserved == 1)
    }
}
