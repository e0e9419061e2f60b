//! Review of migrations part 1, as an attacker: failing tests that prove defects. Each test
//! asserts the correct behaviour, so a failure here is the finding (see each test's doc).
mod common;

use tenantry::{
    contrib, create_schema, drop_schema,
    migrate::{Migrations, Migrator, RunOptions},
    Backend, Model, Registry, SchemaName,
};

#[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
#[model(table = "r_items")]
struct RItem {
    #[model(primary_key)]
    id: i64,
    #[model(max_length = 50)]
    name: String,
}

const V1: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "r_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 50 } ] } ] }"#;

fn set(extra: &[(&'static str, &'static str)]) -> Migrations {
    let mut files = vec![("0001_items", V1)];
    files.extend_from_slice(extra);
    Migrations::from_files(&files).unwrap()
}

async fn fleet(t: &common::TestDb, n: usize) -> (Registry, Vec<SchemaName>) {
    let registry = Registry::new(t.registry.database().clone()).register::<RItem>();
    let mut tenants = Vec::new();
    for i in 0..n {
        let schema = t.schema(&format!("r{i}"));
        create_schema(&registry, &schema, Some(&[]), false, false)
            .await
            .unwrap();
        tenants.push(schema);
    }
    (registry, tenants)
}

fn options() -> RunOptions {
    RunOptions {
        concurrency: 2,
        ..RunOptions::default()
    }
}

/// FINDING (MariaDB, apply.rs:569-570 + already_applied): a step that FAILED (not one a kill
/// interrupted) is recorded as the resume point; `retry_failed` then meets the same error
/// (1054 unknown column, 1146 no such table, 1091, ...) at `index == resumed_at` and takes it
/// for "already applied": the step is skipped and the tenant recorded done at a version whose
/// change it does not have.
const RENAME_MISSING: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "rename_column", "table": "r_items", "from": "title", "to": "label" } ] }"#;

backend_test!(
    a_failed_step_is_not_skipped_on_retry,
    |t: common::TestDb| async move {
        if t.backend != Backend::MySql {
            return;
        }
        let (registry, tenants) = fleet(&t, 1).await;
        Migrator::new(&registry, set(&[]))
            .run(options())
            .await
            .unwrap();
        let next = set(&[("0002_rename", RENAME_MISSING)]);
        let first = Migrator::new(&registry, next.clone())
            .run(options())
            .await
            .unwrap();
        assert_eq!(first.failed().count(), 1, "{first:?}");
        // The operator retries the failed tenant: the same step fails the same way.
        let retry = Migrator::new(&registry, next.clone())
            .run(RunOptions {
                retry_failed: true,
                ..options()
            })
            .await
            .unwrap();
        let status = Migrator::new(&registry, next).status().await.unwrap();
        assert!(
            !retry.is_complete(),
            "a step that failed was skipped on retry; tenant {} recorded at {:?} without column \
             `label`: {retry:?}",
            tenants[0],
            status.tenants[0].version,
        );
        registry.disconnect().await;
    }
);

// FINDING (all backends, stamp.rs / schemas.rs drop): drop_schema leaves the tenant's ledger
// row. A schema re-created under the same name without stamping (here: empty) inherits
// "done at the last version": `status` says current (the demo serves it), `run` skips it,
// and its tables never come.
backend_test!(
    a_recreated_schema_does_not_inherit_the_dropped_ones_ledger,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 2).await;
        let migrations = set(&[]);
        Migrator::new(&registry, migrations.clone())
            .run(options())
            .await
            .unwrap();
        let victim = &tenants[0];
        drop_schema(&registry, victim, true, false).await.unwrap();
        create_schema(&registry, victim, Some(&[]), false, false)
            .await
            .unwrap();
        let status = Migrator::new(&registry, migrations.clone())
            .status()
            .await
            .unwrap();
        let row = status.tenants.iter().find(|s| &s.tenant == victim).unwrap();
        let report = Migrator::new(&registry, migrations)
            .run(options())
            .await
            .unwrap();
        let has_table = RItem::query(&registry).using(victim).count().await;
        assert!(
            row.behind && has_table.is_ok(),
            "re-created empty schema {victim} reported current ({row:?}); run migrated {:?}; \
             querying it: {has_table:?}",
            report.tenants
        );
        registry.disconnect().await;
    }
);

/// FINDING (MariaDB, apply.rs:559-565 raw_step): a raw step holding DDL commits implicitly
/// before its record; a run killed there leaves steps = 0 with the column made. The resumed
/// run executes the raw DDL again (no "already applied" path for raw steps): the tenant fails
/// with "Duplicate column" on every run from then on. This test builds exactly the state
/// such a kill leaves (the history row at 0 steps, the DDL applied), then runs.
const RAW_DDL: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "raw",
    "postgres": "ALTER TABLE {table:r_items} ADD COLUMN extra INTEGER NULL",
    "mysql": "ALTER TABLE {table:r_items} ADD COLUMN extra INTEGER NULL",
    "sqlite": "ALTER TABLE {table:r_items} ADD COLUMN extra INTEGER NULL" } ] }"#;

backend_test!(
    a_raw_ddl_step_killed_before_its_record_resumes,
    |t: common::TestDb| async move {
        if t.backend != Backend::MySql {
            return;
        }
        let (registry, tenants) = fleet(&t, 1).await;
        Migrator::new(&registry, set(&[]))
            .run(options())
            .await
            .unwrap();
        let next = set(&[("0002_raw", RAW_DDL)]);
        let checksum = next.get("0002_raw").unwrap().checksum().to_owned();
        let db = registry.database();
        let server = db.server_schema_name(&tenants[0]).unwrap();
        let mut conn = db.acquire_mysql().await.unwrap();
        // What the runner had done when killed: the record at 0 steps, then the raw DDL.
        sqlx::query(&format!(
            "INSERT INTO `{server}`.tenantry_migrations (id, checksum, steps, done) \
             VALUES ('0002_raw', ?, 0, false)"
        ))
        .bind(&checksum)
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(&format!(
            "ALTER TABLE `{server}`.r_items ADD COLUMN extra INTEGER NULL"
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        conn.release();
        let report = Migrator::new(&registry, next).run(options()).await.unwrap();
        assert!(
            report.is_complete(),
            "resume after a kill failed: {report:?}"
        );
        registry.disconnect().await;
    }
);

/// FINDING (PostgreSQL, render.rs raw / runner on one shared connection): a raw step's bare
/// table name resolves through the runner connection's default search_path, i.e. the SHARED
/// schema on PostgreSQL, while on MariaDB and SQLite it is the tenant's own table. A tenant
/// migration written `UPDATE r_items ...` (placeholder forgotten) writes the shared schema's
/// table once per tenant and records every tenant done.
const SHARED_ITEMS: &str = r#"{ "scope": "shared", "operations": [
  { "op": "create_table", "table": "r_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 50 } ] } ] }"#;
const RAW_BARE: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "raw",
    "postgres": "INSERT INTO r_items (name) VALUES ('from a tenant migration')",
    "mysql": "INSERT INTO r_items (name) VALUES ('from a tenant migration')",
    "sqlite": "INSERT INTO r_items (name) VALUES ('from a tenant migration')" } ] }"#;

backend_test!(
    a_raw_step_never_writes_the_shared_schema,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 3).await;
        let migrations = Migrations::from_files(&[
            ("0000_shared", SHARED_ITEMS),
            ("0001_items", V1),
            ("0002_bare", RAW_BARE),
        ])
        .unwrap();
        let report = Migrator::new(&registry, migrations)
            .run(options())
            .await
            .unwrap();
        let shared_rows = RItem::query(&registry).count().await.unwrap();
        let mut tenant_rows = Vec::new();
        for tenant in &tenants {
            tenant_rows.push(RItem::query(&registry).using(tenant).count().await.unwrap());
        }
        assert_eq!(
            (shared_rows, tenant_rows.clone()),
            (0, vec![1; tenants.len()]),
            "tenant migration wrote the shared table {shared_rows} time(s), the tenants' \
             {tenant_rows:?}; report {report:?}"
        );
        registry.disconnect().await;
    }
);

// FINDING (MariaDB, contrib/legacy.rs:65-111): move_legacy_mysql_tenants (which every
// `migrate run` of tenantry-cli calls first) never checks that the tenant's namespaced
// database is missing (its own docs say it does) nor that the "legacy" database is one
// tenantry made: for a tenant row whose schema name equals ANY database on the server (another
// application's database), it moves every table of that database into the tenant's database
// and drops it.
backend_test!(
    legacy_move_never_takes_another_applications_database,
    |t: common::TestDb| async move {
        if t.backend != Backend::MySql {
            return;
        }
        let registry = contrib::register(t.registry.clone());
        registry.create_all().await.unwrap();
        // Another application's database on the same server, with its own data.
        let other = format!("{}_other", t.prefix);
        let admin = sqlx::MySqlPool::connect(&std::env::var("TENANTRY_TEST_MYSQL_URL").unwrap())
            .await
            .unwrap();
        sqlx::raw_sql(&format!(
            "CREATE DATABASE `{other}`; CREATE TABLE `{other}`.secrets (v TEXT); \
             INSERT INTO `{other}`.secrets VALUES ('other app data')"
        ))
        .execute(&admin)
        .await
        .unwrap();
        // A tenant (made today, in the namespace) whose name happens to be that database's.
        contrib::create_tenant(&registry, other.as_str(), "Signup")
            .await
            .unwrap();
        let moved = contrib::move_legacy_mysql_tenants(&registry).await;
        let still_there: Option<(String,)> =
            sqlx::query_as(&format!("SELECT v FROM `{other}`.secrets"))
                .fetch_optional(&admin)
                .await
                .ok()
                .flatten();
        admin.close().await;
        assert!(
            still_there.is_some(),
            "another application's database `{other}` was moved into tenant {other}'s and \
             dropped: {moved:?}"
        );
        registry.disconnect().await;
    }
);

/// FINDING (PostgreSQL, render.rs:253-279 column(); Migration::parse does not check it):
/// `auto_increment` on a column that is not an integer (varchar, uuid, decimal, ...) reaches
/// sea-query's PostgreSQL builder, which `unimplemented!()`s: the author's file panics the
/// process in `plan_sql` (`migrate plan --dry-run`), in `migrate_shared` (the caller's task),
/// or a worker mid-transaction (the run fails with "a migration worker panicked", the tenant's
/// ledger row left `running`).
const AUTO_VARCHAR: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "r_codes", "columns": [
    { "name": "code", "type": "varchar", "max_length": 20, "primary_key": true,
      "auto_increment": true } ] } ] }"#;

backend_test!(
    an_auto_increment_varchar_is_an_error_not_a_panic,
    |t: common::TestDb| async move {
        let (registry, tenants) = fleet(&t, 1).await;
        let parsed = Migrations::from_files(&[("0001_codes", AUTO_VARCHAR)]);
        if let Ok(migrations) = parsed {
            let migrator = Migrator::new(&registry, migrations.clone());
            let m = migrations.get("0001_codes").unwrap().clone();
            let t0 = tenants[0].clone();
            let planned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                migrator.plan_sql(&m, Some(&t0)).map(|s| s.len())
            }));
            assert!(
                planned.is_ok(),
                "plan_sql panicked on a migration file's content"
            );
            let run = migrator.run(options()).await;
            assert!(
                !format!("{run:?}").contains("panicked"),
                "a migration worker panicked: {run:?}"
            );
        }
        registry.disconnect().await;
    }
);

// FINDING (MariaDB / SQLite, schemas.rs create_compensating vs runner.rs): create_tenant
// builds a tenant's tables and stamps its history statement by statement, outside the
// tenant's migration lock (GET_LOCK / the file's write lock), while a running `Migrator`
// lists the new database or file as soon as it exists. The runner then sees a half-built
// schema (NotAdoptable recorded, or migrations run over it) and the stamp's history insert
// collides with the runner's: create_tenant fails and drops the tenant. Probabilistic: it
// runs creations beside back-to-back runs and requires every creation to succeed.
backend_test!(
    create_tenant_beside_a_running_migrator,
    |t: common::TestDb| async move {
        let migrations = set(&[(
            "0002_stock",
            r#"{ "scope": "tenant", "operations": [
              { "op": "create_table", "table": "r_more", "columns": [
                { "name": "id", "type": "integer", "primary_key": true } ] } ] }"#,
        )]);
        let registry = contrib::register(Registry::new(t.registry.database().clone()))
            .register::<RItem>()
            .migrations(migrations.clone());
        registry.create_all().await.unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runner = {
            let (registry, migrations, done) = (registry.clone(), migrations.clone(), done.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    match Migrator::new(&registry, migrations.clone())
                        .run(RunOptions {
                            concurrency: 4,
                            retry_failed: true,
                            ..RunOptions::default()
                        })
                        .await
                    {
                        Ok(report) => {
                            failures.extend(report.failed().map(|o| format!("{:?}", o.error)))
                        }
                        Err(error) => failures.push(error.to_string()),
                    }
                }
                failures
            })
        };
        let mut errors = Vec::new();
        for i in 0..30 {
            let schema = t.schema(&format!("c{i}"));
            if let Err(error) = contrib::create_tenant(&registry, &schema, &format!("C{i}")).await {
                errors.push(format!("{schema}: {error}"));
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let runner_failures = runner.await.unwrap();
        assert!(
            errors.is_empty() && runner_failures.is_empty(),
            "create_tenant failed beside a runner: {errors:#?}\nrunner recorded: {runner_failures:#?}"
        );
        registry.disconnect().await;
    }
);
