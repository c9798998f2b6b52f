//! INV-5 Exactly the cap: a limited sale strands no units.
//!
//! Let `left` be the cap minus the units in persisted orders (0 if the sale oversold; that is
//! INV-1's business). A *request* is one idempotency key and its retries; for a target that takes
//! no keys, one of the harness's labels (which its retries share). Call a request *eligible* when
//! none of its attempts was rejected for a reason other than `sold_out` (a request refused as
//! invalid, over the per-buyer limit, rate limited, … never competed for units); the *eligible
//! demand* is the quantity of each eligible request counted once (its first attempt's). A request
//! *holds an order* when its key holds one in the ledger; for a keyless target, whose orders
//! carry no key, when one of its `ok` answers names an order in the ledger. An order that a
//! timed-out attempt made without any answer naming it is then missed; that can only excuse the
//! sale: such a request has an attempt in doubt, and no rule holds a request in doubt against
//! the sale.
//!
//! # Per-buyer limits
//!
//! With a per-buyer limit ([`super::TargetRules`]: units and/or orders per buyer), a buyer cannot
//! buy everything they ask for, and units left over beside such a buyer are not stranded. Each
//! rule below is judged against what each buyer holds at the end (from the ledger). A buyer's
//! holdings only grow, so a request that does not fit beside the final holdings (`held + q >`
//! the units limit, or as many orders as the orders limit) was not one the sale could still
//! have sold them:
//!
//! - its refusal, `sold_out` or any other, is not a false sold-out;
//! - it is not demand: a request without an order counts only while it still fits, the buyer's
//!   such requests taken in the order they were sent from their final holdings, so a buyer's
//!   demand is what they hold plus what the limit still lets them buy;
//! - it is not waiting, and it does not make the sale unfinished (rule 2's "every eligible
//!   request holds an order" passes over it).
//!
//! Conversely a buyer below their limit is owed what fits: a `sold_out` to their third request
//! while enough units stay unsold is a false sold-out (underselling), as it is without a limit.
//! Whether the limit itself was kept is INV-9's business. A sale without a per-buyer limit is
//! judged exactly as before limits existed.
//!
//! # No-fault form (no fault was applied)
//!
//! Both rules rely on nothing handing units back during the run, so that the units available
//! never grow:
//!
//! 1. **No false sold-out.** An attempt rejected `sold_out` for `q` units was told that fewer
//!    than `q` units remained. Units only ever decrease, so at the end `left < q` must hold; a
//!    sold-out answer while `left >= q` units are still unsold means units were stranded (for
//!    example claimed in Redis by an order that never landed).
//! 2. **The sale sells out when demand allows.** When no attempt ended `unknown` (nothing is in
//!    doubt) and the eligible demand is at least the cap, then `left` must be smaller than the
//!    smallest eligible request that holds no order (and fits its buyer's limit), or zero when
//!    every eligible request holds one. For quantity 1 this is "units sold = cap"; for larger quantities it allows the
//!    remainder that no waiting request fits into.
//!
//! # Fault-aware form (at least one fault was applied)
//!
//! INV-5 (docs/invariants.md): once faults heal and buyers keep coming, the sale still sells out
//! exactly. While a fault lasts, and while the server recovers from it, a correct server may turn
//! buyers away (a claim granted by Redis whose order write failed is handed back only later),
//! and attempts end `unknown`; none of that is judged. Only what happened once every fault had healed is:
//! `healed_at` is the latest `ended_us` of the applied faults, and an attempt is *after healing*
//! when its `sent_us >= healed_at`.
//!
//! - **A fault never healed** (`ended_us` is `None`): healing never happened, so neither rule is
//!   judged and the summary says so. INV-1..INV-4 still hold the server to account.
//! 1. **No false sold-out after healing.** Rule 1 above, for the sold-out answers to attempts
//!    sent after healing. It assumes that a healed server hands back whatever a fault stranded
//!    before it answers again, so that after healing units only decrease.
//! 2. **Sells out when demand continues after healing.** Required when some eligible request
//!    sent an attempt after healing (demand continued), no attempt sent after healing ended
//!    `unknown`, and the eligible demand over the whole run is at least the cap. The *waiting*
//!    requests are the eligible requests that sent an attempt after healing and hold no order
//!    (for each, its first attempt after healing is shown). Then `left` must be smaller than the
//!    smallest waiting request; when no request waits and every eligible request holds an order,
//!    `left` must be zero (the no-fault rule 2 again). When no request waits but some request
//!    from before healing holds no order (it ended `unknown` or was turned away during the fault and
//!    never asked again), the units left were denied to no one once the faults healed: the
//!    demand stopped, it did not continue, and the sell-out is not required. This keeps the
//!    form sound for a server that, correctly, did not create the order of a timed-out attempt.
//!
//! With `healed_at = 0` the fault-aware rules are exactly the no-fault ones, and both forms are
//! computed by the same code. An unlimited sale holds trivially.

use std::collections::{HashMap, HashSet};

use super::{
    CheckInput, Counterexample, Index, InvariantResult, MAX_SHOWN, MatchBy, TargetRules, seconds,
};
use crate::history::{Attempt, Outcome, SOLD_OUT};

pub(super) const ID: &str = "INV-5";
const NAME: &str = "exactly the cap";

pub(super) fn check(input: &CheckInput, index: &Index) -> InvariantResult {
    let Some(cap) = input.cap else {
        return InvariantResult::held(NAME, "unlimited sale: no cap to reach".to_owned());
    };
    if input.faults.is_empty() {
        return judge(input, index, cap, &Form::NoFault);
    }
    let healed_at = input
        .faults
        .iter()
        .try_fold(0u64, |latest, f| f.ended_us.map(|end| latest.max(end)));
    match healed_at {
        Some(healed_at) => judge(
            input,
            index,
            cap,
            &Form::Healed {
                faults: input.faults.len(),
                healed_at,
            },
        ),
        None => never_healed(input, cap),
    }
}

/// Which form of the invariant a run is judged by.
enum Form {
    NoFault,
    /// Every applied fault healed; the latest healed at `healed_at` (µs).
    Healed {
        faults: usize,
        healed_at: u64,
    },
}

impl Form {
    /// Attempts sent from this instant on are judged.
    fn judged_from(&self) -> u64 {
        match self {
            Form::NoFault => 0,
            Form::Healed { healed_at, .. } => *healed_at,
        }
    }
}

/// A fault that never healed leaves nothing to judge: "not checked", with the figures and why.
fn never_healed(input: &CheckInput, cap: u64) -> InvariantResult {
    let persisted = input.ledger.persisted_units();
    let open: Vec<&str> = input
        .faults
        .iter()
        .filter(|f| f.ended_us.is_none())
        .map(|f| f.kind.as_str())
        .collect();
    let sold_out = input.history.iter().filter(|a| is_sold_out(a)).count();
    InvariantResult::not_checked(
        NAME,
        format!(
            "fault-aware: {} faults, {} never healed; cap {cap}, {persisted} units sold, {} left; \
             {sold_out} sold-out answers; not checked: without healing neither false sold-outs \
             nor the sell-out can be required",
            input.faults.len(),
            open.join(", "),
            cap.saturating_sub(persisted)
        ),
    )
}

fn judge(input: &CheckInput, index: &Index, cap: u64, form: &Form) -> InvariantResult {
    let from = form.judged_from();
    let persisted = input.ledger.persisted_units();
    let left = cap.saturating_sub(persisted);

    let mut sold_out_total = 0usize;
    let mut sold_out_judged: Vec<&Attempt> = Vec::new();
    let mut attempts_judged = 0usize;
    let mut unknown_judged = 0usize;
    for attempt in input.history {
        let judged = attempt.sent_us >= from;
        attempts_judged += usize::from(judged);
        if is_sold_out(attempt) {
            sold_out_total += 1;
            if judged {
                sold_out_judged.push(attempt);
            }
        }
        if judged && attempt.outcome == Outcome::Unknown {
            unknown_judged += 1;
        }
    }
    let limits = Limits::of(input);
    // A sold-out answer to a buyer whose limit left no room for the request refused nothing the
    // buyer could have bought: whatever its code, it is not a false sold-out.
    let (false_sold_out, at_limit): (Vec<&Attempt>, Vec<&Attempt>) = sold_out_judged
        .iter()
        .copied()
        .filter(|a| u64::from(a.quantity) <= left)
        .partition(|a| limits.room(&a.buyer, a.quantity));
    let demand = EligibleDemand::of(index, from, &limits);

    let per_buyer = match limits.rules.described_limits() {
        Some(limit) => format!(
            " within the per-buyer limit of {limit} ({} requests beyond it; {} sold-out answers \
             to buyers it left no room)",
            demand.beyond_limit,
            at_limit.len()
        ),
        None => String::new(),
    };
    let figures = match form {
        Form::NoFault => format!(
            "cap {cap}, {persisted} units sold, {left} left; {sold_out_total} sold-out answers; \
             eligible demand {} units{per_buyer}",
            demand.units
        ),
        Form::Healed { faults, healed_at } => format!(
            "fault-aware: {faults} faults, healed at {}; {attempts_judged} attempts after \
             healing; cap {cap}, {persisted} units sold, {left} left; {} sold-out answers after \
             healing ({sold_out_total} in all); eligible demand {} units{per_buyer}",
            seconds(*healed_at),
            sold_out_judged.len(),
            demand.units
        ),
    };
    let (no_false_sold_out, after) = match form {
        Form::NoFault => ("no false sold-out", ""),
        Form::Healed { .. } => ("no false sold-out after healing", " sent after healing"),
    };

    if !false_sold_out.is_empty() {
        let smallest = false_sold_out.iter().map(|a| a.quantity).min().unwrap_or(0);
        let told = match form {
            Form::NoFault => "were told sold_out".to_owned(),
            Form::Healed { healed_at, .. } => format!(
                "sent after the faults healed at {} were told sold_out",
                seconds(*healed_at)
            ),
        };
        let explanation = format!(
            "{} attempts {told}, yet {left} units were still unsold at the end, enough for a \
             request of {smallest}: units were stranded{}",
            false_sold_out.len(),
            possible_stranders(input, index)
        );
        return InvariantResult::violated(
            NAME,
            figures,
            Counterexample::new(explanation, Vec::new(), false_sold_out),
        );
    }

    // Without faults there is nothing to continue after: every eligible attempt is judged.
    if matches!(form, Form::Healed { .. }) && !demand.continued {
        return InvariantResult::held(
            NAME,
            format!(
                "{figures}; {no_false_sold_out}; sell-out not required because no eligible \
                 request was sent after healing"
            ),
        );
    }
    if unknown_judged > 0 {
        return InvariantResult::held(
            NAME,
            format!(
                "{figures}; {no_false_sold_out}; sell-out not required because {unknown_judged} \
                 attempts{after} ended unknown"
            ),
        );
    }
    if demand.units < u128::from(cap) {
        return InvariantResult::held(
            NAME,
            format!(
                "{figures}; {no_false_sold_out}; demand below the cap, so no sell-out required"
            ),
        );
    }

    let smallest_waiting = demand.waiting.iter().map(|a| a.quantity).min();
    let stranded = match smallest_waiting {
        Some(q) => left >= u64::from(q),
        None => left > 0 && demand.all_served,
    };
    if !stranded {
        let why = match (form, smallest_waiting) {
            (Form::Healed { .. }, None) if left > 0 => format!(
                "every eligible request sent after healing holds an order, so the {left} units \
                 left were denied to no one once the faults healed"
            ),
            _ => format!("the sale sold out as far as the waiting requests{after} allow"),
        };
        return InvariantResult::held(NAME, format!("{figures}; {why}"));
    }
    let waiting: Vec<&Attempt> = demand
        .waiting
        .iter()
        .copied()
        .filter(|a| u64::from(a.quantity) <= left)
        .collect();
    let explanation = match (smallest_waiting, form) {
        (Some(q), Form::NoFault) => format!(
            "eligible demand of {} units met a cap of {cap} with nothing in doubt, yet {left} \
             units were left while {} requests (the smallest for {q}) got no order",
            demand.units,
            waiting.len()
        ),
        (Some(q), Form::Healed { healed_at, .. }) => format!(
            "after the faults healed at {}, eligible demand of {} units met a cap of {cap} with \
             nothing in doubt, yet {left} units were left while {} requests sent after healing \
             (the smallest for {q}) got no order",
            seconds(*healed_at),
            demand.units,
            waiting.len()
        ),
        (None, _) => format!(
            "every eligible request holds an order and eligible demand of {} units meets the cap \
             of {cap}, yet {left} units were left: the orders hold fewer units than were requested",
            demand.units
        ),
    };
    InvariantResult::violated(
        NAME,
        figures,
        Counterexample::new(explanation, Vec::new(), waiting),
    )
}

/// The attempts that could have stranded units: those that ended `unknown` and whose request
/// holds no order (a claim the server may have counted without writing its order), in `seq`
/// order, as a clause for the explanation ("; 2 attempts ended unknown with no order and could
/// have stranded them: seq 4 (key k4, 2 units), …"); empty when there are none.
fn possible_stranders(input: &CheckInput, index: &Index) -> String {
    let served = Served::of(input, index);
    let mut unknown: Vec<&Attempt> = input
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Unknown)
        .filter(|a| !served.label(&a.idempotency_key))
        .collect();
    if unknown.is_empty() {
        return String::new();
    }
    unknown.sort_by_key(|a| a.seq);
    let listed: Vec<String> = unknown
        .iter()
        .take(MAX_SHOWN)
        .map(|a| {
            format!(
                "seq {} (key {}, {} units, sent at {})",
                a.seq,
                a.idempotency_key,
                a.quantity,
                seconds(a.sent_us)
            )
        })
        .collect();
    let more = unknown.len().saturating_sub(MAX_SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "; {} attempts ended unknown with no order and could have stranded them: {}{more}",
        unknown.len(),
        listed.join(", ")
    )
}

/// Which requests (the history's keys; for a keyless target, the harness's labels) hold an order.
enum Served<'i, 'a> {
    /// A target that takes keys: the key holds an order in the ledger.
    ByKey(&'i Index<'a>),
    /// A keyless target's orders carry no key: a request holds an order when one of its `ok`
    /// answers names an order in the ledger. An order made by a timed-out attempt and never
    /// named is not seen, which only ever spares the sale a rule (see the module documentation).
    ByAnswer(HashSet<&'a str>),
}

impl<'i, 'a> Served<'i, 'a> {
    fn of(input: &CheckInput<'a>, index: &'i Index<'a>) -> Self {
        match index.by {
            MatchBy::Key => Served::ByKey(index),
            MatchBy::Buyer => Served::ByAnswer(
                input
                    .history
                    .iter()
                    .filter(|a| a.outcome == Outcome::Ok)
                    .filter(|a| {
                        a.order_id
                            .as_deref()
                            .is_some_and(|id| index.orders_by_id.contains_key(id))
                    })
                    .map(|a| a.idempotency_key.as_str())
                    .collect(),
            ),
        }
    }

    fn label(&self, label: &str) -> bool {
        match self {
            Served::ByKey(index) => index.orders_by_key.contains_key(label),
            Served::ByAnswer(labels) => labels.contains(label),
        }
    }
}

/// The per-buyer limits and what each buyer holds at the end, from the ledger.
struct Limits<'a> {
    rules: TargetRules,
    /// Units and orders per buyer; empty when the sale has no per-buyer limit.
    held: HashMap<&'a str, (u64, u64)>,
}

impl<'a> Limits<'a> {
    fn of(input: &CheckInput<'a>) -> Self {
        let mut held: HashMap<&str, (u64, u64)> = HashMap::new();
        if input.rules.limits_buyers() {
            for order in &input.ledger.orders {
                let (units, orders) = held.entry(order.buyer_id.as_str()).or_default();
                *units += u64::from(order.quantity);
                *orders += 1;
            }
        }
        Limits {
            rules: input.rules,
            held,
        }
    }

    /// Whether `buyer`, holding what the ledger gives them at the end, could also have been sold
    /// `quantity` more; always true on a sale without a per-buyer limit.
    fn room(&self, buyer: &str, quantity: u32) -> bool {
        let (units, orders) = self.held.get(buyer).copied().unwrap_or_default();
        self.rules.room_for(units, orders, quantity)
    }
}

fn is_sold_out(attempt: &Attempt) -> bool {
    attempt.outcome == Outcome::Rejected && attempt.code.as_deref() == Some(SOLD_OUT)
}

/// The demand that competed for units, and the part of it that got nothing.
struct EligibleDemand<'a> {
    /// Sum of the quantity of each eligible request (its first attempt's), as far as its buyer's
    /// limit still let them buy it. Wide enough that a million keys asking for `u32::MAX` units
    /// cannot overflow.
    units: u128,
    /// Whether any eligible request sent an attempt at or after the judged instant.
    continued: bool,
    /// For every eligible request that sent an attempt at or after the judged instant, holds no
    /// order in the ledger and fits its buyer's limit: its first such attempt.
    waiting: Vec<&'a Attempt>,
    /// Whether every eligible request that fits its buyer's limit, whenever it asked, holds an
    /// order.
    all_served: bool,
    /// Eligible requests that hold no order and that their buyer's limit left no room for.
    beyond_limit: usize,
}

impl<'a> EligibleDemand<'a> {
    /// The demand as seen from `from_us` on (0: the whole run).
    ///
    /// A request holding an order counts in full. One holding none counts only when its buyer
    /// could still buy it: without a per-buyer limit always; with one, the buyer's requests
    /// without an order are taken in the order they were sent, starting from what the buyer
    /// holds at the end, each counted while it still fits. A request beyond the limit is not
    /// demand, and it is neither waiting nor a reason to call the sale unfinished.
    fn of(index: &Index<'a>, from_us: u64, limits: &Limits) -> Self {
        let mut demand = EligibleDemand {
            units: 0,
            continued: false,
            waiting: Vec::new(),
            all_served: true,
            beyond_limit: 0,
        };
        // A keyless target may answer two requests with one order (a repeat of "one order per
        // customer"): that order is demand once.
        let mut orders_counted: HashSet<&str> = HashSet::new();
        // With a per-buyer limit: (buyer, first seq, quantity) of the requests that fit it.
        let mut unserved: Vec<(&str, u64, u32)> = Vec::new();
        let limited = limits.rules.limits_buyers();
        for_each_request(index, |attempts| {
            let Some(first) = attempts.first() else {
                return;
            };
            let refused_otherwise = attempts
                .iter()
                .any(|a| a.outcome == Outcome::Rejected && a.code.as_deref() != Some(SOLD_OUT));
            if refused_otherwise {
                return;
            }
            let served = match index.by {
                MatchBy::Key => index
                    .orders_by_key
                    .contains_key(first.idempotency_key.as_str())
                    .then_some(None),
                MatchBy::Buyer => attempts
                    .iter()
                    .filter(|a| a.outcome == Outcome::Ok)
                    .filter_map(|a| a.order_id.as_deref())
                    .find(|id| index.orders_by_id.contains_key(id))
                    .map(Some),
            };
            let room = served.is_some() || limits.room(&first.buyer, first.quantity);
            if !room {
                demand.beyond_limit += 1;
                return;
            }
            match served {
                Some(Some(order_id)) if !orders_counted.insert(order_id) => {}
                Some(_) => demand.units += u128::from(first.quantity),
                None if limited => unserved.push((&first.buyer, first.seq, first.quantity)),
                None => demand.units += u128::from(first.quantity),
            }
            demand.all_served &= served.is_some();
            if let Some(asked) = attempts.iter().find(|a| a.sent_us >= from_us) {
                demand.continued = true;
                if served.is_none() {
                    demand.waiting.push(*asked);
                }
            }
        });
        unserved.sort_unstable();
        for buyer_requests in unserved.chunk_by(|a, b| a.0 == b.0) {
            let (mut units, mut orders) = limits
                .held
                .get(buyer_requests[0].0)
                .copied()
                .unwrap_or_default();
            for &(_, _, quantity) in buyer_requests {
                if limits.rules.room_for(units, orders, quantity) {
                    demand.units += u128::from(quantity);
                    units += u64::from(quantity);
                    orders += 1;
                }
            }
        }
        demand
    }
}

/// Calls `f` with each request's attempts in history order. A request is one key of a target
/// that takes keys (an index group); a keyless target's index groups by buyer, so each group is
/// split by the harness's labels, which a request's retries share.
fn for_each_request<'a>(index: &Index<'a>, mut f: impl FnMut(&[&'a Attempt])) {
    for (_, attempts) in index.attempts_by_key() {
        let label = attempts[0].idempotency_key.as_str();
        if index.by == MatchBy::Key || attempts.iter().all(|a| a.idempotency_key == label) {
            f(attempts);
            continue;
        }
        let mut by_label = attempts.to_vec();
        // Stable: each label's attempts stay in history order.
        by_label.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
        for request in by_label.chunk_by(|a, b| a.idempotency_key == b.idempotency_key) {
            f(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::CheckInput;
    use super::super::fixtures::*;
    use super::*;
    use crate::checker::TargetRules;
    use crate::ground_truth::{Ledger, LedgerOrder};
    use crate::history::FaultRecord;
    use crate::history::SOLD_OUT;

    fn run(history: &[Attempt], ledger: &Ledger, cap: Option<u64>) -> InvariantResult {
        run_with_faults(history, ledger, cap, &[])
    }

    fn run_with_faults(
        history: &[Attempt],
        ledger: &Ledger,
        cap: Option<u64>,
        faults: &[FaultRecord],
    ) -> InvariantResult {
        let input = CheckInput {
            faults,
            ..CheckInput::new(history, ledger, cap)
        };
        check_one(check, &input)
    }

    /// `attempt`, sent at `sent_us`.
    fn sent_at(attempt: Attempt, sent_us: u64) -> Attempt {
        Attempt {
            sent_us,
            completed_us: sent_us + 500,
            ..attempt
        }
    }

    /// Two faults, the later healing at 3.2 s.
    fn healed_faults() -> Vec<FaultRecord> {
        vec![
            fault("kill", 1_000_000, Some(2_000_000)),
            fault("pause", 2_500_000, Some(3_200_000)),
        ]
    }

    const HEALED_AT: u64 = 3_200_000;

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
        assert!(result.is_held(), "{result:?}");
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
        assert!(result.is_violated());
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
        assert!(result.is_held(), "{result:?}");

        // The same sale, but a request for 1 unit was also turned away.
        let mut history = history;
        history.push(rejected(4, "e", 1, SOLD_OUT));
        let orders = vec![
            order("o1", "a", 3, 1),
            order("o2", "b", 3, 2),
            order("o3", "c", 3, 3),
        ];
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(result.is_violated());
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
        assert!(result.is_violated());
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
        assert!(result.is_held(), "{result:?}");
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
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains("1 attempts ended unknown"),
            "{}",
            result.summary
        );

        history.push(rejected(11, "k11", 1, SOLD_OUT));
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(result.is_violated());
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
        assert!(result.is_violated());
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
        assert!(result.is_held());
        assert!(result.summary.starts_with("unlimited sale"));
    }

    #[test]
    fn fault_aware_form_judges_only_sold_out_answers_after_healing() {
        // Cap 10, 8 sold. During the faults two buyers were told sold out (excused); after
        // healing one more was: that one is a false sold-out.
        let (mut history, orders) = sale(8, 0);
        history.push(sent_at(rejected(8, "k8", 1, SOLD_OUT), 1_500_000));
        history.push(sent_at(rejected(9, "k9", 1, SOLD_OUT), HEALED_AT - 1));
        let ledger = ledger(orders, Some(10));
        let result = run_with_faults(&history, &ledger, Some(10), &healed_faults());
        assert!(result.is_held(), "{result:?}");

        history.push(sent_at(rejected(10, "k10", 1, SOLD_OUT), HEALED_AT));
        let result = run_with_faults(&history, &ledger, Some(10), &healed_faults());
        assert!(result.is_violated());
        assert!(
            result.summary.starts_with(
                "fault-aware: 2 faults, healed at 3.200 s; 1 attempts after healing; cap 10, 8 \
                 units sold, 2 left; 1 sold-out answers after healing (3 in all)"
            ),
            "{}",
            result.summary
        );
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [10]);
        assert!(
            cx.explanation.starts_with(
                "1 attempts sent after the faults healed at 3.200 s were told sold_out, yet 2 \
                 units were still unsold"
            ),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn the_same_false_sold_out_without_faults_is_a_violation() {
        // The history of the test above judged in the no-fault form: every sold-out counts.
        let (mut history, orders) = sale(8, 0);
        history.push(sent_at(rejected(8, "k8", 1, SOLD_OUT), 1_500_000));
        let result = run(&history, &ledger(orders, Some(10)), Some(10));
        assert!(result.is_violated());
        assert!(result.summary.starts_with("cap 10, 8 units sold"));
    }

    #[test]
    fn fault_aware_form_requires_the_sell_out_when_demand_continues() {
        // After healing, an ok answer whose order never landed leaves a unit unsold while
        // nothing is in doubt after healing (the unknown attempt was during the fault).
        let (mut history, orders) = sale(9, 0);
        history.push(sent_at(unknown(9, "k9", 1), 1_200_000));
        history.push(sent_at(ok(10, "k10", 1, "o-lost"), HEALED_AT + 10));
        history.push(sent_at(rejected(11, "k11", 1, "not_live"), HEALED_AT + 20));
        let result = run_with_faults(
            &history,
            &ledger(orders, Some(10)),
            Some(10),
            &healed_faults(),
        );
        assert!(result.is_violated());
        let cx = result.counterexample.unwrap();
        assert_eq!(attempt_seqs(&cx), [10], "k9 asked only during the fault");
        assert!(
            cx.explanation.starts_with(
                "after the faults healed at 3.200 s, eligible demand of 11 units met a cap of 10 \
                 with nothing in doubt, yet 1 units were left while 1 requests sent after healing \
                 (the smallest for 1) got no order"
            ),
            "{}",
            cx.explanation
        );
    }

    #[test]
    fn a_retry_after_healing_of_a_timed_out_attempt_is_judged_by_its_retry() {
        let (mut history, orders) = sale(9, 0);
        history.push(sent_at(unknown(9, "k9", 1), 1_200_000));
        let mut retry = sent_at(rejected(10, "k9", 1, SOLD_OUT), HEALED_AT + 5);
        retry.try_number = 1;
        history.push(retry);
        let result = run_with_faults(
            &history,
            &ledger(orders, Some(10)),
            Some(10),
            &healed_faults(),
        );
        assert!(result.is_violated());
        assert_eq!(attempt_seqs(&result.counterexample.unwrap()), [10]);
    }

    #[test]
    fn units_left_by_buyers_who_stopped_asking_during_the_fault_are_not_stranded() {
        // Cap 10: 7 served before the fault, 3 timed out during it (no order was created, which
        // is correct) and never retried, 2 served after healing. 1 unit is left, yet everyone
        // who asked after healing was served: the demand stopped, it did not continue.
        let (mut history, mut orders) = sale(7, 0);
        for i in 7..10u64 {
            history.push(sent_at(unknown(i, &format!("k{i}"), 1), 1_100_000 + i));
        }
        for i in 10..12u64 {
            let key = format!("k{i}");
            history.push(sent_at(ok(i, &key, 1, &format!("o{i}")), HEALED_AT + i));
            orders.push(order(&format!("o{i}"), &key, 1, 40));
        }
        let result = run_with_faults(
            &history,
            &ledger(orders, Some(10)),
            Some(10),
            &healed_faults(),
        );
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.ends_with(
                "every eligible request sent after healing holds an order, so the 1 units left \
                 were denied to no one once the faults healed"
            ),
            "{}",
            result.summary
        );
        assert!(
            result.summary.contains("; 2 attempts after healing;"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn fault_aware_form_holds_when_the_sale_sells_out_after_healing() {
        let (mut history, mut orders) = sale(6, 0);
        history.push(sent_at(unknown(6, "k6", 1), 1_100_000));
        for i in 7..11u64 {
            let key = format!("k{i}");
            history.push(sent_at(ok(i, &key, 1, &format!("o{i}")), HEALED_AT + i));
            orders.push(order(&format!("o{i}"), &key, 1, 40));
        }
        for i in 11..20u64 {
            history.push(sent_at(
                rejected(i, &format!("k{i}"), 1, SOLD_OUT),
                HEALED_AT + i,
            ));
        }
        let result = run_with_faults(
            &history,
            &ledger(orders, Some(10)),
            Some(10),
            &healed_faults(),
        );
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.ends_with(
                "the sale sold out as far as the waiting requests sent after healing allow"
            ),
            "{}",
            result.summary
        );
    }

    #[test]
    fn unknown_attempts_after_healing_waive_the_sell_out() {
        let (mut history, orders) = sale(9, 0);
        history.push(sent_at(ok(9, "k9", 1, "o-lost"), HEALED_AT + 1));
        history.push(sent_at(unknown(10, "k10", 1), HEALED_AT + 2));
        let result = run_with_faults(
            &history,
            &ledger(orders, Some(10)),
            Some(10),
            &healed_faults(),
        );
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.ends_with(
                "no false sold-out after healing; sell-out not required because 1 attempts sent \
                 after healing ended unknown"
            ),
            "{}",
            result.summary
        );
    }

    #[test]
    fn no_demand_after_healing_waives_the_sell_out() {
        let (history, orders) = sale(9, 0);
        let history: Vec<Attempt> = history
            .into_iter()
            .map(|a| sent_at(a, 500_000))
            .chain([sent_at(ok(9, "k9", 1, "o-lost"), 600_000)])
            .collect();
        let result = run_with_faults(
            &history,
            &ledger(orders, Some(10)),
            Some(10),
            &healed_faults(),
        );
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.ends_with(
                "sell-out not required because no eligible request was sent after healing"
            ),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_fault_that_never_healed_judges_nothing() {
        // A sold-out answer with units left, after every fault started: not judged, and said so.
        let (mut history, orders) = sale(8, 0);
        history.push(sent_at(rejected(8, "k8", 1, SOLD_OUT), 9_000_000));
        let faults = [
            fault("latency", 100_000, Some(200_000)),
            fault("kill", 1_000_000, None),
        ];
        let result = run_with_faults(&history, &ledger(orders, Some(10)), Some(10), &faults);
        assert_eq!(
            result.verdict,
            super::super::Verdict::NotChecked,
            "{result:?}"
        );
        assert!(result.counterexample.is_none());
        assert_eq!(
            result.summary,
            "fault-aware: 2 faults, kill never healed; cap 10, 8 units sold, 2 left; 1 sold-out \
             answers; not checked: without healing neither false sold-outs nor the sell-out \
             can be required"
        );
    }

    #[test]
    fn fault_aware_form_still_reports_orders_smaller_than_requested() {
        let history = vec![
            sent_at(ok(0, "a", 2, "o1"), 100),
            sent_at(ok(1, "b", 2, "o2"), HEALED_AT + 1),
        ];
        let orders = vec![order("o1", "a", 1, 1), order("o2", "b", 2, 2)];
        let result = run_with_faults(
            &history,
            &ledger(orders, Some(4)),
            Some(4),
            &healed_faults(),
        );
        assert!(result.is_violated());
        assert!(
            result
                .counterexample
                .unwrap()
                .explanation
                .contains("the orders hold fewer units than were requested")
        );
    }

    #[test]
    fn stranded_units_name_the_unknown_attempts_that_could_have_stranded_them() {
        // Cap 3: one order of 1; a timed-out claim for 2 (no order) stranded two units, and a
        // later buyer of 1 is told sold out with 2 left. An unknown attempt whose key did get
        // its order (k1's retry) stranded nothing and is not named.
        let mut retried = unknown(1, "k1", 1);
        retried.sent_us = 900;
        let history = vec![
            retried,
            ok(2, "k1", 1, "o1"),
            unknown(3, "k3", 2),
            rejected(4, "k4", 1, SOLD_OUT),
        ];
        let orders = vec![order("o1", "k1", 1, 1)];
        let result = run(&history, &ledger(orders, Some(3)), Some(3));
        assert!(result.is_violated(), "{result:?}");
        let text = &result.counterexample.as_ref().unwrap().explanation;
        assert!(
            text.ends_with(
                "units were stranded; 1 attempts ended unknown with no order and could have \
                 stranded them: seq 3 (key k3, 2 units, sent at 0.001 s)"
            ),
            "{text}"
        );
    }

    fn run_rules(
        history: &[Attempt],
        ledger: &Ledger,
        cap: Option<u64>,
        rules: TargetRules,
    ) -> InvariantResult {
        let input = CheckInput {
            rules,
            ..CheckInput::new(history, ledger, cap)
        };
        check_one(check, &input)
    }

    fn limit(units: Option<u64>, orders: Option<u64>) -> TargetRules {
        TargetRules {
            per_buyer_units: units,
            per_buyer_orders: orders,
            ..TargetRules::default()
        }
    }

    /// Buyer `b-a`'s three requests of one unit each: two bought, the third told sold out, on a
    /// cap of 10 (8 units left).
    fn third_request_sold_out() -> (Vec<Attempt>, Ledger) {
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-a", ok(1, "a2", 1, "o2")),
            by("b-a", rejected(2, "a3", 1, SOLD_OUT)),
        ];
        let orders = vec![
            owned("o1", "b-a", "a1", 1, 1),
            owned("o2", "b-a", "a2", 1, 2),
        ];
        (history, ledger(orders, Some(10)))
    }

    #[test]
    fn a_service_that_tells_a_buyers_third_request_sold_out_while_units_stay_unsold_is_underselling()
     {
        // The buyer may hold 5 units (or 3 orders): the third unit was theirs to buy.
        let (history, ledger) = third_request_sold_out();
        for rules in [
            limit(Some(5), None),
            limit(None, Some(3)),
            limit(Some(3), None),
        ] {
            let result = run_rules(&history, &ledger, Some(10), rules);
            assert!(result.is_violated(), "{rules:?}: {result:?}");
            assert_eq!(attempt_seqs(&result.counterexample.unwrap()), [2]);
        }
    }

    #[test]
    fn a_buyer_at_their_limit_refused_sold_out_is_not_a_false_sold_out() {
        // The buyer may hold 2 units (or 2 orders) and holds them: the refusal, however worded,
        // refused nothing they could buy.
        let (history, ledger) = third_request_sold_out();
        for rules in [limit(Some(2), None), limit(None, Some(2))] {
            let result = run_rules(&history, &ledger, Some(10), rules);
            assert!(result.is_held(), "{rules:?}: {result:?}");
            assert!(
                result.summary.contains(
                    "(1 requests beyond it; 1 sold-out answers to buyers it left no room)"
                ),
                "{}",
                result.summary
            );
        }
        // Without the rule the same answer is a false sold-out.
        assert!(run(&history, &ledger, Some(10)).is_violated());
    }

    #[test]
    fn requests_beyond_each_buyers_limit_are_not_demand() {
        // Cap 6, one order per customer: three buyers send three requests each; each gets one
        // and is told sold out for the rest. Demand within the limit is 3 units, below the cap.
        let mut history = Vec::new();
        let mut orders = Vec::new();
        for b in 0..3u32 {
            let buyer = format!("buyer-{b}");
            for r in 0..3u32 {
                let seq = u64::from(b * 3 + r);
                let key = format!("k{b}-{r}");
                if r == 0 {
                    let id = format!("o{b}");
                    history.push(by(&buyer, ok(seq, &key, 1, &id)));
                    orders.push(owned(&id, &buyer, &key, 1, b));
                } else {
                    history.push(by(&buyer, rejected(seq, &key, 1, SOLD_OUT)));
                }
            }
        }
        let ledger = ledger(orders, Some(6));
        let result = run_rules(&history, &ledger, Some(6), limit(None, Some(1)));
        assert!(result.is_held(), "{result:?}");
        assert_eq!(
            result.summary,
            "cap 6, 3 units sold, 3 left; 6 sold-out answers; eligible demand 3 units within the \
             per-buyer limit of 1 order (6 requests beyond it; 6 sold-out answers to buyers it \
             left no room); no false sold-out; demand below the cap, so no sell-out required"
        );
        // Counted without the rule, the demand of 9 units would meet the cap, and the refusals
        // would be false sold-outs.
        let result = run(&history, &ledger, Some(6));
        assert!(result.is_violated());
        assert!(
            result.summary.ends_with("eligible demand 9 units"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_buyer_held_to_one_order_who_got_their_small_request_is_not_owed_their_large_one() {
        // Cap 4: the buyer asked for 3 and for 1 at once, and the 1 won. Their limit of one
        // order leaves no room for the 3, so the 3 units left were denied to no one.
        let history = vec![
            by("b-a", rejected(0, "a1", 3, SOLD_OUT)),
            by("b-a", ok(1, "a2", 1, "o1")),
        ];
        let ledger = ledger(vec![owned("o1", "b-a", "a2", 1, 1)], Some(4));
        let result = run_rules(&history, &ledger, Some(4), limit(None, Some(1)));
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains("eligible demand 1 units"),
            "{}",
            result.summary
        );
        assert!(run(&history, &ledger, Some(4)).is_violated());
    }

    #[test]
    fn demand_counts_only_what_the_limit_still_lets_a_buyer_buy() {
        // Limit 4 units: b-a holds 1 and has two requests of 2 in doubt; only one of them fits
        // beside what they hold, so their demand is 3 (not 5, nor the 4 of the limit).
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-a", unknown(1, "a2", 2)),
            by("b-a", unknown(2, "a3", 2)),
            by("b-b", ok(3, "b1", 1, "o2")),
        ];
        let ledger = ledger(
            vec![
                owned("o1", "b-a", "a1", 1, 1),
                owned("o2", "b-b", "b1", 1, 2),
            ],
            Some(10),
        );
        let result = run_rules(&history, &ledger, Some(10), limit(Some(4), None));
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains(
                "eligible demand 4 units within the per-buyer limit of 4 units (0 requests \
                 beyond it;"
            ),
            "{}",
            result.summary
        );
        assert!(run(&history, &ledger, Some(10)).summary.ends_with(
            "eligible demand 6 units; no false sold-out; sell-out not required \
                            because 2 attempts ended unknown"
        ),);
    }

    #[test]
    fn a_lost_acknowledgement_under_a_limit_still_leaves_the_sale_unsold() {
        // Limit 2 units: b-a holds 1, and their second request was answered ok with an order
        // that never landed. Demand 10 meets the cap, yet a unit is left while they had room.
        let (mut history, orders) = sale(9, 0);
        history.push(by("b-k0", ok(9, "k9", 1, "o-lost")));
        let result = run_rules(
            &history,
            &ledger(orders, Some(10)),
            Some(10),
            limit(Some(2), None),
        );
        assert!(result.is_violated(), "{result:?}");
        assert_eq!(attempt_seqs(&result.counterexample.unwrap()), [9]);
    }

    fn keyless(rules: TargetRules) -> TargetRules {
        TargetRules {
            keys_sent: false,
            ..rules
        }
    }

    #[test]
    fn a_keyless_target_is_judged_request_by_request() {
        // Cap 3: b-a sends three requests (labels a1..a3), b-b one. b-a gets two units, b-b one:
        // sold out exactly, and b-a's third request was rightly refused.
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-a", ok(1, "a2", 1, "o2")),
            by("b-b", ok(2, "b1", 1, "o3")),
            by("b-a", rejected(3, "a3", 1, SOLD_OUT)),
        ];
        let orders = vec![
            keyless_order("o1", "b-a", 1, 1),
            keyless_order("o2", "b-a", 1, 2),
            keyless_order("o3", "b-b", 1, 3),
        ];
        let result = run_rules(&history, &ledger(orders, Some(3)), Some(3), KEYLESS);
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains("eligible demand 4 units"),
            "{}",
            result.summary
        );

        // On a cap of 4 the third request was a false sold-out...
        let orders = vec![
            keyless_order("o1", "b-a", 1, 1),
            keyless_order("o2", "b-a", 1, 2),
            keyless_order("o3", "b-b", 1, 3),
        ];
        let result = run_rules(&history, &ledger(orders.clone(), Some(4)), Some(4), KEYLESS);
        assert!(result.is_violated(), "{result:?}");
        assert_eq!(attempt_seqs(&result.counterexample.unwrap()), [3]);

        // ...unless b-a could hold only two.
        let rules = keyless(limit(Some(2), None));
        assert!(run_rules(&history, &ledger(orders, Some(4)), Some(4), rules).is_held());
    }

    #[test]
    fn a_keyless_ok_whose_order_never_landed_leaves_the_sale_unsold() {
        let history = vec![
            by("b-a", ok(0, "a1", 1, "o1")),
            by("b-a", ok(1, "a2", 1, "o-lost")),
        ];
        let orders = vec![keyless_order("o1", "b-a", 1, 1)];
        let result = run_rules(&history, &ledger(orders, Some(2)), Some(2), KEYLESS);
        assert!(result.is_violated(), "{result:?}");
        assert_eq!(attempt_seqs(&result.counterexample.unwrap()), [1]);
    }

    #[test]
    fn a_keyless_repeat_answered_with_the_buyers_one_order_is_demand_once() {
        // One order per customer, the repeat answered with the order the buyer already has:
        // three buyers, two requests each, three units sold of a cap of 5. The demand is 3.
        let mut history = Vec::new();
        let mut orders = Vec::new();
        for b in 0..3u32 {
            let buyer = format!("buyer-{b}");
            let id = format!("o{b}");
            for r in 0..2u32 {
                let seq = u64::from(b * 2 + r);
                history.push(by(&buyer, ok(seq, &format!("k{b}-{r}"), 1, &id)));
            }
            orders.push(keyless_order(&id, &buyer, 1, b));
        }
        let rules = keyless(limit(None, Some(1)));
        let result = run_rules(&history, &ledger(orders, Some(5)), Some(5), rules);
        assert!(result.is_held(), "{result:?}");
        assert!(
            result.summary.contains("eligible demand 3 units"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_keyless_unknown_attempt_is_named_as_a_possible_strander_unless_its_request_was_served() {
        let mut retried = by("b-a", unknown(0, "a1", 1));
        retried.sent_us = 900;
        let mut retry = by("b-a", ok(1, "a1", 1, "o1"));
        retry.try_number = 1;
        let history = vec![
            retried,
            retry,
            by("b-a", unknown(2, "a2", 2)),
            by("b-b", rejected(3, "b1", 1, SOLD_OUT)),
        ];
        let orders = vec![keyless_order("o1", "b-a", 1, 1)];
        let result = run_rules(&history, &ledger(orders, Some(3)), Some(3), KEYLESS);
        assert!(result.is_violated(), "{result:?}");
        let text = &result.counterexample.as_ref().unwrap().explanation;
        assert!(
            text.ends_with(
                "1 attempts ended unknown with no order and could have stranded them: seq 2 (key \
                 a2, 2 units, sent at 0.001 s)"
            ),
            "{text}"
        );
    }
}
