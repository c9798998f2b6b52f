//! Sales: creation with a preflight check, the lifecycle by hand (activate, expire), lookups, and
//! a short-lived in-process cache of sale terms for the buy path.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    Scheduled,
    Active,
    Expired,
}

impl SaleState {
    fn parse(s: &str) -> SaleState {
        match s {
            "active" => SaleState::Active,
            "expired" => SaleState::Expired,
            _ => SaleState::Scheduled,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SaleState::Scheduled => "scheduled",
            SaleState::Active => "active",
            SaleState::Expired => "expired",
        }
    }
}

/// Whether a sale's orders own slots (the correct ledger) or not (only the broken test strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    Slots,
    Unguarded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleProduct {
    pub product_id: String,
    pub sale_price_cents: i64,
}

/// A sale's terms as the buy path needs them.
#[derive(Debug, Clone, Serialize)]
pub struct Sale {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub state: SaleState,
    /// `None` = unlimited.
    pub cap: Option<i64>,
    pub per_buyer_limit: Option<i32>,
    pub ledger: LedgerKind,
    pub products: Vec<SaleProduct>,
}

impl Sale {
    /// Live means activated, not expired, and inside its window *now*: the window is checked where
    /// the claim is decided, not only by the lifecycle jobs (HAZ-13).
    pub fn live_problem(&self, now: OffsetDateTime) -> Option<String> {
        match self.state {
            SaleState::Scheduled => return Some("the sale has not been activated".into()),
            SaleState::Expired => return Some("the sale has expired".into()),
            SaleState::Active => {}
        }
        if now < self.starts_at {
            return Some("the sale window has not started".into());
        }
        if now >= self.ends_at {
            return Some("the sale window has ended".into());
        }
        None
    }

    pub fn product(&self, product_id: Option<&str>) -> Result<&SaleProduct, ApiError> {
        match product_id {
            Some(id) => self
                .products
                .iter()
                .find(|p| p.product_id == id)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownProduct,
                        format!("product {id:?} is not part of this sale"),
                    )
                }),
            None if self.products.len() == 1 => Ok(&self.products[0]),
            None => Err(ApiError::new(
                ErrorCode::ProductRequired,
                "this sale has several products: name one in product_id",
            )),
        }
    }
}

/// The admin's request to create a sale, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// A number, or `null`/absent for an unlimited sale.
    #[serde(default)]
    pub cap: Option<i64>,
    #[serde(default)]
    pub per_buyer_limit: Option<i32>,
    pub products: Vec<NewProduct>,
    /// Let the activation job make the sale live at `starts_at`, after the preflight
    /// (`preflight.rs`). Without it the sale waits for an admin's hand activation, which skips the
    /// preflight.
    #[serde(default)]
    pub activate_on_schedule: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub product_id: String,
    pub sale_price_cents: i64,
}

/// The largest cap a sale may have; far above any real drop, and small enough that slot numbers
/// and Redis counters never come near an integer limit.
pub const MAX_CAP: i64 = 1_000_000_000;

impl NewSale {
    /// Preflight validation: every problem, not just the first, so an admin fixes them in one go.
    pub fn problems(&self) -> Vec<Value> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, text: &str| {
            problems.push(json!({ "field": field, "problem": text }));
        };
        // PostgreSQL text cannot hold U+0000: refused here, it would otherwise fail the insert
        // and look like an outage.
        const NUL: &str = "must not contain a NUL character (U+0000)";
        // Lengths are in characters, as the contract's maxLength and the table's CHECK
        // (`length()`) count them, not in UTF-8 bytes.
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            problem("name", "must be 1 to 200 characters");
        } else if self.name.contains('\0') {
            problem("name", NUL);
        }
        if self.ends_at <= self.starts_at {
            problem("ends_at", "must be after starts_at");
        }
        match self.cap {
            Some(cap) if !(0..=MAX_CAP).contains(&cap) => problem(
                "cap",
                "must be between 0 and 1000000000, or null for unlimited",
            ),
            _ => {}
        }
        if matches!(self.per_buyer_limit, Some(limit) if limit < 1) {
            problem("per_buyer_limit", "must be at least 1 when given");
        }
        if self.products.is_empty() {
            problem("products", "must list at least one product");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.products.iter().enumerate() {
            let field = format!("products[{i}]");
            if p.product_id.is_empty() || p.product_id.chars().count() > 100 {
                problem(
                    &format!("{field}.product_id"),
                    "must be 1 to 100 characters",
                );
            } else if p.product_id.contains('\0') {
                problem(&format!("{field}.product_id"), NUL);
            }
            if !seen.insert(p.product_id.as_str()) {
                problem(&format!("{field}.product_id"), "is listed twice");
            }
            if p.sale_price_cents < 0 {
                problem(&format!("{field}.sale_price_cents"), "must not be negative");
            }
        }
        problems
    }
}

pub async fn create(pool: &PgPool, new: &NewSale, ledger: LedgerKind) -> Result<Sale, ApiError> {
    let problems = new.problems();
    if !problems.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("the sale has {} problem(s)", problems.len()),
        )
        .with_details(json!({ "problems": problems })));
    }
    let id = Uuid::new_v4();
    let ledger_name = match ledger {
        LedgerKind::Slots => "slots",
        LedgerKind::Unguarded => "unguarded",
    };
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO flash_sales
             (id, name, starts_at, ends_at, unit_cap, per_buyer_limit, ledger, activate_on_schedule)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&new.name)
    .bind(new.starts_at)
    .bind(new.ends_at)
    .bind(new.cap)
    .bind(new.per_buyer_limit)
    .bind(ledger_name)
    .bind(new.activate_on_schedule)
    .execute(&mut *tx)
    .await?;
    // The sale and its lifecycle jobs commit together: no sale without its expiration (and, if
    // asked, activation) job, whenever the process dies.
    crate::job_queue::schedule_sale(
        &mut tx,
        id,
        new.starts_at,
        new.ends_at,
        new.activate_on_schedule,
    )
    .await?;
    for p in &new.products {
        sqlx::query(
            "INSERT INTO flash_sale_products (sale_id, product_id, sale_price_cents)
             VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(&p.product_id)
        .bind(p.sale_price_cents)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    load(pool, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the new sale vanished"))
}

type SaleRow = (
    Uuid,
    String,
    OffsetDateTime,
    OffsetDateTime,
    String,
    Option<i64>,
    Option<i32>,
    String,
);

pub async fn load(pool: &PgPool, id: Uuid) -> Result<Option<Sale>, sqlx::Error> {
    let row: Option<SaleRow> = sqlx::query_as(
        "SELECT id, name, starts_at, ends_at, state, unit_cap, per_buyer_limit, ledger
         FROM flash_sales WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some((id, name, starts_at, ends_at, state, cap, per_buyer_limit, ledger)) = row else {
        return Ok(None);
    };
    let products: Vec<(String, i64)> = sqlx::query_as(
        "SELECT product_id, sale_price_cents FROM flash_sale_products
         WHERE sale_id = $1 ORDER BY product_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some(Sale {
        id,
        name,
        starts_at,
        ends_at,
        state: SaleState::parse(&state),
        cap,
        per_buyer_limit,
        ledger: if ledger == "unguarded" {
            LedgerKind::Unguarded
        } else {
            LedgerKind::Slots
        },
        products: products
            .into_iter()
            .map(|(product_id, sale_price_cents)| SaleProduct {
                product_id,
                sale_price_cents,
            })
            .collect(),
    }))
}

/// Moves a sale to `target`. Activating an active sale or expiring an expired one is a no-op
/// (the lifecycle jobs may run twice); reactivating an expired sale is refused.
pub async fn transition(pool: &PgPool, id: Uuid, target: SaleState) -> Result<Sale, ApiError> {
    let allowed_from: &[&str] = match target {
        SaleState::Active => &["scheduled", "active"],
        SaleState::Expired => &["scheduled", "active", "expired"],
        SaleState::Scheduled => &[],
    };
    let allowed: Vec<String> = allowed_from.iter().map(|s| s.to_string()).collect();
    let updated =
        sqlx::query("UPDATE flash_sales SET state = $2 WHERE id = $1 AND state = ANY($3)")
            .bind(id)
            .bind(target.as_str())
            .bind(&allowed)
            .execute(pool)
            .await?;
    let sale = load(pool, id).await?.ok_or_else(|| sale_not_found(id))?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            format!(
                "a {} sale cannot become {}",
                sale.state.as_str(),
                target.as_str()
            ),
        ));
    }
    Ok(sale)
}

pub fn sale_not_found(id: Uuid) -> ApiError {
    ApiError::new(ErrorCode::SaleNotFound, format!("no sale with id {id}"))
}

/// Sale terms cached for a short time so a buy costs no extra database round trip. The window and
/// cap never change after creation; only the state does, and admin transitions made through this
/// process invalidate the entry at once (other processes see them within the TTL).
#[derive(Debug)]
pub struct SaleCache {
    ttl: Duration,
    /// Keyed by sale ids, which only admins make, so the map needs no protection from chosen
    /// keys and takes foldhash: a buy's lookup here fell from ~410 to ~270 instructions with it
    /// (callgrind).
    entries: RwLock<foldhash::HashMap<Uuid, (Instant, Arc<Sale>)>>,
}

impl SaleCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(foldhash::HashMap::default()),
        }
    }

    pub async fn get(&self, pool: &PgPool, id: Uuid) -> Result<Option<Arc<Sale>>, sqlx::Error> {
        if let Some((at, sale)) = self.entries.read().expect("sale cache").get(&id) {
            if at.elapsed() < self.ttl {
                return Ok(Some(sale.clone()));
            }
        }
        let Some(sale) = load(pool, id).await? else {
            return Ok(None);
        };
        let sale = Arc::new(sale);
        self.entries
            .write()
            .expect("sale cache")
            .insert(id, (Instant::now(), sale.clone()));
        Ok(Some(sale))
    }

    pub fn invalidate(&self, id: Uuid) {
        self.entries.write().expect("sale cache").remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn new_sale() -> NewSale {
        NewSale {
            name: "drop".into(),
            starts_at: datetime!(2026-01-01 10:00 UTC),
            ends_at: datetime!(2026-01-01 11:00 UTC),
            cap: Some(10),
            per_buyer_limit: None,
            products: vec![NewProduct {
                product_id: "tee".into(),
                sale_price_cents: 1500,
            }],
            activate_on_schedule: false,
        }
    }

    #[test]
    fn a_valid_sale_has_no_problems() {
        assert!(new_sale().problems().is_empty());
    }

    #[test]
    fn preflight_lists_every_problem() {
        let mut sale = new_sale();
        sale.name = " ".into();
        sale.ends_at = sale.starts_at;
        sale.cap = Some(-1);
        sale.per_buyer_limit = Some(0);
        sale.products.push(NewProduct {
            product_id: "tee".into(),
            sale_price_cents: -5,
        });
        let fields: Vec<String> = sale
            .problems()
            .iter()
            .map(|p| p["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "ends_at",
                "cap",
                "per_buyer_limit",
                "products[1].product_id",
                "products[1].sale_price_cents"
            ]
        );
    }

    #[test]
    fn strings_postgresql_cannot_store_are_problems_naming_the_field() {
        let mut sale = new_sale();
        sale.name = "drop\0".into();
        sale.products[0].product_id = "t\0ee".into();
        let fields: Vec<String> = sale
            .problems()
            .iter()
            .map(|p| p["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fields, ["name", "products[0].product_id"]);
    }

    /// Found by the API fuzzer: a 150-character name of two-byte characters fits the contract's
    /// maxLength and the table's CHECK, and was refused for being over 200 bytes.
    #[test]
    fn lengths_are_counted_in_characters() {
        let mut sale = new_sale();
        sale.name = "ä".repeat(200);
        sale.products[0].product_id = "é".repeat(100);
        assert!(sale.problems().is_empty(), "{:?}", sale.problems());
        sale.name.push('ä');
        sale.products[0].product_id.push('é');
        assert_eq!(sale.problems().len(), 2, "{:?}", sale.problems());
    }

    #[test]
    fn the_window_is_checked_at_the_instant_of_the_claim() {
        let new = new_sale();
        let sale = Sale {
            id: Uuid::nil(),
            name: new.name,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            state: SaleState::Active,
            cap: Some(10),
            per_buyer_limit: None,
            ledger: LedgerKind::Slots,
            products: vec![],
        };
        assert!(
            sale.live_problem(datetime!(2026-01-01 09:59:59.999 UTC))
                .is_some()
        );
        assert!(sale.live_problem(datetime!(2026-01-01 10:00 UTC)).is_none());
        assert!(
            sale.live_problem(datetime!(2026-01-01 10:59:59.999 UTC))
                .is_none()
        );
        assert!(sale.live_problem(datetime!(2026-01-01 11:00 UTC)).is_some());
        let expired = Sale {
            state: SaleState::Expired,
            ..sale.clone()
        };
        assert!(
            expired
                .live_problem(datetime!(2026-01-01 10:30 UTC))
                .is_some()
        );
    }
}
