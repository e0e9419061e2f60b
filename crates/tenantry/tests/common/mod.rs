//! The harness of tenantry's own tests: the shared harness plus the test models, created in
//! every test database.
#![allow(dead_code)]

pub mod cancel;
pub mod citus;
pub mod citus_models;
pub mod directory;
mod harness;
pub mod hostile;
pub mod models;
pub mod servers;
pub mod sqlite_dir;
pub mod state;
pub mod statements;
pub mod tenants;

pub use harness::*;

use tenantry::Registry;

/// Registers the test models and creates their tables.
pub async fn prepare(registry: Registry) -> Registry {
    let registry = models::register(registry);
    registry.create_all().await.unwrap();
    registry
}
