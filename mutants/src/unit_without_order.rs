//! DELIBERATELY BROKEN: units consumed without an order, never handed back (HAZ-5 unhandled),
//! breaking INV-5 (exactly the cap).
//!
//! Correct, serialized claims (see [`crate::serial_model`]) except that every 500th claim of
//! capped sales since the server started ([`crate::claim_count::EVERY`]) that fits takes its
//! units, writes no order and answers 503, an unknown outcome. The units stay counted, so the sale
//! sells out that many units short: later buyers are told "sold out" while units are unsold. It
//! cannot wrap the correct inventory, whose PostgreSQL re-check re-sells units stranded in Redis;
//! it writes to an unguarded (slot-less) sale. A run needs at least 500 claims and demand beyond
//! the cap to see it.

use flashsale_server::StrategyParts;

use crate::serial_model::{ClaimView, SerialModel, Verdict};

pub const NAME: &str = "unit-without-order";

/// The strategy: [`decide`] in the serialized model.
pub fn strategy(parts: StrategyParts) -> SerialModel {
    SerialModel::new(NAME, decide, parts)
}

/// The correct verdict, except that the N-th claim's granted units are stranded instead.
pub fn decide(claim: &ClaimView) -> Verdict {
    match claim.correct() {
        Verdict::Grant if claim.nth => Verdict::Strand,
        verdict => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_claim_strands_its_units_when_they_fit() {
        let claim = ClaimView {
            cap: 10,
            quantity: 1,
            sold: 3,
            held: 0,
            stranded: 0,
            nth: true,
        };
        assert_eq!(decide(&claim), Verdict::Strand);
        assert_eq!(
            decide(&ClaimView {
                nth: false,
                ..claim
            }),
            Verdict::Grant
        );
        assert_eq!(decide(&ClaimView { sold: 10, ..claim }), Verdict::SoldOut);
    }
}
