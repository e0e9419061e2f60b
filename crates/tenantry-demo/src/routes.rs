//! The HTTP API.

use axum::{
    extract::{
        rejection::{JsonRejection, QueryRejection},
        Query, State,
    },
    http::StatusCode,
    middleware,
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use tenantry::{contrib::Tenant, Decimal, Filter, Instance, Registry, SchemaName};
use tenantry_axum::{TenantCache, TenantLayer};

use crate::{
    fleet::BehindTenants,
    models::{Product, User},
    ApiError,
};

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
///
/// With a tenant [`Directory`](tenantry::Directory) declared on the registry, tenants are
/// looked up in it first (each request then runs on its tenant's database), then in the
/// default database's `tenants` table.
pub fn app_with(registry: Registry, strict: bool, behind: BehindTenants) -> Router {
    let layer = match registry.tenant_directory() {
        Some(directory) => {
            // Directory tenants first, then the default database's own.
            let own = std::sync::Arc::new(tenantry::contrib::TenantTable::new(registry.clone()));
            let store = std::sync::Arc::new(directory.store(&registry).or(own));
            TenantLayer::with_cache(TenantCache::with_store(registry.clone(), store))
        }
        None => TenantLayer::new(registry.clone()),
    }
    .strict(strict);
    let state = AppState {
        registry: with_cursor_key(registry),
        tenants: layer.cache().clone(),
    };
    let per_tenant = Router::new()
        .route("/products", get(list_products).post(create_product))
        .route("/products/page", get(page_products))
        .route("/summary", get(summary))
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

/// The key that signs `/products/page` cursors: `TENANTRY_CURSOR_KEY` (32 bytes or more,
/// the same on every instance), else a random key of this process (its cursors end with it).
fn with_cursor_key(registry: Registry) -> Registry {
    match std::env::var("TENANTRY_CURSOR_KEY") {
        Ok(key) if key.len() >= 32 => registry.cursor_key(key),
        _ => {
            let mut key = [0u8; 32];
            key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            registry.cursor_key(key)
        }
    }
}

/// `?owner=NAME`: only the products whose owner's name contains `NAME` (any case).
#[derive(Deserialize)]
struct ProductFilter {
    owner: Option<String>,
}

impl ProductFilter {
    fn filter(&self) -> Option<Filter> {
        self.owner
            .as_deref()
            .map(|name| Product::user().to(User::name()).icontains(name))
    }
}

fn products(registry: &Registry, filter: &ProductFilter) -> tenantry::QuerySet<Product> {
    let query = Product::query(registry);
    match filter.filter() {
        Some(filter) => query.filter(filter),
        None => query,
    }
}

async fn list_products(
    State(state): State<AppState>,
    filter: Result<Query<ProductFilter>, QueryRejection>,
) -> Result<Json<Vec<Instance<Product>>>, ApiError> {
    let Query(filter) = filter?;
    Ok(Json(
        products(&state.registry, &filter)
            .order_by([Product::id().asc()])
            .all()
            .await?,
    ))
}

/// `?owner=&after=CURSOR&per_page=N` (1 to 100, default 20).
#[derive(Deserialize)]
struct PageQuery {
    #[serde(flatten)]
    filter: ProductFilter,
    after: Option<String>,
    per_page: Option<u64>,
}

#[derive(Serialize)]
struct ProductPage {
    items: Vec<Instance<Product>>,
    next: Option<String>,
}

/// One page of the tenant's products by id, and the cursor of the next page.
async fn page_products(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ProductPage>, ApiError> {
    let Query(query) = query?;
    let per_page = query.per_page.unwrap_or(20);
    if !(1..=100).contains(&per_page) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "per_page must be 1 to 100",
        ));
    }
    let page = products(&state.registry, &query.filter)
        .order_by([Product::id().asc()])
        .page_after(per_page, query.after.as_deref())
        .await?;
    Ok(Json(ProductPage {
        items: page.items,
        next: page.next,
    }))
}

/// The tenant's products in numbers, and per owner.
#[derive(Serialize)]
struct Summary {
    products: i64,
    price: Decimal,
    stock: i64,
    owners: Vec<OwnerSummary>,
}

#[derive(Serialize)]
struct OwnerSummary {
    owner: Option<i64>,
    products: i64,
    price: Decimal,
    stock: i64,
}

async fn summary(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    let totals = (
        Product::id().count(),
        Product::price().sum(),
        Product::stock().sum(),
    );
    let (products, price, stock) = Product::query(&state.registry).aggregate(totals).await?;
    let owners = Product::query(&state.registry)
        .group_by(Product::user().optional())
        .aggregate(totals)
        .await?
        .into_iter()
        .map(|(owner, (products, price, stock))| OwnerSummary {
            owner,
            products,
            price: price.unwrap_or_default(),
            stock: stock.unwrap_or_default(),
        })
        .collect();
    Ok(Json(Summary {
        products,
        price: price.unwrap_or_default(),
        stock: stock.unwrap_or_default(),
        owners,
    }))
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
