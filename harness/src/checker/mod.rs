//! The invariant checker: compares the harness's history with the server's ledger (docs/invariants.md).
//!
//! Each invariant lives in its own file and is checked independently, so one violation never
//! hides another. Every check is a few passes over hash maps built once here, which keeps a run
//! of a million attempts within a couple of seconds. `Outcome::Unknown` is treated as "maybe"
//! throughout: such an attempt may or may not have created an order, and no check may assume
//! either.
//!
//! Faults are part of the input: the faults the harness actually applied, the inventory readings
//! taken while the run went on, and the inventory view read once faults healed and the sync job
//! ran. A run without faults (an empty fault list) is judged exactly as before faults existed;
//! INV-5 switches to its fault-aware form when faults were applied (see that module), INV-1
//! also judges every inventory sample, and INV-6 compares the settled view's figures.
//! Cart holds hand units back when they are released or expire: with buyer journeys, INV-7
//! (`inv7_holds.rs`) judges the holds, INV-5 reads the holds' returns as a fault that heals
//! when the last one came back (`inv5_with_holds`), and INV-6's counter counts live holds.
//!
//! The target's rules are part of the input too ([`TargetRules`]). A target that takes no
//! idempotency keys is matched by buyer instead of by key (its orders carry no key), and INV-4,
//! which needs keys, is "not checked". A per-buyer limit adds INV-9 to the report and tells
//! INV-5 which requests a buyer could still have been sold; without one, INV-9 is not in the
//! report at all, because the sale has no such rule.
//!
//! INV-8 (wishlist alerts, `inv8_alerts.rs`) is judged on a fan-out run's own evidence — what the
//! harness's SMTP sink and push receiver received — not on a buy history; `fanout/` calls it.

#[cfg(test)]
mod fixtures;
mod inv1_no_oversell;
mod inv2_no_lost_ack;
mod inv3_no_phantom;
mod inv4_idempotency;
mod inv5_exactly_cap;
mod inv6_convergence;
mod inv7_holds;
pub mod inv8_alerts;
mod inv9_per_buyer_limit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::inv7_holds::HoldsInput;
use crate::ground_truth::{Ledger, LedgerOrder, SettledInventory};
use crate::history::{Attempt, FaultRecord, InventorySample, Outcome};

/// How many orders and attempts a counterexample shows; the rest are counted, not listed, so a
/// report of a badly broken server stays readable.
pub const MAX_SHOWN: usize = 20;

/// What the checker compares.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub history: &'a [Attempt],
    pub ledger: &'a Ledger,
    /// `None` for an unlimited sale.
    pub cap: Option<u64>,
    /// The faults actually applied; empty for a no-fault run, which keeps the no-fault form of
    /// INV-5.
    pub faults: &'a [FaultRecord],
    /// Inventory readings taken during the run; INV-1 must hold at each of them.
    pub samples: &'a [InventorySample],
    /// The inventory view read after the load (and after faults healed, if any), for INV-6;
    /// `None` when it could not be read (INV-6 is then "not checked").
    pub settled: Option<&'a SettledInventory>,
    /// INV-6's deadline: how long after the last answer the figures must agree
    /// (`[checks] convergence_within`); only used to word the verdict.
    pub convergence_within: Duration,
    /// What the target promises and enforces, beyond the sale's cap.
    pub rules: TargetRules,
    /// The cart holds of a scenario with buyer journeys (INV-7); `None`: no journeys, and INV-7
    /// is not in the report.
    pub holds: Option<HoldsInput<'a>>,
}

/// The target's rules that change what the checker can observe or must require: whether it
/// takes idempotency keys, and the per-buyer limits of the sale. The default is the reference
/// server's API on a sale without a per-buyer limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRules {
    /// The target takes idempotency keys (false: the harness sends none; keys in the history are
    /// the harness's own labels and the ledger's `idempotency_key` fields are empty).
    pub keys_sent: bool,
    /// Units one buyer may hold across all their orders in the sale (the sale's
    /// per_buyer_limit, or a rule the target profile states).
    pub per_buyer_units: Option<u64>,
    /// Orders one buyer may hold in the sale (e.g. 1 for "one order per customer").
    pub per_buyer_orders: Option<u64>,
}

impl Default for TargetRules {
    fn default() -> Self {
        TargetRules {
            keys_sent: true,
            per_buyer_units: None,
            per_buyer_orders: None,
        }
    }
}

impl TargetRules {
    /// Whether the sale limits what one buyer may hold (INV-9 is then judged).
    pub fn limits_buyers(&self) -> bool {
        self.per_buyer_units.is_some() || self.per_buyer_orders.is_some()
    }

    /// The limits in words, for the summaries: "3 units", "1 order", "3 units and 2 orders";
    /// `None` when the sale sets none.
    fn described_limits(&self) -> Option<String> {
        let units = self.per_buyer_units.map(|u| format!("{u} units"));
        let orders = self
            .per_buyer_orders
            .map(|n| format!("{n} order{}", if n == 1 { "" } else { "s" }));
        let parts: Vec<String> = units.into_iter().chain(orders).collect();
        (!parts.is_empty()).then(|| parts.join(" and "))
    }

    /// Whether a buyer who ends the run holding `units` in `orders` orders could also have been
    /// sold a request for `quantity` more: holdings only grow, so a request that does not fit
    /// beside the final holdings never could have fitted beside the ones its buyer had when it
    /// was answered and still end where they did.
    fn room_for(&self, units: u64, orders: u64, quantity: u32) -> bool {
        self.per_buyer_units
            .is_none_or(|limit| units.saturating_add(u64::from(quantity)) <= limit)
            && self.per_buyer_orders.is_none_or(|limit| orders < limit)
    }
}

impl<'a> CheckInput<'a> {
    /// A no-fault run with no samples and no settled reading: the input of a run that only has
    /// a history and a ledger. Set the other fields with struct update syntax when there are any.
    pub fn new(history: &'a [Attempt], ledger: &'a Ledger, cap: Option<u64>) -> Self {
        CheckInput {
            history,
            ledger,
            cap,
            faults: &[],
            samples: &[],
            settled: None,
            convergence_within: crate::scenario::DEFAULT_CONVERGENCE_WITHIN,
            rules: TargetRules::default(),
            holds: None,
        }
    }
}

/// The verdict on every invariant, keyed `"INV-1"`..`"INV-6"` (and `"INV-9"` when the sale has a
/// per-buyer limit) so reports sort in the order of docs/invariants.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub invariants: BTreeMap<String, InvariantResult>,
}

impl CheckReport {
    /// True when every invariant was checked and held; a "not checked" is not held.
    pub fn all_held(&self) -> bool {
        self.invariants.values().all(InvariantResult::is_held)
    }

    /// True when no invariant was violated (some may be not checked): the run's exit status 0.
    pub fn none_violated(&self) -> bool {
        !self.invariants.values().any(InvariantResult::is_violated)
    }

    /// The ids (`"INV-2"`, …) of the violated invariants, in the order of docs/invariants.md.
    pub fn violated(&self) -> Vec<&str> {
        self.with_verdict(Verdict::Violated)
    }

    /// The ids of the invariants the run could not judge, in the order of docs/invariants.md.
    pub fn not_checked(&self) -> Vec<&str> {
        self.with_verdict(Verdict::NotChecked)
    }

    fn with_verdict(&self, verdict: Verdict) -> Vec<&str> {
        self.invariants
            .iter()
            .filter(|(_, r)| r.verdict == verdict)
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// What the checker concluded about one invariant (docs/invariants.md, "Words used in verdicts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The evidence was there, all of it was looked at, and nothing was wrong.
    Held,
    /// At least one operation breaks the invariant; a counterexample says which.
    Violated,
    /// The run gave no evidence to judge it: neither held nor violated. The summary says why.
    NotChecked,
}

impl Verdict {
    /// The word the console and the report print.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Held => "HELD",
            Verdict::Violated => "VIOLATED",
            Verdict::NotChecked => "NOT CHECKED",
        }
    }
}

/// The verdict on one invariant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvariantResult {
    /// Short human name, e.g. `"no oversell"`.
    pub name: &'static str,
    pub verdict: Verdict,
    /// One line with the figures the verdict rests on, whichever way it went.
    pub summary: String,
    /// Present exactly when the invariant was violated.
    pub counterexample: Option<Counterexample>,
}

impl InvariantResult {
    fn held(name: &'static str, summary: String) -> Self {
        InvariantResult {
            name,
            verdict: Verdict::Held,
            summary,
            counterexample: None,
        }
    }

    fn violated(name: &'static str, summary: String, counterexample: Counterexample) -> Self {
        InvariantResult {
            name,
            verdict: Verdict::Violated,
            summary,
            counterexample: Some(counterexample),
        }
    }

    /// `summary` says why the run could not judge it.
    fn not_checked(name: &'static str, summary: String) -> Self {
        InvariantResult {
            name,
            verdict: Verdict::NotChecked,
            summary,
            counterexample: None,
        }
    }

    pub fn is_held(&self) -> bool {
        self.verdict == Verdict::Held
    }

    pub fn is_violated(&self) -> bool {
        self.verdict == Verdict::Violated
    }
}

/// The operations that break an invariant, the way Jepsen prints them: enough to find them in
/// `history.jsonl` and the server's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    pub explanation: String,
    /// At most [`MAX_SHOWN`] offending orders.
    pub orders: Vec<LedgerOrder>,
    /// At most [`MAX_SHOWN`] offending attempts, in `seq` order.
    pub attempts: Vec<Attempt>,
    /// Offending orders beyond those listed.
    pub omitted_orders: usize,
    /// Offending attempts beyond those listed.
    pub omitted_attempts: usize,
}

impl Counterexample {
    /// Keeps the first [`MAX_SHOWN`] orders as given (callers pass them in a meaningful order,
    /// such as commit order) and the [`MAX_SHOWN`] earliest attempts by `seq`.
    fn new(explanation: String, orders: Vec<&LedgerOrder>, mut attempts: Vec<&Attempt>) -> Self {
        attempts.sort_by_key(|a| a.seq);
        attempts.dedup_by_key(|a| a.seq);
        let omitted_orders = orders.len().saturating_sub(MAX_SHOWN);
        let omitted_attempts = attempts.len().saturating_sub(MAX_SHOWN);
        Counterexample {
            explanation,
            orders: orders.into_iter().take(MAX_SHOWN).cloned().collect(),
            attempts: attempts.into_iter().take(MAX_SHOWN).cloned().collect(),
            omitted_orders,
            omitted_attempts,
        }
    }

    /// "showing k of n orders and k of n attempts" when a reader who sees at most `limit` of
    /// each (the console shows fewer than `summary.json`) does not see them all; `None` when
    /// nothing is left out. Each renderer says it with its own limit, so the counts it prints are
    /// the counts it shows; a kind with nothing offending is not mentioned.
    pub fn showing(&self, limit: usize) -> Option<String> {
        let part = |listed: usize, omitted: usize, what: &str| {
            let total = listed + omitted;
            (total > 0).then(|| format!("{} of {total} {what}", listed.min(limit)))
        };
        let orders = part(self.orders.len(), self.omitted_orders, "orders");
        let attempts = part(self.attempts.len(), self.omitted_attempts, "attempts");
        let hidden = self.orders.len().min(limit) < self.orders.len() + self.omitted_orders
            || self.attempts.len().min(limit) < self.attempts.len() + self.omitted_attempts;
        hidden.then(|| {
            let parts: Vec<String> = orders.into_iter().chain(attempts).collect();
            format!("showing {}", parts.join(" and "))
        })
    }
}

/// Checks INV-1..INV-6 against one run, INV-7 when the scenario has buyer journeys, and INV-9
/// when the sale limits what one buyer may hold.
pub fn check(input: &CheckInput) -> CheckReport {
    let index = Index::new(input.history, input.ledger, input.rules.keys_sent);
    let results = [
        (inv1_no_oversell::ID, inv1_no_oversell::check(input, &index)),
        (inv2_no_lost_ack::ID, inv2_no_lost_ack::check(input, &index)),
        (inv3_no_phantom::ID, inv3_no_phantom::check(input, &index)),
        (inv4_idempotency::ID, inv4_idempotency::check(input, &index)),
        (inv5_exactly_cap::ID, inv5_with_holds(input, &index)),
        (inv6_convergence::ID, inv6_convergence::check(input)),
    ];
    // A sale without a per-buyer rule has nothing INV-9 could judge or hold: it is left out of
    // the report rather than printed as held or as "not checked" on every run.
    let per_buyer = inv9_per_buyer_limit::check(input).map(|r| (inv9_per_buyer_limit::ID, r));
    // Likewise INV-7 without buyer journeys.
    let holds = inv7_holds::check(input).map(|r| (inv7_holds::ID, r));
    CheckReport {
        invariants: results
            .into_iter()
            .chain(holds)
            .chain(per_buyer)
            .map(|(id, result)| (id.to_owned(), result))
            .collect(),
    }
}

/// INV-5 with cart holds: released and expired holds hand units back during the run, which the
/// no-fault form assumes never happens. So the holds' returns are judged like a fault that heals
/// when the last hold gave its units back (a hold still stored live never healed): INV-5's
/// fault-aware form then judges only what was sent after that instant (see that module).
fn inv5_with_holds(input: &CheckInput, index: &Index) -> InvariantResult {
    let Some(exported) = input.holds.and_then(|h| h.exported.map(|e| (h, e))) else {
        return inv5_exactly_cap::check(input, index);
    };
    let (holds, exported) = exported;
    let on_clock = |at: &str| {
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (t - holds.clock_origin_at).whole_microseconds().max(0) as u64)
    };
    let returning: Vec<_> = exported
        .iter()
        .filter(|h| h.state != "checked_out")
        .collect();
    if returning.is_empty() {
        return inv5_exactly_cap::check(input, index);
    }
    let started_us = returning
        .iter()
        .filter_map(|h| on_clock(&h.created_at))
        .min()
        .unwrap_or(0);
    let ended_us = returning.iter().try_fold(0u64, |latest, h| {
        h.ended_at
            .as_deref()
            .and_then(on_clock)
            .map(|end| latest.max(end))
    });
    let mut faults = input.faults.to_vec();
    faults.push(FaultRecord {
        kind: "holds".to_owned(),
        planned: "released and expired cart holds hand their units back".to_owned(),
        started_us,
        ended_us,
        detail: format!("{} holds released or expired", returning.len()),
    });
    let mut result = inv5_exactly_cap::check(
        &CheckInput {
            faults: &faults,
            ..*input
        },
        index,
    );
    // Say what the added "fault" stands for.
    let faults = input.faults.len();
    result.summary = result.summary.replacen(
        &format!("fault-aware: {} faults, ", faults + 1),
        &format!(
            "fault-aware ({faults} faults, and units handed back by released and expired holds \
             judged like a fault that healed when the last one came back): "
        ),
        1,
    );
    result
}

/// Units acknowledged `ok`: each distinct order id counts once, with the quantity of the first
/// attempt that was told about it, so a retry that is (correctly) answered with the same order
/// is not counted twice.
pub fn acknowledged_units(history: &[Attempt]) -> u64 {
    let mut seen = HashSet::new();
    history
        .iter()
        .filter(|a| a.outcome == Outcome::Ok)
        .filter_map(|a| a.order_id.as_deref().map(|id| (id, a.quantity)))
        .filter(|(id, _)| seen.insert(*id))
        .map(|(_, quantity)| u64::from(quantity))
        .sum()
}

/// A time since the run's clock origin, in seconds with millisecond digits, the way the
/// explanations print it (`3.250 s`); `history.jsonl` has the exact microseconds.
fn seconds(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

/// What attempts and orders are matched by: the idempotency key, or the buyer when the target
/// takes no keys (its orders carry none, and the history's keys are only the harness's labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchBy {
    Key,
    Buyer,
}

impl MatchBy {
    fn attempt(self, attempt: &Attempt) -> &str {
        match self {
            MatchBy::Key => &attempt.idempotency_key,
            MatchBy::Buyer => &attempt.buyer,
        }
    }

    fn order(self, order: &LedgerOrder) -> &str {
        match self {
            MatchBy::Key => &order.idempotency_key,
            MatchBy::Buyer => &order.buyer_id,
        }
    }
}

/// Lookups shared by the invariants, built in one pass over each input.
///
/// The attempts are grouped by their *match key* — the idempotency key, or the buyer for a target
/// that takes no keys ([`MatchBy`]) — in one sorted vector of references rather than a hash map
/// of vectors: a million attempts with a million keys cost 8 bytes each here (plus 4 per key),
/// where a map of vectors cost ~130 bytes per key (G7, the harness's memory for a million
/// recorded attempts). Grouping by reference rather than by rewritten copies keeps a keyless run
/// as cheap as a keyed one, and its counterexamples show the attempts as recorded. Lookups are
/// binary searches; the ledger side is small and stays hashed.
struct Index<'a> {
    by: MatchBy,
    /// Every attempt, sorted by match key; within a key in history order (a stable sort), so a
    /// group's first attempt is its key's first try.
    by_key: Vec<&'a Attempt>,
    /// Where each key's group starts in `by_key`, ascending, with `by_key.len()` at the end.
    group_starts: Vec<u32>,
    /// The orders under each match key.
    orders_by_key: HashMap<&'a str, Vec<&'a LedgerOrder>>,
    /// The first order listed with each id.
    orders_by_id: HashMap<&'a str, &'a LedgerOrder>,
}

impl<'a> Index<'a> {
    /// `keys_sent` is [`TargetRules::keys_sent`]: false matches by buyer.
    fn new(history: &'a [Attempt], ledger: &'a Ledger, keys_sent: bool) -> Self {
        assert!(
            u32::try_from(history.len()).is_ok(),
            "a history holds fewer than 2^32 attempts"
        );
        let by = if keys_sent {
            MatchBy::Key
        } else {
            MatchBy::Buyer
        };
        let mut by_key: Vec<&Attempt> = history.iter().collect();
        by_key.sort_by(|a, b| by.attempt(a).cmp(by.attempt(b)));
        let mut group_starts: Vec<u32> = (0..by_key.len())
            .filter(|&i| i == 0 || by.attempt(by_key[i - 1]) != by.attempt(by_key[i]))
            .map(|i| i as u32)
            .collect();
        group_starts.push(by_key.len() as u32);
        group_starts.shrink_to_fit();
        let mut orders_by_key: HashMap<&str, Vec<&LedgerOrder>> =
            HashMap::with_capacity(ledger.orders.len());
        let mut orders_by_id = HashMap::with_capacity(ledger.orders.len());
        for order in &ledger.orders {
            orders_by_key
                .entry(by.order(order))
                .or_default()
                .push(order);
            orders_by_id.entry(order.order_id.as_str()).or_insert(order);
        }
        Index {
            by,
            by_key,
            group_starts,
            orders_by_key,
            orders_by_id,
        }
    }

    /// The attempts with match key `key`, in history order; empty when no attempt has it.
    fn attempts_with_key(&self, key: &str) -> &[&'a Attempt] {
        let groups = self.group_starts.len() - 1;
        let group = self.group_starts[..groups]
            .partition_point(|&start| self.by.attempt(self.by_key[start as usize]) < key);
        if group == groups {
            return &[];
        }
        let attempts = self.group(group);
        if self.by.attempt(attempts[0]) == key {
            attempts
        } else {
            &[]
        }
    }

    /// The attempts that share `order`'s match key: those that could have made it.
    fn attempts_for(&self, order: &LedgerOrder) -> &[&'a Attempt] {
        self.attempts_with_key(self.by.order(order))
    }

    fn group(&self, group: usize) -> &[&'a Attempt] {
        let (start, end) = (self.group_starts[group], self.group_starts[group + 1]);
        &self.by_key[start as usize..end as usize]
    }

    /// Every match key sent, in key order, with its attempts in history order.
    fn attempts_by_key(&self) -> impl Iterator<Item = (&'a str, &[&'a Attempt])> + '_ {
        (0..self.key_count()).map(|group| {
            let attempts = self.group(group);
            (self.by.attempt(attempts[0]), attempts)
        })
    }

    /// How many distinct match keys were sent.
    fn key_count(&self) -> usize {
        self.group_starts.len() - 1
    }
}

/// Hand-made histories and ledgers for the invariant tests.
#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::history::{InventorySample, SOLD_OUT};

    #[test]
    fn a_correct_sell_out_holds_everything() {
        let mut history = Vec::new();
        let mut orders = Vec::new();
        for i in 0..10u32 {
            let key = format!("k{i}");
            history.push(ok(u64::from(i), &key, 1, &format!("o{i}")));
            orders.push(order(&format!("o{i}"), &key, 1, i));
        }
        for i in 10..50u64 {
            history.push(rejected(i, &format!("k{i}"), 1, SOLD_OUT));
        }
        let ledger = ledger(orders, Some(10));
        let settled = SettledInventory {
            view: ledger.inventory.clone(),
            waited_ms: 0,
        };
        let report = check(&CheckInput {
            settled: Some(&settled),
            ..CheckInput::new(&history, &ledger, Some(10))
        });
        assert!(report.all_held(), "{report:#?}");
        assert!(report.violated().is_empty());
        assert!(report.not_checked().is_empty());
        // Without a settled view, INV-6 cannot be judged: no longer "all held", yet no violation.
        let report = check(&CheckInput::new(&history, &ledger, Some(10)));
        assert!(!report.all_held());
        assert!(report.none_violated());
        assert_eq!(report.not_checked(), ["INV-6"]);
        let ids: Vec<&str> = report.invariants.keys().map(String::as_str).collect();
        assert_eq!(ids, ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5", "INV-6"]);
        assert!(
            report
                .invariants
                .values()
                .all(|r| r.counterexample.is_none())
        );
    }

    #[test]
    fn report_lists_violations_in_spec_order() {
        // One order too many, and its key was never sent: oversell and phantom at once.
        let history = vec![ok(0, "a", 1, "o1")];
        let ledger = ledger(
            vec![order("o1", "a", 1, 1), order("o2", "x", 1, 2)],
            Some(1),
        );
        let report = check(&CheckInput::new(&history, &ledger, Some(1)));
        assert!(!report.all_held());
        assert_eq!(report.violated(), ["INV-1", "INV-3"]);
    }

    #[test]
    fn acknowledged_units_count_each_order_once() {
        let mut retry = ok(1, "a", 2, "o1");
        retry.try_number = 1;
        let history = vec![
            ok(0, "a", 2, "o1"),
            retry,
            ok(2, "b", 3, "o2"),
            unknown(3, "c", 5),
        ];
        assert_eq!(acknowledged_units(&history), 5);
    }

    #[test]
    fn counterexamples_are_capped_and_count_the_rest() {
        let orders: Vec<LedgerOrder> = (0..30)
            .map(|i| order(&format!("o{i}"), "k", 1, i))
            .collect();
        let attempts: Vec<Attempt> = (0..25).rev().map(|i| unknown(i, "k", 1)).collect();
        let cx = Counterexample::new(
            "why".to_owned(),
            orders.iter().collect(),
            attempts.iter().collect(),
        );
        assert_eq!(cx.orders.len(), MAX_SHOWN);
        assert_eq!(cx.omitted_orders, 10);
        assert_eq!(cx.attempts.len(), MAX_SHOWN);
        assert_eq!(cx.omitted_attempts, 5);
        assert_eq!(cx.attempts[0].seq, 0, "attempts are listed in seq order");
        assert_eq!(
            cx.showing(MAX_SHOWN).as_deref(),
            Some("showing 20 of 30 orders and 20 of 25 attempts")
        );
        // The console shows 3 of each: its counts are its own, the totals the same.
        assert_eq!(
            cx.showing(3).as_deref(),
            Some("showing 3 of 30 orders and 3 of 25 attempts")
        );
        assert_eq!(
            cx.explanation, "why",
            "the counts are not baked into the text"
        );
        let small = Counterexample::new(
            "why".to_owned(),
            Vec::new(),
            attempts.iter().take(2).collect(),
        );
        assert_eq!(small.showing(MAX_SHOWN), None);
        assert_eq!(small.showing(1).as_deref(), Some("showing 1 of 2 attempts"));
    }

    /// Half of `n` buyers get a unit, a quarter of those only after a timed-out first try, and
    /// the other half are told sold out: a correct history in which every invariant holds.
    fn big_correct_sale(n: u64) -> (Vec<Attempt>, Ledger, u64) {
        let cap = n / 2;
        let mut history = Vec::with_capacity(n as usize + 30_000);
        let mut orders = Vec::with_capacity(cap as usize);
        let mut seq = 0u64;
        for i in 0..n {
            let key = format!("key-{i}");
            if i < cap {
                let id = format!("order-{i}");
                if i % 4 == 0 {
                    history.push(unknown(seq, &key, 1));
                    seq += 1;
                }
                let mut attempt = ok(seq, &key, 1, &id);
                attempt.try_number = u32::from(i % 4 == 0);
                history.push(attempt);
                orders.push(order(&id, &key, 1, (i % 60) as u32));
            } else {
                history.push(rejected(seq, &key, 1, SOLD_OUT));
            }
            seq += 1;
        }
        (history, ledger(orders, Some(cap)), cap)
    }

    #[test]
    fn checks_two_hundred_thousand_attempts() {
        let (history, ledger, cap) = big_correct_sale(200_000);
        let report = check(&CheckInput::new(&history, &ledger, Some(cap)));
        assert!(report.none_violated(), "{:#?}", report.violated());
        assert_eq!(report.not_checked(), ["INV-6"], "no settled view was given");
    }

    #[test]
    fn checks_a_faulty_run_of_two_hundred_thousand_attempts_with_samples() {
        // Faults heal while the last units sell (fixture attempts are sent at 1000 + seq µs);
        // readings climb towards the cap, a few of them failed; the settled view agrees.
        let (history, ledger, cap) = big_correct_sale(200_000);
        let faults = [
            fault("kill", 20_000, Some(60_000)),
            fault("latency", 50_000, Some(110_000)),
        ];
        let samples: Vec<InventorySample> = (0..5_000u64)
            .map(|i| {
                let units = (i * cap / 5_000) as i64;
                sample(i * 50, (i % 97 != 0).then_some(units))
            })
            .collect();
        let settled = SettledInventory {
            view: ledger.inventory.clone(),
            waited_ms: 2_000,
        };
        let report = check(&CheckInput {
            faults: &faults,
            samples: &samples,
            settled: Some(&settled),
            ..CheckInput::new(&history, &ledger, Some(cap))
        });
        assert!(report.all_held(), "{:#?}", report.violated());
        let inv5 = &report.invariants["INV-5"].summary;
        assert!(
            inv5.starts_with("fault-aware: 2 faults, healed at 0.110 s;"),
            "{inv5}"
        );
        assert!(
            report.invariants["INV-1"]
                .summary
                .contains("5000 samples, 52 failed readings"),
            "{}",
            report.invariants["INV-1"].summary
        );
        assert!(
            report.invariants["INV-6"]
                .summary
                .ends_with("all agree (no counter to judge)"),
            "{}",
            report.invariants["INV-6"].summary
        );
    }

    #[test]
    fn the_inputs_of_a_faulty_run_reach_every_invariant() {
        // A correct sell-out whose settled view shows a stale quantity_sold and whose samples
        // saw the cap exceeded: INV-1 and INV-6 fail, the others hold.
        let history = vec![ok(0, "a", 1, "o1"), rejected(1, "b", 1, SOLD_OUT)];
        let ledger = ledger(vec![order("o1", "a", 1, 1)], Some(1));
        let mut settled = SettledInventory {
            view: ledger.inventory.clone(),
            waited_ms: 100,
        };
        settled.view.quantity_sold = Some(0);
        let faults = [fault("pause", 100, Some(200))];
        let samples = [sample(150, Some(2))];
        let report = check(&CheckInput {
            faults: &faults,
            samples: &samples,
            settled: Some(&settled),
            ..CheckInput::new(&history, &ledger, Some(1))
        });
        assert_eq!(report.violated(), ["INV-1", "INV-6"]);
    }

    #[test]
    fn a_per_buyer_limit_adds_inv9_to_the_report() {
        let history = vec![ok(0, "a", 2, "o1"), rejected(1, "b", 1, SOLD_OUT)];
        let ledger = ledger(vec![order("o1", "a", 2, 1)], Some(2));
        let limited = CheckInput {
            rules: TargetRules {
                per_buyer_units: Some(2),
                ..TargetRules::default()
            },
            ..CheckInput::new(&history, &ledger, Some(2))
        };
        let report = check(&limited);
        let ids: Vec<&str> = report.invariants.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "INV-1", "INV-2", "INV-3", "INV-4", "INV-5", "INV-6", "INV-9"
            ]
        );
        assert!(report.invariants["INV-9"].is_held());
        assert_eq!(report.invariants["INV-9"].name, "per-buyer limit");

        // A limit of 1 unit is broken by the same ledger, and the report says so in spec order.
        let report = check(&CheckInput {
            rules: TargetRules {
                per_buyer_units: Some(1),
                ..TargetRules::default()
            },
            ..limited
        });
        assert_eq!(report.violated(), ["INV-9"]);
    }

    /// `big_correct_sale(n)` as a keyless target would record it: its orders carry no key, and
    /// each buyer sent two of the requests (`key-2b` and `key-2b+1` are buyer `buyer-b`'s).
    fn big_keyless_sale(n: u64) -> (Vec<Attempt>, Ledger, u64) {
        let (mut history, mut ledger, cap) = big_correct_sale(n);
        let buyer_of = |key: &str| {
            let i: u64 = key.trim_start_matches("key-").parse().unwrap();
            format!("buyer-{}", i / 2)
        };
        for attempt in &mut history {
            attempt.buyer = buyer_of(&attempt.idempotency_key);
        }
        for order in &mut ledger.orders {
            order.buyer_id = buyer_of(&order.idempotency_key);
            order.idempotency_key.clear();
        }
        (history, ledger, cap)
    }

    #[test]
    fn checks_two_hundred_thousand_attempts_of_a_keyless_target_with_a_limit() {
        let (history, ledger, cap) = big_keyless_sale(200_000);
        let rules = TargetRules {
            keys_sent: false,
            per_buyer_units: Some(2),
            per_buyer_orders: Some(2),
        };
        let report = check(&CheckInput {
            rules,
            ..CheckInput::new(&history, &ledger, Some(cap))
        });
        assert!(report.none_violated(), "{:#?}", report.violated());
        assert_eq!(report.not_checked(), ["INV-4", "INV-6"]);
        assert!(report.invariants["INV-9"].is_held());
        assert!(
            report.invariants["INV-3"]
                .summary
                .starts_with("all 100000 persisted orders belong to an ok or unknown attempt"),
            "{}",
            report.invariants["INV-3"].summary
        );

        // A limit of one order per buyer: every buyer who got both their requests broke it.
        let report = check(&CheckInput {
            rules: TargetRules {
                per_buyer_orders: Some(1),
                ..rules
            },
            ..CheckInput::new(&history, &ledger, Some(cap))
        });
        assert_eq!(report.violated(), ["INV-9"]);
        assert!(
            report.invariants["INV-9"]
                .summary
                .starts_with("50000 buyers exceed the limit of 2 units and 1 order per buyer"),
            "{}",
            report.invariants["INV-9"].summary
        );
    }
}
