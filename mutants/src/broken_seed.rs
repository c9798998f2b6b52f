//! DELIBERATELY BROKEN: the seed document's design taken literally.
//!
//! Its Lua script reads a missing counter as 0 (`GET … or '0'`), so a Redis that restarts empty
//! sells the whole cap again (HAZ-2); its fallback is the conditional `UPDATE` on
//! `flash_sales.quantity_sold`, which the units-sync job updates only asynchronously, so it decides
//! from a lagging figure (HAZ-4). Without faults it holds; under Redis faults it oversells, which
//! the harness must catch.

use redis::Script;
use sqlx::PgPool;

use flashsale_server::StrategyParts;
use flashsale_server::inventory::redis::{RedisCounter, sold_key};
use flashsale_server::ledger::ClaimError;
use flashsale_server::ledger::orders::{self, Order, OrderRequest};
use flashsale_server::sales::Sale;
use futures::future::BoxFuture;

use crate::seed_model::SeedModel;

pub const NAME: &str = "broken-seed";

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

/// The seed document's script, verbatim in substance.
const SEED_SCRIPT: &str = r"
local sold = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
local qty = tonumber(ARGV[2])
if sold + qty > limit then
  return -1
end
return redis.call('INCRBY', KEYS[1], qty)
";

/// Decides a claim of a capped sale and stores its order, wrongly.
pub async fn claim(
    pool: &PgPool,
    redis: &RedisCounter,
    sale: &Sale,
    cap: i64,
    req: &OrderRequest,
) -> Result<Order, ClaimError> {
    let quantity = i64::from(req.quantity);
    let mut conn = redis.connection();
    let script = Script::new(SEED_SCRIPT);
    let mut invocation = script.key(sold_key(sale.id));
    invocation.arg(cap).arg(quantity);
    let answer = tokio::time::timeout(redis.timeout(), invocation.invoke_async::<i64>(&mut conn));
    match answer.await {
        Ok(Ok(-1)) => Err(ClaimError::SoldOut),
        Ok(Ok(_)) => Ok(orders::insert(pool, req, None, &[], "broken-seed-redis").await?),
        _ => {
            // The seed's fallback: `claim_unit!`, a conditional UPDATE on the lagging column.
            let updated = sqlx::query(
                "UPDATE flash_sales SET quantity_sold = quantity_sold + $2
                 WHERE id = $1 AND quantity_sold + $2 <= $3",
            )
            .bind(sale.id)
            .bind(quantity)
            .bind(cap)
            .execute(pool)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(ClaimError::SoldOut);
            }
            Ok(orders::insert(pool, req, None, &[], "broken-seed-postgres").await?)
        }
    }
}
