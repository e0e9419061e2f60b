//! A QuerySet's limit and offset outside of `all()`: `count` and `exists` see the window
//! (the rows `all()` returns); `update`, `delete` and aggregates, which would act on every
//! matching row, refuse it with a typed error and change nothing. Two tenants holding
//! different rows are asked at once, from one task.
mod common;

use common::{
    models::*,
    tenants::{name_of as prefix_of, users_by_id as users, with_users},
};
use tenantry::{Error, Model, QuerySet, Registry, SchemaName};

async fn tenant(t: &common::TestDb, name: &str, users: usize) -> SchemaName {
    with_users(t, name, users, &[User::META]).await
}

/// `count()` and `exists()` of windows of `schema`'s users, checked against `all()`.
async fn windows_agree_with_all(r: Registry, schema: SchemaName, held: usize) {
    let windows: [(Option<u64>, Option<u64>); 9] = [
        (None, None),
        (Some(3), None),
        (Some(0), None),
        (None, Some(2)),
        (None, Some(held as u64)),
        (None, Some(held as u64 + 5)),
        (Some(2), Some(1)),
        (Some(10), Some(held as u64 - 1)),
        (Some(u64::MAX), Some(1)),
    ];
    for (limit, offset) in windows {
        let window = |q: QuerySet<User>| {
            let q = match limit {
                Some(n) => q.limit(n),
                None => q,
            };
            match offset {
                Some(n) => q.offset(n),
                None => q,
            }
        };
        let rows = window(users(&r, &schema)).all().await.unwrap();
        assert!(
            rows.iter().all(|u| u.name.starts_with(&prefix_of(&schema))),
            "{schema}: another tenant's rows"
        );
        let count = window(users(&r, &schema)).count().await.unwrap();
        let exists = window(users(&r, &schema)).exists().await.unwrap();
        assert_eq!(count, rows.len() as u64, "{schema} {limit:?} {offset:?}");
        assert_eq!(exists, !rows.is_empty(), "{schema} {limit:?} {offset:?}");
        tokio::task::yield_now().await;
    }
    let expected = held.min(3) as u64;
    let filtered = users(&r, &schema)
        .filter(User::name().startswith(prefix_of(&schema)))
        .offset(held as u64 - 3)
        .count()
        .await
        .unwrap();
    assert_eq!(filtered, expected, "{schema}");
}

fn refused(outcome: Result<impl std::fmt::Debug, Error>, argument: &str) {
    refused_because(outcome, argument, "every matching row");
}

fn refused_because(outcome: Result<impl std::fmt::Debug, Error>, argument: &str, why: &str) {
    match outcome {
        Err(Error::InvalidArgument {
            argument: a,
            reason,
        }) => {
            assert_eq!(a, argument);
            assert!(reason.contains(why), "{reason}");
        }
        other => panic!("expected InvalidArgument({argument}), got {other:?}"),
    }
}

backend_test!(
    count_and_exists_see_the_window_in_two_tenants_at_once,
    |t: common::TestDb| async move {
        let (acme, globex) = (tenant(&t, "acme", 5).await, tenant(&t, "globex", 8).await);
        tokio::join!(
            windows_agree_with_all(t.registry.clone(), acme.clone(), 5),
            windows_agree_with_all(t.registry.clone(), globex.clone(), 8),
        );
        let r = &t.registry;
        assert_eq!(users(r, &acme).offset(2).limit(2).count().await.unwrap(), 2);
        assert_eq!(
            users(r, &globex).offset(6).limit(10).count().await.unwrap(),
            2
        );
        assert!(!users(r, &acme).offset(5).exists().await.unwrap());
        assert!(users(r, &globex).offset(5).exists().await.unwrap());
    }
);

backend_test!(
    writes_and_aggregates_refuse_a_window_and_change_nothing,
    |t: common::TestDb| async move {
        let (acme, globex) = (tenant(&t, "acme", 5).await, tenant(&t, "globex", 8).await);
        let r = t.registry.clone();
        let attempts = |schema: SchemaName| {
            let r = r.clone();
            async move {
                refused(users(&r, &schema).limit(1).delete().await, "limit");
                refused(users(&r, &schema).offset(4).delete().await, "offset");
                refused(
                    users(&r, &schema)
                        .limit(2)
                        .update([User::is_active().set(true)])
                        .await,
                    "limit",
                );
                refused(
                    users(&r, &schema)
                        .offset(1)
                        .update_sql([User::is_active().set(true)]),
                    "offset",
                );
                refused(
                    users(&r, &schema)
                        .limit(2)
                        .aggregate(User::id().count())
                        .await,
                    "limit",
                );
                refused(
                    users(&r, &schema)
                        .offset(3)
                        .group_by(User::is_active())
                        .aggregate(User::id().count())
                        .await,
                    "offset",
                );
            }
        };
        tokio::join!(attempts(acme.clone()), attempts(globex.clone()));
        for (schema, held) in [(&acme, 5u64), (&globex, 8)] {
            let all = users(&r, schema).all().await.unwrap();
            assert_eq!(all.len() as u64, held, "{schema}: rows lost");
            assert!(all.iter().all(|u| !u.is_active), "{schema}: rows changed");
            assert!(all.iter().all(|u| u.name.starts_with(&prefix_of(schema))));
            // Without the window the same operations run.
            let changed = users(&r, schema)
                .update([User::is_active().set(true)])
                .await
                .unwrap();
            assert_eq!(changed, held);
            assert_eq!(
                users(&r, schema)
                    .aggregate(User::id().count())
                    .await
                    .unwrap(),
                held as i64
            );
        }
    }
);

/// `first()` of a window is the window's first row; `last()` and `get()`, which a window
/// would make answer wrongly, refuse it.
async fn ends_of_windows(r: Registry, schema: SchemaName, held: u64) {
    let all = users(&r, &schema).all().await.unwrap();
    assert_eq!(all.len() as u64, held);
    let first = |q: QuerySet<User>| async move { q.first().await.unwrap().map(|u| u.id) };
    assert_eq!(first(users(&r, &schema).offset(2)).await, Some(all[2].id));
    assert_eq!(first(users(&r, &schema).limit(3)).await, Some(all[0].id));
    assert_eq!(first(users(&r, &schema).limit(0)).await, None);
    assert_eq!(first(users(&r, &schema).offset(held)).await, None);
    refused_because(
        users(&r, &schema).limit(3).last().await,
        "limit",
        "backwards",
    );
    refused_because(
        users(&r, &schema).offset(1).last().await,
        "offset",
        "backwards",
    );
    refused_because(
        users(&r, &schema)
            .offset(1)
            .get(User::id().eq(all[0].id))
            .await,
        "offset",
        "hide",
    );
    let last = users(&r, &schema).last().await.unwrap().unwrap();
    assert_eq!(last.id, all[all.len() - 1].id);
    let got = users(&r, &schema)
        .get(User::id().eq(all[0].id))
        .await
        .unwrap();
    assert_eq!(got.name, all[0].name);
    assert!(got.name.starts_with(&prefix_of(&schema)));
}

backend_test!(
    first_of_a_window_and_last_and_get_refusing_one,
    |t: common::TestDb| async move {
        let (acme, globex) = (tenant(&t, "acme", 5).await, tenant(&t, "globex", 8).await);
        tokio::join!(
            ends_of_windows(t.registry.clone(), acme, 5),
            ends_of_windows(t.registry.clone(), globex, 8),
        );
    }
);
