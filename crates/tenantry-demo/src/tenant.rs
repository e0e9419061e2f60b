//! Resolving the request's tenant from its `tenant` header.

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tenantry::{with_tenant, SchemaName};

use crate::{models::Tenant, routes::ApiError, AppState};

/// Runs the request inside `with_tenant` for the tenant named by its `tenant` header.
///
/// No header: the shared schema. An invalid name: 400. A valid name that is not a tenant:
/// the shared schema (the seed's behaviour) or 404 in strict mode.
pub async fn resolve(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let header = request.headers().get("tenant").map(|v| v.to_str());
    let tenant = match header {
        None => None,
        Some(Err(_)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "the tenant header is not valid text",
            )
            .into_response()
        }
        Some(Ok(text)) => match SchemaName::parse(text) {
            Err(error) => {
                return ApiError::new(StatusCode::BAD_REQUEST, error.to_string()).into_response()
            }
            Ok(name) => match known(&state, &name).await {
                Ok(true) => Some(name),
                Ok(false) if state.strict => {
                    return ApiError::new(StatusCode::NOT_FOUND, "unknown tenant").into_response()
                }
                Ok(false) => None,
                Err(error) => return ApiError::from(error).into_response(),
            },
        },
    };
    tracing::info!(method = %request.method(), path = %request.uri().path(), tenant = tenant.as_ref().map(SchemaName::as_str).unwrap_or("-"), "request");
    with_tenant(tenant, next.run(request)).await
}

async fn known(state: &AppState, name: &SchemaName) -> tenantry::Result<bool> {
    Tenant::query(&state.registry)
        .filter(Tenant::schema_name().eq(name.as_str()))
        .exists()
        .await
}
