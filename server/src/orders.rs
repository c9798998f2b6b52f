//! Orders in the PostgreSQL ledger: the durable record that decides what was sold.
//!
//! Every path that sells writes through [`insert`], one statement that stores the order and the
//! slots it owns, so an acknowledged order is always durable before the 201 (HAZ-10).

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
    /// Another order already has this idempotency key (a concurrent retry won). Nothing written.
    #[error("idempotency key already used")]
    DuplicateKey,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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
    decided_by: &str,
) -> Result<Order, InsertError> {
    let order_id = Uuid::new_v4();
    let result = sqlx::query_as::<_, (OffsetDateTime,)>(
        "WITH new_order AS (
             INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                                 idempotency_key, decided_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING created_at
         ), new_units AS (
             INSERT INTO order_units (sale_id, slot, sale_cap, order_id)
             SELECT $2, slot, $9, $1 FROM unnest($10::bigint[]) AS slot
         )
         SELECT created_at FROM new_order",
    )
    .bind(order_id)
    .bind(req.sale_id)
    .bind(&req.product_id)
    .bind(&req.buyer_id)
    .bind(req.quantity)
    .bind(req.unit_price_cents)
    .bind(&req.idempotency_key)
    .bind(decided_by)
    .bind(sale_cap)
    .bind(slots)
    .fetch_one(db)
    .await;
    match result {
        Ok((created_at,)) => Ok(Order {
            order_id,
            sale_id: req.sale_id,
            product_id: req.product_id.clone(),
            buyer_id: req.buyer_id.clone(),
            quantity: req.quantity,
            unit_price_cents: req.unit_price_cents,
            idempotency_key: req.idempotency_key.clone(),
            decided_by: decided_by.to_owned(),
            created_at,
        }),
        Err(err) => Err(classify(err)),
    }
}

fn classify(err: sqlx::Error) -> InsertError {
    if let Some(db) = err.as_database_error() {
        match db.constraint() {
            Some("order_units_pkey") => return InsertError::SlotTaken,
            Some("orders_idempotency_key_key") => return InsertError::DuplicateKey,
            _ => {}
        }
    }
    InsertError::Database(err)
}

pub async fn find_by_key(pool: &PgPool, key: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(pool)
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
