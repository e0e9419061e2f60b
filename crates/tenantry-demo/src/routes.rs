//! The HTTP API.

use axum::{
    extract::{rejection::JsonRejection, State},
    http::StatusCode,
    middleware,
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use tenantry::{contrib::Tenant, Instance, Registry, SchemaName};
use tenantry_axum::{TenantCache, TenantLayer};

use crate::{fleet::BehindTenants, models::Product, ApiError};

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    registry: Registry,
    tenants: TenantCache,
}

/// The service: the API over `registry` (its models registered with
/// [`register`](crate::register)), `/products` behind the tenant layer. `strict`: a `tenant`
/// header naming no tenant is 404 instead of the shared data.
pub fn app(registry: Registry, strict: bool) -> Router {
    app_with(registry, strict, BehindTenants::default())
}

/// [`app`], with the tenants in `behind` (not at the binary's last migration) answered 503.
pub fn app_with(registry: Registry, strict: bool, behind: BehindTenants) -> Router {
    let layer = TenantLayer::new(registry.clone()).strict(strict);
    let state = AppState {
        registry,
        tenants: layer.cache().clone(),
    };
    let per_tenant = Router::new()
        .route("/products", get(list_products).post(create_product))
        .layer(middleware::from_fn(move |request, next| {
            crate::fleet::refuse_behind(behind.clone(), request, next)
        }))
        .layer(layer);
    Router::new()
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/healthz", get(|| async { "ok" }))
        .merge(per_tenant)
        .layer(middleware::from_fn(crate::log::log))
        .with_state(state)
}

async fn list_products(
    State(state): State<AppState>,
) -> Result<Json<Vec<Instance<Product>>>, ApiError> {
    Ok(Json(
        Product::query(&state.registry)
            .order_by([Product::id().asc()])
            .all()
            .await?,
    ))
}

#[derive(Deserialize)]
struct NewProduct {
    name: String,
    /// A decimal string or number; 0 when left out.
    #[serde(default)]
    price: tenantry::Decimal,
    /// 0 when left out; never negative.
    #[serde(default)]
    stock: i32,
}

const MAX_NAME: usize = 255;

async fn create_product(
    State(state): State<AppState>,
    body: Result<Json<NewProduct>, JsonRejection>,
) -> Result<(StatusCode, Json<Instance<Product>>), ApiError> {
    let Json(body) = body?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "name must be 1 to 255 characters",
        ));
    }
    if body.stock < 0 || body.price.is_sign_negative() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "price and stock must not be negative",
        ));
    }
    let product = Product {
        id: 0,
        name: name.to_owned(),
        user: None,
        price: body.price,
        stock: body.stock,
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

/// Creates the tenant (row, schema and tables, all or nothing) through the layer's cache,
/// so the next request naming it finds it.
async fn create_tenant(
    State(state): State<AppState>,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<Instance<Tenant>>), ApiError> {
    let Json(body) = body?;
    let schema = SchemaName::parse(&body.schema_name)?;
    let tenant = state
        .tenants
        .create_tenant(&schema, body.tenant_name.trim())
        .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}
