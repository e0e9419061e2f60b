//! The tenant context is task-local: concurrent tasks for different tenants never mix.
mod common;

use std::sync::Arc;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, deactivate_schema, get_tenant, set_tenant, spawn_with_tenant,
    tenant_scope, with_tenant, Error, Model, Registry, SchemaName, TenantScope,
};
use tokio::sync::Barrier;

const TENANTS: usize = 50;
const TASKS: usize = 200;
const QUERIES_PER_TASK: usize = 3;

/// 50 tenant schemas; tenant `i` holds `i + 1` users.
async fn tenants(t: &common::TestDb) -> Vec<SchemaName> {
    make_tenants(t, TENANTS).await
}

/// `n` tenant schemas; tenant `i` holds `i + 1` users named `u{i}_{k}`, the default schema
/// `n + 7` users named `d{k}`.
async fn make_tenants(t: &common::TestDb, n: usize) -> Vec<SchemaName> {
    let r = &t.registry;
    let mut schemas = Vec::new();
    for i in 0..n {
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
        .bulk_create((0..n + 7).map(|k| user(&format!("d{k}"))))
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

/// The tag every row of tenant `i` (or of the default schema) carries.
fn tag(i: Option<usize>) -> String {
    match i {
        Some(i) => format!("u{i}_"),
        None => "d".to_owned(),
    }
}

/// Counts and lists the current scope's users a few times, yielding in between; returns the
/// number of wrong answers (a wrong count, or any row that is not tenant `i`'s).
async fn branch_wrong(r: &Registry, i: Option<usize>, expected: u64) -> usize {
    let tag = tag(i);
    let mut wrong = 0;
    for _ in 0..QUERIES_PER_TASK {
        tokio::task::yield_now().await;
        let count = User::query(r).count().await.unwrap();
        tokio::task::yield_now().await;
        let rows = User::query(r).all().await.unwrap();
        if count != expected
            || rows.len() as u64 != expected
            || rows.iter().any(|u| !u.name.starts_with(&tag))
        {
            wrong += 1;
        }
    }
    wrong
}

fn is_conflict(
    result: &Result<impl std::fmt::Debug, Error>,
    current: &str,
    requested: &str,
) -> bool {
    matches!(result, Err(Error::TenantConflict { current: c, requested: q }) if c == current && q == requested)
}

// Edgy's pattern ported as is: two branches of one task each set "their" tenant. The second
// set_tenant is refused, and the scope fails closed: no branch reads any tenant's rows, and
// nothing is written anywhere.
backend_test!(
    set_tenant_in_sibling_branches_fails_closed,
    |t: common::TestDb| async move {
        let schemas = make_tenants(&t, 2).await;
        let r = &t.registry;
        let (a, b) = (&schemas[0], &schemas[1]);

        let (ra, rb) = tenant_scope(async {
            tokio::join!(
                async {
                    let set = set_tenant(Some(a.clone()));
                    tokio::task::yield_now().await;
                    let count = User::query(r).count().await;
                    let rows = User::query(r).all().await;
                    (set, count, rows)
                },
                async {
                    let set = set_tenant(Some(b.clone()));
                    let count = User::query(r).count().await;
                    let created = User::query(r).create(user("intruder")).await;
                    (set, count, created)
                },
            )
        })
        .await;
        assert!(ra.0.is_ok());
        assert!(is_conflict(&rb.0, a.as_str(), b.as_str()), "{:?}", rb.0);
        assert!(is_conflict(&ra.1, a.as_str(), b.as_str()), "{:?}", ra.1);
        assert!(is_conflict(&ra.2, a.as_str(), b.as_str()), "{:?}", ra.2);
        assert!(is_conflict(&rb.1, a.as_str(), b.as_str()), "{:?}", rb.1);
        assert!(is_conflict(&rb.2, a.as_str(), b.as_str()), "{:?}", rb.2);

        // The same with futures' join, and with the tenant fixed by with_tenant.
        let (ra, rb) = with_tenant(Some(a.clone()), async {
            futures_util::future::join(
                async {
                    tokio::task::yield_now().await;
                    User::query(r).all().await
                },
                async {
                    let set = set_tenant(Some(b.clone()));
                    (set, User::query(r).count().await)
                },
            )
            .await
        })
        .await;
        assert!(is_conflict(&ra, a.as_str(), b.as_str()), "{ra:?}");
        assert!(is_conflict(&rb.0, a.as_str(), b.as_str()));
        assert!(is_conflict(&rb.1, a.as_str(), b.as_str()));

        // Nothing was written, each place still holds its own rows.
        assert_eq!(User::query(r).using(a).count().await.unwrap(), 1);
        assert_eq!(User::query(r).using(b).count().await.unwrap(), 2);
        assert_eq!(User::query(r).count().await.unwrap(), 9);
        assert!(!User::query(r)
            .filter(User::name().eq("intruder"))
            .exists()
            .await
            .unwrap());
    }
);

// Inside one scope the tenant is chosen once; a refused change poisons the scope for good
// (queries, writes, set_tenant, activate_schema, spawned copies), while a new scope inside it
// works.
backend_test!(scope_tenant_is_fixed_once, |t: common::TestDb| async move {
    let schemas = make_tenants(&t, 2).await;
    let r = &t.registry;
    let (a, b) = (&schemas[0], &schemas[1]);

    with_tenant(Some(a.clone()), async {
        // Re-setting the same tenant is fine.
        set_tenant(Some(a.clone())).unwrap();
        assert_eq!(User::query(r).count().await.unwrap(), 1);
        // Another one is a conflict...
        assert!(is_conflict(
            &set_tenant(Some(b.clone())),
            a.as_str(),
            b.as_str()
        ));
        // ...and from then on the scope refuses everything that follows the context.
        assert!(is_conflict(
            &User::query(r).count().await,
            a.as_str(),
            b.as_str()
        ));
        assert!(is_conflict(
            &User::query(r).create(user("x")).await,
            a.as_str(),
            b.as_str()
        ));
        assert!(is_conflict(
            &User::query(r).filter(User::id().gt(0)).delete().await,
            a.as_str(),
            b.as_str()
        ));
        assert!(is_conflict(
            &set_tenant(Some(a.clone())),
            a.as_str(),
            b.as_str()
        ));
        assert!(is_conflict(&activate_schema(b), a.as_str(), b.as_str()));
        let r2 = r.clone();
        let spawned = spawn_with_tenant(async move { User::query(&r2).count().await })
            .await
            .unwrap();
        assert!(is_conflict(&spawned, a.as_str(), b.as_str()));
        // Explicit schemas and shared models do not follow the context.
        assert_eq!(User::query(r).using(b).count().await.unwrap(), 2);
        // A new scope is the way to another tenant.
        assert_eq!(
            with_tenant(Some(b.clone()), User::query(r).count())
                .await
                .unwrap(),
            2
        );
    })
    .await;

    // Clearing a set tenant is a change too.
    tenant_scope(async {
        set_tenant(None).unwrap();
        set_tenant(Some(a.clone())).unwrap();
        assert_eq!(User::query(r).count().await.unwrap(), 1);
        assert!(is_conflict(&set_tenant(None), a.as_str(), "none"));
        assert!(is_conflict(
            &User::query(r).count().await,
            a.as_str(),
            "none"
        ));
    })
    .await;
    // Nothing leaked out of the scopes.
    assert_eq!(User::query(r).count().await.unwrap(), 9);
    assert_eq!(User::query(r).using(a).count().await.unwrap(), 1);
});

// activate_schema: the first schema activated in a scope is the only one it may activate;
// activate → deactivate → activate of that schema works; siblings cannot move each other.
backend_test!(
    activated_schema_is_fixed_once,
    |t: common::TestDb| async move {
        let schemas = make_tenants(&t, 2).await;
        let r = &t.registry;
        let (a, b) = (&schemas[0], &schemas[1]);

        tenant_scope(async {
            activate_schema(a).unwrap();
            assert_eq!(User::query(r).count().await.unwrap(), 1);
            deactivate_schema().unwrap();
            assert_eq!(User::query(r).count().await.unwrap(), 9);
            activate_schema(a).unwrap();
            assert_eq!(User::query(r).count().await.unwrap(), 1);
            deactivate_schema().unwrap();
            // Another schema, even after deactivating, is a conflict that poisons the scope.
            assert!(is_conflict(&activate_schema(b), a.as_str(), b.as_str()));
            assert!(is_conflict(
                &User::query(r).count().await,
                a.as_str(),
                b.as_str()
            ));
            assert!(is_conflict(&deactivate_schema(), a.as_str(), b.as_str()));
        })
        .await;

        let (ra, rb) = tenant_scope(async {
            tokio::join!(
                async {
                    activate_schema(a).unwrap();
                    tokio::task::yield_now().await;
                    User::query(r).all().await
                },
                async {
                    let activated = activate_schema(b);
                    (activated, User::query(r).all().await)
                },
            )
        })
        .await;
        assert!(is_conflict(&ra, a.as_str(), b.as_str()), "{ra:?}");
        assert!(is_conflict(&rb.0, a.as_str(), b.as_str()));
        assert!(is_conflict(&rb.1, a.as_str(), b.as_str()));
    }
);

/// Runs `branch_wrong` for tenant `i` (`None`: the default schema) in its own scope.
fn scoped_branch(
    r: &Registry,
    schemas: &[SchemaName],
    i: Option<usize>,
) -> impl std::future::Future<Output = usize> {
    let r = r.clone();
    let schema = i.map(|i| schemas[i].clone());
    let expected = i.map_or(schemas.len() as u64 + 7, |i| i as u64 + 1);
    with_tenant(schema, async move { branch_wrong(&r, i, expected).await })
}

// The safe pattern: one task serving many tenants at once through join_all, join! and
// select!, each branch in its own with_tenant, yielding between queries, on pools of 8, 2
// and 1 connections. Every branch sees only its tenant's rows.
backend_test!(
    many_tenants_in_one_task_never_mix,
    |t: common::TestDb| async move {
        const N: usize = 24;
        let schemas = make_tenants(&t, N).await;
        let pool_of = |size| {
            let t = t.clone();
            async move { common::models::register(Registry::new(t.reconnect_with(size).await)) }
        };
        let registries = [t.registry.clone(), pool_of(2).await, pool_of(1).await];
        for (pool, r) in ["8", "2", "1"].into_iter().zip(&registries) {
            // join_all over every tenant and the default schema.
            let branches = (0..=N).map(|i| scoped_branch(r, &schemas, (i < N).then_some(i)));
            let wrong: Vec<usize> = futures_util::future::join_all(branches).await;
            assert_eq!(
                wrong.iter().sum::<usize>(),
                0,
                "join_all, pool {pool}: {wrong:?}"
            );

            // join! over three tenants and the default schema.
            let wrong = tokio::join!(
                scoped_branch(r, &schemas, Some(0)),
                scoped_branch(r, &schemas, Some(N - 1)),
                scoped_branch(r, &schemas, None),
                scoped_branch(r, &schemas, Some(7)),
            );
            assert_eq!(wrong, (0, 0, 0, 0), "join!, pool {pool}");

            // select! in a loop, so every branch runs to completion interleaved.
            let mut fa = std::pin::pin!(scoped_branch(r, &schemas, Some(3)));
            let mut fb = std::pin::pin!(scoped_branch(r, &schemas, Some(11)));
            let mut fc = std::pin::pin!(scoped_branch(r, &schemas, None));
            let (mut wa, mut wb, mut wc) = (None, None, None);
            loop {
                tokio::select! {
                    w = &mut fa, if wa.is_none() => wa = Some(w),
                    w = &mut fb, if wb.is_none() => wb = Some(w),
                    w = &mut fc, if wc.is_none() => wc = Some(w),
                    else => break,
                }
            }
            assert_eq!(
                (wa, wb, wc),
                (Some(0), Some(0), Some(0)),
                "select!, pool {pool}"
            );

            // A select! whose loser is dropped mid-way leaves the outer scope alone.
            let outer = TenantScope::new(Some(schemas[5].clone()));
            let won = outer
                .scope(async {
                    let won = tokio::select! {
                        w = scoped_branch(r, &schemas, Some(9)) => w,
                        w = scoped_branch(r, &schemas, Some(10)) => w,
                    };
                    assert_eq!(get_tenant(), Some(schemas[5].clone()));
                    assert_eq!(User::query(r).count().await.unwrap(), 6);
                    won
                })
                .await;
            assert_eq!(won, 0, "select!, pool {pool}");
        }
        for r in &registries[1..] {
            r.disconnect().await;
        }
    }
);
