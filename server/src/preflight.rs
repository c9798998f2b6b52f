//! The preflight validator (the seed's `FlashSalePreflightValidator`): everything that must be
//! true before a sale goes live, every problem listed at once. The rules are a pure function of
//! the sale, the catalog and the overlapping live sales ([`problems`]); [`check`] loads those.
//!
//! It runs twice: on demand through the admin API (a dry run that changes nothing), and inside
//! the activation job, where a sale with any problem does not go live and the problems are stored
//! on it (`flash_sales.preflight_problems`, shown by the dry-run route).

use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::sales::MAX_CAP;

/// A sale price below this share of the list price is refused: a 95 %-off flash sale is far more
/// often a typo in the price (cents for euros) than a decision.
pub const MAX_DISCOUNT_PERCENT: i64 = 90;

/// One problem: which field, a stable code for programs, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    pub code: &'static str,
    pub problem: String,
}

/// When the preflight runs: an admin's dry run asks for a window still entirely in the future;
/// the activation job runs shortly before `starts_at` (or late, after a restart) and only needs
/// the window not to have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    DryRun,
    Activation,
}

/// A product of the sale with its catalog entry, if any.
#[derive(Debug, Clone)]
pub struct ProductTerms {
    pub product_id: String,
    pub sale_price_cents: i64,
    /// `None`: the product is not in the catalog.
    pub list_price_cents: Option<i64>,
}

/// What the rules look at.
#[derive(Debug, Clone)]
pub struct SaleTerms {
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub cap: Option<i64>,
    pub per_buyer_limit: Option<i32>,
    pub products: Vec<ProductTerms>,
    /// Other live sales whose window overlaps this one's, with the product they share.
    pub overlapping: Vec<(Uuid, String)>,
}

/// Every rule, every problem.
pub fn problems(sale: &SaleTerms, now: OffsetDateTime, stage: Stage) -> Vec<Problem> {
    let mut found = Vec::new();
    let mut problem = |field: String, code: &'static str, text: String| {
        found.push(Problem {
            field,
            code,
            problem: text,
        })
    };
    if sale.ends_at <= sale.starts_at {
        problem(
            "ends_at".into(),
            "window_order",
            "the sale must end after it starts".into(),
        );
    }
    match stage {
        Stage::DryRun if sale.starts_at <= now => problem(
            "starts_at".into(),
            "window_started",
            format!(
                "the sale starts at {}, which is not in the future",
                sale.starts_at
            ),
        ),
        Stage::Activation if sale.ends_at <= now => problem(
            "ends_at".into(),
            "window_ended",
            format!("the sale's window ended at {}", sale.ends_at),
        ),
        _ => {}
    }
    match sale.cap {
        Some(cap) if cap < 1 => problem(
            "cap".into(),
            "cap_not_positive",
            format!("a cap of {cap} sells nothing: give at least 1, or null for unlimited"),
        ),
        Some(cap) if cap > MAX_CAP => problem(
            "cap".into(),
            "cap_too_large",
            format!("the cap must be at most {MAX_CAP}"),
        ),
        _ => {}
    }
    if let (Some(cap), Some(limit)) = (sale.cap, sale.per_buyer_limit) {
        if i64::from(limit) > cap && cap >= 1 {
            problem(
                "per_buyer_limit".into(),
                "limit_above_cap",
                format!("the per-buyer limit {limit} is above the cap {cap}"),
            );
        }
    }
    if sale.products.is_empty() {
        problem(
            "products".into(),
            "no_products",
            "the sale has no products".into(),
        );
    }
    for (i, p) in sale.products.iter().enumerate() {
        let field = format!("products[{i}]");
        let Some(list) = p.list_price_cents else {
            problem(
                format!("{field}.product_id"),
                "unknown_product",
                format!("product {:?} is not in the catalog", p.product_id),
            );
            continue;
        };
        if p.sale_price_cents <= 0 {
            problem(
                format!("{field}.sale_price_cents"),
                "not_priced",
                format!("product {:?} has no sale price", p.product_id),
            );
        } else if p.sale_price_cents >= list {
            problem(
                format!("{field}.sale_price_cents"),
                "no_discount",
                format!(
                    "product {:?} sells at {} cents, not below its list price of {list}",
                    p.product_id, p.sale_price_cents
                ),
            );
        } else if p.sale_price_cents.saturating_mul(100)
            < list.saturating_mul(100 - MAX_DISCOUNT_PERCENT)
        {
            problem(
                format!("{field}.sale_price_cents"),
                "discount_too_deep",
                format!(
                    "product {:?} sells at {} cents, more than {MAX_DISCOUNT_PERCENT} % below its \
                     list price of {list}",
                    p.product_id, p.sale_price_cents
                ),
            );
        }
    }
    for (other, product_id) in &sale.overlapping {
        problem(
            "products".into(),
            "overlapping_sale",
            format!("product {product_id:?} is in live sale {other}, whose window overlaps"),
        );
    }
    found
}

/// Loads what [`problems`] looks at for `sale_id` (`None` if there is no such sale) and applies
/// the rules, at the database's clock.
pub async fn check(
    conn: &mut PgConnection,
    sale_id: Uuid,
    stage: Stage,
) -> Result<Option<Vec<Problem>>, sqlx::Error> {
    type Row = (
        OffsetDateTime,
        OffsetDateTime,
        Option<i64>,
        Option<i32>,
        OffsetDateTime,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT starts_at, ends_at, unit_cap, per_buyer_limit, clock_timestamp()
         FROM flash_sales WHERE id = $1",
    )
    .bind(sale_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((starts_at, ends_at, cap, per_buyer_limit, now)) = row else {
        return Ok(None);
    };
    let products: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT f.product_id, f.sale_price_cents, p.list_price_cents
         FROM flash_sale_products f LEFT JOIN products p USING (product_id)
         WHERE f.sale_id = $1 ORDER BY f.product_id",
    )
    .bind(sale_id)
    .fetch_all(&mut *conn)
    .await?;
    let overlapping: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT o.id, op.product_id
         FROM flash_sale_products mine
         JOIN flash_sale_products op ON op.product_id = mine.product_id AND op.sale_id <> $1
         JOIN flash_sales o ON o.id = op.sale_id
         WHERE mine.sale_id = $1 AND o.state = 'active'
           AND o.starts_at < $3 AND $2 < o.ends_at
         ORDER BY o.id, op.product_id",
    )
    .bind(sale_id)
    .bind(starts_at)
    .bind(ends_at)
    .fetch_all(&mut *conn)
    .await?;
    let terms = SaleTerms {
        starts_at,
        ends_at,
        cap,
        per_buyer_limit,
        products: products
            .into_iter()
            .map(
                |(product_id, sale_price_cents, list_price_cents)| ProductTerms {
                    product_id,
                    sale_price_cents,
                    list_price_cents,
                },
            )
            .collect(),
        overlapping,
    };
    Ok(Some(problems(&terms, now, stage)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 10:00 UTC);

    fn good() -> SaleTerms {
        SaleTerms {
            starts_at: datetime!(2026-06-01 12:00 UTC),
            ends_at: datetime!(2026-06-01 13:00 UTC),
            cap: Some(10),
            per_buyer_limit: Some(2),
            products: vec![ProductTerms {
                product_id: "sku-1".into(),
                sale_price_cents: 500,
                list_price_cents: Some(1000),
            }],
            overlapping: vec![],
        }
    }

    fn codes(sale: &SaleTerms, stage: Stage) -> Vec<&'static str> {
        problems(sale, NOW, stage).iter().map(|p| p.code).collect()
    }

    #[test]
    fn a_sound_sale_has_no_problem() {
        assert!(codes(&good(), Stage::DryRun).is_empty());
        assert!(codes(&good(), Stage::Activation).is_empty());
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut sale = good();
        sale.starts_at = datetime!(2026-06-01 09:00 UTC);
        sale.ends_at = datetime!(2026-06-01 08:00 UTC);
        sale.cap = Some(0);
        sale.products = vec![
            ProductTerms {
                product_id: "ghost".into(),
                sale_price_cents: 100,
                list_price_cents: None,
            },
            ProductTerms {
                product_id: "free".into(),
                sale_price_cents: 0,
                list_price_cents: Some(100),
            },
            ProductTerms {
                product_id: "dearer".into(),
                sale_price_cents: 1200,
                list_price_cents: Some(1000),
            },
            ProductTerms {
                product_id: "typo".into(),
                sale_price_cents: 5,
                list_price_cents: Some(1000),
            },
        ];
        sale.overlapping = vec![(Uuid::nil(), "sku-1".into())];
        assert_eq!(
            codes(&sale, Stage::DryRun),
            [
                "window_order",
                "window_started",
                "cap_not_positive",
                "unknown_product",
                "not_priced",
                "no_discount",
                "discount_too_deep",
                "overlapping_sale"
            ]
        );
    }

    #[test]
    fn the_activation_stage_only_needs_the_window_open() {
        let mut sale = good();
        sale.starts_at = datetime!(2026-06-01 09:59 UTC);
        assert_eq!(codes(&sale, Stage::DryRun), ["window_started"]);
        assert!(codes(&sale, Stage::Activation).is_empty());
        sale.ends_at = NOW;
        assert_eq!(codes(&sale, Stage::Activation), ["window_ended"]);
    }

    #[test]
    fn the_discount_bound_is_inclusive_at_ninety_percent() {
        let mut sale = good();
        sale.products[0].sale_price_cents = 100; // exactly 90 % off
        assert!(codes(&sale, Stage::DryRun).is_empty());
        sale.products[0].sale_price_cents = 99;
        assert_eq!(codes(&sale, Stage::DryRun), ["discount_too_deep"]);
    }

    #[test]
    fn a_per_buyer_limit_above_the_cap_is_a_problem() {
        let mut sale = good();
        sale.per_buyer_limit = Some(11);
        assert_eq!(codes(&sale, Stage::DryRun), ["limit_above_cap"]);
        sale.cap = None;
        assert!(codes(&sale, Stage::DryRun).is_empty());
    }
}
