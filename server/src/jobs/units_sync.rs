//! Units sync (`FlashSaleUnitsUpdateJob` in the seed): brings `flash_sales.quantity_sold` in line
//! with the orders, asynchronously, so reporting views stay accurate without sitting on the hot
//! path. No claim ever decides from this column (HAZ-4); it is a report, converging (INV-6).

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

/// Sets `quantity_sold` of every active or recently expired sale to the units in its orders.
/// Returns how many sales changed. Safe to run twice or concurrently: it only ever writes the
/// truth.
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

/// Runs [`sync_once`] every `interval` until `shutdown` changes.
pub async fn run(pool: PgPool, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(err) = sync_once(&pool).await {
                    tracing::warn!(error = %err, "units sync failed; will retry");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
