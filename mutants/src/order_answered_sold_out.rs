//! DELIBERATELY BROKEN: an order recorded but answered "sold out", breaking INV-3 (no phantom
//! order).
//!
//! The correct inventory (see [`crate::wrapped`]), except that every 500th claim since the
//! server started ([`crate::claim_count::EVERY`]) is decided and its order stored as usual, and
//! the buyer is then answered 409 `sold_out`: a rejected attempt owns an order. A run needs at
//! least 500 claims to see it. When the sale does not sell out, that sold-out answer is also a
//! false one while units remain, so INV-5 is violated too; a run whose sale sells out shows INV-3
//! alone.

use flashsale_server::StrategyParts;
use flashsale_server::inventory::Inventory;
use flashsale_server::ledger::ClaimError;
use flashsale_server::ledger::orders::{Order, OrderRequest};
use flashsale_server::sales::Sale;
use futures::future::BoxFuture;

use crate::wrapped::OneInN;

pub const NAME: &str = "order-answered-sold-out";

/// The strategy: the correct inventory, with [`flaw`] answering every N-th claim.
pub fn strategy(parts: StrategyParts) -> OneInN {
    OneInN::new(NAME, flaw, parts)
}

/// Buys correctly, then says sold out if the buy succeeded.
fn flaw<'a>(
    correct: &'a Inventory,
    sale: &'a Sale,
    req: &'a OrderRequest,
) -> BoxFuture<'a, Result<Order, ClaimError>> {
    Box::pin(async move {
        correct.buy(sale, req).await?;
        Err(ClaimError::SoldOut)
    })
}
