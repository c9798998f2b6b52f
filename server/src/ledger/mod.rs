//! The ledger: the server's one door to PostgreSQL for orders and claims.
//!
//! - [`orders`]: the order rows and the slots they own (insert, look up, export).
//! - [`claims`]: the PostgreSQL claim path's SQL (per-sale advisory lock, free slots, holes).
//! - [`holds`]: cart holds, which own slots as orders do (reserve, check out, release, expire).
//! - [`batch`]: group commit's queue, the [`Coalescer`].
//! - [`kept`]: the connection each batch runner keeps from one batch to the next.
//!
//! [`Ledger`] is the front door for buys: idempotency-key lookups, order inserts and
//! PostgreSQL-path claims, each group-committed through a [`Coalescer`], plus the reads a claim
//! path needs (units claimed, highest slot, a sale's orders). Nothing here changes what is
//! decided, only how many round trips and commits it costs: every batch runs the same statements
//! as a single request would (over arrays), and a batch that hits a conflict is redone one request
//! at a time, so each request still gets its own precise answer.
//!
//! The ledger knows nothing of Redis or of claim strategies (the `inventory` module uses it, never
//! the reverse).

pub mod batch;
pub mod claims;
pub mod holds;
pub mod kept;
pub mod orders;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

use self::batch::{Coalescer, OnItsWay};
use self::claims::Decision;
use self::kept::KeptConnections;
use self::orders::{InsertError, NewOrder, Order, OrderRequest};
use crate::metrics::ServerMetrics;

/// Batches in flight at once, per kind: one. Measured with wrk (32 connections) on this 2-core
/// machine, orders/s and PostgreSQL-path claims/s with 1, 2, 4, 8, 16 runners were 7.4k/7.1k,
/// 6.2k/5.3k, 4.2k/2.4k, 3.7k/1.4k, 2.5k/0.8k: concurrent batches only split the load into
/// smaller batches, and concurrent transactions that check foreign keys against one hot sale row
/// share its lock through multixacts, which PostgreSQL makes expensive. Since migration 0008 an
/// order takes no lock on a shared row (pgbench: two concurrent batch writers 920 batches/s
/// against 768 before), yet on this machine more insert runners still lose: 4.9k orders/s with
/// one, 4.1k with two, 3.8k with four (2026-12-03, wrk 32 connections): the two cores are busy
/// and the batches only get smaller. Measured again once runners kept their connection
/// (`kept`, 2026-12-05): 15.5-17.6k orders/s with one, 12.1-12.9k with two.
const RUNNERS: usize = 1;
/// The largest batch: bounds one statement's arrays and one transaction's lock time.
const MAX_BATCH: usize = 128;

type Reply<T> = oneshot::Sender<T>;

/// Why a claim did not produce an order.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("sold out")]
    SoldOut,
    /// A concurrent request with the same idempotency key created the order first; the caller
    /// answers with that order (or a conflict if the bodies differ).
    #[error("idempotency key taken by a concurrent request")]
    DuplicateKey,
    /// The order would take its buyer past the sale's `per_buyer_limit`; nothing was written.
    #[error("per-buyer limit reached")]
    BuyerLimit,
    /// The order could not be made durable; nothing was acknowledged (HAZ-10).
    #[error("order database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
}

impl From<sqlx::Error> for ClaimError {
    fn from(err: sqlx::Error) -> Self {
        ClaimError::Unavailable(err)
    }
}

impl From<InsertError> for ClaimError {
    fn from(err: InsertError) -> Self {
        match err {
            InsertError::DuplicateKey => ClaimError::DuplicateKey,
            InsertError::BuyerLimit => ClaimError::BuyerLimit,
            InsertError::Database(e) => ClaimError::Unavailable(e),
            // Only reachable when a caller ignores the slot protocol; treat as a failed write.
            InsertError::SlotTaken => ClaimError::Unavailable(sqlx::Error::Protocol(
                "slot taken outside the claim protocol".into(),
            )),
        }
    }
}

struct KeyLookup {
    buyer_id: String,
    key: String,
    reply: Reply<Result<Option<Order>, sqlx::Error>>,
}

struct QueuedInsert {
    order: NewOrder,
    reply: Reply<Result<Order, InsertError>>,
}

/// A PostgreSQL-path claim waiting for its batch.
struct QueuedClaim {
    sale_id: Uuid,
    cap: i64,
    req: OrderRequest,
    decided_by: &'static str,
    reply: Reply<Result<Order, ClaimError>>,
}

/// See the module documentation.
pub struct Ledger {
    pool: PgPool,
    lookups: Coalescer<KeyLookup>,
    inserts: Coalescer<QueuedInsert>,
    claims: Coalescer<QueuedClaim>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

impl Ledger {
    /// Starts the batch dispatchers on the current tokio runtime. A batch still running after
    /// `deadline` is abandoned (its buyers get 503, an unknown outcome), so a PostgreSQL that
    /// hangs cannot hold up every later batch behind the one runner.
    pub fn new(pool: PgPool, deadline: Duration, metrics: Arc<ServerMetrics>) -> Self {
        let lookups = dispatcher(&pool, deadline, "lookup", lookup_batch, metrics.clone());
        let inserts = dispatcher(&pool, deadline, "insert", insert_batch, metrics.clone());
        let claims = dispatcher(&pool, deadline, "claim", claim_batch, metrics);
        Self {
            pool,
            lookups,
            inserts,
            claims,
        }
    }

    /// The buyer's order holding this idempotency key, if any.
    pub async fn find_by_key(
        &self,
        buyer_id: &str,
        key: &str,
    ) -> Result<Option<Order>, sqlx::Error> {
        let (buyer_id, key) = (buyer_id.to_owned(), key.to_owned());
        self.lookups
            .call(|reply| KeyLookup {
                buyer_id,
                key,
                reply,
            })
            .await
            .unwrap_or_else(|| Err(dropped("key lookup")))
    }

    /// Stores one order with the slots it was granted (see [`orders::insert`]).
    pub async fn insert(&self, order: NewOrder) -> Result<Order, InsertError> {
        self.insert_announced(order, None).await
    }

    /// Counts an order insert as on its way (see [`batch`]): a runner taking an insert batch
    /// meanwhile waits for it. The Redis path announces each order while its Lua claim is on the
    /// wire.
    pub fn announce_insert(&self) -> OnItsWay {
        self.inserts.announce()
    }

    /// [`Ledger::insert`] of an order announced by `on_its_way`.
    pub async fn insert_announced(
        &self,
        order: NewOrder,
        on_its_way: Option<OnItsWay>,
    ) -> Result<Order, InsertError> {
        self.inserts
            .call_announced(on_its_way, |reply| QueuedInsert { order, reply })
            .await
            .unwrap_or_else(|| Err(InsertError::Database(dropped("order insert"))))
    }

    /// Decides a claim on the PostgreSQL path and stores its order (see [`claims::claim`]).
    pub async fn claim_in_postgres(
        &self,
        sale_id: Uuid,
        cap: i64,
        req: &OrderRequest,
        decided_by: &'static str,
    ) -> Result<Order, ClaimError> {
        let req = req.clone();
        self.claims
            .call(|reply| QueuedClaim {
                sale_id,
                cap,
                req,
                decided_by,
                reply,
            })
            .await
            .unwrap_or_else(|| Err(ClaimError::Unavailable(dropped("claim"))))
    }

    /// Units held by the sale's slot ledger (committed orders only); not batched: one unlocked
    /// index read, asked only when a claim path doubts its own count.
    pub async fn units_claimed(&self, sale_id: Uuid) -> Result<i64, sqlx::Error> {
        claims::units_claimed(&self.pool, sale_id).await
    }

    /// Slots taken in the sale's ledger, and how many by holds (see [`claims::slots_taken`]).
    pub async fn slots_taken(&self, sale_id: Uuid) -> Result<(i64, i64), sqlx::Error> {
        claims::slots_taken(&self.pool, sale_id).await
    }

    /// Slots owned by the sale's orders (final: see [`claims::units_in_order_slots`]).
    pub async fn units_in_order_slots(&self, sale_id: Uuid) -> Result<i64, sqlx::Error> {
        claims::units_in_order_slots(&self.pool, sale_id).await
    }

    /// The highest slot the sale's ledger holds (0 when none).
    pub async fn highest_slot(&self, sale_id: Uuid) -> Result<i64, sqlx::Error> {
        claims::highest_slot(&self.pool, sale_id).await
    }

    /// The pool, for the statements that are not batched (cart holds: `holds`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The whole order ledger of a sale, oldest first.
    pub async fn orders_of(&self, sale_id: Uuid) -> Result<Vec<Order>, sqlx::Error> {
        orders::for_sale(&self.pool, sale_id).await
    }
}

/// A coalescer whose batches run `run` within the deadline, on the connection its runner keeps
/// from one batch to the next (`kept`), which goes back to the pool whenever the runner finds no
/// job waiting.
fn dispatcher<J, Fut>(
    pool: &PgPool,
    deadline: Duration,
    kind: &'static str,
    run: fn(Arc<KeptConnections>, Vec<J>) -> Fut,
    metrics: Arc<ServerMetrics>,
) -> Coalescer<J>
where
    J: Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = Arc::new(KeptConnections::for_pool(pool, RUNNERS));
    let idle = db.clone();
    Coalescer::spawn_with_idle(
        MAX_BATCH,
        RUNNERS,
        move |batch: Vec<J>| {
            let size = batch.len();
            let metrics = metrics.clone();
            let work = within(deadline, kind, size, run(db.clone(), batch));
            async move { metrics.batch_ran(kind, size, work.await) }
        },
        move || idle.release(),
    )
}

/// Runs a batch, dropping it (and with it the reply channels it still holds) after `deadline`.
/// Each batch's size and time are logged at debug level (`RUST_LOG=flashsale_server::ledger=debug`):
/// how busy the one runner is and how big batches grow is what to look at first when the ledger
/// is the bottleneck (README, Performance).
async fn within(
    deadline: Duration,
    kind: &'static str,
    size: usize,
    batch: impl Future<Output = ()>,
) -> Option<Duration> {
    let started = std::time::Instant::now();
    if tokio::time::timeout(deadline, batch).await.is_err() {
        tracing::warn!(
            kind,
            size,
            ?deadline,
            "a ledger batch overran its deadline; its buyers get 503"
        );
        return None;
    }
    let took = started.elapsed();
    tracing::debug!(
        kind,
        size,
        elapsed_us = took.as_micros() as u64,
        "ledger batch"
    );
    Some(took)
}

fn dropped(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("the batched {what} ended without an answer"))
}

/// One query for the whole batch.
async fn lookup_batch(db: Arc<KeptConnections>, batch: Vec<KeyLookup>) {
    let buyers: Vec<String> = batch.iter().map(|l| l.buyer_id.clone()).collect();
    let keys: Vec<String> = batch.iter().map(|l| l.key.clone()).collect();
    let found = db
        .run(
            async |conn| orders::find_many_by_key(conn, &buyers, &keys).await,
            kept::survives,
        )
        .await;
    match found {
        Ok(found) => {
            for lookup in batch {
                let order = found
                    .iter()
                    .find(|o| o.idempotency_key == lookup.key && o.buyer_id == lookup.buyer_id)
                    .cloned();
                let _ = lookup.reply.send(Ok(order));
            }
        }
        Err(err) => {
            for lookup in batch {
                let _ = lookup.reply.send(Err(sqlx::Error::Protocol(format!(
                    "batched key lookup failed: {err}"
                ))));
            }
        }
    }
}

/// One statement for the whole batch; on a conflict, each order alone, so only the order that
/// conflicts gets the error.
async fn insert_batch(db: Arc<KeptConnections>, batch: Vec<QueuedInsert>) {
    together_else_alone(
        batch,
        "insert",
        async |batch: &[QueuedInsert]| {
            let orders: Vec<NewOrder> = batch.iter().map(|q| q.order.clone()).collect();
            db.run(
                async |conn| orders::insert_many(conn, &orders).await,
                InsertError::survives,
            )
            .await
        },
        |queued, order| {
            let _ = queued.reply.send(Ok(order));
        },
        |queued, err| {
            let _ = queued.reply.send(Err(InsertError::Database(err)));
        },
        |queued| {
            let pool = db.pool().clone();
            async move {
                let o = &queued.order;
                let result =
                    orders::insert(&pool, &o.req, o.sale_cap, &o.slots, o.decided_by).await;
                let _ = queued.reply.send(result);
            }
        },
    )
    .await;
}

/// Decides a batch of queued claims: one transaction per sale (sales concurrently). When a
/// sale's transaction conflicts (a reused key, a slot taken by an in-flight Redis-path order),
/// its claims are decided one by one instead, so one bad row never fails its neighbours.
async fn claim_batch(db: Arc<KeptConnections>, batch: Vec<QueuedClaim>) {
    let mut by_sale: Vec<Vec<QueuedClaim>> = Vec::new();
    for claim in batch {
        match by_sale
            .iter_mut()
            .find(|group| group[0].sale_id == claim.sale_id)
        {
            Some(group) => group.push(claim),
            None => by_sale.push(vec![claim]),
        }
    }
    futures::future::join_all(by_sale.into_iter().map(|group| claim_group(&db, group))).await;
}

async fn claim_group(db: &KeptConnections, group: Vec<QueuedClaim>) {
    let (sale_id, cap) = (group[0].sale_id, group[0].cap);
    together_else_alone(
        group,
        "claim",
        async |group: &[QueuedClaim]| {
            let claims: Vec<_> = group.iter().map(|c| (&c.req, c.decided_by)).collect();
            db.run(
                async |conn| claims::claim_together(conn, sale_id, cap, &claims).await,
                InsertError::survives,
            )
            .await
        },
        |claim, decision| {
            let _ = claim.reply.send(match decision {
                Decision::Granted(order) => Ok(order),
                Decision::SoldOut => Err(ClaimError::SoldOut),
            });
        },
        |claim, err| {
            let _ = claim.reply.send(Err(ClaimError::Unavailable(err)));
        },
        |queued| async move {
            let result = claims::claim(
                db.pool(),
                queued.sale_id,
                queued.cap,
                &queued.req,
                queued.decided_by,
            )
            .await;
            let _ = queued.reply.send(result);
        },
    )
    .await;
}

/// Group commit's one rule, for every kind of batch: a batch of more than one job first runs as
/// one statement (`together`, one answer per job in order). If the database itself failed (no
/// answer from it: unreachable, pool exhausted), every job gets that failure: one by one would
/// only fail again, slower. If a row conflicted (a taken slot, a reused key, a buyer's limit), nothing was written
/// and every job runs `alone`, concurrently, so only the job that conflicts gets the error.
async fn together_else_alone<J, T, Alone>(
    batch: Vec<J>,
    kind: &'static str,
    together: impl AsyncFnOnce(&[J]) -> Result<Vec<T>, InsertError>,
    answer: impl Fn(J, T),
    failed: impl Fn(J, sqlx::Error),
    alone: impl FnMut(J) -> Alone,
) where
    Alone: Future<Output = ()>,
{
    if batch.len() > 1 {
        match together(&batch).await {
            Ok(answers) => {
                for (job, each) in batch.into_iter().zip(answers) {
                    answer(job, each);
                }
                return;
            }
            Err(InsertError::Database(err)) if err.as_database_error().is_none() => {
                for job in batch {
                    failed(
                        job,
                        sqlx::Error::Protocol(format!("batched {kind} failed: {err}")),
                    );
                }
                return;
            }
            Err(conflict) => {
                tracing::debug!(kind, %conflict, "batch conflicted; deciding one by one");
            }
        }
    }
    futures::future::join_all(batch.into_iter().map(alone)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_batch_past_its_deadline_is_dropped_and_frees_the_runner() {
        // Every batch hangs, as on a PostgreSQL that stopped answering.
        let hanging = Coalescer::spawn(8, RUNNERS, |batch: Vec<oneshot::Sender<()>>| async {
            let took = within(Duration::from_secs(5), "test", batch.len(), async move {
                tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
                drop(batch);
            })
            .await;
            assert_eq!(took, None, "an overrun reports no time");
        });
        let started = tokio::time::Instant::now();
        assert_eq!(hanging.call(|reply| reply).await, None, "dropped, not hung");
        // Only possible if the first batch gave its runner back.
        assert_eq!(hanging.call(|reply| reply).await, None);
        assert!(started.elapsed() < Duration::from_secs(11));
    }
}
