//! One shard's run (`flashsale run --shard K/N`): reach the target, measure the clock, get the
//! sale (from the sale file, or create it as shard 0), fire this shard's buyers from the agreed
//! doors-open instant, and write what a merge needs. No verdict: a shard sees a part.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::clock::{self, ClockOffset};
use super::{SHARD_RECORD, SaleFile, ShardRecord, ShardSpec, ShardStatus, shard_scenario, until};
use crate::history::micros_since;
use crate::load::buyers::{LoadProbe, LoadRun, LoadTarget, plan_buyers, run_load, warmed_client};
use crate::load::progress::Progress;
use crate::load::request::BuyTemplate;
use crate::report;
use crate::run::{TargetChoice, sample_inventory, start_target, writable};
use crate::scenario::Scenario;

/// A shard whose clock is further than this from the target's refuses to run (60 s).
const MAX_CLOCK_OFFSET_US: u64 = 60_000_000;
/// How long before the doors a shard warms its connections.
const WARM_BEFORE_DOORS: time::Duration = time::Duration::seconds(2);

/// Everything a shard needs.
#[derive(Debug, Clone)]
pub struct ShardOptions {
    pub scenario: Scenario,
    /// A server the shards share: a `--target` (one URL or a fleet).
    pub target: TargetChoice,
    pub shard: ShardSpec,
    /// Read if it exists; otherwise shard 0 creates the sale and writes it, and the others wait
    /// for it until doors open.
    pub sale_file: PathBuf,
    /// The agreed instant, reference clock.
    pub doors_open_at: OffsetDateTime,
    pub out_dir: PathBuf,
    /// Used by shard 0 when it creates the sale (then written to the sale file for the others).
    pub seed: Option<u64>,
    /// `Some`: the shards share this machine's clock (`--workers`) and skip the measurement.
    pub clock: Option<ClockOffset>,
}

/// What a finished shard wrote.
#[derive(Debug)]
pub struct ShardOutcome {
    pub record: ShardRecord,
    pub out_dir: PathBuf,
}

/// Runs one shard. A set-up failure after the output directory was found writable is recorded
/// in `shard.json` as `failed` (so a merge names it) and returned as the error.
pub async fn run_shard(options: ShardOptions) -> Result<ShardOutcome, String> {
    if let Some(why) = super::unshardable(&options.scenario) {
        return Err(why);
    }
    writable(&options.out_dir).map_err(|e| {
        format!(
            "cannot write the shard's outputs to {}: {e}",
            options.out_dir.display()
        )
    })?;
    let out_dir = options.out_dir.clone();
    let shard = options.shard;
    // Files an earlier run left in this directory would be merged as this run's: the record
    // first, so a crash from here on leaves a shard that never reported.
    clear_outputs(&out_dir).map_err(|e| {
        format!(
            "cannot clear the earlier outputs in {}: {e}",
            out_dir.display()
        )
    })?;
    let fail_record = |error: &str, sale: Option<&SaleFile>| ShardRecord {
        format: ShardRecord::format(),
        shard,
        status: ShardStatus::Failed,
        error: Some(error.to_owned()),
        scenario_name: options.scenario.name.clone(),
        sale_file: options.sale_file.clone(),
        sale: sale.cloned(),
        target: Vec::new(),
        doors_open_at: options.doors_open_at,
        clock_origin_at: OffsetDateTime::now_utc(),
        clock: ClockOffset {
            offset_us: None,
            uncertainty_us: None,
            reference: "not measured: the shard failed".into(),
        },
        doors_open_drift_us: 0,
        buyers: 0,
        attempts: 0,
        cpu: None,
        finished_at: OffsetDateTime::now_utc(),
    };
    match fire(&options).await {
        Ok(record) => {
            write_record(&out_dir, &record)?;
            Ok(ShardOutcome { record, out_dir })
        }
        Err((error, sale)) => {
            // Best effort: the error is returned (exit 2) whether or not the record is written.
            let _ = write_record(&out_dir, &fail_record(&error, sale.as_ref()));
            Err(error)
        }
    }
}

/// Removes what a shard writes (`shard.json` first), leaving anything else in the directory.
fn clear_outputs(dir: &std::path::Path) -> std::io::Result<()> {
    let ours = |name: &str| {
        name == SHARD_RECORD
            || ["history.jsonl", "schedule.jsonl", "samples.jsonl"].contains(&name)
            || (name.starts_with("latency-") && name.ends_with(".hlog"))
    };
    let _ = std::fs::remove_file(dir.join(SHARD_RECORD));
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(ours) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn write_record(dir: &std::path::Path, record: &ShardRecord) -> Result<(), String> {
    let fail =
        |e: std::io::Error| format!("cannot write {}: {e}", dir.join(SHARD_RECORD).display());
    let text = serde_json::to_string_pretty(record).map_err(|e| fail(e.into()))?;
    // Written to a temporary name and renamed: a merge never reads half a record.
    let tmp = dir.join(format!("{SHARD_RECORD}.tmp"));
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, dir.join(SHARD_RECORD)).map_err(fail)
}

type Failure = (String, Option<SaleFile>);

async fn fire(options: &ShardOptions) -> Result<ShardRecord, Failure> {
    let no_sale = |e: String| (e, None);
    let started = start_target(&options.scenario, options.target.clone())
        .await
        .map_err(|e| no_sale(e.to_string()))?;
    let result = fire_at(options, &started.driver).await;
    started.stop().await;
    result
}

async fn fire_at(
    options: &ShardOptions,
    driver: &crate::target::driver::Driver,
) -> Result<ShardRecord, Failure> {
    let ShardOptions {
        scenario,
        shard,
        sale_file,
        doors_open_at,
        out_dir,
        ..
    } = options;
    let shard = *shard;
    let probe_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| (format!("cannot build an HTTP client: {e}"), None))?;
    let clock = match &options.clock {
        Some(clock) => clock.clone(),
        None => clock::measure(&probe_client, driver.base_url()).await,
    };
    if let Some(offset) = clock
        .offset_us
        .filter(|us| us.unsigned_abs() > MAX_CLOCK_OFFSET_US)
    {
        return Err((
            format!(
                "this machine's clock is {:.1} s off the target's ({}): the shards would open \
                 their doors apart by that much. Sync the clocks (NTP) and run again",
                offset as f64 / 1e6,
                clock.reference
            ),
            None,
        ));
    }
    let sale = obtain_sale(options, driver, &clock)
        .await
        .map_err(|e| (e, None))?;
    let with_sale = |e: String| (e, Some(sale.clone()));
    sale.check_scenario(scenario, sale_file)
        .map_err(with_sale)?;
    sale.check_current(*doors_open_at, sale_file)
        .map_err(with_sale)?;

    let mine = shard_scenario(scenario, shard);
    let buyers: Vec<_> = plan_buyers(scenario, sale.seed, &sale.run_nonce)
        .into_iter()
        .filter(|b| shard.owns(b.arrival_index))
        .collect();
    let buyer_count = buyers.len() as u64;
    // Connections warmed minutes ahead would be closed as idle by then: wait until shortly
    // before the doors, then warm them.
    let warm_at = clock.to_local(*doors_open_at)
        - time::Duration::try_from(mine.arrival.open_after()).unwrap_or_default()
        - WARM_BEFORE_DOORS;
    tokio::time::sleep(until(OffsetDateTime::now_utc(), warm_at)).await;
    let client = warmed_client(&mine, driver.base_url(), buyers.len()).await;

    // The clock origin is placed `open_after` before the agreed instant on this machine's
    // clock, as in a single run, so a merge lines the shards' histories up by their origins.
    // A shard that starts late opens at once and records by how much it was late.
    let open_after = mine.arrival.open_after();
    let doors_local = clock.to_local(*doors_open_at);
    let now_at = OffsetDateTime::now_utc();
    let now = Instant::now();
    let wanted_origin_at = doors_local - time::Duration::try_from(open_after).unwrap_or_default();
    let (origin, clock_origin_at) = if wanted_origin_at > now_at {
        (now + until(now_at, wanted_origin_at), wanted_origin_at)
    } else {
        (now, now_at)
    };
    let doors_open = origin + open_after;
    let probe = Arc::new(LoadProbe::default());
    let progress = Progress::start(&mine, probe.clone(), doors_open);
    let (end_tx, end_rx) = watch::channel(false);
    // Shard 0 reads the inventory during the load (INV-1 "at every moment"); one reader is
    // enough, and N would load the target N times over.
    let sampler = (shard.index == 0).then(|| {
        let (driver, sale_id, cap) = (driver.clone(), sale.sale_id.clone(), sale.cap);
        tokio::spawn(async move {
            // From the clock origin, as in a single run: not through the wait before it.
            tokio::time::sleep_until(origin).await;
            sample_inventory(driver, sale_id, cap, origin, end_rx).await
        })
    });
    let buy = BuyTemplate::new(
        &driver.profile().buy,
        driver.base_url(),
        &sale.sale_id,
        scenario.sale.products.first().map(|p| p.id.clone()),
    )
    .with_replicas(driver.buy_urls());
    let LoadRun {
        history, generator, ..
    } = run_load(
        client,
        &mine,
        &LoadTarget {
            buy: Arc::new(buy),
            holds: None,
        },
        buyers,
        origin,
        doors_open,
        probe,
    )
    .await;
    progress.finish().await;
    let _ = end_tx.send(true);
    let samples = match sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };

    // Late start, plus how late the generator woke its first buyer.
    let late_start_us = (clock_origin_at - wanted_origin_at).whole_microseconds() as i64;
    let first_wake_lag_us = generator
        .schedule
        .iter()
        .min_by_key(|s| s.intended_us)
        .map(|s| s.lag_us() as i64)
        .unwrap_or(0);
    let write = |e: std::io::Error| {
        with_sale(format!(
            "cannot write the shard's outputs to {}: {e}",
            out_dir.display()
        ))
    };
    report::write_jsonl(&out_dir.join("history.jsonl"), &history).map_err(write)?;
    report::write_jsonl(&out_dir.join("schedule.jsonl"), &generator.schedule).map_err(write)?;
    if !samples.is_empty() {
        report::write_jsonl(&out_dir.join("samples.jsonl"), &samples).map_err(write)?;
    }
    let doors_open_us = micros_since(origin, doors_open);
    let doors_open_wall =
        std::time::SystemTime::from(clock_origin_at) + Duration::from_micros(doors_open_us);
    report::write_interval_logs(out_dir, &history, doors_open_us, doors_open_wall)
        .map_err(write)?;
    Ok(ShardRecord {
        format: ShardRecord::format(),
        shard,
        status: ShardStatus::Complete,
        error: None,
        scenario_name: scenario.name.clone(),
        sale_file: sale_file.clone(),
        sale: Some(sale.clone()),
        target: driver.buy_urls(),
        doors_open_at: *doors_open_at,
        clock_origin_at,
        clock,
        doors_open_drift_us: late_start_us + first_wake_lag_us,
        buyers: buyer_count,
        attempts: history.len() as u64,
        cpu: generator.cpu,
        finished_at: OffsetDateTime::now_utc(),
    })
}

/// The sale file's plan: read it; as shard 0 with none there, create the sale and write it; as
/// another shard, wait for it until the doors-open instant.
async fn obtain_sale(
    options: &ShardOptions,
    driver: &crate::target::driver::Driver,
    clock: &ClockOffset,
) -> Result<SaleFile, String> {
    let path = &options.sale_file;
    if path.exists() {
        return SaleFile::read(path);
    }
    if options.shard.index == 0 {
        return SaleFile::create(&options.scenario, driver, options.seed)
            .await
            .map_err(|e| e.to_string())?
            .write_once(path);
    }
    let deadline = clock.to_local(options.doors_open_at);
    loop {
        if path.exists() {
            return SaleFile::read(path);
        }
        if OffsetDateTime::now_utc() >= deadline {
            return Err(format!(
                "the sale file {} did not appear by the doors-open instant {}: shard 0 creates it \
                 (or run `flashsale prepare` first), and every shard must see the same path",
                path.display(),
                options.doors_open_at
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
