//! `flashsale verify`: one verdict on a flash-sale endpoint. A battery of named checks, each built
//! to make one class of bug fire (`battery.rs`), repeated with new seeds until it fails or its
//! share of the budget is spent; then generated cases until the budget is gone. Every run is an
//! ordinary `run::run` (with the in-process target: a fresh server and database each time, so a
//! counterexample replays as it ran). The first counterexample of each failing check is written as
//! a scenario file with its exact replay command (`report.rs`), and everything lands in
//! `verify.json` (schema `harness/verify.schema.json`).

pub mod battery;
pub mod report;
pub mod window;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;
use time::OffsetDateTime;

use self::battery::{Check, GENERATED, GENERATED_PROVOKES, Judge};
use crate::conformance;
use crate::explore::generate::{self, GenProfile};
use crate::history::Outcome;
use crate::run::{self, RunError, RunOptions, RunResult, TargetChoice, TargetProfile};
use crate::scenario::Scenario;
use crate::target::{InProcessServer, ServerOverrides};

/// Share of the budget the battery gets; the rest goes to generated cases.
pub const BATTERY_SHARE: f64 = 0.6;
/// Most buyers of a generated case: verify runs many short cases rather than a few long ones.
pub const GENERATED_MAX_BUYERS: u32 = 200;

/// Everything `verify` needs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub target: TargetChoice,
    /// Wall clock for the whole command. A run is never cut short, so the last run may end a
    /// little after it.
    pub budget: Duration,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Checks to run by name (all when empty); `generated` names the generated cases.
    pub only: Vec<String>,
    /// Stop at the first violation.
    pub fail_fast: bool,
    /// One line per run on stderr.
    pub verbose: bool,
}

/// How the budget is shared out before any run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetPlan {
    /// Each fixed check's share (what one check leaves unspent rolls over to the next).
    pub per_check: Duration,
    /// All the fixed checks together.
    pub battery: Duration,
    /// What is planned for generated cases (they also get what the battery leaves).
    pub generated: Duration,
}

/// Splits `budget`: [`BATTERY_SHARE`] evenly over `checks` fixed checks, the rest to generated
/// cases (all of it to one side when the other has nothing to run).
pub fn plan_budget(budget: Duration, checks: usize, generated: bool) -> BudgetPlan {
    let battery = match (checks, generated) {
        (0, _) => Duration::ZERO,
        (_, false) => budget,
        (_, true) => budget.mul_f64(BATTERY_SHARE),
    };
    BudgetPlan {
        per_check: if checks == 0 {
            Duration::ZERO
        } else {
            battery / checks as u32
        },
        battery,
        generated: budget - battery,
    }
}

/// The verdict of the whole command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every invariant held in every run, every threshold passed.
    Held,
    /// At least one run violated an invariant (or HAZ-13).
    Violated,
    /// Every invariant held but a threshold failed.
    ThresholdFailed,
}

/// One run of the battery or of the generated cases.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub check: String,
    /// 1, 2, … within its check.
    pub index: u32,
    pub scenario: String,
    pub seed: u64,
    /// Its outputs (summary.json, history, report.html).
    pub dir: PathBuf,
    pub attempts: u64,
    /// Idempotency keys answered `ok`: the claims the server acknowledged.
    pub ok_claims: u64,
    /// Invariants (and HAZ-13) violated; empty when everything held.
    pub violated: Vec<String>,
    /// Invariants the run gave no evidence to judge: not checked, never counted as held.
    pub not_checked: Vec<String>,
    pub thresholds_passed: bool,
    pub elapsed_ms: u64,
}

/// A check's first failing run, written as a scenario file.
#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    /// `counterexamples/<check>.toml` under the output directory.
    pub path: PathBuf,
    /// The exact command that replays it.
    pub replay: String,
    pub seed: u64,
    pub violated: Vec<String>,
    pub run_dir: PathBuf,
    /// Why, in the checker's words.
    pub explanation: String,
}

/// One line of the verdict table.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    pub name: String,
    pub provokes: String,
    pub runs: u32,
    /// Runs that violated something.
    pub violations: u32,
    /// Runs in which every invariant held but a threshold failed.
    pub thresholds_failed: u32,
    /// How many of the check's scenarios ran at least once, of how many (generated: runs, runs).
    pub scenarios_covered: u32,
    pub scenarios_total: u32,
    pub elapsed_ms: u64,
    /// Every invariant any of its runs violated.
    pub violated: BTreeSet<String>,
    pub counterexample: Option<Counterexample>,
    /// Why the check did not run (not in `--checks`, or `--fail-fast` stopped before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What a budget of runs could detect: the smallest per-claim bug rate caught with 99 %
/// probability by the largest run alone and by all runs together (a bug that counts claims per
/// server process, like the 1-in-N mutants, needs them in one run: read the first figure).
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub probability: f64,
    pub largest_run_ok_claims: u64,
    pub total_ok_claims: u64,
    pub rate_largest_run: f64,
    pub rate_all_runs: f64,
    /// Whether one run had enough claims for a bug on 1 claim in 1,000.
    pub one_in_1000_in_one_run: bool,
}

/// `verify.json`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub schema_version: u32,
    pub verdict: Verdict,
    pub target: String,
    /// The in-process server's strategy; absent for a `--target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    pub seed: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub budget_ms: u64,
    pub elapsed_ms: u64,
    /// Stopped at the first violation (`--fail-fast`).
    pub stopped_early: bool,
    pub checks: Vec<CheckOutcome>,
    pub detection: Detection,
    /// The replay command of every counterexample, in check order.
    pub replay: Vec<String>,
    pub runs: Vec<RunRecord>,
}

/// verify.json's format version; raise it when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

impl VerifyReport {
    /// Violation wins over a failed threshold, as for `run`.
    fn verdict_of(checks: &[CheckOutcome]) -> Verdict {
        if checks.iter().any(|c| c.violations > 0) {
            Verdict::Violated
        } else if checks.iter().any(|c| c.thresholds_failed > 0) {
            Verdict::ThresholdFailed
        } else {
            Verdict::Held
        }
    }
}

/// Names `--checks` was given that are not checks, for the caller to refuse (exit 2).
pub fn unknown_checks(only: &[String]) -> Vec<String> {
    only.iter()
        .filter(|n| !battery::NAMES.contains(&n.as_str()))
        .cloned()
        .collect()
}

/// Runs the battery and the generated cases within the budget, writes the counterexamples and
/// `verify.json`. Only set-up problems are errors; a violation is a verdict.
pub async fn verify(options: VerifyOptions) -> Result<VerifyReport, RunError> {
    let started_at = OffsetDateTime::now_utc();
    let start = Instant::now();
    let deadline = start + options.budget;
    let selected = |name: &str| options.only.is_empty() || options.only.iter().any(|n| n == name);
    // Every check has its line in the table; those not selected say so.
    let checks = battery::checks(&[]);
    let generated = selected(GENERATED);
    let plan = plan_budget(
        options.budget,
        checks.iter().filter(|c| selected(c.name)).count(),
        generated,
    );
    let mut session = Session {
        options: &options,
        runs: Vec::new(),
        stop: false,
    };

    let mut outcomes = vec![if selected(battery::CONTRACT) {
        session.contract().await?
    } else {
        CheckOutcome::skipped(
            battery::CONTRACT,
            battery::CONTRACT_PROVOKES,
            1,
            NOT_SELECTED,
        )
    }];
    let mut check_deadline = Instant::now();
    for (position, check) in checks.iter().enumerate() {
        let skip = if !selected(check.name) {
            Some(NOT_SELECTED)
        } else if session.stop {
            Some(STOPPED)
        } else {
            None
        };
        if let Some(why) = skip {
            outcomes.push(CheckOutcome::skipped(
                check.name,
                check.provokes,
                check.scenarios.len(),
                why,
            ));
            continue;
        }
        // A check's share starts when the check does: what the previous one left rolls over.
        check_deadline = check_deadline.max(Instant::now()) + plan.per_check;
        outcomes.push(
            session
                .battery_check(position, check, check_deadline)
                .await?,
        );
        check_deadline = check_deadline.min(deadline);
    }
    outcomes.push(if !generated {
        CheckOutcome::skipped(GENERATED, GENERATED_PROVOKES, 0, NOT_SELECTED)
    } else if session.stop {
        CheckOutcome::skipped(GENERATED, GENERATED_PROVOKES, 0, STOPPED)
    } else {
        session.generated(checks.len(), deadline).await?
    });

    let detection = detection(&session.runs);
    let replay = outcomes
        .iter()
        .filter_map(|c| c.counterexample.as_ref().map(|x| x.replay.clone()))
        .collect();
    let (target, strategy) = match &options.target {
        TargetChoice::InProcess { strategy, .. } => (
            "in-process reference server".to_owned(),
            Some(strategy.name().to_owned()),
        ),
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::Contract { .. },
        } => (base_url.clone(), None),
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::File(profile),
        } => (format!("{base_url} (profile {})", profile.source), None),
        TargetChoice::Service { profile, .. } => (
            format!("a service started from profile {}", profile.source),
            None,
        ),
    };
    let report = VerifyReport {
        schema_version: SCHEMA_VERSION,
        verdict: VerifyReport::verdict_of(&outcomes),
        target,
        strategy,
        seed: options.seed,
        started_at,
        budget_ms: options.budget.as_millis() as u64,
        elapsed_ms: start.elapsed().as_millis() as u64,
        stopped_early: session.stop,
        checks: outcomes,
        detection,
        replay,
        runs: session.runs,
    };
    report::write_json(&options.out_dir, &report).map_err(|source| RunError::Output {
        dir: options.out_dir.clone(),
        source,
    })?;
    Ok(report)
}

impl CheckOutcome {
    fn empty(name: &str, provokes: &str, scenarios: usize) -> Self {
        CheckOutcome {
            name: name.to_owned(),
            provokes: provokes.to_owned(),
            runs: 0,
            violations: 0,
            thresholds_failed: 0,
            scenarios_covered: 0,
            scenarios_total: scenarios as u32,
            elapsed_ms: 0,
            violated: BTreeSet::new(),
            counterexample: None,
            skipped: None,
        }
    }

    fn skipped(name: &str, provokes: &str, scenarios: usize, why: &str) -> Self {
        CheckOutcome {
            skipped: Some(why.to_owned()),
            ..CheckOutcome::empty(name, provokes, scenarios)
        }
    }
}

const NOT_SELECTED: &str = "not in --checks";
const STOPPED: &str = "stopped at the first violation (--fail-fast)";

struct Session<'a> {
    options: &'a VerifyOptions,
    runs: Vec<RunRecord>,
    /// `--fail-fast` saw a violation.
    stop: bool,
}

impl Session<'_> {
    /// The contract check: one conformance pass (a few seconds) against the target, or against a
    /// reference server started for it. Its report is written to `contract.json`; a violated case
    /// fails the check, and its replay is `flashsale verify --checks contract` on the same target.
    async fn contract(&mut self) -> Result<CheckOutcome, RunError> {
        let started = Instant::now();
        let report = match &self.options.target {
            TargetChoice::InProcess {
                strategy,
                deps,
                keep_database,
                ..
            } => {
                let server = InProcessServer::start(
                    deps,
                    *strategy,
                    &ServerOverrides::default(),
                    *keep_database,
                )
                .await?;
                let report = conformance::check(&server.base_url, &server.admin_token).await;
                server.shutdown().await;
                report
            }
            TargetChoice::Url {
                base_url,
                profile: TargetProfile::Contract { admin_token },
            } => conformance::check(base_url, admin_token).await,
            TargetChoice::Url { .. } | TargetChoice::Service { .. } => {
                return Ok(CheckOutcome::skipped(
                    battery::CONTRACT,
                    battery::CONTRACT_PROVOKES,
                    0,
                    "the target is described by a profile; the contract check applies to servers \
                     implementing server/openapi.json",
                ));
            }
        };
        let path = self.options.out_dir.join("contract.json");
        std::fs::create_dir_all(&self.options.out_dir)
            .and_then(|()| {
                let json = serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?;
                std::fs::write(&path, json)
            })
            .map_err(|source| RunError::Output {
                dir: self.options.out_dir.clone(),
                source,
            })?;
        let mut outcome = CheckOutcome::empty(
            battery::CONTRACT,
            battery::CONTRACT_PROVOKES,
            report.cases.len(),
        );
        outcome.runs = 1;
        outcome.scenarios_covered = (report.cases.len() - report.not_checked().len()) as u32;
        outcome.elapsed_ms = started.elapsed().as_millis() as u64;
        let violations = report.violations();
        if let Some(first) = violations.first() {
            outcome.violations = 1;
            outcome.violated = violations
                .iter()
                .map(|c| format!("contract/{}", c.name))
                .collect();
            outcome.counterexample = Some(Counterexample {
                path: path.clone(),
                replay: format!(
                    "flashsale verify --checks {} {}",
                    battery::CONTRACT,
                    report::target_flags(&self.options.target)
                ),
                seed: self.options.seed,
                violated: outcome.violated.iter().cloned().collect(),
                run_dir: self.options.out_dir.clone(),
                explanation: format!(
                    "{} of {} cases violated; first: {first}",
                    violations.len(),
                    report.cases.len()
                ),
            });
            self.stop = self.options.fail_fast;
        }
        Ok(outcome)
    }

    /// Why the target cannot run `scenario`, if it cannot: a service without unlimited sales (as
    /// its profile states) cannot run an unlimited one, a profile whose set-up does not pass
    /// `{per_buyer_limit}` cannot run a sale with one, and a profile without `[holds]` cannot run
    /// buyer journeys. Such scenarios are left out rather than failing the whole command at
    /// set-up or judging a rule the sale does not have.
    fn inexpressible(&self, scenario: &Scenario) -> Option<&'static str> {
        let profile = self.options.target.profile()?;
        if scenario.sale.cap == crate::scenario::Cap::Unlimited && !profile.rules.unlimited_sales {
            Some("the target's profile has no unlimited sales (rules.unlimited_sales)")
        } else if scenario.sale.per_buyer_limit.is_some() && !profile.sets_per_buyer_limit() {
            Some("the target's profile sets no {per_buyer_limit} in its set-up")
        } else if scenario.journeys.is_some() && profile.holds.is_none() {
            Some("the target's profile has no [holds]: it has no cart holds to check")
        } else {
            None
        }
    }

    /// Repeats one check until it fails or its share ends (at least one run).
    async fn battery_check(
        &mut self,
        position: usize,
        check: &Check,
        until: Instant,
    ) -> Result<CheckOutcome, RunError> {
        let started = Instant::now();
        let reasons: Vec<Option<&str>> = check
            .scenarios
            .iter()
            .map(|s| self.inexpressible(s))
            .collect();
        if let Some(Some(why)) = reasons
            .first()
            .filter(|_| reasons.iter().all(Option::is_some))
        {
            // Not one of its scenarios can run: the check is skipped, saying why.
            return Ok(CheckOutcome::skipped(
                check.name,
                check.provokes,
                check.scenarios.len(),
                why,
            ));
        }
        let mut outcome = CheckOutcome::empty(check.name, check.provokes, check.scenarios.len());
        let mut repetition = 0u32;
        loop {
            let scenario = &check.scenarios[repetition as usize % check.scenarios.len()];
            let seed = derive_seed(self.options.seed, position as u64, u64::from(repetition));
            repetition += 1;
            if self.inexpressible(scenario).is_some() {
                continue;
            }
            let failed = self
                .one_run(check.name, check.judge, scenario, seed, &mut outcome)
                .await?;
            if failed || self.stop || Instant::now() >= until {
                break;
            }
        }
        outcome.scenarios_covered = repetition.min(check.scenarios.len() as u32);
        outcome.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(outcome)
    }

    /// Generated cases until the deadline (none when the battery spent it all).
    async fn generated(
        &mut self,
        position: usize,
        deadline: Instant,
    ) -> Result<CheckOutcome, RunError> {
        let started = Instant::now();
        let mut outcome = CheckOutcome::empty(GENERATED, GENERATED_PROVOKES, 0);
        let profile = GenProfile {
            max_buyers: GENERATED_MAX_BUYERS,
            faults: false,
            journeys: self.options.target.supports_holds(),
            ..GenProfile::explore(false)
        };
        let strategy = generate::scenarios(profile);
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&self.options.seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        );
        let mut case = 0u32;
        while Instant::now() < deadline && !self.stop {
            let mut scenario = strategy
                .new_tree(&mut runner)
                .map_err(|e| RunError::Setup(format!("cannot generate a scenario: {e}")))?
                .current();
            if self.inexpressible(&scenario).is_some() {
                continue;
            }
            case += 1;
            scenario.name = format!("verify-generated-{case}");
            let seed = derive_seed(self.options.seed, position as u64, u64::from(case));
            if self
                .one_run(GENERATED, Judge::Invariants, &scenario, seed, &mut outcome)
                .await?
            {
                break;
            }
        }
        outcome.scenarios_covered = case;
        outcome.scenarios_total = case;
        outcome.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(outcome)
    }

    /// One run, judged and recorded; the first failure of a check becomes its counterexample.
    /// Returns whether it violated something.
    async fn one_run(
        &mut self,
        check: &str,
        judge: Judge,
        scenario: &Scenario,
        seed: u64,
        outcome: &mut CheckOutcome,
    ) -> Result<bool, RunError> {
        let index = outcome.runs + 1;
        let dir = self
            .options
            .out_dir
            .join("runs")
            .join(format!("{check}-{index}"));
        let started = Instant::now();
        let result = run::run(RunOptions {
            scenario: scenario.clone(),
            target: self.options.target.clone(),
            seed: Some(seed),
            out_dir: Some(dir.clone()),
            results_root: self.options.out_dir.clone(),
        })
        .await?;
        let (violated, explanation) = judged(&result, judge);
        let record = RunRecord {
            check: check.to_owned(),
            index,
            scenario: scenario.name.clone(),
            seed,
            dir: dir.clone(),
            attempts: result.history.len() as u64,
            ok_claims: ok_claims(&result),
            violated: violated.clone(),
            not_checked: result
                .check
                .not_checked()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            thresholds_passed: result.summary.all_thresholds_passed,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        if self.options.verbose {
            eprintln!(
                "  {check} #{index} {} (seed {seed}): {} in {:.1}s",
                scenario.name,
                if violated.is_empty() {
                    "held".to_owned()
                } else {
                    format!("VIOLATED {}", violated.join(", "))
                },
                started.elapsed().as_secs_f64()
            );
        }
        outcome.runs += 1;
        let failed = !violated.is_empty();
        if failed {
            outcome.violations += 1;
            outcome.violated.extend(violated.iter().cloned());
            if outcome.counterexample.is_none() {
                let mut fixed = scenario.clone();
                fixed.seed = Some(seed);
                outcome.counterexample = Some(
                    report::write_counterexample(
                        &self.options.out_dir,
                        check,
                        &fixed,
                        &self.options.target,
                        &violated,
                        &explanation,
                        &dir,
                    )
                    .map_err(|source| RunError::Output {
                        dir: self.options.out_dir.clone(),
                        source,
                    })?,
                );
            }
            self.stop = self.options.fail_fast;
        } else if !record.thresholds_passed {
            outcome.thresholds_failed += 1;
        }
        self.runs.push(record);
        Ok(failed)
    }
}

/// The invariants a run violated (plus HAZ-13 where the check judges the window) and the
/// checker's explanation of the first.
fn judged(result: &RunResult, judge: Judge) -> (Vec<String>, String) {
    let mut violated: Vec<String> = result
        .check
        .violated()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut explanation: Vec<String> = violated
        .iter()
        .filter_map(|key| {
            let inv = result.check.invariants.get(key)?;
            Some(format!("{key} {}: {}", inv.name, inv.summary))
        })
        .collect();
    if judge == Judge::InvariantsAndWindow
        && let Some(breach) = window::judge(&result.history, &result.ledger, result.sale_window)
    {
        violated.push(window::HAZ_13.to_owned());
        explanation.push(format!("{}: {}", window::HAZ_13, breach.explanation));
    }
    (violated, explanation.join("; "))
}

/// Distinct idempotency keys answered `ok`.
fn ok_claims(result: &RunResult) -> u64 {
    result
        .history
        .iter()
        .filter(|a| a.outcome == Outcome::Ok)
        .map(|a| a.idempotency_key.as_str())
        .collect::<BTreeSet<_>>()
        .len() as u64
}

fn detection(runs: &[RunRecord]) -> Detection {
    let probability = battery::VOLUME_PROBABILITY;
    let largest = runs.iter().map(|r| r.ok_claims).max().unwrap_or(0);
    let total = runs.iter().map(|r| r.ok_claims).sum();
    let needed = battery::claims_needed(1.0 / f64::from(battery::VOLUME_RATE_ONE_IN), probability);
    Detection {
        probability,
        largest_run_ok_claims: largest,
        total_ok_claims: total,
        rate_largest_run: battery::detectable_rate(largest, probability),
        rate_all_runs: battery::detectable_rate(total, probability),
        one_in_1000_in_one_run: largest >= needed,
    }
}

/// A run's seed from the command's: distinct per check and repetition, and within the 53 bits a
/// JSON number keeps exactly (like the seeds `run` draws).
pub fn derive_seed(seed: u64, check: u64, repetition: u64) -> u64 {
    // splitmix64 over the three numbers.
    let mut z = seed
        .wrapping_add(check.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(repetition.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 11
}

/// `results/verify/<UTC timestamp>/`.
pub fn default_out_dir(results_root: &Path, started_at: OffsetDateTime) -> PathBuf {
    crate::report::default_out_dir(results_root, "verify", started_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_split_adds_up() {
        for (budget, checks) in [(180u64, 7usize), (20, 7), (61, 3), (1, 1)] {
            let budget = Duration::from_secs(budget);
            let plan = plan_budget(budget, checks, true);
            assert_eq!(plan.battery + plan.generated, budget);
            assert!(plan.per_check * checks as u32 <= plan.battery);
            assert!(plan.battery - plan.per_check * (checks as u32) < Duration::from_micros(1));
            assert_eq!(plan.battery, budget.mul_f64(BATTERY_SHARE));
        }
        let no_generated = plan_budget(Duration::from_secs(30), 3, false);
        assert_eq!(no_generated.battery, Duration::from_secs(30));
        assert_eq!(no_generated.per_check, Duration::from_secs(10));
        let only_generated = plan_budget(Duration::from_secs(30), 0, true);
        assert_eq!(only_generated.generated, Duration::from_secs(30));
    }

    #[test]
    fn seeds_differ_per_check_and_repetition_and_repeat_with_the_command_seed() {
        let a: BTreeSet<u64> = (0..8)
            .flat_map(|c| (0..50).map(move |r| derive_seed(7, c, r)))
            .collect();
        assert_eq!(a.len(), 400);
        assert_eq!(derive_seed(7, 2, 3), derive_seed(7, 2, 3));
        assert_ne!(derive_seed(7, 2, 3), derive_seed(8, 2, 3));
        assert!(a.iter().all(|s| *s < 1 << 53));
    }

    #[test]
    fn unknown_check_names_are_reported() {
        assert_eq!(
            unknown_checks(&["boundary".into(), "bondary".into(), "generated".into()]),
            ["bondary"]
        );
    }
}
