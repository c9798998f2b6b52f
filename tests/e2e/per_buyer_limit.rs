//! INV-9 on a real server: the reference server checks `per_buyer_limit` against each order on
//! its own (`quantity_above_limit` in `server/src/http/buyer.rs`), not against what the buyer
//! already holds, so one buyer's requests sent together each pass. A scenario with fewer
//! distinct buyers than requests (`buyers.distinct`) shows it, and INV-9 catches it: the proof
//! that its checker fails on a real implementation, not only on fixtures. When the server learns
//! to count a buyer's units across orders, this test fails and should become a "holds" test.

use flashsale_e2e::run_in_process;
use flashsale_harness::cli::exit;
use flashsale_harness::history::Outcome;
use flashsale_harness::scenario::Scenario;
use flashsale_mutants::InventoryStrategy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_requests_of_one_buyer_pass_a_per_order_limit_and_inv9_catches_them() {
    // Three buyers, four single-unit requests each, at one instant, on a limit of 2 per buyer.
    // The cap is far away, so every request is answered ok and each buyer ends with 4 units.
    let scenario = Scenario::from_toml_str(
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
        "per-buyer-limit",
    )
    .expect("the scenario parses");
    let out = tempfile::tempdir().unwrap();
    let result = run_in_process(scenario, InventoryStrategy::Redis, out.path()).await;

    let buyers: std::collections::BTreeSet<&str> =
        result.history.iter().map(|a| a.buyer.as_str()).collect();
    assert_eq!(buyers.len(), 3, "{buyers:?}");
    assert!(
        result.history.iter().all(|a| a.outcome == Outcome::Ok),
        "the server refuses no request under the cap: {:#?}",
        result.history
    );
    assert_eq!(result.check.violated(), ["INV-9"], "{:#?}", result.check);
    assert_eq!(result.exit_status(), exit::VIOLATED);
    let inv9 = &result.check.invariants["INV-9"];
    assert!(
        inv9.summary
            .starts_with("3 buyers exceed the limit of 2 units per buyer (3 in the ledger, 3 in"),
        "{}",
        inv9.summary
    );
    let cx = inv9.counterexample.as_ref().unwrap();
    assert_eq!(cx.orders.len(), 12);
    assert!(
        cx.explanation
            .ends_with("buyer buyer-00000 holds 4 units in 4 orders in the ledger and was acknowledged 4 units in 4 orders"),
        "{}",
        cx.explanation
    );
}
