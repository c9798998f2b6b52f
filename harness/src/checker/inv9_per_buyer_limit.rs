//! INV-9 Per-buyer limit: no buyer holds more of the sale than a per-buyer limit allows.
//!
//! The limits come from [`super::TargetRules`]: units per buyer (the sale's `per_buyer_limit`,
//! or a rule the target profile states) and orders per buyer ("one order per customer"). A limit
//! is about the buyer, not the order: it is summed over every order the buyer holds, concurrent
//! ones and ones that went through during a fault included, which is exactly what a server that
//! checks each order on its own lets through when one buyer's requests race.
//!
//! Two figures per buyer must stay within each limit, as INV-1 does for the cap: what the ledger
//! holds for the buyer at the end (each exported order once), and what the buyer was told they
//! bought (each order id answered `ok` to them once, with the quantity of the first answer that
//! named it, so a retry answered with the same order is not counted twice). A buyer told "bought"
//! beyond the limit was sold beyond it, whatever the database says.
//!
//! A sale without a per-buyer limit has nothing to judge: the invariant is then left out of the
//! report altogether ([`check`] returns `None`), rather than printed as held.

use std::collections::{BTreeMap, HashSet};

use super::{CheckInput, Counterexample, InvariantResult, TargetRules};
use crate::ground_truth::LedgerOrder;
use crate::history::{Attempt, Outcome};

pub(super) const ID: &str = "INV-9";
const NAME: &str = "per-buyer limit";

/// What one buyer holds, or was told they hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Holding {
    units: u64,
    orders: u64,
}

impl Holding {
    fn add(&mut self, quantity: u32) {
        self.units += u64::from(quantity);
        self.orders += 1;
    }

    fn exceeds(self, rules: &TargetRules) -> bool {
        rules
            .per_buyer_units
            .is_some_and(|limit| self.units > limit)
            || rules
                .per_buyer_orders
                .is_some_and(|limit| self.orders > limit)
    }

    fn describe(self) -> String {
        format!("{} units in {} orders", self.units, self.orders)
    }
}

/// `None` when the sale sets no per-buyer limit: the report then has no INV-9.
pub(super) fn check(input: &CheckInput) -> Option<InvariantResult> {
    let rules = input.rules;
    let limit = rules.described_limits()?;

    // BTreeMaps, so the first violator named is the same on every run.
    let mut held: BTreeMap<&str, Holding> = BTreeMap::new();
    for order in &input.ledger.orders {
        held.entry(order.buyer_id.as_str())
            .or_default()
            .add(order.quantity);
    }
    let mut acknowledged: BTreeMap<&str, Holding> = BTreeMap::new();
    let mut named = HashSet::new();
    for attempt in input.history.iter().filter(|a| a.outcome == Outcome::Ok) {
        let Some(order_id) = attempt.order_id.as_deref() else {
            continue;
        };
        if named.insert((attempt.buyer.as_str(), order_id)) {
            acknowledged
                .entry(attempt.buyer.as_str())
                .or_default()
                .add(attempt.quantity);
        }
    }

    let most = |holdings: &BTreeMap<&str, Holding>| {
        let units = holdings.values().map(|h| h.units).max().unwrap_or(0);
        let orders = holdings.values().map(|h| h.orders).max().unwrap_or(0);
        format!("at most {units} units and {orders} orders")
    };
    let figures = format!(
        "limit {limit} per buyer: {} buyers hold orders, {} per buyer in the ledger, {} \
         acknowledged to one buyer",
        held.len(),
        most(&held),
        most(&acknowledged)
    );

    let over_in_ledger: Vec<&str> = over(&held, &rules);
    let over_acknowledged: Vec<&str> = over(&acknowledged, &rules);
    let mut violators: Vec<&str> = over_in_ledger
        .iter()
        .chain(&over_acknowledged)
        .copied()
        .collect();
    violators.sort_unstable();
    violators.dedup();
    let Some(&first) = violators.first() else {
        return Some(InvariantResult::held(NAME, figures));
    };

    let summary = format!(
        "{} buyers exceed the limit of {limit} per buyer ({} in the ledger, {} in what they were \
         acknowledged); {figures}",
        violators.len(),
        over_in_ledger.len(),
        over_acknowledged.len()
    );
    let explanation = format!(
        "a buyer may hold at most {limit} in this sale, summed over all their orders; first: \
         buyer {first} holds {} in the ledger and was acknowledged {}",
        held.get(first).copied().unwrap_or_default().describe(),
        acknowledged
            .get(first)
            .copied()
            .unwrap_or_default()
            .describe()
    );
    let listed: HashSet<&str> = violators.iter().copied().collect();
    // The violators' orders buyer by buyer (in id order), each buyer's in ledger order.
    let mut orders: Vec<&LedgerOrder> = input
        .ledger
        .orders
        .iter()
        .filter(|o| listed.contains(o.buyer_id.as_str()))
        .collect();
    orders.sort_by_key(|o| o.buyer_id.as_str());
    let attempts: Vec<&Attempt> = input
        .history
        .iter()
        .filter(|a| listed.contains(a.buyer.as_str()))
        .collect();
    Some(InvariantResult::violated(
        NAME,
        summary,
        Counterexample::new(explanation, orders, attempts),
    ))
}

/// The buyers whose holdings exceed a limit, in id order.
fn over<'a>(holdings: &BTreeMap<&'a str, Holding>, rules: &TargetRules) -> Vec<&'a str> {
    holdings
        .iter()
        .filter(|(_, h)| h.exceeds(rules))
        .map(|(buyer, _)| *buyer)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{CheckInput, TargetRules, Verdict};
    use super::*;
    use crate::ground_truth::Ledger;
    use crate::history::SOLD_OUT;

    fn rules(units: Option<u64>, orders: Option<u64>) -> TargetRules {
        TargetRules {
            per_buyer_units: units,
            per_buyer_orders: orders,
            ..TargetRules::default()
        }
    }

    fn run(history: &[Attempt], ledger: &Ledger, rules: TargetRules) -> InvariantResult {
        let input = CheckInput {
            rules,
            ..CheckInput::new(history, ledger, None)
        };
        check(&input).expect("a limit is set, so INV-9 is judged")
    }

    /// Buyer `buyer`'s request `key` answered ok with `order_id`.
    fn ok_by(seq: u64, buyer: &str, key: &str, quantity: u32, order_id: &str) -> Attempt {
        by(buyer, ok(seq, key, quantity, order_id))
    }

    #[test]
    fn without_a_limit_there_is_no_verdict_at_all() {
        let history = vec![ok(0, "a", 5, "o1")];
        let ledger = ledger(vec![order("o1", "a", 5, 1)], None);
        assert_eq!(check(&CheckInput::new(&history, &ledger, None)), None);
    }

    #[test]
    fn holds_when_every_buyer_stays_within_the_limit() {
        // b-a holds exactly the limit over two orders; b-c was turned away.
        let history = vec![
            ok_by(0, "b-a", "a1", 2, "o1"),
            ok_by(1, "b-a", "a2", 1, "o2"),
            ok_by(2, "b-b", "b1", 3, "o3"),
            by("b-c", rejected(3, "c1", 1, SOLD_OUT)),
        ];
        let ledger = ledger(
            vec![
                owned("o1", "b-a", "a1", 2, 1),
                owned("o2", "b-a", "a2", 1, 2),
                owned("o3", "b-b", "b1", 3, 3),
            ],
            None,
        );
        let result = run(&history, &ledger, rules(Some(3), None));
        assert!(result.is_held(), "{result:?}");
        assert_eq!(
            result.summary,
            "limit 3 units per buyer: 2 buyers hold orders, at most 3 units and 2 orders per \
             buyer in the ledger, at most 3 units and 2 orders acknowledged to one buyer"
        );
    }

    #[test]
    fn units_summed_over_a_buyers_orders_beyond_the_limit_are_reported() {
        // Each order is within the limit of 3 on its own; together they are not.
        let history = vec![
            ok_by(0, "b-a", "a1", 2, "o1"),
            ok_by(1, "b-a", "a2", 2, "o2"),
            ok_by(2, "b-b", "b1", 1, "o3"),
        ];
        let ledger = ledger(
            vec![
                owned("o1", "b-a", "a1", 2, 1),
                owned("o3", "b-b", "b1", 1, 2),
                owned("o2", "b-a", "a2", 2, 3),
            ],
            None,
        );
        let result = run(&history, &ledger, rules(Some(3), None));
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result.summary.starts_with(
                "1 buyers exceed the limit of 3 units per buyer (1 in the ledger, 1 in what they \
                 were acknowledged)"
            ),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o1", "o2"]);
        assert_eq!(attempt_seqs(&cx), [0, 1]);
        assert_eq!(
            cx.explanation,
            "a buyer may hold at most 3 units in this sale, summed over all their orders; first: \
             buyer b-a holds 4 units in 2 orders in the ledger and was acknowledged 4 units in 2 \
             orders"
        );
    }

    #[test]
    fn orders_beyond_one_per_buyer_are_reported() {
        // One order per customer: b-a got two single units, which no units limit would catch.
        let history = vec![
            ok_by(0, "b-a", "a1", 1, "o1"),
            ok_by(1, "b-a", "a2", 1, "o2"),
            by("b-a", rejected(2, "a3", 1, "limit_reached")),
        ];
        let ledger = ledger(
            vec![
                owned("o1", "b-a", "a1", 1, 1),
                owned("o2", "b-a", "a2", 1, 2),
            ],
            None,
        );
        let result = run(&history, &ledger, rules(None, Some(1)));
        assert!(result.is_violated(), "{result:?}");
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o1", "o2"]);
        assert_eq!(attempt_seqs(&cx), [0, 1, 2], "all the buyer's attempts");
        assert!(
            cx.explanation.contains("at most 1 order in this sale")
                && cx.explanation.contains("holds 2 units in 2 orders"),
            "{}",
            cx.explanation
        );
        // The same ledger within a units limit of 2 holds: the orders limit is what it breaks.
        assert!(run(&history, &ledger, rules(Some(2), None)).is_held());
    }

    #[test]
    fn several_buyers_are_judged_each_on_their_own() {
        // Five buyers with two orders each, two of them over the limit of 2 units.
        let mut history = Vec::new();
        let mut orders = Vec::new();
        for b in 0..5u32 {
            let buyer = format!("buyer-{b}");
            let quantity = if b % 2 == 1 { 2 } else { 1 };
            for r in 0..2u32 {
                let key = format!("k{b}-{r}");
                let id = format!("o{b}-{r}");
                let seq = u64::from(b * 2 + r);
                history.push(ok_by(seq, &buyer, &key, quantity, &id));
                orders.push(owned(&id, &buyer, &key, quantity, b * 2 + r));
            }
        }
        let ledger = ledger(orders, None);
        let result = run(&history, &ledger, rules(Some(2), Some(2)));
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result
                .summary
                .starts_with("2 buyers exceed the limit of 2 units and 2 orders"),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(order_ids(&cx), ["o1-0", "o1-1", "o3-0", "o3-1"]);
        assert_eq!(attempt_seqs(&cx), [2, 3, 6, 7]);
        assert!(
            cx.explanation
                .contains("buyer buyer-1 holds 4 units in 2 orders")
        );
        // With room for 4 units everyone holds.
        assert!(run(&history, &ledger, rules(Some(4), Some(2))).is_held());
    }

    #[test]
    fn ok_answers_naming_the_same_order_count_it_once() {
        // A timed-out request retried twice, both retries answered with the one order it made.
        let mut first_retry = ok_by(1, "b-a", "a1", 2, "o1");
        first_retry.try_number = 1;
        let mut second_retry = ok_by(2, "b-a", "a1", 2, "o1");
        second_retry.try_number = 2;
        let history = vec![by("b-a", unknown(0, "a1", 2)), first_retry, second_retry];
        let ledger = ledger(vec![owned("o1", "b-a", "a1", 2, 1)], None);
        let result = run(&history, &ledger, rules(Some(2), Some(1)));
        assert!(result.is_held(), "{result:?}");
        assert!(
            result
                .summary
                .ends_with("at most 2 units and 1 orders acknowledged to one buyer"),
            "{}",
            result.summary
        );

        // Told about a second order that never landed: the acknowledgements are over the limit
        // although the ledger is not.
        let mut history = history;
        history.push(ok_by(3, "b-a", "a2", 1, "o-ghost"));
        let result = run(&history, &ledger, rules(Some(2), Some(1)));
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result.summary.starts_with(
                "1 buyers exceed the limit of 2 units and 1 order per buyer (0 in the ledger, 1 \
                 in what they were acknowledged)"
            ),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_keyless_target_is_judged_the_same_way() {
        let history = vec![
            ok_by(0, "b-a", "label-0", 1, "o1"),
            ok_by(1, "b-a", "label-1", 1, "o2"),
        ];
        let ledger = ledger(
            vec![
                keyless_order("o1", "b-a", 1, 1),
                keyless_order("o2", "b-a", 1, 2),
            ],
            None,
        );
        let keyless = TargetRules {
            keys_sent: false,
            ..rules(None, Some(1))
        };
        let result = run(&history, &ledger, keyless);
        assert_eq!(result.verdict, Verdict::Violated, "{result:?}");
    }

    #[test]
    fn a_holding_exceeds_a_limit_only_beyond_it() {
        let mut holding = Holding::default();
        holding.add(2);
        holding.add(3);
        assert_eq!(
            holding,
            Holding {
                units: 5,
                orders: 2
            }
        );
        assert!(holding.exceeds(&rules(Some(4), None)));
        assert!(!holding.exceeds(&rules(Some(5), Some(2))));
        assert!(holding.exceeds(&rules(None, Some(1))));
    }
}
