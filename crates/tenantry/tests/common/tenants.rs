//! Tenants with a few named users, for tests that hold two tenants side by side.

use std::time::Duration;

use tenantry::{create_schema, ModelMeta, QuerySet, Registry, SchemaName};

use super::{
    models::{user, User},
    TestDb,
};

/// Creates tenant `name` with the tables of `models` (which include [`User`]) and `users`
/// users named `<name>0`, `<name>1`, …
pub async fn with_users(
    t: &TestDb,
    name: &str,
    users: usize,
    models: &[&'static ModelMeta],
) -> SchemaName {
    let schema = t.schema(name);
    create_schema(&t.registry, &schema, Some(models), false, true)
        .await
        .unwrap();
    if users > 0 {
        User::query(&t.registry)
            .using(&schema)
            .bulk_create((0..users).map(|i| user(&format!("{name}{i}"))))
            .await
            .unwrap();
    }
    schema
}

/// The users of `schema`, by id.
pub fn users_by_id(r: &Registry, schema: &SchemaName) -> QuerySet<User> {
    User::query(r).using(schema).order_by([User::id().asc()])
}

/// The name a tenant was made with (the schema name without the test's prefix), which
/// starts the names of its users.
pub fn name_of(schema: &SchemaName) -> String {
    schema.as_str().rsplit('_').next().unwrap().to_owned()
}

/// Reads the names of `schema`'s users, every `pause`, until told to stop.
pub async fn read_names_until(
    r: Registry,
    schema: SchemaName,
    until: tokio::sync::watch::Receiver<bool>,
    pause: Duration,
) -> Vec<Vec<String>> {
    let mut reads = Vec::new();
    while !*until.borrow() {
        let rows = User::query(&r).using(&schema).all().await.unwrap();
        reads.push(rows.into_iter().map(|u| u.into_inner().name).collect());
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
    reads
}
