//! Enums stored as a PostgreSQL enum type (`#[derive(Enum)]` with `type_name`), from one
//! body on every backend (MySQL and SQLite keep the text): each tenant schema gets its own
//! type; values are written, filtered, updated, upserted, saved and paged in two tenants at
//! once, and neither sees the other's rows; the type orders by declaration on PostgreSQL;
//! name clashes are refused before any table is made; building twice is harmless.
mod common;

use tenantry::{create_schema, with_tenant, Enum, Error, Model, Registry, SchemaName};

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[model(type_name = "et_mood")]
enum Mood {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "so-so")]
    SoSo,
    #[model(rename = "happy")]
    Happy,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "et_entries", unique(person, mood))]
struct Entry {
    id: i64,
    #[model(max_length = 40)]
    person: String,
    #[model(index)]
    mood: Mood,
    previous: Option<Mood>,
    score: i32,
}

fn entry(person: &str, mood: Mood, score: i32) -> Entry {
    Entry {
        id: 0,
        person: person.into(),
        mood,
        previous: None,
        score,
    }
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(&[Entry::META]), false, true)
        .await
        .unwrap();
}

/// Every way a value meets the column, in the task's tenant; what the tenant then holds.
async fn work(r: Registry, person: &'static str) -> Vec<(String, Mood, Option<Mood>, i32)> {
    use Mood::*;
    let q = || Entry::query(&r);
    q().bulk_create([entry(person, Sad, 1), entry(person, SoSo, 2)])
        .await
        .unwrap();
    q().create(entry(person, Happy, 3)).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(q().filter(Entry::mood().eq(Sad)).count().await.unwrap(), 1);
    assert_eq!(q().filter(Entry::mood().ne(Sad)).count().await.unwrap(), 2);
    assert_eq!(
        q().filter(Entry::mood().is_in([Sad, Happy]))
            .count()
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        q().filter(Entry::previous().isnull(true))
            .count()
            .await
            .unwrap(),
        3
    );
    // An UPDATE setting both, then a save of one instance.
    q().filter(Entry::mood().eq(Sad))
        .update([Entry::previous().set(Sad), Entry::score().set(10)])
        .await
        .unwrap();
    let mut happy = q().get(Entry::mood().eq(Happy)).await.unwrap();
    happy.previous = Some(Happy);
    happy.save().await.unwrap();
    // An upsert on (person, mood): SoSo conflicts, the other is new... and already there.
    let stored = q()
        .on_conflict((Entry::person(), Entry::mood()))
        .do_update_set([Entry::score().set_expr(Entry::score() + 100)])
        .bulk_create([entry(person, SoSo, 0), entry(person, Happy, 0)])
        .await
        .unwrap();
    let mut upserted: Vec<(Mood, i32)> = stored.iter().map(|e| (e.mood, e.score)).collect();
    upserted.sort();
    assert_eq!(upserted, vec![(SoSo, 102), (Happy, 103)]);
    let (found, created) = q()
        .get_or_create(
            Entry::person().eq(person) & Entry::mood().eq(Sad),
            entry(person, Sad, 0),
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(found.previous, Some(Sad));
    q().order_by([Entry::score().asc()])
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.person.clone(), e.mood, e.previous, e.score))
        .collect()
}

backend_test!(
    typed_enums_are_written_filtered_and_upserted_in_two_tenants_at_once,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("eta"), t.schema("etb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let (in_a, in_b) = tokio::join!(
            with_tenant(Some(a.clone()), work(t.registry.clone(), "ann")),
            with_tenant(Some(b.clone()), work(t.registry.clone(), "bob")),
        );
        use Mood::*;
        let expected = |p: &str| {
            vec![
                (p.to_owned(), Sad, Some(Sad), 10),
                (p.to_owned(), SoSo, None, 102),
                (p.to_owned(), Happy, Some(Happy), 103),
            ]
        };
        assert_eq!(in_a, expected("ann"));
        assert_eq!(in_b, expected("bob"));
        if t.backend == tenantry::Backend::Postgres {
            // Each tenant's column has its own schema's type.
            for schema in [&a, &b] {
                let types = t
                    .registry
                    .clone()
                    .register::<Entry>()
                    .raw("SELECT pg_typeof({et_entries}.mood)::text FROM {et_entries} LIMIT 1")
                    .using(schema)
                    .fetch_as::<(String,)>()
                    .await
                    .unwrap();
                assert_eq!(types, vec![(format!("{schema}.et_mood"),)]);
            }
        }
    }
);

const KEY: &[u8] = b"a test key of at least thirty-two bytes!";

backend_test!(
    a_typed_enum_orders_by_declaration_on_postgres_and_by_text_elsewhere,
    |t: common::TestDb| async move {
        let a = t.schema("eto");
        tenant(&t.registry, &a).await;
        let r = &t.registry.clone().cursor_key(KEY);
        use Mood::*;
        Entry::query(r)
            .using(&a)
            .bulk_create([
                entry("x", Happy, 1),
                entry("x", Sad, 2),
                entry("x", SoSo, 3),
            ])
            .await
            .unwrap();
        let expected = match t.backend {
            tenantry::Backend::Postgres => vec![Sad, SoSo, Happy],
            _ => vec![Happy, Sad, SoSo],
        };
        let ordered: Vec<Mood> = Entry::query(r)
            .using(&a)
            .order_by([Entry::mood().asc()])
            .all()
            .await
            .unwrap()
            .iter()
            .map(|e| e.mood)
            .collect();
        assert_eq!(ordered, expected);
        let after_first = Entry::query(r)
            .using(&a)
            .filter(Entry::mood().gt(expected[0]))
            .count()
            .await
            .unwrap();
        assert_eq!(after_first, 2);
        // Keyset pages over the enum compare the cursor's value as the ordering does.
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = Entry::query(r)
                .using(&a)
                .order_by([Entry::mood().asc()])
                .page_after(1, cursor.as_deref())
                .await
                .unwrap();
            paged.extend(page.items.iter().map(|e| e.mood));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, expected);
    }
);

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
#[model(type_name = "et_mood")]
enum OtherMood {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "glad")]
    Glad,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "et_others")]
struct Other {
    id: i64,
    mood: OtherMood,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
#[model(type_name = "et_others")]
enum Clashing {
    One,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "et_clashes")]
struct Clash {
    id: i64,
    kind: Clashing,
}

backend_test!(
    enum_type_name_clashes_are_refused_before_any_table,
    |t: common::TestDb| async move {
        let a = t.schema("etc");
        for models in [
            &[Entry::META, Other::META][..],
            &[Other::META, Clash::META][..],
        ] {
            let created = create_schema(&t.registry, &a, Some(models), false, true).await;
            assert!(
                matches!(created, Err(Error::InvalidArgument { .. })),
                "{created:?}"
            );
            assert!(!t.registry.schema().exists(&a).await.unwrap());
        }
    }
);

backend_test!(
    building_twice_keeps_the_types_and_the_rows,
    |t: common::TestDb| async move {
        let a = t.schema("etr");
        tenant(&t.registry, &a).await;
        Entry::query(&t.registry)
            .using(&a)
            .create(entry("kept", Mood::SoSo, 1))
            .await
            .unwrap();
        create_schema(&t.registry, &a, Some(&[Entry::META]), true, true)
            .await
            .unwrap();
        let registry = t.registry.clone().register::<Entry>();
        registry.create_all().await.unwrap();
        registry.create_all().await.unwrap();
        Entry::query(&registry)
            .create(entry("shared", Mood::Happy, 1))
            .await
            .unwrap();
        let kept = Entry::query(&registry)
            .using(&a)
            .filter(Entry::mood().eq(Mood::SoSo))
            .all()
            .await
            .unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].person, "kept");
        let shared = Entry::query(&registry).all().await.unwrap();
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].mood, Mood::Happy);
    }
);

/// `Mood` a release later: two labels more, one between the old ones.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[model(type_name = "et_mood")]
enum MoodV2 {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "meh")]
    Meh,
    #[model(rename = "so-so")]
    SoSo,
    #[model(rename = "happy")]
    Happy,
    #[model(rename = "elated")]
    Elated,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "et_entries", unique(person, mood))]
struct EntryV2 {
    id: i64,
    #[model(max_length = 40)]
    person: String,
    #[model(index)]
    mood: MoodV2,
    previous: Option<MoodV2>,
    score: i32,
}

mod generated {
    use super::*;
    use tenantry::migrate::{
        diff, introspect, LiveSchema, Migration, MigrationScope, Migrations, Migrator, Renames,
        RunOptions, Snapshot,
    };

    /// The migration files `makemigrations` writes for the models of `Entry`, then of
    /// `EntryV2`.
    pub fn files() -> Vec<(String, String)> {
        let snapshot = |meta| Snapshot::of_models(&[meta], MigrationScope::Tenant).unwrap();
        let (v1, v2) = (snapshot(Entry::META), snapshot(EntryV2::META));
        let mut out = Vec::new();
        for (id, from, to) in [
            ("0001_entries", &Snapshot::default(), &v1),
            ("0002_more_moods", &v1, &v2),
        ] {
            let changes = diff(from, to, &Renames::default()).unwrap();
            assert!(changes.warnings.is_empty(), "{:?}", changes.warnings);
            let text = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
            out.push((id.to_owned(), text));
        }
        assert!(out[0].1.contains(r#""op":"create_enum""#), "{}", out[0].1);
        assert!(
            out[1].1.contains(r#""op":"add_enum_value""#),
            "{}",
            out[1].1
        );
        out
    }

    pub fn migrations(files: &[(String, String)], upto: usize) -> Migrations {
        let files: Vec<(&str, &str)> = files[..upto]
            .iter()
            .map(|(id, text)| (id.as_str(), text.as_str()))
            .collect();
        Migrations::from_files(&files).unwrap()
    }

    pub async fn migrate(registry: &Registry, schema: &SchemaName, set: Migrations) {
        let report = Migrator::new(registry, set)
            .run(RunOptions {
                tenant: Some(schema.clone()),
                ..RunOptions::default()
            })
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
    }

    pub async fn live(t: &common::TestDb, schema: &SchemaName) -> LiveSchema {
        introspect(t.registry.database(), Some(schema))
            .await
            .unwrap()
    }
}

backend_test!(
    generated_enum_migrations_replay_to_what_the_models_build_and_add_a_label,
    |t: common::TestDb| async move {
        let files = generated::files();
        let r = &t.registry;
        // Two tenants replayed at v1, each holding its own rows.
        let (a, b) = (t.schema("etma"), t.schema("etmb"));
        for (schema, person) in [(&a, "ann"), (&b, "bob")] {
            create_schema(r, schema, Some(&[]), false, false)
                .await
                .unwrap();
            generated::migrate(r, schema, generated::migrations(&files, 1)).await;
            Entry::query(r)
                .using(schema)
                .bulk_create([entry(person, Mood::Sad, 1), entry(person, Mood::Happy, 2)])
                .await
                .unwrap();
        }
        let built_v1 = t.schema("etm1");
        tenant(r, &built_v1).await;
        let differences = generated::live(&t, &built_v1)
            .await
            .differences(&generated::live(&t, &a).await);
        assert!(differences.is_empty(), "v1: {differences:?}");
        // Both move to v2 at once; each keeps its rows and writes a new label.
        let v2 = || generated::migrations(&files, 2);
        tokio::join!(
            generated::migrate(r, &a, v2()),
            generated::migrate(r, &b, v2())
        );
        let built_v2 = t.schema("etm2");
        create_schema(r, &built_v2, Some(&[EntryV2::META]), false, true)
            .await
            .unwrap();
        let (replayed, built) = (
            generated::live(&t, &a).await,
            generated::live(&t, &built_v2).await,
        );
        assert!(
            replayed.differences(&built).is_empty(),
            "v2: {:?}",
            replayed.differences(&built)
        );
        if t.backend == tenantry::Backend::Postgres {
            let labels = ["sad", "meh", "so-so", "happy", "elated"].map(String::from);
            assert_eq!(replayed.enums["et_mood"], labels);
            let column = replayed.tables["et_entries"].column("mood").unwrap();
            assert_eq!(column.data_type, "et_mood");
        }
        let write = |schema: SchemaName, person: &'static str| {
            let r = r.clone();
            with_tenant(Some(schema), async move {
                EntryV2::query(&r)
                    .create(EntryV2 {
                        id: 0,
                        person: person.into(),
                        mood: MoodV2::Meh,
                        previous: Some(MoodV2::Elated),
                        score: 3,
                    })
                    .await
                    .unwrap();
                EntryV2::query(&r)
                    .order_by([EntryV2::id().asc()])
                    .values_list((EntryV2::person(), EntryV2::mood()))
                    .await
                    .unwrap()
            })
        };
        let (in_a, in_b) = tokio::join!(write(a.clone(), "ann"), write(b.clone(), "bob"));
        let rows = |p: &str| {
            vec![
                (p.to_owned(), MoodV2::Sad),
                (p.to_owned(), MoodV2::Happy),
                (p.to_owned(), MoodV2::Meh),
            ]
        };
        assert_eq!(in_a, rows("ann"));
        assert_eq!(in_b, rows("bob"));
        // The release before reads a label it lacks as an error, never a default.
        let old = Entry::query(r).using(&a).all().await;
        assert!(
            matches!(old, Err(Error::Decode { column: "mood", .. })),
            "{old:?}"
        );
        let older_rows = Entry::query(r)
            .using(&a)
            .filter(Entry::mood().is_in([Mood::Sad, Mood::Happy]))
            .count()
            .await
            .unwrap();
        assert_eq!(older_rows, 2);
    }
);

/// `Mood` as it was before it had a type: text.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PlainMood {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "so-so")]
    SoSo,
    #[model(rename = "happy")]
    Happy,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "et_retyped")]
struct Plain {
    id: i64,
    #[model(default = PlainMood::SoSo)]
    mood: PlainMood,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "et_retyped")]
struct Typed {
    id: i64,
    #[model(default = Mood::SoSo)]
    mood: Mood,
}

backend_test!(
    a_text_column_becomes_an_enum_type_with_its_rows_and_default,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, introspect, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions,
            Snapshot,
        };
        let snapshot = |meta| Snapshot::of_models(&[meta], MigrationScope::Tenant).unwrap();
        let (v1, v2) = (snapshot(Plain::META), snapshot(Typed::META));
        let first = diff(&Snapshot::default(), &v1, &Renames::default()).unwrap();
        let second = diff(&v1, &v2, &Renames::default()).unwrap();
        assert!(
            matches!(
                &second.operations[..],
                [
                    tenantry::migrate::Operation::CreateEnum { .. },
                    tenantry::migrate::Operation::AlterColumn { .. }
                ]
            ),
            "{:?}",
            second.operations
        );
        let files = [
            Migration::file_text(MigrationScope::Tenant, false, &first.operations),
            Migration::file_text(MigrationScope::Tenant, true, &second.operations),
        ];
        let r = &t.registry;
        let a = t.schema("etx");
        create_schema(r, &a, Some(&[]), false, false).await.unwrap();
        let run = |upto: usize| {
            let ids = ["0001_plain", "0002_typed"];
            let files: Vec<(&str, &str)> = ids
                .iter()
                .zip(&files)
                .take(upto)
                .map(|(i, f)| (*i, f.as_str()))
                .collect();
            let migrations = Migrations::from_files(&files).unwrap();
            let tenant = a.clone();
            async move {
                Migrator::new(r, migrations)
                    .run(RunOptions {
                        tenant: Some(tenant),
                        ..RunOptions::default()
                    })
                    .await
            }
        };
        assert!(run(1).await.unwrap().is_complete());
        Plain::query(r)
            .using(&a)
            .bulk_create([
                Plain {
                    id: 0,
                    mood: PlainMood::Happy,
                },
                Plain {
                    id: 0,
                    mood: PlainMood::Sad,
                },
            ])
            .await
            .unwrap();
        assert!(run(2).await.unwrap().is_complete());
        let moods: Vec<Mood> = Typed::query(r)
            .using(&a)
            .order_by([Typed::id().asc()])
            .values_list(Typed::mood())
            .await
            .unwrap();
        assert_eq!(moods, vec![Mood::Happy, Mood::Sad]);
        let happy = Typed::query(r)
            .using(&a)
            .filter(Typed::mood().eq(Mood::Happy))
            .count()
            .await
            .unwrap();
        assert_eq!(happy, 1);
        let built = t.schema("etxb");
        create_schema(r, &built, Some(&[Typed::META]), false, true)
            .await
            .unwrap();
        let db = r.database();
        let (replayed, built) = (
            introspect(db, Some(&a)).await.unwrap(),
            introspect(db, Some(&built)).await.unwrap(),
        );
        assert!(
            replayed.differences(&built).is_empty(),
            "{:?}",
            replayed.differences(&built)
        );
        let column = built.tables["et_retyped"].column("mood").unwrap().clone();
        if t.backend == tenantry::Backend::Postgres {
            assert_eq!(column.data_type, "et_mood");
        }
        assert_eq!(
            column.default.as_deref().map(|d| d.trim_matches('\'')),
            Some("so-so")
        );
    }
);
