//! Proof that the latency correction works: a stand-in server that stalls every request for one
//! second on purpose, a constant-rate load through one connection, and the latency of the
//! shoppers who arrived during the stall measured both ways.
//!
//! Through one connection, the stalled request holds the pool and every shopper behind it waits
//! to be sent. Measured from the actual send (what a tool that suffers coordinated omission
//! reports) almost all of them look fast; measured from the intended send (what they waited)
//! they waited up to the whole second. The harness must report the second figure, and must
//! blame the server, not itself: the generator kept its schedule, its buyers were late only
//! because the pool was busy.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use flashsale_harness::history::{Attempt, Outcome};
use flashsale_harness::latency::{LatencyStats, new_histogram, record};
use flashsale_harness::load::buyers::{self as load, LoadProbe, LoadTarget};
use flashsale_harness::load::health::GeneratorReport;
use flashsale_harness::load::request::BuyTemplate;
use flashsale_harness::profile::Profile;
use flashsale_harness::scenario::Scenario;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// When the stand-in server stalls: every request that arrives in the window is answered at
/// its end.
#[derive(Default)]
struct Stall {
    window: OnceCell<(Instant, Instant)>,
}

async fn buy(State(stall): State<Arc<Stall>>) -> (StatusCode, &'static str) {
    if let Some((from, until)) = stall.window.get() {
        let now = Instant::now();
        if (*from..*until).contains(&now) {
            tokio::time::sleep_until(*until).await;
        }
    }
    (StatusCode::CREATED, r#"{"order_id":"o"}"#)
}

fn stats_of(attempts: &[&Attempt], latency: impl Fn(&Attempt) -> u64) -> LatencyStats {
    let mut h = new_histogram();
    for attempt in attempts {
        record(&mut h, latency(attempt));
    }
    LatencyStats::of(&h)
}

/// One run of the scenario against a fresh stand-in server: the load's outcome, its clock origin
/// and the stall window.
async fn stalled_run() -> (load::LoadRun, Instant, Instant, Instant) {
    let stall = Arc::new(Stall::default());
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/sales/{sale}/orders", post(buy))
        .with_state(stall.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let scenario = Scenario::from_toml_str(
        r#"
[sale]
cap = "unlimited"
[[sale.products]]
id = "p"
price_cents = 1
[buyers]
count = 500
quantity = 1
connections = 1
[arrival]
model = "constant-rate"
rate = 200
open_after = "100ms"
[requests]
timeout = "5s"
"#,
        "stall",
    )
    .unwrap();
    let buyers = load::plan_buyers(&scenario, 1, "stall");
    let client = load::warmed_client(&scenario, &base_url, buyers.len()).await;
    let origin = Instant::now();
    let doors_open = origin + scenario.arrival.open_after();
    let (stall_from, stall_until) = (
        doors_open + Duration::from_millis(500),
        doors_open + Duration::from_millis(1_500),
    );
    stall.window.set((stall_from, stall_until)).unwrap();
    let run = load::run_load(
        client,
        &scenario,
        &LoadTarget {
            buy: Arc::new(BuyTemplate::new(
                &Profile::openapi("t").buy,
                &base_url,
                "s",
                None,
            )),
            holds: None,
        },
        buyers,
        origin,
        doors_open,
        Arc::new(LoadProbe::default()),
    )
    .await;
    (run, origin, stall_from, stall_until)
}

/// How often the scenario may run: a run in which the machine itself made the generator fall
/// behind (a loaded 2-core CI box) measures the machine, not the correction, so the scenario is
/// run again, at most this many times in all. The assertions below are judged once, on the last
/// run, whatever it shows.
const RUNS_AT_MOST: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stall_shows_in_the_corrected_p99_and_not_in_the_uncorrected_one() {
    let mut runs = 0;
    let (run, origin, stall_from, stall_until) = loop {
        runs += 1;
        let measured = stalled_run().await;
        let report = GeneratorReport::assess(&measured.0.generator, &measured.0.history);
        if !report.bound || runs == RUNS_AT_MOST {
            break measured;
        }
        eprintln!(
            "run {runs}: the generator was bound ({:?}); the machine is loaded, running the \
             scenario again",
            report.reasons
        );
    };
    assert_eq!(run.history.len(), 500, "every shopper sent, none dropped");
    assert!(run.history.iter().all(|a| a.outcome == Outcome::Ok));
    let us = |at: Instant| at.duration_since(origin).as_micros() as u64;
    let in_stall: Vec<&Attempt> = run
        .history
        .iter()
        .filter(|a| (us(stall_from)..us(stall_until)).contains(&a.intended_us))
        .collect();
    assert!(
        in_stall.len() >= 190,
        "{} shoppers in the stall",
        in_stall.len()
    );
    let corrected = stats_of(&in_stall, Attempt::response_latency_us);
    let uncorrected = stats_of(&in_stall, Attempt::service_latency_us);
    eprintln!(
        "{} shoppers arrived during the 1 s stall: p99 from intended send {} µs, from actual send \
         {} µs (max {} µs vs {} µs)",
        in_stall.len(),
        corrected.p99_us,
        uncorrected.p99_us,
        corrected.max_us,
        uncorrected.max_us
    );
    assert!(
        corrected.p99_us > 800_000,
        "the shoppers who arrived as the stall began waited most of it: {corrected:?}"
    );
    assert!(
        uncorrected.p99_us < 50_000,
        "sent once the stall was over, they look fast from the send: {uncorrected:?}"
    );
    assert!(corrected.p99_us > 20 * uncorrected.p99_us);

    // The shoppers were sent late, and counted as such, but the generator kept its schedule:
    // the run is the server's, not generator-bound.
    let generator = GeneratorReport::assess(&run.generator, &run.history);
    eprintln!(
        "late sends {} of {}, schedule lag p99 {} µs, connection wait p99 {} µs",
        generator.late_sends.count,
        run.history.len(),
        generator.schedule_lag_us.p99_us,
        generator.connection_wait_us.p99_us
    );
    assert!(generator.late_sends.count >= 150, "{generator:?}");
    assert!(
        generator.connection_wait_us.max_us > 800_000,
        "{generator:?}"
    );
    assert!(!generator.bound, "{:?}", generator.reasons);
}
