//! Helpers for the end-to-end tests in `e2e/`: run a committed scenario file through the harness
//! library against the in-process reference server.

use std::path::{Path, PathBuf};

use flashsale_harness::run::{self, RunOptions, RunResult, TargetChoice};
use flashsale_harness::scenario::Scenario;
use flashsale_harness::target::Dependencies;
use flashsale_mutants::InventoryStrategy;

/// The repository's `scenarios/` directory.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

pub fn load_scenario(file: &str) -> Scenario {
    Scenario::from_path(&scenarios_dir().join(file)).expect("committed scenarios parse")
}

/// Runs `scenario` against the in-process reference server with `strategy`, writing outputs to
/// `out` (a temporary directory in tests).
pub async fn run_in_process(
    scenario: Scenario,
    strategy: InventoryStrategy,
    out: &Path,
) -> RunResult {
    run::run(RunOptions {
        scenario,
        target: TargetChoice::InProcess {
            strategy,
            deps: Dependencies::from_env(),
            keep_database: false,
            replicas: 1,
        },
        seed: None,
        out_dir: Some(out.to_owned()),
        results_root: out.to_owned(),
    })
    .await
    .expect("the run sets up")
}
