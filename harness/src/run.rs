//! One run of a scenario, end to end: start or reach the target, create the sale, fire the
//! buyers, read back the ledger, check the invariants, write the outputs.

use std::path::PathBuf;
use std::time::Duration;

use flashsale_server::InventoryStrategy;
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use crate::checker::{self, CheckInput, CheckReport};
use crate::history::{Attempt, Outcome};
use crate::ledger::Ledger;
use crate::load::{self, LoadTarget};
use crate::report::{self, RunInfo, RunOutputs, Summary};
use crate::scenario::Scenario;
use crate::target::{AdminClient, Dependencies, InProcessServer, TargetError};

/// Exit statuses of `flashsale run`.
pub mod exit {
    /// Every invariant held.
    pub const HELD: i32 = 0;
    /// An invariant was violated.
    pub const VIOLATED: i32 = 1;
    /// Bad input or a set-up problem; nothing was checked.
    pub const SETUP: i32 = 2;
}

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
    pub out_dir: PathBuf,
}

impl RunResult {
    pub fn exit_status(&self) -> i32 {
        if self.check.all_held() {
            exit::HELD
        } else {
            exit::VIOLATED
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot write the run outputs to {dir}: {source}")]
    Output {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs one scenario. Per-request failures are recorded in the history; only set-up problems
/// (target unreachable, sale refused, outputs unwritable) are errors.
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

    let (server, base_url, admin_token, strategy, target_label) = match target {
        TargetChoice::InProcess {
            strategy,
            deps,
            keep_database,
        } => {
            let server = InProcessServer::start(&deps, strategy, None, keep_database).await?;
            let base_url = server.base_url.clone();
            let token = server.admin_token.clone();
            (
                Some(server),
                base_url,
                token,
                Some(strategy.name().to_owned()),
                "in-process".to_owned(),
            )
        }
        TargetChoice::Url {
            base_url,
            admin_token,
        } => {
            let label = base_url.clone();
            (None, base_url, admin_token, None, label)
        }
    };
    let outcome = run_against(&scenario, seed, &base_url, &admin_token).await;
    if let Some(server) = server {
        server.shutdown().await;
    }
    let (sale_id, history, ledger) = outcome?;

    let check = checker::check(&CheckInput {
        history: &history,
        ledger: &ledger,
        cap: scenario.sale.cap.as_option(),
    });
    let info = RunInfo {
        scenario: scenario.clone(),
        seed,
        target: target_label,
        strategy,
        started_at,
        wall_time: wall.elapsed(),
        sale_id,
    };
    let out_dir = out_dir
        .unwrap_or_else(|| report::default_out_dir(&results_root, &scenario.name, started_at));
    let summary = report::write_all(
        &out_dir,
        &RunOutputs {
            info: &info,
            history: &history,
            ledger: &ledger,
            check: &check,
        },
    )
    .map_err(|source| RunError::Output {
        dir: out_dir.clone(),
        source,
    })?;
    Ok(RunResult {
        summary,
        check,
        history,
        ledger,
        out_dir,
    })
}

async fn run_against(
    scenario: &Scenario,
    seed: u64,
    base_url: &str,
    admin_token: &str,
) -> Result<(String, Vec<Attempt>, Ledger), TargetError> {
    let admin = AdminClient::new(base_url, admin_token);
    let sale_id = admin.create_live_sale(scenario).await?;
    let run_nonce = Uuid::new_v4().simple().to_string();
    let buyers = load::plan_buyers(scenario, seed, &run_nonce[..12]);
    let origin = Instant::now();
    let history = load::run_load(
        scenario,
        &LoadTarget {
            base_url: base_url.to_owned(),
            sale_id: sale_id.clone(),
        },
        buyers,
        origin,
    )
    .await;
    if history.iter().any(|a| a.outcome == Outcome::Unknown) {
        // A request the harness gave up on may still be running on the server; let it land
        // before reading the ledger, so the end state is the end state.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ledger = admin.ledger(&sale_id).await?;
    Ok((sale_id, history, ledger))
}
