//! Savepoints inside a tenant's transaction: kept and undone work, nesting, a failed
//! statement undone without losing the transaction, an abandoned savepoint that leaves only
//! a rollback, and two tenants at once in one task; on every backend.
mod common;

use common::models::{user, Tag, User};
use tenantry::{with_tenant, Backend, Error, Registry, SchemaName};

async fn names(registry: &Registry, tenant: &SchemaName) -> Vec<String> {
    User::query(registry)
        .using(tenant)
        .order_by([User::id().asc()])
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.into_inner().name)
        .collect()
}

/// In `tenant`'s transaction: a kept savepoint, an undone one (whose nested savepoint was
/// kept), and a savepoint whose failed statement is undone while the transaction goes on.
async fn work(registry: Registry, tenant: SchemaName) {
    let prefix = tenant.to_string();
    with_tenant(Some(tenant.clone()), async {
        registry
            .transaction(|tx| async move {
                let prefix: &str = &prefix;
                User::query(&tx)
                    .create(user(&format!("{prefix}-outer")))
                    .await?;
                tx.savepoint(|sp| async move {
                    User::query(&sp)
                        .create(user(&format!("{prefix}-kept")))
                        .await?;
                    Ok(())
                })
                .await?;
                let undone: tenantry::Result<()> = tx
                    .savepoint(|sp| async move {
                        User::query(&sp)
                            .create(user(&format!("{prefix}-undone")))
                            .await?;
                        sp.savepoint(|inner| async move {
                            User::query(&inner)
                                .create(user(&format!("{prefix}-nested")))
                                .await?;
                            Ok(())
                        })
                        .await?;
                        Err(Error::NotFound {
                            model: "changed my mind",
                        })
                    })
                    .await;
                assert!(matches!(undone, Err(Error::NotFound { .. })));
                // A statement that fails (a duplicate key) inside a savepoint: rolled back to
                // it, the transaction goes on, on PostgreSQL too.
                let tag = |label: &str| Tag {
                    token: uuid::Uuid::new_v4(),
                    label: label.to_owned(),
                };
                Tag::query(&tx).create(tag("taken")).await?;
                let duplicate: tenantry::Result<()> = tx
                    .savepoint(|sp| async move {
                        Tag::query(&sp).create(tag("taken")).await?;
                        Ok(())
                    })
                    .await;
                assert!(
                    matches!(duplicate, Err(Error::UniqueViolation { .. })),
                    "{duplicate:?}"
                );
                User::query(&tx)
                    .create(user(&format!("{prefix}-after")))
                    .await?;
                Ok(())
            })
            .await
            .unwrap();
    })
    .await;
}

backend_test!(
    savepoints_keep_and_undo_work_per_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("spa"), t.schema("spb"));
        for tenant in [&a, &b] {
            tenantry::create_schema(&t.registry, tenant, None, false, true)
                .await
                .unwrap();
        }
        if t.backend == Backend::Sqlite {
            // A SQLite transaction holds its file's write lock: the two run one after the other.
            work(t.registry.clone(), a.clone()).await;
            work(t.registry.clone(), b.clone()).await;
        } else {
            tokio::join!(
                work(t.registry.clone(), a.clone()),
                work(t.registry.clone(), b.clone())
            );
        }
        for tenant in [&a, &b] {
            let expected: Vec<String> = ["outer", "kept", "after"]
                .iter()
                .map(|s| format!("{tenant}-{s}"))
                .collect();
            assert_eq!(names(&t.registry, tenant).await, expected, "{tenant}");
        }
    }
);

backend_test!(
    an_abandoned_savepoint_leaves_only_a_rollback,
    |t: common::TestDb| async move {
        let a = t.schema("spa");
        tenantry::create_schema(&t.registry, &a, None, false, true)
            .await
            .unwrap();
        let tx = t.registry.begin_in(&a).await.unwrap();
        User::query(&tx)
            .using(&a)
            .create(user("before"))
            .await
            .unwrap();
        let schema = a.clone();
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.savepoint(|sp| async move {
                User::query(&sp).using(&schema).create(user("half")).await?;
                std::future::pending::<()>().await;
                Ok(())
            }),
        )
        .await;
        assert!(cancelled.is_err());
        let after = User::query(&tx).using(&a).create(user("after")).await;
        assert!(
            matches!(after, Err(Error::TransactionAborted { .. })),
            "{after:?}"
        );
        let committed = tx.commit().await;
        assert!(
            matches!(committed, Err(Error::TransactionAborted { .. })),
            "{committed:?}"
        );
        assert!(names(&t.registry, &a).await.is_empty());
        // A savepoint cannot end the transaction it runs in.
        let tx = t.registry.begin_in(&a).await.unwrap();
        let ended = tx.savepoint(|sp| async move { sp.commit().await }).await;
        assert!(matches!(ended, Err(Error::Unsupported { .. })), "{ended:?}");
        tx.rollback().await.unwrap();
    }
);
