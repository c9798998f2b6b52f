//! A durable job queue in PostgreSQL, and when a sale's lifecycle jobs are due. (A module of its
//! own, apart from the jobs that run from it in `jobs/`, because creating a sale enqueues them.)
//!
//! The queue:  (`lifecycle_jobs`, migration 0007): a job is a row due at
//! `run_at`; a worker takes the oldest due one with `FOR UPDATE SKIP LOCKED` and runs it inside
//! the transaction that marks it done. A worker that dies mid-job loses its connection, the
//! transaction rolls back, and the row is due again for the next worker — so jobs survive
//! restarts, several servers can poll one queue, and a job's effect commits exactly once.
//!
//! Why not a job-queue crate: apalis with its PostgreSQL storage (the crate the issue names) takes
//! a job by marking it locked by a worker, runs the handler outside any transaction of ours, and
//! acknowledges it in a separate statement afterwards; a worker that dies in between leaves an
//! orphan that is re-enqueued after its heartbeat lapses. That is at-least-once delivery of the
//! *job*, with a handler's database effect and "done" able to part, and a restarted server
//! waiting out a heartbeat before an activation due now is retried. Activation needs its effect
//! (the sale live, its alerts planned) and "done" to commit as one, and to be retried at once
//! after a crash. (apalis' PostgreSQL storage was also mid-rewrite, 0.7 to the 1.0 candidates
//! with a new crate, when this was written.) The queue here is one table, one index and a few
//! statements.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a job does; stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Activate,
    Expire,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Activate => "activate",
            JobKind::Expire => "expire",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "activate" => Some(JobKind::Activate),
            "expire" => Some(JobKind::Expire),
            _ => None,
        }
    }
}

/// A job taken from the queue, with the transaction that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub sale_id: Uuid,
    /// Earlier failed attempts.
    pub attempts: i32,
}

/// Enqueues `kind` for `sale_id` at `run_at`, in the caller's transaction. A second enqueue of
/// the same (kind, sale) is the same job.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: JobKind,
    sale_id: Uuid,
    run_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lifecycle_jobs (kind, sale_id, run_at) VALUES ($1, $2, $3)
         ON CONFLICT (kind, sale_id) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(sale_id)
    .bind(run_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// How long before `starts_at` the activation job runs: longer than the poll interval and the
/// sale cache's lifetime on any server, so every server knows the sale is live when it opens
/// (the claim path checks the window itself, so running early sells nothing early).
pub const ACTIVATION_LEAD: Duration = Duration::from_secs(1);

/// Enqueues a new sale's jobs in its creation transaction: expiration at `ends_at` always,
/// activation [`ACTIVATION_LEAD`] before `starts_at` when the sale asked for it.
pub async fn schedule_sale(
    conn: &mut PgConnection,
    sale_id: Uuid,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    activate_on_schedule: bool,
) -> Result<(), sqlx::Error> {
    if activate_on_schedule {
        let run_at = starts_at
            .checked_sub(time::Duration::try_from(ACTIVATION_LEAD).unwrap_or_default())
            .unwrap_or(starts_at);
        enqueue(&mut *conn, JobKind::Activate, sale_id, run_at).await?;
    }
    enqueue(conn, JobKind::Expire, sale_id, ends_at).await
}

/// Takes the oldest due job, locked for this transaction (`None` when nothing is due or every due
/// job is taken by another worker).
pub async fn take_due(conn: &mut PgConnection) -> Result<Option<Job>, sqlx::Error> {
    let row: Option<(i64, String, Uuid, i32)> = sqlx::query_as(
        "SELECT id, kind, sale_id, attempts FROM lifecycle_jobs
         WHERE done_at IS NULL AND run_at <= clock_timestamp()
         ORDER BY run_at LIMIT 1
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.and_then(|(id, kind, sale_id, attempts)| {
        JobKind::parse(&kind).map(|kind| Job {
            id,
            kind,
            sale_id,
            attempts,
        })
    }))
}

/// Marks `job` done, in the transaction that ran it.
pub async fn mark_done(conn: &mut PgConnection, job: &Job) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE lifecycle_jobs SET done_at = clock_timestamp() WHERE id = $1")
        .bind(job.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a failed attempt (after the job's transaction rolled back) and makes the job due
/// again after a back-off that doubles per attempt, from 100 ms up to a minute.
pub async fn record_failure(pool: &PgPool, job: &Job, error: &str) -> Result<(), sqlx::Error> {
    let delay = retry_delay(job.attempts);
    sqlx::query(
        "UPDATE lifecycle_jobs
         SET attempts = attempts + 1, last_error = $2,
             run_at = clock_timestamp() + make_interval(secs => $3)
         WHERE id = $1",
    )
    .bind(job.id)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// The wait before attempt `attempts + 1`.
pub fn retry_delay(attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 10) as u32;
    Duration::from_millis(100 * 2u64.pow(exponent)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_and_stops_at_a_minute() {
        assert_eq!(retry_delay(0), Duration::from_millis(100));
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(9), Duration::from_millis(51_200));
        assert_eq!(retry_delay(10), Duration::from_secs(60));
        assert_eq!(retry_delay(i32::MAX), Duration::from_secs(60));
        assert_eq!(retry_delay(-3), Duration::from_millis(100));
    }
}
