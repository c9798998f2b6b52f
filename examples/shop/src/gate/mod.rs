//! The correct variant's Redis gate: a count of units left per drop that turns buyers away
//! once a drop is sold out, before they reach PostgreSQL. It never sells anything: PostgreSQL
//! decides every sale, so the gate may be wrong in one direction only (letting a buyer through
//! to be refused there), and is kept from being wrong in the other (see [`accounts`]).
//!
//! Key: `{prefix}:drop:{id}:left`. Each step is one Lua script (`src/lua/`), so "enough left?"
//! and "take them" cannot be split by another buyer.

pub mod accounts;

use std::time::Duration;

use redis::{FromRedisValue, Script, Value};
use sqlx::PgPool;

use crate::drops::KnownDrop;
use crate::redis_link::{LinkFailure, RedisLink};
use accounts::Hold;

/// How long a buyer waits for the gate before going to PostgreSQL without it.
pub const GATE_TIMEOUT: Duration = Duration::from_millis(200);
/// The reconcile task is not waited on by buyers, so it can wait out a slow link.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long reading `stock - sold` for a reseed may take before the buyer goes on without the
/// gate.
const RESEED_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The Redis key holding a drop's units left.
pub fn left_key(prefix: &str, drop_id: i64) -> String {
    format!("{prefix}:drop:{drop_id}:left")
}

/// What the gate says about one purchase.
#[derive(Debug)]
pub enum Verdict<'d> {
    /// The gate took the units, or may have (a call that failed after it could have reached
    /// Redis): they go back if the purchase does not sell them.
    Held(Hold<'d>),
    /// Fewer than the units asked for are left, for certain.
    SoldOut,
    /// The gate cannot tell (it refused, but its count may be low; or it has no count):
    /// PostgreSQL decides, and nothing is held.
    AskDatabase,
}

/// One run of `take.lua`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    Taken,
    Refused { left: i64 },
    Missing,
}

#[derive(Debug)]
pub struct Gate {
    link: RedisLink,
    prefix: String,
    pool: PgPool,
    take: Script,
    give_back: Script,
    reseed: Script,
    set: Script,
}

impl Gate {
    pub fn new(link: RedisLink, prefix: String, pool: PgPool) -> Self {
        Self {
            link,
            prefix,
            pool,
            take: Script::new(include_str!("../lua/take.lua")),
            give_back: Script::new(include_str!("../lua/give_back.lua")),
            reseed: Script::new(include_str!("../lua/reseed.lua")),
            set: Script::new(include_str!("../lua/set.lua")),
        }
    }

    fn key(&self, drop_id: i64) -> String {
        left_key(&self.prefix, drop_id)
    }

    /// Asks the gate for `units` of `drop`. A missing count is reseeded from PostgreSQL and
    /// asked once more; a Redis that fails or is slow is passed by (PostgreSQL still decides).
    pub async fn pass<'d>(&self, drop: &'d KnownDrop, units: i64) -> Verdict<'d> {
        let accounts = &drop.accounts;
        let settled_before = accounts.settled_so_far();
        let hold = accounts.reserve(units);
        let mut answer = self.take(drop.id, units).await;
        if matches!(answer, Ok(Take::Missing)) {
            if let Err(err) = self.reseed(drop.id).await {
                tracing::debug!(drop = drop.id, %err, "gate: reseed failed, asking PostgreSQL");
                hold.settle();
                return Verdict::AskDatabase;
            }
            answer = self.take(drop.id, units).await;
        }
        match answer {
            Ok(Take::Taken) => Verdict::Held(hold),
            Ok(Take::Refused { left }) => {
                let others = accounts.held_by_others(settled_before, units);
                hold.settle();
                if !accounts.is_doubtful() && left + others < units {
                    Verdict::SoldOut
                } else {
                    Verdict::AskDatabase
                }
            }
            Ok(Take::Missing) => {
                hold.settle();
                Verdict::AskDatabase
            }
            Err(err) => {
                tracing::debug!(drop = drop.id, %err, "gate: call failed, asking PostgreSQL");
                accounts.doubt();
                Verdict::Held(hold)
            }
        }
    }

    /// The purchase did not sell the held units: they go back to the count.
    pub async fn give_back(&self, drop: &KnownDrop, hold: Hold<'_>) {
        let given = self
            .link
            .script(
                &self.give_back,
                &self.key(drop.id),
                &[hold.units()],
                GATE_TIMEOUT,
            )
            .await;
        if let Err(err) = given {
            tracing::debug!(drop = drop.id, %err, "gate: give-back failed");
            drop.accounts.doubt();
        }
        hold.settle();
    }

    async fn take(&self, drop_id: i64, units: i64) -> Result<Take, LinkFailure> {
        let reply = self
            .link
            .script(&self.take, &self.key(drop_id), &[units], GATE_TIMEOUT)
            .await?;
        parse_take(reply).ok_or_else(|| LinkFailure::Mismatch("take: unexpected reply".into()))
    }

    /// `SET NX` of PostgreSQL's `stock - sold`. It can only be too high by the time it lands
    /// (sold only grows), which costs a refused trip to PostgreSQL, never a false sold-out.
    async fn reseed(&self, drop_id: i64) -> Result<(), String> {
        let read = sqlx::query_scalar::<_, i64>(
            "SELECT (stock - sold)::bigint FROM shop_drops WHERE id = $1",
        )
        .bind(drop_id)
        .fetch_optional(&self.pool);
        let left = match tokio::time::timeout(RESEED_READ_TIMEOUT, read).await {
            Ok(Ok(Some(left))) => left,
            Ok(Ok(None)) => return Err("the drop is gone".into()),
            Ok(Err(err)) => return Err(format!("reading stock - sold: {err}")),
            Err(_) => return Err("reading stock - sold took too long".into()),
        };
        self.link
            .script(&self.reseed, &self.key(drop_id), &[left], GATE_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|err| err.to_string())
    }

    /// The reconcile task's write.
    pub async fn set(&self, drop_id: i64, left: i64) -> Result<(), LinkFailure> {
        self.link
            .script(&self.set, &self.key(drop_id), &[left], RECONCILE_TIMEOUT)
            .await
            .map(|_| ())
    }
}

/// `[code, figure]` after the nonce.
fn parse_take(reply: Vec<Value>) -> Option<Take> {
    let [code, figure]: [Value; 2] = reply.try_into().ok()?;
    let code = i64::from_redis_value(code).ok()?;
    let figure = i64::from_redis_value(figure).ok()?;
    match code {
        1 => Some(Take::Taken),
        0 => Some(Take::Refused { left: figure }),
        -1 => Some(Take::Missing),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract() {
        assert_eq!(left_key("shop", 42), "shop:drop:42:left");
    }

    #[test]
    fn take_replies_are_read_strictly() {
        assert_eq!(
            parse_take(vec![Value::Int(1), Value::Int(9)]),
            Some(Take::Taken)
        );
        assert_eq!(
            parse_take(vec![Value::Int(0), Value::Int(2)]),
            Some(Take::Refused { left: 2 })
        );
        assert_eq!(
            parse_take(vec![Value::Int(-1), Value::Int(0)]),
            Some(Take::Missing)
        );
        assert_eq!(parse_take(vec![Value::Int(7), Value::Int(0)]), None);
        assert_eq!(parse_take(vec![Value::Int(1)]), None);
        assert_eq!(parse_take(vec![Value::Okay, Value::Int(1)]), None);
    }
}
