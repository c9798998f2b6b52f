//! The target's own Prometheus metrics (`GET /metrics`), scraped once before the load and once
//! after it settled, so the run's report shows what the server counted during the run beside what
//! the harness measured: buys by outcome and by the path that decided them (a sold-out answer
//! from memory or from a claim), the server's own buy latency, and how the ledger batched.
//!
//! Only the reference server's metric names (`flashsale_*`, server/src/metrics.rs) are read; a
//! target that exposes none of them, or no `/metrics`, gets no section ("not exposed"), never
//! zeros. Parsing is prometheus-parse's (the text exposition format, histograms grouped).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use serde::{Deserialize, Serialize};

const BUYS: &str = "flashsale_buy_requests_total";
const BUY_SECONDS: &str = "flashsale_buy_duration_seconds";
const BATCH_SIZE: &str = "flashsale_ledger_batch_size";
const BATCH_SECONDS: &str = "flashsale_ledger_batch_duration_seconds";
const BATCH_OVERRUNS: &str = "flashsale_ledger_batch_overruns_total";
const BREAKER: &str = "flashsale_redis_breaker_state";
const POOL: &str = "flashsale_db_pool_connections";
/// The gauge every reference server exposes from its start (a counter appears only once
/// counted): its presence says the metrics are ours.
const POOL_MAX: &str = "flashsale_db_pool_max_connections";
const STARTED: &str = "flashsale_server_start_time_seconds";

/// One server's metrics at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    samples: Vec<Sample>,
}

impl Snapshot {
    /// Parses the exposition text; `None` when it holds none of the reference server's metrics.
    pub fn parse(text: &str) -> Option<Snapshot> {
        if !text.contains(POOL_MAX) {
            return None;
        }
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = Scrape::parse(lines).ok()?;
        Some(Snapshot {
            samples: scrape.samples,
        })
    }

    /// The scalar series `metric` (counter, gauge or untyped) by the value of `label`, summed
    /// over the other labels.
    fn by_label(&self, metric: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| s.metric == metric) {
            let value = match &sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                _ => continue,
            };
            let key = sample.labels.get(label).unwrap_or("").to_owned();
            *out.entry(key).or_default() += value;
        }
        out
    }

    /// Buys by (outcome, path).
    fn buys(&self) -> BTreeMap<(String, String), f64> {
        let mut out = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| s.metric == BUYS) {
            if let Value::Counter(v) | Value::Untyped(v) = sample.value {
                let outcome = sample.labels.get("outcome").unwrap_or("").to_owned();
                let path = sample.labels.get("path").unwrap_or("").to_owned();
                *out.entry((outcome, path)).or_default() += v;
            }
        }
        out
    }

    /// A histogram's cumulative buckets (upper bound, count) by the value of `label`.
    fn histograms(&self, metric: &str, label: &str) -> BTreeMap<String, Vec<(f64, f64)>> {
        let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| s.metric == metric) {
            if let Value::Histogram(buckets) = &sample.value {
                let key = sample.labels.get(label).unwrap_or("").to_owned();
                let merged = out.entry(key).or_default();
                for b in buckets {
                    match merged.iter_mut().find(|(le, _)| *le == b.less_than) {
                        Some((_, count)) => *count += b.count,
                        None => merged.push((b.less_than, b.count)),
                    }
                }
                merged.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
        out
    }
}

/// Fetches `base_url/metrics`; `None` when it does not answer 200 with the reference server's
/// metrics within two seconds.
pub async fn scrape(client: &reqwest::Client, base_url: &str) -> Option<Snapshot> {
    let url = format!("{}/metrics", base_url.trim_end_matches('/'));
    let response = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    Snapshot::parse(&response.text().await.ok()?)
}

/// Scrapes every server; `None` unless every one exposes the metrics (a part of a fleet's
/// counts would read as the whole).
pub async fn scrape_all(client: &reqwest::Client, urls: &[String]) -> Option<Vec<Snapshot>> {
    let mut all = Vec::new();
    for url in urls {
        all.push(scrape(client, url).await?);
    }
    Some(all)
}

/// `summary.json`'s `server_metrics`: what the target counted between the two scrapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetricsReport {
    /// The servers scraped (`GET /metrics`).
    pub scraped: Vec<String>,
    /// Buy requests the servers answered during the run: outcome → deciding path → count.
    pub buys: BTreeMap<String, BTreeMap<String, u64>>,
    /// The servers' own buy latency by outcome (from their histograms).
    pub buy_latency: BTreeMap<String, ServerLatency>,
    /// Ledger batches during the run by kind (claim, insert, lookup).
    pub ledger_batches: BTreeMap<String, BatchFigures>,
    /// Each server's Redis breaker state after the run (closed, open, half_open).
    pub breaker_after: Vec<String>,
    /// PostgreSQL connections in use after the run, over the servers' limits.
    pub pool_in_use_after: u64,
    pub pool_max: u64,
}

/// Latency one server measured, from its histogram's buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerLatency {
    pub count: u64,
    /// The bucket bound under which 99 % of the answers fell (ms); `null` beyond the last bound.
    pub p99_at_most_ms: Option<f64>,
}

/// Ledger batches of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFigures {
    pub batches: u64,
    /// Jobs per batch, on average.
    pub mean_size: f64,
    /// Time per batch in PostgreSQL, on average (ms).
    pub mean_ms: f64,
    /// Batches dropped at their deadline.
    pub overruns: u64,
}

impl ServerMetricsReport {
    /// The difference between the scrapes after and before the run, summed over the servers;
    /// `None` when a server's counts went down (it restarted during the run: what it counted
    /// before is gone, so a difference would undercount).
    pub fn between(
        urls: &[String],
        before: &[Snapshot],
        after: &[Snapshot],
    ) -> Option<ServerMetricsReport> {
        let total = |s: &Snapshot| s.buys().values().sum::<f64>();
        let started = |s: &Snapshot| s.by_label(STARTED, "").values().sum::<f64>();
        let restarted =
            |b: &Snapshot, a: &Snapshot| total(a) < total(b) || started(a) != started(b);
        if before.len() != after.len() || before.iter().zip(after).any(|(b, a)| restarted(b, a)) {
            return None;
        }
        let delta = |a: f64, b: f64| (a - b).max(0.0);
        let mut buys: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (i, end) in after.iter().enumerate() {
            let start = before.get(i).map(Snapshot::buys).unwrap_or_default();
            for ((outcome, path), v) in end.buys() {
                let n = delta(
                    v,
                    start
                        .get(&(outcome.clone(), path.clone()))
                        .copied()
                        .unwrap_or(0.0),
                );
                if n > 0.0 {
                    *buys.entry(outcome).or_default().entry(path).or_default() += n as u64;
                }
            }
        }
        let histogram_delta = |metric: &str, label: &str| {
            let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for (i, end) in after.iter().enumerate() {
                let start = before
                    .get(i)
                    .map(|s| s.histograms(metric, label))
                    .unwrap_or_default();
                for (key, buckets) in end.histograms(metric, label) {
                    let merged = out.entry(key.clone()).or_default();
                    for (le, count) in buckets {
                        let was = start
                            .get(&key)
                            .and_then(|b| b.iter().find(|(l, _)| *l == le))
                            .map_or(0.0, |(_, c)| *c);
                        match merged.iter_mut().find(|(l, _)| *l == le) {
                            Some((_, c)) => *c += delta(count, was),
                            None => merged.push((le, delta(count, was))),
                        }
                    }
                    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
                }
            }
            out
        };
        let scalar_delta = |metric: &str, label: &str| {
            let mut out: BTreeMap<String, f64> = BTreeMap::new();
            for (i, end) in after.iter().enumerate() {
                let start = before
                    .get(i)
                    .map(|s| s.by_label(metric, label))
                    .unwrap_or_default();
                for (key, v) in end.by_label(metric, label) {
                    *out.entry(key.clone()).or_default() +=
                        delta(v, start.get(&key).copied().unwrap_or(0.0));
                }
            }
            out
        };
        let buy_latency = histogram_delta(BUY_SECONDS, "outcome")
            .into_iter()
            .filter_map(|(outcome, buckets)| {
                let count = buckets.last().map_or(0.0, |(_, c)| *c);
                (count > 0.0).then(|| {
                    let p99 = buckets
                        .iter()
                        .find(|(le, c)| le.is_finite() && *c >= 0.99 * count)
                        .map(|(le, _)| le * 1e3);
                    (
                        outcome,
                        ServerLatency {
                            count: count as u64,
                            p99_at_most_ms: p99,
                        },
                    )
                })
            })
            .collect();
        let sizes = histogram_delta(BATCH_SIZE, "kind");
        let sums = |metric: &str| scalar_delta(&format!("{metric}_sum"), "kind");
        let (size_sums, time_sums) = (sums(BATCH_SIZE), sums(BATCH_SECONDS));
        let overruns = scalar_delta(BATCH_OVERRUNS, "kind");
        let ledger_batches = sizes
            .into_iter()
            .filter_map(|(kind, buckets)| {
                let batches = buckets.last().map_or(0.0, |(_, c)| *c);
                (batches > 0.0).then(|| {
                    let timed = batches - overruns.get(&kind).copied().unwrap_or(0.0);
                    let figures = BatchFigures {
                        batches: batches as u64,
                        mean_size: size_sums.get(&kind).copied().unwrap_or(0.0) / batches,
                        mean_ms: if timed > 0.0 {
                            time_sums.get(&kind).copied().unwrap_or(0.0) * 1e3 / timed
                        } else {
                            0.0
                        },
                        overruns: overruns.get(&kind).copied().unwrap_or(0.0) as u64,
                    };
                    (kind, figures)
                })
            })
            .collect();
        let breaker_after = after
            .iter()
            .map(|s| {
                s.by_label(BREAKER, "state")
                    .into_iter()
                    .find(|(_, v)| *v >= 1.0)
                    .map_or_else(|| "unknown".to_owned(), |(state, _)| state)
            })
            .collect();
        let pool_in_use_after = after
            .iter()
            .map(|s| {
                s.by_label(POOL, "state")
                    .get("in_use")
                    .copied()
                    .unwrap_or(0.0) as u64
            })
            .sum();
        let pool_max = after
            .iter()
            .map(|s| s.by_label(POOL_MAX, "").values().sum::<f64>() as u64)
            .sum();
        Some(ServerMetricsReport {
            scraped: urls.to_vec(),
            buys,
            buy_latency,
            ledger_batches,
            breaker_after,
            pool_in_use_after,
            pool_max,
        })
    }

    /// One console line: buys by outcome and path, and the claim batches.
    pub fn console_line(&self) -> String {
        let buys: Vec<String> = self
            .buys
            .iter()
            .map(|(outcome, paths)| {
                let total: u64 = paths.values().sum();
                let split: Vec<String> = paths.iter().map(|(p, n)| format!("{p} {n}")).collect();
                format!("{total} {outcome} ({})", split.join(", "))
            })
            .collect();
        let mut line = format!("server metrics: {}", buys.join("; "));
        // The batches that write orders: claims (PostgreSQL path) and inserts (Redis path).
        let batches: Vec<String> = ["claim", "insert"]
            .iter()
            .filter_map(|kind| self.ledger_batches.get(*kind).map(|b| (kind, b)))
            .map(|(kind, b)| {
                format!(
                    "{} {kind} batches of {:.1} in {:.2} ms",
                    b.batches, b.mean_size, b.mean_ms
                )
            })
            .collect();
        if !batches.is_empty() {
            line.push_str(&format!("; ledger: {}", batches.join(", ")));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
flashsale_db_pool_max_connections 32
# TYPE flashsale_buy_requests_total counter
flashsale_buy_requests_total{outcome=\"created\",path=\"redis\"} 3
# TYPE flashsale_ledger_batch_size histogram
flashsale_ledger_batch_size_bucket{kind=\"claim\",le=\"1\"} 1
flashsale_ledger_batch_size_bucket{kind=\"claim\",le=\"2\"} 1
flashsale_ledger_batch_size_bucket{kind=\"claim\",le=\"+Inf\"} 1
flashsale_ledger_batch_size_sum{kind=\"claim\"} 1
flashsale_ledger_batch_size_count{kind=\"claim\"} 1
";

    const AFTER: &str = "\
# TYPE flashsale_buy_requests_total counter
flashsale_buy_requests_total{outcome=\"created\",path=\"redis\"} 10
flashsale_buy_requests_total{outcome=\"sold_out\",path=\"memory\"} 90
# TYPE flashsale_buy_duration_seconds histogram
flashsale_buy_duration_seconds_bucket{outcome=\"sold_out\",le=\"0.001\"} 80
flashsale_buy_duration_seconds_bucket{outcome=\"sold_out\",le=\"0.01\"} 90
flashsale_buy_duration_seconds_bucket{outcome=\"sold_out\",le=\"+Inf\"} 90
flashsale_buy_duration_seconds_sum{outcome=\"sold_out\"} 0.1
flashsale_buy_duration_seconds_count{outcome=\"sold_out\"} 90
# TYPE flashsale_ledger_batch_size histogram
flashsale_ledger_batch_size_bucket{kind=\"claim\",le=\"1\"} 1
flashsale_ledger_batch_size_bucket{kind=\"claim\",le=\"2\"} 3
flashsale_ledger_batch_size_bucket{kind=\"claim\",le=\"+Inf\"} 5
flashsale_ledger_batch_size_sum{kind=\"claim\"} 8
flashsale_ledger_batch_size_count{kind=\"claim\"} 5
# TYPE flashsale_ledger_batch_duration_seconds histogram
flashsale_ledger_batch_duration_seconds_bucket{kind=\"claim\",le=\"+Inf\"} 4
flashsale_ledger_batch_duration_seconds_sum{kind=\"claim\"} 0.008
flashsale_ledger_batch_duration_seconds_count{kind=\"claim\"} 4
# TYPE flashsale_redis_breaker_state gauge
flashsale_redis_breaker_state{state=\"closed\"} 1
flashsale_redis_breaker_state{state=\"open\"} 0
# TYPE flashsale_db_pool_connections gauge
flashsale_db_pool_connections{state=\"idle\"} 5
flashsale_db_pool_connections{state=\"in_use\"} 2
# TYPE flashsale_db_pool_max_connections gauge
flashsale_db_pool_max_connections 32
";

    #[test]
    fn the_report_is_the_difference_between_the_scrapes() {
        let before = Snapshot::parse(BEFORE).unwrap();
        let after = Snapshot::parse(AFTER).unwrap();
        let report = ServerMetricsReport::between(
            &["http://s".into()],
            std::slice::from_ref(&before),
            std::slice::from_ref(&after),
        )
        .unwrap();
        // A server whose counts went down restarted: no report rather than a wrong one.
        assert!(
            ServerMetricsReport::between(
                &["http://s".into()],
                std::slice::from_ref(&after),
                &[before]
            )
            .is_none()
        );
        // So did one whose start time changed, even if it counted more since.
        let with_start = |text: &str, at: &str| {
            Snapshot::parse(&text.replace(
                "flashsale_db_pool_max_connections 32",
                &format!(
                    "flashsale_db_pool_max_connections 32\nflashsale_server_start_time_seconds {at}"
                ),
            ))
            .unwrap()
        };
        let (first, restarted) = (
            with_start(BEFORE, "1800000000"),
            with_start(AFTER, "1800000001"),
        );
        assert!(
            ServerMetricsReport::between(&["http://s".into()], &[first], &[restarted]).is_none()
        );
        assert_eq!(report.buys["created"]["redis"], 7);
        assert_eq!(report.buys["sold_out"]["memory"], 90);
        assert_eq!(report.buy_latency["sold_out"].count, 90);
        assert_eq!(report.buy_latency["sold_out"].p99_at_most_ms, Some(10.0));
        let claims = &report.ledger_batches["claim"];
        assert_eq!(claims.batches, 4, "{claims:?}");
        assert!((claims.mean_size - 7.0 / 4.0).abs() < 1e-9, "{claims:?}");
        assert!((claims.mean_ms - 2.0).abs() < 1e-9, "{claims:?}");
        assert_eq!(report.breaker_after, ["closed"]);
        assert_eq!((report.pool_in_use_after, report.pool_max), (2, 32));
        assert!(
            report.console_line().contains("7 created (redis 7)"),
            "{}",
            report.console_line()
        );
    }

    #[test]
    fn a_target_without_our_metrics_has_none() {
        assert!(Snapshot::parse("# TYPE up gauge\nup 1\n").is_none());
        assert!(Snapshot::parse("").is_none());
    }
}
