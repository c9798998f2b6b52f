//! DELIBERATELY BROKEN: an off-by-one at the last units, breaking INV-1 (no oversell).
//!
//! Correct, serialized claims (see [`crate::serial_model`]) except one comparison: a multi-unit
//! order (quantity q ≥ 2) that arrives while exactly q − 1 units remain is granted anyway, so the
//! sale ends one unit over its cap. Single units, and orders meeting any other remainder, are
//! decided correctly, which is why a scenario must land a multi-unit order on remaining = q − 1
//! to see it (a cap of 5 sold in pairs does: 5, 3, 1 → the third pair is granted, 6 units).
//! Writes to an unguarded (slot-less) sale, since the slot ledger would refuse the extra unit.

use flashsale_server::StrategyParts;

use crate::serial_model::{ClaimView, SerialModel, Verdict};

pub const NAME: &str = "oversell-at-boundary";

/// The strategy: [`decide`] in the serialized model.
pub fn strategy(parts: StrategyParts) -> SerialModel {
    SerialModel::new(NAME, decide, parts)
}

/// The correct verdict, except at remaining = quantity − 1 for a quantity of 2 or more.
pub fn decide(claim: &ClaimView) -> Verdict {
    let remaining = claim.cap - claim.sold - claim.stranded;
    if claim.quantity >= 2 && remaining == claim.quantity - 1 {
        return Verdict::Grant;
    }
    claim.correct()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_at(remaining: i64, quantity: i64) -> Verdict {
        decide(&ClaimView {
            cap: 10,
            quantity,
            sold: 10 - remaining,
            held: 0,
            stranded: 0,
            nth: false,
        })
    }

    #[test]
    fn only_a_multi_unit_order_meeting_one_unit_too_few_is_oversold() {
        assert_eq!(decide_at(1, 2), Verdict::Grant, "the bug: 2 units of 1");
        assert_eq!(decide_at(2, 3), Verdict::Grant, "the bug: 3 units of 2");
        assert_eq!(decide_at(0, 1), Verdict::SoldOut);
        assert_eq!(decide_at(1, 3), Verdict::SoldOut);
        assert_eq!(decide_at(0, 2), Verdict::SoldOut);
        assert_eq!(decide_at(2, 2), Verdict::Grant);
        assert_eq!(decide_at(1, 1), Verdict::Grant);
    }
}
