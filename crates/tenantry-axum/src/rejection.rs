//! The ways resolving a tenant can fail, each with a fixed status and a JSON body
//! `{"error": "..."}`.

use std::fmt;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use tenantry::SchemaName;

fn json_error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The request named a tenant that is not a valid schema name (or not text at all).
/// Responds 400 Bad Request. Nothing reached the database.
#[derive(Debug, Clone)]
pub struct InvalidTenant {
    reason: String,
}

impl InvalidTenant {
    /// A rejection explaining `reason` (shown to the client).
    pub fn new(reason: impl Into<String>) -> Self {
        InvalidTenant {
            reason: reason.into(),
        }
    }

    /// Why the tenant was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tenant: {}", self.reason)
    }
}

impl std::error::Error for InvalidTenant {}

impl IntoResponse for InvalidTenant {
    fn into_response(self) -> Response {
        json_error(StatusCode::BAD_REQUEST, self.to_string())
    }
}

/// The request named a valid schema name that is no tenant, under
/// [`UnknownTenantPolicy::Reject`](crate::UnknownTenantPolicy::Reject). Responds 404 Not Found.
#[derive(Debug, Clone)]
pub struct UnknownTenant {
    tenant: SchemaName,
}

impl UnknownTenant {
    /// A rejection for `tenant`.
    pub fn new(tenant: SchemaName) -> Self {
        UnknownTenant { tenant }
    }

    /// The name that was asked for.
    pub fn tenant(&self) -> &SchemaName {
        &self.tenant
    }
}

impl fmt::Display for UnknownTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown tenant {:?}", self.tenant.as_str())
    }
}

impl std::error::Error for UnknownTenant {}

impl IntoResponse for UnknownTenant {
    fn into_response(self) -> Response {
        json_error(StatusCode::NOT_FOUND, self.to_string())
    }
}

/// The request named a tenant that is suspended
/// ([`contrib::suspend_tenant`](tenantry::contrib::suspend_tenant)), whatever the
/// [`UnknownTenantPolicy`](crate::UnknownTenantPolicy). Responds 403 Forbidden. The tenant's
/// data is not touched and no fallback to the shared schema happens.
#[derive(Debug, Clone)]
pub struct TenantSuspended {
    tenant: SchemaName,
}

impl TenantSuspended {
    /// A rejection for `tenant`.
    pub fn new(tenant: SchemaName) -> Self {
        TenantSuspended { tenant }
    }

    /// The suspended tenant.
    pub fn tenant(&self) -> &SchemaName {
        &self.tenant
    }
}

impl fmt::Display for TenantSuspended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenant {:?} is suspended", self.tenant.as_str())
    }
}

impl std::error::Error for TenantSuspended {}

impl IntoResponse for TenantSuspended {
    fn into_response(self) -> Response {
        json_error(StatusCode::FORBIDDEN, self.to_string())
    }
}

/// Looking the tenant up failed (the database is unreachable, the `tenants` table is
/// missing…). Responds 500 Internal Server Error with a generic message; the cause is logged
/// and kept here.
#[derive(Debug)]
pub struct TenantLookupFailed {
    error: tenantry::Error,
}

impl TenantLookupFailed {
    /// A rejection caused by `error`.
    pub fn new(error: tenantry::Error) -> Self {
        TenantLookupFailed { error }
    }

    /// The cause.
    pub fn error(&self) -> &tenantry::Error {
        &self.error
    }
}

impl fmt::Display for TenantLookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the tenant could not be looked up: {}", self.error)
    }
}

impl std::error::Error for TenantLookupFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl IntoResponse for TenantLookupFailed {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.error, "tenant lookup failed");
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the tenant could not be looked up".to_owned(),
        )
    }
}
