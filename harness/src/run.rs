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
use crate::faults::{self, CounterKey, FaultEnvironment, TimelineContext, TimelineOutcome};
use crate::ground_truth::{InventoryView, Ledger, LedgerHold, SettledInventory};
use crate::history::{
    Attempt, FaultRecord, HoldAttempt, HoldOp, InventorySample, Outcome, micros_since,
};
use crate::load::buyers::{LoadProbe, LoadRun, LoadTarget, plan_buyers, run_load, warmed_client};
use crate::load::health::GeneratorStats;
use crate::load::journeys::HoldRoutes;
use crate::load::progress::Progress;
use crate::load::request::BuyTemplate;
use crate::profile::{Profile, Template};
use crate::report::{self, RunInfo, RunOutputs, Summary};
use crate::scenario::{FaultKind, RedisMode, Scenario};
use crate::target::driver::{Driver, PreparedSale};
use crate::target::server_metrics::{self, ServerMetricsReport};
use crate::target::service::{ServiceAddresses, StartedService, service_database, through};
use crate::target::{Dependencies, InProcessServer, ServerOverrides, TargetError, postgres_addr};

/// Which server to test.
#[derive(Debug, Clone)]
pub enum TargetChoice {
    /// The reference server, started in-process with this strategy.
    InProcess {
        strategy: InventoryStrategy,
        deps: Dependencies,
        keep_database: bool,
        /// Servers sharing the database and Redis (`--replicas`); buyers are spread across them.
        replicas: usize,
    },
    /// A server already running at this URL, described by a profile.
    Url {
        base_url: String,
        profile: TargetProfile,
    },
    /// A service the harness starts from the profile's `[service]` section (fault runs).
    Service {
        profile: Arc<Profile>,
        keep_database: bool,
    },
}

impl TargetChoice {
    /// The profile every run against this target goes through.
    pub fn profile(&self) -> Option<Arc<Profile>> {
        match self {
            TargetChoice::InProcess { .. } => None,
            TargetChoice::Url { profile, .. } => Some(profile.profile()),
            TargetChoice::Service { profile, .. } => Some(profile.clone()),
        }
    }

    /// Whether the target has cart holds: the reference server has; a service has when its
    /// profile says where the routes are (`[holds]`; the built-in contract profile does).
    pub fn supports_holds(&self) -> bool {
        self.profile().is_none_or(|p| p.holds.is_some())
    }
}

/// How a server at a URL is described.
#[derive(Debug, Clone)]
pub enum TargetProfile {
    /// It implements `server/openapi.json`: the built-in profile, with this admin token.
    Contract { admin_token: String },
    /// A profile file (`--profile`).
    File(Arc<Profile>),
}

impl TargetProfile {
    pub fn profile(&self) -> Arc<Profile> {
        match self {
            TargetProfile::Contract { admin_token } => Arc::new(Profile::openapi(admin_token)),
            TargetProfile::File(profile) => profile.clone(),
        }
    }
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
    /// The journeys' hold operations (empty without `[journeys]`).
    pub hold_ops: Vec<HoldAttempt>,
}

impl RunResult {
    /// Why this run exercised no claim at all, if so: every request was refused for its input
    /// (HTTP 400 or 422: malformed, over a limit, unknown product…). Such a run shows no
    /// violation because nothing was tried; it must not read as a pass.
    pub fn tested_nothing(&self) -> Option<String> {
        let refused_for_input = |a: &Attempt| {
            a.outcome == Outcome::Rejected && matches!(a.status, Some(400) | Some(422))
        };
        if self.history.is_empty() || !self.history.iter().all(refused_for_input) {
            return None;
        }
        let mut codes: std::collections::BTreeMap<&str, u64> = Default::default();
        for attempt in &self.history {
            *codes
                .entry(attempt.code.as_deref().unwrap_or("no code"))
                .or_default() += 1;
        }
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        Some(format!(
            "every one of the {} requests was refused for its input ({}): no claim could \
             succeed, so no invariant was exercised; fix the scenario (or the profile's [buy])",
            self.history.len(),
            codes.join(", ")
        ))
    }
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
/// How often the settled view is polled while its figures still disagree (INV-6): one cheap
/// read, and a converged view ends the wait at once, so polling often costs little and saves
/// most of a short case's wait (G8).
const SETTLE_POLL: Duration = Duration::from_millis(10);

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
    // The outputs' directory is checked before anything starts: a run whose results cannot be
    // written should not cost its load first.
    let out_dir = out_dir
        .unwrap_or_else(|| report::default_out_dir(&results_root, &scenario.name, started_at));
    writable(&out_dir).map_err(|source| RunError::Output {
        dir: out_dir.clone(),
        source,
    })?;
    let started = start_target(&scenario, target).await?;
    let (server, driver, strategy, target_label, env) = (
        started.running,
        started.driver,
        started.strategy,
        started.label,
        started.env,
    );
    let env = Arc::new(env);
    let target_rules = target_rules(&scenario, &driver);
    let outcome = run_against(&scenario, seed, &driver, env.clone()).await;
    match server {
        Some(Running::InProcess(server)) => server.shutdown().await,
        Some(Running::Service(service, keep_database)) => service.shutdown(keep_database).await,
        None => {}
    }
    // The container and proxies go away with the environment.
    drop(env);
    let measured = outcome?;

    let check = checker::check(&CheckInput {
        history: &measured.history,
        ledger: &measured.ledger,
        cap: measured.cap,
        faults: &measured.timeline.applied,
        samples: &measured.samples,
        settled: measured.settled.as_ref(),
        convergence_within: scenario.checks.convergence_within,
        rules: target_rules,
        holds: measured.holds_input(),
    });
    let info = RunInfo {
        scenario: scenario.clone(),
        seed,
        target: target_label,
        strategy,
        started_at,
        clock_origin_at: measured.clock_origin_at,
        wall_time: wall.elapsed(),
        sale_id: measured.sale_id.clone(),
        replicas: match driver.buy_urls() {
            urls if urls.len() > 1 => urls,
            _ => Vec::new(),
        },
        shards: None,
    };
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
            memory: &measured.memory,
            server_metrics: measured.server_metrics.as_ref(),
        },
    )
    .map_err(|source| RunError::Output {
        dir: out_dir.clone(),
        source,
    })?;
    measured
        .write_holds(&out_dir)
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
        hold_ops: measured.hold_ops,
    })
}

/// What the checker may assume of a target: keys only if the profile sends them, and the
/// tighter of the scenario's per-buyer limit and the one the profile says the service enforces.
pub(crate) fn target_rules(scenario: &Scenario, driver: &Driver) -> TargetRules {
    let stated = &driver.profile().rules;
    TargetRules {
        keys_sent: driver.profile().keys_sent(),
        per_buyer_units: match (
            scenario.sale.per_buyer_limit.map(u64::from),
            stated.per_buyer_units,
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        per_buyer_orders: stated.per_buyer_orders,
    }
}

/// The servers of a `--target` that lists several base URLs (`URL,URL,…`): a fleet of replicas
/// of one service. Always at least one.
pub fn fleet_urls(target: &str) -> Vec<String> {
    let urls: Vec<String> = target
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        vec![target.to_owned()]
    } else {
        urls
    }
}

/// A target ready for a run: what was started, how to talk to it, how to name it, and what its
/// faults act on.
pub(crate) struct StartedTarget {
    running: Option<Running>,
    pub(crate) driver: Driver,
    pub(crate) strategy: Option<String>,
    pub(crate) label: String,
    env: FaultEnvironment,
}

impl StartedTarget {
    /// The admin token of the in-process reference server, when the target is one.
    pub(crate) fn admin_token(&self) -> Option<String> {
        match &self.running {
            Some(Running::InProcess(server)) => Some(server.admin_token.clone()),
            _ => None,
        }
    }

    pub(crate) async fn stop(self) {
        match self.running {
            Some(Running::InProcess(server)) => server.shutdown().await,
            Some(Running::Service(service, keep_database)) => service.shutdown(keep_database).await,
            None => {}
        }
    }
}

/// Starts (or reaches) the target of a run with what the scenario's faults need around it.
pub(crate) async fn start_target(
    scenario: &Scenario,
    target: TargetChoice,
) -> Result<StartedTarget, RunError> {
    let needs_infrastructure = !scenario.faults.is_empty()
        || scenario.redis.mode == RedisMode::Container
        || scenario.redis.proxy
        || scenario.postgres.proxy;

    let mut env = FaultEnvironment::default();
    if scenario
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::KillService)
        && !matches!(target, TargetChoice::Service { .. })
    {
        return Err(RunError::Setup(format!(
            "scenario {} kills the service (kill-service), which the harness can only do to a \
             service it starts from a profile's [service] section: run it with --profile FILE and \
             no --target",
            scenario.name
        )));
    }
    if scenario
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::KillReplica)
        && !matches!(target, TargetChoice::InProcess { replicas, .. } if replicas >= 2)
    {
        return Err(RunError::Setup(format!(
            "scenario {} kills a replica (kill-replica), which needs the in-process reference \
             server running as replicas: run it with --replicas 2 (or more) and no --target or \
             --profile",
            scenario.name
        )));
    }
    let (running, driver, strategy, label) = match target {
        TargetChoice::InProcess {
            strategy,
            deps,
            keep_database,
            replicas,
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
            let server = InProcessServer::start_replicas(
                &deps,
                strategy,
                &overrides,
                keep_database,
                replicas,
            )
            .await?;
            let driver = Driver::new(
                Arc::new(Profile::openapi(&server.admin_token)),
                &server.base_url,
                Default::default(),
            )
            .with_buy_urls(server.replica_urls.clone());
            env.replicas = Some(server.replicas());
            let label = match &env.redis_container {
                Some(c) => format!("in-process (Redis container {})", c.image()),
                None => "in-process".to_owned(),
            };
            (
                Some(Running::InProcess(server)),
                driver,
                Some(strategy.name().to_owned()),
                label,
            )
        }
        TargetChoice::Url { base_url, profile } => {
            if needs_infrastructure {
                return Err(RunError::Setup(format!(
                    "scenario {} injects faults into Redis or PostgreSQL, which the harness can only \
                     do to a server it starts: drop --target to run it on the in-process reference \
                     server, or give a --profile with a [service] section (docs/profiles.md) so the \
                     harness starts your service itself",
                    scenario.name
                )));
            }
            let label = match &profile {
                TargetProfile::Contract { .. } => base_url.clone(),
                TargetProfile::File(p) => format!("{base_url} (profile {})", p.source),
            };
            let profile = profile.profile();
            // A service someone else started uses the database and Redis its [service] section
            // names (as given: a fresh database only exists for a service the harness starts).
            let mut context = crate::profile::Values::new();
            if let Some(service) = &profile.service {
                let render = |t: &Template| serde_json::Value::from(t.render(&Default::default()));
                if let Some(url) = &service.database_url {
                    context.insert("database_url", render(url));
                }
                if let Some(url) = &service.redis_url {
                    context.insert("redis_url", render(url));
                }
            }
            // A fleet: buys spread across every URL; the sale, the ledger and the counters go
            // through the first (the servers share one database).
            let urls = fleet_urls(&base_url);
            let driver = Driver::new(profile, &urls[0], context).with_buy_urls(urls);
            (None, driver, None, label)
        }
        TargetChoice::Service {
            profile,
            keep_database,
        } => {
            let (service, driver) = start_service(scenario, &profile, &mut env).await?;
            let label = format!(
                "{} (started from profile {})",
                service.base_url, profile.source
            );
            (
                Some(Running::Service(service, keep_database)),
                driver,
                None,
                label,
            )
        }
    };
    Ok(StartedTarget {
        running,
        driver,
        strategy,
        label,
        env,
    })
}

/// What `flashsale run --dry-run` found: the profile worked against the live target up to the
/// load.
#[derive(Debug)]
pub struct DryRun {
    pub target: String,
    pub sale_id: String,
    pub cap: Option<u64>,
    pub orders: usize,
    pub view: InventoryView,
    pub keys_sent: bool,
    pub has_counters: bool,
}

/// Everything a run does before its load — start or reach the target, create and open the sale,
/// read the ground truth and the counters once — and nothing after: a profile checked without load.
pub async fn dry_run(scenario: &Scenario, target: TargetChoice) -> Result<DryRun, RunError> {
    let started = start_target(scenario, target).await?;
    let result = async {
        let driver = &started.driver;
        let PreparedSale { sale, cap } = driver.create_sale(scenario).await?;
        let ledger = driver.ledger(&sale.id, cap).await?;
        Ok::<_, TargetError>(DryRun {
            target: started.label.clone(),
            sale_id: sale.id,
            cap,
            orders: ledger.orders.len(),
            view: ledger.inventory,
            keys_sent: driver.profile().keys_sent(),
            has_counters: driver.has_counters(),
        })
    }
    .await;
    started.stop().await;
    Ok(result?)
}

/// Creates `dir` if needed and proves a file can be written in it.
pub(crate) fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".flashsale-write-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// A server the run started, to stop at its end.
enum Running {
    InProcess(InProcessServer),
    /// With whether to keep its fresh database.
    Service(Arc<StartedService>, bool),
}

/// Starts the profile's service for a run: the scenario's Redis container and fault proxies in
/// front of the service's Redis and PostgreSQL, a fresh database if the profile asks for one,
/// then the service itself, handed those addresses. Refuses, before starting anything, a fault
/// the profile gives no way to apply.
async fn start_service(
    scenario: &Scenario,
    profile: &Arc<Profile>,
    env: &mut FaultEnvironment,
) -> Result<(Arc<StartedService>, Driver), RunError> {
    let service = profile.service.as_ref().ok_or_else(|| {
        RunError::Setup(format!(
            "profile {} has no [service] section: pass --target with the URL of your running \
             service, or add [service] start = [...] so the harness can start it",
            profile.source
        ))
    })?;
    let needs = |entry: &str, why: &str| {
        RunError::Setup(format!(
            "scenario {} {why}, and profile {} has no [service] {entry}: add it (docs/profiles.md)",
            scenario.name, profile.source
        ))
    };
    let profile_redis = service
        .redis_url
        .as_ref()
        .map(|t| t.render(&Default::default()));
    let wants_redis = scenario.redis.proxy
        || scenario
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::Rollback | FaultKind::FlushScripts));
    if wants_redis && scenario.redis.mode != RedisMode::Container && profile_redis.is_none() {
        return Err(needs("redis_url", "acts on the service's Redis"));
    }
    if scenario
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::Rollback)
        && service.counter_key.is_none()
    {
        return Err(needs(
            "counter_key",
            "sets the service's Redis counter back (rollback)",
        ));
    }
    if scenario.postgres.proxy && service.database_url.is_none() {
        return Err(needs(
            "database_url",
            "cuts the service off from PostgreSQL",
        ));
    }

    let mut addresses = ServiceAddresses::default();
    if scenario.redis.mode == RedisMode::Container {
        let container = RedisContainer::start().await?;
        addresses.redis_url = Some(container.url());
        env.redis_container = Some(container);
    } else {
        addresses.redis_url = profile_redis;
    }
    addresses.redis_url_for_service = addresses.redis_url.clone();
    if scenario.redis.proxy {
        let upstream = match &env.redis_container {
            Some(container) => container.addr(),
            None => redis_addr(addresses.redis_url.as_deref().unwrap_or_default())?,
        };
        let proxy = start_proxy(upstream, service.redis_proxy_port, "Redis").await?;
        addresses.redis_url_for_service = Some(format!("redis://{}/", proxy.local_addr()));
        env.redis_proxy = Some(proxy);
    }
    env.redis_url = addresses.redis_url.clone().unwrap_or_default();
    let run_id = Uuid::new_v4().simple().to_string();
    let mut fixed = crate::profile::Values::new();
    fixed.insert("run_id", serde_json::Value::from(run_id.clone()));
    env.counter = service.counter_key.clone().map(|key: Template| CounterKey {
        key,
        fixed: fixed.clone(),
        counts_remaining: service.counter_counts_remaining,
    });

    let (database_url, fresh) = service_database(service).await?;
    addresses.database_url = database_url.clone();
    addresses.database_url_for_service = database_url.clone();
    if scenario.postgres.proxy
        && let Some(url) = &database_url
    {
        let upstream = postgres_addr(url).ok_or_else(|| {
            RunError::Setup(format!(
                "cannot tell host and port of [service] database_url {} to put the fault proxy in front",
                flashsale_server::redact(url)
            ))
        })?;
        let proxy = start_proxy(upstream, service.postgres_proxy_port, "PostgreSQL").await?;
        addresses.database_url_for_service = Some(through(url, proxy.local_addr()));
        env.pg_proxy = Some(proxy);
    }
    eprintln!(
        "flashsale: starting the service of profile {}",
        profile.source
    );
    let started = Arc::new(StartedService::start(service, &addresses, fresh, &run_id).await?);
    env.service = Some(started.clone());
    let mut context = fixed;
    if let Some(url) = &addresses.database_url {
        context.insert("database_url", serde_json::Value::from(url.clone()));
    }
    if let Some(url) = &addresses.redis_url {
        context.insert("redis_url", serde_json::Value::from(url.clone()));
    }
    let driver = Driver::new(profile.clone(), &started.base_url, context);
    Ok((started, driver))
}

/// A fault proxy on `port` (0: any free port).
async fn start_proxy(
    upstream: std::net::SocketAddr,
    port: u16,
    what: &str,
) -> Result<FaultProxy, RunError> {
    let proxy = if port == 0 {
        FaultProxy::start(upstream).await
    } else {
        FaultProxy::start_on(upstream, std::net::SocketAddr::from(([127, 0, 0, 1], port))).await
    };
    proxy.map_err(|e| RunError::Setup(format!("cannot start the {what} fault proxy: {e}")))
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
    /// The cap the checker holds the sale to (a profile may state it for an existing sale).
    cap: Option<u64>,
    history: Vec<Attempt>,
    ledger: Ledger,
    timeline: TimelineOutcome,
    samples: Vec<InventorySample>,
    settled: Option<SettledInventory>,
    generator: GeneratorStats,
    memory: Vec<crate::memory::MemorySample>,
    clock_origin_at: OffsetDateTime,
    sale_window: SaleWindow,
    /// Whether the scenario has buyer journeys (INV-7 is then in the report).
    journeys: bool,
    /// The journeys' hold operations (`holds.jsonl`).
    hold_ops: Vec<HoldAttempt>,
    /// The holds export; `None` when the target has none or the scenario no journeys.
    holds: Option<Vec<LedgerHold>>,
    /// When the settled view was read (µs on the history's clock).
    final_read_us: Option<u64>,
    /// What the server counted during the run, if it exposes `/metrics`.
    server_metrics: Option<ServerMetricsReport>,
}

impl Measured {
    /// INV-7's input: `None` without journeys.
    fn holds_input(&self) -> Option<checker::HoldsInput<'_>> {
        self.journeys.then(|| checker::HoldsInput {
            ops: &self.hold_ops,
            exported: self.holds.as_deref(),
            clock_origin_at: self.clock_origin_at,
            final_read_us: self.final_read_us,
        })
    }

    /// Writes `holds.jsonl` (every hold operation) and `holds-export.json` (the target's holds)
    /// when the run had journeys.
    fn write_holds(&self, dir: &std::path::Path) -> std::io::Result<()> {
        if !self.journeys {
            return Ok(());
        }
        let mut lines = String::new();
        for op in &self.hold_ops {
            lines.push_str(&serde_json::to_string(op).map_err(std::io::Error::other)?);
            lines.push('\n');
        }
        std::fs::write(dir.join("holds.jsonl"), lines)?;
        if let Some(holds) = &self.holds {
            let json = serde_json::to_string_pretty(&serde_json::json!({ "holds": holds }))
                .map_err(std::io::Error::other)?;
            std::fs::write(dir.join("holds-export.json"), json)?;
        }
        Ok(())
    }
}

async fn run_against(
    scenario: &Scenario,
    seed: u64,
    driver: &Driver,
    env: Arc<FaultEnvironment>,
) -> Result<Measured, TargetError> {
    let PreparedSale { sale, cap } = driver.create_sale(scenario).await?;
    let sale_id = sale.id.clone();
    // The dry run: before any load, prove the ground truth and the counters can be read (the
    // profile's pointers and columns match), so a wrong profile costs no load.
    driver.ledger(&sale_id, cap).await?;
    // The server's own counts, when it exposes them (`target::server_metrics`): before the load
    // and after it settled.
    let metrics_client = reqwest::Client::new();
    let metrics_before = server_metrics::scrape_all(&metrics_client, &driver.buy_urls()).await;
    let run_nonce = Uuid::new_v4().simple().to_string();
    let buyers = plan_buyers(scenario, seed, &run_nonce[..12]);
    let client = warmed_client(scenario, driver.base_url(), buyers.len()).await;
    let origin = Instant::now();
    let clock_origin_at = OffsetDateTime::now_utc();
    let doors_open = origin + scenario.arrival.open_after();
    let probe = Arc::new(LoadProbe::default());
    let progress = Progress::start(scenario, probe.clone(), doors_open);
    let (end_tx, end_rx) = watch::channel(false);

    let memory = tokio::spawn(crate::memory::sample(
        origin,
        env.service.clone(),
        end_rx.clone(),
    ));
    let timeline = tokio::spawn(faults::run_timeline(
        scenario.faults.clone(),
        env,
        TimelineContext {
            origin,
            doors_open,
            cap,
            sale_id: sale_id.clone(),
            probe: probe.clone(),
        },
        end_rx.clone(),
    ));
    let sampler = tokio::spawn(sample_inventory(
        driver.clone(),
        sale_id.clone(),
        cap,
        origin,
        end_rx,
    ));
    let buy = BuyTemplate::new(
        &driver.profile().buy,
        driver.base_url(),
        &sale_id,
        scenario.sale.products.first().map(|p| p.id.clone()),
    )
    .with_replicas(driver.buy_urls());
    let journeys = scenario.journeys.is_some();
    let holds = driver
        .profile()
        .holds
        .as_ref()
        .filter(|_| journeys)
        .map(|holds| {
            Arc::new(HoldRoutes::new(
                holds,
                driver.base_url(),
                &sale_id,
                scenario.sale.products.first().map(|p| p.id.clone()),
            ))
        });
    let LoadRun {
        history,
        generator,
        holds: hold_ops,
    } = run_load(
        client,
        scenario,
        &LoadTarget {
            buy: Arc::new(buy),
            holds,
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
    let memory = memory.await.unwrap_or_default();

    if history.iter().any(|a| a.outcome == Outcome::Unknown) {
        // A request the harness gave up on may still be running on the server; let it land
        // before reading the ledger, so the end state is the end state.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // With journeys, the end state is the state once every hold answered has expired (INV-7:
    // their units must come back): wait for the latest expiry, then give the server the
    // convergence deadline from there to reap them.
    let mut settle_from = last_answer;
    if journeys {
        let latest = hold_ops
            .iter()
            .filter(|op| op.kind == HoldOp::Reserve)
            .filter_map(|op| op.expires_at.as_deref())
            .filter_map(|at| {
                OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            })
            .max();
        if let Some(latest) = latest {
            let wait = latest - OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
            if wait.is_positive() {
                if wait > time::Duration::seconds(5) {
                    eprintln!(
                        "flashsale: waiting {} for the last cart hold to expire (INV-7 judges \
                         what the holds gave back)",
                        humantime::format_duration(wait.unsigned_abs())
                    );
                }
                tokio::time::sleep(wait.unsigned_abs()).await;
                settle_from = Instant::now();
            }
        }
    }
    let settled = settle(
        driver,
        &sale_id,
        cap,
        settle_from,
        scenario.checks.convergence_within,
        journeys,
    )
    .await;
    let final_read_us = settled
        .is_some()
        .then(|| micros_since(origin, Instant::now()));
    let ledger = driver.ledger(&sale_id, cap).await?;
    let holds = if journeys {
        driver.holds(&sale_id).await?
    } else {
        None
    };
    let server_metrics = match metrics_before {
        Some(before) => server_metrics::scrape_all(&metrics_client, &driver.buy_urls())
            .await
            .and_then(|after| ServerMetricsReport::between(&driver.buy_urls(), &before, &after)),
        None => None,
    };
    let on_clock = |at: OffsetDateTime| (at - clock_origin_at).whole_microseconds() as i64;
    Ok(Measured {
        sale_window: SaleWindow {
            opens_at_us: on_clock(sale.starts_at),
            closes_at_us: on_clock(sale.ends_at),
        },
        sale_id,
        cap,
        history,
        ledger,
        timeline,
        samples,
        settled,
        generator,
        memory,
        clock_origin_at,
        journeys,
        hold_ops,
        holds,
        final_read_us,
        server_metrics,
    })
}

/// Reads the inventory view every [`SAMPLE_EVERY`] until the run ends. A failed reading (the
/// server's database down, say) is recorded as such, not dropped.
pub(crate) async fn sample_inventory(
    driver: Driver,
    sale_id: String,
    cap: Option<u64>,
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
        let reading = driver.view(&sale_id, cap).await;
        let at_us = origin.elapsed().as_micros() as u64;
        samples.push(match reading {
            Ok(view) => InventorySample {
                at_us,
                units_in_orders: Some(view.units_in_orders),
                units_in_live_holds: view.units_in_live_holds,
                quantity_sold: view.quantity_sold,
                redis_counter: view.redis_counter,
                error: None,
            },
            Err(err) => InventorySample {
                at_us,
                units_in_orders: None,
                units_in_live_holds: None,
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
pub(crate) async fn settle(
    driver: &Driver,
    sale_id: &str,
    cap: Option<u64>,
    last_answer: Instant,
    deadline: Duration,
    holds_expired: bool,
) -> Option<SettledInventory> {
    let mut last = None;
    loop {
        if let Ok(view) = driver.view(sale_id, cap).await {
            let waited_ms = last_answer.elapsed().as_millis() as u64;
            let converged = converged(&view, holds_expired);
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

/// Whether every figure the view reports agrees with its units in orders (the counter with
/// units in orders and live holds); once every hold has expired, no unit is left in a hold.
fn converged(view: &InventoryView, holds_expired: bool) -> bool {
    let units = view.units_in_orders;
    let held = view.units_in_live_holds.unwrap_or(0);
    view.quantity_sold.is_none_or(|q| q == units)
        && view.redis_counter.is_none_or(|c| c == units + held)
        && !(holds_expired && held > 0)
}
