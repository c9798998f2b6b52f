//! The `flashsale` command line: its options, one module per command, the exit statuses. The
//! top layer of the crate: it calls the library and prints; nothing in the library calls it.

mod blast;
mod compare;
pub mod exit;
mod explore;
mod fanout;
mod run;
mod shard;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use flashsale_mutants::InventoryStrategy;

use crate::profile::Profile;
use crate::run::{TargetChoice, TargetProfile};
use crate::target::Dependencies;
use crate::target::dependencies::{self, Provided, Source};

/// Fires concurrent buyers at a flash-sale server, records every attempt, and proves that
/// exactly the cap succeeded.
#[derive(Debug, Parser)]
#[command(name = "flashsale", version, about)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file and check every invariant.
    ///
    /// Exit status: 0 no invariant violated (and every threshold passed; invariants the run could
    /// not judge are printed as NOT CHECKED); 1 an invariant was violated; 2 bad input or
    /// set-up; 3 no invariant violated but a threshold failed. With --repeat, the same over all
    /// runs: 1 if any run violated.
    Run(RunArgs),
    /// Run generated scenarios until an invariant breaks, shrink the failure to a minimal
    /// scenario, and write it where `flashsale run` replays it.
    ///
    /// Exit status: 0 no violation in all cases; 1 a violation was found (and written); 2 bad
    /// input or set-up.
    Explore(ExploreArgs),
    /// Give one verdict on a flash-sale server: a battery of checks, each built to make one
    /// class of bug fire (boundary, last-unit, same-key-at-once, retries-after-unknown, volume,
    /// window-edges, unlimited-and-cap-0), repeated until one fails or its share of the budget
    /// is spent, then generated scenarios until the budget is gone.
    ///
    /// Writes a verdict table, verify.json, every run's outputs (runs/<check>-<n>/) and, for
    /// each failing check, its first counterexample as a scenario file with the exact replay
    /// command (counterexamples/<check>.toml).
    ///
    /// Exit status: 0 every invariant held in every run; 1 a violation (named, with its replay
    /// command); 2 bad input or set-up; 3 every invariant held but a threshold failed.
    Verify(VerifyArgs),
    /// Compare two runs: latency percentiles and throughput side by side, change in percent.
    ///
    /// Exit status: 0 no regression beyond the limit (or no limit given); 2 a summary could not
    /// be read; 3 a figure regressed by more than --max-regression-pct.
    Compare(CompareArgs),
    /// Create the sale of a sharded campaign and write the sale file every shard follows
    /// (`flashsale run --shard K/N --sale-file F`): the plan's seed and key nonce, the sale's id
    /// and window. Optional: without it, shard 0 creates the sale.
    ///
    /// Exit status: 0 written; 2 bad input, the target unreachable, or the file already there.
    Prepare(PrepareArgs),
    /// Merge the directories of a sharded campaign's shards into one run: refuse unless every
    /// shard 0..N-1 reported complete for one sale; then join the histories on one clock, add
    /// the HdrHistograms, read the ledger once and run the checker once, writing the summary,
    /// report and exit status of a single run.
    ///
    /// Exit status: as `flashsale run`: 0 every invariant held; 1 one was violated; 2 bad input,
    /// an incomplete or inconsistent set of shards, or set-up; 3 a threshold failed.
    Merge(MergeArgs),
    /// Measure the harness's raw request rate against one URL (like wrk or oha), recording
    /// every attempt: N keep-alive connections, each sending its next request as soon as the
    /// previous answer is read, for the duration.
    ///
    /// Exit status: 0 it ran (errors are counted and reported, not fatal); 2 bad arguments or
    /// nothing listening at the URL.
    Blast(BlastArgs),
}

#[derive(Debug, clap::Args)]
pub struct BlastArgs {
    /// The URL to request, plain HTTP, e.g. http://127.0.0.1:8080/health.
    pub url: String,
    /// Keep-alive connections, each with one request in flight at a time.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub connections: u32,
    /// OS threads the connections are shared out over, each with its own event loop (like
    /// wrk's -t) [default: one per core].
    #[arg(short = 't', long)]
    pub threads: Option<u32>,
    /// How long to send for, e.g. 10s, 1m.
    #[arg(short = 'd', long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Extra request header, "Name: value"; repeat for more.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Per-request timeout; a slower request is recorded as a `timeout` error.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// After its last answer, a thread keeps polling its sockets this long before it sleeps, so
    /// the server's answers do not have to wake it; 0s turns it off.
    #[arg(long, default_value = "100us", value_parser = humantime::parse_duration)]
    pub busy_poll: std::time::Duration,
    /// Print the summary as one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write blast.json (the summary) and attempts.csv (every attempt) into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// The scenario file the campaign runs (every shard must be given the same).
    pub scenario: PathBuf,
    /// The server (or fleet) the shards will share.
    #[arg(long, value_name = "URL[,URL…]")]
    pub target: String,
    /// Its admin bearer token (a server implementing server/openapi.json).
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A target profile, for a service whose API is not server/openapi.json.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Where to write the sale file (on storage every shard can read).
    #[arg(long, value_name = "PATH")]
    pub sale_file: PathBuf,
    /// Seed of the plan (overrides the scenario's; otherwise one is drawn and recorded).
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Every shard's output directory (its --out), each holding shard.json.
    #[arg(required = true, value_name = "SHARD_DIR")]
    pub shards: Vec<PathBuf>,
    /// Where to write the merged run [default: results/<scenario>/<UTC timestamp>/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The server to read the ledger from [default: the one the shards recorded].
    #[arg(long, value_name = "URL[,URL…]")]
    pub target: Option<String>,
    /// Its admin bearer token (a server implementing server/openapi.json).
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The target profile the shards were run with, if any.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline run's directory (holding summary.json), or its summary.json.
    pub baseline: PathBuf,
    /// The run to judge against the baseline.
    pub run: PathBuf,
    /// Fail (exit 3) when any latency percentile grew, or any throughput fell, by more than
    /// this many percent.
    #[arg(long, value_name = "PCT")]
    pub max_regression_pct: Option<f64>,
}

#[derive(Debug, clap::Args)]
pub struct ExploreArgs {
    /// The server to explore (generated scenarios carry no faults against a --target: the
    /// harness can only break what it starts).
    #[command(flatten)]
    pub server: ServerArgs,
    /// How many generated scenarios to run before concluding that none breaks an invariant.
    #[arg(long, default_value_t = 50)]
    pub cases: u32,
    /// Seed of the generator; printed at the start so any campaign can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where to write the minimal failing scenario and its run [default: results/explore/<UTC timestamp>/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Generate scenarios without faults (faults need Docker).
    #[arg(long)]
    pub no_faults: bool,
    /// Most buyers a generated scenario may have.
    #[arg(long, default_value_t = 2000)]
    pub max_buyers: u32,
    /// How many times the minimal failing case is replayed to measure how often it fails
    /// ("failed k of K").
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub replays: u32,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Wall clock for the whole command, e.g. 3m, 90s: about 60 % shared over the checks, the
    /// rest for generated scenarios. A run is never cut short, so the last one may end a little
    /// after it.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub budget: std::time::Duration,
    /// Seed every run's seed is derived from; printed at the start so a verdict can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory [default: results/verify/<UTC timestamp>/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only these checks, comma-separated (boundary, last-unit, same-key-at-once,
    /// retries-after-unknown, volume, window-edges, unlimited-and-cap-0, generated).
    #[arg(long, value_delimiter = ',', value_name = "CHECK,...")]
    pub checks: Vec<String>,
    /// Stop at the first violation (for CI).
    #[arg(long)]
    pub fail_fast: bool,
}

/// Which server a command talks to; shared by `run`, `explore` and `verify`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// URL of a running server to test instead of the in-process reference server; several,
    /// separated by commas, for replicas of one service: buyers are spread across them (by
    /// buyer), the sale is set up and the ledger read through the first.
    #[arg(long, value_name = "URL[,URL…]")]
    pub target: Option<String>,
    /// Admin bearer token of the --target server (a server implementing server/openapi.json;
    /// a --profile may use it as ${FLASHSALE_ADMIN_TOKEN}).
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Target profile (TOML) describing a service whose API is not server/openapi.json: how a
    /// sale is set up, how a buy is sent and its answer read, where the ground truth is
    /// (docs/profiles.md; examples in targets/). With --target, the service at that URL; without,
    /// the harness starts the service from the profile's [service] section.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Inventory strategy of the in-process reference server: redis (default), postgres, or a
    /// deliberately broken one to see the checker catch it: broken-naive, broken-seed,
    /// oversell-at-boundary, ack-without-order, order-answered-sold-out, racy-idempotency,
    /// unit-without-order, racy-buyer-limit, checkout-after-expiry, expiry-returns-twice,
    /// holds-not-counted (mutants/src/lib.rs says what each breaks).
    #[arg(long, value_name = "STRATEGY")]
    pub inventory: Option<InventoryStrategy>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file (TOML), e.g. scenarios/last-ten-units.toml.
    pub scenario: PathBuf,
    /// Output directory [default: results/<scenario>/<UTC timestamp>/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Seed for everything the run draws (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the in-process server's database after the run, for inspection.
    #[arg(long)]
    pub keep_db: bool,
    /// Run the scenario N times, each in <out>/run-<k>/ with its own seed (--seed S, or the
    /// scenario's: S, S+1, …; otherwise a fresh one each), then print the aggregate and write
    /// <out>/repeat.json.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Do everything a run does before its load — reach or start the target, create and open
    /// the sale, read the ground truth and the counters once — then stop: checks a profile
    /// against a live service without sending a buy.
    #[arg(long)]
    pub dry_run: bool,
    /// Run the in-process reference server as N replicas on one PostgreSQL database and one
    /// Redis, buyers spread across them by buyer; the summary shows each replica's share.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub replicas: u32,
    /// Fire the scenario from N local shard processes (`--shard K/N` each) and merge them into
    /// one run: the code path of a campaign across machines, on this one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: Option<u32>,
    /// Fire only shard K of N of the scenario's buyers (each at its instant of the whole plan),
    /// at the --target the shards share; writes what `flashsale merge` judges, gives no verdict.
    #[arg(long, value_name = "K/N", requires_all = ["sale_file", "doors_open_at"])]
    pub shard: Option<crate::shard::ShardSpec>,
    /// The campaign's sale file (--shard): read if it exists; otherwise shard 0 creates the
    /// sale and writes it here, and the other shards wait for it until doors open.
    #[arg(long, value_name = "PATH", requires = "shard")]
    pub sale_file: Option<PathBuf>,
    /// The instant every shard opens its doors (RFC 3339, e.g. 2026-12-03T10:00:00Z), on the
    /// target's clock: each shard measures its offset from the target's Date header. Refused
    /// when more than a day ahead or more than an hour past (a typo, not a plan).
    #[arg(long, value_name = "INSTANT", requires = "shard", value_parser = parse_instant)]
    pub doors_open_at: Option<time::OffsetDateTime>,
    /// The shards share this machine's clock (`--workers` passes it): skip the measurement.
    #[arg(long, hide = true, requires = "shard")]
    pub same_machine_clock: bool,
}

fn parse_instant(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(
        |e| {
            format!(
                "{text:?} is not an RFC 3339 instant ({e}): write it like 2026-12-03T10:00:00Z,                  e.g. from `date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ`"
            )
        },
    )
}

/// Runs the command, returns its exit status.
pub async fn dispatch(command: Command) -> i32 {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Explore(args) => explore::explore(args).await,
        Command::Verify(args) => verify::verify(args).await,
        Command::Prepare(args) => shard::prepare(args).await,
        Command::Merge(args) => shard::merge(args).await,
        Command::Compare(args) => compare::compare(args),
        Command::Blast(args) => blast::blast(args).await,
    }
}

/// The server the `run`, `explore` and `verify` flags name: `--target` (with a `--profile`, or
/// the admin token of a server implementing the contract), a `--profile` whose service the
/// harness starts, or the in-process reference server with `--inventory`.
pub(crate) fn target_choice(
    server: ServerArgs,
    keep_database: bool,
) -> Result<TargetChoice, String> {
    let ServerArgs {
        target,
        admin_token,
        profile,
        inventory,
    } = server;
    if inventory.is_some() && (target.is_some() || profile.is_some()) {
        return Err(
            "--inventory selects the strategy of the in-process reference server; a \
                    --target or --profile server runs whatever it runs. Drop one of the two."
                .to_owned(),
        );
    }
    let profile = match profile {
        None => None,
        Some(path) => {
            let token = admin_token.clone();
            let vars = move |name: &str| match (name, &token) {
                ("FLASHSALE_ADMIN_TOKEN", Some(token)) => Some(token.clone()),
                _ => std::env::var(name).ok(),
            };
            Some(Arc::new(
                Profile::load(&path, &vars).map_err(|e| e.to_string())?,
            ))
        }
    };
    if let Some(target) = &target {
        for url in crate::run::fleet_urls(target) {
            let parsed = url::Url::parse(&url).map_err(|e| {
                format!(
                    "--target {url:?} is not a URL ({e}): give the server's base URL, e.g. \
                     http://127.0.0.1:8080, or several separated by commas for a fleet"
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "--target {url:?} is not an http(s) URL: give the server's base URL, e.g. \
                     http://127.0.0.1:8080"
                ));
            }
        }
    }
    match (target, profile) {
        (Some(base_url), Some(profile)) => Ok(TargetChoice::Url {
            base_url,
            profile: TargetProfile::File(profile),
        }),
        (Some(base_url), None) => match admin_token {
            Some(admin_token) => Ok(TargetChoice::Url {
                base_url,
                profile: TargetProfile::Contract { admin_token },
            }),
            None => Err(
                "--target needs the server's admin token to create the sale and read back its \
                 ledger: pass --admin-token or set FLASHSALE_ADMIN_TOKEN (or describe a service \
                 whose API is not server/openapi.json with --profile FILE)"
                    .to_owned(),
            ),
        },
        (None, Some(profile)) => {
            if profile.service.is_none() {
                return Err(format!(
                    "profile {} has no [service] section, so the harness cannot start the service: \
                     pass --target with the URL of your running service",
                    profile.source
                ));
            }
            Ok(TargetChoice::Service {
                profile,
                keep_database,
            })
        }
        (None, None) => Ok(TargetChoice::InProcess {
            strategy: inventory.unwrap_or(InventoryStrategy::Redis),
            deps: Dependencies::from_env(),
            keep_database,
            replicas: 1,
        }),
    }
}

/// The containers started for one command (none when the services were given or running):
/// held until the command returns, then removed, and the console says so.
pub(crate) struct StartedServices(Option<Provided>);

impl Drop for StartedServices {
    fn drop(&mut self) {
        if let Some(provided) = self.0.take()
            && provided.started_any()
        {
            drop(provided);
            eprintln!("flashsale: removed the containers started for this command");
        }
    }
}

/// For the in-process reference server: the PostgreSQL and Redis it runs on, found
/// (`DATABASE_URL` / `REDIS_URL`, or answering on the default addresses) or started in containers,
/// which `target` is pointed at. Other targets bring their own and need nothing here.
pub(crate) async fn provide_services(target: &mut TargetChoice) -> Result<StartedServices, String> {
    let TargetChoice::InProcess { deps, .. } = target else {
        return Ok(StartedServices(None));
    };
    let provided = dependencies::provide(&|line| eprintln!("{line}"))
        .await
        .map_err(|e| e.to_string())?;
    for (name, source) in [
        ("PostgreSQL", &provided.postgres),
        ("Redis", &provided.redis),
    ] {
        if let Source::Container { id, .. } = source {
            eprintln!(
                "flashsale: {name} is up in container {}",
                id.get(..12).unwrap_or(id)
            );
        }
    }
    *deps = provided.deps.clone();
    Ok(StartedServices(Some(provided)))
}

/// How the console names the target, in `run`'s and `explore`'s first line and in the comment
/// of the minimal scenario `explore` writes.
fn target_label(target: &TargetChoice) -> String {
    match target {
        TargetChoice::InProcess { strategy, .. } => {
            format!("the in-process reference server ({strategy})")
        }
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::Contract { .. },
        } => base_url.clone(),
        TargetChoice::Url {
            base_url,
            profile: TargetProfile::File(profile),
        } => format!("{base_url} (profile {})", profile.source),
        TargetChoice::Service { profile, .. } => {
            format!("the service of profile {}", profile.source)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_a_scenario_and_its_flags() {
        let opts = Opts::try_parse_from([
            "flashsale",
            "run",
            "scenarios/last-ten-units.toml",
            "--inventory",
            "broken-naive",
            "--seed",
            "9",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        let Command::Run(args) = opts.command else {
            panic!("not run");
        };
        assert_eq!(args.server.inventory, Some(InventoryStrategy::BrokenNaive));
        assert_eq!(args.seed, Some(9));
        assert_eq!(args.out, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn run_repeats_n_times_and_refuses_zero() {
        let opts =
            Opts::try_parse_from(["flashsale", "run", "s.toml", "--repeat", "5", "--seed", "3"])
                .unwrap();
        let Command::Run(args) = opts.command else {
            panic!("not run");
        };
        assert_eq!((args.repeat, args.seed), (5, Some(3)));
        let Command::Run(args) = Opts::parse_from(["flashsale", "run", "s.toml"]).command else {
            panic!("not run");
        };
        assert_eq!(args.repeat, 1, "one run by default");
        let err = Opts::try_parse_from(["flashsale", "run", "s.toml", "--repeat", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--repeat"), "{err}");
    }

    #[test]
    fn an_unknown_strategy_is_refused_with_the_known_ones_listed() {
        let err = Opts::try_parse_from(["flashsale", "run", "s.toml", "--inventory", "fast"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("broken-naive") && err.contains("redis"),
            "{err}"
        );
    }

    #[test]
    fn explore_takes_its_flags_with_defaults() {
        let opts = Opts::try_parse_from([
            "flashsale",
            "explore",
            "--inventory",
            "broken-naive",
            "--cases",
            "7",
            "--seed",
            "42",
        ])
        .unwrap();
        let Command::Explore(args) = opts.command else {
            panic!("not explore");
        };
        assert_eq!(args.server.inventory, Some(InventoryStrategy::BrokenNaive));
        assert_eq!(
            (args.cases, args.seed, args.max_buyers),
            (7, Some(42), 2000)
        );
        assert!(!args.no_faults);
        assert_eq!(args.replays, 5);
        let Command::Explore(args) =
            Opts::parse_from(["flashsale", "explore", "--no-faults", "--replays", "9"]).command
        else {
            panic!("not explore");
        };
        assert!(args.no_faults);
        assert_eq!(args.replays, 9);
        assert!(Opts::try_parse_from(["flashsale", "explore", "--replays", "0"]).is_err());
    }

    #[test]
    fn blast_takes_the_flags_an_oha_or_wrk_user_expects() {
        let opts = Opts::try_parse_from([
            "flashsale",
            "blast",
            "http://127.0.0.1:8080/health",
            "-c",
            "64",
            "-d",
            "2s",
            "-H",
            "X-A: 1",
            "--json",
        ])
        .unwrap();
        let Command::Blast(args) = opts.command else {
            panic!("not blast");
        };
        assert_eq!(args.connections, 64);
        assert_eq!(args.duration, std::time::Duration::from_secs(2));
        assert_eq!((args.method.as_str(), args.headers.len()), ("GET", 1));
        assert!(args.json && args.out.is_none());
        assert_eq!(args.busy_poll, crate::load::blast::DEFAULT_BUSY_POLL);
        let err = Opts::try_parse_from(["flashsale", "blast", "http://x/", "-d", "ten"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ten"), "{err}");
    }

    #[test]
    fn verify_takes_its_flags_with_defaults() {
        let opts = Opts::try_parse_from([
            "flashsale",
            "verify",
            "--target",
            "http://127.0.0.1:8080",
            "--admin-token",
            "t",
            "--budget",
            "90s",
            "--checks",
            "boundary,volume",
            "--fail-fast",
        ])
        .unwrap();
        let Command::Verify(args) = opts.command else {
            panic!("not verify");
        };
        assert_eq!(args.budget, std::time::Duration::from_secs(90));
        assert_eq!(args.checks, ["boundary", "volume"]);
        assert!(args.fail_fast && args.seed.is_none() && args.out.is_none());
        let Command::Verify(defaults) = Opts::try_parse_from(["flashsale", "verify"])
            .unwrap()
            .command
        else {
            panic!("not verify");
        };
        assert_eq!(defaults.budget, std::time::Duration::from_secs(180));
        assert!(defaults.checks.is_empty() && !defaults.fail_fast);
    }

    #[test]
    fn a_scenario_is_required() {
        assert!(Opts::try_parse_from(["flashsale", "run"]).is_err());
    }
}
