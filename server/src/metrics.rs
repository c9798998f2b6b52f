//! Prometheus metrics of one server (`GET /metrics`, text exposition format): buys by outcome
//! and deciding path, buy latency, ledger batch sizes and times, the Redis breaker, the
//! PostgreSQL pool.
//!
//! Each server owns its registry (no process-global recorder): the harness runs several
//! servers in one process (`--replicas`, the tests), and each must count only its own requests.
//! Counters and histograms are updated where the work happens; the breaker and pool gauges are
//! read when scraped, so they are never stale.

use std::time::Duration;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buy latency buckets (s): a sold-out answer from memory is tens of µs, a claim on the
/// PostgreSQL path under load is tens of ms, and a request that waited for the pool is seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Ledger batch sizes: 1 to the ledger's maximum batch (512).
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// One server's metrics.
pub struct ServerMetrics {
    registry: Registry,
    buys: IntCounterVec,
    buy_seconds: HistogramVec,
    /// The series of the commonest answer of a flash sale, resolved once: a sold-out answer
    /// from memory costs microseconds, and a label lookup per request would be a share of it.
    sold_out_from_memory: prometheus::IntCounter,
    sold_out_seconds: prometheus::Histogram,
    batch_size: HistogramVec,
    batch_seconds: HistogramVec,
    batch_overruns: IntCounterVec,
    breaker: IntGaugeVec,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    /// When this registry began counting: a scraper that sees it change knows the counters
    /// restarted (the process, or an in-process replica, started again).
    _started: prometheus::Gauge,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // The names and label sets are constants: registering them cannot fail.
        fn registered<M: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            metric: prometheus::Result<M>,
        ) -> M {
            let metric = metric.expect("a constant metric definition is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("each metric is registered once");
            metric
        }
        let buys = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "flashsale_buy_requests_total",
                    "Buy requests answered, by outcome (created, replayed, or the error code) and \
                     by the path that decided the order (redis, postgres-fallback, \
                     postgres-recheck, …; claim for a refusal a claim decided; memory for a \
                     sold-out answer from a sale known to be sold out; none when no claim was \
                     made)",
                ),
                &["outcome", "path"],
            ),
        );
        let buy_seconds = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "flashsale_buy_duration_seconds",
                    "Time from the buy request's routing to its answer, by outcome",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["outcome"],
            ),
        );
        let batch_size = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "flashsale_ledger_batch_size",
                    "Jobs per ledger batch (claim, insert, lookup): one transaction each",
                )
                .buckets(BATCH_SIZE_BUCKETS.to_vec()),
                &["kind"],
            ),
        );
        let batch_seconds = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "flashsale_ledger_batch_duration_seconds",
                    "Time one ledger batch took in PostgreSQL, by kind",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["kind"],
            ),
        );
        let batch_overruns = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "flashsale_ledger_batch_overruns_total",
                    "Ledger batches dropped at their deadline (their buyers got 503)",
                ),
                &["kind"],
            ),
        );
        let breaker = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "flashsale_redis_breaker_state",
                    "The Redis circuit breaker: 1 for its current state (closed: claims go to \
                     Redis; open: claims go to PostgreSQL; half_open: one probe is let through)",
                ),
                &["state"],
            ),
        );
        let pool = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "flashsale_db_pool_connections",
                    "PostgreSQL connections of the server's pool, by state (idle, in_use)",
                ),
                &["state"],
            ),
        );
        let pool_max = registered(
            &registry,
            IntGauge::new(
                "flashsale_db_pool_max_connections",
                "The pool's limit (db_pool_size)",
            ),
        );
        let started = registered(
            &registry,
            prometheus::Gauge::new(
                "flashsale_server_start_time_seconds",
                "When this server's counters started (Unix time, s): a change between two \
                 scrapes means they restarted from zero",
            ),
        );
        started.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        let sold_out_from_memory = buys.with_label_values(&["sold_out", "memory"]);
        let sold_out_seconds = buy_seconds.with_label_values(&["sold_out"]);
        Self {
            registry,
            sold_out_from_memory,
            sold_out_seconds,
            buys,
            buy_seconds,
            batch_size,
            batch_seconds,
            batch_overruns,
            breaker,
            pool,
            pool_max,
            _started: started,
        }
    }

    /// One answered buy request.
    pub fn buy_answered(&self, outcome: &str, path: &str, took: Duration) {
        self.buys.with_label_values(&[outcome, path]).inc();
        self.buy_seconds
            .with_label_values(&[outcome])
            .observe(took.as_secs_f64());
    }

    /// One sold-out answer from memory (`buy_answered("sold_out", "memory", took)`, without
    /// the label lookups).
    pub fn sold_out_from_memory(&self, took: Duration) {
        self.sold_out_from_memory.inc();
        self.sold_out_seconds.observe(took.as_secs_f64());
    }

    /// One ledger batch: `None` for `took` when it overran its deadline.
    pub fn batch_ran(&self, kind: &str, size: usize, took: Option<Duration>) {
        self.batch_size
            .with_label_values(&[kind])
            .observe(size as f64);
        match took {
            Some(took) => self
                .batch_seconds
                .with_label_values(&[kind])
                .observe(took.as_secs_f64()),
            None => self.batch_overruns.with_label_values(&[kind]).inc(),
        }
    }

    /// The breaker states, as `render` takes them.
    pub const BREAKER_STATES: [&'static str; 3] = ["closed", "open", "half_open"];

    /// The exposition text, with the gauges read now. `breaker` is one of
    /// [`Self::BREAKER_STATES`] (taken as a name, so this module depends on no other).
    pub fn render(&self, breaker: &str, pool: &sqlx::PgPool, pool_max: u32) -> String {
        for name in Self::BREAKER_STATES {
            self.breaker
                .with_label_values(&[name])
                .set(i64::from(breaker == name));
        }
        let idle = pool.num_idle() as i64;
        self.pool.with_label_values(&["idle"]).set(idle);
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(pool.size()) - idle);
        self.pool_max.set(i64::from(pool_max));
        let mut text = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        text
    }
}
