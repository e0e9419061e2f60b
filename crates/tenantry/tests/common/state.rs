//! What pooled connections carry after an attack: the checks shared by the `attack_*` tests.
//!
//! - [`settle`] waits until every connection of a pool is back (sqlx returns a released
//!   connection from a spawned task, after a ping that also flushes a queued ROLLBACK);
//! - [`assert_no_open_transaction`] holds every connection of the pool and proves that none
//!   of them is inside a transaction, with the backend's own view of it;
//! - [`assert_next_writes_visible`] writes through the pool as its next users and reads the
//!   rows back through a fresh handle: a write swallowed by a leaked transaction would be
//!   missing there;
//! - [`snapshot`] and [`assert_tenants_read_their_own`] show that each tenant reads exactly
//!   its own rows, also under concurrent reads.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use tenantry::{with_tenant, Backend, Database, Registry, SchemaName};

use super::{models::*, TestDb};

/// Waits (10 s at most) until every connection of `db`'s main pool is idle again, then a
/// moment more for the server to see the last release ping.
pub async fn settle(db: &Database) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (size, idle) = pool_size(db);
        if idle >= size || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn pool_size(db: &Database) -> (usize, usize) {
    let status = db.pool_status();
    (status.size, status.idle)
}

/// Settles `db`, takes every connection of its main pool at once and proves none is inside
/// a transaction:
///
/// - PostgreSQL: while they are held, `pg_stat_activity` (read through a separate handle)
///   shows every backend of the test database `idle`, none `idle in transaction`;
/// - MySQL: `SELECT @@in_transaction` is 0 on each connection, and `information_schema.
///   innodb_trx` has no transaction of a connection to the test database;
/// - SQLite: `BEGIN` succeeds on each connection (inside a transaction it would fail with
///   "cannot start a transaction within a transaction"), then `ROLLBACK`.
///
/// Returns the number of pooled connections checked.
pub async fn assert_no_open_transaction(t: &TestDb, db: &Database) -> usize {
    settle(db).await;
    let (size, _) = pool_size(db);
    let want = size.max(1);
    match db.backend() {
        Backend::Postgres => {
            let mut held = Vec::new();
            for _ in 0..want {
                held.push(db.acquire_postgres().await.unwrap());
            }
            let admin = t.reconnect().await;
            let states: Vec<(i32, Option<String>)> = sqlx::query_as(
                "SELECT pid, state FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend'",
            )
            .fetch_all(&mut *admin.acquire_postgres().await.unwrap())
            .await
            .unwrap();
            admin.disconnect().await;
            assert!(
                states.len() >= held.len(),
                "pg_stat_activity lists {} backends, {} are held",
                states.len(),
                held.len()
            );
            for (pid, state) in &states {
                assert_eq!(
                    state.as_deref(),
                    Some("idle"),
                    "backend {pid} of the pool is not idle: {state:?}"
                );
            }
            held.len()
        }
        Backend::MySql => {
            let mut held = Vec::new();
            for _ in 0..want {
                held.push(db.acquire_mysql().await.unwrap());
            }
            for conn in &mut held {
                let (in_tx,): (i64,) = sqlx::query_as("SELECT CAST(@@in_transaction AS SIGNED)")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(
                    in_tx, 0,
                    "a pooled MySQL connection is inside a transaction"
                );
            }
            let (open,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM information_schema.innodb_trx t \
                 JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
                 WHERE p.DB = ?",
            )
            .bind(t.database_name())
            .fetch_one(&mut *held[0])
            .await
            .unwrap();
            assert_eq!(open, 0, "InnoDB holds transactions of the test database");
            held.len()
        }
        Backend::Sqlite => {
            let mut held = Vec::new();
            for _ in 0..want {
                held.push(db.acquire_sqlite(None).await.unwrap());
            }
            for conn in &mut held {
                sqlx::Executor::execute(&mut **conn, sqlx::raw_sql("BEGIN"))
                    .await
                    .expect("a pooled SQLite connection is inside a transaction");
                sqlx::Executor::execute(&mut **conn, sqlx::raw_sql("ROLLBACK"))
                    .await
                    .unwrap();
            }
            held.len()
        }
    }
}

/// The next users of the pool: `writers` concurrent creates in each tenant (and in the
/// default schema for `None`), each bounded by 20 s (on SQLite a write behind a leaked write
/// transaction would fail with "database is locked" after the 5 s busy timeout). Then a
/// fresh handle must see every one of them: a write that landed inside a transaction left
/// open on a pooled connection would be invisible there.
pub async fn assert_next_writes_visible(
    t: &TestDb,
    registry: &Registry,
    tenants: &[Option<SchemaName>],
    writers: usize,
    label: &str,
) {
    let mut tasks = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        for k in 0..writers {
            let r = registry.clone();
            let tenant = tenant.clone();
            let name = format!("{label}-next-{i}-{k}");
            tasks.push(tokio::spawn(async move {
                let write = with_tenant(tenant, async move {
                    let u = User::query(&r).create(user(&name)).await?;
                    User::query(&r)
                        .filter(User::id().eq(u.id))
                        .update([User::is_active().set(true)])
                        .await
                });
                tokio::time::timeout(Duration::from_secs(20), write).await
            }));
        }
    }
    for task in tasks {
        let written = task.await.unwrap().expect("a write of the next user hung");
        assert_eq!(written.expect("a write of the next user failed"), 1);
    }
    let fresh = Registry::new(t.reconnect().await).register::<User>();
    for (i, tenant) in tenants.iter().enumerate() {
        let prefix = format!("{label}-next-{i}-");
        let seen = with_tenant(
            tenant.clone(),
            User::query(&fresh)
                .filter(User::name().startswith(&prefix))
                .filter(User::is_active().eq(true))
                .count(),
        )
        .await
        .unwrap();
        assert_eq!(
            seen, writers as u64,
            "a fresh handle sees {seen} of the {writers} writes to {tenant:?}"
        );
    }
    fresh.disconnect().await;
}

/// Every user name of each tenant, read in its scope.
pub async fn snapshot(registry: &Registry, tenants: &[SchemaName]) -> Vec<BTreeSet<String>> {
    let mut out = Vec::new();
    for tenant in tenants {
        out.push(names(registry, tenant).await.unwrap());
    }
    out
}

/// The user names `tenant` reads inside `with_tenant`.
pub async fn names(registry: &Registry, tenant: &SchemaName) -> tenantry::Result<BTreeSet<String>> {
    let rows = with_tenant(Some(tenant.clone()), User::query(registry).all()).await?;
    Ok(rows.into_iter().map(|u| u.into_inner().name).collect())
}

/// `tasks` concurrent tasks, each reading `rounds` times the tenants in rotation (starting
/// at its own index): every read must be exactly `expected[tenant]`. The expected sets must
/// be pairwise disjoint, so a read from the wrong schema cannot pass.
pub async fn assert_tenants_read_their_own(
    registry: &Registry,
    tenants: &[SchemaName],
    expected: &[BTreeSet<String>],
    tasks: usize,
    rounds: usize,
) {
    for (i, a) in expected.iter().enumerate() {
        assert!(!a.is_empty(), "tenant {i} has no rows to recognise it by");
        for b in &expected[i + 1..] {
            assert!(a.is_disjoint(b), "two tenants share rows");
        }
    }
    let mut handles = Vec::new();
    for task in 0..tasks {
        let r = registry.clone();
        let tenants = tenants.to_vec();
        let expected = expected.to_vec();
        handles.push(tokio::spawn(async move {
            for round in 0..rounds {
                let i = (task + round) % tenants.len();
                let seen = names(&r, &tenants[i]).await.unwrap();
                assert_eq!(seen, expected[i], "tenant {} read other rows", tenants[i]);
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}
