//! # tenantry-axum
//!
//! A tower [`TenantLayer`] that resolves each request's tenant and runs the rest of the
//! request inside a tenant scope ([`tenantry::with_tenant`]), so every query a handler makes
//! goes to that tenant's schema without naming it. The scope covers the whole response: the
//! response body is polled inside it too, so a streamed body (`Body::from_stream`, server-sent
//! events) that queries as it goes reads the request's tenant, not the shared schema. This is the middleware of the Edgy tenancy page's
//! practical case, made safe:
//!
//! - the tenant comes from a configurable [`TenantSource`]: a header (`tenant` by default),
//!   the subdomain of `Host`, the first path segment, a tenant's custom domain, your own
//!   [`TenantResolver`], or a [`chain`](TenantSource::chain) of them (the apex host,
//!   named by none, is served on the shared schema);
//! - the raw text is validated as a [`SchemaName`](tenantry::SchemaName) before anything else
//!   ([`InvalidTenant`], 400);
//! - it must name a tenant of a [`TenantStore`](tenantry::TenantStore) (by default the
//!   [`contrib::Tenant`](tenantry::contrib::Tenant) table; your own with
//!   [`TenantCache::with_store`]), looked up through a small [`TenantCache`] (TTL plus
//!   explicit invalidation, or [every tenant in memory](TenantCache::every_tenant_in_memory)
//!   so that made-up names cost the database nothing). An unknown tenant
//!   falls back to the shared schema (the seed's behaviour, [`UnknownTenantPolicy::Shared`])
//!   or is refused ([`UnknownTenant`], 404, with [`UnknownTenantPolicy::Reject`]); a
//!   suspended tenant is always refused ([`TenantSuspended`], 403); a failed lookup is
//!   [`TenantLookupFailed`] (500);
//! - tenants created, suspended, resumed or dropped by another process (through
//!   `tenantry::contrib`) are seen within about a second: the cache reads the tenants epoch
//!   at most once a second and forgets everything when it changed;
//! - handlers read the tenant with the [`CurrentTenant`] extractor; what the store knows of
//!   it ([`TenantInfo`](tenantry::TenantInfo)) is also in the request extensions, and
//!   [`CurrentTenant`] in the response's (for logging layers outside this one).
//!
//! The layer sets the task's tenant, which is a schema. A store that routes its tenants
//! ([`TenantStore::database`](tenantry::TenantStore::database), as the
//! [`Directory`](tenantry::Directory)'s store does) also sets the tenant's database: the
//! request runs in [`tenantry::with_tenant_in`], so its tenant-model queries go there. For a
//! database-per-tenant row of `contrib::Tenant` (its
//! [`database`](tenantry::contrib::Tenant::database) names an extra database), handlers add
//! `using_with_db(name)` themselves.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tenantry::Registry;
//! use tenantry_axum::{CurrentTenant, TenantLayer};
//!
//! async fn whoami(CurrentTenant(tenant): CurrentTenant) -> String {
//!     tenant.map_or_else(|| "shared".to_owned(), |t| t.to_string())
//! }
//!
//! fn app(registry: Registry) -> Router {
//!     let tenants = TenantLayer::new(registry).strict(true);
//!     Router::new().route("/whoami", get(whoami)).layer(tenants)
//! }
//! ```

mod cache;
mod extract;
mod layer;
mod rejection;
mod roster;
mod source;

pub use cache::TenantCache;
pub use extract::CurrentTenant;
pub use layer::{TenantLayer, TenantService, UnknownTenantPolicy};
pub use rejection::{InvalidTenant, TenantLookupFailed, TenantSuspended, UnknownTenant};
pub use source::{TenantResolver, TenantSource};
