//! `summary.json`: the versioned, machine-readable record of one run.
//!
//! It echoes everything needed to reproduce or compare the run (scenario, seed, target,
//! strategy) next to what happened (outcome counts, units, invariant verdicts, latency), so two
//! summaries can be diffed without the rest of the run's directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::RunOutputs;
use super::histograms::{LatencyHistograms, LatencyStats, SpreadStats};
use crate::checker::{Counterexample, InvariantResult, acknowledged_units};
use crate::history::{Attempt, Outcome};
use crate::scenario::{Cap, Scenario};

/// Bumped whenever a field changes meaning or disappears, so readers can refuse what they do
/// not understand instead of misreading it.
pub const SCHEMA_VERSION: u32 = 1;

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
    pub all_invariants_held: bool,
    /// Keyed `"INV-1"`..`"INV-5"`.
    pub invariants: BTreeMap<String, InvariantSummary>,
    pub latency: LatencyReport,
    /// For the burst: how far each first try's real send fell behind the "doors open" instant.
    pub send_spread_us: SpreadStats,
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
            let code = || attempt.code.clone().unwrap_or_else(|| NO_CODE.to_owned());
            match attempt.outcome {
                Outcome::Ok => counts.ok += 1,
                Outcome::Rejected => {
                    counts.rejected += 1;
                    *counts.rejected_by_code.entry(code()).or_default() += 1;
                }
                Outcome::Unknown => {
                    counts.unknown += 1;
                    *counts.unknown_by_code.entry(code()).or_default() += 1;
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
    pub held: bool,
    pub summary: String,
    pub counterexample: Option<Counterexample>,
}

impl From<&InvariantResult> for InvariantSummary {
    fn from(r: &InvariantResult) -> Self {
        InvariantSummary {
            name: r.name.to_owned(),
            held: r.held,
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
        all_invariants_held: out.check.all_held(),
        invariants: out
            .check
            .invariants
            .iter()
            .map(|(id, r)| (id.clone(), InvariantSummary::from(r)))
            .collect(),
        latency: LatencyReport {
            from_send: LatencyHistograms::stats(&histograms.from_send),
            from_intended: LatencyHistograms::stats(&histograms.from_intended),
        },
        send_spread_us: histograms.spread(),
    }
}
