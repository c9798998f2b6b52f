//! Cart holds in the ledger (migration 0005): reserve, check out, release, expire.
//!
//! A hold of a capped sale owns slots of `order_units` exactly as an order does, so units in
//! orders + units in live holds can never pass the cap, whoever writes. Here are the statements
//! the server writes them with; the database refuses anything else (server/README.md, "Cart
//! holds"). A hold past its `expires_at` keeps its slots until something expires it: the
//! PostgreSQL path does so itself before it would answer sold out ([`reserve`]), and so does the
//! expiry job ([`expire_due`]).

use std::time::Duration;

use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::claims;
use super::orders::{self, InsertError, Order};

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Hold {
    pub hold_id: Uuid,
    pub sale_id: Uuid,
    pub product_id: String,
    pub buyer_id: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub idempotency_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// `live`, `checked_out`, `released` or `expired` (a `live` hold past `expires_at` is
    /// reported as it is stored: the contract calls it expired, see [`Hold::is_live_at`]).
    pub state: String,
    pub order_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub decided_by: String,
}

impl Hold {
    /// Whether the hold can still be checked out at `now`.
    pub fn is_live_at(&self, now: OffsetDateTime) -> bool {
        self.state == "live" && now < self.expires_at
    }
}

/// What a buyer asked to hold, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    pub sale_id: Uuid,
    pub product_id: String,
    pub unit_price_cents: i64,
    pub buyer_id: String,
    pub quantity: i32,
    pub idempotency_key: String,
    pub ttl: Duration,
}

impl HoldRequest {
    /// A retry must carry the same request as the first try (HAZ-12, as for buys).
    pub fn same_request_as(&self, hold: &Hold) -> bool {
        self.sale_id == hold.sale_id
            && self.product_id == hold.product_id
            && self.buyer_id == hold.buyer_id
            && self.quantity == hold.quantity
    }
}

/// Why a hold operation did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("sold out")]
    SoldOut,
    /// The buyer already has a hold with this idempotency key (a concurrent retry won).
    #[error("idempotency key already used")]
    DuplicateKey,
    /// A slot hint was taken by someone else (Redis behind the ledger).
    #[error("slot already taken")]
    SlotTaken,
    #[error("no such hold in this sale")]
    NotFound,
    /// The hold is another buyer's.
    #[error("the hold is another buyer's")]
    NotYours,
    /// The hold passed `expires_at` before the checkout reached the ledger.
    #[error("the hold expired")]
    Expired,
    #[error("the hold was released")]
    Released,
    /// Checking out a quantity other than the held one.
    #[error("the hold is for {held} units")]
    QuantityMismatch { held: i32 },
    /// The order would take the buyer past the sale's per-buyer limit.
    #[error("per-buyer limit reached")]
    BuyerLimit,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<InsertError> for HoldError {
    fn from(err: InsertError) -> Self {
        match err {
            InsertError::SlotTaken => HoldError::SlotTaken,
            InsertError::DuplicateKey => HoldError::DuplicateKey,
            InsertError::BuyerLimit => HoldError::BuyerLimit,
            InsertError::Database(e) => classify(e),
        }
    }
}

const HOLD_COLUMNS: &str = "id AS hold_id, sale_id, product_id, buyer_id, quantity, \
     unit_price_cents, idempotency_key, created_at, expires_at, state, order_id, ended_at, \
     decided_by";

fn classify(err: sqlx::Error) -> HoldError {
    if let Some(db) = err.as_database_error() {
        match db.constraint() {
            Some("order_units_pkey" | "orders_sale_slot") => return HoldError::SlotTaken,
            // A hold's key taken by a concurrent retry; or, at checkout, the key already names
            // another order of the buyer.
            Some("holds_buyer_idempotency_key" | "orders_buyer_idempotency_key") => {
                return HoldError::DuplicateKey;
            }
            Some("holds_checkout_before_expiry") => return HoldError::Expired,
            Some("buyer_units_within_limit") => return HoldError::BuyerLimit,
            _ => {}
        }
    }
    HoldError::Database(err)
}

/// Stores a hold with the slots it owns (none for an unlimited sale, whose holds are advisory),
/// in one statement.
pub async fn insert<'e>(
    db: impl PgExecutor<'e>,
    req: &HoldRequest,
    sale_cap: Option<i64>,
    slots: &[i64],
    decided_by: &str,
) -> Result<Hold, HoldError> {
    let ttl = i64::try_from(req.ttl.as_micros()).unwrap_or(i64::MAX);
    sqlx::query_as(&format!(
        "WITH new_hold AS (
             INSERT INTO holds (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                                idempotency_key, expires_at, decided_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7,
                     clock_timestamp() + make_interval(secs => $8::double precision / 1e6), $9)
             RETURNING *
         ), new_units AS (
             INSERT INTO order_units (sale_id, slot, sale_cap, hold_id)
             SELECT $2, slot, $10, $1 FROM unnest($11::bigint[]) AS slot
         )
         SELECT {HOLD_COLUMNS} FROM new_hold"
    ))
    .bind(Uuid::now_v7())
    .bind(req.sale_id)
    .bind(&req.product_id)
    .bind(&req.buyer_id)
    .bind(req.quantity)
    .bind(req.unit_price_cents)
    .bind(&req.idempotency_key)
    .bind(ttl)
    .bind(decided_by)
    .bind(sale_cap)
    .bind(slots)
    .fetch_one(db)
    .await
    .map_err(classify)
}

/// The PostgreSQL path: under the sale's advisory lock (the one the claim path takes), the next
/// free slots — above the highest, else holes — and the hold with them. When too few are free,
/// the sale's holds past their expiry are expired first (their slots come back), and only then is
/// the answer sold out. Returns the hold and the units that expiry freed (for the Redis counter).
pub async fn reserve(
    pool: &PgPool,
    cap: Option<i64>,
    req: &HoldRequest,
    decided_by: &str,
) -> Result<(Hold, i64), HoldError> {
    let Some(cap) = cap else {
        // Unlimited: the hold is advisory and takes nothing.
        return Ok((insert(pool, req, None, &[], decided_by).await?, 0));
    };
    // The sale's lock orders this path against itself, not against Redis-path orders and holds
    // in flight, which insert the slots Redis handed them without it: one of those can take a
    // free slot between our read and our insert. The insert then fails as a whole (nothing is
    // written) and the reservation is decided again, as PostgreSQL-path buys are.
    for _ in 0..claims::SLOT_RACE_RETRIES {
        match reserve_once(pool, cap, req, decided_by).await {
            Err(HoldError::SlotTaken) => {
                tracing::debug!(sale = %req.sale_id, "slot race with an in-flight claim; retrying");
            }
            decided => return decided,
        }
    }
    Err(HoldError::Database(sqlx::Error::Protocol(format!(
        "lost {} slot races in a row",
        claims::SLOT_RACE_RETRIES
    ))))
}

/// One attempt of [`reserve`] on a capped sale: one call of migration 0006's
/// `flashsale_reserve_hold`, which takes the sale's lock, finds the free slots (expiring the
/// sale's due holds first when too few are free) and stores the hold, so the lock is held for
/// one round trip and the commit. The hold is then read back, outside the lock.
async fn reserve_once(
    pool: &PgPool,
    cap: i64,
    req: &HoldRequest,
    decided_by: &str,
) -> Result<(Hold, i64), HoldError> {
    let ttl = i64::try_from(req.ttl.as_micros()).unwrap_or(i64::MAX);
    let (stored, freed): (Option<Uuid>, i64) = sqlx::query_as(
        "SELECT hold_id, freed FROM flashsale_reserve_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::now_v7())
    .bind(req.sale_id)
    .bind(cap)
    .bind(&req.product_id)
    .bind(&req.buyer_id)
    .bind(req.quantity)
    .bind(req.unit_price_cents)
    .bind(&req.idempotency_key)
    .bind(ttl)
    .bind(decided_by)
    .fetch_one(pool)
    .await
    .map_err(classify)?;
    // Sold out. The expiry of due holds is kept (their units are free in the ledger; the Redis
    // counter catches up at the next reconcile).
    let Some(hold_id) = stored else {
        return Err(HoldError::SoldOut);
    };
    let hold = find(pool, req.sale_id, hold_id)
        .await?
        .ok_or(HoldError::Database(sqlx::Error::RowNotFound))?;
    Ok((hold, freed))
}

/// Expires every live hold past its `expires_at` (of one sale, or all) and gives its slots back,
/// in one statement; returns the units freed.
pub(super) async fn expire_due_in<'e>(
    db: impl PgExecutor<'e>,
    sale_id: Option<Uuid>,
) -> Result<i64, sqlx::Error> {
    let (freed,): (i64,) = sqlx::query_as(
        "WITH due AS (
             UPDATE holds SET state = 'expired', ended_at = clock_timestamp()
             WHERE state = 'live' AND expires_at <= clock_timestamp()
               AND ($1::uuid IS NULL OR sale_id = $1)
             RETURNING id
         ), freed AS (
             DELETE FROM order_units u USING due WHERE u.hold_id = due.id RETURNING 1
         )
         SELECT count(*) FROM freed",
    )
    .bind(sale_id)
    .fetch_one(db)
    .await?;
    Ok(freed)
}

/// Expires the sale's due holds now (outside any lock: the statement itself is atomic); returns
/// the units freed, for the Redis counter.
pub async fn expire_due_of(pool: &PgPool, sale_id: Uuid) -> Result<i64, sqlx::Error> {
    expire_due_in(pool, Some(sale_id)).await
}

/// The expiry job's statement: every due hold of every sale expired, the units freed per sale.
pub async fn expire_due(pool: &PgPool) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
             UPDATE holds SET state = 'expired', ended_at = clock_timestamp()
             WHERE state = 'live' AND expires_at <= clock_timestamp()
             RETURNING id
         ), freed AS (
             DELETE FROM order_units u USING due WHERE u.hold_id = due.id RETURNING u.sale_id
         )
         SELECT sale_id, count(*) FROM freed GROUP BY sale_id",
    )
    .fetch_all(pool)
    .await
}

/// The hold, locked until the transaction ends, if it belongs to `sale_id`.
async fn lock_hold(
    tx: &mut Transaction<'static, Postgres>,
    sale_id: Uuid,
    hold_id: Uuid,
) -> Result<Hold, HoldError> {
    let hold: Option<Hold> = sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1 AND sale_id = $2 FOR UPDATE"
    ))
    .bind(hold_id)
    .bind(sale_id)
    .fetch_optional(&mut **tx)
    .await?;
    hold.ok_or(HoldError::NotFound)
}

/// What checking out gave.
#[derive(Debug)]
pub enum CheckedOut {
    /// The hold became this order now.
    New(Order),
    /// The hold had already become this order (a retry).
    Already(Order),
}

/// Turns a live hold of `buyer_id` into an order of its units, in one statement: the order is
/// stored and the hold's slots become the order's. Idempotent by hold: a hold already checked
/// out answers with its order. `quantity`, when given, must be the held one.
pub async fn checkout(
    pool: &PgPool,
    sale_id: Uuid,
    hold_id: Uuid,
    buyer_id: &str,
    quantity: Option<i32>,
    idempotency_key: &str,
) -> Result<CheckedOut, HoldError> {
    let mut tx = pool.begin().await?;
    let hold = lock_hold(&mut tx, sale_id, hold_id).await?;
    if hold.buyer_id != buyer_id {
        return Err(HoldError::NotYours);
    }
    if quantity.is_some_and(|q| q != hold.quantity) {
        return Err(HoldError::QuantityMismatch {
            held: hold.quantity,
        });
    }
    match hold.state.as_str() {
        "checked_out" => {
            let order_id = hold.order_id.expect("a checked-out hold names its order");
            let order = orders::by_id(&mut *tx, order_id).await?;
            return Ok(CheckedOut::Already(order));
        }
        "released" => return Err(HoldError::Released),
        "expired" => return Err(HoldError::Expired),
        _ => {}
    }
    let order_id = Uuid::now_v7();
    let created_at: Option<(OffsetDateTime,)> = sqlx::query_as(
        "WITH new_order AS (
             INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                                 idempotency_key, decided_by)
             SELECT $1, sale_id, product_id, buyer_id, quantity, unit_price_cents, $3,
                    'hold-' || decided_by
             FROM holds WHERE id = $2
             RETURNING created_at
         ), moved AS (
             UPDATE order_units SET order_id = $1, hold_id = NULL WHERE hold_id = $2
         ), done AS (
             UPDATE holds SET state = 'checked_out', order_id = $1, ended_at = clock_timestamp()
             WHERE id = $2
         )
         SELECT created_at FROM new_order",
    )
    .bind(order_id)
    .bind(hold_id)
    .bind(idempotency_key)
    .fetch_optional(&mut *tx)
    .await
    .map_err(classify)?;
    let Some((created_at,)) = created_at else {
        return Err(HoldError::NotFound);
    };
    tx.commit().await?;
    Ok(CheckedOut::New(Order {
        order_id,
        sale_id,
        product_id: hold.product_id,
        buyer_id: hold.buyer_id,
        quantity: hold.quantity,
        unit_price_cents: hold.unit_price_cents,
        idempotency_key: idempotency_key.to_owned(),
        decided_by: format!("hold-{}", hold.decided_by),
        created_at,
    }))
}

/// Releases a live hold of `buyer_id`: its slots are freed. Idempotent: a hold released or
/// expired already answers with its state and frees nothing. Returns the hold as it now is and
/// the units freed (for the Redis counter).
pub async fn release(
    pool: &PgPool,
    sale_id: Uuid,
    hold_id: Uuid,
    buyer_id: &str,
) -> Result<(Hold, i64), HoldError> {
    let mut tx = pool.begin().await?;
    let hold = lock_hold(&mut tx, sale_id, hold_id).await?;
    if hold.buyer_id != buyer_id {
        return Err(HoldError::NotYours);
    }
    if hold.state != "live" {
        return Ok((hold, 0));
    }
    // One statement: the hold rule is checked at its end, when the hold is released and its
    // slots gone together.
    #[derive(sqlx::FromRow)]
    struct Released {
        #[sqlx(flatten)]
        hold: Hold,
        freed: i64,
    }
    let Released { hold, freed } = sqlx::query_as(&format!(
        "WITH freed AS (DELETE FROM order_units WHERE hold_id = $1 RETURNING 1),
         released AS (
             UPDATE holds SET state = 'released', ended_at = clock_timestamp() WHERE id = $1
             RETURNING {HOLD_COLUMNS}
         )
         SELECT released.*, (SELECT count(*) FROM freed) AS freed FROM released"
    ))
    .bind(hold_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((hold, freed))
}

/// One hold of a sale, if it exists.
pub async fn find(
    pool: &PgPool,
    sale_id: Uuid,
    hold_id: Uuid,
) -> Result<Option<Hold>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1 AND sale_id = $2"
    ))
    .bind(hold_id)
    .bind(sale_id)
    .fetch_optional(pool)
    .await
}

/// The buyer's hold holding this idempotency key, if any.
pub async fn find_by_key(
    pool: &PgPool,
    buyer_id: &str,
    key: &str,
) -> Result<Option<Hold>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE buyer_id = $1 AND idempotency_key = $2"
    ))
    .bind(buyer_id)
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Every hold of a sale, oldest first (the admin export).
pub async fn for_sale(pool: &PgPool, sale_id: Uuid) -> Result<Vec<Hold>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE sale_id = $1 ORDER BY created_at, id"
    ))
    .bind(sale_id)
    .fetch_all(pool)
    .await
}

/// Units in the sale's live, unexpired holds (the "reserved" figure).
pub async fn units_held(pool: &PgPool, sale_id: Uuid) -> Result<i64, sqlx::Error> {
    let (units,): (i64,) = sqlx::query_as(
        "SELECT coalesce(sum(quantity), 0)::bigint FROM holds
         WHERE sale_id = $1 AND state = 'live' AND expires_at > clock_timestamp()",
    )
    .bind(sale_id)
    .fetch_one(pool)
    .await?;
    Ok(units)
}
