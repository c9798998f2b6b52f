//! `report.html`: one self-contained page per run for the people who read latency to size
//! hardware — the verdicts, then five charts, and a sixth of resident memory when it was
//! sampled, with nothing loaded from the network (inline CSS, inline SVG, no script).
//!
//! The markup is XHTML-compatible (every element closed, every attribute quoted, text escaped),
//! so an XML parser can prove it well-formed; a test does.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;

use super::summary::Summary;
use super::svg::{Band, Chart, Scale, Series, escape, nice_ceiling, short_number};
use super::timeline::{binned, chart_bin_us, first_acknowledgements};
use crate::history::Attempt;
use crate::latency::{LatencyClass, LatencyHistograms};
use crate::load::health::ScheduleSample;

/// The ids of the charts, in page order; tests check each is present.
pub const CHART_IDS: [&str; 5] = [
    "latency-over-time",
    "percentile-distribution",
    "throughput-over-time",
    "units-sold",
    "generator-lag",
];

/// The id of the resident-memory chart. Not in [`CHART_IDS`]: it is drawn only when memory was
/// sampled (a run shorter than the sampling interval, or a machine without `/proc`, has none).
pub const MEMORY_CHART_ID: &str = "memory-over-time";

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;\
max-width:1000px;color:#222;line-height:1.4}h1{font-size:22px;margin-bottom:4px}\
h2{font-size:17px;margin:28px 0 4px}p.note{color:#555;font-size:13px;margin:2px 0 8px}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;\
padding:3px 8px;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}\
.held{color:#2e7d32;font-weight:600}.notchecked{color:#b26a00;font-weight:600}.violated{color:#c62828;font-weight:600}\
.warn{background:#fff3e0;border:1px solid #ef6c00;padding:8px 12px;margin:12px 0}\
svg.chart{width:100%;height:auto;border:1px solid #e0e0e0;background:#fff}\
svg .grid{stroke:#eee;stroke-width:1}svg .axis{stroke:#444;stroke-width:1}\
svg .tick{font-size:11px;fill:#555}svg .axis-label{font-size:12px;fill:#333}\
svg .legend{font-size:12px;fill:#222}svg .fault{fill:#ef6c00;fill-opacity:0.15}\
svg .band-label{font-size:10px;fill:#b24a00}";

fn colour(class: LatencyClass) -> &'static str {
    match class {
        LatencyClass::Ok => "#2e7d32",
        LatencyClass::SoldOut => "#1565c0",
        LatencyClass::OtherRejection => "#ef6c00",
        LatencyClass::Unknown => "#c62828",
        LatencyClass::All => "#333333",
    }
}

fn ms_label(v: f64) -> String {
    format!("{} ms", short_number(v))
}

fn plain_label(v: f64) -> String {
    short_number(v)
}

fn us_to_ms(us: Option<u64>) -> Option<f64> {
    us.map(|us| us as f64 / 1e3)
}

/// Renders the page; `history` gives the sell-out curve its exact steps.
pub fn render(
    summary: &Summary,
    histograms: &LatencyHistograms,
    history: &[Attempt],
    schedule: &[ScheduleSample],
) -> String {
    let mut s = String::new();
    let title = format!("flashsale run: {}", summary.scenario_name);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head>\
         <meta charset=\"utf-8\"/><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    header(&mut s, summary);
    charts(&mut s, summary, histograms, history, schedule);
    s.push_str("</body></html>\n");
    s
}

fn header(s: &mut String, summary: &Summary) {
    let _ = write!(
        s,
        "<h1>{}</h1><p class=\"note\">seed {}, against {}{}, started {}, arrival model {}; \
         times are seconds after doors open; latency is from the <b>intended</b> send \
         (coordinated-omission corrected) unless marked “from send”.</p>",
        escape(&summary.scenario_name),
        summary.seed,
        escape(&summary.target),
        summary
            .strategy
            .as_deref()
            .map(|st| format!(" (strategy {})", escape(st)))
            .unwrap_or_default(),
        summary
            .started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        summary.scenario.arrival.model()
    );
    if let Some(generator) = summary.generator.as_ref().filter(|g| g.bound) {
        let _ = write!(
            s,
            "<div class=\"warn\" id=\"generator-bound\"><b>Generator-bound run:</b> {}. \
             Latencies below describe the load generator as much as the server.</div>",
            escape(&generator.reasons.join("; "))
        );
    }
    let class = if summary.all_invariants_held {
        "held"
    } else if summary.none_violated() {
        "notchecked"
    } else {
        "violated"
    };
    let verdict = format!(
        "<span class=\"{class}\">{}</span>",
        escape(&summary.verdict_line())
    );
    let o = &summary.outcomes;
    let sellout = match summary.sellout.time_to_sell_out_ms {
        Some(ms) => format!("sold out after {:.3} s", ms / 1e3),
        None => "did not sell out".to_owned(),
    };
    let _ = write!(
        s,
        "<table id=\"facts\"><tr><th class=\"l\">verdict</th><td class=\"l\">{verdict}</td></tr>\
         <tr><th class=\"l\">attempts</th><td class=\"l\">{} — {} ok, {} rejected, {} unknown</td></tr>\
         <tr><th class=\"l\">units</th><td class=\"l\">cap {}, acknowledged {}, persisted {}; {sellout}</td></tr>\
         <tr><th class=\"l\">throughput</th><td class=\"l\">{:.1} answers/s ({:.1} ok/s) over {:.3} s; offered {}; goodput ratio {}</td></tr>\
         <tr><th class=\"l\">late sends</th><td class=\"l\">{}</td></tr></table>",
        o.attempts,
        o.ok,
        o.rejected,
        o.unknown,
        summary.cap,
        summary.units_acknowledged,
        summary.units_persisted,
        summary.throughput.answers_per_s.all,
        summary.throughput.answers_per_s.ok,
        summary.throughput.load_duration_ms / 1e3,
        summary
            .goodput
            .offered_per_s
            .map_or(no_offered_rate(summary), |r| format!("{r:.1} buyers/s")),
        summary.goodput.ratio.map_or(
            "none (no offered rate to divide by)".to_owned(),
            |r| format!("{r:.3}")
        ),
        summary.generator.as_ref().map_or(
            "not measured (no generator report)".to_owned(),
            |g| format!(
                "{} of {} attempts sent more than {} ms after their intended time",
                g.late_sends.count,
                o.attempts,
                g.late_sends.threshold_us / 1_000
            )
        ),
    );

    s.push_str(
        "<table id=\"latency-table\"><tr><th class=\"l\">class</th><th>count</th><th>p50</th>\
         <th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>p99 from send</th></tr>",
    );
    for (class, stats) in &summary.latency.from_intended {
        let from_send = summary
            .latency
            .from_send
            .get(class)
            .map_or("not recorded".to_owned(), |l| {
                ms_label(l.p99_us as f64 / 1e3)
            });
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{from_send}</td></tr>",
            escape(class),
            stats.count,
            ms_label(stats.p50_us as f64 / 1e3),
            ms_label(stats.p90_us as f64 / 1e3),
            ms_label(stats.p99_us as f64 / 1e3),
            ms_label(stats.p99_9_us as f64 / 1e3),
            ms_label(stats.max_us as f64 / 1e3),
        );
    }
    s.push_str("</table>");

    if let Some(shards) = &summary.shards {
        shards_table(s, shards);
    }

    if !summary.thresholds.is_empty() {
        s.push_str(
            "<table id=\"thresholds\"><tr><th class=\"l\">threshold</th><th>measured</th>\
             <th class=\"l\">verdict</th></tr>",
        );
        for t in &summary.thresholds {
            let measured = t
                .measured
                .map_or("not measured".to_owned(), |v| format!("{v:.3} {}", t.unit));
            let verdict = if t.passed {
                "<span class=\"held\">passed</span>"
            } else {
                "<span class=\"violated\">FAILED</span>"
            };
            let _ = write!(
                s,
                "<tr><td class=\"l\">{} {}</td><td>{}</td><td class=\"l\">{verdict}</td></tr>",
                escape(&t.metric),
                escape(&t.condition),
                escape(&measured)
            );
        }
        s.push_str("</table>");
    }
    if !summary.faults.is_empty() {
        s.push_str("<p class=\"note\">Faults (shaded on the charts): ");
        let listed: Vec<String> = summary
            .faults
            .iter()
            .map(|f| {
                let from = (f.started_ms - summary.doors_open_ms) / 1e3;
                match f.ended_ms {
                    Some(end) => format!(
                        "{} {:.2}–{:.2} s",
                        f.kind,
                        from,
                        (end - summary.doors_open_ms) / 1e3
                    ),
                    None => format!("{} from {from:.2} s, never healed", f.kind),
                }
            })
            .collect();
        s.push_str(&escape(&listed.join("; ")));
        s.push_str("</p>");
    }
}

fn charts(
    s: &mut String,
    summary: &Summary,
    histograms: &LatencyHistograms,
    history: &[Attempt],
    schedule: &[ScheduleSample],
) {
    // Bins adapt to the run (`chart_bin_us`): a 200 ms burst in 5 ms bins, a soak in seconds.
    let doors_open_us = (summary.doors_open_ms * 1e3).round() as u64;
    let bin_us = chart_bin_us(history, doors_open_us);
    let rows = &binned(
        history,
        schedule,
        &first_acknowledgements(history),
        doors_open_us,
        bin_us,
    );
    let bin_s = bin_us as f64 / 1e6;
    let bin = bin_label(bin_us);
    let seconds = (rows.len().max(1) as f64 * bin_s).max(bin_s);
    let x = Scale::Linear {
        min: 0.0,
        max: seconds,
    };
    let bands: Vec<Band> = summary
        .faults
        .iter()
        .map(|f| Band {
            from: (f.started_ms - summary.doors_open_ms) / 1e3,
            to: f
                .ended_ms
                .map_or(seconds, |end| (end - summary.doors_open_ms) / 1e3),
            label: f.kind.clone(),
        })
        .collect();
    // A bin's figures are drawn at its middle; counts become rates per second.
    let at = |r: &super::SecondStats| (r.second as f64 + 0.5) * bin_s;
    let rate = |count: u64| Some(count as f64 / bin_s);
    let second_label = |v: f64| format!("{} s", short_number(v));

    let latency_series = vec![
        series(
            "p50",
            "#90caf9",
            false,
            rows.iter().map(|r| (at(r), us_to_ms(r.p50_us))),
        ),
        series(
            "p90",
            "#1e88e5",
            false,
            rows.iter().map(|r| (at(r), us_to_ms(r.p90_us))),
        ),
        series(
            "p99",
            "#0d47a1",
            false,
            rows.iter().map(|r| (at(r), us_to_ms(r.p99_us))),
        ),
        series(
            "p99 from send",
            "#c62828",
            true,
            rows.iter().map(|r| (at(r), us_to_ms(r.p99_from_send_us))),
        ),
    ];
    let y = Scale::log_around(values(&latency_series));
    section(
        s,
        "Latency percentiles over time",
        &format!(
            "Per {bin}, of the answers that arrived in it, from the intended send; the dashed \
             line is p99 from the actual send. Where the two part, requests waited in the \
             generator for a connection: time a shopper waited that an uncorrected tool would \
             not show."
        ),
        &Chart {
            id: CHART_IDS[0],
            title: "Latency percentiles over time",
            x_label: "seconds after doors open",
            y_label: "latency (ms, log scale)",
            x,
            y,
            x_tick: &second_label,
            y_tick: &ms_label,
            x_ticks: None,
            series: latency_series,
            bands: bands.clone(),
        },
    );

    distribution(s, summary, histograms);

    let throughput_series = vec![
        series(
            "sent",
            "#9e9e9e",
            true,
            rows.iter().map(|r| (at(r), rate(r.sent))),
        ),
        series(
            "ok",
            colour(LatencyClass::Ok),
            false,
            rows.iter().map(|r| (at(r), rate(r.ok))),
        ),
        series(
            "sold out",
            colour(LatencyClass::SoldOut),
            false,
            rows.iter().map(|r| (at(r), rate(r.sold_out))),
        ),
        series(
            "other rejection",
            colour(LatencyClass::OtherRejection),
            false,
            rows.iter().map(|r| (at(r), rate(r.other_rejection))),
        ),
        series(
            "unknown",
            colour(LatencyClass::Unknown),
            false,
            rows.iter().map(|r| (at(r), rate(r.unknown))),
        ),
    ];
    let y = Scale::linear_to(values(&throughput_series).fold(0.0, f64::max));
    section(
        s,
        "Throughput by outcome",
        &format!(
            "Answers per second by outcome, counted in the {bin} they arrived in; dashed: \
             requests sent per second."
        ),
        &Chart {
            id: CHART_IDS[2],
            title: "Throughput by outcome",
            x_label: "seconds after doors open",
            y_label: "per second",
            x,
            y,
            x_tick: &second_label,
            y_tick: &plain_label,
            x_ticks: None,
            series: throughput_series,
            bands: bands.clone(),
        },
    );

    // A step at every first acknowledgement, at its arrival, to the end of the chart.
    let mut steps = vec![(0.0, Some(0.0))];
    let mut units = 0.0;
    for (at_us, quantity) in first_acknowledgements(history) {
        let t = (at_us as f64 / 1e3 - summary.doors_open_ms) / 1e3;
        steps.push((t, Some(units)));
        units += quantity as f64;
        steps.push((t, Some(units)));
    }
    steps.push((seconds, Some(units)));
    let mut units_series = vec![series(
        "units sold",
        colour(LatencyClass::Ok),
        false,
        steps.into_iter(),
    )];
    if let Some(cap) = summary.cap.as_option() {
        units_series.push(series(
            "cap",
            "#c62828",
            true,
            [(0.0, Some(cap as f64)), (seconds, Some(cap as f64))].into_iter(),
        ));
    }
    let y = Scale::linear_to(values(&units_series).fold(0.0, f64::max));
    let sellout_band = summary
        .sellout
        .time_to_sell_out_ms
        .map(|ms| Band {
            from: ms / 1e3,
            to: ms / 1e3,
            label: format!("sold out {:.2} s", ms / 1e3),
        })
        .into_iter();
    section(
        s,
        "Units sold over time",
        "Units acknowledged (distinct ok orders) as their answers arrived: the sell-out curve.",
        &Chart {
            id: CHART_IDS[3],
            title: "Units sold over time",
            x_label: "seconds after doors open",
            y_label: "units",
            x,
            y,
            x_tick: &second_label,
            y_tick: &plain_label,
            x_ticks: None,
            series: units_series,
            bands: bands.iter().cloned().chain(sellout_band).collect(),
        },
    );

    let lag_series = vec![
        series(
            "schedule lag p99",
            "#6a1b9a",
            false,
            rows.iter().map(|r| (at(r), us_to_ms(r.lag_p99_us))),
        ),
        series(
            "schedule lag max",
            "#ab47bc",
            false,
            rows.iter().map(|r| (at(r), us_to_ms(r.lag_max_us))),
        ),
        series(
            "connection wait p99",
            "#757575",
            true,
            rows.iter()
                .map(|r| (at(r), us_to_ms(r.connection_wait_p99_us))),
        ),
    ];
    let y = Scale::linear_to(values(&lag_series).fold(0.0, f64::max));
    section(
        s,
        "Generator lag",
        &format!(
            "How late the generator ran the buyers meant to send in each {bin} (schedule lag: \
             the generator's own delay, which makes a run generator-bound above 10 ms p99 or \
             100 ms max), and how long they then waited for a connection (back-pressure from the \
             server)."
        ),
        &Chart {
            id: CHART_IDS[4],
            title: "Generator lag",
            x_label: "seconds after doors open (intended send)",
            y_label: "ms",
            x,
            y,
            x_tick: &second_label,
            y_tick: &ms_label,
            x_ticks: None,
            series: lag_series,
            bands: bands.clone(),
        },
    );

    memory(s, summary, &bands);
}

/// Resident memory of the harness and of the service it started, over the whole run (set-up
/// and checking included, so x may start before doors open): what a soak reads for leaks. The
/// end of warm-up is marked, because growth is measured from there.
fn memory(s: &mut String, summary: &Summary, bands: &[Band]) {
    let report = summary.memory.as_ref();
    let samples = report.map_or(&[][..], |m| m.samples.as_slice());
    let at = |at_ms: u64| (at_ms as f64 - summary.doors_open_ms) / 1e3;
    let mb = |bytes: Option<u64>| bytes.map(|b| b as f64 / 1_048_576.0);
    // The harness process holds the in-process reference server when there is one, so its line
    // is named for what it measures.
    let harness_name = if summary.target == "in-process" {
        "harness + server"
    } else {
        "harness"
    };
    let mut lines = Vec::new();
    if samples.iter().any(|m| m.harness_bytes.is_some()) {
        lines.push(series(
            harness_name,
            "#6d4c41",
            false,
            samples.iter().map(|m| (at(m.at_ms), mb(m.harness_bytes))),
        ));
    }
    if samples.iter().any(|m| m.service_bytes.is_some()) {
        lines.push(series(
            "service",
            "#00897b",
            false,
            samples.iter().map(|m| (at(m.at_ms), mb(m.service_bytes))),
        ));
    }
    if lines.is_empty() {
        s.push_str(
            "<h2>Resident memory</h2><p class=\"note\" id=\"memory-not-sampled\">Resident memory: \
             not sampled in this run (it is read once a second from /proc, so a run shorter than \
             a second, or a machine without /proc, has no sample).</p>",
        );
        return;
    }
    let first = samples.first().map_or(0.0, |m| at(m.at_ms));
    let last = samples.last().map_or(0.0, |m| at(m.at_ms));
    let max = last.max(summary.per_second.len() as f64).ceil().max(1.0);
    // The axis starts at doors open, like the other charts, unless set-up took a noticeable
    // part of the run; a first sample a moment before doors open is drawn at the axis.
    let min = if first < -0.05 * (max - first) {
        let step = nice_ceiling((max - first) / 5.0);
        (first / step).floor() * step
    } else {
        0.0
    };
    let x = Scale::Linear { min, max };
    let y = Scale::linear_to(values(&lines).fold(0.0, f64::max));
    // Warm-up ends at the same share of the samples that `memory::Growth` takes as its base:
    // drawn as a dashed line in the legend rather than a labelled band, whose label would
    // collide with the faults' labels.
    if let Some(end) = samples.get(crate::memory::warm_up_index(samples.len())) {
        let (t, top) = (at(end.at_ms).max(min), y.max());
        lines.push(series(
            "warm-up ends",
            "#9e9e9e",
            true,
            [(t, Some(0.0)), (t, Some(top))].into_iter(),
        ));
    }
    let growth: Vec<String> = report
        .into_iter()
        .flat_map(|m| [(harness_name, &m.harness), ("service", &m.service)])
        .filter_map(|(who, g)| {
            g.as_ref().map(|g| {
                format!(
                    "{who} {:.1} MB at start, {:.1} MB after warm-up, {:.1} MB at the end \
                     ({:+.1} % after warm-up), peak {:.1} MB",
                    g.start_mb, g.after_warm_up_mb, g.end_mb, g.growth_after_warm_up_pct, g.peak_mb
                )
            })
        })
        .collect();
    let second_label = |v: f64| format!("{} s", short_number(v));
    let mb_label = |v: f64| format!("{} MB", short_number(v));
    section(
        s,
        "Resident memory",
        &format!(
            "Resident set size sampled once a second, from the start of set-up to the end of the \
             checks; growth is measured from the end of warm-up (the first fifth of the samples), \
             once pools and caches have reached their working size. {}.",
            growth.join("; ")
        ),
        &Chart {
            id: MEMORY_CHART_ID,
            title: "Resident memory",
            x_label: "seconds after doors open",
            y_label: "resident memory (MB)",
            x,
            y,
            x_tick: &second_label,
            y_tick: &mb_label,
            x_ticks: None,
            series: lines,
            bands: bands.to_vec(),
        },
    );
}

/// The percentile distribution, plotted like the HdrHistogram plotter: x is `1/(1-p)` on a log
/// scale, so the tail gets as much room as the median.
fn distribution(s: &mut String, summary: &Summary, histograms: &LatencyHistograms) {
    let count = summary.outcomes.attempts.max(1) as f64;
    let decades = count.log10().ceil().clamp(2.0, 6.0);
    let x_max = 10f64.powf(decades);
    let curve = |h: &Histogram<u64>| -> Vec<(f64, Option<f64>)> {
        h.iter_quantiles(5)
            .map(|v| {
                let q = v.quantile_iterated_to();
                let x = if q >= 1.0 {
                    x_max
                } else {
                    (1.0 / (1.0 - q)).min(x_max)
                };
                (x, Some(v.value_iterated_to() as f64 / 1e3))
            })
            .collect()
    };
    let mut dist: Vec<Series> = histograms
        .from_intended
        .iter()
        .map(|(class, h)| Series {
            name: class.as_str().replace('_', " "),
            colour: colour(*class),
            dashed: false,
            points: curve(h),
        })
        .collect();
    let from_send: BTreeMap<_, _> = histograms.from_send.iter().collect();
    if let Some(h) = from_send.get(&LatencyClass::All) {
        dist.push(Series {
            name: "all, from send".to_owned(),
            colour: "#9e9e9e",
            dashed: true,
            points: curve(h),
        });
    }
    let ticks: Vec<(f64, String)> = (0..=decades as i32)
        .map(|k| {
            let label = match k {
                0 => "0%".to_owned(),
                1 => "90%".to_owned(),
                k => format!("99.{}%", "9".repeat(k as usize - 2)).replace(".%", "%"),
            };
            (10f64.powi(k), label)
        })
        .collect();
    let y = Scale::linear_to(values(&dist).fold(0.0, f64::max));
    section(
        s,
        "Latency by percentile",
        "The whole distribution per outcome, from the intended send (the same data as the \
         latency-<class>.hgrm files): the x axis is 1/(1−percentile) on a log scale, as in the \
         HdrHistogram plotter.",
        &Chart {
            id: CHART_IDS[1],
            title: "Latency by percentile",
            x_label: "percentile",
            y_label: "latency (ms)",
            x: Scale::Log {
                min: 1.0,
                max: x_max,
            },
            y,
            x_tick: &plain_label,
            y_tick: &ms_label,
            x_ticks: Some(ticks),
            series: dist,
            bands: Vec::new(),
        },
    );
}

fn series(
    name: &str,
    colour: &'static str,
    dashed: bool,
    points: impl Iterator<Item = (f64, Option<f64>)>,
) -> Series {
    Series {
        name: name.to_owned(),
        colour,
        dashed,
        points: points.collect(),
    }
}

fn values(series: &[Series]) -> impl Iterator<Item = f64> + '_ {
    series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|(_, y)| *y))
}

/// A merged run's generators: each one's share, clock and doors-open, and their spread.
fn shards_table(s: &mut String, shards: &super::ShardsReport) {
    let uncertainty = shards
        .clock_uncertainty_us
        .map_or("a shard's clock offset was not measured".to_owned(), |us| {
            format!("clocks known to ±{:.1} ms", us as f64 / 1e3)
        });
    let _ = write!(
        s,
        "<h2>Load generators</h2><p class=\"note\" id=\"shards-note\">Merged from {} shards. \
         Doors opened within {:.1} ms of each other ({uncertainty}), agreed instant {}.</p>\
         <table id=\"shards\"><tr><th>shard</th><th>buyers</th><th>attempts</th><th>ok</th>\
         <th>clock offset</th><th>opened (vs agreed)</th><th>CPU</th>\
         <th class=\"l\">clock measured against</th></tr>",
        shards.count,
        shards.doors_open_spread_us as f64 / 1e3,
        escape(
            &shards
                .doors_open_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ),
    );
    for f in &shards.shards {
        let offset = match (f.clock_offset_us, f.clock_offset_uncertainty_us) {
            (Some(us), Some(u)) => format!("{:+.1} ± {:.1} ms", us as f64 / 1e3, u as f64 / 1e3),
            _ => "not measured".to_owned(),
        };
        let cpu = f.cpu.map_or("not read (no /proc)".to_owned(), |c| {
            format!(
                "{:.2} s ({:.0} % of {} cores)",
                c.cpu_ms as f64 / 1e3,
                c.busy_fraction * 1e2,
                c.cores
            )
        });
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{offset}</td><td>{:+.1} ms</td>\
             <td>{cpu}</td><td class=\"l\">{}</td></tr>",
            f.shard,
            f.buyers,
            f.attempts,
            f.ok,
            f.doors_open_drift_us as f64 / 1e3,
            escape(&f.clock_reference)
        );
    }
    s.push_str("</table>");
}

/// Why a run has no offered rate, in words (no field is left as a bare dash).
fn no_offered_rate(summary: &Summary) -> String {
    match summary.scenario.arrival {
        crate::scenario::Arrival::Closed { .. } => {
            "none: a closed model is paced by the server's answers".to_owned()
        }
        _ => "none: a burst releases every buyer at one instant".to_owned(),
    }
}

/// "5 ms", "100 ms", "second", "2 s": what one point of a chart covers.
fn bin_label(bin_us: u64) -> String {
    match bin_us {
        1_000_000 => "second".to_owned(),
        us if us < 1_000_000 => format!("{} ms bin", us / 1_000),
        us => format!("{} s bin", us / 1_000_000),
    }
}

fn section(s: &mut String, title: &str, note: &str, chart: &Chart) {
    let _ = write!(
        s,
        "<h2>{}</h2><p class=\"note\">{}</p>{}",
        escape(title),
        escape(note),
        chart.render()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::report::fixtures::*;

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

    /// The `<svg>` element with this id, if the page has one.
    fn chart<'a>(html: &'a str, id: &str) -> Option<&'a str> {
        let start = html.find(&format!("<svg id=\"{id}\""))?;
        let len = html[start..].find("</svg>")? + "</svg>".len();
        Some(&html[start..start + len])
    }

    #[test]
    fn memory_is_plotted_when_sampled_and_said_not_sampled_otherwise() {
        let tmp = tempfile::tempdir().unwrap();
        let mut run = measured_run();
        write(&run, tmp.path());
        let html = fs::read_to_string(tmp.path().join("report.html")).unwrap();
        assert!(
            chart(&html, MEMORY_CHART_ID).is_none(),
            "no samples, no chart"
        );
        assert!(html.contains("id=\"memory-not-sampled\""), "says why");
        assert!(html.contains("Resident memory: not sampled"));

        // Ten seconds of samples; the service was down (unreadable) at the sixth.
        let mb = 1_048_576;
        run.memory = (0..10u64)
            .map(|k| crate::memory::MemorySample {
                at_ms: 1_000 * (k + 1),
                harness_bytes: Some((40 + k) * mb),
                service_bytes: (k != 5).then_some((20 + k) * mb),
            })
            .collect();
        write(&run, tmp.path());
        let html = fs::read_to_string(tmp.path().join("report.html")).unwrap();
        assert!(!html.contains("memory-not-sampled"));
        let svg = chart(&html, MEMORY_CHART_ID).expect("the memory chart");
        for legend in [">harness + server</text>", ">service</text>"] {
            assert!(svg.contains(legend), "{legend} in {svg}");
        }
        // The harness's line is whole, the service's breaks where it could not be read, and a
        // dashed line marks the end of warm-up.
        assert_eq!(svg.matches("<polyline").count(), 4, "{svg}");
        assert!(svg.contains(">warm-up ends</text>"), "{svg}");
        assert!(
            svg.contains(">50 MB</text>"),
            "the y axis reaches the peak: {svg}"
        );
        // Its figures are stated next to it.
        assert!(
            html.contains("harness + server 40.0 MB at start, 42.0 MB after warm-up, 49.0 MB"),
            "{html}"
        );
        // Still one well-formed page.
        let mut reader = quick_xml::Reader::from_str(&html);
        while !matches!(reader.read_event().unwrap(), quick_xml::events::Event::Eof) {}
    }
}
