//! The seed page's models: `User` and `Product` in every tenant schema (and the shared one),
//! beside the built-in shared `Tenant` / `TenantUser` of [`tenantry::contrib`].

use serde::Serialize;
use tenantry::{contrib, Decimal, ForeignKey, Model, Registry};

/// A user, in the shared schema and in every tenant schema.
#[derive(Model, Debug, Clone, Serialize)]
pub struct User {
    /// The primary key.
    pub id: i64,
    /// The user's name.
    #[model(max_length = 255)]
    pub name: String,
}

/// A product, owned by a user of the same schema. Serializes as `{"id", "name", "user"}`
/// (`user` is the owner's id or null), `"price"` (a decimal string, e.g. `"9.99"`) and
/// `"stock"`.
#[derive(Model, Debug, Clone, Serialize)]
pub struct Product {
    /// The primary key.
    pub id: i64,
    /// The product's name.
    #[model(max_length = 255)]
    pub name: String,
    /// The owner.
    pub user: Option<ForeignKey<User>>,
    /// The price, exact to the cent (added by migration 0004/0005; 0 for older rows).
    #[model(max_digits = 12, decimal_places = 2, default = Decimal::ZERO)]
    pub price: Decimal,
    /// Units in stock (added with the price; 0 for older rows).
    #[model(default = 0)]
    pub stock: i32,
}

/// Registers the demo's models: the contrib tenant models, the tenant directory's table,
/// `User` and `Product`.
pub fn register(registry: Registry) -> Registry {
    contrib::register(registry)
        .register::<contrib::DirectoryEntry>()
        .register::<User>()
        .register::<Product>()
}
