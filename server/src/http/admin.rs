//! Admin routes (bearer token): create a sale, activate and expire it by hand, export the order
//! ledger and the inventory view. The export is how the harness reads the ground truth of a
//! server whose database it cannot see.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Value, json};

use super::{AppState, body};
use crate::error::{ApiError, ErrorCode};
use crate::jobs::lifecycle::{self, Activation};
use crate::ledger::{claims, orders};
use crate::sales::{self, NewSale, SaleState, sale_not_found};

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match header.and_then(|h| h.strip_prefix("Bearer ")) {
            Some(token) if state.settings.admin_token.matches(token) => Ok(Admin),
            Some(_) => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the admin token is wrong",
            )),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "send the admin token as `Authorization: Bearer <token>`",
            )),
        }
    }
}

pub async fn create_sale(
    _admin: Admin,
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let raw_body = body::read(request, state.settings.body_read_timeout).await?;
    let value = body::value_from_slice(&raw_body)?;
    let new: NewSale = serde_json::from_value(value)
        .map_err(|err| ApiError::invalid_field("body", err.to_string()))?;
    let sale = sales::create(&state.pool, &new, state.inventory.ledger_kind()).await?;
    Ok((StatusCode::CREATED, Json(json!(sale))))
}

/// Activation by hand: an operator's override, so no preflight (the activation job runs it); the
/// sale's wishlist alerts are planned as when the job activates it.
pub async fn activate(
    _admin: Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(&raw_id)?;
    let mut tx = state.pool.begin().await?;
    let outcome = lifecycle::activate(&mut tx, id, false).await?;
    tx.commit().await?;
    state.sales.invalidate(id);
    match outcome {
        Activation::NotFound => Err(sale_not_found(id)),
        Activation::Expired => Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "a expired sale cannot become active",
        )),
        Activation::Activated { .. } | Activation::AlreadyActive | Activation::Refused(_) => {
            let sale = sales::load(&state.pool, id)
                .await?
                .ok_or_else(|| sale_not_found(id))?;
            Ok(Json(json!(sale)))
        }
    }
}

pub async fn expire(
    _admin: Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    transition(state, &raw_id, SaleState::Expired).await
}

async fn transition(
    state: AppState,
    raw_id: &str,
    target: SaleState,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(raw_id)?;
    let result = sales::transition(&state.pool, id, target).await;
    state.sales.invalidate(id);
    Ok(Json(json!(result?)))
}

pub async fn export_orders(
    _admin: Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(&raw_id)?;
    sales::load(&state.pool, id)
        .await?
        .ok_or_else(|| sale_not_found(id))?;
    let orders = orders::for_sale(&state.pool, id).await?;
    Ok(Json(json!({ "sale_id": id, "orders": orders })))
}

pub async fn inventory(
    _admin: Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(&raw_id)?;
    let sale = sales::load(&state.pool, id)
        .await?
        .ok_or_else(|| sale_not_found(id))?;
    let units_in_orders = orders::units_in_orders(&state.pool, id).await?;
    let slots_taken = claims::units_claimed(&state.pool, id).await?;
    let units_in_live_holds = crate::ledger::holds::units_held(&state.pool, id).await?;
    let (quantity_sold,): (i64,) =
        sqlx::query_as("SELECT quantity_sold FROM flash_sales WHERE id = $1")
            .bind(id)
            .fetch_one(&state.pool)
            .await?;
    let (redis_counter, redis_error) = match state.inventory.redis() {
        None => (None, None),
        Some(redis) => match redis.read(id).await {
            Ok(counter) => (counter, None),
            Err(failure) => (None, Some(failure.to_string())),
        },
    };
    Ok(Json(json!({
        "sale_id": id,
        "cap": sale.cap,
        "redis_counter": redis_counter,
        "redis_error": redis_error,
        "quantity_sold": quantity_sold,
        "units_in_orders": units_in_orders,
        "slots_taken": slots_taken,
        "units_in_live_holds": units_in_live_holds,
        "ledger": sale.ledger,
        "strategy": state.inventory.name(),
        "redis_breaker": format!("{:?}", state.inventory.breaker_state()).to_lowercase(),
    })))
}
