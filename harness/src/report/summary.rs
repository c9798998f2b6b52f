//! `summary.json`: the versioned, machine-readable record of one run.
//!
//! It echoes everything needed to reproduce or compare the run (scenario, seed, target,
//! strategy) next to what happened (outcome counts, units, the faults applied, the inventory
//! readings, invariant verdicts, latency), so two summaries can be diffed without the rest of
//! the run's directory.
//!
//! Fault times are milliseconds since the run's clock origin (the origin of `history.jsonl`'s
//! microsecond times) as decimal numbers with microsecond digits, e.g. `3200.125`: readable at a
//! glance, yet exact enough to line up with the attempts. The fields added for faults are
//! `#[serde(default)]`, so a summary written before they existed still reads back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::RunOutputs;
use super::timeline::{Goodput, SecondStats, Sellout, Throughput, Timeline};
use crate::checker::{Counterexample, InvariantResult, Verdict, acknowledged_units};
use crate::ground_truth::{LedgerOrder, SettledInventory};
use crate::history::{Attempt, FaultRecord, InventorySample, Outcome};
use crate::latency::{LatencyClass, LatencyHistograms, LatencyStats, SpreadStats};
use crate::load::health::GeneratorReport;
use crate::scenario::{Cap, Scenario};
use crate::thresholds::{self, Measurements, ThresholdResult};

/// Bumped whenever a field changes meaning or disappears, so readers can refuse what they do
/// not understand instead of misreading it.
///
/// Version 1 gained fields over time without changing any (`clock_origin_at`, `doors_open_ms`,
/// `throughput`, `goodput`, `sellout`, `per_second`, `generator`, `thresholds`). Version 2: an
/// invariant's `held: bool` became `verdict` (`held`, `violated` or `not_checked`), so that a
/// check the run could not make is no longer written as held; `all_invariants_held` is true only
/// when every invariant was checked and held; `invariants_not_checked` was added; the settled
/// view's `quantity_sold` may be `null` (the target does not report it).
/// `harness/summary.schema.json` describes the file as this harness writes it.
pub const SCHEMA_VERSION: u32 = 2;

/// Code recorded for a rejected or unknown attempt that carried none.
const NO_CODE: &str = "none";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub scenario_name: String,
    pub scenario: Scenario,
    pub seed: u64,
    /// `"in-process"` or the URL of the server under test.
    pub target: String,
    /// The reference server's inventory strategy, when the harness chose one.
    pub strategy: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub wall_time_ms: u64,
    pub sale_id: String,
    /// Where the run's files were written, so the console summary can point at them.
    pub output_dir: PathBuf,
    pub outcomes: OutcomeCounts,
    pub cap: Cap,
    /// Units in distinct orders acknowledged `ok` (a retry's repeated answer counts once).
    pub units_acknowledged: u64,
    pub units_persisted: u64,
    pub orders_persisted: u64,
    /// Persisted orders per claim path (`redis`, `postgres-fallback`, …), so capacity planners
    /// see how much of the sale the PostgreSQL path had to serve.
    #[serde(default)]
    pub decided_by: BTreeMap<String, u64>,
    /// The faults actually applied, in the order they started; empty for a no-fault run.
    #[serde(default)]
    pub faults: Vec<FaultSummary>,
    #[serde(default)]
    pub fault_summary: FaultTotals,
    /// The inventory readings taken during the run.
    #[serde(default)]
    pub samples: SampleSummary,
    /// The inventory view read once faults healed and the sync job ran; `null` if not measured.
    #[serde(default)]
    pub settled: Option<SettledInventory>,
    /// True only when every invariant was checked and held.
    pub all_invariants_held: bool,
    /// The invariants the run could not judge (their summaries say why), in id order.
    #[serde(default)]
    pub invariants_not_checked: Vec<String>,
    /// Keyed `"INV-1"`..`"INV-6"`, and `"INV-9"` when the sale has a per-buyer limit.
    pub invariants: BTreeMap<String, InvariantSummary>,
    pub latency: LatencyReport,
    /// For the burst: how far each first try's real send fell behind the "doors open" instant.
    pub send_spread_us: SpreadStats,
    /// The wall-clock instant of the run's clock origin, the zero of every `*_us` time in
    /// `history.jsonl` and of every `*_ms` time here; `null` in files written before it existed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub clock_origin_at: Option<OffsetDateTime>,
    /// Doors open, ms since the clock origin: the zero of `per_second`, `sellout` and the
    /// interval logs.
    #[serde(default)]
    pub doors_open_ms: f64,
    #[serde(default)]
    pub throughput: Throughput,
    #[serde(default)]
    pub goodput: Goodput,
    #[serde(default)]
    pub sellout: Sellout,
    /// One row per second after doors open.
    #[serde(default)]
    pub per_second: Vec<SecondStats>,
    /// Whether the load generator itself limited the run; `null` in files written before it existed.
    #[serde(default)]
    pub generator: Option<GeneratorReport>,
    /// The scenario's thresholds and their verdicts, in metric-name order.
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// True when every threshold passed (also when there were none).
    #[serde(default = "passed")]
    pub all_thresholds_passed: bool,
    /// Resident memory over the run (harness, and a service it started); absent when not sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::memory::MemoryReport>,
    /// Per server replica (`--replicas`): what its buyers sent and were sold; absent for one
    /// server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<ReplicaFigures>>,
    /// A run fired by several load generators (`--shard K/N`, `--workers N`) and merged: each
    /// shard's share, clock and doors-open; absent for one generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsReport>,
    /// What the target itself counted during the run, from its Prometheus metrics (`GET
    /// /metrics`, scraped before and after); absent when it exposes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<crate::target::server_metrics::ServerMetricsReport>,
}

/// `summary.json`'s `shards`: how the generators of a merged run shared the load and how
/// closely they kept the agreed doors-open instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardsReport {
    pub count: u32,
    /// The agreed doors-open instant (`--doors-open-at`), on the reference clock.
    #[serde(with = "time::serde::rfc3339")]
    pub doors_open_at: OffsetDateTime,
    /// The latest shard's doors-open minus the earliest's (µs, clock offsets applied): how far
    /// apart the generators really opened. Each shard's own figure is in `shards`.
    pub doors_open_spread_us: u64,
    /// The largest clock-offset uncertainty of any shard (µs): a spread below it cannot be told
    /// from zero. `null` when a shard could not measure its offset.
    pub clock_uncertainty_us: Option<u64>,
    pub shards: Vec<ShardFigures>,
}

/// One load generator's share of a merged run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFigures {
    pub shard: u32,
    /// Buyers of the plan it fired, and the attempts it recorded.
    pub buyers: u64,
    pub attempts: u64,
    pub ok: u64,
    /// The reference clock minus this generator's clock (µs), as measured before the load, and
    /// half the window it was measured in; `null` when there was nothing to measure against.
    pub clock_offset_us: Option<i64>,
    pub clock_offset_uncertainty_us: Option<u64>,
    /// What the offset was measured against (`target Date header`, or why it was not).
    pub clock_reference: String,
    /// When its first buyer was released, minus the agreed doors-open instant (µs, on the
    /// reference clock): positive when it opened late.
    pub doors_open_drift_us: i64,
    /// Its process's CPU over its load phase.
    pub cpu: Option<crate::load::health::CpuUsage>,
}

/// One replica's share of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFigures {
    pub replica: usize,
    pub base_url: String,
    /// Distinct buyers sent to it.
    pub buyers: u64,
    pub attempts: u64,
    /// Attempts it answered `ok`, and the units in them.
    pub ok: u64,
    pub units_acknowledged: u64,
}

/// The per-replica figures of `history`, buyers mapped to replicas as the load mapped them.
pub fn replica_figures(history: &[Attempt], urls: &[String]) -> Option<Vec<ReplicaFigures>> {
    if urls.len() < 2 {
        return None;
    }
    let mut figures: Vec<ReplicaFigures> = urls
        .iter()
        .enumerate()
        .map(|(replica, url)| ReplicaFigures {
            replica,
            base_url: url.clone(),
            buyers: 0,
            attempts: 0,
            ok: 0,
            units_acknowledged: 0,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for attempt in history {
        let f = &mut figures[crate::load::request::replica_of(&attempt.buyer, urls.len())];
        f.attempts += 1;
        if seen.insert(attempt.buyer.as_str()) {
            f.buyers += 1;
        }
        if attempt.outcome == crate::history::Outcome::Ok {
            f.ok += 1;
            f.units_acknowledged += u64::from(attempt.quantity);
        }
    }
    Some(figures)
}

impl Summary {
    /// The names of the invariants this run violated, in name order.
    pub fn violated(&self) -> Vec<&str> {
        self.invariants
            .iter()
            .filter(|(_, inv)| inv.verdict == Verdict::Violated)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The run's verdict in one line, the same on the console and in the report: "all invariants
    /// held" only when every one was checked; otherwise which were violated and which were not
    /// checked.
    pub fn verdict_line(&self) -> String {
        let violated = self.violated();
        let not_checked = if self.invariants_not_checked.is_empty() {
            String::new()
        } else {
            format!("NOT CHECKED: {}", self.invariants_not_checked.join(", "))
        };
        match (violated.is_empty(), not_checked.is_empty()) {
            (true, true) => "all invariants held".to_owned(),
            (true, false) => format!(
                "no invariant violated; {not_checked} (the run gave no evidence to judge them, \
                 so this is not a full pass)"
            ),
            (false, true) => format!("VIOLATED: {}", violated.join(", ")),
            (false, false) => format!("VIOLATED: {}; {not_checked}", violated.join(", ")),
        }
    }

    /// True when no invariant was violated, though some may be not checked.
    pub fn none_violated(&self) -> bool {
        self.violated().is_empty()
    }
}

fn passed() -> bool {
    true
}

/// One applied fault. Times are ms since the run's clock origin with microsecond digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    /// The NEM kind, e.g. `kill`, `pause`, `pg-down`.
    pub kind: String,
    /// What the scenario asked for, in words.
    pub planned: String,
    pub started_ms: f64,
    /// `None` (`null`) when the fault never healed.
    pub ended_ms: Option<f64>,
    /// How long the fault lasted; one that never healed is counted up to the run's last
    /// completed attempt, the last moment the harness saw the server answer (or fail to).
    pub duration_ms: f64,
    /// What was done, e.g. `SIGKILL container 3f2a…, restarted empty`.
    pub detail: String,
}

/// The faults of a run taken together.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FaultTotals {
    pub applied: u64,
    /// How long at least one fault was in effect: overlapping windows count once, so this can
    /// be set against the wall time.
    pub time_faulted_ms: f64,
}

/// The inventory readings taken during the run, in brief (`samples.jsonl` has them all).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SampleSummary {
    pub count: u64,
    /// Readings that failed (for example while PostgreSQL was down).
    pub failed: u64,
    /// The largest `units_in_orders` any reading reported; `None` if none succeeded.
    pub max_units_in_orders: Option<i64>,
}

impl SampleSummary {
    pub fn of(samples: &[InventorySample]) -> Self {
        SampleSummary {
            count: samples.len() as u64,
            failed: samples
                .iter()
                .filter(|s| s.units_in_orders.is_none())
                .count() as u64,
            max_units_in_orders: samples.iter().filter_map(|s| s.units_in_orders).max(),
        }
    }
}

/// Milliseconds with microsecond digits, from microseconds. One division, so the value is the
/// double nearest the exact decimal and survives a round trip through JSON unchanged.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Where a fault's window ends: when it healed, or, if it never did, the run's last completed
/// attempt (never before the fault started).
fn window_end_us(fault: &FaultRecord, run_end_us: u64) -> u64 {
    fault.ended_us.unwrap_or(run_end_us).max(fault.started_us)
}

/// The faults as listed in `summary.json`, in the order they started.
pub fn fault_summaries(faults: &[FaultRecord], history: &[Attempt]) -> Vec<FaultSummary> {
    let run_end = run_end_us(history);
    let mut listed: Vec<&FaultRecord> = faults.iter().collect();
    listed.sort_by_key(|f| f.started_us);
    listed
        .into_iter()
        .map(|f| FaultSummary {
            kind: f.kind.clone(),
            planned: f.planned.clone(),
            started_ms: ms(f.started_us),
            ended_ms: f.ended_us.map(ms),
            duration_ms: ms(window_end_us(f, run_end) - f.started_us),
            detail: f.detail.clone(),
        })
        .collect()
}

/// The number of faults and the time covered by at least one of them.
pub fn fault_totals(faults: &[FaultRecord], history: &[Attempt]) -> FaultTotals {
    let run_end = run_end_us(history);
    let mut windows: Vec<(u64, u64)> = faults
        .iter()
        .map(|f| (f.started_us, window_end_us(f, run_end)))
        .collect();
    windows.sort_unstable();
    let mut faulted = 0u64;
    let mut current: Option<(u64, u64)> = None;
    for (start, end) in windows {
        current = match current {
            Some((from, to)) if start <= to => Some((from, to.max(end))),
            Some((from, to)) => {
                faulted += to - from;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((from, to)) = current {
        faulted += to - from;
    }
    FaultTotals {
        applied: faults.len() as u64,
        time_faulted_ms: ms(faulted),
    }
}

/// The last moment the run saw an answer (or a failure): the latest `completed_us`.
fn run_end_us(history: &[Attempt]) -> u64 {
    history.iter().map(|a| a.completed_us).max().unwrap_or(0)
}

/// Persisted orders counted per `decided_by`.
pub fn decided_by(orders: &[LedgerOrder]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for order in orders {
        *counts.entry(order.decided_by.clone()).or_default() += 1;
    }
    counts
}

/// How the attempts ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub attempts: u64,
    pub ok: u64,
    pub rejected: u64,
    pub unknown: u64,
    /// The server's error codes; `"none"` for a rejection that carried no code.
    pub rejected_by_code: BTreeMap<String, u64>,
    /// Failure kinds (`timeout`, `connect`, `http_5xx`, …).
    pub unknown_by_code: BTreeMap<String, u64>,
}

impl OutcomeCounts {
    pub fn of(history: &[Attempt]) -> Self {
        let mut counts = OutcomeCounts {
            attempts: history.len() as u64,
            ..OutcomeCounts::default()
        };
        for attempt in history {
            let code = attempt.code.as_deref().unwrap_or(NO_CODE);
            // Looked up before inserting, so a million attempts with a few codes allocate a few
            // keys, not a million.
            let count = |by_code: &mut BTreeMap<String, u64>| match by_code.get_mut(code) {
                Some(count) => *count += 1,
                None => {
                    by_code.insert(code.to_owned(), 1);
                }
            };
            match attempt.outcome {
                Outcome::Ok => counts.ok += 1,
                Outcome::Rejected => {
                    counts.rejected += 1;
                    count(&mut counts.rejected_by_code);
                }
                Outcome::Unknown => {
                    counts.unknown += 1;
                    count(&mut counts.unknown_by_code);
                }
            }
        }
        counts
    }
}

/// One invariant's verdict as stored on disk. It mirrors [`InvariantResult`] with an owned name
/// so that a summary can be read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantSummary {
    pub name: String,
    pub verdict: Verdict,
    pub summary: String,
    pub counterexample: Option<Counterexample>,
}

impl From<&InvariantResult> for InvariantSummary {
    fn from(r: &InvariantResult) -> Self {
        InvariantSummary {
            name: r.name.to_owned(),
            verdict: r.verdict,
            summary: r.summary.clone(),
            counterexample: r.counterexample.clone(),
        }
    }
}

/// Latency per outcome class (`ok`, `sold_out`, `other_rejection`, `unknown`, `all`); a class
/// with no samples is absent rather than reported as zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Service latency: from the actual send to the response.
    pub from_send: BTreeMap<String, LatencyStats>,
    /// Response latency: from the intended send, corrected for coordinated omission.
    pub from_intended: BTreeMap<String, LatencyStats>,
}

pub(super) fn build(
    out: &RunOutputs,
    histograms: &LatencyHistograms,
    output_dir: PathBuf,
) -> Summary {
    let info = out.info;
    let doors_open_us = info.scenario.arrival.open_after().as_micros() as u64;
    let timeline = Timeline::build(
        out.history,
        &out.generator.schedule,
        &info.scenario.arrival,
        info.scenario.buyers.count,
        doors_open_us,
    );
    let latency = LatencyReport {
        from_send: LatencyHistograms::stats(&histograms.from_send),
        from_intended: LatencyHistograms::stats(&histograms.from_intended),
    };
    let mut class_counts: BTreeMap<String, u64> = BTreeMap::new();
    for attempt in out.history {
        *class_counts
            .entry(LatencyClass::of(attempt).as_str().to_owned())
            .or_default() += 1;
    }
    let memory = crate::memory::MemoryReport::of(out.memory);
    let growth = |g: Option<&crate::memory::Growth>| g.map(|g| g.growth_after_warm_up_pct);
    let thresholds = thresholds::evaluate(
        &info.scenario.thresholds,
        &Measurements {
            latency_from_intended: &latency.from_intended,
            class_counts: &class_counts,
            attempts: out.history.len() as u64,
            throughput_per_s: timeline.throughput.answers_per_s.all,
            sellout_time_ms: timeline.sellout.time_to_sell_out_ms,
            service_memory_growth_pct: growth(memory.as_ref().and_then(|m| m.service.as_ref())),
            harness_memory_growth_pct: growth(memory.as_ref().and_then(|m| m.harness.as_ref())),
        },
    );
    Summary {
        schema_version: SCHEMA_VERSION,
        scenario_name: info.scenario.name.clone(),
        scenario: info.scenario.clone(),
        seed: info.seed,
        target: info.target.clone(),
        strategy: info.strategy.clone(),
        started_at: info.started_at,
        wall_time_ms: u64::try_from(info.wall_time.as_millis()).unwrap_or(u64::MAX),
        sale_id: info.sale_id.clone(),
        output_dir,
        outcomes: OutcomeCounts::of(out.history),
        cap: info.scenario.sale.cap,
        units_acknowledged: acknowledged_units(out.history),
        units_persisted: out.ledger.persisted_units(),
        orders_persisted: out.ledger.orders.len() as u64,
        decided_by: decided_by(&out.ledger.orders),
        faults: fault_summaries(out.faults, out.history),
        fault_summary: fault_totals(out.faults, out.history),
        samples: SampleSummary::of(out.samples),
        settled: out.settled.cloned(),
        all_invariants_held: out.check.all_held(),
        invariants_not_checked: out
            .check
            .not_checked()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        invariants: out
            .check
            .invariants
            .iter()
            .map(|(id, r)| (id.clone(), InvariantSummary::from(r)))
            .collect(),
        latency,
        send_spread_us: histograms.spread(),
        clock_origin_at: Some(info.clock_origin_at),
        doors_open_ms: ms(doors_open_us),
        throughput: timeline.throughput,
        goodput: timeline.goodput,
        sellout: timeline.sellout,
        per_second: timeline.per_second,
        replicas: replica_figures(out.history, &info.replicas),
        shards: info.shards.clone(),
        server_metrics: out.server_metrics.cloned(),
        generator: Some(GeneratorReport::assess(out.generator, out.history)),
        all_thresholds_passed: thresholds.iter().all(|t| t.passed),
        thresholds,
        memory,
    }
}

#[cfg(test)]
mod tests {
    use crate::report::console_summary;
    use std::fs;

    use super::*;
    use crate::report::fixtures::*;

    fn fault(kind: &str, started_us: u64, ended_us: Option<u64>) -> FaultRecord {
        FaultRecord {
            kind: kind.to_owned(),
            planned: "at 1s for 2s".to_owned(),
            started_us,
            ended_us,
            detail: "done".to_owned(),
        }
    }

    fn finished_at(completed_us: u64) -> Attempt {
        Attempt {
            seq: 0,
            buyer: "b".to_owned(),
            idempotency_key: "k".to_owned(),
            quantity: 1,
            try_number: 0,
            intended_us: 0,
            sent_us: 0,
            completed_us,
            outcome: Outcome::Ok,
            status: Some(201),
            code: None,
            order_id: Some("o".to_owned()),
        }
    }

    #[test]
    fn overlapping_windows_count_once_and_open_ones_run_to_the_last_answer() {
        let history = [finished_at(9_000_000), finished_at(10_000_000)];
        let faults = [
            fault("pause", 1_000_000, Some(3_000_000)),
            fault("latency", 2_000_000, Some(4_000_500)),
            fault("pg-down", 6_000_000, Some(6_500_000)),
            fault("kill", 8_000_000, None),
        ];
        let totals = fault_totals(&faults, &history);
        assert_eq!(totals.applied, 4);
        // 1.0–4.0005 s, 6.0–6.5 s and 8.0–10.0 s.
        assert_eq!(totals.time_faulted_ms, 5_500.5);
    }

    #[test]
    fn a_fault_inside_another_adds_nothing() {
        let faults = [
            fault("pause", 1_000, Some(10_000)),
            fault("latency", 2_000, Some(3_000)),
        ];
        assert_eq!(fault_totals(&faults, &[]).time_faulted_ms, 9.0);
        assert_eq!(fault_totals(&[], &[]), FaultTotals::default());
    }

    #[test]
    fn faults_are_listed_in_start_order_in_milliseconds() {
        let faults = [
            fault("kill", 8_000_123, None),
            fault("pause", 1_000_000, Some(3_200_125)),
        ];
        let listed = fault_summaries(&faults, &[finished_at(9_000_000)]);
        assert_eq!(listed[0].kind, "pause");
        assert_eq!(listed[0].started_ms, 1_000.0);
        assert_eq!(listed[0].ended_ms, Some(3_200.125));
        assert_eq!(listed[0].duration_ms, 2_200.125);
        assert_eq!(listed[1].kind, "kill");
        assert_eq!(listed[1].ended_ms, None);
        assert_eq!(listed[1].duration_ms, 999.877);
    }

    #[test]
    fn a_fault_that_started_after_the_last_answer_lasted_no_time() {
        let listed = fault_summaries(&[fault("kill", 5_000, None)], &[finished_at(1_000)]);
        assert_eq!(listed[0].duration_ms, 0.0);
    }

    #[test]
    fn samples_are_counted_with_their_failures_and_peak() {
        let sample = |units| InventorySample {
            at_us: 0,
            units_in_orders: units,
            units_in_live_holds: None,
            quantity_sold: None,
            redis_counter: None,
            error: None,
        };
        let summary = SampleSummary::of(&[sample(Some(3)), sample(None), sample(Some(7))]);
        assert_eq!(
            summary,
            SampleSummary {
                count: 3,
                failed: 1,
                max_units_in_orders: Some(7)
            }
        );
        assert_eq!(SampleSummary::of(&[sample(None)]).max_units_in_orders, None);
    }

    #[test]
    fn a_summary_written_before_faults_existed_still_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        write(&run(false), tmp.path());
        let mut json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(tmp.path().join("summary.json")).unwrap())
                .unwrap();
        let object = json.as_object_mut().unwrap();
        for key in [
            "faults",
            "fault_summary",
            "samples",
            "settled",
            "decided_by",
        ] {
            assert!(object.remove(key).is_some(), "{key}");
        }
        let back: Summary = serde_json::from_value(json).unwrap();
        assert!(back.faults.is_empty());
        assert_eq!(back.samples, SampleSummary::default());
        assert_eq!(back.settled, None);
    }

    #[test]
    fn written_summaries_and_a_real_one_match_the_committed_schema() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, run) in [
            ("plain", run(false)),
            ("violated", run(true)),
            ("faulty", faulty_run()),
            ("measured", measured_run()),
            ("per-buyer limit", limited_run(false)),
            ("per-buyer limit broken", limited_run(true)),
            ("cart holds", holds_run()),
        ] {
            let json = written_json(&run, &tmp.path().join(name));
            assert_eq!(schema_errors(&json), Vec::<String>::new(), "{name}");
        }
        // A real run of scenarios/steady-shoppers.toml, kept as a fixture.
        let real: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/summary.json")).unwrap();
        assert_eq!(schema_errors(&real), Vec::<String>::new());
    }

    #[test]
    fn the_schema_refuses_what_it_does_not_describe() {
        let tmp = tempfile::tempdir().unwrap();
        let mut json = written_json(&measured_run(), tmp.path());
        json["surprise"] = 1.into();
        json["generator"]["late_sends"]["fraction"] = 2.0.into();
        json.as_object_mut().unwrap().remove("sellout");
        let errors = schema_errors(&json);
        assert_eq!(errors.len(), 3, "{errors:#?}");
    }

    #[test]
    fn thresholds_are_judged_and_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let json = written_json(&measured_run(), tmp.path());
        assert_eq!(json["all_thresholds_passed"], false);
        assert_eq!(json["thresholds"][0]["metric"], "ok.p99");
        assert_eq!(json["thresholds"][0]["passed"], false);
        assert_eq!(json["thresholds"][1]["metric"], "unknown.rate");
        assert_eq!(json["thresholds"][1]["passed"], true);
        assert_eq!(json["generator"]["bound"], false);
        assert_eq!(json["goodput"]["offered_per_s"], 100.0);
        let text = console_summary(&serde_json::from_value(json).unwrap());
        assert!(
            text.contains("threshold ok.p99 < 1ms FAILED: measured"),
            "{text}"
        );
        assert!(text.contains("THRESHOLDS FAILED: ok.p99"), "{text}");
    }
}
