//! SQLite schemas are files: a drop waits for (or refuses) the connections using the file,
//! a query racing a drop never brings the file back, a schema made again under the same
//! name starts empty, and open files stay within the budget.
mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use common::models::*;
use common::sqlite_dir::sqlite_registry;
use tenantry::{create_schema, drop_schema, with_tenant, Error, SchemaName};

fn schema(name: &str) -> SchemaName {
    SchemaName::parse(name).unwrap()
}

#[tokio::test]
async fn drop_waits_for_an_open_transaction_then_the_schema_starts_empty() {
    let (_dir, r) = sqlite_registry("drop-waits", |o| o).await;
    let s = schema("acme");
    create_schema(&r, &s, None, false, true).await.unwrap();
    let tx = r.begin_in(&s).await.unwrap();
    User::query(&tx)
        .using(&s)
        .create(user("in-flight"))
        .await
        .unwrap();
    let dropping = {
        let (r, s) = (r.clone(), s.clone());
        tokio::spawn(async move { drop_schema(&r, &s, true, false).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !dropping.is_finished(),
        "the drop did not wait for the transaction"
    );
    // New work on the schema is refused while it is being dropped.
    let during = User::query(&r).using(&s).count().await;
    assert!(
        matches!(during, Err(Error::SchemaNotFound { .. })),
        "{during:?}"
    );
    tx.commit().await.unwrap();
    dropping.await.unwrap().unwrap();
    assert!(!r.schema().exists(&s).await.unwrap());
    let after = User::query(&r).using(&s).count().await;
    assert!(
        matches!(after, Err(Error::SchemaNotFound { .. })),
        "{after:?}"
    );
    create_schema(&r, &s, None, false, true).await.unwrap();
    assert_eq!(User::query(&r).using(&s).count().await.unwrap(), 0);
    r.disconnect().await;
}

#[tokio::test]
async fn drop_refuses_a_transaction_that_outlives_the_bound_and_loses_nothing() {
    let (_dir, r) = sqlite_registry("drop-refuses", |o| {
        o.acquire_timeout(Duration::from_millis(300))
    })
    .await;
    let s = schema("acme");
    create_schema(&r, &s, None, false, true).await.unwrap();
    let tx = r.begin_in(&s).await.unwrap();
    User::query(&tx)
        .using(&s)
        .create(user("kept"))
        .await
        .unwrap();
    let refused = drop_schema(&r, &s, true, false).await;
    assert!(
        matches!(refused, Err(Error::SchemaBusy { .. })),
        "{refused:?}"
    );
    tx.commit().await.unwrap();
    assert!(r.schema().exists(&s).await.unwrap());
    let names: Vec<String> = User::query(&r)
        .using(&s)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.into_inner().name)
        .collect();
    assert_eq!(names, ["kept"]);
    r.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_racing_a_drop_never_resurrect_the_schema() {
    let (_dir, r) = sqlite_registry("drop-race", |o| o.max_connections(2)).await;
    let other = schema("other");
    create_schema(&r, &other, None, false, true).await.unwrap();
    User::query(&r)
        .using(&other)
        .create(user("other-row"))
        .await
        .unwrap();
    for round in 0..20 {
        let s = schema("acme");
        create_schema(&r, &s, None, false, true).await.unwrap();
        assert_eq!(
            User::query(&r).using(&s).count().await.unwrap(),
            0,
            "round {round}: not empty"
        );
        User::query(&r)
            .using(&s)
            .create(user(&format!("acme-{round}")))
            .await
            .unwrap();
        let dropped = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..6 {
            let (r, s, dropped) = (r.clone(), s.clone(), dropped.clone());
            readers.push(tokio::spawn(async move {
                let mut after_drop = Vec::new();
                for _ in 0..50 {
                    let was_dropped = dropped.load(Ordering::Acquire);
                    let result = with_tenant(Some(s.clone()), User::query(&r).all()).await;
                    match result {
                        Ok(rows) => {
                            assert!(!was_dropped, "a dropped schema was read");
                            let names: Vec<String> =
                                rows.into_iter().map(|u| u.into_inner().name).collect();
                            assert_eq!(names, [format!("acme-{round}")], "another tenant's rows");
                        }
                        Err(Error::SchemaNotFound { .. }) => after_drop.push(was_dropped),
                        Err(other) => panic!("untyped failure racing a drop: {other:?}"),
                    }
                    tokio::task::yield_now().await;
                }
                after_drop
            }));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        drop_schema(&r, &s, true, false).await.unwrap();
        dropped.store(true, Ordering::Release);
        for reader in readers {
            reader.await.unwrap();
        }
        assert!(
            !r.schema().exists(&s).await.unwrap(),
            "round {round}: the file came back"
        );
    }
    // The neighbour was never touched.
    assert_eq!(User::query(&r).using(&other).count().await.unwrap(), 1);
    r.disconnect().await;
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn open_schema_files_stay_within_the_budget() {
    let (_dir, r) = sqlite_registry("budget", |o| o.sqlite_open_schemas(8)).await;
    let names: Vec<SchemaName> = (0..60).map(|i| schema(&format!("t{i}"))).collect();
    for (i, s) in names.iter().enumerate() {
        create_schema(&r, s, None, false, true).await.unwrap();
        User::query(&r)
            .using(s)
            .create(user(&format!("t{i}")))
            .await
            .unwrap();
    }
    let baseline = open_files();
    for round in 0..3 {
        for (i, s) in names.iter().enumerate() {
            let rows = with_tenant(Some(s.clone()), User::query(&r).all())
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].name, format!("t{i}"), "round {round}");
        }
    }
    let after = open_files();
    // Eight schemas of one connection each, three descriptors per WAL connection.
    assert!(
        after <= baseline + 8 * 3 + 4,
        "{after} open files after touching 60 schemas with a budget of 8 (baseline {baseline})"
    );
    r.disconnect().await;
}
