//! Pass/fail thresholds in the style k6 users know, written in the scenario and judged on the
//! run's `summary.json`, so CI can fail a run that held every invariant but was too slow.
//!
//! ```toml
//! [thresholds]
//! "ok.p99" = "< 50ms"        # <class>.p50 | p90 | p99 | p999 | max: latency from the intended send
//! "unknown.rate" = "< 0.01"  # <class>.rate: that class's share of all attempts
//! "throughput" = ">= 500"    # answers per second, doors open to the last answer
//! "sellout_time" = "< 2s"    # doors open to the last ok answer before the final sold-out
//! "service_memory_growth" = "< 10"   # percent, resident memory from the end of warm-up to the
//! "harness_memory_growth" = "< 50"   # end (a service the harness started; the harness itself)
//! ```
//!
//! Classes are `ok`, `sold_out`, `other_rejection`, `unknown` and `all`; comparators `<`, `<=`,
//! `>`, `>=`; latencies and `sellout_time` take a unit (`us`, `ms`, `s`), rates and throughput a
//! plain number. A metric the run could not measure (no `ok` answer for `ok.p99`, a sale that
//! never sold out for `sellout_time`) fails its threshold: a threshold on nothing is a mistake
//! to see, not a pass.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::latency::{LatencyClass, LatencyStats};

/// One statistic of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    P50,
    P90,
    P99,
    P999,
    Max,
}

impl Stat {
    const ALL: [(Stat, &'static str); 5] = [
        (Stat::P50, "p50"),
        (Stat::P90, "p90"),
        (Stat::P99, "p99"),
        (Stat::P999, "p999"),
        (Stat::Max, "max"),
    ];

    fn of(self, stats: &LatencyStats) -> u64 {
        match self {
            Stat::P50 => stats.p50_us,
            Stat::P90 => stats.p90_us,
            Stat::P99 => stats.p99_us,
            Stat::P999 => stats.p99_9_us,
            Stat::Max => stats.max_us,
        }
    }
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Latency from the intended send (coordinated-omission corrected) of one class.
    Latency(LatencyClass, Stat),
    /// A class's share of all attempts, 0 to 1.
    Rate(LatencyClass),
    /// Answers per second over the load phase.
    Throughput,
    /// From doors open to the last ok answer before the final sold-out.
    SelloutTime,
    /// Resident memory growth after warm-up, in percent, of a service the harness started.
    ServiceMemoryGrowth,
    /// The same for the harness's own process (with the in-process server when there is one).
    HarnessMemoryGrowth,
}

impl Metric {
    fn parse(name: &str) -> Result<Metric, String> {
        match name {
            "throughput" => return Ok(Metric::Throughput),
            "sellout_time" => return Ok(Metric::SelloutTime),
            "service_memory_growth" => return Ok(Metric::ServiceMemoryGrowth),
            "harness_memory_growth" => return Ok(Metric::HarnessMemoryGrowth),
            _ => {}
        }
        let known = || {
            let classes: Vec<&str> = LatencyClass::ALL.iter().map(|c| c.as_str()).collect();
            format!(
                "known metrics: <class>.p50|p90|p99|p999|max|rate with <class> one of {}, \
                 throughput, sellout_time, service_memory_growth, harness_memory_growth",
                classes.join(", ")
            )
        };
        let (class, stat) = name
            .split_once('.')
            .ok_or_else(|| format!("unknown threshold metric \"{name}\"; {}", known()))?;
        let class = LatencyClass::from_name(class).ok_or_else(|| {
            format!(
                "unknown class \"{class}\" in threshold metric \"{name}\"; {}",
                known()
            )
        })?;
        if stat == "rate" {
            return Ok(Metric::Rate(class));
        }
        Stat::ALL
            .iter()
            .find(|(_, n)| *n == stat)
            .map(|(s, _)| Metric::Latency(class, *s))
            .ok_or_else(|| format!("unknown threshold metric \"{name}\"; {}", known()))
    }

    fn is_duration(self) -> bool {
        matches!(self, Metric::Latency(..) | Metric::SelloutTime)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparator {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Comparator::Lt => measured < limit,
            Comparator::Le => measured <= limit,
            Comparator::Gt => measured > limit,
            Comparator::Ge => measured >= limit,
        }
    }
}

/// One threshold: `metric comparator limit`, as written and as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric as written, e.g. `ok.p99`.
    pub name: String,
    /// The condition as written, e.g. `< 50ms`.
    pub condition: String,
    pub metric: Metric,
    pub comparator: Comparator,
    /// In microseconds for durations, as written otherwise.
    pub limit: f64,
}

impl Threshold {
    /// Parses `name = "condition"`; the error names the threshold and what to write instead.
    pub fn parse(name: &str, condition: &str) -> Result<Threshold, String> {
        let metric = Metric::parse(name)?;
        let text = condition.trim();
        let (comparator, rest) = [
            ("<=", Comparator::Le),
            (">=", Comparator::Ge),
            ("<", Comparator::Lt),
            (">", Comparator::Gt),
        ]
        .into_iter()
        .find_map(|(op, c)| text.strip_prefix(op).map(|rest| (c, rest.trim())))
        .ok_or_else(|| {
            format!(
                "threshold \"{name}\" = \"{condition}\" must start with <, <=, > or >= (e.g. \"< 50ms\")"
            )
        })?;
        let limit = parse_limit(rest, metric.is_duration())
            .map_err(|why| format!("threshold \"{name}\" = \"{condition}\": {why}"))?;
        Ok(Threshold {
            name: name.to_owned(),
            condition: condition.to_owned(),
            metric,
            comparator,
            limit,
        })
    }
}

/// A number, with a unit (`us`, `µs`, `ms`, `s`) converted to µs when `duration`.
fn parse_limit(text: &str, duration: bool) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a number"))?;
    let unit = unit.trim();
    match (duration, unit) {
        (true, "us" | "µs") => Ok(value),
        (true, "ms") => Ok(value * 1e3),
        (true, "s") => Ok(value * 1e6),
        (true, "") => Err("a duration needs a unit: us, ms or s (e.g. \"< 50ms\")".to_owned()),
        (true, other) => Err(format!("unknown unit \"{other}\"; use us, ms or s")),
        (false, "") => Ok(value),
        (false, other) => Err(format!(
            "this metric is a plain number, not a duration; remove \"{other}\""
        )),
    }
}

/// The `[thresholds]` table: metric name → condition, kept in name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds(pub Vec<Threshold>);

impl Thresholds {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Thresholds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|t| (&t.name, &t.condition)))
    }
}

impl<'de> Deserialize<'de> for Thresholds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = BTreeMap::<String, String>::deserialize(deserializer)?;
        table
            .iter()
            .map(|(name, condition)| Threshold::parse(name, condition))
            .collect::<Result<Vec<_>, _>>()
            .map(Thresholds)
            .map_err(serde::de::Error::custom)
    }
}

/// What the thresholds are judged on, taken from the summary.
#[derive(Debug, Clone, Copy)]
pub struct Measurements<'a> {
    pub latency_from_intended: &'a BTreeMap<String, LatencyStats>,
    /// Attempts per class name, and all attempts.
    pub class_counts: &'a BTreeMap<String, u64>,
    pub attempts: u64,
    pub throughput_per_s: f64,
    pub sellout_time_ms: Option<f64>,
    /// Percent growth of resident memory after warm-up, when it was sampled.
    pub service_memory_growth_pct: Option<f64>,
    pub harness_memory_growth_pct: Option<f64>,
}

/// One threshold's verdict, as `summary.json` and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub metric: String,
    pub condition: String,
    /// In `unit`; `null` when the run could not measure it.
    pub measured: Option<f64>,
    /// `ms` for latencies and sell-out time, `fraction` for rates, `per_s` for throughput.
    pub unit: String,
    pub passed: bool,
}

impl fmt::Display for ThresholdResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        match self.measured {
            Some(v) => write!(
                f,
                "threshold {} {} {verdict}: measured {}",
                self.metric,
                self.condition,
                format_measured(v, &self.unit)
            ),
            None => write!(
                f,
                "threshold {} {} {verdict}: not measured in this run",
                self.metric, self.condition
            ),
        }
    }
}

fn format_measured(value: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{value:.3} ms"),
        "percent" => format!("{value:.1} %"),
        "per_s" => format!("{value:.1}/s"),
        _ => format!("{value:.4}"),
    }
}

/// Judges every threshold on the run's measurements.
pub fn evaluate(thresholds: &Thresholds, m: &Measurements) -> Vec<ThresholdResult> {
    thresholds
        .0
        .iter()
        .map(|t| {
            let (measured_us_or_plain, unit) = match t.metric {
                Metric::Latency(class, stat) => (
                    m.latency_from_intended
                        .get(class.as_str())
                        .map(|s| stat.of(s) as f64),
                    "ms",
                ),
                Metric::Rate(class) => {
                    let count = if class == LatencyClass::All {
                        m.attempts
                    } else {
                        m.class_counts.get(class.as_str()).copied().unwrap_or(0)
                    };
                    (
                        (m.attempts > 0).then(|| count as f64 / m.attempts as f64),
                        "fraction",
                    )
                }
                Metric::Throughput => (Some(m.throughput_per_s), "per_s"),
                Metric::SelloutTime => (m.sellout_time_ms.map(|ms| ms * 1e3), "ms"),
                Metric::ServiceMemoryGrowth => (m.service_memory_growth_pct, "percent"),
                Metric::HarnessMemoryGrowth => (m.harness_memory_growth_pct, "percent"),
            };
            let passed = measured_us_or_plain.is_some_and(|v| t.comparator.holds(v, t.limit));
            let measured = if t.metric.is_duration() {
                measured_us_or_plain.map(|us| us / 1e3)
            } else {
                measured_us_or_plain
            };
            ThresholdResult {
                metric: t.name.clone(),
                condition: t.condition.clone(),
                measured,
                unit: unit.to_owned(),
                passed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, condition: &str) -> Threshold {
        Threshold::parse(name, condition).unwrap()
    }

    #[test]
    fn parses_metrics_comparators_and_units() {
        let t = parse("ok.p99", "< 50ms");
        assert_eq!(t.metric, Metric::Latency(LatencyClass::Ok, Stat::P99));
        assert_eq!((t.comparator, t.limit), (Comparator::Lt, 50_000.0));
        let t = parse("sold_out.p999", "<=1.5s");
        assert_eq!(t.metric, Metric::Latency(LatencyClass::SoldOut, Stat::P999));
        assert_eq!((t.comparator, t.limit), (Comparator::Le, 1_500_000.0));
        assert_eq!(parse("all.max", "> 250us").limit, 250.0);
        let t = parse("unknown.rate", "< 0.01");
        assert_eq!(t.metric, Metric::Rate(LatencyClass::Unknown));
        assert_eq!(t.limit, 0.01);
        assert_eq!(parse("throughput", ">= 500").comparator, Comparator::Ge);
        assert_eq!(parse("sellout_time", "< 2s").metric, Metric::SelloutTime);
    }

    #[test]
    fn refuses_unknown_metrics_and_wrong_units_naming_them() {
        let err = |name: &str, condition: &str| Threshold::parse(name, condition).unwrap_err();
        let unknown = err("ok.p95", "< 1s");
        assert!(
            unknown.contains("\"ok.p95\"") && unknown.contains("p999"),
            "{unknown}"
        );
        assert!(err("latency", "< 1s").contains("\"latency\""));
        assert!(err("fast.p99", "< 1s").contains("unknown class \"fast\""));
        assert!(err("ok.p99", "50ms").contains("must start with <"));
        assert!(err("ok.p99", "< 50").contains("needs a unit"));
        assert!(err("ok.p99", "< 50min").contains("unknown unit \"min\""));
        assert!(err("ok.rate", "< 5ms").contains("plain number"));
        assert!(err("throughput", "> lots").contains("not a number"));
    }

    #[test]
    fn judges_each_metric_and_fails_what_was_not_measured() {
        let latency = BTreeMap::from([(
            "ok".to_owned(),
            LatencyStats {
                count: 10,
                p50_us: 1_000,
                p90_us: 2_000,
                p99_us: 40_000,
                p99_9_us: 60_000,
                max_us: 70_000,
            },
        )]);
        let counts = BTreeMap::from([("ok".to_owned(), 10), ("unknown".to_owned(), 2)]);
        let m = Measurements {
            latency_from_intended: &latency,
            class_counts: &counts,
            attempts: 100,
            throughput_per_s: 480.0,
            sellout_time_ms: None,
            service_memory_growth_pct: None,
            harness_memory_growth_pct: Some(4.0),
        };
        let thresholds = Thresholds(vec![
            parse("ok.p99", "< 50ms"),
            parse("ok.max", "< 50ms"),
            parse("unknown.rate", "< 0.01"),
            parse("throughput", ">= 500"),
            parse("sellout_time", "< 2s"),
            parse("sold_out.p99", "< 1s"),
            parse("all.rate", "<= 1"),
        ]);
        let results = evaluate(&thresholds, &m);
        let verdicts: Vec<(bool, Option<f64>)> =
            results.iter().map(|r| (r.passed, r.measured)).collect();
        assert_eq!(
            verdicts,
            [
                (true, Some(40.0)),
                (false, Some(70.0)),
                (false, Some(0.02)),
                (false, Some(480.0)),
                (false, None),
                (false, None),
                (true, Some(1.0)),
            ]
        );
        assert_eq!(
            results[1].to_string(),
            "threshold ok.max < 50ms FAILED: measured 70.000 ms"
        );
        assert_eq!(
            results[4].to_string(),
            "threshold sellout_time < 2s FAILED: not measured in this run"
        );
    }
}
