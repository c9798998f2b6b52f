//! Units sync (`FlashSaleUnitsUpdateJob` in the seed): brings `flash_sales.quantity_sold` in line
//! with the orders, asynchronously, so reporting views stay accurate without sitting on the hot
//! path. No claim ever decides from this column (HAZ-4); it is a report, converging (INV-6).
//!
//! The same job expires cart holds past their time (their units come back to the ledger and to
//! the Redis counter), and reconciles the Redis counter with the ledger once a sale is quiet. Redis can
//! drift from the truth in both directions: above it when a claim ran but its order never landed
//! (a lost reply, HAZ-14; a release that failed), below it after a rollback or while the
//! PostgreSQL path sold (HAZ-3, HAZ-4). Neither can oversell — the slot ledger decides — but the
//! counter should converge. It is corrected only when neither figure moved for a whole interval
//! (no claim in flight), and only by compare-and-set, so a claim made in between is never lost.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::inventory::redis::RedisCounter;

/// Sets `quantity_sold` of every active or expired sale to the units in its orders. Returns how
/// many sales changed. Safe to run twice or concurrently: it only ever writes the truth.
pub async fn sync_once(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE flash_sales s SET quantity_sold = t.units
         FROM (SELECT o.sale_id, sum(o.quantity)::bigint AS units
               FROM orders o JOIN flash_sales f ON f.id = o.sale_id
               WHERE f.state <> 'scheduled'
               GROUP BY o.sale_id) t
         WHERE s.id = t.sale_id AND s.quantity_sold <> t.units",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Remembers the last (counter, units) seen for each sale, to tell a quiet sale from a busy one.
#[derive(Debug, Default)]
pub struct RedisReconciler {
    last_seen: HashMap<Uuid, (i64, i64)>,
}

impl RedisReconciler {
    /// One pass over the capped sales with a slot ledger that are active or ended within the
    /// hour (a sale expired early still has holds whose units come back to it; its counter should
    /// settle too). Returns how many counters it set.
    pub async fn reconcile_once(
        &mut self,
        pool: &PgPool,
        redis: &RedisCounter,
    ) -> Result<u32, sqlx::Error> {
        let sales: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT s.id, (SELECT count(*) FROM sale_slots u WHERE u.sale_id = s.id)
             FROM flash_sales s
             WHERE (s.state = 'active'
                    OR (s.state = 'expired' AND s.ends_at > now() - interval '1 hour'))
               AND s.ledger = 'slots' AND s.unit_cap IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        let mut fixed = 0;
        let mut seen = HashMap::with_capacity(sales.len());
        for (sale_id, units) in sales {
            let Ok(Some(counter)) = redis.read(sale_id).await else {
                continue;
            };
            if counter != units && self.last_seen.get(&sale_id) == Some(&(counter, units)) {
                if let Ok(true) = redis.compare_and_set(sale_id, counter, units).await {
                    tracing::info!(sale = %sale_id, from = counter, to = units, "redis counter reconciled with the ledger");
                    fixed += 1;
                }
            }
            seen.insert(sale_id, (counter, units));
        }
        self.last_seen = seen;
        Ok(fixed)
    }
}

/// Expires every cart hold past its `expires_at` (the ledger gives their slots back in the same
/// statement) and gives the units back to the Redis counter, which counted them when they were
/// held. Returns the units freed. A release that fails leaves Redis above the truth, which the
/// reconcile corrects once the sale is quiet (HAZ-5's rule: never below, never oversold).
pub async fn expire_holds_once(
    pool: &PgPool,
    redis: Option<&RedisCounter>,
) -> Result<i64, sqlx::Error> {
    let freed = crate::ledger::holds::expire_due(pool).await?;
    let mut total = 0;
    for (sale_id, units) in freed {
        total += units;
        if let Some(redis) = redis {
            if let Err(failure) = redis.release(sale_id, units).await {
                tracing::debug!(sale = %sale_id, %failure, "could not give expired holds' units back to redis");
            }
        }
    }
    Ok(total)
}

/// Runs [`sync_once`], [`expire_holds_once`] and (when Redis is used) the Redis reconcile every
/// `interval` until `shutdown` changes.
pub async fn run(
    pool: PgPool,
    redis: Option<RedisCounter>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reconciler = RedisReconciler::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(err) = sync_once(&pool).await {
                    tracing::warn!(error = %err, "units sync failed; will retry");
                }
                if let Err(err) = expire_holds_once(&pool, redis.as_ref()).await {
                    tracing::warn!(error = %err, "hold expiry failed; will retry");
                }
                if let Some(redis) = &redis {
                    if let Err(err) = reconciler.reconcile_once(&pool, redis).await {
                        tracing::warn!(error = %err, "redis reconcile failed; will retry");
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
