//! `flashsale explore`: generated scenarios until one breaks an invariant, then its minimal case.

use super::exit;
use super::{ExploreArgs, provide_services, target_choice, target_label};
use crate::explore;
use crate::report;
use crate::run::{self, RunOptions, TargetChoice};

/// `flashsale explore`: searches generated scenarios for a violation, shrinks it, writes it.
pub async fn explore(args: ExploreArgs) -> i32 {
    let mut target = match target_choice(args.server, false) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    // Held to the end of the command: the containers started for it go when it returns.
    let _services = match provide_services(&mut target).await {
        Ok(services) => services,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    let faults = !args.no_faults && matches!(target, TargetChoice::InProcess { .. });
    let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() >> 11);
    let started = time::OffsetDateTime::now_utc();
    let out = args.out.unwrap_or_else(|| {
        report::default_out_dir(std::path::Path::new("results"), "explore", started)
    });
    let label = target_label(&target);
    eprintln!(
        "flashsale explore: up to {} generated scenarios against {label}, seed {seed} \
         (repeat with --seed {seed}){}",
        args.cases,
        if faults { "" } else { ", without faults" }
    );
    let mut profile = explore::generate::GenProfile::explore(faults);
    profile.max_buyers = args.max_buyers;
    profile.journeys = target.supports_holds();
    let options = explore::SearchOptions {
        target: target.clone(),
        profile,
        cases: args.cases,
        seed,
        max_shrink_iters: MAX_SHRINK_ITERS,
        persistence: None,
        verbose: true,
    };
    let handle = tokio::runtime::Handle::current();
    let searched = tokio::task::spawn_blocking(move || {
        let handle_for_search = handle.clone();
        explore::search(options, &handle_for_search)
    })
    .await
    .expect("the search does not panic");
    let outcome = match searched {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    let Some(found) = outcome.found else {
        println!(
            "no invariant broke in {} generated scenarios (seed {seed})",
            outcome.cases_run
        );
        return exit::HELD;
    };
    let scenario_path = out.join("minimal.toml");
    if let Err(err) = explore::write_scenario(
        &scenario_path,
        &found,
        &format!("seed {seed}, against {label}"),
        &target,
    ) {
        eprintln!("error: cannot write {}: {err}", scenario_path.display());
        return exit::SETUP;
    }
    println!(
        "{} — minimal case: {}",
        found_after(outcome.cases_run, outcome.runs, seed, &found.reason),
        explore::generate::describe(&found.minimal)
    );
    if outcome.shrink_limit_hit {
        println!(
            "shrinking stopped after running {MAX_SHRINK_ITERS} candidates (its budget); the case \
             may shrink further"
        );
    }
    println!("minimal scenario written to {}", scenario_path.display());
    // Replay it K times, the first into minimal-run/ so its history sits beside it.
    let mut failed = 0;
    let mut replayed = 0;
    for k in 1..=args.replays {
        let dir = if k == 1 {
            out.join("minimal-run")
        } else {
            out.join(format!("minimal-run-{k}"))
        };
        let replay = run::run(RunOptions {
            scenario: found.minimal.clone(),
            target: target.clone(),
            seed: found.minimal.seed,
            out_dir: Some(dir),
            results_root: out.clone(),
        })
        .await;
        match replay {
            Ok(result) => {
                if k == 1 {
                    println!("{}", report::console_summary(&result.summary));
                }
                replayed += 1;
                if !result.check.none_violated() {
                    failed += 1;
                }
            }
            Err(err) => {
                eprintln!("warning: replay {k} of the minimal case could not run: {err}");
                break;
            }
        }
    }
    if replayed > 0 {
        println!("{}", reproducibility(failed, replayed));
    }
    println!(
        "replay: {}",
        explore::replay_command(&scenario_path, &target, found.minimal.seed)
    );
    exit::VIOLATED
}

/// Most shrink candidates run (each once, twice when it fails); cached and skipped ones are free.
const MAX_SHRINK_ITERS: u32 = 32;

/// The honest count: generated cases, and runs with shrinking (never more cases than asked).
fn found_after(cases: u32, runs: u32, seed: u64, reason: &str) -> String {
    format!(
        "found after {cases} generated cases ({runs} runs including shrinking), seed {seed}: \
         {reason}"
    )
}

/// How often the minimal case failed again, in words that never overstate it.
fn reproducibility(failed: u32, replays: u32) -> String {
    let how = if failed == replays {
        "it reproduces every time"
    } else if failed * 2 > replays {
        "it reproduces most of the time; the failure depends on timing"
    } else if failed > 0 {
        "it reproduces only sometimes; the failure depends on timing, replay it several times"
    } else {
        "it did not reproduce; the failure depends on timing, replay it several times or run \
         with --repeat"
    };
    format!("the minimal case failed {failed} of {replays} replays: {how}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducibility_never_overstates() {
        assert_eq!(
            reproducibility(5, 5),
            "the minimal case failed 5 of 5 replays: it reproduces every time"
        );
        assert!(reproducibility(3, 5).contains("most of the time"));
        for (k, n) in [(1, 9), (4, 8), (1, 2), (0, 5)] {
            let text = reproducibility(k, n);
            assert!(!text.contains("most of the time"), "{text}");
            assert!(
                text.contains(&format!("failed {k} of {n} replays")),
                "{text}"
            );
        }
    }

    #[test]
    fn the_counts_name_cases_and_runs_apart() {
        assert_eq!(
            found_after(7, 19, 1, "violated INV-1"),
            "found after 7 generated cases (19 runs including shrinking), seed 1: violated INV-1"
        );
    }
}
