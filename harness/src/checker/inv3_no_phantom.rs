//! INV-3 No phantom order: every persisted order belongs to an attempt that may have made it.
//!
//! An order belongs to an attempt when the attempt sent the order's idempotency key for the same
//! buyer and quantity and ended `ok` or `unknown` (an unknown attempt may well have created an
//! order; that is what "maybe" means). An order is a phantom when no attempt sent its key, when
//! every attempt with its key was rejected (the shopper was told "no" but was charged anyway),
//! or when its key was only ever sent for another buyer or quantity.
//!
//! A target that takes no idempotency keys stores orders without one, so an order belongs to its
//! buyer's attempts for its quantity instead. Nothing stops such a target from making a second
//! order when the harness retries a timed-out request, so a retry is no reason for alarm; but one
//! attempt still makes at most one order. An `ok` attempt made the order its answer names, and
//! every other order of that buyer and quantity needs an `unknown` attempt (or an `ok` one whose
//! answer names none of them) of its own: an order beyond that count is a phantom. This is the
//! check that catches, without keys, the duplicate orders INV-4 would catch with them.

use std::collections::HashSet;

use super::{CheckInput, Counterexample, Index, InvariantResult, MatchBy};
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
    match index.by {
        MatchBy::Key => by_key(input, index),
        MatchBy::Buyer => by_buyer(input, index),
    }
}

/// A target that takes keys: each order needs an attempt with its key, buyer and quantity.
fn by_key(input: &CheckInput, index: &Index) -> InvariantResult {
    let mut only_unknown = 0usize;
    let mut phantoms: Vec<(&LedgerOrder, Phantom)> = Vec::new();

    for order in &input.ledger.orders {
        let attempts = index.attempts_for(order);
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
        .flat_map(|(o, _)| index.attempts_for(o).iter().copied())
        .collect();
    let (first, why) = phantoms[0];
    let reason = match why {
        Phantom::KeyNeverSent => "no attempt sent its key".to_owned(),
        Phantom::AllRejected => {
            let codes: Vec<&str> = index
                .attempts_for(first)
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

/// Why some of a buyer's orders of one quantity have no attempt of a keyless target to belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unowned {
    BuyerNeverSent,
    AllRejected,
    OtherQuantity,
    /// More orders than the buyer's `ok` and `unknown` attempts for that quantity could have made.
    BeyondAttempts,
}

/// The orders of one buyer and quantity that no `ok` answer names, when fewer attempts could
/// have made them than there are: `phantoms` of `orders` are phantoms, which ones is anyone's
/// guess, so all are listed.
struct Surplus<'a> {
    buyer: &'a str,
    quantity: u32,
    orders: Vec<&'a LedgerOrder>,
    free_attempts: usize,
    phantoms: usize,
    why: Unowned,
}

/// A target that takes no keys: orders are matched to their buyer's attempts by quantity, one
/// order per attempt at most (see the module documentation).
fn by_buyer(input: &CheckInput, index: &Index) -> InvariantResult {
    let mut unnamed_owned = 0usize;
    let mut surpluses: Vec<Surplus> = Vec::new();
    // Sorted so the counterexample is the same on every run, whatever the hash order.
    let mut buyers: Vec<&str> = index.orders_by_key.keys().copied().collect();
    buyers.sort_unstable();
    for buyer in buyers {
        let orders = &index.orders_by_key[buyer];
        let attempts = index.attempts_with_key(buyer);
        let mut quantities: Vec<u32> = orders.iter().map(|o| o.quantity).collect();
        quantities.sort_unstable();
        quantities.dedup();
        for quantity in quantities {
            let ids: HashSet<&str> = orders
                .iter()
                .filter(|o| o.quantity == quantity)
                .map(|o| o.order_id.as_str())
                .collect();
            let makers: Vec<&Attempt> = attempts
                .iter()
                .copied()
                .filter(|a| a.outcome != Outcome::Rejected && a.quantity == quantity)
                .collect();
            // An ok attempt made the order its answer names, when that is one of these orders.
            let names = |a: &Attempt| {
                a.outcome == Outcome::Ok && a.order_id.as_deref().is_some_and(|id| ids.contains(id))
            };
            let named: HashSet<&str> = makers
                .iter()
                .filter(|a| names(a))
                .filter_map(|a| a.order_id.as_deref())
                .collect();
            let free_attempts = makers.iter().filter(|a| !names(a)).count();
            let unnamed: Vec<&LedgerOrder> = orders
                .iter()
                .copied()
                .filter(|o| o.quantity == quantity && !named.contains(o.order_id.as_str()))
                .collect();
            unnamed_owned += unnamed.len().min(free_attempts);
            if unnamed.len() <= free_attempts {
                continue;
            }
            let why = if attempts.is_empty() {
                Unowned::BuyerNeverSent
            } else if attempts.iter().all(|a| a.outcome == Outcome::Rejected) {
                Unowned::AllRejected
            } else if makers.is_empty() {
                Unowned::OtherQuantity
            } else {
                Unowned::BeyondAttempts
            };
            surpluses.push(Surplus {
                buyer,
                quantity,
                phantoms: unnamed.len() - free_attempts,
                orders: unnamed,
                free_attempts,
                why,
            });
        }
    }

    let orders = input.ledger.orders.len();
    if surpluses.is_empty() {
        return InvariantResult::held(
            NAME,
            format!(
                "all {orders} persisted orders belong to an ok or unknown attempt of their buyer \
                 for their quantity, one order per attempt ({unnamed_owned} of them named by no ok \
                 answer); no buyer told only no has an order; matched by buyer: the target takes \
                 no idempotency keys"
            ),
        );
    }

    let count = |kind: Unowned| {
        surpluses
            .iter()
            .filter(|s| s.why == kind)
            .map(|s| s.phantoms)
            .sum::<usize>()
    };
    let total: usize = surpluses.iter().map(|s| s.phantoms).sum();
    let summary = format!(
        "{total} of {orders} persisted orders are phantoms: {} of buyers whose every attempt was \
         rejected, {} of buyers who sent no attempt, {} for a quantity their buyer never asked \
         for, {} beyond what their buyer's ok and unknown attempts could have made (matched by \
         buyer: the target takes no idempotency keys)",
        count(Unowned::AllRejected),
        count(Unowned::BuyerNeverSent),
        count(Unowned::OtherQuantity),
        count(Unowned::BeyondAttempts),
    );
    let first = &surpluses[0];
    let attempts_of_first = index.attempts_with_key(first.buyer);
    let reason = match first.why {
        Unowned::BuyerNeverSent => "its buyer sent no attempt".to_owned(),
        Unowned::AllRejected => {
            let codes: Vec<&str> = attempts_of_first
                .iter()
                .map(|a| a.code.as_deref().unwrap_or("no code"))
                .collect();
            format!(
                "every attempt of its buyer was rejected ({})",
                codes.join(", ")
            )
        }
        Unowned::OtherQuantity => {
            "its buyer's ok and unknown attempts were all for other quantities".to_owned()
        }
        Unowned::BeyondAttempts => format!(
            "no ok answer names these {} orders, and only {} of the buyer's attempts for {} \
             units (unknown, or ok naming none of them) could have made one each",
            first.orders.len(),
            first.free_attempts,
            first.quantity
        ),
    };
    let explanation = format!(
        "these orders were persisted although no ok or unknown attempt could have made them; \
         first: {} order(s) of buyer {} for {} units ({}): {reason}",
        first.phantoms,
        first.buyer,
        first.quantity,
        first
            .orders
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let attempts = surpluses
        .iter()
        .flat_map(|s| index.attempts_with_key(s.buyer).iter().copied())
        .collect();
    let listed = surpluses
        .iter()
        .flat_map(|s| s.orders.iter().copied())
        .collect();
    InvariantResult::violated(
        NAME,
        summary,
        Counterexample::new(explanation, listed, attempts),
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

    fn run_keyless(history: &[Attempt], ledger: &Ledger) -> InvariantResult {
        let input = CheckInput {
            rules: KEYLESS,
            ..CheckInput::new(history, ledger, Some(10))
        };
        check_one(check, &input)
    }

    #[test]
    fn a_keyless_buyer_with_several_requests_owns_one_order_per_attempt() {
        // Three requests of b-a: two answered ok, one timed out and made its order anyway.
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-a", ok(1, "a2", 1, "o2")),
            by("b-a", unknown(2, "a3", 1)),
            by("b-b", rejected(3, "b1", 1, SOLD_OUT)),
        ];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o2", "b-a", 1, 2),
                keyless_order("o3", "b-a", 1, 3),
            ],
            Some(10),
        );
        let result = run_keyless(&history, &ledger);
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.starts_with(
                "all 3 persisted orders belong to an ok or unknown attempt of their buyer for \
                 their quantity, one order per attempt (1 of them named by no ok answer)"
            ),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_keyless_retry_may_make_a_second_order() {
        // Without a key, the timed-out first try and its retry may each have made an order.
        let mut retry = by("b-a", ok(1, "a1", 1, "o2"));
        retry.try_number = 1;
        let history = vec![by("b-a", unknown(0, "a1", 1)), retry];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o2", "b-a", 1, 2),
            ],
            Some(10),
        );
        assert!(run_keyless(&history, &ledger).is_held());
    }

    #[test]
    fn a_keyless_order_of_a_buyer_told_only_no_is_a_phantom() {
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-b", rejected(1, "b1", 1, SOLD_OUT)),
            by("b-b", rejected(2, "b2", 1, SOLD_OUT)),
        ];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o2", "b-b", 1, 2),
            ],
            Some(10),
        );
        let result = run_keyless(&history, &ledger);
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result
                .summary
                .starts_with("1 of 2 persisted orders are phantoms: 1 of buyers whose every"),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o2"]);
        assert_eq!(attempt_seqs(&cx), [1, 2]);
        assert!(
            cx.explanation.ends_with(
                "first: 1 order(s) of buyer b-b for 1 units (o2): every attempt of its buyer was \
                 rejected (sold_out, sold_out)"
            ),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn a_keyless_order_of_a_buyer_who_never_asked_or_asked_for_another_quantity_is_a_phantom() {
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-c", unknown(1, "c1", 2)),
        ];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o8", "b-c", 1, 2),
                keyless_order("o9", "b-ghost", 1, 3),
            ],
            Some(10),
        );
        let result = run_keyless(&history, &ledger);
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result.summary.contains(
                "1 of buyers who sent no attempt, 1 for a quantity their buyer never asked for"
            ),
            "{}",
            result.summary
        );
        assert_eq!(
            order_ids(result.counterexample.as_ref().unwrap()),
            ["o8", "o9"]
        );
    }

    #[test]
    fn a_keyless_order_beyond_what_its_buyers_attempts_could_make_is_a_phantom() {
        // One request, answered ok with o1; the ledger holds a second order for it. With keys
        // this is INV-4's duplicate; without them, INV-3 counts attempts.
        let history = vec![by("b-a", ok(0, "a1", 1, "o1"))];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o2", "b-a", 1, 2),
            ],
            Some(10),
        );
        let result = run_keyless(&history, &ledger);
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result
                .summary
                .contains("1 beyond what their buyer's ok and unknown attempts could have made"),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o2"]);
        assert_eq!(attempt_seqs(&cx), [0]);
        assert!(
            cx.explanation.ends_with(
                "no ok answer names these 1 orders, and only 0 of the buyer's attempts for 1 \
                 units (unknown, or ok naming none of them) could have made one each"
            ),
            "{}",
            cx.explanation
        );
    }
}
