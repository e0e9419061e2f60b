//! The seed page's models: a shared `Tenant`, and `User` / `Product` in every tenant schema.

use serde::Serialize;
use tenantry::{ForeignKey, Model, Registry};

/// A tenant: the schema its data lives in. Shared: it lives only in the shared schema.
#[derive(Model, Debug, Clone, Serialize)]
#[model(shared)]
pub struct Tenant {
    pub id: i64,
    #[model(max_length = 63, unique)]
    pub schema_name: String,
    #[model(max_length = 100, unique)]
    pub tenant_name: String,
}

/// A user, in the shared schema and in every tenant schema.
#[derive(Model, Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
}

/// A product, owned by a user of the same schema.
#[derive(Model, Debug, Clone, Serialize)]
pub struct Product {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
    pub user: Option<ForeignKey<User>>,
}

/// Registers the demo's models.
pub fn register(registry: Registry) -> Registry {
    registry
        .register::<Tenant>()
        .register::<User>()
        .register::<Product>()
}
