//! The API's error: a status and `{"error": "..."}`.

use axum::{
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use tenantry::Error;

/// An error as JSON `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::InvalidSchemaName { .. }
            | Error::InvalidTenantName { .. }
            | Error::InvalidCursor { .. }
            | Error::InvalidArgument { .. }
            | Error::ValueOutOfRange { .. }
            // A tenant-only model asked for without a tenant: the request named none.
            | Error::TenantRequired { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } | Error::SchemaNotFound { .. } => StatusCode::NOT_FOUND,
            Error::UniqueViolation { .. } | Error::SchemaAlreadyExists { .. } => {
                StatusCode::CONFLICT
            }
            Error::TenantNotFound { .. } => StatusCode::NOT_FOUND,
            Error::TenantSuspended { .. } => StatusCode::FORBIDDEN,
            // Busy or unreachable for now (a tenant's server down, every connection of the
            // budget in use): worth retrying later.
            // A Citus worker holding the tenant is down: its tenants only.
            Error::ConnectionBudgetExhausted { .. }
            | Error::PoolTimedOut { .. }
            | Error::NodeUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(%error, "request refused for now");
            return ApiError::new(status, "service unavailable, retry later");
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "request failed");
            return ApiError::new(status, "internal error");
        }
        ApiError::new(status, error.to_string())
    }
}

/// A query string that is not what the endpoint reads: 400, as JSON.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

/// A body that is not the JSON asked for: axum's status (400, 415 or 422), as JSON.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
