//! HTTP errors: a status, a stable machine-readable code, a message for people.
//!
//! Clients branch on `code`; its spellings are part of the contract (`server/openapi.json`
//! lists them all and a test keeps the two in step). Database internals never reach a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// Every error code the server can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MalformedJson,
    InvalidField,
    UnknownField,
    InvalidQuantity,
    QuantityAboveLimit,
    MissingIdempotencyKey,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    BodyTooLarge,
    BodyTimeout,
    Unauthorized,
    SaleNotFound,
    NotFound,
    MethodNotAllowed,
    SaleNotLive,
    SoldOut,
    BuyerLimitReached,
    HoldNotFound,
    HoldNotYours,
    HoldExpired,
    HoldReleased,
    HoldCheckedOut,
    QuantityNotHeld,
    UnknownProduct,
    ProductRequired,
    InvalidStateTransition,
    ValidationFailed,
    Unavailable,
    TooManyConnections,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 30] = [
        ErrorCode::MalformedJson,
        ErrorCode::InvalidField,
        ErrorCode::UnknownField,
        ErrorCode::InvalidQuantity,
        ErrorCode::QuantityAboveLimit,
        ErrorCode::MissingIdempotencyKey,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::BodyTooLarge,
        ErrorCode::BodyTimeout,
        ErrorCode::Unauthorized,
        ErrorCode::SaleNotFound,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::SaleNotLive,
        ErrorCode::SoldOut,
        ErrorCode::BuyerLimitReached,
        ErrorCode::HoldNotFound,
        ErrorCode::HoldNotYours,
        ErrorCode::HoldExpired,
        ErrorCode::HoldReleased,
        ErrorCode::HoldCheckedOut,
        ErrorCode::QuantityNotHeld,
        ErrorCode::UnknownProduct,
        ErrorCode::ProductRequired,
        ErrorCode::InvalidStateTransition,
        ErrorCode::ValidationFailed,
        ErrorCode::Unavailable,
        ErrorCode::TooManyConnections,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::InvalidQuantity => "invalid_quantity",
            ErrorCode::QuantityAboveLimit => "quantity_above_limit",
            ErrorCode::MissingIdempotencyKey => "missing_idempotency_key",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::BodyTimeout => "body_timeout",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::SaleNotFound => "sale_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::SaleNotLive => "sale_not_live",
            ErrorCode::SoldOut => "sold_out",
            ErrorCode::BuyerLimitReached => "buyer_limit_reached",
            ErrorCode::HoldNotFound => "hold_not_found",
            ErrorCode::HoldNotYours => "hold_not_yours",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::HoldReleased => "hold_released",
            ErrorCode::HoldCheckedOut => "hold_checked_out",
            ErrorCode::QuantityNotHeld => "quantity_not_held",
            ErrorCode::UnknownProduct => "unknown_product",
            ErrorCode::ProductRequired => "product_required",
            ErrorCode::InvalidStateTransition => "invalid_state_transition",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::MalformedJson
            | ErrorCode::MissingIdempotencyKey
            | ErrorCode::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::SaleNotFound | ErrorCode::NotFound | ErrorCode::HoldNotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::HoldNotYours => StatusCode::FORBIDDEN,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::SaleNotLive
            | ErrorCode::SoldOut
            | ErrorCode::BuyerLimitReached
            | ErrorCode::HoldExpired
            | ErrorCode::HoldReleased
            | ErrorCode::HoldCheckedOut
            | ErrorCode::InvalidStateTransition => StatusCode::CONFLICT,
            ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::InvalidField
            | ErrorCode::UnknownField
            | ErrorCode::InvalidQuantity
            | ErrorCode::QuantityAboveLimit
            | ErrorCode::QuantityNotHeld
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::UnknownProduct
            | ErrorCode::ProductRequired
            | ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Unavailable | ErrorCode::TooManyConnections => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: `{"error": {"code": …, "message": …, "details": …}}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// What went wrong inside, for the log only (never sent): every 5xx is logged with it and
    /// the request's id (`http/request_id.rs`).
    pub cause: Option<String>,
}

/// The cause of a 5xx, carried on the response to the middleware that logs it with the request id.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            cause: None,
        }
    }

    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(ErrorCode::InvalidField, format!("{field}: {problem}"))
            .with_details(json!({ "field": field, "problem": problem }))
    }

    pub fn unavailable(what: &str) -> Self {
        Self::new(
            ErrorCode::Unavailable,
            format!(
                "{what} is unavailable; nothing was recorded, retry with the same Idempotency-Key"
            ),
        )
    }
}

/// The JSON body of every error: `{"error": {"code", "message", "details"?}}`, serialised straight
/// from these structs (sold-out answers are the hot path's most common reply).
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

impl<'a> ErrorBody<'a> {
    fn of(error: &'a ApiError) -> Self {
        ErrorBody {
            error: ErrorFields {
                code: error.code.as_str(),
                message: &error.message,
                details: error.details.as_ref(),
            },
        }
    }
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), Json(ErrorBody::of(&self))).into_response();
        if self.code.status().is_server_error() {
            let cause = self.cause.unwrap_or_else(|| self.message.clone());
            response.extensions_mut().insert(ErrorCause(cause));
        }
        if self.code == ErrorCode::BodyTimeout {
            // The rest of the body may still come; the connection cannot carry another request.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// An error answered often in the same words (a buy of a sale known to be sold out): serialised
/// once, so each answer only shares the bytes. It answers exactly as [`ApiError::into_response`]
/// does (status, `content-type`, body), which the tests check; only 4xx errors without extras
/// qualify (a 5xx carries its cause to the log, a body timeout closes the connection).
#[derive(Debug, Clone)]
pub struct PreparedError {
    status: StatusCode,
    body: axum::body::Bytes,
}

impl PreparedError {
    pub fn new(error: &ApiError) -> Self {
        assert!(
            error.code.status().is_client_error() && error.code != ErrorCode::BodyTimeout,
            "only plain 4xx answers can be prepared"
        );
        Self {
            status: error.code.status(),
            body: serde_json::to_vec(&ErrorBody::of(error))
                .expect("an error body serialises")
                .into(),
        }
    }

    pub fn response(&self) -> Response {
        // Built by hand rather than from a tuple: axum's `IntoResponseParts` route through a
        // header map of parts, a third of this function's cost on G2's path (callgrind).
        let mut response = Response::new(axum::body::Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Database failures become 503 (try again: nothing was acknowledged); the cause is logged with
/// the request id (see [`ApiError::cause`]), and the client never sees SQL.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        ApiError::new(
            ErrorCode::Unavailable,
            "the database is unavailable; nothing was changed, try again (a buy: with the same \
             Idempotency-Key)",
        )
        .with_cause(format!("database error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test]
    async fn a_prepared_error_answers_exactly_as_the_error_itself() {
        let error = || {
            ApiError::new(ErrorCode::SoldOut, "no units \"left\"").with_details(json!({"limit": 2}))
        };
        let direct = error().into_response();
        let prepared = PreparedError::new(&error()).response();
        assert_eq!(direct.status(), prepared.status());
        assert_eq!(
            direct.headers()[axum::http::header::CONTENT_TYPE],
            prepared.headers()[axum::http::header::CONTENT_TYPE]
        );
        let body = |r: Response| async move {
            axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap()
        };
        assert_eq!(body(direct).await, body(prepared).await);
    }

    #[test]
    #[should_panic(expected = "only plain 4xx")]
    fn a_server_error_cannot_be_prepared() {
        PreparedError::new(&ApiError::unavailable("the order database"));
    }

    #[test]
    fn codes_are_unique_snake_case_and_errors_are_4xx_or_5xx() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}
