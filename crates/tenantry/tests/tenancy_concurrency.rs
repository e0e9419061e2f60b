//! The tenant context is task-local: concurrent tasks for different tenants never mix.
mod common;

use std::sync::Arc;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, deactivate_schema, get_tenant, set_tenant, spawn_with_tenant,
    with_tenant, Error, Model, Registry, SchemaName,
};
use tokio::sync::Barrier;

const TENANTS: usize = 50;
const TASKS: usize = 200;
const QUERIES_PER_TASK: usize = 3;

/// 50 tenant schemas; tenant `i` holds `i + 1` users.
async fn tenants(t: &common::TestDb) -> Vec<SchemaName> {
    let r = &t.registry;
    let mut schemas = Vec::new();
    for i in 0..TENANTS {
        let schema = t.schema(&format!("c{i}"));
        create_schema(r, &schema, Some(&[User::META]), false, true)
            .await
            .unwrap();
        User::query(r)
            .using(&schema)
            .bulk_create((0..=i).map(|k| user(&format!("u{i}_{k}"))))
            .await
            .unwrap();
        schemas.push(schema);
    }
    // The default schema holds a count no tenant has.
    User::query(r)
        .bulk_create((0..TENANTS + 7).map(|k| user(&format!("d{k}"))))
        .await
        .unwrap();
    schemas
}

/// Counts the current tenant's users a few times, yielding in between; returns the number
/// of wrong answers.
async fn count_wrong(r: Registry, expected: u64) -> usize {
    let mut wrong = 0;
    for _ in 0..QUERIES_PER_TASK {
        tokio::task::yield_now().await;
        let count = User::query(&r).count().await.unwrap();
        tokio::task::yield_now().await;
        let rows = User::query(&r).all().await.unwrap();
        if count != expected || rows.len() as u64 != expected {
            wrong += 1;
        }
    }
    wrong
}

backend_test!(
    tasks_in_with_tenant_never_mix,
    |t: common::TestDb| async move {
        let schemas = tenants(&t).await;
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let i = task % TENANTS;
            let (r, barrier, schema) = (t.registry.clone(), barrier.clone(), schemas[i].clone());
            handles.push(tokio::spawn(with_tenant(Some(schema), async move {
                barrier.wait().await;
                count_wrong(r, i as u64 + 1).await
            })));
        }
        let mut wrong = 0;
        for handle in handles {
            wrong += handle.await.unwrap();
        }
        assert_eq!(
            wrong,
            0,
            "{wrong} of {} answers came from the wrong tenant",
            TASKS * QUERIES_PER_TASK
        );
    }
);

backend_test!(
    spawn_with_tenant_carries_the_tenant,
    |t: common::TestDb| async move {
        let schemas = tenants(&t).await;
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let i = task % TENANTS;
            let (r, barrier, schema) = (t.registry.clone(), barrier.clone(), schemas[i].clone());
            // The outer task runs in the tenant's scope; the inner one, which does the work,
            // is spawned from it with the helper.
            handles.push(tokio::spawn(with_tenant(
                Some(schema.clone()),
                async move {
                    spawn_with_tenant(async move {
                        assert_eq!(get_tenant(), Some(schema));
                        barrier.wait().await;
                        count_wrong(r, i as u64 + 1).await
                    })
                    .await
                    .unwrap()
                },
            )));
        }
        let mut wrong = 0;
        for handle in handles {
            wrong += handle.await.unwrap();
        }
        assert_eq!(
            wrong,
            0,
            "{wrong} of {} answers came from the wrong tenant",
            TASKS * QUERIES_PER_TASK
        );

        // The activated schema is carried too.
        let r = t.registry.clone();
        let count = with_tenant(None, async {
            activate_schema(&schemas[4]).unwrap();
            spawn_with_tenant(async move { User::query(&r).count().await.unwrap() })
                .await
                .unwrap()
        })
        .await;
        assert_eq!(count, 5);
    }
);

backend_test!(
    plain_spawn_does_not_inherit,
    |t: common::TestDb| async move {
        let r = t.registry.clone();
        let schema = t.schema("c0");
        create_schema(&r, &schema, None, false, true).await.unwrap();
        User::query(&r)
            .using(&schema)
            .create(user("tenant"))
            .await
            .unwrap();
        User::query(&r)
            .bulk_create([user("a"), user("b")])
            .await
            .unwrap();

        let (tenant, count) = with_tenant(Some(schema.clone()), async {
            assert_eq!(User::query(&r).count().await.unwrap(), 1);
            let r = r.clone();
            tokio::spawn(async move { (get_tenant(), User::query(&r).count().await.unwrap()) })
                .await
                .unwrap()
        })
        .await;
        assert_eq!(tenant, None);
        assert_eq!(count, 2, "a plain tokio::spawn must run without the tenant");
    }
);

backend_test!(no_scope_is_an_error, |t: common::TestDb| async move {
    let schema = t.schema("c0");
    assert!(matches!(
        set_tenant(Some(schema.clone())),
        Err(Error::NoTenantScope {
            operation: "set_tenant"
        })
    ));
    assert!(matches!(set_tenant(None), Err(Error::NoTenantScope { .. })));
    assert!(matches!(
        activate_schema(&schema),
        Err(Error::NoTenantScope {
            operation: "activate_schema"
        })
    ));
    assert!(matches!(
        deactivate_schema(),
        Err(Error::NoTenantScope { .. })
    ));
    assert_eq!(get_tenant(), None);
    // Nothing was switched process-wide: queries still go to the default schema.
    User::query(&t.registry).create(user("x")).await.unwrap();
    assert_eq!(User::query(&t.registry).count().await.unwrap(), 1);
    // Inside a spawned task without a scope, the same.
    let handle = tokio::spawn(async move { set_tenant(Some(schema)) });
    assert!(matches!(
        handle.await.unwrap(),
        Err(Error::NoTenantScope { .. })
    ));
});
