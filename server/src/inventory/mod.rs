//! Inventory: deciding whether a buyer gets units, one file per claim path.
//!
//! - [`redis`]: the hot path, an atomic Lua claim on `flash_sale:{id}:inventory:sold`.
//! - [`postgres`]: the database path, correct on its own; the fallback when Redis fails.
//! - `broken_naive`, `broken_seed`: deliberately wrong strategies that exist only so the
//!   harness can prove it catches oversell (compiled in with the `broken-strategies` feature).
//!
//! Whatever path decides, the order is written through [`crate::ledger`] into the slot
//! ledger, which cannot represent more units than the cap: Redis admits and hints at slot numbers,
//! PostgreSQL has the last word.

pub mod breaker;
pub mod postgres;
pub mod redis;

#[cfg(feature = "broken-strategies")]
mod broken_naive;
#[cfg(feature = "broken-strategies")]
mod broken_seed;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use self::breaker::{BreakerState, CircuitBreaker};
use self::redis::{Claim, RedisCounter};
use crate::ledger::Ledger;
use crate::orders::{self, InsertError, NewOrder, Order, OrderRequest};
use crate::sales::{LedgerKind, Sale};

/// How claims are decided. Only `Redis` and `Postgres` can be named on the server's command line;
/// the broken ones exist only in builds with the `broken-strategies` feature (the harness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryStrategy {
    /// Redis + Lua on the hot path, PostgreSQL fallback (the default).
    Redis,
    /// The PostgreSQL path only.
    Postgres,
    /// Read the count, compare, write (HAZ-1): oversells under concurrency.
    #[cfg(feature = "broken-strategies")]
    BrokenNaive,
    /// The seed document taken literally: a missing key reads as 0, and the fallback decides from
    /// the lagging `quantity_sold`. Oversells under Redis faults.
    #[cfg(feature = "broken-strategies")]
    BrokenSeed,
}

impl InventoryStrategy {
    pub fn name(self) -> &'static str {
        match self {
            InventoryStrategy::Redis => "redis",
            InventoryStrategy::Postgres => "postgres",
            #[cfg(feature = "broken-strategies")]
            InventoryStrategy::BrokenNaive => "broken-naive",
            #[cfg(feature = "broken-strategies")]
            InventoryStrategy::BrokenSeed => "broken-seed",
        }
    }

    /// Every strategy this build can select, by name.
    pub fn all() -> Vec<InventoryStrategy> {
        vec![
            InventoryStrategy::Redis,
            InventoryStrategy::Postgres,
            #[cfg(feature = "broken-strategies")]
            InventoryStrategy::BrokenNaive,
            #[cfg(feature = "broken-strategies")]
            InventoryStrategy::BrokenSeed,
        ]
    }

    pub fn is_broken(self) -> bool {
        !matches!(self, InventoryStrategy::Redis | InventoryStrategy::Postgres)
    }

    pub fn uses_redis(self) -> bool {
        !matches!(self, InventoryStrategy::Postgres)
    }

    /// The ledger kind of the sales this strategy creates: broken strategies write the seed's
    /// data model (orders without slots), since the slot ledger would stop them from overselling.
    pub fn ledger(self) -> LedgerKind {
        if self.is_broken() {
            LedgerKind::Unguarded
        } else {
            LedgerKind::Slots
        }
    }
}

impl fmt::Display for InventoryStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InventoryStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = InventoryStrategy::all();
        all.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|k| k.name()).collect();
            format!(
                "unknown inventory strategy {s:?}; this build knows: {}",
                names.join(", ")
            )
        })
    }
}

/// Why a claim did not produce an order.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("sold out")]
    SoldOut,
    /// A concurrent request with the same idempotency key created the order first; the caller
    /// answers with that order (or a conflict if the bodies differ).
    #[error("idempotency key taken by a concurrent request")]
    DuplicateKey,
    /// The order could not be made durable; nothing was acknowledged (HAZ-10).
    #[error("order database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
}

impl From<sqlx::Error> for ClaimError {
    fn from(err: sqlx::Error) -> Self {
        ClaimError::Unavailable(err)
    }
}

impl From<InsertError> for ClaimError {
    fn from(err: InsertError) -> Self {
        match err {
            InsertError::DuplicateKey => ClaimError::DuplicateKey,
            InsertError::Database(e) => ClaimError::Unavailable(e),
            // Only reachable when a caller ignores the slot protocol; treat as a failed write.
            InsertError::SlotTaken => ClaimError::Unavailable(sqlx::Error::Protocol(
                "slot taken outside the claim protocol".into(),
            )),
        }
    }
}

/// The orders of a sale confirmed sold out, by idempotency key. Final: see
/// [`Inventory::sold_out_orders`].
pub type FrozenOrders = HashMap<String, Order>;

/// The largest sold-out sale whose orders are kept in memory (about 300 bytes each).
const MAX_FROZEN_ORDERS: i64 = 100_000;

/// How often a claim whose slot hint was taken raises the counter and claims through Redis again
/// before the ledger decides it instead.
const STALE_HINT_RETRIES: u32 = 3;

/// The claim service: picks the path, applies the fail-open policy, writes the order.
#[derive(Debug)]
pub struct Inventory {
    strategy: InventoryStrategy,
    pool: PgPool,
    ledger: Ledger,
    redis: Option<RedisCounter>,
    breaker: CircuitBreaker,
    /// Sales PostgreSQL has confirmed completely sold: final, since orders are never deleted and
    /// a full ledger takes no new slot, so a sold-out answer for them needs no round trip. For a
    /// sale of at most [`MAX_FROZEN_ORDERS`] orders, those orders are kept too, by idempotency
    /// key: the set can never change, so retries are answered from memory as well.
    confirmed_sold_out: RwLock<HashMap<Uuid, Option<Arc<FrozenOrders>>>>,
}

impl Inventory {
    pub fn new(
        strategy: InventoryStrategy,
        pool: PgPool,
        redis: Option<RedisCounter>,
        breaker: CircuitBreaker,
        ledger_deadline: Duration,
    ) -> Self {
        Self {
            strategy,
            ledger: Ledger::new(pool.clone(), ledger_deadline),
            pool,
            redis,
            breaker,
            confirmed_sold_out: RwLock::new(HashMap::new()),
        }
    }

    pub fn strategy(&self) -> InventoryStrategy {
        self.strategy
    }

    /// The order holding this idempotency key, if any. The correct strategies look it up through
    /// the group-committed ledger; the broken ones keep the one-query-per-request lookup of the
    /// naive design they model: batching staggers the first buyer of a burst ahead of the rest,
    /// which hides their read-check-write race on small sales and would let them look less
    /// broken than they are.
    pub async fn find_by_key(&self, key: &str) -> Result<Option<Order>, sqlx::Error> {
        if self.strategy.is_broken() {
            orders::find_by_key(&self.pool, key).await
        } else {
            self.ledger.find_by_key(key).await
        }
    }

    /// The group-committed order ledger (see [`crate::ledger`]).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn redis(&self) -> Option<&RedisCounter> {
        self.redis.as_ref()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Decides the claim and, when it succeeds, stores the order. The caller has validated the
    /// request (quantity, window, product) and checked the idempotency key.
    pub async fn buy(&self, sale: &Sale, req: &OrderRequest) -> Result<Order, ClaimError> {
        let Some(cap) = sale.cap else {
            // Unlimited: nothing to claim, only an order to record.
            return Ok(self
                .ledger
                .insert(NewOrder {
                    req: req.clone(),
                    sale_cap: None,
                    slots: Vec::new(),
                    decided_by: "unlimited",
                })
                .await?);
        };
        if self.is_confirmed_sold_out(sale.id) {
            return Err(ClaimError::SoldOut);
        }
        let result = match self.strategy {
            InventoryStrategy::Redis => match &self.redis {
                Some(redis) => self.buy_through_redis(redis, sale, cap, req).await,
                None => {
                    self.ledger
                        .claim_in_postgres(sale.id, cap, req, "postgres")
                        .await
                }
            },
            InventoryStrategy::Postgres => {
                self.ledger
                    .claim_in_postgres(sale.id, cap, req, "postgres")
                    .await
            }
            #[cfg(feature = "broken-strategies")]
            InventoryStrategy::BrokenNaive => {
                let redis = self.redis.as_ref().expect("broken-naive needs Redis");
                broken_naive::claim(&self.pool, redis, sale, cap, req).await
            }
            #[cfg(feature = "broken-strategies")]
            InventoryStrategy::BrokenSeed => {
                let redis = self.redis.as_ref().expect("broken-seed needs Redis");
                broken_seed::claim(&self.pool, redis, sale, cap, req).await
            }
        };
        if matches!(result, Err(ClaimError::SoldOut)) && !self.strategy.is_broken() {
            self.remember_if_sold_out(sale.id, cap).await;
        }
        result
    }

    /// The Redis path with its fail-open policy.
    async fn buy_through_redis(
        &self,
        redis: &RedisCounter,
        sale: &Sale,
        cap: i64,
        req: &OrderRequest,
    ) -> Result<Order, ClaimError> {
        let quantity = i64::from(req.quantity);
        let mut seeded = false;
        let mut stale_hints = 0;
        loop {
            if !self.breaker.allow() {
                // Redis failed repeatedly: skip it rather than wait out its timeout on every
                // claim; a probe is let through now and then to find it back (HAZ-6).
                return self
                    .ledger
                    .claim_in_postgres(sale.id, cap, req, "postgres-fallback")
                    .await;
            }
            let claim = match redis.claim(sale.id, cap, quantity).await {
                Ok(claim) => {
                    self.breaker.record_success();
                    claim
                }
                Err(failure) => {
                    self.breaker.record_failure();
                    // Redis failed or was too slow (HAZ-6). If the script ran and only its reply
                    // was lost (HAZ-14), its units stay counted in Redis: that can make Redis say
                    // "sold out" early, which PostgreSQL re-checks, but never sells a unit twice,
                    // because only the slot ledger below sells.
                    tracing::debug!(sale = %sale.id, %failure, "redis claim failed; falling back");
                    return self
                        .ledger
                        .claim_in_postgres(sale.id, cap, req, "postgres-fallback")
                        .await;
                }
            };
            match claim {
                Claim::Granted { sold_after } => {
                    let slots: Vec<i64> = (sold_after - quantity + 1..=sold_after).collect();
                    let order = NewOrder {
                        req: req.clone(),
                        sale_cap: Some(cap),
                        slots,
                        decided_by: "redis",
                    };
                    return match self.ledger.insert(order).await {
                        Ok(order) => Ok(order),
                        Err(InsertError::SlotTaken) if stale_hints < STALE_HINT_RETRIES => {
                            // Redis is behind the ledger (restarted, rolled back, or PostgreSQL
                            // sold while Redis was away). Raise the counter to the highest slot
                            // taken — which also absorbs this claim's own count, since its slot
                            // lies at or below it — and claim again: hints restart above every
                            // taken slot, so one conflict repairs the counter for everyone
                            // instead of each later claim paying for its own.
                            stale_hints += 1;
                            tracing::debug!(sale = %sale.id, "slot hint taken; raising the counter");
                            let highest = postgres::highest_slot(&self.pool, sale.id).await?;
                            if let Err(failure) = redis.raise_to(sale.id, highest).await {
                                tracing::debug!(sale = %sale.id, %failure, "could not raise the counter");
                            }
                            continue;
                        }
                        Err(InsertError::SlotTaken) => {
                            // Still colliding (a PostgreSQL-path claim keeps taking the slots
                            // Redis hands out next): the ledger decides this one.
                            self.ledger
                                .claim_in_postgres(sale.id, cap, req, "postgres-conflict")
                                .await
                        }
                        Err(err) => {
                            // No order, so the units go back (HAZ-5). If Redis is gone too, the
                            // over-count is harmless: sold-out answers are re-checked below.
                            if let Err(failure) = redis.release(sale.id, quantity).await {
                                tracing::warn!(sale = %sale.id, %failure, "could not release units");
                            }
                            Err(err.into())
                        }
                    };
                }
                Claim::SoldOut => {
                    // Redis may count units whose orders never landed (lost replies, failed
                    // releases): before saying sold out, the ledger confirms with one unlocked
                    // read. When it has room, it sells the unit itself, so stranded units are
                    // never lost (INV-5).
                    let units = postgres::units_claimed(&self.pool, sale.id).await?;
                    if units + quantity > cap {
                        return Err(ClaimError::SoldOut);
                    }
                    return self
                        .ledger
                        .claim_in_postgres(sale.id, cap, req, "postgres-recheck")
                        .await;
                }
                Claim::NotLoaded if !seeded => {
                    // A missing counter means "not loaded", never zero (HAZ-2).
                    let units = postgres::units_claimed(&self.pool, sale.id).await?;
                    if let Err(failure) = redis.seed(sale.id, units).await {
                        self.breaker.record_failure();
                        tracing::debug!(sale = %sale.id, %failure, "could not seed; falling back");
                        return self
                            .ledger
                            .claim_in_postgres(sale.id, cap, req, "postgres-fallback")
                            .await;
                    }
                    seeded = true;
                }
                Claim::NotLoaded => {
                    // Seeded, yet gone again (flushed under our feet): the ledger decides.
                    return self
                        .ledger
                        .claim_in_postgres(sale.id, cap, req, "postgres-fallback")
                        .await;
                }
            }
        }
    }

    fn is_confirmed_sold_out(&self, sale_id: Uuid) -> bool {
        self.confirmed_sold_out
            .read()
            .expect("sold-out set")
            .contains_key(&sale_id)
    }

    /// Every order of a sale PostgreSQL has confirmed sold out, by idempotency key, when the
    /// sale is small enough to keep them. The set is final: the ledger is append-only and has no
    /// free slot, so no order can join it. A buy of such a sale whose key is not in the set gets
    /// "sold out" without a round trip (issue 6, G2). The one answer this changes: a key already
    /// used by an order of *another* sale gets 409 `sold_out` here instead of 422
    /// `idempotency_key_reused`; both refuse and change nothing.
    pub fn sold_out_orders(&self, sale_id: Uuid) -> Option<Arc<FrozenOrders>> {
        self.confirmed_sold_out
            .read()
            .expect("sold-out set")
            .get(&sale_id)
            .cloned()
            .flatten()
    }

    async fn remember_if_sold_out(&self, sale_id: Uuid, cap: i64) {
        let Ok(units) = postgres::units_claimed(&self.pool, sale_id).await else {
            return;
        };
        if units < cap {
            return;
        }
        // The count saw every slot taken by committed orders, so the sale's orders are all
        // committed and no other can commit: reading them now reads the final set.
        let frozen = if cap <= MAX_FROZEN_ORDERS {
            match orders::for_sale(&self.pool, sale_id).await {
                Ok(orders) => Some(Arc::new(
                    orders
                        .into_iter()
                        .map(|o| (o.idempotency_key.clone(), o))
                        .collect(),
                )),
                Err(_) => None,
            }
        } else {
            None
        };
        self.confirmed_sold_out
            .write()
            .expect("sold-out set")
            .insert(sale_id, frozen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_round_trip_by_name_and_unknown_names_are_explained() {
        for strategy in InventoryStrategy::all() {
            assert_eq!(strategy.name().parse::<InventoryStrategy>(), Ok(strategy));
        }
        let err = "fast".parse::<InventoryStrategy>().unwrap_err();
        assert!(err.contains("redis") && err.contains("postgres"), "{err}");
    }

    #[test]
    fn only_broken_strategies_create_unguarded_sales() {
        assert_eq!(InventoryStrategy::Redis.ledger(), LedgerKind::Slots);
        assert_eq!(InventoryStrategy::Postgres.ledger(), LedgerKind::Slots);
        for strategy in InventoryStrategy::all() {
            assert_eq!(
                strategy.is_broken(),
                strategy.ledger() == LedgerKind::Unguarded
            );
        }
    }
}
