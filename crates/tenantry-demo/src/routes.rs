//! The HTTP API.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use tenantry::{create_schema, drop_schema, Error, Instance, SchemaName};

use crate::{
    models::{Product, Tenant},
    AppState,
};

/// The routes, with the tenant middleware around them.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/products", get(list_products).post(create_product))
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::tenant::resolve,
        ))
        .with_state(state)
}

async fn list_products(
    State(state): State<AppState>,
) -> Result<Json<Vec<Instance<Product>>>, ApiError> {
    Ok(Json(Product::query(&state.registry).all().await?))
}

#[derive(Deserialize)]
struct NewProduct {
    name: String,
}

async fn create_product(
    State(state): State<AppState>,
    Json(body): Json<NewProduct>,
) -> Result<(StatusCode, Json<Instance<Product>>), ApiError> {
    let product = Product {
        id: 0,
        name: body.name,
        user: None,
    };
    let created = Product::query(&state.registry).create(product).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list_tenants(
    State(state): State<AppState>,
) -> Result<Json<Vec<Instance<Tenant>>>, ApiError> {
    Ok(Json(
        Tenant::query(&state.registry)
            .order_by([Tenant::id().asc()])
            .all()
            .await?,
    ))
}

#[derive(Deserialize)]
struct NewTenant {
    schema_name: String,
    tenant_name: String,
}

/// Inserts the tenant row, then creates its schema and tables; if the schema fails, the row
/// is removed again so nothing is left half made.
async fn create_tenant(
    State(state): State<AppState>,
    Json(body): Json<NewTenant>,
) -> Result<(StatusCode, Json<Instance<Tenant>>), ApiError> {
    let schema = SchemaName::parse(&body.schema_name)?;
    let registry = &state.registry;
    let tenant = Tenant::query(registry)
        .create(Tenant {
            id: 0,
            schema_name: schema.to_string(),
            tenant_name: body.tenant_name,
        })
        .await?;
    if let Err(error) = create_schema(registry, &schema, None, false, true).await {
        let _ = drop_schema(registry, &schema, true, true).await;
        tenant.clone().delete().await?;
        return Err(error.into());
    }
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// An error as JSON `{"error": "..."}` with its status.
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
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::InvalidSchemaName { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } | Error::SchemaNotFound { .. } => StatusCode::NOT_FOUND,
            Error::UniqueViolation { .. } | Error::SchemaAlreadyExists { .. } => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "request failed");
        }
        ApiError::new(status, error.to_string())
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
