//! INV-6 Convergence: once faults heal and the units-sync job runs, every figure of the sold
//! count agrees.
//!
//! The judged reading is the *settled* inventory view, read after the run once faults healed and
//! the harness waited for the sync job. It holds when:
//!
//! - `quantity_sold` (synced asynchronously into `flash_sales`) equals the view's
//!   `units_in_orders`;
//! - the Redis counter, when Redis holds one, equals `units_in_orders` (a counter above it is a
//!   claim whose order never landed, still stranding units; one below it will oversell if trusted);
//! - the view's `units_in_orders` equals the units in the exported orders, so the view describes
//!   the same ledger the other invariants judged.
//!
//! A run that took no settled reading is reported as held but "not measured", in words, so a
//! reader never mistakes the absence of a check for convergence.

use super::{CheckInput, Counterexample, InvariantResult};

pub(super) const ID: &str = "INV-6";
const NAME: &str = "convergence";

pub(super) fn check(input: &CheckInput) -> InvariantResult {
    let Some(settled) = input.settled else {
        return InvariantResult::held(
            NAME,
            "not measured (not checked): no settled inventory view was read after the run"
                .to_owned(),
        );
    };
    let view = &settled.view;
    let units = view.units_in_orders;
    let exported = input.ledger.persisted_units();
    let redis = view.redis_counter.map_or_else(
        || "no Redis counter".to_owned(),
        |c| format!("Redis counter {c}"),
    );
    let summary = format!(
        "after waiting {} ms: quantity_sold {}, units in orders {units}, {redis}, exported orders \
         hold {exported} units",
        settled.waited_ms, view.quantity_sold
    );

    let mut disagreements = Vec::new();
    if view.quantity_sold != units {
        disagreements.push(format!(
            "quantity_sold is {} but the view counts {units} units in orders",
            view.quantity_sold
        ));
    }
    if let Some(counter) = view.redis_counter.filter(|c| *c != units) {
        disagreements.push(format!(
            "the Redis counter is {counter} but the view counts {units} units in orders"
        ));
    }
    if i128::from(units) != i128::from(exported) {
        disagreements.push(format!(
            "the view counts {units} units in orders but the exported orders hold {exported}"
        ));
    }
    if disagreements.is_empty() {
        return InvariantResult::held(NAME, format!("{summary}: all agree"));
    }
    let explanation = format!(
        "after faults healed and the sync job had {} ms to run, the figures still disagree: {}",
        settled.waited_ms,
        disagreements.join("; ")
    );
    InvariantResult::violated(
        NAME,
        summary,
        Counterexample::new(explanation, Vec::new(), Vec::new()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
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
                quantity_sold,
                units_in_orders,
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
        assert!(!result.held, "{result:?}");
        &result.counterexample.as_ref().unwrap().explanation
    }

    #[test]
    fn holds_when_every_figure_agrees() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(3, 3, Some(3))));
        assert!(result.held, "{result:?}");
        assert!(result.counterexample.is_none());
        assert_eq!(
            result.summary,
            "after waiting 1500 ms: quantity_sold 3, units in orders 3, Redis counter 3, \
             exported orders hold 3 units: all agree"
        );
    }

    #[test]
    fn holds_without_a_redis_counter() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(3, 3, None)));
        assert!(result.held, "{result:?}");
        assert!(
            result.summary.contains("no Redis counter"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_lagging_quantity_sold_is_reported() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(2, 3, Some(3))));
        assert_eq!(
            explanation(&result),
            "after faults healed and the sync job had 1500 ms to run, the figures still \
             disagree: quantity_sold is 2 but the view counts 3 units in orders"
        );
    }

    #[test]
    fn a_redis_counter_holding_stranded_claims_is_reported() {
        let ledger = three_orders();
        let result = run(&ledger, Some(&settled(3, 3, Some(5))));
        assert!(
            explanation(&result).ends_with(
                "disagree: the Redis counter is 5 but the view counts 3 units in orders"
            ),
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
        assert!(text.contains("the Redis counter is 0 but"), "{text}");
        assert!(text.contains("exported orders hold 3"), "{text}");
        assert_eq!(text.matches("; ").count(), 2, "{text}");
    }

    #[test]
    fn a_run_without_a_settled_reading_is_not_measured() {
        let ledger = three_orders();
        let result = run(&ledger, None);
        assert!(result.held);
        assert!(result.counterexample.is_none());
        assert!(
            result.summary.starts_with("not measured (not checked)"),
            "{}",
            result.summary
        );
    }
}
