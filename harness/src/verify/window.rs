//! The sale-window rule (HAZ-13), judged by `flashsale verify`'s window-edges check: no buy is
//! acknowledged, and no order made, for an attempt answered before the sale opened or sent after
//! it closed.

use std::collections::HashMap;

use crate::ground_truth::Ledger;
use crate::history::{Attempt, Outcome};
use crate::run::SaleWindow;

/// Name under which a breach is reported (docs/hazards.md).
pub const HAZ_13: &str = "HAZ-13";

/// Slack for the two clocks (the harness's and the server's) and for the time a request spends
/// between the harness's timestamps and the server's own reading of the clock: an attempt counts
/// as "before the opening" only if its answer came back more than this before the sale opened,
/// and as "after the close" only if it left more than this after the sale closed.
pub const CLOCK_MARGIN_US: i64 = 50_000;

/// A breach of the window rule: what happened, and the attempts (at most a few) that show it.
#[derive(Debug, Clone)]
pub struct WindowBreach {
    pub explanation: String,
    pub attempts: Vec<Attempt>,
}

/// Judges one run's history and ledger against the sale's window.
pub fn judge(history: &[Attempt], ledger: &Ledger, window: SaleWindow) -> Option<WindowBreach> {
    let answered_before_open = |a: &Attempt| {
        a.status.is_some() && (a.completed_us as i64) < window.opens_at_us - CLOCK_MARGIN_US
    };
    let sent_after_close = |a: &Attempt| (a.sent_us as i64) > window.closes_at_us + CLOCK_MARGIN_US;
    let outside = |a: &Attempt| answered_before_open(a) || sent_after_close(a);

    let acked_outside: Vec<&Attempt> = history
        .iter()
        .filter(|a| a.outcome == Outcome::Ok && outside(a))
        .collect();
    let mut by_key: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for attempt in history {
        by_key
            .entry(attempt.idempotency_key.as_str())
            .or_default()
            .push(attempt);
    }
    // An order whose every attempt was answered before the opening or sent after the close.
    let orders_outside: Vec<&str> = ledger
        .orders
        .iter()
        .filter(|o| {
            by_key
                .get(o.idempotency_key.as_str())
                .is_some_and(|attempts| attempts.iter().all(|a| outside(a)))
        })
        .map(|o| o.order_id.as_str())
        .collect();
    if acked_outside.is_empty() && orders_outside.is_empty() {
        return None;
    }
    let ms = |us: i64| us as f64 / 1000.0;
    let explanation = format!(
        "sale open from {:.1} ms to {:.1} ms on the run's clock (margin {} ms): {} attempt(s) \
         acknowledged outside that window, {} order(s) made only by attempts outside it{}",
        ms(window.opens_at_us),
        ms(window.closes_at_us),
        CLOCK_MARGIN_US / 1000,
        acked_outside.len(),
        orders_outside.len(),
        match orders_outside.first() {
            Some(id) => format!(" (first: order {id})"),
            None => String::new(),
        }
    );
    let mut attempts: Vec<Attempt> = acked_outside.into_iter().take(5).cloned().collect();
    if attempts.is_empty() {
        attempts = orders_outside
            .iter()
            .filter_map(|id| ledger.orders.iter().find(|o| o.order_id == *id))
            .filter_map(|o| by_key.get(o.idempotency_key.as_str()))
            .flat_map(|a| a.iter().map(|a| (*a).clone()))
            .take(5)
            .collect();
    }
    Some(WindowBreach {
        explanation,
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground_truth::{InventoryView, LedgerOrder};
    use crate::history::Code;

    fn attempt(key: &str, sent_ms: u64, done_ms: u64, outcome: Outcome) -> Attempt {
        Attempt {
            seq: 0,
            buyer: key.to_owned(),
            idempotency_key: key.to_owned(),
            quantity: 1,
            try_number: 0,
            intended_us: sent_ms * 1000,
            sent_us: sent_ms * 1000,
            completed_us: done_ms * 1000,
            outcome,
            status: Some(if outcome == Outcome::Ok { 201 } else { 409 }),
            code: (outcome != Outcome::Ok).then(|| Code::new("sale_not_live")),
            order_id: (outcome == Outcome::Ok).then(|| format!("o-{key}")),
        }
    }

    fn ledger(keys: &[&str]) -> Ledger {
        Ledger {
            orders: keys
                .iter()
                .map(|k| LedgerOrder {
                    order_id: format!("o-{k}"),
                    buyer_id: (*k).to_owned(),
                    quantity: 1,
                    idempotency_key: (*k).to_owned(),
                    decided_by: "redis".into(),
                    created_at: "2026-01-01T00:00:00Z".into(),
                })
                .collect(),
            inventory: InventoryView {
                cap: None,
                redis_counter: None,
                quantity_sold: Some(keys.len() as i64),
                units_in_orders: keys.len() as i64,
                units_in_live_holds: None,
            },
        }
    }

    const WINDOW: SaleWindow = SaleWindow {
        opens_at_us: 500_000,
        closes_at_us: 800_000,
    };

    #[test]
    fn buys_inside_the_window_and_refusals_outside_it_hold() {
        let history = [
            attempt("a", 100, 102, Outcome::Rejected),
            attempt("b", 460, 470, Outcome::Ok),
            attempt("c", 600, 601, Outcome::Ok),
            attempt("d", 840, 841, Outcome::Ok),
            attempt("e", 900, 901, Outcome::Rejected),
        ];
        assert!(judge(&history, &ledger(&["b", "c", "d"]), WINDOW).is_none());
    }

    #[test]
    fn an_ack_before_the_opening_or_after_the_close_is_a_breach() {
        let early = [attempt("a", 100, 102, Outcome::Ok)];
        let breach = judge(&early, &ledger(&["a"]), WINDOW).unwrap();
        assert!(breach.explanation.contains("1 attempt(s)"), "{breach:?}");
        let late = [attempt("z", 900, 901, Outcome::Ok)];
        assert!(judge(&late, &ledger(&[]), WINDOW).is_some());
    }

    #[test]
    fn an_order_for_a_refused_attempt_after_the_close_is_a_breach() {
        let history = [attempt("z", 900, 901, Outcome::Rejected)];
        let breach = judge(&history, &ledger(&["z"]), WINDOW).unwrap();
        assert!(breach.explanation.contains("1 order(s)"), "{breach:?}");
        assert_eq!(breach.attempts.len(), 1);
    }
}
