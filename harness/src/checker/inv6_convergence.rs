//! INV-6 Convergence: once the load is over (and faults healed), every figure of the sold count
//! agrees within the scenario's deadline (`[checks] convergence_within`, default 3 s).
//!
//! The judged reading is the *settled* inventory view: read after the run's last answer, again
//! every 100 ms until its figures agree or the deadline passes. It holds when:
//!
//! - `quantity_sold` (which a server may sync asynchronously) equals the view's
//!   `units_in_orders`;
//! - the counter, when the view reports one, equals `units_in_orders` (a counter above it is a
//!   claim whose order never landed, still stranding units; one below it will oversell if trusted);
//! - the view's `units_in_orders` equals the units in the exported orders, so the view describes
//!   the same ledger the other invariants judged.
//!
//! A figure the target does not report is not judged, never assumed: no settled view at all, or
//! no `quantity_sold`, makes the verdict "not checked" (unless the figures it does report already
//! disagree, which is a violation); a missing counter is named in the summary and the verdict
//! rests on the other figures.

use super::{CheckInput, Counterexample, InvariantResult, seconds};

pub(super) const ID: &str = "INV-6";
const NAME: &str = "convergence";

pub(super) fn check(input: &CheckInput) -> InvariantResult {
    let deadline = input.convergence_within.as_millis();
    let Some(settled) = input.settled else {
        return InvariantResult::not_checked(
            NAME,
            format!(
                "not checked: no inventory view with units_in_orders could be read after the last                  answer (deadline {deadline} ms)"
            ),
        );
    };
    let view = &settled.view;
    let units = view.units_in_orders;
    let exported = input.ledger.persisted_units();
    let sold = view.quantity_sold.map_or_else(
        || "no quantity_sold reported".to_owned(),
        |q| format!("quantity_sold {q}"),
    );
    let counter = view.redis_counter.map_or_else(
        || "no counter reported".to_owned(),
        |c| format!("counter {c}"),
    );
    let when = format!(
        "after the last answer{}, waited {} ms (deadline {deadline} ms)",
        faults_clause(input),
        settled.waited_ms
    );
    let summary = format!(
        "{when}: {sold}, units in orders {units}, {counter}, exported orders hold {exported} units"
    );

    let mut disagreements = Vec::new();
    if let Some(sold) = view.quantity_sold.filter(|q| *q != units) {
        disagreements.push(format!(
            "quantity_sold is {sold} but the view counts {units} units in orders"
        ));
    }
    // A counter counts the units of live cart holds beside the orders' (the contract's Redis
    // counter does); a view that reports none has none.
    let held = view.units_in_live_holds.unwrap_or(0);
    if let Some(counter) = view.redis_counter.filter(|c| *c != units + held) {
        let holds = if held > 0 {
            format!(" and {held} in live holds")
        } else {
            String::new()
        };
        disagreements.push(format!(
            "the counter is {counter} but the view counts {units} units in orders{holds}"
        ));
    }
    if i128::from(units) != i128::from(exported) {
        disagreements.push(format!(
            "the view counts {units} units in orders but the exported orders hold {exported}"
        ));
    }
    if !disagreements.is_empty() {
        let explanation = format!(
            "{when}, the figures still disagree: {}",
            disagreements.join("; ")
        );
        return InvariantResult::violated(
            NAME,
            summary,
            Counterexample::new(explanation, Vec::new(), Vec::new()),
        );
    }
    if view.quantity_sold.is_none() {
        return InvariantResult::not_checked(
            NAME,
            format!(
                "{summary}: not checked, the target's inventory view reports no quantity_sold to \
                 converge (the figures it reports agree)"
            ),
        );
    }
    let unjudged = if view.redis_counter.is_none() {
        " (no counter to judge)"
    } else {
        ""
    };
    InvariantResult::held(NAME, format!("{summary}: all agree{unjudged}"))
}

/// What the run did before the wait, in words: nothing for a run without faults.
fn faults_clause(input: &CheckInput) -> String {
    if input.faults.is_empty() {
        return String::new();
    }
    let healed = input
        .faults
        .iter()
        .try_fold(0u64, |latest, f| f.ended_us.map(|end| latest.max(end)));
    match healed {
        Some(at) => format!(
            " ({} faults, the last healed at {})",
            input.faults.len(),
            seconds(at)
        ),
        None => format!(" ({} faults, not all healed)", input.faults.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::checker::Verdict;
    use crate::ground_truth::{InventoryView, Ledger, SettledInventory};

    /// A ledger of three one-unit orders against a cap of 5.
    fn three_orders() -> Ledger {
        ledger(
            vec![
                order("o1", "a", 1, 1),
                order("o2", "b", 1, 2),
                order("o3", "c", 1, 3),
            ],
            Some(5),
        )
    }

    fn settled(quantity_sold: i64, units_in_orders: i64, redis: Option<i64>) -> SettledInventory {
        SettledInventory {
            view: InventoryView {
                cap: Some(5),
                redis_counter: redis,
                quantity_sold: Some(quantity_sold),
                units_in_orders,
                units_in_live_holds: None,
            },
            waited_ms: 1_500,
        }
    }

    fn run(ledger: &Ledger, settled: Option<&SettledInventory>) -> InvariantResult {
        check(&CheckInput {
            settled,
            ..CheckInput::new(&[], ledger, Some(5))
        })
    }

    fn explanation(result: &InvariantResult) -> &str {
        assert!(result.is_violated(), "{result:?}");
        &result.counterexample.as_ref().unwrap().explanation
    }

    #[test]
    fn holds_when_every_figure_agrees() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(3, 3, Some(3))));
        assert!(result.is_held(), "{result:?}");
        assert!(result.counterexample.is_none());
        assert_eq!(
            result.summary,
            "after the last answer, waited 1500 ms (deadline 3000 ms): quantity_sold 3, units in \
             orders 3, counter 3, exported orders hold 3 units: all agree"
        );
    }

    #[test]
    fn holds_without_a_redis_counter() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(3, 3, None)));
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains("no counter reported")
                && result.summary.ends_with("all agree (no counter to judge)"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_lagging_quantity_sold_is_reported() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(2, 3, Some(3))));
        let text = explanation(&result);
        assert_eq!(
            text,
            "after the last answer, waited 1500 ms (deadline 3000 ms), the figures still \
             disagree: quantity_sold is 2 but the view counts 3 units in orders"
        );
        assert!(
            !text.contains("fault") && !text.contains("sync job"),
            "{text}"
        );
    }

    #[test]
    fn a_redis_counter_holding_stranded_claims_is_reported() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(3, 3, Some(5))));
        assert!(
            explanation(&result)
                .ends_with("disagree: the counter is 5 but the view counts 3 units in orders"),
            "{}",
            explanation(&result)
        );
    }

    #[test]
    fn a_view_that_disagrees_with_the_exported_orders_is_reported() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(4, 4, Some(4))));
        assert!(
            explanation(&result).ends_with(
                "disagree: the view counts 4 units in orders but the exported orders hold 3"
            ),
            "{}",
            explanation(&result)
        );
    }

    #[test]
    fn every_disagreeing_figure_is_named() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(1, 2, Some(0))));
        let text = explanation(&result);
        assert!(text.contains("quantity_sold is 1 but"), "{text}");
        assert!(text.contains("the counter is 0 but"), "{text}");
        assert!(text.contains("exported orders hold 3"), "{text}");
        assert_eq!(text.matches("; ").count(), 2, "{text}");
    }

    #[test]
    fn a_run_without_a_settled_reading_is_not_checked() {
        let ledger = three_orders();
        let result = run(&ledger, None);
        assert_eq!(result.verdict, Verdict::NotChecked);
        assert!(result.counterexample.is_none());
        assert!(
            result.summary.starts_with("not checked"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_view_without_quantity_sold_is_not_checked_never_held() {
        let ledger = three_orders();
        let mut view = settled(3, 3, None);
        view.view.quantity_sold = None;
        let result = run(&ledger, Some(&view));
        assert_eq!(result.verdict, Verdict::NotChecked, "{result:?}");
        assert!(
            result.summary.contains("no quantity_sold reported"),
            "{}",
            result.summary
        );
        // With a counter that agrees, still not checked: quantity_sold is the figure at stake.
        view.view.redis_counter = Some(3);
        assert_eq!(run(&ledger, Some(&view)).verdict, Verdict::NotChecked);
    }

    #[test]
    fn a_view_without_quantity_sold_whose_other_figures_disagree_is_violated() {
        // A mutant-style view: no quantity_sold, and a counter holding a stranded claim.
        let ledger = three_orders();
        let mut view = settled(3, 3, Some(4));
        view.view.quantity_sold = None;
        let result = run(&ledger, Some(&view));
        assert!(
            explanation(&result)
                .ends_with("the counter is 4 but the view counts 3 units in orders"),
            "{}",
            explanation(&result)
        );
    }

    #[test]
    fn the_deadline_and_the_faults_are_worded_as_they_happened() {
        let ledger = three_orders();
        let view = settled(2, 3, None);
        let faults = [fault("pause", 1_000, Some(2_500_000))];
        let result = check(&CheckInput {
            settled: Some(&view),
            faults: &faults,
            convergence_within: std::time::Duration::from_secs(6),
            ..CheckInput::new(&[], &ledger, Some(5))
        });
        assert!(
            explanation(&result).starts_with(
                "after the last answer (1 faults, the last healed at 2.500 s), waited 1500 ms \
                 (deadline 6000 ms), the figures still disagree"
            ),
            "{}",
            explanation(&result)
        );
    }
}
