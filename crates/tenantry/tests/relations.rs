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

/// The product names of `query`, in its own order.
async fn ordered_names(query: tenantry::QuerySet<Product>) -> Vec<String> {
    query.values_list(Product::name()).await.unwrap()
}

backend_pool_test!(
    joined_lookups_under_or_and_not_and_past_the_aliases_stay_in_the_tenant,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        let owner = || Product::user().to(User::name());
        // The shapes: an INNER JOIN under `&`, a LEFT JOIN under `|` and for an ordering,
        // EXISTS for `having`, and a subquery where the rows are locked.
        let sql = |q: tenantry::QuerySet<Product>| q.using(&a).to_sql().unwrap();
        let inner = sql(Product::query(r).filter(owner().eq("ann")));
        assert!(
            inner.contains("INNER JOIN (SELECT") && !inner.contains("WHERE \"tenantry_j1\""),
            "{inner}"
        );
        let left = sql(Product::query(r).filter(owner().eq("ann") | Product::name().eq("box-a")));
        assert!(
            left.contains("LEFT JOIN (SELECT") && left.contains("IS NOT NULL"),
            "{left}"
        );
        let ordered = sql(Product::query(r).order_by([owner().asc()]));
        assert!(
            ordered.contains("LEFT JOIN (SELECT")
                && ordered.contains("ORDER BY")
                && ordered.contains("tenantry_v1"),
            "{ordered}"
        );
        let locked = sql(Product::query(r).filter(owner().eq("ann")).for_update());
        assert!(
            !locked.contains("JOIN") && locked.contains("IN (SELECT"),
            "{locked}"
        );
        let having = User::query(r)
            .using(&a)
            .filter(Product::user().having(Product::name().eq("x")))
            .to_sql()
            .unwrap();
        assert!(having.contains("EXISTS"), "{having}");

        let cases = |s: SchemaName| async move {
            let q = || Product::query(r).using(&s);
            let nine = || {
                Filter::any(
                    ["ann", "ben", "bob", "zed", "x1", "x2", "x3", "x4", "x5"]
                        .map(|n| owner().eq(n)),
                )
            };
            (
                names(q().filter(
                    owner().eq("ann") | owner().eq("bob") | Product::name().startswith("box"),
                ))
                .await,
                names(q().exclude(owner().eq("ann") | owner().eq("bob"))).await,
                names(q().filter(owner().startswith("b") & !owner().eq("zed"))).await,
                // Nine lookups: eight joined, the ninth a subquery; the same answers.
                names(q().filter(nine())).await,
                names(q().exclude(nine())).await,
                names(q().filter(nine() & owner().ne("zed"))).await,
                q().filter(owner().startswith("b")).count().await.unwrap(),
                q().filter(owner().eq("zed")).exists().await.unwrap(),
                // Filtered and ordered through the same relation; nobody's product last
                // ascending on PostgreSQL and first elsewhere, so it is filtered out here.
                ordered_names(q().filter(owner().ne("nobody")).order_by([owner().desc()])).await,
                q().filter(owner().ne("nobody"))
                    .order_by([owner().asc()])
                    .paginate(1)
                    .page(2)
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|p| p.into_inner().name)
                    .collect::<Vec<_>>(),
                q().filter(owner().startswith("b"))
                    .aggregate(Product::id().count())
                    .await
                    .unwrap(),
            )
        };
        for _ in 0..2 {
            let (in_a, in_b) = tokio::join!(cases(a.clone()), cases(b.clone()));
            assert_eq!(in_a.0, ["box-a", "lamp-a"]);
            assert_eq!(in_b.0, ["lamp-b"]);
            assert_eq!(in_a.1, ["box-a", "desk-a"]);
            assert_eq!(in_b.1, ["chair-b"]);
            assert_eq!(in_a.2, ["desk-a"]);
            assert_eq!(in_b.2, ["lamp-b"]);
            assert_eq!(in_a.3, ["desk-a", "lamp-a"]);
            assert_eq!(in_b.3, ["chair-b", "lamp-b"]);
            assert_eq!(in_a.4, ["box-a"]);
            assert!(in_b.4.is_empty(), "{:?}", in_b.4);
            assert_eq!(in_a.5, ["desk-a", "lamp-a"]);
            assert_eq!(in_b.5, ["lamp-b"]);
            assert_eq!((in_a.6, in_b.6), (1, 1));
            assert_eq!((in_a.7, in_b.7), (false, true));
            assert_eq!(in_a.8, ["desk-a", "lamp-a"]);
            assert_eq!(in_b.8, ["chair-b", "lamp-b"]);
            assert_eq!(in_a.9, ["desk-a"]);
            assert_eq!(in_b.9, ["chair-b"]);
            assert_eq!((in_a.10, in_b.10), (1, 1));
        }
        // A locked read through a lookup, in a transaction.
        let tx = r.begin_in(&b).await.unwrap();
        let locked = Product::query(&tx)
            .using(&b)
            .filter(owner().eq("zed"))
            .for_update()
            .values_list(Product::name())
            .await
            .unwrap();
        assert_eq!(locked, ["chair-b"]);
        tx.rollback().await.unwrap();
    }
);

backend_test!(
    reverse_lookups_of_a_model_pointing_at_itself_nest,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = (t.schema("rel_self_a"), t.schema("rel_self_b"));
        // a: boss > lead > dev; b: boss > dev (same ids, another shape).
        for (s, chain) in [
            (&a, &["boss", "lead", "dev"][..]),
            (&b, &["boss", "dev"][..]),
        ] {
            create_schema(r, s, None, false, true).await.unwrap();
            let mut manager: Option<ForeignKey<Employee>> = None;
            for name in chain {
                let made = Employee::query(r)
                    .using(s)
                    .create(Employee {
                        id: 0,
                        name: (*name).into(),
                        manager: manager.clone(),
                    })
                    .await
                    .unwrap();
                manager = Some(ForeignKey::from(&made));
            }
        }
        let managers_of_dev = || Employee::manager().having(Employee::name().eq("dev"));
        let grand = || Employee::manager().having(managers_of_dev());
        let query = |s: SchemaName, f: Filter| async move {
            Employee::query(r)
                .using(&s)
                .filter(f)
                .order_by([Employee::name().asc()])
                .values_list(Employee::name())
                .await
                .unwrap()
        };
        let (a1, b1, a2, b2) = tokio::join!(
            query(a.clone(), managers_of_dev()),
            query(b.clone(), managers_of_dev()),
            query(a.clone(), grand()),
            query(b.clone(), grand()),
        );
        assert_eq!(a1, ["lead"]);
        assert_eq!(b1, ["boss"]);
        assert_eq!(a2, ["boss"]);
        assert!(b2.is_empty(), "{b2:?}");
        // Having combined with a forward lookup inside it: managers of someone whose own
        // manager is named "boss".
        let f = Employee::manager().having(Employee::manager().to(Employee::name()).eq("boss"));
        assert_eq!(query(a.clone(), f.clone()).await, ["boss"]);
        assert_eq!(query(b.clone(), f).await, ["boss"]);
        // Nested past MAX_HOPS: a typed error, no SQL.
        let deep = (0..5).fold(Employee::name().eq("dev"), |f, _| {
            Employee::manager().having(f)
        });
        let result = Employee::query(r).using(&a).filter(deep).count().await;
        assert!(
            matches!(result, Err(Error::InvalidRelation { .. })),
            "{result:?}"
        );
    }
);

backend_pool_test!(
    select_related_through_a_joined_lookup_reads_each_tenants_own_parents,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        // (product, owner) pairs: same user ids in both tenants, other names. On SQLite the
        // parents' statement text is kept per number of keys and shared by every tenant.
        let pairs = |s: SchemaName, filter: Filter| async move {
            let mut pairs: Vec<(String, String)> = Product::query(r)
                .using(&s)
                .filter(filter)
                .select_related(Product::user())
                .all()
                .await
                .unwrap()
                .into_iter()
                .map(|p| {
                    let owner = p
                        .user
                        .as_ref()
                        .and_then(|fk| fk.get())
                        .map(|u| u.name.clone());
                    (p.into_inner().name, owner.unwrap_or_default())
                })
                .collect();
            pairs.sort();
            pairs
        };
        let owner = || Product::user().to(User::name());
        for _ in 0..3 {
            let (one_a, one_b, two_a, two_b) = tokio::join!(
                pairs(a.clone(), owner().eq("ann") | owner().eq("bob")),
                pairs(b.clone(), owner().eq("ann") | owner().eq("bob")),
                pairs(a.clone(), Product::user().isnull(false)),
                pairs(b.clone(), Product::user().isnull(false)),
            );
            assert_eq!(one_a, [("lamp-a".into(), "ann".into())]);
            assert_eq!(one_b, [("lamp-b".into(), "bob".into())]);
            assert_eq!(
                two_a,
                [
                    ("desk-a".into(), "ben".into()),
                    ("lamp-a".into(), "ann".into())
                ]
            );
            assert_eq!(
                two_b,
                [
                    ("chair-b".into(), "zed".into()),
                    ("lamp-b".into(), "bob".into())
                ]
            );
        }
    }
);
