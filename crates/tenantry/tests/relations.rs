//! Lookups across foreign keys (`Product::user().to(User::name())`), reverse lookups
//! (`having`) and orderings across relations, inside the tenant: two tenants hold different
//! rows under the same ids and are queried concurrently in one task; each sees only its own.
mod common;

use common::models::*;
use tenantry::{
    create_schema, with_tenant, Backend, Error, Filter, ForeignKey, Model, Registry, SchemaName,
};

#[derive(Model, Debug, Clone, PartialEq)]
struct Team {
    id: i64,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct Member {
    id: i64,
    #[model(max_length = 50)]
    name: String,
    team: ForeignKey<Team>,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct Task {
    id: i64,
    #[model(max_length = 50)]
    title: String,
    member: Option<ForeignKey<Member>>,
}

/// A model pointing at itself.
#[derive(Model, Debug, Clone, PartialEq)]
struct Employee {
    id: i64,
    #[model(max_length = 50)]
    name: String,
    manager: Option<ForeignKey<Employee>>,
}

async fn registry(t: &common::TestDb) -> Registry {
    let registry = t
        .registry
        .clone()
        .register::<Team>()
        .register::<Member>()
        .register::<Task>()
        .register::<Employee>();
    registry.create_all().await.unwrap();
    registry
}

/// Tenant `a`: users ann (1) and ben (2); products lamp-a (ann), desk-a (ben), box-a
/// (nobody). Tenant `b`: user bob (1) and zed (2); products lamp-b (bob), chair-b (zed).
async fn two_tenants(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let (a, b) = (t.schema("rel_a"), t.schema("rel_b"));
    for (s, names, products) in [
        (
            &a,
            ["ann", "ben"],
            vec![("lamp-a", 0), ("desk-a", 1), ("box-a", 9)],
        ),
        (&b, ["bob", "zed"], vec![("lamp-b", 0), ("chair-b", 1)]),
    ] {
        create_schema(r, s, None, false, true).await.unwrap();
        let users = User::query(r)
            .using(s)
            .bulk_create(names.map(user))
            .await
            .unwrap();
        let rows: Vec<Product> = products
            .into_iter()
            .map(|(name, owner)| product(name, users.get(owner)))
            .collect();
        Product::query(r).using(s).bulk_create(rows).await.unwrap();
    }
    (a, b)
}

async fn names(query: tenantry::QuerySet<Product>) -> Vec<String> {
    let mut names: Vec<String> = query
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.into_inner().name)
        .collect();
    names.sort();
    names
}

backend_pool_test!(
    lookups_across_a_foreign_key_stay_in_the_tenant,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        let owner_name = || Product::user().to(User::name());
        for _ in 0..3 {
            // Same ids in both tenants: user 1 is ann in a and bob in b.
            let (in_a, in_b) = tokio::join!(
                with_tenant(
                    Some(a.clone()),
                    names(Product::query(r).filter(owner_name().startswith("b")))
                ),
                with_tenant(
                    Some(b.clone()),
                    names(Product::query(r).filter(owner_name().startswith("b")))
                )
            );
            assert_eq!(in_a, ["desk-a"]);
            assert_eq!(in_b, ["lamp-b"]);
        }
        // exclude keeps the product that has no owner.
        let not_ann = names(Product::query(r).using(&a).exclude(owner_name().eq("ann"))).await;
        assert_eq!(not_ann, ["box-a", "desk-a"]);
        // Combined with the product's own columns, and counted, aggregated, deleted.
        let q = || {
            Product::query(r)
                .using(&b)
                .filter(owner_name().icontains("O") | Product::name().eq("chair-b"))
        };
        assert_eq!(q().count().await.unwrap(), 2);
        assert_eq!(q().aggregate(Product::id().count()).await.unwrap(), 2);
        assert_eq!(
            Product::query(r)
                .using(&b)
                .filter(owner_name().eq("zed"))
                .delete()
                .await
                .unwrap(),
            1
        );
        assert_eq!(names(Product::query(r).using(&b)).await, ["lamp-b"]);
        assert_eq!(names(Product::query(r).using(&a)).await.len(), 3);
    }
);

backend_test!(
    reverse_lookups_and_orderings_across_relations,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        // Users having a product whose name starts with "lamp": ann in a, bob in b.
        let having_lamp = || Product::user().having(Product::name().startswith("lamp"));
        let users = |s: SchemaName| async move {
            User::query(r)
                .using(&s)
                .filter(having_lamp())
                .values_list(User::name())
                .await
                .unwrap()
        };
        let (in_a, in_b) = tokio::join!(users(a.clone()), users(b.clone()));
        assert_eq!(in_a, ["ann"]);
        assert_eq!(in_b, ["bob"]);
        // Negated: users with no lamp (the product without owner is no user's).
        let no_lamp = User::query(r)
            .using(&a)
            .exclude(having_lamp())
            .values_list(User::name())
            .await
            .unwrap();
        assert_eq!(no_lamp, ["ben"]);
        // Products ordered by their owner's name, descending; no owner sorts as NULL.
        let ordered: Vec<String> = Product::query(r)
            .using(&b)
            .order_by([Product::user().to(User::name()).desc()])
            .values_list(Product::name())
            .await
            .unwrap();
        assert_eq!(ordered, ["chair-b", "lamp-b"]);
        let ordered: Vec<String> = Product::query(r)
            .using(&a)
            .filter(Product::user().isnull(false))
            .order_by([Product::user().to(User::name()).asc()])
            .values_list(Product::name())
            .await
            .unwrap();
        assert_eq!(ordered, ["lamp-a", "desk-a"]);
    }
);

backend_test!(
    lookups_two_relations_deep_and_through_a_model_pointing_at_itself,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let s = t.schema("rel_deep");
        create_schema(r, &s, None, false, true).await.unwrap();
        let teams = Team::query(r)
            .using(&s)
            .bulk_create(["red", "blue"].map(|n| Team {
                id: 0,
                name: n.into(),
            }))
            .await
            .unwrap();
        let members = Member::query(r)
            .using(&s)
            .bulk_create([("mia", 0), ("max", 1)].map(|(n, team)| Member {
                id: 0,
                name: n.into(),
                team: ForeignKey::from(&teams[team]),
            }))
            .await
            .unwrap();
        Task::query(r)
            .using(&s)
            .bulk_create(
                [("t1", Some(0)), ("t2", Some(1)), ("t3", None)].map(|(n, m)| Task {
                    id: 0,
                    title: n.into(),
                    member: m.map(|m: usize| ForeignKey::from(&members[m])),
                }),
            )
            .await
            .unwrap();
        let team_name = || Task::member().to(Member::team()).to(Team::name());
        let red = Task::query(r)
            .using(&s)
            .filter(team_name().eq("red"))
            .values_list(Task::title())
            .await
            .unwrap();
        assert_eq!(red, ["t1"]);
        let by_team = Task::query(r)
            .using(&s)
            .filter(Task::member().isnull(false))
            .order_by([team_name().asc()])
            .values_list(Task::title())
            .await
            .unwrap();
        assert_eq!(by_team, ["t2", "t1"]);
        // A self-reference: employees whose manager is "boss", ordered by manager's name.
        let boss = Employee::query(r)
            .using(&s)
            .create(Employee {
                id: 0,
                name: "boss".into(),
                manager: None,
            })
            .await
            .unwrap();
        let lead = Employee::query(r)
            .using(&s)
            .create(Employee {
                id: 0,
                name: "lead".into(),
                manager: Some(ForeignKey::from(&boss)),
            })
            .await
            .unwrap();
        Employee::query(r)
            .using(&s)
            .bulk_create([("dev", &lead), ("ops", &boss)].map(|(n, m)| Employee {
                id: 0,
                name: n.into(),
                manager: Some(ForeignKey::from(m)),
            }))
            .await
            .unwrap();
        let managed_by_boss = Employee::query(r)
            .using(&s)
            .filter(Employee::manager().to(Employee::name()).eq("boss"))
            .order_by([Employee::name().asc()])
            .values_list(Employee::name())
            .await
            .unwrap();
        assert_eq!(managed_by_boss, ["lead", "ops"]);
        let by_manager = Employee::query(r)
            .using(&s)
            .filter(Employee::manager().isnull(false))
            .order_by([
                Employee::manager().to(Employee::name()).desc(),
                Employee::name().asc(),
            ])
            .values_list(Employee::name())
            .await
            .unwrap();
        assert_eq!(by_manager, ["dev", "lead", "ops"]);
    }
);

backend_test!(
    lookups_that_cannot_be_made_are_typed_errors,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let s = t.schema("rel_bad");
        create_schema(r, &s, None, false, true).await.unwrap();
        let invalid = |result: tenantry::Result<u64>| {
            assert!(
                matches!(result, Err(Error::InvalidRelation { .. })),
                "{result:?}"
            );
        };
        // Not a foreign key; a foreign key to another model; built on another model.
        invalid(
            Product::query(r)
                .using(&s)
                .filter(Product::name().to(User::name()).eq("x"))
                .count()
                .await,
        );
        invalid(
            Product::query(r)
                .using(&s)
                .filter(Product::user().to(Team::name()).eq("x"))
                .count()
                .await,
        );
        invalid(
            User::query(r)
                .using(&s)
                .filter(Product::user().to(User::name()).eq("x"))
                .count()
                .await,
        );
        invalid(
            Product::query(r)
                .using(&s)
                .filter(Product::user().having(User::name().eq("x")))
                .count()
                .await,
        );
        // A tenant model to a shared one: the shared schema's rows (on SQLite, the main
        // file attached to the tenant's).
        let gold = Plan::query(r)
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        Subscription::query(r)
            .using(&s)
            .create(Subscription {
                id: 0,
                plan: ForeignKey::from(&gold),
                note: "n".into(),
            })
            .await
            .unwrap();
        let on_gold = Subscription::query(r)
            .using(&s)
            .filter(Subscription::plan().to(Plan::title()).eq("gold"))
            .count()
            .await;
        assert_eq!(on_gold.unwrap(), 1);
        // From a shared model into tenant rows: no one tenant's, refused.
        let plans = Plan::query(r)
            .filter(Subscription::plan().having(Subscription::note().eq("n")))
            .count()
            .await;
        assert!(
            matches!(plans, Err(Error::InvalidRelation { .. })),
            "{plans:?}"
        );
    }
);

backend_test!(
    subqueries_run_in_the_tenant_of_the_outer_query,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        let owners_of_lamps = || {
            User::query(r)
                .filter(
                    User::id().in_query(
                        Product::query(r)
                            .filter(Product::name().startswith("lamp"))
                            .subquery(Product::user()),
                    ),
                )
                .values_list(User::name())
        };
        let (in_a, in_b) = tokio::join!(
            with_tenant(Some(a.clone()), owners_of_lamps()),
            with_tenant(Some(b.clone()), owners_of_lamps())
        );
        assert_eq!(in_a.unwrap(), ["ann"]);
        assert_eq!(in_b.unwrap(), ["bob"]);
        // EXISTS: true in b (it has a chair), false in a, for every row.
        let chairs =
            || Filter::exists(Product::query(r).filter(Product::name().startswith("chair")));
        let count_with_chairs = |s: SchemaName| async move {
            User::query(r)
                .using(&s)
                .filter(chairs())
                .count()
                .await
                .unwrap()
        };
        assert_eq!(count_with_chairs(a.clone()).await, 0);
        assert_eq!(count_with_chairs(b.clone()).await, 2);
        // The subquery's own using() is refused: it runs in the outer query's schema.
        let own = User::query(r)
            .using(&a)
            .filter(User::id().in_query(Product::query(r).using(&b).subquery(Product::user())))
            .count()
            .await;
        assert!(matches!(own, Err(Error::InvalidArgument { .. })), "{own:?}");
        // A bad name inside the subquery is its own error, before any SQL.
        let bad = User::query(r)
            .using(&a)
            .filter(Filter::exists(Product::query(r).using("Bad-Name")))
            .count()
            .await;
        assert!(
            matches!(bad, Err(Error::InvalidSchemaName { .. })),
            "{bad:?}"
        );
        // LIMIT in a subquery: MySQL refuses it, the others apply it.
        let first_product_owner = User::query(r)
            .using(&a)
            .filter(
                User::id().in_query(
                    Product::query(r)
                        .order_by([Product::id().asc()])
                        .limit(1)
                        .subquery(Product::user()),
                ),
            )
            .values_list(User::name())
            .await;
        if t.backend == Backend::MySql {
            assert!(matches!(
                first_product_owner,
                Err(Error::Unsupported { .. })
            ));
        } else {
            assert_eq!(first_product_owner.unwrap(), ["ann"]);
        }
    }
);
