//! The examples of Edgy's tenancy page (the seed), run on every backend.
mod common;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, deactivate_schema, set_tenant, tenant_scope, with_tenant,
    Error, Instance, Registry, SchemaName,
};

fn names<M>(rows: &[Instance<M>], name: impl Fn(&M) -> &str) -> Vec<String> {
    let mut names: Vec<String> = rows.iter().map(|r| name(r).to_owned()).collect();
    names.sort();
    names
}

fn user_names(rows: &[Instance<User>]) -> Vec<String> {
    names(rows, |u| &u.name)
}

// `default` (no `using`) and `main` hold different users; each query sees its own.
backend_test!(using_main_and_default, |t: common::TestDb| async move {
    let r = &t.registry;
    let main = t.schema("main");
    create_schema(r, &main, None, true, true).await.unwrap();

    let defaults = User::query(r)
        .bulk_create([user("Default1"), user("Default2")])
        .await
        .unwrap();
    let mains = User::query(r)
        .using(&main)
        .bulk_create([user("Main1"), user("Main2"), user("Main3")])
        .await
        .unwrap();
    // Both schemas count keys from 1: the same key names a different user in each.
    assert_eq!(defaults[0].id, mains[0].id);

    // User.query.all() / User.query.using('main').all()
    let all_default = User::query(r).all().await.unwrap();
    assert_eq!(user_names(&all_default), ["Default1", "Default2"]);
    let all_main = User::query(r).using(&main).all().await.unwrap();
    assert_eq!(user_names(&all_main), ["Main1", "Main2", "Main3"]);
    assert_eq!(all_main[0].origin().schema(), Some(&main));
    assert_eq!(all_default[0].origin().schema(), None);

    // .filter(email__icontains=…)
    let found = User::query(r)
        .using(&main)
        .filter(User::email().icontains("MAIN2@EXAMPLE"))
        .all()
        .await
        .unwrap();
    assert_eq!(user_names(&found), ["Main2"]);
    let found = User::query(r)
        .filter(User::email().icontains("MAIN2@EXAMPLE"))
        .all()
        .await
        .unwrap();
    assert!(found.is_empty(), "default schema must not see main's users");

    // .get(pk=1)
    let key = mains[0].id;
    assert_eq!(User::query(r).get_pk(key).await.unwrap().name, "Default1");
    assert_eq!(
        User::query(r).using(&main).get_pk(key).await.unwrap().name,
        "Main1"
    );
    assert!(matches!(
        User::query(r).get_pk(mains[2].id).await,
        Err(Error::NotFound { .. })
    ));
});

// `using_with_db("alternative")`: a bulk_create lands in the extra database only.
backend_test!(using_with_db_alternative, |t: common::TestDb| async move {
    let alternative = t.other_database("alt").await;
    let r: Registry = t.registry.clone().extra("alternative", alternative.clone());
    r.create_all().await.unwrap();

    let created = User::query(&r)
        .using_with_db("alternative")
        .bulk_create([
            User {
                name: "Edgy".into(),
                email: "edgy@example.com".into(),
                ..User::default()
            },
            User {
                name: "Edgy Alternative".into(),
                email: "edgy.alternative@example.com".into(),
                ..User::default()
            },
        ])
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    assert!(created[0].id > 0 && created[0].id != created[1].id);

    assert_eq!(User::query(&r).count().await.unwrap(), 0);
    let alt = User::query(&r)
        .using_with_db("alternative")
        .all()
        .await
        .unwrap();
    assert_eq!(user_names(&alt), ["Edgy", "Edgy Alternative"]);
    // A fresh connection to the default database sees nothing either.
    let fresh = Registry::new(t.reconnect().await).register::<User>();
    assert_eq!(User::query(&fresh).count().await.unwrap(), 0);
    fresh.disconnect().await;

    // An undeclared name is an error, not a silent fallback.
    assert!(matches!(
        User::query(&r).using_with_db("missing").count().await,
        Err(Error::UnknownDatabase { .. })
    ));
    alternative.disconnect().await;
});

// `activate_schema("main")`: unqualified queries go to main until `deactivate_schema()`.
backend_test!(activate_schema_main, |t: common::TestDb| async move {
    let r = &t.registry;
    let main = t.schema("main");
    create_schema(r, &main, None, true, true).await.unwrap();
    User::query(r).create(user("Default1")).await.unwrap();
    let mains = User::query(r)
        .using(&main)
        .bulk_create([user("Main1"), user("user")])
        .await
        .unwrap();

    tenant_scope(async {
        activate_schema(&main).unwrap();
        let all = User::query(r).all().await.unwrap();
        assert_eq!(user_names(&all), ["Main1", "user"]);
        let found = User::query(r)
            .filter(User::email().icontains("user@example.com"))
            .all()
            .await
            .unwrap();
        assert_eq!(user_names(&found), ["user"]);
        let got = User::query(r).get_pk(mains[0].id).await.unwrap();
        assert_eq!(got.name, "Main1");
        assert_eq!(got.origin().schema(), Some(&main));

        deactivate_schema().unwrap();
        let all = User::query(r).all().await.unwrap();
        assert_eq!(user_names(&all), ["Default1"]);
        assert_eq!(
            User::query(r).get_pk(mains[0].id).await.unwrap().name,
            "Default1"
        );

        // Activating the same schema again works; the scope keeps no other.
        activate_schema(&main).unwrap();
        assert_eq!(User::query(r).count().await.unwrap(), 2);
        deactivate_schema().unwrap();
        assert_eq!(User::query(r).count().await.unwrap(), 1);
    })
    .await;
    // The scope is gone: back to the default.
    assert_eq!(User::query(r).count().await.unwrap(), 1);
});

// The practical case: `esmerald` with 25 shared products, tenant `edgy` with its own user
// and 10 products; a middleware sets the tenant, the handler just queries.
backend_test!(set_tenant_practical_case, |t: common::TestDb| async move {
    let r = &t.registry;
    let edgy = t.schema("edgy");
    create_schema(r, &edgy, None, true, true).await.unwrap();

    let esmerald = User::query(r).create(user("esmerald")).await.unwrap();
    let edgy_user = User::query(r)
        .using(&edgy)
        .create(user("Edgy schema user"))
        .await
        .unwrap();
    for i in 0..10 {
        Product::query(r)
            .using(&edgy)
            .create(product(&format!("Product-{i}"), Some(&edgy_user)))
            .await
            .unwrap();
    }
    for i in 0..25 {
        Product::query(r)
            .create(product(&format!("Product-{i}"), Some(&esmerald)))
            .await
            .unwrap();
    }

    // The API handler: no using, no schema anywhere.
    async fn products(r: &Registry) -> Vec<Instance<Product>> {
        Product::query(r).all().await.unwrap()
    }
    // The middleware: a header picks the tenant, None when absent.
    let header_to_tenant = |header: Option<&str>| header.map(|h| SchemaName::parse(h).unwrap());

    let tenant = header_to_tenant(Some(edgy.as_str()));
    let rows = with_tenant(tenant.clone(), products(r)).await;
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|p| p.origin().schema() == Some(&edgy)));
    // A tenant product's user is the tenant's user.
    let owner = rows[0].fetch(rows[0].user.as_ref().unwrap()).await.unwrap();
    assert_eq!(owner.name, "Edgy schema user");

    let rows = with_tenant(header_to_tenant(None), products(r)).await;
    assert_eq!(rows.len(), 25);
    let owner = rows[0].fetch(rows[0].user.as_ref().unwrap()).await.unwrap();
    assert_eq!(owner.name, "esmerald");

    // set_tenant inside a scope, as a middleware would: one scope per request.
    tenant_scope(async {
        set_tenant(tenant.clone()).unwrap();
        assert_eq!(products(r).await.len(), 10);
    })
    .await;
    tenant_scope(async {
        set_tenant(None).unwrap();
        assert_eq!(products(r).await.len(), 25);
    })
    .await;
    // A scope's tenant is chosen once: switching inside one is refused, and fails closed.
    tenant_scope(async {
        set_tenant(tenant.clone()).unwrap();
        assert!(matches!(
            set_tenant(None),
            Err(Error::TenantConflict { .. })
        ));
        assert!(matches!(
            Product::query(r).count().await,
            Err(Error::TenantConflict { .. })
        ));
    })
    .await;
    assert_eq!(products(r).await.len(), 25);
});
