//! `flashsale run`: one scenario against one target, the summary on the console.

use std::path::PathBuf;

use super::exit;
use super::{RunArgs, target_choice, target_label};
use crate::report;
use crate::run::{self, RunOptions};
use crate::scenario::Scenario;

/// `flashsale run`: validates the arguments, runs, prints the summary, returns the exit status.
pub async fn run(args: RunArgs) -> i32 {
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
        target_label(&target)
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
