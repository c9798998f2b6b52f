//! `flashsale run`: one scenario against one target, the summary on the console; with
//! `--repeat N`, a series of runs and their aggregate.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::exit;
use super::{RunArgs, provide_services, target_choice, target_label};
use crate::repeat::{self, RepeatReport, RepeatRun};
use crate::report;
use crate::run::{self, RunOptions, TargetChoice};
use crate::scenario::Scenario;

/// `flashsale run`: validates the arguments, runs, prints the summary, returns the exit status.
pub async fn run(args: RunArgs) -> i32 {
    // A wishlist-fanout scenario is another kind of run (INV-8, alerts), told by its `kind`.
    if std::fs::read_to_string(&args.scenario)
        .is_ok_and(|text| crate::fanout::scenario::is_fanout_file(&text))
    {
        if args.shard.is_some() || args.workers.is_some() {
            eprintln!(
                "error: {} is a wishlist-fanout scenario, which one process sends and receives; \
                 --shard and --workers shard buy scenarios",
                args.scenario.display()
            );
            return exit::SETUP;
        }
        return super::fanout::run(args).await;
    }
    let scenario = match Scenario::from_path(&args.scenario) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    if args.shard.is_some() || args.workers.is_some() {
        return super::shard::run_sharded(args, scenario).await;
    }
    let mut target = match target_choice(args.server, args.keep_db) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    if args.replicas > 1 {
        match &mut target {
            TargetChoice::InProcess { replicas, .. } => *replicas = args.replicas as usize,
            _ => {
                eprintln!(
                    "error: --replicas runs the in-process reference server as several replicas; \
                     a --target or --profile service is as many servers as it is: drop --replicas"
                );
                return exit::SETUP;
            }
        }
    }
    // Held to the end of the command: the containers started for it go when it returns.
    let _services = match provide_services(&mut target).await {
        Ok(services) => services,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    eprintln!(
        "flashsale: running {} ({} buyers) against {}",
        scenario.name,
        scenario.buyers.count,
        target_label(&target)
    );
    if args.dry_run {
        return dry_run(&scenario, target).await;
    }
    if args.repeat > 1 {
        return run_series(scenario, target, args.seed, args.out, args.repeat).await;
    }
    let options = RunOptions {
        scenario,
        target,
        seed: args.seed,
        out_dir: args.out,
        results_root: PathBuf::from("results"),
    };
    match run::run(options).await {
        Ok(result) => print_result(&result),
        Err(err) => {
            eprintln!("error: {err}");
            exit::SETUP
        }
    }
}

/// Prints a finished run's summary and warnings (a single run, or a merged one); returns its
/// exit status.
pub(super) fn print_result(result: &run::RunResult) -> i32 {
    {
        {
            let mut console = report::console_summary(&result.summary);
            if result.tested_nothing().is_some() {
                console = console.replace(
                    "all invariants held",
                    "no invariant violated, and none exercised",
                );
            }
            println!("{console}");
            if let Some(line) = report::holds_line(&result.hold_ops) {
                println!("{line}");
            }
            if let Some(generator) = result.summary.generator.as_ref().filter(|g| g.bound) {
                eprintln!(
                    "WARNING: generator-bound run: {}. Its latencies describe the load \
                     generator as much as the server.",
                    generator.reasons.join("; ")
                );
            }
            if let Some(reason) = result.tested_nothing() {
                println!("NOTHING TESTED: {reason}");
            }
            for reason in &result.faults_not_applied {
                println!("WARNING: a planned fault did not take effect: {reason}");
            }
            result.exit_status()
        }
    }
}

/// `--repeat N`: runs the scenario N times, one verdict line each, then the aggregate (also
/// written as `repeat.json`). A set-up error stops the series (the runs before it still count).
/// Exit status: 1 if any run violated an invariant, else 2 after a set-up error, else 3 if a
/// threshold failed in any run, else 0.
async fn run_series(
    scenario: Scenario,
    target: TargetChoice,
    seed: Option<u64>,
    out: Option<PathBuf>,
    n: u32,
) -> i32 {
    let out = out.unwrap_or_else(|| {
        report::default_out_dir(
            &PathBuf::from("results"),
            &scenario.name,
            OffsetDateTime::now_utc(),
        )
    });
    let base_seed = seed.or(scenario.seed);
    let mut runs = Vec::new();
    let mut setup_error = None;
    for k in 1..=n {
        let options = RunOptions {
            scenario: scenario.clone(),
            target: target.clone(),
            seed: repeat::seed_for(base_seed, k),
            out_dir: Some(repeat::run_dir(&out, k)),
            results_root: PathBuf::from("results"),
        };
        match run::run(options).await {
            Ok(result) => {
                if let Some(reason) = result.tested_nothing() {
                    println!("NOTHING TESTED: {reason}");
                }
                for reason in &result.faults_not_applied {
                    println!("WARNING: run {k}: a planned fault did not take effect: {reason}");
                }
                let run = RepeatRun::of(k, &result.summary);
                println!(
                    "run {k}/{n} seed {}: {} ({})",
                    run.seed,
                    run.verdict(),
                    run.out_dir.display()
                );
                runs.push(run);
            }
            Err(err) => {
                eprintln!("error: run {k}/{n}: {err}");
                setup_error = Some(format!("run {k}: {err}"));
                break;
            }
        }
    }
    let report = RepeatReport::new(&scenario.name, n, runs, setup_error);
    println!("{}", report.console());
    let path = out.join("repeat.json");
    let written = std::fs::create_dir_all(&out).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).expect("the report serializes") + "\n",
        )
    });
    match written {
        Ok(()) => println!("aggregate in {}", path.display()),
        Err(err) => {
            eprintln!("error: cannot write {}: {err}", path.display());
            return exit::SETUP;
        }
    }
    if report.runs_violated > 0 {
        exit::VIOLATED
    } else if report.setup_error.is_some() {
        exit::SETUP
    } else if report.runs_threshold_failed > 0 {
        exit::THRESHOLD_FAILED
    } else {
        exit::HELD
    }
}

/// `--dry-run`: the run up to its load, and what it found.
async fn dry_run(scenario: &Scenario, target: TargetChoice) -> i32 {
    match run::dry_run(scenario, target).await {
        Ok(found) => {
            let figure = |v: Option<i64>| v.map_or("not reported".to_owned(), |v| v.to_string());
            println!("dry run against {}: no buy was sent", found.target);
            println!(
                "  set-up: sale {} created and opened (cap {})",
                found.sale_id,
                found.cap.map_or("unlimited".to_owned(), |c| c.to_string())
            );
            println!(
                "  ground truth: read, {} orders, {} units in orders",
                found.orders, found.view.units_in_orders
            );
            if found.has_counters {
                println!(
                    "  counters: quantity_sold {}, counter {}",
                    figure(found.view.quantity_sold),
                    figure(found.view.redis_counter)
                );
            } else {
                println!("  counters: none in the profile, INV-6 will be NOT CHECKED");
            }
            if !found.keys_sent {
                println!(
                    "  idempotency keys: not sent ([buy] has no {{idempotency_key}}), INV-4 will be NOT CHECKED"
                );
            }
            exit::HELD
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit::SETUP
        }
    }
}
