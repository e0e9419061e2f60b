//! The field types real schemas use, on every backend: `i16`, `f32`, `Vec<u8>`,
//! `NaiveDateTime`, `NaiveTime` and `Json<T>` round-trip in two tenants written at once, with
//! filters and orderings on them; a JSON document that is not a `T` is a decode error; and
//! the migration `makemigrations` writes for them builds the same tables as the models.
mod common;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};
use tenantry::{create_schema, with_tenant, Error, Json, Model, Registry, SchemaName};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Settings {
    theme: String,
    limits: Vec<u32>,
    beta: Option<bool>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "mt_rows")]
struct Typed {
    id: i64,
    small: i16,
    single: f32,
    blob: Vec<u8>,
    local: NaiveDateTime,
    clock: NaiveTime,
    settings: Json<Settings>,
    maybe_small: Option<i16>,
    maybe_blob: Option<Vec<u8>>,
    maybe_settings: Option<Json<Settings>>,
}

/// The same table read with an untyped document, to write JSON that is no `Settings`.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "mt_rows")]
struct Untyped {
    id: i64,
    small: i16,
    single: f32,
    blob: Vec<u8>,
    local: NaiveDateTime,
    clock: NaiveTime,
    settings: serde_json::Value,
    maybe_small: Option<i16>,
    maybe_blob: Option<Vec<u8>>,
    maybe_settings: Option<serde_json::Value>,
}

fn local(day: u32, micros: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 2, day)
        .unwrap()
        .and_hms_micro_opt(23, 59, 58, micros)
        .unwrap()
}

fn row(tenant: &str, i: i16) -> Typed {
    Typed {
        id: 0,
        small: i16::MIN + i,
        single: 1.5 + f32::from(i),
        blob: [tenant.as_bytes(), &[0, 255, 7, i as u8]].concat(),
        local: local(1 + i as u32, 123_456),
        clock: NaiveTime::from_hms_micro_opt(8, i as u32, 30, 999_999).unwrap(),
        settings: Json(Settings {
            theme: format!("{tenant}-dark"),
            limits: vec![1, 2, i as u32],
            beta: (i % 2 == 0).then_some(true),
        }),
        maybe_small: (i > 0).then_some(i16::MAX),
        maybe_blob: (i > 0).then(Vec::new),
        maybe_settings: None,
    }
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(&[Typed::META]), false, true)
        .await
        .unwrap();
}

async fn write_and_read(registry: Registry, tenant: SchemaName) -> Vec<Typed> {
    let rows: Vec<Typed> = (0..3).map(|i| row(tenant.as_str(), i)).collect();
    Typed::query(&registry)
        .bulk_create(rows.clone())
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let stored = Typed::query(&registry)
        .order_by([Typed::local().desc()])
        .all()
        .await
        .unwrap();
    let stored: Vec<Typed> = stored.into_iter().map(|r| r.into_inner()).collect();
    for (stored, given) in stored.iter().zip(rows.iter().rev()) {
        assert_eq!(
            Typed {
                id: 0,
                ..stored.clone()
            },
            *given
        );
    }
    stored
}

backend_test!(
    new_types_round_trip_in_each_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ta"), t.schema("tb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let (in_a, in_b) = tokio::join!(
            with_tenant(
                Some(a.clone()),
                write_and_read(t.registry.clone(), a.clone())
            ),
            with_tenant(
                Some(b.clone()),
                write_and_read(t.registry.clone(), b.clone())
            ),
        );
        assert!(in_a.iter().all(|r| r.settings.theme == format!("{a}-dark")));
        assert!(in_b
            .iter()
            .all(|r| r.blob.starts_with(b.as_str().as_bytes())));
        let rows = || Typed::query(&t.registry).using(&a);
        // Filters on each type.
        assert_eq!(
            rows()
                .filter(Typed::small().eq(i16::MIN + 1))
                .count()
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            rows()
                .filter(Typed::single().gt(2.0f32))
                .count()
                .await
                .unwrap(),
            2
        );
        let blob = [a.as_str().as_bytes(), &[0, 255, 7, 2]].concat();
        assert_eq!(
            rows().filter(Typed::blob().eq(blob)).count().await.unwrap(),
            1
        );
        assert_eq!(
            rows()
                .filter(Typed::local().gte(local(2, 0)))
                .count()
                .await
                .unwrap(),
            2
        );
        let clock = NaiveTime::from_hms_micro_opt(8, 0, 30, 999_999).unwrap();
        assert_eq!(
            rows()
                .filter(Typed::clock().eq(clock))
                .count()
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            rows()
                .filter(Typed::maybe_small().isnull(true))
                .count()
                .await
                .unwrap(),
            1
        );
        // Updates, expressions and aggregates on them.
        rows()
            .update([
                Typed::small().set_expr(Typed::small() + 1),
                Typed::maybe_settings().set(Json(Settings {
                    theme: "set".into(),
                    limits: Vec::new(),
                    beta: None,
                })),
            ])
            .await
            .unwrap();
        let (low, latest) = rows()
            .aggregate((Typed::small().min(), Typed::local().max()))
            .await
            .unwrap();
        assert_eq!((low, latest), (Some(i16::MIN + 1), Some(local(3, 123_456))));
        let one = rows().first().await.unwrap().unwrap();
        assert_eq!(
            one.maybe_settings.as_ref().map(|s| s.theme.as_str()),
            Some("set")
        );
        // Tenant b's rows are as written.
        let smalls = Typed::query(&t.registry)
            .using(&b)
            .order_by([Typed::id().asc()])
            .values_list(Typed::small())
            .await
            .unwrap();
        assert_eq!(smalls, vec![i16::MIN, i16::MIN + 1, i16::MIN + 2]);
    }
);

backend_test!(
    a_document_that_is_not_the_type_is_a_decode_error,
    |t: common::TestDb| async move {
        let a = t.schema("ta");
        tenant(&t.registry, &a).await;
        let mut odd = Untyped {
            id: 0,
            small: 1,
            single: 0.5,
            blob: Vec::new(),
            local: local(1, 0),
            clock: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            settings: serde_json::json!({"theme": 7}),
            maybe_small: None,
            maybe_blob: None,
            maybe_settings: None,
        };
        Untyped::query(&t.registry)
            .using(&a)
            .create(odd.clone())
            .await
            .unwrap();
        let read = Typed::query(&t.registry).using(&a).all().await;
        assert!(matches!(read, Err(Error::Decode { .. })), "{read:?}");
        // i16 out of range is refused by the type itself; a small overflow by the database.
        odd.settings = serde_json::json!({"theme": "x", "limits": [], "beta": null});
        Untyped::query(&t.registry)
            .using(&a)
            .create(odd)
            .await
            .unwrap();
        let overflow = Typed::query(&t.registry)
            .using(&a)
            .update([Typed::small().set_expr(Typed::small() + i16::MAX)])
            .await;
        assert!(
            matches!(overflow, Err(Error::OutOfRange { .. })),
            "{overflow:?}"
        );
    }
);

backend_test!(
    makemigrations_builds_the_same_tables,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, introspect, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions,
            Snapshot,
        };
        let db = t.registry.database().clone();
        let registry = Registry::new(db.clone()).register::<Typed>();
        let models = Snapshot::of_models(registry.models(), MigrationScope::Tenant).unwrap();
        let changes = diff(&Snapshot::default(), &models, &Renames::default()).unwrap();
        let text = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
        for name in ["small_integer", "float", "bytes", "date_time", "time"] {
            assert!(text.contains(&format!("\"{name}\"")), "{name}: {text}");
        }
        let (built, migrated) = (t.schema("tbuilt"), t.schema("tmigrated"));
        create_schema(&registry, &built, None, false, true)
            .await
            .unwrap();
        create_schema(&registry, &migrated, Some(&[]), false, false)
            .await
            .unwrap();
        let set = Migrations::from_files(&[("0001_initial", text.as_str())]).unwrap();
        let report = Migrator::new(&registry, set)
            .run(RunOptions {
                tenant: Some(migrated.clone()),
                ..RunOptions::default()
            })
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
        let differences = introspect(&db, Some(&built))
            .await
            .unwrap()
            .differences(&introspect(&db, Some(&migrated)).await.unwrap());
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        // And the migrated tenant stores the types.
        let stored = Typed::query(&registry)
            .using(&migrated)
            .create(row("m", 1))
            .await
            .unwrap();
        let loaded = Typed::query(&registry)
            .using(&migrated)
            .get_pk(stored.id)
            .await
            .unwrap();
        assert_eq!(*loaded, *stored);
    }
);
