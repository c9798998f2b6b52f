//! The correct variant's Redis gate: a count of units left per drop that turns buyers away once
//! a drop is sold out, before they reach PostgreSQL. It never sells anything: PostgreSQL
//! decides every sale, so the gate may only ever err towards letting a buyer through (to be
//! refused there), never towards a false sold-out.
//!
//! Three keys per drop, each step one Lua script (`src/lua/`):
//! - `{prefix}:drop:{id}:left`: units the gate can still hand out;
//! - `{prefix}:drop:{id}:held`: units handed to purchases that have not settled them yet;
//! - `{prefix}:drop:{id}:gen`: which writing of the count this is (new on every reseed and
//!   reconcile), so that a late settlement cannot take units off a count written since.
//!
//! `left + held` never falls below PostgreSQL's `stock - sold`: a take and a give-back move
//! units between the two (whatever order they land in, even if one never lands), a settlement
//! takes them off when PostgreSQL has sold them, and reseeds and reconciles write PostgreSQL's
//! own figure, which can only have fallen since it was read. So "fewer than `units` in
//! `left + held`" is a true sold-out, decided inside Redis in one step, and anything less
//! certain goes to PostgreSQL.

use std::time::Duration;

use redis::{FromRedisValue, Script, Value};
use sqlx::PgPool;

use crate::redis_link::{LinkFailure, RedisLink};

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

/// `left`, `held` and `gen`, in the order the scripts take them.
fn keys(prefix: &str, drop_id: i64) -> [String; 3] {
    [
        left_key(prefix, drop_id),
        format!("{prefix}:drop:{drop_id}:held"),
        format!("{prefix}:drop:{drop_id}:gen"),
    ]
}

/// What the gate says about one purchase.
#[derive(Debug)]
pub enum Verdict {
    /// The gate took the units, or may have (a call that failed after it could have reached
    /// Redis): the purchase must [`Gate::settle`] or [`Gate::give_back`] them.
    Held(Hold),
    /// Fewer than the units asked for are left, for certain.
    SoldOut,
    /// The gate cannot tell (not enough left now, but some are held by purchases in flight; or
    /// no count could be loaded): PostgreSQL decides, and nothing is held.
    AskDatabase,
}

/// Units a purchase took from the gate.
#[derive(Debug)]
#[must_use = "held units must be settled or given back"]
pub struct Hold {
    units: i64,
    /// The count's generation the units were taken from; `None` when the take's reply was lost.
    generation: Option<String>,
}

/// One run of `take.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Take {
    Taken { generation: String },
    SoldOut,
    Unsure,
    Missing,
}

#[derive(Debug)]
pub struct Gate {
    link: RedisLink,
    prefix: String,
    pool: PgPool,
    take: Script,
    give_back: Script,
    settle: Script,
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
            settle: Script::new(include_str!("../lua/settle.lua")),
            reseed: Script::new(include_str!("../lua/reseed.lua")),
            set: Script::new(include_str!("../lua/set.lua")),
        }
    }

    /// Asks the gate for `units` of the drop. A missing count is reseeded from PostgreSQL and
    /// asked once more; a Redis that fails or is slow is passed by (PostgreSQL still decides).
    pub async fn pass(&self, drop_id: i64, units: i64) -> Verdict {
        let mut answer = self.take(drop_id, units).await;
        if matches!(answer, Ok(Take::Missing)) {
            if let Err(err) = self.reseed(drop_id).await {
                tracing::debug!(drop = drop_id, %err, "gate: reseed failed, asking PostgreSQL");
                return Verdict::AskDatabase;
            }
            answer = self.take(drop_id, units).await;
        }
        match answer {
            Ok(Take::Taken { generation }) => Verdict::Held(Hold {
                units,
                generation: Some(generation),
            }),
            Ok(Take::SoldOut) => Verdict::SoldOut,
            Ok(Take::Unsure | Take::Missing) => Verdict::AskDatabase,
            Err(err) => {
                tracing::debug!(drop = drop_id, %err, "gate: take failed, asking PostgreSQL");
                Verdict::Held(Hold {
                    units,
                    generation: None,
                })
            }
        }
    }

    /// The purchase sold the held units: they leave `held`. When the take's reply was lost,
    /// nothing is done: whether the units were taken is unknown, so `left + held` stays too
    /// high by them until the reconcile task rewrites it, which only sends buyers to
    /// PostgreSQL meanwhile.
    pub async fn settle(&self, drop_id: i64, hold: Hold) {
        let Some(generation) = hold.generation else {
            return;
        };
        let settled = self
            .link
            .script(
                &self.settle,
                &keys(&self.prefix, drop_id),
                &[hold.units.to_string(), generation],
                GATE_TIMEOUT,
            )
            .await;
        if let Err(err) = settled {
            tracing::debug!(drop = drop_id, %err, "gate: settlement failed");
        }
    }

    /// The purchase did not sell the held units: they go back to `left`. Right even if the
    /// take never landed (`left + held` does not move).
    pub async fn give_back(&self, drop_id: i64, hold: Hold) {
        let given = self
            .link
            .script(
                &self.give_back,
                &keys(&self.prefix, drop_id)[..2],
                &[hold.units.to_string()],
                GATE_TIMEOUT,
            )
            .await;
        if let Err(err) = given {
            tracing::debug!(drop = drop_id, %err, "gate: give-back failed");
        }
    }

    async fn take(&self, drop_id: i64, units: i64) -> Result<Take, LinkFailure> {
        let reply = self
            .link
            .script(
                &self.take,
                &keys(&self.prefix, drop_id),
                &[units.to_string()],
                GATE_TIMEOUT,
            )
            .await?;
        parse_take(reply).ok_or_else(|| LinkFailure::Mismatch("take: unexpected reply".into()))
    }

    /// Loads a missing count from PostgreSQL's `stock - sold`. By the time it lands the figure
    /// can only be too high (sold only grows), which costs a refused trip to PostgreSQL, never a
    /// false sold-out.
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
            .script(
                &self.reseed,
                &keys(&self.prefix, drop_id),
                &[left.to_string(), new_generation()],
                GATE_TIMEOUT,
            )
            .await
            .map(|_| ())
            .map_err(|err| err.to_string())
    }

    /// The reconcile task's write: `left` = `stock - sold`, nothing held, a new generation.
    pub async fn set(&self, drop_id: i64, left: i64) -> Result<(), LinkFailure> {
        self.link
            .script(
                &self.set,
                &keys(&self.prefix, drop_id),
                &[left.to_string(), new_generation()],
                RECONCILE_TIMEOUT,
            )
            .await
            .map(|_| ())
    }
}

fn new_generation() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `[code, left, gen]` after the nonce.
fn parse_take(reply: Vec<Value>) -> Option<Take> {
    let [code, left, generation]: [Value; 3] = reply.try_into().ok()?;
    let code = i64::from_redis_value(code).ok()?;
    i64::from_redis_value(left).ok()?;
    let generation = String::from_redis_value(generation).ok()?;
    match code {
        1 => Some(Take::Taken { generation }),
        0 => Some(Take::SoldOut),
        2 => Some(Take::Unsure),
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
        assert_eq!(
            keys("shop", 42),
            ["shop:drop:42:left", "shop:drop:42:held", "shop:drop:42:gen"]
        );
    }

    fn reply(code: i64, generation: &str) -> Vec<Value> {
        vec![
            Value::Int(code),
            Value::Int(3),
            Value::BulkString(generation.as_bytes().to_vec()),
        ]
    }

    #[test]
    fn take_replies_are_read_strictly() {
        assert_eq!(
            parse_take(reply(1, "g")),
            Some(Take::Taken {
                generation: "g".into()
            })
        );
        assert_eq!(parse_take(reply(0, "g")), Some(Take::SoldOut));
        assert_eq!(parse_take(reply(2, "g")), Some(Take::Unsure));
        assert_eq!(parse_take(reply(-1, "")), Some(Take::Missing));
        assert_eq!(parse_take(reply(7, "g")), None);
        assert_eq!(parse_take(vec![Value::Int(1), Value::Int(1)]), None);
        assert_eq!(
            parse_take(vec![Value::Okay, Value::Int(1), Value::Int(1)]),
            None
        );
    }
}
