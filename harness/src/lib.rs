//! flashsale harness: fires concurrent buyers at a flash-sale server, records every attempt,
//! checks the invariants of SPEC.md against the server's exported ledger, and writes reports.

pub mod checker;
pub mod cli;
pub mod faults;
pub mod history;
pub mod ledger;
pub mod load;
pub mod report;
pub mod run;
pub mod scenario;
pub mod target;

use std::path::PathBuf;

use run::{RunOptions, TargetChoice, exit};
use scenario::Scenario;
use target::Dependencies;

/// `flashsale run`: validates the arguments, runs, prints the summary, returns the exit status.
pub async fn cli_run(args: cli::RunArgs) -> i32 {
    let scenario = match Scenario::from_path(&args.scenario) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    let target = match (args.target, args.inventory) {
        (Some(_), Some(_)) => {
            eprintln!(
                "error: --inventory selects the strategy of the in-process reference server; a \
                 --target server runs whatever it runs. Drop one of the two."
            );
            return exit::SETUP;
        }
        (Some(base_url), None) => match args.admin_token {
            Some(admin_token) => TargetChoice::Url {
                base_url,
                admin_token,
            },
            None => {
                eprintln!(
                    "error: --target needs the server's admin token to create the sale and read \
                     back its ledger: pass --admin-token or set FLASHSALE_ADMIN_TOKEN"
                );
                return exit::SETUP;
            }
        },
        (None, strategy) => TargetChoice::InProcess {
            strategy: strategy.unwrap_or(flashsale_server::InventoryStrategy::Redis),
            deps: Dependencies::from_env(),
            keep_database: args.keep_db,
        },
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
