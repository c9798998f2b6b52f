//! DELIBERATELY BROKEN: read the count, compare, write (HAZ-1, the seed's opening example).
//!
//! Two buyers read "9 of 10 sold", both decide they may proceed, both write "10": oversell. It
//! exists only so the harness can prove its checker catches this; it lives in
//! `flashsale-mutants`, outside the server, and writes to an unguarded (slot-less) sale.

use redis::AsyncCommands;
use sqlx::PgPool;

use flashsale_server::StrategyParts;
use flashsale_server::inventory::redis::{RedisCounter, sold_key};
use flashsale_server::ledger::ClaimError;
use flashsale_server::ledger::orders::{self, Order, OrderRequest};
use flashsale_server::sales::Sale;
use futures::future::BoxFuture;

use crate::seed_model::SeedModel;

pub const NAME: &str = "broken-naive";

/// The strategy: [`claim`] in the seed's model.
pub fn strategy(parts: StrategyParts) -> SeedModel {
    SeedModel::new(NAME, boxed_claim, parts)
}

fn boxed_claim<'a>(
    pool: &'a PgPool,
    redis: &'a RedisCounter,
    sale: &'a Sale,
    cap: i64,
    req: &'a OrderRequest,
) -> BoxFuture<'a, Result<Order, ClaimError>> {
    Box::pin(claim(pool, redis, sale, cap, req))
}

/// Decides a claim of a capped sale and stores its order, wrongly.
pub async fn claim(
    pool: &PgPool,
    redis: &RedisCounter,
    sale: &Sale,
    cap: i64,
    req: &OrderRequest,
) -> Result<Order, ClaimError> {
    let mut conn = redis.connection();
    let key = sold_key(sale.id);
    let read: redis::RedisResult<Option<i64>> = conn.get(&key).await;
    let sold = match read {
        Ok(Some(sold)) => sold,
        _ => orders::units_in_orders(pool, sale.id).await?,
    };
    let quantity = i64::from(req.quantity);
    if sold + quantity > cap {
        return Err(ClaimError::SoldOut);
    }
    // The race: the order is written first and the count bumped after, as a checkout that
    // "records the sale, then updates stock" does; every buyer who read `sold` before the write
    // below lands believes the same units are free.
    let order = orders::insert(pool, req, None, &[], "broken-naive").await?;
    let _: redis::RedisResult<()> = conn.set(&key, sold + quantity).await;
    Ok(order)
}
