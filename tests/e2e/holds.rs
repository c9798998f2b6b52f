//! INV-7 on a real server: buyer journeys through cart holds (issue 15) on the reference server,
//! both claim paths. `cart-holds.toml` (a reserve-then-buy crowd on the last units, 30 % abandon)
//! and `holds-expire-under-load.toml` (short holds, demand going on past their expiry) must hold
//! every invariant, INV-7 included, and actually exercise what INV-7 judges: checkouts that
//! became orders, holds that expired and gave their units back, buyers after that who got them.

use flashsale_e2e::{load_scenario, run_in_process};
use flashsale_harness::cli::exit;
use flashsale_harness::history::{HoldAttempt, HoldOp, Outcome};
use flashsale_mutants::InventoryStrategy;

fn hold_ops(dir: &std::path::Path) -> Vec<HoldAttempt> {
    std::fs::read_to_string(dir.join("holds.jsonl"))
        .expect("a run with journeys writes holds.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a hold operation per line"))
        .collect()
}

async fn holds_every_invariant(file: &str) {
    for strategy in [InventoryStrategy::Redis, InventoryStrategy::Postgres] {
        let out = tempfile::tempdir().unwrap();
        let result = run_in_process(load_scenario(file), strategy, out.path()).await;
        assert_eq!(
            result.exit_status(),
            exit::HELD,
            "{file} on {strategy}: {:#?}",
            result.check
        );
        assert!(
            result.check.all_held(),
            "{file} on {strategy}: {:#?}",
            result.check
        );
        let inv7 = &result.check.invariants["INV-7"];
        assert!(inv7.is_held(), "{file} on {strategy}: {inv7:?}");

        let ops = hold_ops(out.path());
        let count = |kind: HoldOp, outcome: Outcome| {
            ops.iter()
                .filter(|op| op.kind == kind && op.outcome == outcome)
                .count()
        };
        assert!(
            count(HoldOp::Reserve, Outcome::Ok) > 0,
            "{file} on {strategy}"
        );
        assert!(
            count(HoldOp::Checkout, Outcome::Ok) > 0,
            "{file} on {strategy}"
        );
        // Checkouts made orders, decided through a hold.
        assert!(
            result
                .ledger
                .orders
                .iter()
                .any(|o| o.decided_by.starts_with("hold-")),
            "{file} on {strategy}: no order came from a checkout"
        );
        // Holds expired and the sale still sold exactly the cap.
        assert!(
            inv7.summary.contains(" expired, 0 live)") && !inv7.summary.contains(", 0 expired"),
            "{file} on {strategy}: {}",
            inv7.summary
        );
        let cap = result.summary.scenario.sale.cap.as_option().unwrap();
        assert_eq!(
            result.ledger.persisted_units(),
            cap,
            "{file} on {strategy}: units stranded in holds"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_holds_hold_every_invariant_on_both_paths() {
    holds_every_invariant("cart-holds.toml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_expiring_under_load_hold_every_invariant_on_both_paths() {
    holds_every_invariant("holds-expire-under-load.toml").await;
}
