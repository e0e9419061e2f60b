//! The tenant directory: tenants routed to other databases (and servers) by a table in the
//! shared schema, their pools within one connection budget; on every backend.
mod common;

use common::directory::{db_name, directory, names, server_connections};

use std::time::{Duration, Instant};

use common::models::{user, Plan, Subscription, User};
use tenantry::{
    contrib::{self, DirectoryEntry, TenantState},
    create_schema, with_tenant, Backend, ConnectionBudget, Database, Directory, Error, ForeignKey,
    Registry, SchemaName,
};

async fn registry_with(t: &common::TestDb, directory: &Directory) -> Registry {
    let registry = contrib::register(t.registry.clone())
        .register::<DirectoryEntry>()
        .directory(directory.clone());
    registry.create_all().await.unwrap();
    registry
}

backend_test!(
    tenants_in_two_databases_see_only_their_rows,
    |t: common::TestDb| async move {
        let dir = directory(&t, 3);
        let registry = registry_with(&t, &dir).await;
        let (d1, d2) = (db_name(&t, 1), db_name(&t, 2));
        dir.add_tenant(&registry, "alpha", "home", &d1)
            .await
            .unwrap();
        dir.add_tenant(&registry, "beta", "home", &d2)
            .await
            .unwrap();
        dir.add_tenant(&registry, "gamma", "home", &d1)
            .await
            .unwrap();
        // A tenant of the default database whose schema has the name of a directory tenant.
        create_schema(&registry, "beta", None, false, true)
            .await
            .unwrap();
        with_tenant(Some(SchemaName::parse("beta").unwrap()), async {
            User::query(&registry)
                .create(user("default-beta"))
                .await
                .unwrap();
        })
        .await;
        for tenant in ["alpha", "beta", "gamma"] {
            dir.with_tenant(&registry, tenant, async {
                User::query(&registry)
                    .create(user(&format!("{tenant}-1")))
                    .await
                    .unwrap();
                User::query(&registry)
                    .create(user(&format!("{tenant}-2")))
                    .await
                    .unwrap();
            })
            .await
            .unwrap();
        }
        // Several tenants inside one task, interleaved, each many times.
        for _ in 0..10 {
            let (a, b, g, plain) = tokio::join!(
                dir.with_tenant(&registry, "alpha", names(&registry)),
                dir.with_tenant(&registry, "beta", names(&registry)),
                dir.with_tenant(&registry, "gamma", names(&registry)),
                with_tenant(Some(SchemaName::parse("beta").unwrap()), names(&registry)),
            );
            assert_eq!(a.unwrap(), ["alpha-1", "alpha-2"]);
            assert_eq!(b.unwrap(), ["beta-1", "beta-2"]);
            assert_eq!(g.unwrap(), ["gamma-1", "gamma-2"]);
            assert_eq!(plain, ["default-beta"]);
        }
        // Instances go home: a save outside any scope writes the tenant's database.
        let mut first = dir
            .with_tenant(&registry, "gamma", async {
                User::query(&registry)
                    .order_by([User::id().asc()])
                    .first()
                    .await
                    .unwrap()
                    .unwrap()
            })
            .await
            .unwrap();
        first.name = "gamma-renamed".into();
        first.save().await.unwrap();
        let g = dir
            .with_tenant(&registry, "gamma", names(&registry))
            .await
            .unwrap();
        assert_eq!(g, ["gamma-renamed", "gamma-2"]);
        // A transaction begun in the tenant's scope is the tenant's database's.
        dir.with_tenant(&registry, "alpha", async {
            registry
                .transaction(|tx| async move {
                    User::query(&tx).create(user("alpha-tx")).await?;
                    assert_eq!(User::query(&tx).count().await?, 3);
                    Ok(())
                })
                .await
                .unwrap();
        })
        .await
        .unwrap();
        let a = dir
            .with_tenant(&registry, "alpha", names(&registry))
            .await
            .unwrap();
        assert_eq!(a, ["alpha-1", "alpha-2", "alpha-tx"]);
        assert!(dir.budget().in_use() <= 3);
        let dbs = [d1.clone(), d2.clone()];
        assert!(server_connections(&t, &dir, &dbs).await <= 3);
        dir.disconnect().await;
    }
);

backend_test!(
    shared_models_stay_in_the_default_database,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let plan = Plan::query(&registry)
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        dir.with_tenant(&registry, "alpha", async {
            // A shared model in the tenant's scope reads the default database's shared schema.
            assert_eq!(Plan::query(&registry).count().await.unwrap(), 1);
            // A tenant row pointing at a shared row: no join can be made across databases.
            let joined = Subscription::query(&registry)
                .filter(Subscription::plan().to(Plan::title()).eq("gold"))
                .count()
                .await;
            assert!(
                matches!(joined, Err(Error::Unsupported { .. })),
                "{joined:?}"
            );
            // A transaction of the tenant's database cannot reach the shared schema.
            let shared = registry
                .transaction(|tx| async move { Plan::query(&tx).count().await })
                .await;
            assert!(
                matches!(shared, Err(Error::Unsupported { .. })),
                "{shared:?}"
            );
            // Naming another database for the tenant's schema is refused, not answered there.
            let other = User::query(&registry).using_with_db("nope").count().await;
            assert!(
                matches!(
                    other,
                    Err(Error::Unsupported { .. } | Error::UnknownDatabase { .. })
                ),
                "{other:?}"
            );
            let _ = ForeignKey::<Plan>::from(&plan);
        })
        .await
        .unwrap();
        // A tenant model with no tenant in scope stays on the default database.
        assert_eq!(User::query(&registry).count().await.unwrap(), 0);
        dir.disconnect().await;
    }
);

backend_test!(
    entries_are_checked_when_written,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        let d1 = db_name(&t, 1);
        let unknown_server = dir.add_tenant(&registry, "alpha", "nowhere", &d1).await;
        assert!(
            matches!(unknown_server, Err(Error::UnknownDatabase { .. })),
            "{unknown_server:?}"
        );
        let bad_database = dir
            .add_entry(&registry, "alpha", "home", "Bad-Name", TenantState::Active)
            .await;
        assert!(
            matches!(bad_database, Err(Error::InvalidArgument { .. })),
            "{bad_database:?}"
        );
        let bad_tenant = dir
            .add_entry(&registry, "Al pha", "home", &d1, TenantState::Active)
            .await;
        assert!(
            matches!(bad_tenant, Err(Error::InvalidSchemaName { .. })),
            "{bad_tenant:?}"
        );
        assert_eq!(DirectoryEntry::query(&registry).count().await.unwrap(), 0);

        dir.add_tenant(&registry, "alpha", "home", &d1)
            .await
            .unwrap();
        let twice = dir.add_tenant(&registry, "alpha", "home", &d1).await;
        assert!(
            matches!(twice, Err(Error::SchemaAlreadyExists { .. })),
            "{twice:?}"
        );
        // The first tenant's data survived the refused second creation.
        dir.with_tenant(&registry, "alpha", async {
            User::query(&registry).create(user("kept")).await.unwrap();
        })
        .await
        .unwrap();
        let unknown = dir.with_tenant(&registry, "zeta", async {}).await;
        assert!(
            matches!(unknown, Err(Error::TenantNotFound { .. })),
            "{unknown:?}"
        );
        let invalid = dir.with_tenant(&registry, "Bad Name", async {}).await;
        assert!(
            matches!(invalid, Err(Error::InvalidSchemaName { .. })),
            "{invalid:?}"
        );

        // Suspended: refused before the work runs; resumed: served again.
        dir.set_state(&registry, "alpha", TenantState::Suspended)
            .await
            .unwrap();
        let ran = std::sync::atomic::AtomicBool::new(false);
        let refused = dir
            .with_tenant(&registry, "alpha", async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst)
            })
            .await;
        assert!(
            matches!(refused, Err(Error::TenantSuspended { .. })),
            "{refused:?}"
        );
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        dir.set_state(&registry, "alpha", TenantState::Active)
            .await
            .unwrap();
        let n = dir
            .with_tenant(&registry, "alpha", names(&registry))
            .await
            .unwrap();
        assert_eq!(n, ["kept"]);

        // A row written by hand with an unknown server is refused when read, never routed.
        DirectoryEntry::query(&registry)
            .create(DirectoryEntry {
                id: 0,
                schema_name: "rogue".into(),
                server: "elsewhere".into(),
                database: d1.clone(),
                state: "active".into(),
                epoch: 1,
            })
            .await
            .unwrap();
        dir.forget();
        let rogue = dir.with_tenant(&registry, "rogue", async {}).await;
        assert!(
            matches!(rogue, Err(Error::UnknownDatabase { .. })),
            "{rogue:?}"
        );

        dir.remove_tenant(&registry, "alpha", true).await.unwrap();
        let gone = dir.with_tenant(&registry, "alpha", async {}).await;
        assert!(
            matches!(gone, Err(Error::TenantNotFound { .. })),
            "{gone:?}"
        );
        dir.disconnect().await;
    }
);

backend_test!(
    a_tenant_added_elsewhere_is_routed_within_a_second,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        // Another process: its own directory over the same table.
        let other = directory(&t, 4);
        let other_registry = t.registry.clone().directory(other.clone());
        let missing = other.with_tenant(&other_registry, "late", async {}).await;
        assert!(
            matches!(missing, Err(Error::TenantNotFound { .. })),
            "{missing:?}"
        );
        dir.add_tenant(&registry, "late", "home", &db_name(&t, 2))
            .await
            .unwrap();
        dir.with_tenant(&registry, "late", async {
            User::query(&registry).create(user("late-1")).await.unwrap();
        })
        .await
        .unwrap();
        let started = Instant::now();
        loop {
            match other
                .with_tenant(&other_registry, "late", names(&other_registry))
                .await
            {
                Ok(seen) => {
                    assert_eq!(seen, ["late-1"]);
                    break;
                }
                Err(Error::TenantNotFound { .. })
                    if started.elapsed() < Duration::from_millis(1500) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("not routed after {:?}: {error}", started.elapsed()),
            }
        }
        dir.disconnect().await;
        other.disconnect().await;
    }
);

backend_test!(
    pools_stay_within_the_budget,
    |t: common::TestDb| async move {
        let dir = directory(&t, 2);
        let registry = registry_with(&t, &dir).await;
        let dbs: Vec<String> = (1..=3).map(|n| db_name(&t, n)).collect();
        for (i, db) in dbs.iter().enumerate() {
            dir.add_tenant(&registry, &format!("t{i}"), "home", db)
                .await
                .unwrap();
        }
        // Many concurrent queries over three databases, two connections in all.
        let mut tasks = Vec::new();
        for round in 0..60 {
            let (dir, registry) = (dir.clone(), registry.clone());
            tasks.push(tokio::spawn(async move {
                let tenant = format!("t{}", round % 3);
                dir.with_tenant(&registry, tenant.as_str(), async {
                    User::query(&registry)
                        .create(user(&format!("{tenant}-{round}")))
                        .await?;
                    User::query(&registry).count().await
                })
                .await
            }));
        }
        let mut max_seen = 0;
        while tasks.iter().any(|task| !task.is_finished()) {
            max_seen = max_seen.max(server_connections(&t, &dir, &dbs).await);
            assert!(dir.budget().in_use() <= 2);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for task in tasks {
            task.await.unwrap().unwrap().unwrap();
        }
        assert!(
            max_seen <= 2,
            "the servers saw {max_seen} connections for a budget of 2"
        );
        for i in 0..3 {
            let n = dir
                .with_tenant(&registry, format!("t{i}").as_str(), names(&registry))
                .await
                .unwrap();
            assert_eq!(n.len(), 20);
            assert!(
                n.iter().all(|name| name.starts_with(&format!("t{i}-"))),
                "{n:?}"
            );
        }

        // Every slot held by an open transaction: a query needing a third connection waits the
        // budget's wait, then gets the typed error.
        let hold = |tenant: &'static str| {
            let (dir, registry) = (dir.clone(), registry.clone());
            async move {
                dir.with_tenant(&registry, tenant, async { registry.begin().await.unwrap() })
                    .await
                    .unwrap()
            }
        };
        let (a, b) = tokio::join!(hold("t0"), hold("t1"));
        let started = Instant::now();
        let starved = dir
            .with_tenant(&registry, "t2", User::query(&registry).count())
            .await
            .unwrap();
        assert!(
            matches!(
                starved,
                Err(Error::ConnectionBudgetExhausted { limit: 2, .. })
            ),
            "{starved:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        a.rollback().await.unwrap();
        let served = dir
            .with_tenant(&registry, "t2", User::query(&registry).count())
            .await
            .unwrap();
        assert_eq!(served.unwrap(), 20);
        b.rollback().await.unwrap();
        dir.disconnect().await;
    }
);

backend_test!(
    a_tenant_whose_server_is_down_fails_alone,
    |t: common::TestDb| async move {
        if t.backend == Backend::Sqlite {
            return; // No server to lose: a file directory is always there.
        }
        let down = match t.backend {
            Backend::Postgres => "postgres://postgres@127.0.0.1:1/postgres",
            _ => "mysql://root@127.0.0.1:1/",
        };
        let refused = match t.backend {
            Backend::Postgres => "postgres://no_such_role@127.0.0.1:5432/postgres",
            _ => "mysql://no_such_user@127.0.0.1:3306/",
        };
        let dir = directory(&t, 4)
            .server("down", down)
            .unwrap()
            .server("refused", refused)
            .unwrap();
        let registry = registry_with(&t, &dir).await;
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.add_entry(&registry, "lost", "down", "somewhere", TenantState::Active)
            .await
            .unwrap();
        dir.add_entry(
            &registry,
            "locked",
            "refused",
            "somewhere",
            TenantState::Active,
        )
        .await
        .unwrap();
        let timed = |tenant: &'static str| {
            let (dir, registry) = (dir.clone(), registry.clone());
            async move {
                let started = Instant::now();
                let result = dir
                    .with_tenant(&registry, tenant, User::query(&registry).count())
                    .await
                    .unwrap();
                (result, started.elapsed())
            }
        };
        let ((lost, lost_in), (locked, locked_in), (alpha, _)) =
            tokio::join!(timed("lost"), timed("locked"), timed("alpha"));
        assert_eq!(alpha.unwrap(), 0);
        for (result, took) in [(lost, lost_in), (locked, locked_in)] {
            let error = result.unwrap_err();
            assert!(
                matches!(error, Error::Database(_) | Error::PoolTimedOut { .. }),
                "{error:?}"
            );
            assert!(took < Duration::from_secs(4), "{took:?}");
            // No credential or URL in the message.
            let text = error.to_string();
            assert!(
                !text.contains("postgres://") && !text.contains("mysql://"),
                "{text}"
            );
        }
        // The failures hold no slot of the budget.
        assert!(dir.budget().in_use() <= 1, "{:?}", dir.budget());
        dir.disconnect().await;
    }
);

#[tokio::test]
async fn budget_wait_and_limit() {
    let budget = ConnectionBudget::new(0);
    assert_eq!(budget.limit(), 1);
    let db = Database::options("sqlite::memory:")
        .connection_budget(&budget)
        .connect()
        .await
        .unwrap();
    assert_eq!(budget.in_use(), 1);
    db.disconnect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(budget.in_use(), 0);
}

#[derive(tenantry::Model, Debug, Clone, PartialEq)]
#[model(table = "m_notes")]
struct MNote {
    id: i64,
    #[model(max_length = 50)]
    body: String,
}

const NOTES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "m_notes", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "body", "type": "varchar", "max_length": 50 } ] } ] }"#;

backend_test!(
    the_runner_and_the_fleet_route_through_the_directory,
    |t: common::TestDb| async move {
        use tenantry::migrate::{Migrations, Migrator, RunOptions};
        let dir = directory(&t, 4);
        // No tenant model registered: the tenants' tables come from the migration.
        let registry = contrib::register(Registry::new(t.reconnect().await))
            .register::<DirectoryEntry>()
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 2))
            .await
            .unwrap();
        dir.add_tenant(&registry, "gamma", "home", &db_name(&t, 2))
            .await
            .unwrap();
        let migrator = Migrator::new(
            &registry,
            Migrations::from_files(&[("0001_notes", NOTES)]).unwrap(),
        );
        migrator.run(RunOptions::default()).await.unwrap();
        let reports = dir
            .migrate(&registry, &migrator, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(reports.len(), 2);
        let mut migrated: Vec<String> = Vec::new();
        for (database, report) in reports {
            let report = report.unwrap_or_else(|e| panic!("{database}: {e}"));
            assert!(report.is_complete(), "{database}: {report:?}");
            migrated.extend(report.tenants.iter().map(|o| o.tenant.to_string()));
        }
        migrated.sort();
        assert_eq!(migrated, ["alpha", "beta", "gamma"]);
        // A second run finds nothing behind.
        for (_, report) in dir
            .migrate(&registry, &migrator, RunOptions::default())
            .await
            .unwrap()
        {
            assert!(report.unwrap().tenants.is_empty());
        }
        for tenant in ["alpha", "beta", "gamma"] {
            dir.with_tenant(&registry, tenant, async {
                MNote::query(&registry)
                    .create(MNote {
                        id: 0,
                        body: format!("note of {tenant}"),
                    })
                    .await
                    .unwrap();
            })
            .await
            .unwrap();
        }
        // The fleet over the directory's store runs each tenant on its database; suspended
        // tenants are left out.
        dir.set_state(&registry, "gamma", TenantState::Suspended)
            .await
            .unwrap();
        let outcomes = registry
            .for_each_tenant(2)
            .store(std::sync::Arc::new(dir.store(&registry)))
            .run(|tenant| {
                let registry = registry.clone();
                async move {
                    let notes = MNote::query(&registry).all().await?;
                    Ok((
                        tenant,
                        notes
                            .into_iter()
                            .map(|n| n.into_inner().body)
                            .collect::<Vec<_>>(),
                    ))
                }
            })
            .await
            .unwrap();
        let seen: Vec<(String, Vec<String>)> = outcomes
            .into_iter()
            .map(|o| {
                let (tenant, notes) = o.result.unwrap();
                (tenant.to_string(), notes)
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("alpha".to_owned(), vec!["note of alpha".to_owned()]),
                ("beta".to_owned(), vec!["note of beta".to_owned()]),
            ]
        );
        dir.disconnect().await;
        registry.disconnect().await;
    }
);
