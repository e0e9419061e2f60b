//! Instances: save (insert or update), delete and refresh, against the row they came from.
mod common;
use common::models::*;
use tenantry::Error;

backend_test!(save_inserts_then_updates, |t: common::TestDb| async move {
    let r = &t.registry;
    let mut ann = User::query(r).instance(user("Ann")).unwrap();
    assert!(!ann.is_stored());
    assert_eq!(User::query(r).count().await.unwrap(), 0);
    ann.save().await.unwrap();
    assert!(ann.is_stored());
    assert!(ann.id > 0, "the database assigned the key");
    assert_eq!(User::query(r).count().await.unwrap(), 1);
    let first_id = ann.id;

    ann.name = "Annie".into();
    ann.is_active = true;
    ann.save().await.unwrap();
    assert_eq!(ann.id, first_id, "an update keeps the key");
    assert_eq!(User::query(r).count().await.unwrap(), 1);
    let stored = User::query(r).get_pk(first_id).await.unwrap();
    assert_eq!(stored.name, "Annie");
    assert!(stored.is_active);

    // Saving without a change is fine (MySQL reports 0 changed rows).
    ann.save().await.unwrap();
    assert_eq!(User::query(r).count().await.unwrap(), 1);

    // A loaded instance updates its own row only.
    let ben = User::query(r).create(user("Ben")).await.unwrap();
    let mut loaded = User::query(r).get_pk(ben.id).await.unwrap();
    loaded.email = "ben@elsewhere.example".into();
    loaded.save().await.unwrap();
    assert_eq!(
        User::query(r).get_pk(ben.id).await.unwrap().email,
        "ben@elsewhere.example"
    );
    assert_eq!(
        User::query(r).get_pk(first_id).await.unwrap().email,
        "ann@example.com"
    );
});

backend_test!(delete_removes_the_row, |t: common::TestDb| async move {
    let r = &t.registry;
    let ann = User::query(r).create(user("Ann")).await.unwrap();
    let ben = User::query(r).create(user("Ben")).await.unwrap();
    let copy = ann.clone();
    let model = ann.delete().await.unwrap();
    assert_eq!(model.name, "Ann");
    assert!(matches!(
        User::query(r).get_pk(model.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(User::query(r).count().await.unwrap(), 1);
    assert!(User::query(r).get_pk(ben.id).await.is_ok());
    // Deleting again: the row is gone.
    assert!(matches!(copy.delete().await, Err(Error::NotFound { .. })));
});

backend_test!(refresh_reloads, |t: common::TestDb| async move {
    let r = &t.registry;
    let mut ann = User::query(r).create(user("Ann")).await.unwrap();
    User::query(r)
        .filter(User::id().eq(ann.id))
        .update([User::name().set("Changed"), User::is_active().set(true)])
        .await
        .unwrap();
    assert_eq!(ann.name, "Ann");
    ann.refresh().await.unwrap();
    assert_eq!(ann.name, "Changed");
    assert!(ann.is_active);
    // Local edits are overwritten.
    ann.email = "local@example.com".into();
    ann.refresh().await.unwrap();
    assert_eq!(ann.email, "ann@example.com");

    User::query(r)
        .filter(User::id().eq(ann.id))
        .delete()
        .await
        .unwrap();
    assert!(matches!(ann.refresh().await, Err(Error::NotFound { .. })));
});

backend_test!(
    save_after_delete_is_not_found,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let mut ann = User::query(r).create(user("Ann")).await.unwrap();
        User::query(r).delete().await.unwrap();
        ann.name = "Ghost".into();
        match ann.save().await {
            Err(Error::NotFound { model }) => assert_eq!(model, "users"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        // Nothing was re-inserted.
        assert_eq!(User::query(r).count().await.unwrap(), 0);
        // The same with an unchanged instance.
        let mut ben = User::query(r).create(user("Ben")).await.unwrap();
        User::query(r).delete().await.unwrap();
        assert!(matches!(ben.save().await, Err(Error::NotFound { .. })));
        assert_eq!(User::query(r).count().await.unwrap(), 0);
    }
);

backend_test!(
    instance_serializes_as_model,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let ann = User::query(r).create(user("Ann")).await.unwrap();
        let json = serde_json::to_value(&ann).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": ann.id,
                "name": "Ann",
                "email": "ann@example.com",
                "is_active": false,
            })
        );
        let lamp = Product::query(r)
            .create(product("Lamp", Some(&ann)))
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&lamp).unwrap(),
            serde_json::json!({"id": lamp.id, "name": "Lamp", "user": ann.id})
        );
        assert!(ann.origin().schema().is_none());
        assert_eq!(ann.origin().database().backend(), t.backend);
    }
);

backend_test!(
    unsaved_instance_cannot_be_refreshed_or_deleted,
    |t: common::TestDb| async move {
        let r = &t.registry;
        // A stored row with the placeholder key 0 must not be touched by the unsaved instance.
        let mut draft = User::query(r).instance(user("Draft")).unwrap();
        assert!(!draft.is_stored());
        assert!(matches!(
            draft.refresh().await,
            Err(tenantry::Error::NotSaved { model: "users" })
        ));
        assert!(matches!(
            draft.clone().delete().await,
            Err(tenantry::Error::NotSaved { model: "users" })
        ));
        assert_eq!(User::query(r).count().await.unwrap(), 0);
        draft.save().await.unwrap();
        assert!(draft.is_stored());
        draft.refresh().await.unwrap();
        assert_eq!(draft.name, "Draft");
        draft.delete().await.unwrap();
        assert_eq!(User::query(r).count().await.unwrap(), 0);
    }
);

backend_test!(
    equality_compares_the_origin,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let a = t.schema("eqa");
        let b = t.schema("eqb");
        for s in [&a, &b] {
            tenantry::create_schema(r, s, None, false, true)
                .await
                .unwrap();
        }
        let token = uuid::Uuid::new_v4();
        let tag = || Tag {
            token,
            label: "same".into(),
        };
        // The same fields in the default schema and in two tenants' schemas.
        let in_default = Tag::query(r).create(tag()).await.unwrap();
        let in_a = Tag::query(r).using(&a).create(tag()).await.unwrap();
        let in_b = Tag::query(r).using(&b).create(tag()).await.unwrap();
        assert_eq!(*in_a, *in_b, "the fields are equal");
        assert_ne!(in_a, in_b, "two tenants' rows are different rows");
        assert_ne!(in_a, in_default);
        assert_ne!(in_default, in_b);

        // The same row, read again (through a clone of the registry, in a tenant scope, or
        // in a transaction), is equal.
        assert_eq!(Tag::query(r).using(&a).get_pk(token).await.unwrap(), in_a);
        let again = tenantry::with_tenant(Some(a.clone()), async {
            Tag::query(&r.clone()).get_pk(token).await.unwrap()
        })
        .await;
        assert_eq!(again, in_a);
        let tx = r.begin_in(&a).await.unwrap();
        let in_tx = Tag::query(&tx).using(&a).get_pk(token).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(in_tx, in_a);
        // An unsaved instance bound to the same place compares by place and fields too.
        let unsaved = Tag::query(r).using(&a).instance(tag()).unwrap();
        assert_eq!(unsaved, in_a);
        assert_ne!(Tag::query(r).instance(tag()).unwrap(), in_a);

        // Another Database handle is another database, even on the same server.
        let other = tenantry::Registry::new(t.reconnect().await);
        let from_other = Tag::query(&other).get_pk(token).await.unwrap();
        assert_eq!(*from_other, *in_default);
        assert_ne!(from_other, in_default);
        other.disconnect().await;
    }
);
