//! One run of a scenario, end to end: start or reach the target, create the sale, fire the
//! buyers, read back the ledger, check the invariants, write the outputs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flashsale_mutants::InventoryStrategy;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::checker::{self, CheckInput, CheckReport, TargetRules};
use crate::faults::proxy::FaultProxy;
use crate::faults::redis_container::{ContainerError, RedisContainer};
use crate::faults::{self, FaultEnvironment, TimelineContext, TimelineOutcome};
use crate::ground_truth::{InventoryView, Ledger, SettledInventory};
use crate::history::{Attempt, FaultRecord, InventorySample, Outcome};
use crate::load::buyers::{LoadProbe, LoadRun, LoadTarget, plan_buyers, run_load, warmed_client};
use crate::load::health::GeneratorStats;
use crate::load::progress::Progress;
use crate::report::{self, RunInfo, RunOutputs, Summary};
use crate::scenario::{RedisMode, Scenario};
use crate::target::{
    AdminClient, Dependencies, InProcessServer, ServerOverrides, TargetError, postgres_addr,
};

/// Which server to test.
#[derive(Debug, Clone)]
pub enum TargetChoice {
    /// The reference server, started in-process with this strategy.
    InProcess {
        strategy: InventoryStrategy,
        deps: Dependencies,
        keep_database: bool,
    },
    /// A server already running at this URL.
    Url {
        base_url: String,
        admin_token: String,
    },
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: Scenario,
    pub target: TargetChoice,
    /// Overrides the scenario's seed; when neither is given one is drawn and recorded.
    pub seed: Option<u64>,
    /// Output directory; default `results/<scenario>/<UTC timestamp>/`.
    pub out_dir: Option<PathBuf>,
    pub results_root: PathBuf,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunResult {
    pub summary: Summary,
    pub check: CheckReport,
    pub history: Vec<Attempt>,
    pub ledger: Ledger,
    pub faults: Vec<FaultRecord>,
    /// Faults the scenario planned that never took effect, with the reason.
    pub faults_not_applied: Vec<String>,
    pub samples: Vec<InventorySample>,
    pub settled: Option<SettledInventory>,
    /// When the sale was open, on the history's clock.
    pub sale_window: SaleWindow,
    pub out_dir: PathBuf,
}

/// The sale's window in microseconds from the run's clock origin, like every time of a history
/// (negative: before the origin; the usual sale opens a second before it is created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleWindow {
    pub opens_at_us: i64,
    pub closes_at_us: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{0}")]
    Setup(String),
    #[error("cannot write the run outputs to {dir}: {source}")]
    Output {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How often the inventory view is sampled during a run, for INV-1 "at every moment".
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often the settled view is polled while its figures still disagree (INV-6).
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// Runs one scenario. Per-request failures are recorded in the history; only set-up problems
/// (target unreachable, Docker missing, sale refused, outputs unwritable) are errors.
pub async fn run(options: RunOptions) -> Result<RunResult, RunError> {
    let RunOptions {
        scenario,
        target,
        seed,
        out_dir,
        results_root,
    } = options;
    let seed = seed
        .or(scenario.seed)
        .unwrap_or_else(|| rand::random::<u64>() >> 11);
    let started_at = OffsetDateTime::now_utc();
    let wall = std::time::Instant::now();
    let needs_infrastructure = !scenario.faults.is_empty()
        || scenario.redis.mode == RedisMode::Container
        || scenario.redis.proxy
        || scenario.postgres.proxy;

    let mut env = FaultEnvironment::default();
    let (server, base_url, admin_token, strategy, target_label) = match target {
        TargetChoice::InProcess {
            strategy,
            deps,
            keep_database,
        } => {
            let mut overrides = ServerOverrides {
                redis_timeout: scenario.redis.timeout,
                ..ServerOverrides::default()
            };
            env.redis_url = deps.redis_url.clone();
            if scenario.redis.mode == RedisMode::Container {
                let container = RedisContainer::start().await?;
                env.redis_url = container.url();
                overrides.redis_url = Some(container.url());
                env.redis_container = Some(container);
            }
            if scenario.redis.proxy {
                let upstream = match &env.redis_container {
                    Some(container) => container.addr(),
                    None => redis_addr(&deps.redis_url)?,
                };
                let proxy = FaultProxy::start(upstream).await.map_err(|e| {
                    RunError::Setup(format!("cannot start the Redis fault proxy: {e}"))
                })?;
                overrides.redis_url = Some(format!("redis://{}/", proxy.local_addr()));
                env.redis_proxy = Some(proxy);
            }
            if scenario.postgres.proxy {
                let upstream = postgres_addr(&deps.database_url).ok_or_else(|| {
                    RunError::Setup(format!(
                        "cannot tell host and port of DATABASE_URL {} to put the fault proxy in front",
                        flashsale_server::redact(&deps.database_url)
                    ))
                })?;
                let proxy = FaultProxy::start(upstream).await.map_err(|e| {
                    RunError::Setup(format!("cannot start the PostgreSQL fault proxy: {e}"))
                })?;
                overrides.postgres_via = Some(proxy.local_addr());
                env.pg_proxy = Some(proxy);
            }
            let server = InProcessServer::start(&deps, strategy, &overrides, keep_database).await?;
            let base_url = server.base_url.clone();
            let token = server.admin_token.clone();
            let label = match &env.redis_container {
                Some(c) => format!("in-process (Redis container {})", c.image()),
                None => "in-process".to_owned(),
            };
            (
                Some(server),
                base_url,
                token,
                Some(strategy.name().to_owned()),
                label,
            )
        }
        TargetChoice::Url {
            base_url,
            admin_token,
        } => {
            if needs_infrastructure {
                return Err(RunError::Setup(format!(
                    "scenario {} injects faults into Redis or PostgreSQL, which the harness can only \
                     do to the in-process reference server it starts; drop --target to run it",
                    scenario.name
                )));
            }
            let label = base_url.clone();
            (None, base_url, admin_token, None, label)
        }
    };
    let env = Arc::new(env);
    let outcome = run_against(&scenario, seed, &base_url, &admin_token, env.clone()).await;
    if let Some(server) = server {
        server.shutdown().await;
    }
    // The container and proxies go away with the environment.
    drop(env);
    let measured = outcome?;

    let check = checker::check(&CheckInput {
        history: &measured.history,
        ledger: &measured.ledger,
        cap: scenario.sale.cap.as_option(),
        faults: &measured.timeline.applied,
        samples: &measured.samples,
        settled: measured.settled.as_ref(),
        convergence_within: scenario.checks.convergence_within,
        rules: TargetRules {
            per_buyer_units: scenario.sale.per_buyer_limit.map(u64::from),
            ..Default::default()
        },
    });
    let info = RunInfo {
        scenario: scenario.clone(),
        seed,
        target: target_label,
        strategy,
        started_at,
        clock_origin_at: measured.clock_origin_at,
        wall_time: wall.elapsed(),
        sale_id: measured.sale_id,
    };
    let out_dir = out_dir
        .unwrap_or_else(|| report::default_out_dir(&results_root, &scenario.name, started_at));
    let summary = report::write_all(
        &out_dir,
        &RunOutputs {
            info: &info,
            history: &measured.history,
            ledger: &measured.ledger,
            check: &check,
            faults: &measured.timeline.applied,
            samples: &measured.samples,
            settled: measured.settled.as_ref(),
            generator: &measured.generator,
        },
    )
    .map_err(|source| RunError::Output {
        dir: out_dir.clone(),
        source,
    })?;
    Ok(RunResult {
        summary,
        check,
        history: measured.history,
        ledger: measured.ledger,
        faults: measured.timeline.applied,
        faults_not_applied: measured.timeline.not_applied,
        samples: measured.samples,
        settled: measured.settled,
        sale_window: measured.sale_window,
        out_dir,
    })
}

fn redis_addr(url: &str) -> Result<std::net::SocketAddr, RunError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| RunError::Setup(format!("REDIS_URL {url} is not a URL: {e}")))?;
    let host = match parsed.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(host) => host,
    };
    format!("{host}:{}", parsed.port().unwrap_or(6379))
        .parse()
        .map_err(|e| RunError::Setup(format!("REDIS_URL {url}: {e}")))
}

/// What the load phase measured.
struct Measured {
    sale_id: String,
    history: Vec<Attempt>,
    ledger: Ledger,
    timeline: TimelineOutcome,
    samples: Vec<InventorySample>,
    settled: Option<SettledInventory>,
    generator: GeneratorStats,
    clock_origin_at: OffsetDateTime,
    sale_window: SaleWindow,
}

async fn run_against(
    scenario: &Scenario,
    seed: u64,
    base_url: &str,
    admin_token: &str,
    env: Arc<FaultEnvironment>,
) -> Result<Measured, TargetError> {
    let admin = AdminClient::new(base_url, admin_token);
    let sale = admin.create_scenario_sale(scenario).await?;
    let sale_id = sale.id;
    let run_nonce = Uuid::new_v4().simple().to_string();
    let buyers = plan_buyers(scenario, seed, &run_nonce[..12]);
    let client = warmed_client(scenario, base_url, buyers.len()).await;
    let origin = Instant::now();
    let clock_origin_at = OffsetDateTime::now_utc();
    let doors_open = origin + scenario.arrival.open_after();
    let probe = Arc::new(LoadProbe::default());
    let progress = Progress::start(scenario, probe.clone(), doors_open);
    let (end_tx, end_rx) = watch::channel(false);

    let timeline = tokio::spawn(faults::run_timeline(
        scenario.faults.clone(),
        env,
        TimelineContext {
            origin,
            doors_open,
            cap: scenario.sale.cap.as_option(),
            sale_id: sale_id.clone(),
            probe: probe.clone(),
        },
        end_rx.clone(),
    ));
    let sampler = tokio::spawn(sample_inventory(
        admin.clone(),
        sale_id.clone(),
        origin,
        end_rx,
    ));
    let LoadRun { history, generator } = run_load(
        client,
        scenario,
        &LoadTarget {
            base_url: base_url.to_owned(),
            sale_id: sale_id.clone(),
        },
        buyers,
        origin,
        doors_open,
        probe,
    )
    .await;
    let last_answer = Instant::now();
    progress.finish().await;
    let _ = end_tx.send(true);
    let timeline = timeline.await.unwrap_or_default();
    let samples = sampler.await.unwrap_or_default();

    if history.iter().any(|a| a.outcome == Outcome::Unknown) {
        // A request the harness gave up on may still be running on the server; let it land
        // before reading the ledger, so the end state is the end state.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = settle(
        &admin,
        &sale_id,
        last_answer,
        scenario.checks.convergence_within,
    )
    .await;
    let ledger = admin.ledger(&sale_id).await?;
    let on_clock = |at: OffsetDateTime| (at - clock_origin_at).whole_microseconds() as i64;
    Ok(Measured {
        sale_window: SaleWindow {
            opens_at_us: on_clock(sale.starts_at),
            closes_at_us: on_clock(sale.ends_at),
        },
        sale_id,
        history,
        ledger,
        timeline,
        samples,
        settled,
        generator,
        clock_origin_at,
    })
}

/// Reads the inventory view every [`SAMPLE_EVERY`] until the run ends. A failed reading (the
/// server's database down, say) is recorded as such, not dropped.
async fn sample_inventory(
    admin: AdminClient,
    sale_id: String,
    origin: Instant,
    mut end: watch::Receiver<bool>,
) -> Vec<InventorySample> {
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = end.changed() => return samples,
        }
        let reading = admin.inventory(&sale_id).await;
        let at_us = origin.elapsed().as_micros() as u64;
        samples.push(match reading {
            Ok(view) => InventorySample {
                at_us,
                units_in_orders: Some(view.units_in_orders),
                quantity_sold: view.quantity_sold,
                redis_counter: view.redis_counter,
                error: None,
            },
            Err(err) => InventorySample {
                at_us,
                units_in_orders: None,
                quantity_sold: None,
                redis_counter: None,
                error: Some(err.to_string()),
            },
        });
    }
}

/// Polls the inventory view until `quantity_sold`, the units in orders and the counter (those the
/// view reports) agree, or `deadline` has passed since `last_answer`; returns the last view read,
/// for INV-6. A view that agrees at the first reading ends the wait at once, so a converged run
/// costs one request here.
async fn settle(
    admin: &AdminClient,
    sale_id: &str,
    last_answer: Instant,
    deadline: Duration,
) -> Option<SettledInventory> {
    let mut last = None;
    loop {
        if let Ok(view) = admin.inventory(sale_id).await {
            let waited_ms = last_answer.elapsed().as_millis() as u64;
            let converged = converged(&view);
            last = Some(SettledInventory { view, waited_ms });
            if converged {
                break;
            }
        }
        let waited = last_answer.elapsed();
        if waited >= deadline {
            break;
        }
        tokio::time::sleep(SETTLE_POLL.min(deadline - waited)).await;
    }
    last
}

/// Whether every figure the view reports agrees with its units in orders.
fn converged(view: &InventoryView) -> bool {
    let units = view.units_in_orders;
    view.quantity_sold.is_none_or(|q| q == units) && view.redis_counter.is_none_or(|c| c == units)
}
