//! Group commit: requests that arrive together share one database round trip.
//!
//! Every buy needs one or two small statements (look up its idempotency key, insert its order).
//! Run one by one, each pays a round trip and, for writes, a commit (a WAL flush); under a flash
//! sale's burst that per-statement cost, not the work, is the ceiling. A [`Coalescer`] queues the
//! jobs and runs them in batches, at most `concurrency` batches at a time: a job that arrives while
//! every runner is busy joins the next batch, so batches grow with the load and a lone request is
//! never held back waiting for company (no timer, no minimum size).
//!
//! Written here rather than taken from a crate: the batching crates found (`batched-fn`, …) add a
//! fixed delay to collect a batch, which is exactly the latency a flash sale cannot spend.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// A queue of jobs of type `J` run in batches by a background task.
#[derive(Debug)]
pub struct Coalescer<J> {
    queue: mpsc::UnboundedSender<J>,
}

impl<J: Send + 'static> Coalescer<J> {
    /// Starts the dispatcher on the current tokio runtime. `run` gets each batch (1 to
    /// `max_batch` jobs, in arrival order) and must answer every job in it; the dispatcher stops
    /// when the coalescer is dropped and the queue is empty.
    pub fn spawn<F, Fut>(max_batch: usize, concurrency: usize, run: F) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        assert!(max_batch >= 1 && concurrency >= 1);
        let (queue, mut jobs) = mpsc::unbounded_channel::<J>();
        let runners = Arc::new(Semaphore::new(concurrency));
        tokio::spawn(async move {
            loop {
                // Wait for a free runner first, so everything that queues up meanwhile lands in
                // the batch this runner takes.
                let Ok(runner) = runners.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = Vec::new();
                if jobs.recv_many(&mut batch, max_batch).await == 0 {
                    return;
                }
                let work = run(batch);
                tokio::spawn(async move {
                    work.await;
                    drop(runner);
                });
            }
        });
        Self { queue }
    }

    /// Queues a job built around a reply channel and waits for the answer. `None` means the job
    /// was dropped unanswered (the runner failed or the dispatcher is gone): the caller must treat
    /// it as "not done", which every caller maps to 503.
    pub async fn call<T>(&self, job: impl FnOnce(oneshot::Sender<T>) -> J) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(job(reply)).ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    struct Job {
        n: u32,
        reply: oneshot::Sender<u32>,
    }

    #[tokio::test]
    async fn every_job_is_answered_and_batches_grow_while_runners_are_busy() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let coalescer = Arc::new(Coalescer::spawn(16, 1, move |batch: Vec<Job>| {
            seen.lock().unwrap().push(batch.len());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                for job in batch {
                    let _ = job.reply.send(job.n * 2);
                }
            }
        }));
        let calls: Vec<_> = (0..40u32)
            .map(|n| {
                let c = coalescer.clone();
                tokio::spawn(async move { c.call(|reply| Job { n, reply }).await })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Some(n as u32 * 2));
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(sizes.iter().all(|&s| s <= 16), "{sizes:?}");
        assert!(
            sizes.len() < 40,
            "jobs queued behind a busy runner should share batches: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn a_lone_job_runs_at_once_and_a_dropped_reply_reads_as_not_done() {
        let coalescer = Coalescer::spawn(8, 2, |batch: Vec<Job>| async move {
            for job in batch {
                if job.n != 7 {
                    let _ = job.reply.send(job.n);
                }
            }
        });
        let started = std::time::Instant::now();
        assert_eq!(coalescer.call(|reply| Job { n: 1, reply }).await, Some(1));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(coalescer.call(|reply| Job { n: 7, reply }).await, None);
    }
}
