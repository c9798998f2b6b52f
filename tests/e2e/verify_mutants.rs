//! `flashsale verify` catches every mutant of the catalogue (mutants/src/) with its battery,
//! naming the invariant the mutant breaks, and the counterexample it writes replays: the
//! scenario file, run again with its seed on a fresh server of the same strategy, fails again.
//!
//! The budget is cut from the command's default 3 minutes to keep CI bounded, and `--fail-fast`
//! stops at the first violation; a mutant that escaped would show as a verdict of `held` in
//! each of the (at most three) campaigns a test runs.

use std::time::Duration;

use flashsale_harness::run::{self, RunOptions, TargetChoice};
use flashsale_harness::scenario::Scenario;
use flashsale_harness::target::Dependencies;
use flashsale_harness::verify::{self, Verdict, VerifyOptions};
use flashsale_mutants::InventoryStrategy;

/// Enough for the checks before `volume` (a few seconds each on a debug build) and one volume
/// run (about 30 s on a debug build).
const BUDGET: Duration = Duration::from_secs(45);

async fn caught_and_replayed(strategy: InventoryStrategy, invariant: &str) {
    let out = tempfile::tempdir().unwrap();
    let target = TargetChoice::InProcess {
        strategy,
        deps: Dependencies::from_env(),
        keep_database: false,
        replicas: 1,
    };
    // Some mutants break only when requests interleave (eight copies of a key at one instant);
    // a loaded 2-core machine can serialize a whole campaign. A campaign that caught nothing is
    // run again with the next seed (at most three campaigns); the verdict of the last is judged.
    let mut campaigns = 0;
    let report = loop {
        campaigns += 1;
        let report = verify::verify(VerifyOptions {
            target: target.clone(),
            budget: BUDGET,
            seed: 6 + campaigns,
            out_dir: out.path().join(format!("campaign-{campaigns}")),
            only: Vec::new(),
            fail_fast: true,
            verbose: false,
        })
        .await
        .expect("verify sets up");
        if report.verdict != Verdict::Held || campaigns == 3 {
            break report;
        }
        eprintln!("{strategy}: campaign {campaigns} caught nothing on this machine; once more");
    };
    assert_eq!(report.verdict, Verdict::Violated, "{strategy}: {report:#?}");
    let failing = report
        .checks
        .iter()
        .find(|c| c.counterexample.is_some())
        .expect("a failing check has a counterexample");
    let example = failing.counterexample.as_ref().unwrap();
    assert!(
        failing.violated.contains(invariant),
        "{strategy}: check {} violated {:?}, expected {invariant}",
        failing.name,
        failing.violated
    );
    eprintln!(
        "{strategy}: caught by {} after {} run(s) in {} ms ({}); replay: {}",
        failing.name, failing.runs, report.elapsed_ms, invariant, example.replay
    );

    // The replay command's file and seed, run as `flashsale run` would.
    assert!(
        example.replay.contains(&format!("--inventory {strategy}")),
        "{}",
        example.replay
    );
    let scenario = Scenario::from_path(&example.path).expect("the counterexample file parses");
    // A race replays with the same seed but not always with the same interleaving: up to three
    // runs of the replay, the last one judged.
    let mut replays = 0;
    let replayed = loop {
        replays += 1;
        let replay_dir = out.path().join(format!("replay-{replays}"));
        let replayed = run::run(RunOptions {
            scenario: scenario.clone(),
            target: target.clone(),
            seed: Some(example.seed),
            out_dir: Some(replay_dir.clone()),
            results_root: replay_dir,
        })
        .await
        .expect("the replay sets up");
        if replayed.check.violated().contains(&invariant) || replays == 3 {
            break replayed;
        }
    };
    assert!(
        replayed.check.violated().contains(&invariant),
        "{strategy}: the replay violated {:?}, expected {invariant}",
        replayed.check.violated()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_oversell_at_boundary_as_inv1() {
    caught_and_replayed(InventoryStrategy::OversellAtBoundary, "INV-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_ack_without_order_as_inv2() {
    caught_and_replayed(InventoryStrategy::AckWithoutOrder, "INV-2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_order_answered_sold_out_as_inv3() {
    caught_and_replayed(InventoryStrategy::OrderAnsweredSoldOut, "INV-3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_racy_idempotency_as_inv4() {
    caught_and_replayed(InventoryStrategy::RacyIdempotency, "INV-4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_unit_without_order_as_inv5() {
    caught_and_replayed(InventoryStrategy::UnitWithoutOrder, "INV-5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_racy_buyer_limit_as_inv9() {
    caught_and_replayed(InventoryStrategy::RacyBuyerLimit, "INV-9").await;
}

// The hold mutants keep every rule of the buy path: only `verify`'s `holds` check (buyer
// journeys through cart holds) can catch them, and it must name INV-7.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_checkout_after_expiry_as_inv7() {
    caught_and_replayed(InventoryStrategy::CheckoutAfterExpiry, "INV-7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_expiry_returning_units_twice_as_inv7() {
    caught_and_replayed(InventoryStrategy::ExpiryReturnsTwice, "INV-7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_holds_not_counted_as_inv7() {
    caught_and_replayed(InventoryStrategy::HoldsNotCounted, "INV-7").await;
}
