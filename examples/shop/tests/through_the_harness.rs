//! The harness judging the example shop through `targets/example-shop.toml`: it holds on the
//! correct variant and catches the broken one's oversell, at a URL (`--target --profile`) and in
//! `verify`; and fault scenarios run against a shop the harness starts itself from the profile's
//! `[service]` section (Redis killed and back empty, the shop itself killed and restarted).
//!
//! Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 like the other tests, and for
//! the Redis fault a Docker engine (`scripts/docker-setup.sh`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flashsale_example_shop::{Config, Variant, bind, serve};
use flashsale_harness::profile::Profile;
use flashsale_harness::run::{self, RunOptions, RunResult, TargetChoice, TargetProfile};
use flashsale_harness::scenario::Scenario;
use flashsale_harness::verify::{self, Verdict, VerifyOptions};
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const REDIS: &str = "redis://127.0.0.1:6379/";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario(name: &str) -> Scenario {
    Scenario::from_path(&repo().join("scenarios").join(format!("{name}.toml"))).unwrap()
}

/// The shipped profile, its `${VAR}`s from `vars` (never from this process's environment, so
/// tests running at once cannot disturb each other).
fn profile(vars: &[(&str, String)]) -> Arc<Profile> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Arc::new(Profile::load(&repo().join("targets/example-shop.toml"), &lookup).unwrap())
}

/// A shop someone else started: served in-process on a database of its own.
struct RunningShop {
    base_url: String,
    database_url: String,
    database: String,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningShop {
    async fn start(variant: Variant) -> RunningShop {
        let database = format!("shop_harness_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{POSTGRES}/postgres"))
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {database}").as_str())
            .await
            .unwrap();
        let database_url = format!("{POSTGRES}/{database}");
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let config = Config {
            listen: listener.local_addr().unwrap(),
            database_url: database_url.clone(),
            redis_url: REDIS.to_owned(),
            redis_prefix: format!("shop-harness-{}", uuid::Uuid::new_v4().simple()),
            variant,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = serve(config, listener, async {
                let _ = stopped.await;
            })
            .await;
        });
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client
                .get(format!("{base_url}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        RunningShop {
            base_url,
            database_url,
            database,
            stop: Some(stop),
        }
    }

    fn target(&self) -> TargetChoice {
        TargetChoice::Url {
            base_url: self.base_url.clone(),
            profile: TargetProfile::File(profile(&[(
                "SHOP_DATABASE_URL",
                self.database_url.clone(),
            )])),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database).as_str())
                .await;
        }
    }
}

async fn run_on(target: TargetChoice, scenario: Scenario) -> RunResult {
    let out = tempfile::tempdir().unwrap();
    run::run(RunOptions {
        scenario,
        target,
        seed: None,
        out_dir: Some(out.path().join("run")),
        results_root: out.path().to_owned(),
    })
    .await
    .expect("the run sets up")
}

/// The shop the harness starts itself, from the built binary.
fn started_by_the_harness(variant: &str) -> TargetChoice {
    TargetChoice::Service {
        profile: profile(&[
            ("SHOP_BIN", env!("CARGO_BIN_EXE_example-shop").to_owned()),
            ("SHOP_VARIANT", variant.to_owned()),
        ]),
        keep_database: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_url_the_harness_holds_on_the_correct_shop_and_catches_the_broken_one() {
    let correct = RunningShop::start(Variant::Correct).await;
    let result = run_on(correct.target(), scenario("last-ten-units")).await;
    assert!(
        result.check.none_violated(),
        "{:?}",
        result.check.violated()
    );
    assert_eq!(result.ledger.persisted_units(), 10);
    assert!(result.summary.target.contains("example-shop.toml"));
    correct.stop().await;

    let broken = RunningShop::start(Variant::Broken).await;
    let result = run_on(broken.target(), scenario("last-ten-units")).await;
    assert_eq!(
        result.check.violated(),
        ["INV-1"],
        "the oversell, and only it"
    );
    assert!(result.ledger.persisted_units() > 10);
    broken.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_through_the_profile_holds_on_the_correct_shop_and_catches_the_broken_one() {
    for (variant, expected) in [
        (Variant::Correct, Verdict::Held),
        (Variant::Broken, Verdict::Violated),
    ] {
        let shop = RunningShop::start(variant).await;
        let out = tempfile::tempdir().unwrap();
        let report = verify::verify(VerifyOptions {
            target: shop.target(),
            budget: Duration::from_secs(12),
            seed: 5,
            out_dir: out.path().to_owned(),
            only: vec!["contract".into(), "last-unit".into(), "boundary".into()],
            fail_fast: true,
            verbose: false,
        })
        .await
        .expect("verify sets up");
        assert_eq!(report.verdict, expected, "{variant:?}: {report:#?}");
        let contract = report.checks.iter().find(|c| c.name == "contract").unwrap();
        assert!(
            contract.skipped.is_some(),
            "the contract check is not for profile targets"
        );
        shop.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_empty_under_the_shop_the_harness_started_holds() {
    let result = run_on(
        started_by_the_harness("correct"),
        scenario("redis-restarts-empty"),
    )
    .await;
    assert_eq!(result.faults.len(), 1, "{:?}", result.faults_not_applied);
    assert!(
        result.check.none_violated(),
        "{:?}",
        result.check.violated()
    );
    assert_eq!(result.ledger.persisted_units(), 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_killed_and_restarted_mid_sale_loses_nothing_and_sells_the_cap() {
    let result = run_on(
        started_by_the_harness("correct"),
        scenario("service-killed-mid-sale"),
    )
    .await;
    assert_eq!(result.faults.len(), 1, "{:?}", result.faults_not_applied);
    assert_eq!(result.faults[0].kind, "kill-service");
    assert!(
        result.check.none_violated(),
        "{:?}",
        result.check.violated()
    );
    assert_eq!(result.ledger.persisted_units(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_shop_the_harness_started_is_caught() {
    let result = run_on(started_by_the_harness("broken"), scenario("last-ten-units")).await;
    assert!(
        result.check.violated().contains(&"INV-1"),
        "{:?}",
        result.check
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_and_with_a_limit_per_customer_the_shop_is_judged_by_buyer() {
    let shop = RunningShop::start(Variant::Correct).await;
    // The same profile with the key header taken out: the shop then sees no keys at all.
    let text = std::fs::read_to_string(repo().join("targets/example-shop.toml")).unwrap();
    let keyless = text.replace("headers = { X-Request-Key = \"{idempotency_key}\" }\n", "");
    assert_ne!(keyless, text, "the key header was in the profile");
    let database_url = shop.database_url.clone();
    let vars = move |name: &str| (name == "SHOP_DATABASE_URL").then(|| database_url.clone());
    let profile = Profile::parse(&keyless, "keyless-shop.toml", &vars).unwrap();
    assert!(!profile.keys_sent());
    // 1,000 requests from 250 customers (four each, at one instant), one unit per customer.
    let mut scenario = scenario("last-ten-units");
    scenario.buyers.distinct = Some(250);
    scenario.sale.per_buyer_limit = Some(1);
    let result = run_on(
        TargetChoice::Url {
            base_url: shop.base_url.clone(),
            profile: TargetProfile::File(Arc::new(profile)),
        },
        scenario,
    )
    .await;
    assert!(
        result.check.none_violated(),
        "{:?}",
        result.check.violated()
    );
    assert_eq!(
        result.check.not_checked(),
        ["INV-4"],
        "no keys: INV-4 cannot be judged"
    );
    assert!(result.check.invariants["INV-9"].is_held());
    let buyers: std::collections::HashSet<_> =
        result.ledger.orders.iter().map(|o| &o.buyer_id).collect();
    assert_eq!((result.ledger.persisted_units(), buyers.len()), (10, 10));
    shop.stop().await;
}
