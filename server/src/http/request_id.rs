//! The request id: taken from `X-Request-Id` when the client sent a usable one, made otherwise,
//! returned on every answer, and logged with the cause of every 5xx.
//!
//! One middleware does both so that no 5xx can leave without its cause in the log at `warn`,
//! whichever handler (or extractor) produced it; handlers put the cause on the response as an
//! [`ErrorCause`] and never log it themselves.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use crate::error::ErrorCause;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A client's id is kept when it is short and printable (it goes into logs); otherwise one is made.
pub(super) fn request_id(headers: &HeaderMap) -> String {
    match headers.get(REQUEST_ID_HEADER).map(HeaderValue::to_str) {
        Some(Ok(id))
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_owned()
        }
        _ => Uuid::new_v4().to_string(),
    }
}

pub async fn tag_and_log(request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tag_and_log_answer(&id, &method, &path, response)
}

/// What [`tag_and_log`] does with an answer: its 5xx cause logged, the id on it. Shared with the
/// buy answered without the router (`super::direct_buy`).
pub(super) fn tag_and_log_answer(
    id: &str,
    method: &Method,
    path: &str,
    mut response: Response,
) -> Response {
    let status = response.status();
    if status.is_server_error() {
        match response.extensions_mut().remove::<ErrorCause>() {
            Some(ErrorCause(cause)) => tracing::warn!(
                request_id = %id, %method, %path, status = status.as_u16(), %cause,
                "answered with a server error"
            ),
            None => tracing::error!(
                request_id = %id, %method, %path, status = status.as_u16(),
                "answered with a server error whose cause was not recorded"
            ),
        }
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
