//! DELIBERATELY BROKEN: holds left out of what is available, breaking INV-7 (cart holds).
//!
//! Reservations and buys are decided on units sold alone, as if live holds kept nothing: while holds are live, units in orders + units in live holds pass the cap, and their checkouts then sell past it. Everything else is the correct serialized model with holds
//! ([`crate::serial_holds`]), in an unguarded (slot-less) sale, since the slot ledger would
//! refuse what the flaw makes.

use flashsale_server::StrategyParts;

use crate::serial_holds::HoldRules;
use crate::serial_model::{ClaimView, SerialModel};

pub const NAME: &str = "holds-not-counted";

/// The strategy: the serialized model with one hold rule broken.
pub fn strategy(parts: StrategyParts) -> SerialModel {
    SerialModel::new(NAME, ClaimView::correct, parts).with_hold_rules(HoldRules {
        holds_count: false,
        ..HoldRules::CORRECT
    })
}
