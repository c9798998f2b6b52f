//! The broken checkout: the classic read-check-write, which oversells. It exists so that tests
//! can show the harness catches an oversell through a target profile; never run it for real.
//!
//! Every flaw is one a real shop has shipped:
//! - stock is read with a plain `SELECT`, compared in Rust, and written back after a "round
//!   trip" (a 1 ms sleep) with an unguarded `sold = sold + units`, outside any transaction: every
//!   buyer who read before the last unit's write went through also buys;
//! - the per-customer limit is read the same way, with no lock;
//! - the Redis gate is a `GET`, and the `DECRBY` comes only after the sale (the cache is updated
//!   once the database is): two commands, with the whole sale between them;
//! - a missing Redis count is reseeded to `stock`, as if nothing had been sold.

use std::time::Duration;

use super::ledger::{self, find_by_key};
use super::{CheckoutError, CheckoutRequest, Outcome, Purchase, within_deadline};
use crate::Shop;
use crate::drops::KnownDrop;
use crate::gate::{GATE_TIMEOUT, left_key};

/// The time between the check and the write, standing for a round trip to another service.
const ROUND_TRIP: Duration = Duration::from_millis(1);

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
    let units = i64::from(request.units);
    let key = left_key(&shop.redis_prefix, drop.id);

    let mut get = redis::cmd("GET");
    get.arg(&key);
    match shop.link.command::<Option<i64>>(get, GATE_TIMEOUT).await {
        Ok(Some(left)) if left < units => return Ok(Outcome::SoldOut),
        Ok(Some(_)) | Err(_) => {}
        Ok(None) => {
            let stock: i64 = within_deadline(
                sqlx::query_scalar("SELECT stock::bigint FROM shop_drops WHERE id = $1")
                    .bind(drop.id)
                    .fetch_one(&shop.pool),
            )
            .await?;
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(stock);
            let _ = shop.link.command::<()>(set, GATE_TIMEOUT).await;
            if stock < units {
                return Ok(Outcome::SoldOut);
            }
        }
    }

    // Read.
    let (stock, sold, open): (i64, i64, bool) = within_deadline(
        sqlx::query_as(
            "SELECT stock::bigint, sold::bigint,
                    is_open AND now() >= opens_at AND now() < closes_at
               FROM shop_drops WHERE id = $1",
        )
        .bind(drop.id)
        .fetch_one(&shop.pool),
    )
    .await?;
    // Check.
    if !open {
        return Ok(Outcome::Closed);
    }
    if sold + units > stock {
        return Ok(Outcome::SoldOut);
    }
    if let Some(max) = drop.max_per_customer {
        let bought: i64 = within_deadline(
            sqlx::query_scalar(
                "SELECT COALESCE(SUM(units), 0)::bigint FROM shop_purchases
                  WHERE drop_id = $1 AND customer = $2",
            )
            .bind(drop.id)
            .bind(&request.customer)
            .fetch_one(&shop.pool),
        )
        .await?;
        if bought + units > i64::from(max) {
            return Ok(Outcome::LimitReached);
        }
    }
    tokio::time::sleep(ROUND_TRIP).await;
    // Write, trusting the check.
    within_deadline(
        sqlx::query("UPDATE shop_drops SET sold = sold + $2 WHERE id = $1")
            .bind(drop.id)
            .bind(request.units)
            .execute(&shop.pool),
    )
    .await?;
    let reference = ledger::new_reference();
    let inserted: Option<String> = within_deadline(
        sqlx::query_scalar(
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
        .fetch_optional(&shop.pool),
    )
    .await?;
    if inserted.is_none() {
        // A concurrent copy of the key won; its purchase is the answer (and `sold` keeps this
        // copy's units too: one more way the counters drift).
        let key = request.key.as_deref().unwrap_or_default();
        return match within_deadline(find_by_key(&shop.pool, drop.id, key)).await? {
            Some(purchase) => Ok(Outcome::replayed(purchase)),
            None => Err(CheckoutError::Database(sqlx::Error::RowNotFound)),
        };
    }
    let mut decrby = redis::cmd("DECRBY");
    decrby.arg(&key).arg(units);
    let _ = shop.link.command::<i64>(decrby, GATE_TIMEOUT).await;
    Ok(Outcome::Confirmed {
        purchase: Purchase {
            reference,
            units: request.units,
            customer: request.customer.clone(),
        },
        replayed: false,
    })
}
