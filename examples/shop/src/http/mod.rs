//! The shop's HTTP API: `GET /healthz` and `POST /api/v2/drops/{drop_id}/checkout`.

mod checkout;
mod problem;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;

use crate::Shop;
pub use checkout::parse_request;
pub use problem::Problem;

/// A checkout body is three short fields; anything near this size is not one.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The app, without a socket.
pub fn router(shop: Arc<Shop>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v2/drops/{drop_id}/checkout", post(checkout::handle))
        .fallback(|| async { Problem::NoRoute })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shop)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"ok": true}))
}
