//! `flashsale explore`: generated scenarios until one breaks an invariant, then its minimal case.

use super::exit;
use super::{ExploreArgs, target_choice, target_label};
use crate::explore;
use crate::report;
use crate::run::{self, RunOptions, TargetChoice};

/// `flashsale explore`: searches generated scenarios for a violation, shrinks it, writes it.
pub async fn explore(args: ExploreArgs) -> i32 {
    let target = match target_choice(args.server, false) {
        Ok(target) => target,
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
    let options = explore::SearchOptions {
        target: target.clone(),
        profile,
        cases: args.cases,
        seed,
        max_shrink_iters: 32,
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
    ) {
        eprintln!("error: cannot write {}: {err}", scenario_path.display());
        return exit::SETUP;
    }
    println!(
        "found after {} runs (seed {seed}): {} — minimal case: {}",
        outcome.cases_run,
        found.reason,
        explore::generate::describe(&found.minimal)
    );
    println!("minimal scenario written to {}", scenario_path.display());
    // Replay it once more into the output directory, so its history sits beside it.
    let replay = run::run(RunOptions {
        scenario: found.minimal.clone(),
        target,
        seed: None,
        out_dir: Some(out.join("minimal-run")),
        results_root: out.clone(),
    })
    .await;
    match replay {
        Ok(result) => {
            println!("{}", report::console_summary(&result.summary));
            if result.check.none_violated() {
                println!(
                    "note: this replay held; the failure depends on timing. The file still \
                     reproduces it most of the time."
                );
            }
        }
        Err(err) => eprintln!("warning: the replay of the minimal case could not run: {err}"),
    }
    exit::VIOLATED
}
