//! The PostgreSQL path (`claim_unit` in the seed), correct on its own.
//!
//! It never decides from `flash_sales.quantity_sold`, which lags by design (HAZ-4): it counts the
//! slots the ledger holds and takes free ones, inside a transaction that holds a per-sale advisory
//! lock so PostgreSQL-path claims of one sale queue instead of colliding. Claims granted by Redis
//! whose orders are still in flight hold their slots through the primary key: if this path picks
//! such a slot, one of the two inserts fails with a unique violation and is retried, so no slot is
//! sold twice.
//!
//! Claims that queue together are decided together ([`claim_together`], batched by
//! [`super::Ledger`]): one lock, one read of the highest slot and one insert for the whole batch. That, not a faster statement, is what lets
//! this path outrun the naive hot-row `UPDATE` (G4 in docs/performance.md).

use sqlx::PgPool;
use uuid::Uuid;

use super::ClaimError;
use super::orders::{self, InsertError, NewOrder, Order, OrderRequest};

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

/// What the ledger decided for one claim of a batch.
#[derive(Debug)]
pub enum Decision {
    Granted(Order),
    SoldOut,
}

/// Claims `req.quantity` free slots of a capped sale and stores the order with them, retrying
/// when an in-flight Redis-path order takes a slot first.
pub async fn claim(
    pool: &PgPool,
    sale_id: Uuid,
    cap: i64,
    req: &OrderRequest,
    decided_by: &'static str,
) -> Result<Order, ClaimError> {
    for _ in 0..SLOT_RACE_RETRIES {
        match claim_together(pool, sale_id, cap, &[(req, decided_by)]).await {
            Ok(mut decisions) => {
                return match decisions.pop() {
                    Some(Decision::Granted(order)) => Ok(order),
                    _ => Err(ClaimError::SoldOut),
                };
            }
            Err(InsertError::SlotTaken) => {
                tracing::debug!(sale = %sale_id, "slot race with an in-flight order; retrying");
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ClaimError::Unavailable(sqlx::Error::Protocol(format!(
        "lost {SLOT_RACE_RETRIES} slot races in a row"
    ))))
}

/// One transaction deciding several claims of one sale, in their order: free slots are handed
/// out first come, first served, and a claim that no longer fits is sold out (a later, smaller
/// one may still fit). All granted orders are stored by one statement; if any row conflicts,
/// nothing is stored and the error says which kind, so the caller can decide them one by one.
pub async fn claim_together(
    pool: &PgPool,
    sale_id: Uuid,
    cap: i64,
    claims: &[(&OrderRequest, &'static str)],
) -> Result<Vec<Decision>, InsertError> {
    // The common case in one round trip: everything fits above the highest slot taken.
    let batch: Vec<NewOrder> = claims
        .iter()
        .map(|(req, decided_by)| NewOrder {
            req: (*req).clone(),
            sale_cap: Some(cap),
            slots: Vec::new(),
            decided_by,
        })
        .collect();
    if let Some(stored) = orders::append_many(pool, sale_id, cap, &batch).await? {
        return Ok(stored.into_iter().map(Decision::Granted).collect());
    }
    // Near the end: the free slots may be holes below the highest one. The per-sale advisory
    // lock serialises this path per sale; Redis-path inserts do not take it, the slot primary key
    // settles races with them. The lock's key is defined once, in `flashsale_append_claims`
    // (migration 0003): called with an empty batch, that function takes the lock, has nothing to
    // append and writes nothing, and the lock is held until this transaction ends. It is taken in
    // the same round trip as the BEGIN (a simple query of two statements; the id is a formatted
    // Uuid and the cap a number, not caller text).
    let mut tx = pool
        .begin_with(format!(
            "BEGIN; SELECT count(*) FROM flashsale_append_claims('{sale_id}', {cap}, \
             '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}')"
        ))
        .await?;
    // The index answers max(slot) at once; counting the slots is a scan, needed only near the
    // end, when the free slots may be holes below the highest one (released claims, orders that
    // never landed). Every slot above the highest is free.
    let (highest,): (i64,) =
        sqlx::query_as("SELECT coalesce(max(slot), 0) FROM order_units WHERE sale_id = $1")
            .bind(sale_id)
            .fetch_one(&mut *tx)
            .await?;
    let wanted: i64 = claims.iter().map(|(req, _)| i64::from(req.quantity)).sum();
    let free: Vec<i64> = if highest + wanted <= cap {
        (highest + 1..=highest + wanted).collect()
    } else {
        sqlx::query_scalar(
            "SELECT candidate FROM generate_series(1::bigint, $2::bigint) AS candidate
             WHERE NOT EXISTS (
                 SELECT 1 FROM order_units u WHERE u.sale_id = $1 AND u.slot = candidate)
             ORDER BY candidate LIMIT $3",
        )
        .bind(sale_id)
        .bind(cap)
        .bind(wanted)
        .fetch_all(&mut *tx)
        .await?
    };
    let mut free = free.into_iter();
    let mut left = free.len();
    let mut granted = Vec::new();
    let mut sold_out = vec![false; claims.len()];
    for (i, (req, decided_by)) in claims.iter().enumerate() {
        let quantity = req.quantity as usize;
        if quantity > left {
            sold_out[i] = true;
            continue;
        }
        left -= quantity;
        granted.push(NewOrder {
            req: (*req).clone(),
            sale_cap: Some(cap),
            slots: free.by_ref().take(quantity).collect(),
            decided_by,
        });
    }
    let mut stored = if granted.is_empty() {
        Vec::new()
    } else {
        orders::insert_many(&mut *tx, &granted).await?
    }
    .into_iter();
    tx.commit().await?;
    Ok(sold_out
        .into_iter()
        .map(|sold_out| match sold_out {
            true => Decision::SoldOut,
            false => Decision::Granted(stored.next().expect("one stored order per grant")),
        })
        .collect())
}
