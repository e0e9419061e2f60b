//! A query run again with other values, in another tenant, or in the default schema reads
//! what it asks for: its statement's text is kept per shape (on PostgreSQL and MySQL per
//! shape and schema) and its values are bound anew (`query/kept.rs`). Two tenants hold
//! different rows under the same ids and run the same shapes concurrently in one task;
//! shapes that differ only in an operator, an IN list's length, a NULL test, a case fold, an
//! ordering's direction, or a LIMIT or OFFSET each read their own answer.
mod common;

use common::models::*;
use tenantry::{create_schema, Registry, SchemaName};

/// Tenant `a`: users ann (1), ben (2); products Lamp-a (ann), desk-a (ben), box-a (nobody).
/// Tenant `b`: users bob (1), zed (2); products Lamp-b (bob), chair-b (zed). The default
/// schema: user dee (1); product Lamp-d (dee).
async fn three_places(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let (a, b) = (t.schema("kept_a"), t.schema("kept_b"));
    for (s, names, products) in [
        (
            Some(&a),
            vec!["ann", "ben"],
            vec![("Lamp-a", 0), ("desk-a", 1), ("box-a", 9)],
        ),
        (
            Some(&b),
            vec!["bob", "zed"],
            vec![("Lamp-b", 0), ("chair-b", 1)],
        ),
        (None, vec!["dee"], vec![("Lamp-d", 0)]),
    ] {
        if let Some(s) = s {
            create_schema(r, s, None, false, true).await.unwrap();
        }
        let users = User::query(r)
            .using_opt(s)
            .bulk_create(names.into_iter().map(user))
            .await
            .unwrap();
        let rows: Vec<Product> = products
            .into_iter()
            .map(|(name, owner)| product(name, users.get(owner)))
            .collect();
        Product::query(r)
            .using_opt(s)
            .bulk_create(rows)
            .await
            .unwrap();
    }
    (a, b)
}

/// A query, what builds it in a place, and its answers in tenant a, tenant b and the
/// default schema.
type Shape = (
    &'static str,
    fn(&Registry, Option<&SchemaName>) -> tenantry::QuerySet<Product>,
    [&'static [&'static str]; 3],
);

/// Each query of `shapes`, in each place, three times, the two tenants concurrently:
/// `(query, [a's answer, b's answer, the default schema's])`.
async fn check(r: &Registry, (a, b): (&SchemaName, &SchemaName), shapes: Vec<Shape>) {
    for round in 0..3 {
        for (what, query, [in_a, in_b, in_default]) in &shapes {
            let (got_a, got_b) = tokio::join!(names(query(r, Some(a))), names(query(r, Some(b))));
            assert_eq!(got_a, *in_a, "{what} in a, round {round}");
            assert_eq!(got_b, *in_b, "{what} in b, round {round}");
            let got = names(query(r, None)).await;
            assert_eq!(
                got, *in_default,
                "{what} in the default schema, round {round}"
            );
        }
    }
}

backend_pool_test!(
    a_shape_run_again_binds_its_own_values_in_every_place,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = three_places(r, &t).await;
        let owner = || Product::user().to(User::name());
        check(
            r,
            (&a, &b),
            vec![
                // The same shape with other values: the join's value and the key.
                (
                    "owner ann, id 1",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::user().to(User::name()).eq("ann"))
                            .filter(Product::id().eq(1))
                    },
                    [&["Lamp-a"], &[], &[]],
                ),
                (
                    "owner bob, id 1",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::user().to(User::name()).eq("bob"))
                            .filter(Product::id().eq(1))
                    },
                    [&[], &["Lamp-b"], &[]],
                ),
                // The tree's values in another order than the statement's: the own
                // column's value first, the joined lookup's bound first.
                (
                    "name then owner",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::name().ne("none"))
                            .filter(Product::user().to(User::name()).ne("ben"))
                            .order_by([Product::id().asc()])
                    },
                    [&["Lamp-a"], &["Lamp-b", "chair-b"], &["Lamp-d"]],
                ),
                (
                    "name then owner, other values",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::name().ne("Lamp-b"))
                            .filter(Product::user().to(User::name()).ne("ann"))
                            .order_by([Product::id().asc()])
                    },
                    [&["desk-a"], &["chair-b"], &["Lamp-d"]],
                ),
                // Lists of one, two and three values.
                (
                    "in 1",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::id().is_in([2]))
                    },
                    [&["desk-a"], &["chair-b"], &[]],
                ),
                (
                    "in 2",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::id().is_in([1, 3]))
                            .order_by([Product::id().desc()])
                    },
                    [&["box-a", "Lamp-a"], &["Lamp-b"], &["Lamp-d"]],
                ),
                (
                    "in 3",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::id().is_in([1, 2, 3]))
                            .order_by([Product::id().desc()])
                    },
                    [
                        &["box-a", "desk-a", "Lamp-a"],
                        &["chair-b", "Lamp-b"],
                        &["Lamp-d"],
                    ],
                ),
                (
                    "in 0",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::id().is_in(Vec::<i64>::new()))
                    },
                    [&[], &[], &[]],
                ),
                // Operators and NULL tests of one column.
                (
                    "id > 1",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::id().gt(1))
                            .order_by([Product::id().asc()])
                    },
                    [&["desk-a", "box-a"], &["chair-b"], &[]],
                ),
                (
                    "id < 2",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::id().lt(2))
                            .order_by([Product::id().asc()])
                    },
                    [&["Lamp-a"], &["Lamp-b"], &["Lamp-d"]],
                ),
                (
                    "no owner",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::user().isnull(true))
                    },
                    [&["box-a"], &[], &[]],
                ),
                (
                    "an owner",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::user().isnull(false))
                            .order_by([Product::id().asc()])
                    },
                    [&["Lamp-a", "desk-a"], &["Lamp-b", "chair-b"], &["Lamp-d"]],
                ),
                // Case: folded or not.
                (
                    "contains lamp",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::name().contains("lamp"))
                    },
                    [&[], &[], &[]],
                ),
                (
                    "icontains lamp",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::name().icontains("lamp"))
                    },
                    [&["Lamp-a"], &["Lamp-b"], &["Lamp-d"]],
                ),
                // Directions, LIMIT and OFFSET.
                (
                    "asc, limit 1",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .order_by([Product::id().asc()])
                            .limit(1)
                    },
                    [&["Lamp-a"], &["Lamp-b"], &["Lamp-d"]],
                ),
                (
                    "desc, limit 1",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .order_by([Product::id().desc()])
                            .limit(1)
                    },
                    [&["box-a"], &["chair-b"], &["Lamp-d"]],
                ),
                (
                    "asc, limit 1 offset 1",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .order_by([Product::id().asc()])
                            .limit(1)
                            .offset(1)
                    },
                    [&["desk-a"], &["chair-b"], &[]],
                ),
                (
                    "asc, offset 2",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .order_by([Product::id().asc()])
                            .offset(2)
                    },
                    [&["box-a"], &[], &[]],
                ),
                // Ordered by the owner's name, across the relation.
                (
                    "by owner desc",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(Product::user().isnull(false))
                            .order_by([Product::user().to(User::name()).desc()])
                    },
                    [&["desk-a", "Lamp-a"], &["chair-b", "Lamp-b"], &["Lamp-d"]],
                ),
                // Or, not, and a lookup under them (a LEFT JOIN).
                (
                    "or and not",
                    |r, s| {
                        Product::query(r)
                            .using_opt(s)
                            .filter(
                                (Product::user().to(User::name()).eq("zed") | Product::id().eq(3))
                                    & !Product::name().eq("none"),
                            )
                            .order_by([Product::id().asc()])
                    },
                    [&["box-a"], &["chair-b"], &[]],
                ),
            ],
        )
        .await;
        // Values equal the first time (nothing can be kept), different the next.
        for (x, y, want) in [(1, 1, 1), (1, 2, 2), (2, 1, 2), (2, 2, 1)] {
            let n = |s: SchemaName| async move {
                Product::query(r)
                    .using(&s)
                    .filter(Product::id().eq(x) | Product::id().eq(y))
                    .all()
                    .await
                    .unwrap()
                    .len()
            };
            let (in_a, in_b) = tokio::join!(n(a.clone()), n(b.clone()));
            assert_eq!((in_a, in_b), (want, want), "id {x} or id {y}");
        }
        // get_pk with select_related after a joined lookup, the shape W9 times.
        for (s, who, key, name) in [(&a, "ben", 2, "desk-a"), (&b, "zed", 2, "chair-b")] {
            for _ in 0..2 {
                let got = Product::query(r)
                    .using(s)
                    .filter(owner().eq(who))
                    .select_related(Product::user())
                    .get_pk(key)
                    .await
                    .unwrap();
                assert_eq!(got.name, name);
                let loaded = got.user.as_ref().and_then(|fk| fk.get()).unwrap();
                assert_eq!(loaded.name, who);
            }
        }
        let missing = Product::query(r)
            .using(&a)
            .filter(owner().eq("zed"))
            .select_related(Product::user())
            .get_pk(2)
            .await;
        assert!(matches!(missing, Err(tenantry::Error::NotFound { .. })));
    }
);
