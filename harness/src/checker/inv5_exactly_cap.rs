//! INV-5 Exactly the cap (no-fault form): a limited sale strands no units.
//!
//! Let `left` be the cap minus the units in persisted orders (0 if the sale oversold; that is
//! INV-1's business). Two rules, both of which rely on nothing handing units back during the
//! run, so that the units available never grow:
//!
//! 1. **No false sold-out.** An attempt rejected `sold_out` for `q` units was told that fewer
//!    than `q` units remained. Units only ever decrease, so at the end `left < q` must hold; a
//!    sold-out answer while `left >= q` units are still unsold means units were stranded (for
//!    example claimed in Redis by an order that never landed).
//! 2. **The sale sells out when demand allows.** Call a key *eligible* when none of its attempts
//!    was rejected for a reason other than `sold_out` (a key refused as invalid, over the
//!    per-buyer limit, rate limited, … never competed for units). When no attempt ended
//!    `unknown` (nothing is in doubt) and the eligible demand — the quantity of each eligible key
//!    counted once — is at least the cap, then `left` must be smaller than the smallest eligible
//!    request that holds no order, or zero when every eligible request holds one. For quantity 1
//!    this is "units sold = cap"; for larger quantities it allows the remainder that no waiting
//!    request fits into.
//!
//! An unlimited sale holds trivially. Faults that heal (units handed back) need the fault-aware
//! form of INV-5, which this checker does not claim to implement.

use super::{CheckInput, Counterexample, Index, InvariantResult, SOLD_OUT};
use crate::history::{Attempt, Outcome};

pub(super) const ID: &str = "INV-5";
const NAME: &str = "exactly the cap";

pub(super) fn check(input: &CheckInput, index: &Index) -> InvariantResult {
    let Some(cap) = input.cap else {
        return InvariantResult::held(NAME, "unlimited sale: no cap to reach".to_owned());
    };
    let persisted = input.ledger.persisted_units();
    let left = cap.saturating_sub(persisted);

    let sold_out: Vec<&Attempt> = input
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Rejected && a.code.as_deref() == Some(SOLD_OUT))
        .collect();
    let false_sold_out: Vec<&Attempt> = sold_out
        .iter()
        .copied()
        .filter(|a| u64::from(a.quantity) <= left)
        .collect();

    let unknown = input
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Unknown)
        .count();
    let demand = EligibleDemand::of(index);

    let figures = format!(
        "cap {cap}, {persisted} units sold, {left} left; {} sold-out answers; eligible demand {} \
         units",
        sold_out.len(),
        demand.units
    );

    if !false_sold_out.is_empty() {
        let smallest = false_sold_out.iter().map(|a| a.quantity).min().unwrap_or(0);
        let explanation = format!(
            "{} attempts were told sold_out, yet {left} units were still unsold at the end, \
             enough for a request of {smallest}: units were stranded",
            false_sold_out.len()
        );
        return InvariantResult::violated(
            NAME,
            figures,
            Counterexample::new(explanation, Vec::new(), false_sold_out),
        );
    }

    if unknown > 0 {
        return InvariantResult::held(
            NAME,
            format!(
                "{figures}; no false sold-out; sell-out not required because {unknown} attempts \
                 ended unknown"
            ),
        );
    }
    if demand.units < u128::from(cap) {
        return InvariantResult::held(
            NAME,
            format!("{figures}; no false sold-out; demand below the cap, so no sell-out required"),
        );
    }

    let unserved: Vec<&Attempt> = demand
        .unserved
        .iter()
        .copied()
        .filter(|a| u64::from(a.quantity) <= left)
        .collect();
    let smallest_unserved = demand.unserved.iter().map(|a| a.quantity).min();
    let stranded = match smallest_unserved {
        Some(q) => left >= u64::from(q),
        None => left > 0,
    };
    if !stranded {
        return InvariantResult::held(
            NAME,
            format!("{figures}; the sale sold out as far as the waiting requests allow"),
        );
    }
    let explanation = match smallest_unserved {
        Some(q) => format!(
            "eligible demand of {} units met a cap of {cap} with nothing in doubt, yet {left} \
             units were left while {} requests (the smallest for {q}) got no order",
            demand.units,
            unserved.len()
        ),
        None => format!(
            "every eligible request holds an order and eligible demand of {} units meets the cap \
             of {cap}, yet {left} units were left: the orders hold fewer units than were requested",
            demand.units
        ),
    };
    InvariantResult::violated(
        NAME,
        figures,
        Counterexample::new(explanation, Vec::new(), unserved),
    )
}

/// The demand that competed for units, and the part of it that got nothing.
struct EligibleDemand<'a> {
    /// Sum of the quantity of each eligible key (its first attempt's). Wide enough that a
    /// million keys asking for `u32::MAX` units cannot overflow.
    units: u128,
    /// The first attempt of every eligible key that holds no order in the ledger.
    unserved: Vec<&'a Attempt>,
}

impl<'a> EligibleDemand<'a> {
    fn of(index: &Index<'a>) -> Self {
        let mut units = 0u128;
        let mut unserved = Vec::new();
        for (key, attempts) in &index.attempts_by_key {
            let refused_otherwise = attempts
                .iter()
                .any(|a| a.outcome == Outcome::Rejected && a.code.as_deref() != Some(SOLD_OUT));
            let Some(first) = attempts.first() else {
                continue;
            };
            if refused_otherwise {
                continue;
            }
            units += u128::from(first.quantity);
            if !index.orders_by_key.contains_key(key) {
                unserved.push(*first);
            }
        }
        EligibleDemand { units, unserved }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{CheckInput, Index, SOLD_OUT};
    use super::*;
    use crate::ledger::{Ledger, LedgerOrder};

    fn run(history: &[Attempt], ledger: &Ledger, cap: Option<u64>) -> InvariantResult {
        let input = CheckInput {
            history,
            ledger,
            cap,
        };
        check(&input, &Index::new(history, ledger))
    }

    /// `served` buyers of one unit each get an order, `turned_away` are told sold out.
    fn sale(served: u32, turned_away: u32) -> (Vec<Attempt>, Vec<LedgerOrder>) {
        let mut history = Vec::new();
        let mut orders = Vec::new();
        for i in 0..served {
            let key = format!("k{i}");
            history.push(ok(u64::from(i), &key, 1, &format!("o{i}")));
            orders.push(order(&format!("o{i}"), &key, 1, i % 60));
        }
        for i in served..served + turned_away {
            history.push(rejected(u64::from(i), &format!("k{i}"), 1, SOLD_OUT));
        }
        (history, orders)
    }

    #[test]
    fn holds_when_the_last_ten_units_sell_exactly() {
        let (history, orders) = sale(10, 990);
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(result.held, "{result:?}");
        assert!(
            result.summary.contains("cap 10, 10 units sold, 0 left"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn sold_out_while_units_remain_is_reported() {
        let (history, orders) = sale(8, 5);
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(!result.held);
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [8, 9, 10, 11, 12]);
        assert!(
            cx.explanation.contains("2 units were still unsold"),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn larger_quantities_may_leave_a_remainder_no_request_fits() {
        // Cap 10, everyone wants 3: three orders (9 units), the fourth buyer cannot fit in 1.
        let history = vec![
            ok(0, "a", 3, "o1"),
            ok(1, "b", 3, "o2"),
            ok(2, "c", 3, "o3"),
            rejected(3, "d", 3, SOLD_OUT),
        ];
        let orders = vec![
            order("o1", "a", 3, 1),
            order("o2", "b", 3, 2),
            order("o3", "c", 3, 3),
        ];
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(result.held, "{result:?}");

        // The same sale, but a request for 1 unit was also turned away.
        let mut history = history;
        history.push(rejected(4, "e", 1, SOLD_OUT));
        let orders = vec![
            order("o1", "a", 3, 1),
            order("o2", "b", 3, 2),
            order("o3", "c", 3, 3),
        ];
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(!result.held);
        assert_eq!(attempt_seqs(&result.counterexample.unwrap()), [4]);
    }

    #[test]
    fn an_ok_whose_order_never_landed_leaves_the_sale_unsold() {
        // Demand 12 >= cap 10, nothing in doubt, nobody told sold out, but one ok has no order:
        // rule 2 catches the stranded unit that rule 1 cannot see.
        let (mut history, orders) = sale(9, 0);
        history.push(ok(9, "k9", 1, "o-lost"));
        history.push(rejected(10, "k10", 1, "quantity_above_limit"));
        history.push(ok(11, "k11", 2, "o-lost-too"));
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(!result.held);
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [9]);
        assert!(
            cx.explanation.contains("1 units were left"),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn keys_refused_for_other_reasons_are_not_demand() {
        // Only 5 eligible units against a cap of 10: selling 5 is all that can be asked.
        let (mut history, orders) = sale(5, 0);
        for i in 5..20u64 {
            history.push(rejected(i, &format!("k{i}"), 1, "not_live"));
        }
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(result.held, "{result:?}");
        assert!(
            result.summary.contains("demand below the cap"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn unknown_attempts_waive_the_sell_out_rule_but_not_false_sold_out() {
        let (mut history, orders) = sale(9, 0);
        history.push(unknown(9, "k9", 1));
        history.push(ok(10, "k10", 1, "o-lost"));
        let result = run(&history, &ledger(orders.clone(), Some(10)), Some(10));
        assert!(result.held, "{result:?}");
        assert!(
            result.summary.contains("1 attempts ended unknown"),
            "{}",
            result.summary
        );

        history.push(rejected(11, "k11", 1, SOLD_OUT));
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(!result.held);
        assert_eq!(attempt_seqs(&result.counterexample.unwrap()), [11]);
    }

    #[test]
    fn orders_smaller_than_requested_are_reported() {
        let history = vec![ok(0, "a", 2, "o1")];
        let result = run(
            &history,
            &ledger(vec![order("o1", "a", 1, 1)], Some(2)),
            Some(2),
        );
        assert!(!result.held);
        let cx = result.counterexample.unwrap();
        assert!(
            cx.explanation
                .contains("every eligible request holds an order")
        );
    }

    #[test]
    fn unlimited_sale_holds_trivially() {
        let history = vec![rejected(0, "a", 1, SOLD_OUT)];
        let result = run(&history, &ledger(vec![], None), None);
        assert!(result.held);
        assert!(result.summary.starts_with("unlimited sale"));
    }
}
