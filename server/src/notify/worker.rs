//! The fan-out worker of one channel: takes due deliveries as sending capacity frees up, sends
//! them at most `sends_per_second` and `concurrency` at a time, and records each outcome as soon
//! as it is known. When told to stop it takes nothing more, finishes and records every send it
//! started, and returns: a graceful restart leaves no delivery in doubt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::email::EmailSender;
use super::push::PushSender;
use super::{Attempted, Channel, Delivery, DeliveryJournal, NotifySettings, Outcome, retry_delay};

/// The sender of one channel.
#[derive(Debug, Clone)]
pub enum Sender {
    Email(EmailSender),
    Push(PushSender),
}

impl Sender {
    pub fn channel(&self) -> Channel {
        match self {
            Sender::Email(_) => Channel::Email,
            Sender::Push(_) => Channel::Push,
        }
    }

    async fn send(&self, delivery: &Delivery) -> Outcome {
        match self {
            Sender::Email(sender) => sender.send(delivery).await,
            Sender::Push(sender) => sender.send(delivery).await,
        }
    }
}

/// A token bucket: `per_second` tokens a second, at most `burst` saved up.
#[derive(Debug)]
struct Pacer {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: f64::from(per_second.max(1)),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
    }

    fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn take(&mut self) {
        while !self.try_take() {
            let missing = 1.0 - self.tokens;
            tokio::time::sleep(Duration::from_secs_f64(missing / self.per_second)).await;
        }
    }
}

/// Runs until `stop` turns true. `wake` cuts the idle wait short (a sale just went live).
pub async fn run(
    journal: Arc<dyn DeliveryJournal>,
    sender: Sender,
    settings: NotifySettings,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let channel = sender.channel();
    let concurrency = settings.concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency as usize));
    let mut pacer = Pacer::new(settings.sends_per_second, concurrency);
    let mut in_flight = JoinSet::new();
    // Outcomes are recorded by one task, as many per transaction as have come in since the last
    // one: a commit per alert would cap a channel at what one connection commits per second.
    let (outcomes, mut arrived) = mpsc::unbounded_channel::<Attempted>();
    let recorder_journal = journal.clone();
    let recorder = tokio::spawn(async move {
        while let Some(first) = arrived.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_RECORD_BATCH {
                match arrived.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            record(&*recorder_journal, &batch).await;
        }
    });
    loop {
        if *stop.borrow() {
            break;
        }
        while in_flight.try_join_next().is_some() {}
        // One free sending slot and one token of the rate first; then as many more as are free
        // right now, so one query takes a whole batch when the channel is fast.
        let first = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
            _ = stop.changed() => break,
        };
        tokio::select! {
            () = pacer.take() => {}
            _ = stop.changed() => break,
        }
        let mut held = vec![first];
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            if !pacer.try_take() {
                break;
            }
            held.push(permit);
        }
        let due = match journal.take_due(channel, held.len() as i64).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(channel = channel.as_str(), error = %e, "could not take deliveries");
                drop(held);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
        };
        if due.is_empty() {
            drop(held);
            if let Err(e) = journal.idle(channel).await {
                tracing::warn!(channel = channel.as_str(), error = %e, "journal idle step failed");
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => break,
            }
            continue;
        }
        for (delivery, permit) in due.into_iter().zip(held) {
            let outcomes = outcomes.clone();
            let sender = sender.clone();
            // The clients' own timeouts do not cover every wait (lettre's leaves a pooled
            // connection's reads unbounded); this one does, so a hung server cannot hold a send,
            // or a graceful stop, forever.
            let limit = settings.send_timeout;
            in_flight.spawn(async move {
                let outcome = match tokio::time::timeout(limit, sender.send(&delivery)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::NoAnswer(format!(
                        "no answer within {}",
                        humantime::format_duration(limit)
                    )),
                };
                drop(permit);
                let retry_after = retry_delay(delivery.attempts);
                let _ = outcomes.send(Attempted {
                    delivery,
                    outcome,
                    retry_after,
                });
            });
        }
    }
    // Graceful: every send started is finished and recorded before the worker returns.
    while in_flight.join_next().await.is_some() {}
    drop(outcomes);
    let _ = recorder.await;
}

/// Outcomes recorded in one transaction, at most.
const MAX_RECORD_BATCH: usize = 256;

/// Records outcomes, retrying a failing database for a few seconds: a send whose outcome
/// cannot be recorded stays `sending` and becomes `in_doubt` later — never resent.
async fn record(journal: &dyn DeliveryJournal, batch: &[Attempted]) {
    for attempt in 0..10 {
        match journal.record(batch).await {
            Ok(()) => return,
            Err(e) if attempt == 9 => {
                tracing::error!(
                    outcomes = batch.len(), error = %e,
                    "could not record the outcomes of alert sends; they will be in doubt"
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pacer_holds_the_rate_after_the_burst() {
        let mut pacer = Pacer::new(100, 10);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(pacer.try_take(), "the burst is available at once");
        }
        assert!(!pacer.try_take());
        for _ in 0..50 {
            pacer.take().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(490) && elapsed <= Duration::from_millis(520),
            "50 tokens at 100/s after the burst took {elapsed:?}"
        );
    }
}
