//! The checker can fail: the deliberately broken read-check-write strategy is caught overselling
//! under the very scenario the reference server passes.

use flashsale_e2e::{load_scenario, run_in_process};
use flashsale_harness::cli::exit;
use flashsale_mutants::InventoryStrategy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_naive_is_caught_overselling_last_ten_units() {
    let out = tempfile::tempdir().unwrap();
    let result = run_in_process(
        load_scenario("last-ten-units.toml"),
        InventoryStrategy::BrokenNaive,
        out.path(),
    )
    .await;
    assert_eq!(result.exit_status(), exit::VIOLATED);
    assert!(
        result.check.violated().contains(&"INV-1"),
        "{:?}",
        result.check.violated()
    );
    assert!(result.ledger.persisted_units() > 10);
    let inv1 = &result.check.invariants["INV-1"];
    let counterexample = inv1.counterexample.as_ref().expect("a counterexample");
    assert!(
        !counterexample.orders.is_empty(),
        "it names the orders beyond the cap"
    );
    assert!(
        !counterexample.attempts.is_empty(),
        "and the attempts that made them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_seed_holds_without_faults() {
    // The seed's design is only wrong when Redis fails; without faults its Lua claim is atomic.
    // (Catching it under faults is the Redis-failure suite's job.) On a loaded machine a claim
    // slower than the Redis timeout *is* a fault — the seed's fallback then oversells — so the
    // timeout is generous here: this test is about Redis answering.
    let out = tempfile::tempdir().unwrap();
    let mut scenario = load_scenario("last-ten-units.toml");
    scenario.redis.timeout = Some(std::time::Duration::from_secs(10));
    let result = run_in_process(scenario, InventoryStrategy::BrokenSeed, out.path()).await;
    assert_eq!(
        result.exit_status(),
        exit::HELD,
        "{:?}",
        result.check.violated()
    );
    assert_eq!(result.ledger.persisted_units(), 10);
}
