//! Attack tests (review of optimistic locking, partial saves, lifecycle hooks and bad input).
//! Each test asserts the correct behaviour: it fails while the defect it names exists.
mod common;

use std::time::Duration;

use tenantry::{
    create_schema, with_tenant, Error, HookContext, Hooks, Model, Registry, SchemaName,
};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_jobs", hooks)]
struct Job {
    id: i64,
    #[model(max_length = 80, unique)]
    title: String,
    #[model(version)]
    version: i32,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_log")]
struct Log {
    id: i64,
    #[model(max_length = 160)]
    what: String,
}

/// No hooks: the version column alone.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_ver")]
struct Ver {
    id: i64,
    #[model(max_length = 40)]
    name: String,
    #[model(version)]
    version: i32,
}

/// Text bounds.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_codes")]
struct ShortText {
    id: i64,
    #[model(max_length = 3)]
    code: String,
}

/// A shared model with hooks that write into the current tenant.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_board", shared, hooks)]
struct Board {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

impl Hooks for Job {
    async fn pre_save(&mut self, _hook: &HookContext<Self>) -> tenantry::Result<()> {
        if self.title.starts_with("slowpre") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(())
    }

    async fn post_save(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        hook.query::<Log>()
            .create(Log {
                id: 0,
                what: format!("saved {}", self.title),
            })
            .await?;
        if self.title.starts_with("slowpost") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if self.title == "nest" {
            // A nested save of another hooked instance, in the same transaction.
            hook.query::<Job>().create(job("nest-child")).await?;
        }
        Ok(())
    }
}

impl Hooks for Board {
    async fn post_save(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        hook.query::<Log>()
            .create(Log {
                id: 0,
                what: format!("board {}", self.name),
            })
            .await?;
        if self.name == "fail" {
            return Err(Error::InvalidArgument {
                argument: "name",
                reason: "fail",
            });
        }
        Ok(())
    }
}

fn job(title: &str) -> Job {
    Job {
        id: 0,
        title: title.into(),
        version: 0,
    }
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(
        registry,
        name,
        Some(&[Job::META, Log::META, Ver::META, ShortText::META]),
        false,
        true,
    )
    .await
    .unwrap();
}

async fn logs(registry: &Registry, tenant: &SchemaName) -> Vec<String> {
    Log::query(registry)
        .using(tenant)
        .order_by([Log::id().asc()])
        .values_list(Log::what())
        .await
        .unwrap()
}

// 1. A save cancelled in post_save (after the INSERT, before COMMIT): the own transaction
// is rolled back, so the instance must not claim to be stored, with a key that does not
// exist (and that SQLite hands to the next INSERT).
backend_test!(
    a_save_cancelled_in_a_hook_leaves_the_instance_unsaved,
    |t: common::TestDb| async move {
        let a = t.schema("ka");
        tenant(&t.registry, &a).await;
        let jobs = || Job::query(&t.registry).using(&a);
        let mut pending = jobs().instance(job("slowpost-1")).unwrap();
        let cancelled = tokio::time::timeout(Duration::from_millis(500), pending.save()).await;
        assert!(cancelled.is_err(), "the save should have been cancelled");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(jobs().count().await.unwrap(), 0, "insert rolled back");
        assert!(
            !pending.is_stored(),
            "instance claims a rolled-back row (id {}) is stored",
            pending.id
        );
    }
);

// 1b. The consequence: saving that instance again must not write over another row.
backend_test!(
    resaving_after_a_cancelled_hooked_insert_never_overwrites_another_row,
    |t: common::TestDb| async move {
        let a = t.schema("kb");
        tenant(&t.registry, &a).await;
        let jobs = || Job::query(&t.registry).using(&a);
        let mut pending = jobs().instance(job("slowpost-2")).unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(500), pending.save()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let other = jobs().create(job("someone-else")).await.unwrap();
        pending.title = "mine".into();
        let resaved = pending.save().await;
        assert_eq!(
            jobs().get_pk(other.id).await.unwrap().title,
            "someone-else",
            "another row was overwritten by the re-save ({resaved:?})"
        );
        assert!(resaved.is_ok(), "{resaved:?}");
        assert_eq!(jobs().count().await.unwrap(), 2);
    }
);

// 2. A version at i32::MAX: SET version = version + 1 must be refused on every backend
// (OutOfRange), never store a value the column's Rust type cannot read back.
backend_test!(
    a_version_at_i32_max_is_refused_and_the_row_stays_readable,
    |t: common::TestDb| async move {
        let a = t.schema("va");
        tenant(&t.registry, &a).await;
        let vers = || Ver::query(&t.registry).using(&a);
        let mut v = vers()
            .create(Ver {
                id: 0,
                name: "max".into(),
                version: i32::MAX,
            })
            .await
            .unwrap();
        v.name = "changed".into();
        let saved = v.save().await;
        let back = vers().get_pk(v.id).await;
        assert!(
            back.is_ok(),
            "save gave {saved:?}, instance version now {}, and the row is unreadable: {back:?}",
            v.version
        );
        assert!(matches!(saved, Err(Error::OutOfRange { .. })), "{saved:?}");
        let back = back.unwrap();
        assert_eq!((back.name.as_str(), back.version), ("max", i32::MAX));
    }
);

backend_test!(
    a_queryset_update_at_i32_max_version_is_refused,
    |t: common::TestDb| async move {
        let a = t.schema("vb");
        tenant(&t.registry, &a).await;
        let vers = || Ver::query(&t.registry).using(&a);
        let v = vers()
            .create(Ver {
                id: 0,
                name: "max".into(),
                version: i32::MAX,
            })
            .await
            .unwrap();
        let updated = vers()
            .filter(Ver::id().eq(v.id))
            .update([Ver::name().set("changed".to_owned())])
            .await;
        assert!(
            matches!(updated, Err(Error::OutOfRange { .. })),
            "{updated:?}"
        );
        let back = vers().get_pk(v.id).await;
        assert!(back.is_ok(), "row unreadable after update: {back:?}");
    }
);

// 3. update_or_create racing on an existing row of a versioned model with hooks: the call
// holds no stale instance of its own, so neither call should fail with VersionConflict.
backend_test!(
    racing_update_or_create_on_a_versioned_row_both_succeed,
    |t: common::TestDb| async move {
        let a = t.schema("ra");
        tenant(&t.registry, &a).await;
        let jobs = || Job::query(&t.registry).using(&a);
        jobs().create(job("slowpre-r")).await.unwrap();
        let (one, two) = tokio::join!(
            jobs().update_or_create(Job::title().eq("slowpre-r"), job("slowpre-r")),
            jobs().update_or_create(Job::title().eq("slowpre-r"), job("slowpre-r")),
        );
        assert!(one.is_ok() && two.is_ok(), "{one:?} / {two:?}");
        assert_eq!(
            jobs()
                .get(Job::title().eq("slowpre-r"))
                .await
                .unwrap()
                .version,
            2
        );
    }
);

// 4. A shared model's failing hook must roll back what the hook wrote in the tenant.
backend_test!(
    a_shared_model_s_failing_hook_rolls_back_its_tenant_write,
    |t: common::TestDb| async move {
        let registry = t.registry.clone().register::<Board>();
        registry.create_all().await.unwrap();
        let a = t.schema("sa");
        tenant(&registry, &a).await;
        let made = with_tenant(
            Some(a.clone()),
            Board::query(&registry).create(Board {
                id: 0,
                name: "fail".into(),
            }),
        )
        .await;
        assert!(made.is_err());
        assert_eq!(Board::query(&registry).count().await.unwrap(), 0);
        assert!(
            logs(&registry, &a).await.is_empty(),
            "the failed shared write's hook left a row in tenant {a}"
        );
    }
);

// 5. Nested hooked save from a hook, on pools of 1 and 2: no deadlock, both rows, in the
// instance's tenant only.
backend_pool_test!(
    a_hook_saving_another_hooked_instance_nests,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("na"), t.schema("nb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let nested = tokio::time::timeout(
            Duration::from_secs(20),
            with_tenant(Some(b.clone()), async {
                let mut j = Job::query(&t.registry)
                    .using(&a)
                    .instance(job("nest"))
                    .unwrap();
                j.save().await
            }),
        )
        .await
        .expect("nested hooked save hung");
        nested.unwrap();
        assert_eq!(
            logs(&t.registry, &a).await,
            vec!["saved nest", "saved nest-child"]
        );
        assert!(logs(&t.registry, &b).await.is_empty());
    }
);

// 6. max_length counts characters: exactly n multibyte characters (4-byte ones too) fit;
// n + 1 do not.
backend_test!(
    max_length_counts_characters_of_every_width,
    |t: common::TestDb| async move {
        let a = t.schema("ma");
        tenant(&t.registry, &a).await;
        let codes = || ShortText::query(&t.registry).using(&a);
        for ok in ["abc", "ééé", "日本語", "😀😀😀", "e\u{301}e"] {
            let made = codes()
                .create(ShortText {
                    id: 0,
                    code: ok.into(),
                })
                .await;
            assert!(made.is_ok(), "{ok:?}: {made:?}");
            let back = codes().get_pk(made.unwrap().id).await.unwrap();
            assert_eq!(back.code, ok);
        }
        for bad in ["abcd", "éééé", "😀😀😀😀", "e\u{301}e\u{301}"] {
            let made = codes()
                .create(ShortText {
                    id: 0,
                    code: bad.into(),
                })
                .await;
            assert!(
                matches!(made, Err(Error::ValueOutOfRange { .. })),
                "{bad:?}: {made:?}"
            );
        }
    }
);

// 2c. An upsert's do_update bumps the version the same way.
backend_test!(
    an_upsert_at_i32_max_version_is_refused,
    |t: common::TestDb| async move {
        let a = t.schema("vc");
        tenant(&t.registry, &a).await;
        let jobs = || Job::query(&t.registry).using(&a);
        let first = jobs()
            .bulk_create([Job {
                id: 0,
                title: "max".into(),
                version: i32::MAX,
            }])
            .await
            .unwrap();
        assert_eq!(first[0].version, i32::MAX);
        let upserted = jobs()
            .on_conflict(Job::title())
            .do_update(Job::title())
            .create(job("max"))
            .await;
        let back = jobs().get(Job::title().eq("max")).await;
        assert!(
            back.is_ok(),
            "upsert gave {upserted:?}; row unreadable: {back:?}"
        );
        assert!(
            matches!(upserted, Err(Error::OutOfRange { .. })),
            "{upserted:?}"
        );
    }
);

/// A tenant model whose hook writes a shared row, then may fail.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_tasks", hooks)]
struct Task {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_notices", shared)]
struct Notice {
    id: i64,
    #[model(max_length = 40)]
    text: String,
}

impl Hooks for Task {
    async fn post_save(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        if self.name == "panic" {
            hook.query::<Log>()
                .create(Log {
                    id: 0,
                    what: "before panic".into(),
                })
                .await?;
            panic!("post_save panics");
        }
        hook.query::<Notice>()
            .create(Notice {
                id: 0,
                text: format!("task {}", self.name),
            })
            .await?;
        if self.name == "fail" {
            return Err(Error::InvalidArgument {
                argument: "name",
                reason: "fail",
            });
        }
        Ok(())
    }
}

// 4b. A tenant model's failing hook must roll back the shared row it wrote.
backend_test!(
    a_tenant_model_s_failing_hook_rolls_back_its_shared_write,
    |t: common::TestDb| async move {
        let registry = t.registry.clone().register::<Notice>();
        registry.create_all().await.unwrap();
        let a = t.schema("sb");
        create_schema(&registry, &a, Some(&[Task::META, Log::META]), false, true)
            .await
            .unwrap();
        let made = Task::query(&registry)
            .using(&a)
            .create(Task {
                id: 0,
                name: "fail".into(),
            })
            .await;
        assert!(made.is_err());
        assert_eq!(Task::query(&registry).using(&a).count().await.unwrap(), 0);
        assert_eq!(
            Notice::query(&registry).count().await.unwrap(),
            0,
            "the failed write of tenant {a} left its hook's shared row"
        );
    }
);

// 7. A hook that panics after the INSERT: the write is rolled back, the connection comes
// back (pool of 1), and the instance is not left stored.
backend_pool_test!(
    a_panicking_hook_rolls_back_and_frees_the_connection,
    |t: common::TestDb| async move {
        use futures_util::FutureExt;
        let a = t.schema("pa");
        create_schema(&t.registry, &a, Some(&[Task::META, Log::META]), false, true)
            .await
            .unwrap();
        let mut task = Task::query(&t.registry)
            .using(&a)
            .instance(Task {
                id: 0,
                name: "panic".into(),
            })
            .unwrap();
        let panicked = std::panic::AssertUnwindSafe(task.save())
            .catch_unwind()
            .await;
        assert!(panicked.is_err());
        let after = tokio::time::timeout(Duration::from_secs(15), async {
            (
                Task::query(&t.registry).using(&a).count().await,
                Log::query(&t.registry).using(&a).count().await,
            )
        })
        .await
        .expect("the panicked save kept the pool's connection");
        assert_eq!((after.0.unwrap(), after.1.unwrap()), (0, 0));
        assert!(!task.is_stored(), "stored after a rolled-back insert");
    }
);

// 8. An instance read in a transaction that was committed saves on its database, with
// its hooks in its own tenant.
backend_test!(
    an_instance_from_a_committed_transaction_saves_with_hooks,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ca"), t.schema("cb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        Job::query(&t.registry)
            .using(&a)
            .create(job("x"))
            .await
            .unwrap();
        let tx = t.registry.begin_in(&a).await.unwrap();
        let mut x = Job::query(&tx)
            .using(&a)
            .get(Job::title().eq("x"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        x.title = "y".into();
        with_tenant(Some(b.clone()), x.save()).await.unwrap();
        assert_eq!(logs(&t.registry, &a).await, vec!["saved x", "saved y"]);
        assert!(logs(&t.registry, &b).await.is_empty());
        assert_eq!(x.version, 1);
    }
);

// 9. save_fields: a column named twice is written once; the version column is refused;
// VersionConflict and NotFound are told apart on every backend (MySQL counts changed rows).
backend_test!(
    save_fields_duplicates_and_conflict_kinds,
    |t: common::TestDb| async move {
        let a = t.schema("sf");
        tenant(&t.registry, &a).await;
        let vers = || Ver::query(&t.registry).using(&a);
        let mut v = vers()
            .create(Ver {
                id: 0,
                name: "n".into(),
                version: 0,
            })
            .await
            .unwrap();
        let mut stale = vers().get_pk(v.id).await.unwrap();
        v.name = "m".into();
        v.save_fields((Ver::name(), Ver::name())).await.unwrap();
        assert_eq!(v.version, 1);
        assert_eq!(vers().get_pk(v.id).await.unwrap().version, 1);
        assert!(matches!(
            v.save_fields(Ver::version()).await,
            Err(Error::InvalidArgument { .. })
        ));
        // Unchanged values, same version: still a write (bumped), not a conflict.
        v.save().await.unwrap();
        assert_eq!(vers().get_pk(v.id).await.unwrap().version, 2);
        stale.name = "m".into();
        let conflict = stale.save().await;
        assert!(
            matches!(conflict, Err(Error::VersionConflict { .. })),
            "{conflict:?}"
        );
        vers().filter(Ver::id().eq(v.id)).delete().await.unwrap();
        let gone = v.save().await;
        assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    }
);

/// A hooked model for a migration's data step.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_mjobs", hooks)]
struct MJob {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_mlog")]
struct MLog {
    id: i64,
    #[model(max_length = 40)]
    what: String,
}

impl Hooks for MJob {
    async fn post_save(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        hook.query::<MLog>()
            .create(MLog {
                id: 0,
                what: format!("saved {}", self.name),
            })
            .await?;
        if self.name == "slow" {
            // Cancelled here by the step's timeout, its two rows written.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if self.name == "fail" {
            return Err(Error::InvalidArgument {
                argument: "name",
                reason: "fail",
            });
        }
        Ok(())
    }
}

const MTABLES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "ah_mjobs", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] },
  { "op": "create_table", "table": "ah_mlog", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "what", "type": "varchar", "max_length": 40 } ] } ] }"#;

const MSTEP: &str = r#"{ "scope": "tenant", "operations": [ { "op": "data", "name": "seed" } ] }"#;

/// A data step that tries a save, handles its failure, and goes on.
async fn seed(tx: tenantry::Transaction) -> tenantry::Result<()> {
    let failed = MJob::query(&tx)
        .create(MJob {
            id: 0,
            name: "fail".into(),
        })
        .await;
    assert!(failed.is_err());
    MJob::query(&tx)
        .create(MJob {
            id: 0,
            name: "ok".into(),
        })
        .await?;
    Ok(())
}

// 10. In a migration's data step (no savepoints) a failed hooked save whose error the step
// handles must still leave nothing of itself behind.
backend_test!(
    a_failed_hooked_save_in_a_data_step_leaves_nothing,
    |t: common::TestDb| async move {
        use tenantry::migrate::{Migrations, Migrator, RunOptions};
        let registry = Registry::new(t.registry.database().clone())
            .register::<MJob>()
            .register::<MLog>();
        let a = t.schema("mg");
        create_schema(&registry, &a, Some(&[]), false, false)
            .await
            .unwrap();
        let set = Migrations::from_files(&[("0001_t", MTABLES), ("0002_seed", MSTEP)]).unwrap();
        let run = Migrator::new(&registry, set)
            .data_step("seed", |tx| Box::pin(seed(tx)))
            .run(RunOptions::default())
            .await;
        // Fixed by failing closed: with no savepoint to undo the half-done save, the
        // migration's transaction is marked aborted, so the step's next statement fails
        // and the migration rolls back rather than commit the failed save's writes.
        let run = run.unwrap();
        assert!(!run.is_complete(), "{run:?}");
        let names = MJob::query(&registry)
            .using(&a)
            .values_list(MJob::name())
            .await
            // PostgreSQL and SQLite roll the whole run back, the table included.
            .unwrap_or_default();
        let logs = MLog::query(&registry)
            .using(&a)
            .values_list(MLog::what())
            .await
            .unwrap_or_default();
        assert_eq!(
            (names, logs),
            (Vec::<String>::new(), Vec::<String>::new()),
            "the failed save's INSERT and its hook's write were committed"
        );
    }
);

static GREEDY: std::sync::Mutex<Vec<(String, Registry)>> = std::sync::Mutex::new(Vec::new());

/// A hook that (wrongly) queries through the registry rather than its context.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_greedy", hooks)]
struct Greedy {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

impl Hooks for Greedy {
    async fn pre_save(&mut self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        let schema = hook.schema().cloned().unwrap();
        let registry = GREEDY
            .lock()
            .unwrap()
            .iter()
            .find(|(s, _)| *s == schema.as_str())
            .map(|(_, r)| r.clone())
            .unwrap();
        Log::query(&registry).using(&schema).count().await?;
        Ok(())
    }
}

// 11. On a pool of 1, a hook querying through the registry waits for a second connection:
// it must end with a typed PoolTimedOut after the acquire timeout, not hang, and the pool
// must work afterwards.
backend_test!(
    a_hook_querying_the_registry_on_a_pool_of_one_times_out,
    |t: common::TestDb| async move {
        let database = tenantry::Database::options(&t.url())
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect()
            .await
            .unwrap();
        let registry = Registry::new(database);
        let a = t.schema("gr");
        create_schema(&registry, &a, Some(&[Greedy::META, Log::META]), false, true)
            .await
            .unwrap();
        GREEDY
            .lock()
            .unwrap()
            .push((a.as_str().to_owned(), registry.clone()));
        let saved = tokio::time::timeout(
            Duration::from_secs(20),
            Greedy::query(&registry).using(&a).create(Greedy {
                id: 0,
                name: "g".into(),
            }),
        )
        .await
        .expect("hung for ever");
        assert!(
            matches!(saved, Err(Error::PoolTimedOut { .. })),
            "{saved:?}"
        );
        assert_eq!(Greedy::query(&registry).using(&a).count().await.unwrap(), 0);
        registry.disconnect().await;
    }
);

async fn log_names(registry: &Registry) -> Vec<String> {
    Log::query(registry)
        .order_by([Log::id().asc()])
        .values_list(Log::what())
        .await
        .unwrap()
}

// 12. Directory-routed tenants: an instance of `alpha` saved inside `beta`'s scope runs its
// hooks (and their writes) in alpha's database; beta's and the default database see none.
backend_test!(
    hooks_of_a_routed_tenant_s_instance_stay_in_its_database,
    |t: common::TestDb| async move {
        use common::directory::{db_name, directory};
        let dir = directory(&t, 4);
        let registry = tenantry::contrib::register(t.registry.clone())
            .register::<tenantry::contrib::DirectoryEntry>()
            .register::<Job>()
            .register::<Log>()
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 2))
            .await
            .unwrap();
        let mut a1 = dir
            .with_tenant(&registry, "alpha", async {
                Job::query(&registry).create(job("a1")).await.unwrap()
            })
            .await
            .unwrap();
        a1.title = "a1x".into();
        dir.with_tenant(&registry, "beta", a1.save())
            .await
            .unwrap()
            .unwrap();
        let (in_a, in_b) = tokio::join!(
            dir.with_tenant(&registry, "alpha", log_names(&registry)),
            dir.with_tenant(&registry, "beta", log_names(&registry)),
        );
        assert_eq!(in_a.unwrap(), vec!["saved a1", "saved a1x"]);
        assert!(in_b.unwrap().is_empty());
        assert!(log_names(&registry).await.is_empty(), "default database");
        dir.disconnect().await;
    }
);

// 13. Cancelled inside a caller's transaction (in post_save, after the INSERT): the
// transaction must not commit the half-done write (no INSERT without its hooks' work).
backend_test!(
    a_hooked_save_cancelled_inside_a_transaction_cannot_be_committed_half_done,
    |t: common::TestDb| async move {
        let a = t.schema("ct");
        tenant(&t.registry, &a).await;
        let tx = t.registry.begin_in(&a).await.unwrap();
        let mut j = Job::query(&tx)
            .using(&a)
            .instance(job("slowpost-t"))
            .unwrap();
        let cancelled = tokio::time::timeout(Duration::from_millis(500), j.save()).await;
        assert!(cancelled.is_err());
        let committed = tx.commit().await;
        let rows = Job::query(&t.registry).using(&a).count().await.unwrap();
        let logs = logs(&t.registry, &a).await;
        assert!(
            committed.is_err() || rows == 0,
            "committed {committed:?}: {rows} rows, logs {logs:?}"
        );
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_pairs")]
struct Pair {
    id: i64,
    #[model(max_length = 3)]
    short: String,
    #[model(max_length = 40)]
    long: String,
}

// 14. Text copied by an expression into a shorter VARCHAR: refused on every backend
// (PostgreSQL/MySQL: OutOfRange); SQLite must not store it whole.
backend_test!(
    text_copied_into_a_shorter_column_is_refused_everywhere,
    |t: common::TestDb| async move {
        let a = t.schema("tx");
        create_schema(&t.registry, &a, Some(&[Pair::META]), false, true)
            .await
            .unwrap();
        let pairs = || Pair::query(&t.registry).using(&a);
        let p = pairs()
            .create(Pair {
                id: 0,
                short: "abc".into(),
                long: "a much longer text".into(),
            })
            .await
            .unwrap();
        let copied = pairs()
            .filter(Pair::id().eq(p.id))
            .update([Pair::short().set_expr(Pair::long().expr())])
            .await;
        let back = pairs().get_pk(p.id).await.unwrap();
        assert!(
            matches!(copied, Err(Error::OutOfRange { .. })),
            "{copied:?}; short now {:?}",
            back.short
        );
        assert_eq!(back.short, "abc");
    }
);

// 15. get_or_create / update_or_create racing to create a hooked row, pools of 1 and 2:
// one row, both calls succeed, the hooks' writes of the losing INSERT rolled back.
backend_pool_test!(
    racing_creations_of_a_hooked_row_end_with_one_row,
    |t: common::TestDb| async move {
        let a = t.schema("gc");
        tenant(&t.registry, &a).await;
        let jobs = || Job::query(&t.registry).using(&a);
        let (one, two) = tokio::join!(
            jobs().get_or_create(Job::title().eq("slowpre-g"), job("slowpre-g")),
            jobs().get_or_create(Job::title().eq("slowpre-g"), job("slowpre-g")),
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(one.0.id, two.0.id);
        assert!(one.1 ^ two.1);
        let (one, two) = tokio::join!(
            jobs().update_or_create(Job::title().eq("slowpre-u"), job("slowpre-u")),
            jobs().update_or_create(Job::title().eq("slowpre-u"), job("slowpre-u")),
        );
        assert!(one.is_ok() && two.is_ok(), "{one:?} / {two:?}");
        assert_eq!(jobs().count().await.unwrap(), 2);
        let logs = logs(&t.registry, &a).await;
        assert_eq!(
            logs.iter().filter(|l| *l == "saved slowpre-g").count(),
            1,
            "{logs:?}"
        );
    }
);

// 16. An upsert that does nothing returns the stored row's version; bulk_create stores
// the version given.
backend_test!(
    upsert_do_nothing_keeps_and_returns_the_stored_version,
    |t: common::TestDb| async move {
        let a = t.schema("dn");
        tenant(&t.registry, &a).await;
        let jobs = || Job::query(&t.registry).using(&a);
        jobs()
            .bulk_create([Job {
                id: 0,
                title: "k".into(),
                version: 7,
            }])
            .await
            .unwrap();
        let kept = jobs()
            .on_conflict(Job::title())
            .do_nothing()
            .create(Job {
                id: 0,
                title: "k".into(),
                version: 0,
            })
            .await
            .unwrap();
        assert_eq!(kept.version, 7);
        assert_eq!(jobs().get(Job::title().eq("k")).await.unwrap().version, 7);
    }
);

/// A hooked model whose hook writes into the schema named by `target` with `using(..)`.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ah_memos", hooks)]
struct Memo {
    id: i64,
    #[model(max_length = 60)]
    target: String,
    #[model(max_length = 20)]
    name: String,
}

impl Hooks for Memo {
    async fn post_save(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        hook.query::<Log>()
            .using(self.target.as_str())
            .create(Log {
                id: 0,
                what: format!("memo {}", self.name),
            })
            .await?;
        if self.name == "fail" {
            return Err(Error::InvalidArgument {
                argument: "name",
                reason: "fail",
            });
        }
        Ok(())
    }
}

// 12. `using(..)` on a hook's query must not take it out of the write's transaction: on
// SQLite (another file) it is refused; elsewhere it stays in the transaction, so a failing
// write rolls it back. Two tenants at once, inside one task.
backend_test!(
    a_hook_s_query_moved_with_using_stays_in_the_write_s_transaction,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b, other) = (t.schema("ua"), t.schema("ub"), t.schema("uo"));
        for schema in [&a, &b, &other] {
            create_schema(r, schema, Some(&[Memo::META, Log::META]), false, true)
                .await
                .unwrap();
        }
        let memo = |name: &str| Memo {
            id: 0,
            target: other.as_str().to_owned(),
            name: name.into(),
        };
        let (failed, saved) = tokio::join!(
            with_tenant(Some(a.clone()), Memo::query(r).create(memo("fail"))),
            with_tenant(Some(b.clone()), Memo::query(r).create(memo("ok"))),
        );
        assert!(failed.is_err(), "{failed:?}");
        let logs: Vec<String> = Log::query(r)
            .using(&other)
            .values_list(Log::what())
            .await
            .unwrap();
        if t.backend == tenantry::Backend::Sqlite {
            assert!(matches!(saved, Err(Error::Unsupported { .. })), "{saved:?}");
            assert!(logs.is_empty(), "{logs:?}");
            assert_eq!(Memo::query(r).using(&b).count().await.unwrap(), 0);
        } else {
            saved.unwrap();
            // The failed write's log rolled back with it; the other one committed.
            assert_eq!(logs, vec!["memo ok".to_owned()]);
        }
        assert_eq!(Memo::query(r).using(&a).count().await.unwrap(), 0);
    }
);

/// A data step that cancels a hooked save half way (a timeout), then goes on and returns Ok.
async fn cancel_half_way(tx: tenantry::Transaction) -> tenantry::Result<()> {
    let slow = MJob::query(&tx).create(MJob {
        id: 0,
        name: "slow".into(),
    });
    let cancelled = tokio::time::timeout(Duration::from_millis(300), slow).await;
    assert!(cancelled.is_err(), "the save was meant to be cancelled");
    Ok(())
}

// 13. A hooked save cancelled half way in a data step (no savepoint to undo it) must not
// be committed with the migration: the migration fails and leaves nothing of the step.
backend_test!(
    a_hooked_save_cancelled_in_a_data_step_fails_the_migration,
    |t: common::TestDb| async move {
        use tenantry::migrate::{Migrations, Migrator, RunOptions};
        let registry = Registry::new(t.registry.database().clone())
            .register::<MJob>()
            .register::<MLog>();
        let a = t.schema("mc");
        create_schema(&registry, &a, Some(&[]), false, false)
            .await
            .unwrap();
        let set = Migrations::from_files(&[("0001_t", MTABLES), ("0002_seed", MSTEP)]).unwrap();
        let run = Migrator::new(&registry, set)
            .data_step("seed", |tx| Box::pin(cancel_half_way(tx)))
            .run(RunOptions::default())
            .await
            .unwrap();
        assert!(!run.is_complete(), "{run:?}");
        assert!(format!("{run:?}").contains("cancelled"), "{run:?}");
        let jobs = MJob::query(&registry).using(&a).count().await.unwrap_or(0);
        let logs = MLog::query(&registry).using(&a).count().await.unwrap_or(0);
        assert_eq!((jobs, logs), (0, 0));
    }
);
