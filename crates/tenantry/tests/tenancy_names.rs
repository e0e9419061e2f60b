//! Hostile schema names are rejected everywhere, before any SQL is sent.
mod common;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, drop_schema, tenant_scope, Backend, Error, SchemaName,
};

/// The shared hostile corpus (tests/common/hostile.rs): every entry is an invalid name.
fn hostile() -> Vec<String> {
    let names = common::hostile::corpus();
    assert!(names.len() >= 200, "corpus too small: {}", names.len());
    names
}

#[test]
fn parse_rejects_every_hostile_name() {
    for name in hostile() {
        match SchemaName::parse(&name) {
            Err(Error::InvalidSchemaName { .. }) => {}
            other => panic!("{name:?} was not rejected: {other:?}"),
        }
        assert!(matches!(
            SchemaName::try_from(name.as_str()),
            Err(Error::InvalidSchemaName { .. })
        ));
        assert!(name.parse::<SchemaName>().is_err());
    }
    // The edges that are fine.
    for ok in ["a", "_", "_a", "t1", "tenant_001", "pg", "pgx_a", "mainx"] {
        SchemaName::parse(ok).unwrap();
    }
    SchemaName::parse(&"a".repeat(63)).unwrap();
    // Look-alikes of a tenant that are themselves valid names: accepted here, and elsewhere
    // treated as a different (unknown) tenant, never as the one they resemble.
    for ok in common::hostile::valid_lookalikes("edgy") {
        SchemaName::parse(&ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
}

/// Everything the server could have gained from a leaked name, per name.
async fn footprint(t: &common::TestDb, names: &[String]) -> Vec<(String, i64, i64)> {
    let db = t.registry.database();
    let mut out = Vec::new();
    match t.backend {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            let pool = &mut *conn;
            for name in names.iter().filter(|n| !n.contains('\0')) {
                let (schemas,): (i64,) =
                    sqlx::query_as("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
                        .bind(name)
                        .fetch_one(&mut *pool)
                        .await
                        .unwrap();
                let (tables,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(name)
                .fetch_one(&mut *pool)
                .await
                .unwrap();
                out.push((name.clone(), schemas, tables));
            }
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let pool = &mut *conn;
            // information_schema is utf8mb3: a name outside the BMP cannot be compared to it
            // (error 1267), and cannot be a MySQL identifier either.
            for name in names
                .iter()
                .filter(|n| n.chars().all(|c| (c as u32) < 0x1_0000))
            {
                // The name itself, and the tenant database it would map to in the test
                // database's namespace (`<db>$<name>`).
                let mapped = format!("{}${name}", t.database_name());
                let (schemas,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME = ? OR SCHEMA_NAME = ?",
                )
                .bind(name)
                .bind(&mapped)
                .fetch_one(&mut *pool)
                .await
                .unwrap();
                let (tables,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? OR TABLE_SCHEMA = ?",
                )
                .bind(name)
                .bind(&mapped)
                .fetch_one(&mut *pool)
                .await
                .unwrap();
                out.push((name.clone(), schemas, tables));
            }
        }
        Backend::Sqlite => {
            // Every file of the test's private directory (the harness puts it there).
            let dir = std::env::temp_dir().join(format!("tenantry-tests/{}", t.prefix));
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            out.extend(files.into_iter().map(|f| (f, 0, 0)));
            // Path traversal would land beside or above the directory.
            for outside in ["x", "x.sqlite", "main.x.sqlite"] {
                let exists = dir.parent().unwrap().join(outside).exists();
                out.push((outside.into(), exists as i64, 0));
            }
        }
    }
    out
}

backend_test!(
    hostile_names_never_reach_sql,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let names = hostile();
        // This test's own schemas all carry its prefix.
        let own = |names: Vec<tenantry::SchemaName>| -> Vec<tenantry::SchemaName> {
            names
                .into_iter()
                .filter(|n| n.as_str().starts_with(&t.prefix))
                .collect()
        };
        let schemas_before = own(r.schema().list().await.unwrap());
        let footprint_before = footprint(&t, &names).await;
        User::query(r).create(user("default")).await.unwrap();

        let invalid = |result: Result<(), Error>, what: &str, name: &str| match result {
            Err(Error::InvalidSchemaName { .. }) => {}
            other => panic!("{what}({name:?}) was not rejected: {other:?}"),
        };
        for name in &names {
            let n = name.as_str();
            invalid(
                User::query(r).using(n).count().await.map(drop),
                "using.count",
                n,
            );
            invalid(
                User::query(r).using(n).all().await.map(drop),
                "using.all",
                n,
            );
            invalid(
                User::query(r).using(n).create(user("evil")).await.map(drop),
                "using.create",
                n,
            );
            invalid(
                User::query(r)
                    .using(n)
                    .bulk_create([user("evil")])
                    .await
                    .map(drop),
                "using.bulk_create",
                n,
            );
            invalid(
                User::query(r)
                    .using(n)
                    .update([User::name().set("evil")])
                    .await
                    .map(drop),
                "using.update",
                n,
            );
            invalid(
                User::query(r).using(n).delete().await.map(drop),
                "using.delete",
                n,
            );
            // A later valid using does not hide the earlier bad one.
            invalid(
                User::query(r)
                    .using(n)
                    .using(&t.schema("fine"))
                    .count()
                    .await
                    .map(drop),
                "using.using",
                n,
            );
            invalid(
                create_schema(r, n, None, true, true).await,
                "create_schema",
                n,
            );
            invalid(
                create_schema(r, n, None, false, false).await,
                "create_schema",
                n,
            );
            invalid(drop_schema(r, n, true, true).await, "drop_schema", n);
            invalid(drop_schema(r, n, false, false).await, "drop_schema", n);
            invalid(
                tenant_scope(async { activate_schema(n) }).await,
                "activate_schema",
                n,
            );
        }

        assert_eq!(own(r.schema().list().await.unwrap()), schemas_before);
        assert_eq!(footprint(&t, &names).await, footprint_before);
        // Nothing fell through to the default schema either.
        let users = User::query(r).all().await.unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].name, "default");
    }
);
