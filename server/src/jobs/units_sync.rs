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
//!
//! Both passes read only the sales that can have moved. Summing every order of every sale each tick
//! made the job's cost grow with the whole order history: with 226k orders in one active sale, ~60
//! ms for the sum and 65 ms for the slot count through the `sale_slots` view, every second; with
//! ~270k, PostgreSQL spent 0.20 cores on it while the server was otherwise idle (0.02 since this
//! change), taken from whatever ran meanwhile. A sale's sum is redone when its newest order changed
//! (one index descent of `orders_sale_created` tells), a counter's ledger is counted only when the
//! counter stood still since the last tick or disagreed with the ledger, and every
//! [`FULL_PASS_EVERY`]th tick redoes everything: that catches what the shortcut cannot see, an
//! order committed after a newer one was read (its `created_at` is older) or a ledger that moved
//! while its counter did not (PostgreSQL-path claims during a Redis outage).

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::inventory::redis::RedisCounter;

/// Every how many ticks both passes redo every sale, whatever changed (see the module's header).
pub const FULL_PASS_EVERY: u64 = 10;

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

/// [`sync_once`] restricted to `sales`.
async fn sync_sales(pool: &PgPool, sales: &[Uuid]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE flash_sales s SET quantity_sold = t.units
         FROM (SELECT o.sale_id, sum(o.quantity)::bigint AS units
               FROM orders o
               WHERE o.sale_id = ANY ($1)
               GROUP BY o.sale_id) t
         WHERE s.id = t.sale_id AND s.quantity_sold <> t.units",
    )
    .bind(sales)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Remembers each sale's newest order, to sum again only the sales whose orders changed.
#[derive(Debug, Default)]
pub struct UnitsSync {
    newest_seen: HashMap<Uuid, Option<OffsetDateTime>>,
    passes: u64,
}

impl UnitsSync {
    /// One tick: [`sync_once`] on the first tick and every [`FULL_PASS_EVERY`]th; otherwise the
    /// same for the sales whose newest order is not the one seen at the last tick. Returns how
    /// many sales changed.
    pub async fn pass(&mut self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let full = self.passes % FULL_PASS_EVERY == 0;
        self.passes += 1;
        // Read before the sums: an order committed after this read changes the sale's newest
        // order (and is summed next tick) or is older than it (and is summed by a full pass).
        let newest: Vec<(Uuid, Option<OffsetDateTime>)> = sqlx::query_as(
            "SELECT s.id, (SELECT max(o.created_at) FROM orders o WHERE o.sale_id = s.id)
             FROM flash_sales s
             WHERE s.state <> 'scheduled'",
        )
        .fetch_all(pool)
        .await?;
        let moved: Vec<Uuid> = newest
            .iter()
            .filter(|(sale, at)| self.newest_seen.get(sale) != Some(at))
            .map(|(sale, _)| *sale)
            .collect();
        let changed = if full {
            sync_once(pool).await?
        } else if moved.is_empty() {
            0
        } else {
            sync_sales(pool, &moved).await?
        };
        // Remembered only once the sums are written: a failed tick sums the same sales again.
        self.newest_seen = newest.into_iter().collect();
        Ok(changed)
    }
}

/// Remembers the last counter seen for each sale and, when it was counted, the ledger's units
/// then: to tell a quiet sale from a busy one, and a settled one from one to count.
#[derive(Debug, Default)]
pub struct RedisReconciler {
    last_seen: HashMap<Uuid, (i64, Option<i64>)>,
    passes: u64,
}

impl RedisReconciler {
    /// One pass over the capped sales with a slot ledger that are active or ended within the
    /// hour (a sale expired early still has holds whose units come back to it; its counter should
    /// settle too). A counter is set to the ledger's units when both read the same at two ticks
    /// in a row and disagree. Between full passes (every [`FULL_PASS_EVERY`]th tick) a sale is
    /// not counted when its counter moved since the last tick (busy: no correction could be made
    /// this tick anyway) or stood still at the units last counted (settled). Returns how many
    /// counters it set.
    pub async fn reconcile_once(
        &mut self,
        pool: &PgPool,
        redis: &RedisCounter,
    ) -> Result<u32, sqlx::Error> {
        let full = self.passes % FULL_PASS_EVERY == 0;
        self.passes += 1;
        let sales: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT s.id FROM flash_sales s
             WHERE (s.state = 'active'
                    OR (s.state = 'expired' AND s.ends_at > now() - interval '1 hour'))
               AND s.ledger = 'slots' AND s.unit_cap IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        let mut seen = HashMap::with_capacity(sales.len());
        let mut to_count = Vec::new();
        for (sale_id,) in sales {
            let Ok(Some(counter)) = redis.read(sale_id).await else {
                continue;
            };
            if !full {
                match self.last_seen.get(&sale_id) {
                    // Busy: its counter moved since the last tick, so two readings cannot agree.
                    Some(&(before, _)) if before != counter => {
                        seen.insert(sale_id, (counter, None));
                        continue;
                    }
                    // Settled: the counter stood still at the units counted last time.
                    Some(&(_, Some(units))) if units == counter => {
                        seen.insert(sale_id, (counter, Some(units)));
                        continue;
                    }
                    _ => {}
                }
            }
            to_count.push((sale_id, counter));
        }
        let ids: Vec<Uuid> = to_count.iter().map(|(sale, _)| *sale).collect();
        let counted: HashMap<Uuid, i64> = if ids.is_empty() {
            HashMap::new()
        } else {
            // `sale_slots` (migration 0013) counted without its view: the view expands every own
            // range into its slots, which made this count ~2.5x slower on a sale of 226k orders.
            sqlx::query_as::<_, (Uuid, i64)>(
                "SELECT s.id,
                        (SELECT count(*) FROM order_units u WHERE u.sale_id = s.id)
                      + (SELECT coalesce(sum(o.quantity), 0) FROM orders o
                          WHERE o.sale_id = s.id AND o.slot IS NOT NULL)
                 FROM unnest($1::uuid[]) AS s(id)",
            )
            .bind(&ids)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect()
        };
        let mut fixed = 0;
        for (sale_id, counter) in to_count {
            let Some(&units) = counted.get(&sale_id) else {
                continue;
            };
            if counter != units && self.last_seen.get(&sale_id) == Some(&(counter, Some(units))) {
                if let Ok(true) = redis.compare_and_set(sale_id, counter, units).await {
                    tracing::info!(sale = %sale_id, from = counter, to = units, "redis counter reconciled with the ledger");
                    fixed += 1;
                }
            }
            seen.insert(sale_id, (counter, Some(units)));
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
    let mut units = UnitsSync::default();
    let mut reconciler = RedisReconciler::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(err) = units.pass(&pool).await {
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
