//! `POST /api/v2/drops/{drop_id}/checkout`: the request read into a [`CheckoutRequest`] (or a
//! 400 saying what is wrong), the checkout run to its end, the outcome written as JSON.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{MAX_BODY_BYTES, Problem};
use crate::Shop;
use crate::checkout::{self, CheckoutRequest, Outcome};

const KEY_HEADER: &str = "x-request-key";
const MAX_CUSTOMER_CHARS: usize = 64;
const MAX_KEY_CHARS: usize = 128;

pub async fn handle(
    State(shop): State<Arc<Shop>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // An id that is not a positive integer cannot name a drop.
    let Some(drop_id) = path
        .ok()
        .and_then(|Path(raw)| raw.parse::<i64>().ok())
        .filter(|id| *id > 0)
    else {
        return Problem::NoSuchDrop.into_response();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Problem::BadRequest(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
                .into_response();
        }
        Err(rejection) => {
            return Problem::BadRequest(format!("could not read the body: {rejection}"))
                .into_response();
        }
    };
    let request = match parse_request(&headers, &body) {
        Ok(request) => request,
        Err(detail) => return Problem::BadRequest(detail).into_response(),
    };
    // The checkout runs in a task of its own, so that a buyer who hangs up (a client timeout)
    // does not cancel it halfway: between taking units from the gate and giving them back, or
    // between the transaction's commit and the gate's settlement.
    let checkout = tokio::spawn(async move {
        let drop = match checkout::within_deadline(shop.drops.find(&shop.pool, drop_id)).await {
            Ok(Some(drop)) => drop,
            Ok(None) => return Err(Problem::NoSuchDrop),
            Err(err) => {
                tracing::warn!(drop = drop_id, %err, "checkout: looking up the drop failed");
                return Err(Problem::Unavailable);
            }
        };
        checkout::run(&shop, &drop, &request).await.map_err(|err| {
            tracing::warn!(drop = drop_id, %err, "checkout: outcome unknown");
            Problem::Unavailable
        })
    });
    match checkout.await {
        Ok(Ok(outcome)) => Json(outcome_body(&outcome)).into_response(),
        Ok(Err(problem)) => problem.into_response(),
        Err(err) => {
            tracing::error!(drop = drop_id, %err, "checkout: task failed");
            Problem::Internal.into_response()
        }
    }
}

/// The JSON of a business outcome (always with HTTP 200).
pub fn outcome_body(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Confirmed { purchase, replayed } => {
            let mut body = json!({
                "result": "confirmed",
                "purchase": {"ref": purchase.reference, "units": purchase.units},
            });
            if *replayed {
                body["replayed"] = Value::Bool(true);
            }
            body
        }
        Outcome::SoldOut => json!({"result": "sold_out"}),
        Outcome::LimitReached => json!({"result": "limit_reached"}),
        Outcome::Closed => json!({"result": "closed"}),
        Outcome::WrongSku => json!({"result": "wrong_sku"}),
        Outcome::KeyReused => json!({"result": "key_reused"}),
    }
}

/// Validates the body and the optional `X-Request-Key`; the error is the 400's detail. Fields
/// other than the three are ignored.
pub fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<CheckoutRequest, String> {
    let key = request_key(headers)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| format!("the body is not valid JSON ({err})"))?;
    let Value::Object(fields) = value else {
        return Err(
            "the body must be a JSON object: {\"customer_id\": ..., \"sku\": ..., \"units\": ...}"
                .to_owned(),
        );
    };
    let customer = string_field(&fields, "customer_id")?;
    let customer_chars = customer.chars().count();
    if !(1..=MAX_CUSTOMER_CHARS).contains(&customer_chars) {
        return Err(format!(
            "customer_id must be 1 to {MAX_CUSTOMER_CHARS} characters, not {customer_chars}"
        ));
    }
    // PostgreSQL text cannot hold NUL; refusing it here keeps it a 400, not a 503.
    if customer.contains('\0') {
        return Err("customer_id must not contain NUL characters".to_owned());
    }
    let sku = string_field(&fields, "sku")?;
    let units = units_field(&fields)?;
    Ok(CheckoutRequest {
        customer,
        sku,
        units,
        key,
    })
}

fn string_field(fields: &Map<String, Value>, name: &str) -> Result<String, String> {
    match fields.get(name) {
        None => Err(format!("missing field `{name}`")),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(other) => Err(format!("`{name}` must be a string, not {}", kind(other))),
    }
}

fn units_field(fields: &Map<String, Value>) -> Result<i32, String> {
    let range = format!("`units` must be a whole number from 1 to {}", i32::MAX);
    match fields.get("units") {
        None => Err("missing field `units`".to_owned()),
        Some(Value::Number(number)) => number
            .as_i64()
            .and_then(|units| i32::try_from(units).ok())
            .filter(|units| *units >= 1)
            .ok_or_else(|| format!("{range}, not {number}")),
        Some(other) => Err(format!("{range}, not {}", kind(other))),
    }
}

fn request_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("send X-Request-Key at most once".to_owned());
    }
    let key = std::str::from_utf8(value.as_bytes())
        .map_err(|_| "X-Request-Key must be UTF-8 text".to_owned())?;
    let chars = key.chars().count();
    if !(1..=MAX_KEY_CHARS).contains(&chars) {
        return Err(format!(
            "X-Request-Key must be 1 to {MAX_KEY_CHARS} characters, not {chars}"
        ));
    }
    Ok(Some(key.to_owned()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::checkout::Purchase;

    fn parse(body: &str) -> Result<CheckoutRequest, String> {
        parse_request(&HeaderMap::new(), body.as_bytes())
    }

    fn with_key(key: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, HeaderValue::from_bytes(key).unwrap());
        headers
    }

    const GOOD: &str = r#"{"customer_id":"c-1","sku":"SKU-1","units":2,"extra":true}"#;

    #[test]
    fn a_good_request_is_read_whole() {
        let request = parse_request(&with_key(b"k-1"), GOOD.as_bytes()).unwrap();
        assert_eq!(
            request,
            CheckoutRequest {
                customer: "c-1".into(),
                sku: "SKU-1".into(),
                units: 2,
                key: Some("k-1".into()),
            }
        );
        assert_eq!(parse(GOOD).unwrap().key, None);
    }

    #[test]
    fn each_malformed_body_is_named() {
        let cases = [
            ("", "not valid JSON"),
            ("{", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            (r#"{"sku":"S","units":1}"#, "missing field `customer_id`"),
            (r#"{"customer_id":"c","units":1}"#, "missing field `sku`"),
            (r#"{"customer_id":"c","sku":"S"}"#, "missing field `units`"),
            (
                r#"{"customer_id":7,"sku":"S","units":1}"#,
                "must be a string",
            ),
            (
                r#"{"customer_id":"","sku":"S","units":1}"#,
                "1 to 64 characters",
            ),
            (r#"{"customer_id":"c\u0000","sku":"S","units":1}"#, "NUL"),
            (
                r#"{"customer_id":"c","sku":null,"units":1}"#,
                "must be a string",
            ),
            (r#"{"customer_id":"c","sku":"S","units":0}"#, "from 1 to"),
            (r#"{"customer_id":"c","sku":"S","units":-3}"#, "from 1 to"),
            (r#"{"customer_id":"c","sku":"S","units":1.5}"#, "from 1 to"),
            (
                r#"{"customer_id":"c","sku":"S","units":"1"}"#,
                "not a string",
            ),
            (
                r#"{"customer_id":"c","sku":"S","units":2147483648}"#,
                "from 1 to",
            ),
            (
                r#"{"customer_id":"c","sku":"S","units":1e400}"#,
                "not valid JSON",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body).expect_err(body);
            assert!(err.contains(expected), "{body}: {err}");
        }
        let long = format!(
            r#"{{"customer_id":"{}","sku":"S","units":1}}"#,
            "é".repeat(65)
        );
        assert!(parse(&long).unwrap_err().contains("not 65"));
        let longest = format!(
            r#"{{"customer_id":"{}","sku":"S","units":1}}"#,
            "é".repeat(64)
        );
        assert!(parse(&longest).is_ok());
    }

    #[test]
    fn the_key_header_is_checked() {
        assert!(parse_request(&with_key(b""), GOOD.as_bytes()).is_err());
        assert!(parse_request(&with_key(&[b'k'; 129]), GOOD.as_bytes()).is_err());
        assert!(parse_request(&with_key(&[b'k'; 128]), GOOD.as_bytes()).is_ok());
        assert!(parse_request(&with_key(b"\xff\xfe"), GOOD.as_bytes()).is_err());
        let mut twice = with_key(b"a");
        twice.append(KEY_HEADER, HeaderValue::from_static("b"));
        assert!(
            parse_request(&twice, GOOD.as_bytes())
                .unwrap_err()
                .contains("once")
        );
    }

    #[test]
    fn outcomes_are_written_as_the_contract_says() {
        let purchase = Purchase {
            reference: "P-1".into(),
            units: 2,
            customer: "alice".into(),
        };
        assert_eq!(
            outcome_body(&Outcome::Confirmed {
                purchase: purchase.clone(),
                replayed: false
            }),
            json!({"result": "confirmed", "purchase": {"ref": "P-1", "units": 2}})
        );
        assert_eq!(
            outcome_body(&Outcome::replayed(purchase)),
            json!({"result": "confirmed", "purchase": {"ref": "P-1", "units": 2}, "replayed": true})
        );
        assert_eq!(
            outcome_body(&Outcome::SoldOut),
            json!({"result": "sold_out"})
        );
        assert_eq!(
            outcome_body(&Outcome::LimitReached),
            json!({"result": "limit_reached"})
        );
        assert_eq!(outcome_body(&Outcome::Closed), json!({"result": "closed"}));
        assert_eq!(
            outcome_body(&Outcome::WrongSku),
            json!({"result": "wrong_sku"})
        );
    }
}
