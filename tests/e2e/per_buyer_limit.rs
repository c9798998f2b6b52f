//! INV-9 on a real server: `per_buyer_limit` bounds a buyer's units across all their orders. The
//! reference server's ledger enforces it (migration 0004), on both claim paths and through a
//! Redis that restarts empty; `racy-buyer-limit` (the limit checked, then claimed without holding
//! anything) is caught by INV-9 alone — the proof that the checker fails on a real
//! implementation, not only on fixtures.

use flashsale_e2e::{load_scenario, run_in_process};
use flashsale_harness::cli::exit;
use flashsale_harness::history::Outcome;
use flashsale_harness::run::RunResult;
use flashsale_harness::scenario::Scenario;
use flashsale_mutants::InventoryStrategy;

/// Three buyers, four single-unit requests each, at one instant, on a limit of 2 per buyer; the
/// cap is far away, so the limit is the only thing that refuses.
fn three_buyers_four_orders_each() -> Scenario {
    Scenario::from_toml_str(
        r#"
seed = 1
[sale]
cap = 100
per_buyer_limit = 2
[[sale.products]]
id = "limited-sneaker"
price_cents = 4900
[buyers]
count = 12
distinct = 3
quantity = 1
[arrival]
model = "burst"
"#,
        "per-buyer-limit-small",
    )
    .expect("the scenario parses")
}

fn units_per_buyer(result: &RunResult) -> std::collections::BTreeMap<String, u64> {
    let mut units = std::collections::BTreeMap::new();
    for order in &result.ledger.orders {
        *units.entry(order.buyer_id.clone()).or_default() += u64::from(order.quantity);
    }
    units
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_holds_one_buyers_orders_sent_together_to_the_limit() {
    for strategy in [InventoryStrategy::Redis, InventoryStrategy::Postgres] {
        let out = tempfile::tempdir().unwrap();
        let result = run_in_process(three_buyers_four_orders_each(), strategy, out.path()).await;
        let oks = result
            .history
            .iter()
            .filter(|a| a.outcome == Outcome::Ok)
            .count();
        let refused = result
            .history
            .iter()
            .filter(|a| a.code.as_deref() == Some("buyer_limit_reached"))
            .count();
        assert_eq!((oks, refused), (6, 6), "{strategy}: {:#?}", result.history);
        assert!(
            units_per_buyer(&result).values().all(|u| *u == 2),
            "{strategy}: {:?}",
            units_per_buyer(&result)
        );
        assert_eq!(
            result.exit_status(),
            exit::HELD,
            "{strategy}: {:#?}",
            result.check
        );
        assert!(
            result.check.invariants["INV-9"]
                .summary
                .starts_with("limit 2 units per buyer"),
            "{}",
            result.check.invariants["INV-9"].summary
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_per_buyer_scenario_holds_and_the_racy_limit_is_caught() {
    let out = tempfile::tempdir().unwrap();
    let result = run_in_process(
        load_scenario("per-buyer-limit.toml"),
        InventoryStrategy::Redis,
        out.path(),
    )
    .await;
    assert_eq!(result.exit_status(), exit::HELD, "{:#?}", result.check);
    assert!(units_per_buyer(&result).values().all(|u| *u <= 2));

    // The mutant's window is 25 ms between the buyer's check and the claim; a burst of six
    // orders per buyer meets it. On a loaded machine a run could serialize every buyer's orders:
    // up to three runs of the scenario, the last judged.
    let mut runs = 0;
    let caught = loop {
        runs += 1;
        let out = tempfile::tempdir().unwrap();
        let result = run_in_process(
            load_scenario("per-buyer-limit.toml"),
            InventoryStrategy::RacyBuyerLimit,
            out.path(),
        )
        .await;
        if !result.check.violated().is_empty() || runs == 3 {
            break result;
        }
    };
    assert_eq!(caught.check.violated(), ["INV-9"], "{:#?}", caught.check);
    assert_eq!(caught.exit_status(), exit::VIOLATED);
    let inv9 = &caught.check.invariants["INV-9"];
    assert!(
        inv9.summary
            .contains("exceed the limit of 2 units per buyer"),
        "{}",
        inv9.summary
    );
    let cx = inv9.counterexample.as_ref().expect("a counterexample");
    assert!(cx.explanation.contains("holds"), "{}", cx.explanation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_buyer_passes_the_limit_while_redis_restarts_empty() {
    let out = tempfile::tempdir().unwrap();
    let scenario = load_scenario("per-buyer-limit-redis-restarts.toml");
    let result = run_in_process(scenario, InventoryStrategy::Redis, out.path()).await;
    assert!(
        result.faults_not_applied.is_empty(),
        "{:?}",
        result.faults_not_applied
    );
    assert_eq!(result.faults.len(), 1, "the kill was applied");
    assert_eq!(result.exit_status(), exit::HELD, "{:#?}", result.check);
    let units = units_per_buyer(&result);
    assert!(units.values().all(|u| *u <= 2), "{units:?}");
    assert!(
        result
            .history
            .iter()
            .any(|a| a.code.as_deref() == Some("buyer_limit_reached")),
        "the limit refused some orders"
    );
}
