//! Reading request bodies and path ids into clear, stable errors instead of axum's plain-text
//! rejections.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use http_body_util::{BodyExt, Collected, LengthLimitError, Limited};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

use super::MAX_BODY_BYTES;

/// The whole body within `within` of starting to read it: 408 `body_timeout` after that (the
/// connection is then closed), 413 when larger than [`MAX_BODY_BYTES`], 400 when it could not be
/// read.
///
/// A deadline on the whole body, not on each chunk (tower-http's `RequestBodyTimeoutLayer`
/// restarts its clock at every frame, so a client trickling a byte at a time could hold a
/// handler for hours).
///
/// The deadline's timer is made only for a body that is not all there when the handler first
/// asks: a small body usually arrives with its headers, hyper has already handed it over, and the
/// first poll finishes the read. Reading without the timer, and without axum's boxed
/// `DefaultBodyLimit` wrapper, saved ~1,100 of the ~13,100 instructions a sold-out buy cost
/// beyond `GET /health` (callgrind; G2 in docs/performance.md).
pub async fn read(request: Request, within: Duration) -> Result<Bytes, ApiError> {
    read_body(request.into_body(), within).await
}

/// [`read`] of any body: axum's, or hyper's own for a buy answered without the router
/// (`super::direct_buy`).
pub async fn read_body<B>(body: B, within: Duration) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let reading = Limited::new(body, MAX_BODY_BYTES).collect();
    let mut reading = std::pin::pin!(reading);
    let first_poll = std::future::poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx))).await;
    let read = match first_poll {
        Poll::Ready(read) => read,
        Poll::Pending => match tokio::time::timeout(within, reading).await {
            Ok(read) => read,
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::BodyTimeout,
                    format!(
                        "the body did not arrive within {}; nothing was done",
                        humantime::format_duration(within)
                    ),
                ));
            }
        },
    };
    read.map(Collected::to_bytes).map_err(|err| {
        if err.is::<LengthLimitError>() {
            ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(
                ErrorCode::MalformedJson,
                format!("could not read the body: {err}"),
            )
        }
    })
}

/// Bytes already read, as a JSON value (400 when not JSON at all).
pub fn value_from_slice(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            ErrorCode::MalformedJson,
            format!("the body is not valid JSON: {err}"),
        )
    })
}

/// Bytes already read, as a JSON object (400 when not JSON, 422 when not an object).
pub fn object_from_slice(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match value_from_slice(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid_field("body", "must be a JSON object")),
    }
}

/// A sale id from the path. An id that is not a UUID cannot name a sale: 404, like an unknown one.
pub fn sale_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::new(ErrorCode::SaleNotFound, format!("no sale with id {raw:?}")))
}
