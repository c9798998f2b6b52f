//! flashsale harness: fires concurrent buyers at a flash-sale server, records every attempt,
//! checks the invariants of SPEC.md against the server's exported ledger, and writes reports.

pub mod blast;
pub mod checker;
pub mod cli;
pub mod compare;
pub mod explore;
pub mod faults;
pub mod generator;
pub mod history;
pub mod ledger;
pub mod load;
pub mod progress;
pub mod report;
pub mod run;
pub mod scenario;
pub mod target;
pub mod thresholds;

use std::path::PathBuf;

use run::{RunOptions, TargetChoice, exit};
use scenario::Scenario;
use target::Dependencies;

/// The server the `run` and `explore` flags name: `--target` (with its admin token) or the
/// in-process reference server with `--inventory`; naming both is refused.
fn target_choice(
    server: cli::ServerArgs,
    keep_database: bool,
) -> Result<TargetChoice, &'static str> {
    let cli::ServerArgs {
        target,
        admin_token,
        inventory,
    } = server;
    match (target, inventory) {
        (Some(_), Some(_)) => Err(
            "--inventory selects the strategy of the in-process reference server; a --target \
             server runs whatever it runs. Drop one of the two.",
        ),
        (Some(base_url), None) => match admin_token {
            Some(admin_token) => Ok(TargetChoice::Url {
                base_url,
                admin_token,
            }),
            None => Err(
                "--target needs the server's admin token to create the sale and read back its \
                 ledger: pass --admin-token or set FLASHSALE_ADMIN_TOKEN",
            ),
        },
        (None, strategy) => Ok(TargetChoice::InProcess {
            strategy: strategy.unwrap_or(flashsale_mutants::InventoryStrategy::Redis),
            deps: Dependencies::from_env(),
            keep_database,
        }),
    }
}

/// `flashsale run`: validates the arguments, runs, prints the summary, returns the exit status.
pub async fn cli_run(args: cli::RunArgs) -> i32 {
    let scenario = match Scenario::from_path(&args.scenario) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    let target = match target_choice(args.server, args.keep_db) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    eprintln!(
        "flashsale: running {} ({} buyers) against {}",
        scenario.name,
        scenario.buyers.count,
        match &target {
            TargetChoice::InProcess { strategy, .. } =>
                format!("the in-process reference server ({strategy})"),
            TargetChoice::Url { base_url, .. } => base_url.clone(),
        }
    );
    let options = RunOptions {
        scenario,
        target,
        seed: args.seed,
        out_dir: args.out,
        results_root: PathBuf::from("results"),
    };
    match run::run(options).await {
        Ok(result) => {
            println!("{}", report::console_summary(&result.summary));
            if let Some(generator) = result.summary.generator.as_ref().filter(|g| g.bound) {
                eprintln!(
                    "WARNING: generator-bound run: {}. Its latencies describe the load \
                     generator as much as the server.",
                    generator.reasons.join("; ")
                );
            }
            for reason in &result.faults_not_applied {
                println!("WARNING: a planned fault did not take effect: {reason}");
            }
            result.exit_status()
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit::SETUP
        }
    }
}

/// `flashsale explore`: searches generated scenarios for a violation, shrinks it, writes it.
pub async fn cli_explore(args: cli::ExploreArgs) -> i32 {
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
    let label = match &target {
        TargetChoice::InProcess { strategy, .. } => {
            format!("the in-process reference server ({strategy})")
        }
        TargetChoice::Url { base_url, .. } => base_url.clone(),
    };
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
            if result.check.all_held() {
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

/// `flashsale compare`: prints the table, returns the exit status.
pub fn cli_compare(args: cli::CompareArgs) -> i32 {
    let read = |path: &std::path::Path| {
        compare::read_summary(path).map_err(|err| eprintln!("error: {err}"))
    };
    let (Ok(baseline), Ok(run)) = (read(&args.baseline), read(&args.run)) else {
        return exit::SETUP;
    };
    let comparison = compare::compare(&baseline, &run);
    print!("{}", comparison.table());
    let Some(limit) = args.max_regression_pct else {
        return exit::HELD;
    };
    let regressions = comparison.regressions(limit);
    if regressions.is_empty() {
        println!("no figure regressed by more than {limit}%");
        return exit::HELD;
    }
    for row in regressions {
        println!(
            "REGRESSION: {} worse by {:.1}% (limit {limit}%)",
            row.metric,
            row.regression_pct().unwrap_or_default()
        );
    }
    exit::THRESHOLD_FAILED
}

/// `flashsale blast`: validates the arguments, blasts, prints (and writes) the summary.
pub async fn cli_blast(args: cli::BlastArgs) -> i32 {
    let options = match blast::BlastOptions::new(
        &args.url,
        &args.method,
        &args.headers,
        args.connections,
        args.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
        args.duration,
        args.timeout,
    )
    .await
    {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    let run = match blast::blast(&options).await {
        Ok(run) => run,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    let summary = blast::BlastSummary::of(&options, &run);
    if let Some(dir) = &args.out
        && let Err(err) = blast::write(dir, &summary, &run)
    {
        eprintln!("error: cannot write into {}: {err}", dir.display());
        return exit::SETUP;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).expect("a summary serializes")
        );
    } else {
        print!("{}", summary.text());
    }
    exit::HELD
}
