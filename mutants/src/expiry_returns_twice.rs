//! DELIBERATELY BROKEN: an expiry that gives a hold's units back twice, breaking INV-7 (cart holds).
//!
//! When a hold expires, its units are given back twice, so the sale has more to sell than its cap: once enough holds expired with demand still coming, more units are sold than exist. Holds that are checked out or released are handled correctly. Everything else is the correct serialized model with holds
//! ([`crate::serial_holds`]), in an unguarded (slot-less) sale, since the slot ledger would
//! refuse what the flaw makes.

use flashsale_server::StrategyParts;

use crate::serial_holds::HoldRules;
use crate::serial_model::{ClaimView, SerialModel};

pub const NAME: &str = "expiry-returns-twice";

/// The strategy: the serialized model with one hold rule broken.
pub fn strategy(parts: StrategyParts) -> SerialModel {
    SerialModel::new(NAME, ClaimView::correct, parts).with_hold_rules(HoldRules {
        expiry_gives_back: 2,
        ..HoldRules::CORRECT
    })
}
