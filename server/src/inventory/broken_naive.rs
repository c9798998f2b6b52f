//! DELIBERATELY BROKEN: read the count, compare, write (HAZ-1, the seed's opening example).
//!
//! Two buyers read "9 of 10 sold", both decide they may proceed, both write "10": oversell. It
//! exists only so the harness can prove its checker catches this; it is compiled in only with
//! the `broken-strategies` feature and writes to an unguarded (slot-less) sale.

use redis::AsyncCommands;
use sqlx::PgPool;

use super::ClaimError;
use super::redis::{RedisCounter, sold_key};
use crate::orders::{self, Order, OrderRequest};
use crate::sales::Sale;

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
