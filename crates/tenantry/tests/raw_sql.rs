//! Tenant-aware raw SQL: `{table}` placeholders rendered for the tenant, values bound, in
//! the transaction; two tenants with the same ids run concurrently in one task.
mod common;

use common::models::*;
use tenantry::{create_schema, with_tenant, Error, Registry, SchemaName};

/// Tenant `a`: ann owns lamp and desk; tenant `b`: bob owns chair. Same ids.
async fn two_tenants(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let (a, b) = (t.schema("raw_a"), t.schema("raw_b"));
    for (s, owner, products) in [
        (&a, "ann", vec!["lamp", "desk"]),
        (&b, "bob", vec!["chair"]),
    ] {
        create_schema(r, s, None, false, true).await.unwrap();
        let owner = User::query(r).using(s).create(user(owner)).await.unwrap();
        let rows: Vec<Product> = products
            .into_iter()
            .map(|name| product(name, Some(&owner)))
            .collect();
        Product::query(r).using(s).bulk_create(rows).await.unwrap();
    }
    (a, b)
}

const JOINED: &str = "SELECT {products}.name, {users}.name FROM {products} \
     JOIN {users} ON {users}.id = {products}.user_id \
     WHERE {products}.name <> ? AND {users}.name <> '?{not a table}' ORDER BY {products}.name";

backend_pool_test!(
    raw_statements_run_in_each_tenant,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = two_tenants(r, &t).await;
        let joined = |s: SchemaName| {
            with_tenant(
                Some(s),
                r.raw(JOINED)
                    .bind("nothing".to_string())
                    .fetch_as::<(String, String)>(),
            )
        };
        let (in_a, in_b) = tokio::join!(joined(a.clone()), joined(b.clone()));
        assert_eq!(
            in_a.unwrap(),
            [
                ("desk".to_string(), "ann".to_string()),
                ("lamp".into(), "ann".into())
            ]
        );
        assert_eq!(in_b.unwrap(), [("chair".to_string(), "bob".to_string())]);
        // Models: a raw SELECT of the model's columns, saved back to the same tenant.
        let mut lamps = r
            .raw("SELECT {products}.* FROM {products} WHERE name = ?")
            .using(&a)
            .bind("lamp".to_string())
            .fetch_models::<Product>()
            .await
            .unwrap();
        assert_eq!(lamps.len(), 1);
        assert_eq!(lamps[0].origin().schema(), Some(&a));
        lamps[0].name = "lamp2".into();
        lamps[0].save().await.unwrap();
        assert_eq!(
            Product::query(r)
                .using(&a)
                .filter(Product::name().eq("lamp2"))
                .count()
                .await
                .unwrap(),
            1
        );
        assert_eq!(Product::query(r).using(&b).count().await.unwrap(), 1);
        // In a transaction: its changes, then rolled back.
        let tx = r.begin_in(&b).await.unwrap();
        let changed = tx
            .raw("UPDATE {products} SET name = ? WHERE name = ?")
            .using(&b)
            .bind("stool".to_string())
            .bind("chair".to_string())
            .execute()
            .await
            .unwrap();
        assert_eq!(changed, 1);
        let inside: Vec<(String,)> = tx
            .raw("SELECT name FROM {products}")
            .using(&b)
            .fetch_as()
            .await
            .unwrap();
        assert_eq!(inside, [("stool".to_string(),)]);
        tx.rollback().await.unwrap();
        let after: Vec<(String,)> = r
            .raw("SELECT name FROM {products}")
            .using(&b)
            .fetch_as()
            .await
            .unwrap();
        assert_eq!(after, [("chair".to_string(),)]);
    }
);

backend_test!(
    raw_statements_refuse_what_they_cannot_render,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, _) = two_tenants(r, &t).await;
        let invalid = |result: tenantry::Result<Vec<tenantry::Row>>| {
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{result:?}"
            );
        };
        // A table of no model, an unclosed placeholder, a stray }, too few or too many values.
        invalid(r.raw("SELECT * FROM {secrets}").using(&a).fetch_all().await);
        invalid(r.raw("SELECT * FROM {products").using(&a).fetch_all().await);
        invalid(r.raw("SELECT 1 }").using(&a).fetch_all().await);
        invalid(
            r.raw("SELECT * FROM {products} WHERE id = ?")
                .using(&a)
                .fetch_all()
                .await,
        );
        invalid(
            r.raw("SELECT * FROM {products}")
                .using(&a)
                .bind(1i64)
                .fetch_all()
                .await,
        );
        // A bad schema name: its own error, before any SQL.
        let bad = r
            .raw("SELECT * FROM {products}")
            .using("Bad-Name")
            .fetch_all()
            .await;
        assert!(
            matches!(bad, Err(Error::InvalidSchemaName { .. })),
            "{bad:?}"
        );
        // Inside a string literal, braces and question marks are text, copied as written.
        let literal: Vec<(String,)> = r
            .raw("SELECT CONCAT('{x} ?? ', name) FROM {products} WHERE name = ?")
            .using(&a)
            .bind("desk".to_string())
            .fetch_as()
            .await
            .unwrap();
        assert_eq!(literal, [("{x} ?? desk".to_string(),)]);
        // A tenant table and a shared one in one statement (on SQLite, the main file
        // attached to the tenant's).
        let mixed = r
            .raw("SELECT {subscriptions}.note FROM {subscriptions} JOIN {plans} ON {plans}.id = {subscriptions}.plan_id")
            .using(&a)
            .fetch_all()
            .await;
        assert!(mixed.unwrap().is_empty());
    }
);
