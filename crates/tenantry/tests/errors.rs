//! Errors: constraint violations come back as their own `Error` kinds on every backend.
mod common;
use common::models::*;
use tenantry::{Error, ForeignKey};

fn tag(label: &str) -> Tag {
    Tag {
        token: uuid::Uuid::new_v4(),
        label: label.into(),
    }
}

backend_test!(duplicate_unique_value, |t: common::TestDb| async move {
    let r = &t.registry;
    Tag::query(r).create(tag("red")).await.unwrap();
    let error = Tag::query(r).create(tag("red")).await.unwrap_err();
    match &error {
        Error::UniqueViolation { message } => assert!(!message.is_empty()),
        other => panic!("expected UniqueViolation, got {other:?}"),
    }
    assert!(error.to_string().starts_with("unique constraint violated"));
    assert_eq!(Tag::query(r).count().await.unwrap(), 1);

    // A duplicate primary key is a unique violation too.
    let first = Tag::query(r).create(tag("blue")).await.unwrap();
    let again = Tag {
        token: first.token,
        label: "green".into(),
    };
    assert!(matches!(
        Tag::query(r).create(again).await,
        Err(Error::UniqueViolation { .. })
    ));
    // Through an update, a bulk insert and a save as well.
    assert!(matches!(
        Tag::query(r)
            .filter(Tag::label().eq("blue"))
            .update([Tag::label().set("red")])
            .await,
        Err(Error::UniqueViolation { .. })
    ));
    assert!(matches!(
        Tag::query(r).bulk_create([tag("x"), tag("x")]).await,
        Err(Error::UniqueViolation { .. })
    ));
    assert!(!Tag::query(r)
        .filter(Tag::label().eq("x"))
        .exists()
        .await
        .unwrap());
    let mut blue = Tag::query(r).get(Tag::label().eq("blue")).await.unwrap();
    blue.label = "red".into();
    assert!(matches!(
        blue.save().await,
        Err(Error::UniqueViolation { .. })
    ));
    // The varchar unique column of EveryType.
    let every = |code: &str| EveryType {
        key: 0,
        body: String::new(),
        code: code.into(),
        flag: false,
        ratio: 0.0,
        at: chrono::Utc::now(),
        day: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        token: uuid::Uuid::new_v4(),
        doc: serde_json::json!(null),
        maybe: None,
        maybe_number: None,
    };
    EveryType::query(r).create(every("C")).await.unwrap();
    assert!(matches!(
        EveryType::query(r).create(every("C")).await,
        Err(Error::UniqueViolation { .. })
    ));
    // Unique is case-sensitive, as text comparison is.
    EveryType::query(r).create(every("c")).await.unwrap();
});

backend_test!(foreign_key_to_missing_row, |t: common::TestDb| async move {
    let r = &t.registry;
    let ann = User::query(r).create(user("Ann")).await.unwrap();
    let orphan = Product {
        id: 0,
        name: "Lamp".into(),
        user: Some(ForeignKey::new(ann.id + 1000)),
    };
    let error = Product::query(r).create(orphan).await.unwrap_err();
    assert!(
        matches!(error, Error::ForeignKeyViolation { .. }),
        "{error:?}"
    );
    assert_eq!(Product::query(r).count().await.unwrap(), 0);
    // Through an update too.
    let lamp = Product::query(r)
        .create(product("Lamp", Some(&ann)))
        .await
        .unwrap();
    assert!(matches!(
        Product::query(r)
            .update([Product::user().set(ann.id + 1000)])
            .await,
        Err(Error::ForeignKeyViolation { .. })
    ));
    let mut lamp = lamp;
    lamp.user = Some(ForeignKey::new(ann.id + 2000));
    assert!(matches!(
        lamp.save().await,
        Err(Error::ForeignKeyViolation { .. })
    ));
    // A Subscription to a plan that does not exist.
    assert!(matches!(
        Subscription::query(r)
            .create(Subscription {
                id: 0,
                plan: ForeignKey::new(12345),
                note: "n".into(),
            })
            .await,
        Err(Error::ForeignKeyViolation { .. })
    ));
});

backend_test!(restrict_refuses_delete, |t: common::TestDb| async move {
    let r = &t.registry;
    let gold = Plan::query(r)
        .create(Plan {
            id: 0,
            title: "Gold".into(),
        })
        .await
        .unwrap();
    let silver = Plan::query(r)
        .create(Plan {
            id: 0,
            title: "Silver".into(),
        })
        .await
        .unwrap();
    let sub = Subscription::query(r)
        .create(Subscription {
            id: 0,
            plan: (&gold).into(),
            note: "yearly".into(),
        })
        .await
        .unwrap();
    let error = gold.clone().delete().await.unwrap_err();
    assert!(
        matches!(error, Error::ForeignKeyViolation { .. }),
        "{error:?}"
    );
    assert!(matches!(
        Plan::query(r)
            .filter(Plan::title().eq("Gold"))
            .delete()
            .await,
        Err(Error::ForeignKeyViolation { .. })
    ));
    assert_eq!(Plan::query(r).count().await.unwrap(), 2);
    // An unreferenced plan goes; once the subscription is gone, so can the other one.
    silver.delete().await.unwrap();
    sub.delete().await.unwrap();
    gold.delete().await.unwrap();
    assert_eq!(Plan::query(r).count().await.unwrap(), 0);
});

backend_test!(not_null_violation, |t: common::TestDb| async move {
    let r = &t.registry;
    User::query(r).create(user("Ann")).await.unwrap();
    // `set_null` on a column that is not nullable.
    let error = User::query(r)
        .update([User::name().set_null()])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotNullViolation { .. }), "{error:?}");
    assert_eq!(User::query(r).first().await.unwrap().unwrap().name, "Ann");
});

backend_test!(database_error_has_code, |t: common::TestDb| async move {
    let r = &t.registry;
    r.drop_all().await.unwrap();
    let error = User::query(r).count().await.unwrap_err();
    assert!(matches!(error, Error::Database(_)), "{error:?}");
    let code = error.database_code().expect("a server error code");
    let expected = match t.backend {
        tenantry::Backend::Postgres => "42P01",
        tenantry::Backend::MySql => "42S02",
        tenantry::Backend::Sqlite => "1",
    };
    assert_eq!(code, expected);
    assert!(Error::TransactionDone.database_code().is_none());
});
