//! The reference server as a fleet (issue 17, first part): `--replicas N` runs N servers on one
//! PostgreSQL database and one Redis, buyers spread across them by buyer. The claim paths hold
//! across replicas (every invariant of `last-ten-units.toml` with 3 replicas), the summary shows
//! each replica's share, a broken strategy is still caught when its races span servers, and
//! neither Redis restarting empty under three replicas nor one replica crashing mid-sale breaks an
//! invariant.

use flashsale_e2e::load_scenario;
use flashsale_harness::cli::exit;
use flashsale_harness::run::{self, RunOptions, RunResult, TargetChoice};
use flashsale_harness::target::Dependencies;
use flashsale_mutants::InventoryStrategy;

async fn run_replicas(strategy: InventoryStrategy, replicas: usize) -> RunResult {
    run_file_on_replicas("last-ten-units.toml", strategy, replicas).await
}

async fn run_file_on_replicas(
    file: &str,
    strategy: InventoryStrategy,
    replicas: usize,
) -> RunResult {
    let out = tempfile::tempdir().unwrap();
    run::run(RunOptions {
        scenario: load_scenario(file),
        target: TargetChoice::InProcess {
            strategy,
            deps: Dependencies::from_env(),
            keep_database: false,
            replicas,
        },
        seed: None,
        out_dir: Some(out.path().to_owned()),
        results_root: out.path().to_owned(),
    })
    .await
    .expect("the run sets up")
}

#[tokio::test]
async fn three_replicas_sell_exactly_the_last_ten_units_and_each_serves_its_buyers() {
    let result = run_replicas(InventoryStrategy::Redis, 3).await;
    assert_eq!(result.exit_status(), exit::HELD, "{:#?}", result.check);
    assert!(result.check.all_held(), "{:#?}", result.check);
    let replicas = result
        .summary
        .replicas
        .as_ref()
        .expect("a run with replicas reports each one");
    assert_eq!(replicas.len(), 3);
    let urls: std::collections::HashSet<&str> =
        replicas.iter().map(|r| r.base_url.as_str()).collect();
    assert_eq!(urls.len(), 3, "three distinct servers");
    for r in replicas {
        // The hash split gives each replica about a third of the 1,000 buyers.
        assert!(r.buyers > 200, "{r:?}");
        assert!(r.attempts >= r.buyers, "{r:?}");
    }
    assert_eq!(replicas.iter().map(|r| r.buyers).sum::<u64>(), 1_000);
    assert_eq!(
        replicas.iter().map(|r| r.units_acknowledged).sum::<u64>(),
        10
    );
}

/// Redis SIGKILLed and back empty under three replicas (Docker): each replica fails over and
/// reseeds on its own, and together they still sell exactly the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_empty_under_three_replicas_holds_every_invariant() {
    let result =
        run_file_on_replicas("redis-restarts-empty.toml", InventoryStrategy::Redis, 3).await;
    assert!(
        result.faults_not_applied.is_empty(),
        "{:?}",
        result.faults_not_applied
    );
    assert_eq!(result.exit_status(), exit::HELD, "{:#?}", result.check);
    assert!(result.check.all_held(), "{:#?}", result.check);
    assert_eq!(result.summary.replicas.as_ref().map(Vec::len), Some(3));
}

/// One of three replicas crashes mid-sale and comes back (`replica-killed.toml`, NEM-kill-replica):
/// its buyers get no answer meanwhile, the fleet never passes the cap, keeps every acknowledged
/// order (including any whose answer the crash lost) and sells out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_sale_breaks_no_invariant() {
    let result = run_file_on_replicas("replica-killed.toml", InventoryStrategy::Redis, 3).await;
    assert!(
        result.faults_not_applied.is_empty(),
        "{:?}",
        result.faults_not_applied
    );
    assert_eq!(result.faults.len(), 1);
    assert_eq!(result.exit_status(), exit::HELD, "{:#?}", result.check);
    assert!(result.check.all_held(), "{:#?}", result.check);
    assert!(
        result.summary.outcomes.unknown > 0,
        "the killed replica's buyers went unanswered while it was down"
    );
    assert_eq!(result.ledger.persisted_units(), 600, "sold out");
}

/// A kill-replica fault without replicas is refused before anything starts.
#[tokio::test]
async fn kill_replica_without_replicas_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let refused = run::run(RunOptions {
        scenario: load_scenario("replica-killed.toml"),
        target: TargetChoice::InProcess {
            strategy: InventoryStrategy::Redis,
            deps: Dependencies::from_env(),
            keep_database: false,
            replicas: 1,
        },
        seed: None,
        out_dir: Some(out.path().to_owned()),
        results_root: out.path().to_owned(),
    })
    .await
    .expect_err("one server has no replica to kill");
    assert!(refused.to_string().contains("--replicas 2"), "{refused}");
}

#[tokio::test]
async fn broken_naive_oversells_across_replicas_and_is_caught() {
    // The scenario, not the assertion, is retried: a race needs the requests to overlap, and a
    // loaded machine can serialise a run by chance.
    for attempt in 1..=3 {
        let result = run_replicas(InventoryStrategy::BrokenNaive, 2).await;
        if result.exit_status() == exit::VIOLATED {
            assert!(
                result.check.violated().contains(&"INV-1"),
                "{:#?}",
                result.check
            );
            return;
        }
        eprintln!("attempt {attempt}: no oversell this time; running the scenario again");
    }
    panic!("broken-naive never oversold across two replicas in three runs");
}

/// Any fleet: `--target URL,URL` spreads the buyers across the servers listed (here two replicas
/// of the reference server the test starts itself), sets the sale up through the first.
#[tokio::test]
async fn a_target_of_several_urls_spreads_buyers_across_the_fleet() {
    use flashsale_harness::run::TargetProfile;
    use flashsale_harness::target::{InProcessServer, ServerOverrides};
    let fleet = InProcessServer::start_replicas(
        &Dependencies::from_env(),
        InventoryStrategy::Redis,
        &ServerOverrides::default(),
        false,
        2,
    )
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let result = run::run(RunOptions {
        scenario: load_scenario("last-ten-units.toml"),
        target: TargetChoice::Url {
            base_url: fleet.replica_urls.join(","),
            profile: TargetProfile::Contract {
                admin_token: fleet.admin_token.clone(),
            },
        },
        seed: None,
        out_dir: Some(out.path().to_owned()),
        results_root: out.path().to_owned(),
    })
    .await
    .expect("the run sets up");
    let urls = fleet.replica_urls.clone();
    fleet.shutdown().await;
    assert_eq!(result.exit_status(), exit::HELD, "{:#?}", result.check);
    let replicas = result
        .summary
        .replicas
        .as_ref()
        .expect("per-replica figures");
    let seen: Vec<&str> = replicas.iter().map(|r| r.base_url.as_str()).collect();
    assert_eq!(seen, urls.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(replicas.iter().all(|r| r.attempts > 0), "{replicas:?}");
}
