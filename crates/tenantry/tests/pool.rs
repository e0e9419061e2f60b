//! The one pool: queries and transactions share it with fair waiters; disconnect is bounded
//! and final; a missing schema is told apart on the statement's own connection; small pools
//! (1 and 2 connections) never starve; dropping the last handle outside a runtime is fine.
mod common;

use std::time::{Duration, Instant};

use common::models::*;
use tenantry::{create_schema, Backend, Database, Error, Registry};

async fn registry_with(t: &common::TestDb, max: u32, acquire: Duration) -> Registry {
    let db = Database::options(&t.url())
        .max_connections(max)
        .acquire_timeout(acquire)
        .disconnect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    register(Registry::new(db))
}

backend_test!(
    transactions_use_every_connection_of_the_pool,
    |t: common::TestDb| async move {
        // Four connections: four transactions at once, then queries beside them.
        let r = registry_with(&t, 4, Duration::from_secs(5)).await;
        User::query(&r).create(user("before")).await.unwrap();
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(
                r.begin()
                    .await
                    .expect("a transaction found no free connection"),
            );
        }
        assert_eq!(r.database().pool_status().in_use(), 4);
        drop(open);
        // Dropped transactions roll back and give their connections back.
        for _ in 0..20 {
            assert_eq!(User::query(&r).count().await.unwrap(), 1);
        }
        let txs = three_transactions_and_a_query(&r).await;
        assert_eq!(txs.len(), 3);
        r.disconnect().await;
    }
);

/// Three transactions and a query, concurrently, on a pool of four.
async fn three_transactions_and_a_query(r: &Registry) -> Vec<tenantry::Transaction> {
    let (a, b, c, q) = tokio::join!(r.begin(), r.begin(), r.begin(), User::query(r).count());
    q.unwrap();
    [a, b, c].into_iter().map(|tx| tx.unwrap()).collect()
}

backend_test!(
    pools_of_one_and_two_serve_transactions_and_provisioning,
    |t: common::TestDb| async move {
        for max in [1, 2] {
            let r = registry_with(&t, max, Duration::from_secs(10)).await;
            let schema = t.schema(&format!("small{max}"));
            create_schema(&r, &schema, None, false, true).await.unwrap();
            // A transaction, then queries while it is open (pool of two) or after it (pool of one).
            let tx = r.begin().await.unwrap();
            User::query(&tx)
                .create(user(&format!("tx{max}")))
                .await
                .unwrap();
            if max == 2 {
                assert_eq!(User::query(&r).using(&schema).count().await.unwrap(), 0);
            }
            tx.commit().await.unwrap();
            assert_eq!(
                User::query(&r)
                    .filter(User::name().eq(format!("tx{max}")))
                    .count()
                    .await
                    .unwrap(),
                1
            );
            tenantry::drop_schema(&r, &schema, true, false)
                .await
                .unwrap();
            r.disconnect().await;
        }
    }
);

backend_test!(
    waiters_are_served_in_arrival_order,
    |t: common::TestDb| async move {
        let r = registry_with(&t, 1, Duration::from_secs(10)).await;
        User::query(&r).create(user("x")).await.unwrap();
        let held = r.begin().await.unwrap();
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        for i in 0..5 {
            let waiter = r.clone();
            let order = order_tx.clone();
            waiters.push(tokio::spawn(async move {
                // The order is recorded while the connection is held: the pool has one.
                let tx = waiter.begin().await.unwrap();
                order.send(i).unwrap();
                tx.commit().await.unwrap();
            }));
            // Each waiter is queued before the next one arrives.
            let deadline = Instant::now() + Duration::from_secs(10);
            while r.database().pool_status().waiting < i + 1 {
                assert!(Instant::now() < deadline, "waiter {i} never queued");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        held.commit().await.unwrap();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        drop(order_tx);
        let mut order = Vec::new();
        while let Some(i) = order_rx.recv().await {
            order.push(i);
        }
        assert_eq!(
            order,
            [0, 1, 2, 3, 4],
            "waiters were not served in arrival order"
        );
        r.disconnect().await;
    }
);

backend_test!(
    sub_second_acquire_timeouts_are_kept,
    |t: common::TestDb| async move {
        let r = registry_with(&t, 1, Duration::from_millis(200)).await;
        let held = r.begin().await.unwrap();
        let started = Instant::now();
        let result = User::query(&r).count().await;
        let waited = started.elapsed();
        assert!(
            matches!(result, Err(Error::PoolTimedOut { .. })),
            "{result:?}"
        );
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "waited {waited:?} for a 200 ms acquire timeout"
        );
        held.rollback().await.unwrap();
        r.disconnect().await;
    }
);

backend_test!(
    disconnect_is_bounded_and_final,
    |t: common::TestDb| async move {
        let r = registry_with(&t, 2, Duration::from_secs(5)).await;
        User::query(&r).create(user("x")).await.unwrap();
        // A transaction that is never finished holds one connection across the disconnect.
        let stuck = r.begin().await.unwrap();
        User::query(&stuck)
            .create(user("uncommitted"))
            .await
            .unwrap();
        let started = Instant::now();
        r.disconnect().await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "disconnect took {took:?}");
        assert!(r.database().is_closed());
        for _ in 0..3 {
            let after = User::query(&r).count().await;
            assert!(matches!(after, Err(Error::Closed)), "{after:?}");
            let begin = r.begin().await;
            assert!(matches!(begin, Err(Error::Closed)), "{:?}", begin.err());
        }
        drop(stuck);
        // Nothing of the unfinished transaction was committed.
        let fresh = register(Registry::new(t.reconnect().await));
        assert_eq!(User::query(&fresh).count().await.unwrap(), 1);
        fresh.disconnect().await;
    }
);

backend_test!(
    disconnect_waits_for_a_statement_in_flight,
    |t: common::TestDb| async move {
        let r = registry_with(&t, 2, Duration::from_secs(5)).await;
        let db = r.database().clone();
        // A statement that runs for a while on a borrowed connection.
        let slow = tokio::spawn(async move {
            match db.backend() {
                Backend::Postgres => {
                    let mut conn = db.acquire_postgres().await.unwrap();
                    sqlx::query("SELECT pg_sleep(0.3)")
                        .execute(&mut *conn)
                        .await
                        .map(drop)
                }
                Backend::MySql => {
                    let mut conn = db.acquire_mysql().await.unwrap();
                    sqlx::query("SELECT SLEEP(0.3)")
                        .execute(&mut *conn)
                        .await
                        .map(drop)
                }
                Backend::Sqlite => {
                    let _conn = db.acquire_sqlite(None).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(())
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        r.disconnect().await;
        let took = started.elapsed();
        slow.await
            .unwrap()
            .expect("the statement in flight was cut off");
        assert!(
            took >= Duration::from_millis(150),
            "disconnect did not wait: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "disconnect took {took:?}");
        assert_eq!(r.database().pool_status().size, 0);
    }
);

backend_test!(
    missing_schema_is_told_apart_on_the_same_connection,
    |t: common::TestDb| async move {
        // One connection, taken by a transaction: a check on a second connection would wait
        // for the whole acquire timeout.
        let r = registry_with(&t, 1, Duration::from_secs(30)).await;
        let missing = t.schema("never_made");
        let started = Instant::now();
        let outside = User::query(&r).using(&missing).count().await;
        assert!(
            matches!(outside, Err(Error::SchemaNotFound { .. })),
            "{outside:?}"
        );
        let tx = r.begin().await.unwrap();
        let inside = User::query(&tx).using(&missing).count().await;
        match t.backend {
            // The failed statement aborted the transaction: no check can run in it, and
            // the original error is kept, never replaced.
            Backend::Postgres => assert_eq!(
                inside
                    .as_ref()
                    .err()
                    .and_then(Error::database_code)
                    .as_deref(),
                Some("42P01"),
                "{inside:?}"
            ),
            // SQLite refuses a transaction of the main file on another schema's file.
            Backend::Sqlite => assert!(
                matches!(inside, Err(Error::Unsupported { .. })),
                "{inside:?}"
            ),
            Backend::MySql => assert!(
                matches!(inside, Err(Error::SchemaNotFound { .. })),
                "{inside:?}"
            ),
        }
        drop(tx);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a check waited for a connection"
        );
        // A missing table in a schema that exists is not a missing schema.
        let schema = t.schema("no_tables");
        create_schema(&r, &schema, None, false, false)
            .await
            .unwrap();
        let error = User::query(&r).using(&schema).count().await.unwrap_err();
        assert!(!matches!(error, Error::SchemaNotFound { .. }), "{error:?}");
        assert!(error.database_code().is_some(), "{error:?}");
        r.disconnect().await;
    }
);

#[test]
fn dropping_the_last_handle_outside_a_runtime_is_fine() {
    let dir = std::env::temp_dir().join(format!("tenantry-drop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/main.sqlite?mode=rwc", dir.display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = runtime.block_on(async {
        let r = register(Registry::new(Database::connect(&url).await.unwrap()));
        r.create_all().await.unwrap();
        let tx = r.begin().await.unwrap();
        User::query(&tx).create(user("a")).await.unwrap();
        tx.commit().await.unwrap();
        User::query(&r).count().await.unwrap();
        r
    });
    drop(runtime);
    drop(registry);
    std::fs::remove_dir_all(&dir).unwrap();
}
