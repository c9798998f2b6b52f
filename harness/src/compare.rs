//! `flashsale compare BASELINE_DIR RUN_DIR`: two runs' latency percentiles and throughput side
//! by side with the change in percent, and, given a limit, a non-zero exit on a regression, so
//! CI can hold a branch to its baseline.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::report::Summary;

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub baseline: f64,
    pub run: f64,
    /// `ms` or `/s`.
    pub unit: &'static str,
    /// Latencies regress upwards, throughput downwards.
    pub higher_is_better: bool,
}

impl Row {
    /// The change from baseline to run, in percent of the baseline; `None` for a zero baseline.
    pub fn change_pct(&self) -> Option<f64> {
        (self.baseline != 0.0).then(|| (self.run - self.baseline) / self.baseline * 100.0)
    }

    /// How much worse the run is, in percent (negative when it is better).
    pub fn regression_pct(&self) -> Option<f64> {
        self.change_pct()
            .map(|c| if self.higher_is_better { -c } else { c })
    }
}

/// What a comparison found.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Reasons the two runs may not be comparable (different scenarios, generator-bound…).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cannot read {}: {source} (give a run directory holding summary.json)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a flashsale summary.json: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads `dir/summary.json` (or `dir` itself when it is a file).
pub fn read_summary(dir: &Path) -> Result<Summary, CompareError> {
    let path = if dir.is_dir() {
        dir.join("summary.json")
    } else {
        dir.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CompareError::Read {
        path: path.clone(),
        source,
    })?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| CompareError::Parse {
            path: path.clone(),
            source,
        })?;
    if json["schema_version"] == 1 {
        upgrade_v1(&mut json);
    }
    serde_json::from_value(json).map_err(|source| CompareError::Parse { path, source })
}

/// Reads a version-1 summary's `held: bool` as a verdict. Version 1 wrote "not checked" as held
/// with words (INV-6 "not measured (not checked)", INV-5 "nothing judged"); those words are read
/// back as `not_checked`, so an old baseline is not taken for a fuller pass than it was.
fn upgrade_v1(json: &mut serde_json::Value) {
    let mut not_checked = Vec::new();
    if let Some(invariants) = json["invariants"].as_object_mut() {
        for (id, inv) in invariants.iter_mut() {
            let held = inv["held"].as_bool().unwrap_or(false);
            let text = inv["summary"].as_str().unwrap_or_default();
            let verdict = if !held {
                "violated"
            } else if text.contains("(not checked)") || text.contains("nothing judged") {
                not_checked.push(serde_json::Value::from(id.as_str()));
                "not_checked"
            } else {
                "held"
            };
            if let Some(inv) = inv.as_object_mut() {
                inv.remove("held");
                inv.insert("verdict".to_owned(), verdict.into());
            }
        }
    }
    if !not_checked.is_empty() {
        json["all_invariants_held"] = false.into();
    }
    json["invariants_not_checked"] = not_checked.into();
    json["schema_version"] = 2.into();
}

/// Latency percentiles (from the intended send) of every class both runs have, then
/// throughput and the time to sell out.
pub fn compare(baseline: &Summary, run: &Summary) -> Comparison {
    let mut rows = Vec::new();
    for (class, base) in &baseline.latency.from_intended {
        let Some(now) = run.latency.from_intended.get(class) else {
            continue;
        };
        for (name, b, r) in [
            ("p50", base.p50_us, now.p50_us),
            ("p90", base.p90_us, now.p90_us),
            ("p99", base.p99_us, now.p99_us),
            ("p99.9", base.p99_9_us, now.p99_9_us),
            ("max", base.max_us, now.max_us),
        ] {
            rows.push(Row {
                metric: format!("{class} {name}"),
                baseline: b as f64 / 1e3,
                run: r as f64 / 1e3,
                unit: "ms",
                higher_is_better: false,
            });
        }
    }
    let (b, r) = (
        &baseline.throughput.answers_per_s,
        &run.throughput.answers_per_s,
    );
    for (name, b, r) in [
        ("throughput all", b.all, r.all),
        ("throughput ok", b.ok, r.ok),
    ] {
        rows.push(Row {
            metric: name.to_owned(),
            baseline: b,
            run: r,
            unit: "/s",
            higher_is_better: true,
        });
    }
    if let (Some(b), Some(r)) = (
        baseline.sellout.time_to_sell_out_ms,
        run.sellout.time_to_sell_out_ms,
    ) {
        rows.push(Row {
            metric: "time to sell out".to_owned(),
            baseline: b,
            run: r,
            unit: "ms",
            higher_is_better: false,
        });
    }

    let mut warnings = Vec::new();
    if baseline.scenario != run.scenario {
        warnings.push(format!(
            "the runs used different scenarios ({} and {}, or the same name with other settings)",
            baseline.scenario_name, run.scenario_name
        ));
    }
    for (which, summary) in [("baseline", baseline), ("run", run)] {
        let violated = summary.violated();
        if !violated.is_empty() {
            warnings.push(format!(
                "the {which} violated {}: its figures describe a broken server",
                violated.join(", ")
            ));
        }
        if !summary.invariants_not_checked.is_empty() {
            warnings.push(format!(
                "the {which} did not check {}",
                summary.invariants_not_checked.join(", ")
            ));
        }
        if let Some(g) = summary.generator.as_ref().filter(|g| g.bound) {
            warnings.push(format!(
                "the {which} was generator-bound: {}",
                g.reasons.join("; ")
            ));
        }
    }
    Comparison { rows, warnings }
}

impl Comparison {
    /// Rows that regressed by more than `limit_pct`.
    pub fn regressions(&self, limit_pct: f64) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|row| row.regression_pct().is_some_and(|r| r > limit_pct))
            .collect()
    }

    /// The side-by-side table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<24} {:>14} {:>14} {:>9}\n",
            "metric", "baseline", "run", "change"
        );
        for row in &self.rows {
            let value = |v: f64| match row.unit {
                "ms" => format!("{v:.3} ms"),
                _ => format!("{v:.1}/s"),
            };
            let change = row
                .change_pct()
                .map_or("n/a".to_owned(), |c| format!("{c:+.1}%"));
            let _ = writeln!(
                s,
                "{:<24} {:>14} {:>14} {:>9}",
                row.metric,
                value(row.baseline),
                value(row.run),
                change
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(s, "WARNING: {warning}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencyStats;

    /// A summary as written by a real run, with the figures under test replaced.
    fn summary(ok_p99_us: u64, throughput: f64) -> Summary {
        let mut json: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/summary.json")).unwrap();
        json["latency"]["from_intended"]["ok"]["p99_us"] = ok_p99_us.into();
        json["throughput"]["answers_per_s"]["all"] = throughput.into();
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn regressions_are_judged_in_the_direction_that_hurts() {
        let base = summary(10_000, 500.0);
        let run = summary(12_500, 400.0);
        let c = compare(&base, &run);
        let row = |name: &str| c.rows.iter().find(|r| r.metric == name).unwrap();
        assert_eq!(row("ok p99").change_pct(), Some(25.0));
        assert_eq!(row("ok p99").regression_pct(), Some(25.0));
        assert_eq!(row("throughput all").change_pct(), Some(-20.0));
        assert_eq!(row("throughput all").regression_pct(), Some(20.0));
        let over_10: Vec<&str> = c
            .regressions(10.0)
            .iter()
            .map(|r| r.metric.as_str())
            .collect();
        assert_eq!(over_10, ["ok p99", "throughput all"]);
        assert!(c.regressions(30.0).is_empty());
        // Faster and busier is no regression, whatever the limit.
        assert!(compare(&run, &base).regressions(0.0).is_empty());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let table = c.table();
        assert!(
            table.contains("ok p99                        10.000 ms      12.500 ms    +25.0%"),
            "{table}"
        );
        assert!(table.contains("throughput all"), "{table}");
    }

    #[test]
    fn different_scenarios_and_generator_bound_runs_are_flagged() {
        let base = summary(1_000, 1.0);
        let mut run = summary(1_000, 1.0);
        run.scenario.buyers.count += 1;
        if let Some(g) = run.generator.as_mut() {
            g.bound = true;
            g.reasons = vec!["CPU saturated".to_owned()];
        }
        run.latency.from_intended.insert(
            "unknown".to_owned(),
            LatencyStats {
                count: 1,
                p50_us: 1,
                p90_us: 1,
                p99_us: 1,
                p99_9_us: 1,
                max_us: 1,
            },
        );
        let c = compare(&base, &run);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[1].contains("run was generator-bound: CPU saturated"));
        assert!(
            !c.rows.iter().any(|r| r.metric.starts_with("unknown")),
            "only classes both runs have"
        );
    }

    #[test]
    fn verdicts_other_than_held_are_flagged() {
        let base = summary(1_000, 1.0);
        let mut run = summary(1_000, 1.0);
        run.invariants.get_mut("INV-6").unwrap().verdict = crate::checker::Verdict::NotChecked;
        run.invariants_not_checked = vec!["INV-6".to_owned()];
        run.invariants.get_mut("INV-1").unwrap().verdict = crate::checker::Verdict::Violated;
        let c = compare(&base, &run);
        assert_eq!(
            c.warnings,
            [
                "the run violated INV-1: its figures describe a broken server",
                "the run did not check INV-6"
            ]
        );
    }

    #[test]
    fn a_version_1_summary_reads_back_with_its_not_checked_verdicts() {
        let mut json: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/summary.json")).unwrap();
        json["schema_version"] = 1.into();
        json.as_object_mut()
            .unwrap()
            .remove("invariants_not_checked");
        for (id, inv) in json["invariants"].as_object_mut().unwrap() {
            let inv = inv.as_object_mut().unwrap();
            inv.remove("verdict");
            inv.insert("held".to_owned(), (id != "INV-2").into());
        }
        json["invariants"]["INV-6"]["summary"] =
            "not measured (not checked): no settled inventory view was read after the run".into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        std::fs::write(&path, json.to_string()).unwrap();
        let back = read_summary(&path).unwrap();
        assert_eq!(back.schema_version, 2);
        assert_eq!(back.violated(), ["INV-2"]);
        assert_eq!(back.invariants_not_checked, ["INV-6"]);
        assert!(!back.all_invariants_held);
        assert_eq!(
            back.invariants["INV-1"].verdict,
            crate::checker::Verdict::Held
        );
    }

    #[test]
    fn a_missing_summary_names_the_path() {
        let err = read_summary(Path::new("/nonexistent/run")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/run"), "{err}");
    }
}
