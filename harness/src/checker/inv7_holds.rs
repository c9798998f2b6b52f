//! INV-7 Holds are honoured and bounded: cart holds (issue 15) neither oversell nor strand.
//!
//! Judged only when the scenario has buyer journeys (`[journeys]`): otherwise INV-7 is not in
//! the report (like INV-9 without a per-buyer limit). A target whose profile has no `[holds]`
//! (no holds export) is **not checked**, never held.
//!
//! Times: the server's RFC 3339 times (`created_at`, `expires_at`, `ended_at`, an order's
//! `created_at`) are placed on the history's clock through the run's clock origin. Where a rule
//! compares the harness's clock with the server's, it allows [`SKEW`] (250 ms) either way for
//! clock skew between the two machines; rules that compare server times with server times
//! allow nothing.
//!
//! The contract, rule by rule:
//!
//! 1. **Bounded** (limited sale): at every inventory sample, `units_in_orders +
//!    units_in_live_holds <= cap`; and at every instant of the export's intervals — each order
//!    from its `created_at`, each hold from its `created_at` until it stopped being live (the
//!    earliest of its `ended_at`, its `expires_at` and, for a checked-out hold, its order's
//!    `created_at`) — the units in orders plus in held slots stay within the cap. A due hold
//!    holds nothing: a server that reaps it only when a claim needs its units writes its
//!    `ended_at` after that claim's order.
//! 2. **Honoured**: a checkout answered before its hold's `expires_at` (as the reserve answered
//!    it) minus [`SKEW`] was decided while the hold was live, so it must succeed or be `unknown`;
//!    a refusal other than `buyer_limit_reached`, `sale_not_live` or `idempotency_key_reused`
//!    (the harness reused the key, `buyers.reused_keys`) breaks it. (Answered, not
//!    merely sent: the server decides somewhere between the two, and a checkout sent a moment
//!    before expiry may rightly find it expired.)
//! 3. **No late checkout**: no checkout sent after `expires_at` plus [`SKEW`] succeeded; and in
//!    the export (server times only) no hold was checked out after its `expires_at`, and no
//!    checked-out hold's order was created after it.
//! 4. **Returned at the end**: once every hold has expired (the harness waits for the latest
//!    `expires_at` before its final reads), the settled view counts no units in live holds (the
//!    contract's `units_in_live_holds` counts holds live and not past expiry); and a buy sent
//!    after the last hold that did not become an order gave its units back (its `ended_at`, or
//!    its `expires_at` while it is still stored `live`: the contract lets a server reap a due
//!    hold when a claim needs its units), plus [`SKEW`], that was refused `sold_out` for
//!    `q <= left` units (left = cap - units in orders at the end) shows units stranded in holds
//!    that never came back. A hold stored `live` past its expiry is not itself a violation.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CheckInput, Counterexample, InvariantResult, seconds};
use crate::ground_truth::{LedgerHold, LedgerOrder};
use crate::history::{Attempt, HoldAttempt, HoldOp, Outcome, SOLD_OUT};

pub(super) const ID: &str = "INV-7";
const NAME: &str = "holds honoured, bounded";

/// Clock skew allowed between the harness and the server, each way (µs).
pub const SKEW: i64 = 250_000;

/// What INV-7 reads beyond the history and the ledger.
#[derive(Debug, Clone, Copy)]
pub struct HoldsInput<'a> {
    /// Every hold operation of the journeys (`holds.jsonl`).
    pub ops: &'a [HoldAttempt],
    /// The holds export; `None` when the target has none (INV-7 not checked).
    pub exported: Option<&'a [LedgerHold]>,
    /// The wall-clock time of the history's origin, to place the server's times on its clock.
    pub clock_origin_at: OffsetDateTime,
    /// When the settled view was read (µs on the history's clock), if it was.
    pub final_read_us: Option<u64>,
}

impl HoldsInput<'_> {
    fn on_clock(&self, at: &str) -> Option<i64> {
        let at = OffsetDateTime::parse(at, &Rfc3339).ok()?;
        Some((at - self.clock_origin_at).whole_microseconds() as i64)
    }
}

/// `None` when the scenario has no journeys (INV-7 is not in the report).
pub(super) fn check(input: &CheckInput) -> Option<InvariantResult> {
    let holds = input.holds?;
    let Some(exported) = holds.exported else {
        return Some(InvariantResult::not_checked(
            NAME,
            "the target exports no holds (its profile has no [holds]): the journeys' buyers \
             bought at once, and nothing about holds could be judged"
                .to_owned(),
        ));
    };
    Some(judge(input, &holds, exported))
}

fn judge(input: &CheckInput, holds: &HoldsInput, exported: &[LedgerHold]) -> InvariantResult {
    let mut problems: Vec<String> = Vec::new();
    let mut orders: Vec<&LedgerOrder> = Vec::new();
    let mut attempts: Vec<&Attempt> = Vec::new();
    let by_seq = |seq: Option<u64>| seq.and_then(|s| input.history.iter().find(|a| a.seq == s));
    let order_of = |id: &str| input.ledger.orders.iter().find(|o| o.order_id == id);

    // Rule 1: bounded.
    let mut samples_judged = 0;
    if let Some(cap) = input.cap {
        let over: Vec<String> = input
            .samples
            .iter()
            .filter_map(|s| Some((s.at_us, s.units_in_orders?, s.units_in_live_holds?)))
            .inspect(|_| samples_judged += 1)
            .filter(|(_, o, h)| (o + h) as u64 > cap)
            .map(|(at, o, h)| format!("{o} in orders + {h} in live holds at {}", seconds(at)))
            .collect();
        if !over.is_empty() {
            problems.push(format!(
                "{} inventory samples exceed the cap of {cap} counting live holds: {}",
                over.len(),
                over.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        if let Some((at, units)) = peak(input, holds, exported).filter(|(_, u)| *u > cap) {
            problems.push(format!(
                "the export's orders and live holds held {units} units at {} (cap {cap})",
                seconds(at.max(0) as u64)
            ));
        }
    }

    // The expiry of each hold as the reserve answered it, else as exported.
    let expiry = |hold_id: &str| -> Option<i64> {
        holds
            .ops
            .iter()
            .filter(|op| op.kind == HoldOp::Reserve && op.hold_id.as_deref() == Some(hold_id))
            .find_map(|op| op.expires_at.as_deref())
            .or_else(|| {
                exported
                    .iter()
                    .find(|h| h.hold_id == hold_id)
                    .map(|h| h.expires_at.as_str())
            })
            .and_then(|at| holds.on_clock(at))
    };

    // Rules 2 and 3 on the checkouts the harness sent.
    let checkouts: Vec<&HoldAttempt> = holds
        .ops
        .iter()
        .filter(|op| op.kind == HoldOp::Checkout)
        .collect();
    let (mut refused_live, mut late_ok) = (Vec::new(), Vec::new());
    for op in &checkouts {
        let Some(expires) = op.hold_id.as_deref().and_then(expiry) else {
            continue;
        };
        let code = op.code.as_deref().unwrap_or("no code");
        if op.outcome == Outcome::Rejected
            && (op.completed_us as i64) < expires - SKEW
            && !matches!(
                code,
                "buyer_limit_reached" | "sale_not_live" | "idempotency_key_reused"
            )
        {
            refused_live.push(format!(
                "hold {} refused {code} at {}, {} before it expired",
                op.hold_id.as_deref().unwrap_or("?"),
                seconds(op.completed_us),
                seconds((expires - op.completed_us as i64) as u64)
            ));
            attempts.extend(by_seq(op.attempt_seq));
        }
        if op.outcome == Outcome::Ok && (op.sent_us as i64) > expires + SKEW {
            late_ok.push(format!(
                "hold {} checked out into order {} by a checkout sent at {}, {} after it expired",
                op.hold_id.as_deref().unwrap_or("?"),
                op.order_id.as_deref().unwrap_or("?"),
                seconds(op.sent_us),
                seconds((op.sent_us as i64 - expires) as u64)
            ));
            attempts.extend(by_seq(op.attempt_seq));
            orders.extend(op.order_id.as_deref().and_then(order_of));
        }
    }
    if !refused_live.is_empty() {
        problems.push(format!(
            "{} checkouts of live holds were refused: {}",
            refused_live.len(),
            refused_live
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !late_ok.is_empty() {
        problems.push(format!(
            "{} checkouts of expired holds succeeded: {}",
            late_ok.len(),
            late_ok
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    // Rule 3 on the export alone (server times only).
    let mut late_in_export = Vec::new();
    for hold in exported.iter().filter(|h| h.state == "checked_out") {
        let expires = holds.on_clock(&hold.expires_at);
        let order = hold.order_id.as_deref().and_then(order_of);
        let ended = hold.ended_at.as_deref().and_then(|t| holds.on_clock(t));
        let made = order.and_then(|o| holds.on_clock(&o.created_at));
        if let Some(expires) = expires
            && (ended.is_some_and(|e| e > expires) || made.is_some_and(|m| m > expires))
        {
            late_in_export.push(format!(
                "hold {} (expires_at {}) checked out at {}",
                hold.hold_id,
                hold.expires_at,
                hold.ended_at.as_deref().unwrap_or("?")
            ));
            orders.extend(order);
        }
    }
    if !late_in_export.is_empty() {
        problems.push(format!(
            "{} holds were checked out after they expired (the export's own times): {}",
            late_in_export.len(),
            late_in_export
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }

    // Rule 4: returned at the end.
    let last_expiry = exported
        .iter()
        .filter_map(|h| holds.on_clock(&h.expires_at))
        .max();
    let all_expired_at_read = match (last_expiry, holds.final_read_us) {
        (Some(last), Some(read)) => last + SKEW < read as i64,
        _ => false,
    };
    if all_expired_at_read
        && let Some(settled) = input.settled
        && let Some(held) = settled.view.units_in_live_holds.filter(|h| *h > 0)
    {
        problems.push(format!(
            "every hold had expired, yet the settled view still counts {held} units in live \
             holds ({} ms after the last answer)",
            settled.waited_ms
        ));
    }
    let mut stranded_note = String::from("no buy after the last return to judge");
    if let Some(cap) = input.cap {
        let last_return = exported
            .iter()
            .filter(|h| h.state != "checked_out")
            .filter_map(|h| {
                h.ended_at
                    .as_deref()
                    .or(Some(h.expires_at.as_str()))
                    .and_then(|t| holds.on_clock(t))
            })
            .max();
        let left = cap.saturating_sub(input.ledger.persisted_units());
        if let Some(returned) = last_return {
            let after: Vec<&Attempt> = input
                .history
                .iter()
                .filter(|a| a.sent_us as i64 > returned + SKEW)
                .collect();
            let stranded: Vec<&Attempt> = after
                .iter()
                .copied()
                .filter(|a| {
                    a.outcome == Outcome::Rejected
                        && a.code.as_deref() == Some(SOLD_OUT)
                        && u64::from(a.quantity) <= left
                })
                .collect();
            stranded_note = format!(
                "{} buys sent after the last hold returned its units at {}",
                after.len(),
                seconds(returned.max(0) as u64)
            );
            if !stranded.is_empty() {
                problems.push(format!(
                    "{} buys sent after every released or expired hold had returned its units \
                     were refused sold_out while {left} units stayed unsold: units stranded in \
                     holds never came back",
                    stranded.len()
                ));
                attempts.extend(stranded);
            }
        }
    }

    let count = |state: &str| exported.iter().filter(|h| h.state == state).count();
    let summary = format!(
        "{} holds exported ({} checked out, {} released, {} expired, {} live); {} checkouts sent; \
         {samples_judged} samples with live holds judged; {stranded_note}; clock skew allowed \
         {} ms",
        exported.len(),
        count("checked_out"),
        count("released"),
        count("expired"),
        count("live"),
        checkouts.len(),
        SKEW / 1000
    );
    if problems.is_empty() {
        InvariantResult::held(NAME, summary)
    } else {
        InvariantResult::violated(
            NAME,
            summary,
            Counterexample::new(problems.join("\n"), orders, attempts),
        )
    }
}

/// The most units the export's orders and live holds held at once, and when (µs on the
/// history's clock): a sweep over their intervals, units given back before units taken at the
/// same instant.
fn peak(input: &CheckInput, holds: &HoldsInput, exported: &[LedgerHold]) -> Option<(i64, u64)> {
    let mut events: Vec<(i64, i64)> = Vec::new();
    for order in &input.ledger.orders {
        events.push((
            holds.on_clock(&order.created_at)?,
            i64::from(order.quantity),
        ));
    }
    for hold in exported {
        let q = i64::from(hold.quantity);
        events.push((holds.on_clock(&hold.created_at)?, q));
        let ended = hold.ended_at.as_deref().and_then(|t| holds.on_clock(t));
        let ordered = hold
            .order_id
            .as_deref()
            .and_then(|id| input.ledger.orders.iter().find(|o| o.order_id == id))
            .and_then(|o| holds.on_clock(&o.created_at));
        // A due hold holds nothing: the contract frees its units at `expires_at`, and a server
        // that reaps it only when a claim needs those units stamps its `ended_at` after that
        // claim's order.
        let expires = holds.on_clock(&hold.expires_at);
        if let Some(end) = [ended, ordered, expires].into_iter().flatten().min() {
            events.push((end, -q));
        }
    }
    events.sort();
    let (mut units, mut best) = (0i64, None::<(i64, u64)>);
    for (at, delta) in events {
        units += delta;
        if best.is_none_or(|(_, b)| units.max(0) as u64 > b) {
            best = Some((at, units.max(0) as u64));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ledger, ok, order, rejected};
    use super::*;
    use crate::ground_truth::{InventoryView, Ledger, SettledInventory};
    use crate::history::InventorySample;
    use time::macros::datetime;

    const ORIGIN: OffsetDateTime = datetime!(2026-11-26 10:00:00 UTC);

    /// RFC 3339 of `ms` milliseconds after the origin.
    fn at(ms: i64) -> String {
        (ORIGIN + time::Duration::milliseconds(ms))
            .format(&Rfc3339)
            .unwrap()
    }

    fn hold(
        id: &str,
        q: u32,
        state: &str,
        created: i64,
        expires: i64,
        ended: Option<i64>,
    ) -> LedgerHold {
        LedgerHold {
            hold_id: id.to_owned(),
            buyer_id: format!("b-{id}"),
            quantity: q,
            state: state.to_owned(),
            created_at: at(created),
            expires_at: at(expires),
            ended_at: ended.map(at),
            order_id: None,
        }
    }

    fn op(kind: HoldOp, hold_id: &str, sent_ms: u64, outcome: Outcome) -> HoldAttempt {
        HoldAttempt {
            kind,
            buyer: format!("b-{hold_id}"),
            idempotency_key: Some(hold_id.to_owned()),
            hold_id: Some(hold_id.to_owned()),
            quantity: 1,
            try_number: 0,
            sent_us: sent_ms * 1000,
            completed_us: sent_ms * 1000 + 5_000,
            outcome,
            status: None,
            code: None,
            expires_at: None,
            state: None,
            order_id: None,
            attempt_seq: None,
        }
    }

    fn order_at(id: &str, key: &str, ms: i64) -> LedgerOrder {
        LedgerOrder {
            created_at: at(ms),
            ..order(id, key, 1, 0)
        }
    }

    struct World {
        history: Vec<Attempt>,
        ledger: Ledger,
        ops: Vec<HoldAttempt>,
        exported: Vec<LedgerHold>,
        samples: Vec<InventorySample>,
        settled: Option<SettledInventory>,
        final_read_ms: u64,
    }

    impl World {
        fn check(&self, cap: u64) -> InvariantResult {
            let input = CheckInput {
                samples: &self.samples,
                settled: self.settled.as_ref(),
                holds: Some(HoldsInput {
                    ops: &self.ops,
                    exported: Some(&self.exported),
                    clock_origin_at: ORIGIN,
                    final_read_us: Some(self.final_read_ms * 1000),
                }),
                ..CheckInput::new(&self.history, &self.ledger, Some(cap))
            };
            check(&input).expect("journeys put INV-7 in the report")
        }
    }

    /// Cap 2: hold h1 checked out into o1 at 500 ms; hold h2 abandoned, expired at 1,000 ms and
    /// reaped at 1,100 ms; buyer k3 then buys its unit at 1,200 ms.
    fn healthy() -> World {
        let mut h1 = hold("h1", 1, "checked_out", 0, 1_000, Some(500));
        h1.order_id = Some("o1".into());
        let h2 = hold("h2", 1, "expired", 10, 1_000, Some(1_100));
        let mut reserve1 = op(HoldOp::Reserve, "h1", 0, Outcome::Ok);
        reserve1.expires_at = Some(at(1_000));
        let mut checkout1 = op(HoldOp::Checkout, "h1", 495, Outcome::Ok);
        checkout1.order_id = Some("o1".into());
        let mut reserve2 = op(HoldOp::Reserve, "h2", 10, Outcome::Ok);
        reserve2.expires_at = Some(at(1_000));
        let mut buy = ok(1, "k3", 1, "o2");
        buy.sent_us = 1_200_000;
        World {
            history: vec![ok(0, "h1", 1, "o1"), buy],
            ledger: ledger(
                vec![order_at("o1", "h1", 500), order_at("o2", "k3", 1_200)],
                None,
            ),
            ops: vec![reserve1, checkout1, reserve2],
            exported: vec![h1, h2],
            samples: vec![InventorySample {
                at_us: 300_000,
                units_in_orders: Some(0),
                quantity_sold: None,
                redis_counter: None,
                units_in_live_holds: Some(2),
                error: None,
            }],
            settled: Some(SettledInventory {
                view: InventoryView {
                    cap: Some(2),
                    redis_counter: Some(2),
                    quantity_sold: Some(2),
                    units_in_orders: 2,
                    units_in_live_holds: Some(0),
                },
                waited_ms: 0,
            }),
            final_read_ms: 2_000,
        }
    }

    #[test]
    fn a_healthy_run_holds() {
        let result = healthy().check(2);
        assert!(result.is_held(), "{result:?}");
        assert!(
            result
                .summary
                .contains("2 holds exported (1 checked out, 0 released, 1 expired, 0 live)"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_checkout_after_expiry_that_succeeded_is_caught() {
        let mut w = healthy();
        // h1 checked out at 1,500 ms, 500 ms after it expired, by a checkout sent at 1,490 ms.
        w.exported[0].ended_at = Some(at(1_500));
        w.ledger.orders[0].created_at = at(1_500);
        w.ops[1].sent_us = 1_490_000;
        let result = w.check(2);
        assert!(result.is_violated(), "{result:?}");
        let cx = result.counterexample.unwrap();
        assert!(
            cx.explanation
                .contains("checkouts of expired holds succeeded"),
            "{}",
            cx.explanation
        );
        assert!(
            cx.explanation.contains("checked out after they expired"),
            "{}",
            cx.explanation
        );
        assert_eq!(cx.orders[0].order_id, "o1");
    }

    #[test]
    fn units_over_the_cap_counting_live_holds_are_caught() {
        let mut w = healthy();
        w.samples[0].units_in_orders = Some(1);
        // A third live hold beside the cap of 2, overlapping h1 and h2.
        w.exported
            .push(hold("h3", 1, "released", 20, 1_000, Some(400)));
        let result = w.check(2);
        assert!(result.is_violated(), "{result:?}");
        let cx = result.counterexample.unwrap().explanation;
        assert!(
            cx.contains("1 inventory samples exceed the cap of 2"),
            "{cx}"
        );
        assert!(cx.contains("held 3 units at"), "{cx}");
    }

    /// A server may reap a due hold only when a claim needs its units: the claim's order is then
    /// created after the hold's `expires_at` but before its `ended_at`. Seen under load in a
    /// `verify` campaign on the correct server (reaped 1-10 ms late); it is no overlap. The
    /// same order a moment before the expiry is one.
    #[test]
    fn a_due_hold_reaped_after_the_order_that_took_its_unit_is_no_overlap() {
        let mut w = healthy();
        // o2 (k3's buy) created at 1,050 ms: h2 expired at 1,000 ms, reaped at 1,100 ms.
        w.ledger.orders[1].created_at = at(1_050);
        let result = w.check(2);
        assert!(result.is_held(), "{result:?}");

        // o2 at 950 ms, while h2 was still live: three units on a cap of 2.
        w.ledger.orders[1].created_at = at(950);
        let result = w.check(2);
        assert!(result.is_violated(), "{result:?}");
        let cx = result.counterexample.unwrap().explanation;
        assert!(cx.contains("held 3 units at 0.950 s"), "{cx}");
    }

    #[test]
    fn stranded_units_never_returned_are_caught() {
        let mut w = healthy();
        // h2's unit never comes back: the late buyer is told sold out, one unit stays unsold.
        w.history[1] = rejected(1, "k3", 1, SOLD_OUT);
        w.history[1].sent_us = 1_400_000;
        w.ledger.orders.pop();
        w.exported[1].state = "live".into();
        w.exported[1].ended_at = None;
        w.settled.as_mut().unwrap().view.units_in_live_holds = Some(1);
        let result = w.check(2);
        assert!(result.is_violated(), "{result:?}");
        let cx = result.counterexample.unwrap();
        assert!(
            cx.explanation
                .contains("units stranded in holds never came back"),
            "{}",
            cx.explanation
        );
        assert!(
            cx.explanation
                .contains("still counts 1 units in live holds"),
            "{}",
            cx.explanation
        );
        assert_eq!(cx.attempts[0].idempotency_key, "k3");
    }

    #[test]
    fn a_live_hold_refused_at_checkout_is_caught_but_one_near_expiry_is_not() {
        let mut w = healthy();
        w.ops[1].outcome = Outcome::Rejected;
        w.ops[1].code = Some("hold_expired".into());
        let result = w.check(2);
        assert!(result.is_violated(), "{result:?}");
        assert!(
            result
                .counterexample
                .unwrap()
                .explanation
                .contains("checkouts of live holds were refused"),
        );
        // Answered 100 ms before expiry: within the skew allowed, not judged.
        w.ops[1].sent_us = 890_000;
        w.ops[1].completed_us = 900_000;
        assert!(w.check(2).is_held());
    }

    #[test]
    fn a_target_without_a_holds_export_is_not_checked_and_no_journeys_is_not_reported() {
        let w = healthy();
        let input = CheckInput {
            holds: Some(HoldsInput {
                ops: &w.ops,
                exported: None,
                clock_origin_at: ORIGIN,
                final_read_us: None,
            }),
            ..CheckInput::new(&w.history, &w.ledger, Some(2))
        };
        let result = check(&input).unwrap();
        assert_eq!(result.verdict, super::super::Verdict::NotChecked);
        assert!(check(&CheckInput::new(&w.history, &w.ledger, Some(2))).is_none());
    }
}
