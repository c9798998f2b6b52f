//! Cart-hold routes (issue 15): reserve, check out, release, and the admin export.
//!
//! Validated like buys, before anything is held: key, body, quantity, sale, window, product. A
//! reservation's `Idempotency-Key` is the buyer's, like a buy's (a retry with the same body gets
//! the same hold, another body is a conflict). Checking out is idempotent by hold: a hold already
//! checked out answers with its order. The ledger keeps the rules (server/README.md, "Cart holds
//! share the slot ledger"); these handlers only name the answers.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::admin::Admin;
use super::buyer::{
    REPLAYED_HEADER, buyer_limit_reached, check_buyer, created, idempotency_key, parse_buy_body,
    sold_out,
};
use super::{AppState, body};
use crate::error::{ApiError, ErrorCode};
use crate::ledger::holds::{self, CheckedOut, Hold, HoldError, HoldRequest};
use crate::sales::{Sale, sale_not_found};

/// A hold's time to live when the request names none: long enough for a checkout form.
pub const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(600);
/// The bounds of `ttl_ms`.
pub const MIN_HOLD_TTL_MS: u64 = 100;
pub const MAX_HOLD_TTL_MS: u64 = 3_600_000;

async fn live_sale(state: &AppState, sale_id: Uuid) -> Result<std::sync::Arc<Sale>, ApiError> {
    let sale = state
        .sales
        .get(&state.pool, sale_id)
        .await?
        .ok_or_else(|| sale_not_found(sale_id))?;
    if let Some(problem) = sale.live_problem(OffsetDateTime::now_utc()) {
        return Err(ApiError::new(
            ErrorCode::SaleNotLive,
            format!("{problem}; nothing was done"),
        ));
    }
    Ok(sale)
}

fn hold_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::HoldNotFound,
            format!("no hold has the id {raw:?} (not a UUID)"),
        )
    })
}

/// `ttl_ms` taken out of a reservation body (the rest is a buy body).
fn take_ttl(map: &mut Map<String, Value>) -> Result<Duration, ApiError> {
    match map.remove("ttl_ms") {
        None | Some(Value::Null) => Ok(DEFAULT_HOLD_TTL),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ms) if (MIN_HOLD_TTL_MS..=MAX_HOLD_TTL_MS).contains(&ms) => {
                Ok(Duration::from_millis(ms))
            }
            _ => Err(ApiError::invalid_field(
                "ttl_ms",
                format!("must be a whole number from {MIN_HOLD_TTL_MS} to {MAX_HOLD_TTL_MS}"),
            )),
        },
        Some(_) => Err(ApiError::invalid_field("ttl_ms", "must be a number")),
    }
}

pub async fn reserve(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let sale_id = body::sale_id(&raw_id)?;
    let key = idempotency_key(&headers)?;
    let raw_body = body::read(request, state.settings.body_read_timeout).await?;
    let mut map = body::object_from_slice(&raw_body)?;
    let ttl = take_ttl(&mut map)?;
    let wanted = parse_buy_body(&map, state.settings.max_quantity_per_order)?;
    let sale = live_sale(&state, sale_id).await?;
    if let Some(limit) = sale.per_buyer_limit {
        if wanted.quantity > i64::from(limit) {
            return Err(super::buyer::quantity_above(
                wanted.quantity,
                i64::from(limit),
            ));
        }
    }
    let product = sale.product(wanted.product_id.as_deref())?;
    let req = HoldRequest {
        sale_id,
        product_id: product.product_id.clone(),
        unit_price_cents: product.sale_price_cents,
        buyer_id: wanted.buyer_id,
        // parse_buy_body bounds it by the per-order limit, itself an i32.
        quantity: i32::try_from(wanted.quantity).unwrap_or(i32::MAX),
        idempotency_key: key,
        ttl,
    };
    if let Some(first) =
        holds::find_by_key(&state.pool, &req.buyer_id, &req.idempotency_key).await?
    {
        return replay_hold(&req, first);
    }
    match state.inventory.reserve(&sale, &req).await {
        Ok(hold) => Ok(hold_answer(StatusCode::CREATED, hold, false)),
        Err(HoldError::DuplicateKey) => {
            match holds::find_by_key(&state.pool, &req.buyer_id, &req.idempotency_key).await? {
                Some(first) => replay_hold(&req, first),
                None => Err(ApiError::unavailable("the hold database")
                    .with_cause("the hold's key conflicted, but no hold with that key was found")),
            }
        }
        Err(err) => Err(hold_error(
            err,
            &req.buyer_id,
            req.quantity,
            sale.per_buyer_limit,
        )),
    }
}

fn replay_hold(req: &HoldRequest, first: Hold) -> Result<Response, ApiError> {
    if req.same_request_as(&first) {
        Ok(hold_answer(StatusCode::CREATED, first, true))
    } else {
        Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used for a different hold; use a new key",
        )
        .with_details(json!({ "hold_id": first.hold_id })))
    }
}

fn hold_answer(status: StatusCode, hold: Hold, replayed: bool) -> Response {
    let mut response = (status, Json(hold)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// Each way a hold operation is refused, as the contract names it.
fn hold_error(err: HoldError, buyer_id: &str, quantity: i32, limit: Option<i32>) -> ApiError {
    match err {
        HoldError::SoldOut => sold_out(),
        HoldError::NotFound => ApiError::new(ErrorCode::HoldNotFound, "no such hold in this sale"),
        HoldError::NotYours => ApiError::new(
            ErrorCode::HoldNotYours,
            "this hold is another buyer's; nothing was done",
        ),
        HoldError::Expired => ApiError::new(
            ErrorCode::HoldExpired,
            "the hold expired before it was checked out; its units went back to the sale",
        ),
        HoldError::Released => ApiError::new(
            ErrorCode::HoldReleased,
            "the hold was released; its units went back to the sale",
        ),
        HoldError::QuantityMismatch { held } => ApiError::new(
            ErrorCode::QuantityNotHeld,
            format!("the hold is for {held} units; check out that quantity (or leave it out)"),
        )
        .with_details(json!({ "held": held })),
        HoldError::BuyerLimit => buyer_limit_reached(buyer_id, quantity, limit),
        HoldError::DuplicateKey => ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key already names another of the buyer's orders; use a new key",
        ),
        HoldError::SlotTaken | HoldError::Database(_) => ApiError::unavailable("the hold database")
            .with_cause(format!("hold operation not completed: {err}")),
    }
}

/// `{"buyer_id", "quantity"?}` (checkout) or `{"buyer_id"}` (release).
fn buyer_body(bytes: &[u8], quantity_allowed: bool) -> Result<(String, Option<i32>), ApiError> {
    let map = body::object_from_slice(bytes)?;
    if let Some(unknown) = map
        .keys()
        .find(|k| !(k.as_str() == "buyer_id" || (quantity_allowed && k.as_str() == "quantity")))
    {
        return Err(ApiError::new(
            ErrorCode::UnknownField,
            format!("unknown field {unknown:?}"),
        )
        .with_details(json!({ "field": unknown })));
    }
    let buyer_id = match map.get("buyer_id") {
        Some(Value::String(s)) => {
            check_buyer(s)?;
            s.clone()
        }
        None | Some(Value::Null) => return Err(ApiError::invalid_field("buyer_id", "is required")),
        Some(_) => return Err(ApiError::invalid_field("buyer_id", "must be a string")),
    };
    let quantity = match map.get("quantity") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64().and_then(|q| i32::try_from(q).ok()) {
            Some(q) if q >= 1 => Some(q),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuantity,
                    format!("quantity must be a whole number of units, at least 1 (got {n})"),
                ));
            }
        },
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuantity,
                "quantity must be a whole number of units",
            ));
        }
    };
    Ok((buyer_id, quantity))
}

pub async fn checkout(
    State(state): State<AppState>,
    Path((raw_sale, raw_hold)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let sale_id = body::sale_id(&raw_sale)?;
    let hold_id = hold_id(&raw_hold)?;
    let key = idempotency_key(&headers)?;
    let raw_body = body::read(request, state.settings.body_read_timeout).await?;
    let (buyer_id, quantity) = buyer_body(&raw_body, true)?;
    let sale = live_sale(&state, sale_id).await?;
    match state
        .inventory
        .checkout(sale_id, hold_id, &buyer_id, quantity, &key)
        .await
    {
        Ok(CheckedOut::New(order)) => Ok(created(order, false)),
        Ok(CheckedOut::Already(order)) => Ok(created(order, true)),
        Err(err) => Err(hold_error(
            err,
            &buyer_id,
            quantity.unwrap_or(0),
            sale.per_buyer_limit,
        )),
    }
}

pub async fn release(
    State(state): State<AppState>,
    Path((raw_sale, raw_hold)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let sale_id = body::sale_id(&raw_sale)?;
    let hold_id = hold_id(&raw_hold)?;
    let raw_body = body::read(request, state.settings.body_read_timeout).await?;
    let (buyer_id, _) = buyer_body(&raw_body, false)?;
    state
        .sales
        .get(&state.pool, sale_id)
        .await?
        .ok_or_else(|| sale_not_found(sale_id))?;
    let hold = state
        .inventory
        .release(sale_id, hold_id, &buyer_id)
        .await
        .map_err(|err| hold_error(err, &buyer_id, 0, None))?;
    if hold.state == "checked_out" {
        return Err(ApiError::new(
            ErrorCode::HoldCheckedOut,
            "the hold was checked out; its units are in its order",
        )
        .with_details(json!({ "order_id": hold.order_id })));
    }
    Ok(hold_answer(StatusCode::OK, hold, false))
}

pub async fn export_holds(
    _admin: Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(&raw_id)?;
    crate::sales::load(&state.pool, id)
        .await?
        .ok_or_else(|| sale_not_found(id))?;
    let holds = holds::for_sale(&state.pool, id).await?;
    Ok(Json(json!({ "sale_id": id, "holds": holds })))
}
