//! The correct variant's reconcile task: every [`RECONCILE_EVERY`], each open drop's Redis count
//! becomes PostgreSQL's `stock - sold` (nothing held), unless a purchase of that drop is in
//! flight here.
//!
//! It is what makes Redis agree with PostgreSQL once load stops: after Redis restarted empty,
//! after its count was set back or set wrong, after a settlement or give-back was lost. While a
//! purchase is in flight it holds units, so "nothing held" would be false: the drop is left
//! alone until a round finds it quiet.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::Shop;
use crate::gate::RECONCILE_TIMEOUT;

pub const RECONCILE_EVERY: Duration = Duration::from_millis(250);

/// Runs until `stop` turns true (or its sender is gone).
pub async fn run(shop: Arc<Shop>, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(RECONCILE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
        if let Err(err) = round(&shop).await {
            tracing::debug!(%err, "reconcile: round skipped");
        }
    }
}

async fn round(shop: &Shop) -> Result<(), String> {
    let open = sqlx::query_as::<_, (i64, i64)>(
        "SELECT id, (stock - sold)::bigint FROM shop_drops WHERE is_open",
    )
    .fetch_all(&shop.pool);
    let drops = match tokio::time::timeout(RECONCILE_TIMEOUT, open).await {
        Ok(Ok(drops)) => drops,
        Ok(Err(err)) => return Err(format!("reading the open drops: {err}")),
        Err(_) => return Err("reading the open drops took too long".to_owned()),
    };
    for (id, left) in drops {
        let known = shop.drops.get(id);
        if known.as_ref().is_some_and(|drop| drop.in_flight() > 0) {
            continue;
        }
        // One failure ends the round: Redis is away, and waiting out a timeout per drop helps
        // nobody.
        shop.gate
            .set(id, left)
            .await
            .map_err(|err| format!("writing drop {id}'s count: {err}"))?;
    }
    Ok(())
}
