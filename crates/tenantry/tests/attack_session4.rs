//! Review session 4 (issue 11, migrations part 2): failing tests, one per suspected defect.
mod common;

use std::time::Duration;

use common::TestDb;
use tenantry::{
    create_schema,
    migrate::{Migrations, Migrator, RunOptions, DRIFT_SCHEMA_PREFIX},
    Backend, Error, Model, Registry, SchemaName, Transaction,
};

#[derive(Model, Debug, Clone)]
#[model(table = "a4_items")]
struct Item {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

const TABLE: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "a4_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] } ] }"#;

fn set() -> Migrations {
    Migrations::from_files(&[("0001_items", TABLE)]).unwrap()
}

fn registry_on(db: tenantry::Database) -> Registry {
    Registry::new(db).register::<Item>()
}

async fn migrated_tenant(registry: &Registry, schema: &SchemaName) {
    create_schema(registry, schema, Some(&[]), false, false)
        .await
        .unwrap();
    let report = Migrator::new(registry, set())
        .run(RunOptions {
            tenant: Some(schema.clone()),
            ..RunOptions::default()
        })
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
}

// DEFECT (drift.rs:77): the scratch-schema prefix is not reserved. SchemaName::parse and
// create_schema accept a real tenant named `tenantry_drift_ref_…`, and Migrator::drift
// silently never compares it: a hand-altered tenant is reported as "no drift".
backend_test!(drift_scratch_prefix_is_reserved, |t: TestDb| async move {
    // Was a defect: a real tenant named with the scratch prefix was never checked for
    // drift. The prefix is now reserved: creating such a tenant is refused.
    let registry = registry_on(t.registry.database().clone());
    let real = SchemaName::parse(&format!("{DRIFT_SCHEMA_PREFIX}acme")).unwrap();
    let refused = create_schema(&registry, &real, None, false, true).await;
    assert!(
        matches!(refused, Err(Error::InvalidSchemaName { .. })),
        "{}: {refused:?}",
        t.backend
    );
    assert!(!registry.schema().exists(&real).await.unwrap());
});

// DEFECT (drift.rs:96-106): a drift future dropped while the scratch schema is being created
// (a timeout, a select!) leaves `tenantry_drift_ref_…` behind: the Scratch guard that drops
// it is made only after `create` returned. The leftover then shows in every schema listing
// and is migrated by every later fleet run as if it were a tenant.
backend_test!(
    drift_cancelled_during_create_leaves_the_scratch_schema,
    |t: TestDb| async move {
        let registry = registry_on(t.registry.database().clone());
        let tenant = t.schema("a");
        migrated_tenant(&registry, &tenant).await;
        let migrator = Migrator::new(&registry, set());
        // Cancel drift at increasing points in time.
        for micros in (0..4000).step_by(25) {
            let _ = tokio::time::timeout(Duration::from_micros(micros), migrator.drift()).await;
        }
        // Let every spawned clean-up finish.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let schemas = registry.schema().list().await.unwrap();
        let left: Vec<_> = schemas
            .iter()
            .filter(|s| s.as_str().starts_with(DRIFT_SCHEMA_PREFIX))
            .collect();
        assert!(left.is_empty(), "{}: left behind {left:?}", t.backend);
    }
);

/// Unused helper kept for data-step tests below.
#[allow(dead_code)]
async fn noop(_tx: Transaction) -> tenantry::Result<()> {
    Ok(())
}

#[derive(Model, Debug, Clone)]
#[model(shared, table = "a4_audit")]
struct Audit {
    id: i64,
    #[model(max_length = 60)]
    what: String,
}

const AUDIT: &str = r#"{ "scope": "shared", "operations": [
  { "op": "create_table", "table": "a4_audit", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "what", "type": "varchar", "max_length": 60 } ] } ] }"#;

const NOTE_STEP: &str =
    r#"{ "scope": "tenant", "operations": [ { "op": "data", "name": "note" } ] }"#;

/// A backfill that records itself in the shared audit table (PostgreSQL/MySQL: one
/// transaction spans every schema), and counts its runs.
async fn note(
    tx: Transaction,
    shared_write: bool,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> tenantry::Result<()> {
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if shared_write {
        Audit::query(&tx)
            .create(Audit {
                id: 0,
                what: "backfilled".into(),
            })
            .await?;
    }
    Ok(())
}

// DEFECT (drift.rs:109-119, Migrator::drift "changes no tenant"): drift replays every tenant
// migration into its scratch schema *including data steps*, i.e. arbitrary application code
// that cannot change a table's shape (a Transaction runs no DDL). The step's effects outside
// the scratch schema are committed: on PostgreSQL and MySQL a step writing a shared row
// (here an audit row) leaves one more row in the shared schema on every `migrate status
// --drift`; on every backend the application's step runs (counter) on a read-only check.
backend_test!(
    drift_runs_the_applications_data_steps,
    |t: TestDb| async move {
        let shared_write = t.backend != Backend::Sqlite;
        let registry = Registry::new(t.registry.database().clone())
            .register::<Item>()
            .register::<Audit>();
        let set = Migrations::from_files(&[
            ("0001_audit", AUDIT),
            ("0001_items", TABLE),
            ("0002_note", NOTE_STEP),
        ])
        .unwrap();
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let step_counter = counter.clone();
        let migrator = Migrator::new(&registry, set).data_step("note", move |tx| {
            Box::pin(note(tx, shared_write, step_counter.clone()))
        });
        let tenant = t.schema("a");
        create_schema(&registry, &tenant, Some(&[]), false, false)
            .await
            .unwrap();
        let report = migrator.run(RunOptions::default()).await.unwrap();
        assert!(report.is_complete(), "{report:?}");
        let audits = Audit::query(&registry).count().await.unwrap();
        let calls = counter.load(std::sync::atomic::Ordering::SeqCst);
        assert!(migrator.drift().await.unwrap().is_empty());
        let audits_after = Audit::query(&registry).count().await.unwrap();
        let calls_after = counter.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            (audits_after, calls_after - calls),
            (audits, 0),
            "{}: drift (a read-only check) ran the data step and wrote to the shared schema",
            t.backend
        );
    }
);

const ADD_AND_READ: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "a4_items",
    "column": { "name": "colour", "type": "varchar", "max_length": 12, "null": true } },
  { "op": "data", "name": "count_through_pool" } ] }"#;

// DEFECT (data.rs:66-67, PostgreSQL): a data step has no bound. A step that reads its
// tenant through the application's pool (a helper written for request handlers, which does
// not take the Transaction) waits for the ACCESS EXCLUSIVE lock its own migration's
// add_column holds: a self-deadlock PostgreSQL cannot see. The run never ends, and the
// tenant's table stays locked for every request of that tenant. (lock_timeout is set only
// on the runner's connection.)
backend_test!(
    data_step_reading_through_the_pool_hangs_the_run,
    |t: TestDb| async move {
        let registry = registry_on(t.registry.database().clone());
        let tenant = t.schema("a");
        migrated_tenant(&registry, &tenant).await;
        let set = Migrations::from_files(&[("0001_items", TABLE), ("0002_colour", ADD_AND_READ)])
            .unwrap();
        let pool_registry = registry.clone();
        let migrator = Migrator::new(&registry, set).data_step("count_through_pool", move |_tx| {
            let registry = pool_registry.clone();
            Box::pin(async move {
                // In the tenant's scope (the step runs in it), through the pool.
                Item::query(&registry).count().await?;
                Ok(())
            })
        });
        let run =
            tokio::time::timeout(Duration::from_secs(20), migrator.run(RunOptions::default()))
                .await;
        assert!(run.is_ok(), "{}: the migration run hung", t.backend);
        // The query through the pool is refused inside the step (it would wait for the
        // migration's own lock on PostgreSQL): the tenant fails, naming the way out.
        let report = run.unwrap().unwrap();
        let failed: Vec<String> = report
            .failed()
            .filter_map(|o| o.error.as_ref().map(ToString::to_string))
            .collect();
        assert_eq!(failed.len(), 1, "{}: {report:?}", t.backend);
        assert!(failed[0].contains("step's Transaction"), "{}", failed[0]);
    }
);

// DEFECT (drift.rs:96-106 with runner.rs tenant listing): the scratch schema is a real
// tenant while drift runs, and nothing but drift itself skips the prefix. A fleet
// `migrate` (a deploy) that runs while `migrate status --drift` runs lists the scratch
// schema, migrates it, and races drift's drop of it: the deploy's report shows a failed or
// migrated "tenant" `tenantry_drift_ref_…`, and the ledger may keep a row for it.
backend_test!(
    fleet_migrate_beside_drift_sees_the_scratch_schema,
    |t: TestDb| async move {
        let registry = registry_on(t.registry.database().clone());
        let tenant = t.schema("a");
        migrated_tenant(&registry, &tenant).await;
        let migrator = Migrator::new(&registry, set());
        let drifts = async {
            for _ in 0..15 {
                migrator.drift().await.unwrap();
            }
        };
        let runs = async {
            let mut seen = Vec::new();
            for _ in 0..300 {
                match migrator.run(RunOptions::default()).await {
                    Ok(report) => seen.extend(
                        report
                            .tenants
                            .iter()
                            .map(|o| format!("{o:?}"))
                            .filter(|o| o.contains(DRIFT_SCHEMA_PREFIX)),
                    ),
                    Err(error) => seen.push(format!("run failed: {error}")),
                }
                tokio::task::yield_now().await;
            }
            seen
        };
        let ((), seen) = tokio::join!(drifts, runs);
        let status = migrator.status().await.unwrap();
        let ghosts: Vec<_> = status
            .tenants
            .iter()
            .filter(|s| s.tenant.as_str().starts_with(DRIFT_SCHEMA_PREFIX))
            .collect();
        assert!(
            seen.is_empty() && ghosts.is_empty(),
            "{}: the deploy saw drift's scratch schema: {:?}\nledger ghosts: {ghosts:?}",
            t.backend,
            seen.iter().take(3).collect::<Vec<_>>()
        );
    }
);

const SLOW_STEP: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "data", "name": "slow" },
  { "op": "add_column", "table": "a4_items",
    "column": { "name": "colour", "type": "varchar", "max_length": 12, "null": true } } ] }"#;

// DEFECT (SQLite; apply.rs/runner.rs: the runner's own tenant connection is not a user
// drop_schema waits for; data.rs makes the window as long as the step): tenant `a` is
// dropped while its migration's data step runs; the drop deletes the file under the runner's
// open transaction, the run reports `0002_slow` applied and records the ledger row Done
// AFTER drop_schema forgot it. Tenant `a` created again empty is then "current" at 0002:
// no run ever builds its tables. The re-created tenant must not inherit the
// dropped one's migration state (it is behind, and the next run builds its tables), and the
// migration's acknowledged work must not land in the new one.
backend_test!(drop_racing_a_data_step, |t: TestDb| async move {
    let registry = registry_on(t.registry.database().clone());
    let a = t.schema("a");
    migrated_tenant(&registry, &a).await;
    let two = Migrations::from_files(&[("0001_items", TABLE), ("0002_slow", SLOW_STEP)]).unwrap();
    let migrator = Migrator::new(&registry, two).data_step("slow", |tx| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Item::query(&tx).count().await?;
            Ok(())
        })
    });
    let run = {
        let migrator = migrator.clone();
        tokio::spawn(async move { migrator.run(RunOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dropped = registry.schema().drop(&a, true, false).await;
    let report = run.await.unwrap();
    if dropped.is_err() {
        // Refused while in use: sound.
        return;
    }
    create_schema(&registry, &a, Some(&[]), false, false)
        .await
        .unwrap();
    let status = migrator.status().await.unwrap();
    let mine = status.tenants.iter().find(|s| s.tenant == a).unwrap();
    assert!(
        mine.behind,
        "{}: re-created empty tenant {a} inherits the dropped one's state {mine:?} (run: {report:?})",
        t.backend
    );
});

mod money_v1 {
    use tenantry::{Decimal, Model};
    #[derive(Model, Debug, Clone)]
    #[model(table = "a4_money")]
    pub struct Money {
        pub id: i64,
        #[model(max_digits = 12, decimal_places = 4)]
        pub amount: Decimal,
        #[model(max_length = 100)]
        pub note: String,
    }
}

mod money_v2 {
    use tenantry::{Decimal, Model};
    #[derive(Model, Debug, Clone)]
    #[model(table = "a4_money")]
    pub struct Money {
        pub id: i64,
        #[model(max_digits = 12, decimal_places = 2)]
        pub amount: Decimal,
        #[model(max_length = 100)]
        pub note: String,
    }
}

// DEFECT (diff.rs:409-431, alter_column): the generator writes an alter_column that loses
// data without a word. Narrowing a decimal's places (4 -> 2) rounds every stored value on
// PostgreSQL and MariaDB (1.2345 -> 1.23): `Changes::warnings` is empty (a dropped column
// gets "dropped with its data"; a lossy type change gets nothing), so makemigrations prints
// no data-loss warning and the migration silently rewrites every tenant's amounts.
backend_test!(
    generated_decimal_narrowing_loses_data_without_a_warning,
    |t: TestDb| async move {
        use tenantry::migrate::{diff, Migration, MigrationScope, Renames, Snapshot};
        let v1 = Snapshot::of_models(&[money_v1::Money::META], MigrationScope::Tenant).unwrap();
        let v2 = Snapshot::of_models(&[money_v2::Money::META], MigrationScope::Tenant).unwrap();
        let first = diff(&Snapshot::default(), &v1, &Renames::default()).unwrap();
        let second = diff(&v1, &v2, &Renames::default()).unwrap();
        let f1 = Migration::file_text(MigrationScope::Tenant, true, &first.operations);
        let f2 = Migration::file_text(MigrationScope::Tenant, true, &second.operations);
        let registry = Registry::new(t.registry.database().clone()).register::<money_v1::Money>();
        let a = t.schema("a");
        create_schema(&registry, &a, Some(&[]), false, false)
            .await
            .unwrap();
        let one = Migrations::from_files(&[("0001_money", f1.as_str())]).unwrap();
        assert!(Migrator::new(&registry, one)
            .run(RunOptions::default())
            .await
            .unwrap()
            .is_complete());
        money_v1::Money::query(&registry)
            .using(&a)
            .create(money_v1::Money {
                id: 0,
                amount: "1.2345".parse().unwrap(),
                note: "x".into(),
            })
            .await
            .unwrap();
        let two =
            Migrations::from_files(&[("0001_money", f1.as_str()), ("0002_money", f2.as_str())])
                .unwrap();
        assert!(Migrator::new(&registry, two)
            .run(RunOptions::default())
            .await
            .unwrap()
            .is_complete());
        let v2_registry =
            Registry::new(t.registry.database().clone()).register::<money_v2::Money>();
        let kept = money_v2::Money::query(&v2_registry)
            .using(&a)
            .all()
            .await
            .unwrap();
        let amount = kept[0].amount.to_string();
        let lost = amount != "1.2345";
        assert!(
        !lost || !second.warnings.is_empty(),
        "{}: stored 1.2345 became {amount} through a generated migration with no warning ({:?})",
        t.backend,
        second.operations
    );
    }
);

/// A minimal executor with no tokio context (what `futures::executor::block_on` does).
fn block_on_without_tokio<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

// DEFECT (transaction.rs:211-213, `finish` -> `tokio::spawn`): commit and rollback now
// panic when polled outside a tokio runtime context ("there is no reactor running, must be
// called from the context of a Tokio 1.x runtime"), e.g. from synchronous code in a
// plain thread (a sync callback, a C library's thread) driving the future with a plain executor. Library code must
// return an error, not panic; and a panicking commit leaves the caller not knowing the
// outcome. (Before this change commit ran on the caller's task.)
backend_test!(
    commit_outside_a_tokio_context_panics,
    |t: TestDb| async move {
        let registry = registry_on(t.registry.database().clone());
        let a = t.schema("a");
        migrated_tenant(&registry, &a).await;
        let tx = registry.begin_in(a.as_str()).await.unwrap();
        tenantry::with_tenant(
            Some(a.clone()),
            Item::query(&tx).create(Item {
                id: 0,
                name: "x".into(),
            }),
        )
        .await
        .unwrap();
        // A plain OS thread (a spawn_blocking thread would carry the runtime's context).
        let outcome = std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                block_on_without_tokio(tx.commit())
            }))
        })
        .join()
        .unwrap();
        assert!(
            outcome.is_ok(),
            "{}: Transaction::commit panicked outside a tokio context",
            t.backend
        );
    }
);

const PEEK_ALTER_PEEK: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "data", "name": "peek" },
  { "op": "alter_column", "table": "a4_items", "column": { "name": "name", "type": "text" } },
  { "op": "data", "name": "peek" } ] }"#;

// DEFECT (data.rs + transaction.rs run path, PostgreSQL): data steps run on the runner's
// own connection, whose sqlx statement cache lives as long as the run. A step before and a
// step after an alter_column of the same migration (backfill / alter / backfill, the
// expand-contract shape the guide recommends) send the same SELECT; the second one hits
// "cached plan must not change result type" (0A000), which aborts the tenant's transaction
// (the pooled path retries it; a transaction cannot). Every tenant fails the migration.
backend_test!(
    two_data_steps_around_an_alter_fail_on_a_stale_plan,
    |t: TestDb| async move {
        let registry = registry_on(t.registry.database().clone());
        let a = t.schema("a");
        migrated_tenant(&registry, &a).await;
        Item::query(&registry)
            .using(&a)
            .create(Item {
                id: 0,
                name: "x".into(),
            })
            .await
            .unwrap();
        let set = Migrations::from_files(&[("0001_items", TABLE), ("0002_peek", PEEK_ALTER_PEEK)])
            .unwrap();
        let migrator = Migrator::new(&registry, set).data_step("peek", |tx| {
            Box::pin(async move {
                Item::query(&tx).all().await?;
                Ok(())
            })
        });
        let report = migrator.run(RunOptions::default()).await.unwrap();
        assert!(report.is_complete(), "{}: {report:?}", t.backend);
    }
);
// Was a defect (hazard.rs): "a table this migration created is empty" was judged by name
// only, so creating `u`, dropping it and renaming the live table `t` onto `u` made a later
// int -> bigint rewrite of `u` look fresh and slip past the allow_rewrite gate.
#[test]
fn hazard_gate_follows_renames_onto_a_created_name() {
    let set = Migrations::from_files(&[
        (
            "0001_t",
            r#"{ "scope": "tenant", "operations": [
              { "op": "create_table", "table": "t", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true },
                { "name": "n", "type": "integer" } ] } ] }"#,
        ),
        (
            "0002_swap",
            r#"{ "scope": "tenant", "operations": [
              { "op": "create_table", "table": "u", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true } ] },
              { "op": "drop_table", "table": "u" },
              { "op": "rename_table", "from": "t", "to": "u" },
              { "op": "alter_column", "table": "u",
                "column": { "name": "n", "type": "big_integer" } } ] }"#,
        ),
    ])
    .unwrap();
    let plain = Migrations::from_files(&[
        (
            "0001_t",
            r#"{ "scope": "tenant", "operations": [
              { "op": "create_table", "table": "t", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true },
                { "name": "n", "type": "integer" } ] } ] }"#,
        ),
        (
            "0002_plain",
            r#"{ "scope": "tenant", "operations": [
              { "op": "alter_column", "table": "t",
                "column": { "name": "n", "type": "big_integer" } } ] }"#,
        ),
    ])
    .unwrap();
    for backend in [Backend::Postgres, Backend::MySql] {
        let gated = |set: &Migrations, id: &str| {
            set.hazards(set.get(id).unwrap(), backend)
                .iter()
                .any(|h| h.kind.needs_allow_rewrite())
        };
        assert!(
            gated(&plain, "0002_plain"),
            "{backend:?}: the plain alter is gated"
        );
        assert!(
            gated(&set, "0002_swap"),
            "{backend:?}: the same rewrite after a rename onto a created name is not gated"
        );
    }
}
