//! Helpers of the tenant directory's tests.

use std::time::Duration;

use tenantry::{Backend, ConnectionBudget, Directory, Registry, SchemaName};

use super::{
    models::{user, User},
    servers::connections_on,
    TestDb,
};

/// A directory whose server `home` is the test's, with pools of 2 within `budget`.
pub fn directory(t: &TestDb, budget: usize) -> Directory {
    Directory::new(ConnectionBudget::new(budget).wait(Duration::from_secs(2)))
        .server("home", &t.server_url())
        .unwrap()
        .pool_size(2)
        .acquire_timeout(Duration::from_secs(3))
}

/// The test's `n`th directory database (cleaned up with the test's other databases).
pub fn db_name(t: &TestDb, n: u32) -> String {
    format!("{}_d{n}", t.prefix)
}

/// The names of the users the context's tenant holds, in key order.
pub async fn names(registry: &Registry) -> Vec<String> {
    User::query(registry)
        .order_by([User::id().asc()])
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.into_inner().name)
        .collect()
}

/// Connections the server reports for the directory's databases (SQLite has no server:
/// the budget's own count).
pub async fn server_connections(t: &TestDb, directory: &Directory, dbs: &[String]) -> usize {
    match t.backend {
        Backend::Sqlite => directory.budget().in_use(),
        backend => connections_on(backend, &t.server_url(), dbs).await,
    }
}

/// A valid schema name (test input).
pub fn schema(name: &str) -> SchemaName {
    SchemaName::parse(name).unwrap()
}

/// Creates user `name` in the context's tenant.
pub async fn add_user(registry: &Registry, name: &str) {
    User::query(registry).create(user(name)).await.unwrap();
}
