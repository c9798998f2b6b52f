//! Whole generated scenarios through the harness's own search (`flashsale explore` uses the same).

use flashsale_harness::explore::generate::{GenProfile, describe};
use flashsale_harness::explore::{Found, SearchOptions, search};
use flashsale_harness::run::TargetChoice;
use flashsale_harness::scenario::{Cap, FaultKind};
use flashsale_harness::target::Dependencies;
use flashsale_mutants::InventoryStrategy;
use proptest::test_runner::FileFailurePersistence;

use crate::{cases, runtime};

fn in_process(strategy: InventoryStrategy) -> TargetChoice {
    TargetChoice::InProcess {
        strategy,
        deps: Dependencies::from_env(),
        keep_database: false,
        replicas: 1,
    }
}

fn options(
    strategy: InventoryStrategy,
    profile: GenProfile,
    cases: u32,
    seed: u64,
) -> SearchOptions {
    SearchOptions {
        target: in_process(strategy),
        profile,
        cases,
        seed,
        max_shrink_iters: 24,
        // Failures of the good strategies are kept in the committed regressions file and
        // replayed first on every later run.
        persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/oversell_property.txt",
        ))),
        verbose: true,
    }
}

fn assert_holds(strategy: InventoryStrategy, profile: GenProfile, seed: u64) {
    let rt = runtime();
    let outcome = search(options(strategy, profile, cases(6), seed), rt.handle()).expect("set-up");
    if let Some(Found { minimal, reason }) = outcome.found {
        panic!(
            "{strategy}: {reason} — minimal scenario: {}\n{}",
            describe(&minimal),
            toml::to_string(&minimal).unwrap_or_default()
        );
    }
}

/// Searches until `strategy` breaks one of the `expected` invariants, and returns the shrunk case.
fn assert_caught(
    strategy: InventoryStrategy,
    profile: GenProfile,
    cases: u32,
    seed: u64,
    expected: &[&str],
) -> Found {
    let rt = runtime();
    let mut opts = options(strategy, profile, cases, seed);
    opts.persistence = None;
    let outcome = search(opts, rt.handle()).expect("set-up");
    let found = outcome.found.unwrap_or_else(|| {
        panic!(
            "{strategy} was not caught in {} generated scenarios",
            outcome.cases_run
        )
    });
    eprintln!(
        "{strategy} caught after {} runs: {} — minimal: {}",
        outcome.cases_run,
        found.reason,
        describe(&found.minimal)
    );
    assert!(
        expected.iter().any(|name| found.reason.contains(name)),
        "{strategy}: {} (expected one of {expected:?})",
        found.reason
    );
    found
}

#[test]
fn oversell_property_redis_strategy_holds_every_invariant_under_generated_faults() {
    assert_holds(InventoryStrategy::Redis, GenProfile::ci(), 0x5eed_0001);
}

#[test]
fn oversell_property_postgres_strategy_holds_every_invariant() {
    let mut profile = GenProfile::ci();
    // The PostgreSQL path never touches Redis: Redis faults would only cost time.
    profile.faults = false;
    assert_holds(InventoryStrategy::Postgres, profile, 0x5eed_0002);
}

/// The read-check-write race needs nothing but two buyers at once on the last unit. What it
/// shrinks to (seen here): cap 1 and about a dozen buyers released together — a sale of one unit
/// and a few concurrent shoppers already oversell.
#[test]
fn oversell_property_catches_broken_naive_with_a_small_counterexample() {
    let mut profile = GenProfile::ci();
    profile.faults = false;
    let found = assert_caught(
        InventoryStrategy::BrokenNaive,
        profile,
        20,
        0x5eed_0003,
        &["INV-1"],
    );
    let minimal = &found.minimal;
    assert!(
        matches!(minimal.sale.cap, Cap::Limited(c) if c <= 10),
        "shrunk to a small cap: {}",
        describe(minimal)
    );
    assert!(
        minimal.buyers.count <= 100,
        "shrunk to few buyers: {}",
        describe(minimal)
    );
}

/// The seed's design fails when Redis does: restarted empty, its `GET … or '0'` sells the cap
/// again, and its fallback decides from the lagging quantity_sold. What it shrinks to (seen
/// here): one kill (or stop) while units remain, with a small cap and a few dozen buyers.
/// It also strands units with no fault at all when a buyer reuses another's key with another
/// body (the unit its counter took is never given back: seen here with cap 4 and 5 buyers, half
/// of them reusing keys, in 3 runs of 4); that bug is not this test's, so the search draws no
/// reused keys and the restart is what it must find.
#[test]
fn oversell_property_catches_broken_seed_when_redis_restarts_empty() {
    let mut profile = GenProfile::ci();
    profile.fault_kinds = vec![FaultKind::Kill, FaultKind::Stop];
    profile.reused_keys = false;
    // Faults on the sale's last units only: the restart must land while units remain, and a
    // fault timed in seconds misses that on a fast machine, where the small sales sell out first
    // (a clean-clone CI run of 2026-12-04 missed in all 60 cases with timed faults drawn too).
    profile.timed_faults = false;
    // Depending on when the restart lands, the seed's design oversells (INV-1: the empty counter
    // sells the cap again), strands units (INV-5: its fallback trusts the lagging quantity_sold
    // and answers sold out with units left), or, when the generated buyers reserve first (the
    // seed model lends its holds the correct inventory), leaves its restarted counter
    // disagreeing with the orders (INV-6: seen in CI with cap 37, 148 buyers all reserving, a
    // kill at 143 ms and a stop at 242 ms). All three are the restart's bugs, and the fault
    // assertion below still demands the restart.
    // The search stops at the first case it catches, so the budget of 60 costs time only when
    // the first cases miss.
    let found = assert_caught(
        InventoryStrategy::BrokenSeed,
        profile,
        60,
        0x5eed_0004,
        &["INV-1", "INV-5", "INV-6"],
    );
    let minimal = &found.minimal;
    assert!(
        minimal
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::Kill | FaultKind::Stop)),
        "it takes a Redis restart to break it: {}",
        describe(minimal)
    );
    assert!(minimal.faults.len() <= 2, "{}", describe(minimal));
}

/// Holds left out of availability let reserves and buys together pass the cap; the generated
/// journeys (about one case in four) must find it. What it shrinks to: a small cap, buyers who
/// all reserve, and no fault.
#[test]
fn oversell_property_catches_holds_not_counted_through_generated_journeys() {
    let mut profile = GenProfile::ci();
    profile.faults = false;
    let found = assert_caught(
        InventoryStrategy::HoldsNotCounted,
        profile,
        40,
        0x5eed_0005,
        &["INV-7", "INV-1"],
    );
    assert!(
        found.minimal.journeys.is_some(),
        "it takes journeys to break it: {}",
        describe(&found.minimal)
    );
}
