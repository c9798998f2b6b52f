//! Run outputs: the directory a run leaves behind and the summary printed on the console.
//!
//! A run directory holds `summary.json` (versioned, see [`summary::SCHEMA_VERSION`]),
//! `history.jsonl` (one attempt per line, the raw material for re-checking a run), when there
//! were any, `faults.jsonl` (one applied fault per line) and `samples.jsonl` (one inventory
//! reading per line), and one HdrHistogram percentile distribution per latency class and family
//! (`latency-<class>.hgrm` from the intended send, `latency-<class>.from-send.hgrm` from the
//! actual send), which standard HdrHistogram plotters read, the same latencies as HdrHistogram
//! interval logs with one histogram per second (`latency-<class>[.from-send].hlog`), and
//! `report.html`, the run's charts in one self-contained page. The `.jsonl` files are the exact
//! records the checker judged, so a run can be re-checked from its directory alone.

mod console;
#[cfg(test)]
mod fixtures;
pub mod hgrm;
mod html;
mod interval_log;
mod summary;
mod svg;
mod timeline;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use time::OffsetDateTime;
use time::macros::format_description;

pub use console::{console_summary, holds_line};
pub use hgrm::{OUTPUT_SCALING_RATIO, TICKS_PER_HALF_DISTANCE, write_percentile_distribution};
pub use html::CHART_IDS;
pub use interval_log::{
    Family, read_total as read_interval_log_total, write_every_class as write_interval_logs,
};
pub use summary::{
    FaultSummary, FaultTotals, InvariantSummary, LatencyReport, OutcomeCounts, SCHEMA_VERSION,
    SampleSummary, ShardFigures, ShardsReport, Summary,
};
pub use timeline::{ClassRates, Goodput, SecondStats, Sellout, Throughput};

use crate::checker::CheckReport;
use crate::ground_truth::{Ledger, SettledInventory};
use crate::history::{Attempt, FaultRecord, InventorySample};
use crate::latency::LatencyHistograms;
use crate::load::health::GeneratorStats;
use crate::scenario::Scenario;

/// What identifies a run, beyond what it produced.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub scenario: Scenario,
    /// The seed actually used (the scenario's, the CLI's, or a drawn one), so the run repeats.
    pub seed: u64,
    /// `"in-process"` or the URL of the server under test.
    pub target: String,
    pub strategy: Option<String>,
    pub started_at: OffsetDateTime,
    /// The wall-clock instant of the run's clock origin (µs 0 of the history).
    pub clock_origin_at: OffsetDateTime,
    pub wall_time: Duration,
    pub sale_id: String,
    /// The servers buyers were spread across (`--replicas`); empty for one server.
    pub replicas: Vec<String>,
    /// The load generators of a merged run (`flashsale merge`, `--workers`); `None` for one.
    pub shards: Option<ShardsReport>,
}

/// Everything a run produced, borrowed so the caller keeps ownership of large histories.
#[derive(Debug, Clone, Copy)]
pub struct RunOutputs<'a> {
    pub info: &'a RunInfo,
    pub history: &'a [Attempt],
    pub ledger: &'a Ledger,
    pub check: &'a CheckReport,
    /// The faults actually applied; empty for a no-fault run.
    pub faults: &'a [FaultRecord],
    /// Inventory readings taken during the run.
    pub samples: &'a [InventorySample],
    /// The inventory view read after faults healed and the sync job ran; `None` if not measured.
    pub settled: Option<&'a SettledInventory>,
    /// How well the load generator kept its schedule, and its CPU.
    pub generator: &'a GeneratorStats,
    /// Resident memory sampled during the run.
    pub memory: &'a [crate::memory::MemorySample],
    /// What the target counted during the run (`GET /metrics`); `None` when not exposed.
    pub server_metrics: Option<&'a crate::target::server_metrics::ServerMetricsReport>,
}

/// `results_root/<scenario>/<UTC start, e.g. 20261126T101500Z>/`: one directory per run that
/// sorts by time and never collides with an earlier run of the same scenario.
pub fn default_out_dir(
    results_root: &Path,
    scenario_name: &str,
    started_at: OffsetDateTime,
) -> PathBuf {
    let stamp = started_at
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("a UTC date-time always formats with numeric components");
    results_root.join(scenario_name).join(stamp)
}

/// Creates `dir` and writes every output file into it; returns the summary it wrote.
pub fn write_all(dir: &Path, out: &RunOutputs) -> io::Result<Summary> {
    fs::create_dir_all(dir)?;

    write_jsonl(&dir.join("history.jsonl"), out.history)?;
    if !out.faults.is_empty() {
        write_jsonl(&dir.join("faults.jsonl"), out.faults)?;
    }
    if !out.samples.is_empty() {
        write_jsonl(&dir.join("samples.jsonl"), out.samples)?;
    }

    let histograms = LatencyHistograms::record(out.history);
    for (class, h) in &histograms.from_intended {
        write_hgrm(&dir.join(format!("latency-{}.hgrm", class.as_str())), h)?;
    }
    for (class, h) in &histograms.from_send {
        write_hgrm(
            &dir.join(format!("latency-{}.from-send.hgrm", class.as_str())),
            h,
        )?;
    }

    let summary = summary::build(out, &histograms, dir.to_path_buf());
    let doors_open_us = (summary.doors_open_ms * 1e3).round() as u64;
    let doors_open_at = std::time::SystemTime::from(out.info.clock_origin_at)
        + Duration::from_micros(doors_open_us);
    interval_log::write_every_class(dir, out.history, doors_open_us, doors_open_at)?;
    fs::write(
        dir.join("report.html"),
        html::render(&summary, &histograms, out.history, &out.generator.schedule),
    )?;

    let mut file = BufWriter::new(File::create(dir.join("summary.json"))?);
    serde_json::to_writer_pretty(&mut file, &summary)?;
    file.write_all(b"\n")?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(summary)
}

/// One JSON record per line, synced to disk: the run's raw records must survive a crash of
/// whatever runs next.
pub fn write_jsonl<T: serde::Serialize>(path: &Path, records: &[T]) -> io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    for record in records {
        serde_json::to_writer(&mut file, record)?;
        file.write_all(b"\n")?;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()
}

fn write_hgrm(path: &Path, h: &Histogram<u64>) -> io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    write_percentile_distribution(h, &mut file, TICKS_PER_HALF_DISTANCE, OUTPUT_SCALING_RATIO)?;
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use time::macros::datetime;

    #[test]
    fn out_dir_is_scenario_then_utc_timestamp() {
        let dir = default_out_dir(
            Path::new("results"),
            "last-ten-units",
            datetime!(2026-11-26 11:15:00 +01:00),
        );
        assert_eq!(dir, Path::new("results/last-ten-units/20261126T101500Z"));
    }

    #[test]
    fn writes_summary_history_and_histograms() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("results/last-units/run");
        let r = run(false);
        let summary = write(&r, &dir);

        let text = fs::read_to_string(dir.join("summary.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["schema_version"], 2);
        assert_eq!(json["scenario_name"], "last-units");
        assert_eq!(json["scenario"]["sale"]["cap"], 2);
        assert_eq!(json["seed"], 7);
        assert_eq!(json["target"], "in-process");
        assert_eq!(json["strategy"], "naive");
        assert_eq!(json["started_at"], "2026-11-26T11:15:00+01:00");
        assert_eq!(json["wall_time_ms"], 3250);
        assert_eq!(json["sale_id"], "sale-123");
        assert_eq!(json["outcomes"]["ok"], 2);
        assert_eq!(json["outcomes"]["rejected"], 3);
        assert_eq!(json["outcomes"]["unknown"], 1);
        assert_eq!(json["outcomes"]["rejected_by_code"]["sold_out"], 3);
        assert_eq!(json["outcomes"]["unknown_by_code"]["timeout"], 1);
        assert_eq!(json["cap"], 2);
        assert_eq!(json["units_acknowledged"], 2);
        assert_eq!(json["units_persisted"], 2);
        assert_eq!(json["orders_persisted"], 2);
        assert_eq!(json["decided_by"], serde_json::json!({"redis": 2}));
        assert_eq!(json["faults"], serde_json::json!([]));
        assert_eq!(
            json["fault_summary"],
            serde_json::json!({"applied": 0, "time_faulted_ms": 0.0})
        );
        assert_eq!(
            json["samples"],
            serde_json::json!({"count": 0, "failed": 0, "max_units_in_orders": null})
        );
        assert!(json["settled"].is_null());
        assert!(
            json["invariants"]["INV-6"]["summary"]
                .as_str()
                .unwrap()
                .starts_with("not checked")
        );
        assert_eq!(json["invariants"]["INV-6"]["verdict"], "not_checked");
        assert_eq!(json["invariants_not_checked"], serde_json::json!(["INV-6"]));
        assert_eq!(json["all_invariants_held"], false);
        for id in ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5"] {
            assert_eq!(json["invariants"][id]["verdict"], "held", "{id}");
        }
        for id in ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5", "INV-6"] {
            assert!(json["invariants"][id]["summary"].is_string(), "{id}");
            assert!(json["invariants"][id]["counterexample"].is_null(), "{id}");
        }
        assert_eq!(json["invariants"]["INV-1"]["name"], "no oversell");
        for family in ["from_send", "from_intended"] {
            let classes = &json["latency"][family];
            let names: Vec<&str> = classes
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(names, ["all", "ok", "sold_out", "unknown"], "{family}");
            assert_eq!(classes["all"]["count"], 6);
            for key in ["p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"] {
                assert!(classes["ok"][key].is_u64(), "{family}.ok.{key}");
            }
        }
        // Attempt 5 was sent 500 µs late and answered 9 ms after it was sent; histogram values
        // are exact to 3 significant digits.
        let max_us = |family: &str| {
            json["latency"][family]["unknown"]["max_us"]
                .as_u64()
                .unwrap()
        };
        assert!(
            (9_000..9_010).contains(&max_us("from_send")),
            "{}",
            max_us("from_send")
        );
        assert!(
            (9_500..9_510).contains(&max_us("from_intended")),
            "{}",
            max_us("from_intended")
        );
        assert_eq!(json["send_spread_us"]["count"], 6);
        assert_eq!(json["send_spread_us"]["max_us"], 500);

        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, summary);

        let history = fs::read_to_string(dir.join("history.jsonl")).unwrap();
        assert_eq!(history.lines().count(), r.history.len());
        let first: Attempt = serde_json::from_str(history.lines().next().unwrap()).unwrap();
        assert_eq!(first, r.history[0]);

        assert!(dir.join("report.html").is_file());
        for class in ["ok", "sold_out", "unknown", "all"] {
            assert!(
                dir.join(format!("latency-{class}.hlog")).is_file(),
                "{class}"
            );
            assert!(
                dir.join(format!("latency-{class}.from-send.hlog"))
                    .is_file(),
                "{class}"
            );
            assert!(
                dir.join(format!("latency-{class}.hgrm")).is_file(),
                "{class}"
            );
            assert!(
                dir.join(format!("latency-{class}.from-send.hgrm"))
                    .is_file(),
                "{class}"
            );
        }
        assert!(!dir.join("latency-other_rejection.hgrm").exists());
        assert!(!dir.join("faults.jsonl").exists(), "no faults, no file");
        assert!(!dir.join("samples.jsonl").exists(), "no samples, no file");
    }

    #[test]
    fn a_faulty_run_records_its_faults_samples_and_settled_view() {
        let tmp = tempfile::tempdir().unwrap();
        let r = faulty_run();
        let summary = write(&r, tmp.path());
        let text = fs::read_to_string(tmp.path().join("summary.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();

        assert_eq!(json["schema_version"], 2);
        assert_eq!(
            json["faults"][0],
            serde_json::json!({
                "kind": "kill",
                "planned": "kill as scheduled",
                "started_ms": 200.1,
                "ended_ms": 200.35,
                "duration_ms": 0.25,
                "detail": "SIGKILL container 3f2a, restarted empty"
            })
        );
        assert_eq!(json["faults"][1]["kind"], "latency");
        assert_eq!(json["faults"][2]["kind"], "pg-down");
        assert!(json["faults"][2]["ended_ms"].is_null());
        assert_eq!(json["faults"][2]["duration_ms"], 4.5);
        // 200.1–201.0 ms and 205.0–209.5 ms (the never-healed outage runs to the last answer).
        assert_eq!(
            json["fault_summary"],
            serde_json::json!({"applied": 3, "time_faulted_ms": 5.4})
        );
        assert_eq!(
            json["samples"],
            serde_json::json!({"count": 3, "failed": 1, "max_units_in_orders": 2})
        );
        assert_eq!(json["settled"]["waited_ms"], 250);
        assert_eq!(json["settled"]["view"]["units_in_orders"], 2);
        assert_eq!(
            json["decided_by"],
            serde_json::json!({"postgres-fallback": 1, "redis": 1})
        );
        assert_eq!(json["invariants"]["INV-6"]["name"], "convergence");
        assert_eq!(json["invariants"]["INV-6"]["verdict"], "held");
        assert_eq!(json["invariants"]["INV-5"]["verdict"], "not_checked");
        assert!(
            json["invariants"]["INV-5"]["summary"]
                .as_str()
                .unwrap()
                .contains("pg-down never healed")
        );
        assert!(
            json["invariants"]["INV-1"]["summary"]
                .as_str()
                .unwrap()
                .contains("3 samples, 1 failed readings")
        );

        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, summary);

        let faults: Vec<FaultRecord> = fs::read_to_string(tmp.path().join("faults.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(faults, r.faults);
        let samples: Vec<InventorySample> = fs::read_to_string(tmp.path().join("samples.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(samples, r.samples);
    }
}
