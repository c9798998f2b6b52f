//! DELIBERATELY BROKEN: an acknowledgement without an order, breaking INV-2 (no lost
//! acknowledgement).
//!
//! The correct inventory (see [`crate::wrapped`]), except that every 500th claim since the
//! server started ([`crate::claim_count::EVERY`]) is answered 201 with a made-up order that is
//! never stored and claims no units. A run needs at least 500 claims to see it. The made-up
//! order's units are not taken from the sale, so when the sale sells out the units acknowledged
//! exceed the cap: INV-1 (which counts acknowledged units) is then violated too; below the cap
//! only INV-2 is.

use flashsale_server::StrategyParts;
use flashsale_server::inventory::Inventory;
use flashsale_server::ledger::ClaimError;
use flashsale_server::ledger::orders::{Order, OrderRequest};
use flashsale_server::sales::Sale;
use futures::future::BoxFuture;
use sqlx::types::time::OffsetDateTime;
use uuid::Uuid;

use crate::wrapped::OneInN;

pub const NAME: &str = "ack-without-order";

/// The strategy: the correct inventory, with [`made_up`] answering every N-th claim.
pub fn strategy(parts: StrategyParts) -> OneInN {
    OneInN::new(NAME, flaw, parts)
}

fn flaw<'a>(
    _correct: &'a Inventory,
    _sale: &'a Sale,
    req: &'a OrderRequest,
) -> BoxFuture<'a, Result<Order, ClaimError>> {
    Box::pin(async move { Ok(made_up(req)) })
}

/// An order as the buyer would see it, with a fresh id, stored nowhere.
pub fn made_up(req: &OrderRequest) -> Order {
    Order {
        order_id: Uuid::new_v4(),
        sale_id: req.sale_id,
        product_id: req.product_id.clone(),
        buyer_id: req.buyer_id.clone(),
        quantity: req.quantity,
        unit_price_cents: req.unit_price_cents,
        idempotency_key: req.idempotency_key.clone(),
        decided_by: "redis".to_owned(),
        created_at: OffsetDateTime::now_utc(),
    }
}
