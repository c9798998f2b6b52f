//! The load generator: thousands of buyers as tokio tasks over a keep-alive connection pool.
//!
//! Open models (burst "doors open", constant rate, ramp) fix every buyer's *intended* send time
//! in advance; the closed model sends the next buyer once an answer came back. A semaphore caps
//! concurrent requests at the scenario's connection limit, so a buyer that waits for a
//! connection is recorded with its real send time, and its latency from the intended instant
//! includes that wait (the coordinated-omission-corrected figure). Per-request failures are data,
//! classified into the outcome, never a panic. The generator also records how late it ran each
//! buyer and how much CPU it used (see [`crate::load::health`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::health::{CpuClock, GeneratorStats, ScheduleSample};
use super::journeys::{HoldRoutes, Journey};
use super::request::{BuyTemplate, PreparedBuy};
use crate::history::{Attempt, Code, HoldAttempt, HoldOp, Outcome, micros_since};
use crate::latency::LatencyClass;
use crate::scenario::{Arrival, QuantitySpec, Scenario};

/// One buyer's plan: who, how many, with which idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub buyer_id: String,
    /// Named only when the sale has several products; buyers take them in turn.
    pub product_id: Option<String>,
    pub quantity: u32,
    pub idempotency_key: String,
    /// A buyer who reserves first (`[journeys]`); `None`: buys at once.
    pub journey: Option<Journey>,
    /// Its position in the scenario's whole plan, which fixes its send time in an open arrival
    /// model: a shard (`--shard K/N`) fires a subset of the plan, each buyer at the instant it
    /// would have had in a single run.
    pub arrival_index: u32,
}

/// Draws the buyers of a scenario. Quantities come from `seed`, so a run repeats; keys carry
/// `run_nonce` so two runs against the same server never share a key.
pub fn plan_buyers(scenario: &Scenario, seed: u64, run_nonce: &str) -> Vec<Buyer> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buyers: Vec<Buyer> = (0..scenario.buyers.count)
        .map(|i| Buyer {
            buyer_id: format!("buyer-{:05}", i % scenario.buyers.distinct_buyers().max(1)),
            product_id: (scenario.sale.products.len() > 1).then(|| {
                scenario.sale.products[i as usize % scenario.sale.products.len()]
                    .id
                    .clone()
            }),
            quantity: match &scenario.buyers.quantity {
                QuantitySpec::Fixed(q) => *q,
                QuantitySpec::Range { min, max } => rng.random_range(*min..=*max),
                QuantitySpec::Sequence { sequence } => sequence[i as usize % sequence.len()],
            },
            idempotency_key: format!("{run_nonce}-{i:05}"),
            journey: None,
            arrival_index: i,
        })
        .collect();
    // Journeys come from a generator of their own, so adding `[journeys]` to a scenario changes
    // none of the quantities and keys its seed drew before.
    if let Some(spec) = &scenario.journeys {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6a6f_7572_6e65_7973);
        for (i, buyer) in buyers.iter_mut().enumerate() {
            let early = match (spec.reserve_within, scenario.arrival.offset_of(i as u32)) {
                (Some(within), Some(offset)) => offset <= within,
                _ => true,
            };
            if rng.random_bool(spec.reserve_first.clamp(0.0, 1.0)) && early {
                let (min, max) = (spec.think.min.as_micros(), spec.think.max.as_micros());
                let think = Duration::from_micros(rng.random_range(min..=max.max(min)) as u64);
                buyer.journey = Some(Journey {
                    ttl: spec.hold_ttl,
                    think,
                    end: spec.then.pick(rng.random::<f64>()),
                });
            }
        }
    }
    // Some requests reuse an earlier request's key with their own body (HAZ-12). A key names one
    // buyer's request (the contract scopes keys to the buyer), so the reuse is sent as that
    // buyer: the same key from another buyer would be a different request, not a reuse.
    if scenario.buyers.reused_keys > 0.0 {
        for i in 1..buyers.len() {
            if rng.random_bool(scenario.buyers.reused_keys) {
                let earlier = rng.random_range(0..i);
                buyers[i].idempotency_key = buyers[earlier].idempotency_key.clone();
                buyers[i].buyer_id = buyers[earlier].buyer_id.clone();
            }
        }
    }
    buyers
}

/// Where and how to send buys: the profile's `[buy]` bound to the run's sale.
#[derive(Debug, Clone)]
pub struct LoadTarget {
    pub buy: Arc<BuyTemplate>,
    /// The profile's `[holds]` bound to the sale; `None`: buyers with a journey buy at once.
    pub holds: Option<Arc<HoldRoutes>>,
}

/// What the load has achieved so far, shared with the fault injector (whose triggers can depend
/// on the units remaining) and the progress line.
#[derive(Debug, Default)]
pub struct LoadProbe {
    /// Units of attempts answered `ok` (retries of one key may count twice; it is a trigger, not
    /// a verdict).
    pub acked_units: AtomicU64,
    pub completed: AtomicU64,
    /// Attempts that have left (a request on the wire or answered).
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub sold_out: AtomicU64,
    pub unknown: AtomicU64,
}

impl LoadProbe {
    pub(super) fn record(&self, attempt: &Attempt) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        let counter = match LatencyClass::of(attempt) {
            LatencyClass::Ok => {
                self.acked_units
                    .fetch_add(u64::from(attempt.quantity), Ordering::Relaxed);
                &self.ok
            }
            LatencyClass::SoldOut => &self.sold_out,
            LatencyClass::Unknown => &self.unknown,
            LatencyClass::OtherRejection | LatencyClass::All => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the load phase produced: every attempt, and how well the generator kept its schedule.
#[derive(Debug, Default)]
pub struct LoadRun {
    /// Ordered by send time, `seq` assigned in that order.
    pub history: Vec<Attempt>,
    pub generator: GeneratorStats,
    /// Every cart-hold operation of the buyer journeys, by send time (empty without journeys).
    pub holds: Vec<HoldAttempt>,
}

/// A keep-alive client with `connections` connections already open to the target, so the burst
/// measures the server, not TCP handshakes.
pub async fn warmed_client(scenario: &Scenario, base_url: &str, buyers: usize) -> reqwest::Client {
    let connections = scenario.buyers.connections.max(1) as usize;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .http1_only()
        .build()
        .expect("a plain HTTP client builds");
    warm_up(&client, base_url, connections.min(buyers.max(1))).await;
    client
}

/// Runs the scenario's arrival model from `doors_open` and returns every attempt with the
/// generator's own measurements. `origin` is the run's clock origin.
///
/// Open models (burst, constant rate, ramp) spawn one task per buyer that sleeps until its
/// intended send time, fixed in advance: a slow answer never delays the next buyer, and a buyer
/// that cannot be sent on time is sent late and counted, never skipped. The closed model runs
/// `concurrency` workers that each take the next buyer once the previous one was answered and
/// the think time has passed.
pub async fn run_load(
    client: reqwest::Client,
    scenario: &Scenario,
    target: &LoadTarget,
    buyers: Vec<Buyer>,
    origin: Instant,
    doors_open: Instant,
    probe: Arc<LoadProbe>,
) -> LoadRun {
    let connections = scenario.buyers.connections.max(1) as usize;
    let shooter = Arc::new(Shooter {
        client,
        permits: Semaphore::new(connections),
        buy: target.buy.clone(),
        tries: scenario.requests.retries + 1,
        copies: scenario.buyers.copies.max(1),
        timeout: scenario.requests.timeout,
        backoff: scenario.requests.retry_backoff,
        origin,
        probe,
        holds: target.holds.clone(),
        hold_log: std::sync::Mutex::default(),
    });
    // The CPU window starts at doors open: the set-up before it is idle time that would dilute
    // the figure.
    let cpu_at_open = tokio::spawn(async move {
        tokio::time::sleep_until(doors_open).await;
        CpuClock::now()
    });

    let tasks: Vec<_> = match scenario.arrival {
        Arrival::Closed {
            concurrency,
            think_time,
            ..
        } => {
            let queue = Arc::new(std::sync::Mutex::new(
                buyers
                    .into_iter()
                    .collect::<std::collections::VecDeque<_>>(),
            ));
            (0..concurrency)
                .map(|_| {
                    let shooter = shooter.clone();
                    let queue = queue.clone();
                    tokio::spawn(async move {
                        let mut done = Vec::new();
                        let mut ready_at = doors_open;
                        loop {
                            tokio::time::sleep_until(ready_at).await;
                            let next = queue.lock().expect("queue lock").pop_front();
                            let Some(buyer) = next else { break };
                            done.extend(shooter.clone().buy_copies(buyer, ready_at).await);
                            ready_at = Instant::now() + think_time;
                        }
                        done
                    })
                })
                .collect()
        }
        _ => buyers
            .into_iter()
            .map(|buyer| {
                let shooter = shooter.clone();
                let offset = scenario
                    .arrival
                    .offset_of(buyer.arrival_index)
                    .expect("open models fix every send time in advance");
                let first_send = doors_open + offset;
                tokio::spawn(async move {
                    tokio::time::sleep_until(first_send).await;
                    shooter.buy_copies(buyer, first_send).await
                })
            })
            .collect(),
    };

    let mut history = Vec::new();
    let mut schedule = Vec::new();
    for task in tasks {
        for (attempts, sample) in task.await.expect("a buyer task does not panic") {
            history.extend(attempts);
            schedule.push(sample);
        }
    }
    let cpu_at_end = CpuClock::now();
    let cpu = match (cpu_at_open.await.ok().flatten(), cpu_at_end) {
        (Some(open), Some(end)) => Some(open.usage_until(&end)),
        _ => None,
    };
    history.sort_by_key(|a| (a.sent_us, a.try_number));
    for (seq, attempt) in history.iter_mut().enumerate() {
        attempt.seq = seq as u64;
    }
    schedule.sort_by_key(|s| s.intended_us);
    let mut holds = std::mem::take(&mut *shooter.hold_log.lock().expect("hold log lock"));
    holds.sort_by_key(|h| (h.sent_us, h.try_number));
    let seq_of: std::collections::HashMap<(&str, &str, u32, u64), u64> = history
        .iter()
        .map(|a| {
            (
                (
                    a.buyer.as_str(),
                    a.idempotency_key.as_str(),
                    a.try_number,
                    a.sent_us,
                ),
                a.seq,
            )
        })
        .collect();
    for hold in holds.iter_mut().filter(|h| h.kind == HoldOp::Checkout) {
        hold.attempt_seq = seq_of
            .get(&(
                hold.buyer.as_str(),
                hold.idempotency_key.as_deref().unwrap_or_default(),
                hold.try_number,
                hold.sent_us,
            ))
            .copied();
    }
    LoadRun {
        history,
        generator: GeneratorStats { schedule, cpu },
        holds,
    }
}

/// What every buyer shares: the pool, its permits, the request settings and the probe.
pub(super) struct Shooter {
    pub(super) client: reqwest::Client,
    pub(super) permits: Semaphore,
    buy: Arc<BuyTemplate>,
    pub(super) tries: u32,
    /// How many copies of each buyer's request leave at once (same key, same body).
    copies: u32,
    pub(super) timeout: Duration,
    pub(super) backoff: Duration,
    pub(super) origin: Instant,
    pub(super) probe: Arc<LoadProbe>,
    /// The hold routes, when the target has them.
    holds: Option<Arc<HoldRoutes>>,
    /// Hold operations recorded by the journeys (journeys are rare next to buys; a lock is cheap).
    pub(super) hold_log: std::sync::Mutex<Vec<HoldAttempt>>,
}

impl Shooter {
    /// The buyer's request sent `copies` times at the same instant, each copy a buyer of its own
    /// (its own attempts and retries) with the same key and body.
    async fn buy_copies(
        self: Arc<Self>,
        buyer: Buyer,
        intended: Instant,
    ) -> Vec<(Vec<Attempt>, ScheduleSample)> {
        if let (Some(journey), Some(routes)) = (buyer.journey, self.holds.clone()) {
            return vec![self.journey(&buyer, journey, &routes, intended).await];
        }
        if self.copies <= 1 {
            return vec![self.buy(&buyer, intended).await];
        }
        let buyer = Arc::new(buyer);
        let mut copies = tokio::task::JoinSet::new();
        for _ in 0..self.copies {
            let (shooter, buyer) = (self.clone(), buyer.clone());
            copies.spawn(async move { shooter.buy(&buyer, intended).await });
        }
        let mut done = Vec::with_capacity(self.copies as usize);
        while let Some(result) = copies.join_next().await {
            done.push(result.expect("a copy of a buy does not panic"));
        }
        done
    }

    /// One buyer: the first try meant for `intended`, then retries with the same key after an
    /// unknown outcome. Returns the attempts and the first try's schedule sample.
    async fn buy(&self, buyer: &Buyer, intended: Instant) -> (Vec<Attempt>, ScheduleSample) {
        let woke = Instant::now();
        let request = self.buy.prepare(buyer);
        let mut attempts = Vec::with_capacity(1);
        let mut intended = intended;
        let mut sample = None;
        for try_number in 0..self.tries {
            let attempt = self.send_once(buyer, &request, try_number, intended).await;
            self.probe.record(&attempt);
            sample.get_or_insert(ScheduleSample {
                intended_us: attempt.intended_us,
                woke_us: micros_since(self.origin, woke),
                sent_us: attempt.sent_us,
            });
            let unknown = attempt.outcome == Outcome::Unknown;
            attempts.push(attempt);
            if !unknown {
                break;
            }
            tokio::time::sleep(self.backoff).await;
            intended = Instant::now();
        }
        let sample = sample.expect("a buyer makes at least one try");
        (attempts, sample)
    }

    async fn send_once(
        &self,
        buyer: &Buyer,
        prepared: &PreparedBuy,
        try_number: u32,
        intended: Instant,
    ) -> Attempt {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let sent = Instant::now();
        self.probe.sent.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .client
            .request(prepared.method.clone(), &prepared.url)
            .headers(prepared.headers.clone());
        if let Some(body) = &prepared.body {
            request = request.body(body.clone());
        }
        let request = request.send();
        let answer = tokio::time::timeout(self.timeout, async {
            let response = request.await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        })
        .await;
        let completed = Instant::now();
        let (outcome, status, code, order_id) = classify(answer, &self.buy);
        Attempt {
            seq: 0,
            buyer: buyer.buyer_id.clone(),
            idempotency_key: buyer.idempotency_key.clone(),
            quantity: buyer.quantity,
            try_number,
            intended_us: micros_since(self.origin, intended),
            sent_us: micros_since(self.origin, sent),
            completed_us: micros_since(self.origin, completed),
            outcome,
            status,
            code,
            order_id,
        }
    }
}

/// Opens the pool's connections before doors open, so the burst measures the server, not TCP
/// handshakes.
async fn warm_up(client: &reqwest::Client, base_url: &str, connections: usize) {
    let url = format!("{}/health", base_url.trim_end_matches('/'));
    let probes = (0..connections).map(|_| {
        let request = client.get(&url).timeout(Duration::from_secs(5)).send();
        async move {
            if let Ok(response) = request.await {
                let _ = response.bytes().await;
            }
        }
    });
    futures_join_all(probes).await;
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for handle in handles {
        let _ = handle.await;
    }
}

type Classified = (Outcome, Option<u16>, Option<Code>, Option<String>);

/// Maps an answer to an outcome: a transport failure or a timeout is `unknown` (the request may
/// have been acted on); an answer that arrived is read by the profile's rules.
fn classify(
    answer: Result<Result<(u16, bytes::Bytes), reqwest::Error>, tokio::time::error::Elapsed>,
    buy: &BuyTemplate,
) -> Classified {
    let (status, bytes) = match answer {
        Err(_) => return (Outcome::Unknown, None, Some(Code::new("timeout")), None),
        Ok(Err(err)) => {
            let kind = if err.is_connect() {
                "connect"
            } else if err.is_timeout() {
                "timeout"
            } else {
                "transport"
            };
            return (Outcome::Unknown, None, Some(Code::new(kind)), None);
        }
        Ok(Ok(answer)) => answer,
    };
    let (outcome, code, order_id) = buy.classify(status, &bytes);
    (outcome, Some(status), code, order_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn ok(status: u16, body: &str) -> Classified {
        let profile = crate::profile::Profile::openapi("t");
        let buy = BuyTemplate::new(&profile.buy, "http://127.0.0.1:1", "s", None);
        classify(Ok(Ok((status, bytes::Bytes::from(body.to_owned())))), &buy)
    }

    /// The built-in openapi profile reads answers exactly as the harness did before profiles.
    #[test]
    fn only_a_201_with_an_order_id_is_ok_and_5xx_is_unknown() {
        assert_eq!(ok(201, r#"{"order_id":"o1"}"#).0, Outcome::Ok);
        assert_eq!(ok(201, "{}").0, Outcome::Unknown);
        let sold_out = ok(409, r#"{"error":{"code":"sold_out"}}"#);
        assert_eq!(
            (sold_out.0, sold_out.2.as_deref()),
            (Outcome::Rejected, Some("sold_out"))
        );
        assert_eq!(ok(429, "slow down").2.as_deref(), Some("http_429"));
        assert_eq!(ok(408, "").0, Outcome::Unknown);
        let unavailable = ok(503, r#"{"error":{"code":"unavailable"}}"#);
        assert_eq!(
            (unavailable.0, unavailable.2.as_deref()),
            (Outcome::Unknown, Some("unavailable"))
        );
        assert_eq!(ok(500, "<html>").2.as_deref(), Some("http_500"));
    }

    #[test]
    fn buyers_repeat_with_the_seed_and_keys_are_unique_per_run() {
        let scenario = Scenario::from_toml_str(
            "[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
             [buyers]\ncount = 50\nquantity = { min = 1, max = 3 }\n",
            "t",
        )
        .unwrap();
        let a = plan_buyers(&scenario, 7, "run-a");
        let b = plan_buyers(&scenario, 7, "run-b");
        let c = plan_buyers(&scenario, 8, "run-a");
        let quantities = |buyers: &[Buyer]| buyers.iter().map(|b| b.quantity).collect::<Vec<_>>();
        assert_eq!(quantities(&a), quantities(&b));
        assert_ne!(quantities(&a), quantities(&c));
        assert!(a.iter().all(|b| (1..=3).contains(&b.quantity)));
        let keys: std::collections::HashSet<_> =
            a.iter().chain(&b).map(|b| &b.idempotency_key).collect();
        assert_eq!(keys.len(), 100);
    }

    #[test]
    fn journeys_are_drawn_apart_from_quantities_and_only_within_reserve_within() {
        let text = |journeys: &str| {
            format!(
                "[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
                 [buyers]\ncount = 100\nquantity = {{ min = 1, max = 3 }}\n\
                 [arrival]\nmodel = \"constant-rate\"\nrate = 100\n{journeys}"
            )
        };
        let plain = Scenario::from_toml_str(&text(""), "t").unwrap();
        let journeys = Scenario::from_toml_str(
            &text(
                "[journeys]\nreserve_first = 0.5\nreserve_within = \"490ms\"\nhold_ttl = \"1s\"\n\
                 think = { min = \"10ms\", max = \"20ms\" }\n\
                 then = { checkout = 1.0 }\n",
            ),
            "t",
        )
        .unwrap();
        let a = plan_buyers(&plain, 3, "r");
        let b = plan_buyers(&journeys, 3, "r");
        let quantities = |buyers: &[Buyer]| buyers.iter().map(|b| b.quantity).collect::<Vec<_>>();
        assert_eq!(
            quantities(&a),
            quantities(&b),
            "journeys change no quantity"
        );
        assert!(a.iter().all(|b| b.journey.is_none()));
        // 100 per second: buyers 0..=49 are sent within 490 ms, about half of them reserve.
        let reserving: Vec<usize> = (0..b.len()).filter(|&i| b[i].journey.is_some()).collect();
        assert!(reserving.iter().all(|&i| i <= 49), "{reserving:?}");
        assert!((10..=40).contains(&reserving.len()), "{reserving:?}");
        let journey = b[reserving[0]].journey.unwrap();
        assert_eq!(journey.end, crate::scenario::JourneyEnd::Checkout);
        assert!((10..=20).contains(&(journey.think.as_millis() as u64)));
    }

    #[test]
    fn fewer_distinct_buyers_than_requests_send_several_requests_each_with_its_own_key() {
        let text = |distinct: &str| {
            format!(
                "[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
                 [buyers]\ncount = 7\nquantity = 1\n{distinct}"
            )
        };
        let scenario = Scenario::from_toml_str(&text("distinct = 3\n"), "t").unwrap();
        let buyers = plan_buyers(&scenario, 7, "run");
        let ids: Vec<&str> = buyers.iter().map(|b| b.buyer_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "buyer-00000",
                "buyer-00001",
                "buyer-00002",
                "buyer-00000",
                "buyer-00001",
                "buyer-00002",
                "buyer-00000"
            ]
        );
        let keys: std::collections::HashSet<_> =
            buyers.iter().map(|b| &b.idempotency_key).collect();
        assert_eq!(keys.len(), 7, "each request has its own key");

        // Without `distinct`, every request has a buyer of its own, as before.
        let scenario = Scenario::from_toml_str(&text(""), "t").unwrap();
        let ids: std::collections::HashSet<_> = plan_buyers(&scenario, 7, "run")
            .into_iter()
            .map(|b| b.buyer_id)
            .collect();
        assert_eq!(ids.len(), 7);
    }
}
