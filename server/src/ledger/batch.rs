//! Group commit: requests that arrive together share one database round trip.
//!
//! Every buy needs one or two small statements (look up its idempotency key, insert its order).
//! Run one by one, each pays a round trip and, for writes, a commit (a WAL flush); under a flash
//! sale's burst that per-statement cost, not the work, is the ceiling. A [`Coalescer`] queues the
//! jobs and runs them in batches, at most `concurrency` batches at a time: a job that arrives while
//! every runner is busy joins the next batch, so batches grow with the load and a lone request is
//! never held back waiting for company (no fixed delay, no minimum size).
//!
//! One wait is worth its time: for jobs *announced* ([`Coalescer::announce`]) and not yet queued —
//! on the Redis path, orders whose Lua claim is on the wire. Without it, the clients a batch has
//! just answered come back a Redis round trip later and miss the batch the runner took meanwhile:
//! measured with 32 connections, batches alternated between 1–3 orders and ~30, each paying a
//! whole commit (~1.3 ms for one order, ~1.8 ms for thirty). So when a runner takes a batch while
//! jobs are announced, it waits until those have arrived (or were dropped), at most [`LINGER`].
//! Nothing announced, nothing waited for: a lone request still goes at once.
//!
//! Written here rather than taken from a crate: the batching crates found (`batched-fn`, …) add a
//! fixed delay to collect a batch, which is exactly the latency a flash sale cannot spend.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

/// The longest a runner waits for announced jobs. A Redis round trip on loopback is a fraction of
/// it (a job that will not come is withdrawn, which ends the wait at once); the bound only
/// matters when Redis is slow. tokio's timer ticks in milliseconds, so a bound of one tick could
/// fire almost at once: two.
pub const LINGER: Duration = Duration::from_millis(2);

/// A queue of jobs of type `J` run in batches by a background task.
#[derive(Debug)]
pub struct Coalescer<J> {
    queue: mpsc::UnboundedSender<J>,
    coming: Arc<Coming>,
}

/// Jobs announced and not yet queued, and a bell rung whenever one stops being on its way.
#[derive(Debug, Default)]
struct Coming {
    count: AtomicUsize,
    changed: Notify,
}

/// A job on its way to a [`Coalescer`] (see [`Coalescer::announce`]): counted until dropped.
/// Drop it when the job is queued (the same poll as the queueing, so a runner never sees the job
/// neither counted nor queued for long) or when it will not come after all.
#[derive(Debug)]
#[must_use = "a job is counted as on its way until this is dropped"]
pub struct OnItsWay {
    coming: Arc<Coming>,
}

impl Drop for OnItsWay {
    fn drop(&mut self) {
        self.coming.count.fetch_sub(1, Ordering::AcqRel);
        self.coming.changed.notify_one();
    }
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
        Self::spawn_with_idle(max_batch, concurrency, run, || {})
    }

    /// [`Coalescer::spawn`], calling `idle` whenever a runner is free and finds no job queued,
    /// before it waits for the next one: the ledger hands its runners' kept connections back to
    /// the pool then (`super::kept`).
    pub fn spawn_with_idle<F, Fut, I>(max_batch: usize, concurrency: usize, run: F, idle: I) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        I: Fn() + Send + 'static,
    {
        assert!(max_batch >= 1 && concurrency >= 1);
        let (queue, mut jobs) = mpsc::unbounded_channel::<J>();
        let runners = Arc::new(Semaphore::new(concurrency));
        let coming = Arc::new(Coming::default());
        let announced = coming.clone();
        tokio::spawn(async move {
            loop {
                // Wait for a free runner first, so everything that queues up meanwhile lands in
                // the batch this runner takes.
                let Ok(runner) = runners.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = Vec::new();
                if jobs.is_empty() {
                    idle();
                }
                if jobs.recv_many(&mut batch, max_batch).await == 0 {
                    return;
                }
                wait_for_announced(&mut jobs, &mut batch, max_batch, &coming).await;
                let work = run(batch);
                tokio::spawn(async move {
                    work.await;
                    drop(runner);
                });
            }
        });
        Self {
            queue,
            coming: announced,
        }
    }

    /// Counts a job as on its way until the returned guard is dropped: a runner taking a batch
    /// meanwhile waits for it (at most [`LINGER`]).
    pub fn announce(&self) -> OnItsWay {
        self.coming.count.fetch_add(1, Ordering::AcqRel);
        OnItsWay {
            coming: self.coming.clone(),
        }
    }

    /// Queues a job built around a reply channel and waits for the answer. `None` means the job
    /// was dropped unanswered (the runner failed or the dispatcher is gone): the caller must treat
    /// it as "not done", which every caller maps to 503.
    pub async fn call<T>(&self, job: impl FnOnce(oneshot::Sender<T>) -> J) -> Option<T> {
        self.call_announced(None, job).await
    }

    /// [`Coalescer::call`] for a job announced by `on_its_way`, which stops counting once the job
    /// is queued.
    pub async fn call_announced<T>(
        &self,
        on_its_way: Option<OnItsWay>,
        job: impl FnOnce(oneshot::Sender<T>) -> J,
    ) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue.send(job(reply));
        drop(on_its_way);
        queued.ok()?;
        answer.await.ok()
    }
}

/// Adds to `batch` the jobs announced when it was taken, as they arrive: until they are all queued
/// or dropped, the batch is full, or [`LINGER`] has passed. Jobs announced later are not waited
/// for, so a steady stream of arrivals cannot keep a batch waiting.
async fn wait_for_announced<J>(
    jobs: &mut mpsc::UnboundedReceiver<J>,
    batch: &mut Vec<J>,
    max_batch: usize,
    coming: &Coming,
) {
    let announced = coming.count.load(Ordering::Acquire);
    if announced == 0 || batch.len() >= max_batch {
        return;
    }
    let target = (batch.len() + announced).min(max_batch);
    let until = tokio::time::Instant::now() + LINGER;
    while batch.len() < target && coming.count.load(Ordering::Acquire) > 0 {
        let room = max_batch - batch.len();
        tokio::select! {
            received = jobs.recv_many(batch, room) => if received == 0 { return },
            () = coming.changed.notified() => {}
            () = tokio::time::sleep_until(until) => break,
        }
    }
    // A job queued just as its guard dropped is already here: take it too.
    while batch.len() < max_batch {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
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

    /// The jobs of each batch a runner took, in order.
    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A coalescer with one runner that records its batches' jobs and answers them at once.
    fn recording() -> (Coalescer<Job>, Batches) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let coalescer = Coalescer::spawn(16, 1, move |batch: Vec<Job>| {
            seen.lock()
                .unwrap()
                .push(batch.iter().map(|j| j.n).collect::<Vec<_>>());
            async move {
                for job in batch {
                    let _ = job.reply.send(job.n);
                }
            }
        });
        (coalescer, batches)
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_an_announced_job_and_takes_it_along() {
        let (coalescer, batches) = recording();
        let coalescer = Arc::new(coalescer);
        let on_its_way = coalescer.announce();
        let late = coalescer.clone();
        let second = tokio::spawn(async move {
            // Half the linger later, as a Redis reply would come.
            tokio::time::sleep(LINGER / 2).await;
            late.call_announced(Some(on_its_way), |reply| Job { n: 2, reply })
                .await
        });
        assert_eq!(coalescer.call(|reply| Job { n: 1, reply }).await, Some(1));
        assert_eq!(second.await.unwrap(), Some(2));
        assert_eq!(
            *batches.lock().unwrap(),
            [vec![1, 2]],
            "one batch, both jobs"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_announced_job_that_does_not_come_holds_a_batch_no_longer_than_it_takes_to_say_so() {
        let (coalescer, batches) = recording();
        let coalescer = Arc::new(coalescer);
        let on_its_way = coalescer.announce();
        let withdrawn = tokio::spawn(async move {
            tokio::time::sleep(LINGER / 2).await;
            drop(on_its_way); // e.g. Redis answered "sold out"
        });
        let started = tokio::time::Instant::now();
        assert_eq!(coalescer.call(|reply| Job { n: 1, reply }).await, Some(1));
        let waited = started.elapsed();
        withdrawn.await.unwrap();
        assert!(
            waited >= LINGER / 2 && waited < LINGER,
            "the batch waited {waited:?}: until the job was withdrawn, not the whole linger"
        );
        assert_eq!(*batches.lock().unwrap(), [vec![1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_is_called_when_a_free_runner_finds_nothing_queued_not_between_busy_batches() {
        let idles = Arc::new(AtomicUsize::new(0));
        let counted = idles.clone();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let coalescer = Arc::new(Coalescer::spawn_with_idle(
            2,
            1,
            move |batch: Vec<Job>| {
                seen.lock().unwrap().push(batch.len());
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    for job in batch {
                        let _ = job.reply.send(job.n);
                    }
                }
            },
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        ));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(idles.load(Ordering::SeqCst), 1, "idle before the first job");
        // Six jobs queued at once: three batches back to back, the queue never empty between them.
        let calls: Vec<_> = (0..6u32)
            .map(|n| {
                let c = coalescer.clone();
                tokio::spawn(async move { c.call(|reply| Job { n, reply }).await })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_some());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(*batches.lock().unwrap(), [2, 2, 2]);
        assert_eq!(
            idles.load(Ordering::SeqCst),
            2,
            "idle once more, after the last batch, not between the three"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_announced_job_that_never_comes_holds_a_batch_at_most_the_linger() {
        let (coalescer, batches) = recording();
        let _forgotten = coalescer.announce();
        let started = tokio::time::Instant::now();
        assert_eq!(coalescer.call(|reply| Job { n: 1, reply }).await, Some(1));
        let waited = started.elapsed();
        assert!(
            waited >= LINGER && waited < LINGER * 2,
            "waited {waited:?}, bounded by the linger"
        );
        // Nothing announced any more is waited for: the next lone job goes at once.
        drop(_forgotten);
        let started = tokio::time::Instant::now();
        assert_eq!(coalescer.call(|reply| Job { n: 2, reply }).await, Some(2));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(*batches.lock().unwrap(), [vec![1], vec![2]]);
    }
}
