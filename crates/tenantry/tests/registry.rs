//! Registry: table creation order, model registration, connect/disconnect and extra databases.
mod common;
use common::models::*;
use tenantry::{Error, Model, Registry};

backend_test!(
    create_all_and_drop_all_follow_foreign_keys,
    |t: common::TestDb| async move {
        let r = &t.registry;
        // Rows on both sides of the Product -> User foreign key: dropping the parent first
        // would fail on PostgreSQL and MySQL.
        let alice = User::query(r).create(user("Alice")).await.unwrap();
        Product::query(r)
            .create(product("Lamp", Some(&alice)))
            .await
            .unwrap();
        r.drop_all().await.unwrap();
        assert!(matches!(
            User::query(r).count().await,
            Err(Error::Database(_))
        ));
        assert!(matches!(
            Product::query(r).count().await,
            Err(Error::Database(_))
        ));
        // Dropping what is already gone is fine.
        r.drop_all().await.unwrap();

        r.create_all().await.unwrap();
        // Creating what already exists is fine, too.
        r.create_all().await.unwrap();
        assert_eq!(User::query(r).count().await.unwrap(), 0);
        assert_eq!(Product::query(r).count().await.unwrap(), 0);
        let bob = User::query(r).create(user("Bob")).await.unwrap();
        let lamp = Product::query(r)
            .create(product("Lamp", Some(&bob)))
            .await
            .unwrap();
        assert_eq!(lamp.user.as_ref().unwrap().key(), &bob.id);
        // The recreated tables still carry the foreign key.
        assert!(matches!(
            Product::query(r)
                .create(Product {
                    id: 0,
                    name: "Orphan".into(),
                    user: Some(tenantry::ForeignKey::new(bob.id + 1000)),
                })
                .await,
            Err(Error::ForeignKeyViolation { .. })
        ));
    }
);

backend_test!(
    create_all_orders_children_after_parents,
    |t: common::TestDb| async move {
        // Children registered before their parents: create_all must still create the parents
        // first, drop_all must still drop the children first.
        let db = t.other_database("order").await;
        let registry = Registry::new(db)
            .register::<Subscription>()
            .register::<Product>()
            .register::<User>()
            .register::<Plan>();
        let names: Vec<&str> = registry.models().iter().map(|m| m.name).collect();
        assert_eq!(names, ["Subscription", "Product", "User", "Plan"]);
        registry.create_all().await.unwrap();
        let alice = User::query(&registry).create(user("Alice")).await.unwrap();
        Product::query(&registry)
            .create(product("Lamp", Some(&alice)))
            .await
            .unwrap();
        let plan = Plan::query(&registry)
            .create(Plan {
                id: 0,
                title: "Gold".into(),
            })
            .await
            .unwrap();
        Subscription::query(&registry)
            .create(Subscription {
                id: 0,
                plan: (&plan).into(),
                note: "n".into(),
            })
            .await
            .unwrap();
        registry.drop_all().await.unwrap();
        assert!(User::query(&registry).count().await.is_err());
        assert!(Plan::query(&registry).count().await.is_err());
        registry.create_all().await.unwrap();
        assert_eq!(Subscription::query(&registry).count().await.unwrap(), 0);
        registry.disconnect().await;
    }
);

backend_test!(register_twice_is_harmless, |t: common::TestDb| async move {
    let registry = t
        .registry
        .clone()
        .register::<User>()
        .register::<Product>()
        .register::<User>();
    assert_eq!(registry.models().len(), t.registry.models().len());
    assert_eq!(
        registry
            .models()
            .iter()
            .filter(|m| ***m == *User::META)
            .count(),
        1
    );
    let fresh = Registry::new(t.registry.database().clone())
        .register::<User>()
        .register::<User>();
    assert_eq!(fresh.models().len(), 1);
    registry.create_all().await.unwrap();
    registry.drop_all().await.unwrap();
    registry.create_all().await.unwrap();
    User::query(&registry).create(user("Alice")).await.unwrap();
    assert_eq!(User::query(&registry).count().await.unwrap(), 1);
});

backend_test!(connect_then_disconnect, |t: common::TestDb| async move {
    let r = &t.registry;
    r.connect().await.unwrap();
    User::query(r).create(user("Alice")).await.unwrap();
    r.disconnect().await;
    let error = User::query(r).count().await.unwrap_err();
    assert!(matches!(error, Error::Closed), "{error:?}");
    let error = User::query(r).create(user("Bob")).await.unwrap_err();
    assert!(matches!(error, Error::Closed), "{error:?}");
    // The data is still there for a new connection.
    let again = Registry::new(t.reconnect().await).register::<User>();
    assert_eq!(User::query(&again).count().await.unwrap(), 1);
    again.disconnect().await;
});

backend_test!(
    connect_fails_on_unreachable_server,
    |t: common::TestDb| async move {
        let url = match t.backend {
            tenantry::Backend::Postgres => {
                "postgres://postgres@127.0.0.1:1/nowhere?acquire_timeout=2"
            }
            tenantry::Backend::MySql => "mysql://root@127.0.0.1:1/nowhere?acquire_timeout=2",
            tenantry::Backend::Sqlite => "sqlite:///nonexistent-tenantry-dir/sub/x.sqlite",
        };
        let db = tenantry::Database::connect_lazy(url).await.unwrap();
        let registry = Registry::new(t.registry.database().clone()).extra("down", db);
        let error = registry.connect().await.unwrap_err();
        assert!(matches!(error, Error::Database(_)), "{error:?}");
    }
);

backend_test!(
    extra_database_with_using_with_db,
    |t: common::TestDb| async move {
        let alt = t.other_database("alt").await;
        let r = t.registry.clone().extra("alt", alt);
        assert_eq!(r.extra_names().collect::<Vec<_>>(), ["alt"]);
        r.create_all().await.unwrap();

        User::query(&r).create(user("Default")).await.unwrap();
        let mut in_alt = User::query(&r)
            .using_with_db("alt")
            .create(user("Elsewhere"))
            .await
            .unwrap();
        assert!(in_alt.id > 0);
        assert_eq!(User::query(&r).count().await.unwrap(), 1);
        assert_eq!(
            User::query(&r).using_with_db("alt").count().await.unwrap(),
            1
        );
        assert!(!User::query(&r)
            .filter(User::name().eq("Elsewhere"))
            .exists()
            .await
            .unwrap());
        let found = User::query(&r)
            .using_with_db("alt")
            .get(User::name().eq("Elsewhere"))
            .await
            .unwrap();
        assert_eq!(found.id, in_alt.id);

        // An instance goes back to the database it came from.
        in_alt.name = "Renamed".into();
        in_alt.save().await.unwrap();
        assert!(User::query(&r)
            .using_with_db("alt")
            .filter(User::name().eq("Renamed"))
            .exists()
            .await
            .unwrap());
        assert!(!User::query(&r)
            .filter(User::name().eq("Renamed"))
            .exists()
            .await
            .unwrap());

        // Writes through the other operations too.
        assert_eq!(
            User::query(&r)
                .using_with_db("alt")
                .update([User::is_active().set(true)])
                .await
                .unwrap(),
            1
        );
        assert!(
            !User::query(&r)
                .get(User::name().eq("Default"))
                .await
                .unwrap()
                .is_active
        );
        assert_eq!(
            User::query(&r).using_with_db("alt").delete().await.unwrap(),
            1
        );
        assert_eq!(User::query(&r).count().await.unwrap(), 1);

        // A second declaration of the same name replaces the first.
        let replaced = r.clone().extra("alt", t.registry.database().clone());
        assert_eq!(replaced.extra_names().count(), 1);
        assert_eq!(
            User::query(&replaced)
                .using_with_db("alt")
                .count()
                .await
                .unwrap(),
            1
        );
        r.disconnect().await;
    }
);

backend_test!(unknown_database_name, |t: common::TestDb| async move {
    let r = &t.registry;
    let error = User::query(r)
        .using_with_db("nope")
        .all()
        .await
        .unwrap_err();
    match error {
        Error::UnknownDatabase { name } => assert_eq!(name, "nope"),
        other => panic!("expected UnknownDatabase, got {other:?}"),
    }
    assert!(error_names(
        User::query(r)
            .using_with_db("missing")
            .create(user("A"))
            .await
            .unwrap_err(),
        "missing"
    ));
    assert!(error_names(
        User::query(r)
            .using_with_db("missing")
            .count()
            .await
            .unwrap_err(),
        "missing"
    ));
    assert!(error_names(r.extra_database("other").unwrap_err(), "other"));
    assert!(error_names(
        User::query(r)
            .using_with_db("missing")
            .delete()
            .await
            .unwrap_err(),
        "missing"
    ));
    // Nothing was written.
    assert_eq!(User::query(r).count().await.unwrap(), 0);
    assert!(Error::UnknownDatabase { name: "zz".into() }
        .to_string()
        .contains("\"zz\""));
});

fn error_names(error: Error, expected: &str) -> bool {
    matches!(&error, Error::UnknownDatabase { name } if name == expected)
}
