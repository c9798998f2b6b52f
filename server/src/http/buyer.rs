//! Buyer routes: read a sale, buy.
//!
//! A buy is validated completely (key, body, quantity, sale, window, product) before anything is
//! claimed, so bad input changes nothing. The idempotency key names one buyer's request (keys are
//! unique per buyer, never across buyers) and is checked before the claim: a retry gets its first
//! order back, even once the sale is sold out (HAZ-8); the same key with a different body is a
//! conflict, never a second order (HAZ-12). A sale's `per_buyer_limit` bounds the units of all the
//! buyer's orders together; the ledger enforces it (migration 0004), this route only names the
//! refusal. Once PostgreSQL has confirmed a
//! sale sold out, both checks are answered from memory (see `ClaimStrategy::sold_out_orders`).

use std::borrow::Cow;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{AppState, body};
use crate::error::{ApiError, ErrorCode, PreparedError};
use crate::ledger::ClaimError;
use crate::ledger::orders::{Order, OrderRequest};
use crate::sales::{Sale, sale_not_found};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The header's name made once: a lookup by `&str` parses and hashes the name for every buy.
static IDEMPOTENCY_HEADER_NAME: HeaderName = HeaderName::from_static(IDEMPOTENCY_HEADER);
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_KEY_LEN: usize = 255;
const MAX_BUYER_LEN: usize = 128;

pub async fn get_sale(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(&raw_id)?;
    let sale = state
        .sales
        .get(&state.pool, id)
        .await?
        .ok_or_else(|| sale_not_found(id))?;
    Ok(Json(public_view(&sale)))
}

fn public_view(sale: &Sale) -> Value {
    let mut view = serde_json::to_value(sale).expect("a sale serialises");
    let live = sale.live_problem(OffsetDateTime::now_utc()).is_none();
    view["live"] = json!(live);
    if let Some(map) = view.as_object_mut() {
        map.remove("ledger");
    }
    view
}

/// The validated buy body.
#[derive(Debug, PartialEq, Eq)]
pub struct BuyBody {
    pub buyer_id: String,
    pub quantity: i64,
    pub product_id: Option<String>,
}

/// The shape of every well-formed buy body. `serde` reads it straight into fields, with no
/// intermediate map: the buy route is the hot path, and sold-out answers are mostly this parse
/// (G2 in docs/performance.md). Anything this shape refuses (an unknown or repeated field, a null, a quantity
/// that is not an integer in range, a wrong type) is read again by [`parse_buy_body`], which
/// names the problem, so the fast path changes no answer (tested).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WellFormedBuy<'a> {
    #[serde(borrow)]
    buyer_id: Cow<'a, str>,
    quantity: i64,
    #[serde(borrow, default)]
    product_id: Option<Cow<'a, str>>,
}

/// Reads and validates a buy body: the typed fast path first, the field-by-field reading when
/// the body is not well-formed.
pub fn read_buy_body(bytes: &[u8], max_quantity: u32) -> Result<BuyBody, ApiError> {
    // UTF-8 checked once for the whole body: reading from a byte slice, serde_json checks each
    // string on its own, which cost more on G2's path (callgrind). A body that is not UTF-8 is
    // not JSON, and the field-by-field reading names that.
    let well_formed = std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| serde_json::from_str::<WellFormedBuy>(text).ok());
    match well_formed {
        Some(fast) => {
            check_buyer(&fast.buyer_id)?;
            check_quantity(fast.quantity, max_quantity)?;
            Ok(BuyBody {
                buyer_id: fast.buyer_id.into_owned(),
                quantity: fast.quantity,
                product_id: fast.product_id.map(Cow::into_owned),
            })
        }
        None => parse_buy_body(&body::object_from_slice(bytes)?, max_quantity),
    }
}

pub(super) fn check_buyer(buyer_id: &str) -> Result<(), ApiError> {
    // Characters, as the contract's maxLength counts them, not UTF-8 bytes. An ASCII id, the
    // usual one, has as many characters as bytes, and its control characters are ASCII's.
    if buyer_id.is_ascii() {
        return if buyer_id.is_empty() || buyer_id.len() > MAX_BUYER_LEN {
            Err(ApiError::invalid_field(
                "buyer_id",
                "must be 1 to 128 characters",
            ))
        } else if buyer_id.bytes().any(|b| b.is_ascii_control()) {
            Err(ApiError::invalid_field(
                "buyer_id",
                "must not contain control characters",
            ))
        } else {
            Ok(())
        };
    }
    if buyer_id.chars().count() > MAX_BUYER_LEN {
        return Err(ApiError::invalid_field(
            "buyer_id",
            "must be 1 to 128 characters",
        ));
    }
    if buyer_id.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "buyer_id",
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_quantity(quantity: i64, max_quantity: u32) -> Result<(), ApiError> {
    if quantity < 1 {
        return Err(ApiError::new(
            ErrorCode::InvalidQuantity,
            format!("quantity must be at least 1 (got {quantity})"),
        ));
    }
    if quantity > i64::from(max_quantity) {
        return Err(quantity_above(quantity, i64::from(max_quantity)));
    }
    Ok(())
}

/// Validates the body field by field, with a precise code for each problem. Quantity must be a
/// JSON integer: fractional, negative, zero and huge values are refused here, before any script
/// could see them (HAZ-11).
pub fn parse_buy_body(map: &Map<String, Value>, max_quantity: u32) -> Result<BuyBody, ApiError> {
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "buyer_id" | "quantity" | "product_id"))
    {
        return Err(ApiError::new(
            ErrorCode::UnknownField,
            format!("unknown field {unknown:?}; expected buyer_id, quantity, product_id"),
        )
        .with_details(json!({ "field": unknown })));
    }
    let buyer_id = match map.get("buyer_id") {
        None | Some(Value::Null) => return Err(ApiError::invalid_field("buyer_id", "is required")),
        Some(Value::String(s)) => {
            check_buyer(s)?;
            s.clone()
        }
        Some(_) => return Err(ApiError::invalid_field("buyer_id", "must be a string")),
    };
    let quantity = match map.get("quantity") {
        None | Some(Value::Null) => return Err(ApiError::invalid_field("quantity", "is required")),
        Some(Value::Number(n)) => {
            if let Some(q) = n.as_i64() {
                q
            } else if n.is_u64() {
                i64::MAX
            } else {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuantity,
                    format!("quantity must be a whole number of units (got {n})"),
                ));
            }
        }
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuantity,
                "quantity must be a whole number of units",
            ));
        }
    };
    check_quantity(quantity, max_quantity)?;
    let product_id = match map.get("product_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid_field("product_id", "must be a string")),
    };
    Ok(BuyBody {
        buyer_id,
        quantity,
        product_id,
    })
}

pub(super) fn quantity_above(quantity: i64, limit: i64) -> ApiError {
    ApiError::new(
        ErrorCode::QuantityAboveLimit,
        format!("quantity {quantity} is above the limit of {limit} per order"),
    )
    .with_details(json!({ "limit": limit }))
}

/// The `Idempotency-Key` header: required, 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(raw) = headers.get(&IDEMPOTENCY_HEADER_NAME) else {
        return Err(ApiError::new(
            ErrorCode::MissingIdempotencyKey,
            "send an Idempotency-Key header (e.g. a UUID) so a retry cannot buy twice",
        ));
    };
    match raw.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(key.to_owned())
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// `POST /sales/{id}/orders` through the router: a buy whose id has a percent-escape, or any buy
/// when the router is served by itself (tests, an embedder). The server's accept loop answers every
/// other buy without the router (`super::direct_buy`), by the same [`answer_buy`].
pub async fn buy(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    request: Request,
) -> Response {
    // The headers are read from the request itself: axum's `HeaderMap` extractor would clone
    // them all for every buy (G2, the sold-out path, is mostly such per-request costs).
    let (parts, body) = request.into_parts();
    answer_buy(&state, &raw_id, &parts.headers, body).await
}

/// Decides a buy and counts its answer in the server's metrics (outcome, the path that decided
/// the order, time).
pub(super) async fn answer_buy<B>(
    state: &AppState,
    raw_id: &str,
    headers: &HeaderMap,
    body: B,
) -> Response
where
    B: hyper::body::Body<Data = axum::body::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = std::time::Instant::now();
    let decided = decide_buy(state, raw_id, headers, body).await;
    let took = started.elapsed();
    let metrics = &state.metrics;
    match &decided {
        Ok(Answer::SoldOutFromMemory) => metrics.sold_out_from_memory(took),
        Ok(Answer::Order(order, replayed)) => {
            let outcome = if *replayed { "replayed" } else { "created" };
            metrics.buy_answered(outcome, &order.decided_by, took)
        }
        Ok(Answer::RefusedByClaim(e)) => metrics.buy_answered(e.code.as_str(), "claim", took),
        Err(e) => metrics.buy_answered(e.code.as_str(), "none", took),
    }
    match decided {
        Ok(Answer::Order(order, replayed)) => created(order, replayed),
        Ok(Answer::SoldOutFromMemory) => SOLD_OUT_FROM_MEMORY.response(),
        Ok(Answer::RefusedByClaim(e)) | Err(e) => e.into_response(),
    }
}

/// The answer to a buy of a sale known to be sold out, serialised once (G2's hot path).
static SOLD_OUT_FROM_MEMORY: std::sync::LazyLock<PreparedError> =
    std::sync::LazyLock::new(|| PreparedError::new(&sold_out()));

/// How a buy was answered, before it is put on the wire.
enum Answer {
    /// The order, and whether it is an earlier request's (replayed).
    Order(Order, bool),
    /// The sale is known to be sold out and the key is new: no round trip was made.
    SoldOutFromMemory,
    /// The claim was made and refused (sold out, over the buyer's limit).
    RefusedByClaim(ApiError),
}

async fn decide_buy<B>(
    state: &AppState,
    raw_id: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Answer, ApiError>
where
    B: hyper::body::Body<Data = axum::body::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let sale_id = body::sale_id(raw_id)?;
    let key = idempotency_key(headers)?;
    let raw_body = body::read_body(body, state.settings.body_read_timeout).await?;
    let buy = read_buy_body(&raw_body, state.settings.max_quantity_per_order)?;
    let sale = state
        .sales
        .get(&state.pool, sale_id)
        .await?
        .ok_or_else(|| sale_not_found(sale_id))?;
    if let Some(limit) = sale.per_buyer_limit {
        if buy.quantity > i64::from(limit) {
            return Err(quantity_above(buy.quantity, i64::from(limit)));
        }
    }
    if let Some(problem) = sale.live_problem(OffsetDateTime::now_utc()) {
        return Err(ApiError::new(
            ErrorCode::SaleNotLive,
            format!("{problem}; nothing was bought"),
        ));
    }
    let product = sale.product(buy.product_id.as_deref())?;
    let quantity =
        i32::try_from(buy.quantity).map_err(|_| quantity_above(buy.quantity, i32::MAX.into()))?;
    let frozen = state.inventory.sold_out_orders(sale_id);
    // Confirmed sold out: its orders are final and in memory, so neither a retry nor a new buyer
    // needs a round trip (see `Inventory::sold_out_orders` for the one answer this changes). A
    // new buyer's refusal is decided before the order request is built: its copies are G2's cost.
    let first = match &frozen {
        Some(frozen) => match frozen.get(&buy.buyer_id).and_then(|keys| keys.get(&key)) {
            Some(first) => Some(first.clone()),
            None => return Ok(Answer::SoldOutFromMemory),
        },
        None => None,
    };
    let req = OrderRequest {
        sale_id,
        product_id: product.product_id.clone(),
        unit_price_cents: product.sale_price_cents,
        buyer_id: buy.buyer_id,
        quantity,
        idempotency_key: key,
    };
    if let Some(first) = first {
        return replayed(&req, first);
    }
    // A strategy whose `buy` refuses a used key itself (the ledger's unique key) is asked first,
    // and the key is looked up only when it does not sell: a fresh key, the common case, costs no
    // lookup. Any other strategy's key is looked up before it claims (the trait's contract).
    let buy_checks_keys = state.inventory.buy_checks_keys();
    if !buy_checks_keys {
        if let Some(first) = state
            .inventory
            .find_by_key(&req.buyer_id, &req.idempotency_key)
            .await?
        {
            return replayed(&req, first);
        }
    }
    let refusal = match state.inventory.buy(&sale, &req).await {
        Ok(order) => return Ok(Answer::Order(order, false)),
        Err(refusal) => refusal,
    };
    // Refused: the request may be the retry of an order that exists, which is its answer. A
    // duplicate key always means one (a concurrent request with the same key won the race); a
    // refusal for stock or the buyer's limit may, when the key was not looked up first.
    let maybe_a_retry = match refusal {
        ClaimError::DuplicateKey => true,
        ClaimError::SoldOut | ClaimError::BuyerLimit => buy_checks_keys,
        ClaimError::Unavailable(_) => false,
    };
    if maybe_a_retry {
        if let Some(first) = state
            .inventory
            .find_by_key(&req.buyer_id, &req.idempotency_key)
            .await?
        {
            return replayed(&req, first);
        }
    }
    match refusal {
        ClaimError::SoldOut => Ok(Answer::RefusedByClaim(sold_out())),
        ClaimError::BuyerLimit => Ok(Answer::RefusedByClaim(buyer_limit_reached(
            &req.buyer_id,
            req.quantity,
            sale.per_buyer_limit,
        ))),
        ClaimError::DuplicateKey => Err(ApiError::unavailable("the order database")
            .with_cause("the key's insert conflicted, but no order with that key was found")),
        ClaimError::Unavailable(err) => Err(ApiError::unavailable("the order database")
            .with_cause(format!("order for sale {sale_id} not made durable: {err}"))),
    }
}

pub(super) fn sold_out() -> ApiError {
    ApiError::new(
        ErrorCode::SoldOut,
        "the sale has no units left for this quantity",
    )
}

/// The buyer's orders in this sale and this one would pass `per_buyer_limit` together. (The
/// limit is always set when the ledger refuses for it; `null` in the details otherwise.)
pub(super) fn buyer_limit_reached(buyer_id: &str, quantity: i32, limit: Option<i32>) -> ApiError {
    let limit_text = limit.map_or_else(
        || "the sale's limit".to_owned(),
        |l| format!("the limit of {l}"),
    );
    ApiError::new(
        ErrorCode::BuyerLimitReached,
        format!(
            "buyer {buyer_id:?} already holds units of this sale, and {quantity} more would pass \
             {limit_text} per buyer; nothing was bought"
        ),
    )
    .with_details(json!({ "limit": limit }))
}

/// The answer to a request whose key was used before: the earlier order if it is the same
/// request, else a refusal.
fn replayed(req: &OrderRequest, first: Order) -> Result<Answer, ApiError> {
    if req.same_request_as(&first) {
        Ok(Answer::Order(first, true))
    } else {
        Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used for a different request; use a new key",
        )
        .with_details(json!({ "order_id": first.order_id })))
    }
}

pub(super) fn created(order: Order, replayed: bool) -> Response {
    let mut response = (StatusCode::CREATED, Json(order)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<BuyBody, ErrorCode> {
        parse_buy_body(body.as_object().unwrap(), 100).map_err(|e| e.code)
    }

    #[test]
    fn a_good_body_parses() {
        assert_eq!(
            parse(json!({"buyer_id": "b1", "quantity": 2, "product_id": "tee"})),
            Ok(BuyBody {
                buyer_id: "b1".into(),
                quantity: 2,
                product_id: Some("tee".into())
            })
        );
    }

    #[test]
    fn the_fast_path_gives_the_same_answer_as_the_field_by_field_reading() {
        let bodies = [
            r#"{"buyer_id":"b1","quantity":2}"#,
            r#"{"buyer_id":"b1","quantity":2,"product_id":"tee"}"#,
            r#"{"buyer_id":"b1","quantity":2,"product_id":null}"#,
            r#"{"quantity":1,"buyer_id":"b\u00e9"}"#,
            r#"{"buyer_id":"","quantity":1}"#,
            r#"{"buyer_id":"a\nb","quantity":1}"#,
            r#"{"buyer_id":"b","quantity":0}"#,
            r#"{"buyer_id":"b","quantity":-3}"#,
            r#"{"buyer_id":"b","quantity":101}"#,
            r#"{"buyer_id":"b","quantity":1.0}"#,
            r#"{"buyer_id":"b","quantity":1.5}"#,
            r#"{"buyer_id":"b","quantity":"1"}"#,
            r#"{"buyer_id":"b","quantity":18446744073709551615}"#,
            r#"{"buyer_id":"b","quantity":1e300}"#,
            r#"{"buyer_id":"b","quantity":1,"price":0}"#,
            r#"{"buyer_id":"b","quantity":1,"quantity":5}"#,
            r#"{"buyer_id":null,"quantity":1}"#,
            r#"{"buyer_id":7,"quantity":1}"#,
            r#"{"buyer_id":"b"}"#,
            r#"{"buyer_id":"b","quantity":1,"product_id":3}"#,
            r#"[1,2]"#,
            r#"not json"#,
        ];
        for raw in bodies {
            let slow = body::object_from_slice(raw.as_bytes())
                .and_then(|map| parse_buy_body(&map, 100))
                .map_err(|e| (e.code, e.message));
            let fast = read_buy_body(raw.as_bytes(), 100).map_err(|e| (e.code, e.message));
            assert_eq!(fast, slow, "{raw}");
        }
    }

    #[test]
    fn buyer_ids_are_measured_in_characters_not_bytes() {
        let ids = |id: String| parse(json!({"buyer_id": id, "quantity": 1})).map(|b| b.buyer_id);
        assert!(
            ids("ä".repeat(128)).is_ok(),
            "128 characters (256 bytes) fit"
        );
        assert_eq!(ids("ä".repeat(129)), Err(ErrorCode::InvalidField));
    }

    #[test]
    fn the_ascii_shortcut_judges_buyer_ids_as_the_character_rule_does() {
        // The rule itself, by characters: what `check_buyer`'s ASCII shortcut must agree with.
        let rule = |id: &str| {
            if id.is_empty() || id.chars().count() > MAX_BUYER_LEN {
                Some("must be 1 to 128 characters")
            } else if id.chars().any(char::is_control) {
                Some("must not contain control characters")
            } else {
                None
            }
        };
        let ids = [
            String::new(),
            "b".into(),
            "a".repeat(128),
            "a".repeat(129),
            "ä".repeat(128),
            "ä".repeat(129),
            format!("{}ä", "a".repeat(127)),
            format!("{}ä", "a".repeat(128)),
            "tab\there".into(),
            "nl\n".into(),
            "del\u{7f}".into(),
            "nel\u{85}".into(),
            "\u{0}".into(),
            "space ok".into(),
        ];
        for id in ids {
            let got = check_buyer(&id).err().map(|e| e.message);
            let want = rule(&id).map(|m| format!("buyer_id: {m}"));
            assert_eq!(got, want, "{id:?}");
        }
    }

    #[test]
    fn hostile_quantities_are_refused_with_their_own_codes() {
        let q = |v: Value| parse(json!({"buyer_id": "b", "quantity": v}));
        assert_eq!(q(json!(0)), Err(ErrorCode::InvalidQuantity));
        assert_eq!(q(json!(-3)), Err(ErrorCode::InvalidQuantity));
        assert_eq!(q(json!(1.5)), Err(ErrorCode::InvalidQuantity));
        assert_eq!(q(json!("2")), Err(ErrorCode::InvalidQuantity));
        assert_eq!(q(json!(101)), Err(ErrorCode::QuantityAboveLimit));
        assert_eq!(q(json!(u64::MAX)), Err(ErrorCode::QuantityAboveLimit));
        assert_eq!(q(json!(1e300)), Err(ErrorCode::InvalidQuantity));
        assert_eq!(q(json!(100)).map(|b| b.quantity), Ok(100));
    }

    #[test]
    fn missing_wrong_and_unknown_fields_are_named() {
        assert_eq!(parse(json!({"quantity": 1})), Err(ErrorCode::InvalidField));
        assert_eq!(
            parse(json!({"buyer_id": "b"})),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(
            parse(json!({"buyer_id": 7, "quantity": 1})),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(
            parse(json!({"buyer_id": "", "quantity": 1})),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(
            parse(json!({"buyer_id": "b", "quantity": 1, "price": 0})),
            Err(ErrorCode::UnknownField)
        );
    }

    #[test]
    fn idempotency_keys_must_be_present_and_printable() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            idempotency_key(&headers).unwrap_err().code,
            ErrorCode::MissingIdempotencyKey
        );
        headers.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("has space"));
        assert_eq!(
            idempotency_key(&headers).unwrap_err().code,
            ErrorCode::InvalidIdempotencyKey
        );
        headers.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("k-1"));
        assert_eq!(idempotency_key(&headers).unwrap(), "k-1");
    }
}
