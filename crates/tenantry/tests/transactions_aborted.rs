//! Review: a write acknowledged by `commit()` but not durable. On PostgreSQL a failed
//! statement aborts the transaction; `COMMIT` then rolls back and sqlx 0.8.6 reports success.
//! tenantry's Transaction does not remember the failure, so `commit()` returns Ok and the
//! earlier writes are gone.
mod common;

use common::models::*;
use tenantry::Error;

fn tag(label: &str) -> Tag {
    Tag {
        token: uuid::Uuid::new_v4(),
        label: label.into(),
    }
}

backend_test!(
    commit_after_an_ignored_error_is_not_a_silent_rollback,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let tx = r.begin().await.unwrap();
        User::query(&tx).create(user("acknowledged")).await.unwrap();
        Tag::query(&tx).create(tag("x")).await.unwrap();
        // A duplicate the caller handles (an "insert or ignore" pattern).
        let dup = Tag::query(&tx).create(tag("x")).await;
        assert!(matches!(dup, Err(Error::UniqueViolation { .. })), "{dup:?}");
        let committed = tx.commit().await;
        let stored = User::query(r)
            .filter(User::name().eq("acknowledged".to_string()))
            .count()
            .await
            .unwrap();
        assert!(
            committed.is_err() || stored == 1,
            "commit() returned Ok but the acknowledged row is gone ({stored} rows)"
        );
    }
);
