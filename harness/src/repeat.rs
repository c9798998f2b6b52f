//! `flashsale run --repeat N`: one scenario run N times, each with its own seed and directory,
//! and the aggregate written as `repeat.json`.
//!
//! A bug that fires on one claim in hundreds, or only on one interleaving, passes most single
//! runs; repeating is the cheapest way to raise the odds. The aggregate counts, per invariant,
//! how many runs violated it and how many could not judge it, and points at the first failing
//! run's directory, whose `summary.json` holds the counterexample.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::Summary;

/// Bumped when a field of `repeat.json` changes meaning or disappears.
pub const REPEAT_SCHEMA_VERSION: u32 = 1;

/// The seed of run `k` (1-based): `base`, `base + 1`, … when a seed was given (on the command
/// line or in the scenario), so the whole series repeats; `None` (a fresh seed per run, recorded
/// in its summary) otherwise.
pub fn seed_for(base: Option<u64>, k: u32) -> Option<u64> {
    base.map(|seed| seed.wrapping_add(u64::from(k - 1)))
}

/// The directory of run `k` (1-based) under the series' directory.
pub fn run_dir(out: &Path, k: u32) -> PathBuf {
    out.join(format!("run-{k}"))
}

/// One run of the series, as `repeat.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatRun {
    /// 1-based.
    pub run: u32,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// The violated invariants, in id order; empty when none was.
    pub violated: Vec<String>,
    pub not_checked: Vec<String>,
    pub thresholds_passed: bool,
}

impl RepeatRun {
    pub fn of(run: u32, summary: &Summary) -> Self {
        RepeatRun {
            run,
            seed: summary.seed,
            out_dir: summary.output_dir.clone(),
            violated: summary.violated().into_iter().map(str::to_owned).collect(),
            not_checked: summary.invariants_not_checked.clone(),
            thresholds_passed: summary.all_thresholds_passed,
        }
    }

    /// The run's verdict in a few words, the way `--repeat` prints it.
    pub fn verdict(&self) -> String {
        let mut words = if !self.violated.is_empty() {
            format!("VIOLATED {}", self.violated.join(", "))
        } else if self.not_checked.is_empty() {
            "all invariants held".to_owned()
        } else {
            format!("no violation, NOT CHECKED {}", self.not_checked.join(", "))
        };
        if !self.thresholds_passed {
            words.push_str("; thresholds FAILED");
        }
        words
    }
}

/// `repeat.json`: the series and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatReport {
    pub schema_version: u32,
    pub scenario_name: String,
    /// Runs asked for (`--repeat N`).
    pub runs_asked: u32,
    /// Runs that finished and were checked (fewer than asked only after a set-up error).
    pub runs_completed: u32,
    pub runs_violated: u32,
    pub runs_threshold_failed: u32,
    /// Per invariant: in how many runs it was violated (only invariants violated at least once).
    pub violations_by_invariant: BTreeMap<String, u32>,
    /// Per invariant: in how many runs it could not be judged.
    pub not_checked_by_invariant: BTreeMap<String, u32>,
    /// The directory of the first run that violated an invariant.
    pub first_failing_run_dir: Option<PathBuf>,
    /// Why the series stopped early, when a run could not be set up.
    pub setup_error: Option<String>,
    pub runs: Vec<RepeatRun>,
}

impl RepeatReport {
    pub fn new(
        scenario_name: &str,
        runs_asked: u32,
        runs: Vec<RepeatRun>,
        setup_error: Option<String>,
    ) -> Self {
        let mut violations_by_invariant = BTreeMap::new();
        let mut not_checked_by_invariant = BTreeMap::new();
        for run in &runs {
            for id in &run.violated {
                *violations_by_invariant.entry(id.clone()).or_default() += 1;
            }
            for id in &run.not_checked {
                *not_checked_by_invariant.entry(id.clone()).or_default() += 1;
            }
        }
        let failing = || runs.iter().filter(|r| !r.violated.is_empty());
        RepeatReport {
            schema_version: REPEAT_SCHEMA_VERSION,
            scenario_name: scenario_name.to_owned(),
            runs_asked,
            runs_completed: runs.len() as u32,
            runs_violated: failing().count() as u32,
            runs_threshold_failed: runs.iter().filter(|r| !r.thresholds_passed).count() as u32,
            violations_by_invariant,
            not_checked_by_invariant,
            first_failing_run_dir: failing().next().map(|r| r.out_dir.clone()),
            setup_error,
            runs,
        }
    }

    /// The aggregate, a few lines for the console.
    pub fn console(&self) -> String {
        let mut lines = vec![format!(
            "{} of {} runs completed: {} violated an invariant, {} failed a threshold",
            self.runs_completed, self.runs_asked, self.runs_violated, self.runs_threshold_failed
        )];
        if !self.violations_by_invariant.is_empty() {
            lines.push(format!(
                "violations by invariant: {}",
                counts(&self.violations_by_invariant, self.runs_completed)
            ));
        }
        if !self.not_checked_by_invariant.is_empty() {
            lines.push(format!(
                "not checked: {}",
                counts(&self.not_checked_by_invariant, self.runs_completed)
            ));
        }
        if let Some(dir) = &self.first_failing_run_dir {
            lines.push(format!("first failing run: {}", dir.display()));
        }
        if let Some(error) = &self.setup_error {
            lines.push(format!("stopped early: {error}"));
        }
        lines.join("\n")
    }
}

fn counts(by_id: &BTreeMap<String, u32>, runs: u32) -> String {
    by_id
        .iter()
        .map(|(id, n)| format!("{id} in {n} of {runs} runs"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(k: u32, violated: &[&str], not_checked: &[&str], thresholds_passed: bool) -> RepeatRun {
        RepeatRun {
            run: k,
            seed: 100 + u64::from(k),
            out_dir: PathBuf::from(format!("out/run-{k}")),
            violated: violated.iter().map(|s| (*s).to_owned()).collect(),
            not_checked: not_checked.iter().map(|s| (*s).to_owned()).collect(),
            thresholds_passed,
        }
    }

    #[test]
    fn seeds_follow_the_given_one_and_dirs_are_numbered_from_one() {
        assert_eq!(seed_for(Some(7), 1), Some(7));
        assert_eq!(seed_for(Some(7), 3), Some(9));
        assert_eq!(seed_for(None, 2), None);
        assert_eq!(run_dir(Path::new("out"), 2), PathBuf::from("out/run-2"));
    }

    #[test]
    fn the_aggregate_counts_runs_per_invariant_and_names_the_first_failure() {
        let report = RepeatReport::new(
            "s",
            4,
            vec![
                run(1, &[], &[], true),
                run(2, &["INV-1", "INV-5"], &[], true),
                run(3, &["INV-1"], &["INV-6"], false),
                run(4, &[], &["INV-6"], true),
            ],
            None,
        );
        assert_eq!(report.runs_completed, 4);
        assert_eq!(report.runs_violated, 2);
        assert_eq!(report.runs_threshold_failed, 1);
        assert_eq!(report.violations_by_invariant["INV-1"], 2);
        assert_eq!(report.violations_by_invariant["INV-5"], 1);
        assert_eq!(report.not_checked_by_invariant["INV-6"], 2);
        assert_eq!(
            report.first_failing_run_dir,
            Some(PathBuf::from("out/run-2"))
        );
        let text = report.console();
        assert!(
            text.contains("4 of 4 runs completed: 2 violated an invariant, 1 failed a threshold"),
            "{text}"
        );
        assert!(
            text.contains("violations by invariant: INV-1 in 2 of 4 runs, INV-5 in 1 of 4 runs"),
            "{text}"
        );
        assert!(text.contains("first failing run: out/run-2"), "{text}");
        assert_eq!(report.runs[3].verdict(), "no violation, NOT CHECKED INV-6");
        assert_eq!(
            report.runs[2].verdict(),
            "VIOLATED INV-1; thresholds FAILED"
        );
    }

    #[test]
    fn a_clean_series_has_no_failing_run() {
        let report = RepeatReport::new("s", 2, vec![run(1, &[], &[], true)], Some("x".into()));
        assert_eq!(report.runs_violated, 0);
        assert!(report.first_failing_run_dir.is_none());
        assert!(report.console().contains("1 of 2 runs completed"));
        assert!(report.console().contains("stopped early: x"));
        assert_eq!(report.runs[0].verdict(), "all invariants held");
    }
}
