//! INV-3 No phantom order: every persisted order belongs to an attempt that may have made it.
//!
//! An order belongs to an attempt when the attempt sent the order's idempotency key for the same
//! buyer and quantity and ended `ok` or `unknown` (an unknown attempt may well have created an
//! order; that is what "maybe" means). An order is a phantom when no attempt sent its key, when
//! every attempt with its key was rejected (the shopper was told "no" but was charged anyway),
//! or when its key was only ever sent for another buyer or quantity.

use super::{CheckInput, Counterexample, Index, InvariantResult};
use crate::ground_truth::LedgerOrder;
use crate::history::{Attempt, Outcome};

pub(super) const ID: &str = "INV-3";
const NAME: &str = "no phantom order";

/// Why an order has no attempt to belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phantom {
    KeyNeverSent,
    AllRejected,
    OtherBuyerOrQuantity,
}

pub(super) fn check(input: &CheckInput, index: &Index) -> InvariantResult {
    let mut only_unknown = 0usize;
    let mut phantoms: Vec<(&LedgerOrder, Phantom)> = Vec::new();

    for order in &input.ledger.orders {
        let attempts = index.attempts_with_key(&order.idempotency_key);
        let owners = || {
            attempts.iter().filter(|a| {
                a.outcome != Outcome::Rejected
                    && a.buyer == order.buyer_id
                    && a.quantity == order.quantity
            })
        };
        if owners().next().is_some() {
            if owners().all(|a| a.outcome == Outcome::Unknown) {
                only_unknown += 1;
            }
            continue;
        }
        let why = if attempts.is_empty() {
            Phantom::KeyNeverSent
        } else if attempts.iter().all(|a| a.outcome == Outcome::Rejected) {
            Phantom::AllRejected
        } else {
            Phantom::OtherBuyerOrQuantity
        };
        phantoms.push((order, why));
    }

    let orders = input.ledger.orders.len();
    if phantoms.is_empty() {
        return InvariantResult::held(
            NAME,
            format!(
                "all {orders} persisted orders belong to an ok or unknown attempt ({only_unknown} \
                 of them to unknown attempts only); no rejected key has an order"
            ),
        );
    }

    let count = |kind: Phantom| phantoms.iter().filter(|(_, why)| *why == kind).count();
    let (never_sent, rejected, other) = (
        count(Phantom::KeyNeverSent),
        count(Phantom::AllRejected),
        count(Phantom::OtherBuyerOrQuantity),
    );
    let summary = format!(
        "{} of {orders} persisted orders are phantoms: {rejected} for keys that were only ever \
         rejected, {never_sent} for keys no attempt sent, {other} for another buyer or quantity",
        phantoms.len()
    );
    let attempts: Vec<&Attempt> = phantoms
        .iter()
        .flat_map(|(o, _)| index.attempts_with_key(&o.idempotency_key).iter().copied())
        .collect();
    let (first, why) = phantoms[0];
    let reason = match why {
        Phantom::KeyNeverSent => "no attempt sent its key".to_owned(),
        Phantom::AllRejected => {
            let codes: Vec<&str> = index
                .attempts_with_key(&first.idempotency_key)
                .iter()
                .map(|a| a.code.as_deref().unwrap_or("no code"))
                .collect();
            format!(
                "every attempt with its key was rejected ({})",
                codes.join(", ")
            )
        }
        Phantom::OtherBuyerOrQuantity => {
            "its key was only sent for another buyer or quantity".to_owned()
        }
    };
    let explanation = format!(
        "these orders were persisted although no ok or unknown attempt could have made them; \
         first: order {} (buyer {}, quantity {}, key {}): {reason}",
        first.order_id, first.buyer_id, first.quantity, first.idempotency_key
    );
    let phantom_orders = phantoms.into_iter().map(|(o, _)| o).collect();
    InvariantResult::violated(
        NAME,
        summary,
        Counterexample::new(explanation, phantom_orders, attempts),
    )
}

#[cfg(test)]
mod tests {
    use super::super::CheckInput;
    use super::super::fixtures::*;
    use super::*;
    use crate::ground_truth::Ledger;
    use crate::history::SOLD_OUT;

    fn run(history: &[Attempt], ledger: &Ledger) -> InvariantResult {
        let input = CheckInput::new(history, ledger, Some(10));
        check_one(check, &input)
    }

    #[test]
    fn holds_when_every_order_has_an_ok_attempt() {
        let history = vec![ok(0, "a", 1, "o1"), rejected(1, "b", 1, SOLD_OUT)];
        let result = run(&history, &ledger(vec![order("o1", "a", 1, 1)], Some(10)));
        assert!(result.is_held(), "{result:?}");
    }

    #[test]
    fn an_unknown_attempt_whose_order_exists_is_not_a_phantom() {
        let history = vec![unknown(0, "a", 1)];
        let result = run(&history, &ledger(vec![order("o1", "a", 1, 1)], Some(10)));
        assert!(result.is_held(), "{result:?}");
        assert!(
            result
                .summary
                .contains("1 of them to unknown attempts only"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn an_unknown_attempt_without_an_order_is_fine() {
        let history = vec![unknown(0, "a", 1), ok(1, "b", 1, "o2")];
        let result = run(&history, &ledger(vec![order("o2", "b", 1, 1)], Some(10)));
        assert!(result.is_held(), "{result:?}");
    }

    #[test]
    fn a_rejected_key_with_an_order_is_a_phantom() {
        let history = vec![
            ok(0, "a", 1, "o1"),
            rejected(1, "b", 1, SOLD_OUT),
            rejected(2, "c", 1, SOLD_OUT),
        ];
        let ledger = ledger(
            vec![order("o1", "a", 1, 1), order("o2", "b", 1, 2)],
            Some(10),
        );
        let result = run(&history, &ledger);
        assert!(result.is_violated());
        assert!(
            result
                .summary
                .contains("1 for keys that were only ever rejected")
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o2"]);
        assert_eq!(attempt_seqs(&cx), [1]);
        assert!(
            cx.explanation
                .contains("every attempt with its key was rejected (sold_out)")
        );
    }

    #[test]
    fn a_key_rejected_after_an_unknown_try_may_own_its_order() {
        let mut retry = rejected(1, "a", 1, SOLD_OUT);
        retry.try_number = 1;
        let history = vec![unknown(0, "a", 1), retry];
        let result = run(&history, &ledger(vec![order("o1", "a", 1, 1)], Some(10)));
        assert!(result.is_held(), "{result:?}");
    }

    #[test]
    fn an_order_for_a_key_never_sent_is_a_phantom() {
        let history = vec![ok(0, "a", 1, "o1")];
        let ledger = ledger(
            vec![order("o1", "a", 1, 1), order("o9", "ghost", 1, 2)],
            Some(10),
        );
        let result = run(&history, &ledger);
        assert!(result.is_violated());
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o9"]);
        assert!(cx.attempts.is_empty());
        assert!(cx.explanation.contains("no attempt sent its key"));
    }

    #[test]
    fn an_order_for_another_quantity_is_a_phantom() {
        let history = vec![unknown(0, "a", 1)];
        let result = run(&history, &ledger(vec![order("o1", "a", 5, 1)], Some(10)));
        assert!(result.is_violated());
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o1"]);
        assert_eq!(attempt_seqs(&cx), [0]);
    }
}
