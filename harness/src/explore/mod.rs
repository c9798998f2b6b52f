//! Property-based exploration: generated scenarios run one after another against a server until
//! an invariant breaks; the failing scenario is then shrunk to a minimal one and written out as an
//! ordinary scenario file that `flashsale run` replays.
//!
//! The same search backs the `oversell_property` tests and `flashsale explore`. A shrunk case
//! only counts as failing if it fails twice in a row, so the minimal case written out is one that
//! reproduces, not a lucky race.
//!
//! Shrinking spends whole runs, so it wastes none:
//!
//! - **No case runs twice.** Verdicts are cached by the scenario's canonical TOML (the text
//!   `minimal.toml` would hold); proptest's shrinker often proposes a candidate it already tried.
//! - **Shrinking keeps the failure it found**: a candidate counts as failing only if it violates
//!   the first failing case's leading invariant (the lowest id it violated: the oversell, not the
//!   INV-6 disagreement an oversell leaves behind).
//! - **No case runs that cannot fail the same way**: a candidate is run only when it could
//!   violate that invariant, judged from the checker's definitions alone ([`cannot_violate`]): INV-1 (no
//!   oversell) cannot fail on an unlimited sale; INV-2 (no lost acknowledgement) needs at least
//!   one buyer, since it judges `ok` answers; INV-5 (exactly the cap) cannot fail on an unlimited
//!   sale, on a cap of 0 (no unit is ever left to strand) or with no buyers (no sold-out answer
//!   and no demand); INV-9 (per-buyer limit) is only judged on a sale with a `per_buyer_limit`,
//!   and INV-7 (cart holds) only on a scenario with buyer journeys.
//!   INV-3, INV-4 and INV-6 judge what the server stores and reports, which a broken server can
//!   get wrong with any scenario, so they never make a candidate skippable.
//!   A skipped candidate counts as passing and is not counted as a run.

pub mod generate;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proptest::test_runner::{
    Config, FailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use tokio::runtime::Handle;

use self::generate::{GenProfile, describe};
use crate::run::{self, RunError, RunOptions, TargetChoice, TargetProfile};
use crate::scenario::{Cap, Scenario};
use crate::target::{InProcessServer, ServerOverrides};

/// The units sync of the server a no-fault campaign shares: a case's end state is read as soon
/// as `quantity_sold` agrees with the ledger, so this is most of what a short case waits for
/// (G8 in docs/performance.md). Still a background job, as in production, only more often.
const CAMPAIGN_UNITS_SYNC: std::time::Duration = std::time::Duration::from_millis(20);

/// What to explore.
#[derive(Debug)]
pub struct SearchOptions {
    pub target: TargetChoice,
    pub profile: GenProfile,
    pub cases: u32,
    pub seed: u64,
    /// How many shrink candidates at most are run (each once, or twice when it fails); candidates
    /// answered from the cache or skipped as unable to fail do not count.
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
    /// Generated cases tried before the first failure (or all of them): never more than asked.
    pub cases_run: u32,
    /// Runs in all, shrinking and the second run of each shrunk failure included; a case
    /// answered from the cache or skipped as unable to fail is not a run.
    pub runs: u32,
    /// Shrinking stopped because it ran `max_shrink_iters` candidates: the minimal case may
    /// shrink further.
    pub shrink_limit_hit: bool,
    pub found: Option<Found>,
}

/// proptest's own shrink limit, never reached in practice: each step past our budget costs a
/// TOML serialisation, not a run.
const SHRINK_STEPS_BEYOND_REACH: u32 = 100_000;

/// The verdict of a case already run, by its canonical TOML.
type Verdicts = HashMap<String, Vec<String>>;

/// True when `scenario` cannot violate any of `violated` (invariant ids), from the checker's
/// definitions alone; see the module documentation for each rule.
pub fn cannot_violate(scenario: &Scenario, violated: &[String]) -> bool {
    let unlimited = scenario.sale.cap == Cap::Unlimited;
    let no_buyers = scenario.buyers.count == 0;
    let cap_zero = scenario.sale.cap == Cap::Limited(0);
    !violated.is_empty()
        && violated.iter().all(|id| match id.as_str() {
            "INV-1" => unlimited,
            "INV-2" => no_buyers,
            "INV-5" => unlimited || cap_zero || no_buyers,
            // Without a limit the report has no INV-9 at all.
            "INV-9" => scenario.sale.per_buyer_limit.is_none(),
            // Without journeys the report has no INV-7 at all.
            "INV-7" => scenario.journeys.is_none(),
            _ => false,
        })
}

/// The runner the search draws its cases from; the generator's tests draw from the same one.
pub fn runner(config: Config, seed: u64) -> TestRunner {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    )
}

/// Runs up to `cases` generated scenarios; on the first violation, shrinks it. Must be called
/// from a blocking context (`spawn_blocking`, or a plain test thread) with a handle to a
/// multi-threaded runtime: every case is a full async run.
pub fn search(options: SearchOptions, runtime: &Handle) -> Result<SearchOutcome, RunError> {
    let config = Config {
        cases: options.cases,
        // The shrink budget is ours, counted in candidates actually run (see below): a
        // candidate answered from the cache or skipped costs nothing, and proptest's own limit
        // (whose raw message it prints itself) is set beyond reach.
        max_shrink_iters: SHRINK_STEPS_BEYOND_REACH,
        failure_persistence: options.persistence,
        // Every case is a real run; the default 1024 global rejects never apply here.
        ..Config::default()
    };
    let max_shrink_iters = options.max_shrink_iters;
    let mut runner = runner(config, options.seed);
    let strategy = generate::scenarios(options.profile.clone());
    let cases = Cell::new(0u32);
    let runs = Cell::new(0u32);
    let shrink_steps = Cell::new(0u32);
    // Shrink candidates actually run (each once or twice): what `max_shrink_iters` limits.
    let shrink_runs = Cell::new(0u32);
    let shrinking = Cell::new(false);
    let verdicts: RefCell<Verdicts> = RefCell::new(HashMap::new());
    // The invariants the first failure violated: what shrinking keeps.
    let target_failure: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let last_violated: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let setup_error: RefCell<Option<RunError>> = RefCell::new(None);
    // The smallest scenario seen failing. proptest reports the value its shrinker stopped at,
    // which for a timing-dependent failure may be one that passed; this is one that failed.
    let last_failing: RefCell<Option<Scenario>> = RefCell::new(None);
    let scratch = tempdir_for_cases();
    // Without faults, every case runs against one reference server started here, each on a sale
    // of its own (a fresh UUID: its own rows and Redis keys, and the checker reads only that
    // sale's ledger), instead of a server and a database created per case: that start-up was
    // most of a small case's time (G8). Faults need a server of their own per case.
    let shared = match &options.target {
        TargetChoice::InProcess {
            strategy,
            deps,
            keep_database,
            ..
        } if !options.profile.faults => Some(
            runtime
                .block_on(InProcessServer::start(
                    deps,
                    *strategy,
                    &ServerOverrides {
                        units_sync_interval: Some(CAMPAIGN_UNITS_SYNC),
                        ..ServerOverrides::default()
                    },
                    *keep_database,
                ))
                .map_err(RunError::Target)?,
        ),
        _ => None,
    };
    let case_target = match &shared {
        Some(server) => TargetChoice::Url {
            base_url: server.base_url.clone(),
            profile: TargetProfile::Contract {
                admin_token: server.admin_token.clone(),
            },
        },
        None => options.target.clone(),
    };

    let unlimited_sales = case_target
        .profile()
        .is_none_or(|profile| profile.rules.unlimited_sales);
    let outcome = runner.run(&strategy, |scenario| {
        if setup_error.borrow().is_some() {
            return Ok(());
        }
        let label = if shrinking.get() {
            shrink_steps.set(shrink_steps.get() + 1);
            format!("shrink {:>3}", shrink_steps.get())
        } else {
            cases.set(cases.get() + 1);
            format!("case {:>3}", cases.get())
        };
        let key = toml::to_string(&scenario).unwrap_or_default();
        let known = verdicts.borrow().get(&key).cloned();
        let budget_spent = shrinking.get() && shrink_runs.get() >= max_shrink_iters;
        let violated = if let Some(known) = known {
            if options.verbose && !budget_spent {
                eprintln!(
                    "  {label}: already run, not again — {}",
                    describe(&scenario)
                );
            }
            known
        } else if budget_spent {
            // The budget is spent: the smallest failure so far is the answer.
            Vec::new()
        } else if scenario.sale.cap == Cap::Unlimited && !unlimited_sales {
            // The target's profile says it has no unlimited sales: nothing to run.
            Vec::new()
        } else if shrinking.get() && cannot_violate(&scenario, &target_failure.borrow()) {
            if options.verbose {
                eprintln!(
                    "  {label}: skipped, cannot violate {} — {}",
                    target_failure.borrow().join(", "),
                    describe(&scenario)
                );
            }
            Vec::new()
        } else {
            let attempts = if shrinking.get() { 2 } else { 1 };
            if shrinking.get() {
                shrink_runs.set(shrink_runs.get() + 1);
            }
            let mut violated = Vec::new();
            for _ in 0..attempts {
                runs.set(runs.get() + 1);
                match run_case(&scenario, &case_target, runtime, &scratch) {
                    Ok(v) => {
                        violated = v;
                        if violated.is_empty() {
                            break;
                        }
                    }
                    Err(err) => {
                        *setup_error.borrow_mut() = Some(err);
                        return Ok(());
                    }
                }
            }
            if options.verbose {
                let verdict = if violated.is_empty() {
                    "held    ".to_owned()
                } else {
                    format!("VIOLATED {}", violated.join(", "))
                };
                eprintln!("  {label}: {verdict} — {}", describe(&scenario));
            }
            verdicts.borrow_mut().insert(key, violated.clone());
            violated
        };
        // While shrinking, a candidate counts only if it still breaks the first failure's leading
        // invariant (the lowest id: an oversell, not the INV-6 disagreement it leaves behind): a
        // different failure met on the way is not a smaller case of this one.
        let keeps_the_failure = !shrinking.get()
            || target_failure
                .borrow()
                .iter()
                .any(|id| violated.contains(id));
        if violated.is_empty() || !keeps_the_failure {
            return Ok(());
        }
        if !shrinking.get() {
            shrinking.set(true);
            *target_failure.borrow_mut() = violated[..1].to_vec();
        }
        *last_failing.borrow_mut() = Some(scenario.clone());
        *last_violated.borrow_mut() = violated.clone();
        Err(TestCaseError::fail(format!(
            "violated {}",
            violated.join(", ")
        )))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(server) = shared {
        runtime.block_on(server.shutdown());
    }
    if let Some(err) = setup_error.into_inner() {
        return Err(err);
    }
    let found = match outcome {
        Ok(()) => None,
        // The reason is ours, from the smallest case seen failing: proptest's own text (which
        // may be about its shrink limit) never reaches the user.
        Err(TestError::Fail(_, reported)) => Some(Found {
            minimal: last_failing.into_inner().unwrap_or(reported),
            reason: format!("violated {}", last_violated.into_inner().join(", ")),
        }),
        Err(TestError::Abort(reason)) => {
            return Err(RunError::Setup(format!("the search was aborted: {reason}")));
        }
    };
    Ok(SearchOutcome {
        cases_run: cases.get(),
        runs: runs.get(),
        shrink_limit_hit: found.is_some() && shrink_runs.get() >= max_shrink_iters,
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

/// The exact command that replays the minimal case at `path` against the server the search ran
/// against: `--target URL --admin-token <YOUR-ADMIN-TOKEN>` (the token is never written down) or
/// `--inventory STRATEGY`, and the case's seed.
pub fn replay_command(path: &Path, target: &TargetChoice, seed: Option<u64>) -> String {
    let server = match target {
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::Contract { .. },
        } => {
            format!("--target {base_url} --admin-token <YOUR-ADMIN-TOKEN>")
        }
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::File(profile),
        } => format!("--target {base_url} --profile {}", profile.source),
        TargetChoice::Service { profile, .. } => format!("--profile {}", profile.source),
        TargetChoice::InProcess { strategy, .. } => format!("--inventory {}", strategy.name()),
    };
    let seed = seed.map(|s| format!(" --seed {s}")).unwrap_or_default();
    format!("flashsale run {} {server}{seed}", path.display())
}

/// Writes `found` as a scenario file that `flashsale run` replays, with a header saying where it
/// came from and the exact replay command.
pub fn write_scenario(
    path: &Path,
    found: &Found,
    provenance: &str,
    target: &TargetChoice,
) -> std::io::Result<()> {
    let mut minimal = found.minimal.clone();
    minimal.name = "explore-minimal".to_owned();
    let body = toml::to_string(&minimal).map_err(std::io::Error::other)?;
    let header = format!(
        "# Minimal failing case found by `flashsale explore` ({provenance}).\n\
         # It {}: {}.\n# Replay: {}\n\n",
        found.reason,
        describe(&minimal),
        replay_command(path, target, minimal.seed)
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, header + &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_mutants::InventoryStrategy;

    fn scenario(cap: &str, buyers: u32) -> Scenario {
        Scenario::from_toml_str(
            &format!(
                "[sale]\ncap = {cap}\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
                 [buyers]\ncount = {buyers}\nquantity = 2\n"
            ),
            "t",
        )
        .unwrap()
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_provably_uninteresting_candidates_are_skipped() {
        // Cap 0 cannot strand units, so it cannot reproduce an INV-5 failure...
        assert!(cannot_violate(&scenario("0", 18), &ids(&["INV-5"])));
        // ...but it can oversell: a cap-0 candidate for INV-1 is run.
        assert!(!cannot_violate(&scenario("0", 18), &ids(&["INV-1"])));
        assert!(!cannot_violate(
            &scenario("0", 18),
            &ids(&["INV-1", "INV-5"])
        ));
        assert!(cannot_violate(
            &scenario("\"unlimited\"", 5),
            &ids(&["INV-1", "INV-5"])
        ));
        assert!(cannot_violate(&scenario("3", 0), &ids(&["INV-2", "INV-5"])));
        // What the server stores and reports can be wrong in any scenario.
        for id in ["INV-3", "INV-4", "INV-6"] {
            assert!(
                !cannot_violate(&scenario("\"unlimited\"", 0), &ids(&[id])),
                "{id}"
            );
        }
        assert!(!cannot_violate(&scenario("3", 4), &ids(&["INV-5"])));
        assert!(!cannot_violate(&scenario("0", 0), &[]));
        // A per-buyer limit is judged only where the sale has one, and there even without buyers
        // (a broken server can store orders nobody asked for).
        assert!(cannot_violate(&scenario("3", 4), &ids(&["INV-9"])));
        let mut limited = scenario("3", 0);
        limited.sale.per_buyer_limit = Some(2);
        assert!(!cannot_violate(&limited, &ids(&["INV-9"])));
        // Cart holds are judged only where buyers reserve.
        assert!(cannot_violate(&scenario("3", 4), &ids(&["INV-7"])));
        let mut reserving = scenario("3", 4);
        reserving.journeys = Some(crate::scenario::JourneySpec {
            reserve_first: 1.0,
            reserve_within: None,
            hold_ttl: std::time::Duration::from_millis(300),
            think: crate::scenario::ThinkSpec {
                min: std::time::Duration::ZERO,
                max: std::time::Duration::from_millis(100),
            },
            then: crate::scenario::OutcomeMix {
                checkout: 1.0,
                release: 0.0,
                abandon: 0.0,
            },
        });
        assert!(!cannot_violate(&reserving, &ids(&["INV-7"])));
    }

    #[test]
    fn the_replay_command_names_the_server_and_the_seed() {
        let path = Path::new("out/minimal.toml");
        let url = TargetChoice::Url {
            base_url: "http://shop:8080".to_owned(),
            profile: TargetProfile::Contract {
                admin_token: "secret".to_owned(),
            },
        };
        let line = replay_command(path, &url, Some(9));
        assert_eq!(
            line,
            "flashsale run out/minimal.toml --target http://shop:8080 --admin-token \
             <YOUR-ADMIN-TOKEN> --seed 9"
        );
        assert!(!line.contains("secret"));
        let in_process = TargetChoice::InProcess {
            strategy: InventoryStrategy::BrokenNaive,
            deps: crate::target::Dependencies::from_env(),
            keep_database: false,
            replicas: 1,
        };
        assert_eq!(
            replay_command(path, &in_process, Some(3)),
            "flashsale run out/minimal.toml --inventory broken-naive --seed 3"
        );
    }
}
