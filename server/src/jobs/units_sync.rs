//! Units sync (`FlashSaleUnitsUpdateJob` in the seed): brings `flash_sales.quantity_sold` in line
//! with the orders, asynchronously, so reporting views stay accurate without sitting on the hot
//! path. No claim ever decides from this column (HAZ-4); it is a report, converging (INV-6).
//!
//! The same job expires cart holds past their time (their units come back to the ledger and to
//! the Redis counter), and reconciles the Redis counter with the ledger once a sale is quiet. Redis can
//! drift from the truth in both directions: above it when a claim ran but its order never landed
//! (a lost reply, HAZ-14; a release that failed), below it after a rollback or while the
//! PostgreSQL path sold (HAZ-3, HAZ-4). Neither can oversell — the slot ledger decides — but the
//! counter should converge. It is corrected only when neither figure moved for a whole interval
//! (no claim in flight), and only by compare-and-set, so a claim made in between is never lost.
//!
//! Both passes leave out the sales that have not moved lately. Summing every order of every sale
//! each tick made the job's cost grow with the whole order history: with 226k orders in one
//! active sale, ~60 ms for the sum and 65 ms for the slot count through the `sale_slots` view,
//! every second; with ~270k, PostgreSQL spent 0.20 cores on it while the server was otherwise
//! idle, taken from whatever ran meanwhile. A sale is read again while its newest order (one
//! index descent of `orders_sale_created`), and for the reconcile its Redis counter and slot rows,
//! changed within the last [`STILL_FOR`], and a counter is counted again whenever it disagreed
//! with its ledger at the last count; every [`FULL_PASS_EVERY`]th tick reads every sale, for what
//! the signature cannot see (a transaction committing longer than [`STILL_FOR`] after its rows
//! took their `created_at`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::inventory::redis::RedisCounter;

/// Every how many ticks both passes redo every sale, whatever changed (see the module's header).
pub const FULL_PASS_EVERY: u64 = 10;
/// How long a sale must look the same before a tick leaves it out: longer than a ledger batch
/// waits for its commit after its rows take their `created_at` (the ledger's deadline is the
/// database acquire timeout, 5 s by default), so an order committed after a newer one was read is
/// summed by the next ticks; a transaction open longer still is left to the full pass.
pub const STILL_FOR: Duration = Duration::from_secs(10);

/// Sets `quantity_sold` of every active or expired sale to the units in its orders. Returns how
/// many sales changed. Safe to run twice or concurrently: it only ever writes the truth.
pub async fn sync_once(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE flash_sales s SET quantity_sold = t.units
         FROM (SELECT o.sale_id, sum(o.quantity)::bigint AS units
               FROM orders o JOIN flash_sales f ON f.id = o.sale_id
               WHERE f.state <> 'scheduled'
               GROUP BY o.sale_id) t
         WHERE s.id = t.sale_id AND s.quantity_sold <> t.units",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// [`sync_once`] restricted to `sales`: a statement of its own, because one shared statement with an
/// optional filter would be planned once for both and lose the index path this one takes.
async fn sync_sales(pool: &PgPool, sales: &[Uuid]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE flash_sales s SET quantity_sold = t.units
         FROM (SELECT o.sale_id, sum(o.quantity)::bigint AS units
               FROM orders o
               WHERE o.sale_id = ANY ($1)
               GROUP BY o.sale_id) t
         WHERE s.id = t.sale_id AND s.quantity_sold <> t.units",
    )
    .bind(sales)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// When a sale last looked different to the job: its newest order (and for the reconcile, its
/// Redis counter and slot rows), and since when it has looked the same.
#[derive(Debug)]
struct Seen<S> {
    signature: S,
    since: Instant,
}

/// Tells whether a sale that now shows `signature` is still to be read (it looked different at a
/// tick of the last `still_for`, or was not seen before), and what to remember of it.
fn still_moving<S: PartialEq>(
    seen: Option<&Seen<S>>,
    signature: S,
    now: Instant,
    still_for: Duration,
) -> (bool, Seen<S>) {
    match seen {
        Some(before) if before.signature == signature => (
            now.duration_since(before.since) < still_for,
            Seen {
                signature,
                since: before.since,
            },
        ),
        _ => (
            true,
            Seen {
                signature,
                since: now,
            },
        ),
    }
}

/// Sums again only the sales that moved lately (see the module's header).
#[derive(Debug)]
pub struct UnitsSync {
    seen: HashMap<Uuid, Seen<Option<OffsetDateTime>>>,
    passes: u64,
    still_for: Duration,
}

impl Default for UnitsSync {
    fn default() -> Self {
        Self {
            seen: HashMap::new(),
            passes: 0,
            still_for: STILL_FOR,
        }
    }
}

impl UnitsSync {
    /// How long a sale must look the same to be left out, instead of [`STILL_FOR`] (tests).
    pub fn still_for(mut self, still_for: Duration) -> Self {
        self.still_for = still_for;
        self
    }

    /// One tick: [`sync_once`] on the first tick and every [`FULL_PASS_EVERY`]th; otherwise the
    /// same for the sales whose newest order changed within the last [`STILL_FOR`]. Returns how
    /// many sales changed.
    pub async fn pass(&mut self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let full = self.passes % FULL_PASS_EVERY == 0;
        self.passes += 1;
        let now = Instant::now();
        // Read before the sums: an order committed after this read either changes its sale's
        // newest order or, older than it, commits within STILL_FOR of it (a transaction open
        // longer is left to the full pass); either way the sale is summed again.
        let newest: Vec<(Uuid, Option<OffsetDateTime>)> = sqlx::query_as(
            "SELECT s.id, (SELECT max(o.created_at) FROM orders o WHERE o.sale_id = s.id)
             FROM flash_sales s
             WHERE s.state <> 'scheduled'",
        )
        .fetch_all(pool)
        .await?;
        let mut seen = HashMap::with_capacity(newest.len());
        let mut moving = Vec::new();
        for (sale, at) in newest {
            let (read, now_seen) = still_moving(self.seen.get(&sale), at, now, self.still_for);
            if read {
                moving.push(sale);
            }
            seen.insert(sale, now_seen);
        }
        let changed = if full {
            sync_once(pool).await?
        } else if moving.is_empty() {
            0
        } else {
            sync_sales(pool, &moving).await?
        };
        // Kept only once the sums are written: after a failed tick, what moved still looks moved.
        self.seen = seen;
        Ok(changed)
    }
}

/// What the reconcile compares between ticks for a sale: its Redis counter, its newest order
/// and its slot rows (holds and orders of scattered slots), which between them move whenever the
/// ledger's units do, up to an order committed after a newer one (see [`UnitsSync::pass`]).
type LedgerSignature = (i64, Option<OffsetDateTime>, i64);

/// Remembers, for each sale, the (counter, units) of its last count, to correct a counter only
/// when both read the same at two ticks in a row, and when the sale last moved, to count only
/// the sales that moved lately or disagreed.
#[derive(Debug)]
pub struct RedisReconciler {
    last_count: HashMap<Uuid, (i64, i64)>,
    seen: HashMap<Uuid, Seen<LedgerSignature>>,
    passes: u64,
    still_for: Duration,
}

impl Default for RedisReconciler {
    fn default() -> Self {
        Self {
            last_count: HashMap::new(),
            seen: HashMap::new(),
            passes: 0,
            still_for: STILL_FOR,
        }
    }
}

impl RedisReconciler {
    /// How long a sale must look the same to be left out, instead of [`STILL_FOR`] (tests).
    pub fn still_for(mut self, still_for: Duration) -> Self {
        self.still_for = still_for;
        self
    }

    /// One pass over the capped sales with a slot ledger that are active or ended within the
    /// hour (a sale expired early still has holds whose units come back to it; its counter should
    /// settle too). A counter is set to the ledger's units when both read the same at two ticks
    /// in a row and disagree. A sale whose counter agreed with its ledger at the last count and
    /// that has not moved for [`STILL_FOR`] is not counted again until the next full pass (every
    /// [`FULL_PASS_EVERY`]th tick). Returns how many counters it set.
    pub async fn reconcile_once(
        &mut self,
        pool: &PgPool,
        redis: &RedisCounter,
    ) -> Result<u32, sqlx::Error> {
        let full = self.passes % FULL_PASS_EVERY == 0;
        self.passes += 1;
        let now = Instant::now();
        let sales: Vec<(Uuid, Option<OffsetDateTime>, i64)> = sqlx::query_as(
            "SELECT s.id, (SELECT max(o.created_at) FROM orders o WHERE o.sale_id = s.id),
                    (SELECT count(*) FROM order_units u WHERE u.sale_id = s.id)
             FROM flash_sales s
             WHERE (s.state = 'active'
                    OR (s.state = 'expired' AND s.ends_at > now() - interval '1 hour'))
               AND s.ledger = 'slots' AND s.unit_cap IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        let mut seen = HashMap::with_capacity(sales.len());
        let mut last_count = HashMap::with_capacity(sales.len());
        let mut to_count = Vec::new();
        for (sale_id, newest, slot_rows) in sales {
            let Ok(Some(counter)) = redis.read(sale_id).await else {
                continue;
            };
            let signature = (counter, newest, slot_rows);
            let (moving, now_seen) =
                still_moving(self.seen.get(&sale_id), signature, now, self.still_for);
            seen.insert(sale_id, now_seen);
            let agreed = self.last_count.get(&sale_id) == Some(&(counter, counter));
            if full || moving || !agreed {
                to_count.push((sale_id, counter));
            } else {
                last_count.insert(sale_id, (counter, counter));
            }
        }
        let ids: Vec<Uuid> = to_count.iter().map(|(sale, _)| *sale).collect();
        let counted: HashMap<Uuid, i64> = if ids.is_empty() {
            HashMap::new()
        } else {
            // `sale_slots` (migration 0013) counted without its view: the view expands every own
            // range into its slots, which made this count ~2.5x slower on a sale of 226k orders.
            sqlx::query_as::<_, (Uuid, i64)>(
                "SELECT s.id,
                        (SELECT count(*) FROM order_units u WHERE u.sale_id = s.id)
                      + (SELECT coalesce(sum(o.quantity), 0) FROM orders o
                          WHERE o.sale_id = s.id AND o.slot IS NOT NULL)
                 FROM unnest($1::uuid[]) AS s(id)",
            )
            .bind(&ids)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect()
        };
        let mut fixed = 0;
        for (sale_id, counter) in to_count {
            let Some(&units) = counted.get(&sale_id) else {
                continue;
            };
            if counter != units && self.last_count.get(&sale_id) == Some(&(counter, units)) {
                if let Ok(true) = redis.compare_and_set(sale_id, counter, units).await {
                    tracing::info!(sale = %sale_id, from = counter, to = units, "redis counter reconciled with the ledger");
                    fixed += 1;
                }
            }
            last_count.insert(sale_id, (counter, units));
        }
        self.seen = seen;
        self.last_count = last_count;
        Ok(fixed)
    }
}

/// Expires every cart hold past its `expires_at` (the ledger gives their slots back in the same
/// statement) and gives the units back to the Redis counter, which counted them when they were
/// held. Returns the units freed. A release that fails leaves Redis above the truth, which the
/// reconcile corrects once the sale is quiet (HAZ-5's rule: never below, never oversold).
pub async fn expire_holds_once(
    pool: &PgPool,
    redis: Option<&RedisCounter>,
) -> Result<i64, sqlx::Error> {
    let freed = crate::ledger::holds::expire_due(pool).await?;
    let mut total = 0;
    for (sale_id, units) in freed {
        total += units;
        if let Some(redis) = redis {
            if let Err(failure) = redis.release(sale_id, units).await {
                tracing::debug!(sale = %sale_id, %failure, "could not give expired holds' units back to redis");
            }
        }
    }
    Ok(total)
}

/// Runs [`sync_once`], [`expire_holds_once`] and (when Redis is used) the Redis reconcile every
/// `interval` until `shutdown` changes.
pub async fn run(
    pool: PgPool,
    redis: Option<RedisCounter>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut units = UnitsSync::default();
    let mut reconciler = RedisReconciler::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(err) = units.pass(&pool).await {
                    tracing::warn!(error = %err, "units sync failed; will retry");
                }
                if let Err(err) = expire_holds_once(&pool, redis.as_ref()).await {
                    tracing::warn!(error = %err, "hold expiry failed; will retry");
                }
                if let Some(redis) = &redis {
                    if let Err(err) = reconciler.reconcile_once(&pool, redis).await {
                        tracing::warn!(error = %err, "redis reconcile failed; will retry");
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
