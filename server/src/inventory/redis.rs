//! The Redis path: an atomic Lua claim against `flash_sale:{<sale id>}:inventory:sold`.
//!
//! Scripts run with `EVALSHA`; the `redis` crate's [`Script`] reloads a script the server has
//! forgotten (`NOSCRIPT` after a restart or `SCRIPT FLUSH`, HAZ-7) and retries, so a flushed cache
//! costs one round trip, not a failover. Every key a script touches is passed in `KEYS` and
//! carries the `{sale id}` hash tag, so the scripts also run on Redis Cluster (HAZ-15). Every
//! call is bounded by a short timeout (HAZ-6): a hung Redis must not hang the buyer.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

/// The counter's key. The braces are a Redis Cluster hash tag: all keys of one sale share a slot.
pub fn sold_key(sale_id: Uuid) -> String {
    format!("flash_sale:{{{sale_id}}}:inventory:sold")
}

/// What the claim script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The units were counted; the counter now stands at `sold_after`. The claimed units are
    /// numbered `sold_after - quantity + 1 ..= sold_after`, which the caller uses as slot hints.
    Granted { sold_after: i64 },
    /// The quantity does not fit under the cap.
    SoldOut,
    /// The counter does not exist: not loaded, *not* zero (HAZ-2).
    NotLoaded,
}

/// A Redis call that did not give an answer in time or failed.
#[derive(Debug)]
pub enum RedisFailure {
    Timeout(Duration),
    Error(redis::RedisError),
    /// The reply was not this call's (its nonce differs, or its figure is impossible): the
    /// connection paired replies with the wrong requests.
    Mismatch(String),
    /// The connection is being replaced after a timeout or a mismatch; not used meanwhile.
    Reconnecting,
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisFailure::Timeout(limit) => write!(f, "no answer within {limit:?}"),
            RedisFailure::Error(err) => write!(f, "{err}"),
            RedisFailure::Mismatch(what) => write!(f, "reply for another request: {what}"),
            RedisFailure::Reconnecting => f.write_str("connection being replaced"),
        }
    }
}

impl std::error::Error for RedisFailure {}

/// The Redis side of the inventory: the counter and the scripts that move it.
#[derive(Clone)]
pub struct RedisCounter {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: RwLock<ConnectionManager>,
    reconnecting: AtomicBool,
    /// Set when replies on the current connection can no longer be trusted to be paired with
    /// their requests; cleared when a fresh connection is installed.
    poisoned: AtomicBool,
    claim_script: Script,
    release_script: Script,
    reconcile_script: Script,
    raise_script: Script,
    timeout: Duration,
}

impl fmt::Debug for RedisCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCounter")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn manager_config(timeout: Duration) -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_millis(500))))
        .set_number_of_retries(1)
}

impl RedisCounter {
    /// Connects through a [`ConnectionManager`]: one multiplexed connection that reconnects by
    /// itself after Redis restarts.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = client
            .get_connection_manager_with_config(manager_config(timeout))
            .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn: RwLock::new(conn),
                reconnecting: AtomicBool::new(false),
                poisoned: AtomicBool::new(false),
                claim_script: Script::new(include_str!("lua/claim.lua")),
                release_script: Script::new(include_str!("lua/release.lua")),
                reconcile_script: Script::new(include_str!("lua/reconcile.lua")),
                raise_script: Script::new(include_str!("lua/raise.lua")),
                timeout,
            }),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.read().expect("redis connection").clone()
    }

    /// A multiplexed connection matches replies to requests in order. After a timeout, the reply
    /// we gave up on may still arrive — or, behind a link that lost it, never — and from then on
    /// replies can be paired with the wrong requests (the model-based test caught a claim
    /// answered with another call's figure). So the connection is poisoned: calls fail over at
    /// once instead of using it, and it is replaced in the background (one replacement at a
    /// time, retried by later calls while Redis stays away).
    fn poison(&self) {
        self.inner.poisoned.store(true, Ordering::Release);
        if self.inner.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let fresh = inner
                .client
                .get_connection_manager_with_config(manager_config(inner.timeout));
            if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), fresh).await {
                *inner.conn.write().expect("redis connection") = conn;
                inner.poisoned.store(false, Ordering::Release);
            }
            inner.reconnecting.store(false, Ordering::Release);
        });
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisFailure> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            self.poison();
            return Err(RedisFailure::Reconnecting);
        }
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(RedisFailure::Error(err)),
            Err(_) => {
                self.poison();
                Err(RedisFailure::Timeout(self.inner.timeout))
            }
        }
    }

    /// Claims `quantity` units against `cap`. Quantity and window are validated before this is
    /// called (HAZ-11, HAZ-13); the script checks the quantity again so a bad caller cannot lower
    /// the count.
    pub async fn claim(
        &self,
        sale_id: Uuid,
        cap: i64,
        quantity: i64,
    ) -> Result<Claim, RedisFailure> {
        let mut conn = self.conn();
        let nonce = Uuid::new_v4().simple().to_string();
        let mut invocation = self.inner.claim_script.key(sold_key(sale_id));
        invocation.arg(cap).arg(quantity).arg(&nonce);
        let (answer, echoed): (i64, String) =
            self.bounded(invocation.invoke_async(&mut conn)).await?;
        let claim = match answer {
            -1 => Claim::SoldOut,
            -2 => Claim::NotLoaded,
            sold_after => Claim::Granted { sold_after },
        };
        let impossible = matches!(claim, Claim::Granted { sold_after } if sold_after < quantity || sold_after > cap);
        if echoed != nonce || impossible {
            self.poison();
            return Err(RedisFailure::Mismatch(format!(
                "claim answered {answer} with nonce {echoed}, expected nonce {nonce}"
            )));
        }
        Ok(claim)
    }

    /// Gives back units whose order was not written (HAZ-5). A missing counter stays missing.
    pub async fn release(&self, sale_id: Uuid, quantity: i64) -> Result<(), RedisFailure> {
        let mut conn = self.conn();
        let mut invocation = self.inner.release_script.key(sold_key(sale_id));
        invocation.arg(quantity);
        let _left: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Loads the counter from the ledger's figure with `SET NX`: if another request loaded it
    /// first (and may already have claimed on top), that value wins. Returns whether this call
    /// set it.
    pub async fn seed(&self, sale_id: Uuid, units: i64) -> Result<bool, RedisFailure> {
        let mut conn = self.conn();
        let mut cmd = redis::cmd("SET");
        cmd.arg(sold_key(sale_id)).arg(units).arg("NX");
        let reply: Option<String> = self.bounded(cmd.query_async(&mut conn)).await?;
        Ok(reply.is_some())
    }

    /// The counter as Redis holds it; `None` when it is not loaded.
    pub async fn read(&self, sale_id: Uuid) -> Result<Option<i64>, RedisFailure> {
        let mut conn = self.conn();
        let mut cmd = redis::cmd("GET");
        cmd.arg(sold_key(sale_id));
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// Raises the counter to at least `floor` (never lowers it): hints then restart above the
    /// highest slot the ledger holds.
    pub async fn raise_to(&self, sale_id: Uuid, floor: i64) -> Result<(), RedisFailure> {
        let mut conn = self.conn();
        let mut invocation = self.inner.raise_script.key(sold_key(sale_id));
        invocation.arg(floor);
        let _after: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Moves the counter from `expected` to `new` only if nothing changed it meanwhile; returns
    /// whether it did.
    pub async fn compare_and_set(
        &self,
        sale_id: Uuid,
        expected: i64,
        new: i64,
    ) -> Result<bool, RedisFailure> {
        let mut conn = self.conn();
        let mut invocation = self.inner.reconcile_script.key(sold_key(sale_id));
        invocation.arg(expected).arg(new);
        let set: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(set == 1)
    }

    /// A raw connection to the counter's Redis, for strategies made outside the server (the
    /// harness's mutants), which bypass the scripts.
    pub fn connection(&self) -> ConnectionManager {
        self.conn()
    }

    /// How long a Redis call may take (`--redis-timeout`).
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_sale_carries_its_hash_tag() {
        let id = Uuid::nil();
        assert_eq!(
            sold_key(id),
            "flash_sale:{00000000-0000-0000-0000-000000000000}:inventory:sold"
        );
    }
}
