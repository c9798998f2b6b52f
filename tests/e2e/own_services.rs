//! A machine with nothing prepared: when nothing answers where the harness looks for PostgreSQL
//! and Redis and no URL is given, it starts both in containers, runs the seed scenario on them
//! (every invariant held), and removes them afterwards. The addresses looked at are free ports,
//! so the machine's own services, if running, are neither used nor disturbed.

use std::sync::Mutex;

use flashsale_e2e::load_scenario;
use flashsale_harness::cli::exit;
use flashsale_harness::run::{self, RunOptions, TargetChoice};
use flashsale_harness::target::dependencies::{Defaults, Source, provide_with};
use flashsale_mutants::InventoryStrategy;

fn docker_answers() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A loopback port nothing listens on (bound, then released).
fn silent_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn container_exists(id: &str) -> bool {
    std::process::Command::new("docker")
        .args(["container", "inspect", id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_answering_the_harness_starts_its_own_services_and_removes_them() {
    if !docker_answers() {
        eprintln!(
            "NOT CHECKED: no Docker engine answers, so the harness could not start its own \
             services here (scripts/docker-setup.sh installs and starts one)"
        );
        return;
    }
    let defaults = Defaults {
        database_url: format!("postgres://postgres@127.0.0.1:{}/postgres", silent_port()),
        redis_url: format!("redis://127.0.0.1:{}/", silent_port()),
    };
    let said = Mutex::new(Vec::new());
    let provided = provide_with(&|_| None, &defaults, &|line| {
        said.lock().unwrap().push(line)
    })
    .await
    .expect("the containers start");
    let said = said.into_inner().unwrap().join("\n");
    assert!(
        said.contains("starting PostgreSQL in a container")
            && said.contains("starting Redis in a container"),
        "the console says what is started: {said}"
    );
    assert!(matches!(provided.postgres, Source::Container { .. }));
    assert!(matches!(provided.redis, Source::Container { .. }));
    assert_ne!(provided.deps.database_url, defaults.database_url);

    let out = tempfile::tempdir().unwrap();
    let result = run::run(RunOptions {
        scenario: load_scenario("last-ten-units.toml"),
        target: TargetChoice::InProcess {
            strategy: InventoryStrategy::Redis,
            deps: provided.deps.clone(),
            keep_database: false,
            replicas: 1,
        },
        seed: None,
        out_dir: Some(out.path().to_owned()),
        results_root: out.path().to_owned(),
    })
    .await
    .expect("the run sets up on the started services");
    assert_eq!(
        result.exit_status(),
        exit::HELD,
        "{:?}",
        result.check.violated()
    );
    assert_eq!(result.ledger.persisted_units(), 10);

    let ids = provided.container_ids();
    assert_eq!(ids.len(), 2);
    drop(provided);
    for id in ids {
        assert!(!container_exists(&id), "container {id} is removed");
    }
}
