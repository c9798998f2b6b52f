//! Target profiles against a live server: the reference server through the built-in openapi
//! profile behaves as `--target` always did, and each kind of wrong profile is refused before any
//! load with its key and line. (The profile of a service shaped unlike ours is proven against
//! `examples/shop` in that crate's tests.)

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use flashsale_harness::profile::{OPENAPI_PROFILE, Profile};
use flashsale_harness::run::{self, RunOptions, TargetChoice, TargetProfile};
use flashsale_harness::scenario::Scenario;
use flashsale_harness::target::{Dependencies, InProcessServer, ServerOverrides};
use flashsale_mutants::InventoryStrategy;

fn flashsale() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flashsale"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd
}

fn small_scenario() -> Scenario {
    Scenario::from_toml_str(
        "name = \"profile-small\"\nseed = 4\n[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\n\
         price_cents = 100\n[buyers]\ncount = 40\nquantity = 1\nconnections = 16\n\
         [arrival]\nmodel = \"burst\"\nopen_after = \"100ms\"\n",
        "profile-small",
    )
    .unwrap()
}

/// The openapi profile with one line replaced, read with the server's token.
fn openapi_with(from: &str, to: &str, token: &str) -> Result<Profile, String> {
    assert!(OPENAPI_PROFILE.contains(from), "{from}");
    let text = OPENAPI_PROFILE.replacen(from, to, 1);
    let token = token.to_owned();
    let vars = move |name: &str| (name == "FLASHSALE_ADMIN_TOKEN").then(|| token.clone());
    Profile::parse(&text, "edited-openapi.toml", &vars).map_err(|e| e.to_string())
}

async fn run_with(server: &InProcessServer, profile: Profile) -> Result<run::RunResult, String> {
    run_into(server, profile, &tempfile::tempdir().unwrap()).await
}

async fn run_into(
    server: &InProcessServer,
    profile: Profile,
    out: &tempfile::TempDir,
) -> Result<run::RunResult, String> {
    run::run(RunOptions {
        scenario: small_scenario(),
        target: TargetChoice::Url {
            base_url: server.base_url.clone(),
            profile: TargetProfile::File(Arc::new(profile)),
        },
        seed: None,
        out_dir: Some(out.path().join("run")),
        results_root: PathBuf::from("results"),
    })
    .await
    .map_err(|e| e.to_string())
}

async fn reference_server() -> InProcessServer {
    InProcessServer::start(
        &Dependencies::from_env(),
        InventoryStrategy::Redis,
        &ServerOverrides::default(),
        false,
    )
    .await
    .expect("the reference server starts (PostgreSQL and Redis running)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_profile_as_a_file_judges_the_reference_server_like_target_does() {
    let server = reference_server().await;
    let profile = openapi_with("name = \"openapi\"", "name = \"copy\"", &server.admin_token)
        .expect("the shipped profile reads");
    let result = run_with(&server, profile).await.expect("the run completes");
    assert!(result.check.all_held(), "{:?}", result.check.violated());
    assert_eq!(result.ledger.persisted_units(), 5, "exactly the cap sold");
    assert!(
        result
            .summary
            .target
            .contains("profile edited-openapi.toml")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointers_that_match_nothing_are_refused_before_any_load() {
    let server = reference_server().await;
    let token = server.admin_token.clone();

    let profile = openapi_with("sale_id = \"/id\"", "sale_id = \"/sale/id\"", &token).unwrap();
    let err = run_with(&server, profile).await.unwrap_err();
    assert!(
        err.contains("setup.sale_id") && err.contains("/sale/id") && err.contains("line"),
        "{err}"
    );

    let profile = openapi_with("orders = \"/orders\"", "orders = \"/records\"", &token).unwrap();
    let err = run_with(&server, profile).await.unwrap_err();
    assert!(
        err.contains("ground_truth.orders") && err.contains("/records"),
        "{err}"
    );

    let profile = openapi_with(
        "quantity_sold = \"/quantity_sold\"",
        "quantity_sold = \"/sold\"",
        &token,
    )
    .unwrap();
    let err = run_with(&server, profile).await.unwrap_err();
    assert!(
        err.contains("ground_truth.counters.quantity_sold") && err.contains("/sold"),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_ground_truth_missing_a_column_is_refused_naming_it() {
    let server = reference_server().await;
    let database_url = format!(
        "postgres://postgres@127.0.0.1:5432/{}",
        server.database_name()
    );
    let sql_truth = format!(
        "[ground_truth]\nkind = \"sql\"\ndatabase_url = \"{database_url}\"\norders = \"SELECT id::text AS order_id, quantity FROM orders WHERE sale_id::text = {{sale_id}}\"\n"
    );
    let start = OPENAPI_PROFILE.find("[ground_truth]").unwrap();
    let text = format!("{}{sql_truth}", &OPENAPI_PROFILE[..start]);
    let token = server.admin_token.clone();
    let vars = move |name: &str| (name == "FLASHSALE_ADMIN_TOKEN").then(|| token.clone());
    let profile = Profile::parse(&text, "sql-truth.toml", &vars).unwrap();
    let err = run_with(&server, profile).await.unwrap_err();
    assert!(
        err.contains("ground_truth.orders") && err.contains("`buyer_id`"),
        "{err}"
    );
    server.shutdown().await;
}

#[test]
fn a_bad_profile_exits_2_naming_the_key_and_line_before_any_load() {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        file.path(),
        OPENAPI_PROFILE.replace("quantity = \"{quantity}\"", "quantity = \"{qty}\""),
    )
    .unwrap();
    let output = flashsale()
        .args(["run", "scenarios/last-ten-units.toml", "--target"])
        .arg("http://127.0.0.1:9")
        .arg("--profile")
        .arg(file.path())
        .env("FLASHSALE_ADMIN_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("buy.body.quantity") && stderr.contains("{qty}") && stderr.contains("line"),
        "{stderr}"
    );

    // A profile without [service] cannot be started by the harness.
    let output = flashsale()
        .args([
            "run",
            "scenarios/last-ten-units.toml",
            "--profile",
            "targets/openapi.toml",
        ])
        .env("FLASHSALE_ADMIN_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[service]") && stderr.contains("--target"),
        "{stderr}"
    );

    // A secret the environment does not have.
    let output = flashsale()
        .args([
            "run",
            "scenarios/last-ten-units.toml",
            "--target",
            "http://127.0.0.1:9",
        ])
        .args(["--profile", "targets/openapi.toml"])
        .env_remove("FLASHSALE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FLASHSALE_ADMIN_TOKEN"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_reads_everything_and_sends_no_buy() {
    let server = reference_server().await;
    let output = tokio::task::spawn_blocking({
        let (url, token) = (server.base_url.clone(), server.admin_token.clone());
        move || {
            flashsale()
                .args([
                    "run",
                    "scenarios/last-ten-units.toml",
                    "--dry-run",
                    "--target",
                ])
                .arg(url)
                .args(["--profile", "targets/openapi.toml"])
                .env("FLASHSALE_ADMIN_TOKEN", token)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("no buy was sent") && stdout.contains("0 orders"),
        "{stdout}"
    );
    server.shutdown().await;
}

/// A fault scenario against a service the profile starts is refused, before anything starts,
/// when the profile lacks the entry the fault needs; the message names the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_the_profile_gives_no_way_to_apply_is_refused_naming_the_entry() {
    let service =
        "\n[service]\nstart = [\"/bin/false\"]\nredis_url = \"redis://127.0.0.1:6379/\"\n";
    let text = format!("{OPENAPI_PROFILE}{service}");
    let vars = |name: &str| (name == "FLASHSALE_ADMIN_TOKEN").then(|| "t".to_owned());
    let profile = Arc::new(Profile::parse(&text, "no-counter-key.toml", &vars).unwrap());
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/");
    for (scenario, entry) in [
        ("redis-failover.toml", "counter_key"),
        ("postgres-blip.toml", "database_url"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let err = run::run(RunOptions {
            scenario: Scenario::from_path(&PathBuf::from(scenarios).join(scenario)).unwrap(),
            target: TargetChoice::Service {
                profile: profile.clone(),
                keep_database: false,
            },
            seed: None,
            out_dir: Some(out.path().join("run")),
            results_root: out.path().to_owned(),
        })
        .await
        .expect_err("refused before anything starts");
        let message = err.to_string();
        assert!(
            message.contains(&format!("[service] {entry}"))
                && message.contains("no-counter-key.toml"),
            "{scenario}: {message}"
        );
    }
}
