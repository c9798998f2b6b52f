//! DELIBERATELY BROKEN: a checkout that does not check the hold's expiry, breaking INV-7 (cart holds).
//!
//! A hold that expired — its units given back, and perhaps sold again — is still checked out into an order: the units are sold twice. Only a checkout sent after its hold's `expires_at` meets it, so a scenario must let some holds run out before their buyers check out (`holds-expire-under-load.toml`). Everything else is the correct serialized model with holds
//! ([`crate::serial_holds`]), in an unguarded (slot-less) sale, since the slot ledger would
//! refuse what the flaw makes.

use flashsale_server::StrategyParts;

use crate::serial_holds::HoldRules;
use crate::serial_model::{ClaimView, SerialModel};

pub const NAME: &str = "checkout-after-expiry";

/// The strategy: the serialized model with one hold rule broken.
pub fn strategy(parts: StrategyParts) -> SerialModel {
    SerialModel::new(NAME, ClaimView::correct, parts).with_hold_rules(HoldRules {
        checkout_checks_expiry: false,
        ..HoldRules::CORRECT
    })
}
