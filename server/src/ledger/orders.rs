//! Orders in the PostgreSQL ledger: the durable record that decides what was sold.
//!
//! Every path that sells writes through [`insert`] or [`insert_many`], one statement that stores
//! the orders and the slots they own, so an acknowledged order is always durable before the 201
//! (HAZ-10). The `_many` forms serve group commit (see [`crate::ledger`]): one statement over
//! arrays for a whole batch of buyers.

use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A persisted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Order {
    pub order_id: Uuid,
    pub sale_id: Uuid,
    pub product_id: String,
    pub buyer_id: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub idempotency_key: String,
    pub decided_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a buyer asked for, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub sale_id: Uuid,
    pub product_id: String,
    pub unit_price_cents: i64,
    pub buyer_id: String,
    pub quantity: i32,
    pub idempotency_key: String,
}

impl OrderRequest {
    /// A retry must carry the same request as the first try; otherwise the key is being reused
    /// for something else (HAZ-12).
    pub fn same_request_as(&self, order: &Order) -> bool {
        self.sale_id == order.sale_id
            && self.product_id == order.product_id
            && self.buyer_id == order.buyer_id
            && self.quantity == order.quantity
    }
}

/// Why an insert did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// One of the slots is already owned by another order: whoever handed it out was behind the
    /// truth. Nothing was written.
    #[error("slot already taken")]
    SlotTaken,
    /// The buyer already has an order with this idempotency key (a concurrent retry won).
    /// Nothing written.
    #[error("idempotency key already used")]
    DuplicateKey,
    /// The order would take its buyer past the sale's `per_buyer_limit` (migration 0004's
    /// `buyer_units`). Nothing written.
    #[error("the buyer's limit for this sale would be passed")]
    BuyerLimit,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl InsertError {
    /// Whether the connection that gave this answer is at a clean point and may be kept for the
    /// next statement ([`super::kept`]): every refusal PostgreSQL itself made.
    pub fn survives(&self) -> bool {
        match self {
            InsertError::SlotTaken | InsertError::DuplicateKey | InsertError::BuyerLimit => true,
            InsertError::Database(err) => super::kept::survives(err),
        }
    }
}

const ORDER_COLUMNS: &str = "id AS order_id, sale_id, product_id, buyer_id, quantity, \
     unit_price_cents, idempotency_key, decided_by, created_at";

/// Stores the order and the slots it owns in one statement (so in one transaction). `slots` must
/// hold exactly `quantity` distinct slot numbers for a capped sale with a slot ledger, and be
/// empty for an unlimited or unguarded one: the database refuses anything else.
pub async fn insert<'e>(
    db: impl PgExecutor<'e>,
    req: &OrderRequest,
    sale_cap: Option<i64>,
    slots: &[i64],
    decided_by: &'static str,
) -> Result<Order, InsertError> {
    let order = NewOrder {
        req: req.clone(),
        sale_cap,
        slots: slots.to_vec(),
        decided_by,
    };
    let mut stored = insert_many(db, std::slice::from_ref(&order)).await?;
    Ok(stored.pop().expect("one order stored for one order sent"))
}

/// One order of a batch for [`insert_many`]: the request, the slots it owns (empty for an
/// unlimited sale) and the path that decided it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub req: OrderRequest,
    pub sale_cap: Option<i64>,
    pub slots: Vec<i64>,
    pub decided_by: &'static str,
}

/// The order columns of a batch as the arrays `unnest` reads, ids chosen here.
struct OrderColumns {
    ids: Vec<Uuid>,
    product_ids: Vec<String>,
    buyer_ids: Vec<String>,
    quantities: Vec<i32>,
    unit_prices: Vec<i64>,
    idempotency_keys: Vec<String>,
    decided_by: Vec<String>,
}

impl OrderColumns {
    fn of(batch: &[NewOrder]) -> Self {
        let column = |f: fn(&NewOrder) -> String| batch.iter().map(f).collect::<Vec<String>>();
        Self {
            // Time-ordered ids (UUIDv7): each insert lands at the right edge of the id indexes
            // (`orders_pkey`, `order_units_order`) instead of on a random leaf page, as the
            // tables grow past memory.
            ids: batch.iter().map(|_| Uuid::now_v7()).collect(),
            product_ids: column(|o| o.req.product_id.clone()),
            buyer_ids: column(|o| o.req.buyer_id.clone()),
            quantities: batch.iter().map(|o| o.req.quantity).collect(),
            unit_prices: batch.iter().map(|o| o.req.unit_price_cents).collect(),
            idempotency_keys: column(|o| o.req.idempotency_key.clone()),
            decided_by: column(|o| o.decided_by.to_owned()),
        }
    }
}

/// [`insert_many`]'s statement for a batch whose every slot is an order's own: the slot locks
/// (`$1`, `$2`), then the orders (`$3`..`$11`).
const INSERT_ORDERS: &str = "WITH locked AS (
         SELECT count(pg_advisory_xact_lock(flashsale_slot_lock_key(k.sale, k.slot))) >= 0 AS ok
           FROM (SELECT DISTINCT t.sale, t.slot FROM unnest($1::uuid[], $2::bigint[]) AS t(sale, slot)
                  ORDER BY 1, 2) k
     )
     INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                         idempotency_key, decided_by, slot)
     SELECT * FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::int[],
                          $8::bigint[], $9::text[], $10::text[], $11::bigint[])
     WHERE (SELECT ok FROM locked)
     RETURNING id, created_at";

/// [`INSERT_ORDERS`] with slot rows (`$12`..`$15`), for a batch with orders whose slots are not
/// consecutive.
const INSERT_ORDERS_AND_SLOT_ROWS: &str = "WITH locked AS (
         SELECT count(pg_advisory_xact_lock(flashsale_slot_lock_key(k.sale, k.slot))) >= 0 AS ok
           FROM (SELECT DISTINCT t.sale, t.slot FROM unnest($1::uuid[], $2::bigint[]) AS t(sale, slot)
                  ORDER BY 1, 2) k
     ), new_orders AS (
         INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                             idempotency_key, decided_by, slot)
         SELECT * FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::int[],
                              $8::bigint[], $9::text[], $10::text[], $11::bigint[])
         WHERE (SELECT ok FROM locked)
         RETURNING id, created_at
     ), new_units AS (
         INSERT INTO order_units (sale_id, slot, sale_cap, order_id)
         SELECT * FROM unnest($12::uuid[], $13::bigint[], $14::bigint[], $15::uuid[])
         WHERE (SELECT ok FROM locked)
     )
     SELECT id, created_at FROM new_orders";

/// Stores a batch of orders and their slots in one statement: all of them or none. A conflict on
/// any row (a taken slot, a reused key) fails the whole statement with the same error
/// [`insert`] would give for that row; the caller then inserts them one by one to learn whose it
/// was. Returns the stored orders in the batch's order.
///
/// An order of a capped sale with consecutive slots is one row: its first slot goes in
/// `orders.slot` and it owns `slot .. slot + quantity - 1` (migrations 0010, 0013). Every other
/// order's slots are rows of `order_units`. Before any row, the statement takes the
/// lock of every slot it writes (0010's lock rule), which the inserts' checks would take anyway.
/// Taken this early, a PostgreSQL-path writer that hands out one of those slots meanwhile waits
/// for this batch in its check, then sees the slot and retries, instead of making this batch
/// fail. It takes them in a plain query with 0012's inlined key, not through the plpgsql
/// `flashsale_lock_slots`: called from this statement, that function cost ~0.1 ms a batch
/// (pgbench, one client, 16 orders), an eighth of the statement; the checks still refuse a
/// transaction that is not READ COMMITTED.
pub async fn insert_many<'e>(
    db: impl PgExecutor<'e>,
    batch: &[NewOrder],
) -> Result<Vec<Order>, InsertError> {
    let columns = OrderColumns::of(batch);
    let mut own_slots: Vec<Option<i64>> = Vec::with_capacity(batch.len());
    let mut unit_sales = Vec::new();
    let mut unit_slots = Vec::new();
    let mut unit_caps = Vec::new();
    let mut unit_orders = Vec::new();
    for (order, id) in batch.iter().zip(&columns.ids) {
        if carries_its_own_slot(order) {
            own_slots.push(order.slots.first().copied());
            continue;
        }
        own_slots.push(None);
        for &slot in &order.slots {
            unit_sales.push(order.req.sale_id);
            unit_slots.push(slot);
            unit_caps.push(order.sale_cap);
            unit_orders.push(*id);
        }
    }
    // Every (sale, slot) the batch writes, in either table (every slot of an own range), for the
    // locks taken before its rows.
    let (lock_sales, lock_slots): (Vec<Uuid>, Vec<i64>) = batch
        .iter()
        .zip(&own_slots)
        .filter(|(_, own)| own.is_some())
        .flat_map(|(o, _)| o.slots.iter().map(|&slot| (o.req.sale_id, slot)))
        .chain(unit_sales.iter().copied().zip(unit_slots.iter().copied()))
        .unzip();
    let sale_ids: Vec<Uuid> = batch.iter().map(|o| o.req.sale_id).collect();
    // Without slot rows the `order_units` insert is left out of the statement, and with it that
    // table's statement check, which would otherwise run its queries over no rows (migration
    // 0011's header: a batch's cost is mostly per statement).
    let statement = if unit_sales.is_empty() {
        INSERT_ORDERS
    } else {
        INSERT_ORDERS_AND_SLOT_ROWS
    };
    let mut query = sqlx::query_as::<_, (Uuid, OffsetDateTime)>(statement)
        .bind(&lock_sales)
        .bind(&lock_slots)
        .bind(&columns.ids)
        .bind(&sale_ids)
        .bind(&columns.product_ids)
        .bind(&columns.buyer_ids)
        .bind(&columns.quantities)
        .bind(&columns.unit_prices)
        .bind(&columns.idempotency_keys)
        .bind(&columns.decided_by)
        .bind(&own_slots);
    if !unit_sales.is_empty() {
        query = query
            .bind(&unit_sales)
            .bind(&unit_slots)
            .bind(&unit_caps)
            .bind(&unit_orders);
    }
    let stored = query.fetch_all(db).await.map_err(classify)?;
    Ok(stored_orders(batch, columns.ids, stored))
}

/// Whether `order` is stored as one row owning its slots as a range, its first slot in
/// `orders.slot` (migrations 0010 and 0013): an order of a capped sale whose slots are exactly
/// its quantity of consecutive numbers, in order. Anything else is sent as slot rows, as before,
/// so a refusal names the same rule it always did.
fn carries_its_own_slot(order: &NewOrder) -> bool {
    order.sale_cap.is_some()
        && !order.slots.is_empty()
        && usize::try_from(order.req.quantity).is_ok_and(|q| q == order.slots.len())
        && order
            .slots
            .windows(2)
            .all(|w| w[0].checked_add(1) == Some(w[1]))
}

/// The PostgreSQL path's common case in one round trip: takes the sale's advisory lock, reads its
/// highest slot and, if `batch` fits above it within `cap`, stores every order with the next free
/// slots in batch order (the first order gets `highest + 1 ..`). `None` when it does not fit:
/// nothing was written, and the caller looks for holes instead. The slots in `batch` are ignored.
/// Runs `flashsale_append_claims` (migration 0003) in its own implicit transaction, so the lock
/// is held until the orders commit; `db` must not be inside a transaction that holds on longer.
pub async fn append_many<'e>(
    db: impl PgExecutor<'e>,
    sale_id: Uuid,
    cap: i64,
    batch: &[NewOrder],
) -> Result<Option<Vec<Order>>, InsertError> {
    let columns = OrderColumns::of(batch);
    // One entry per unit, in batch order: WITH ORDINALITY numbers them 1.., the slot offsets.
    let unit_orders: Vec<Uuid> = batch
        .iter()
        .zip(&columns.ids)
        .flat_map(|(order, id)| std::iter::repeat_n(*id, order.req.quantity as usize))
        .collect();
    let stored = sqlx::query_as::<_, (Uuid, OffsetDateTime)>(
        "SELECT stored_id, stored_at
         FROM flashsale_append_claims($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(sale_id)
    .bind(cap)
    .bind(&columns.ids)
    .bind(&columns.product_ids)
    .bind(&columns.buyer_ids)
    .bind(&columns.quantities)
    .bind(&columns.unit_prices)
    .bind(&columns.idempotency_keys)
    .bind(&columns.decided_by)
    .bind(&unit_orders)
    .fetch_all(db)
    .await
    .map_err(classify)?;
    if stored.is_empty() && !batch.is_empty() {
        return Ok(None);
    }
    Ok(Some(stored_orders(batch, columns.ids, stored)))
}

/// The orders of `batch` as stored (ids chosen here, creation times from the database).
fn stored_orders(
    batch: &[NewOrder],
    ids: Vec<Uuid>,
    stored: Vec<(Uuid, OffsetDateTime)>,
) -> Vec<Order> {
    let created: std::collections::HashMap<Uuid, OffsetDateTime> = stored.into_iter().collect();
    batch
        .iter()
        .zip(ids)
        .map(|(order, order_id)| Order {
            order_id,
            sale_id: order.req.sale_id,
            product_id: order.req.product_id.clone(),
            buyer_id: order.req.buyer_id.clone(),
            quantity: order.req.quantity,
            unit_price_cents: order.req.unit_price_cents,
            idempotency_key: order.req.idempotency_key.clone(),
            decided_by: order.decided_by.to_owned(),
            created_at: created[&order_id],
        })
        .collect()
}

fn classify(err: sqlx::Error) -> InsertError {
    if let Some(db) = err.as_database_error() {
        match db.constraint() {
            Some("order_units_pkey" | "orders_sale_slot") => return InsertError::SlotTaken,
            Some("orders_buyer_idempotency_key") => return InsertError::DuplicateKey,
            Some("buyer_units_within_limit") => return InsertError::BuyerLimit,
            _ => {}
        }
    }
    InsertError::Database(err)
}

/// The buyer's order holding this idempotency key, if any (keys are unique per buyer).
pub async fn find_by_key(
    pool: &PgPool,
    buyer_id: &str,
    key: &str,
) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE buyer_id = $1 AND idempotency_key = $2"
    ))
    .bind(buyer_id)
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// The orders holding any of the (buyer, key) pairs, for batched lookups.
///
/// Not a prepared statement: PostgreSQL would soon settle on one generic plan for it, and a plan
/// made while `orders` was small is a sequential scan, kept as the table grows (seen here: 600
/// scans reading 7 million rows in 8 s). Planned with the real arrays each time, it probes the
/// unique (buyer_id, idempotency_key) index.
pub async fn find_many_by_key<'e>(
    db: impl PgExecutor<'e>,
    buyer_ids: &[String],
    keys: &[String],
) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE (buyer_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
    ))
    .persistent(false)
    .bind(buyer_ids)
    .bind(keys)
    .fetch_all(db)
    .await
}

/// One order by its id.
pub async fn by_id<'e>(db: impl PgExecutor<'e>, order_id: Uuid) -> Result<Order, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(order_id)
        .fetch_one(db)
        .await
}

/// The whole order ledger of a sale, oldest first.
pub async fn for_sale(pool: &PgPool, sale_id: Uuid) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE sale_id = $1 ORDER BY created_at, id"
    ))
    .bind(sale_id)
    .fetch_all(pool)
    .await
}

/// Units in the sale's persisted orders: the truth every other figure is compared with.
pub async fn units_in_orders<'e>(
    db: impl PgExecutor<'e>,
    sale_id: Uuid,
) -> Result<i64, sqlx::Error> {
    let (units,): (i64,) =
        sqlx::query_as("SELECT coalesce(sum(quantity), 0)::bigint FROM orders WHERE sale_id = $1")
            .bind(sale_id)
            .fetch_one(db)
            .await?;
    Ok(units)
}

/// Units in one buyer's persisted orders of a sale (the figure `per_buyer_limit` bounds).
pub async fn units_of_buyer<'e>(
    db: impl PgExecutor<'e>,
    sale_id: Uuid,
    buyer_id: &str,
) -> Result<i64, sqlx::Error> {
    let (units,): (i64,) = sqlx::query_as(
        "SELECT coalesce(sum(quantity), 0)::bigint FROM orders WHERE sale_id = $1 AND buyer_id = $2",
    )
    .bind(sale_id)
    .bind(buyer_id)
    .fetch_one(db)
    .await?;
    Ok(units)
}
