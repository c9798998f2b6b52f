//! `flashsale run --workers N`: a sharded campaign on one machine, through the same code path as
//! one across machines. This process reaches (or starts) the target and creates the sale, writes
//! the sale file, starts N `flashsale run --shard K/N` processes with one doors-open instant a
//! few seconds ahead, waits for them, and merges their directories into one run.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::merge::{merge, read_shard_set};
use super::{SaleFile, ShardSpec};
use crate::report;
use crate::run::{RunError, RunResult, TargetChoice, start_target, writable};
use crate::scenario::Scenario;
use crate::target::server_metrics::scrape_all;

/// How far ahead of the sale's creation doors open: time for N processes to start, build their
/// plan and warm their connections, plus a little per process (they share the machine's cores).
/// A shard that is later still opens at once and says by how much (`doors_open_drift_us`).
fn lead(workers: u32) -> Duration {
    Duration::from_secs(3) + Duration::from_millis(250) * workers
}

/// Everything `--workers` needs.
#[derive(Debug, Clone)]
pub struct WorkersOptions {
    /// The scenario file, read again by every shard process.
    pub scenario_path: PathBuf,
    pub scenario: Scenario,
    pub target: TargetChoice,
    /// The `--profile` of a `--target`, passed on to the shards.
    pub profile_path: Option<PathBuf>,
    /// The admin token given to this command (`--admin-token` or `FLASHSALE_ADMIN_TOKEN`), passed
    /// on to the shards whatever the profile; the in-process server's own otherwise.
    pub admin_token: Option<String>,
    pub workers: u32,
    pub seed: Option<u64>,
    pub out_dir: Option<PathBuf>,
    pub results_root: PathBuf,
}

/// Runs the campaign; the result is the merged run's. A shard that fails makes the merge refuse
/// (a set-up error naming it, and where its console output is).
pub async fn run_workers(options: WorkersOptions) -> Result<RunResult, RunError> {
    let WorkersOptions {
        scenario_path,
        scenario,
        target,
        profile_path,
        admin_token,
        workers,
        seed,
        out_dir,
        results_root,
    } = options;
    if let Some(why) = super::unshardable(&scenario) {
        return Err(RunError::Setup(why));
    }
    let exe = flashsale_binary().ok_or_else(|| {
        RunError::Setup(
            "--workers starts `flashsale` processes, and no flashsale binary was found beside \
             this one: build it (`cargo build -p flashsale-harness`) or set FLASHSALE_BIN"
                .to_owned(),
        )
    })?;
    let out_dir = out_dir.unwrap_or_else(|| {
        report::default_out_dir(&results_root, &scenario.name, OffsetDateTime::now_utc())
    });
    writable(&out_dir).map_err(|source| RunError::Output {
        dir: out_dir.clone(),
        source,
    })?;
    // A sale file already there is another campaign's: its shards would fire that sale again.
    let sale_path = out_dir.join("sale.json");
    if sale_path.exists() {
        return Err(RunError::Setup(format!(
            "{} already holds a campaign ({} exists): give --workers a new --out directory",
            out_dir.display(),
            sale_path.display()
        )));
    }
    let admin_token = match &target {
        TargetChoice::Url {
            profile: crate::run::TargetProfile::Contract { admin_token },
            ..
        } => Some(admin_token.clone()),
        _ => admin_token,
    };
    let started = start_target(&scenario, target).await?;
    let result = async {
        let driver = &started.driver;
        let admin_token = admin_token.or_else(|| started.admin_token());
        let ours = SaleFile::create(&scenario, driver, seed).await?;
        let written = ours.write_once(&sale_path).map_err(RunError::Setup)?;
        if written.run_nonce != ours.run_nonce {
            return Err(RunError::Setup(format!(
                "{} was written by another campaign meanwhile: give --workers a directory of \
                 its own",
                sale_path.display()
            )));
        }
        // The server's own counts from here to the merge (`target::server_metrics`).
        let metrics_before = scrape_all(&reqwest::Client::new(), &driver.buy_urls()).await;
        let doors_open_at = OffsetDateTime::now_utc() + lead(workers);
        eprintln!(
            "flashsale: {workers} shard processes, doors open at {}",
            doors_open_at.format(&Rfc3339).unwrap_or_default()
        );
        let mut children = Vec::new();
        let mut dirs = Vec::new();
        for index in 0..workers {
            let shard = ShardSpec {
                index,
                count: workers,
            };
            let dir = out_dir.join(format!("shard-{index}"));
            std::fs::create_dir_all(&dir).map_err(|source| RunError::Output {
                dir: dir.clone(),
                source,
            })?;
            let log = out_dir.join(format!("shard-{index}.log"));
            let console = std::fs::File::create(&log).map_err(|source| RunError::Output {
                dir: out_dir.clone(),
                source,
            })?;
            let mut command = tokio::process::Command::new(&exe);
            command
                .arg("run")
                .arg(&scenario_path)
                .arg("--target")
                .arg(driver.buy_urls().join(","))
                .arg("--shard")
                .arg(shard.to_string())
                .arg("--sale-file")
                .arg(&sale_path)
                .arg("--doors-open-at")
                .arg(doors_open_at.format(&Rfc3339).unwrap_or_default())
                .arg("--out")
                .arg(&dir)
                .arg("--same-machine-clock")
                .stdin(Stdio::null())
                .stdout(console.try_clone().map_err(|source| RunError::Output {
                    dir: out_dir.clone(),
                    source,
                })?)
                .stderr(console)
                .kill_on_drop(true);
            if let Some(profile) = &profile_path {
                command.arg("--profile").arg(profile);
            }
            // The token goes by environment, not argv, where `ps` would show it.
            match &admin_token {
                Some(token) => command.env("FLASHSALE_ADMIN_TOKEN", token),
                None => command.env_remove("FLASHSALE_ADMIN_TOKEN"),
            };
            let child = command
                .spawn()
                .map_err(|e| RunError::Setup(format!("cannot start {}: {e}", exe.display())))?;
            children.push((index, child, log));
            dirs.push(dir);
        }
        let mut failed = Vec::new();
        for (index, mut child, log) in children {
            match child.wait().await {
                Ok(status) if status.success() => {}
                Ok(status) => failed.push(format!(
                    "shard {index}/{workers} exited with {status} (its console: {})",
                    log.display()
                )),
                Err(e) => failed.push(format!("shard {index}/{workers}: {e}")),
            }
        }
        let set = read_shard_set(&dirs).map_err(|why| {
            RunError::Setup(if failed.is_empty() {
                why
            } else {
                format!("{why}\n{}", failed.join("\n"))
            })
        })?;
        // A shard process that failed gives no verdict, even if its directory reads as whole.
        if !failed.is_empty() {
            return Err(RunError::Setup(failed.join("\n")));
        }
        merge(
            &set,
            driver,
            started.label.clone(),
            started.strategy.clone(),
            out_dir.clone(),
            metrics_before,
        )
        .await
    }
    .await;
    started.stop().await;
    result
}

/// The `flashsale` binary: `FLASHSALE_BIN`, this executable if it is flashsale, else beside it
/// (or one directory up, for test binaries under `target/*/deps/`).
pub fn flashsale_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("FLASHSALE_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    if exe.file_stem().is_some_and(|s| s == "flashsale") {
        return Some(exe);
    }
    let dir = exe.parent()?;
    [dir.join("flashsale"), dir.parent()?.join("flashsale")]
        .into_iter()
        .find(|p| p.is_file())
}
