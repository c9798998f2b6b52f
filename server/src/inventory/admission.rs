//! The Redis path's admission loop, shared by buys and cart holds: both take their units from the
//! same Lua counter and keep them in the same slot ledger, so both follow one fail-open policy.
//!
//! The policy, step by step ([`Inventory::admit_through_redis`]):
//!
//! 1. The breaker is open (Redis failed repeatedly): the PostgreSQL path decides at once, rather
//!    than every claim waiting out Redis's timeout (HAZ-6). A probe is let through now and then.
//! 2. The Lua claim fails or is too slow: the PostgreSQL path decides. If the script ran and only
//!    its reply was lost (HAZ-14), its units stay counted in Redis; that can make Redis say "sold
//!    out" early, which step 4 re-checks, but never sells a unit twice, because only the slot
//!    ledger sells.
//! 3. Granted: the claim is stored with the slots Redis hinted at. A slot already taken means
//!    Redis is behind the ledger (restarted, rolled back, or PostgreSQL sold while Redis was
//!    away): the counter is raised to the highest slot taken and the claim made again, so one
//!    conflict repairs the counter for everyone. Still colliding after a few tries, the
//!    PostgreSQL path decides. Any other failure stores nothing, so the units go back (HAZ-5).
//! 4. Sold out: Redis may count units whose claims never landed (lost replies, failed
//!    give-backs), so the ledger confirms with one unlocked read. With room, or with holds that
//!    may be due to expire (expired here, so their units leave the counter too), the PostgreSQL
//!    path decides and sells what is free: stranded units are never lost (INV-5).
//! 5. Not loaded: a missing counter means "not loaded", never zero (HAZ-2); it is seeded from the
//!    ledger once, and if it is gone again the PostgreSQL path decides.

use uuid::Uuid;

use super::Inventory;
use super::redis::{Claim, RedisCounter};
use crate::ledger::ClaimError;
use crate::ledger::batch::OnItsWay;
use crate::ledger::holds::{self, Hold, HoldError, HoldRequest};
use crate::ledger::orders::{InsertError, NewOrder, Order, OrderRequest};

/// How many times a claim whose slot hint was taken raises the counter and claims again before
/// the PostgreSQL path decides it.
const STALE_HINT_RETRIES: u32 = 3;

/// One claim on a capped sale through the admission loop: a buy (`Admit<OrderRequest>`) or a
/// cart hold (`Admit<HoldRequest>`; unlimited sales' holds are advisory and never come here).
pub(super) struct Admit<'a, R> {
    pub sale_id: Uuid,
    pub cap: i64,
    pub req: &'a R,
}

/// What differs between a buy and a cart hold in the admission loop: what is stored, and how the
/// PostgreSQL path decides.
pub(super) trait Admission {
    type Admitted;
    type Error: From<sqlx::Error>;

    /// Units asked for.
    fn quantity(&self) -> i64;
    /// The error that says "sold out".
    fn sold_out(&self) -> Self::Error;
    /// Announces the claim's write to its batch queue while Redis decides (see
    /// [`crate::ledger::batch`]); `None` for a write that is not batched.
    fn announce(&self, _inventory: &Inventory) -> Option<OnItsWay> {
        None
    }
    /// Stores the claim with the slots Redis handed out; `Ok(None)` when one of them was already
    /// taken (nothing was stored). `on_its_way` is what [`Admission::announce`] gave.
    async fn store(
        &self,
        inventory: &Inventory,
        slots: Vec<i64>,
        on_its_way: Option<OnItsWay>,
    ) -> Result<Option<Self::Admitted>, Self::Error>;
    /// Lets the PostgreSQL path decide (under the sale's lock), recording `decided_by`.
    async fn in_postgres(
        &self,
        inventory: &Inventory,
        decided_by: &'static str,
    ) -> Result<Self::Admitted, Self::Error>;
}

impl Admission for Admit<'_, OrderRequest> {
    type Admitted = Order;
    type Error = ClaimError;

    fn quantity(&self) -> i64 {
        i64::from(self.req.quantity)
    }
    fn sold_out(&self) -> ClaimError {
        ClaimError::SoldOut
    }

    fn announce(&self, inventory: &Inventory) -> Option<OnItsWay> {
        Some(inventory.ledger.announce_insert())
    }

    async fn store(
        &self,
        inventory: &Inventory,
        slots: Vec<i64>,
        on_its_way: Option<OnItsWay>,
    ) -> Result<Option<Order>, ClaimError> {
        let order = NewOrder {
            req: self.req.clone(),
            sale_cap: Some(self.cap),
            slots,
            decided_by: "redis",
        };
        match inventory.ledger.insert_announced(order, on_its_way).await {
            Ok(order) => Ok(Some(order)),
            Err(InsertError::SlotTaken) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn in_postgres(
        &self,
        inventory: &Inventory,
        decided_by: &'static str,
    ) -> Result<Order, ClaimError> {
        inventory
            .ledger
            .claim_in_postgres(self.sale_id, self.cap, self.req, decided_by)
            .await
    }
}

impl Admission for Admit<'_, HoldRequest> {
    type Admitted = Hold;
    type Error = HoldError;

    fn quantity(&self) -> i64 {
        i64::from(self.req.quantity)
    }
    fn sold_out(&self) -> HoldError {
        HoldError::SoldOut
    }

    async fn store(
        &self,
        inventory: &Inventory,
        slots: Vec<i64>,
        _on_its_way: Option<OnItsWay>,
    ) -> Result<Option<Hold>, HoldError> {
        match holds::insert(
            inventory.ledger.pool(),
            self.req,
            Some(self.cap),
            &slots,
            "redis",
        )
        .await
        {
            Ok(hold) => Ok(Some(hold)),
            Err(HoldError::SlotTaken) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn in_postgres(
        &self,
        inventory: &Inventory,
        decided_by: &'static str,
    ) -> Result<Hold, HoldError> {
        inventory
            .reserve_in_postgres(self.sale_id, self.cap, self.req, decided_by)
            .await
    }
}

impl Inventory {
    /// The Redis path with its fail-open policy (the module's doc, steps 1–5).
    pub(super) async fn admit_through_redis<'a, R>(
        &self,
        redis: &RedisCounter,
        claim: &Admit<'a, R>,
    ) -> Result<<Admit<'a, R> as Admission>::Admitted, <Admit<'a, R> as Admission>::Error>
    where
        Admit<'a, R>: Admission,
    {
        let (sale_id, cap, quantity) = (claim.sale_id, claim.cap, claim.quantity());
        let mut seeded = false;
        let mut stale_hints = 0;
        loop {
            if !self.breaker.allow() {
                return claim.in_postgres(self, "postgres-fallback").await;
            }
            // While Redis decides, the order is announced to the insert queue, so a batch taken
            // meanwhile waits the round trip for it instead of leaving it for the next commit.
            let on_its_way = claim.announce(self);
            let answer = match redis.claim(sale_id, cap, quantity).await {
                Ok(answer) => {
                    self.breaker.record_success();
                    answer
                }
                Err(failure) => {
                    drop(on_its_way); // the PostgreSQL path decides: nothing is queued
                    self.breaker.record_failure();
                    tracing::debug!(sale = %sale_id, %failure, "redis claim failed; falling back");
                    return claim.in_postgres(self, "postgres-fallback").await;
                }
            };
            // Only a granted claim is queued; any other answer withdraws it at once.
            let on_its_way = on_its_way.filter(|_| matches!(answer, Claim::Granted { .. }));
            match answer {
                Claim::Granted { sold_after } => {
                    let slots: Vec<i64> = (sold_after - quantity + 1..=sold_after).collect();
                    match claim.store(self, slots, on_its_way).await {
                        Ok(Some(admitted)) => return Ok(admitted),
                        Ok(None) if stale_hints < STALE_HINT_RETRIES => {
                            stale_hints += 1;
                            tracing::debug!(sale = %sale_id, "slot hint taken; raising the counter");
                            let highest = self.ledger.highest_slot(sale_id).await?;
                            if let Err(failure) = redis.raise_to(sale_id, highest).await {
                                tracing::debug!(sale = %sale_id, %failure, "could not raise the counter");
                            }
                        }
                        // Still colliding (a PostgreSQL-path claim keeps taking the slots Redis
                        // hands out next): the ledger decides this one.
                        Ok(None) => return claim.in_postgres(self, "postgres-conflict").await,
                        Err(err) => {
                            // Nothing stored, so the units go back (HAZ-5). If Redis is gone
                            // too, the over-count is harmless: sold-out answers are re-checked.
                            self.give_back(sale_id, quantity).await;
                            return Err(err);
                        }
                    }
                }
                Claim::SoldOut => {
                    let (units, held) = self.ledger.slots_taken(sale_id).await?;
                    if units + quantity > cap && held == 0 {
                        return Err(claim.sold_out());
                    }
                    if held > 0 {
                        let freed = holds::expire_due_of(self.ledger.pool(), sale_id).await?;
                        self.give_back(sale_id, freed).await;
                    }
                    return claim.in_postgres(self, "postgres-recheck").await;
                }
                Claim::NotLoaded if !seeded => {
                    let units = self.ledger.units_claimed(sale_id).await?;
                    if let Err(failure) = redis.seed(sale_id, units).await {
                        self.breaker.record_failure();
                        tracing::debug!(sale = %sale_id, %failure, "could not seed; falling back");
                        return claim.in_postgres(self, "postgres-fallback").await;
                    }
                    seeded = true;
                }
                // Seeded, yet gone again (flushed under our feet): the ledger decides.
                Claim::NotLoaded => return claim.in_postgres(self, "postgres-fallback").await,
            }
        }
    }
}
