//! Fleet operations: `for_each_tenant` (a result per tenant, bounded concurrency, progress,
//! a panic contained to its tenant), the serializable `TenantContext` of background jobs
//! (queued in one runtime, run in another with its own pools) and `clone_schema` (rows and
//! keys copied; later inserts in either tenant never collide). Two tenants hold different
//! rows under the same ids throughout; each sees only its own.
mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use common::models::*;
use tenantry::{
    create_schema, get_tenant, with_tenant, Backend, Database, Error, FleetProgress, Registry,
    SchemaName, TenantContext,
};

/// Tenant `a`: users ann, ben; products lamp (ann), desk (ben), box. Tenant `b`: user bob;
/// product chair (bob).
async fn two_tenants(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let (a, b) = (t.schema("fl_a"), t.schema("fl_b"));
    for (s, names, products) in [
        (
            &a,
            vec!["ann", "ben"],
            vec![("lamp", Some(0)), ("desk", Some(1)), ("box", None)],
        ),
        (&b, vec!["bob"], vec![("chair", Some(0))]),
    ] {
        create_schema(r, s, None, false, true).await.unwrap();
        let users = User::query(r)
            .using(s)
            .bulk_create(names.into_iter().map(user))
            .await
            .unwrap();
        let rows: Vec<Product> = products
            .into_iter()
            .map(|(name, owner)| product(name, owner.map(|i| &users[i])))
            .collect();
        Product::query(r).using(s).bulk_create(rows).await.unwrap();
    }
    (a, b)
}

/// Every product of the current tenant as (id, name, owner's id), by id.
async fn products(r: &Registry) -> Vec<(i64, String, Option<i64>)> {
    Product::query(r)
        .order_by([Product::id().asc()])
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            let p = p.into_inner();
            (p.id, p.name, p.user.map(|fk| *fk.key()))
        })
        .collect()
}

backend_pool_test!(
    for_each_tenant_runs_the_work_in_each_tenant,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = two_tenants(r, &t).await;
        let seen = Arc::new(Mutex::new(Vec::<FleetProgress>::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let progress = seen.clone();
        let outcomes = r
            .for_each_tenant(2)
            .tenants([a.clone(), b.clone(), a.clone()])
            .on_progress(move |p| progress.lock().unwrap().push(p))
            .run(|tenant| {
                let (running, most) = (running.clone(), most.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(get_tenant(), Some(tenant));
                    let names: Vec<String> = products(r).await.into_iter().map(|p| p.1).collect();
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(names)
                }
            })
            .await
            .unwrap();
        let results: Vec<(SchemaName, Vec<String>)> = outcomes
            .into_iter()
            .map(|o| (o.tenant, o.result.unwrap()))
            .collect();
        let a_names = vec!["lamp".to_string(), "desk".into(), "box".into()];
        assert_eq!(
            results,
            [
                (a.clone(), a_names.clone()),
                (b.clone(), vec!["chair".to_string()]),
                (a.clone(), a_names),
            ]
        );
        assert!(most.load(Ordering::SeqCst) <= 2);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen.last().copied(),
            Some(FleetProgress {
                done: 3,
                failed: 0,
                total: 3
            })
        );
    }
);

backend_test!(
    one_tenants_failure_or_panic_stays_its_own,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = two_tenants(r, &t).await;
        let missing = t.schema("fl_missing");
        let outcomes = r
            .for_each_tenant(3)
            .tenants([a.clone(), b.clone(), missing.clone()])
            .run(|tenant| {
                let b = b.clone();
                async move {
                    if tenant == b {
                        panic!("boom in b");
                    }
                    Product::query(r).count().await
                }
            })
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 3);
        assert_eq!(outcomes[0].result.as_ref().unwrap(), &3);
        assert!(
            matches!(&outcomes[1].result, Err(Error::WorkPanicked { message }) if message == "boom in b"),
            "{:?}",
            outcomes[1].result
        );
        assert!(
            matches!(&outcomes[2].result, Err(Error::SchemaNotFound { .. })),
            "{:?}",
            outcomes[2].result
        );
        let zero = r.for_each_tenant(0).run(|_| async { Ok(()) }).await;
        assert!(
            matches!(zero, Err(Error::InvalidArgument { .. })),
            "{zero:?}"
        );
        // Without a list: every schema of the database (these two, plus none else here).
        let all = r
            .for_each_tenant(4)
            .run(|tenant| async move { Ok(tenant) })
            .await
            .unwrap();
        let mut listed: Vec<SchemaName> = all.into_iter().map(|o| o.result.unwrap()).collect();
        listed.sort();
        assert!(listed.contains(&a) && listed.contains(&b), "{listed:?}");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 1,000 schemas on every backend (run by .ci/run with --ignored)"]
async fn for_each_tenant_over_a_thousand_tenants() {
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        common::run(backend, "fl_1000", |t: common::TestDb| async move {
            let r = &t.registry;
            let tenants: Vec<SchemaName> = (0..1000).map(|i| t.schema(&format!("k{i}"))).collect();
            for s in &tenants {
                create_schema(r, s, None, false, false).await.unwrap();
            }
            let outcomes = r
                .for_each_tenant(8)
                .tenants(tenants.clone())
                .run(|tenant| async move {
                    assert_eq!(get_tenant().as_ref(), Some(&tenant));
                    r.schema().exists(&tenant).await
                })
                .await
                .unwrap();
            assert_eq!(outcomes.len(), 1000);
            for (outcome, tenant) in outcomes.iter().zip(&tenants) {
                assert_eq!(&outcome.tenant, tenant);
                assert!(outcome.result.as_ref().unwrap(), "{tenant}");
            }
        })
        .await;
    }
}

backend_test!(
    a_job_queued_with_its_context_runs_in_its_tenant_elsewhere,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = two_tenants(r, &t).await;
        // Queued inside each tenant's request: the job is its JSON.
        let queue = |s: SchemaName| {
            with_tenant(Some(s), async {
                serde_json::to_string(&TenantContext::current().unwrap()).unwrap()
            })
        };
        let (job_a, job_b) = tokio::join!(queue(a.clone()), queue(b.clone()));
        assert_eq!(job_a, format!(r#"{{"tenant":"{a}"}}"#));
        // Run by another runtime with pools of its own, as another process would.
        let url = t.url();
        let ran = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let worker =
                    common::models::register(Registry::new(Database::connect(&url).await.unwrap()));
                let run = |job: String| {
                    let worker = worker.clone();
                    async move {
                        let context: TenantContext = serde_json::from_str(&job).unwrap();
                        context.run(products(&worker)).await
                    }
                };
                let found = tokio::join!(run(job_a), run(job_b));
                worker.disconnect().await;
                found
            })
        })
        .join()
        .unwrap();
        let in_a = with_tenant(Some(a.clone()), products(r)).await;
        let in_b = with_tenant(Some(b.clone()), products(r)).await;
        assert_eq!(ran.0, in_a);
        assert_eq!(ran.1, in_b);
        assert_ne!(in_a, in_b);
        // A context naming an invalid schema never deserializes.
        let bad = serde_json::from_str::<TenantContext>(r#"{"tenant":"a\"; DROP SCHEMA x"}"#);
        assert!(bad.is_err());
        let unknown = serde_json::from_str::<TenantContext>(r#"{"tenant":"a","db":"x"}"#);
        assert!(unknown.is_err());
    }
);

backend_pool_test!(
    a_cloned_tenant_has_equal_rows_and_keys_that_never_collide,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = two_tenants(r, &t).await;
        let (a2, b2) = (t.schema("fl_a2"), t.schema("fl_b2"));
        // Two tenants cloned concurrently in one task.
        let schemas = r.schema();
        let (ca, cb) = tokio::join!(schemas.clone_schema(&a, &a2), schemas.clone_schema(&b, &b2));
        ca.unwrap();
        cb.unwrap();
        // Nothing was written anywhere else (the default schema holds no product).
        assert_eq!(Product::query(r).count().await.unwrap(), 0);
        assert_eq!(User::query(r).count().await.unwrap(), 0);
        for (source, clone) in [(&a, &a2), (&b, &b2)] {
            let original = with_tenant(Some(source.clone()), products(r)).await;
            let copied = with_tenant(Some(clone.clone()), products(r)).await;
            assert_eq!(original, copied, "{source} -> {clone}");
            let users = |s: SchemaName| async move {
                User::query(r)
                    .using(&s)
                    .order_by([User::id().asc()])
                    .values_list(User::name())
                    .await
                    .unwrap()
            };
            assert_eq!(users(source.clone()).await, users(clone.clone()).await);
        }
        // 100 inserts into each of a and its clone, interleaved: every key new and distinct.
        let before = with_tenant(Some(a.clone()), products(r)).await;
        let max_before = before.iter().map(|p| p.0).max().unwrap();
        let insert = |s: SchemaName, i: usize| async move {
            Product::query(r)
                .using(&s)
                .create(product(&format!("new-{i}"), None))
                .await
                .unwrap()
                .id
        };
        let mut keys = (Vec::new(), Vec::new());
        for i in 0..100 {
            let (x, y) = tokio::join!(insert(a.clone(), i), insert(a2.clone(), i));
            keys.0.push(x);
            keys.1.push(y);
        }
        for ids in [&keys.0, &keys.1] {
            assert!(ids.iter().all(|&id| id > max_before), "{ids:?}");
            let mut unique = ids.clone();
            unique.dedup();
            assert_eq!(unique.len(), 100);
        }
        // The clone stays apart from its source: b2 has only b's rows.
        assert_eq!(
            with_tenant(Some(b2.clone()), products(r)).await,
            with_tenant(Some(b.clone()), products(r)).await
        );
        assert_eq!(Product::query(r).using(&a).count().await.unwrap(), 103);
        assert_eq!(Product::query(r).using(&a2).count().await.unwrap(), 103);
        // Bad input.
        let missing = r
            .schema()
            .clone_schema(&t.schema("fl_none"), &t.schema("fl_x"))
            .await;
        assert!(
            matches!(missing, Err(Error::SchemaNotFound { .. })),
            "{missing:?}"
        );
        assert!(!r.schema().exists(&t.schema("fl_x")).await.unwrap());
        let existing = r.schema().clone_schema(&a, &b).await;
        assert!(
            matches!(existing, Err(Error::SchemaAlreadyExists { .. })),
            "{existing:?}"
        );
        assert_eq!(Product::query(r).using(&b).count().await.unwrap(), 1);
        let itself = r.schema().clone_schema(&a, &a).await;
        assert!(
            matches!(itself, Err(Error::InvalidArgument { .. })),
            "{itself:?}"
        );
    }
);
