//! `flashsale run` on a `wishlist-fanout` scenario: the in-process reference server's activation
//! and alert fan-out, judged by INV-8 (`fanout/`). The buy-scenario options that mean nothing
//! here (`--target`, `--profile`, `--repeat`, `--dry-run`) are refused with the reason.

use std::path::PathBuf;

use super::exit;
use super::{RunArgs, provide_services, target_choice};
use crate::fanout::run::{self, FanoutOptions, FanoutSummary};
use crate::fanout::scenario::FanoutScenario;
use crate::run::TargetChoice;

pub async fn run(args: RunArgs) -> i32 {
    let scenario = match FanoutScenario::from_path(&args.scenario) {
        Ok(scenario) => scenario,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    if args.server.target.is_some() || args.server.profile.is_some() {
        eprintln!(
            "error: a wishlist-fanout scenario runs the in-process reference server (it restarts \
             it and points its alerts at the harness's own mail and push endpoints); drop \
             --target / --profile"
        );
        return exit::SETUP;
    }
    if args.replicas > 1 {
        eprintln!(
            "error: --replicas is for buy scenarios; a wishlist-fanout run restarts one server \
             (alerts from several replicas share the queue and journal, but no scenario runs them yet)"
        );
        return exit::SETUP;
    }
    if args.repeat > 1 || args.dry_run {
        eprintln!(
            "error: --repeat and --dry-run apply to buy scenarios; drop them for a wishlist-fanout scenario"
        );
        return exit::SETUP;
    }
    let mut target = match target_choice(args.server, args.keep_db) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    let _services = match provide_services(&mut target).await {
        Ok(services) => services,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    let TargetChoice::InProcess {
        strategy,
        deps,
        keep_database,
        ..
    } = target
    else {
        eprintln!("error: a wishlist-fanout scenario needs the in-process reference server");
        return exit::SETUP;
    };
    eprintln!(
        "flashsale: running {} ({} subscribers, {}) against the in-process reference server ({strategy})",
        scenario.name,
        scenario.fanout.subscribers,
        scenario.fanout.channels.join(" + ")
    );
    let options = FanoutOptions {
        scenario,
        strategy,
        deps,
        seed: args.seed,
        out_dir: args.out,
        results_root: PathBuf::from("results"),
        keep_database,
    };
    match run::run(options).await {
        Ok(outcome) => {
            println!("{}", console(&outcome.summary));
            println!("results: {}", outcome.out_dir.display());
            match outcome.verdict() {
                crate::checker::Verdict::Held => exit::HELD,
                crate::checker::Verdict::Violated => exit::VIOLATED,
                crate::checker::Verdict::NotChecked => exit::THRESHOLD_FAILED,
            }
        }
        Err(problem) => {
            eprintln!("error: {problem}");
            exit::SETUP
        }
    }
}

/// The console summary of a fan-out run.
pub fn console(summary: &FanoutSummary) -> String {
    let mut lines = vec![format!(
        "{}: {} subscribers, sale {} scheduled {}",
        summary.scenario, summary.subscribers, summary.sale_id, summary.starts_at
    )];
    if let Some(ms) = summary.activation_vs_start_ms {
        lines.push(format!(
            "  activation: {:.0} ms {} the start (the job runs a second ahead; the window is checked at each claim)",
            ms.abs(),
            if ms <= 0.0 { "before" } else { "after" }
        ));
    }
    for (name, figures) in [("email", &summary.email), ("push", &summary.push)] {
        if let Some(f) = figures {
            let ms = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0} ms"));
            lines.push(format!(
                "  {name:5}: {}/{} arrived ({} users); after the start: first {}, p50 {}, p99 {}, last {}; {} per second",
                f.arrived,
                f.expected,
                f.distinct_users,
                ms(f.first_ms),
                ms(f.p50_ms),
                ms(f.p99_ms),
                ms(f.last_ms),
                f.per_second.map_or("—".to_owned(), |r| format!("{r:.0}")),
            ));
        }
    }
    for fault in &summary.faults_applied {
        lines.push(format!(
            "  fault: {} — at {:.0} ms, after {} arrivals{}",
            fault.fault,
            fault.at_ms,
            fault.deliveries_before,
            fault
                .took_ms
                .map_or(String::new(), |t| format!(", server back after {t:.0} ms"))
        ));
    }
    for fault in &summary.faults_not_applied {
        lines.push(format!(
            "  WARNING: a planned fault did not take effect: {fault}"
        ));
    }
    if summary.smtp_refused_while_refusing > 0 {
        lines.push(format!(
            "  the SMTP sink refused {} messages with 451 while refusing",
            summary.smtp_refused_while_refusing
        ));
    }
    lines.push(format!("  server's record: {}", summary.server_counts));
    for (id, result) in &summary.invariants {
        lines.push(format!(
            "{id} {} {}: {}",
            result.name,
            result.verdict.label(),
            result.summary
        ));
        if let Some(example) = &result.counterexample {
            lines.push(format!("  {}", example.explanation));
        }
    }
    lines.join("\n")
}
