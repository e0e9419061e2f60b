//! A SQLite drop refused with SchemaBusy keeps waiting for the busy pool: a second drop must
//! not delete the file under the still-open transaction (which would then commit Ok into the
//! deleted file: an acknowledged, lost write), and a schema made again starts empty.
mod common;

use std::time::Duration;

use common::{models::*, sqlite_dir::sqlite_registry};
use tenantry::{create_schema, drop_schema, Database, Error, Registry, SchemaName};

#[tokio::test]
async fn second_drop_after_schema_busy_waits_for_the_open_transaction() {
    let (_dir, r) = sqlite_registry("drop-retry", |o| {
        o.acquire_timeout(Duration::from_millis(300))
    })
    .await;
    let s = SchemaName::parse("acme").unwrap();
    create_schema(&r, &s, None, false, true).await.unwrap();

    let tx = r.begin_in(&s).await.unwrap();
    User::query(&tx)
        .using(&s)
        .create(user("kept"))
        .await
        .unwrap();
    let first = drop_schema(&r, &s, true, false).await;
    assert!(matches!(first, Err(Error::SchemaBusy { .. })), "{first:?}");
    // The transaction is still open: a second drop must refuse (or wait) as the first did.
    let second = drop_schema(&r, &s, true, false).await;
    let committed = tx.commit().await;
    assert!(
        !(second.is_ok() && committed.is_ok()),
        "second drop returned {second:?} while a transaction was open on {s}; \
         its commit then returned {committed:?}: an acknowledged write into a deleted file"
    );
}

/// In memory the schema's database lives while any connection to it is open: after the
/// second drop "succeeded", the open transaction keeps the old database alive, and the tenant
/// created again under the same name inherits the dropped tenant's rows.
#[tokio::test]
async fn in_memory_schema_created_again_after_a_forced_drop_starts_empty() {
    let db = Database::options("sqlite::memory:")
        .acquire_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let r = register(Registry::new(db));
    r.create_all().await.unwrap();
    let s = SchemaName::parse("acme").unwrap();
    create_schema(&r, &s, None, false, true).await.unwrap();
    User::query(&r)
        .using(&s)
        .create(user("old-tenant"))
        .await
        .unwrap();

    let tx = r.begin_in(&s).await.unwrap();
    User::query(&tx).using(&s).count().await.unwrap();
    let first = drop_schema(&r, &s, true, false).await;
    assert!(matches!(first, Err(Error::SchemaBusy { .. })), "{first:?}");
    let second = drop_schema(&r, &s, true, false).await;
    if second.is_ok() {
        create_schema(&r, &s, None, false, true).await.unwrap();
        let rows = User::query(&r).using(&s).count().await.unwrap();
        assert_eq!(
            rows, 0,
            "the re-created tenant {s} inherited the dropped tenant's rows"
        );
    }
    drop(tx);
}
