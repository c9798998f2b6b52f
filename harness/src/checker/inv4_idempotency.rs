//! INV-4 Idempotency: one idempotency key never becomes two purchases.
//!
//! In the ledger, a key has at most one order; in the history, every `ok` answer for a key names
//! the same order id. The second half catches a server that creates an order, loses it, and
//! creates another on retry: the ledger alone could look clean while the shopper saw two orders.
//!
//! A target that takes no idempotency keys makes no such promise, and its orders carry no key to
//! judge: the verdict is "not checked", never held. (INV-3 still holds each of its orders to an
//! attempt of its own.)

use std::collections::HashSet;

use super::{CheckInput, Counterexample, Index, InvariantResult, MatchBy};
use crate::ground_truth::LedgerOrder;
use crate::history::{Attempt, Outcome};

pub(super) const ID: &str = "INV-4";
const NAME: &str = "idempotency";

pub(super) fn check(input: &CheckInput, index: &Index) -> InvariantResult {
    if index.by == MatchBy::Buyer {
        return InvariantResult::not_checked(
            NAME,
            format!(
                "not checked: the target takes no idempotency keys, so no key can be held to one \
                 purchase ({} attempts, {} orders; INV-3 holds each order to an attempt of its \
                 own)",
                input.history.len(),
                input.ledger.orders.len()
            ),
        );
    }
    // Sorted so the counterexample is the same on every run, whatever the hash order.
    let mut duplicated: Vec<&str> = index
        .orders_by_key
        .iter()
        .filter(|(_, orders)| orders.len() > 1)
        .map(|(key, _)| *key)
        .collect();
    duplicated.sort_unstable();

    // In key order already.
    let divergent: Vec<&str> = index
        .attempts_by_key()
        .filter(|(_, attempts)| distinct_acknowledged(attempts) > 1)
        .map(|(key, _)| key)
        .collect();

    let keys = index.key_count();
    let retried = index
        .attempts_by_key()
        .filter(|(_, attempts)| attempts.len() > 1)
        .count();
    if duplicated.is_empty() && divergent.is_empty() {
        return InvariantResult::held(
            NAME,
            format!(
                "{keys} idempotency keys ({retried} retried): none has more than one order or \
                 acknowledged order id"
            ),
        );
    }

    let summary = format!(
        "{} keys have more than one order in the ledger, {} keys were acknowledged with more \
         than one order id (of {keys} keys, {retried} retried)",
        duplicated.len(),
        divergent.len()
    );

    let mut orders: Vec<&LedgerOrder> = Vec::new();
    let mut attempts: Vec<&Attempt> = Vec::new();
    for key in &duplicated {
        orders.extend(index.orders_by_key[key].iter().copied());
        attempts.extend(index.attempts_with_key(key).iter().copied());
    }
    for key in &divergent {
        let key_attempts = index.attempts_with_key(key);
        attempts.extend(key_attempts.iter().copied());
        orders.extend(
            key_attempts
                .iter()
                .filter_map(|a| index.orders_by_id.get(a.order_id.as_deref()?).copied())
                .filter(|o| o.idempotency_key != **key),
        );
    }

    let explanation = match (duplicated.first(), divergent.first()) {
        (Some(key), _) => {
            let ids: Vec<&str> = index.orders_by_key[key]
                .iter()
                .map(|o| o.order_id.as_str())
                .collect();
            format!(
                "a key must map to at most one order; first: key {key} has orders {}",
                ids.join(", ")
            )
        }
        (None, Some(key)) => {
            let ids: Vec<&str> = index
                .attempts_with_key(key)
                .iter()
                .filter(|a| a.outcome == Outcome::Ok)
                .filter_map(|a| a.order_id.as_deref())
                .collect();
            format!(
                "every ok answer for a key must name the same order; first: key {key} was \
                 answered with orders {}",
                ids.join(", ")
            )
        }
        (None, None) => unreachable!("returned early when nothing was found"),
    };
    InvariantResult::violated(
        NAME,
        summary,
        Counterexample::new(explanation, orders, attempts),
    )
}

/// How many different order ids the `ok` answers for one key named.
fn distinct_acknowledged(attempts: &[&Attempt]) -> usize {
    let mut ids = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Ok)
        .filter_map(|a| a.order_id.as_deref());
    // Most keys have at most one ok answer; skip the set for them.
    let Some(first) = ids.next() else {
        return 0;
    };
    let mut seen = HashSet::from([first]);
    seen.extend(ids);
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::super::CheckInput;
    use super::super::fixtures::*;
    use super::*;
    use crate::ground_truth::Ledger;

    fn run(history: &[Attempt], ledger: &Ledger) -> InvariantResult {
        let input = CheckInput::new(history, ledger, None);
        check_one(check, &input)
    }

    fn retry(mut attempt: Attempt) -> Attempt {
        attempt.try_number = 1;
        attempt
    }

    #[test]
    fn a_retry_answered_with_the_same_order_holds() {
        let history = vec![
            unknown(0, "a", 1),
            retry(ok(1, "a", 1, "o1")),
            retry(ok(2, "a", 1, "o1")),
        ];
        let result = run(&history, &ledger(vec![order("o1", "a", 1, 1)], None));
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains("1 idempotency keys (1 retried)"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn two_orders_for_one_key_are_reported() {
        let history = vec![
            unknown(0, "a", 1),
            retry(ok(1, "a", 1, "o2")),
            ok(2, "b", 1, "o3"),
        ];
        let ledger = ledger(
            vec![
                order("o1", "a", 1, 1),
                order("o2", "a", 1, 2),
                order("o3", "b", 1, 3),
            ],
            None,
        );
        let result = run(&history, &ledger);
        assert!(result.is_violated());
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o1", "o2"]);
        assert_eq!(attempt_seqs(&cx), [0, 1]);
        assert!(
            cx.explanation.contains("key a has orders o1, o2"),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn two_order_ids_acknowledged_for_one_key_are_reported() {
        // The ledger holds only one order per key (o2 was recorded under another key), yet the
        // shopper was told about two different orders.
        let mut stray = order("o2", "a", 1, 2);
        stray.idempotency_key = "other".to_owned();
        let history = vec![ok(0, "a", 1, "o1"), retry(ok(1, "a", 1, "o2"))];
        let result = run(&history, &ledger(vec![order("o1", "a", 1, 1), stray], None));
        assert!(result.is_violated());
        assert!(
            result
                .summary
                .contains("1 keys were acknowledged with more than one order id")
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [0, 1]);
        assert_eq!(order_ids(&cx), ["o2"]);
        assert!(
            cx.explanation.contains("answered with orders o1, o2"),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn a_keyless_target_is_not_checked_never_held() {
        // Two orders for one request would be a violation with keys; without them there is no
        // key to hold to one purchase.
        let history = vec![unknown(0, "a", 1), retry(ok(1, "a", 1, "o2"))];
        let ledger = ledger(vec![order("o1", "a", 1, 1), order("o2", "a", 1, 2)], None);
        assert!(run(&history, &ledger).is_violated());
        let input = CheckInput {
            rules: KEYLESS,
            ..CheckInput::new(&history, &ledger, None)
        };
        let result = check_one(check, &input);
        assert_eq!(result.verdict, super::super::Verdict::NotChecked);
        assert!(result.counterexample.is_none());
        assert!(
            result
                .summary
                .starts_with("not checked: the target takes no idempotency keys"),
            "{}",
            result.summary
        );
    }
}
