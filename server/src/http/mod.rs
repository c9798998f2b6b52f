//! The HTTP surface: buyer routes, admin routes, and the JSON error envelope for everything else.
//! `server/openapi.json` is the contract; a test keeps routes and error codes in step with it.

mod admin;
mod alerts;
mod body;
mod buyer;
mod holds;
mod request_id;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post, put};
use serde_json::json;
use sqlx::PgPool;

use crate::error::{ApiError, ErrorCode};
use crate::inventory::ClaimStrategy;
use crate::metrics::ServerMetrics;
use crate::sales::SaleCache;
use crate::settings::Settings;

/// Bodies are small JSON documents; anything bigger is refused while it is read (HAZ-11). Every
/// route with a body reads it through `body::read`, which holds this limit itself, so no axum
/// `DefaultBodyLimit` layer marks each request with it.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared by every handler. axum clones the state for every request that extracts it, so the
/// fields sit behind one `Arc`: a clone is one reference count, not one per field (`perf record`
/// on the sold-out route put the per-field clones and drops at ~1 % of the server's samples).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateFields>);

impl AppState {
    pub fn new(fields: AppStateFields) -> Self {
        Self(Arc::new(fields))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateFields;

    fn deref(&self) -> &AppStateFields {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Debug)]
pub struct AppStateFields {
    pub pool: PgPool,
    /// Decides claims and answers key lookups: the correct `Inventory`, or a strategy made
    /// outside the server (see [`ClaimStrategy`]).
    pub inventory: Arc<dyn ClaimStrategy>,
    pub sales: Arc<SaleCache>,
    pub settings: Settings,
    /// What `GET /metrics` exposes (`crate::metrics`).
    pub metrics: Arc<ServerMetrics>,
}

/// The router, without a socket: tests call it directly, `build` serves it.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/sales/{sale_id}", get(buyer::get_sale))
        .route("/sales/{sale_id}/orders", post(buyer::buy))
        .route("/sales/{sale_id}/holds", post(holds::reserve))
        .route(
            "/sales/{sale_id}/holds/{hold_id}/checkout",
            post(holds::checkout),
        )
        .route(
            "/sales/{sale_id}/holds/{hold_id}/release",
            post(holds::release),
        )
        .route("/wishlist", post(alerts::put_wishlist))
        .route("/admin/products/{product_id}", put(alerts::put_product))
        .route("/admin/sales", post(admin::create_sale))
        .route("/admin/sales/{sale_id}/preflight", post(alerts::preflight))
        .route("/admin/sales/{sale_id}/alerts", get(alerts::export_alerts))
        .route("/admin/sales/{sale_id}/activate", post(admin::activate))
        .route("/admin/sales/{sale_id}/expire", post(admin::expire))
        .route("/admin/sales/{sale_id}/orders", get(admin::export_orders))
        .route("/admin/sales/{sale_id}/inventory", get(admin::inventory))
        .route("/admin/sales/{sale_id}/holds", get(holds::export_holds))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(request_id::tag_and_log))
        .with_state(state)
}

/// `POST /sales/{id}/orders` answered without the router, when `{id}` is a plain path segment (not
/// empty, no `/`, no `%`, so that axum's percent-decoding would leave it as it is): the same
/// answer the router would give, from the same code (`buyer::answer_buy`) and the same request-id
/// step, without the router's own work for each request (the route lookup, the capture stored in
/// the request and decoded again, the body boxed, the middleware's boxed call). That work was the
/// largest piece of a sold-out answer's cost that the server could still avoid (G2,
/// docs/performance.md). Any other request is given back, for the router.
pub(crate) fn direct_buy(
    state: &AppState,
    request: hyper::Request<hyper::body::Incoming>,
) -> Route {
    const PREFIX: &str = "/sales/";
    let plain_id = (request.method() == axum::http::Method::POST)
        .then(|| request.uri().path())
        .and_then(|path| path.strip_prefix(PREFIX)?.strip_suffix("/orders"))
        .filter(|id| !id.is_empty() && !id.contains(['/', '%']))
        .map(str::len);
    let Some(id_len) = plain_id else {
        return Route::ToRouter(request);
    };
    let state = state.clone();
    Route::Answered(Box::pin(async move {
        let id = request_id::request_id(request.headers());
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let raw_id = &path[PREFIX.len()..PREFIX.len() + id_len];
        let answer = buyer::answer_buy(&state, raw_id, &parts.headers, body).await;
        request_id::tag_and_log_answer(&id, &parts.method, path, answer)
    }))
}

/// What [`direct_buy`] made of a request: its answer on the way, or the request, for the router.
///
/// The answer is boxed: the future hyper keeps for each request is as large as its largest arm,
/// and with the buy's whole decision inline every other request paid for moving it (`/health`
/// ~3 % slower under wrk, ~0.25 µs of server time per request). One allocation per buy is less.
// Made and taken apart once per request, within one function: boxing the request would cost an
// allocation on every request instead.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Route {
    Answered(std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>),
    ToRouter(hyper::Request<hyper::body::Incoming>),
}

/// What a connection beyond the limit is served (see `serve.rs`): `/health` answers, so a probe
/// still learns the process is up, and everything else is refused without touching a database.
pub(crate) fn refusal_router() -> Router {
    Router::new()
        .route("/health", get(health))
        .fallback(too_many_connections)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Prometheus text exposition (`crate::metrics`). Unauthenticated like `/health`: it holds
/// counts and timings, no buyer, order or sale data, and scrapers expect an open endpoint.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    use crate::inventory::breaker::BreakerState;
    let breaker = match state.inventory.breaker_state() {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    };
    let text = state
        .metrics
        .render(breaker, &state.pool, state.settings.db_pool_size);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn too_many_connections() -> ApiError {
    // Logged once per saturation by the accept loop, not once per refused request.
    ApiError::new(
        ErrorCode::TooManyConnections,
        "the server is at its connection limit; nothing was done, try again shortly",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}
