//! The run over time: throughput by outcome, goodput against the offered load, the sell-out
//! curve and per-second latency, from doors open to the last answer.
//!
//! Time is cut into whole seconds from doors open (second `k` holds what happened in
//! `[k s, k+1 s)` after it), the way HdrHistogram interval logs cut it. Answers are counted in
//! the second they *arrived*; the generator's lag in the second the buyer was *meant* to send.

use std::collections::{BTreeMap, HashSet};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::history::{Attempt, Outcome};
use crate::latency::{LatencyClass, new_histogram, record};
use crate::load::health::ScheduleSample;
use crate::scenario::Arrival;

pub const SECOND_US: u64 = 1_000_000;

/// Answers per second, per outcome class, over the load phase.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassRates {
    pub all: f64,
    pub ok: f64,
    pub sold_out: f64,
    pub other_rejection: f64,
    pub unknown: f64,
}

/// `summary.json`'s `throughput`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// From doors open to the last answer, the span every rate below is taken over.
    pub load_duration_ms: f64,
    /// Requests that left, retries included, per second.
    pub sent_per_s: f64,
    /// Answers per second by outcome class.
    pub answers_per_s: ClassRates,
}

/// `summary.json`'s `goodput`: useful work against the load the schedule offered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Goodput {
    /// Buyers per second the arrival model offered; `null` for a burst (one instant) and the
    /// closed model (paced by the server).
    pub offered_per_s: Option<f64>,
    /// `ok` answers per second.
    pub ok_per_s: f64,
    /// Units acknowledged per second.
    pub units_per_s: f64,
    /// `ok_per_s / offered_per_s`; `null` without an offered rate. On a capped sale it falls
    /// once the sale sells out, as it should: demand beyond the cap cannot be served.
    pub ratio: Option<f64>,
}

/// `summary.json`'s `sellout`: when the sale sold out, if it did.
///
/// The time to sell out runs from doors open to the arrival of the last `ok` answer, provided
/// a `sold_out` answer arrived after it (the sold-out is then final: no later buyer got a
/// unit). A sale that never answered `sold_out` after its last `ok` did not sell out in the run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sellout {
    pub sold_out: bool,
    pub time_to_sell_out_ms: Option<f64>,
    /// When the first `sold_out` after the last `ok` arrived, ms after doors open.
    pub final_sold_out_ms: Option<f64>,
    /// Units acknowledged by then (distinct ok orders).
    pub units_sold: u64,
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds after doors open this row starts at.
    pub second: u64,
    /// Requests that left in this second (retries included).
    pub sent: u64,
    /// Answers that arrived in this second, by class.
    pub ok: u64,
    pub sold_out: u64,
    pub other_rejection: u64,
    pub unknown: u64,
    /// Units acknowledged by the end of this second (distinct ok orders): the sell-out curve.
    pub units_sold: u64,
    /// Latency from the intended send of the answers of this second (all classes); `null` in a
    /// second without answers.
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    /// The same answers' p99 from the actual send: the gap to `p99_us` is time queued in the
    /// generator, which a shopper would have waited.
    pub p99_from_send_us: Option<u64>,
    /// Schedule lag of the buyers meant to send in this second (see [`crate::load::health`]).
    pub lag_p99_us: Option<u64>,
    pub lag_max_us: Option<u64>,
    /// Their wait for a connection.
    pub connection_wait_p99_us: Option<u64>,
}

/// Everything over time, for `summary.json` and `report.html`.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub throughput: Throughput,
    pub goodput: Goodput,
    pub sellout: Sellout,
    pub per_second: Vec<SecondStats>,
}

/// The second (from doors open) that `at_us` falls in.
pub fn second_of(at_us: u64, doors_open_us: u64) -> u64 {
    at_us.saturating_sub(doors_open_us) / SECOND_US
}

/// The widths a chart's time bins may have (µs), 5 ms to a minute.
const BIN_LADDER_US: [u64; 13] = [
    5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000,
    10_000_000, 30_000_000, 60_000_000,
];
/// At most this many bins per chart: enough to show a shape, few enough to read each point.
const MAX_BINS: u64 = 120;

/// The bin width the report's charts use for this run: the narrowest of [`BIN_LADDER_US`] that
/// cuts the span from doors open to the last answer into at most [`MAX_BINS`]. A 200 ms burst
/// gets 5 ms bins (40 points instead of one dot per chart), a ten-second run 100 ms, a three-
/// minute soak 2 s. `summary.json`'s `per_second` stays in whole seconds, as the interval logs.
pub fn chart_bin_us(history: &[Attempt], doors_open_us: u64) -> u64 {
    let span = history
        .iter()
        .map(|a| a.completed_us.saturating_sub(doors_open_us))
        .max()
        .unwrap_or(0)
        + 1;
    BIN_LADDER_US
        .iter()
        .copied()
        .find(|bin| span.div_ceil(*bin) <= MAX_BINS)
        .unwrap_or(BIN_LADDER_US[BIN_LADDER_US.len() - 1])
}

/// How many whole seconds the run's answers span from doors open (at least 1 with answers).
pub fn seconds_spanned(history: &[Attempt], doors_open_us: u64) -> u64 {
    history
        .iter()
        .map(|a| second_of(a.completed_us, doors_open_us) + 1)
        .max()
        .unwrap_or(0)
}

/// Per attempt: the units it acknowledged for the first time (a retry's repeated `ok` for the
/// same key adds nothing), in completion order.
pub(super) fn first_acknowledgements(history: &[Attempt]) -> Vec<(u64, u64)> {
    let mut oks: Vec<&Attempt> = history
        .iter()
        .filter(|a| a.outcome == Outcome::Ok)
        .collect();
    oks.sort_by_key(|a| a.completed_us);
    let mut seen = HashSet::new();
    oks.into_iter()
        .filter(|a| seen.insert(a.idempotency_key.as_str()))
        .map(|a| (a.completed_us, u64::from(a.quantity)))
        .collect()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Timeline {
    pub fn build(
        history: &[Attempt],
        schedule: &[ScheduleSample],
        arrival: &Arrival,
        buyers: u32,
        doors_open_us: u64,
    ) -> Timeline {
        let last_us = history.iter().map(|a| a.completed_us).max().unwrap_or(0);
        let duration_us = last_us.saturating_sub(doors_open_us);
        let per_s = |count: u64| {
            if duration_us == 0 {
                0.0
            } else {
                count as f64 / (duration_us as f64 / 1e6)
            }
        };
        let mut counts: BTreeMap<LatencyClass, u64> = BTreeMap::new();
        for attempt in history {
            *counts.entry(LatencyClass::of(attempt)).or_default() += 1;
        }
        let count = |class| counts.get(&class).copied().unwrap_or(0);
        let acks = first_acknowledgements(history);
        let units: u64 = acks.iter().map(|(_, q)| q).sum();
        let offered_per_s = arrival.offered_rate(buyers);
        let ok_per_s = per_s(count(LatencyClass::Ok));

        let last_ok = history
            .iter()
            .filter(|a| a.outcome == Outcome::Ok)
            .map(|a| a.completed_us)
            .max();
        let final_sold_out = last_ok.and_then(|last| {
            history
                .iter()
                .filter(|a| LatencyClass::of(a) == LatencyClass::SoldOut && a.completed_us > last)
                .map(|a| a.completed_us)
                .min()
        });
        let sellout = match (last_ok, final_sold_out) {
            (Some(last), Some(final_us)) => Sellout {
                sold_out: true,
                time_to_sell_out_ms: Some(ms(last.saturating_sub(doors_open_us))),
                final_sold_out_ms: Some(ms(final_us.saturating_sub(doors_open_us))),
                units_sold: units,
            },
            _ => Sellout {
                units_sold: units,
                ..Sellout::default()
            },
        };

        Timeline {
            throughput: Throughput {
                load_duration_ms: ms(duration_us),
                sent_per_s: per_s(history.len() as u64),
                answers_per_s: ClassRates {
                    all: per_s(history.len() as u64),
                    ok: ok_per_s,
                    sold_out: per_s(count(LatencyClass::SoldOut)),
                    other_rejection: per_s(count(LatencyClass::OtherRejection)),
                    unknown: per_s(count(LatencyClass::Unknown)),
                },
            },
            goodput: Goodput {
                offered_per_s,
                ok_per_s,
                units_per_s: per_s(units),
                ratio: offered_per_s.map(|offered| ok_per_s / offered),
            },
            sellout,
            per_second: binned(history, schedule, &acks, doors_open_us, SECOND_US),
        }
    }
}

fn quantile(h: &Histogram<u64>, q: f64) -> Option<u64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q))
}

/// The run cut into bins of `bin_us` from doors open: whole seconds for `summary.json`'s
/// `per_second` (then `second` is the second), [`chart_bin_us`] for the report's charts (then
/// `second` is the bin's index).
pub fn binned(
    history: &[Attempt],
    schedule: &[ScheduleSample],
    acks: &[(u64, u64)],
    doors_open_us: u64,
    bin_us: u64,
) -> Vec<SecondStats> {
    let bin_us = bin_us.max(1);
    let second_of = |at_us: u64, doors_open_us: u64| at_us.saturating_sub(doors_open_us) / bin_us;
    let seconds = history
        .iter()
        .map(|a| second_of(a.completed_us, doors_open_us) + 1)
        .max()
        .unwrap_or(0) as usize;
    let mut rows: Vec<SecondStats> = (0..seconds as u64)
        .map(|second| SecondStats {
            second,
            ..SecondStats::default()
        })
        .collect();
    let mut from_intended: Vec<Histogram<u64>> = (0..seconds).map(|_| new_histogram()).collect();
    let mut from_send: Vec<Histogram<u64>> = (0..seconds).map(|_| new_histogram()).collect();
    for attempt in history {
        let done = second_of(attempt.completed_us, doors_open_us) as usize;
        let row = &mut rows[done];
        match LatencyClass::of(attempt) {
            LatencyClass::Ok => row.ok += 1,
            LatencyClass::SoldOut => row.sold_out += 1,
            LatencyClass::OtherRejection => row.other_rejection += 1,
            LatencyClass::Unknown | LatencyClass::All => row.unknown += 1,
        }
        record(&mut from_intended[done], attempt.response_latency_us());
        record(&mut from_send[done], attempt.service_latency_us());
        let sent = (second_of(attempt.sent_us, doors_open_us) as usize).min(seconds - 1);
        rows[sent].sent += 1;
    }
    let mut lag: Vec<Histogram<u64>> = (0..seconds).map(|_| new_histogram()).collect();
    let mut wait: Vec<Histogram<u64>> = (0..seconds).map(|_| new_histogram()).collect();
    // A run whose buyers all reserved and never bought has schedule samples but no attempt, so
    // no second to put them in (found by generated journeys: one buyer who abandoned a hold).
    if let Some(last) = seconds.checked_sub(1) {
        for sample in schedule {
            let at = (second_of(sample.intended_us, doors_open_us) as usize).min(last);
            record(&mut lag[at], sample.lag_us());
            record(&mut wait[at], sample.connection_wait_us());
        }
    }
    let mut acked = acks.iter().peekable();
    let mut units = 0;
    for (i, row) in rows.iter_mut().enumerate() {
        let end_us = doors_open_us + (i as u64 + 1) * bin_us;
        while let Some((_, quantity)) = acked.next_if(|(at, _)| *at < end_us) {
            units += quantity;
        }
        row.units_sold = units;
        row.p50_us = quantile(&from_intended[i], 0.5);
        row.p90_us = quantile(&from_intended[i], 0.9);
        row.p99_us = quantile(&from_intended[i], 0.99);
        row.max_us = (!from_intended[i].is_empty()).then(|| from_intended[i].max());
        row.p99_from_send_us = quantile(&from_send[i], 0.99);
        row.lag_p99_us = quantile(&lag[i], 0.99);
        row.lag_max_us = (!lag[i].is_empty()).then(|| lag[i].max());
        row.connection_wait_p99_us = quantile(&wait[i], 0.99);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::SOLD_OUT;
    use std::time::Duration;

    #[test]
    fn chart_bins_adapt_to_the_run_from_a_burst_to_a_soak() {
        let run = |span_us: u64| vec![answer("a", Outcome::Ok, 0, span_us)];
        assert_eq!(chart_bin_us(&run(200_000), 0), 5_000, "a 200 ms burst");
        assert_eq!(chart_bin_us(&run(10_000_000), 0), 100_000, "ten seconds");
        assert_eq!(
            chart_bin_us(&run(180_000_000), 0),
            2_000_000,
            "a three-minute soak"
        );
        assert_eq!(chart_bin_us(&[], 0), 5_000, "nothing answered");
        // A 200 ms burst: 41 bins of 5 ms instead of one second-wide dot.
        let burst: Vec<Attempt> = (0..100)
            .map(|i| answer(&format!("k{i}"), Outcome::Ok, 0, i * 2_000))
            .collect();
        let bin = chart_bin_us(&burst, 0);
        let rows = binned(&burst, &[], &first_acknowledgements(&burst), 0, bin);
        assert_eq!(rows.len(), 40);
        assert_eq!(rows.iter().map(|r| r.ok).sum::<u64>(), 100);
        assert_eq!(rows[0].ok, 3, "answers at 0, 2 and 4 ms");
        assert_eq!(rows.last().unwrap().units_sold, 200, "two units each");
    }

    fn answer(key: &str, outcome: Outcome, sent_us: u64, completed_us: u64) -> Attempt {
        Attempt {
            seq: 0,
            buyer: key.into(),
            idempotency_key: key.into(),
            quantity: 2,
            try_number: 0,
            intended_us: sent_us,
            sent_us,
            completed_us,
            outcome,
            status: None,
            code: (outcome == Outcome::Rejected).then(|| SOLD_OUT.into()),
            order_id: (outcome == Outcome::Ok).then(|| format!("o-{key}")),
        }
    }

    const OPEN: u64 = 200_000;

    #[test]
    fn a_run_with_schedule_samples_and_no_attempt_has_no_second_and_no_panic() {
        // Every buyer reserved a hold and never bought: the schedule was sampled, no buy sent.
        let schedule = [crate::load::health::ScheduleSample {
            intended_us: OPEN,
            woke_us: OPEN + 10,
            sent_us: OPEN + 20,
        }];
        let arrival = Arrival::Burst {
            open_after: Duration::from_millis(200),
        };
        let t = Timeline::build(&[], &schedule, &arrival, 1, OPEN);
        assert!(t.per_second.is_empty());
    }

    #[test]
    fn counts_answers_in_the_second_they_arrived_and_draws_the_sell_out_curve() {
        let history = vec![
            answer("a", Outcome::Ok, OPEN, OPEN + 500_000),
            answer("b", Outcome::Ok, OPEN + 600_000, OPEN + 1_400_000),
            // A retry's second ok for key b adds no unit.
            answer("b", Outcome::Ok, OPEN + 1_500_000, OPEN + 1_600_000),
            answer("c", Outcome::Rejected, OPEN + 1_700_000, OPEN + 1_800_000),
            answer("d", Outcome::Unknown, OPEN + 1_700_000, OPEN + 2_500_000),
            answer("e", Outcome::Rejected, OPEN + 2_600_000, OPEN + 2_900_000),
        ];
        let arrival = Arrival::ConstantRate {
            open_after: Duration::from_millis(200),
            rate: 2.0,
        };
        let t = Timeline::build(&history, &[], &arrival, 6, OPEN);
        let rows: Vec<(u64, u64, u64, u64, u64)> = t
            .per_second
            .iter()
            .map(|r| (r.sent, r.ok, r.sold_out, r.unknown, r.units_sold))
            .collect();
        assert_eq!(rows, [(2, 1, 0, 0, 2), (3, 2, 1, 0, 4), (1, 0, 1, 1, 4)]);
        let max = t.per_second[0].max_us.unwrap();
        assert!((500_000..500_500).contains(&max), "{max}");
        assert!(t.per_second[0].lag_p99_us.is_none());

        // The last ok arrived at 1.6 s; the sold-out at 1.8 s is the final one.
        assert_eq!(
            t.sellout,
            Sellout {
                sold_out: true,
                time_to_sell_out_ms: Some(1_600.0),
                final_sold_out_ms: Some(1_800.0),
                units_sold: 4,
            }
        );
        assert_eq!(t.throughput.load_duration_ms, 2_900.0);
        assert!((t.throughput.answers_per_s.all - 6.0 / 2.9).abs() < 1e-9);
        assert!((t.throughput.answers_per_s.ok - 3.0 / 2.9).abs() < 1e-9);
        assert_eq!(t.goodput.offered_per_s, Some(2.0));
        assert!((t.goodput.ratio.unwrap() - 3.0 / 2.9 / 2.0).abs() < 1e-9);
        assert!((t.goodput.units_per_s - 4.0 / 2.9).abs() < 1e-9);
    }

    #[test]
    fn a_sale_that_answered_no_sold_out_after_its_last_ok_did_not_sell_out() {
        let history = vec![
            answer("a", Outcome::Rejected, OPEN, OPEN + 100),
            answer("b", Outcome::Ok, OPEN, OPEN + 200),
        ];
        let burst = Arrival::Burst {
            open_after: Duration::from_millis(200),
        };
        let t = Timeline::build(&history, &[], &burst, 2, OPEN);
        assert!(!t.sellout.sold_out);
        assert_eq!(t.sellout.time_to_sell_out_ms, None);
        assert_eq!(t.sellout.units_sold, 2);
        assert_eq!(t.goodput.offered_per_s, None);
        assert_eq!(t.goodput.ratio, None);
    }

    #[test]
    fn schedule_lag_lands_in_the_second_the_buyer_was_meant_to_send() {
        let history = vec![answer("a", Outcome::Ok, OPEN, OPEN + 1_500_000)];
        let schedule = [ScheduleSample {
            intended_us: OPEN + 1_200_000,
            woke_us: OPEN + 1_230_000,
            sent_us: OPEN + 1_240_000,
        }];
        let t = Timeline::build(&history, &schedule, &Arrival::default(), 1, OPEN);
        assert_eq!(t.per_second[0].lag_max_us, None);
        let lag = t.per_second[1].lag_max_us.unwrap();
        assert!((29_990..30_030).contains(&lag), "{lag}");
        let wait = t.per_second[1].connection_wait_p99_us.unwrap();
        assert!((9_990..10_010).contains(&wait), "{wait}");
    }
}
