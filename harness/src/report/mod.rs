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
mod hgrm;
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

pub use console::console_summary;
pub use hgrm::{OUTPUT_SCALING_RATIO, TICKS_PER_HALF_DISTANCE, write_percentile_distribution};
pub use html::CHART_IDS;
pub use interval_log::Family;
pub use summary::{
    FaultSummary, FaultTotals, InvariantSummary, LatencyReport, OutcomeCounts, SCHEMA_VERSION,
    SampleSummary, Summary,
};
pub use timeline::{ClassRates, Goodput, SecondStats, Sellout, Throughput};

use crate::checker::CheckReport;
use crate::ground_truth::{Ledger, SettledInventory};
use crate::history::{Attempt, FaultRecord, InventorySample};
use crate::latency::{LatencyClass, LatencyHistograms};
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
    for class in LatencyClass::ALL {
        for family in [Family::FromIntended, Family::FromSend] {
            interval_log::write(
                dir,
                out.history,
                class,
                family,
                doors_open_us,
                doors_open_at,
            )?;
        }
    }
    fs::write(
        dir.join("report.html"),
        html::render(&summary, &histograms, out.history),
    )?;

    let mut file = BufWriter::new(File::create(dir.join("summary.json"))?);
    serde_json::to_writer_pretty(&mut file, &summary)?;
    file.write_all(b"\n")?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(summary)
}

/// One JSON record per line, synced to disk: the run's raw records must survive a crash of
/// whatever runs next.
fn write_jsonl<T: serde::Serialize>(path: &Path, records: &[T]) -> io::Result<()> {
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
    use super::*;
    use crate::checker::{self, CheckInput};
    use crate::ground_truth::{InventoryView, LedgerOrder};
    use crate::history::Outcome;
    use crate::history::SOLD_OUT;
    use time::macros::datetime;

    fn scenario(cap: u64) -> Scenario {
        let text = format!(
            "name = \"last-units\"\nseed = 7\n[sale]\ncap = {cap}\n[[sale.products]]\nid = \"tee\"\n\
             price_cents = 1500\n[buyers]\ncount = 6\nquantity = 1\n"
        );
        Scenario::from_toml_str(&text, "unused").unwrap()
    }

    fn attempt(seq: u64, outcome: Outcome, code: Option<&str>, order_id: Option<&str>) -> Attempt {
        Attempt {
            seq,
            buyer: format!("b{seq}"),
            idempotency_key: format!("k{seq}"),
            quantity: 1,
            try_number: 0,
            intended_us: 200_000,
            sent_us: 200_000 + seq * 100,
            completed_us: 200_000 + seq * 100 + 1_500 * (seq + 1),
            outcome,
            status: None,
            code: code.map(Into::into),
            order_id: order_id.map(str::to_owned),
        }
    }

    fn order(seq: u64) -> LedgerOrder {
        LedgerOrder {
            order_id: format!("o{seq}"),
            buyer_id: format!("b{seq}"),
            quantity: 1,
            idempotency_key: format!("k{seq}"),
            decided_by: "redis".into(),
            created_at: format!("2026-11-26T10:15:0{seq}Z"),
        }
    }

    struct Run {
        info: RunInfo,
        history: Vec<Attempt>,
        ledger: Ledger,
        faults: Vec<FaultRecord>,
        samples: Vec<InventorySample>,
        settled: Option<SettledInventory>,
        generator: GeneratorStats,
        check: CheckReport,
    }

    impl Run {
        /// Runs the checker on what the run holds now.
        fn checked(mut self) -> Self {
            self.check = checker::check(&CheckInput {
                faults: &self.faults,
                samples: &self.samples,
                settled: self.settled.as_ref(),
                ..CheckInput::new(&self.history, &self.ledger, Some(2))
            });
            self
        }
    }

    /// Cap 2, two ok buyers, three sold out, one timeout; `extra_order` adds a phantom.
    fn run(extra_order: bool) -> Run {
        let history = vec![
            attempt(0, Outcome::Ok, None, Some("o0")),
            attempt(1, Outcome::Ok, None, Some("o1")),
            attempt(2, Outcome::Rejected, Some(SOLD_OUT), None),
            attempt(3, Outcome::Rejected, Some(SOLD_OUT), None),
            attempt(4, Outcome::Rejected, Some(SOLD_OUT), None),
            attempt(5, Outcome::Unknown, Some("timeout"), None),
        ];
        let mut orders = vec![order(0), order(1)];
        if extra_order {
            let mut phantom = order(9);
            phantom.idempotency_key = "never-sent".into();
            orders.push(phantom);
        }
        let ledger = Ledger {
            orders,
            inventory: InventoryView {
                cap: Some(2),
                redis_counter: Some(2),
                quantity_sold: 2,
                units_in_orders: 2,
            },
        };
        let info = RunInfo {
            scenario: scenario(2),
            seed: 7,
            target: "in-process".into(),
            strategy: Some("naive".into()),
            started_at: datetime!(2026-11-26 11:15:00 +01:00),
            clock_origin_at: datetime!(2026-11-26 11:15:01 +01:00),
            wall_time: Duration::from_millis(3_250),
            sale_id: "sale-123".into(),
        };
        Run {
            info,
            history,
            ledger,
            faults: Vec::new(),
            samples: Vec::new(),
            settled: None,
            generator: GeneratorStats::default(),
            check: CheckReport {
                invariants: Default::default(),
            },
        }
        .checked()
    }

    /// The run of [`run`] under faults: a Redis kill that healed, added latency overlapping it,
    /// and a PostgreSQL outage that never healed; one order went through the fallback path.
    /// The last answer of the run arrives at 209.5 ms.
    fn faulty_run() -> Run {
        let mut r = run(false);
        r.ledger.orders[1].decided_by = "postgres-fallback".into();
        let fault = |kind: &str, started_us, ended_us, detail: &str| FaultRecord {
            kind: kind.into(),
            planned: format!("{kind} as scheduled"),
            started_us,
            ended_us,
            detail: detail.into(),
        };
        r.faults = vec![
            fault("pg-down", 205_000, None, "postgres unreachable"),
            fault(
                "kill",
                200_100,
                Some(200_350),
                "SIGKILL container 3f2a, restarted empty",
            ),
            fault(
                "latency",
                200_200,
                Some(201_000),
                "+50 ms on the Redis link",
            ),
        ];
        let sample = |at_us, units: Option<i64>| InventorySample {
            at_us,
            units_in_orders: units,
            quantity_sold: units,
            redis_counter: units,
            error: units.is_none().then(|| "connection refused".into()),
        };
        r.samples = vec![
            sample(200_400, Some(1)),
            sample(205_500, None),
            sample(209_600, Some(2)),
        ];
        r.settled = Some(SettledInventory {
            view: r.ledger.inventory.clone(),
            waited_ms: 250,
        });
        r.checked()
    }

    fn write(run: &Run, dir: &Path) -> Summary {
        write_all(
            dir,
            &RunOutputs {
                info: &run.info,
                history: &run.history,
                ledger: &run.ledger,
                check: &run.check,
                faults: &run.faults,
                samples: &run.samples,
                settled: run.settled.as_ref(),
                generator: &run.generator,
            },
        )
        .unwrap()
    }

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
        assert_eq!(json["schema_version"], 1);
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
                .starts_with("not measured")
        );
        for id in ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5", "INV-6"] {
            assert_eq!(json["invariants"][id]["held"], true, "{id}");
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

        assert_eq!(json["schema_version"], 1);
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
        assert_eq!(json["invariants"]["INV-6"]["held"], true);
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
    fn written_hgrm_parses_back() {
        let tmp = tempfile::tempdir().unwrap();
        let r = run(false);
        write(&r, tmp.path());
        let text = fs::read_to_string(tmp.path().join("latency-all.hgrm")).unwrap();
        let rows: Vec<(f64, f64, u64)> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                (
                    c[0].parse().unwrap(),
                    c[1].parse().unwrap(),
                    c[2].parse().unwrap(),
                )
            })
            .collect();
        assert!(!rows.is_empty(), "{text}");
        assert!(
            rows.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        let last = rows.last().unwrap();
        assert_eq!(last.1, 1.0);
        assert_eq!(last.2, 6);
        // The slowest response, 9.5 ms from the intended send, within 3 significant digits.
        assert!((last.0 - 9.5).abs() < 0.01, "{}", last.0);
        assert!(text.contains("Total count    =            6]"), "{text}");
    }

    #[test]
    fn console_summary_shows_verdicts_counterexamples_and_where_the_files_are() {
        let tmp = tempfile::tempdir().unwrap();
        let r = run(true);
        let summary = write(&r, tmp.path());
        let text = console_summary(&summary);
        assert!(text.contains("scenario last-units (seed 7) against in-process, strategy naive"));
        assert!(text.contains("attempts 6: 2 ok, 3 rejected (sold_out 3), 1 unknown (timeout 1)"));
        assert!(
            text.contains("units: cap 2, acknowledged 2, persisted 3 in 3 orders"),
            "{text}"
        );
        assert!(text.contains("INV-1 no oversell"), "{text}");
        assert!(text.contains("VIOLATED"), "{text}");
        assert!(
            text.contains("INV-2 no lost acknowledgement  HELD"),
            "{text}"
        );
        assert!(text.contains("order o9 buyer b9"), "{text}");
        assert!(
            text.contains("ok latency from intended send: p50"),
            "{text}"
        );
        assert!(text.contains("VIOLATED: INV-1, INV-3"), "{text}");
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        assert!(text.contains("faults: none applied"), "{text}");
        assert!(text.contains("orders decided by: redis 3"), "{text}");
        assert!(text.contains("INV-6 convergence"), "{text}");
        let lines = text.lines().count();
        assert!((10..=30).contains(&lines), "{lines} lines:\n{text}");
    }

    #[test]
    fn console_summary_lists_each_fault_and_the_claim_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let text = console_summary(&write(&faulty_run(), tmp.path()));
        assert!(
            text.contains("faults: 3 applied, 5.4 ms faulted in all\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\n  kill from 0.200 s to 0.200 s (250 µs): SIGKILL container 3f2a, restarted \
                 empty (planned: kill as scheduled)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n  pg-down from 0.205 s, never healed: postgres unreachable"),
            "{text}"
        );
        assert!(
            text.contains("orders decided by: postgres-fallback 1, redis 1\n"),
            "{text}"
        );
        assert!(text.contains("INV-6 convergence"), "{text}");
        assert!(text.contains("all invariants held"), "{text}");
    }

    /// Every error the committed schema finds in `json`, with where.
    fn schema_errors(json: &serde_json::Value) -> Vec<String> {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../summary.schema.json"))
                .expect("the committed schema is JSON");
        let validator = jsonschema::validator_for(&schema).expect("the committed schema is valid");
        validator
            .iter_errors(json)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    fn written_json(run: &Run, dir: &Path) -> serde_json::Value {
        write(run, dir);
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
    }

    /// The synthetic run with thresholds, a constant rate and the generator's samples.
    fn measured_run() -> Run {
        let mut r = faulty_run();
        r.info.scenario = Scenario::from_toml_str(
            "name = \"steady\"\n[sale]\ncap = 2\n[[sale.products]]\nid = \"tee\"\nprice_cents = 1\n\
             [buyers]\ncount = 6\nquantity = 1\n[arrival]\nmodel = \"constant-rate\"\nrate = 100\n\
             [thresholds]\n\"ok.p99\" = \"< 1ms\"\n\"unknown.rate\" = \"< 0.5\"\n",
            "unused",
        )
        .unwrap();
        r.generator = GeneratorStats {
            schedule: r
                .history
                .iter()
                .map(|a| crate::load::health::ScheduleSample {
                    intended_us: a.intended_us,
                    woke_us: a.intended_us + 50,
                    sent_us: a.sent_us,
                })
                .collect(),
            cpu: crate::load::health::CpuClock::now().map(|c| c.usage_until(&c)),
        };
        r
    }

    #[test]
    fn written_summaries_and_a_real_one_match_the_committed_schema() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, run) in [
            ("plain", run(false)),
            ("violated", run(true)),
            ("faulty", faulty_run()),
            ("measured", measured_run()),
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

    #[test]
    fn report_html_is_well_formed_self_contained_and_has_every_chart() {
        let tmp = tempfile::tempdir().unwrap();
        write(&measured_run(), tmp.path());
        let html = fs::read_to_string(tmp.path().join("report.html")).unwrap();
        let mut reader = quick_xml::Reader::from_str(&html);
        let mut ids = Vec::new();
        let mut depth = 0i64;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(e)) => {
                    depth += 1;
                    for attr in e.attributes() {
                        let attr = attr.unwrap();
                        let key = String::from_utf8(attr.key.as_ref().to_vec()).unwrap();
                        assert!(key != "src" && key != "href", "loads {key} from elsewhere");
                        if key == "id" {
                            ids.push(attr.unescape_value().unwrap().into_owned());
                        }
                    }
                }
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!(
                    "report.html is not well-formed at {}: {e}",
                    reader.buffer_position()
                ),
            }
        }
        assert_eq!(depth, 0, "every element is closed");
        for id in CHART_IDS {
            assert!(ids.iter().any(|i| i == id), "chart {id} missing: {ids:?}");
        }
        assert!(!html.contains("<script"), "no script");
        // The faults are shaded on the charts over time.
        assert!(
            html.matches("class=\"fault\"").count() >= 3 * 4,
            "fault bands"
        );
        assert!(html.contains("ok.p99 &lt; 1ms"), "thresholds listed");
    }
}
