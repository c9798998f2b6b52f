//! The PostgreSQL path (`claim_unit` in the seed), correct on its own.
//!
//! It never decides from `flash_sales.quantity_sold`, which lags by design (HAZ-4): it counts the
//! slots the ledger holds and takes free ones, inside a transaction that holds a per-sale advisory
//! lock so PostgreSQL-path claims of one sale queue instead of colliding. Claims granted by Redis
//! whose orders are still in flight hold their slots through the slot primary key or, for a
//! one-unit order, through the slot's own lock, which the batch takes before its first row
//! (migration 0010): if this path picks such a slot, its insert waits for the batch, then fails
//! with a unique violation and is retried, so no slot is sold twice.
//!
//! Claims that queue together are decided together ([`claim_together`], batched by
//! [`super::Ledger`]): one lock, one read of the highest slot and one insert for the whole batch. That, not a faster statement, is what lets
//! this path outrun the naive hot-row `UPDATE` (G4 in docs/performance.md).

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::ClaimError;
use super::holds;
use super::orders::{self, InsertError, NewOrder, Order, OrderRequest};

/// How often a claim or a reservation that lost a slot race retries before answering 503.
pub(super) const SLOT_RACE_RETRIES: usize = 16;

/// Slots taken in the sale's ledger (committed orders and holds not yet expired, released or
/// checked out): what the Redis counter counts.
pub async fn units_claimed(pool: &PgPool, sale_id: Uuid) -> Result<i64, sqlx::Error> {
    let (units,): (i64,) = sqlx::query_as("SELECT count(*) FROM sale_slots WHERE sale_id = $1")
        .bind(sale_id)
        .fetch_one(pool)
        .await?;
    Ok(units)
}

/// Slots taken in the sale's ledger, and how many of them by holds, in one read.
pub async fn slots_taken(pool: &PgPool, sale_id: Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as("SELECT count(*), count(hold_id) FROM sale_slots WHERE sale_id = $1")
        .bind(sale_id)
        .fetch_one(pool)
        .await
}

/// Slots owned by the sale's orders only: final, unlike holds' (a sale whose orders own every
/// slot can never sell again; one full of holds can).
pub async fn units_in_order_slots(pool: &PgPool, sale_id: Uuid) -> Result<i64, sqlx::Error> {
    let (units,): (i64,) =
        sqlx::query_as("SELECT count(order_id) FROM sale_slots WHERE sale_id = $1")
            .bind(sale_id)
            .fetch_one(pool)
            .await?;
    Ok(units)
}

/// The highest slot the sale's ledger holds (0 when none).
pub async fn highest_slot(pool: &PgPool, sale_id: Uuid) -> Result<i64, sqlx::Error> {
    highest_slot_in(pool, sale_id).await
}

/// [`highest_slot`] on any executor (a transaction holding the sale's lock).
pub(super) async fn highest_slot_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    sale_id: Uuid,
) -> Result<i64, sqlx::Error> {
    let (highest,): (i64,) = sqlx::query_as("SELECT flashsale_highest_slot($1)")
        .bind(sale_id)
        .fetch_one(db)
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
        let mut conn = pool.acquire().await?;
        match claim_together(&mut conn, sale_id, cap, &[(req, decided_by)]).await {
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
    conn: &mut PgConnection,
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
    if let Some(stored) = orders::append_many(&mut *conn, sale_id, cap, &batch).await? {
        return Ok(stored.into_iter().map(Decision::Granted).collect());
    }
    // Near the end: the free slots may be holes below the highest one. The per-sale advisory
    // lock serialises this path per sale; Redis-path inserts do not take it, the slot primary key
    // settles races with them. The lock is held until this transaction ends ([`lock_sale`]).
    let mut tx = lock_sale(conn, sale_id, cap).await?;
    // The index answers max(slot) at once; counting the slots is a scan, needed only near the
    // end, when the free slots may be holes below the highest one (released claims, orders that
    // never landed). Every slot above the highest is free.
    let highest = highest_slot_in(&mut *tx, sale_id).await?;
    let wanted: i64 = claims.iter().map(|(req, _)| i64::from(req.quantity)).sum();
    let mut free = free_slots(&mut tx, sale_id, cap, Some(highest), wanted).await?;
    if (free.len() as i64) < wanted && holds::expire_due_in(&mut *tx, Some(sale_id)).await? > 0 {
        // Holds past their expiry kept slots nobody can check out any more: expired now, under
        // the sale's lock, their units are sold here rather than answered sold out. (A Redis
        // counter still counting them is brought down by the reconcile.)
        free = free_slots(&mut tx, sale_id, cap, None, wanted).await?;
    }
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

/// A transaction holding the sale's advisory lock. The key is written once, in migration 0003's
/// `flashsale_append_claims`: called with an empty batch, it takes the lock and writes nothing.
///
/// The BEGIN and the lock are two round trips on purpose. Sent as one (`begin_with("BEGIN;
/// SELECT …")`, as this did until the cart-holds benchmark), a caller dropped while it waited for
/// the lock — an HTTP client that hung up, a ledger batch past its deadline — left the
/// transaction open on a pooled connection that sqlx believed idle: sqlx only rolls back a
/// transaction it has registered, and it registers one after its BEGIN statement returns. That
/// connection then kept the sale's lock until the process died, and every later PostgreSQL-path
/// claim of the sale waited for it (shown by `tests/api/holds.rs`,
/// `a_reservation_dropped_while_it_waits_for_the_sale_lock_leaves_no_lock_behind`, when
/// reservations still came through here; they now take the lock inside migration 0006's
/// function). A plain BEGIN returns at once; the lock is then taken inside a transaction sqlx
/// rolls back if its caller is dropped: the rollback is queued on the connection and sent before
/// anything else, by the pool's ping when the connection goes back to the pool, or ahead of the
/// next statement when a ledger runner keeps it (`super::kept`).
pub(super) async fn lock_sale(
    conn: &mut PgConnection,
    sale_id: Uuid,
    cap: i64,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query(
        "SELECT count(*) FROM flashsale_append_claims($1, $2, \
         '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
    )
    .bind(sale_id)
    .bind(cap)
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Up to `wanted` free slots: above `highest` (the highest slot taken, when known) if they fit
/// there, since every slot above it is free; else the lowest holes. A slot inside an order's own
/// range is taken; the only range that can cover a slot is the multi-unit range starting nearest
/// below it (migration 0013's header).
pub(super) async fn free_slots(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    sale_id: Uuid,
    cap: i64,
    highest: Option<i64>,
    wanted: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    if let Some(highest) = highest.filter(|h| h + wanted <= cap) {
        return Ok((highest + 1..=highest + wanted).collect());
    }
    sqlx::query_scalar(
        "SELECT candidate FROM generate_series(1::bigint, $2::bigint) AS candidate
         WHERE NOT EXISTS (
             SELECT 1 FROM order_units u WHERE u.sale_id = $1 AND u.slot = candidate)
           AND NOT EXISTS (
             SELECT 1 FROM orders o
             WHERE o.sale_id = $1 AND o.slot IS NOT NULL AND o.slot = candidate)
           AND NOT EXISTS (
             SELECT 1 FROM (SELECT r.slot, r.quantity FROM orders r
                             WHERE r.sale_id = $1 AND r.slot < candidate
                               AND r.slot IS NOT NULL AND r.quantity > 1
                             ORDER BY r.slot DESC LIMIT 1) r
             WHERE r.slot + r.quantity > candidate)
         ORDER BY candidate LIMIT $3",
    )
    .bind(sale_id)
    .bind(cap)
    .bind(wanted)
    .fetch_all(&mut **tx)
    .await
}
