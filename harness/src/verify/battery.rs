//! The battery of `flashsale verify`: named checks, each a handful of scenarios built to make one
//! class of bug fire. Building them needs no server, so the battery is tested on its own.

use std::time::Duration;

use crate::scenario::{
    Arrival, Cap, JourneySpec, OutcomeMix, QuantitySpec, RequestSpec, Scenario, ThinkSpec,
};

/// How a check tells a bug: the usual invariants, or those plus the sale-window rule (HAZ-13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    Invariants,
    InvariantsAndWindow,
}

/// One named check of the battery.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    /// What it provokes, one line, for the verdict table and the README.
    pub provokes: &'static str,
    /// Its scenarios; repetitions go through them in turn, each with a new seed.
    pub scenarios: Vec<Scenario>,
    pub judge: Judge,
}

/// The name of the generated cases, which follow the battery in the table.
pub const GENERATED: &str = "generated";
/// What the generated cases provoke.
pub const GENERATED_PROVOKES: &str =
    "whatever the fixed checks did not think of: drawn caps, buyers, quantities, arrivals, retries";

/// The contract-conformance check: not a scenario run, but the contract's refusals, public view
/// and lifecycle judged over HTTP once (`crate::conformance`), before the battery.
pub const CONTRACT: &str = "contract";
/// What the contract check provokes.
pub const CONTRACT_PROVOKES: &str = "the contract's bad inputs, wrong tokens, closed sales, expire and activate; each refusal must change nothing";

/// Every check name `--checks` accepts, in battery order, `generated` last.
pub const NAMES: [&str; 11] = [
    CONTRACT,
    "boundary",
    "last-unit",
    "same-key-at-once",
    "same-buyer-at-once",
    "holds",
    "retries-after-unknown",
    "volume",
    "window-edges",
    "unlimited-and-cap-0",
    GENERATED,
];

/// Largest quantity the boundary check puts on the last units.
pub const BOUNDARY_MAX_QUANTITY: u32 = 3;
/// One-unit buyers before the boundary buyer, and after it to drain what is left.
const BOUNDARY_LEADING: u32 = 3;
const BOUNDARY_DRAINING: u32 = 4;

/// A bug firing on one claim in this many must fire in the volume check's one run...
pub const VOLUME_RATE_ONE_IN: u32 = 1000;
/// ...with at least this probability.
pub const VOLUME_PROBABILITY: f64 = 0.99;
/// The volume check's cap (every buyer asks for one unit, so ok claims = cap when it sells out).
pub const VOLUME_CAP: u64 = 5000;

/// Claims a run needs so that a bug firing independently on each claim with probability `rate`
/// fires at least once with `probability`: the smallest n with 1 − (1 − rate)ⁿ ≥ probability.
pub fn claims_needed(rate: f64, probability: f64) -> u64 {
    ((1.0 - probability).ln() / (1.0 - rate).ln()).ceil() as u64
}

/// The smallest per-claim bug rate that `claims` claims catch with `probability`: the p with
/// 1 − (1 − p)^claims = probability; 1 when there were no claims.
pub fn detectable_rate(claims: u64, probability: f64) -> f64 {
    if claims == 0 {
        return 1.0;
    }
    1.0 - (1.0 - probability).powf(1.0 / claims as f64)
}

/// The fixed checks, in battery order. `only` keeps the named ones (all when empty).
pub fn checks(only: &[String]) -> Vec<Check> {
    let all = vec![
        boundary(),
        last_unit(),
        same_key_at_once(),
        same_buyer_at_once(),
        holds(),
        retries_after_unknown(),
        volume(),
        window_edges(),
        unlimited_and_cap_0(),
    ];
    all.into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|n| n == c.name))
        .collect()
}

/// The scenario every check starts from (one product, cap 1, no buyers), then set field by field
/// so options added to scenario files later keep their defaults here.
fn base(name: &str) -> Scenario {
    Scenario::from_toml_str(
        "[sale]\ncap = 1\n[[sale.products]]\nid = \"verify-product\"\nprice_cents = 1000\n\
         [buyers]\ncount = 0\nquantity = 1\n",
        name,
    )
    .expect("the base scenario is valid")
}

fn burst() -> Arrival {
    Arrival::Burst {
        open_after: Duration::from_millis(200),
    }
}

fn closed(concurrency: u32) -> Arrival {
    Arrival::Closed {
        open_after: Duration::from_millis(200),
        concurrency,
        think_time: Duration::ZERO,
    }
}

/// The remaining counts the boundary check puts a quantity-`q` buyer on: q − 1 (must be
/// refused), q (takes the last units), q + 1 (leaves one), and 0 (nothing left).
pub fn boundary_remaining(q: u32) -> Vec<u32> {
    let mut r = vec![0, q - 1, q, q + 1];
    r.dedup();
    r
}

fn boundary() -> Check {
    let mut scenarios = Vec::new();
    for q in 2..=BOUNDARY_MAX_QUANTITY {
        for r in boundary_remaining(q) {
            let mut s = base(&format!("verify-boundary-q{q}-r{r}"));
            s.sale.cap = Cap::Limited(u64::from(BOUNDARY_LEADING + r));
            let mut sequence = vec![1; BOUNDARY_LEADING as usize];
            sequence.push(q);
            sequence.extend(std::iter::repeat_n(1, BOUNDARY_DRAINING as usize));
            s.buyers.count = sequence.len() as u32;
            s.buyers.quantity = QuantitySpec::Sequence { sequence };
            // One buyer at a time, in index order: the quantity-q buyer meets exactly r units.
            s.arrival = closed(1);
            s.buyers.connections = 1;
            scenarios.push(s);
        }
    }
    let mut s = base("verify-boundary-burst");
    s.sale.cap = Cap::Limited(7);
    s.buyers.count = 300;
    s.buyers.quantity = QuantitySpec::Range {
        min: 1,
        max: BOUNDARY_MAX_QUANTITY,
    };
    s.arrival = burst();
    scenarios.push(s);
    Check {
        name: "boundary",
        provokes: "a multi-unit order meeting the last units: remaining = 0, q-1, q, q+1 for q = 2..3",
        scenarios,
        judge: Judge::Invariants,
    }
}

fn last_unit() -> Check {
    let scenarios = [1, 2]
        .into_iter()
        .map(|cap| {
            let mut s = base(&format!("verify-last-unit-cap{cap}"));
            s.sale.cap = Cap::Limited(cap);
            s.buyers.count = 2000;
            s.arrival = burst();
            s
        })
        .collect();
    Check {
        name: "last-unit",
        provokes: "2,000 buyers at one instant on a cap of 1 and of 2",
        scenarios,
        judge: Judge::Invariants,
    }
}

fn same_key_at_once() -> Check {
    let mut same_body = base("verify-same-key-same-body");
    same_body.sale.cap = Cap::Unlimited;
    same_body.buyers.count = 60;
    same_body.buyers.copies = 8;
    same_body.arrival = burst();
    let mut limited = same_body.clone();
    limited.name = "verify-same-key-same-body-cap".to_owned();
    limited.sale.cap = Cap::Limited(20);
    let mut other_body = base("verify-same-key-other-body");
    other_body.sale.cap = Cap::Unlimited;
    other_body.buyers.count = 400;
    other_body.buyers.quantity = QuantitySpec::Range { min: 1, max: 3 };
    other_body.buyers.reused_keys = 0.5;
    other_body.arrival = burst();
    Check {
        name: "same-key-at-once",
        provokes: "one idempotency key sent 8 times at once with one body, and reused with other bodies",
        scenarios: vec![same_body, limited, other_body],
        judge: Judge::Invariants,
    }
}

/// Buyers with a per-buyer limit sending several orders at one instant, each with its own key:
/// a limit checked per order, or checked and then claimed without holding anything, lets a
/// buyer's orders pass it together (INV-9).
fn same_buyer_at_once() -> Check {
    let limited = |name: &str, cap: Cap, limit: u32, count: u32, distinct: u32, max_q: u32| {
        let mut s = base(name);
        s.sale.cap = cap;
        s.sale.per_buyer_limit = Some(limit);
        s.buyers.count = count;
        s.buyers.distinct = Some(distinct);
        s.buyers.quantity = QuantitySpec::Range { min: 1, max: max_q };
        s.arrival = burst();
        s
    };
    Check {
        name: "same-buyer-at-once",
        provokes: "a per-buyer limit of 2 or 3 with each buyer sending 6 orders at one instant, under a cap and unlimited",
        scenarios: vec![
            limited("verify-same-buyer-cap", Cap::Limited(120), 2, 240, 40, 2),
            limited("verify-same-buyer-unlimited", Cap::Unlimited, 3, 180, 30, 3),
            limited(
                "verify-same-buyer-sells-out",
                Cap::Limited(25),
                2,
                300,
                50,
                1,
            ),
        ],
        judge: Judge::Invariants,
    }
}

/// Cart holds (INV-7) on the last units: holds checked out just before and just after they
/// expire, abandoned carts whose units must come back and sell to the buyers still arriving, and
/// a burst of multi-unit holds on a cap of 5. Run only on targets with holds.
fn holds() -> Check {
    let journeys = |within_ms: Option<u64>, ttl_ms: u64, think_ms: (u64, u64), then| JourneySpec {
        reserve_first: 1.0,
        reserve_within: within_ms.map(Duration::from_millis),
        hold_ttl: Duration::from_millis(ttl_ms),
        think: ThinkSpec {
            min: Duration::from_millis(think_ms.0),
            max: Duration::from_millis(think_ms.1),
        },
        then,
    };
    let mix = |checkout, release, abandon| OutcomeMix {
        checkout,
        release,
        abandon,
    };
    let requests = || RequestSpec {
        timeout: Duration::from_secs(3),
        retries: 1,
        retry_backoff: Duration::from_millis(50),
    };

    // Reserve in the first half second, then buyers keep coming for another second and buy at
    // once: a third of the carts are abandoned and their units must sell to them.
    let mut last_units = base("verify-holds-last-units");
    last_units.sale.cap = Cap::Limited(12);
    last_units.buyers.count = 300;
    last_units.buyers.quantity = QuantitySpec::Range { min: 1, max: 2 };
    last_units.arrival = Arrival::ConstantRate {
        open_after: Duration::from_millis(200),
        rate: 200.0,
    };
    last_units.requests = requests();
    last_units.journeys = Some(journeys(Some(500), 400, (0, 300), mix(0.6, 0.1, 0.3)));

    // 200 ms holds and 100-400 ms of thinking: most checkouts meet an expired hold, some a live
    // one a moment before it expires.
    let mut expiring = base("verify-holds-expiring");
    expiring.sale.cap = Cap::Limited(10);
    expiring.buyers.count = 300;
    expiring.arrival = Arrival::ConstantRate {
        open_after: Duration::from_millis(200),
        rate: 250.0,
    };
    expiring.requests = requests();
    expiring.journeys = Some(journeys(Some(400), 200, (100, 400), mix(0.7, 0.0, 0.3)));

    // Everyone reserves 1-3 units at one instant on a cap of 5, then checks out.
    let mut burst_boundary = base("verify-holds-burst");
    burst_boundary.sale.cap = Cap::Limited(5);
    burst_boundary.buyers.count = 150;
    burst_boundary.buyers.quantity = QuantitySpec::Range {
        min: 1,
        max: BOUNDARY_MAX_QUANTITY,
    };
    burst_boundary.arrival = burst();
    burst_boundary.requests = requests();
    burst_boundary.journeys = Some(journeys(None, 300, (0, 200), mix(1.0, 0.0, 0.0)));

    Check {
        name: "holds",
        provokes: "cart holds on the last units: checkouts just before and after expiry (200-400 ms holds), abandoned carts whose units must sell, 1-3 unit holds at one instant on a cap of 5",
        scenarios: vec![last_units, expiring, burst_boundary],
        judge: Judge::Invariants,
    }
}

fn retries_after_unknown() -> Check {
    let scenarios = [2u64, 10]
        .into_iter()
        .map(|timeout_ms| {
            let mut s = base(&format!("verify-retries-timeout-{timeout_ms}ms"));
            s.sale.cap = Cap::Limited(300);
            s.buyers.count = 500;
            s.arrival = burst();
            s.requests.timeout = Duration::from_millis(timeout_ms);
            s.requests.retries = 4;
            s.requests.retry_backoff = Duration::from_millis(5);
            s
        })
        .collect();
    Check {
        name: "retries-after-unknown",
        provokes: "client timeouts (2 ms, 10 ms) shorter than the answers, 4 retries with the same key",
        scenarios,
        judge: Judge::Invariants,
    }
}

fn volume() -> Check {
    let mut s = base("verify-volume");
    s.sale.cap = Cap::Limited(VOLUME_CAP);
    s.buyers.count = VOLUME_CAP as u32 + 500;
    s.arrival = burst();
    s.requests.timeout = Duration::from_secs(30);
    Check {
        name: "volume",
        provokes: "5,000 claims in one run: a bug on 1 claim in 1,000 fires with >= 99 % probability",
        scenarios: vec![s],
        judge: Judge::Invariants,
    }
}

fn window_edges() -> Check {
    // Buyers arrive at a constant rate from doors open, before the sale opens, through its
    // window, and on after it closed (an expired sale).
    let edges = |name: &str, opens_after_ms: u64, window_ms: u64, rate: f64, count: u32| {
        let mut s = base(name);
        s.sale.cap = Cap::Unlimited;
        s.sale.opens_after = Some(Duration::from_millis(opens_after_ms));
        s.sale.window = Duration::from_millis(window_ms);
        s.buyers.count = count;
        s.arrival = Arrival::ConstantRate {
            open_after: Duration::from_millis(200),
            rate,
        };
        s
    };
    Check {
        name: "window-edges",
        provokes: "buys just before a sale opens, at its opening and closing instants, and after it expired",
        scenarios: vec![
            edges("verify-window-edges", 300, 300, 400.0, 480),
            edges("verify-window-edges-short", 100, 100, 1000.0, 400),
        ],
        judge: Judge::InvariantsAndWindow,
    }
}

fn unlimited_and_cap_0() -> Check {
    let mut scenarios = Vec::new();
    for (cap, label) in [(Cap::Unlimited, "unlimited"), (Cap::Limited(0), "cap0")] {
        let mut open = base(&format!("verify-{label}-burst"));
        open.sale.cap = cap;
        open.buyers.count = 500;
        open.buyers.quantity = QuantitySpec::Range { min: 1, max: 3 };
        open.arrival = burst();
        let mut shut = open.clone();
        shut.name = format!("verify-{label}-closed");
        shut.buyers.count = 200;
        shut.arrival = closed(8);
        scenarios.extend([open, shut]);
    }
    Check {
        name: "unlimited-and-cap-0",
        provokes: "an unlimited sale and a cap-0 sale, under a burst and under closed arrival",
        scenarios,
        judge: Judge::Invariants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_of_every_check_is_valid_and_round_trips_through_toml() {
        for check in checks(&[]) {
            assert!(
                !check.scenarios.is_empty(),
                "{} has no scenario",
                check.name
            );
            for s in &check.scenarios {
                let text = toml::to_string(s).unwrap();
                let back = Scenario::from_toml_str(&text, "x")
                    .unwrap_or_else(|e| panic!("{} / {}: {e}\n{text}", check.name, s.name));
                assert_eq!(&back, s, "{}", s.name);
            }
        }
    }

    #[test]
    fn the_names_list_contract_then_the_battery_in_order_then_generated() {
        let names: Vec<&str> = checks(&[]).iter().map(|c| c.name).collect();
        assert_eq!(NAMES[0], CONTRACT);
        assert_eq!(names, NAMES[1..NAMES.len() - 1]);
        assert_eq!(NAMES.last(), Some(&GENERATED));
        let one = checks(&["volume".to_owned()]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "volume");
    }

    /// Replays the closed, one-at-a-time order of a boundary scenario on a plain counter: the
    /// remaining count the quantity-q buyer meets.
    fn remaining_met_by_the_big_buyer(s: &Scenario) -> Option<(u32, u64)> {
        let QuantitySpec::Sequence { sequence } = &s.buyers.quantity else {
            return None;
        };
        let mut remaining = s.sale.cap.as_option()?;
        for i in 0..s.buyers.count as usize {
            let q = sequence[i % sequence.len()];
            if q > 1 {
                return Some((q, remaining));
            }
            remaining = remaining.saturating_sub(u64::from(q));
        }
        None
    }

    #[test]
    fn boundary_puts_every_quantity_on_q_minus_1_q_and_q_plus_1_remaining() {
        let check = boundary();
        let met: Vec<(u32, u64)> = check
            .scenarios
            .iter()
            .filter_map(remaining_met_by_the_big_buyer)
            .collect();
        for q in 2..=BOUNDARY_MAX_QUANTITY {
            for r in [0, q - 1, q, q + 1] {
                assert!(
                    met.contains(&(q, u64::from(r))),
                    "q {q} never meets {r} remaining: {met:?}"
                );
            }
        }
        for s in &check.scenarios {
            if matches!(s.buyers.quantity, QuantitySpec::Sequence { .. }) {
                assert!(
                    matches!(s.arrival, Arrival::Closed { concurrency: 1, .. }),
                    "{} must send one buyer at a time",
                    s.name
                );
            }
        }
    }

    #[test]
    fn the_holds_check_meets_expiry_and_demand_after_it() {
        let check = holds();
        assert!(check.scenarios.iter().all(|s| s.journeys.is_some()));
        // Some think times end after the hold expired, some before.
        assert!(check.scenarios.iter().any(|s| {
            let j = s.journeys.as_ref().unwrap();
            j.think.min < j.hold_ttl && j.think.max > j.hold_ttl
        }));
        // Buyers keep arriving after the last reserve and after its expiry, so units given back
        // must sell (INV-7's last rule has demand to judge).
        for s in check.scenarios.iter().filter(|s| {
            s.journeys
                .as_ref()
                .is_some_and(|j| j.reserve_within.is_some())
        }) {
            let j = s.journeys.as_ref().unwrap();
            let last_send = s.arrival.offset_of(s.buyers.count - 1).unwrap();
            let last_expiry = j.reserve_within.unwrap() + j.think.max.max(j.hold_ttl);
            assert!(last_send > last_expiry, "{}", s.name);
        }
    }

    #[test]
    fn the_volume_run_has_enough_claims_for_one_bug_in_a_thousand() {
        let needed = claims_needed(1.0 / f64::from(VOLUME_RATE_ONE_IN), VOLUME_PROBABILITY);
        assert_eq!(needed, 4603);
        let s = &volume().scenarios[0];
        assert!(s.sale.cap.as_option().unwrap() >= needed);
        assert!(u64::from(s.buyers.count) >= VOLUME_CAP);
        assert_eq!(s.buyers.quantity, QuantitySpec::Fixed(1));
        let rate = detectable_rate(VOLUME_CAP, VOLUME_PROBABILITY);
        assert!(rate < 1.0 / 1000.0 && rate > 1.0 / 1100.0, "{rate}");
        assert_eq!(detectable_rate(0, 0.99), 1.0);
    }

    #[test]
    fn window_edges_send_before_the_opening_and_after_the_close() {
        for s in &window_edges().scenarios {
            let opens = s.sale.opens_after.unwrap();
            let closes = opens + s.sale.window;
            let last = s.arrival.offset_of(s.buyers.count - 1).unwrap();
            assert!(s.arrival.offset_of(1).unwrap() < opens, "{}", s.name);
            assert!(last > closes + closes / 2, "{}", s.name);
        }
    }
}
