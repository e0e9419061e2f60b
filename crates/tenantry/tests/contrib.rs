//! tenantry::contrib: the Tenant / TenantUser models and atomic provisioning.
mod common;

use common::models::*;
use tenantry::{
    contrib::{self, create_tenant, drop_tenant, Tenant, TenantUser},
    create_schema, with_tenant, Error, ForeignKey, Model, Registry,
};

/// The test's registry with the contrib models registered and created.
async fn registry(t: &common::TestDb) -> Registry {
    let registry = contrib::register(t.registry.clone());
    registry.create_all().await.unwrap();
    registry
}

/// A tenant table named like `Clash`'s index: SQLite's CREATE INDEX then fails ("there is
/// already a table named …"), IF NOT EXISTS notwithstanding.
#[derive(Model, Debug, Clone)]
#[model(table = "ix_clashes_nope")]
struct Squatter {
    id: i64,
}

/// A tenant model with an index named `ix_clashes_nope`.
#[derive(Model, Debug, Clone)]
#[model(table = "clashes")]
struct Clash {
    id: i64,
    #[model(max_length = 20, index)]
    nope: String,
}

/// Never registered: nothing creates its table.
#[derive(Model, Debug, Clone)]
struct Ghost {
    id: i64,
}

/// A tenant model referencing a table that does not exist: CREATE TABLE fails on
/// PostgreSQL and MySQL.
#[derive(Model, Debug, Clone)]
struct GhostRef {
    id: i64,
    ghost: ForeignKey<Ghost>,
}

backend_test!(create_tenant_provisions, |t: common::TestDb| async move {
    let r = &registry(&t).await;
    let a = t.schema("a");
    let tenant = create_tenant(r, &a, "Tenant A").await.unwrap();
    assert!(tenant.id > 0);
    assert_eq!(tenant.schema_name, a.as_str());
    assert_eq!(tenant.tenant_name, "Tenant A");
    assert_eq!(tenant.database, None);
    assert_eq!(tenant.schema().unwrap(), a);
    assert!(r.schema().exists(&a).await.unwrap());

    // The tenant's tables exist and start empty; the shared contrib tables are not copied.
    assert_eq!(Product::query(r).using(&a).count().await.unwrap(), 0);
    assert!(Tenant::query(r).using(&a).count().await.is_err());
    with_tenant(Some(a.clone()), async {
        Product::query(r).create(product("p", None)).await.unwrap();
        // Tenant is shared: the tenant scope does not move it.
        assert_eq!(Tenant::query(r).count().await.unwrap(), 1);
    })
    .await;
    assert_eq!(Product::query(r).count().await.unwrap(), 0);
    assert_eq!(Product::query(r).using(&a).count().await.unwrap(), 1);

    let found = Tenant::find(r, &a).await.unwrap().unwrap();
    assert_eq!(found.id, tenant.id);
    assert_eq!(found.created_at.timestamp(), tenant.created_at.timestamp());
});

backend_test!(
    create_tenant_rejects_bad_input,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        assert!(matches!(
            create_tenant(r, "Bad-Name", "x").await,
            Err(Error::InvalidSchemaName { .. })
        ));
        assert!(matches!(
            create_tenant(r, "public", "x").await,
            Err(Error::InvalidSchemaName { .. })
        ));
        let a = t.schema("a");
        assert!(matches!(
            create_tenant(r, &a, "").await,
            Err(Error::InvalidTenantName { .. })
        ));
        assert!(matches!(
            create_tenant(r, &a, &"x".repeat(101)).await,
            Err(Error::InvalidTenantName { .. })
        ));
        create_tenant(r, &a, &"x".repeat(100)).await.unwrap();
        assert!(matches!(
            contrib::create_tenant_in(r, "nowhere", &t.schema("b"), "b").await,
            Err(Error::UnknownDatabase { .. })
        ));
        assert_eq!(Tenant::query(r).count().await.unwrap(), 1);
    }
);

backend_test!(create_tenant_duplicates, |t: common::TestDb| async move {
    let r = &registry(&t).await;
    let a = t.schema("a");
    create_tenant(r, &a, "A").await.unwrap();
    Product::query(r)
        .using(&a)
        .create(product("kept", None))
        .await
        .unwrap();

    // The same schema again.
    let again = create_tenant(r, &a, "A2").await;
    assert!(
        matches!(again, Err(Error::UniqueViolation { .. })),
        "{again:?}"
    );
    // Another schema under a taken display name: refused, and that schema is not made.
    let b = t.schema("b");
    let taken = create_tenant(r, &b, "A").await;
    assert!(
        matches!(taken, Err(Error::UniqueViolation { .. })),
        "{taken:?}"
    );
    assert!(!r.schema().exists(&b).await.unwrap());
    // The first tenant is untouched.
    assert_eq!(Tenant::query(r).count().await.unwrap(), 1);
    assert_eq!(Product::query(r).using(&a).count().await.unwrap(), 1);

    // A schema that exists without a tenant row is not taken over, nor dropped.
    let c = t.schema("c");
    create_schema(r, &c, None, false, true).await.unwrap();
    Product::query(r)
        .using(&c)
        .create(product("orphan", None))
        .await
        .unwrap();
    let orphan = create_tenant(r, &c, "C").await;
    assert!(
        matches!(orphan, Err(Error::SchemaAlreadyExists { .. })),
        "{orphan:?}"
    );
    assert!(Tenant::find(r, &c).await.unwrap().is_none());
    assert_eq!(Product::query(r).using(&c).count().await.unwrap(), 1);
});

backend_test!(
    create_tenant_concurrent_same_name,
    |t: common::TestDb| async move {
        let r = registry(&t).await;
        for round in 0..3 {
            let name = t.schema(&format!("race{round}"));
            let mut tasks = Vec::new();
            for i in 0..8 {
                let r = r.clone();
                let name = name.clone();
                tasks.push(tokio::spawn(async move {
                    create_tenant(&r, &name, &format!("race {round} by {i}")).await
                }));
            }
            let mut won = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(_) => won += 1,
                    Err(Error::UniqueViolation { .. } | Error::SchemaAlreadyExists { .. }) => {}
                    Err(other) => panic!("unexpected error: {other:?}"),
                }
            }
            assert_eq!(won, 1, "exactly one creation wins");
            let rows = Tenant::query(&r)
                .filter(Tenant::schema_name().eq(name.as_str()))
                .count()
                .await
                .unwrap();
            assert_eq!(rows, 1);
            assert!(r.schema().exists(&name).await.unwrap());
            assert_eq!(Product::query(&r).using(&name).count().await.unwrap(), 0);
        }
    }
);

backend_test!(create_tenant_compensates, |t: common::TestDb| async move {
    let r = &registry(&t).await;
    let broken = r
        .clone()
        .register::<Squatter>()
        .register::<Clash>()
        .register::<GhostRef>();
    let a = t.schema("a");
    let failed = create_tenant(&broken, &a, "A").await;
    assert!(failed.is_err(), "the broken model must fail: {failed:?}");
    assert!(!matches!(
        failed,
        Err(Error::UniqueViolation { .. } | Error::SchemaAlreadyExists { .. })
    ));
    // Nothing half made: no row, no schema.
    assert_eq!(Tenant::query(r).count().await.unwrap(), 0);
    assert!(!r.schema().exists(&a).await.unwrap());
    // So the same name works afterwards.
    create_tenant(r, &a, "A").await.unwrap();
    assert_eq!(Product::query(r).using(&a).count().await.unwrap(), 0);
});

backend_test!(
    drop_tenant_keeps_or_drops_data,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let a = t.schema("a");
        create_tenant(r, &a, "A").await.unwrap();
        Product::query(r)
            .using(&a)
            .create(product("p", None))
            .await
            .unwrap();

        // Without drop_data the row goes, the data stays.
        let removed = drop_tenant(r, &a, false).await.unwrap();
        assert_eq!(removed.schema_name, a.as_str());
        assert!(Tenant::find(r, &a).await.unwrap().is_none());
        assert_eq!(Product::query(r).using(&a).count().await.unwrap(), 1);
        assert!(matches!(
            drop_tenant(r, &a, true).await,
            Err(Error::NotFound { .. })
        ));

        // With drop_data both go.
        let b = t.schema("b");
        create_tenant(r, &b, "B").await.unwrap();
        drop_tenant(r, &b, true).await.unwrap();
        assert!(Tenant::find(r, &b).await.unwrap().is_none());
        assert!(!r.schema().exists(&b).await.unwrap());
        // And the name can be used again.
        create_tenant(r, &b, "B").await.unwrap();
        assert_eq!(Product::query(r).using(&b).count().await.unwrap(), 0);
    }
);

backend_test!(
    create_tenant_in_extra_database,
    |t: common::TestDb| async move {
        let other = t.other_database("other").await;
        let r = &contrib::register(t.registry.clone().extra("other", other));
        r.create_all().await.unwrap();
        let a = t.schema("a");
        let tenant = contrib::create_tenant_in(r, "other", &a, "A")
            .await
            .unwrap();
        assert_eq!(tenant.database.as_deref(), Some("other"));
        assert!(r.schema_on("other").unwrap().exists(&a).await.unwrap());
        Product::query(r)
            .using_with_db("other")
            .using(&a)
            .create(product("p", None))
            .await
            .unwrap();
        drop_tenant(r, &a, true).await.unwrap();
        assert!(!r.schema_on("other").unwrap().exists(&a).await.unwrap());
    }
);

backend_test!(tenant_user_one_active, |t: common::TestDb| async move {
    let r = &registry(&t).await;
    let a = create_tenant(r, &t.schema("a"), "A").await.unwrap();
    let b = create_tenant(r, &t.schema("b"), "B").await.unwrap();
    let c = create_tenant(r, &t.schema("c"), "C").await.unwrap();

    assert!(TenantUser::active_tenant(r, 7).await.unwrap().is_none());
    let link_a = TenantUser::link(r, 7, &a, true).await.unwrap();
    assert!(link_a.is_active);
    let link_b = TenantUser::link(r, 7, &b, false).await.unwrap();
    assert!(!link_b.is_active);
    // Linking twice returns the same link.
    assert_eq!(
        TenantUser::link(r, 7, &b, false).await.unwrap().id,
        link_b.id
    );
    TenantUser::link(r, 8, &a, true).await.unwrap();
    assert_eq!(
        TenantUser::active_tenant(r, 7).await.unwrap().unwrap().id,
        a.id
    );

    TenantUser::activate(r, 7, b.id).await.unwrap();
    assert_eq!(
        TenantUser::active_tenant(r, 7).await.unwrap().unwrap().id,
        b.id
    );
    let active = TenantUser::query(r)
        .filter(TenantUser::user_id().eq(7) & TenantUser::is_active().eq(true))
        .count()
        .await
        .unwrap();
    assert_eq!(active, 1);
    // User 8 is not affected.
    assert_eq!(
        TenantUser::active_tenant(r, 8).await.unwrap().unwrap().id,
        a.id
    );

    // Not linked: NotFound, and the active tenant stays.
    assert!(matches!(
        TenantUser::activate(r, 7, c.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        TenantUser::active_tenant(r, 7).await.unwrap().unwrap().id,
        b.id
    );

    // Concurrent activations end with exactly one active link.
    TenantUser::link(r, 7, &c, false).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let r = r.clone();
        let id = [a.id, b.id, c.id][i % 3];
        tasks.push(tokio::spawn(async move {
            TenantUser::activate(&r, 7, id).await
        }));
    }
    for task in tasks {
        // A deadlock or busy error is acceptable for a loser; an inconsistent state is not.
        let _ = task.await.unwrap();
    }
    let active = TenantUser::query(r)
        .filter(TenantUser::user_id().eq(7) & TenantUser::is_active().eq(true))
        .count()
        .await
        .unwrap();
    assert_eq!(active, 1);

    TenantUser::deactivate_all(r, 7).await.unwrap();
    assert!(TenantUser::active_tenant(r, 7).await.unwrap().is_none());

    // Dropping a tenant removes its links.
    drop_tenant(r, &t.schema("a"), true).await.unwrap();
    assert_eq!(
        TenantUser::query(r)
            .filter(TenantUser::tenant().eq(a.id))
            .count()
            .await
            .unwrap(),
        0
    );
});

/// The module docs' example: an in-memory SQLite database.
#[tokio::test]
async fn in_memory_sqlite() {
    let database = tenantry::Database::connect("sqlite::memory:")
        .await
        .unwrap();
    let registry = contrib::register(Registry::new(database))
        .register::<Product>()
        .register::<User>();
    registry.create_all().await.unwrap();
    let edgy = create_tenant(&registry, "edgy", "Edgy").await.unwrap();
    assert_eq!(edgy.schema_name, "edgy");
    assert_eq!(
        Product::query(&registry)
            .using("edgy")
            .count()
            .await
            .unwrap(),
        0
    );
    drop_tenant(&registry, "edgy", true).await.unwrap();
    assert!(!registry
        .schema()
        .exists(&"edgy".parse().unwrap())
        .await
        .unwrap());
}
