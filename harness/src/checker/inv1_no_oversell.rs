//! INV-1 No oversell: the sale never sells more units than its cap.
//!
//! Two figures must stay within the cap: the units in persisted orders (the ledger is the truth)
//! and the units acknowledged `ok` to buyers (each distinct order id once). The second matters on
//! its own: a server that acknowledges more than it persists has oversold to the shoppers even if
//! its database looks fine. An unlimited sale holds trivially.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CheckInput, Counterexample, Index, InvariantResult, acknowledged_units};
use crate::history::{Attempt, Outcome};
use crate::ledger::LedgerOrder;

pub(super) const ID: &str = "INV-1";
const NAME: &str = "no oversell";

pub(super) fn check(input: &CheckInput, index: &Index) -> InvariantResult {
    let persisted = input.ledger.persisted_units();
    let acknowledged = acknowledged_units(input.history);
    let Some(cap) = input.cap else {
        return InvariantResult::held(
            NAME,
            format!(
                "unlimited sale: {persisted} units persisted, {acknowledged} acknowledged; no cap to exceed"
            ),
        );
    };
    let summary = format!(
        "cap {cap}: {persisted} units persisted in {} orders, {acknowledged} units acknowledged ok",
        input.ledger.orders.len()
    );
    if persisted > cap {
        InvariantResult::violated(
            NAME,
            summary,
            persisted_beyond_cap(input, index, cap, persisted),
        )
    } else if acknowledged > cap {
        InvariantResult::violated(NAME, summary, acknowledged_beyond_cap(input, index, cap))
    } else {
        InvariantResult::held(NAME, summary)
    }
}

/// The orders that took units beyond the cap, in commit order, with the attempts that sent them.
fn persisted_beyond_cap(
    input: &CheckInput,
    index: &Index,
    cap: u64,
    persisted: u64,
) -> Counterexample {
    let mut sold = 0u64;
    let beyond: Vec<&LedgerOrder> = commit_order(&input.ledger.orders)
        .into_iter()
        .filter(|order| {
            sold += u64::from(order.quantity);
            sold > cap
        })
        .collect();
    let attempts: Vec<&Attempt> = beyond
        .iter()
        .flat_map(|o| index.attempts_with_key(&o.idempotency_key).iter().copied())
        .collect();
    let first = beyond
        .first()
        .map(|o| format!(", starting with order {} at {}", o.order_id, o.created_at))
        .unwrap_or_default();
    Counterexample::new(
        format!(
            "{persisted} units are in persisted orders against a cap of {cap}: in commit order, \
             the {} orders listed took units beyond the cap{first}",
            beyond.len()
        ),
        beyond,
        attempts,
    )
}

/// The `ok` answers that acknowledged units beyond the cap, in completion order.
fn acknowledged_beyond_cap(input: &CheckInput, index: &Index, cap: u64) -> Counterexample {
    let mut acks: Vec<&Attempt> = input
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Ok && a.order_id.is_some())
        .collect();
    acks.sort_by_key(|a| (a.completed_us, a.seq));
    let mut seen = std::collections::HashSet::new();
    let mut acknowledged = 0u64;
    let beyond: Vec<&Attempt> = acks
        .into_iter()
        .filter(|a| seen.insert(a.order_id.as_deref()))
        .filter(|a| {
            acknowledged += u64::from(a.quantity);
            acknowledged > cap
        })
        .collect();
    let orders: Vec<&LedgerOrder> = beyond
        .iter()
        .filter_map(|a| index.orders_by_id.get(a.order_id.as_deref()?).copied())
        .collect();
    Counterexample::new(
        format!(
            "{acknowledged} units were acknowledged ok against a cap of {cap} (only {} are \
             persisted): in completion order, the {} attempts listed were acknowledged beyond \
             the cap",
            input.ledger.persisted_units(),
            beyond.len()
        ),
        orders,
        beyond,
    )
}

/// Orders sorted by their commit time. Timestamps are parsed rather than compared as text
/// because RFC 3339 allows offsets and fractional seconds of varying length; an order whose
/// time does not parse goes last, and ties keep the ledger's own order.
fn commit_order(orders: &[LedgerOrder]) -> Vec<&LedgerOrder> {
    let mut keyed: Vec<(Option<OffsetDateTime>, &LedgerOrder)> = orders
        .iter()
        .map(|o| (OffsetDateTime::parse(&o.created_at, &Rfc3339).ok(), o))
        .collect();
    keyed.sort_by_key(|(at, _)| (at.is_none(), *at));
    keyed.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{CheckInput, Index, SOLD_OUT};
    use super::*;
    use crate::history::Attempt;
    use crate::ledger::Ledger;

    fn run(history: &[Attempt], ledger: &Ledger, cap: Option<u64>) -> InvariantResult {
        let input = CheckInput {
            history,
            ledger,
            cap,
        };
        check(&input, &Index::new(history, ledger))
    }

    #[test]
    fn holds_at_exactly_the_cap() {
        let history = vec![
            ok(0, "a", 2, "o1"),
            ok(1, "b", 1, "o2"),
            rejected(2, "c", 1, SOLD_OUT),
        ];
        let ledger = ledger(
            vec![order("o1", "a", 2, 1), order("o2", "b", 1, 2)],
            Some(3),
        );
        let result = run(&history, &ledger, Some(3));
        assert!(result.held, "{result:?}");
        assert!(result.counterexample.is_none());
        assert!(
            result.summary.contains("cap 3: 3 units persisted"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn names_the_orders_committed_beyond_the_cap() {
        // Ledger order differs from commit order: o3 committed first, o1 last.
        let history = vec![
            ok(0, "a", 1, "o1"),
            ok(1, "b", 1, "o2"),
            ok(2, "c", 1, "o3"),
            unknown(3, "c", 1),
        ];
        let ledger = ledger(
            vec![
                order("o1", "a", 1, 30),
                order("o2", "b", 1, 20),
                order("o3", "c", 1, 10),
            ],
            Some(2),
        );
        let result = run(&history, &ledger, Some(2));
        assert!(!result.held);
        let cx = result.counterexample.expect("a counterexample");
        assert_eq!(order_ids(&cx), ["o1"]);
        assert_eq!(attempt_seqs(&cx), [0]);
        assert!(
            cx.explanation
                .contains("3 units are in persisted orders against a cap of 2")
        );
    }

    #[test]
    fn an_order_that_crosses_the_cap_is_named_even_if_only_part_of_it_is_over() {
        let history = vec![ok(0, "a", 2, "o1"), ok(1, "b", 2, "o2")];
        let ledger = ledger(
            vec![order("o1", "a", 2, 1), order("o2", "b", 2, 2)],
            Some(3),
        );
        let cx = run(&history, &ledger, Some(3)).counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o2"]);
        assert_eq!(attempt_seqs(&cx), [1]);
    }

    #[test]
    fn acknowledging_beyond_the_cap_is_an_oversell_even_with_a_clean_ledger() {
        let history = vec![
            ok(0, "a", 1, "o1"),
            ok(1, "b", 1, "o2"),
            ok(2, "c", 1, "o-never-written"),
        ];
        let ledger = ledger(
            vec![order("o1", "a", 1, 1), order("o2", "b", 1, 2)],
            Some(2),
        );
        let result = run(&history, &ledger, Some(2));
        assert!(!result.held);
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [2]);
        assert!(cx.orders.is_empty());
        assert!(
            cx.explanation
                .contains("3 units were acknowledged ok against a cap of 2")
        );
    }

    #[test]
    fn a_retry_answered_with_the_same_order_is_not_counted_twice() {
        let mut retry = ok(1, "a", 1, "o1");
        retry.try_number = 1;
        let history = vec![ok(0, "a", 1, "o1"), retry];
        let ledger = ledger(vec![order("o1", "a", 1, 1)], Some(1));
        assert!(run(&history, &ledger, Some(1)).held);
    }

    #[test]
    fn unlimited_sale_holds_trivially() {
        let history = vec![ok(0, "a", 500, "o1")];
        let ledger = ledger(vec![order("o1", "a", 500, 1)], None);
        let result = run(&history, &ledger, None);
        assert!(result.held);
        assert!(
            result.summary.starts_with("unlimited sale"),
            "{}",
            result.summary
        );
    }
}
