//! Answers that are not business outcomes: `{"problem":{"type":...,"detail":...}}` with a
//! status. Details say what was wrong with the request, never what the database said.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// 400: the request is malformed; the detail says how.
    BadRequest(String),
    /// 404: no drop has this id (or the id is not one).
    NoSuchDrop,
    /// 503: PostgreSQL failed or was too slow, so the purchase's fate is unknown.
    Unavailable,
    /// 404: no such route.
    NoRoute,
    /// 500: the checkout itself failed (a bug); never caused by the request's content.
    Internal,
}

impl Problem {
    fn status(&self) -> StatusCode {
        match self {
            Problem::BadRequest(_) => StatusCode::BAD_REQUEST,
            Problem::NoSuchDrop | Problem::NoRoute => StatusCode::NOT_FOUND,
            Problem::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        let problem = match self {
            Problem::BadRequest(detail) => json!({"type": "bad_request", "detail": detail}),
            Problem::NoSuchDrop => json!({"type": "no_such_drop"}),
            Problem::Unavailable => json!({
                "type": "unavailable",
                "detail": "the database did not complete the checkout, which may or may not \
                           have been made: retry with the same X-Request-Key",
            }),
            Problem::NoRoute => json!({"type": "not_found"}),
            Problem::Internal => json!({"type": "internal", "detail": "the checkout failed"}),
        };
        json!({ "problem": problem })
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if self == Problem::Unavailable {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
