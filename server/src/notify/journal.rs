//! The server's delivery journal: deliveries are taken by marking them `sending` (committed before
//! the first byte goes out) and each outcome is recorded as soon as it is known. A worker that
//! dies leaves at most the deliveries it was sending as `sending`; once their claim lapses they
//! become `in_doubt` and are never resent (migration 0007, rule 2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Attempted, Channel, Delivery, DeliveryJournal, DueRow, Outcome};

#[derive(Debug, Clone)]
pub struct PgJournal {
    pool: PgPool,
    /// Marks this process's claims, so a late record of another (lapsed) worker's claim is not
    /// mistaken for ours.
    worker: Uuid,
    claim_lapse: Duration,
    max_attempts: i32,
    /// When each channel's lapsed claims were last looked for: at most once a second, not on
    /// every take (a claim lapses after tens of seconds; a take happens per batch).
    lapses_checked: Arc<Mutex<HashMap<Channel, Instant>>>,
}

/// How often lapsed claims are looked for, per channel.
const LAPSE_CHECK_EVERY: Duration = Duration::from_secs(1);

impl PgJournal {
    pub fn new(pool: PgPool, claim_lapse: Duration, max_attempts: i32) -> Self {
        Self {
            pool,
            worker: Uuid::new_v4(),
            claim_lapse,
            max_attempts,
            lapses_checked: Arc::default(),
        }
    }

    async fn lapse_dead_claims(&self, channel: Channel) -> Result<(), sqlx::Error> {
        {
            let mut checked = self.lapses_checked.lock().expect("lapse times");
            let now = Instant::now();
            match checked.get(&channel) {
                Some(at) if now.duration_since(*at) < LAPSE_CHECK_EVERY => return Ok(()),
                _ => {
                    checked.insert(channel, now);
                }
            }
        }
        sqlx::query(
            "UPDATE notification_deliveries
             SET state = 'in_doubt',
                 detail = 'the worker sending it stopped before recording the outcome'
             WHERE state = 'sending' AND channel = $1
               AND claimed_at < clock_timestamp() - make_interval(secs => $2)",
        )
        .bind(channel.as_str())
        .bind(self.claim_lapse.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl DeliveryJournal for PgJournal {
    fn take_due(
        &self,
        channel: Channel,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, sqlx::Error>> {
        Box::pin(async move {
            self.lapse_dead_claims(channel).await?;
            let rows: Vec<DueRow> = sqlx::query_as(
                "WITH due AS (
                     SELECT sale_id, user_id, channel FROM notification_deliveries
                     WHERE state = 'pending' AND channel = $1
                       AND next_attempt_at <= clock_timestamp()
                     ORDER BY next_attempt_at LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE notification_deliveries d
                 SET state = 'sending', claimed_by = $3, claimed_at = clock_timestamp()
                 FROM due, flash_sales s
                 WHERE d.sale_id = due.sale_id AND d.user_id = due.user_id
                   AND d.channel = due.channel AND s.id = d.sale_id
                 RETURNING d.sale_id, s.name, d.user_id, d.address, d.attempts,
                     (SELECT c.push_p256dh FROM notification_contacts c
                      WHERE c.user_id = d.user_id AND c.push_endpoint = d.address),
                     (SELECT c.push_auth FROM notification_contacts c
                      WHERE c.user_id = d.user_id AND c.push_endpoint = d.address)",
            )
            .bind(channel.as_str())
            .bind(limit)
            .bind(self.worker)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|row| Delivery::from_row(row, channel))
                .collect())
        })
    }

    fn record<'a>(&'a self, outcomes: &'a [Attempted]) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            if outcomes.is_empty() {
                return Ok(());
            }
            let mut sales = Vec::with_capacity(outcomes.len());
            let mut users = Vec::with_capacity(outcomes.len());
            let mut channels = Vec::with_capacity(outcomes.len());
            let mut states = Vec::with_capacity(outcomes.len());
            let mut details: Vec<Option<String>> = Vec::with_capacity(outcomes.len());
            let mut retries = Vec::with_capacity(outcomes.len());
            let mut gone_users = Vec::new();
            let mut gone_endpoints = Vec::new();
            for Attempted {
                delivery,
                outcome,
                retry_after,
            } in outcomes
            {
                let (state, detail) = self.settle(delivery, outcome);
                sales.push(delivery.sale_id);
                users.push(delivery.user_id.clone());
                channels.push(delivery.channel.as_str());
                states.push(state);
                details.push(detail);
                retries.push(retry_after.as_secs_f64());
                if matches!(outcome, Outcome::Gone(_)) {
                    gone_users.push(delivery.user_id.clone());
                    gone_endpoints.push(delivery.address.clone());
                }
            }
            let mut tx = self.pool.begin().await?;
            // A claim that lapsed into `in_doubt` while the send was slow is still ours to
            // settle: we know its outcome now.
            sqlx::query(
                "UPDATE notification_deliveries d
                 SET state = t.state, detail = t.detail, attempts = d.attempts + 1,
                     sent_at = CASE WHEN t.state = 'sent' THEN clock_timestamp() END,
                     next_attempt_at = clock_timestamp() + make_interval(secs => t.retry)
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::float8[]) AS t (sale_id, user_id, channel, state, detail, retry)
                 WHERE d.sale_id = t.sale_id AND d.user_id = t.user_id AND d.channel = t.channel
                   AND d.claimed_by = $7 AND d.state IN ('sending', 'in_doubt')",
            )
            .bind(&sales)
            .bind(&users)
            .bind(&channels)
            .bind(&states)
            .bind(&details)
            .bind(&retries)
            .bind(self.worker)
            .execute(&mut *tx)
            .await?;
            if !gone_users.is_empty() {
                sqlx::query(
                    "UPDATE notification_contacts c
                     SET push_endpoint = NULL, push_p256dh = NULL, push_auth = NULL
                     FROM unnest($1::text[], $2::text[]) AS g (user_id, endpoint)
                     WHERE c.user_id = g.user_id AND c.push_endpoint = g.endpoint",
                )
                .bind(&gone_users)
                .bind(&gone_endpoints)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
    }
}

impl PgJournal {
    /// The state and detail an outcome leaves a delivery in.
    fn settle(&self, delivery: &Delivery, outcome: &Outcome) -> (&'static str, Option<String>) {
        match outcome {
            Outcome::Sent => ("sent", None),
            Outcome::Temporary(why) if delivery.attempts + 1 >= self.max_attempts => (
                "refused",
                Some(format!(
                    "gave up after {} attempts; the last: {why}",
                    delivery.attempts + 1
                )),
            ),
            Outcome::Temporary(why) => ("pending", Some(why.clone())),
            Outcome::Refused(why) | Outcome::Gone(why) => ("refused", Some(why.clone())),
            Outcome::NoAnswer(why) => ("in_doubt", Some(why.clone())),
        }
    }
}
