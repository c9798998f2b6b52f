//! Redis and PostgreSQL failures (NEM-…): the reference server holds every invariant under each
//! fault scenario, every planned fault is recorded as applied, and the seed document's design
//! (`broken-seed`) is caught overselling. These runs need Docker (scripts/docker-setup.sh;
//! scripts/test.sh, the README's test command, calls it): without it they fail loudly, never run without their faults.

use flashsale_e2e::{load_scenario, run_in_process};
use flashsale_harness::cli::exit;
use flashsale_harness::history::Outcome;
use flashsale_harness::run::RunResult;
use flashsale_mutants::InventoryStrategy;

async fn run(file: &str, strategy: InventoryStrategy) -> RunResult {
    let out = tempfile::tempdir().unwrap();
    let scenario = load_scenario(file);
    let planned = scenario.faults.len();
    let result = run_in_process(scenario, strategy, out.path()).await;
    assert!(
        result.faults_not_applied.is_empty(),
        "{file}: planned faults did not take effect: {:?}",
        result.faults_not_applied
    );
    assert_eq!(
        result.faults.len(),
        planned,
        "{file}: every fault is recorded as applied"
    );
    let oks = result
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Ok)
        .count();
    let unknowns = result
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Unknown)
        .count();
    let by_postgres = result
        .ledger
        .orders
        .iter()
        .filter(|o| o.decided_by.starts_with("postgres"))
        .count();
    eprintln!(
        "{file} [{strategy}]: {oks} ok, {unknowns} unknown, {} units persisted, {by_postgres} orders by the PostgreSQL path, faults {:?}",
        result.ledger.persisted_units(),
        result
            .faults
            .iter()
            .map(|f| (f.kind.clone(), f.started_us, f.ended_us))
            .collect::<Vec<_>>()
    );
    result
}

fn assert_held(file: &str, result: &RunResult) {
    assert_eq!(
        result.exit_status(),
        exit::HELD,
        "{file}: {:?}",
        result.check.violated()
    );
    let cap = result
        .ledger
        .inventory
        .cap
        .expect("fault scenarios are capped");
    assert_eq!(
        result.ledger.persisted_units(),
        cap,
        "{file}: sold out exactly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarts_empty_holds_every_invariant() {
    let result = run("redis-restarts-empty.toml", InventoryStrategy::Redis).await;
    assert_held("redis-restarts-empty", &result);
    assert!(
        result.ledger.orders.iter().any(|o| o.decided_by == "redis"),
        "Redis decided again once it was back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hangs_holds_every_invariant() {
    let result = run("redis-hangs.toml", InventoryStrategy::Redis).await;
    assert_held("redis-hangs", &result);
    assert!(
        result
            .ledger
            .orders
            .iter()
            .any(|o| o.decided_by == "postgres-fallback")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dies_mid_sale_and_postgres_carries_the_rest() {
    let result = run("redis-dies-mid-sale.toml", InventoryStrategy::Redis).await;
    assert_held("redis-dies-mid-sale", &result);
    assert_eq!(result.faults[0].ended_us, None, "Redis never came back");
    let by_postgres = result
        .ledger
        .orders
        .iter()
        .filter(|o| o.decided_by == "postgres-fallback")
        .count();
    assert!(by_postgres > 0, "the PostgreSQL path sold after Redis died");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_redis_link_holds_every_invariant() {
    let result = run("flaky-redis-link.toml", InventoryStrategy::Redis).await;
    assert_held("flaky-redis-link", &result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_blip_loses_no_acknowledgement() {
    let result = run("postgres-blip.toml", InventoryStrategy::Redis).await;
    assert_held("postgres-blip", &result);
    assert!(
        result
            .history
            .iter()
            .any(|a| a.code.as_deref() == Some("unavailable")),
        "the server answered 503 while PostgreSQL was down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_seed_is_caught_overselling_when_redis_restarts_empty() {
    let result = run("redis-restarts-empty.toml", InventoryStrategy::BrokenSeed).await;
    assert_eq!(result.exit_status(), exit::VIOLATED);
    assert!(
        result.check.violated().contains(&"INV-1"),
        "{:?}",
        result.check.violated()
    );
    assert!(result.check.invariants["INV-1"].counterexample.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_seed_is_caught_overselling_when_its_fallback_sells_behind_redis_back() {
    // While the link is down, the seed's fallback sells from quantity_sold; Redis is never told,
    // and sells its whole cap once the link heals.
    let result = run("flaky-redis-link.toml", InventoryStrategy::BrokenSeed).await;
    assert_eq!(result.exit_status(), exit::VIOLATED);
    assert!(
        result.check.violated().contains(&"INV-1"),
        "{:?}",
        result.check.violated()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_failover_rollback_flush_and_stop_hold_every_invariant() {
    let result = run("redis-failover.toml", InventoryStrategy::Redis).await;
    assert_held("redis-failover", &result);
    let kinds: Vec<&str> = result.faults.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["rollback", "flush-scripts", "stop"]);
    assert!(
        result.faults[0].detail.contains("set back"),
        "{}",
        result.faults[0].detail
    );
}
