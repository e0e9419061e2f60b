//! The migration runner over a fleet: every operation kind, history and ledger, reruns,
//! checksums, missing migrations, a failing tenant and `retry_failed`, two runners at once,
//! and tenants that hold different data and never see each other's.
mod common;

use tenantry::{
    create_schema,
    migrate::{MigrationErrorKind, Migrations, Migrator, RunOptions},
    Backend, Model, Registry, SchemaName,
};

/// The tenant table in its final shape (after every migration below).
#[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
#[model(table = "m_items")]
struct MItem {
    #[model(primary_key)]
    id: i64,
    #[model(max_length = 50)]
    name: String,
    stock: i32,
}

/// The raw step's counter: one row per time the step ran in a tenant.
#[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
#[model(table = "m_counter")]
struct MCounter {
    #[model(primary_key)]
    id: i64,
    n: i32,
}

const SHARED: &str = r#"{ "scope": "shared", "operations": [
  { "op": "create_table", "table": "m_plans", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 100 } ] } ] }"#;

const TABLES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "m_owners", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] },
  { "op": "create_table", "table": "m_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "title", "type": "varchar", "max_length": 50 },
    { "name": "owner_id", "type": "big_integer", "null": true },
    { "name": "obsolete", "type": "text", "null": true } ],
    "foreign_keys": [ { "name": "fk_m_items_owner", "column": "owner_id",
      "references": "m_owners", "references_column": "id", "on_delete": "cascade" } ] },
  { "op": "create_table", "table": "m_counter_old", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "n", "type": "integer" } ] },
  { "op": "create_table", "table": "m_scratch", "columns": [
    { "name": "id", "type": "integer", "primary_key": true } ] } ] }"#;

const COLUMNS: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "m_items",
    "column": { "name": "stock", "type": "integer", "default": 0 } },
  { "op": "rename_column", "table": "m_items", "from": "title", "to": "name" },
  { "op": "drop_column", "table": "m_items", "column": "obsolete" },
  { "op": "create_index", "table": "m_items", "name": "ix_m_items_name", "columns": ["name"] },
  { "op": "create_index", "table": "m_owners", "name": "ux_m_owners_name", "columns": ["name"],
    "unique": true },
  { "op": "create_index", "table": "m_items", "name": "ix_m_items_stock", "columns": ["stock"] },
  { "op": "drop_index", "table": "m_items", "name": "ix_m_items_stock" },
  { "op": "rename_table", "from": "m_counter_old", "to": "m_counter" },
  { "op": "drop_table", "table": "m_scratch" } ] }"#;

/// SQLite alters neither columns nor constraints in place: each is a table rebuild there.
const CONSTRAINTS: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "alter_column", "table": "m_owners",
    "column": { "name": "name", "type": "varchar", "max_length": 80, "null": true } },
  { "op": "drop_foreign_key", "table": "m_items", "name": "fk_m_items_owner" },
  { "op": "add_foreign_key", "table": "m_items", "foreign_key": { "name": "fk_m_items_owner2",
    "column": "owner_id", "references": "m_owners", "references_column": "id",
    "on_delete": "set_null" } } ] }"#;

/// A non-idempotent step: one counter row each time it runs in a tenant.
const COUNTER: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "raw",
    "postgres": "INSERT INTO {table:m_counter} (n) VALUES (1)",
    "mysql": "INSERT INTO {table:m_counter} (n) VALUES (1)",
    "sqlite": "INSERT INTO {table:m_counter} (n) VALUES (1)" } ] }"#;

/// The same set on every backend (`backend` kept for the callers' symmetry).
fn migrations(_backend: Backend, extra: &[(&'static str, &'static str)]) -> Migrations {
    let mut files = vec![
        ("0001_shared", SHARED),
        ("0002_tables", TABLES),
        ("0003_columns", COLUMNS),
        ("0004_constraints", CONSTRAINTS),
    ];
    files.push(("0005_counter", COUNTER));
    files.extend_from_slice(extra);
    Migrations::from_files(&files).unwrap()
}

/// A registry over the test's database with only this file's models, and `n` empty tenant
/// schemas (tables come from the migrations).
async fn fleet(t: &common::TestDb, n: usize) -> (Registry, Vec<SchemaName>) {
    let registry = Registry::new(t.registry.database().clone())
        .register::<MItem>()
        .register::<MCounter>();
    let mut tenants = Vec::new();
    for i in 0..n {
        let schema = t.schema(&format!("m{i}"));
        create_schema(&registry, &schema, Some(&[]), false, false)
            .await
            .unwrap();
        tenants.push(schema);
    }
    (registry, tenants)
}

fn options() -> RunOptions {
    RunOptions {
        concurrency: 3,
        ..RunOptions::default()
    }
}

async fn counter(registry: &Registry, tenant: &SchemaName) -> usize {
    MCounter::query(registry)
        .using(tenant)
        .count()
        .await
        .unwrap() as usize
}

backend_test!(
    fleet_applies_every_operation,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 4).await;
        let set = migrations(t.backend, &[]);
        let last = set.all().last().unwrap().id().to_owned();
        let report = Migrator::new(&registry, set.clone())
            .run(options())
            .await
            .unwrap();
        assert_eq!(report.shared_applied, vec!["0001_shared".to_owned()]);
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.tenants.len(), tenants.len());
        for outcome in &report.tenants {
            assert_eq!(outcome.applied.last(), Some(&last));
        }

        // Two tenants with different data, written and read at once: neither sees the other's.
        let (a, b) = (&tenants[0], &tenants[1]);
        let item = |name: &str, stock| MItem {
            id: 0,
            name: name.into(),
            stock,
        };
        let (ra, rb) = tokio::join!(
            MItem::query(&registry).using(a).create(item("alpha", 1)),
            MItem::query(&registry).using(b).create(item("beta", 2)),
        );
        ra.unwrap();
        rb.unwrap();
        let (la, lb) = tokio::join!(
            MItem::query(&registry).using(a).all(),
            MItem::query(&registry).using(b).all(),
        );
        let (la, lb) = (la.unwrap(), lb.unwrap());
        assert_eq!(la.iter().map(|i| &*i.name).collect::<Vec<_>>(), ["alpha"]);
        assert_eq!(lb.iter().map(|i| &*i.name).collect::<Vec<_>>(), ["beta"]);
        // The added column's default applies to new rows.
        assert_eq!(la[0].stock, 1);
        for tenant in &tenants {
            assert_eq!(counter(&registry, tenant).await, 1, "{tenant}");
        }

        // A second run finds nothing to do and runs no step twice.
        let again = Migrator::new(&registry, set).run(options()).await.unwrap();
        assert!(again.shared_applied.is_empty());
        assert!(again.tenants.is_empty(), "{again:?}");
        for tenant in &tenants {
            assert_eq!(counter(&registry, tenant).await, 1, "{tenant}");
        }
        // The dropped table is gone, the renamed one answers under its new name only.
        registry.disconnect().await;
    }
);

backend_test!(
    edited_and_missing_migrations_are_refused,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 2).await;
        let set = migrations(t.backend, &[]);
        Migrator::new(&registry, set).run(options()).await.unwrap();

        // 0005 edited after it ran: every tenant refuses it, naming the tenant and migration.
        let edited = COUNTER.replace("VALUES (1)", "VALUES (2)");
        let edited: &'static str = Box::leak(edited.into_boxed_str());
        let mut files = vec![
            ("0001_shared", SHARED),
            ("0002_tables", TABLES),
            ("0003_columns", COLUMNS),
            ("0004_constraints", CONSTRAINTS),
        ];
        files.push(("0005_counter", edited));
        files.push(("0006_more", COUNTER));
        let report = Migrator::new(&registry, Migrations::from_files(&files).unwrap())
            .run(options())
            .await
            .unwrap();
        assert_eq!(report.failed().count(), tenants.len());
        for outcome in &report.tenants {
            let error = outcome.error.as_ref().unwrap();
            assert!(
                matches!(error.kind, MigrationErrorKind::ChecksumMismatch { .. }),
                "{error}"
            );
            assert_eq!(error.migration.as_deref(), Some("0005_counter"));
            assert!(error.to_string().contains(outcome.tenant.as_str()));
            // Nothing of 0006 ran.
            assert_eq!(counter(&registry, &outcome.tenant).await, 1);
        }

        // A binary without 0005: the tenants record a migration it does not carry.
        let files = vec![
            ("0001_shared", SHARED),
            ("0002_tables", TABLES),
            ("0003_columns", COLUMNS),
            ("0004_constraints", CONSTRAINTS),
        ];
        let report = Migrator::new(&registry, Migrations::from_files(&files).unwrap())
            .run(RunOptions {
                retry_failed: true,
                ..options()
            })
            .await
            .unwrap();
        for outcome in &report.tenants {
            let error = outcome.error.as_ref().unwrap();
            assert_eq!(error.kind, MigrationErrorKind::MissingFromBinary, "{error}");
        }
        registry.disconnect().await;
    }
);

backend_test!(
    a_failing_tenant_is_recorded_and_retried,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 3).await;
        Migrator::new(&registry, migrations(t.backend, &[]))
            .run(options())
            .await
            .unwrap();
        // Tenant 1 loses the table the next migration writes to, behind the runner's back.
        let broken = &tenants[1];
        drop_counter_table(&registry, broken).await;
        let next = migrations(t.backend, &[("0006_counter", COUNTER)]);
        // Every tenant needs 0006; tenant 1 fails at it and keeps nothing of it.
        let report = Migrator::new(&registry, next.clone())
            .run(options())
            .await
            .unwrap();
        let failed: Vec<_> = report.failed().map(|o| o.tenant.clone()).collect();
        assert_eq!(failed, vec![broken.clone()], "{report:?}");
        assert_eq!(
            report
                .failed()
                .next()
                .unwrap()
                .error
                .as_ref()
                .unwrap()
                .migration
                .as_deref(),
            Some("0006_counter")
        );

        // Without retry_failed the failed tenant is skipped and stays failed.
        let report = Migrator::new(&registry, next.clone())
            .run(options())
            .await
            .unwrap();
        assert_eq!(report.tenants.len(), 1);
        assert!(report.tenants[0].skipped);

        // The cause removed (the table is back), retry_failed finishes it, once.
        create_schema(&registry, broken, Some(&[MCounter::META]), true, true)
            .await
            .unwrap();
        let report = Migrator::new(&registry, next)
            .run(RunOptions {
                retry_failed: true,
                ..options()
            })
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.tenants.len(), 1);
        assert_eq!(report.tenants[0].applied, ["0006_counter"]);
        // The recreated table got 0006's one row; the others have 0005's and 0006's.
        assert_eq!(counter(&registry, broken).await, 1);
        for tenant in tenants.iter().filter(|t| *t != broken) {
            assert_eq!(counter(&registry, tenant).await, 2, "{tenant}");
        }
        registry.disconnect().await;
    }
);

/// Drops `m_counter` in one tenant with raw SQL, as an operator's mistake would.
async fn drop_counter_table(registry: &Registry, tenant: &SchemaName) {
    let db = registry.database();
    match db.backend() {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            let sql = format!("DROP TABLE \"{tenant}\".m_counter");
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
            conn.release();
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let server = db.server_schema_name(tenant).unwrap();
            let sql = format!("DROP TABLE `{server}`.m_counter");
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
            conn.release();
        }
        _ => {
            let mut conn = db.acquire_sqlite(Some(tenant)).await.unwrap();
            sqlx::query("DROP TABLE m_counter")
                .execute(&mut *conn)
                .await
                .unwrap();
            conn.release();
        }
    }
}

backend_test!(
    two_runners_migrate_each_tenant_once,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 6).await;
        let set = migrations(t.backend, &[]);
        let first = Migrator::new(&registry, set.clone());
        let second = Migrator::new(&registry, set);
        let (a, b) = tokio::join!(first.run(options()), second.run(options()));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.is_complete(), "{a:?}");
        assert!(b.is_complete(), "{b:?}");
        for tenant in &tenants {
            assert_eq!(counter(&registry, tenant).await, 1, "{tenant}");
        }
        registry.disconnect().await;
    }
);

/// The migrations that build this file's models from nothing (what the models are now).
const BUILD: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "m_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 50 },
    { "name": "stock", "type": "integer" } ] },
  { "op": "create_table", "table": "m_counter", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "n", "type": "integer" } ] } ] }"#;

backend_test!(
    new_schemas_are_stamped_not_replayed,
    |t: common::TestDb| async move {
        let set =
            Migrations::from_files(&[("0001_shared", SHARED), ("0002_build", BUILD)]).unwrap();
        let registry = Registry::new(t.registry.database().clone())
            .register::<MItem>()
            .register::<MCounter>()
            .migrations(set.clone());
        let (a, b) = (t.schema("sa"), t.schema("sb"));
        // Two tenants created at once, each stamped in its own creation.
        let (ca, cb) = tokio::join!(
            create_schema(&registry, &a, None, false, true),
            create_schema(&registry, &b, None, false, true),
        );
        ca.unwrap();
        cb.unwrap();
        let migrator = Migrator::new(&registry, set.clone());
        let status = migrator.status().await.unwrap();
        let mine: Vec<_> = status
            .tenants
            .iter()
            .filter(|s| s.tenant == a || s.tenant == b)
            .collect();
        assert_eq!(mine.len(), 2);
        for tenant in &mine {
            assert!(!tenant.behind, "{tenant:?}");
            assert_eq!(tenant.version.as_deref(), Some("0002_build"));
        }
        // A run replays nothing in the stamped tenants (their tables already exist: a replay
        // would have failed or doubled the counter).
        let report = migrator
            .run(RunOptions {
                tenant: Some(a.clone()),
                ..options()
            })
            .await
            .unwrap();
        assert!(report.tenants.is_empty(), "{report:?}");

        // A new migration: both are behind, then current, and keep their own rows.
        let (ra, rb) = tokio::join!(
            MCounter::query(&registry)
                .using(&a)
                .create(MCounter { id: 0, n: 10 }),
            MCounter::query(&registry)
                .using(&b)
                .create(MCounter { id: 0, n: 20 }),
        );
        ra.unwrap();
        rb.unwrap();
        let next = Migrations::from_files(&[
            ("0001_shared", SHARED),
            ("0002_build", BUILD),
            ("0003_counter", COUNTER),
        ])
        .unwrap();
        let migrator = Migrator::new(&registry, next);
        let status = migrator.status().await.unwrap();
        assert!(status.behind().any(|s| s.tenant == a));
        for tenant in [&a, &b] {
            let report = migrator
                .run(RunOptions {
                    tenant: Some(tenant.clone()),
                    ..options()
                })
                .await
                .unwrap();
            assert!(report.is_complete(), "{report:?}");
            assert_eq!(report.tenants[0].applied, ["0003_counter"]);
        }
        let (la, lb) = tokio::join!(
            MCounter::query(&registry).using(&a).all(),
            MCounter::query(&registry).using(&b).all(),
        );
        let ns = |rows: Vec<tenantry::Instance<MCounter>>| {
            let mut n: Vec<i32> = rows.iter().map(|r| r.n).collect();
            n.sort();
            n
        };
        assert_eq!(ns(la.unwrap()), [1, 10]);
        assert_eq!(ns(lb.unwrap()), [1, 20]);
        let status = migrator.status().await.unwrap();
        assert!(!status.behind().any(|s| s.tenant == a || s.tenant == b));
        registry.disconnect().await;
    }
);

#[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
#[model(table = "m_notes")]
struct MNote {
    #[model(primary_key)]
    id: i64,
    #[model(max_length = 50)]
    body: String,
}

const NOTES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "m_notes", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "body", "type": "varchar", "max_length": 50 } ] } ] }"#;

/// Changes the type of a selected column (SQLite: by a table rebuild).
const NOTES_TEXT: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "alter_column", "table": "m_notes",
    "column": { "name": "body", "type": "text" } } ] }"#;
const NOTES_EXTRA: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "m_notes",
    "column": { "name": "extra", "type": "integer", "null": true } } ] }"#;

backend_test!(
    reads_survive_a_migration_under_them,
    |t: common::TestDb| async move {
        // A pool of 2 whose statement caches are warm when the column type changes.
        let database = t.reconnect_with(2).await;
        let registry = Registry::new(database.clone()).register::<MNote>();
        let (a, b) = (t.schema("na"), t.schema("nb"));
        for schema in [&a, &b] {
            create_schema(&registry, schema, Some(&[]), false, false)
                .await
                .unwrap();
        }
        let first = Migrations::from_files(&[("0001_notes", NOTES)]).unwrap();
        Migrator::new(&registry, first)
            .run(options())
            .await
            .unwrap();
        for (schema, body) in [(&a, "note of a"), (&b, "note of b")] {
            MNote::query(&registry)
                .using(schema)
                .create(MNote {
                    id: 0,
                    body: body.into(),
                })
                .await
                .unwrap();
        }
        let next = Migrations::from_files(&[
            ("0001_notes", NOTES),
            ("0002_change", NOTES_TEXT),
            ("0003_extra", NOTES_EXTRA),
        ])
        .unwrap();

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = |schema: SchemaName, expected: &'static str| {
            let (registry, stop) = (registry.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut reads, mut errors) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads < 50 {
                    match MNote::query(&registry).using(&schema).all().await {
                        Ok(rows) => {
                            // Each tenant sees its own note only.
                            assert_eq!(rows.len(), 1);
                            assert_eq!(rows[0].body, expected);
                        }
                        Err(error) => errors.push(error.to_string()),
                    }
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                (reads, errors)
            })
        };
        let readers = [
            reader(a.clone(), "note of a"),
            reader(b.clone(), "note of b"),
        ];
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let runner_registry = Registry::new(t.reconnect().await);
        let report = Migrator::new(&runner_registry, next)
            .run(options())
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            let (reads, errors) = reader.await.unwrap();
            assert!(reads >= 50);
            assert!(
                errors.is_empty(),
                "reads failed during the migration: {errors:?}"
            );
        }
        if t.backend == Backend::Postgres {
            assert!(
                database.stale_plan_retries() >= 1,
                "the type change should have invalidated at least one cached plan"
            );
        }
        runner_registry.disconnect().await;
        registry.disconnect().await;
    }
);

backend_test!(
    a_stale_plan_inside_a_transaction_is_a_typed_error,
    |t: common::TestDb| async move {
        let database = t.reconnect_with(1).await;
        let registry = Registry::new(database.clone()).register::<MNote>();
        let a = t.schema("ta");
        create_schema(&registry, &a, Some(&[]), false, false)
            .await
            .unwrap();
        let first = Migrations::from_files(&[("0001_notes", NOTES)]).unwrap();
        Migrator::new(&registry, first)
            .run(options())
            .await
            .unwrap();
        MNote::query(&registry)
            .using(&a)
            .create(MNote {
                id: 0,
                body: "kept".into(),
            })
            .await
            .unwrap();
        // The one connection caches the read's plan, then the column type changes under it.
        assert_eq!(MNote::query(&registry).using(&a).count().await.unwrap(), 1);
        assert_eq!(
            MNote::query(&registry).using(&a).all().await.unwrap().len(),
            1
        );
        let next =
            Migrations::from_files(&[("0001_notes", NOTES), ("0002_change", NOTES_TEXT)]).unwrap();
        Migrator::new(&registry, next).run(options()).await.unwrap();

        let tx = registry.begin_in(&a).await.unwrap();
        let inside = MNote::query(&tx).using(&a).all().await;
        match (t.backend, inside) {
            (Backend::Postgres, Err(tenantry::Error::CachedPlanInvalidated { .. })) => {}
            (Backend::Postgres, other) => panic!("expected CachedPlanInvalidated, got {other:?}"),
            (_, other) => assert_eq!(other.unwrap().len(), 1),
        }
        tx.rollback().await.unwrap();
        // The cache was cleared: the transaction run again succeeds, and so do plain reads.
        let tx = registry.begin_in(&a).await.unwrap();
        assert_eq!(
            MNote::query(&tx).using(&a).all().await.unwrap()[0].body,
            "kept"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            MNote::query(&registry).using(&a).all().await.unwrap().len(),
            1
        );
        registry.disconnect().await;
    }
);

backend_test!(
    schemas_without_history_are_adopted_or_refused,
    |t: common::TestDb| async move {
        // Tenants made before migrations existed: tables from the models, no history.
        let plain = Registry::new(t.registry.database().clone())
            .register::<MItem>()
            .register::<MCounter>();
        let (a, b) = (t.schema("ad_a"), t.schema("ad_b"));
        create_schema(&plain, &a, None, false, true).await.unwrap();
        create_schema(&plain, &b, Some(&[MItem::META]), false, true)
            .await
            .unwrap();
        let (ra, rb) = tokio::join!(
            MItem::query(&plain).using(&a).create(MItem {
                id: 0,
                name: "kept-a".into(),
                stock: 4
            }),
            MItem::query(&plain).using(&b).create(MItem {
                id: 0,
                name: "kept-b".into(),
                stock: 5
            }),
        );
        ra.unwrap();
        rb.unwrap();

        let set =
            Migrations::from_files(&[("0002_build", BUILD), ("0003_counter", COUNTER)]).unwrap();
        let report = Migrator::new(&plain, set).run(options()).await.unwrap();
        let outcome = |s: &SchemaName| report.tenants.iter().find(|o| o.tenant == *s).unwrap();
        // a: every table of the first migration, as it builds them: adopted, then migrated on.
        let oa = outcome(&a);
        assert!(oa.error.is_none(), "{oa:?}");
        assert_eq!(oa.adopted.as_deref(), Some("0002_build"));
        assert_eq!(oa.applied, ["0003_counter"]);
        // b: m_counter is missing, so it is not what the first migration builds: refused, and
        // nothing in it changed.
        let ob = outcome(&b);
        let error = ob.error.as_ref().expect("b must be refused");
        assert!(
            matches!(error.kind, MigrationErrorKind::NotAdoptable(_)),
            "{error}"
        );
        assert!(error.to_string().contains("m_counter"), "{error}");
        // Each tenant kept its own rows, and only its own.
        let (la, lb) = tokio::join!(
            MItem::query(&plain).using(&a).all(),
            MItem::query(&plain).using(&b).all(),
        );
        assert_eq!(
            la.unwrap()
                .iter()
                .map(|i| i.name.clone())
                .collect::<Vec<_>>(),
            ["kept-a"]
        );
        assert_eq!(
            lb.unwrap()
                .iter()
                .map(|i| i.name.clone())
                .collect::<Vec<_>>(),
            ["kept-b"]
        );
        assert_eq!(counter(&plain, &a).await, 1);
        plain.disconnect().await;
    }
);

backend_test!(
    a_rewrite_without_opting_in_is_refused_before_anything_runs,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 2).await;
        let rewrite = r#"{ "scope": "tenant", "operations": [
      { "op": "add_column", "table": "m_owners",
        "column": { "name": "note", "type": "integer", "null": true } },
      { "op": "alter_column", "table": "m_owners",
        "column": { "name": "name", "type": "text" } } ] }"#;
        let set =
            Migrations::from_files(&[("0002_tables", TABLES), ("0003_rewrite", rewrite)]).unwrap();
        match Migrator::new(&registry, set).run(options()).await {
            Err(tenantry::Error::Migration(error)) if t.backend != Backend::Sqlite => {
                assert_eq!(error.migration.as_deref(), Some("0003_rewrite"));
                assert!(
                    matches!(error.kind, MigrationErrorKind::Unsupported(_)),
                    "{error}"
                );
                let text = error.to_string();
                assert!(
                    text.contains("allow_rewrite") && text.contains("expand/contract"),
                    "{text}"
                );
            }
            // SQLite rebuilds the table instead: a hazard that needs no opt-in.
            Ok(report) if t.backend == Backend::Sqlite => {
                assert!(report.is_complete(), "{report:?}");
                let set =
                    Migrations::from_files(&[("0002_tables", TABLES), ("0003_rewrite", rewrite)])
                        .unwrap();
                let hazards = set.hazards(set.get("0003_rewrite").unwrap(), t.backend);
                assert_eq!(hazards.len(), 1, "{hazards:?}");
                assert_eq!(hazards[0].kind, tenantry::migrate::HazardKind::Rebuild);
                assert!(!hazards[0].kind.needs_allow_rewrite());
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Nothing ran (except on SQLite): not even 0002, whose tables are still missing in
        // every tenant.
        for tenant in &tenants {
            let behind = t.backend == Backend::Sqlite
                || MItem::query(&registry).using(tenant).count().await.is_err();
            assert!(behind, "{tenant}");
        }
        registry.disconnect().await;
    }
);

backend_test!(
    a_tenant_locked_by_another_runner_is_recorded_locked,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 2).await;
        let set = Migrations::from_files(&[("0002_tables", TABLES)]).unwrap();
        let held = &tenants[0];
        // Another runner's lock on tenant 0, held by this test for the whole run.
        let _guard = hold_migration_lock(&t, &registry, held).await;
        let report = Migrator::new(&registry, set)
            .run(RunOptions {
                lock_wait: std::time::Duration::from_secs(1),
                ..options()
            })
            .await
            .unwrap();
        let failed: Vec<_> = report.failed().collect();
        assert_eq!(failed.len(), 1, "{report:?}");
        assert_eq!(&failed[0].tenant, held);
        let error = failed[0].error.as_ref().unwrap();
        assert!(
            matches!(error.kind, MigrationErrorKind::Locked { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains(held.as_str()) && error.to_string().contains("--lock-wait")
        );
        // The other tenant was migrated meanwhile.
        let other = report
            .tenants
            .iter()
            .find(|o| o.tenant == tenants[1])
            .unwrap();
        assert!(other.error.is_none(), "{other:?}");
        registry.disconnect().await;
    }
);

/// Holds what a migration runner holds while it migrates `tenant` (the advisory lock key,
/// the GET_LOCK name, the file's write lock), until the returned guard is dropped.
async fn hold_migration_lock(
    t: &common::TestDb,
    registry: &Registry,
    tenant: &SchemaName,
) -> Box<dyn std::any::Any + Send> {
    use sha2::Digest;
    let db = registry.database();
    match t.backend {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
            sqlx::query("SELECT pg_advisory_xact_lock((CAST(1952804468 AS bigint) << 32) + CAST(CAST(CAST($1 AS regnamespace) AS oid) AS bigint))")
                .bind(tenant.as_str())
                .execute(&mut *conn)
                .await
                .unwrap();
            Box::new(conn)
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let key = format!("tenant:{}", db.server_schema_name(tenant).unwrap());
            let digest = sha2::Sha256::digest(key.as_bytes());
            let name: String = std::iter::once("tenantry:migrate:".to_owned())
                .chain(digest[..20].iter().map(|b| format!("{b:02x}")))
                .collect();
            let got: (i64,) = sqlx::query_as("SELECT GET_LOCK(?, 5)")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(got.0, 1);
            Box::new(conn)
        }
        Backend::Sqlite => {
            let mut conn = db.acquire_sqlite(Some(tenant)).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut *conn)
                .await
                .unwrap();
            Box::new(conn)
        }
    }
}

backend_test!(
    a_tenant_whose_schema_is_gone_is_reported_gone,
    |t: common::TestDb| async move {
        let (registry, _tenants) = fleet(&t, 1).await;
        let gone = t.schema("gone");
        let report = Migrator::new(&registry, migrations(t.backend, &[]))
            .run(RunOptions {
                tenant: Some(gone.clone()),
                ..options()
            })
            .await
            .unwrap();
        assert_eq!(report.tenants.len(), 1, "{report:?}");
        let error = report.tenants[0]
            .error
            .as_ref()
            .expect("a missing schema is an error");
        assert_eq!(error.kind, MigrationErrorKind::SchemaGone, "{error}");
        assert!(error.to_string().contains(gone.as_str()), "{error}");
        // It leaves no ledger row behind.
        let status = Migrator::new(&registry, migrations(t.backend, &[]))
            .status()
            .await
            .unwrap();
        assert!(!status.tenants.iter().any(|s| s.tenant == gone));
        registry.disconnect().await;
    }
);
