//! Cart holds in the serialized model ([`crate::serial_model`]), and the three ways the hold
//! mutants break them (INV-7).
//!
//! The model keeps a sale's live holds in its book, under the sale's lock, next to its units
//! sold: a claim or a reservation fits when units sold + units held + the quantity stay within the
//! cap. The holds are stored in the ledger (without slots: the model's sales are unguarded, so the
//! ledger's hold rules cannot stop what a flaw makes); the book decides. A due hold is expired
//! (in the ledger, and its units given back in the book) whenever the sale's lock is taken. With
//! [`HoldRules::CORRECT`] the model is correct; each hold mutant changes one rule:
//!
//! - `checkout-after-expiry`: a checkout does not check the hold's expiry: a hold that expired,
//!   whose units went back and were sold again, still becomes an order (INV-7; INV-1 when the
//!   units were resold).
//! - `expiry-returns-twice`: expiring a hold gives its units back twice, so the sale sells more
//!   than its cap (INV-7, INV-1).
//! - `holds-not-counted`: live holds are not counted in what is available, so units in orders +
//!   units in live holds pass the cap while holds are live, and checkouts oversell (INV-7).

use std::collections::HashMap;

use flashsale_server::ledger::holds::{self, CheckedOut, Hold, HoldError, HoldRequest};
use flashsale_server::ledger::orders::{self, OrderRequest};
use flashsale_server::sales::Sale;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::serial_model::{Book, ClaimView, SerialModel};

/// How the model treats holds; [`HoldRules::CORRECT`] unless a hold mutant says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRules {
    /// A checkout after `expires_at` is refused (`hold_expired`).
    pub checkout_checks_expiry: bool,
    /// How many times an expired hold's units are given back.
    pub expiry_gives_back: i64,
    /// Live holds count in what is available.
    pub holds_count: bool,
}

impl HoldRules {
    pub const CORRECT: HoldRules = HoldRules {
        checkout_checks_expiry: true,
        expiry_gives_back: 1,
        holds_count: true,
    };
}

/// A sale's live holds as the book keeps them.
#[derive(Debug, Default)]
pub struct HeldUnits {
    live: HashMap<Uuid, (i64, OffsetDateTime)>,
    /// Units given back beyond what expired holds kept (the `expiry-returns-twice` flaw).
    given_back_twice: i64,
}

impl HeldUnits {
    /// Units the book counts as held, by `rules`.
    pub fn counted(&self, rules: HoldRules) -> i64 {
        if !rules.holds_count {
            return 0;
        }
        self.live.values().map(|(q, _)| q).sum::<i64>() - self.given_back_twice
    }
}

impl SerialModel {
    /// Units sold, from the book or (first time, or after a failed write) the ledger.
    async fn sold(&self, book: &mut Book, sale_id: Uuid) -> Result<i64, sqlx::Error> {
        if let Some(sold) = book.sold {
            return Ok(sold);
        }
        let sold = orders::units_in_orders(&self.pool, sale_id).await?;
        book.sold = Some(sold);
        Ok(sold)
    }

    /// Expires the book's due holds in the ledger, and gives their units back in the book.
    pub(crate) async fn expire_due(&self, book: &mut Book) -> Result<(), sqlx::Error> {
        let now = OffsetDateTime::now_utc();
        let due: Vec<Uuid> = book
            .holds
            .live
            .iter()
            .filter(|(_, (_, expires_at))| *expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        // The ledger's clock decides; a hold it does not see as due yet stays live. Holds the
        // server's expiry job already expired in the ledger count as expired here too.
        let expired: Vec<Uuid> = sqlx::query_scalar(
            "WITH flipped AS (
                 UPDATE holds SET state = 'expired', ended_at = clock_timestamp()
                 WHERE id = ANY($1) AND state = 'live' AND expires_at <= clock_timestamp()
                 RETURNING id
             )
             SELECT id FROM flipped
             UNION SELECT id FROM holds WHERE id = ANY($1) AND state = 'expired'",
        )
        .bind(&due)
        .fetch_all(&self.pool)
        .await?;
        for id in expired {
            if let Some((quantity, _)) = book.holds.live.remove(&id) {
                book.holds.given_back_twice += (self.hold_rules.expiry_gives_back - 1) * quantity;
            }
        }
        Ok(())
    }

    /// The units a claim sees held, after expiring what is due.
    pub(crate) async fn held(&self, book: &mut Book) -> Result<i64, sqlx::Error> {
        self.expire_due(book).await?;
        Ok(book.holds.counted(self.hold_rules))
    }

    /// Reserves under the sale's lock when the units fit (sold + held + quantity ≤ cap).
    pub(crate) async fn reserve_hold(
        &self,
        sale: &Sale,
        req: &HoldRequest,
    ) -> Result<Hold, HoldError> {
        let Some(cap) = sale.cap else {
            return holds::insert(&self.pool, req, None, &[], self.name).await;
        };
        let book = self.book(sale.id);
        let mut book = book.lock().await;
        let view = ClaimView {
            cap,
            quantity: i64::from(req.quantity),
            sold: self.sold(&mut book, sale.id).await?,
            held: self.held(&mut book).await?,
            stranded: book.stranded,
            nth: false,
        };
        if !view.fits() {
            return Err(HoldError::SoldOut);
        }
        let hold = holds::insert(&self.pool, req, None, &[], self.name).await?;
        book.holds
            .live
            .insert(hold.hold_id, (i64::from(hold.quantity), hold.expires_at));
        Ok(hold)
    }

    /// Checks a hold out under the sale's lock.
    pub(crate) async fn checkout_hold(
        &self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &str,
        quantity: Option<i32>,
        idempotency_key: &str,
    ) -> Result<CheckedOut, HoldError> {
        let book = self.book(sale_id);
        let mut book = book.lock().await;
        self.expire_due(&mut book).await?;
        let hold = holds::find(&self.pool, sale_id, hold_id)
            .await?
            .ok_or(HoldError::NotFound)?;
        let expired = hold.state == "expired"
            || (hold.state == "live" && OffsetDateTime::now_utc() >= hold.expires_at);
        if expired && !self.hold_rules.checkout_checks_expiry {
            // The flaw: the hold's units went back when it expired (and may have been sold
            // since); it becomes an order all the same.
            if hold.buyer_id != buyer_id {
                return Err(HoldError::NotYours);
            }
            if quantity.is_some_and(|q| q != hold.quantity) {
                return Err(HoldError::QuantityMismatch {
                    held: hold.quantity,
                });
            }
            let order = orders::insert(
                &self.pool,
                &OrderRequest {
                    sale_id,
                    product_id: hold.product_id.clone(),
                    unit_price_cents: hold.unit_price_cents,
                    buyer_id: hold.buyer_id.clone(),
                    quantity: hold.quantity,
                    idempotency_key: idempotency_key.to_owned(),
                },
                None,
                &[],
                self.name,
            )
            .await?;
            book.sold = book.sold.map(|s| s + i64::from(hold.quantity));
            book.holds.live.remove(&hold_id);
            return Ok(CheckedOut::New(order));
        }
        let checked_out = holds::checkout(
            &self.pool,
            sale_id,
            hold_id,
            buyer_id,
            quantity,
            idempotency_key,
        )
        .await?;
        if let CheckedOut::New(order) = &checked_out {
            if book.holds.live.remove(&hold_id).is_some() {
                book.sold = book.sold.map(|s| s + i64::from(order.quantity));
            }
        }
        Ok(checked_out)
    }

    /// Releases a hold under the sale's lock.
    pub(crate) async fn release_hold(
        &self,
        sale_id: Uuid,
        hold_id: Uuid,
        buyer_id: &str,
    ) -> Result<Hold, HoldError> {
        let book = self.book(sale_id);
        let mut book = book.lock().await;
        let (hold, _) = holds::release(&self.pool, sale_id, hold_id, buyer_id).await?;
        if hold.state == "released" {
            book.holds.live.remove(&hold_id);
        }
        Ok(hold)
    }
}
