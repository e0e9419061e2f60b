//! One application per namespace (DESIGN 4.11): on MySQL / MariaDB, where a schema is a
//! server-wide database, tenant schema `s` is the database `<namespace>$<s>` of the
//! application's tenant namespace (by default the URL's database name). Its default database
//! is never a tenant, another application's tenants and unrelated databases are never seen
//! nor dropped, and names share MySQL's 64 characters. PostgreSQL and SQLite keep their
//! schemas inside the database / beside its file already: the same bodies hold there.
mod common;

use common::models::*;
use tenantry::{
    contrib, create_schema, drop_schema, with_tenant, Backend, Database, Error, Registry,
    SchemaName,
};

fn name(s: &str) -> SchemaName {
    SchemaName::parse(s).unwrap()
}

async fn names_in(r: &Registry, schema: &SchemaName) -> Vec<String> {
    let mut names: Vec<String> = User::query(r)
        .using(schema)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name.clone())
        .collect();
    names.sort();
    names
}

/// Whether the server has a database called exactly `name` (MySQL).
async fn server_has_database(db: &Database, name: &str) -> bool {
    let found: Vec<(String,)> =
        sqlx::query_as("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?")
            .bind(name)
            .fetch_all(&mut *db.acquire_mysql().await.unwrap())
            .await
            .unwrap();
    found.iter().any(|(n,)| n == name)
}

backend_test!(
    default_database_is_never_a_tenant,
    |t: common::TestDb| async move {
        let r = &t.registry;
        User::query(r).create(user("shared")).await.unwrap();
        // The test's default database has a valid schema name: on MySQL it is the
        // namespace, and as a schema name it means `<db>$<db>`, not the database itself.
        let default = name(t.database_name());
        assert!(!r.schema().exists(&default).await.unwrap());
        assert!(!r.schema().list().await.unwrap().contains(&default));
        drop_schema(r, &default, true, true).await.unwrap();
        assert!(matches!(
            drop_schema(r, &default, true, false).await,
            Err(Error::SchemaNotFound { .. })
        ));
        assert!(matches!(
            drop_schema(r, &default, false, false).await,
            Err(Error::SchemaNotFound { .. })
        ));
        assert_eq!(User::query(r).count().await.unwrap(), 1);

        // A tenant of that name is a schema of its own, and dropping it leaves the default
        // database alone.
        create_schema(r, &default, None, false, true).await.unwrap();
        assert_eq!(User::query(r).using(&default).count().await.unwrap(), 0);
        User::query(r)
            .using(&default)
            .create(user("tenant"))
            .await
            .unwrap();
        assert_eq!(r.schema().list().await.unwrap(), vec![default.clone()]);
        drop_schema(r, &default, true, false).await.unwrap();
        assert_eq!(User::query(r).count().await.unwrap(), 1);
        assert_eq!(
            User::query(r).all().await.unwrap()[0].name.as_str(),
            "shared"
        );

        // The physical names of tenants (this application's or another's) and the engines'
        // own databases cannot be named at all.
        let physical = [
            format!("{}$x", t.database_name()),
            format!("{}_other$edgy", t.prefix),
            "$edgy".to_owned(),
            "mysql".to_owned(),
            "public".to_owned(),
            "information_schema".to_owned(),
            "main".to_owned(),
        ];
        for n in &physical {
            assert!(
                matches!(
                    drop_schema(r, n.as_str(), true, true).await,
                    Err(Error::InvalidSchemaName { .. })
                ),
                "{n}"
            );
            assert!(matches!(
                User::query(r).using(n.as_str()).count().await,
                Err(Error::InvalidSchemaName { .. })
            ));
        }
        assert_eq!(User::query(r).count().await.unwrap(), 1);
        if t.backend == Backend::MySql {
            assert_eq!(r.database().tenant_namespace(), Some(t.database_name()));
            assert!(server_has_database(r.database(), t.database_name()).await);
        } else {
            assert_eq!(r.database().tenant_namespace(), None);
        }
    }
);

backend_test!(
    two_applications_on_one_server,
    |t: common::TestDb| async move {
        // Two registries on two default databases of one server, each with tenant `edgy`.
        let one = t.registry.clone();
        let two = common::prepare(Registry::new(t.other_database("app2").await)).await;
        let edgy = name("edgy");
        let (a, b) = tokio::join!(
            create_schema(&one, &edgy, None, false, true),
            create_schema(&two, &edgy, None, false, true),
        );
        a.unwrap();
        b.unwrap();

        // Both write concurrently, each in its own tasks, through the tenant context.
        let mut tasks = Vec::new();
        for (registry, label, n) in [(one.clone(), "one", 6), (two.clone(), "two", 4)] {
            for i in 0..n {
                let registry = registry.clone();
                let edgy = edgy.clone();
                tasks.push(tokio::spawn(with_tenant(Some(edgy), async move {
                    User::query(&registry)
                        .create(user(&format!("{label}-{i}")))
                        .await
                        .unwrap();
                })));
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
        let ones = names_in(&one, &edgy).await;
        let twos = names_in(&two, &edgy).await;
        assert_eq!(ones.len(), 6);
        assert!(ones.iter().all(|n| n.starts_with("one-")), "{ones:?}");
        assert_eq!(twos.len(), 4);
        assert!(twos.iter().all(|n| n.starts_with("two-")), "{twos:?}");
        // The shared tables are apart too.
        assert_eq!(User::query(&one).count().await.unwrap(), 0);
        assert_eq!(User::query(&two).count().await.unwrap(), 0);

        // Each lists exactly its own tenants, although the server holds the other's and
        // every other test's.
        assert_eq!(one.schema().list().await.unwrap(), vec![edgy.clone()]);
        assert_eq!(two.schema().list().await.unwrap(), vec![edgy.clone()]);
        let only_one = name("only_one");
        create_schema(&one, &only_one, None, false, false)
            .await
            .unwrap();
        assert_eq!(
            one.schema().list().await.unwrap(),
            vec![edgy.clone(), only_one.clone()]
        );
        assert_eq!(two.schema().list().await.unwrap(), vec![edgy.clone()]);
        assert!(!two.schema().exists(&only_one).await.unwrap());

        // Dropping one application's tenant leaves the other's.
        drop_schema(&one, &edgy, true, false).await.unwrap();
        assert!(!one.schema().exists(&edgy).await.unwrap());
        assert!(two.schema().exists(&edgy).await.unwrap());
        assert_eq!(names_in(&two, &edgy).await.len(), 4);
        assert!(matches!(
            User::query(&one).using(&edgy).count().await,
            Err(Error::SchemaNotFound { .. })
        ));
        if t.backend == Backend::MySql {
            let db = one.database();
            let two_ns = two.database().tenant_namespace().unwrap();
            assert!(server_has_database(db, &format!("{two_ns}$edgy")).await);
            assert!(!server_has_database(db, &format!("{}$edgy", t.database_name())).await);
            assert_ne!(db.tenant_namespace(), two.database().tenant_namespace());
        }
        two.disconnect().await;
    }
);

backend_test!(
    unrelated_database_named_like_a_tenant,
    |t: common::TestDb| async move {
        let r = &t.registry;
        // A database of the server (MySQL, PostgreSQL) or a file beside the test's (SQLite)
        // with the very name of a tenant, holding someone else's rows.
        let tenant = t.schema("edgy");
        let unrelated = Registry::new(t.other_database("edgy").await).register::<User>();
        unrelated.create_all().await.unwrap();
        User::query(&unrelated)
            .create(user("outsider"))
            .await
            .unwrap();

        // Not listed, not seen, and no obstacle to creating the tenant.
        assert!(!r.schema().list().await.unwrap().contains(&tenant));
        assert!(!r.schema().exists(&tenant).await.unwrap());
        assert!(matches!(
            drop_schema(r, &tenant, true, false).await,
            Err(Error::SchemaNotFound { .. })
        ));
        create_schema(r, &tenant, None, false, true).await.unwrap();
        assert_eq!(User::query(r).using(&tenant).count().await.unwrap(), 0);
        User::query(r)
            .using(&tenant)
            .create(user("insider"))
            .await
            .unwrap();
        assert_eq!(r.schema().list().await.unwrap(), vec![tenant.clone()]);

        // Dropping the tenant (twice) leaves the unrelated database and its rows.
        drop_schema(r, &tenant, true, false).await.unwrap();
        drop_schema(r, &tenant, true, true).await.unwrap();
        let outsiders = User::query(&unrelated).all().await.unwrap();
        assert_eq!(outsiders.len(), 1);
        assert_eq!(outsiders[0].name, "outsider");
        if t.backend == Backend::MySql {
            assert!(server_has_database(r.database(), tenant.as_str()).await);
        }
        unrelated.disconnect().await;
    }
);

backend_test!(mysql_name_length_limit, |t: common::TestDb| async move {
    let r = &t.registry;
    // On MySQL the namespace (the test database's name), `$` and the schema name share 64
    // characters; PostgreSQL and SQLite take every valid schema name.
    let room = 64 - t.database_name().len() - 1;
    let fits = name(&"a".repeat(room));
    let over = name(&"b".repeat(room + 1));
    assert!(
        room < 63,
        "the test database's name is too short for this test"
    );

    create_schema(r, &fits, None, false, true).await.unwrap();
    User::query(r).using(&fits).create(user("x")).await.unwrap();
    assert_eq!(User::query(r).using(&fits).count().await.unwrap(), 1);
    assert!(r.schema().list().await.unwrap().contains(&fits));
    if t.backend == Backend::MySql {
        let server = r.database().server_schema_name(&fits).unwrap();
        assert_eq!(server.len(), 64);
        assert!(server_has_database(r.database(), &server).await);
    }
    drop_schema(r, &fits, true, false).await.unwrap();
    // Through contrib's provisioning too.
    let with_tenants = contrib::register(r.clone());
    with_tenants.create_all().await.unwrap();
    contrib::create_tenant(&with_tenants, &fits, "fits")
        .await
        .unwrap();
    assert_eq!(User::query(r).using(&fits).count().await.unwrap(), 0);
    contrib::drop_tenant(&with_tenants, &fits, true)
        .await
        .unwrap();
    assert!(!r.schema().exists(&fits).await.unwrap());

    if t.backend != Backend::MySql {
        create_schema(r, &over, None, false, true).await.unwrap();
        assert_eq!(User::query(r).using(&over).count().await.unwrap(), 0);
        drop_schema(r, &over, true, false).await.unwrap();
        return;
    }

    // One over: refused with the reason, before any SQL. A disconnected handle proves it:
    // any statement would fail there with a closed pool instead.
    let closed = Registry::new(t.reconnect().await).register::<User>();
    closed.disconnect().await;
    let expected_reason = format!(
        "namespace {} chars + 1 + name ≤ 64",
        t.database_name().len()
    );
    for registry in [r, &closed] {
        let refused: Vec<(&str, Result<(), Error>)> = vec![
            (
                "create_schema",
                create_schema(registry, &over, None, true, true).await,
            ),
            (
                "drop_schema",
                drop_schema(registry, &over, true, true).await,
            ),
            ("exists", registry.schema().exists(&over).await.map(drop)),
            (
                "using.count",
                User::query(registry).using(&over).count().await.map(drop),
            ),
            (
                "using.create",
                User::query(registry)
                    .using(&over)
                    .create(user("x"))
                    .await
                    .map(drop),
            ),
            (
                "using.to_sql",
                User::query(registry).using(&over).to_sql().map(drop),
            ),
            (
                "with_tenant.all",
                with_tenant(Some(over.clone()), User::query(registry).all())
                    .await
                    .map(drop),
            ),
            (
                "server_schema_name",
                registry.database().server_schema_name(&over).map(drop),
            ),
            (
                "create_tenant",
                contrib::create_tenant(&contrib::register(registry.clone()), &over, "over")
                    .await
                    .map(drop),
            ),
        ];
        for (what, result) in refused {
            match result {
                Err(Error::InvalidSchemaName { name, reason }) => {
                    assert_eq!(name, over.as_str(), "{what}");
                    assert!(reason.contains(&expected_reason), "{what}: {reason}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
    // Nothing was made, and a clear message reaches the caller.
    assert!(!r.schema().list().await.unwrap().contains(&over));
    assert_eq!(
        contrib::Tenant::query(&with_tenants).count().await.unwrap(),
        0
    );
    let message = create_schema(r, &over, None, true, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("too long for this application's tenant namespace"),
        "{message}"
    );
});

backend_test!(tenant_namespace_setting, |t: common::TestDb| async move {
    let url = t.url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let edgy = name("edgy");

    // Invalid namespaces are refused when the database is built, on every backend.
    for bad in ["", "Upper", "a$b", "a b", "a`b", &"n".repeat(63)] {
        let built = Database::options(&url)
            .tenant_namespace(bad)
            .connect_lazy()
            .await;
        assert!(matches!(built, Err(Error::InvalidUrl { .. })), "{bad:?}");
    }
    assert!(matches!(
        Database::connect_lazy(&format!("{url}{separator}tenant_namespace=a%24b")).await,
        Err(Error::InvalidUrl { .. })
    ));

    // Two handles on the same default database with other namespaces (URL key, builder)
    // have tenants of their own; the same namespace means the same tenants.
    let ns_a = format!("{}_nsa", t.prefix);
    let ns_b = format!("{}_nsb", t.prefix);
    let a = common::prepare(Registry::new(
        Database::connect(&format!("{url}{separator}tenant_namespace={ns_a}"))
            .await
            .unwrap(),
    ))
    .await;
    let b = common::prepare(Registry::new(
        Database::options(&url)
            .tenant_namespace(&ns_b)
            .connect()
            .await
            .unwrap(),
    ))
    .await;
    let a_again = Registry::new(
        Database::options(&url)
            .tenant_namespace(&ns_a)
            .connect()
            .await
            .unwrap(),
    )
    .register::<User>();
    create_schema(&a, &edgy, None, false, true).await.unwrap();
    User::query(&a)
        .using(&edgy)
        .create(user("a"))
        .await
        .unwrap();
    if t.backend == Backend::MySql {
        assert_eq!(a.database().tenant_namespace(), Some(ns_a.as_str()));
        assert_eq!(b.database().tenant_namespace(), Some(ns_b.as_str()));
        assert!(!b.schema().exists(&edgy).await.unwrap());
        assert!(b.schema().list().await.unwrap().is_empty());
        create_schema(&b, &edgy, None, false, true).await.unwrap();
        assert_eq!(User::query(&b).using(&edgy).count().await.unwrap(), 0);
        assert_eq!(
            a.database().server_schema_name(&edgy).unwrap(),
            format!("{ns_a}$edgy")
        );
        // The registry on the URL's own namespace sees neither.
        assert!(t.registry.schema().list().await.unwrap().is_empty());
    } else {
        // Elsewhere the setting has no effect: one database, one set of schemas.
        assert_eq!(a.database().tenant_namespace(), None);
        assert!(b.schema().exists(&edgy).await.unwrap());
    }
    assert_eq!(names_in(&a_again, &edgy).await, vec!["a".to_owned()]);
    for registry in [&a, &b, &a_again] {
        registry.disconnect().await;
    }

    if t.backend == Backend::MySql {
        // A MySQL URL without a database has no namespace: tenant schemas are refused,
        // before any SQL, unless one is set.
        let server = url.rsplit_once('/').unwrap().0.to_owned();
        let bare = Registry::new(Database::connect_lazy(&server).await.unwrap()).register::<User>();
        assert_eq!(bare.database().tenant_namespace(), None);
        for result in [
            create_schema(&bare, &edgy, None, true, true).await,
            drop_schema(&bare, &edgy, true, true).await,
            User::query(&bare).using(&edgy).count().await.map(drop),
            bare.schema().list().await.map(drop),
        ] {
            match result {
                Err(Error::Unsupported { what, .. }) => {
                    assert!(what.contains("tenant_namespace"), "{what}")
                }
                other => panic!("{other:?}"),
            }
        }
        let ns_c = format!("{}_nsc", t.prefix);
        let named = Registry::new(
            Database::connect(&format!("{server}?tenant_namespace={ns_c}"))
                .await
                .unwrap(),
        )
        .register::<User>();
        create_schema(&named, &edgy, None, false, true)
            .await
            .unwrap();
        assert_eq!(User::query(&named).using(&edgy).count().await.unwrap(), 0);
        assert_eq!(named.schema().list().await.unwrap(), vec![edgy.clone()]);
        drop_schema(&named, &edgy, true, false).await.unwrap();
        named.disconnect().await;
    }
});
