//! Schema management: create_schema, drop_schema, registry.schema(), and where rows go.
mod common;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, drop_schema, tenant_scope, with_tenant, Database, Error, Model,
    Registry,
};

backend_test!(create_schema_defaults, |t: common::TestDb| async move {
    let r = &t.registry;
    let a = t.schema("a");
    assert!(!r.schema().exists(&a).await.unwrap());

    // Edgy's defaults: if_not_exists = false, should_create_tables = false.
    create_schema(r, &a, None, false, false).await.unwrap();
    assert!(r.schema().exists(&a).await.unwrap());
    assert!(r.schema().list().await.unwrap().contains(&a));
    assert!(matches!(
        create_schema(r, &a, None, false, false).await,
        Err(Error::SchemaAlreadyExists { .. })
    ));
    assert!(matches!(
        create_schema(r, &a, None, false, true).await,
        Err(Error::SchemaAlreadyExists { .. })
    ));
    // No tables were made: querying a model there is an error (but not a missing schema).
    match User::query(r).using(&a).count().await {
        Err(Error::SchemaNotFound { .. }) | Ok(_) => panic!("expected a missing-table error"),
        Err(_) => {}
    }
    // if_not_exists with tables fills the existing schema in.
    create_schema(r, &a, None, true, true).await.unwrap();
    assert_eq!(User::query(r).using(&a).count().await.unwrap(), 0);
    create_schema(r, &a, None, true, true).await.unwrap();
});

backend_test!(
    create_schema_models_subset,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let b = t.schema("b");
        create_schema(r, &b, Some(&[User::META]), false, true)
            .await
            .unwrap();
        User::query(r).using(&b).create(user("only")).await.unwrap();
        assert_eq!(User::query(r).using(&b).count().await.unwrap(), 1);
        assert!(Product::query(r).using(&b).count().await.is_err());
        assert!(Tag::query(r).using(&b).count().await.is_err());

        // None: every tenant-capable model, but not the shared Plan.
        let c = t.schema("c");
        create_schema(r, &c, None, false, true).await.unwrap();
        for result in [
            User::query(r).using(&c).count().await,
            Product::query(r).using(&c).count().await,
            EveryType::query(r).using(&c).count().await,
            Tag::query(r).using(&c).count().await,
            Subscription::query(r).using(&c).count().await,
        ] {
            assert_eq!(result.unwrap(), 0);
        }
        assert!(Plan::query(r).using(&c).count().await.is_err());
    }
);

backend_test!(drop_schema_rules, |t: common::TestDb| async move {
    let r = &t.registry;
    let empty = t.schema("empty");
    let full = t.schema("full");
    create_schema(r, &empty, None, false, false).await.unwrap();
    create_schema(r, &full, None, false, true).await.unwrap();
    User::query(r).using(&full).create(user("x")).await.unwrap();
    let listed = r.schema().list().await.unwrap();
    assert!(listed.contains(&empty) && listed.contains(&full));
    assert!(listed.windows(2).all(|w| w[0] <= w[1]), "list is sorted");

    // Non-cascade drop of a schema with tables is refused and changes nothing.
    assert!(matches!(
        drop_schema(r, &full, false, false).await,
        Err(Error::SchemaNotEmpty { .. })
    ));
    assert!(r.schema().exists(&full).await.unwrap());
    assert_eq!(User::query(r).using(&full).count().await.unwrap(), 1);

    // Non-cascade drop of an empty schema works.
    drop_schema(r, &empty, false, false).await.unwrap();
    assert!(!r.schema().exists(&empty).await.unwrap());

    drop_schema(r, &full, true, false).await.unwrap();
    assert!(!r.schema().exists(&full).await.unwrap());
    let listed = r.schema().list().await.unwrap();
    assert!(!listed.contains(&empty) && !listed.contains(&full));

    // Missing: an error unless if_exists.
    assert!(matches!(
        drop_schema(r, &full, true, false).await,
        Err(Error::SchemaNotFound { .. })
    ));
    assert!(matches!(
        drop_schema(r, &full, false, false).await,
        Err(Error::SchemaNotFound { .. })
    ));
    drop_schema(r, &full, true, true).await.unwrap();
    drop_schema(r, &full, false, true).await.unwrap();

    // Queries on the dropped schema report it missing; it can be created again, empty.
    assert!(matches!(
        User::query(r).using(&full).count().await,
        Err(Error::SchemaNotFound { .. })
    ));
    create_schema(r, &full, None, false, true).await.unwrap();
    assert_eq!(User::query(r).using(&full).count().await.unwrap(), 0);
});

backend_test!(
    missing_schema_is_an_error_for_that_query_only,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let good = t.schema("good");
        let missing = t.schema("missing");
        create_schema(r, &good, None, false, true).await.unwrap();
        User::query(r).using(&good).create(user("g")).await.unwrap();
        User::query(r).create(user("d")).await.unwrap();

        let not_found = |result: Result<(), Error>, what: &str| match result {
            Err(Error::SchemaNotFound { schema }) => assert_eq!(schema, missing.as_str(), "{what}"),
            other => panic!("{what}: expected SchemaNotFound, got {other:?}"),
        };
        for _ in 0..3 {
            not_found(
                User::query(r).using(&missing).count().await.map(drop),
                "count",
            );
            not_found(User::query(r).using(&missing).all().await.map(drop), "all");
            not_found(
                User::query(r)
                    .using(&missing)
                    .create(user("m"))
                    .await
                    .map(drop),
                "create",
            );
            not_found(
                User::query(r)
                    .using(&missing)
                    .update([User::name().set("m")])
                    .await
                    .map(drop),
                "update",
            );
            not_found(
                User::query(r).using(&missing).delete().await.map(drop),
                "delete",
            );
            not_found(
                with_tenant(Some(missing.clone()), User::query(r).count())
                    .await
                    .map(drop),
                "with_tenant",
            );
            // The next query on a good schema works.
            assert_eq!(User::query(r).using(&good).count().await.unwrap(), 1);
            assert_eq!(User::query(r).count().await.unwrap(), 1);
        }
        assert!(!r.schema().exists(&missing).await.unwrap());
        assert!(!r.schema().list().await.unwrap().contains(&missing));
    }
);

backend_test!(
    foreign_keys_stay_in_their_schema,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let a = t.schema("a");
        let b = t.schema("b");
        for (schema, products) in [(&a, 3), (&b, 2)] {
            create_schema(r, schema, None, false, true).await.unwrap();
            let owner = User::query(r)
                .using(schema)
                .create(user("owner"))
                .await
                .unwrap();
            for i in 0..products {
                Product::query(r)
                    .using(schema)
                    .create(product(&format!("p{i}"), Some(&owner)))
                    .await
                    .unwrap();
            }
        }
        let owner_a = User::query(r)
            .using(&a)
            .get(User::name().eq("owner"))
            .await
            .unwrap();
        let owner_b = User::query(r)
            .using(&b)
            .get(User::name().eq("owner"))
            .await
            .unwrap();
        assert_eq!(owner_a.id, owner_b.id);
        // The products reverse relation stays in the owner's schema.
        assert_eq!(owner_a.related(Product::user()).count().await.unwrap(), 3);
        assert_eq!(owner_b.related(Product::user()).count().await.unwrap(), 2);

        // A product in A cannot point at a user that exists only in B.
        let lone = User::query(r)
            .using(&b)
            .create(user("only_b"))
            .await
            .unwrap();
        let result = Product::query(r)
            .using(&a)
            .create(product("dangling", Some(&lone)))
            .await;
        assert!(
            matches!(result, Err(Error::ForeignKeyViolation { .. })),
            "{result:?}"
        );

        // Deleting A's user (on_delete set_null) touches A's products only.
        owner_a.delete().await.unwrap();
        let in_a = Product::query(r).using(&a).all().await.unwrap();
        assert_eq!(in_a.len(), 3);
        assert!(in_a.iter().all(|p| p.user.is_none()));
        let in_b = Product::query(r).using(&b).all().await.unwrap();
        assert_eq!(in_b.len(), 2);
        assert!(in_b
            .iter()
            .all(|p| p.user.as_ref().map(|u| *u.key()) == Some(owner_b.id)));
        assert_eq!(User::query(r).using(&b).count().await.unwrap(), 2);
    }
);

backend_test!(
    instances_remember_their_schema,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let a = t.schema("a");
        let b = t.schema("b");
        for (schema, label, products) in [(&a, "alice", 2), (&b, "bob", 5)] {
            create_schema(r, schema, None, false, true).await.unwrap();
            let owner = User::query(r)
                .using(schema)
                .create(user(label))
                .await
                .unwrap();
            let rows: Vec<Product> = (0..products)
                .map(|i| product(&format!("{label}{i}"), Some(&owner)))
                .collect();
            Product::query(r)
                .using(schema)
                .bulk_create(rows)
                .await
                .unwrap();
        }
        let mut from_a = User::query(r)
            .using(&a)
            .get(User::name().eq("alice"))
            .await
            .unwrap();
        let key = from_a.id;
        // Another handle on A's row, to change it behind from_a's back.
        User::query(r)
            .using(&a)
            .filter(User::id().eq(key))
            .update([User::email().set("changed@example.com")])
            .await
            .unwrap();

        let a_ref = &a;
        let from_a = with_tenant(Some(b.clone()), async move {
            let a = a_ref;
            // refresh reads A.
            from_a.refresh().await.unwrap();
            assert_eq!(from_a.email, "changed@example.com");
            assert_eq!(from_a.name, "alice");
            // related reads A.
            let products = from_a.related(Product::user()).all().await.unwrap();
            assert_eq!(products.len(), 2);
            assert!(products.iter().all(|p| p.name.starts_with("alice")));
            assert!(products.iter().all(|p| p.origin().schema() == Some(a)));
            // fetch from a product goes back to A too.
            let owner = products[0]
                .fetch(products[0].user.as_ref().unwrap())
                .await
                .unwrap();
            assert_eq!(owner.name, "alice");
            // save writes A.
            from_a.name = "alice2".into();
            from_a.save().await.unwrap();
            // Unqualified queries in here still mean B.
            assert_eq!(User::query(r).get_pk(key).await.unwrap().name, "bob");
            from_a
        })
        .await;
        assert_eq!(
            User::query(r).using(&a).get_pk(key).await.unwrap().name,
            "alice2"
        );
        assert_eq!(
            User::query(r).using(&b).get_pk(key).await.unwrap().name,
            "bob"
        );

        // An unsaved instance bound to A saves into A whatever the context.
        let fresh = User::query(r).using(&a).instance(user("carol")).unwrap();
        let b_ref = &b;
        let fresh = tenant_scope(async move {
            activate_schema(b_ref).unwrap();
            let mut fresh = fresh;
            fresh.save().await.unwrap();
            fresh
        })
        .await;
        assert!(User::query(r)
            .using(&a)
            .get(User::name().eq("carol"))
            .await
            .is_ok());
        assert!(User::query(r)
            .using(&b)
            .get(User::name().eq("carol"))
            .await
            .is_err());

        // delete removes from A only.
        with_tenant(Some(b.clone()), async move {
            from_a.delete().await.unwrap();
            fresh.delete().await.unwrap();
        })
        .await;
        assert_eq!(User::query(r).using(&a).count().await.unwrap(), 0);
        assert_eq!(User::query(r).using(&b).count().await.unwrap(), 1);
        assert_eq!(Product::query(r).using(&b).count().await.unwrap(), 5);
    }
);

/// SQLite in memory: schemas are named shared in-memory databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_supports_schemas() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    let r = common::models::register(Registry::new(db));
    r.create_all().await.unwrap();
    let tenant = tenantry::SchemaName::parse("tenant_mem").unwrap();
    assert!(!r.schema().exists(&tenant).await.unwrap());
    create_schema(&r, &tenant, None, false, true).await.unwrap();
    assert!(r.schema().exists(&tenant).await.unwrap());
    assert_eq!(r.schema().list().await.unwrap(), vec![tenant.clone()]);
    User::query(&r)
        .using(&tenant)
        .create(user("mem"))
        .await
        .unwrap();
    User::query(&r)
        .bulk_create([user("a"), user("b")])
        .await
        .unwrap();
    assert_eq!(User::query(&r).using(&tenant).count().await.unwrap(), 1);
    assert_eq!(User::query(&r).count().await.unwrap(), 2);
    let in_tenant = with_tenant(Some(tenant.clone()), User::query(&r).all())
        .await
        .unwrap();
    assert_eq!(in_tenant.len(), 1);
    assert_eq!(in_tenant[0].name, "mem");

    // A second in-memory database is a separate world.
    let other =
        Registry::new(Database::connect("sqlite::memory:").await.unwrap()).register::<User>();
    other.create_all().await.unwrap();
    assert!(!other.schema().exists(&tenant).await.unwrap());
    assert_eq!(User::query(&other).count().await.unwrap(), 0);
    other.disconnect().await;

    assert!(matches!(
        drop_schema(&r, &tenant, false, false).await,
        Err(Error::SchemaNotEmpty { .. })
    ));
    drop_schema(&r, &tenant, true, false).await.unwrap();
    assert!(!r.schema().exists(&tenant).await.unwrap());
    assert!(matches!(
        User::query(&r).using(&tenant).count().await,
        Err(Error::SchemaNotFound { .. })
    ));
    r.disconnect().await;
}
