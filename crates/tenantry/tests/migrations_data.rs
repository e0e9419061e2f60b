//! Data steps (`{ "op": "data", "name": … }`): a registered async function run in each
//! migrated tenant's scope, on the migration's own transaction. Tenants holding different
//! rows are migrated concurrently and each fills only its own; a failing step leaves its
//! tenant as it was (PostgreSQL, SQLite) or resumable without repeating (MySQL); a step may
//! not end the migration's transaction; an unregistered step is refused before anything
//! runs.
mod common;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use common::TestDb;
use tenantry::{
    create_schema,
    migrate::{LedgerState, Migrations, Migrator, RunOptions},
    with_tenant, Backend, Error, Model, Registry, SchemaName, Transaction,
};

#[derive(Model, Debug, Clone)]
#[model(table = "d_people")]
struct Person {
    id: i64,
    #[model(max_length = 40)]
    first: String,
    #[model(max_length = 40)]
    last: String,
    #[model(max_length = 90)]
    full: Option<String>,
    #[model(default = 0)]
    fills: i32,
}

/// A person before migration 0002 (no `full` yet).
#[derive(Model, Debug, Clone)]
#[model(table = "d_people")]
struct Before {
    id: i64,
    #[model(max_length = 40)]
    first: String,
    #[model(max_length = 40)]
    last: String,
    #[model(default = 0)]
    fills: i32,
}

const TABLE: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "d_people", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "first", "type": "varchar", "max_length": 40 },
    { "name": "last", "type": "varchar", "max_length": 40 },
    { "name": "fills", "type": "integer", "default": 0 } ] } ] }"#;

/// Adds `full`, fills it from `first` and `last`, then indexes it.
const FILL: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "d_people",
    "column": { "name": "full", "type": "varchar", "max_length": 90, "null": true } },
  { "op": "data", "name": "fill_full" },
  { "op": "create_index", "table": "d_people", "name": "ix_d_people_full",
    "columns": ["full"] } ] }"#;

fn migrations(files: &[(&str, &str)]) -> Migrations {
    Migrations::from_files(files).unwrap()
}

/// The step: every row's `full` from its `first` and `last`, and `fills` one more.
async fn fill_full(tx: Transaction) -> tenantry::Result<()> {
    for person in Person::query(&tx).all().await? {
        Person::query(&tx)
            .filter(Person::id().eq(person.id))
            .update([
                Person::full().set(format!("{} {}", person.first, person.last)),
                Person::fills().set(person.fills + 1),
            ])
            .await?;
    }
    Ok(())
}

fn with_fill(migrator: Migrator) -> Migrator {
    migrator.data_step("fill_full", |tx| Box::pin(fill_full(tx)))
}

/// A fleet of `n` tenants at migration 0001, tenant `i` holding `i + 2` people whose
/// first names carry `i`.
async fn fleet(t: &TestDb, n: usize) -> (Registry, Vec<SchemaName>) {
    let registry = Registry::new(t.registry.database().clone()).register::<Person>();
    let mut tenants = Vec::new();
    for i in 0..n {
        let schema = t.schema(&format!("d{i}"));
        create_schema(&registry, &schema, Some(&[]), false, false)
            .await
            .unwrap();
        tenants.push(schema);
    }
    let first = Migrator::new(&registry, migrations(&[("0001_people", TABLE)]));
    assert!(first
        .run(RunOptions::default())
        .await
        .unwrap()
        .is_complete());
    for (i, tenant) in tenants.iter().enumerate() {
        let people = (0..i + 2).map(|k| Before {
            id: 0,
            first: format!("t{i}p{k}"),
            last: format!("L{k}"),
            fills: 0,
        });
        with_tenant(
            Some(tenant.clone()),
            Before::query(&before(&registry)).bulk_create(people),
        )
        .await
        .unwrap();
    }
    (registry, tenants)
}

/// A registry of `Before` on `registry`'s database (a registry knows one model a table).
fn before(registry: &Registry) -> Registry {
    Registry::new(registry.database().clone()).register::<Before>()
}

/// Whether `tenant`'s `d_people` has the column `full`, read from the catalog. (On SQLite
/// a query naming a missing column cannot tell: SQLite reads a double-quoted name that is
/// no column as a string literal.)
async fn has_full(registry: &Registry, tenant: &SchemaName) -> bool {
    let db = registry.database();
    let n: i64 = match db.backend() {
        Backend::Sqlite => {
            let mut conn = db.acquire_sqlite(Some(tenant)).await.unwrap();
            let sql = "SELECT count(*) FROM pragma_table_info('d_people') WHERE name = 'full'";
            sqlx::query_scalar(sql).fetch_one(&mut *conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            let sql = "SELECT count(*) FROM information_schema.columns \
                       WHERE table_schema = $1 AND table_name = 'd_people' AND column_name = 'full'";
            sqlx::query_scalar(sql)
                .bind(tenant.as_str())
                .fetch_one(&mut *conn)
                .await
                .unwrap()
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let sql = "SELECT count(*) FROM information_schema.columns \
                       WHERE table_schema = ? AND table_name = 'd_people' AND column_name = 'full'";
            let schema = db.server_schema_name(tenant).unwrap();
            sqlx::query_scalar(sql)
                .bind(schema)
                .fetch_one(&mut *conn)
                .await
                .unwrap()
        }
    };
    n == 1
}

/// Tenant `i`'s people, in id order, read through `registry`.
async fn people(registry: &Registry, tenant: &SchemaName) -> Vec<Person> {
    with_tenant(Some(tenant.clone()), async {
        Person::query(registry)
            .order_by([Person::id().asc()])
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.into_inner())
            .collect()
    })
    .await
}

/// Tenant `i` holds exactly its own `i + 2` people, each filled `fills` times.
async fn assert_filled(registry: &Registry, tenants: &[SchemaName], fills: i32) {
    let reads = tenants.iter().map(|tenant| people(registry, tenant));
    let all = futures_util::future::join_all(reads).await;
    for (i, (tenant, people)) in tenants.iter().zip(all).enumerate() {
        assert_eq!(people.len(), i + 2, "tenant {tenant}");
        for (k, p) in people.iter().enumerate() {
            assert_eq!(
                p.first,
                format!("t{i}p{k}"),
                "tenant {tenant} holds its own rows"
            );
            assert_eq!(p.full.as_deref(), Some(format!("t{i}p{k} L{k}").as_str()));
            assert_eq!(
                p.fills, fills,
                "tenant {tenant}: row {k} filled {} times",
                p.fills
            );
        }
    }
}

backend_test!(a_data_step_fills_each_tenant_once, |t: TestDb| async move {
    let (registry, tenants) = fleet(&t, 6).await;
    let set = migrations(&[("0001_people", TABLE), ("0002_fill", FILL)]);
    let migrator = with_fill(Migrator::new(&registry, set));
    let options = RunOptions {
        concurrency: 3,
        ..RunOptions::default()
    };
    let report = migrator.run(options.clone()).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_filled(&registry, &tenants, 1).await;
    // Nothing is left to run: the step does not run again.
    let again = migrator.run(options).await.unwrap();
    assert!(again.is_complete());
    assert_filled(&registry, &tenants, 1).await;
    // A tenant made now is stamped, not filled: it has no rows to fill.
    let fresh = t.schema("fresh");
    let stamped = registry.clone().migrations(migrator.migrations().clone());
    create_schema(&stamped, &fresh, None, false, true)
        .await
        .unwrap();
    assert!(migrator.status().await.unwrap().is_current());
});

backend_test!(
    a_failing_data_step_keeps_its_tenant_whole,
    |t: TestDb| async move {
        let (registry, tenants) = fleet(&t, 3).await;
        let broken = tenants[1].clone();
        let fixed = Arc::new(AtomicBool::new(false));
        let set = migrations(&[("0001_people", TABLE), ("0002_fill", FILL)]);
        let migrator = {
            let fixed = fixed.clone();
            Migrator::new(&registry, set).data_step("fill_full", move |tx| {
                let fixed = fixed.clone();
                Box::pin(async move {
                    fill_full(tx.clone()).await?;
                    // Fails after its writes, in one tenant, until fixed.
                    let here = Person::query(&tx)
                        .filter(Person::first().eq("t1p0"))
                        .exists()
                        .await?;
                    if here && !fixed.load(Ordering::SeqCst) {
                        return Err(Error::NotFound {
                            model: "broken on purpose",
                        });
                    }
                    Ok(())
                })
            })
        };
        let report = migrator.run(RunOptions::default()).await.unwrap();
        let failed: Vec<&SchemaName> = report.failed().map(|o| &o.tenant).collect();
        assert_eq!(failed, [&broken]);
        let error = report
            .failed()
            .next()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .to_string();
        assert!(
            error.contains("data step fill_full") && error.contains("broken on purpose"),
            "{error}"
        );
        let status = migrator.status().await.unwrap();
        let row = status.tenants.iter().find(|s| s.tenant == broken).unwrap();
        assert_eq!(row.state, Some(LedgerState::Failed));
        assert_eq!(row.version.as_deref(), Some("0001_people"));
        // Its writes were rolled back with it (PostgreSQL and SQLite roll back the column too;
        // MySQL's column was committed by its DDL, the step's writes were not).
        let kept = with_tenant(
            Some(broken.clone()),
            Before::query(&before(&registry)).all(),
        )
        .await
        .unwrap();
        assert_eq!(kept.len(), 3);
        assert!(
            kept.iter().all(|p| p.fills == 0),
            "the failed step's writes are gone"
        );
        let column = has_full(&registry, &broken).await;
        match t.backend {
            Backend::MySql => assert!(column, "MySQL's DDL step was committed"),
            _ => assert!(!column, "the column was rolled back with the step"),
        }
        // The others are done, once.
        let others = [tenants[0].clone(), tenants[2].clone()];
        for (tenant, i) in others.iter().zip([0usize, 2]) {
            let rows = people(&registry, tenant).await;
            assert_eq!(rows.len(), i + 2);
            assert!(rows.iter().all(|p| p.fills == 1), "{tenant}");
        }
        // Fixed and retried: the broken tenant's rows filled once.
        fixed.store(true, Ordering::SeqCst);
        let retry = RunOptions {
            retry_failed: true,
            ..RunOptions::default()
        };
        assert!(migrator.run(retry).await.unwrap().is_complete());
        assert_filled(&registry, &tenants, 1).await;
    }
);

backend_test!(
    a_data_step_cannot_end_the_migration,
    |t: TestDb| async move {
        let (registry, tenants) = fleet(&t, 2).await;
        let set = migrations(&[("0001_people", TABLE), ("0002_fill", FILL)]);
        let migrator = Migrator::new(&registry, set).data_step("fill_full", |tx| {
            Box::pin(async move {
                fill_full(tx.clone()).await?;
                tx.commit().await
            })
        });
        let report = migrator.run(RunOptions::default()).await.unwrap();
        assert_eq!(report.failed().count(), tenants.len());
        for outcome in report.failed() {
            let error = outcome.error.as_ref().unwrap().to_string();
            assert!(error.contains("committing or rolling back"), "{error}");
        }
        for tenant in &tenants {
            let kept = with_tenant(
                Some(tenant.clone()),
                Before::query(&before(&registry)).all(),
            )
            .await
            .unwrap();
            assert!(kept.iter().all(|p| p.fills == 0), "{tenant}");
        }
        // The runner's connections still work: the real step finishes the fleet.
        let fixed = with_fill(Migrator::new(&registry, migrator.migrations().clone()));
        let retry = RunOptions {
            retry_failed: true,
            ..RunOptions::default()
        };
        assert!(fixed.run(retry).await.unwrap().is_complete());
        assert_filled(&registry, &tenants, 1).await;
    }
);

backend_test!(
    an_unregistered_data_step_is_refused_first,
    |t: TestDb| async move {
        let (registry, tenants) = fleet(&t, 2).await;
        let set = migrations(&[("0001_people", TABLE), ("0002_fill", FILL)]);
        let error = Migrator::new(&registry, set.clone())
            .run(RunOptions::default())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("fill_full"), "{error}");
        let status = Migrator::new(&registry, set).status().await.unwrap();
        assert!(status
            .tenants
            .iter()
            .all(|s| s.version.as_deref() == Some("0001_people")));
        for tenant in &tenants {
            // Not even the column was added.
            assert!(!has_full(&registry, tenant).await, "{tenant}: `full` added");
            // Selecting the missing column fails, on SQLite too (built with SQLITE_DQS=0,
            // it does not read "full" as the string 'full').
            let read = with_tenant(Some(tenant.clone()), Person::query(&registry).all()).await;
            assert!(
                read.is_err(),
                "{tenant}: a missing column was read: {read:?}"
            );
        }
    }
);
