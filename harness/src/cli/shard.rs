//! `flashsale run --shard K/N`, `run --workers N`, `prepare` and `merge`: the commands of a
//! campaign fired by several load generators (see [`crate::shard`]).

use std::path::PathBuf;

use time::OffsetDateTime;

use super::exit;
use super::run::print_result;
use super::{MergeArgs, PrepareArgs, RunArgs, ServerArgs, provide_services, target_choice};
use crate::report;
use crate::run::{StartedTarget, TargetChoice, start_target};
use crate::scenario::Scenario;
use crate::shard::clock::ClockOffset;
use crate::shard::merge::{merge as merge_shards, read_shard_set};
use crate::shard::shard_run::{ShardOptions, run_shard};
use crate::shard::workers::{WorkersOptions, run_workers};
use crate::shard::{SaleFile, unshardable};

/// `run --shard` or `run --workers`, after the scenario was read.
pub(super) async fn run_sharded(args: RunArgs, scenario: Scenario) -> i32 {
    let conflict = if args.shard.is_some() && args.workers.is_some() {
        Some("--shard runs one generator of a campaign and --workers runs them all: give one")
    } else if args.repeat > 1 {
        Some("--repeat repeats single runs; run a sharded campaign again for another verdict")
    } else if args.dry_run {
        Some("--dry-run checks a target without load; run it without --shard or --workers")
    } else if args.shard.is_some() && args.replicas > 1 {
        Some(
            "--replicas starts in-process replicas, which shards cannot share: give the fleet's URLs to --target",
        )
    } else {
        None
    };
    if let Some(conflict) = conflict {
        eprintln!("error: {conflict}");
        return exit::SETUP;
    }
    if let Some(why) = unshardable(&scenario) {
        eprintln!("error: {why}");
        return exit::SETUP;
    }
    let profile_path = args.server.profile.clone();
    let admin_token = args.server.admin_token.clone();
    let mut target = match target_choice(args.server, args.keep_db) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    let Some(shard) = args.shard else {
        let workers = args.workers.unwrap_or(1);
        match &mut target {
            TargetChoice::InProcess { replicas, .. } => *replicas = args.replicas as usize,
            TargetChoice::Service { .. } => {
                eprintln!(
                    "error: --workers needs a server the shard processes can share: the \
                     in-process reference server (no --profile) or a running one (--target)"
                );
                return exit::SETUP;
            }
            TargetChoice::Url { .. } if args.replicas > 1 => {
                eprintln!("error: --replicas starts the in-process server; drop it with --target");
                return exit::SETUP;
            }
            TargetChoice::Url { .. } => {}
        }
        let _services = match provide_services(&mut target).await {
            Ok(services) => services,
            Err(problem) => {
                eprintln!("error: {problem}");
                return exit::SETUP;
            }
        };
        eprintln!(
            "flashsale: running {} ({} buyers) from {workers} shard processes against {}",
            scenario.name,
            scenario.buyers.count,
            super::target_label(&target)
        );
        let options = WorkersOptions {
            scenario_path: args.scenario.clone(),
            scenario,
            target,
            profile_path,
            admin_token,
            workers,
            seed: args.seed,
            out_dir: args.out,
            results_root: PathBuf::from("results"),
        };
        return match run_workers(options).await {
            Ok(result) => print_result(&result),
            Err(err) => {
                eprintln!("error: {err}");
                exit::SETUP
            }
        };
    };
    if !matches!(target, TargetChoice::Url { .. }) {
        eprintln!(
            "error: --shard fires part of the buyers at a server every shard shares: give it \
             with --target URL (to shard against the in-process reference server, use \
             --workers N)"
        );
        return exit::SETUP;
    }
    let (Some(sale_file), Some(doors_open_at)) = (args.sale_file, args.doors_open_at) else {
        eprintln!("error: --shard needs --sale-file PATH and --doors-open-at INSTANT");
        return exit::SETUP;
    };
    if let Some(problem) = implausible_doors_open(doors_open_at, OffsetDateTime::now_utc()) {
        eprintln!("error: --doors-open-at {doors_open_at}: {problem}");
        return exit::SETUP;
    }
    let out_dir = args.out.unwrap_or_else(|| {
        let run = report::default_out_dir(
            &PathBuf::from("results"),
            &scenario.name,
            OffsetDateTime::now_utc(),
        );
        run.join(format!("shard-{}", shard.index))
    });
    let options = ShardOptions {
        scenario,
        target,
        shard,
        sale_file,
        doors_open_at,
        out_dir,
        seed: args.seed,
        clock: args.same_machine_clock.then(ClockOffset::same_machine),
    };
    match run_shard(options).await {
        Ok(outcome) => {
            let r = &outcome.record;
            let clock = match r.clock.offset_us {
                Some(us) => format!(
                    "clock {:+.1} ms ±{:.1} ms against {}",
                    us as f64 / 1e3,
                    r.clock.uncertainty_us.unwrap_or(0) as f64 / 1e3,
                    r.clock.reference
                ),
                None => format!("clock offset {}", r.clock.reference),
            };
            println!(
                "shard {}: {} buyers, {} attempts recorded in {}; {clock}; opened {:+.1} ms from \
                 the agreed instant",
                r.shard,
                r.buyers,
                r.attempts,
                outcome.out_dir.display(),
                r.doors_open_drift_us as f64 / 1e3
            );
            println!(
                "no verdict from one shard: `flashsale merge` with every shard's directory gives it"
            );
            exit::HELD
        }
        Err(err) => {
            eprintln!("error: shard {shard}: {err}");
            exit::SETUP
        }
    }
}

/// Why a doors-open instant is a mistake rather than a plan, if it is: more than a day ahead (a
/// shard would sit idle until then) or more than an hour past (the campaign is over; a late
/// shard within the hour still fires, and records how late it was).
fn implausible_doors_open(at: OffsetDateTime, now: OffsetDateTime) -> Option<String> {
    if at - now > time::Duration::DAY {
        Some(
            "more than a day ahead: give the instant every shard opens at, a few minutes from \
             now (e.g. `date -u -d '+3 min' +%Y-%m-%dT%H:%M:%SZ`)"
                .to_owned(),
        )
    } else if now - at > time::Duration::HOUR {
        Some(
            "more than an hour ago: this campaign's doors have long opened; start a new one \
             with a new sale file and a new instant"
                .to_owned(),
        )
    } else {
        None
    }
}

/// `flashsale prepare`.
pub(super) async fn prepare(args: PrepareArgs) -> i32 {
    let scenario = match Scenario::from_path(&args.scenario) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    if let Some(why) = unshardable(&scenario) {
        eprintln!("error: {why}");
        return exit::SETUP;
    }
    if args.sale_file.exists() {
        eprintln!(
            "error: {} already exists: a sale file names one campaign's sale; choose a new path \
             (or remove it to prepare a new campaign)",
            args.sale_file.display()
        );
        return exit::SETUP;
    }
    let started = match reach(&scenario, args.target, args.admin_token, args.profile).await {
        Ok(started) => started,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    let written = match SaleFile::create(&scenario, &started.driver, args.seed).await {
        Ok(file) => file.write_once(&args.sale_file),
        Err(err) => Err(err.to_string()),
    };
    started.stop().await;
    match written {
        Ok(file) => {
            println!(
                "sale {} created for {} (seed {}); every shard follows {}",
                file.sale_id,
                file.scenario.name,
                file.seed,
                args.sale_file.display()
            );
            exit::HELD
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit::SETUP
        }
    }
}

/// The server (or fleet) at `target` that `prepare` and `merge` talk to, as `--target` with its
/// token or profile names it.
async fn reach(
    scenario: &Scenario,
    target: String,
    admin_token: Option<String>,
    profile: Option<PathBuf>,
) -> Result<StartedTarget, String> {
    let server = ServerArgs {
        target: Some(target),
        admin_token,
        profile,
        inventory: None,
    };
    let target = target_choice(server, false)?;
    start_target(scenario, target)
        .await
        .map_err(|e| e.to_string())
}

/// `flashsale merge`.
pub(super) async fn merge(args: MergeArgs) -> i32 {
    let set = match read_shard_set(&args.shards) {
        Ok(set) => set,
        Err(why) => {
            eprintln!("error: {why}");
            return exit::SETUP;
        }
    };
    let scenario = set.sale.scenario.clone();
    let recorded = set.shards[0].record.target.join(",");
    let target = args.target.unwrap_or(recorded);
    let started = match reach(&scenario, target, args.admin_token, args.profile).await {
        Ok(started) => started,
        Err(problem) => {
            eprintln!("error: {problem}");
            return exit::SETUP;
        }
    };
    let out_dir = args.out.unwrap_or_else(|| {
        report::default_out_dir(
            &PathBuf::from("results"),
            &scenario.name,
            OffsetDateTime::now_utc(),
        )
    });
    let merged = merge_shards(
        &set,
        &started.driver,
        started.label.clone(),
        started.strategy.clone(),
        out_dir,
        None,
    )
    .await;
    started.stop().await;
    match merged {
        Ok(result) => print_result(&result),
        Err(err) => {
            eprintln!("error: {err}");
            exit::SETUP
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doors_open_instant_far_off_is_refused() {
        let now = time::macros::datetime!(2026-12-03 10:00:00 UTC);
        assert!(implausible_doors_open(now + time::Duration::minutes(3), now).is_none());
        assert!(implausible_doors_open(now - time::Duration::minutes(5), now).is_none());
        let ahead = implausible_doors_open(now + time::Duration::days(365), now).unwrap();
        assert!(ahead.contains("a day ahead"), "{ahead}");
        let past = implausible_doors_open(now - time::Duration::hours(2), now).unwrap();
        assert!(past.contains("an hour ago"), "{past}");
    }
}
