//! contrib::create_tenant under attack: the hostile corpus as schema and display names, and
//! a failure at each provisioning step (row, schema, first / middle / last table), on every
//! backend. Whatever fails leaves no row, no schema (database, file) and a reusable name.
mod common;

use common::{hostile, models::*};
use tenantry::{
    contrib::{self, create_tenant, drop_tenant, Tenant},
    create_schema, Backend, Error, Model, Registry, SchemaName,
};

/// A tenant model whose CREATE TABLE fails on every backend: field `b` is stored in column
/// `a`, so the statement declares column `a` twice.
#[derive(Model, Debug, Clone)]
#[model(table = "broken")]
struct Broken {
    id: i64,
    a: i64,
    #[model(column = "a")]
    b: i64,
}

/// Everything provisioning could leave behind, for before / after comparisons.
#[derive(Debug, PartialEq)]
struct Footprint {
    /// (schema_name, tenant_name) of every tenant row.
    tenants: Vec<(String, String)>,
    /// The schemas carrying the test's prefix (MySQL lists the whole server).
    schemas: Vec<SchemaName>,
    /// The files of the test's directory (SQLite), journals aside.
    files: Vec<String>,
}

async fn footprint(t: &common::TestDb, r: &Registry) -> Footprint {
    let mut tenants: Vec<(String, String)> = Tenant::query(r)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            let t = t.into_inner();
            (t.schema_name, t.tenant_name)
        })
        .collect();
    tenants.sort();
    let schemas = r
        .schema()
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.as_str().starts_with(&t.prefix))
        .collect();
    let mut files = Vec::new();
    if t.backend == Backend::Sqlite {
        let dir = std::env::temp_dir().join(format!("tenantry-tests/{}", t.prefix));
        files = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| !f.ends_with("-wal") && !f.ends_with("-shm") && !f.ends_with("-journal"))
            .collect();
        files.sort();
        // Traversal would land beside or above the directory.
        for outside in ["x", "x.sqlite", "main.x.sqlite", "etc"] {
            if dir.parent().unwrap().join(outside).exists() {
                files.push(format!("../{outside}"));
            }
        }
    }
    Footprint {
        tenants,
        schemas,
        files,
    }
}

/// A registry on the test's database with only the contrib models (plus `extra`), its
/// shared tables created.
async fn contrib_only(t: &common::TestDb) -> Registry {
    let r = contrib::register(Registry::new(t.registry.database().clone()));
    r.create_all().await.unwrap();
    r
}

backend_test!(corpus_as_schema_name, |t: common::TestDb| async move {
    let r = &contrib::register(t.registry.clone());
    r.create_all().await.unwrap();
    let edgy = t.schema("edgy");
    create_tenant(r, &edgy, "The Edgy Tenant").await.unwrap();
    Product::query(r)
        .using(&edgy)
        .create(product("edgy's", None))
        .await
        .unwrap();
    let before = footprint(&t, r).await;

    let corpus = hostile::corpus();
    assert!(corpus.len() >= 200);
    for name in &corpus {
        for display in ["X", name.as_str()] {
            match create_tenant(r, name.as_str(), display).await {
                Err(Error::InvalidSchemaName { .. }) => {}
                other => panic!("create_tenant({name:?}, {display:?}): {other:?}"),
            }
        }
        match contrib::create_tenant_in(r, "nowhere", name.as_str(), "X").await {
            Err(Error::InvalidSchemaName { .. }) => {}
            other => panic!("create_tenant_in({name:?}): {other:?}"),
        }
        match drop_tenant(r, name.as_str(), true).await {
            Err(Error::InvalidSchemaName { .. }) => {}
            other => panic!("drop_tenant({name:?}): {other:?}"),
        }
    }
    // Valid look-alikes are other names: the real tenant's row stays its own.
    for name in hostile::valid_lookalikes(edgy.as_str()) {
        let name = SchemaName::parse(&name).unwrap();
        assert!(Tenant::find(r, &name).await.unwrap().is_none(), "{name}");
        assert!(matches!(
            drop_tenant(r, &name, true).await,
            Err(Error::NotFound { .. })
        ));
    }

    assert_eq!(footprint(&t, r).await, before);
    assert_eq!(Product::query(r).using(&edgy).count().await.unwrap(), 1);
});

backend_test!(corpus_as_tenant_name, |t: common::TestDb| async move {
    let r = &contrib_only(&t).await;
    let before = footprint(&t, r).await;
    let (mut refused, mut stored) = (0, 0);
    for (i, name) in hostile::corpus().iter().enumerate() {
        let schema = t.schema(&format!("n{i}"));
        let result = create_tenant(r, &schema, name).await;
        if name.trim().is_empty() || name.chars().count() > 100 || name.contains('\0') {
            assert!(
                matches!(result, Err(Error::InvalidTenantName { .. })),
                "{name:?}: {result:?}"
            );
            assert!(!r.schema().exists(&schema).await.unwrap());
            refused += 1;
            continue;
        }
        // Anything else is legal data: stored and read back byte for byte.
        let tenant = result.unwrap_or_else(|e| panic!("tenant_name {name:?}: {e:?}"));
        assert_eq!(&tenant.tenant_name, name);
        let found = Tenant::find(r, &schema).await.unwrap().unwrap();
        assert_eq!(&found.tenant_name, name, "round trip of {name:?}");
        let by_name = Tenant::query(r)
            .filter(Tenant::tenant_name().eq(name.as_str()))
            .all()
            .await
            .unwrap();
        assert_eq!(by_name.len(), 1, "lookup by {name:?}");
        assert_eq!(by_name[0].schema_name, schema.as_str());
        drop_tenant(r, &schema, true).await.unwrap();
        stored += 1;
    }
    eprintln!(
        "{}: {refused} display names refused, {stored} stored",
        t.backend
    );
    assert!(refused >= 5 && stored >= 150);
    assert_eq!(footprint(&t, r).await, before);
});

backend_test!(row_step_fails, |t: common::TestDb| async move {
    let r = &contrib::register(t.registry.clone());
    r.create_all().await.unwrap();
    let a = t.schema("a");
    create_tenant(r, &a, "Taken").await.unwrap();
    let before = footprint(&t, r).await;

    // A new schema under a display name already taken: the row insert fails.
    let b = t.schema("b");
    let failed = create_tenant(r, &b, "Taken").await;
    eprintln!("{}: row step: {failed:?}", t.backend);
    assert!(
        matches!(failed, Err(Error::UniqueViolation { .. })),
        "{failed:?}"
    );
    assert!(!r.schema().exists(&b).await.unwrap());
    assert!(Tenant::find(r, &b).await.unwrap().is_none());
    assert!(Product::query(r).using(&b).count().await.is_err());
    assert_eq!(footprint(&t, r).await, before);
    // The schema name is free.
    create_tenant(r, &b, "Not taken").await.unwrap();
    assert_eq!(Product::query(r).using(&b).count().await.unwrap(), 0);
});

backend_test!(schema_step_fails, |t: common::TestDb| async move {
    let r = &contrib::register(t.registry.clone());
    r.create_all().await.unwrap();
    // A schema made outside contrib, with data, and no tenant row.
    let c = t.schema("c");
    create_schema(r, &c, None, false, true).await.unwrap();
    Product::query(r)
        .using(&c)
        .create(product("orphan", None))
        .await
        .unwrap();
    User::query(r).using(&c).create(user("u")).await.unwrap();
    let before = footprint(&t, r).await;

    let failed = create_tenant(r, &c, "C").await;
    eprintln!("{}: schema step: {failed:?}", t.backend);
    assert!(
        matches!(failed, Err(Error::SchemaAlreadyExists { .. })),
        "{failed:?}"
    );
    assert!(Tenant::find(r, &c).await.unwrap().is_none());
    assert_eq!(Tenant::query(r).count().await.unwrap(), 0);
    assert_eq!(footprint(&t, r).await, before);
    // The pre-existing schema is untouched: its tables and rows are all there.
    assert!(r.schema().exists(&c).await.unwrap());
    let products = Product::query(r).using(&c).all().await.unwrap();
    assert_eq!(products.len(), 1);
    assert_eq!(products[0].name, "orphan");
    assert_eq!(User::query(r).using(&c).count().await.unwrap(), 1);
    assert_eq!(EveryType::query(r).using(&c).count().await.unwrap(), 0);
});

backend_test!(table_step_fails, |t: common::TestDb| async move {
    let base = contrib_only(&t).await;
    // Three tenant tables (none references another, so creation follows registration),
    // the broken one first, in the middle, then last.
    let broken = [
        base.clone()
            .register::<Broken>()
            .register::<User>()
            .register::<Tag>(),
        base.clone()
            .register::<User>()
            .register::<Broken>()
            .register::<Tag>(),
        base.clone()
            .register::<User>()
            .register::<Tag>()
            .register::<Broken>(),
    ];
    let good = base.clone().register::<User>().register::<Tag>();
    for (position, r) in broken.iter().enumerate() {
        let order: Vec<&str> = r.tenant_models().map(|m| m.table).collect();
        assert_eq!(order.iter().position(|t| *t == "broken"), Some(position));
        let before = footprint(&t, &base).await;
        let name = t.schema(&format!("p{position}"));
        let failed = create_tenant(r, &name, "P").await;
        eprintln!(
            "{}: table {} of {order:?} fails: {failed:?}",
            t.backend,
            position + 1
        );
        assert!(
            matches!(failed, Err(Error::Database(_))),
            "the broken table must fail: {failed:?}"
        );
        // No row, no schema / database / file, nothing of the good tables.
        assert_eq!(footprint(&t, &base).await, before);
        assert!(Tenant::find(&base, &name).await.unwrap().is_none());
        assert!(!base.schema().exists(&name).await.unwrap());
        assert!(User::query(&good).using(&name).count().await.is_err());
        // The name (and the display name) can be used again.
        let made = create_tenant(&good, &name, "P").await.unwrap();
        assert_eq!(made.schema_name, name.as_str());
        assert_eq!(User::query(&good).using(&name).count().await.unwrap(), 0);
        assert_eq!(Tag::query(&good).using(&name).count().await.unwrap(), 0);
        drop_tenant(&good, &name, true).await.unwrap();
        assert_eq!(footprint(&t, &base).await, before);
    }
});
