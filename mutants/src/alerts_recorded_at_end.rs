//! `alerts-recorded-at-end`: a wishlist fan-out that remembers what it sent in memory and writes
//! its record only once nothing is left to send — the usual shape of a fan-out job that loops over
//! the recipients and saves its progress at the end. It claims nothing before sending, so a server
//! restarted mid-fan-out forgets every send since the last save and sends them all again: INV-8's
//! at-most-once is broken (every alert sent before the restart arrives twice). Claims are the
//! correct inventory's; only the alert journal is replaced.

use std::collections::HashSet;
use std::sync::Mutex;

use flashsale_server::notify::{Attempted, Channel, Delivery, DeliveryJournal, DueRow, Outcome};
use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

pub const NAME: &str = "alerts-recorded-at-end";

type Key = (Uuid, String, Channel);

#[derive(Debug)]
pub struct RecordAtEnd {
    pool: PgPool,
    /// Sent since the last save, per channel: lost with the process.
    sent: Mutex<HashSet<Key>>,
}

impl RecordAtEnd {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sent: Mutex::new(HashSet::new()),
        }
    }
}

impl DeliveryJournal for RecordAtEnd {
    fn take_due(
        &self,
        channel: Channel,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, sqlx::Error>> {
        Box::pin(async move {
            // No claim: the rows stay pending while they are sent; only the memory set keeps
            // this process from sending one twice.
            let exclude: Vec<String> = self
                .sent
                .lock()
                .expect("sent set")
                .iter()
                .filter(|(_, _, c)| *c == channel)
                .map(|(sale, user, _)| format!("{sale}/{user}"))
                .collect();
            let rows: Vec<DueRow> = sqlx::query_as(
                "SELECT d.sale_id, s.name, d.user_id, d.address, d.attempts,
                     c.push_p256dh, c.push_auth
                 FROM notification_deliveries d
                 JOIN flash_sales s ON s.id = d.sale_id
                 LEFT JOIN notification_contacts c
                     ON c.user_id = d.user_id AND c.push_endpoint = d.address
                 WHERE d.state = 'pending' AND d.channel = $1
                   AND d.next_attempt_at <= clock_timestamp()
                   AND NOT (d.sale_id::text || '/' || d.user_id = ANY($3))
                 ORDER BY d.next_attempt_at LIMIT $2",
            )
            .bind(channel.as_str())
            .bind(limit)
            .bind(&exclude)
            .fetch_all(&self.pool)
            .await?;
            // Taken rows count as "in hand" at once, so concurrent batches do not overlap.
            let mut sent = self.sent.lock().expect("sent set");
            Ok(rows
                .into_iter()
                .filter(|(sale_id, _, user_id, ..)| {
                    sent.insert((*sale_id, user_id.clone(), channel))
                })
                .map(|row| Delivery::from_row(row, channel))
                .collect())
        })
    }

    fn record<'a>(&'a self, outcomes: &'a [Attempted]) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let mut sent = self.sent.lock().expect("sent set");
            for Attempted {
                delivery, outcome, ..
            } in outcomes
            {
                if !matches!(outcome, Outcome::Sent) {
                    // Anything but a success is tried again later, as the correct journal would.
                    sent.remove(&(delivery.sale_id, delivery.user_id.clone(), delivery.channel));
                }
            }
            Ok(())
        })
    }

    fn idle(&self, channel: Channel) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let done: Vec<Key> = self
                .sent
                .lock()
                .expect("sent set")
                .iter()
                .filter(|(_, _, c)| *c == channel)
                .cloned()
                .collect();
            if done.is_empty() {
                return Ok(());
            }
            let sales: Vec<Uuid> = done.iter().map(|(s, _, _)| *s).collect();
            let users: Vec<String> = done.iter().map(|(_, u, _)| u.clone()).collect();
            sqlx::query(
                "UPDATE notification_deliveries d
                 SET state = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1
                 FROM unnest($1::uuid[], $2::text[]) AS t (sale_id, user_id)
                 WHERE d.sale_id = t.sale_id AND d.user_id = t.user_id AND d.channel = $3
                   AND d.state = 'pending'",
            )
            .bind(&sales)
            .bind(&users)
            .bind(channel.as_str())
            .execute(&self.pool)
            .await?;
            let mut sent = self.sent.lock().expect("sent set");
            for key in done {
                sent.remove(&key);
            }
            Ok(())
        })
    }
}
