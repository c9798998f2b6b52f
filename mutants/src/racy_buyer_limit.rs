//! DELIBERATELY BROKEN: a per-buyer limit checked but not atomically, breaking INV-9 (per-buyer
//! limit).
//!
//! The correct strategies leave `per_buyer_limit` to the ledger: the buyer's row in
//! `buyer_units` (migration 0004) is raised in the statement that stores the order, so two
//! concurrent orders of one buyer queue on it and the second fails if both together pass the
//! limit. This mutant checks the limit the way an application does without that row: it reads the
//! units in the buyer's orders, compares, and claims — without holding anything between the read
//! and the write. Two orders of one buyer that read before either is stored both pass (the mutant
//! widens that window to [`WINDOW`] between the read and the claim, as a slow service would). One
//! order at a time is decided correctly, so only a scenario sending several requests of one buyer
//! together (`buyers.distinct` below `buyers.count`) meets it. Claims are otherwise correct and
//! serialized ([`crate::serial_model`]), in an unguarded (slot-less) sale, which keeps no buyer
//! rows; the cap holds, so INV-1 is not what catches it.

use std::time::Duration;

use flashsale_server::StrategyParts;

use crate::serial_model::{BuyerCheck, ClaimView, SerialModel};

pub const NAME: &str = "racy-buyer-limit";

/// Between the buyer's check and the claim.
pub const WINDOW: Duration = Duration::from_millis(25);

/// The strategy: correct serialized claims whose buyer check runs before the sale's lock.
pub fn strategy(parts: StrategyParts) -> SerialModel {
    SerialModel::new(NAME, ClaimView::correct, parts)
        .with_buyer_check(BuyerCheck::BeforeTheLock { window: WINDOW })
}
