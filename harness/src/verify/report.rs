//! What `flashsale verify` leaves behind: the verdict table, `verify.json`, and one scenario file
//! per failing check with the exact command that replays it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{CheckOutcome, Counterexample, Verdict, VerifyReport};
use crate::explore::generate::describe;
use crate::run::{TargetChoice, TargetProfile};
use crate::scenario::Scenario;

/// What a replay command puts in place of the admin token, which verify never writes down.
pub const TOKEN_PLACEHOLDER: &str = "<YOUR-ADMIN-TOKEN>";

/// The `flashsale run` flags that aim a replay at the same server: `--inventory S` for the
/// in-process reference server, `--target URL --admin-token <YOUR-ADMIN-TOKEN>` for a URL.
pub fn target_flags(target: &TargetChoice) -> String {
    match target {
        TargetChoice::InProcess { strategy, .. } => format!("--inventory {}", strategy.name()),
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::Contract { .. },
        } => {
            format!("--target {base_url} --admin-token {TOKEN_PLACEHOLDER}")
        }
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::File(profile),
        } => format!("--target {base_url} --profile {}", profile.source),
        TargetChoice::Service { profile, .. } => format!("--profile {}", profile.source),
    }
}

/// The command that replays `path` with `seed` against `target`.
pub fn replay_command(path: &Path, seed: u64, target: &TargetChoice) -> String {
    format!(
        "flashsale run {} --seed {seed} {}",
        path.display(),
        target_flags(target)
    )
}

/// Writes `counterexamples/<check>.toml`: the run's scenario with its seed fixed, under a header
/// saying what it broke and how to replay it.
pub fn write_counterexample(
    out_dir: &Path,
    check: &str,
    scenario: &Scenario,
    target: &TargetChoice,
    violated: &[String],
    explanation: &str,
    run_dir: &Path,
) -> std::io::Result<Counterexample> {
    let path = out_dir
        .join("counterexamples")
        .join(format!("{check}.toml"));
    let seed = scenario.seed.unwrap_or_default();
    let replay = replay_command(&path, seed, target);
    let body = toml::to_string(scenario).map_err(std::io::Error::other)?;
    let header = format!(
        "# Counterexample found by `flashsale verify`, check `{check}`: violated {}.\n\
         # The run: {} ({}); its outputs are in {}.\n\
         # Replay (the same scenario and seed, a fresh sale):\n#   {replay}\n\n",
        violated.join(", "),
        describe(scenario),
        one_line(explanation),
        run_dir.display(),
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, header + &body)?;
    Ok(Counterexample {
        path,
        replay,
        seed,
        violated: violated.to_vec(),
        run_dir: run_dir.to_path_buf(),
        explanation: explanation.to_owned(),
    })
}

fn one_line(text: &str) -> String {
    let flat = text.replace('\n', " ");
    if flat.chars().count() > 300 {
        flat.chars().take(300).collect::<String>() + "…"
    } else {
        flat
    }
}

/// Writes `verify.json`.
pub fn write_json(out_dir: &Path, report: &VerifyReport) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join("verify.json");
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&path, json + "\n")?;
    Ok(path)
}

/// The verdict table and what follows it: the detection figure, the replay commands, the verdict.
pub fn console(report: &VerifyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>5} {:>10} {:>8}  {:<16} provokes",
        "check", "runs", "violations", "time", "violated"
    );
    for check in &report.checks {
        let _ = writeln!(out, "{}", row(check));
    }
    let d = &report.detection;
    let _ = writeln!(
        out,
        "\ndetection: {} ok claims in the largest run, {} in all {} runs: a bug on 1 claim in {} \
         or more (one run, e.g. counted per server process) or 1 in {} or more (spread over runs) \
         fires with {:.0} % probability{}",
        grouped(d.largest_run_ok_claims),
        grouped(d.total_ok_claims),
        report.runs.len(),
        one_in(d.rate_largest_run),
        one_in(d.rate_all_runs),
        d.probability * 100.0,
        if d.one_in_1000_in_one_run {
            ""
        } else {
            " (no run had the 4,603 claims a 1-in-1,000 bug needs: the volume check makes them)"
        }
    );
    for check in &report.checks {
        if let Some(x) = &check.counterexample {
            let _ = writeln!(
                out,
                "{}: {} — counterexample {}\n  replay: {}",
                check.name,
                x.violated.join(", "),
                x.path.display(),
                x.replay
            );
        }
    }
    // What no run could judge is said, never folded into "held".
    let mut not_checked: BTreeMap<&str, u32> = BTreeMap::new();
    for id in report.runs.iter().flat_map(|r| &r.not_checked) {
        *not_checked.entry(id.as_str()).or_default() += 1;
    }
    if !not_checked.is_empty() {
        let listed: Vec<String> = not_checked
            .iter()
            .map(|(id, runs)| format!("{id} in {runs} of {} runs", report.runs.len()))
            .collect();
        let _ = writeln!(out, "not checked: {}", listed.join(", "));
    }
    let verdict = match report.verdict {
        Verdict::Held => "all held",
        Verdict::Violated => "VIOLATED",
        Verdict::ThresholdFailed => "held, but a threshold failed",
    };
    let _ = write!(
        out,
        "verdict: {verdict} ({} runs in {:.1}s of a {:.0}s budget{})",
        report.runs.len(),
        report.elapsed_ms as f64 / 1000.0,
        report.budget_ms as f64 / 1000.0,
        if report.stopped_early {
            ", stopped at the first violation"
        } else {
            ""
        }
    );
    out
}

fn row(check: &CheckOutcome) -> String {
    if let Some(why) = &check.skipped {
        return format!(
            "{:<22} {:>5} {:>10} {:>8}  {:<16} {} [not run: {why}]",
            check.name, "-", "-", "-", "-", check.provokes,
        );
    }
    let violated = if check.violated.is_empty() {
        "-".to_owned()
    } else {
        check.violated.iter().cloned().collect::<Vec<_>>().join(",")
    };
    let mut provokes = check.provokes.clone();
    if check.scenarios_total > 0 && check.scenarios_covered < check.scenarios_total {
        let _ = write!(
            provokes,
            " [{} of {} scenarios ran]",
            check.scenarios_covered, check.scenarios_total
        );
    }
    format!(
        "{:<22} {:>5} {:>10} {:>7.1}s  {:<16} {}",
        check.name,
        check.runs,
        check.violations,
        check.elapsed_ms as f64 / 1000.0,
        violated,
        provokes
    )
}

/// "1 in N" for a rate, N rounded to a readable figure.
fn one_in(rate: f64) -> String {
    if rate >= 1.0 {
        return "1".to_owned();
    }
    grouped((1.0 / rate).floor() as u64)
}

/// A count with thousands separated: 5,000.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use flashsale_mutants::InventoryStrategy;

    use super::*;
    use crate::target::Dependencies;

    #[test]
    fn replay_commands_name_the_same_server() {
        let in_process = TargetChoice::InProcess {
            strategy: InventoryStrategy::BrokenNaive,
            deps: Dependencies::from_env(),
            keep_database: false,
            replicas: 1,
        };
        assert_eq!(
            replay_command(
                Path::new("out/counterexamples/boundary.toml"),
                9,
                &in_process
            ),
            "flashsale run out/counterexamples/boundary.toml --seed 9 --inventory broken-naive"
        );
        let url = TargetChoice::Url {
            base_url: "http://shop:8080".into(),
            profile: TargetProfile::Contract {
                admin_token: "secret".into(),
            },
        };
        let command = replay_command(Path::new("c.toml"), 1, &url);
        assert_eq!(
            command,
            "flashsale run c.toml --seed 1 --target http://shop:8080 --admin-token <YOUR-ADMIN-TOKEN>"
        );
        assert!(!command.contains("secret"));
    }

    #[test]
    fn a_counterexample_file_is_a_scenario_that_carries_its_seed_and_replay_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut scenario =
            super::super::battery::checks(&["last-unit".into()])[0].scenarios[0].clone();
        scenario.seed = Some(77);
        let target = TargetChoice::InProcess {
            strategy: InventoryStrategy::Redis,
            deps: Dependencies::from_env(),
            keep_database: false,
            replicas: 1,
        };
        let x = write_counterexample(
            dir.path(),
            "last-unit",
            &scenario,
            &target,
            &["INV-1".into()],
            "INV-1: 2 units\npersisted",
            &dir.path().join("runs/last-unit-1"),
        )
        .unwrap();
        let text = std::fs::read_to_string(&x.path).unwrap();
        assert!(text.contains(&format!("#   {}", x.replay)), "{text}");
        assert!(
            x.replay.ends_with("--seed 77 --inventory redis"),
            "{}",
            x.replay
        );
        let back = Scenario::from_path(&x.path).unwrap();
        assert_eq!(back, scenario);
    }

    #[test]
    fn one_in_groups_thousands() {
        assert_eq!(one_in(1.0 / 1086.2), "1,086");
        assert_eq!(one_in(1.0), "1");
        assert_eq!(one_in(1e-7), "10,000,000");
    }
}
