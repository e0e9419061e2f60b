//! QuerySet: every builder method and operation, and the relations, on every backend.
mod common;
use std::collections::HashSet;

use common::models::*;
use tenantry::{Error, ForeignKey, Registry};

async fn seed_abc(r: &Registry) -> Vec<i64> {
    let mut ids = Vec::new();
    for name in ["Ann", "Ben", "Cat"] {
        ids.push(User::query(r).create(user(name)).await.unwrap().id);
    }
    ids
}

fn names(users: &[tenantry::Instance<User>]) -> Vec<&str> {
    users.iter().map(|u| u.name.as_str()).collect()
}

backend_test!(all_filter_exclude, |t: common::TestDb| async move {
    let r = &t.registry;
    assert!(User::query(r).all().await.unwrap().is_empty());
    seed_abc(r).await;
    let all = User::query(r)
        .order_by([User::name().asc()])
        .all()
        .await
        .unwrap();
    assert_eq!(names(&all), ["Ann", "Ben", "Cat"]);
    assert!(all.iter().all(|u| u.is_stored()));
    let some = User::query(r)
        .filter(User::name().ne("Ben"))
        .order_by([User::name().asc()])
        .all()
        .await
        .unwrap();
    assert_eq!(names(&some), ["Ann", "Cat"]);
    let excluded = User::query(r)
        .exclude(User::name().eq("Ben"))
        .exclude(User::name().eq("Cat"))
        .all()
        .await
        .unwrap();
    assert_eq!(names(&excluded), ["Ann"]);
    let none = User::query(r)
        .filter(User::name().eq("Ann"))
        .filter(User::name().eq("Ben"))
        .all()
        .await
        .unwrap();
    assert!(none.is_empty());
});

backend_test!(get_and_get_pk, |t: common::TestDb| async move {
    let r = &t.registry;
    let ids = seed_abc(r).await;
    let ben = User::query(r).get(User::name().eq("Ben")).await.unwrap();
    assert_eq!(ben.id, ids[1]);
    assert_eq!(ben.email, "ben@example.com");
    match User::query(r).get(User::name().eq("Nobody")).await {
        Err(Error::NotFound { model }) => assert_eq!(model, "users"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match User::query(r).get(User::name().ne("Ben")).await {
        Err(Error::MultipleObjectsReturned { model }) => assert_eq!(model, "users"),
        other => panic!("expected MultipleObjectsReturned, got {other:?}"),
    }
    // get combines with earlier filters.
    assert!(matches!(
        User::query(r)
            .filter(User::name().eq("Ann"))
            .get(User::name().eq("Ben"))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(User::query(r).get_pk(ids[2]).await.unwrap().name, "Cat");
    assert!(matches!(
        User::query(r).get_pk(ids[2] + 100).await,
        Err(Error::NotFound { .. })
    ));
});

backend_test!(first_last_count_exists, |t: common::TestDb| async move {
    let r = &t.registry;
    assert!(User::query(r).first().await.unwrap().is_none());
    assert!(User::query(r).last().await.unwrap().is_none());
    assert_eq!(User::query(r).count().await.unwrap(), 0);
    assert!(!User::query(r).exists().await.unwrap());
    let ids = seed_abc(r).await;
    assert_eq!(User::query(r).first().await.unwrap().unwrap().id, ids[0]);
    assert_eq!(User::query(r).last().await.unwrap().unwrap().id, ids[2]);
    assert_eq!(
        User::query(r)
            .order_by([User::name().desc()])
            .first()
            .await
            .unwrap()
            .unwrap()
            .name,
        "Cat"
    );
    assert_eq!(
        User::query(r)
            .order_by([User::name().desc()])
            .last()
            .await
            .unwrap()
            .unwrap()
            .name,
        "Ann"
    );
    assert_eq!(
        User::query(r)
            .filter(User::name().ne("Ann"))
            .first()
            .await
            .unwrap()
            .unwrap()
            .name,
        "Ben"
    );
    assert_eq!(User::query(r).count().await.unwrap(), 3);
    assert_eq!(
        User::query(r)
            .filter(User::name().ne("Ann"))
            .count()
            .await
            .unwrap(),
        2
    );
    assert!(User::query(r).exists().await.unwrap());
    assert!(User::query(r)
        .filter(User::name().eq("Cat"))
        .exists()
        .await
        .unwrap());
    assert!(!User::query(r)
        .filter(User::name().eq("Dan"))
        .exists()
        .await
        .unwrap());
});

backend_test!(create_returns_database_id, |t: common::TestDb| async move {
    let r = &t.registry;
    let mut model = user("Ann");
    model.id = 999_999; // ignored: the database assigns the key
    let ann = User::query(r).create(model).await.unwrap();
    assert!(ann.is_stored());
    assert_ne!(ann.id, 999_999);
    let ben = User::query(r).create(user("Ben")).await.unwrap();
    assert!(ben.id > ann.id);
    let stored = User::query(r).get(User::name().eq("Ann")).await.unwrap();
    assert_eq!(stored.id, ann.id);
    assert_eq!(*stored, *ann);
    assert!(matches!(
        User::query(r).get_pk(999_999_i64).await,
        Err(Error::NotFound { .. })
    ));
    // The DDL default applies to the column; the model's own value is what is written.
    let mut active = user("Active");
    active.is_active = true;
    let active = User::query(r).create(active).await.unwrap();
    assert!(User::query(r).get_pk(active.id).await.unwrap().is_active);
});

backend_test!(bulk_create_sets_keys, |t: common::TestDb| async move {
    let r = &t.registry;
    assert!(User::query(r)
        .bulk_create(Vec::<User>::new())
        .await
        .unwrap()
        .is_empty());
    // More rows than one batch holds on every backend (the largest batch is 65 535 bind
    // parameters / 3 columns = 21 845 rows).
    const N: usize = 25_000;
    let models: Vec<User> = (0..N)
        .map(|i| User {
            id: 0,
            name: format!("user {i}"),
            email: format!("u{i}@example.com"),
            is_active: i % 3 == 0,
        })
        .collect();
    let created = User::query(r).bulk_create(models).await.unwrap();
    assert_eq!(created.len(), N);
    let ids: HashSet<i64> = created.iter().map(|u| u.id).collect();
    assert_eq!(ids.len(), N, "keys are distinct");
    assert!(created.iter().all(|u| u.id > 0 && u.is_stored()));
    assert_eq!(User::query(r).count().await.unwrap(), N as u64);
    // Every key names the row that was stored for that model.
    let stored: std::collections::HashMap<i64, (String, bool)> = User::query(r)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| {
            let u = u.into_inner();
            (u.id, (u.name, u.is_active))
        })
        .collect();
    assert_eq!(stored.len(), N);
    for (i, u) in created.iter().enumerate() {
        assert_eq!(u.name, format!("user {i}"));
        assert_eq!(
            stored.get(&u.id),
            Some(&(format!("user {i}"), i % 3 == 0)),
            "row {i}"
        );
    }
    // A second, small bulk continues after the first.
    let more = User::query(r)
        .bulk_create([user("x1"), user("x2")])
        .await
        .unwrap();
    assert!(more.iter().all(|u| !ids.contains(&u.id)));
    assert_eq!(User::query(r).get_pk(more[1].id).await.unwrap().name, "x2");
});

backend_test!(
    update_and_delete_count_rows,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let ids = seed_abc(r).await;
        let n = User::query(r)
            .filter(User::name().ne("Ann"))
            .update([
                User::is_active().set(true),
                User::email().set("x@example.com"),
            ])
            .await
            .unwrap();
        assert_eq!(n, 2);
        let ann = User::query(r).get_pk(ids[0]).await.unwrap();
        assert!(!ann.is_active);
        assert_eq!(ann.email, "ann@example.com");
        let ben = User::query(r).get_pk(ids[1]).await.unwrap();
        assert!(ben.is_active);
        assert_eq!(ben.email, "x@example.com");
        assert_eq!(
            User::query(r)
                .filter(User::name().eq("Nobody"))
                .update([User::is_active().set(true)])
                .await
                .unwrap(),
            0
        );
        // Without a filter, every row.
        assert_eq!(
            User::query(r)
                .update([User::name().set("Same")])
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            User::query(r)
                .filter(User::id().eq(ids[0]))
                .delete()
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            User::query(r)
                .filter(User::id().eq(ids[0]))
                .delete()
                .await
                .unwrap(),
            0
        );
        assert_eq!(User::query(r).count().await.unwrap(), 2);
        assert_eq!(User::query(r).delete().await.unwrap(), 2);
        assert_eq!(User::query(r).count().await.unwrap(), 0);
    }
);

backend_test!(order_limit_offset, |t: common::TestDb| async move {
    let r = &t.registry;
    User::query(r)
        .bulk_create(
            [
                ("b", true),
                ("a", false),
                ("d", true),
                ("c", false),
                ("e", true),
            ]
            .map(|(name, active)| User {
                is_active: active,
                ..user(name)
            }),
        )
        .await
        .unwrap();
    let asc = User::query(r)
        .order_by([User::name().asc()])
        .all()
        .await
        .unwrap();
    assert_eq!(names(&asc), ["a", "b", "c", "d", "e"]);
    let desc = User::query(r)
        .order_by([User::name().desc()])
        .all()
        .await
        .unwrap();
    assert_eq!(names(&desc), ["e", "d", "c", "b", "a"]);
    // A second ordering breaks ties, also when added by a later call.
    let tied = User::query(r)
        .order_by([User::is_active().desc()])
        .order_by([User::name().asc()])
        .all()
        .await
        .unwrap();
    assert_eq!(names(&tied), ["b", "d", "e", "a", "c"]);
    let limited = User::query(r)
        .order_by([User::name().asc()])
        .limit(2)
        .all()
        .await
        .unwrap();
    assert_eq!(names(&limited), ["a", "b"]);
    let page = User::query(r)
        .order_by([User::name().asc()])
        .limit(2)
        .offset(2)
        .all()
        .await
        .unwrap();
    assert_eq!(names(&page), ["c", "d"]);
    // OFFSET without LIMIT.
    let rest = User::query(r)
        .order_by([User::name().asc()])
        .offset(3)
        .all()
        .await
        .unwrap();
    assert_eq!(names(&rest), ["d", "e"]);
    let past_end = User::query(r)
        .order_by([User::name().asc()])
        .offset(10)
        .all()
        .await
        .unwrap();
    assert!(past_end.is_empty());
    assert!(User::query(r).limit(0).all().await.unwrap().is_empty());
    // Builder calls may come in any order.
    let any_order = User::query(r)
        .limit(1)
        .offset(1)
        .filter(User::is_active().eq(true))
        .order_by([User::name().desc()])
        .all()
        .await
        .unwrap();
    assert_eq!(names(&any_order), ["d"]);
    // first/last respect filters and orderings; the filtered count ignores limit.
    assert_eq!(
        User::query(r)
            .filter(User::is_active().eq(false))
            .order_by([User::name().asc()])
            .last()
            .await
            .unwrap()
            .unwrap()
            .name,
        "c"
    );
});

backend_test!(get_or_create, |t: common::TestDb| async move {
    let r = &t.registry;
    let (ann, created) = User::query(r)
        .get_or_create(User::name().eq("Ann"), user("Ann"))
        .await
        .unwrap();
    assert!(created);
    assert!(ann.id > 0);
    let (again, created) = User::query(r)
        .get_or_create(User::name().eq("Ann"), user("Ann"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, ann.id);
    // The defaults are not applied to an existing row.
    let mut other = user("Ann");
    other.email = "other@example.com".into();
    let (found, created) = User::query(r)
        .get_or_create(User::name().eq("Ann"), other)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(found.email, "ann@example.com");
    assert_eq!(User::query(r).count().await.unwrap(), 1);
    // Several matches are an error, not a creation.
    User::query(r).create(user("Ann")).await.unwrap();
    assert!(matches!(
        User::query(r)
            .get_or_create(User::name().eq("Ann"), user("Ann"))
            .await,
        Err(Error::MultipleObjectsReturned { .. })
    ));
    assert_eq!(User::query(r).count().await.unwrap(), 2);
});

backend_test!(
    get_or_create_unique_race_reads_back,
    |t: common::TestDb| async move {
        let r = &t.registry;
        // Concurrent get_or_create calls on a unique column: all agree on one row.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                Tag::query(&r)
                    .get_or_create(
                        Tag::label().eq("shared"),
                        Tag {
                            token: uuid::Uuid::new_v4(),
                            label: "shared".into(),
                        },
                    )
                    .await
            }));
        }
        let mut tokens = HashSet::new();
        let mut creations = 0;
        for task in tasks {
            let (tag, created) = task.await.unwrap().unwrap();
            tokens.insert(tag.token);
            creations += usize::from(created);
        }
        assert_eq!(tokens.len(), 1);
        assert_eq!(creations, 1);
        assert_eq!(Tag::query(r).count().await.unwrap(), 1);
    }
);

backend_test!(update_or_create, |t: common::TestDb| async move {
    let r = &t.registry;
    let (ann, created) = User::query(r)
        .update_or_create(User::name().eq("Ann"), user("Ann"))
        .await
        .unwrap();
    assert!(created);
    let mut changed = user("Ann");
    changed.email = "new@example.com".into();
    changed.is_active = true;
    let (updated, created) = User::query(r)
        .update_or_create(User::name().eq("Ann"), changed)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(updated.id, ann.id);
    assert_eq!(updated.email, "new@example.com");
    assert!(updated.is_active);
    let stored = User::query(r).get_pk(ann.id).await.unwrap();
    assert_eq!(stored.email, "new@example.com");
    assert!(stored.is_active);
    assert_eq!(User::query(r).count().await.unwrap(), 1);
});

backend_test!(select_related_loads_users, |t: common::TestDb| async move {
    let r = &t.registry;
    let ann = User::query(r).create(user("Ann")).await.unwrap();
    let ben = User::query(r).create(user("Ben")).await.unwrap();
    Product::query(r)
        .bulk_create([
            product("Lamp", Some(&ann)),
            product("Desk", Some(&ben)),
            product("Pen", Some(&ann)),
            product("Loose", None),
        ])
        .await
        .unwrap();
    let products = Product::query(r)
        .select_related(Product::user())
        .order_by([Product::name().asc()])
        .all()
        .await
        .unwrap();
    let view: Vec<(&str, Option<&str>)> = products
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.user
                    .as_ref()
                    .map(|fk| fk.get().expect("loaded").name.as_str()),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("Desk", Some("Ben")),
            ("Lamp", Some("Ann")),
            ("Loose", None),
            ("Pen", Some("Ann"))
        ]
    );
    let loaded = products[1].user.as_ref().unwrap().get().unwrap();
    assert_eq!(loaded.id, ann.id);
    assert_eq!(**loaded, *ann);
    assert!(loaded.is_stored());
    // Without select_related nothing is loaded.
    let plain = Product::query(r)
        .filter(Product::name().eq("Lamp"))
        .all()
        .await
        .unwrap();
    assert!(plain[0].user.as_ref().unwrap().get().is_none());
    // get goes through select_related too.
    let pen = Product::query(r)
        .select_related(Product::user())
        .get(Product::name().eq("Pen"))
        .await
        .unwrap();
    assert_eq!(pen.user.as_ref().unwrap().get().unwrap().name, "Ann");
    // Only orphans: nothing to load, nothing fails.
    let loose = Product::query(r)
        .select_related(Product::user())
        .filter(Product::user().isnull(true))
        .all()
        .await
        .unwrap();
    assert_eq!(loose.len(), 1);
    // A loaded instance is a real one: it can be saved.
    let mut owner = pen.user.as_ref().unwrap().get().unwrap().clone();
    owner.name = "Annie".into();
    owner.save().await.unwrap();
    assert_eq!(User::query(r).get_pk(ann.id).await.unwrap().name, "Annie");
});

backend_test!(
    reverse_and_forward_relations,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let ann = User::query(r).create(user("Ann")).await.unwrap();
        let ben = User::query(r).create(user("Ben")).await.unwrap();
        Product::query(r)
            .bulk_create([
                product("Lamp", Some(&ann)),
                product("Desk", Some(&ben)),
                product("Pen", Some(&ann)),
            ])
            .await
            .unwrap();
        let mut anns = ann
            .related(Product::user())
            .order_by([Product::name().asc()])
            .all()
            .await
            .unwrap();
        assert_eq!(
            anns.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["Lamp", "Pen"]
        );
        assert_eq!(ben.related(Product::user()).count().await.unwrap(), 1);
        assert_eq!(
            ann.related(Product::user())
                .filter(Product::name().eq("Pen"))
                .count()
                .await
                .unwrap(),
            1
        );
        let lamp = anns.remove(0);
        let owner = lamp.fetch(lamp.user.as_ref().unwrap()).await.unwrap();
        assert_eq!(owner.id, ann.id);
        assert_eq!(*owner, *ann);
        // A forward load of a row that is gone is NotFound.
        let ghost = ForeignKey::<User>::new(ben.id + 1000);
        assert!(matches!(
            lamp.fetch(&ghost).await,
            Err(Error::NotFound { .. })
        ));
        // Moving a product between users through the foreign key.
        let mut desk = ben
            .related(Product::user())
            .get(Product::name().eq("Desk"))
            .await
            .unwrap();
        desk.user = Some((&ann).into());
        desk.save().await.unwrap();
        assert_eq!(ann.related(Product::user()).count().await.unwrap(), 3);
        assert_eq!(ben.related(Product::user()).count().await.unwrap(), 0);
    }
);

backend_test!(on_delete_set_null, |t: common::TestDb| async move {
    let r = &t.registry;
    let ann = User::query(r).create(user("Ann")).await.unwrap();
    let lamp = Product::query(r)
        .create(product("Lamp", Some(&ann)))
        .await
        .unwrap();
    ann.delete().await.unwrap();
    let lamp = Product::query(r).get_pk(lamp.id).await.unwrap();
    assert!(lamp.user.is_none());
});
