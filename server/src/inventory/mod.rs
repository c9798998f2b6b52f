//! Inventory: deciding whether a buyer gets units, one file per claim path.
//!
//! - [`ClaimStrategy`]: the seam the HTTP layer calls through; its doc comment is the contract.
//! - [`Inventory`]: the server's one implementation, the `redis` and `postgres` strategies.
//! - [`redis`]: the hot path, an atomic Lua claim on `flash_sale:{id}:inventory:sold`.
//! - [`breaker`]: keeps claims off a Redis that keeps failing.
//! - `admission`: the Redis path's fail-open loop, one for buys and cart holds alike.
//! - The PostgreSQL path, correct on its own and the fallback when Redis fails, is the ledger's
//!   ([`crate::ledger::claims`]).
//!
//! Whatever path decides, the order is written through [`crate::ledger`] into the slot
//! ledger, which cannot represent more units than the cap: Redis admits and hints at slot numbers,
//! PostgreSQL has the last word. The deliberately broken strategies the harness must catch are not
//! in this crate at all (see [`ClaimStrategy`]).

mod admission;
pub mod breaker;
pub mod redis;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

use self::breaker::{BreakerState, CircuitBreaker};
use self::redis::RedisCounter;
use crate::ledger::holds::{self, Hold, HoldError, HoldRequest};
use crate::ledger::orders::{NewOrder, Order, OrderRequest};
use crate::ledger::{ClaimError, Ledger};
use crate::metrics::ServerMetrics;
use crate::sales::{LedgerKind, Sale};

/// The seam between the HTTP layer and whatever decides claims. [`crate::AppState`] holds one
/// `Arc<dyn ClaimStrategy>`, made once at start-up by the factory given to [`crate::build_with`]
/// ([`crate::build`] uses [`Inventory`]). The server ships only correct strategies; the
/// deliberately broken ones the harness must catch (crate `flashsale-mutants`) implement this
/// trait outside the server, usually by wrapping an [`Inventory`] and perturbing one answer, so no
/// build of `flashsale-server` contains them.
///
/// The contract, as the buyer and admin routes rely on it:
///
/// - [`name`](Self::name): the strategy's name, reported by the inventory view.
/// - [`ledger_kind`](Self::ledger_kind): the ledger of every sale created while this strategy
///   runs. [`LedgerKind::Slots`] for anything that writes orders with slots through
///   [`Ledger`]; [`LedgerKind::Unguarded`] for a strategy that writes orders without slots (the
///   slot ledger would refuse them, and would stop a mutant from overselling).
/// - [`sold_out_orders`](Self::sold_out_orders): `Some(orders)` only when the sale's set of orders
///   is final (nothing can join it); the buyer route then answers every buy of that sale from the
///   set (a retry gets its order, any other (buyer, key) 409) and calls neither method below.
///   `None` is
///   always allowed.
/// - [`find_by_key`](Self::find_by_key): the buyer's order holding this idempotency key, of any
///   sale (keys are scoped to the buyer: another buyer's order is never an answer).
///   Asked before every `buy` (a hit is replayed, or refused as a reused key, and `buy` is not
///   called) unless [`buy_checks_keys`](Self::buy_checks_keys) says otherwise, and again after
///   `buy` answers [`ClaimError::DuplicateKey`]. This is the whole idempotency path: a strategy
///   that controls it controls what a retry sees.
/// - [`buy_checks_keys`](Self::buy_checks_keys): `false` (the default) keeps the order above.
///   `true` promises that `buy` itself refuses a key that already holds an order of the buyer
///   (answering [`ClaimError::DuplicateKey`], [`ClaimError::SoldOut`] or
///   [`ClaimError::BuyerLimit`]), stores nothing for it and keeps no unit it claimed for it; the
///   route then calls `buy` first and asks `find_by_key` only after one of those three refusals,
///   whose hit is the answer (the retry's order). A fresh key, the common case, costs no lookup.
/// - [`buy`](Self::buy): called with a validated request (quantity, window, product checked) whose
///   key held no order a moment ago (or, when `buy_checks_keys`, whose key was not looked up).
///   `Ok(order)` means the order is durable: the buyer gets a 201
///   with it. [`ClaimError::SoldOut`] and [`ClaimError::BuyerLimit`] (the sale's
///   `per_buyer_limit` would be passed by the buyer's orders together) are 409s;
///   [`ClaimError::DuplicateKey`] means a concurrent request of the buyer with the same key
///   stored its order first (the route answers with that one);
///   [`ClaimError::Unavailable`] is a 503, an unknown outcome the buyer retries with the same key.
/// - [`redis`](Self::redis): the Redis counter, if the strategy has one; the inventory view reads
///   it and the units-sync job reconciles it with the ledger.
/// - [`breaker_state`](Self::breaker_state): reported by the inventory view.
///
/// A correct strategy keeps every invariant the harness checks (no more units than the cap, no
/// acknowledged order missing, no order unacknowledged without cause, ...); a mutant breaks one on
/// purpose and says which in its documentation.
///
/// Wrapping: [`crate::StrategyParts`] hands a factory the pool, the Redis counter and the correct
/// [`Inventory`], whose inherent methods of the same names can be called and their answers
/// perturbed (dropped, replaced, repeated). The correct `Inventory` gives a capped sale's orders
/// slots, so it serves only [`LedgerKind::Slots`] sales (and unlimited ones); a strategy choosing
/// `Unguarded` writes its capped sales' orders itself, without slots
/// ([`crate::ledger::orders::insert`] with none).
///
/// The async methods return boxed futures so that the trait can be used as `dyn`.
pub trait ClaimStrategy: fmt::Debug + Send + Sync {
    fn name(&self) -> &'static str;
    fn ledger_kind(&self) -> LedgerKind;
    fn sold_out_orders(&self, sale_id: Uuid) -> Option<Arc<FrozenOrders>>;
    fn find_by_key<'a>(
        &'a self,
        buyer_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Order>, sqlx::Error>>;
    fn buy<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, ClaimError>>;
    /// See the contract above: whether the route may skip the key lookup before `buy`.
    fn buy_checks_keys(&self) -> bool {
        false
    }
    fn redis(&self) -> Option<&RedisCounter>;
    fn breaker_state(&self) -> BreakerState;
    /// Cart holds (issue 15): the correct [`Inventory::reserve`], [`Inventory::checkout`] and
    /// [`Inventory::release`]; a mutant that breaks INV-7 perturbs one of them.
    fn reserve<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a HoldRequest,
    ) -> BoxFuture<'a, Result<Hold, HoldError>>;
    fn checkout<'a>(
        &'a self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &'a str,
        quantity: Option<i32>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<holds::CheckedOut, HoldError>>;
    fn release<'a>(
        &'a self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &'a str,
    ) -> BoxFuture<'a, Result<Hold, HoldError>>;
}

/// The correct strategies, the only ones this server can run. The `flashsale-server` binary names
/// them on its command line; the harness's wider choice, mutants included, is
/// `flashsale_mutants::InventoryStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryStrategy {
    /// Redis + Lua on the hot path, PostgreSQL fallback (the default).
    Redis,
    /// The PostgreSQL path only.
    Postgres,
}

impl InventoryStrategy {
    pub fn name(self) -> &'static str {
        match self {
            InventoryStrategy::Redis => "redis",
            InventoryStrategy::Postgres => "postgres",
        }
    }

    /// Every strategy this server can run, by name.
    pub fn all() -> Vec<InventoryStrategy> {
        vec![InventoryStrategy::Redis, InventoryStrategy::Postgres]
    }

    pub fn uses_redis(self) -> bool {
        !matches!(self, InventoryStrategy::Postgres)
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
        strategy_named(s, &InventoryStrategy::all(), |k| k.name())
    }
}

/// The strategy of `all` called `name`, or an error listing every name: the one parser of the
/// server's strategy names and of the harness's wider list (mutants included).
pub fn strategy_named<T: Copy>(
    name: &str,
    all: &[T],
    name_of: impl Fn(T) -> &'static str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|k| name_of(*k) == name)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|k| name_of(*k)).collect();
            format!(
                "unknown inventory strategy {name:?}; known strategies: {}",
                names.join(", ")
            )
        })
}

/// The orders of a sale confirmed sold out, by buyer id and then idempotency key (two levels, so
/// a lookup borrows the request's strings instead of building a key pair). Final: see
/// [`Inventory::sold_out_orders`].
pub type FrozenOrders = HashMap<String, HashMap<String, Order>>;

/// The largest sold-out sale whose orders are kept in memory (about 300 bytes each).
const MAX_FROZEN_ORDERS: i64 = 100_000;

/// The claim service: picks the path, applies the fail-open policy, writes the order.
#[derive(Debug)]
pub struct Inventory {
    strategy: InventoryStrategy,
    ledger: Ledger,
    redis: Option<RedisCounter>,
    breaker: CircuitBreaker,
    /// Sales PostgreSQL has confirmed completely sold: final, since orders are never deleted and
    /// a full ledger takes no new slot, so a sold-out answer for them needs no round trip. For a
    /// sale of at most [`MAX_FROZEN_ORDERS`] orders, those orders are kept too, by idempotency
    /// key: the set can never change, so retries are answered from memory as well.
    /// Keyed by sale ids (see `SaleCache`'s map for the hasher).
    confirmed_sold_out: RwLock<foldhash::HashMap<Uuid, Option<Arc<FrozenOrders>>>>,
}

impl Inventory {
    pub fn new(
        strategy: InventoryStrategy,
        pool: PgPool,
        redis: Option<RedisCounter>,
        breaker: CircuitBreaker,
        ledger_deadline: Duration,
        metrics: Arc<ServerMetrics>,
    ) -> Self {
        Self {
            strategy,
            ledger: Ledger::new(pool, ledger_deadline, metrics),
            redis,
            breaker,
            confirmed_sold_out: RwLock::new(foldhash::HashMap::default()),
        }
    }

    /// The buyer's order holding this idempotency key, if any, looked up through the
    /// group-committed ledger.
    pub async fn find_by_key(
        &self,
        buyer_id: &str,
        key: &str,
    ) -> Result<Option<Order>, sqlx::Error> {
        self.ledger.find_by_key(buyer_id, key).await
    }

    pub fn redis(&self) -> Option<&RedisCounter> {
        self.redis.as_ref()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Decides the claim and, when it succeeds, stores the order. The caller has validated the
    /// request (quantity, window, product); the idempotency key may hold an order already, which
    /// the ledger's unique key refuses (see [`ClaimStrategy::buy_checks_keys`]).
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
                Some(redis) => {
                    let buy = admission::Admit {
                        sale_id: sale.id,
                        cap,
                        req,
                    };
                    self.admit_through_redis(redis, &buy).await
                }
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
        };
        if matches!(result, Err(ClaimError::SoldOut)) {
            self.remember_if_sold_out(sale.id, cap).await;
        }
        result
    }

    /// Reserves units for a cart hold (issue 15): on the `redis` strategy the units are claimed
    /// through the same Lua counter as orders (one script decides orders and holds together) and
    /// the hold is stored with the slots it hints at; on the PostgreSQL path, and whenever Redis
    /// fails or is behind, under the sale's lock ([`holds::reserve`], which expires due holds
    /// before answering sold out). Unlimited sales' holds are advisory and take nothing.
    pub async fn reserve(&self, sale: &Sale, req: &HoldRequest) -> Result<Hold, HoldError> {
        let Some(cap) = sale.cap else {
            return Ok(holds::reserve(self.ledger.pool(), None, req, "unlimited")
                .await?
                .0);
        };
        match (self.strategy, &self.redis) {
            (InventoryStrategy::Redis, Some(redis)) => {
                let reserve = admission::Admit {
                    sale_id: sale.id,
                    cap,
                    req,
                };
                self.admit_through_redis(redis, &reserve).await
            }
            _ => {
                self.reserve_in_postgres(sale.id, cap, req, "postgres")
                    .await
            }
        }
    }

    async fn reserve_in_postgres(
        &self,
        sale_id: Uuid,
        cap: i64,
        req: &HoldRequest,
        decided_by: &'static str,
    ) -> Result<Hold, HoldError> {
        let (hold, freed) = holds::reserve(self.ledger.pool(), Some(cap), req, decided_by).await?;
        self.give_back(sale_id, freed).await;
        Ok(hold)
    }

    /// Units that left the ledger (released or expired holds) leave the Redis counter too; a
    /// failure leaves it above the truth, which the reconcile corrects (never below).
    async fn give_back(&self, sale_id: Uuid, units: i64) {
        if let (Some(redis), true) = (&self.redis, units > 0) {
            if let Err(failure) = redis.release(sale_id, units).await {
                tracing::debug!(sale = %sale_id, %failure, "could not give units back to redis");
            }
        }
    }

    /// Releases a live hold (idempotent): its units go back to the ledger and to Redis.
    pub async fn release(
        &self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &str,
    ) -> Result<Hold, HoldError> {
        let (hold, freed) = holds::release(self.ledger.pool(), sale_id, hold_id, buyer_id).await?;
        self.give_back(sale_id, freed).await;
        Ok(hold)
    }

    /// Checks a live hold out into its order (idempotent by hold). The units stay counted in
    /// Redis: they move from the hold to the order in the ledger.
    pub async fn checkout(
        &self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &str,
        quantity: Option<i32>,
        idempotency_key: &str,
    ) -> Result<holds::CheckedOut, HoldError> {
        holds::checkout(
            self.ledger.pool(),
            sale_id,
            hold_id,
            buyer_id,
            quantity,
            idempotency_key,
        )
        .await
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
    /// "sold out" without a round trip (G2 in docs/performance.md). The one answer this changes: a key already
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
        // Only orders' slots are final: a sale full of holds may sell again when they end.
        let Ok(units) = self.ledger.units_in_order_slots(sale_id).await else {
            return;
        };
        if units < cap {
            return;
        }
        // The count saw every slot taken by committed orders, so the sale's orders are all
        // committed and no other can commit: reading them now reads the final set.
        let frozen = if cap <= MAX_FROZEN_ORDERS {
            match self.ledger.orders_of(sale_id).await {
                Ok(orders) => {
                    let mut by_buyer = FrozenOrders::new();
                    for order in orders {
                        by_buyer
                            .entry(order.buyer_id.clone())
                            .or_default()
                            .insert(order.idempotency_key.clone(), order);
                    }
                    Some(Arc::new(by_buyer))
                }
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

impl ClaimStrategy for Inventory {
    fn name(&self) -> &'static str {
        self.strategy.name()
    }

    /// Every order this inventory writes to a capped sale owns its slots.
    fn ledger_kind(&self) -> LedgerKind {
        LedgerKind::Slots
    }

    fn sold_out_orders(&self, sale_id: Uuid) -> Option<Arc<FrozenOrders>> {
        Inventory::sold_out_orders(self, sale_id)
    }

    fn find_by_key<'a>(
        &'a self,
        buyer_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Order>, sqlx::Error>> {
        Box::pin(Inventory::find_by_key(self, buyer_id, key))
    }

    fn buy<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, ClaimError>> {
        Box::pin(Inventory::buy(self, sale, req))
    }

    /// Yes: every order is stored through the ledger, whose `UNIQUE (buyer_id, idempotency_key)`
    /// refuses a second order of a key (DuplicateKey, nothing stored); the Redis path gives back
    /// the units of a claim it could not store, and the PostgreSQL path's transaction stores
    /// nothing. A retry answered "sold out" or "over the limit" is looked up by the route.
    fn buy_checks_keys(&self) -> bool {
        true
    }

    fn redis(&self) -> Option<&RedisCounter> {
        Inventory::redis(self)
    }

    fn breaker_state(&self) -> BreakerState {
        Inventory::breaker_state(self)
    }

    fn reserve<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a HoldRequest,
    ) -> BoxFuture<'a, Result<Hold, HoldError>> {
        Box::pin(Inventory::reserve(self, sale, req))
    }

    fn checkout<'a>(
        &'a self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &'a str,
        quantity: Option<i32>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<holds::CheckedOut, HoldError>> {
        Box::pin(Inventory::checkout(
            self,
            sale_id,
            hold_id,
            buyer_id,
            quantity,
            idempotency_key,
        ))
    }

    fn release<'a>(
        &'a self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &'a str,
    ) -> BoxFuture<'a, Result<Hold, HoldError>> {
        Box::pin(Inventory::release(self, sale_id, hold_id, buyer_id))
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
}
