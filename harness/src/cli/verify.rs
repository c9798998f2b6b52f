//! `flashsale verify`: the battery against one target within a budget, the verdict table on the
//! console, the exit status of the verdict.

use std::path::Path;

use super::exit;
use super::{VerifyArgs, provide_services, target_choice, target_label};
use crate::verify::{self, VerifyOptions, battery, report};

/// `flashsale verify`: validates the arguments, runs the battery, prints the verdict.
pub async fn verify(args: VerifyArgs) -> i32 {
    let unknown = verify::unknown_checks(&args.checks);
    if !unknown.is_empty() {
        eprintln!(
            "error: unknown check(s) {}: --checks takes a comma-separated list of {}",
            unknown.join(", "),
            battery::NAMES.join(", ")
        );
        return exit::SETUP;
    }
    if args.budget.is_zero() {
        eprintln!("error: --budget must be longer than zero (e.g. 3m, 90s)");
        return exit::SETUP;
    }
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
    let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() >> 11);
    let started = time::OffsetDateTime::now_utc();
    let out_dir = args
        .out
        .unwrap_or_else(|| verify::default_out_dir(Path::new("results"), started));
    eprintln!(
        "flashsale verify: {} against {}, budget {}, seed {seed} (repeat with --seed {seed}), \
         outputs in {}",
        if args.checks.is_empty() {
            "every check".to_owned()
        } else {
            args.checks.join(", ")
        },
        target_label(&target),
        humantime::format_duration(args.budget),
        out_dir.display()
    );
    let options = VerifyOptions {
        target,
        budget: args.budget,
        seed,
        out_dir: out_dir.clone(),
        only: args.checks,
        fail_fast: args.fail_fast,
        verbose: true,
    };
    match verify::verify(options).await {
        Ok(report) => {
            println!("{}", report::console(&report));
            println!("results in {}", out_dir.display());
            report.verdict.exit_status()
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit::SETUP
        }
    }
}
