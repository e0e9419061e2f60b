//! A tenant model joined to a shared model reads the shared rows, on every backend: lookups
//! across the foreign key, orderings, subqueries, raw SQL, `prefetch_many` through a tenant
//! junction and transactions. On SQLite the tenant's file reaches the shared (main) file by
//! attaching it, read-only. Two tenants hold different subscriptions to the same shared
//! plans and are queried concurrently in one task; each sees only its own.
mod common;

use common::models::*;
use tenantry::{
    create_schema, with_tenant, Backend, Error, Filter, ForeignKey, ManyToMany, Model, Registry,
    SchemaName,
};

/// A shared perk, linked to tenant subscriptions through a tenant junction.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared)]
struct Perk {
    id: i64,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct SubscriptionPerk {
    id: i64,
    #[model(on_delete = "cascade")]
    subscription: ForeignKey<Subscription>,
    perk: ForeignKey<Perk>,
}

const PERKS: ManyToMany<SubscriptionPerk, Subscription, Perk> =
    ManyToMany::new(SubscriptionPerk::subscription(), SubscriptionPerk::perk());

async fn registry(t: &common::TestDb) -> Registry {
    let registry = t
        .registry
        .clone()
        .register::<Perk>()
        .register::<SubscriptionPerk>();
    registry.create_all().await.unwrap();
    registry
}

/// Shared plans gold and silver, perks fast and big. Tenant `a`: a1 (gold, perk fast), a2
/// (silver, perks fast and big). Tenant `b`: b1 (gold, perk big).
async fn fill(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let plans = Plan::query(r)
        .bulk_create(["gold", "silver"].map(|title| Plan {
            id: 0,
            title: title.into(),
        }))
        .await
        .unwrap();
    let perks = Perk::query(r)
        .bulk_create(["fast", "big"].map(|name| Perk {
            id: 0,
            name: name.into(),
        }))
        .await
        .unwrap();
    let (a, b) = (t.schema("sj_a"), t.schema("sj_b"));
    for (s, subs) in [
        (&a, vec![("a1", 0, vec![0]), ("a2", 1, vec![0, 1])]),
        (&b, vec![("b1", 0, vec![1])]),
    ] {
        create_schema(r, s, None, false, true).await.unwrap();
        for (note, plan, perk_ids) in subs {
            let sub = Subscription::query(r)
                .using(s)
                .create(Subscription {
                    id: 0,
                    plan: ForeignKey::from(&plans[plan]),
                    note: note.into(),
                })
                .await
                .unwrap();
            let chosen: Vec<_> = perk_ids.iter().map(|&i| &perks[i]).collect();
            PERKS.of(&sub).add(&chosen).await.unwrap();
        }
    }
    (a, b)
}

/// The notes of the tenant's subscriptions on plan `title`, ordered by plan title, then note.
async fn on_plan(r: &Registry, title: &str) -> tenantry::Result<Vec<String>> {
    Subscription::query(r)
        .filter(Subscription::plan().to(Plan::title()).eq(title))
        .values_list(Subscription::note())
        .await
}

backend_pool_test!(
    tenant_rows_join_the_shared_rows_in_each_tenant,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = fill(r, &t).await;
        // Lookups across the foreign key into the shared schema, two tenants in one task.
        let (in_a, in_b) = tokio::join!(
            with_tenant(Some(a.clone()), on_plan(r, "gold")),
            with_tenant(Some(b.clone()), on_plan(r, "gold"))
        );
        assert_eq!(in_a.unwrap(), ["a1"]);
        assert_eq!(in_b.unwrap(), ["b1"]);
        // An ordering across the relation: silver before gold.
        let ordered = with_tenant(
            Some(a.clone()),
            Subscription::query(r)
                .order_by([Subscription::plan().to(Plan::title()).desc()])
                .values_list(Subscription::note()),
        )
        .await
        .unwrap();
        assert_eq!(ordered, ["a2", "a1"]);
        // Subqueries over the shared model, inside the tenant's statement.
        let with_silver = |s: SchemaName| {
            with_tenant(
                Some(s),
                Subscription::query(r)
                    .filter(Filter::exists(
                        Plan::query(r).filter(Plan::title().eq("silver")),
                    ))
                    .filter(Subscription::id().in_query(Plan::query(r).subquery(Plan::id())))
                    .order_by([Subscription::id().asc()])
                    .values_list(Subscription::note()),
            )
        };
        let (in_a, in_b) = tokio::join!(with_silver(a.clone()), with_silver(b.clone()));
        assert_eq!(in_a.unwrap(), ["a1", "a2"]);
        assert_eq!(in_b.unwrap(), ["b1"]);
        // Raw SQL over a tenant table and a shared one.
        let raw = |s: SchemaName| async move {
            let mut rows: Vec<(String, String)> = r
                .raw("SELECT {subscriptions}.note, {plans}.title FROM {subscriptions} JOIN {plans} ON {plans}.id = {subscriptions}.plan_id")
                .using(&s)
                .fetch_as()
                .await
                .unwrap();
            rows.sort();
            rows
        };
        let (in_a, in_b) = tokio::join!(raw(a.clone()), raw(b.clone()));
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(x, y)| (x.to_string(), y.to_string()))
                .collect()
        };
        assert_eq!(in_a, pairs(&[("a1", "gold"), ("a2", "silver")]));
        assert_eq!(in_b, pairs(&[("b1", "gold")]));
    }
);

backend_pool_test!(
    prefetch_many_reaches_shared_rows_through_the_tenants_junction,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = fill(r, &t).await;
        let perks_of = |s: SchemaName| {
            with_tenant(Some(s), async move {
                let subs = Subscription::query(r)
                    .order_by([Subscription::id().asc()])
                    .prefetch_many(PERKS)
                    .all()
                    .await?;
                Ok::<_, Error>(
                    subs.iter()
                        .map(|s| {
                            let perks = s.prefetched_many(PERKS).expect("prefetched");
                            let names: Vec<String> = perks.iter().map(|p| p.name.clone()).collect();
                            (s.note.clone(), names)
                        })
                        .collect::<Vec<_>>(),
                )
            })
        };
        let (in_a, in_b) = tokio::join!(perks_of(a.clone()), perks_of(b.clone()));
        assert_eq!(
            in_a.unwrap(),
            [
                ("a1".to_string(), vec!["fast".to_string()]),
                (
                    "a2".to_string(),
                    vec!["fast".to_string(), "big".to_string()]
                ),
            ]
        );
        assert_eq!(in_b.unwrap(), [("b1".to_string(), vec!["big".to_string()])]);
        // all() reads the owner's links from the shared model's query: on SQLite that is a
        // tenant's file read from the main one, refused with a typed error.
        let b1 = Subscription::query(r).using(&b).get_pk(1).await.unwrap();
        let all = PERKS.of(&b1).all().values_list(Perk::name()).await;
        if t.backend == Backend::Sqlite {
            assert!(matches!(all, Err(Error::Unsupported { .. })), "{all:?}");
        } else {
            assert_eq!(all.unwrap(), ["big"]);
        }
    }
);

backend_test!(
    shared_rows_are_read_fresh_and_inside_tenant_transactions,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = fill(r, &t).await;
        // Warm the tenant's connection (and, on SQLite, its attachment), then change the
        // shared rows: the next statement sees the change.
        assert_eq!(
            with_tenant(Some(a.clone()), on_plan(r, "gold"))
                .await
                .unwrap(),
            ["a1"]
        );
        Plan::query(r)
            .filter(Plan::title().eq("gold"))
            .update([Plan::title().set("platinum".to_string())])
            .await
            .unwrap();
        assert_eq!(
            with_tenant(Some(a.clone()), on_plan(r, "platinum"))
                .await
                .unwrap(),
            ["a1"]
        );
        assert!(with_tenant(Some(a.clone()), on_plan(r, "gold"))
            .await
            .unwrap()
            .is_empty());
        // Inside a transaction in each tenant (on SQLite, in the tenant's file).
        for (s, expected) in [(&a, "a1"), (&b, "b1")] {
            let tx = r.begin_in(s).await.unwrap();
            let notes = Subscription::query(&tx)
                .using(s)
                .filter(Subscription::plan().to(Plan::title()).eq("platinum"))
                .values_list(Subscription::note())
                .await
                .unwrap();
            assert_eq!(notes, [expected]);
            let raw: Vec<(String,)> = tx
                .raw("SELECT {plans}.title FROM {subscriptions} JOIN {plans} ON {plans}.id = {subscriptions}.plan_id WHERE {subscriptions}.note = ?")
                .using(s)
                .bind(expected.to_string())
                .fetch_as()
                .await
                .unwrap();
            assert_eq!(raw, [("platinum".to_string(),)]);
            tx.commit().await.unwrap();
        }
        if t.backend == Backend::Sqlite {
            // The attached main file is read-only: shared rows are written through the
            // shared schema's own connections, never a tenant's.
            let write = r
                .raw("UPDATE {plans} SET title = 'x' WHERE id IN (SELECT plan_id FROM {subscriptions})")
                .using(&a)
                .execute()
                .await;
            assert!(
                matches!(&write, Err(Error::Database(e)) if e.to_string().contains("readonly")),
                "{write:?}"
            );
            assert_eq!(
                Plan::query(r)
                    .filter(Plan::title().eq("x"))
                    .count()
                    .await
                    .unwrap(),
                0
            );
        }
    }
);
