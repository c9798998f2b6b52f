//! Whole scenarios drawn by proptest: the sale, the buyers, their arrival, their retries and
//! reused keys, and a timeline of faults from the fault kinds of docs/faults.md at drawn moments — including
//! "exactly when the last unit goes" — and, in about one case in four, buyer journeys through cart
//! holds (`[journeys]`). Shrinking works toward the simplest alternative of each choice (listed
//! first), so a failing case shrinks to a small cap, few buyers, one fault and no journeys unless
//! the failure needs them.

use std::time::Duration;

use proptest::prelude::*;

use crate::scenario::{
    Arrival, BuyerSpec, Cap, FaultKind, FaultSpec, JourneySpec, OutcomeMix, QuantitySpec,
    RedisMode, RequestSpec, Scenario, ThinkSpec,
};

/// How big and how hostile generated scenarios may be.
#[derive(Debug, Clone)]
pub struct GenProfile {
    pub max_buyers: u32,
    pub max_cap: u64,
    /// Faults need the in-process reference server (and Docker); a `--target` server gets none.
    pub faults: bool,
    /// Draw faults of these kinds only (all kinds when empty): lets a test aim at one hazard.
    pub fault_kinds: Vec<FaultKind>,
    /// Draw buyer journeys through cart holds: only for a target with holds (the reference
    /// server, or a profile with `[holds]`); elsewhere they would be plain buys.
    pub journeys: bool,
    /// Draw buyers who reuse another buyer's idempotency key with another body; off lets a
    /// search aim at a hazard that needs none.
    pub reused_keys: bool,
    /// Draw faults timed from the sale's start as well as faults triggered by the units left.
    /// Off (for a sale with a cap), every fault waits for its sale's last units: a search that
    /// needs a fault while units remain then finds it whatever the machine's speed, where on a
    /// fast machine a small sale sells out before a fault timed in seconds lands.
    pub timed_faults: bool,
}

impl GenProfile {
    /// Small enough for every CI run: a case takes a second or two.
    pub fn ci() -> Self {
        Self {
            max_buyers: 300,
            max_cap: 40,
            faults: true,
            fault_kinds: Vec::new(),
            journeys: true,
            reused_keys: true,
            timed_faults: true,
        }
    }

    /// What `flashsale explore` draws by default.
    pub fn explore(faults: bool) -> Self {
        Self {
            max_buyers: 2000,
            max_cap: 200,
            faults,
            fault_kinds: Vec::new(),
            journeys: true,
            reused_keys: true,
            timed_faults: true,
        }
    }
}

/// Caps biased toward the boundary: besides any cap, caps one below, at and one above a small
/// multiple of 2 or 3, where a multi-unit order meets the last units with *remaining = q − 1, q
/// or q + 1*.
fn cap(max_cap: u64) -> impl Strategy<Value = Cap> {
    let max_cap = max_cap.max(1);
    prop_oneof![
        3 => (1..=max_cap).prop_map(Cap::Limited),
        3 => (1..=4u64, 2..=3u64, 0..=2u64)
            .prop_map(move |(m, q, d)| Cap::Limited((m * q + d).saturating_sub(1).clamp(1, max_cap))),
        1 => Just(Cap::Limited(0)),
        1 => Just(Cap::Limited(1)),
        1 => Just(Cap::Unlimited),
    ]
}

fn buyers(max_buyers: u32, reused_keys: bool) -> impl Strategy<Value = BuyerSpec> {
    let count = prop_oneof![
        3 => 0..=20u32,
        3 => 0..=max_buyers.min(200),
        1 => 0..=max_buyers,
    ];
    // Multi-unit quantities as often as single units: the boundary bugs need them.
    let quantity = prop_oneof![
        2 => Just(QuantitySpec::Fixed(1)),
        2 => (2..=3u32).prop_map(QuantitySpec::Fixed),
        2 => (2..=3u32).prop_map(|max| QuantitySpec::Range { min: 1, max }),
    ];
    // Drawn either way, so turning reuse off changes no other draw of the same seed.
    let reused = prop_oneof![3 => Just(0.0), 1 => Just(0.1), 1 => Just(0.5)]
        .prop_map(move |share| if reused_keys { share } else { 0.0 });
    (count, quantity, 4..=128u32, reused).prop_map(|(count, quantity, connections, reused_keys)| {
        let mut spec = base().buyers;
        spec.count = count;
        spec.quantity = quantity;
        spec.connections = connections;
        spec.reused_keys = reused_keys;
        spec
    })
}

/// The scenario every generated one starts from; fields are then set one by one, so options
/// added to scenario files later keep their defaults here.
fn base() -> Scenario {
    Scenario::from_toml_str(
        "[sale]\ncap = 1\n[[sale.products]]\nid = \"generated-product\"\nprice_cents = 1000\n\
         [buyers]\ncount = 0\nquantity = 1\n",
        "generated",
    )
    .expect("the base scenario is valid")
}

/// Doors open this long after a generated case's load is set up. The pool is warmed before the
/// clock starts, and spawning at most a few thousand buyer tasks takes milliseconds, so 20 ms is
/// ample; the scenario files' default (200 ms) would be most of a short case's wall time (G8).
const GENERATED_OPEN_AFTER: Duration = Duration::from_millis(20);

fn arrival() -> impl Strategy<Value = Arrival> {
    prop_oneof![
        2 => Just(Arrival::Burst {
            open_after: GENERATED_OPEN_AFTER,
        }),
        1 => (100..=1000u32).prop_map(|rate| Arrival::ConstantRate {
            open_after: GENERATED_OPEN_AFTER,
            rate: f64::from(rate),
        }),
    ]
}

fn requests() -> impl Strategy<Value = RequestSpec> {
    (0..=2u32).prop_map(|retries| {
        let mut spec = base().requests;
        spec.timeout = Duration::from_secs(3);
        spec.retries = retries;
        spec.retry_backoff = Duration::from_millis(100);
        spec
    })
}

fn millis(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

/// Share of generated cases with buyer journeys: enough that a campaign of a few dozen cases
/// meets holds several times, few enough that the buy path keeps most of the cases.
pub const JOURNEY_SHARE: f64 = 0.25;

/// Buyer journeys through cart holds: short holds (200–800 ms) and think times around them, so
/// checkouts land both before and after expiry, with mixes from "everyone checks out" to
/// "everyone abandons the cart", and sometimes buyers who keep arriving (and buy at once) after
/// the holds were taken, so units given back by expired holds must sell. `None` (no journeys) is
/// what a case shrinks to first.
fn journeys() -> impl Strategy<Value = Option<JourneySpec>> {
    let mix = |checkout, release, abandon| OutcomeMix {
        checkout,
        release,
        abandon,
    };
    let then = prop::sample::select(vec![
        mix(1.0, 0.0, 0.0),
        mix(0.6, 0.1, 0.3),
        mix(0.0, 0.5, 0.5),
        mix(0.0, 0.0, 1.0),
    ]);
    let spec = (
        prop_oneof![Just(1.0), Just(0.5)],
        prop_oneof![Just(None), millis(200..=1000).prop_map(Some)],
        millis(200..=800),
        millis(0..=100),
        millis(100..=700),
        then,
    )
        .prop_map(
            |(reserve_first, reserve_within, hold_ttl, think_min, think_max, then)| JourneySpec {
                reserve_first,
                reserve_within,
                hold_ttl,
                think: ThinkSpec {
                    min: think_min,
                    max: think_max,
                },
                then,
            },
        );
    prop::option::weighted(JOURNEY_SHARE, spec)
}

/// Every kind the generator draws, simplest to shrink to first.
const ALL_KINDS: [FaultKind; 9] = [
    FaultKind::Kill,
    FaultKind::FlushScripts,
    FaultKind::Rollback,
    FaultKind::Pause,
    FaultKind::Stop,
    FaultKind::Latency,
    FaultKind::Blackhole,
    FaultKind::BlackholeReplies,
    FaultKind::Reset,
];

fn fault(cap: Cap, kinds: Vec<FaultKind>, timed: bool) -> impl Strategy<Value = FaultSpec> {
    let kinds = if kinds.is_empty() {
        ALL_KINDS.to_vec()
    } else {
        kinds
    };
    let kind = prop::sample::select(kinds);
    let limited = cap.as_option().filter(|c| *c > 0);
    let trigger = match limited {
        // "Exactly when the last unit goes" is `when_remaining_below = 1`... or 2: the unit
        // before the last.
        Some(c) if timed => prop_oneof![
            2 => millis(0..=1500).prop_map(|at| (Some(at), None)),
            1 => Just((None, Some(1))),
            1 => (1..=c).prop_map(|k| (None, Some(k))),
        ]
        .boxed(),
        Some(c) => prop_oneof![
            1 => Just((None, Some(1))),
            1 => (1..=c).prop_map(|k| (None, Some(k))),
        ]
        .boxed(),
        None => millis(0..=1500).prop_map(|at| (Some(at), None)).boxed(),
    };
    (
        kind,
        trigger,
        millis(100..=1000),
        millis(150..=400),
        1..=20u64,
    )
        .prop_map(
            |(kind, (at, when_remaining_below), duration, latency, rollback_by)| FaultSpec {
                kind,
                at,
                when_remaining_below,
                duration: (!matches!(kind, FaultKind::Rollback | FaultKind::FlushScripts))
                    .then_some(duration),
                latency: (kind == FaultKind::Latency).then_some(latency),
                rollback_by: (kind == FaultKind::Rollback).then_some(rollback_by),
            },
        )
}

/// Whole scenarios, valid by construction (they pass the scenario file's own checks).
pub fn scenarios(profile: GenProfile) -> impl Strategy<Value = Scenario> {
    let faults_allowed = profile.faults;
    let kinds = profile.fault_kinds.clone();
    let timed_faults = profile.timed_faults;
    let journeys = if profile.journeys {
        journeys().boxed()
    } else {
        Just(None).boxed()
    };
    (
        cap(profile.max_cap),
        buyers(profile.max_buyers, profile.reused_keys),
        arrival(),
        requests(),
        any::<u64>(),
        journeys,
    )
        .prop_flat_map(move |(cap, buyers, arrival, requests, seed, journeys)| {
            let faults = if faults_allowed {
                prop::collection::vec(fault(cap, kinds.clone(), timed_faults), 0..=2).boxed()
            } else {
                Just(Vec::new()).boxed()
            };
            (
                Just(cap),
                Just(buyers),
                Just(arrival),
                Just(requests),
                Just(seed),
                Just(journeys),
                faults,
            )
        })
        .prop_map(|(cap, buyers, arrival, requests, seed, journeys, faults)| {
            let needs_container = faults
                .iter()
                .any(|f| matches!(f.kind, FaultKind::Kill | FaultKind::Stop | FaultKind::Pause));
            let needs_proxy = faults.iter().any(|f| {
                matches!(
                    f.kind,
                    FaultKind::Latency
                        | FaultKind::Blackhole
                        | FaultKind::BlackholeReplies
                        | FaultKind::Reset
                )
            });
            let mut s = base();
            s.seed = Some(seed >> 11);
            s.sale.cap = cap;
            s.buyers = buyers;
            s.arrival = arrival;
            s.requests = requests;
            s.redis.mode = if needs_container || needs_proxy {
                RedisMode::Container
            } else {
                RedisMode::Shared
            };
            s.redis.proxy = needs_proxy;
            s.redis.timeout = (!faults.is_empty()).then_some(Duration::from_millis(100));
            s.faults = faults;
            s.journeys = journeys;
            s
        })
}

/// A scenario in one line, for progress output.
pub fn describe(s: &Scenario) -> String {
    // Read through serde so that arrival models added later need no change here.
    let arrival = serde_json::to_value(&s.arrival)
        .ok()
        .and_then(|v| v["model"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let quantity = match &s.buyers.quantity {
        QuantitySpec::Fixed(q) => format!("q{q}"),
        QuantitySpec::Range { min, max } => format!("q{min}-{max}"),
        QuantitySpec::Sequence { sequence } => format!("q{sequence:?}"),
    };
    let faults: Vec<String> = s.faults.iter().map(FaultSpec::describe).collect();
    let journeys = s
        .journeys
        .as_ref()
        .map(|j| {
            format!(
                ", {:.0}% reserve first ({} holds, then {:.0}% checkout / {:.0}% release / {:.0}% abandon)",
                j.reserve_first * 100.0,
                humantime::format_duration(j.hold_ttl),
                j.then.checkout * 100.0,
                j.then.release * 100.0,
                j.then.abandon * 100.0
            )
        })
        .unwrap_or_default();
    format!(
        "cap {}, {} buyers ({quantity}, {arrival}, {} retries{}{journeys}), faults [{}]",
        s.sale.cap,
        s.buyers.count,
        s.requests.retries,
        if s.buyers.reused_keys > 0.0 {
            format!(", {:.0}% reused keys", s.buyers.reused_keys * 100.0)
        } else {
            String::new()
        },
        faults.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Every generated scenario survives the trip through a scenario file: what `explore`
        /// writes, `run` replays.
        #[test]
        fn generated_scenarios_are_valid_files_that_round_trip(s in scenarios(GenProfile::ci())) {
            let text = toml::to_string(&s).expect("serialises");
            let back = Scenario::from_toml_str(&text, "generated").expect("a valid scenario file");
            prop_assert_eq!(back, s);
        }
    }

    fn multi_unit_on_a_positive_cap(s: &Scenario) -> bool {
        s.buyers.quantity.max() > 1
            && s.sale.cap.as_option().is_some_and(|c| c > 0)
            && s.buyers.count > 0
    }

    #[test]
    fn seed_1_draws_a_multi_unit_quantity_on_a_positive_cap_within_20_cases() {
        // The runner `flashsale explore --seed 1` draws from.
        let mut runner = crate::explore::runner(proptest::test_runner::Config::default(), 1);
        let strategy = scenarios(GenProfile::explore(false));
        let first_20: Vec<Scenario> = (0..20)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect();
        let hits = first_20
            .iter()
            .filter(|s| multi_unit_on_a_positive_cap(s))
            .count();
        assert!(
            hits >= 1,
            "{:#?}",
            first_20.iter().map(describe).collect::<Vec<_>>()
        );
    }

    /// The first `cases` scenarios a deterministic runner draws from `profile`.
    fn drawn(profile: GenProfile, cases: usize) -> Vec<Scenario> {
        let mut runner = TestRunner::deterministic();
        let strategy = scenarios(profile);
        (0..cases)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect()
    }

    #[test]
    fn a_target_without_holds_gets_no_journeys() {
        let profile = GenProfile {
            journeys: false,
            ..GenProfile::ci()
        };
        assert!(drawn(profile, 200).iter().all(|s| s.journeys.is_none()));
    }

    #[test]
    fn without_timed_faults_a_capped_sale_gets_faults_on_its_last_units_only() {
        let profile = GenProfile {
            timed_faults: false,
            ..GenProfile::ci()
        };
        let drawn = drawn(profile, 300);
        let capped_faults: Vec<&FaultSpec> = drawn
            .iter()
            .filter(|s| matches!(s.sale.cap, Cap::Limited(c) if c > 0))
            .flat_map(|s| &s.faults)
            .collect();
        assert!(capped_faults.len() >= 20, "{}", capped_faults.len());
        assert!(
            capped_faults
                .iter()
                .all(|f| f.at.is_none() && f.when_remaining_below.is_some())
        );
    }

    #[test]
    fn caps_cluster_near_small_multiples() {
        let near = drawn(GenProfile::explore(false), 200)
            .iter()
            .filter(|s| {
                s.sale
                    .cap
                    .as_option()
                    .is_some_and(|c| (1..=13).contains(&c))
            })
            .count();
        assert!(near >= 40, "only {near} of 200 caps were small");
    }

    #[test]
    fn the_generator_reaches_the_edges() {
        let drawn = drawn(GenProfile::ci(), 400);
        assert!(drawn.iter().any(|s| s.sale.cap == Cap::Limited(0)));
        assert!(drawn.iter().any(|s| s.sale.cap == Cap::Unlimited));
        assert!(drawn.iter().any(|s| s.buyers.count == 0));
        assert!(drawn.iter().any(|s| s.buyers.reused_keys > 0.0));
        let with_journeys = drawn.iter().filter(|s| s.journeys.is_some()).count();
        assert!(
            (40..=160).contains(&with_journeys),
            "{with_journeys} of 400 cases have journeys (about a quarter expected)"
        );
        for end in [
            |j: &JourneySpec| j.then.checkout == 1.0,
            |j: &JourneySpec| j.then.abandon == 1.0,
            |j: &JourneySpec| j.reserve_within.is_some(),
            |j: &JourneySpec| j.think.max > j.hold_ttl,
        ] {
            assert!(drawn.iter().any(|s| s.journeys.as_ref().is_some_and(end)));
        }
        assert!(
            drawn
                .iter()
                .any(|s| s.faults.iter().any(|f| f.when_remaining_below == Some(1)))
        );
        for kind in [
            "kill",
            "pause",
            "stop",
            "rollback",
            "flush-scripts",
            "latency",
            "blackhole",
            "reset",
        ] {
            assert!(
                drawn
                    .iter()
                    .any(|s| s.faults.iter().any(|f| f.kind.as_str() == kind)),
                "{kind} never drawn"
            );
        }
    }
}
