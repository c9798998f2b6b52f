//! Sale activation and expiration (the seed's `FlashSaleActivationJob` and
//! `FlashSaleExpirationJob`), run from the durable queue in `job_queue.rs`.
//!
//! Activation runs the preflight (`preflight.rs`); a sale with problems stays scheduled with the
//! problems stored on it. A sale that goes live has its wishlist alerts planned in the same
//! transaction (`notify::plan_fanout`). The job runs `job_queue::ACTIVATION_LEAD` before `starts_at`, so the
//! sale is live on every server when its window opens: the claim path checks the window itself at
//! the instant of each claim (`Sale::live_problem`), so running early sells nothing early.
//! Both jobs are idempotent: activating an active sale or expiring an expired one changes nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::job_queue::{self as queue, JobKind};
use crate::notify;
use crate::preflight::{self, Problem, Stage};

/// What an activation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// Now live; this many alerts were planned.
    Activated {
        alerts_planned: u64,
    },
    AlreadyActive,
    /// Expired sales never come back.
    Expired,
    /// The preflight found problems; the sale stays scheduled.
    Refused(Vec<Problem>),
    NotFound,
}

/// Activates `sale_id` in the caller's transaction. The admin's hand activation skips the
/// preflight (`enforce_preflight = false`: an operator's override); the job never does.
pub async fn activate(
    conn: &mut PgConnection,
    sale_id: Uuid,
    enforce_preflight: bool,
) -> Result<Activation, sqlx::Error> {
    let state: Option<(String,)> =
        sqlx::query_as("SELECT state FROM flash_sales WHERE id = $1 FOR UPDATE")
            .bind(sale_id)
            .fetch_optional(&mut *conn)
            .await?;
    match state.as_ref().map(|(s,)| s.as_str()) {
        None => return Ok(Activation::NotFound),
        Some("active") => return Ok(Activation::AlreadyActive),
        Some("expired") => return Ok(Activation::Expired),
        Some(_) => {}
    }
    if enforce_preflight {
        let problems = preflight::check(conn, sale_id, Stage::Activation)
            .await?
            .unwrap_or_default();
        if !problems.is_empty() {
            sqlx::query("UPDATE flash_sales SET preflight_problems = $2 WHERE id = $1")
                .bind(sale_id)
                .bind(json!(problems))
                .execute(&mut *conn)
                .await?;
            return Ok(Activation::Refused(problems));
        }
    }
    sqlx::query(
        "UPDATE flash_sales
         SET state = 'active', activated_at = clock_timestamp(), preflight_problems = NULL
         WHERE id = $1",
    )
    .bind(sale_id)
    .execute(&mut *conn)
    .await?;
    let alerts_planned = notify::plan_fanout(conn, sale_id).await?;
    Ok(Activation::Activated { alerts_planned })
}

/// Expires `sale_id` (a no-op when it already is).
pub async fn expire(conn: &mut PgConnection, sale_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE flash_sales SET state = 'expired' WHERE id = $1 AND state IN ('scheduled', 'active')",
    )
    .bind(sale_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the runner tells the rest of the server after a job changed a sale.
pub type SaleChanged = Arc<dyn Fn(Uuid) + Send + Sync>;

/// Runs due jobs until `stop` turns true, polling every `poll` when none is due. After each job
/// it calls `changed` (the server drops its cached copy of the sale) and wakes the alert workers.
pub async fn run(
    pool: PgPool,
    poll: Duration,
    changed: SaleChanged,
    alerts: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        match run_one(&pool).await {
            Ok(Some(sale_id)) => {
                changed(sale_id);
                alerts.notify_waiters();
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the lifecycle job queue could not be read"),
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs one due job, if any; returns its sale.
pub async fn run_one(pool: &PgPool) -> Result<Option<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(job) = queue::take_due(&mut tx).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let ran = match job.kind {
        JobKind::Activate => {
            activate(&mut tx, job.sale_id, true)
                .await
                .map(|outcome| match &outcome {
                    Activation::Refused(problems) => tracing::warn!(
                        sale = %job.sale_id, problems = problems.len(),
                        "the sale failed its preflight and was not activated"
                    ),
                    Activation::Activated { alerts_planned } => tracing::info!(
                        sale = %job.sale_id, alerts_planned, "the sale went live on schedule"
                    ),
                    _ => {}
                })
        }
        JobKind::Expire => expire(&mut tx, job.sale_id).await,
    };
    match ran {
        Ok(()) => {
            queue::mark_done(&mut tx, &job).await?;
            tx.commit().await?;
            Ok(Some(job.sale_id))
        }
        Err(e) => {
            drop(tx);
            tracing::warn!(sale = %job.sale_id, kind = job.kind.as_str(), error = %e, "a lifecycle job failed; it will be retried");
            queue::record_failure(pool, &job, &e.to_string()).await?;
            Ok(None)
        }
    }
}
