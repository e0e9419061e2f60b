//! Saving only some fields (`save_fields`) and optimistic locking (`#[model(version)]`)
//! inside the tenant: concurrent writers of different columns both kept; a stale save
//! refused with `VersionConflict` and nothing written; racing saves of one row with
//! exactly one winner per tenant, two tenants at once in one task, on pools of 1, 2 and 8;
//! bulk updates and upserts bump the version; on every backend.
mod common;

use tenantry::{create_schema, with_tenant, Error, Instance, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ct_docs")]
struct Doc {
    id: i64,
    #[model(max_length = 80, unique)]
    title: String,
    #[model(max_length = 80)]
    body: String,
    #[model(version)]
    version: i64,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ct_notes")]
struct Note {
    id: i64,
    #[model(max_length = 80)]
    title: String,
    #[model(max_length = 80)]
    body: String,
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(&[Doc::META, Note::META]), false, true)
        .await
        .unwrap();
    for i in 0..3 {
        Doc::query(registry)
            .using(name)
            .create(Doc {
                id: 0,
                title: format!("{name}-doc-{i}"),
                body: "draft".into(),
                version: 0,
            })
            .await
            .unwrap();
        Note::query(registry)
            .using(name)
            .create(Note {
                id: 0,
                title: format!("{name}-note-{i}"),
                body: "draft".into(),
            })
            .await
            .unwrap();
    }
}

async fn doc(registry: &Registry, tenant: &SchemaName, id: i64) -> Instance<Doc> {
    Doc::query(registry).using(tenant).get_pk(id).await.unwrap()
}

backend_test!(
    save_fields_keeps_a_concurrent_change_to_another_column,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ca"), t.schema("cb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let edit = |tenant: SchemaName| {
            let registry = t.registry.clone();
            async move {
                let notes = || Note::query(&registry).using(&tenant);
                let mut first = notes().get_pk(1).await.unwrap();
                let mut second = notes().get_pk(1).await.unwrap();
                first.title = format!("{tenant}-retitled");
                second.body = format!("{tenant}-rewritten");
                first.save_fields(Note::title()).await.unwrap();
                tokio::task::yield_now().await;
                second.save_fields((Note::body(),)).await.unwrap();
                notes().get_pk(1).await.unwrap().into_inner()
            }
        };
        let (in_a, in_b) = tokio::join!(edit(a.clone()), edit(b.clone()));
        assert_eq!(
            (in_a.title, in_a.body),
            (format!("{a}-retitled"), format!("{a}-rewritten"))
        );
        assert_eq!(
            (in_b.title, in_b.body),
            (format!("{b}-retitled"), format!("{b}-rewritten"))
        );
        // A save of an instance changed through it writes only what it changed; one never
        // changed writes every column (the row as the instance holds it).
        let notes = || Note::query(&t.registry).using(&a);
        let mut stale = notes().get_pk(2).await.unwrap();
        let untouched = notes().get_pk(2).await.unwrap();
        let mut fresh = notes().get_pk(2).await.unwrap();
        fresh.title = "fresh".into();
        fresh.save().await.unwrap();
        stale.body = "stale".into();
        stale.save().await.unwrap();
        let row = notes().get_pk(2).await.unwrap().into_inner();
        assert_eq!((row.title.as_str(), row.body.as_str()), ("fresh", "stale"));
        let mut untouched = untouched;
        untouched.save().await.unwrap();
        let row = notes().get_pk(2).await.unwrap().into_inner();
        assert_eq!(
            (row.title, row.body),
            (format!("{a}-note-1"), "draft".to_owned())
        );
    }
);

backend_test!(
    save_writes_only_the_fields_changed_through_the_instance,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("csa"), t.schema("csb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        // Two writers of one row per tenant, both tenants at once in one task: each save
        // keeps the other's field; a second change after a save is tracked afresh; a field
        // set back to its stored value is not written.
        let edit = |tenant: SchemaName| {
            let registry = t.registry.clone();
            async move {
                let notes = || Note::query(&registry).using(&tenant);
                let mut first = notes().get_pk(3).await.unwrap();
                let mut second = notes().get_pk(3).await.unwrap();
                first.title = format!("{tenant}-retitled");
                second.body = format!("{tenant}-rewritten");
                second.title = "scratch".into();
                second.title = format!("{tenant}-note-2");
                first.save().await.unwrap();
                tokio::task::yield_now().await;
                second.save().await.unwrap();
                first.body = format!("{tenant}-again");
                first.save().await.unwrap();
                notes().get_pk(3).await.unwrap().into_inner()
            }
        };
        let (in_a, in_b) = tokio::join!(edit(a.clone()), edit(b.clone()));
        for (tenant, row) in [(&a, in_a), (&b, in_b)] {
            assert_eq!(
                (row.title, row.body),
                (format!("{tenant}-retitled"), format!("{tenant}-again"))
            );
        }
        // With a version column: a change to one field is checked and bumped as before.
        let mut one = doc(&t.registry, &a, 1).await;
        let mut two = doc(&t.registry, &a, 1).await;
        one.body = "one".into();
        one.save().await.unwrap();
        two.title = "two".into();
        let stale = two.save().await;
        assert!(
            matches!(stale, Err(Error::VersionConflict { .. })),
            "{stale:?}"
        );
        // A failed save keeps its changes: refreshed onto the new version, they are
        // written by the next save (the refresh read them back, so it changes again).
        two.refresh().await.unwrap();
        two.title = "two".into();
        two.save().await.unwrap();
        let row = doc(&t.registry, &a, 1).await.into_inner();
        assert_eq!(
            (row.title.as_str(), row.body.as_str(), row.version),
            ("two", "one", 2)
        );
    }
);

backend_test!(
    a_stale_save_is_a_version_conflict_and_writes_nothing,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ca"), t.schema("cb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let mut first = doc(&t.registry, &a, 1).await;
        let mut second = doc(&t.registry, &a, 1).await;
        first.body = "first".into();
        first.save().await.unwrap();
        assert_eq!(first.version, 1);
        second.body = "second".into();
        let stale = second.save().await;
        assert!(
            matches!(stale, Err(Error::VersionConflict { model: "ct_docs" })),
            "{stale:?}"
        );
        let stale_fields = second.save_fields(Doc::body()).await;
        assert!(
            matches!(stale_fields, Err(Error::VersionConflict { .. })),
            "{stale_fields:?}"
        );
        let stored = doc(&t.registry, &a, 1).await;
        assert_eq!((stored.body.as_str(), stored.version), ("first", 1));
        // Read again, change again, save: the version moves on.
        second.refresh().await.unwrap();
        second.body = "second".into();
        second.save().await.unwrap();
        second.save().await.unwrap();
        assert_eq!(doc(&t.registry, &a, 1).await.version, 3);
        // Tenant b's row with the same key was never touched.
        let other = doc(&t.registry, &b, 1).await;
        assert_eq!((other.body.as_str(), other.version), ("draft", 0));
        // A deleted row is NotFound, not a conflict.
        let mut gone = doc(&t.registry, &a, 2).await;
        doc(&t.registry, &a, 2).await.delete().await.unwrap();
        let missing = gone.save().await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{missing:?}"
        );
    }
);

/// `n` instances of one row read first, then saved at once: returns how many saves won.
async fn race(registry: &Registry, tenant: &SchemaName, n: usize) -> usize {
    let mut readers = Vec::new();
    for _ in 0..n {
        readers.push(doc(registry, tenant, 3).await);
    }
    let saves = readers
        .into_iter()
        .enumerate()
        .map(|(i, mut reader)| async move {
            reader.body = format!("writer-{i}");
            match reader.save().await {
                Ok(()) => 1,
                Err(Error::VersionConflict { .. }) => 0,
                Err(other) => panic!("{other:?}"),
            }
        });
    futures_util::future::join_all(saves)
        .await
        .into_iter()
        .sum()
}

async fn racing_saves(t: common::TestDb) {
    let (a, b) = (t.schema("ca"), t.schema("cb"));
    tenant(&t.registry, &a).await;
    tenant(&t.registry, &b).await;
    let r = &t.registry;
    let (won_a, won_b) = tokio::join!(
        with_tenant(Some(a.clone()), race(r, &a, 10)),
        with_tenant(Some(b.clone()), race(r, &b, 6)),
    );
    assert_eq!((won_a, won_b), (1, 1));
    for tenant in [&a, &b] {
        let stored = doc(&t.registry, tenant, 3).await;
        assert_eq!(stored.version, 1);
        assert!(stored.body.starts_with("writer-"));
    }
}

backend_pool_test!(exactly_one_of_racing_saves_wins, racing_saves);
backend_test!(
    exactly_one_of_racing_saves_wins_on_the_default_pool,
    racing_saves
);

backend_test!(
    bulk_updates_and_upserts_bump_the_version,
    |t: common::TestDb| async move {
        let a = t.schema("ca");
        tenant(&t.registry, &a).await;
        let docs = || Doc::query(&t.registry).using(&a);
        let mut before_update = doc(&t.registry, &a, 1).await;
        docs()
            .filter(Doc::id().eq(1))
            .update([Doc::body().set("bulk".to_owned())])
            .await
            .unwrap();
        let stale = before_update.save().await;
        assert!(
            matches!(stale, Err(Error::VersionConflict { .. })),
            "{stale:?}"
        );
        let mut before_upsert = doc(&t.registry, &a, 1).await;
        assert_eq!(before_upsert.version, 1);
        let upserted = docs()
            .on_conflict(Doc::title())
            .do_update(Doc::body())
            .create(Doc {
                id: 0,
                title: format!("{a}-doc-0"),
                body: "upserted".into(),
                version: 0,
            })
            .await
            .unwrap();
        assert_eq!((upserted.body.as_str(), upserted.version), ("upserted", 2));
        let stale = before_upsert.save().await;
        assert!(
            matches!(stale, Err(Error::VersionConflict { .. })),
            "{stale:?}"
        );
        // update_or_create keeps the version it read and bumps it.
        let (updated, created) = docs()
            .update_or_create(
                Doc::title().eq(format!("{a}-doc-0")),
                Doc {
                    id: 0,
                    title: format!("{a}-doc-0"),
                    body: "via update_or_create".into(),
                    version: 0,
                },
            )
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(updated.version, 3);
        assert_eq!(doc(&t.registry, &a, 1).await.version, 3);
    }
);

backend_test!(
    save_fields_refuses_keys_and_unsaved_instances,
    |t: common::TestDb| async move {
        let a = t.schema("ca");
        tenant(&t.registry, &a).await;
        let mut one = doc(&t.registry, &a, 1).await;
        for result in [
            one.save_fields(Doc::id()).await,
            one.save_fields(Doc::version()).await,
            one.save_fields(Doc::version() + 1).await,
        ] {
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{result:?}"
            );
        }
        let mut unsaved = Doc::query(&t.registry)
            .using(&a)
            .instance(Doc {
                id: 0,
                title: "new".into(),
                body: "new".into(),
                version: 0,
            })
            .unwrap();
        let result = unsaved.save_fields(Doc::body()).await;
        assert!(matches!(result, Err(Error::NotSaved { .. })), "{result:?}");
        assert_eq!(doc(&t.registry, &a, 1).await.version, 0);
    }
);

/// `ct_vdocs` before its version column.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ct_vdocs")]
struct VDocBefore {
    id: i64,
    #[model(max_length = 80)]
    title: String,
}

/// `ct_vdocs` after: the version column added.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ct_vdocs")]
struct VDoc {
    id: i64,
    #[model(max_length = 80)]
    title: String,
    #[model(version)]
    version: i32,
}

/// The migration `makemigrations` would write from `from`'s models to `to`'s.
fn generated(from: &Registry, to: &Registry) -> String {
    use tenantry::migrate::{diff, Migration, MigrationScope, Renames, Snapshot};
    let before = Snapshot::of_models(from.models(), MigrationScope::Tenant).unwrap();
    let after = Snapshot::of_models(to.models(), MigrationScope::Tenant).unwrap();
    let changes = diff(&before, &after, &Renames::default()).unwrap();
    Migration::file_text(MigrationScope::Tenant, false, &changes.operations)
}

backend_test!(
    makemigrations_adds_a_version_column_to_rows_already_there,
    |t: common::TestDb| async move {
        use tenantry::migrate::{introspect, Migrations, Migrator, RunOptions};
        let db = t.registry.database().clone();
        let empty = Registry::new(db.clone());
        let v1 = Registry::new(db.clone()).register::<VDocBefore>();
        let v2 = Registry::new(db.clone()).register::<VDoc>();
        let first = generated(&empty, &v1);
        let second = generated(&v1, &v2);
        assert!(second.contains("\"version\""), "{second}");
        let (a, b) = (t.schema("ca"), t.schema("cb"));
        let migrate = |set: Migrations, tenant: SchemaName| {
            let registry = v2.clone();
            async move {
                let report = Migrator::new(&registry, set)
                    .run(RunOptions {
                        tenant: Some(tenant),
                        ..RunOptions::default()
                    })
                    .await
                    .unwrap();
                assert!(report.is_complete(), "{report:?}");
            }
        };
        for tenant in [&a, &b] {
            create_schema(&v1, tenant, Some(&[]), false, false)
                .await
                .unwrap();
            migrate(
                Migrations::from_files(&[("0001_initial", first.as_str())]).unwrap(),
                tenant.clone(),
            )
            .await;
            VDocBefore::query(&v1)
                .using(tenant)
                .create(VDocBefore {
                    id: 0,
                    title: format!("{tenant}-old"),
                })
                .await
                .unwrap();
        }
        let both = Migrations::from_files(&[
            ("0001_initial", first.as_str()),
            ("0002_version", second.as_str()),
        ])
        .unwrap();
        tokio::join!(
            migrate(both.clone(), a.clone()),
            migrate(both.clone(), b.clone())
        );
        // The rows already there start at version 0 and lock from there.
        let mut old = VDoc::query(&v2).using(&a).get_pk(1).await.unwrap();
        assert_eq!((old.title.clone(), old.version), (format!("{a}-old"), 0));
        let stale = VDoc::query(&v2).using(&a).get_pk(1).await.unwrap();
        old.title = "new".into();
        old.save().await.unwrap();
        let mut stale = stale;
        assert!(matches!(
            stale.save().await,
            Err(Error::VersionConflict { .. })
        ));
        assert_eq!(
            VDoc::query(&v2).using(&b).get_pk(1).await.unwrap().version,
            0
        );
        // A tenant built from the models has the same columns as the migrated one.
        let c = t.schema("cc");
        create_schema(&v2, &c, None, false, true).await.unwrap();
        let (built, migrated) = (
            introspect(&db, Some(&c)).await.unwrap(),
            introspect(&db, Some(&a)).await.unwrap(),
        );
        let differences = built.differences(&migrated);
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }
);
