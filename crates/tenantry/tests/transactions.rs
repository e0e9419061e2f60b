//! Transactions: commit, rollback, drop, the `transaction` scope, and use after finishing.
mod common;
use common::models::*;
use tenantry::{Error, Registry};

/// The number of users as seen outside any transaction.
async fn outside(r: &Registry) -> u64 {
    User::query(r).count().await.unwrap()
}

backend_test!(commit_makes_rows_visible, |t: common::TestDb| async move {
    let r = &t.registry;
    let existing = User::query(r).create(user("Existing")).await.unwrap();
    let tx = r.begin().await.unwrap();
    let ann = User::query(&tx).create(user("Ann")).await.unwrap();
    assert!(ann.id > existing.id);
    User::query(&tx)
        .bulk_create([user("Ben"), user("Cat")])
        .await
        .unwrap();
    User::query(&tx)
        .filter(User::id().eq(existing.id))
        .update([User::name().set("Updated")])
        .await
        .unwrap();
    // Inside: everything; outside: nothing yet.
    assert_eq!(User::query(&tx).count().await.unwrap(), 4);
    assert_eq!(
        User::query(&tx)
            .get(User::name().eq("Ann"))
            .await
            .unwrap()
            .id,
        ann.id
    );
    assert_eq!(outside(r).await, 1);
    assert_eq!(
        User::query(r).get_pk(existing.id).await.unwrap().name,
        "Existing"
    );
    tx.commit().await.unwrap();
    assert_eq!(outside(r).await, 4);
    assert_eq!(
        User::query(r).get_pk(existing.id).await.unwrap().name,
        "Updated"
    );
    assert_eq!(User::query(r).get_pk(ann.id).await.unwrap().name, "Ann");
});

backend_test!(rollback_discards, |t: common::TestDb| async move {
    let r = &t.registry;
    let existing = User::query(r).create(user("Existing")).await.unwrap();
    let tx = r.begin().await.unwrap();
    User::query(&tx).create(user("Ann")).await.unwrap();
    assert_eq!(
        User::query(&tx)
            .filter(User::id().eq(existing.id))
            .delete()
            .await
            .unwrap(),
        1
    );
    assert_eq!(User::query(&tx).count().await.unwrap(), 1);
    tx.rollback().await.unwrap();
    assert_eq!(outside(r).await, 1);
    assert_eq!(
        User::query(r).get_pk(existing.id).await.unwrap().name,
        "Existing"
    );
    // The database is usable for writes afterwards.
    User::query(r).create(user("After")).await.unwrap();
    assert_eq!(outside(r).await, 2);
});

backend_test!(
    drop_without_commit_rolls_back,
    |t: common::TestDb| async move {
        let r = &t.registry;
        {
            let tx = r.begin().await.unwrap();
            let clone = tx.clone();
            User::query(&tx).create(user("Ann")).await.unwrap();
            User::query(&clone).create(user("Ben")).await.unwrap();
            assert_eq!(User::query(&tx).count().await.unwrap(), 2);
            drop(tx);
            // A clone keeps the transaction alive.
            assert_eq!(User::query(&clone).count().await.unwrap(), 2);
        }
        assert_eq!(outside(r).await, 0);
        // The connection went back to the pool clean: new writes and transactions work.
        User::query(r).create(user("After")).await.unwrap();
        let tx = r.begin().await.unwrap();
        User::query(&tx).create(user("Again")).await.unwrap();
        tx.commit().await.unwrap();
        let mut names: Vec<String> = User::query(r)
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.into_inner().name)
            .collect();
        names.sort();
        assert_eq!(names, ["After", "Again"]);
    }
);

backend_test!(
    transaction_scope_commits_on_ok,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let id = r
            .transaction(|tx| async move {
                let ann = User::query(&tx).create(user("Ann")).await?;
                Product::query(&tx)
                    .create(product("Lamp", Some(&ann)))
                    .await?;
                Ok(ann.id)
            })
            .await
            .unwrap();
        assert_eq!(User::query(r).get_pk(id).await.unwrap().name, "Ann");
        assert_eq!(Product::query(r).count().await.unwrap(), 1);
    }
);

backend_test!(
    transaction_scope_rolls_back_on_err,
    |t: common::TestDb| async move {
        let r = &t.registry;
        User::query(r).create(user("Existing")).await.unwrap();
        let result: tenantry::Result<()> = r
            .transaction(|tx| async move {
                User::query(&tx).create(user("Ann")).await?;
                User::query(&tx).update([User::name().set("Bad")]).await?;
                User::query(&tx).get(User::name().eq("Nobody")).await?;
                Ok(())
            })
            .await;
        assert!(
            matches!(result, Err(Error::NotFound { model: "users" })),
            "{result:?}"
        );
        assert_eq!(outside(r).await, 1);
        assert!(User::query(r)
            .filter(User::name().eq("Existing"))
            .exists()
            .await
            .unwrap());
        // A database error inside the scope rolls back, too.
        let result = r
            .transaction(|tx| async move {
                Tag::query(&tx)
                    .create(Tag {
                        token: uuid::Uuid::new_v4(),
                        label: "dup".into(),
                    })
                    .await?;
                Tag::query(&tx)
                    .create(Tag {
                        token: uuid::Uuid::new_v4(),
                        label: "dup".into(),
                    })
                    .await?;
                Ok(())
            })
            .await;
        assert!(
            matches!(result, Err(Error::UniqueViolation { .. })),
            "{result:?}"
        );
        assert_eq!(Tag::query(r).count().await.unwrap(), 0);
    }
);

backend_test!(
    finished_transaction_refuses_work,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let tx = r.begin().await.unwrap();
        User::query(&tx).create(user("Ann")).await.unwrap();
        tx.commit().await.unwrap();
        assert!(matches!(tx.commit().await, Err(Error::TransactionDone)));
        assert!(matches!(tx.rollback().await, Err(Error::TransactionDone)));
        assert!(matches!(
            User::query(&tx).count().await,
            Err(Error::TransactionDone)
        ));
        assert!(matches!(
            User::query(&tx).create(user("Late")).await,
            Err(Error::TransactionDone)
        ));
        assert_eq!(outside(r).await, 1);

        let tx = r.begin().await.unwrap();
        tx.rollback().await.unwrap();
        assert!(matches!(tx.commit().await, Err(Error::TransactionDone)));
        assert!(matches!(tx.rollback().await, Err(Error::TransactionDone)));
    }
);

backend_test!(
    instances_from_a_transaction_stay_in_it,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let ann = User::query(r).create(user("Ann")).await.unwrap();
        let ben = User::query(r).create(user("Ben")).await.unwrap();
        let tx = r.begin().await.unwrap();
        // The transaction writes first, so on SQLite it holds the write lock.
        User::query(&tx).create(user("Cat")).await.unwrap();
        let mut loaded = User::query(&tx).get_pk(ann.id).await.unwrap();
        loaded.name = "Changed in tx".into();
        loaded.save().await.unwrap();
        let mut fresh = User::query(&tx).instance(user("Dan")).unwrap();
        fresh.save().await.unwrap();
        User::query(&tx)
            .get_pk(ben.id)
            .await
            .unwrap()
            .delete()
            .await
            .unwrap();
        // The transaction sees its own work, refresh included.
        assert_eq!(User::query(&tx).count().await.unwrap(), 3);
        loaded.refresh().await.unwrap();
        assert_eq!(loaded.name, "Changed in tx");
        assert_eq!(User::query(&tx).get_pk(fresh.id).await.unwrap().name, "Dan");
        // Relations of an instance from the transaction read inside it, too.
        let cat = User::query(&tx).get(User::name().eq("Cat")).await.unwrap();
        Product::query(&tx)
            .create(product("Lamp", Some(&cat)))
            .await
            .unwrap();
        assert_eq!(cat.related(Product::user()).count().await.unwrap(), 1);
        let lamp = Product::query(&tx).first().await.unwrap().unwrap();
        assert_eq!(
            lamp.fetch(lamp.user.as_ref().unwrap()).await.unwrap().name,
            "Cat"
        );
        tx.rollback().await.unwrap();

        // None of it happened.
        let mut names: Vec<String> = User::query(r)
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.into_inner().name)
            .collect();
        names.sort();
        assert_eq!(names, ["Ann", "Ben"]);
        assert_eq!(Product::query(r).count().await.unwrap(), 0);

        // Committed work is kept, and instances from a finished transaction act on their
        // database.
        let tx = r.begin().await.unwrap();
        let mut loaded = User::query(&tx).get_pk(ann.id).await.unwrap();
        loaded.name = "Committed".into();
        loaded.save().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            User::query(r).get_pk(ann.id).await.unwrap().name,
            "Committed"
        );
        loaded.name = "After commit".into();
        loaded.save().await.unwrap();
        assert_eq!(
            User::query(r).get_pk(ann.id).await.unwrap().name,
            "After commit"
        );
        loaded.refresh().await.unwrap();
    }
);
