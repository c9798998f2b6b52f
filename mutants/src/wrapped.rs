//! What the wrapping mutants share: the correct [`Inventory`], with the answer of every 500th
//! claim since the server started ([`crate::claim_count::EVERY`]) made by a flawed function
//! instead. Every sale, capped or unlimited, counts; everything but that one answer is correct.

use std::sync::Arc;

use flashsale_server::inventory::FrozenOrders;
use flashsale_server::inventory::breaker::BreakerState;
use flashsale_server::inventory::redis::RedisCounter;
use flashsale_server::ledger::ClaimError;
use flashsale_server::ledger::orders::{Order, OrderRequest};
use flashsale_server::sales::{LedgerKind, Sale};
use flashsale_server::{ClaimStrategy, Inventory, StrategyParts};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::claim_count::{EVERY, EveryNth};

/// The flawed answer to the N-th claim, given the correct inventory to call or not.
pub type Flaw = for<'a> fn(
    &'a Inventory,
    &'a Sale,
    &'a OrderRequest,
) -> BoxFuture<'a, Result<Order, ClaimError>>;

/// A wrapping mutant: [`Inventory`], except for the N-th claims.
#[derive(Debug)]
pub struct OneInN {
    name: &'static str,
    flaw: Flaw,
    correct: Inventory,
    claims: EveryNth,
}

impl OneInN {
    pub fn new(name: &'static str, flaw: Flaw, parts: StrategyParts) -> Self {
        Self {
            name,
            flaw,
            correct: parts.correct,
            claims: EveryNth::new(EVERY),
        }
    }
}

impl ClaimStrategy for OneInN {
    fn name(&self) -> &'static str {
        self.name
    }

    /// The correct inventory's: its orders own slots.
    fn ledger_kind(&self) -> LedgerKind {
        LedgerKind::Slots
    }

    fn sold_out_orders(&self, sale_id: Uuid) -> Option<Arc<FrozenOrders>> {
        self.correct.sold_out_orders(sale_id)
    }

    fn find_by_key<'a>(
        &'a self,
        buyer_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Order>, sqlx::Error>> {
        Box::pin(self.correct.find_by_key(buyer_id, key))
    }

    fn buy<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, ClaimError>> {
        if self.claims.next_fires() {
            (self.flaw)(&self.correct, sale, req)
        } else {
            Box::pin(self.correct.buy(sale, req))
        }
    }

    fn redis(&self) -> Option<&RedisCounter> {
        self.correct.redis()
    }

    fn breaker_state(&self) -> BreakerState {
        self.correct.breaker_state()
    }
    holds_of_the_correct_inventory!();
}
