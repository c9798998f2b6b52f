//! The shop's one Redis connection: every call bounded by a timeout, every script reply checked
//! to be the answer to *this* call, and a connection that can no longer be trusted replaced.
//!
//! All calls share one multiplexed connection, which pairs replies with requests by order. That
//! order breaks if a reply is lost on the way (a link that drops bytes): from then on each
//! request would read another's reply. So every script echoes a nonce that the caller checks,
//! and after a timeout or a mismatch the connection is replaced by a fresh one (lazily
//! connected, so a Redis that is down costs no waiting here).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script, Value};

/// Why a Redis call gave no usable answer. After any of these the caller cannot know whether
/// the call changed anything in Redis.
#[derive(Debug, thiserror::Error)]
pub enum LinkFailure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("the reply belongs to another request ({0})")]
    Mismatch(String),
}

#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// The connection in use and its serial, so that many calls failing on the same
    /// connection replace it once, not once each.
    current: RwLock<(u64, ConnectionManager)>,
    serials: AtomicU64,
}

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLink").finish_non_exhaustive()
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        // Each call has its own, shorter deadline; the manager's would only fire after it.
        .set_response_timeout(None)
        .set_number_of_retries(1)
}

impl RedisLink {
    /// Parses the URL; nothing is connected until the first call, so the shop starts (and sells,
    /// through PostgreSQL alone) while Redis is away.
    pub fn open(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                current: RwLock::new((0, conn)),
                serials: AtomicU64::new(0),
            }),
        })
    }

    fn current(&self) -> (u64, ConnectionManager) {
        let guard = self
            .inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (guard.0, guard.1.clone())
    }

    /// Replaces connection `serial` unless someone already did.
    fn replace(&self, serial: u64) {
        let mut guard = self
            .inner
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.0 != serial {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.inner.client.clone(), manager_config()) {
            Ok(fresh) => {
                let next = self.inner.serials.fetch_add(1, Ordering::Relaxed) + 1;
                *guard = (next, fresh);
            }
            Err(err) => tracing::warn!(%err, "could not make a fresh Redis connection"),
        }
    }

    async fn bounded<T, F, Fut>(&self, limit: Duration, call: F) -> Result<(u64, T), LinkFailure>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let (serial, conn) = self.current();
        match tokio::time::timeout(limit, call(conn)).await {
            Ok(Ok(value)) => Ok((serial, value)),
            // The manager reconnects by itself after I/O errors.
            Ok(Err(err)) => Err(LinkFailure::Redis(err)),
            Err(_) => {
                // The reply may still come, or never (a link that lost it): either way the
                // connection's pairing of replies can no longer be trusted.
                self.replace(serial);
                Err(LinkFailure::Timeout(limit))
            }
        }
    }

    /// Runs `script` on `keys` with `args` and a fresh nonce as the last argument. The script
    /// must reply with an array whose first element is that nonce; the rest is returned.
    pub async fn script(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
        limit: Duration,
    ) -> Result<Vec<Value>, LinkFailure> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        invocation.arg(&nonce);
        let (serial, reply): (u64, Value) = self
            .bounded(limit, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        match split_nonce(reply) {
            Some((echoed, rest)) if echoed == nonce => Ok(rest),
            other => {
                self.replace(serial);
                Err(LinkFailure::Mismatch(format!(
                    "expected nonce {nonce}, got {other:?}"
                )))
            }
        }
    }

    /// One plain command (the broken variant's GET, SET and DECRBY, which carry no nonce).
    pub async fn command<T: FromRedisValue>(
        &self,
        cmd: redis::Cmd,
        limit: Duration,
    ) -> Result<T, LinkFailure> {
        let (_, value) = self
            .bounded(
                limit,
                |mut conn| async move { cmd.query_async(&mut conn).await },
            )
            .await?;
        Ok(value)
    }
}

/// `[nonce, rest...]` into the nonce and the rest.
fn split_nonce(reply: Value) -> Option<(String, Vec<Value>)> {
    let Value::Array(mut items) = reply else {
        return None;
    };
    if items.is_empty() {
        return None;
    }
    let nonce = String::from_redis_value(items.remove(0)).ok()?;
    Some((nonce, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_without_its_nonce_is_not_accepted() {
        let reply = Value::Array(vec![Value::BulkString(b"abc".to_vec()), Value::Int(3)]);
        let (nonce, rest) = split_nonce(reply).unwrap();
        assert_eq!(nonce, "abc");
        assert_eq!(rest, vec![Value::Int(3)]);
        assert!(split_nonce(Value::Int(3)).is_none());
        assert!(split_nonce(Value::Array(vec![])).is_none());
        assert!(split_nonce(Value::Okay).is_none());
    }
}
