//! Relations across the shared/tenant boundary: a shared row's tenant-capable children are
//! the current tenant's (explicit `using` > tenant > `activate_schema` > default), while a
//! tenant row's foreign key to a shared model resolves to the shared schema.
mod common;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, spawn_with_tenant, tenant_scope, with_tenant, Instance,
    Registry, SchemaName,
};

/// The note of subscription `k` of `label`.
fn note(label: &str, k: usize) -> String {
    format!("{label}-{k}")
}

/// One shared plan "Gold"; its subscriptions: 3 in the default schema, `per_tenant[i]` in
/// tenant `i`. A second plan "Silver" with one subscription in every place, which nothing
/// may touch.
async fn setup(
    t: &common::TestDb,
    labels: &[&str],
    per_tenant: &[usize],
) -> (Instance<Plan>, Vec<SchemaName>) {
    let r = &t.registry;
    let gold = Plan::query(r)
        .create(Plan {
            id: 0,
            title: "Gold".into(),
        })
        .await
        .unwrap();
    let silver = Plan::query(r)
        .create(Plan {
            id: 0,
            title: "Silver".into(),
        })
        .await
        .unwrap();
    let subs = |label: &str, n: usize| {
        let mut subs: Vec<Subscription> = (0..n)
            .map(|k| Subscription {
                id: 0,
                plan: (&gold).into(),
                note: note(label, k),
            })
            .collect();
        subs.push(Subscription {
            id: 0,
            plan: (&silver).into(),
            note: format!("{label}-silver"),
        });
        subs
    };
    Subscription::query(r)
        .bulk_create(subs("default", 3))
        .await
        .unwrap();
    let mut schemas = Vec::new();
    for (label, n) in labels.iter().zip(per_tenant) {
        let schema = t.schema(label);
        create_schema(r, &schema, None, false, true).await.unwrap();
        Subscription::query(r)
            .using(&schema)
            .bulk_create(subs(label, *n))
            .await
            .unwrap();
        schemas.push(schema);
    }
    (gold, schemas)
}

/// The notes of one place's subscriptions, sorted.
async fn notes(r: &Registry, schema: Option<&SchemaName>) -> Vec<String> {
    let q = match schema {
        Some(s) => Subscription::query(r).using(s),
        None => Subscription::query(r),
    };
    let mut notes: Vec<String> = q
        .all()
        .await
        .unwrap()
        .iter()
        .map(|s| s.note.clone())
        .collect();
    notes.sort();
    notes
}

/// Inside tenant `label`'s scope: count, all, update and delete through `gold.related(..)`
/// each see exactly the tenant's `n` subscriptions of Gold. Yields between steps so that
/// sibling futures interleave.
async fn tenant_work(r: Registry, gold: Instance<Plan>, label: String, n: usize) {
    let related = || gold.related(Subscription::plan());
    tokio::task::yield_now().await;
    assert_eq!(related().count().await.unwrap(), n as u64, "{label}: count");
    tokio::task::yield_now().await;
    let mut seen: Vec<String> = related()
        .all()
        .await
        .unwrap()
        .iter()
        .map(|s| s.note.clone())
        .collect();
    seen.sort();
    let mine: Vec<String> = (0..n).map(|k| note(&label, k)).collect();
    assert_eq!(seen, mine, "{label}: all");
    tokio::task::yield_now().await;
    let updated = related()
        .update([Subscription::note().set(format!("{label}-updated"))])
        .await
        .unwrap();
    assert_eq!(updated, n as u64, "{label}: update");
    tokio::task::yield_now().await;
    // The context's schema (the tenant's) holds the updated rows and the untouched Silver one.
    let mut expected = vec![format!("{label}-updated"); n];
    expected.push(format!("{label}-silver"));
    let mut now: Vec<String> = Subscription::query(&r)
        .all()
        .await
        .unwrap()
        .iter()
        .map(|s| s.note.clone())
        .collect();
    now.sort();
    expected.sort();
    assert_eq!(now, expected, "{label}: after update");
    tokio::task::yield_now().await;
    assert_eq!(
        related().delete().await.unwrap(),
        n as u64,
        "{label}: delete"
    );
    assert_eq!(related().count().await.unwrap(), 0, "{label}: after delete");
}

/// After the work: every tenant holds only its Silver subscription; the default schema is
/// untouched.
async fn check_after(r: &Registry, labels: &[&str], schemas: &[SchemaName]) {
    for (label, schema) in labels.iter().zip(schemas) {
        assert_eq!(
            notes(r, Some(schema)).await,
            [format!("{label}-silver")],
            "{label}"
        );
    }
    assert_eq!(
        notes(r, None).await,
        ["default-0", "default-1", "default-2", "default-silver"]
    );
}

backend_test!(
    shared_parent_related_follows_the_tenant_in_join,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let labels = ["ta", "tb"];
        let (gold, schemas) = setup(&t, &labels, &[1, 2]).await;
        tokio::join!(
            with_tenant(
                Some(schemas[0].clone()),
                tenant_work(r.clone(), gold.clone(), "ta".into(), 1)
            ),
            with_tenant(
                Some(schemas[1].clone()),
                tenant_work(r.clone(), gold.clone(), "tb".into(), 2)
            ),
        );
        check_after(r, &labels, &schemas).await;
    }
);

backend_test!(
    shared_parent_related_follows_the_tenant_in_spawned_tasks,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let labels = ["sa", "sb", "sc"];
        let (gold, schemas) = setup(&t, &labels, &[1, 2, 4]).await;
        // The plan is loaded inside a tenant scope: a shared instance's origin is the shared
        // schema whatever the scope, so its children still follow each task's own tenant.
        let gold_in_scope = with_tenant(Some(schemas[0].clone()), async {
            Plan::query(r).get(Plan::title().eq("Gold")).await.unwrap()
        })
        .await;
        assert_eq!(gold_in_scope, gold);
        let a = tokio::spawn(with_tenant(
            Some(schemas[0].clone()),
            tenant_work(r.clone(), gold_in_scope.clone(), "sa".into(), 1),
        ));
        let b = tokio::spawn(with_tenant(
            Some(schemas[1].clone()),
            tenant_work(r.clone(), gold.clone(), "sb".into(), 2),
        ));
        // The handle is awaited below, alongside the other two tasks.
        #[allow(clippy::async_yields_async)]
        let c = with_tenant(Some(schemas[2].clone()), async {
            spawn_with_tenant(tenant_work(r.clone(), gold.clone(), "sc".into(), 4))
        })
        .await;
        a.await.unwrap();
        b.await.unwrap();
        c.await.unwrap();
        check_after(r, &labels, &schemas).await;
    }
);

backend_test!(
    shared_parent_related_precedence,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (gold, schemas) = setup(&t, &["pa", "pb"], &[1, 2]).await;
        let (pa, pb) = (&schemas[0], &schemas[1]);
        let related = || gold.related(Subscription::plan());
        // No scope: the default schema.
        assert_eq!(related().count().await.unwrap(), 3);
        // Tenant, activated schema, explicit using.
        let counts = with_tenant(Some(pa.clone()), async {
            (
                related().count().await.unwrap(),
                related().using(pb).count().await.unwrap(),
            )
        })
        .await;
        assert_eq!(counts, (1, 2));
        let activated = tenant_scope(async {
            activate_schema(pb).unwrap();
            related().count().await.unwrap()
        })
        .await;
        assert_eq!(activated, 2);
        // The QuerySet is lazy: built outside, run inside, it follows the scope it runs in.
        let built_outside = related();
        let inside = with_tenant(Some(pb.clone()), built_outside.count()).await;
        assert_eq!(inside.unwrap(), 2);
        // A shared instance refreshed or saved inside a scope stays in the shared schema.
        with_tenant(Some(pa.clone()), async {
            let mut gold = gold.clone();
            gold.refresh().await.unwrap();
            gold.title = "Gold+".into();
            gold.save().await.unwrap();
        })
        .await;
        assert_eq!(Plan::query(r).get_pk(gold.id).await.unwrap().title, "Gold+");
    }
);

backend_test!(
    tenant_row_fetches_its_shared_plan,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (gold, schemas) = setup(&t, &["fa"], &[2]).await;
        let fa = &schemas[0];
        with_tenant(Some(fa.clone()), async {
            let sub = Subscription::query(r)
                .filter(Subscription::plan().eq(gold.id))
                .first()
                .await
                .unwrap()
                .unwrap();
            assert_eq!(sub.origin().schema(), Some(fa));
            // The foreign key to a shared model resolves to the shared schema.
            let plan = sub.fetch(&sub.plan).await.unwrap();
            assert_eq!(plan.title, "Gold");
            assert_eq!(plan.origin().schema(), None);
            assert_eq!(plan, gold);
            // So does select_related.
            let loaded = Subscription::query(r)
                .select_related(Subscription::plan())
                .all()
                .await
                .unwrap();
            assert_eq!(loaded.len(), 3);
            for sub in &loaded {
                let plan = sub.plan.get().expect("loaded");
                assert_eq!(plan.id, *sub.plan.key());
                assert_eq!(plan.origin().schema(), None);
            }
            // And back from the plan, the tenant's rows.
            assert_eq!(plan.related(Subscription::plan()).count().await.unwrap(), 2);
        })
        .await;
        // Outside the scope the same tenant row still fetches from the shared schema.
        let sub = Subscription::query(r)
            .using(fa)
            .first()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sub.fetch(&sub.plan).await.unwrap().origin().schema(), None);
    }
);
