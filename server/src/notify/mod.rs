//! Wishlist alerts: when a sale goes live, one email per (sale, user) over SMTP and one Web Push
//! message per (sale, user) subscription, each sent at most once and, unless the channel refuses
//! for good, at least once (INV-8).
//!
//! The recipients are planned in the activation's transaction ([`plan_fanout`]): one
//! `notification_deliveries` row per (sale, user, channel). A worker per channel
//! ([`worker::run`]) takes due rows through a [`DeliveryJournal`], sends, and records each outcome
//! as soon as it is known, so a server stopped or killed mid-fan-out resumes where it was: what
//! was recorded sent is never sent again. The journal is the seam the mutants use (a fan-out that
//! records its sends only at the end; `mutants/`); the server only ever builds [`journal::PgJournal`].

pub mod email;
pub mod journal;
pub mod push;
pub mod worker;

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// How an alert reaches a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Push,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Push => "push",
        }
    }
}

/// One planned alert, as a worker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sale_id: Uuid,
    pub sale_name: String,
    pub user_id: String,
    pub channel: Channel,
    /// The email address, or the push endpoint.
    pub address: String,
    /// Attempts before this one.
    pub attempts: i32,
    /// The subscription's keys as they are now (push only; `None` when the user's subscription
    /// was removed or replaced since the delivery was planned).
    pub push_keys: Option<PushKeys>,
}

/// A due delivery as a journal's query returns it: sale id, sale name, user id, address,
/// attempts so far, and the subscription's p256dh and auth (push, when still subscribed).
pub type DueRow = (
    Uuid,
    String,
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
);

impl Delivery {
    /// The delivery of `channel` a [`DueRow`] describes.
    pub fn from_row(row: DueRow, channel: Channel) -> Self {
        let (sale_id, sale_name, user_id, address, attempts, p256dh, auth) = row;
        Delivery {
            sale_id,
            sale_name,
            user_id,
            channel,
            address,
            attempts,
            push_keys: p256dh
                .zip(auth)
                .map(|(p256dh, auth)| PushKeys { p256dh, auth }),
        }
    }
}

/// A Web Push subscription's keys, base64url as the browser gives them: the user agent's P-256
/// public key (`p256dh`) and the 16-byte authentication secret (`auth`), RFC 8291.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Try again later (SMTP 4xx, a connection that failed, push 429 or 5xx).
    Temporary(String),
    /// The channel refused for good (SMTP 5xx, push 400/403/413): recorded, never retried.
    Refused(String),
    /// The push service says the subscription no longer exists (404/410): recorded as refused,
    /// and the subscription is removed so no later sale tries it.
    Gone(String),
    /// No answer within the send timeout: the message may or may not have been accepted.
    /// Recorded `in_doubt` and never resent (at most once wins).
    NoAnswer(String),
}

/// One attempt's outcome, on its way to the journal.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub delivery: Delivery,
    pub outcome: Outcome,
    pub retry_after: Duration,
}

/// Where a worker takes due deliveries from and records what happened to them.
pub trait DeliveryJournal: Send + Sync + std::fmt::Debug {
    /// Up to `limit` deliveries of `channel` that are due, each now the caller's to send.
    fn take_due(
        &self,
        channel: Channel,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, sqlx::Error>>;

    /// Records the outcomes of attempts (each with the wait before a retry, if it failed for
    /// now), all in one transaction.
    fn record<'a>(&'a self, outcomes: &'a [Attempted]) -> BoxFuture<'a, Result<(), sqlx::Error>>;

    /// Called when nothing of `channel` was due.
    fn idle(&self, _channel: Channel) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// Where alerts go and how fast. Email needs `smtp_url`, push needs `vapid_private_key`; a channel
/// without its setting sends nothing, and its deliveries wait (pending) until it is configured.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `smtp://host:port` of the mail relay (plain SMTP; loopback in tests).
    pub smtp_url: Option<String>,
    /// The sender address of alert emails.
    pub mail_from: String,
    /// The VAPID key (RFC 8292): the raw 32-byte P-256 private key, base64url. Subscriptions are
    /// made in the browser with its public key, so it must stay the same across restarts.
    pub vapid_private_key: Option<String>,
    /// The VAPID `sub` claim: how a push service reaches the operator (`mailto:` or `https:`).
    pub vapid_subject: String,
    /// Sends per second per channel, at most.
    pub sends_per_second: u32,
    /// Sends in flight per channel, at most.
    pub concurrency: u32,
    /// How long one send may take before it counts as a temporary failure.
    pub send_timeout: Duration,
    /// Attempts after which a temporarily failing delivery is given up (recorded as refused).
    pub max_attempts: i32,
    /// A delivery found `sending` this long after it was taken belongs to a worker that died:
    /// it becomes `in_doubt` (never resent). Must exceed `send_timeout`.
    pub claim_lapse: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            mail_from: "flashsale@localhost".into(),
            vapid_private_key: None,
            vapid_subject: "mailto:ops@localhost".into(),
            sends_per_second: 2_000,
            concurrency: 32,
            send_timeout: Duration::from_secs(10),
            max_attempts: 8,
            claim_lapse: Duration::from_secs(60),
        }
    }
}

/// Plans the alerts of a sale that just went live, in the activation's transaction: one delivery
/// per (user, channel) for every user with a product of the sale in the wishlist and an address
/// for the channel, due at the sale's start. Planning twice plans nothing more.
pub async fn plan_fanout(conn: &mut PgConnection, sale_id: Uuid) -> Result<u64, sqlx::Error> {
    let planned = sqlx::query(
        "INSERT INTO notification_deliveries (sale_id, user_id, channel, address, next_attempt_at)
         SELECT $1, c.user_id, ch.channel, ch.address, greatest(s.starts_at, now())
         FROM flash_sales s
         JOIN notification_contacts c ON EXISTS (
             SELECT 1 FROM wishlist_entries w JOIN flash_sale_products p USING (product_id)
             WHERE w.user_id = c.user_id AND p.sale_id = s.id)
         CROSS JOIN LATERAL (VALUES ('email', c.email), ('push', c.push_endpoint))
             AS ch (channel, address)
         WHERE s.id = $1 AND ch.address IS NOT NULL
         ON CONFLICT (sale_id, user_id, channel) DO NOTHING",
    )
    .bind(sale_id)
    .execute(conn)
    .await?;
    Ok(planned.rows_affected())
}

/// The wait before retrying a delivery that failed `attempts` times: 200 ms doubling, at most
/// five minutes.
pub fn retry_delay(attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 11) as u32;
    Duration::from_millis(200 * 2u64.pow(exponent)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_stop_at_five_minutes() {
        assert_eq!(retry_delay(0), Duration::from_millis(200));
        assert_eq!(retry_delay(3), Duration::from_millis(1_600));
        assert_eq!(retry_delay(11), Duration::from_secs(300));
        assert_eq!(retry_delay(i32::MAX), Duration::from_secs(300));
    }
}
