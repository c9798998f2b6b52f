//! What the seed-model mutants share: the seed document's data model (orders without slots, in an
//! `unguarded` sale) and its one-query-per-request idempotency lookup, around a claim of their own.
//!
//! [`SeedModel`] is the [`ClaimStrategy`] of both; each mutant module supplies only its claim.

use std::sync::Arc;

use flashsale_server::inventory::FrozenOrders;
use flashsale_server::inventory::breaker::BreakerState;
use flashsale_server::inventory::redis::RedisCounter;
use flashsale_server::ledger::ClaimError;
use flashsale_server::ledger::orders::{self, Order, OrderRequest};
use flashsale_server::sales::{LedgerKind, Sale};
use flashsale_server::{ClaimStrategy, Inventory, StrategyParts};
use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

/// The ledger of the sales a seed-model mutant creates: without slots, since the slot ledger would
/// stop it from overselling and the harness could never prove it catches it.
pub const LEDGER: LedgerKind = LedgerKind::Unguarded;

/// A mutant's claim of a capped sale: decide, and store the order (without slots) if granted.
pub type Claim = for<'a> fn(
    &'a PgPool,
    &'a RedisCounter,
    &'a Sale,
    i64,
    &'a OrderRequest,
) -> BoxFuture<'a, Result<Order, ClaimError>>;

/// A seed-model mutant: `claim` decides capped sales; everything else is the seed's model.
#[derive(Debug)]
pub struct SeedModel {
    name: &'static str,
    claim: Claim,
    pool: PgPool,
    redis: RedisCounter,
    /// Records unlimited sales' orders (nothing to claim, nothing to get wrong) and reports the
    /// breaker, which the mutants never use.
    correct: Inventory,
}

impl SeedModel {
    /// Panics without Redis: [`crate::build`] always connects it for a mutant.
    pub fn new(name: &'static str, claim: Claim, parts: StrategyParts) -> Self {
        Self {
            name,
            claim,
            pool: parts.pool,
            redis: parts
                .redis
                .unwrap_or_else(|| panic!("the {name} strategy needs Redis")),
            correct: parts.correct,
        }
    }
}

impl ClaimStrategy for SeedModel {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ledger_kind(&self) -> LedgerKind {
        LEDGER
    }

    /// Never: the seed's model has no notion of a confirmed sold-out sale.
    fn sold_out_orders(&self, _sale_id: Uuid) -> Option<Arc<FrozenOrders>> {
        None
    }

    /// One query per request, as the naive design they model does, not the correct strategies'
    /// group-committed lookup: batching staggers the first buyer of a burst ahead of the rest,
    /// which hides their read-check-write race on small sales and would let them look less broken
    /// than they are.
    fn find_by_key<'a>(
        &'a self,
        buyer_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Order>, sqlx::Error>> {
        Box::pin(orders::find_by_key(&self.pool, buyer_id, key))
    }

    fn buy<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, ClaimError>> {
        match sale.cap {
            Some(cap) => (self.claim)(&self.pool, &self.redis, sale, cap, req),
            None => Box::pin(self.correct.buy(sale, req)),
        }
    }

    fn redis(&self) -> Option<&RedisCounter> {
        Some(&self.redis)
    }

    fn breaker_state(&self) -> BreakerState {
        self.correct.breaker_state()
    }
    holds_of_the_correct_inventory!();
}
