//! Property-based exploration: generated scenarios run one after another against a server until
//! an invariant breaks; the failing scenario is then shrunk to a minimal one and written out as an
//! ordinary scenario file that `flashsale run` replays.
//!
//! The same search backs the `oversell_property` tests and `flashsale explore`. A shrunk case
//! only counts as failing if it fails twice in a row, so the minimal case written out is one that
//! reproduces, not a lucky race.

pub mod generate;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use proptest::test_runner::{
    Config, FailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use tokio::runtime::Handle;

use self::generate::{GenProfile, describe};
use crate::run::{self, RunError, RunOptions, TargetChoice};
use crate::scenario::Scenario;

/// What to explore.
#[derive(Debug)]
pub struct SearchOptions {
    pub target: TargetChoice,
    pub profile: GenProfile,
    pub cases: u32,
    pub seed: u64,
    /// How many shrinking steps at most (each is a whole run).
    pub max_shrink_iters: u32,
    /// Where to keep found failures so the next search replays them first (committed
    /// `proptest-regressions` files); `None` keeps nothing.
    pub persistence: Option<Box<dyn FailurePersistence>>,
    /// Print one line per case.
    pub verbose: bool,
}

/// A scenario that broke an invariant, shrunk.
#[derive(Debug, Clone)]
pub struct Found {
    pub minimal: Scenario,
    /// Why it failed: the invariants violated.
    pub reason: String,
}

/// What a search ended with.
#[derive(Debug)]
pub struct SearchOutcome {
    pub cases_run: u32,
    pub found: Option<Found>,
}

/// Runs up to `cases` generated scenarios; on the first violation, shrinks it. Must be called
/// from a blocking context (`spawn_blocking`, or a plain test thread) with a handle to a
/// multi-threaded runtime: every case is a full async run.
pub fn search(options: SearchOptions, runtime: &Handle) -> Result<SearchOutcome, RunError> {
    let config = Config {
        cases: options.cases,
        max_shrink_iters: options.max_shrink_iters,
        failure_persistence: options.persistence,
        // Every case is a real run; the default 1024 global rejects never apply here.
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&options.seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = generate::scenarios(options.profile);
    let cases = Cell::new(0u32);
    let shrinking = Cell::new(false);
    let setup_error: RefCell<Option<RunError>> = RefCell::new(None);
    // The smallest scenario seen failing. proptest reports the value its shrinker stopped at,
    // which for a timing-dependent failure may be one that passed; this is one that failed.
    let last_failing: RefCell<Option<Scenario>> = RefCell::new(None);
    let scratch = tempdir_for_cases();

    let outcome = runner.run(&strategy, |scenario| {
        if setup_error.borrow().is_some() {
            return Ok(());
        }
        cases.set(cases.get() + 1);
        let attempts = if shrinking.get() { 2 } else { 1 };
        let mut violated = Vec::new();
        for _ in 0..attempts {
            match run_case(&scenario, &options.target, runtime, &scratch) {
                Ok(v) if v.is_empty() => {
                    if options.verbose {
                        eprintln!(
                            "  case {:>3}: held      {}",
                            cases.get(),
                            describe(&scenario)
                        );
                    }
                    return Ok(());
                }
                Ok(v) => violated = v,
                Err(err) => {
                    *setup_error.borrow_mut() = Some(err);
                    return Ok(());
                }
            }
        }
        if options.verbose {
            eprintln!(
                "  case {:>3}: VIOLATED {} — {}",
                cases.get(),
                violated.join(", "),
                describe(&scenario)
            );
        }
        shrinking.set(true);
        *last_failing.borrow_mut() = Some(scenario.clone());
        Err(TestCaseError::fail(format!(
            "violated {}",
            violated.join(", ")
        )))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(err) = setup_error.into_inner() {
        return Err(err);
    }
    let found = match outcome {
        Ok(()) => None,
        Err(TestError::Fail(reason, reported)) => Some(Found {
            minimal: last_failing.into_inner().unwrap_or(reported),
            reason: reason.to_string(),
        }),
        Err(TestError::Abort(reason)) => {
            return Err(RunError::Setup(format!("the search was aborted: {reason}")));
        }
    };
    Ok(SearchOutcome {
        cases_run: cases.get(),
        found,
    })
}

/// A scratch directory of this search's own: searches may run side by side in one process (the
/// property tests do), and each case's outputs are deleted as soon as it has been judged.
fn tempdir_for_cases() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flashsale-explore-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Runs one case; returns the invariants it violated.
fn run_case(
    scenario: &Scenario,
    target: &TargetChoice,
    runtime: &Handle,
    scratch: &Path,
) -> Result<Vec<String>, RunError> {
    let out = scratch.join("case");
    let result = runtime.block_on(run::run(RunOptions {
        scenario: scenario.clone(),
        target: target.clone(),
        seed: None,
        out_dir: Some(out.clone()),
        results_root: scratch.to_owned(),
    }))?;
    let _ = std::fs::remove_dir_all(&out);
    Ok(result
        .check
        .violated()
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// Writes `found` as a scenario file that `flashsale run` replays, with a header saying where it
/// came from.
pub fn write_scenario(path: &Path, found: &Found, provenance: &str) -> std::io::Result<()> {
    let mut minimal = found.minimal.clone();
    minimal.name = "explore-minimal".to_owned();
    let body = toml::to_string(&minimal).map_err(std::io::Error::other)?;
    let header = format!(
        "# Minimal failing case found by `flashsale explore` ({provenance}).\n\
         # It {}: {}.\n# Replay: flashsale run {}\n\n",
        found.reason,
        describe(&minimal),
        path.display()
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, header + &body)
}
