//! The statements on `shop_purchases` both variants share: finding a key's purchase, and
//! naming a new one.

use sqlx::PgExecutor;

use super::Purchase;

/// The purchase made under `key` for this drop, if any.
pub async fn find_by_key<'e>(
    executor: impl PgExecutor<'e>,
    drop_id: i64,
    key: &str,
) -> Result<Option<Purchase>, sqlx::Error> {
    let row: Option<(String, i32, String)> = sqlx::query_as(
        "SELECT ref, units, customer FROM shop_purchases WHERE drop_id = $1 AND request_key = $2",
    )
    .bind(drop_id)
    .bind(key)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|(reference, units, customer)| Purchase {
        reference,
        units,
        customer,
    }))
}

/// A fresh purchase reference: `P-` and 32 hex digits, unique without asking the database.
pub fn new_reference() -> String {
    format!("P-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_prefixed_and_distinct() {
        let (a, b) = (new_reference(), new_reference());
        assert!(a.starts_with("P-") && a.len() == 34);
        assert_ne!(a, b);
    }
}
