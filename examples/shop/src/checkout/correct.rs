//! The correct checkout: PostgreSQL is the authority, Redis a fast sold-out gate in front of it.
//!
//! 1. A key already used on this drop answers with its purchase (replayed).
//! 2. The gate ([`crate::gate`]) takes the units from its count, or says the drop is sold out
//!    (only when that is certain), or cannot tell (PostgreSQL decides).
//! 3. One transaction sells: the key's lock and a second look for its purchase (concurrent
//!    copies of one key wait for each other, and the later ones replay the first), the
//!    customer's lock and limit, then `UPDATE ... sold = sold + units` guarded by the window and
//!    `sold + units <= stock` (a sale that does not fit cannot be written), then the purchase.
//! 4. Units the gate took are settled once sold, or go back to it if the purchase was not made.

use sqlx::PgPool;

use super::ledger::{self, find_by_key};
use super::{CheckoutError, CheckoutRequest, Outcome, Purchase, within_deadline};
use crate::Shop;
use crate::drops::KnownDrop;
use crate::gate::Verdict;

pub async fn checkout(
    shop: &Shop,
    drop: &KnownDrop,
    request: &CheckoutRequest,
) -> Result<Outcome, CheckoutError> {
    if let Some(key) = &request.key {
        if let Some(purchase) = within_deadline(find_by_key(&shop.pool, drop.id, key)).await? {
            return Ok(Outcome::replayed(purchase));
        }
    }
    if request.sku != drop.sku {
        return Ok(Outcome::WrongSku);
    }
    let _in_flight = drop.enter();
    match shop.gate.pass(drop.id, i64::from(request.units)).await {
        Verdict::SoldOut => Ok(Outcome::SoldOut),
        Verdict::AskDatabase => {
            match within_deadline(room_for(&shop.pool, drop.id, request)).await? {
                Room::Replay(purchase) => Ok(Outcome::replayed(purchase)),
                Room::None => Ok(Outcome::SoldOut),
                Room::Some => within_deadline(sell(&shop.pool, drop, request)).await,
            }
        }
        Verdict::Held(hold) => {
            let sold = within_deadline(sell(&shop.pool, drop, request)).await;
            match &sold {
                Ok(Outcome::Confirmed {
                    replayed: false, ..
                }) => shop.gate.settle(drop.id, hold).await,
                // Refused, replayed, failed or of unknown fate: the units go back. If an
                // unknown fate was in fact a sale, the count is now too high, which only sends a
                // buyer to PostgreSQL to be refused there.
                _ => shop.gate.give_back(drop.id, hold).await,
            }
            sold
        }
    }
}

/// What PostgreSQL says when the gate could not: one read, no lock.
enum Room {
    /// The key's purchase was made meanwhile.
    Replay(Purchase),
    /// Fewer than the units asked for are left: a true sold-out (sold only grows).
    None,
    /// Enough are left now; the transaction decides.
    Some,
}

async fn room_for(
    pool: &PgPool,
    drop_id: i64,
    request: &CheckoutRequest,
) -> Result<Room, sqlx::Error> {
    let (left, reference, units, customer): (i64, Option<String>, Option<i32>, Option<String>) =
        sqlx::query_as(
            "SELECT (d.stock - d.sold)::bigint, p.ref, p.units, p.customer
           FROM shop_drops d
           LEFT JOIN shop_purchases p ON p.drop_id = d.id AND p.request_key = $2
          WHERE d.id = $1",
        )
        .bind(drop_id)
        .bind(request.key.as_deref())
        .fetch_one(pool)
        .await?;
    Ok(match (reference, units, customer) {
        (Some(reference), Some(units), Some(customer)) => Room::Replay(Purchase {
            reference,
            units,
            customer,
        }),
        _ if left < i64::from(request.units) => Room::None,
        _ => Room::Some,
    })
}

/// The purchase transaction. Locks are always taken in the same order (key, customer, drop
/// row), so two purchases never wait for each other in a circle.
async fn sell(
    pool: &PgPool,
    drop: &KnownDrop,
    request: &CheckoutRequest,
) -> Result<Outcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(key) = &request.key {
        // Concurrent copies of a key queue here; each later one finds the first's purchase.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("shop key {}:{key}", drop.id))
            .execute(&mut *tx)
            .await?;
        if let Some(purchase) = find_by_key(&mut *tx, drop.id, key).await? {
            tx.rollback().await?;
            return Ok(Outcome::replayed(purchase));
        }
    }
    if let Some(max) = drop.max_per_customer {
        // The customer's purchases of this drop, one at a time, so that the sum read below
        // includes every purchase that committed before this one.
        sqlx::query("SELECT pg_advisory_xact_lock(($1 % 2147483647)::int4, hashtext($2))")
            .bind(drop.id)
            .bind(&request.customer)
            .execute(&mut *tx)
            .await?;
        let bought: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(units), 0)::bigint FROM shop_purchases
              WHERE drop_id = $1 AND customer = $2",
        )
        .bind(drop.id)
        .bind(&request.customer)
        .fetch_one(&mut *tx)
        .await?;
        if bought + i64::from(request.units) > i64::from(max) {
            tx.rollback().await?;
            return Ok(Outcome::LimitReached);
        }
    }
    loop {
        let taken: Option<i32> = sqlx::query_scalar(
            // In bigint, so that a huge order is refused rather than overflowing `sold`.
            "UPDATE shop_drops SET sold = sold + $2::int4
              WHERE id = $1 AND is_open AND now() >= opens_at AND now() < closes_at
                AND sold::bigint + $2::bigint <= stock
             RETURNING sold",
        )
        .bind(drop.id)
        .bind(i64::from(request.units))
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            break;
        }
        // Nothing written: say why, from the same clock (`now()` is the transaction's).
        let (open, left): (bool, i64) = sqlx::query_as(
            "SELECT is_open AND now() >= opens_at AND now() < closes_at, (stock - sold)::bigint
               FROM shop_drops WHERE id = $1",
        )
        .bind(drop.id)
        .fetch_one(&mut *tx)
        .await?;
        if !open {
            tx.rollback().await?;
            return Ok(Outcome::Closed);
        }
        if left < i64::from(request.units) {
            tx.rollback().await?;
            return Ok(Outcome::SoldOut);
        }
        // Open with room, yet the update matched nothing: the row changed between the two
        // statements (stock raised by SQL). Try again rather than answer a false sold-out.
    }
    let reference = ledger::new_reference();
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO shop_purchases (ref, drop_id, customer, units, request_key)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (drop_id, request_key) DO NOTHING
         RETURNING ref",
    )
    .bind(&reference)
    .bind(drop.id)
    .bind(&request.customer)
    .bind(request.units)
    .bind(request.key.as_deref())
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        // The key was used by a writer that did not take the key's lock (SQL by hand): its
        // purchase stands, this one is undone with its units.
        tx.rollback().await?;
        let key = request.key.as_deref().unwrap_or_default();
        return match find_by_key(pool, drop.id, key).await? {
            Some(purchase) => Ok(Outcome::replayed(purchase)),
            None => Err(sqlx::Error::RowNotFound),
        };
    }
    tx.commit().await?;
    Ok(Outcome::Confirmed {
        purchase: Purchase {
            reference,
            units: request.units,
            customer: request.customer.clone(),
        },
        replayed: false,
    })
}
