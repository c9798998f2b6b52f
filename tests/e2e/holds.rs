//! INV-7 on a real server: buyer journeys through cart holds (issue 15) on the reference server,
//! both claim paths. `cart-holds.toml` (a reserve-then-buy crowd on the last units, 30 % abandon)
//! and `holds-expire-under-load.toml` (short holds, demand going on past their expiry) must hold
//! every invariant, INV-7 included, and actually exercise what INV-7 judges: checkouts that
//! became orders, holds that expired and gave their units back, buyers after that who got them.
//! A target whose profile has no `[holds]` leaves INV-7 NOT CHECKED (never held), and Redis
//! restarting empty while holds are live forgets none of them (Docker). Each hold mutant is caught
//! by INV-7.

use std::sync::Arc;

use flashsale_e2e::{load_scenario, run_in_process};
use flashsale_harness::checker::Verdict;
use flashsale_harness::cli::exit;
use flashsale_harness::history::{HoldAttempt, HoldOp, Outcome};
use flashsale_harness::profile::{OPENAPI_PROFILE, Profile};
use flashsale_harness::run::{self, RunOptions, TargetChoice, TargetProfile};
use flashsale_harness::scenario::Scenario;
use flashsale_harness::target::{Dependencies, InProcessServer, ServerOverrides};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_without_holds_leaves_inv7_not_checked_and_its_buyers_buy() {
    let server = InProcessServer::start(
        &Dependencies::from_env(),
        InventoryStrategy::Redis,
        &ServerOverrides::default(),
        false,
    )
    .await
    .expect("the reference server starts (PostgreSQL and Redis running)");
    // The contract's profile without its [holds] section.
    let text = &OPENAPI_PROFILE[..OPENAPI_PROFILE
        .find("\n# Cart holds (issue 15)")
        .expect("targets/openapi.toml has a [holds] section")];
    let token = server.admin_token.clone();
    let vars = move |name: &str| (name == "FLASHSALE_ADMIN_TOKEN").then(|| token.clone());
    let profile = Profile::parse(text, "openapi-without-holds.toml", &vars).unwrap();
    assert!(profile.holds.is_none());
    let scenario = Scenario::from_toml_str(
        "seed = 3\n[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 100\n\
         [buyers]\ncount = 30\nquantity = 1\n[arrival]\nmodel = \"burst\"\n\
         [journeys]\nreserve_first = 1.0\nhold_ttl = \"1s\"\n\
         think = { min = \"10ms\", max = \"20ms\" }\nthen = { checkout = 1.0 }\n",
        "journeys-without-holds",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let result = run::run(RunOptions {
        scenario,
        target: TargetChoice::Url {
            base_url: server.base_url.clone(),
            profile: TargetProfile::File(Arc::new(profile)),
        },
        seed: None,
        out_dir: Some(out.path().join("run")),
        results_root: out.path().to_owned(),
    })
    .await
    .expect("the run completes");
    server.shutdown().await;

    let inv7 = &result.check.invariants["INV-7"];
    assert_eq!(inv7.verdict, Verdict::NotChecked, "{inv7:?}");
    assert!(inv7.summary.contains("no [holds]"), "{}", inv7.summary);
    assert!(!result.check.all_held(), "a not-checked INV-7 is not held");
    assert_eq!(result.check.not_checked(), ["INV-7"]);
    assert_eq!(result.exit_status(), exit::HELD, "no invariant violated");
    assert_eq!(result.history.len(), 30, "every buyer bought at once");
    assert_eq!(result.ledger.persisted_units(), 5);
    assert!(hold_ops(&out.path().join("run")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_survive_redis_restarting_empty() {
    // Every run must hold every invariant. Whether a run also shows what this test is about — a
    // hold taken before the kill checked out after it, and the sale sold out to the last unit —
    // depends on timing (a hold abandoned near the end may expire after the last buyer, leaving a
    // unit unsold, which INV-5 allows): the scenario is run again, at most three times, until one
    // shows both.
    for attempt in 1..=3 {
        let out = tempfile::tempdir().unwrap();
        let scenario = load_scenario("holds-redis-restarts.toml");
        let result = run_in_process(scenario, InventoryStrategy::Redis, out.path()).await;
        assert!(
            result.faults_not_applied.is_empty() && result.faults.len() == 1,
            "the kill took effect: {:?}",
            result.faults_not_applied
        );
        assert_eq!(result.exit_status(), exit::HELD, "{:#?}", result.check);
        assert!(result.check.all_held(), "{:#?}", result.check);
        let ops = hold_ops(out.path());
        let (kill_from, kill_to) = (
            result.faults[0].started_us,
            result.faults[0].ended_us.unwrap(),
        );
        // Holds taken before the kill were checked out after Redis came back empty.
        let before: std::collections::HashSet<&str> = ops
            .iter()
            .filter(|op| {
                op.kind == HoldOp::Reserve
                    && op.outcome == Outcome::Ok
                    && op.completed_us < kill_from
            })
            .filter_map(|op| op.hold_id.as_deref())
            .collect();
        let across = ops
            .iter()
            .filter(|op| {
                op.kind == HoldOp::Checkout
                    && op.outcome == Outcome::Ok
                    && op.sent_us > kill_to
                    && op.hold_id.as_deref().is_some_and(|id| before.contains(id))
            })
            .count();
        let cap = result.summary.scenario.sale.cap.as_option().unwrap();
        let sold = result.ledger.persisted_units();
        assert!(sold <= cap);
        if across > 0 && sold == cap {
            return;
        }
        eprintln!(
            "attempt {attempt}: {across} holds taken before the kill checked out after it \
             ({} taken before), {sold} of {cap} units sold; running the scenario again",
            before.len()
        );
    }
    panic!(
        "in three runs, none both checked out a hold taken before the kill after Redis came back \
         and sold the sale out"
    );
}

/// Each hold mutant (`mutants/src/serial_holds.rs`) on `holds-expire-under-load.toml` is caught:
/// exit 1, INV-7 violated, with the counterexample of what it breaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hold_mutant_is_caught_by_inv7() {
    for (strategy, expected) in [
        (
            InventoryStrategy::CheckoutAfterExpiry,
            "checkouts of expired holds succeeded",
        ),
        (
            InventoryStrategy::ExpiryReturnsTwice,
            "exceed the cap of 40 counting live holds",
        ),
        (
            InventoryStrategy::HoldsNotCounted,
            "exceed the cap of 40 counting live holds",
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let scenario = load_scenario("holds-expire-under-load.toml");
        let result = run_in_process(scenario, strategy, out.path()).await;
        assert_eq!(result.exit_status(), exit::VIOLATED, "{strategy}");
        let inv7 = &result.check.invariants["INV-7"];
        assert!(inv7.is_violated(), "{strategy}: {inv7:?}");
        let explanation = &inv7.counterexample.as_ref().unwrap().explanation;
        assert!(explanation.contains(expected), "{strategy}: {explanation}");
    }
}
