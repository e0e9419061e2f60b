//! The `CurrentTenant` extractor.

use std::convert::Infallible;

use axum::{extract::FromRequestParts, http::request::Parts};
use tenantry::SchemaName;

/// The tenant of the current request: `Some(schema)` for a known tenant, `None` for the
/// shared schema. Set by [`TenantLayer`](crate::TenantLayer); without the layer it is the
/// task's tenant ([`tenantry::get_tenant`]). Never rejects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentTenant(pub Option<SchemaName>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentTenant {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<CurrentTenant>()
            .cloned()
            .unwrap_or_else(|| CurrentTenant(tenantry::get_tenant())))
    }
}
