//! `prefetch_related`: a user's products loaded for every user with one more statement, in
//! the users' tenant; two tenants with the same ids prefetched concurrently in one task each
//! get their own children; 100 parents with 10 children each cost 2 statements, not 101.
mod common;

use std::sync::atomic::Ordering;

use common::models::*;
use tenantry::{create_schema, with_tenant, Backend, Error, Instance, Registry, SchemaName};

/// Tenant `a`: ann (lamp, desk), ben (none). Tenant `b`: bob (chair), zed (cup, pen, mug).
async fn two_tenants(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let (a, b) = (t.schema("pf_a"), t.schema("pf_b"));
    for (s, names, products) in [
        (&a, ["ann", "ben"], vec![("lamp", 0), ("desk", 0)]),
        (
            &b,
            ["bob", "zed"],
            vec![("chair", 0), ("cup", 1), ("pen", 1), ("mug", 1)],
        ),
    ] {
        create_schema(r, s, None, false, true).await.unwrap();
        let users = User::query(r)
            .using(s)
            .bulk_create(names.map(user))
            .await
            .unwrap();
        let rows: Vec<Product> = products
            .into_iter()
            .map(|(name, owner)| product(name, Some(&users[owner])))
            .collect();
        Product::query(r).using(s).bulk_create(rows).await.unwrap();
    }
    (a, b)
}

/// Each user's name with its prefetched products' names.
fn tree(users: &[Instance<User>]) -> Vec<(String, Vec<String>)> {
    users
        .iter()
        .map(|u| {
            let products = u.prefetched(Product::user()).expect("prefetched");
            for p in products {
                assert_eq!(p.origin().schema(), u.origin().schema());
                assert_eq!(p.user.as_ref().map(|fk| *fk.key()), Some(u.id));
            }
            let names = products.iter().map(|p| p.name.clone()).collect();
            (u.name.clone(), names)
        })
        .collect()
}

backend_pool_test!(
    prefetch_attaches_each_tenants_own_children,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = two_tenants(r, &t).await;
        let load = |s: SchemaName| {
            with_tenant(
                Some(s),
                User::query(r)
                    .order_by([User::id().asc()])
                    .prefetch_related(Product::user())
                    .all(),
            )
        };
        for _ in 0..3 {
            let (in_a, in_b) = tokio::join!(load(a.clone()), load(b.clone()));
            assert_eq!(
                tree(&in_a.unwrap()),
                [
                    ("ann".to_string(), vec!["lamp".to_string(), "desk".into()]),
                    ("ben".into(), vec![]),
                ]
            );
            assert_eq!(
                tree(&in_b.unwrap()),
                [
                    ("bob".to_string(), vec!["chair".to_string()]),
                    ("zed".into(), vec!["cup".into(), "pen".into(), "mug".into()]),
                ]
            );
        }
        // Not prefetched: None, and no query.
        let plain = User::query(r).using(&a).all().await.unwrap();
        assert!(plain[0].prefetched(Product::user()).is_none());
        // Inside a transaction: its own uncommitted children.
        let tx = r.begin_in(&a).await.unwrap();
        let ben = User::query(&tx)
            .using(&a)
            .get(User::name().eq("ben"))
            .await
            .unwrap();
        Product::query(&tx)
            .using(&a)
            .create(product("lamp2", Some(&ben)))
            .await
            .unwrap();
        let in_tx = User::query(&tx)
            .using(&a)
            .order_by([User::id().asc()])
            .prefetch_related(Product::user())
            .all()
            .await
            .unwrap();
        assert_eq!(
            tree(&in_tx)[1],
            ("ben".to_string(), vec!["lamp2".to_string()])
        );
        tx.rollback().await.unwrap();
        // A column that is not a foreign key to the parent: a typed error.
        let bad = User::query(r)
            .using(&a)
            .prefetch_related(Product::id())
            .all()
            .await;
        assert!(matches!(bad, Err(Error::InvalidRelation { .. })), "{bad:?}");
    }
);

async fn hundred_parents_two_statements(t: common::TestDb) {
    let r = &t.registry;
    let s = t.schema("pf_count");
    create_schema(r, &s, None, false, true).await.unwrap();
    let users = User::query(r)
        .using(&s)
        .bulk_create((0..100).map(|i| user(&format!("u{i}"))))
        .await
        .unwrap();
    let products: Vec<Product> = users
        .iter()
        .flat_map(|u| (0..10).map(move |i| product(&format!("{}-{i}", u.name), Some(u))))
        .collect();
    Product::query(r)
        .using(&s)
        .bulk_create(products)
        .await
        .unwrap();
    let (count, counter) = common::statements::CountStatements::new();
    let loaded = {
        let _counting = tracing::subscriber::set_default(counter);
        User::query(r)
            .using(&s)
            .prefetch_related(Product::user())
            .all()
            .await
            .unwrap()
    };
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "statements for 100 parents"
    );
    assert_eq!(loaded.len(), 100);
    for user in &loaded {
        let products = user.prefetched(Product::user()).unwrap();
        assert_eq!(products.len(), 10);
        assert!(products
            .iter()
            .all(|p| p.name.starts_with(&format!("{}-", user.name))));
    }
}

// The counting subscriber is this thread's: a current-thread runtime keeps every statement
// of the test on it.
#[tokio::test(flavor = "current_thread")]
async fn prefetch_of_100_parents_is_2_statements_sqlite() {
    common::run(Backend::Sqlite, "pf_count", hundred_parents_two_statements).await;
}

#[tokio::test(flavor = "current_thread")]
async fn prefetch_of_100_parents_is_2_statements_postgres() {
    common::run(
        Backend::Postgres,
        "pf_count",
        hundred_parents_two_statements,
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn prefetch_of_100_parents_is_2_statements_mysql() {
    common::run(Backend::MySql, "pf_count", hundred_parents_two_statements).await;
}
