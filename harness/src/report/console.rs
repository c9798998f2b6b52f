//! The short human summary printed at the end of a run.
//!
//! It answers, in order, the questions a person asks after a run: what ran, which faults it
//! survived (or not) and which claim path served the orders, did it oversell or otherwise break
//! an invariant (and on which operations), how fast was it, and where are the files. Everything
//! else is in `summary.json`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::summary::{FaultSummary, Summary};
use crate::checker::MAX_SHOWN;
use crate::ground_truth::LedgerOrder;
use crate::history::{Attempt, HoldAttempt, HoldOp, Outcome};

/// Orders and attempts printed per violated invariant; the full lists are in `summary.json`.
const SHOWN_PER_VIOLATION: usize = 3;

/// Renders `summary` as a dozen or so lines (more only when invariants are violated).
/// One line on the journeys' hold operations (first tries and retries alike), e.g. `holds: 124
/// reserves (106 ok, 18 rejected: sold_out 18), 65 checkouts (16 ok, 49 rejected: hold_expired
/// 49), 4 releases (4 ok)`; `None` when the run sent none.
pub fn holds_line(ops: &[HoldAttempt]) -> Option<String> {
    if ops.is_empty() {
        return None;
    }
    let kinds = [
        (HoldOp::Reserve, "reserves"),
        (HoldOp::Checkout, "checkouts"),
        (HoldOp::Release, "releases"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter_map(|(kind, name)| {
            let of_kind: Vec<&HoldAttempt> = ops.iter().filter(|op| op.kind == *kind).collect();
            if of_kind.is_empty() {
                return None;
            }
            let mut figures = Vec::new();
            for (outcome, word) in [
                (Outcome::Ok, "ok"),
                (Outcome::Rejected, "rejected"),
                (Outcome::Unknown, "unknown"),
            ] {
                let mut codes: BTreeMap<&str, u64> = BTreeMap::new();
                let with: Vec<_> = of_kind.iter().filter(|op| op.outcome == outcome).collect();
                if with.is_empty() {
                    continue;
                }
                for op in &with {
                    *codes
                        .entry(op.code.as_deref().unwrap_or("no code"))
                        .or_default() += 1;
                }
                let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
                figures.push(if outcome == Outcome::Ok {
                    format!("{} {word}", with.len())
                } else {
                    format!("{} {word}: {}", with.len(), codes.join(", "))
                });
            }
            Some(format!("{} {name} ({})", of_kind.len(), figures.join(", ")))
        })
        .collect();
    Some(format!("holds: {}", parts.join(", ")))
}

pub fn console_summary(summary: &Summary) -> String {
    let mut s = String::new();
    let strategy = summary
        .strategy
        .as_deref()
        .map(|st| format!(", strategy {st}"))
        .unwrap_or_default();
    line(
        &mut s,
        format!(
            "scenario {} (seed {}) against {}{strategy}",
            summary.scenario_name, summary.seed, summary.target
        ),
    );
    line(
        &mut s,
        format!(
            "sale {}, wall time {:.1}s",
            summary.sale_id,
            summary.wall_time_ms as f64 / 1000.0
        ),
    );
    let o = &summary.outcomes;
    line(
        &mut s,
        format!(
            "attempts {}: {} ok, {} rejected{}, {} unknown{}",
            o.attempts,
            o.ok,
            o.rejected,
            by_code(&o.rejected_by_code),
            o.unknown,
            by_code(&o.unknown_by_code)
        ),
    );
    if let Some(metrics) = &summary.server_metrics {
        line(&mut s, metrics.console_line());
    }
    if let Some(shards) = &summary.shards {
        let uncertainty = match shards.clock_uncertainty_us {
            Some(us) => format!("clocks known to ±{:.1} ms", us as f64 / 1e3),
            None => "a shard's clock offset not measured".to_owned(),
        };
        line(
            &mut s,
            format!(
                "merged from {} shards: doors opened within {:.1} ms of each other ({uncertainty})",
                shards.count,
                shards.doors_open_spread_us as f64 / 1e3
            ),
        );
        for f in &shards.shards {
            let offset = match f.clock_offset_us {
                Some(us) => format!("clock {:+.1} ms", us as f64 / 1e3),
                None => "clock not measured".to_owned(),
            };
            line(
                &mut s,
                format!(
                    "  shard {}: {} buyers, {} attempts, {} ok; {offset}; opened {:+.1} ms from the agreed instant",
                    f.shard,
                    f.buyers,
                    f.attempts,
                    f.ok,
                    f.doors_open_drift_us as f64 / 1e3
                ),
            );
        }
    }
    for r in summary.replicas.iter().flatten() {
        line(
            &mut s,
            format!(
                "  replica {} ({}): {} buyers, {} attempts, {} ok ({} units)",
                r.replica, r.base_url, r.buyers, r.attempts, r.ok, r.units_acknowledged
            ),
        );
    }
    line(
        &mut s,
        format!(
            "units: cap {}, acknowledged {}, persisted {} in {} orders",
            summary.cap,
            summary.units_acknowledged,
            summary.units_persisted,
            summary.orders_persisted
        ),
    );
    faults(&mut s, summary);
    let decided_by = if summary.decided_by.is_empty() {
        "no orders".to_owned()
    } else {
        listed(&summary.decided_by)
    };
    line(&mut s, format!("orders decided by: {decided_by}"));

    for (id, inv) in &summary.invariants {
        let verdict = inv.verdict.label();
        line(
            &mut s,
            format!("{id} {:<24} {verdict:<8} {}", inv.name, inv.summary),
        );
        if let Some(cx) = &inv.counterexample {
            line(&mut s, format!("    {}", cx.explanation));
            for order in cx.orders.iter().take(SHOWN_PER_VIOLATION) {
                line(&mut s, format!("      {}", describe_order(order)));
            }
            for attempt in cx.attempts.iter().take(SHOWN_PER_VIOLATION) {
                line(&mut s, format!("      {}", describe_attempt(attempt)));
            }
            if let Some(showing) = cx.showing(SHOWN_PER_VIOLATION) {
                line(
                    &mut s,
                    format!(
                        "      {showing} (summary.json lists up to {MAX_SHOWN} of each; \
                         history.jsonl has every attempt)"
                    ),
                );
            }
        }
    }

    if let Some(ok) = summary.latency.from_intended.get("ok") {
        let from_send = summary
            .latency
            .from_send
            .get("ok")
            .map(|l| {
                format!(
                    " (from send: p50 {}, p99 {})",
                    human_us(l.p50_us),
                    human_us(l.p99_us)
                )
            })
            .unwrap_or_default();
        line(
            &mut s,
            format!(
                "ok latency from intended send: p50 {}, p99 {}{from_send}",
                human_us(ok.p50_us),
                human_us(ok.p99_us)
            ),
        );
    } else {
        line(&mut s, "ok latency: no ok answers".to_owned());
    }

    let sellout = match summary.sellout.time_to_sell_out_ms {
        Some(ms) => format!(", sold out after {}", human_us(ms_to_us(ms))),
        None => String::new(),
    };
    line(
        &mut s,
        format!(
            "throughput {:.1} answers/s ({:.1} ok/s) over {}{sellout}",
            summary.throughput.answers_per_s.all,
            summary.throughput.answers_per_s.ok,
            human_us(ms_to_us(summary.throughput.load_duration_ms))
        ),
    );
    if let Some(g) = &summary.generator {
        let state = if g.bound {
            format!("GENERATOR-BOUND ({})", g.reasons.join("; "))
        } else {
            "kept its schedule".to_owned()
        };
        line(
            &mut s,
            format!(
                "generator: {state}; schedule lag p99 {}, {} late sends (> {})",
                human_us(g.schedule_lag_us.p99_us),
                g.late_sends.count,
                human_us(g.late_sends.threshold_us)
            ),
        );
    }
    if let Some(memory) = &summary.memory {
        let describe = |who: &str, g: &crate::memory::Growth| {
            format!(
                "{who} {:.0} → {:.0} MB (peak {:.0}, {:+.1} % after warm-up)",
                g.start_mb, g.end_mb, g.peak_mb, g.growth_after_warm_up_pct
            )
        };
        let parts: Vec<String> = [("harness", &memory.harness), ("service", &memory.service)]
            .into_iter()
            .filter_map(|(who, g)| g.as_ref().map(|g| describe(who, g)))
            .collect();
        if !parts.is_empty() {
            line(&mut s, format!("memory (resident): {}", parts.join("; ")));
        }
    }
    for threshold in &summary.thresholds {
        line(&mut s, threshold.to_string());
    }

    line(&mut s, summary.verdict_line());
    for id in &summary.invariants_not_checked {
        if let Some(inv) = summary.invariants.get(id) {
            line(&mut s, format!("  {id} not checked: {}", inv.summary));
        }
    }
    if !summary.all_thresholds_passed {
        let failed: Vec<&str> = summary
            .thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(|t| t.metric.as_str())
            .collect();
        line(&mut s, format!("THRESHOLDS FAILED: {}", failed.join(", ")));
    }
    line(
        &mut s,
        format!("results in {}", summary.output_dir.display()),
    );
    s
}

/// The `faults:` block: one line for the totals, one per applied fault in start order.
fn faults(s: &mut String, summary: &Summary) {
    if summary.faults.is_empty() {
        line(s, "faults: none applied".to_owned());
        return;
    }
    line(
        s,
        format!(
            "faults: {} applied, {} faulted in all",
            summary.fault_summary.applied,
            human_us(ms_to_us(summary.fault_summary.time_faulted_ms))
        ),
    );
    for fault in &summary.faults {
        line(s, format!("  {}", describe_fault(fault)));
    }
}

fn describe_fault(f: &FaultSummary) -> String {
    let window = match f.ended_ms {
        Some(end) => format!(
            "from {} to {} ({})",
            seconds(f.started_ms),
            seconds(end),
            human_us(ms_to_us(f.duration_ms))
        ),
        None => format!("from {}, never healed", seconds(f.started_ms)),
    };
    format!("{} {window}: {} (planned: {})", f.kind, f.detail, f.planned)
}

/// A time since the run's origin, given in ms, as seconds with millisecond digits.
fn seconds(ms: f64) -> String {
    format!("{:.3} s", ms / 1e3)
}

fn ms_to_us(ms: f64) -> u64 {
    (ms * 1e3).round() as u64
}

fn line(s: &mut String, text: String) {
    s.push_str(&text);
    s.push('\n');
}

fn by_code(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return String::new();
    }
    format!(" ({})", listed(counts))
}

/// `name n, name n, …` in key order.
fn listed(counts: &BTreeMap<String, u64>) -> String {
    let mut out = String::new();
    for (i, (name, n)) in counts.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name} {n}");
    }
    out
}

fn describe_order(o: &LedgerOrder) -> String {
    format!(
        "order {} buyer {} quantity {} key {} at {} (decided by {})",
        o.order_id, o.buyer_id, o.quantity, o.idempotency_key, o.created_at, o.decided_by
    )
}

fn describe_attempt(a: &Attempt) -> String {
    let mut out = format!(
        "attempt #{} buyer {} quantity {} key {} try {} -> {:?}",
        a.seq, a.buyer, a.quantity, a.idempotency_key, a.try_number, a.outcome
    );
    if let Some(status) = a.status {
        let _ = write!(out, " {status}");
    }
    if let Some(code) = &a.code {
        let _ = write!(out, " {code}");
    }
    if let Some(id) = &a.order_id {
        let _ = write!(out, " order {id}");
    }
    let _ = write!(out, " at {} µs", a.completed_us);
    out
}

/// Microseconds in the unit a person reads fastest.
fn human_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;

    #[test]
    fn human_units() {
        assert_eq!(human_us(999), "999 µs");
        assert_eq!(human_us(1_500), "1.5 ms");
        assert_eq!(human_us(2_500_000), "2.50 s");
    }

    #[test]
    fn fault_lines_show_the_window_or_that_it_never_healed() {
        let mut fault = FaultSummary {
            kind: "pause".to_owned(),
            planned: "at 1s for 2s".to_owned(),
            started_ms: 1_000.25,
            ended_ms: Some(3_200.0),
            duration_ms: 2_199.75,
            detail: "docker pause".to_owned(),
        };
        assert_eq!(
            describe_fault(&fault),
            "pause from 1.000 s to 3.200 s (2.20 s): docker pause (planned: at 1s for 2s)"
        );
        fault.ended_ms = None;
        assert_eq!(
            describe_fault(&fault),
            "pause from 1.000 s, never healed: docker pause (planned: at 1s for 2s)"
        );
    }

    #[test]
    fn codes_are_listed_in_order() {
        let counts = BTreeMap::from([("sold_out".to_owned(), 9), ("not_live".to_owned(), 1)]);
        assert_eq!(by_code(&counts), " (not_live 1, sold_out 9)");
        assert_eq!(by_code(&BTreeMap::new()), "");
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
        // pg-down never healed: INV-5 cannot be judged, and the verdict says so rather than
        // "all invariants held".
        assert!(
            text.contains("INV-5 exactly the cap          NOT CHECKED fault-aware"),
            "{text}"
        );
        assert!(
            text.contains("\nno invariant violated; NOT CHECKED: INV-5 (the run gave no evidence"),
            "{text}"
        );
        assert!(
            text.contains("\n  INV-5 not checked: fault-aware: 3 faults, pg-down never healed"),
            "{text}"
        );
        assert!(!text.contains("all invariants held"), "{text}");
    }

    #[test]
    fn a_per_buyer_limit_is_printed_as_inv9_held_or_violated() {
        let tmp = tempfile::tempdir().unwrap();
        let held = console_summary(&write(&limited_run(false), &tmp.path().join("held")));
        assert!(
            held.contains(
                "INV-9 per-buyer limit          HELD     limit 1 units per buyer: 2 buyers hold \
                 orders"
            ),
            "{held}"
        );
        let broken = console_summary(&write(&limited_run(true), &tmp.path().join("broken")));
        assert!(
            broken.contains("INV-9 per-buyer limit          VIOLATED 1 buyers exceed the limit"),
            "{broken}"
        );
        assert!(
            broken.contains("\n    a buyer may hold at most 1 units in this sale"),
            "{broken}"
        );
        assert!(
            broken.contains("\nVIOLATED: INV-9; NOT CHECKED: INV-6"),
            "{broken}"
        );
        // Without a limit the sale has no such rule, and no line says otherwise.
        let plain = console_summary(&write(&run(false), &tmp.path().join("plain")));
        assert!(!plain.contains("INV-9"), "{plain}");
    }

    #[test]
    fn the_holds_line_counts_each_operation_by_outcome_and_code() {
        let op = |kind, outcome, code: Option<&str>| HoldAttempt {
            kind,
            buyer: "b".into(),
            idempotency_key: None,
            hold_id: None,
            quantity: 1,
            try_number: 0,
            sent_us: 0,
            completed_us: 0,
            outcome,
            status: None,
            code: code.map(Into::into),
            expires_at: None,
            state: None,
            order_id: None,
            attempt_seq: None,
        };
        assert_eq!(holds_line(&[]), None);
        let ops = [
            op(HoldOp::Reserve, Outcome::Ok, None),
            op(HoldOp::Reserve, Outcome::Rejected, Some("sold_out")),
            op(HoldOp::Checkout, Outcome::Rejected, Some("hold_expired")),
            op(HoldOp::Checkout, Outcome::Unknown, Some("timeout")),
        ];
        assert_eq!(
            holds_line(&ops).unwrap(),
            "holds: 2 reserves (1 ok, 1 rejected: sold_out 1), 2 checkouts (1 rejected: \
             hold_expired 1, 1 unknown: timeout 1)"
        );
    }
}
