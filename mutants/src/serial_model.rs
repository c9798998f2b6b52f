//! What the serialized mutants share: a claim path that is correct on its own — a per-sale
//! in-process async mutex around "units sold, decide, store the order" — writing orders without
//! slots (an `unguarded` sale), so that one flaw in the decision, and nothing else, breaks an
//! invariant the slot ledger would otherwise protect.
//!
//! [`SerialModel`], served as a [`ClaimStrategy`] through [`Detached`] (so that a dropped request
//! never leaves the in-memory count behind the ledger), is the strategy of
//! `oversell-at-boundary`, `racy-idempotency`, `racy-buyer-limit`, `unit-without-order` and the
//! hold mutants; each supplies its [`Decide`] rule (and `racy-idempotency` a one-off [`Prepare`]
//! of the database and a slow key lookup, `racy-buyer-limit` its [`BuyerCheck`], the hold mutants
//! their hold rules). The model is correct only while one server process
//! sells each sale, which is how the harness runs it. A sale's `per_buyer_limit` is checked under
//! the sale's lock (the unguarded ledger does not enforce it). Unlimited sales take the same path,
//! granted without a rule, so a key or buyer race shows on them too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_server::inventory::FrozenOrders;
use flashsale_server::inventory::breaker::BreakerState;
use flashsale_server::inventory::redis::RedisCounter;
use flashsale_server::ledger::ClaimError;
use flashsale_server::ledger::holds::{CheckedOut, Hold, HoldError, HoldRequest};
use flashsale_server::ledger::orders::{self, InsertError, Order, OrderRequest};
use flashsale_server::sales::{LedgerKind, Sale};
use flashsale_server::{ClaimStrategy, Inventory, StrategyParts};
use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

use crate::claim_count::{EVERY, EveryNth};

/// The ledger of the sales a serialized mutant creates: without slots, since the slot ledger
/// would refuse the orders its flaw makes and the harness could never prove it catches them.
pub const LEDGER: LedgerKind = LedgerKind::Unguarded;

/// What a mutant's rule sees of one claim of a capped sale, under the sale's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimView {
    pub cap: i64,
    pub quantity: i64,
    /// Units in the sale's persisted orders.
    pub sold: i64,
    /// Units kept by the sale's live holds, as the model counts them.
    pub held: i64,
    /// Units this process consumed without writing an order (see [`Verdict::Strand`]).
    pub stranded: i64,
    /// Whether this is the [`EVERY`]-th, 2×[`EVERY`]-th, … claim of capped sales since the server
    /// started.
    pub nth: bool,
}

impl ClaimView {
    /// The correct decision: the units taken plus this claim stay within the cap.
    pub fn fits(&self) -> bool {
        self.sold + self.stranded + self.held + self.quantity <= self.cap
    }

    /// The correct verdict, for a rule to fall back on.
    pub fn correct(&self) -> Verdict {
        if self.fits() {
            Verdict::Grant
        } else {
            Verdict::SoldOut
        }
    }
}

/// What a rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store the order (without slots) and answer 201.
    Grant,
    /// Answer 409 sold out; nothing changes.
    SoldOut,
    /// Count the units as taken, write no order, answer 503 (an unknown outcome), and never hand
    /// the units back.
    Strand,
}

/// A mutant's decision on a claim of a capped sale.
pub type Decide = fn(&ClaimView) -> Verdict;

/// Where the model checks a sale's `per_buyer_limit` against the buyer's units in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuyerCheck {
    /// Under the sale's lock, with the claim: correct.
    WithTheClaim,
    /// Before taking the lock, then `window` later the claim without a second look: two orders of
    /// one buyer checked in that window both pass, whatever they add up to.
    BeforeTheLock { window: Duration },
}

/// Work on the database done once, before the first claim.
pub type Prepare = for<'a> fn(&'a PgPool) -> BoxFuture<'a, Result<(), sqlx::Error>>;

/// One sale's book, behind its lock.
#[derive(Debug, Default)]
pub(crate) struct Book {
    /// Units in the sale's orders: read from PostgreSQL once, then kept here, since this process
    /// is the only writer of its sales' orders and writes them under this lock. Forgotten after a
    /// failed insert, whose outcome is unknown, so the next claim reads the truth again.
    pub(crate) sold: Option<i64>,
    pub(crate) stranded: i64,
    /// The sale's live holds and what they keep (see [`crate::serial_holds`]).
    pub(crate) holds: crate::serial_holds::HeldUnits,
}

/// A serialized mutant: `decide` rules capped sales; everything else is correct.
#[derive(Debug)]
pub struct SerialModel {
    pub(crate) name: &'static str,
    decide: Decide,
    prepare: Option<Prepare>,
    prepared: tokio::sync::OnceCell<()>,
    buyer_check: BuyerCheck,
    pub(crate) hold_rules: crate::serial_holds::HoldRules,
    /// How long a key lookup that found nothing waits before answering (see `racy-idempotency`).
    slow_lookup_miss: Option<Duration>,
    pub(crate) pool: PgPool,
    /// Records unlimited sales' orders and reports the breaker, which this model never uses.
    correct: Inventory,
    books: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Book>>>>,
    claims: EveryNth,
}

impl SerialModel {
    pub fn new(name: &'static str, decide: Decide, parts: StrategyParts) -> Self {
        Self {
            name,
            decide,
            prepare: None,
            prepared: tokio::sync::OnceCell::new(),
            buyer_check: BuyerCheck::WithTheClaim,
            hold_rules: crate::serial_holds::HoldRules::CORRECT,
            slow_lookup_miss: None,
            pool: parts.pool,
            correct: parts.correct,
            books: Mutex::new(HashMap::new()),
            claims: EveryNth::new(EVERY),
        }
    }

    /// Runs `prepare` once, before the first claim of a capped sale (a failure answers that claim
    /// 503 and is tried again on the next).
    pub fn with_prepare(mut self, prepare: Prepare) -> Self {
        self.prepare = Some(prepare);
        self
    }

    /// Checks `per_buyer_limit` at `check` instead of with the claim.
    pub fn with_buyer_check(mut self, check: BuyerCheck) -> Self {
        self.buyer_check = check;
        self
    }

    /// Treats cart holds by `rules` (a hold mutant's flaw).
    pub fn with_hold_rules(mut self, rules: crate::serial_holds::HoldRules) -> Self {
        self.hold_rules = rules;
        self
    }

    /// Makes a key lookup that found no order wait `delay` before answering.
    pub fn with_slow_lookup_miss(mut self, delay: Duration) -> Self {
        self.slow_lookup_miss = Some(delay);
        self
    }

    /// Refuses the claim when the buyer's units and this one would pass the sale's limit.
    async fn check_buyer(&self, sale: &Sale, req: &OrderRequest) -> Result<(), ClaimError> {
        let Some(limit) = sale.per_buyer_limit else {
            return Ok(());
        };
        let held = orders::units_of_buyer(&self.pool, sale.id, &req.buyer_id).await?;
        if held + i64::from(req.quantity) > i64::from(limit) {
            return Err(ClaimError::BuyerLimit);
        }
        Ok(())
    }

    async fn find_by_key(&self, buyer_id: &str, key: &str) -> Result<Option<Order>, sqlx::Error> {
        let found = orders::find_by_key(&self.pool, buyer_id, key).await?;
        if let (None, Some(delay)) = (&found, self.slow_lookup_miss) {
            tokio::time::sleep(delay).await;
        }
        Ok(found)
    }

    pub(crate) fn book(&self, sale_id: Uuid) -> Arc<tokio::sync::Mutex<Book>> {
        self.books
            .lock()
            .expect("books")
            .entry(sale_id)
            .or_default()
            .clone()
    }

    /// Decides a claim under the sale's lock: `decide` rules capped sales; an unlimited sale's
    /// claim is granted (after the buyer check, like any other).
    async fn claim(
        &self,
        sale: &Sale,
        cap: Option<i64>,
        req: &OrderRequest,
    ) -> Result<Order, ClaimError> {
        if let Some(prepare) = self.prepare {
            self.prepared
                .get_or_try_init(|| prepare(&self.pool))
                .await?;
        }
        if let BuyerCheck::BeforeTheLock { window } = self.buyer_check {
            self.check_buyer(sale, req).await?;
            tokio::time::sleep(window).await;
        }
        let book = self.book(sale.id);
        let mut book = book.lock().await;
        if self.buyer_check == BuyerCheck::WithTheClaim {
            self.check_buyer(sale, req).await?;
        }
        let Some(cap) = cap else {
            return match orders::insert(&self.pool, req, None, &[], self.name).await {
                Err(InsertError::DuplicateKey) => Err(ClaimError::DuplicateKey),
                other => Ok(other?),
            };
        };
        let sold = match book.sold {
            Some(sold) => sold,
            None => {
                let sold = orders::units_in_orders(&self.pool, sale.id).await?;
                book.sold = Some(sold);
                sold
            }
        };
        let quantity = i64::from(req.quantity);
        let held = self.held(&mut book).await?;
        let view = ClaimView {
            cap,
            quantity,
            sold,
            held,
            stranded: book.stranded,
            nth: self.claims.next_fires(),
        };
        match (self.decide)(&view) {
            Verdict::SoldOut => Err(ClaimError::SoldOut),
            Verdict::Strand => {
                book.stranded += quantity;
                Err(ClaimError::Unavailable(sqlx::Error::Protocol(format!(
                    "{}: units consumed without an order",
                    self.name
                ))))
            }
            Verdict::Grant => match orders::insert(&self.pool, req, None, &[], self.name).await {
                Ok(order) => {
                    book.sold = Some(sold + quantity);
                    Ok(order)
                }
                // Nothing was written: the count stands.
                Err(InsertError::DuplicateKey) => Err(ClaimError::DuplicateKey),
                Err(err) => {
                    book.sold = None;
                    Err(err.into())
                }
            },
        }
    }
}

/// How a [`SerialModel`] is served: each request's work on the model runs in a task of its own,
/// to the end, even when the request is dropped. A buyer whose request times out hangs up, and
/// hyper then drops the handler; dropped in the middle of a claim, the insert it had sent would
/// still commit while the book kept the count from before it, and every later claim would grant
/// one unit too many (seen in CI: 43 units over a cap of 1,000 under a burst of 1,100 buyers). A
/// real ledger keeps its count in the database, so a dropped request cannot part the two; this
/// model keeps it in memory, so it must not be interrupted between writing and counting.
#[derive(Debug)]
pub struct Detached(Arc<SerialModel>);

impl Detached {
    pub fn new(model: SerialModel) -> Self {
        Self(Arc::new(model))
    }

    /// Runs `work` on the model in its own task and waits for it; a panic in it is an error for
    /// this request (`unavailable`), not for the server.
    async fn run<T, E, F>(&self, work: impl FnOnce(Arc<SerialModel>) -> F) -> Result<T, E>
    where
        F: std::future::Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static + From<sqlx::Error>,
    {
        let name = self.0.name;
        tokio::spawn(work(self.0.clone()))
            .await
            .unwrap_or_else(|panicked| {
                Err(E::from(sqlx::Error::Protocol(format!(
                    "{name}: the claim's task failed: {panicked}"
                ))))
            })
    }
}

impl ClaimStrategy for Detached {
    fn name(&self) -> &'static str {
        self.0.name
    }

    fn ledger_kind(&self) -> LedgerKind {
        LEDGER
    }

    /// Never: answering from a frozen set is an optimisation this model does without.
    fn sold_out_orders(&self, _sale_id: Uuid) -> Option<Arc<FrozenOrders>> {
        None
    }

    /// One query per request, outside the sale's lock: the lookup and the claim are separate
    /// steps, as in the correct strategies, where the ledger's UNIQUE key makes the pair atomic.
    /// (Read-only: it may be dropped anywhere.)
    fn find_by_key<'a>(
        &'a self,
        buyer_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Order>, sqlx::Error>> {
        Box::pin(self.0.find_by_key(buyer_id, key))
    }

    fn buy<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, ClaimError>> {
        let (sale, req) = (sale.clone(), req.clone());
        Box::pin(self.run(move |model| async move { model.claim(&sale, sale.cap, &req).await }))
    }

    /// None: the model keeps its counts in memory, and its sales have no Redis counter.
    fn redis(&self) -> Option<&RedisCounter> {
        None
    }

    fn breaker_state(&self) -> BreakerState {
        self.0.correct.breaker_state()
    }

    /// Holds are the model's own (see [`crate::serial_holds`]).
    fn reserve<'a>(
        &'a self,
        sale: &'a Sale,
        req: &'a HoldRequest,
    ) -> BoxFuture<'a, Result<Hold, HoldError>> {
        let (sale, req) = (sale.clone(), req.clone());
        Box::pin(self.run(move |model| async move { model.reserve_hold(&sale, &req).await }))
    }

    fn checkout<'a>(
        &'a self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &'a str,
        quantity: Option<i32>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<CheckedOut, HoldError>> {
        let (buyer_id, key) = (buyer_id.to_owned(), idempotency_key.to_owned());
        Box::pin(self.run(move |model| async move {
            model
                .checkout_hold(sale_id, hold_id, &buyer_id, quantity, &key)
                .await
        }))
    }

    fn release<'a>(
        &'a self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &'a str,
    ) -> BoxFuture<'a, Result<Hold, HoldError>> {
        let buyer_id = buyer_id.to_owned();
        Box::pin(
            self.run(
                move |model| async move { model.release_hold(sale_id, hold_id, &buyer_id).await },
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(cap: i64, sold: i64, stranded: i64, quantity: i64) -> ClaimView {
        ClaimView {
            cap,
            quantity,
            sold,
            held: 0,
            stranded,
            nth: false,
        }
    }

    #[test]
    fn the_correct_verdict_counts_stranded_units_as_taken() {
        assert_eq!(view(10, 8, 0, 2).correct(), Verdict::Grant);
        assert_eq!(view(10, 8, 1, 2).correct(), Verdict::SoldOut);
        assert_eq!(view(10, 9, 0, 2).correct(), Verdict::SoldOut);
    }
}
