//! INV-2 No lost acknowledgement: every `ok` the server gave is backed by a durable order.
//!
//! An `ok` attempt's order id must be in the ledger with the same buyer, quantity and
//! idempotency key. A missing order means the server told a shopper "bought" and then forgot; a
//! mismatched one means it recorded someone else's purchase under that id. An `ok` answer
//! without an order id cannot be backed by anything, so it is reported too. For a target that
//! takes no idempotency keys the order carries none, so only its buyer and quantity must match:
//! the order id alone still names the acknowledged order.

use std::collections::HashSet;

use super::{CheckInput, Counterexample, Index, InvariantResult, MatchBy};
use crate::ground_truth::LedgerOrder;
use crate::history::{Attempt, Outcome};

pub(super) const ID: &str = "INV-2";
const NAME: &str = "no lost acknowledgement";

pub(super) fn check(input: &CheckInput, index: &Index) -> InvariantResult {
    let mut ok_attempts = 0usize;
    let mut acknowledged_orders = HashSet::new();
    let mut without_id: Vec<&Attempt> = Vec::new();
    let mut missing: Vec<&Attempt> = Vec::new();
    let mut mismatched: Vec<(&Attempt, &LedgerOrder)> = Vec::new();

    for attempt in input.history.iter().filter(|a| a.outcome == Outcome::Ok) {
        ok_attempts += 1;
        let Some(order_id) = attempt.order_id.as_deref() else {
            without_id.push(attempt);
            continue;
        };
        acknowledged_orders.insert(order_id);
        match index.orders_by_id.get(order_id) {
            None => missing.push(attempt),
            Some(order) if !matches(index.by, attempt, order) => {
                mismatched.push((attempt, order));
            }
            Some(_) => {}
        }
    }

    let fields = match index.by {
        MatchBy::Key => "buyer, quantity and key",
        MatchBy::Buyer => "buyer and quantity (the target takes no idempotency keys)",
    };
    let bad = without_id.len() + missing.len() + mismatched.len();
    if bad == 0 {
        return InvariantResult::held(
            NAME,
            format!(
                "{ok_attempts} ok attempts: all {} acknowledged orders are in the ledger with the \
                 same {fields}",
                acknowledged_orders.len()
            ),
        );
    }

    let differing = match index.by {
        MatchBy::Key => "buyer, quantity or key",
        MatchBy::Buyer => "buyer or quantity",
    };
    let summary = format!(
        "{bad} of {ok_attempts} ok attempts are not backed by the ledger: {} order(s) missing, {} \
         differing in {differing}, {} ok answer(s) without an order id",
        missing.len(),
        mismatched.len(),
        without_id.len()
    );
    let first = first_problem(&missing, &mismatched, &without_id);
    let orders = mismatched.iter().map(|(_, order)| *order).collect();
    let attempts = missing
        .iter()
        .chain(&without_id)
        .copied()
        .chain(mismatched.iter().map(|(attempt, _)| *attempt))
        .collect();
    let explanation = format!(
        "these ok answers have no matching order in the ledger after the run; first: {first}"
    );
    InvariantResult::violated(
        NAME,
        summary,
        Counterexample::new(explanation, orders, attempts),
    )
}

/// Whether `order` is the one `attempt` was told about. The key is compared only when the target
/// takes keys: a keyless target's orders carry none.
fn matches(by: MatchBy, attempt: &Attempt, order: &LedgerOrder) -> bool {
    order.buyer_id == attempt.buyer
        && order.quantity == attempt.quantity
        && (by == MatchBy::Buyer || order.idempotency_key == attempt.idempotency_key)
}

/// A one-line account of the earliest problem, so the explanation reads without the listing.
fn first_problem(
    missing: &[&Attempt],
    mismatched: &[(&Attempt, &LedgerOrder)],
    without_id: &[&Attempt],
) -> String {
    let earliest_missing = missing.first().map(|a| {
        let id = a.order_id.as_deref().unwrap_or_default();
        (
            a.seq,
            format!(
                "attempt #{} ({}) was told order {id}, which is not in the ledger",
                a.seq,
                who(a)
            ),
        )
    });
    let earliest_mismatch = mismatched.first().map(|(a, o)| {
        (
            a.seq,
            format!(
                "attempt #{} ({}) was told order {}, which the ledger holds for buyer {}, \
                 quantity {}, key {}",
                a.seq,
                who(a),
                o.order_id,
                o.buyer_id,
                o.quantity,
                o.idempotency_key
            ),
        )
    });
    let earliest_without = without_id.first().map(|a| {
        (
            a.seq,
            format!(
                "attempt #{} ({}) ended ok without an order id",
                a.seq,
                who(a)
            ),
        )
    });
    [earliest_missing, earliest_mismatch, earliest_without]
        .into_iter()
        .flatten()
        .min_by_key(|(seq, _)| *seq)
        .map(|(_, text)| text)
        .unwrap_or_default()
}

fn who(a: &Attempt) -> String {
    format!(
        "buyer {}, quantity {}, key {}",
        a.buyer, a.quantity, a.idempotency_key
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
    fn holds_when_every_ok_is_in_the_ledger() {
        let history = vec![
            ok(0, "a", 1, "o1"),
            ok(1, "b", 2, "o2"),
            rejected(2, "c", 1, SOLD_OUT),
            unknown(3, "d", 1),
        ];
        let ledger = ledger(
            vec![order("o1", "a", 1, 1), order("o2", "b", 2, 2)],
            Some(10),
        );
        let result = run(&history, &ledger);
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains("2 ok attempts"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn reports_an_ok_whose_order_is_missing() {
        let history = vec![ok(0, "a", 1, "o1"), ok(1, "b", 1, "o2")];
        let ledger = ledger(vec![order("o1", "a", 1, 1)], Some(10));
        let result = run(&history, &ledger);
        assert!(result.is_violated());
        assert!(
            result.summary.contains("1 order(s) missing"),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [1]);
        assert!(cx.orders.is_empty());
        assert!(cx.explanation.contains("attempt #1"), "{}", cx.explanation);
        assert!(
            cx.explanation
                .contains("order o2, which is not in the ledger")
        );
    }

    #[test]
    fn reports_an_order_with_another_buyer_or_quantity() {
        let history = vec![ok(0, "a", 1, "o1"), ok(1, "b", 2, "o2")];
        let mut wrong_buyer = order("o1", "a", 1, 1);
        wrong_buyer.buyer_id = "someone-else".to_owned();
        let wrong_quantity = order("o2", "b", 1, 2);
        let ledger = ledger(vec![wrong_buyer, wrong_quantity], Some(10));
        let result = run(&history, &ledger);
        assert!(result.is_violated());
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o1", "o2"]);
        assert_eq!(attempt_seqs(&cx), [0, 1]);
        assert!(
            cx.explanation.contains("buyer someone-else"),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn reports_an_order_recorded_under_another_key() {
        let history = vec![ok(0, "a", 1, "o1")];
        let mut other_key = order("o1", "a", 1, 1);
        other_key.idempotency_key = "zzz".to_owned();
        let result = run(&history, &ledger(vec![other_key], Some(10)));
        assert!(result.is_violated());
        assert_eq!(order_ids(result.counterexample.as_ref().unwrap()), ["o1"]);
    }

    #[test]
    fn reports_an_ok_without_an_order_id() {
        let mut no_id = ok(0, "a", 1, "unused");
        no_id.order_id = None;
        let result = run(&[no_id], &ledger(vec![], Some(10)));
        assert!(result.is_violated());
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [0]);
        assert!(cx.explanation.contains("without an order id"));
    }

    fn run_keyless(history: &[Attempt], ledger: &Ledger) -> InvariantResult {
        let input = CheckInput {
            rules: super::super::fixtures::KEYLESS,
            ..CheckInput::new(history, ledger, Some(10))
        };
        check_one(check, &input)
    }

    #[test]
    fn a_keyless_target_is_matched_by_order_id_buyer_and_quantity() {
        // The orders carry no key, and two requests of one buyer each got their own order.
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-a", ok(1, "a2", 2, "o2")),
        ];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o2", "b-a", 2, 2),
            ],
            Some(10),
        );
        let result = run_keyless(&history, &ledger);
        assert!(result.is_held(), "{result:?}");
        assert!(
            result
                .summary
                .ends_with("same buyer and quantity (the target takes no idempotency keys)"),
            "{}",
            result.summary
        );
        // Judged as a target that takes keys, the empty keys would not match.
        assert!(run(&history, &ledger).is_violated());
    }

    #[test]
    fn a_keyless_target_that_loses_an_acknowledged_order_is_caught_by_its_id() {
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-a", ok(1, "a2", 1, "o2")),
            by("b-b", ok(2, "b1", 1, "o3")),
        ];
        let mut other_buyer = keyless_order("o3", "b-a", 1, 3);
        other_buyer.buyer_id = "b-z".to_owned();
        let ledger = ledger(
            vec![keyless_order("o1", "b-a", 1, 1), other_buyer],
            Some(10),
        );
        let result = run_keyless(&history, &ledger);
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result.summary.contains(
                "1 order(s) missing, 1 differing in buyer or quantity, 0 ok answer(s) without"
            ),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [1, 2]);
        assert!(
            cx.explanation
                .contains("attempt #1 (buyer b-a, quantity 1, key a2) was told order o2"),
            "{}",
            cx.explanation
        );
    }
}
