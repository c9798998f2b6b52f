//! The PostgreSQL path (`claim_unit` in the seed), correct on its own.
//!
//! It never decides from `flash_sales.quantity_sold`, which lags by design (HAZ-4): it counts the
//! slots the ledger holds and takes free ones, inside a transaction that holds a per-sale advisory
//! lock so PostgreSQL-path claims of one sale queue instead of colliding. Claims granted by Redis
//! whose orders are still in flight hold their slots through the primary key: if this path picks
//! such a slot, one of the two inserts fails with a unique violation and is retried, so no slot is
//! sold twice.

use sqlx::PgPool;
use uuid::Uuid;

use super::ClaimError;
use crate::orders::{self, InsertError, Order, OrderRequest};
use crate::sales::Sale;

/// How often a claim that lost a slot race retries before answering 503.
const SLOT_RACE_RETRIES: usize = 16;

/// Units held by the sale's slot ledger (committed orders only).
pub async fn units_claimed(pool: &PgPool, sale_id: Uuid) -> Result<i64, sqlx::Error> {
    let (units,): (i64,) = sqlx::query_as("SELECT count(*) FROM order_units WHERE sale_id = $1")
        .bind(sale_id)
        .fetch_one(pool)
        .await?;
    Ok(units)
}

/// The highest slot the sale's ledger holds (0 when none).
pub async fn highest_slot(pool: &PgPool, sale_id: Uuid) -> Result<i64, sqlx::Error> {
    let (highest,): (i64,) =
        sqlx::query_as("SELECT coalesce(max(slot), 0) FROM order_units WHERE sale_id = $1")
            .bind(sale_id)
            .fetch_one(pool)
            .await?;
    Ok(highest)
}

/// Claims `req.quantity` free slots of a capped sale and stores the order with them.
pub async fn claim(
    pool: &PgPool,
    sale: &Sale,
    cap: i64,
    req: &OrderRequest,
    decided_by: &str,
) -> Result<Order, ClaimError> {
    let quantity = i64::from(req.quantity);
    for _ in 0..SLOT_RACE_RETRIES {
        let mut tx = pool.begin().await?;
        // Serialises this path per sale; Redis-path inserts do not take it, the slot primary key
        // settles races with them.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
            .bind(sale.id)
            .execute(&mut *tx)
            .await?;
        let (units, highest): (i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(max(slot), 0) FROM order_units WHERE sale_id = $1",
        )
        .bind(sale.id)
        .fetch_one(&mut *tx)
        .await?;
        if units + quantity > cap {
            return Err(ClaimError::SoldOut);
        }
        let slots: Vec<i64> = if highest + quantity <= cap {
            (highest + 1..=highest + quantity).collect()
        } else {
            // Near the end, the free slots are holes below the highest one (released claims,
            // orders that never landed). There are at least `quantity` of them.
            sqlx::query_scalar(
                "SELECT candidate FROM generate_series(1::bigint, $2::bigint) AS candidate
                 WHERE NOT EXISTS (
                     SELECT 1 FROM order_units u WHERE u.sale_id = $1 AND u.slot = candidate)
                 ORDER BY candidate LIMIT $3",
            )
            .bind(sale.id)
            .bind(cap)
            .bind(quantity)
            .fetch_all(&mut *tx)
            .await?
        };
        match orders::insert(&mut *tx, req, Some(cap), &slots, decided_by).await {
            Ok(order) => {
                tx.commit().await?;
                return Ok(order);
            }
            Err(InsertError::SlotTaken) => {
                tracing::debug!(sale = %sale.id, "slot race with an in-flight order; retrying");
                continue;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ClaimError::Unavailable(sqlx::Error::Protocol(format!(
        "lost {SLOT_RACE_RETRIES} slot races in a row"
    ))))
}
