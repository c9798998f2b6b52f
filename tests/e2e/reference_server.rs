//! The reference server holds every invariant under the foundation scenarios, on both good paths.

use flashsale_e2e::{load_scenario, run_in_process};
use flashsale_harness::cli::exit;
use flashsale_harness::history::Outcome;
use flashsale_mutants::InventoryStrategy;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_ten_units_sells_exactly_ten_on_the_redis_path() {
    // Every run must hold every invariant; that the Redis path decided at least one order also
    // depends on the machine: a claim whose order takes longer to store than the burst lasts
    // gives its units back and the rest are decided by the ledger (`postgres-recheck`), which is
    // correct too. The clean-clone CI saw all ten so once. So the scenario (never the assertion)
    // runs again, at most three times, until one run shows a Redis decision.
    let mut attempt = 0;
    let (out, result) = loop {
        attempt += 1;
        let out = tempfile::tempdir().unwrap();
        let result = run_in_process(
            load_scenario("last-ten-units.toml"),
            InventoryStrategy::Redis,
            out.path(),
        )
        .await;
        assert_eq!(
            result.exit_status(),
            exit::HELD,
            "{:?}",
            result.check.violated()
        );
        if attempt == 3 || result.ledger.orders.iter().any(|o| o.decided_by == "redis") {
            break (out, result);
        }
        eprintln!("attempt {attempt}: no order decided by Redis; running the scenario again");
    };
    assert_eq!(
        result.exit_status(),
        exit::HELD,
        "{:?}",
        result.check.violated()
    );
    let ok = result
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Ok)
        .count();
    assert_eq!(ok, 10);
    assert_eq!(
        result.history.len(),
        1000,
        "one attempt per buyer: nothing timed out"
    );
    assert_eq!(result.ledger.persisted_units(), 10);
    // The Redis path decided (a claim slower than the Redis timeout on a loaded machine fails
    // over to PostgreSQL, which is correct too, so not necessarily every one).
    assert!(result.ledger.orders.iter().any(|o| o.decided_by == "redis"));

    // The outputs are on disk and say the same.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["schema_version"], 2);
    assert_eq!(summary["outcomes"]["ok"], 10);
    assert_eq!(summary["units_persisted"], 10);
    for name in ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5"] {
        assert_eq!(summary["invariants"][name]["verdict"], "held", "{name}");
    }
    let history = std::fs::read_to_string(out.path().join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 1000);
    assert!(out.path().join("latency-ok.hgrm").exists());
    assert!(out.path().join("latency-sold_out.hgrm").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_ten_units_sells_exactly_ten_on_the_postgres_path() {
    let out = tempfile::tempdir().unwrap();
    let result = run_in_process(
        load_scenario("last-ten-units.toml"),
        InventoryStrategy::Postgres,
        out.path(),
    )
    .await;
    assert_eq!(
        result.exit_status(),
        exit::HELD,
        "{:?}",
        result.check.violated()
    );
    assert_eq!(result.ledger.persisted_units(), 10);
    assert!(
        result
            .ledger
            .orders
            .iter()
            .all(|o| o.decided_by == "postgres")
    );
    // The server's own metrics, scraped into the summary, agree with what the harness saw.
    let metrics = result
        .summary
        .server_metrics
        .as_ref()
        .expect("the reference server exposes /metrics");
    let count =
        |outcome: &str| -> u64 { metrics.buys.get(outcome).map_or(0, |p| p.values().sum()) };
    assert_eq!(count("created"), 10, "{metrics:?}");
    assert_eq!(
        metrics.buys["created"].get("postgres"),
        Some(&10),
        "{metrics:?}"
    );
    assert_eq!(
        count("sold_out"),
        result.summary.outcomes.rejected,
        "{metrics:?}"
    );
    assert!(metrics.ledger_batches["claim"].batches >= 1, "{metrics:?}");
    assert_eq!(metrics.breaker_after, ["closed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_unit_leaves_less_than_any_refused_quantity() {
    let out = tempfile::tempdir().unwrap();
    let result = run_in_process(
        load_scenario("multi-unit.toml"),
        InventoryStrategy::Redis,
        out.path(),
    )
    .await;
    assert_eq!(
        result.exit_status(),
        exit::HELD,
        "{:?}",
        result.check.violated()
    );
    let sold = result.ledger.persisted_units();
    assert!(sold <= 25);
    let smallest_refused = result
        .history
        .iter()
        .filter(|a| a.code.as_deref() == Some("sold_out"))
        .map(|a| u64::from(a.quantity))
        .min()
        .expect("demand is far above the cap");
    assert!(
        25 - sold < smallest_refused,
        "{sold} sold, smallest refusal {smallest_refused}"
    );
}
