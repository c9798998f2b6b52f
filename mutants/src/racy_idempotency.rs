//! DELIBERATELY BROKEN: a non-atomic idempotency check, breaking INV-4 (idempotency).
//!
//! For a strategy like this one (`buy_checks_keys` left false), the buyer route asks "does this
//! key hold an order?" and then claims. The correct strategies rely on the ledger's UNIQUE
//! idempotency key instead (a second order of a key gets `DuplicateKey` and is answered with the
//! first; they claim first and are looked up only when refused). This mutant models a store without
//! that guarantee: when two requests with one key (same body or not) pass the lookup before either
//! order is written, both claim, both orders are stored under that key and both are answered 201
//! with different order ids. Sequential retries still find the first order and are answered
//! correctly: it is a race only. Claims are otherwise correct and serialized
//! ([`crate::serial_model`]), in an unguarded (slot-less) sale. A lookup that finds no order
//! answers [`LOOKUP_MISS_DELAY`] late, as a slow store would: the race then needs two requests
//! within that much of each other rather than within one database round trip, so the scenarios
//! that repeat keys meet it in every run instead of in some.
//!
//! How the store loses the guarantee: before its first claim, the mutant replaces the ledger's
//! `UNIQUE (buyer_id, idempotency_key)` with a unique index of the same name that exempts the
//! orders it writes (`decided_by = 'racy-idempotency'`), plus a plain index for lookups. The key is stored
//! unaltered, so the checker sees two orders of one key (INV-4), each matching the attempt it
//! answered (INV-2 and INV-3 hold). The change is to the run's database, which the harness creates
//! for each run and drops after; other strategies' orders keep their unique keys on it.

use std::time::Duration;

use flashsale_server::StrategyParts;
use futures::future::BoxFuture;
use sqlx::PgPool;

use crate::serial_model::{ClaimView, SerialModel};

pub const NAME: &str = "racy-idempotency";

/// How late a key lookup that found nothing answers: the width of the race.
pub const LOOKUP_MISS_DELAY: Duration = Duration::from_millis(25);

/// The strategy: correct serialized claims over a ledger whose keys are not unique for them.
pub fn strategy(parts: StrategyParts) -> SerialModel {
    SerialModel::new(NAME, ClaimView::correct, parts)
        .with_prepare(boxed_relax)
        .with_slow_lookup_miss(LOOKUP_MISS_DELAY)
}

fn boxed_relax(pool: &PgPool) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(relax_key_uniqueness(pool))
}

/// Lets this mutant's orders share an idempotency key. Idempotent, and atomic (one transaction).
pub async fn relax_key_uniqueness(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The name the server maps to `DuplicateKey` stays in use, now as a partial unique index:
    // PostgreSQL reports a unique index's violations under the index's name.
    sqlx::query("ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_buyer_idempotency_key")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS orders_buyer_idempotency_key \
         ON orders (buyer_id, idempotency_key) WHERE decided_by <> '{NAME}'"
    ))
    .execute(&mut *tx)
    .await?;
    // Lookups by key cannot use the partial index.
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS orders_idempotency_key_lookup \
         ON orders (buyer_id, idempotency_key)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
