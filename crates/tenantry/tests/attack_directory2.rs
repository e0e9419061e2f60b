//! Second attacker's review of the tenant directory (commits after ed32c47: jobs for
//! directory tenants, the migration runner over directory databases, data steps run with
//! the runner's database). Every test named `defect_*` FAILS on the code under review and
//! names the defect and its location; every `holds_*` test passes and pins a property.
//! The first review's attacks (tests/attack_directory.rs) are not repeated.
mod common;

use common::directory::{add_user, names, schema, server_connections};

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::models::User;
use tenantry::{
    contrib::{self, DirectoryEntry, TenantState},
    create_schema,
    migrate::{Migrations, Migrator, RunOptions},
    with_tenant, Backend, ConnectionBudget, Database, Directory, Error, Registry, TenantContext,
};

// ---------------------------------------------------------------------------------------
// Helpers (as in tests/attack_directory.rs).
// ---------------------------------------------------------------------------------------

fn directory(t: &common::TestDb, budget: usize) -> Directory {
    directory_at(&t.server_url(), budget)
}

fn directory_at(url: &str, budget: usize) -> Directory {
    Directory::new(ConnectionBudget::new(budget).wait(Duration::from_secs(2)))
        .server("home", url)
        .unwrap()
        .pool_size(2)
        .acquire_timeout(Duration::from_secs(3))
}

async fn registry_with(t: &common::TestDb, directory: &Directory) -> Registry {
    let registry = contrib::register(t.registry.clone())
        .register::<DirectoryEntry>()
        .directory(directory.clone());
    registry.create_all().await.unwrap();
    registry
}

fn db_name(t: &common::TestDb, n: u32) -> String {
    format!("{}_e{n}", t.prefix)
}

/// A default-database tenant "beta" holding user "default-beta", and a directory tenant
/// "beta" holding user "dir-beta".
async fn two_betas(t: &common::TestDb, dir: &Directory, registry: &Registry) {
    create_schema(registry, "beta", None, false, true)
        .await
        .unwrap();
    with_tenant(Some(schema("beta")), add_user(registry, "default-beta")).await;
    dir.add_tenant(registry, "beta", "home", &db_name(t, 1))
        .await
        .unwrap();
    dir.with_tenant(registry, "beta", add_user(registry, "dir-beta"))
        .await
        .unwrap();
}

#[derive(tenantry::Model, Debug, Clone, PartialEq)]
#[model(table = "m2_notes")]
struct MNote {
    id: i64,
    #[model(max_length = 50)]
    body: String,
}

const NOTES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "m2_notes", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "body", "type": "varchar", "max_length": 50 } ] } ] }"#;

const SEED: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "data", "name": "seed" } ] }"#;

const CAPTURE: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "data", "name": "capture" } ] }"#;

/// A registry with no tenant model (the tenants' tables come from migrations), the
/// directory's table, and the directory.
async fn bare_registry(t: &common::TestDb, dir: &Directory) -> Registry {
    let registry = contrib::register(Registry::new(t.reconnect().await))
        .register::<DirectoryEntry>()
        .directory(dir.clone());
    registry.create_all().await.unwrap();
    registry
}

fn failures(report: &tenantry::migrate::RunReport) -> Vec<String> {
    report
        .failed()
        .map(|o| format!("{}: {:?}", o.tenant, o.error))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Data steps in directory tenants.
// ---------------------------------------------------------------------------------------

// DEFECT (a migration with a data step cannot be applied to any directory tenant): the
// documented way to write a data step is `Model::query(&tx)` (Migrator::data_step's docs).
// For a directory database the runner (migrate/data.rs `run`) hands the step a transaction
// on the directory database but runs it in a plain, unrouted `with_tenant(tenant)` scope;
// QuerySet's target (query/mod.rs, `target.refuse_unrouted(from_context && !routed_context)`)
// then refuses every such query with Error::Unsupported ("a directory database outside its
// tenants' scopes"). Every directory tenant's migration fails (and is left Failed in the
// ledger), while the same step succeeds in the default database's tenants.
backend_test!(
    defect_a_data_step_cannot_query_its_directory_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = bare_registry(&t, &dir).await;
        let alpha = t.schema("alpha");
        create_schema(&registry, &alpha, Some(&[]), false, false)
            .await
            .unwrap();
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let migrator = Migrator::new(
            &registry,
            Migrations::from_files(&[("0001_notes", NOTES), ("0002_seed", SEED)]).unwrap(),
        )
        .data_step("seed", |tx| {
            Box::pin(async move {
                MNote::query(&tx)
                    .create(MNote {
                        id: 0,
                        body: "seeded".into(),
                    })
                    .await
                    .map(drop)
            })
        });
        let report = migrator.run(RunOptions::default()).await.unwrap();
        assert!(
            report.is_complete(),
            "default database: {:?}",
            failures(&report)
        );
        let seeded = with_tenant(Some(alpha.clone()), MNote::query(&registry).count()).await;
        assert_eq!(seeded.unwrap(), 1, "the step ran in the default tenant");
        let reports = dir
            .migrate(&registry, &migrator, RunOptions::default())
            .await
            .unwrap();
        let mut broken = Vec::new();
        for (database, report) in reports {
            let report = report.unwrap_or_else(|e| panic!("{database}: {e}"));
            broken.extend(failures(&report));
        }
        let rows = dir
            .with_tenant(&registry, "beta", MNote::query(&registry).count())
            .await
            .unwrap();
        dir.disconnect().await;
        assert!(
            broken.is_empty(),
            "the data step failed in the directory tenant: {broken:?}"
        );
        assert_eq!(rows.ok(), Some(1));
    }
);

// DEFECT (a job queued by a data step of a directory tenant goes to the default database's
// tenant of the same name): the data step runs in a plain `with_tenant(tenant)` scope
// (migrate/data.rs `run`: `with_tenant(tenant.cloned(), step(tx))`), so
// `TenantContext::current()` there is `{"tenant":"beta"}` without `directory: true`; the
// job restored from it (`run_in`) reads and writes the default database's "beta" -- another
// tenant.
backend_test!(
    defect_a_data_steps_tenant_context_in_a_directory_tenant_names_the_default_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let captured: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = captured.clone();
        let migrator = Migrator::new(
            &registry,
            Migrations::from_files(&[("0001_capture", CAPTURE)]).unwrap(),
        )
        .data_step("capture", move |_tx| {
            let sink = sink.clone();
            Box::pin(async move {
                let context = TenantContext::current()?;
                sink.lock()
                    .unwrap()
                    .push(serde_json::to_string(&context).unwrap());
                Ok(())
            })
        });
        let reports = dir
            .migrate(
                &registry,
                &migrator,
                RunOptions {
                    tenant: Some(schema("beta")),
                    ..RunOptions::default()
                },
            )
            .await
            .unwrap();
        for (database, report) in reports {
            let report = report.unwrap_or_else(|e| panic!("{database}: {e}"));
            assert!(report.is_complete(), "{database}: {:?}", failures(&report));
        }
        let json = captured.lock().unwrap().clone();
        assert_eq!(json.len(), 1, "{json:?}");
        let job: TenantContext = serde_json::from_str(&json[0]).unwrap();
        let seen = job.run_in(&registry, names(&registry)).await;
        dir.disconnect().await;
        assert_eq!(
            json[0],
            r#"{"tenant":"beta","directory":true}"#,
            "a job queued by the directory tenant's data step runs as {:?}",
            seen.ok()
        );
    }
);

// ---------------------------------------------------------------------------------------
// The registry's own database reached under another spelling.
// ---------------------------------------------------------------------------------------

// DEFECT (SQLite: a directory tenant is the default database's tenant): the
// directory's guard `refuse_registry_database` (tenancy/directory.rs) compares the entry's
// file path with the registry's main file by `std::path::absolute`, which neither resolves
// `..` nor symlinks (sqlite.rs `main_path` likewise). A server configured as
// `sqlite://<dir>/sub/..` (or through a symlink to <dir>) names the very same files: the
// directory tenant "gamma" on database "appmain" is the default database's tenant "gamma".
backend_test!(
    defect_a_sqlite_server_spelled_with_dotdot_reaches_the_registrys_own_file,
    |t: common::TestDb| async move {
        if t.backend != Backend::Sqlite {
            return;
        }
        let root = t.server_url().trim_start_matches("sqlite://").to_string();
        std::fs::create_dir_all(format!("{root}/sub")).unwrap();
        let dir = directory_at(&format!("sqlite://{root}/sub/.."), 4);
        let db = Database::connect(&format!("sqlite://{root}/appmain.sqlite?mode=rwc"))
            .await
            .unwrap();
        let registry = contrib::register(common::models::register(Registry::new(db)))
            .register::<DirectoryEntry>()
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        let added = dir.add_tenant(&registry, "gamma", "home", "appmain").await;
        if added.is_ok() {
            dir.with_tenant(&registry, "gamma", add_user(&registry, "directory-gamma"))
                .await
                .unwrap();
            let plain = with_tenant(Some(schema("gamma")), names(&registry)).await;
            let listed = registry.schema().list().await.unwrap();
            dir.disconnect().await;
            registry.disconnect().await;
            panic!(
                "the directory accepted the registry's own file under another spelling: the \
                 default database's tenant gamma reads {plain:?}; its schemas: {listed:?}"
            );
        }
        dir.disconnect().await;
        registry.disconnect().await;
        assert!(
            matches!(added, Err(Error::InvalidArgument { .. })),
            "{added:?}"
        );
    }
);

// DEFECT (SQLite, same guard, symlink spelling): see the previous test.
backend_test!(
    defect_a_sqlite_server_behind_a_symlink_reaches_the_registrys_own_file,
    |t: common::TestDb| async move {
        if t.backend != Backend::Sqlite {
            return;
        }
        let root = t.server_url().trim_start_matches("sqlite://").to_string();
        let link = format!("{root}_link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let dir = directory_at(&format!("sqlite://{link}"), 4);
        let db = Database::connect(&format!("sqlite://{root}/appmain.sqlite?mode=rwc"))
            .await
            .unwrap();
        let registry = contrib::register(common::models::register(Registry::new(db)))
            .register::<DirectoryEntry>()
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        let added = dir.add_tenant(&registry, "gamma", "home", "appmain").await;
        let outcome = match &added {
            Ok(_) => {
                dir.with_tenant(&registry, "gamma", add_user(&registry, "directory-gamma"))
                    .await
                    .unwrap();
                Some(with_tenant(Some(schema("gamma")), names(&registry)).await)
            }
            Err(_) => None,
        };
        dir.disconnect().await;
        registry.disconnect().await;
        let _ = std::fs::remove_file(&link);
        assert!(
            matches!(added, Err(Error::InvalidArgument { .. })),
            "accepted the registry's own file through a symlink; default gamma reads {outcome:?}"
        );
    }
);

// ---------------------------------------------------------------------------------------
// TenantContext: tampered JSON, jobs outliving their tenant.
// ---------------------------------------------------------------------------------------

// DEFECT (tampered job context accepted): `{"tenant":null,"directory":true}` -- a directory
// context with no tenant, which `current()`/`in_directory` never produce -- deserializes
// (tenancy/job.rs: `directory` is a free `#[serde(default)] bool`, not checked against
// `tenant`), and `run`/`run_in` silently run it in the shared schema. The type's docs say
// a tampered context "fails to deserialize rather than reaching the database".
#[test]
fn defect_a_directory_context_without_a_tenant_deserializes() {
    let parsed = serde_json::from_str::<TenantContext>(r#"{"tenant":null,"directory":true}"#);
    assert!(parsed.is_err(), "accepted: {parsed:?}");
}

#[test]
fn holds_tampered_contexts_are_refused() {
    for json in [
        r#"{"tenant":"beta","directory":true,"server":"home"}"#,
        r#"{"tenant":"beta","directory":"yes"}"#,
        r#"{"tenant":"beta","directory":1}"#,
        r#"{"tenant":"Beta","directory":true}"#,
        r#"{"tenant":"beta; DROP","directory":true}"#,
        r#"{"directory":true}"#,
        r#"{"tenant":"beta","directory":true,"directory":false}"#,
    ] {
        assert!(
            serde_json::from_str::<TenantContext>(json).is_err(),
            "accepted {json}"
        );
    }
    let explicit: TenantContext =
        serde_json::from_str(r#"{"tenant":"beta","directory":false}"#).unwrap();
    assert_eq!(explicit, TenantContext::new(Some(schema("beta"))));
    let round = TenantContext::in_directory(schema("beta"));
    let json = serde_json::to_string(&round).unwrap();
    assert_eq!(serde_json::from_str::<TenantContext>(&json).unwrap(), round);
}

// A job's directory context outliving its tenant (removed, suspended, never a directory
// tenant, a registry without a directory) never falls back to the default database's
// tenant of that name; `run` never runs a query at all.
backend_test!(
    holds_a_directory_job_never_falls_back_to_the_default_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        create_schema(&registry, "delta", None, false, true)
            .await
            .unwrap();
        with_tenant(Some(schema("delta")), add_user(&registry, "default-delta")).await;
        let job = TenantContext::in_directory(schema("beta"));
        // A registry without a directory.
        let plain = t.registry.clone();
        let r = job.run_in(&plain, User::query(&plain).count()).await;
        assert!(matches!(r, Err(Error::TenantNotFound { .. })), "{r:?}");
        // `run`: every query of the scope refused, whatever it names.
        let r = job
            .run(async {
                (
                    User::query(&registry).count().await,
                    registry.raw("SELECT 1").fetch_all().await.map(|r| r.len()),
                )
            })
            .await;
        assert!(matches!(r.0, Err(Error::TenantConflict { .. })), "{r:?}");
        // A name that is only a default-database tenant.
        let forged = TenantContext::in_directory(schema("delta"));
        let r = forged.run_in(&registry, names(&registry)).await;
        assert!(matches!(r, Err(Error::TenantNotFound { .. })), "{r:?}");
        // Suspended between queue and run.
        dir.set_state(&registry, "beta", TenantState::Suspended)
            .await
            .unwrap();
        let r = job.run_in(&registry, names(&registry)).await;
        assert!(matches!(r, Err(Error::TenantSuspended { .. })), "{r:?}");
        // Removed between queue and run (data kept).
        dir.remove_tenant(&registry, "beta", false).await.unwrap();
        let r = job.run_in(&registry, names(&registry)).await;
        assert!(matches!(r, Err(Error::TenantNotFound { .. })), "{r:?}");
        // The default tenant is untouched.
        assert_eq!(
            with_tenant(Some(schema("beta")), names(&registry)).await,
            ["default-beta"]
        );
        dir.disconnect().await;
    }
);

// ---------------------------------------------------------------------------------------
// The runner over directory databases.
// ---------------------------------------------------------------------------------------

// With a tenant of each database named "beta": the default runner with `tenant: beta`
// migrates the default database's beta only; `Directory::migrate` with `tenant: beta` the
// directory's only; neither ledger records the other's; two directory tenants in one
// database both migrate; a tenant added after the run is stamped (nothing behind).
backend_test!(
    holds_the_runner_keeps_same_named_tenants_apart,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = bare_registry(&t, &dir).await;
        create_schema(&registry, "beta", Some(&[]), false, false)
            .await
            .unwrap();
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.add_tenant(&registry, "zeta", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let migrator = Migrator::new(
            &registry,
            Migrations::from_files(&[("0001_notes", NOTES)]).unwrap(),
        );
        let only_beta = RunOptions {
            tenant: Some(schema("beta")),
            ..RunOptions::default()
        };
        let report = migrator.run(only_beta.clone()).await.unwrap();
        assert!(report.is_complete(), "{:?}", failures(&report));
        // The directory's beta is still behind: its table does not exist.
        let dir_beta = dir
            .with_tenant(&registry, "beta", MNote::query(&registry).count())
            .await
            .unwrap();
        assert!(
            dir_beta.is_err(),
            "directory beta migrated by the default runner"
        );
        let reports = dir.migrate(&registry, &migrator, only_beta).await.unwrap();
        assert_eq!(reports.len(), 1);
        let report = reports.into_iter().next().unwrap().1.unwrap();
        let migrated: Vec<String> = report
            .tenants
            .iter()
            .map(|o| o.tenant.to_string())
            .collect();
        assert_eq!(migrated, ["beta"]);
        // zeta, in the same database, still behind; the whole run picks it up.
        let reports = dir
            .migrate(&registry, &migrator, RunOptions::default())
            .await
            .unwrap();
        let migrated: Vec<String> = reports
            .into_iter()
            .flat_map(|(_, r)| r.unwrap().tenants)
            .map(|o| o.tenant.to_string())
            .collect();
        assert_eq!(migrated, ["zeta"]);
        for tenant in ["beta", "zeta"] {
            dir.with_tenant(&registry, tenant, async {
                MNote::query(&registry)
                    .create(MNote {
                        id: 0,
                        body: tenant.into(),
                    })
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
        }
        let default_beta = with_tenant(Some(schema("beta")), MNote::query(&registry).count())
            .await
            .unwrap();
        assert_eq!(
            default_beta, 0,
            "the directory's write reached the default beta"
        );
        dir.disconnect().await;
    }
);

// DEFECT (SQLite: a directory database shares its tenant files with the registry's default
// database): a SQLite database's tenants are the files `<dir>/<stem>.<tenant>.sqlite`,
// `<stem>` being the main file's name without its extension (database/sqlite.rs
// `SqliteStore::new`/`file_of`). A registry whose main file is `<dir>/app.db` has its tenants
// in `<dir>/app.<tenant>.sqlite`; the directory database "app" on a server at `<dir>` has its
// main file `<dir>/app.sqlite` (directory.rs `database_url`) but the SAME tenant files.
// `refuse_registry_database` (tenancy/directory.rs) compares only the main files' paths
// ("app.sqlite" vs "app.db") and accepts the entry: the directory tenant "gamma" is the
// default database's tenant "gamma" (listed by its schemas, read by a plain with_tenant).
backend_test!(
    defect_a_sqlite_directory_database_named_after_the_main_files_stem_shares_its_tenants,
    |t: common::TestDb| async move {
        if t.backend != Backend::Sqlite {
            return;
        }
        let root = t.server_url().trim_start_matches("sqlite://").to_string();
        let dir = directory(&t, 4);
        let db = Database::connect(&format!("sqlite://{root}/app.db?mode=rwc"))
            .await
            .unwrap();
        let registry = contrib::register(common::models::register(Registry::new(db)))
            .register::<DirectoryEntry>()
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        let added = dir.add_tenant(&registry, "gamma", "home", "app").await;
        let outcome = match &added {
            Ok(_) => {
                dir.with_tenant(&registry, "gamma", add_user(&registry, "directory-gamma"))
                    .await
                    .unwrap();
                let listed = registry.schema().list().await.unwrap();
                let plain = with_tenant(Some(schema("gamma")), names(&registry)).await;
                Some((listed, plain))
            }
            Err(_) => None,
        };
        dir.disconnect().await;
        registry.disconnect().await;
        assert!(
            added.is_err(),
            "the directory database \"app\" shares the tenant files of the registry's app.db: \
             (default schemas, default gamma's users) = {outcome:?}"
        );
    }
);

// A job queued by the fleet over the directory's store (for_each_tenant(..).store(..)) is
// a directory context, restored into the same tenant.
backend_test!(
    holds_a_job_queued_by_the_fleet_over_the_directory_is_a_directory_context,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let captured = registry
            .for_each_tenant(1)
            .store(Arc::new(dir.store(&registry)))
            .run(|_tenant| async move {
                Ok::<_, Error>(serde_json::to_string(&TenantContext::current()?).unwrap())
            })
            .await;
        let text = format!("{captured:?}");
        assert!(
            text.contains(r#"{\"tenant\":\"beta\",\"directory\":true}"#),
            "{text}"
        );
        dir.disconnect().await;
    }
);

// ---------------------------------------------------------------------------------------
// The connection budget.
// ---------------------------------------------------------------------------------------

async fn kill_connections(t: &common::TestDb, db: &str) {
    match t.backend {
        Backend::Sqlite => {}
        Backend::Postgres => {
            let admin = sqlx::PgPool::connect(&t.server_url()).await.unwrap();
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 \
                 AND pid <> pg_backend_pid()",
            )
            .bind(db)
            .execute(&admin)
            .await
            .unwrap();
            admin.close().await;
        }
        Backend::MySql => {
            let admin = sqlx::MySqlPool::connect(&t.server_url()).await.unwrap();
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = ?",
            )
            .bind(db)
            .fetch_all(&admin)
            .await
            .unwrap();
            for id in ids {
                let _ = sqlx::query(&format!("KILL {id}")).execute(&admin).await;
            }
            admin.close().await;
        }
    }
}

// Registry::disconnect while a directory tenant's transaction is in flight: the request
// ends (with its result or an error, no hang), every budget slot comes back, the server
// holds none of the directory's connections; the directory opens its pools again after.
backend_test!(
    holds_registry_disconnect_during_a_directory_request_gives_every_slot_back,
    |t: common::TestDb| async move {
        let dir = directory(&t, 2);
        let registry = registry_with(&t, &dir).await;
        let d1 = db_name(&t, 1);
        dir.add_tenant(&registry, "a", "home", &d1).await.unwrap();
        let in_flight = {
            let (dir, registry) = (dir.clone(), registry.clone());
            tokio::spawn(async move {
                dir.with_tenant(&registry, "a", async {
                    registry
                        .transaction(|tx| async move {
                            User::query(&tx).count().await?;
                            tokio::time::sleep(Duration::from_millis(400)).await;
                            User::query(&tx).count().await
                        })
                        .await
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        tokio::time::timeout(Duration::from_secs(5), registry.disconnect())
            .await
            .expect("disconnect hung");
        let _ = tokio::time::timeout(Duration::from_secs(5), in_flight)
            .await
            .expect("the request hung");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(dir.budget().in_use(), 0, "{:?}", dir.budget());
        assert_eq!(
            server_connections(&t, &dir, std::slice::from_ref(&d1)).await,
            0
        );
        // A directory database opens again on next use.
        let db = dir.database("home", &d1).await.unwrap();
        assert!(!db.is_closed());
        dir.disconnect().await;
    }
);

// A connection the server killed (an idle one in the pool): the tenant is served again,
// another database's tenant gets the slot within the budget's wait, and the budget's
// count never drifts from what is open.
backend_test!(
    holds_a_connection_the_server_killed_gives_its_slot_back,
    |t: common::TestDb| async move {
        if t.backend == Backend::Sqlite {
            return;
        }
        let dir = Directory::new(ConnectionBudget::new(1).wait(Duration::from_secs(2)))
            .server("home", &t.server_url())
            .unwrap()
            .pool_size(1)
            .acquire_timeout(Duration::from_secs(3));
        let registry = registry_with(&t, &dir).await;
        let (d1, d2) = (db_name(&t, 1), db_name(&t, 2));
        dir.add_tenant(&registry, "a", "home", &d1).await.unwrap();
        dir.add_tenant(&registry, "b", "home", &d2).await.unwrap();
        for _ in 0..3 {
            dir.with_tenant(&registry, "a", add_user(&registry, "a"))
                .await
                .unwrap();
            kill_connections(&t, &d1).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Its first query may fail with the lost connection; the next is served.
            let _ = dir
                .with_tenant(&registry, "a", User::query(&registry).count())
                .await;
            let a = dir
                .with_tenant(&registry, "a", User::query(&registry).count())
                .await
                .unwrap();
            assert!(a.is_ok(), "{a:?}");
            let b = dir
                .with_tenant(&registry, "b", User::query(&registry).count())
                .await
                .unwrap();
            assert_eq!(b.unwrap(), 0);
            kill_connections(&t, &d2).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(dir.budget().in_use() <= 1, "{:?}", dir.budget());
        assert!(server_connections(&t, &dir, &[d1, d2]).await <= 1);
        dir.disconnect().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(dir.budget().in_use(), 0, "{:?}", dir.budget());
    }
);

// ---------------------------------------------------------------------------------------
// Re-declaring a server.
// ---------------------------------------------------------------------------------------

// DEFECT (a re-declared server keeps being used): `Directory::server` documents "a second
// declaration of an alias replaces the first" (e.g. moving server "home" to a new primary),
// but it only edits the configuration (`Arc::make_mut(&mut self.config)`,
// tenancy/directory.rs): the pools already opened stay in the shared `state.databases`
// map keyed by "alias/database" (`database()`), so the tenants of that alias keep being
// read and written on the OLD server -- by the re-declared directory and every clone of it
// -- until the process restarts or `disconnect` is called. (The new "home" here is a server
// that is down / an empty directory: the tenant must not be served its old rows.)
backend_test!(
    defect_a_redeclared_server_keeps_serving_from_the_old_one,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.with_tenant(&registry, "beta", add_user(&registry, "on-the-old-server"))
            .await
            .unwrap();
        let elsewhere = match t.backend {
            Backend::Sqlite => {
                let root = t.server_url().trim_start_matches("sqlite://").to_string();
                std::fs::create_dir_all(format!("{root}/new_home")).unwrap();
                format!("sqlite://{root}/new_home")
            }
            Backend::Postgres => "postgres://postgres@127.0.0.1:1/postgres".to_string(),
            Backend::MySql => "mysql://root@127.0.0.1:1/mysql".to_string(),
        };
        let moved = dir.clone().server("home", &elsewhere).unwrap();
        let registry2 = registry.clone().directory(moved.clone());
        let seen = tokio::time::timeout(
            Duration::from_secs(5),
            moved.with_tenant(&registry2, "beta", async {
                User::query(&registry2).all().await.map(|users| {
                    users
                        .into_iter()
                        .map(|u| u.into_inner().name)
                        .collect::<Vec<_>>()
                })
            }),
        )
        .await
        .expect("hung");
        dir.disconnect().await;
        moved.disconnect().await;
        let served_old =
            matches!(&seen, Ok(Ok(names)) if names.iter().any(|n| n == "on-the-old-server"));
        assert!(
            !served_old,
            "\"home\" now names {elsewhere}, yet the tenant was served from the old server: {seen:?}"
        );
    }
);

const MORE: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "m2_more", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true } ] } ] }"#;

// A registry that declares its migrations: a new directory tenant is stamped at the last
// one in ITS database's ledger (the runner finds nothing behind), a default-database tenant
// of the same name in the default ledger; a later migration applies once to each, and
// neither ledger nor table of one is touched by the other's run.
backend_test!(
    holds_new_directory_tenants_are_stamped_in_their_own_ledger,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let first = Migrations::from_files(&[("0001_notes", NOTES)]).unwrap();
        let registry = contrib::register(Registry::new(t.reconnect().await))
            .register::<DirectoryEntry>()
            .register::<MNote>()
            .migrations(first.clone())
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        create_schema(&registry, "beta", None, false, true)
            .await
            .unwrap();
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let migrator = Migrator::new(&registry, first);
        let report = migrator.run(RunOptions::default()).await.unwrap();
        assert!(report.tenants.is_empty(), "{:?}", report.tenants);
        for (database, report) in dir
            .migrate(&registry, &migrator, RunOptions::default())
            .await
            .unwrap()
        {
            let report = report.unwrap_or_else(|e| panic!("{database}: {e}"));
            assert!(
                report.tenants.is_empty(),
                "{database}: {:?}",
                report.tenants
            );
        }
        let both = Migrator::new(
            &registry,
            Migrations::from_files(&[("0001_notes", NOTES), ("0002_more", MORE)]).unwrap(),
        );
        let report = both.run(RunOptions::default()).await.unwrap();
        let applied: Vec<_> = report
            .tenants
            .iter()
            .map(|o| (o.tenant.to_string(), o.applied.clone(), o.error.is_none()))
            .collect();
        assert_eq!(
            applied,
            [("beta".to_string(), vec!["0002_more".to_string()], true)]
        );
        let reports = dir
            .migrate(&registry, &both, RunOptions::default())
            .await
            .unwrap();
        let applied: Vec<_> = reports
            .into_iter()
            .flat_map(|(_, r)| r.unwrap().tenants)
            .map(|o| (o.tenant.to_string(), o.applied, o.error.is_none()))
            .collect();
        assert_eq!(
            applied,
            [("beta".to_string(), vec!["0002_more".to_string()], true)]
        );
        dir.disconnect().await;
    }
);
