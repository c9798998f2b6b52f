//! INV-1 No oversell: the sale never sells more units than its cap.
//!
//! Three figures must stay within the cap: the units in persisted orders at the end (the ledger
//! is the truth), the units in persisted orders at every inventory sample taken during the run,
//! and the units acknowledged `ok` to buyers (each distinct order id once). The samples matter
//! because a server can oversell and later lose or undo orders, ending within the cap; the
//! acknowledgements matter because a server that acknowledges more than it persists has oversold
//! to the shoppers even if its database looks fine. A sample whose reading failed (for example
//! while PostgreSQL was down) is counted and reported but proves nothing either way. An
//! unlimited sale holds trivially.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    CheckInput, Counterexample, Index, InvariantResult, MAX_SHOWN, acknowledged_units, seconds,
};
use crate::ground_truth::LedgerOrder;
use crate::history::{Attempt, InventorySample, Outcome};

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
    let readings = Readings::of(input.samples, cap);
    let summary = format!(
        "cap {cap}: {persisted} units persisted in {} orders, {acknowledged} units acknowledged \
         ok; {}",
        input.ledger.orders.len(),
        readings.describe()
    );
    let counterexample = if persisted > cap {
        persisted_beyond_cap(input, index, cap, persisted)
    } else if acknowledged > cap {
        acknowledged_beyond_cap(input, index, cap)
    } else if !readings.beyond.is_empty() {
        Counterexample::new(String::new(), Vec::new(), Vec::new())
    } else {
        return InvariantResult::held(NAME, summary);
    };
    InvariantResult::violated(NAME, summary, readings.add_to(counterexample, cap))
}

/// What the inventory samples taken during the run showed.
struct Readings<'a> {
    count: usize,
    failed: usize,
    /// The largest `units_in_orders` any successful reading reported.
    max_units: Option<i64>,
    /// Readings that saw more units in orders than the cap, in time order.
    beyond: Vec<&'a InventorySample>,
}

impl<'a> Readings<'a> {
    fn of(samples: &'a [InventorySample], cap: u64) -> Self {
        let mut beyond: Vec<&InventorySample> = samples
            .iter()
            .filter(|s| {
                s.units_in_orders
                    .is_some_and(|u| i128::from(u) > i128::from(cap))
            })
            .collect();
        beyond.sort_by_key(|s| s.at_us);
        Readings {
            count: samples.len(),
            failed: samples
                .iter()
                .filter(|s| s.units_in_orders.is_none())
                .count(),
            max_units: samples.iter().filter_map(|s| s.units_in_orders).max(),
            beyond,
        }
    }

    /// The summary's clause on samples, e.g. `37 samples, 3 failed readings, at most 10 units in
    /// orders`.
    fn describe(&self) -> String {
        if self.count == 0 {
            return "no inventory samples during the run".to_owned();
        }
        let mut out = format!("{} samples, {} failed readings", self.count, self.failed);
        if let Some(max) = self.max_units {
            out.push_str(&format!(", at most {max} units in orders"));
        }
        if !self.beyond.is_empty() {
            out.push_str(&format!(", {} above the cap", self.beyond.len()));
        }
        out
    }

    /// Appends the samples that saw the cap exceeded to `cx`'s explanation (which may be empty
    /// when the samples are the only evidence), listing at most [`MAX_SHOWN`] of their times.
    fn add_to(&self, mut cx: Counterexample, cap: u64) -> Counterexample {
        let Some(first) = self.beyond.first() else {
            return cx;
        };
        let mut text = format!(
            "{} of {} inventory samples saw the cap exceeded: at t={} the ledger held {} units \
             against a cap of {cap}",
            self.beyond.len(),
            self.count,
            seconds(first.at_us),
            first.units_in_orders.unwrap_or_default()
        );
        for sample in self.beyond.iter().skip(1).take(MAX_SHOWN - 1) {
            text.push_str(&format!(
                ", at t={} {} units",
                seconds(sample.at_us),
                sample.units_in_orders.unwrap_or_default()
            ));
        }
        let more = self.beyond.len().saturating_sub(MAX_SHOWN);
        if more > 0 {
            text.push_str(&format!(" (and {more} more samples)"));
        }
        cx.explanation = if cx.explanation.is_empty() {
            text
        } else {
            format!("{}; also {text}", cx.explanation)
        };
        cx
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
        .flat_map(|o| index.attempts_for(o).iter().copied())
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
    // The attempts in completion order; their orders, like every INV-1 order list, in commit order.
    let mut orders: Vec<&LedgerOrder> = beyond
        .iter()
        .filter_map(|a| index.orders_by_id.get(a.order_id.as_deref()?).copied())
        .collect();
    orders.sort_by_key(|o| {
        let at = OffsetDateTime::parse(&o.created_at, &Rfc3339).ok();
        (at.is_none(), at)
    });
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
    use super::super::CheckInput;
    use super::super::fixtures::*;
    use super::*;
    use crate::ground_truth::Ledger;
    use crate::history::SOLD_OUT;
    use crate::history::{Attempt, InventorySample};

    fn run(history: &[Attempt], ledger: &Ledger, cap: Option<u64>) -> InvariantResult {
        run_sampled(history, ledger, cap, &[])
    }

    fn run_sampled(
        history: &[Attempt],
        ledger: &Ledger,
        cap: Option<u64>,
        samples: &[InventorySample],
    ) -> InvariantResult {
        let input = CheckInput {
            samples,
            ..CheckInput::new(history, ledger, cap)
        };
        check_one(check, &input)
    }

    /// Two buyers of one unit each against a cap of 2: within the cap at the end.
    fn two_of_two() -> (Vec<Attempt>, Ledger) {
        let history = vec![ok(0, "a", 1, "o1"), ok(1, "b", 1, "o2")];
        let ledger = ledger(
            vec![order("o1", "a", 1, 1), order("o2", "b", 1, 2)],
            Some(2),
        );
        (history, ledger)
    }

    #[test]
    fn samples_within_the_cap_hold_and_failed_readings_are_counted() {
        let (history, ledger) = two_of_two();
        let samples = [
            sample(100_000, Some(0)),
            sample(200_000, None),
            sample(300_000, Some(2)),
            sample(400_000, None),
        ];
        let result = run_sampled(&history, &ledger, Some(2), &samples);
        assert!(result.is_held(), "{result:?}");
        assert!(
            result
                .summary
                .ends_with("4 samples, 2 failed readings, at most 2 units in orders"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_sample_above_the_cap_is_an_oversell_even_if_the_end_is_within_it() {
        let (history, ledger) = two_of_two();
        let samples = [
            sample(1_500_000, Some(4)),
            sample(500_000, Some(3)),
            sample(900_000, None),
            sample(2_000_000, Some(2)),
        ];
        let result = run_sampled(&history, &ledger, Some(2), &samples);
        assert!(result.is_violated());
        assert!(
            result.summary.contains("4 samples, 1 failed readings"),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(
            cx.explanation,
            "2 of 4 inventory samples saw the cap exceeded: at t=0.500 s the ledger held 3 units \
             against a cap of 2, at t=1.500 s 4 units"
        );
        assert!(cx.orders.is_empty() && cx.attempts.is_empty());
    }

    #[test]
    fn failed_readings_alone_are_not_violations() {
        let (history, ledger) = two_of_two();
        let samples = [sample(1, None), sample(2, None)];
        let result = run_sampled(&history, &ledger, Some(2), &samples);
        assert!(result.is_held(), "{result:?}");
        assert!(result.summary.ends_with("2 samples, 2 failed readings"));
    }

    #[test]
    fn samples_above_the_cap_are_added_to_an_oversold_ledger() {
        let history = vec![ok(0, "a", 1, "o1"), ok(1, "b", 1, "o2")];
        let ledger = ledger(
            vec![order("o1", "a", 1, 1), order("o2", "b", 1, 2)],
            Some(1),
        );
        let result = run_sampled(&history, &ledger, Some(1), &[sample(2_250_000, Some(2))]);
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o2"]);
        assert!(
            cx.explanation
                .starts_with("2 units are in persisted orders"),
            "{}",
            cx.explanation
        );
        assert!(
            cx.explanation.ends_with(
                "; also 1 of 1 inventory samples saw the cap exceeded: at t=2.250 s the ledger \
                 held 2 units against a cap of 1"
            ),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn many_samples_above_the_cap_are_listed_up_to_the_limit() {
        let (history, ledger) = two_of_two();
        let samples: Vec<InventorySample> = (0..25).map(|i| sample(i * 1_000, Some(3))).collect();
        let cx = run_sampled(&history, &ledger, Some(2), &samples)
            .counterexample
            .unwrap();
        assert_eq!(cx.explanation.matches("at t=").count(), MAX_SHOWN);
        assert!(cx.explanation.ends_with(" (and 5 more samples)"));
    }

    #[test]
    fn a_run_without_samples_says_so() {
        let (history, ledger) = two_of_two();
        let result = run(&history, &ledger, Some(2));
        assert!(result.is_held());
        assert!(
            result
                .summary
                .ends_with("no inventory samples during the run"),
            "{}",
            result.summary
        );
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
        assert!(result.is_held(), "{result:?}");
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
        assert!(result.is_violated());
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
        assert!(result.is_violated());
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
        assert!(run(&history, &ledger, Some(1)).is_held());
    }

    #[test]
    fn unlimited_sale_holds_trivially() {
        let history = vec![ok(0, "a", 500, "o1")];
        let ledger = ledger(vec![order("o1", "a", 500, 1)], None);
        let result = run_sampled(&history, &ledger, None, &[sample(1, Some(500))]);
        assert!(result.is_held());
        assert!(
            result.summary.starts_with("unlimited sale"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn acknowledged_beyond_the_cap_lists_the_orders_in_commit_order() {
        // Three acks on a cap of 1, only o2 and o3 persisted (committed at 5 s and 2 s); the ack
        // of o2 completed before o3's, yet the orders are listed by commit time: o3 first.
        let mut a3 = ok(0, "c", 1, "o3");
        a3.completed_us = 10;
        let mut a2 = ok(1, "b", 1, "o2");
        a2.completed_us = 8;
        let mut a1 = ok(2, "a", 1, "o1");
        a1.completed_us = 5;
        let history = vec![a3, a2, a1];
        let ledger = ledger(
            vec![order("o2", "b", 1, 5), order("o3", "c", 1, 2)],
            Some(1),
        );
        let mut ledger = ledger;
        ledger.orders.truncate(1); // persisted: 1 unit (o2), acknowledged: 3
        ledger.orders.push(order("o3", "c", 0, 2));
        let result = run(&history, &ledger, Some(1));
        assert!(result.is_violated(), "{result:?}");
        let cx = result.counterexample.unwrap();
        let ids: Vec<&str> = cx.orders.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["o3", "o2"], "commit order");
    }

    #[test]
    fn a_keyless_oversell_names_the_attempts_of_each_orders_buyer() {
        // The orders carry no key: the attempts that sent them are found by buyer. b-x asked
        // twice (labels x1 and x2), and both requests are listed with its order.
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-x", ok(1, "x1", 1, "o2")),
            by("b-x", unknown(2, "x2", 1)),
            by("b-c", rejected(3, "c1", 1, SOLD_OUT)),
        ];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o2", "b-x", 1, 2),
            ],
            Some(1),
        );
        let input = CheckInput {
            rules: KEYLESS,
            ..CheckInput::new(&history, &ledger, Some(1))
        };
        let result = check_one(check, &input);
        assert!(result.is_violated(), "{result:?}");
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o2"]);
        assert_eq!(attempt_seqs(&cx), [1, 2]);
    }
}
