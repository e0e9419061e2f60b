//! Isolation when the server kills the pool's connections under load.
//!
//! 24 tasks over four tenants read and write inside `with_tenant` for about three seconds
//! while, three times, a separate admin connection kills every other connection to the test
//! database (PostgreSQL: `pg_terminate_backend`; MariaDB/MySQL: `KILL` of each
//! `information_schema.PROCESSLIST` id on the database). Requests in flight may fail, but
//! only with `Error::Database` whose cause is an I/O or protocol error or the server's own
//! "connection terminated/killed" error; never a panic, never a wrong answer. Every read
//! returns only the tenant's own rows, the requests after the load all succeed (the pool
//! recovers), and each tenant ends with exactly its own rows.
//!
//! SQLite has no server connections: the same body runs the same load, without the kill
//! step, and asserts the isolation part (and that nothing fails).
mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{models::*, state, TestDb};
use tenantry::{create_schema, with_tenant, Backend, Error, Model, Registry, SchemaName};

const TENANTS: usize = 4;
const TASKS: usize = 24;
const KILLS: usize = 3;
const LOAD: Duration = Duration::from_millis(3_000);

/// Why a request failed, when the failure is an acceptable one; panics otherwise.
fn classify(error: &Error) -> String {
    match error {
        Error::Database(sqlx::Error::Io(io)) => format!("Database(Io({:?}))", io.kind()),
        Error::Database(sqlx::Error::Protocol(_)) => "Database(Protocol)".into(),
        Error::Database(sqlx::Error::Database(db)) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL 57P01 admin_shutdown ("terminating connection due to administrator
            // command"); MariaDB 1927 ER_CONNECTION_KILLED, 1053 ER_SERVER_SHUTDOWN,
            // 2013 CR_SERVER_LOST.
            assert!(
                matches!(&*code, "57P01" | "1927" | "1053" | "2013" | "70100"),
                "unexpected database error: {error:?}"
            );
            format!("Database(Database({code}))")
        }
        other => panic!("a killed connection surfaced as {other:?}"),
    }
}

/// Kills every connection to the test database but the admin's own; returns how many.
async fn kill_connections(t: &TestDb, admin: &tenantry::Database) -> usize {
    match t.backend {
        Backend::Postgres => {
            let killed: Vec<(bool,)> = sqlx::query_as(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend'",
            )
            .fetch_all(&mut *admin.acquire_postgres().await.unwrap())
            .await
            .unwrap();
            killed.into_iter().filter(|(k,)| *k).count()
        }
        Backend::MySql => {
            let mut conn = admin.acquire_mysql().await.unwrap();
            let pool = &mut *conn;
            let ids: Vec<(i64,)> = sqlx::query_as(
                "SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE DB = ? AND ID <> CONNECTION_ID()",
            )
            .bind(t.database_name())
            .fetch_all(&mut *pool)
            .await
            .unwrap();
            let mut killed = 0;
            for (id,) in ids {
                // An integer from the server, not input: KILL takes no bound parameter.
                if sqlx::raw_sql(&format!("KILL {id}"))
                    .execute(&mut *pool)
                    .await
                    .is_ok()
                {
                    killed += 1;
                }
            }
            killed
        }
        // No server connections to kill.
        Backend::Sqlite => 0,
    }
}

#[derive(Default)]
struct Outcome {
    ok: usize,
    failed: BTreeMap<String, usize>,
    /// Per tenant: writes confirmed, writes attempted.
    confirmed: Vec<BTreeSet<String>>,
    attempted: Vec<BTreeSet<String>>,
}

/// One request of task `task`: a read of the tenant's rows, every fourth one a write first.
async fn request(
    r: &Registry,
    tenants: &[SchemaName],
    baseline: &[BTreeSet<String>],
    outcome: &Mutex<Outcome>,
    task: usize,
    n: usize,
) -> bool {
    let i = (task + n) % tenants.len();
    let tag = format!("c{i}-");
    let write = n.is_multiple_of(4).then(|| format!("c{i}-w{task}-{n}"));
    if let Some(name) = &write {
        outcome.lock().unwrap().attempted[i].insert(name.clone());
    }
    let result = with_tenant(Some(tenants[i].clone()), async {
        if let Some(name) = &write {
            User::query(r).create(user(name)).await?;
        }
        User::query(r).all().await
    })
    .await;
    let mut outcome = outcome.lock().unwrap();
    match result {
        Ok(rows) => {
            let names: BTreeSet<String> = rows.into_iter().map(|u| u.into_inner().name).collect();
            for name in &names {
                assert!(name.starts_with(&tag), "tenant {i} read {name}");
            }
            assert!(names.is_superset(&baseline[i]), "tenant {i} lost rows");
            if let Some(name) = write {
                assert!(names.contains(&name), "tenant {i} misses its own write");
                outcome.confirmed[i].insert(name);
            }
            outcome.ok += 1;
            true
        }
        Err(error) => {
            *outcome.failed.entry(classify(&error)).or_default() += 1;
            false
        }
    }
}

backend_test!(
    killed_connections_fail_clearly_and_recover,
    |t: TestDb| async move {
        let r = &t.registry;
        let mut tenants = Vec::new();
        let mut baseline = Vec::new();
        for i in 0..TENANTS {
            let schema = t.schema(&format!("c{i}"));
            create_schema(r, &schema, Some(&[User::META]), false, true)
                .await
                .unwrap();
            let names: BTreeSet<String> = (0..3 + i).map(|k| format!("c{i}-base-{k}")).collect();
            with_tenant(
                Some(schema.clone()),
                User::query(r).bulk_create(names.iter().map(|n| user(n))),
            )
            .await
            .unwrap();
            tenants.push(schema);
            baseline.push(names);
        }
        let outcome = Arc::new(Mutex::new(Outcome {
            confirmed: vec![BTreeSet::new(); TENANTS],
            attempted: vec![BTreeSet::new(); TENANTS],
            ..Outcome::default()
        }));

        // The load.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let r = r.clone();
            let tenants = tenants.clone();
            let baseline = baseline.clone();
            let outcome = outcome.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                while started.elapsed() < LOAD {
                    request(&r, &tenants, &baseline, &outcome, task, n).await;
                    n += 1;
                }
            }));
        }

        // The kills, from a separate one-connection handle (which spares itself), while the
        // load runs.
        let admin = t.reconnect_with(1).await;
        let mut killed = Vec::new();
        for _ in 0..KILLS {
            tokio::time::sleep(LOAD / (KILLS as u32 + 2)).await;
            killed.push(kill_connections(&t, &admin).await);
        }
        for task in tasks {
            task.await.unwrap();
        }
        let during = std::mem::take(&mut *outcome.lock().unwrap());
        let mut outcome = Outcome {
            confirmed: during.confirmed.clone(),
            attempted: during.attempted.clone(),
            ..Outcome::default()
        };

        // After the load: three rounds of 24 concurrent requests. A connection killed while
        // idle fails the first query that uses it (the pool does not ping before handing a
        // connection out), so the first round may fail as many requests as the pool holds;
        // the later rounds must all succeed.
        let outcome_after = Arc::new(Mutex::new(std::mem::take(&mut outcome)));
        let mut failed_per_round = Vec::new();
        for round in 0..3 {
            let mut handles = Vec::new();
            for task in 0..TASKS {
                let r = r.clone();
                let tenants = tenants.clone();
                let baseline = baseline.clone();
                let outcome = outcome_after.clone();
                handles.push(tokio::spawn(async move {
                    request(&r, &tenants, &baseline, &outcome, task, 1 + round * TASKS).await
                }));
            }
            let mut failed = 0;
            for handle in handles {
                failed += usize::from(!handle.await.unwrap());
            }
            failed_per_round.push(failed);
        }
        assert!(failed_per_round[0] <= 8, "{failed_per_round:?}");
        assert_eq!(&failed_per_round[1..], [0, 0], "the pool did not recover");
        let after = std::mem::take(&mut *outcome_after.lock().unwrap());

        // Each tenant holds exactly its own rows: the baseline, every confirmed write, and
        // nothing but writes it attempted (a write whose answer was lost may have landed).
        let fresh = state::snapshot(r, &tenants).await;
        for i in 0..TENANTS {
            let confirmed: BTreeSet<String> =
                after.confirmed[i].union(&baseline[i]).cloned().collect();
            let possible: BTreeSet<String> =
                confirmed.union(&after.attempted[i]).cloned().collect();
            assert!(fresh[i].is_superset(&confirmed), "tenant {i} lost writes");
            assert!(
                fresh[i].is_subset(&possible),
                "tenant {i} holds foreign rows"
            );
        }
        assert_eq!(
            User::query(r).count().await.unwrap(),
            0,
            "rows in the default schema"
        );
        state::assert_tenants_read_their_own(r, &tenants, &fresh, 16, 8).await;
        let checked = state::assert_no_open_transaction(&t, r.database()).await;
        admin.disconnect().await;

        if t.backend == Backend::Sqlite {
            assert!(during.failed.is_empty(), "{:?}", during.failed);
        } else {
            assert!(killed.iter().sum::<usize>() > 0, "nothing was killed");
        }
        eprintln!(
            "[attack_connections] {}: killed {killed:?} connections during a {TASKS}-task load \
             over {TENANTS} tenants; during: {} requests ok, failed {:?}; after: failures per \
             round {failed_per_round:?}, {} ok, failed {:?}; 0 cross-tenant rows; {checked} \
             pooled connections clean",
            t.backend, during.ok, during.failed, after.ok, after.failed
        );
    }
);
