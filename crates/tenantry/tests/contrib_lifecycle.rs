//! tenantry::contrib: the tenants epoch, suspension, and failures that keep their cause.
mod common;

use common::models::*;
use tenantry::{
    contrib::{self, Tenant},
    create_schema, with_tenant, Error, Model, Registry, SchemaName,
};

/// The test's registry with the contrib models registered and created.
async fn registry(t: &common::TestDb) -> Registry {
    let registry = contrib::register(t.registry.clone());
    registry.create_all().await.unwrap();
    registry
}

/// A tenant model whose CREATE TABLE fails on every backend: two fields share a column.
#[derive(Model, Debug, Clone)]
#[model(table = "broken")]
struct Broken {
    id: i64,
    #[model(column = "twin", max_length = 10)]
    left: String,
    #[model(column = "twin", max_length = 10)]
    right: String,
}

async fn tenant_row(r: &Registry, schema: &SchemaName) -> Option<Tenant> {
    Tenant::find(r, schema)
        .await
        .unwrap()
        .map(|t| t.into_inner())
}

// Every tenant change made through contrib gives the epoch a new value, in the same
// transaction; failed changes and reads leave it alone. Two tenants with different data are
// created, suspended and dropped concurrently; neither's data moves.
backend_test!(
    epoch_follows_tenant_changes,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b, c) = (t.schema("a"), t.schema("b"), t.schema("c"));
        let e0 = contrib::epoch(r).await.unwrap();
        assert_eq!(contrib::epoch(r).await.unwrap(), e0);

        // Two tenants created at once, each then given its own rows.
        let (ta, tb) = tokio::join!(
            contrib::create_tenant(r, &a, "A"),
            contrib::create_tenant(r, &b, "B")
        );
        assert!(!ta.unwrap().suspended && !tb.unwrap().suspended);
        let e1 = contrib::epoch(r).await.unwrap();
        assert_ne!(e1, e0);
        for (schema, n) in [(&a, 1), (&b, 2)] {
            User::query(r)
                .using(schema)
                .bulk_create((0..n).map(|k| user(&format!("{schema}_{k}"))))
                .await
                .unwrap();
        }

        // A refused creation changes nothing.
        assert!(matches!(
            contrib::create_tenant(r, &a, "A again").await,
            Err(Error::UniqueViolation { .. })
        ));
        assert_eq!(contrib::epoch(r).await.unwrap(), e1);

        // Suspension flips the row and the epoch; the data stays.
        let suspended = contrib::suspend_tenant(r, &a).await.unwrap();
        assert!(suspended.suspended);
        assert!(tenant_row(r, &a).await.unwrap().suspended);
        assert!(!tenant_row(r, &b).await.unwrap().suspended);
        let e2 = contrib::epoch(r).await.unwrap();
        assert_ne!(e2, e1);
        let resumed = contrib::resume_tenant(r, &a).await.unwrap();
        assert!(!resumed.suspended);
        assert!(!tenant_row(r, &a).await.unwrap().suspended);
        let e3 = contrib::epoch(r).await.unwrap();
        assert!(e3 != e2 && e3 != e1);

        // Unknown names are NotFound and change nothing.
        assert!(matches!(
            contrib::suspend_tenant(r, &c).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            contrib::drop_tenant(r, &c, true).await,
            Err(Error::NotFound { .. })
        ));
        assert_eq!(contrib::epoch(r).await.unwrap(), e3);

        // Concurrently: suspend a, create c, while reading both tenants' data.
        let (suspend, create, rows_a, rows_b) = tokio::join!(
            contrib::suspend_tenant(r, &a),
            contrib::create_tenant(r, &c, "C"),
            with_tenant(Some(a.clone()), User::query(r).all()),
            with_tenant(Some(b.clone()), User::query(r).all()),
        );
        suspend.unwrap();
        create.unwrap();
        let names = |rows: Vec<tenantry::Instance<User>>| -> Vec<String> {
            rows.into_iter().map(|u| u.into_inner().name).collect()
        };
        assert_eq!(names(rows_a.unwrap()), [format!("{a}_0")]);
        assert_eq!(names(rows_b.unwrap()), [format!("{b}_0"), format!("{b}_1")]);
        let e4 = contrib::epoch(r).await.unwrap();
        assert_ne!(e4, e3);

        // Dropping changes it too; a suspended tenant can be dropped.
        contrib::drop_tenant(r, &a, true).await.unwrap();
        let e5 = contrib::epoch(r).await.unwrap();
        assert_ne!(e5, e4);
        assert!(tenant_row(r, &a).await.is_none());
        assert!(!r.schema().exists(&a).await.unwrap());
        assert_eq!(User::query(r).using(&b).count().await.unwrap(), 2);

        // bump_epoch, for changes made by hand.
        contrib::bump_epoch(r).await.unwrap();
        assert_ne!(contrib::epoch(r).await.unwrap(), e5);

        // A second handle on the same database (another process) reads the same epoch.
        let other = contrib::register(Registry::new(t.reconnect().await));
        assert_eq!(
            contrib::epoch(&other).await.unwrap(),
            contrib::epoch(r).await.unwrap()
        );
        other.disconnect().await;
    }
);

// When a table fails half way through create_schema / create_tenant, the work is undone and
// the table's error is the one returned (not an error of the undoing); nothing is left.
backend_test!(
    failed_provisioning_returns_its_cause,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let s = t.schema("s");
        let is_cause = |error: &Error| {
            matches!(error, Error::Database(_)) && error.to_string().contains("twin")
        };

        let error = create_schema(r, &s, Some(&[User::META, Broken::META]), false, true)
            .await
            .unwrap_err();
        assert!(is_cause(&error), "{error:?}");
        assert!(!r.schema().exists(&s).await.unwrap());

        let broken = r.clone().register::<Broken>();
        let before = contrib::epoch(r).await.unwrap();
        let error = contrib::create_tenant(&broken, &s, "S").await.unwrap_err();
        assert!(is_cause(&error), "{error:?}");
        assert!(!r.schema().exists(&s).await.unwrap());
        assert!(tenant_row(r, &s).await.is_none());
        assert_eq!(contrib::epoch(r).await.unwrap(), before);

        // The same name works afterwards, with the working models.
        contrib::create_tenant(r, &s, "S").await.unwrap();
        assert_eq!(User::query(r).using(&s).count().await.unwrap(), 0);
    }
);
