//! `flashsale merge`: the shards of one campaign made into one run, judged once.
//!
//! The set is refused, naming what is wrong, unless it is whole: every shard 0..N-1 present
//! once, each `complete`, all following one sale file, each history as long as its record says
//! and its interval logs equal to the histograms of its history. Then the histories are put on
//! one clock (each shard's origin moved by its measured offset), joined and renumbered, the
//! ledger is read once, the checker runs once, and the outputs of a single run are written. A
//! partial verdict is never presented as whole: a missing shard's buyers might be the ones that
//! oversold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{SHARD_RECORD, SaleFile, ShardRecord, ShardStatus};
use crate::checker::{self, CheckInput};
use crate::history::{Attempt, InventorySample, Outcome};
use crate::latency::{LatencyClass, LatencyHistograms};
use crate::load::health::{GeneratorStats, ScheduleSample};
use crate::report::{self, Family, RunInfo, RunOutputs, ShardFigures, ShardsReport};
use crate::run::{RunError, RunResult, SaleWindow, settle, target_rules};
use crate::target::driver::Driver;
use crate::target::server_metrics::{ServerMetricsReport, Snapshot, scrape_all};

/// One shard's directory, read and checked.
#[derive(Debug)]
pub struct LoadedShard {
    pub dir: PathBuf,
    pub record: ShardRecord,
    pub history: Vec<Attempt>,
    pub schedule: Vec<ScheduleSample>,
    pub samples: Vec<InventorySample>,
    /// The total of each interval log it wrote, by class and family.
    pub logged: BTreeMap<(LatencyClass, &'static str), Histogram<u64>>,
}

/// A whole set of shards, in index order.
#[derive(Debug)]
pub struct ShardSet {
    pub shards: Vec<LoadedShard>,
    pub sale: SaleFile,
}

/// Reads the shard directories and refuses any set that is not whole (see the module's doc).
pub fn read_shard_set(dirs: &[PathBuf]) -> Result<ShardSet, String> {
    if dirs.is_empty() {
        return Err(
            "give the directories the shards wrote (their --out), e.g. `flashsale merge \
                    results/shard-0 results/shard-1 --out results/merged`"
                .to_owned(),
        );
    }
    // Every directory is read before any is refused, so one message names every shard that
    // failed or never reported, a failure's cause first.
    let mut records = Vec::new();
    let mut failed = Vec::new();
    let mut unreadable = Vec::new();
    for dir in dirs {
        match read_record(dir) {
            Ok(record) if record.status == ShardStatus::Failed => {
                failed.push(failed_message(dir, &record))
            }
            Ok(record) => records.push((dir.clone(), record)),
            Err(problem) => unreadable.push(problem),
        }
    }
    if !failed.is_empty() || !unreadable.is_empty() {
        failed.extend(unreadable);
        return Err(failed.join("\n"));
    }
    let sale = check_set(&records)?;
    let mut shards = Vec::new();
    for (dir, record) in records {
        shards.push(load_shard(dir, record)?);
    }
    shards.sort_by_key(|s| s.record.shard.index);
    Ok(ShardSet { shards, sale })
}

fn read_record(dir: &Path) -> Result<ShardRecord, String> {
    if !dir.is_dir() {
        return Err(format!(
            "{} is not a directory: give each shard's output directory (its --out)",
            dir.display()
        ));
    }
    let path = dir.join(SHARD_RECORD);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} has no {SHARD_RECORD}: that shard never reported (it is still running, it \
                 crashed, or it never started). A shard writes it last, when its load is over; \
                 merging the others would give a verdict on part of the buyers, so the merge \
                 refuses. Wait for it, or run the campaign again",
                dir.display()
            ));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let record: ShardRecord = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a shard record written by `flashsale run --shard` ({e})",
            path.display()
        )
    })?;
    if !record.is_current_format() {
        return Err(format!(
            "{} has format {:?}, which this flashsale does not read ({:?})",
            path.display(),
            record.format,
            ShardRecord::format()
        ));
    }
    Ok(record)
}

/// The checks on the records alone: every shard complete, one sale, one count, each index once.
/// Returns the sale they share.
pub fn check_set(records: &[(PathBuf, ShardRecord)]) -> Result<SaleFile, String> {
    for (dir, record) in records {
        if record.status == ShardStatus::Failed {
            return Err(failed_message(dir, record));
        }
    }
    let (first_dir, first) = &records[0];
    let count = first.shard.count;
    let sale = first.sale.clone().ok_or_else(|| {
        format!(
            "shard {} ({}) is complete but names no sale",
            first.shard,
            first_dir.display()
        )
    })?;
    let mut seen: BTreeMap<u32, &Path> = BTreeMap::new();
    for (dir, record) in records {
        let spec = record.shard;
        if spec.count == 0 || spec.count > super::MAX_SHARDS || spec.index >= spec.count {
            return Err(format!(
                "{} names shard {}/{}, which no run writes: the record was altered",
                dir.display(),
                spec.index,
                spec.count
            ));
        }
        if record.doors_open_at != first.doors_open_at {
            return Err(format!(
                "{} opened its doors at {} and {} at {}: the shards of one campaign share one \
                 --doors-open-at",
                first_dir.display(),
                first.doors_open_at,
                dir.display(),
                record.doors_open_at
            ));
        }
        if record.shard.count != count {
            return Err(format!(
                "{} is shard {} and {} is shard {}: the shards of one campaign share one N",
                first_dir.display(),
                first.shard,
                dir.display(),
                record.shard
            ));
        }
        let same_sale = record.sale.as_ref().is_some_and(|s| {
            s.sale_id == sale.sale_id
                && s.run_nonce == sale.run_nonce
                && serde_json::to_value(&s.scenario).ok()
                    == serde_json::to_value(&sale.scenario).ok()
        });
        if !same_sale {
            return Err(format!(
                "{} and {} followed different sale files (sale {} vs {}): they are shards of \
                 different campaigns",
                first_dir.display(),
                dir.display(),
                sale.sale_id,
                record.sale.as_ref().map_or("none", |s| s.sale_id.as_str())
            ));
        }
        if let Some(other) = seen.insert(record.shard.index, dir) {
            return Err(format!(
                "shard {} appears twice ({} and {}): give each shard's directory once",
                record.shard,
                other.display(),
                dir.display()
            ));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|k| !seen.contains_key(k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard{} {} of the campaign {} missing: a merge judges every buyer of the plan or \
             none (give every shard's directory; a shard that never ran means the campaign must \
             be run again)",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            if missing.len() > 1 { "are" } else { "is" }
        ));
    }
    Ok(sale)
}

fn failed_message(dir: &Path, record: &ShardRecord) -> String {
    format!(
        "shard {} failed ({}): {}. Its buyers were not all fired, so no verdict can be given on \
         the campaign; fix the cause and run it again",
        record.shard,
        dir.display(),
        record.error.as_deref().unwrap_or("no reason recorded")
    )
}

fn load_shard(dir: PathBuf, record: ShardRecord) -> Result<LoadedShard, String> {
    let history: Vec<Attempt> = read_jsonl(&dir.join("history.jsonl"))?;
    if history.len() as u64 != record.attempts {
        return Err(format!(
            "{}: history.jsonl holds {} attempts and the shard recorded {}: the file was cut \
             short or altered; run the campaign again",
            dir.display(),
            history.len(),
            record.attempts
        ));
    }
    let schedule = read_jsonl(&dir.join("schedule.jsonl"))?;
    let samples_path = dir.join("samples.jsonl");
    let samples = if samples_path.exists() {
        read_jsonl(&samples_path)?
    } else {
        Vec::new()
    };
    let mut logged = BTreeMap::new();
    for class in LatencyClass::ALL {
        for family in [Family::FromIntended, Family::FromSend] {
            let path = dir.join(format!(
                "latency-{}{}.hlog",
                class.as_str(),
                family.suffix()
            ));
            if let Some(total) =
                report::read_interval_log_total(&path).map_err(|e| e.to_string())?
            {
                logged.insert((class, family.suffix()), total);
            }
        }
    }
    let shard = LoadedShard {
        dir,
        record,
        history,
        schedule,
        samples,
        logged,
    };
    if let Some(class) = histograms_disagree(&shard.logged, &shard.history) {
        return Err(format!(
            "{}: the interval logs of class {class} do not add up to the latencies of its \
             history.jsonl: the files were altered or come from different runs",
            shard.dir.display()
        ));
    }
    Ok(shard)
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {} ({e}): a complete shard writes it before its record",
            path.display()
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// The first class (by name) whose logged histograms differ from those of `history`, if any.
pub fn histograms_disagree(
    logged: &BTreeMap<(LatencyClass, &'static str), Histogram<u64>>,
    history: &[Attempt],
) -> Option<&'static str> {
    let computed = LatencyHistograms::record(history);
    for class in LatencyClass::ALL {
        for (family, of_history) in [
            (Family::FromIntended, &computed.from_intended),
            (Family::FromSend, &computed.from_send),
        ] {
            let logged = logged.get(&(class, family.suffix()));
            let equal = match (logged, of_history.get(&class)) {
                (None, None) => true,
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            if !equal {
                return Some(class.as_str());
            }
        }
    }
    None
}

/// The shards on one clock and in one history.
#[derive(Debug)]
pub struct Union {
    pub history: Vec<Attempt>,
    pub schedule: Vec<ScheduleSample>,
    pub samples: Vec<InventorySample>,
    /// µs 0 of the joined history, reference clock.
    pub clock_origin_at: OffsetDateTime,
    pub shards: ShardsReport,
    /// Every shard's interval logs added: equal to the histograms of `history`, since each
    /// shard's logs were checked against its history and HdrHistograms add exactly (the report
    /// computes them from `history` again; a test proves the two equal).
    pub logged: BTreeMap<(LatencyClass, &'static str), Histogram<u64>>,
    /// The last shard's end, reference clock.
    pub finished_at: OffsetDateTime,
}

/// Joins the shards: each shard's times moved by where its origin lies on the reference clock,
/// relative to the joined origin (the agreed doors-open minus the scenario's `open_after`, or
/// the earliest shard's origin if earlier), so doors open at the same µs as in a single run.
pub fn union(set: &ShardSet) -> Result<Union, String> {
    let first = &set.shards[0].record;
    let open_after =
        time::Duration::try_from(set.sale.scenario.arrival.open_after()).unwrap_or_default();
    let origins: Vec<OffsetDateTime> = set
        .shards
        .iter()
        .map(|s| s.record.clock.to_reference(s.record.clock_origin_at))
        .collect();
    let origin = origins
        .iter()
        .copied()
        .min()
        .unwrap_or(first.doors_open_at)
        .min(first.doors_open_at - open_after);
    let mut history = Vec::new();
    let mut schedule = Vec::new();
    let mut samples = Vec::new();
    let mut logged: BTreeMap<(LatencyClass, &'static str), Histogram<u64>> = BTreeMap::new();
    let mut figures = Vec::new();
    let mut finished_at = origin;
    for (shard, shard_origin) in set.shards.iter().zip(&origins) {
        let shift = (*shard_origin - origin).whole_microseconds().max(0) as u64;
        history.extend(shard.history.iter().cloned().map(|mut a| {
            a.intended_us += shift;
            a.sent_us += shift;
            a.completed_us += shift;
            a
        }));
        schedule.extend(shard.schedule.iter().map(|s| ScheduleSample {
            intended_us: s.intended_us + shift,
            woke_us: s.woke_us + shift,
            sent_us: s.sent_us + shift,
        }));
        samples.extend(shard.samples.iter().cloned().map(|mut s| {
            s.at_us += shift;
            s
        }));
        for (key, h) in &shard.logged {
            let total = logged
                .entry(*key)
                .or_insert_with(crate::latency::new_histogram);
            total
                .add(h)
                .map_err(|e| format!("{}: a histogram does not add: {e:?}", shard.dir.display()))?;
        }
        let record = &shard.record;
        finished_at = finished_at.max(record.clock.to_reference(record.finished_at));
        figures.push(ShardFigures {
            shard: record.shard.index,
            buyers: record.buyers,
            attempts: record.attempts,
            ok: shard
                .history
                .iter()
                .filter(|a| a.outcome == Outcome::Ok)
                .count() as u64,
            clock_offset_us: record.clock.offset_us,
            clock_offset_uncertainty_us: record.clock.uncertainty_us,
            clock_reference: record.clock.reference.clone(),
            doors_open_drift_us: record.doors_open_drift_us,
            cpu: record.cpu,
        });
    }
    history.sort_by_key(|a| (a.sent_us, a.try_number, a.completed_us));
    for (seq, attempt) in history.iter_mut().enumerate() {
        attempt.seq = seq as u64;
    }
    schedule.sort_by_key(|s| s.intended_us);
    samples.sort_by_key(|s| s.at_us);
    let drifts = figures.iter().map(|f| f.doors_open_drift_us);
    let spread = match (drifts.clone().min(), drifts.max()) {
        (Some(lo), Some(hi)) => (hi - lo).unsigned_abs(),
        _ => 0,
    };
    let uncertainty = figures
        .iter()
        .map(|f| f.clock_offset_uncertainty_us)
        .collect::<Option<Vec<u64>>>()
        .map(|u| u.into_iter().max().unwrap_or(0));
    Ok(Union {
        history,
        schedule,
        samples,
        clock_origin_at: origin,
        shards: ShardsReport {
            count: first.shard.count,
            doors_open_at: first.doors_open_at,
            doors_open_spread_us: spread,
            clock_uncertainty_us: uncertainty,
            shards: figures,
        },
        logged,
        finished_at,
    })
}

/// Reads the ledger through `driver` once the shards are done, judges the union and writes the
/// run's outputs to `out_dir`: a single run's result.
pub async fn merge(
    set: &ShardSet,
    driver: &Driver,
    target_label: String,
    strategy: Option<String>,
    out_dir: PathBuf,
    metrics_before: Option<Vec<Snapshot>>,
) -> Result<RunResult, RunError> {
    let joined = union(set).map_err(RunError::Setup)?;
    crate::run::writable(&out_dir).map_err(|source| RunError::Output {
        dir: out_dir.clone(),
        source,
    })?;
    let sale = &set.sale;
    let scenario = &sale.scenario;
    if joined.history.iter().any(|a| a.outcome == Outcome::Unknown) {
        // As in a single run: a request a shard gave up on may still land on the server.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let settled = settle(
        driver,
        &sale.sale_id,
        sale.cap,
        Instant::now(),
        scenario.checks.convergence_within,
        false,
    )
    .await;
    let ledger = driver.ledger(&sale.sale_id, sale.cap).await?;
    // The server's own counts need a scrape from before the first shard fired: `--workers`
    // takes one; a merge of shards run elsewhere has none, so no section.
    let server_metrics = match metrics_before {
        Some(before) => {
            let client = reqwest::Client::new();
            scrape_all(&client, &driver.buy_urls())
                .await
                .and_then(|after| ServerMetricsReport::between(&driver.buy_urls(), &before, &after))
        }
        None => None,
    };
    let faults = Vec::new();
    let check = checker::check(&CheckInput {
        history: &joined.history,
        ledger: &ledger,
        cap: sale.cap,
        faults: &faults,
        samples: &joined.samples,
        settled: settled.as_ref(),
        convergence_within: scenario.checks.convergence_within,
        rules: target_rules(scenario, driver),
        holds: None,
    });
    let on_clock = |at: OffsetDateTime| (at - joined.clock_origin_at).whole_microseconds() as i64;
    let info = RunInfo {
        scenario: scenario.clone(),
        seed: sale.seed,
        target: target_label,
        strategy,
        started_at: joined.clock_origin_at,
        clock_origin_at: joined.clock_origin_at,
        // From the joined origin to the last shard's end (the merge may run much later).
        wall_time: super::until(joined.clock_origin_at, joined.finished_at),
        sale_id: sale.sale_id.clone(),
        replicas: match driver.buy_urls() {
            urls if urls.len() > 1 => urls,
            _ => Vec::new(),
        },
        shards: Some(joined.shards.clone()),
    };
    let generator = GeneratorStats {
        schedule: joined.schedule.clone(),
        // Each shard's CPU is its own figure (`shards`): processes on several machines add up
        // to no one core count.
        cpu: None,
    };
    let summary = report::write_all(
        &out_dir,
        &RunOutputs {
            info: &info,
            history: &joined.history,
            ledger: &ledger,
            check: &check,
            faults: &faults,
            samples: &joined.samples,
            settled: settled.as_ref(),
            generator: &generator,
            memory: &[],
            server_metrics: server_metrics.as_ref(),
        },
    )
    .map_err(|source| RunError::Output {
        dir: out_dir.clone(),
        source,
    })?;
    Ok(RunResult {
        summary,
        check,
        history: joined.history,
        ledger,
        faults,
        faults_not_applied: Vec::new(),
        samples: joined.samples,
        settled,
        sale_window: SaleWindow {
            opens_at_us: on_clock(sale.starts_at),
            closes_at_us: on_clock(sale.ends_at),
        },
        out_dir,
        hold_ops: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::clock::ClockOffset;
    use crate::shard::{ShardSpec, ShardStatus};
    use time::macros::datetime;

    const DOORS: OffsetDateTime = datetime!(2026-12-03 02:00:00 UTC);

    fn sale() -> SaleFile {
        let scenario = crate::scenario::Scenario::from_toml_str(
            "name = \"split\"\nseed = 3\n[sale]\ncap = 5\n[[sale.products]]\nid = \"tee\"\n\
             price_cents = 1500\n[buyers]\ncount = 40\nquantity = 1\n[arrival]\n\
             model = \"burst\"\nopen_after = \"100ms\"\n",
            "unused",
        )
        .unwrap();
        SaleFile {
            format: "flashsale-sale/1".into(),
            scenario,
            sale_id: "sale-1".into(),
            cap: Some(5),
            starts_at: DOORS - time::Duration::minutes(1),
            ends_at: DOORS + time::Duration::hours(1),
            seed: 3,
            run_nonce: "abc".into(),
            target: vec!["http://127.0.0.1:1".into()],
            created_at: DOORS - time::Duration::minutes(1),
        }
    }

    fn record(index: u32, count: u32, attempts: u64, origin_late_us: i64) -> ShardRecord {
        ShardRecord {
            format: ShardRecord::format(),
            shard: ShardSpec { index, count },
            status: ShardStatus::Complete,
            error: None,
            scenario_name: "split".into(),
            sale_file: "sale.json".into(),
            sale: Some(sale()),
            target: vec!["http://127.0.0.1:1".into()],
            doors_open_at: DOORS,
            clock_origin_at: DOORS - time::Duration::milliseconds(100)
                + time::Duration::microseconds(origin_late_us),
            clock: ClockOffset::same_machine(),
            doors_open_drift_us: origin_late_us,
            buyers: attempts,
            attempts,
            cpu: None,
            finished_at: DOORS + time::Duration::seconds(1),
        }
    }

    /// `n` attempts of one shard, answered `latency_us` after doors open (100 ms on its clock).
    fn history(shard: u32, n: u64, latency_us: u64) -> Vec<Attempt> {
        (0..n)
            .map(|i| Attempt {
                seq: i,
                buyer: format!("buyer-{shard}-{i}"),
                idempotency_key: format!("abc-{shard}-{i}"),
                quantity: 1,
                try_number: 0,
                intended_us: 100_000,
                sent_us: 100_000 + i,
                completed_us: 100_000 + i + latency_us * (i + 1),
                outcome: if i == 0 {
                    Outcome::Ok
                } else {
                    Outcome::Rejected
                },
                status: Some(if i == 0 { 201 } else { 409 }),
                code: (i > 0).then(|| crate::history::Code::from("sold_out")),
                order_id: (i == 0).then(|| format!("order-{shard}")),
            })
            .collect()
    }

    /// Writes a shard's directory as `flashsale run --shard` does; `logged_from` is the history
    /// its interval logs are written from (the mutant: another one).
    fn write_shard(dir: &Path, record: &ShardRecord, history: &[Attempt], logged_from: &[Attempt]) {
        std::fs::create_dir_all(dir).unwrap();
        report::write_jsonl(&dir.join("history.jsonl"), history).unwrap();
        report::write_jsonl::<ScheduleSample>(&dir.join("schedule.jsonl"), &[]).unwrap();
        let doors = std::time::SystemTime::from(DOORS);
        report::write_interval_logs(dir, logged_from, 100_000, doors).unwrap();
        std::fs::write(
            dir.join(SHARD_RECORD),
            serde_json::to_string(record).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn the_merged_histogram_is_the_histogram_of_the_union() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dirs = Vec::new();
        for (k, latency) in [(0u32, 700u64), (1, 2_300), (2, 40_000)] {
            let dir = tmp.path().join(format!("shard-{k}"));
            let h = history(k, 10 + u64::from(k), latency);
            write_shard(
                &dir,
                &record(k, 3, h.len() as u64, 2_000 * i64::from(k)),
                &h,
                &h,
            );
            dirs.push(dir);
        }
        let set = read_shard_set(&dirs).unwrap();
        let joined = union(&set).unwrap();
        assert_eq!(joined.history.len(), 10 + 11 + 12);
        let seqs: Vec<u64> = joined.history.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, (0..33).collect::<Vec<_>>(), "renumbered in order");
        let union_histograms = LatencyHistograms::record(&joined.history);
        for class in [LatencyClass::Ok, LatencyClass::SoldOut, LatencyClass::All] {
            let added = &joined.logged[&(class, "")];
            assert_eq!(added, &union_histograms.from_intended[&class], "{class:?}");
            let added = &joined.logged[&(class, ".from-send")];
            assert_eq!(added, &union_histograms.from_send[&class], "{class:?}");
        }
        assert_eq!(union_histograms.from_intended[&LatencyClass::All].len(), 33);
        // Shard 2's origin was 4 ms late on the shared clock: its times moved by 4 ms.
        let of_shard_2 = joined
            .history
            .iter()
            .find(|a| a.buyer == "buyer-2-0")
            .unwrap();
        assert_eq!(of_shard_2.sent_us, 100_000 + 4_000);
        assert_eq!(joined.shards.doors_open_spread_us, 4_000);
        assert_eq!(
            joined.clock_origin_at,
            DOORS - time::Duration::milliseconds(100)
        );
    }

    #[test]
    fn a_shard_whose_logs_are_not_its_history_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shard-0");
        let h = history(0, 10, 700);
        let other = history(0, 10, 900);
        write_shard(&dir, &record(0, 1, 10, 0), &h, &other);
        let err = read_shard_set(&[dir]).unwrap_err();
        assert!(err.contains("do not add up"), "{err}");
    }

    #[test]
    fn an_incomplete_or_mixed_set_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |k: u32| tmp.path().join(format!("shard-{k}"));
        for k in 0..3 {
            let h = history(k, 5, 1_000);
            write_shard(&dir(k), &record(k, 3, 5, 0), &h, &h);
        }
        let err = read_shard_set(&[dir(0), dir(2)]).unwrap_err();
        assert!(
            err.contains("shard 1/3 of the campaign is missing"),
            "{err}"
        );
        let err = read_shard_set(&[dir(0), dir(1), dir(1)]).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");

        // Never reported: no shard.json.
        std::fs::remove_file(dir(1).join(SHARD_RECORD)).unwrap();
        let err = read_shard_set(&[dir(0), dir(1), dir(2)]).unwrap_err();
        assert!(err.contains("never reported"), "{err}");

        // Failed: its record says why.
        let mut failed = record(1, 3, 0, 0);
        failed.status = ShardStatus::Failed;
        failed.error = Some("the target refused the connection".into());
        write_shard(&dir(1), &failed, &[], &[]);
        let err = read_shard_set(&[dir(0), dir(1), dir(2)]).unwrap_err();
        assert!(err.contains("shard 1/3 failed"), "{err}");
        assert!(err.contains("refused the connection"), "{err}");

        // Another campaign's shard.
        let mut foreign = record(1, 3, 5, 0);
        foreign.sale.as_mut().unwrap().run_nonce = "other".into();
        let h = history(1, 5, 1_000);
        write_shard(&dir(1), &foreign, &h, &h);
        let err = read_shard_set(&[dir(0), dir(1), dir(2)]).unwrap_err();
        assert!(err.contains("different sale files"), "{err}");

        // A shard given another doors-open instant.
        let mut other_doors = record(1, 3, 5, 0);
        other_doors.doors_open_at = DOORS + time::Duration::hours(1);
        write_shard(&dir(1), &other_doors, &h, &h);
        let err = read_shard_set(&[dir(0), dir(1), dir(2)]).unwrap_err();
        assert!(err.contains("share one --doors-open-at"), "{err}");

        // A record naming a shard no run writes.
        let mut altered = record(3, 3, 5, 0);
        altered.sale = Some(sale());
        write_shard(&dir(1), &altered, &h, &h);
        let err = read_shard_set(&[dir(0), dir(1), dir(2)]).unwrap_err();
        assert!(err.contains("no run writes"), "{err}");

        // A history cut short.
        let mut short = record(1, 3, 6, 0);
        short.sale = Some(sale());
        write_shard(&dir(1), &short, &h, &h);
        let err = read_shard_set(&[dir(0), dir(1), dir(2)]).unwrap_err();
        assert!(
            err.contains("holds 5 attempts and the shard recorded 6"),
            "{err}"
        );
    }
}
