//! Proof that the conformance check judges both ways: against the reference server every case
//! holds; behind a proxy that breaks four answers on purpose, exactly those four cases are
//! violated and every other one still holds.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flashsale_harness::conformance::{self, ConformanceReport};
use flashsale_harness::target::{Dependencies, InProcessServer, ServerOverrides};
use flashsale_mutants::InventoryStrategy;
use serde_json::{Value, json};

async fn reference_server() -> InProcessServer {
    InProcessServer::start(
        &Dependencies::from_env(),
        InventoryStrategy::Redis,
        &ServerOverrides::default(),
        false,
    )
    .await
    .expect("the reference server starts (PostgreSQL and Redis must run)")
}

fn explain(report: &ConformanceReport) -> String {
    let lines: Vec<String> = report.cases.iter().map(ToString::to_string).collect();
    format!("{}\n{}", report.summary(), lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_holds_every_case() {
    let server = reference_server().await;
    let report = conformance::check(&server.base_url, &server.admin_token).await;
    server.shutdown().await;
    // Shown with `--nocapture`: the cases as a reader of the report sees them.
    eprintln!("{}", explain(&report));
    assert!(report.cases.len() >= 50, "{}", explain(&report));
    assert!(report.all_held(), "{}", explain(&report));
    // Every refusal compared the ledgers before and after.
    let refusals_compared = report
        .cases
        .iter()
        .filter(|c| c.ledger_unchanged == Some(true))
        .count();
    assert!(refusals_compared >= 35, "{}", explain(&report));
    let names: HashSet<&str> = report.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), report.cases.len(), "case names are unique");
    // The report is self-explaining JSON.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["cases"][0]["verdict"], "held");
}

/// A proxy in front of the reference server that breaks the contract in four places.
#[derive(Clone)]
struct Breaking {
    backend: String,
    http: reqwest::Client,
    expired: Arc<Mutex<HashSet<String>>>,
}

fn error(status: StatusCode, code: &str) -> Response {
    let body = json!({"error": {"code": code, "message": "from the breaking proxy"}});
    (status, axum::Json(body)).into_response()
}

async fn breaking(
    State(proxy): State<Breaking>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    mut body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if method == Method::POST && path.starts_with("/sales/") && path.ends_with("/orders") {
        match serde_json::from_slice::<Value>(&body) {
            // 1. Malformed JSON answered with the right status and a code the contract lacks.
            Err(_) => return error(StatusCode::BAD_REQUEST, "bad_request"),
            // 2. Quantity 0 is bought as 1.
            Ok(mut value) if value["quantity"] == json!(0) => {
                value["quantity"] = json!(1);
                body = Bytes::from(value.to_string());
            }
            Ok(_) => {}
        }
        // 3. A missing key is refused as documented, but an order is made anyway.
        if !headers.contains_key("idempotency-key") {
            headers.insert(
                "idempotency-key",
                format!("proxy-{}", uuid::Uuid::new_v4()).parse().unwrap(),
            );
            let _ = forward(&proxy, &method, &path, &headers, body).await;
            return error(StatusCode::BAD_REQUEST, "missing_idempotency_key");
        }
    }
    // 4. Expiring a sale twice is refused: `expire` is not idempotent.
    let expiring = method == Method::POST && path.ends_with("/expire");
    if expiring && proxy.expired.lock().unwrap().contains(&path) {
        return error(StatusCode::CONFLICT, "invalid_state_transition");
    }
    let response = forward(&proxy, &method, &path, &headers, body).await;
    if expiring && response.status() == StatusCode::OK {
        proxy.expired.lock().unwrap().insert(path);
    }
    response
}

async fn forward(
    proxy: &Breaking,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = proxy
        .http
        .request(method.clone(), format!("{}{path}", proxy.backend))
        .body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.expect("the reference server answers");
    let status = answer.status();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name == "content-type" || name == "idempotent-replayed" {
            out.insert(name, value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, out, bytes).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_conforming_server_is_violated_on_exactly_the_broken_cases() {
    let server = reference_server().await;
    let proxy = Breaking {
        backend: server.base_url.clone(),
        http: reqwest::Client::new(),
        expired: Arc::default(),
    };
    let app = Router::new().fallback(breaking).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let report = conformance::check(&proxy_url, &server.admin_token).await;
    server.shutdown().await;

    let violated: BTreeSet<&str> = report
        .violations()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let expected = BTreeSet::from([
        "buy/malformed-json",
        "buy/quantity-zero",
        "key/missing",
        "admin/expire-again",
    ]);
    assert_eq!(violated, expected, "{}", explain(&report));
    assert!(report.not_checked().is_empty(), "{}", explain(&report));
    let case = |name: &str| report.cases.iter().find(|c| c.name == name).unwrap();
    // The refusal with the documented status and code is caught by the ledger alone.
    assert_eq!(case("key/missing").ledger_unchanged, Some(false));
    assert!(case("key/missing").got.contains("changed the ledger"));
    assert!(case("buy/malformed-json").got.contains("bad_request"));
    assert_eq!(case("buy/quantity-zero").ledger_unchanged, Some(false));
}
