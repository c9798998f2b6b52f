//! `flashsale blast` records every attempt: against a stand-in server that counts what it
//! answered (every fifth request with a 500), the attempts recorded equal the requests the
//! server saw and the 500s are the errors. Nothing here is about speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use flashsale_harness::load::blast::{self, BlastOptions, BlastSummary, ShotOutcome};

#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    failed: AtomicU64,
}

async fn health(State(seen): State<Arc<Seen>>) -> (StatusCode, &'static str) {
    let n = seen.requests.fetch_add(1, Ordering::SeqCst);
    if n % 5 == 4 {
        seen.failed.fetch_add(1, Ordering::SeqCst);
        (StatusCode::INTERNAL_SERVER_ERROR, "boom")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// Serves `handler` at `path` on a loopback port with `seen` as its state, and blasts it with
/// 4 connections on 2 threads: the run, its summary, and the server's task.
async fn blast_served<H, T>(
    path: &str,
    handler: H,
    seen: &Arc<Seen>,
    duration: Duration,
    timeout: Duration,
) -> (
    blast::BlastRun,
    BlastSummary,
    tokio::task::JoinHandle<std::io::Result<()>>,
)
where
    H: axum::handler::Handler<T, Arc<Seen>>,
    T: 'static,
{
    let app = Router::new()
        .route(path, get(handler))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let options = BlastOptions::new(&url, "GET", &[], 4, 2, duration, timeout)
        .await
        .unwrap();
    let run = blast::blast(&options).await.unwrap();
    let summary = BlastSummary::of(&options, &run);
    (run, summary, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_recorded_and_500s_are_errors() {
    let seen = Arc::new(Seen::default());
    let (run, summary, server) = blast_served(
        "/health",
        health,
        &seen,
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .await;

    let requests = seen.requests.load(Ordering::SeqCst);
    let failed = seen.failed.load(Ordering::SeqCst);
    assert!(requests > 0, "the server saw no request");
    assert_eq!(
        run.shots.len() as u64,
        requests,
        "one recorded attempt per request"
    );
    assert_eq!(summary.requests, requests);
    assert_eq!(summary.errors, failed, "{summary:?}");
    assert_eq!(summary.errors_by_kind.get("http_500"), Some(&failed));
    assert_eq!(summary.statuses.get(&500), Some(&failed));
    assert_eq!(summary.ok, requests - failed);
    assert_eq!(
        summary.latency.count, requests,
        "every attempt is in the histogram"
    );
    assert!(run.shots.iter().all(|s| s.outcome == ShotOutcome::Answered));
    assert!(run.shots.windows(2).all(|w| w[0].start_us <= w[1].start_us));
    server.abort();
}

#[tokio::test]
async fn nothing_listening_is_a_setup_error_naming_the_url() {
    // Bind then drop, so the port is (almost certainly) closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/health");
    let options = BlastOptions::new(
        &url,
        "GET",
        &[],
        2,
        2,
        Duration::from_millis(100),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let err = blast::blast(&options).await.unwrap_err().to_string();
    assert!(
        err.contains(&url) && err.contains("Is the server running"),
        "{err}"
    );
}

/// Every third answer ends its connection (`Connection: close`) and one request in fifty is
/// answered after the timeout: the closed connections are reopened without a failed attempt, and
/// each slow request is recorded once, as a timeout, whose connection is then reopened.
async fn closing_and_slow(State(seen): State<Arc<Seen>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = seen.requests.fetch_add(1, Ordering::SeqCst);
    if n % 50 == 49 {
        seen.failed.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if n % 3 == 2 {
        ([(axum::http::header::CONNECTION, "close")], "bye").into_response()
    } else {
        "ok".into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_are_reopened_and_slow_answers_are_timeouts() {
    let seen = Arc::new(Seen::default());
    let (_, summary, server) = blast_served(
        "/",
        closing_and_slow,
        &seen,
        Duration::from_millis(500),
        // Far above a normal answer even on a loaded machine, far below the slow one's 1.5 s.
        Duration::from_millis(500),
    )
    .await;
    // Let the slow handlers still sleeping finish, so the server's counts are final.
    tokio::time::sleep(Duration::from_millis(1600)).await;

    let requests = seen.requests.load(Ordering::SeqCst);
    let slow = seen.failed.load(Ordering::SeqCst);
    assert!(slow > 0, "no request was slow: {summary:?}");
    assert_eq!(summary.requests, requests, "{summary:?}");
    assert_eq!(
        summary.errors_by_kind.get("timeout"),
        Some(&slow),
        "{summary:?}"
    );
    assert_eq!(
        summary.errors, slow,
        "a closed connection is no error: {summary:?}"
    );
    server.abort();
}
