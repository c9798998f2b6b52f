//! The shop's two tables, created at start-up in whatever database the shop is given.
//!
//! There is no admin API: drops are inserted and opened by SQL, and the ledger
//! (`shop_purchases`) is read by SQL, so these statements are the shop's data contract.

use sqlx::PgPool;

/// Statements run in order, inside one transaction.
const STATEMENTS: &[&str] = &[
    // Two shops starting on one database at once would otherwise race on the catalog and one
    // would fail with a duplicate-type error; the lock makes the second wait and find the tables.
    "SELECT pg_advisory_xact_lock(hashtextextended('flashsale-example-shop schema', 0))",
    "CREATE TABLE IF NOT EXISTS shop_drops (
        id BIGSERIAL PRIMARY KEY,
        title TEXT NOT NULL,
        sku TEXT NOT NULL,
        price_cents BIGINT NOT NULL,
        stock INT NOT NULL CHECK (stock >= 0),
        sold INT NOT NULL DEFAULT 0,
        max_per_customer INT,
        opens_at TIMESTAMPTZ NOT NULL,
        closes_at TIMESTAMPTZ NOT NULL,
        is_open BOOLEAN NOT NULL DEFAULT false
    )",
    "CREATE TABLE IF NOT EXISTS shop_purchases (
        id BIGSERIAL PRIMARY KEY,
        ref TEXT NOT NULL UNIQUE,
        drop_id BIGINT NOT NULL REFERENCES shop_drops(id),
        customer TEXT NOT NULL,
        units INT NOT NULL CHECK (units > 0),
        request_key TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (drop_id, request_key)
    )",
    // The per-customer limit sums a customer's units of one drop on every limited purchase;
    // without this index that is a scan of the drop's whole ledger under the customer's lock.
    "CREATE INDEX IF NOT EXISTS shop_purchases_drop_customer
        ON shop_purchases (drop_id, customer)",
];

/// Creates `shop_drops`, `shop_purchases` and the index the limit check needs, if missing.
/// Safe to call from several processes at once, and again on an existing database.
pub async fn prepare_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for statement in STATEMENTS {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}
