//! The demo service: the Edgy tenancy page's practical case, end to end.
//!
//! A shared [`Tenant`](tenantry::contrib::Tenant) table, `User` and `Product` in every tenant
//! schema, the [`TenantLayer`](tenantry_axum::TenantLayer) reading the `tenant` header, and
//! a small JSON API:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /products[?owner=NAME]` | 200, `[{"id", "name", "user", "price", "stock"}]` of the request's tenant (shared without one); with `owner`, only those whose owner's name contains `NAME` (any case) |
//! | `GET /products/page[?owner=NAME][&after=CURSOR][&per_page=N]` | 200, `{"items": [...], "next": CURSOR or null}`: the products by id, N (1 to 100, default 20) at a time; a cursor is signed (`TENANTRY_CURSOR_KEY`, else a key of the process) and valid only for its tenant; 400 for a bad one |
//! | `GET /summary` | 200, `{"products", "price", "stock", "owners": [{"owner", "products", "price", "stock"}]}`: the tenant's count, total price and total stock, and the same per owner |
//! | `POST /products {"name", "price"?, "stock"?}` | 201, the product, in the request's tenant; 400 for a negative or out-of-range price or stock |
//! | `GET /tenants` | 200, every tenant |
//! | `POST /tenants {"schema_name", "tenant_name"}` | 201; 409 when taken; 400 when invalid |
//! | `GET /healthz` | 200 |
//!
//! Errors are `{"error": "..."}` with their status. A `tenant` header that is not a valid
//! schema name is 400; one that names no tenant is served the shared data, or 404 in strict
//! mode.
//!
//! The binary (`src/main.rs`) wraps [`app`] and [`seed`] in a command line; tests build the
//! same [`app`] and serve it themselves.

pub mod models;

mod error;
mod fleet;
mod log;
mod routes;
mod seed;

pub use error::ApiError;
pub use models::register;

/// The demo's migrations (`crates/tenantry-demo/migrations`), embedded at compile time.
pub fn migrations() -> tenantry::Result<tenantry::migrate::Migrations> {
    tenantry::migrations!("migrations")
}
pub use fleet::BehindTenants;
pub use routes::{app, app_with};
pub use seed::{seed, seed_as};
