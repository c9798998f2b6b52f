//! The drops this process has seen: their terms, read once from `shop_drops`, and how many of
//! their purchases are in flight here.
//!
//! Drops are created by SQL while the shop runs, so an id that is not found is *not*
//! remembered: the next request for it asks PostgreSQL again. What is remembered is only what
//! does not change once a drop exists (its sku and per-customer limit); whether it is open, its
//! window, its stock and sold count are read by the purchase itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use sqlx::PgPool;

#[derive(Debug)]
pub struct KnownDrop {
    pub id: i64,
    pub sku: String,
    pub max_per_customer: Option<i32>,
    in_flight: AtomicUsize,
}

impl KnownDrop {
    /// Counts a purchase in flight until the guard is dropped: the reconcile task leaves a drop
    /// alone while its Redis count is being moved by purchases.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight { drop: self }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// One purchase in flight; see [`KnownDrop::enter`].
#[derive(Debug)]
pub struct InFlight<'a> {
    drop: &'a KnownDrop,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.drop.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
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
        // Two first requests may both have read it; the first one stored keeps its count.
        let entry = known.entry(id).or_insert_with(|| {
            Arc::new(KnownDrop {
                id,
                sku,
                max_per_customer,
                in_flight: AtomicUsize::new(0),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_guards() {
        let drop = KnownDrop {
            id: 1,
            sku: "S".into(),
            max_per_customer: None,
            in_flight: AtomicUsize::new(0),
        };
        let first = drop.enter();
        let second = drop.enter();
        assert_eq!(drop.in_flight(), 2);
        drop_guard(first);
        drop_guard(second);
        assert_eq!(drop.in_flight(), 0);
    }

    fn drop_guard(guard: InFlight<'_>) {
        std::mem::drop(guard);
    }
}
