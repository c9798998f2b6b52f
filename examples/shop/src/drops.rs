//! The drops this process has seen: their terms, read once from `shop_drops`, and the gate's
//! per-drop accounts.
//!
//! Drops are created by SQL while the shop runs, so an id that is not found is *not*
//! remembered: the next request for it asks PostgreSQL again. What is remembered is only what
//! does not change once a drop exists (its sku and per-customer limit); whether it is open, its
//! window, its stock and sold count are read by the purchase itself.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;

use crate::gate::accounts::Accounts;

#[derive(Debug)]
pub struct KnownDrop {
    pub id: i64,
    pub sku: String,
    pub max_per_customer: Option<i32>,
    pub accounts: Accounts,
}

#[derive(Debug, Default)]
pub struct DropBook {
    known: RwLock<HashMap<i64, Arc<KnownDrop>>>,
}

impl DropBook {
    /// The drop with this id, from memory or else from PostgreSQL; `None` when it does not
    /// exist (yet).
    pub async fn find(
        &self,
        pool: &PgPool,
        id: i64,
    ) -> Result<Option<Arc<KnownDrop>>, sqlx::Error> {
        if let Some(known) = self.get(id) {
            return Ok(Some(known));
        }
        let row: Option<(String, Option<i32>)> =
            sqlx::query_as("SELECT sku, max_per_customer FROM shop_drops WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
        let Some((sku, max_per_customer)) = row else {
            return Ok(None);
        };
        let mut known = self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Two first requests may both have read it; the first one stored keeps its accounts.
        let entry = known.entry(id).or_insert_with(|| {
            Arc::new(KnownDrop {
                id,
                sku,
                max_per_customer,
                accounts: Accounts::default(),
            })
        });
        Ok(Some(entry.clone()))
    }

    /// The drop if this process has seen it.
    pub fn get(&self, id: i64) -> Option<Arc<KnownDrop>> {
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }
}
