//! Adversarial tests of PostgreSQL enum types (`#[derive(Enum)]` with `type_name`) and of
//! `Instance::save()` writing only the fields changed through the instance, on every
//! backend. Tests marked `// Found by review:` failed before the fix named there.
//! Models keyed by an enum type are refused at compile time (tests/ui/enum_primary_key.rs).
mod common;

use tenantry::{
    create_schema, with_tenant, Backend, Enum, Error, ForeignKey, HookContext, Hooks, Model,
    Registry, SchemaName,
};

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[model(type_name = "ae_mood")]
enum Mood {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "so-so")]
    SoSo,
    #[model(rename = "happy")]
    Happy,
}

/// The same type name, other labels (another crate, another registry).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[model(type_name = "ae_mood")]
enum OtherMood {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "glad")]
    Glad,
}

/// A shared model with an enum column: its type lives in the shared schema.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_plans", shared)]
struct Plan {
    id: i64,
    #[model(max_length = 40, unique)]
    name: String,
    mood: Mood,
}

/// A tenant model related to the shared one, with an enum column of its own schema's type.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_items")]
struct Item {
    id: i64,
    plan: ForeignKey<Plan>,
    mood: Mood,
    #[model(max_length = 40)]
    note: String,
}

/// An enum column with a unique key on it alone.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_tallies")]
struct Tally {
    id: i64,
    #[model(unique)]
    mood: Mood,
    hits: i32,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_logs")]
struct Log {
    id: i64,
    mood: Mood,
    n: i32,
}

/// A table of the other registry: `ae_mood` with other labels.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_others")]
struct Elsewhere {
    id: i64,
    mood: OtherMood,
}

/// A model whose pre_save hook changes a field.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_stamped", hooks)]
struct Stamped {
    id: i64,
    mood: Mood,
    #[model(max_length = 40)]
    note: String,
    saves: i32,
}

impl Hooks for Stamped {
    async fn pre_save(&mut self, _hook: &HookContext<Self>) -> tenantry::Result<()> {
        self.saves += 1;
        Ok(())
    }
}

fn log(mood: Mood, n: i32) -> Log {
    Log { id: 0, mood, n }
}

/// The shared plans and tenants holding items (and the other tenant models).
async fn build(t: &common::TestDb, tenants: &[&str]) -> (Registry, Vec<SchemaName>) {
    let registry = t
        .registry
        .clone()
        .register::<Plan>()
        .register::<Item>()
        .register::<Tally>()
        .register::<Log>();
    registry.create_all().await.unwrap();
    let mut schemas = Vec::new();
    for name in tenants {
        let schema = t.schema(name);
        create_schema(
            &registry,
            &schema,
            Some(&[Item::META, Tally::META, Log::META]),
            false,
            true,
        )
        .await
        .unwrap();
        schemas.push(schema);
    }
    (registry, schemas)
}

/// Lookups from tenant items into the shared plans' enum column, in the task's tenant.
async fn lookups(r: Registry, gold: i64, tin: i64, tag: &'static str) -> Vec<u64> {
    use Mood::*;
    let items = || Item::query(&r);
    let item = |plan: i64, mood: Mood, note: &str| Item {
        id: 0,
        plan: ForeignKey::new(plan),
        mood,
        note: format!("{tag}-{note}"),
    };
    items()
        .bulk_create([item(gold, Sad, "gold"), item(tin, Happy, "tin")])
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let via_plan = |f| async { items().filter(f).count().await.unwrap() };
    let excluded = |f| async { items().exclude(f).count().await.unwrap() };
    let mut out = vec![
        via_plan(Item::plan().to(Plan::mood()).eq(Happy)).await,
        via_plan(Item::plan().to(Plan::mood()).ne(Happy)).await,
        via_plan(Item::plan().to(Plan::mood()).is_in([Sad, SoSo])).await,
        via_plan(Item::plan().to(Plan::mood()).is_in(Vec::<Mood>::new())).await,
        excluded(Item::plan().to(Plan::mood()).is_in(Vec::<Mood>::new())).await,
        excluded(Item::plan().to(Plan::mood()).eq(Sad)).await,
        via_plan(!Item::plan().to(Plan::mood()).eq(Happy) & Item::mood().eq(Sad)).await,
        via_plan(Item::plan().to(Plan::mood()).gt(Sad)).await,
    ];
    // Ordered by the shared plan's enum: by declaration (tin, sad, first) on PostgreSQL,
    // by text ("happy" < "sad": gold first) elsewhere.
    let ordered: Vec<String> = items()
        .filter(Item::plan().to(Plan::mood()).eq(Happy) | Item::mood().eq(Happy))
        .order_by([Item::plan().to(Plan::mood()).asc()])
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.note.clone())
        .collect();
    assert_eq!(ordered.len(), 2);
    // 1: the tin plan (sad) first, as PostgreSQL's declaration order puts it.
    out.push(u64::from(ordered[0].ends_with("tin")));
    out
}

backend_pool_test!(
    an_enum_column_of_a_shared_model_is_filtered_through_a_relation_from_two_tenants_at_once,
    |t: common::TestDb| async move {
        let (r, schemas) = build(&t, &["lka", "lkb"]).await;
        let plan = |name: &str, mood| Plan {
            id: 0,
            name: name.into(),
            mood,
        };
        let gold = Plan::query(&r)
            .create(plan("gold", Mood::Happy))
            .await
            .unwrap();
        let tin = Plan::query(&r)
            .create(plan("tin", Mood::Sad))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            with_tenant(
                Some(schemas[0].clone()),
                lookups(r.clone(), gold.id, tin.id, "a")
            ),
            with_tenant(
                Some(schemas[1].clone()),
                lookups(r.clone(), gold.id, tin.id, "b")
            ),
        );
        let gt_sad = match t.backend {
            // Declaration order: so-so and happy follow sad.
            Backend::Postgres => 1,
            // Text order: "happy" < "sad".
            _ => 0,
        };
        let expected = vec![1, 1, 1, 0, 2, 1, 0, gt_sad, gt_sad];
        assert_eq!(a, expected);
        assert_eq!(b, expected);
    }
);

/// Every write and read of the shared plans' enum column from inside a tenant.
async fn shared_from_tenant(r: Registry, tag: &'static str) -> Vec<(String, Mood)> {
    use Mood::*;
    let plans = || Plan::query(&r);
    let name = |n: &str| format!("{tag}-{n}");
    let plan = |n: &str, mood| Plan {
        id: 0,
        name: name(n),
        mood,
    };
    plans().create(plan("one", Sad)).await.unwrap();
    plans()
        .bulk_create([plan("two", SoSo), plan("three", Happy)])
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let mine = || plans().filter(Plan::name().startswith(tag));
    assert_eq!(
        mine().filter(Plan::mood().eq(Sad)).count().await.unwrap(),
        1
    );
    mine()
        .filter(Plan::mood().eq(SoSo))
        .update([Plan::mood().set(Happy)])
        .await
        .unwrap();
    let (_, created) = plans()
        .get_or_create(
            Plan::name().eq(name("one")) & Plan::mood().eq(Sad),
            plan("one", Sad),
        )
        .await
        .unwrap();
    assert!(!created);
    let (_, created) = plans()
        .update_or_create(Plan::name().eq(name("four")), plan("four", SoSo))
        .await
        .unwrap();
    assert!(created);
    let mut one = plans().get(Plan::name().eq(name("one"))).await.unwrap();
    one.mood = SoSo;
    one.save().await.unwrap();
    one.refresh().await.unwrap();
    let upserted = plans()
        .on_conflict(Plan::name())
        .do_update_set([Plan::mood().set(Sad)])
        .bulk_create([plan("three", Happy), plan("five", Happy)])
        .await
        .unwrap();
    assert_eq!(upserted.len(), 2);
    mine()
        .filter(Plan::mood().is_in([Happy]) & Plan::name().eq(name("two")))
        .delete()
        .await
        .unwrap();
    let mut rows: Vec<(String, Mood)> = mine()
        .values_list((Plan::name(), Plan::mood()))
        .await
        .unwrap();
    rows.sort();
    rows
}

backend_test!(
    a_shared_models_enum_column_is_written_and_read_inside_tenants,
    |t: common::TestDb| async move {
        let (r, schemas) = build(&t, &["sha", "shb"]).await;
        let (a, b) = tokio::join!(
            with_tenant(Some(schemas[0].clone()), shared_from_tenant(r.clone(), "a")),
            with_tenant(Some(schemas[1].clone()), shared_from_tenant(r.clone(), "b")),
        );
        for (tag, rows) in [("a", a), ("b", b)] {
            let n = |s: &str| format!("{tag}-{s}");
            assert_eq!(
                rows,
                vec![
                    (n("five"), Mood::Happy),
                    (n("four"), Mood::SoSo),
                    (n("one"), Mood::SoSo),
                    (n("three"), Mood::Sad),
                ]
            );
        }
    }
);

backend_test!(
    enum_columns_in_upserts_aggregates_projections_and_pages,
    |t: common::TestDb| async move {
        use Mood::*;
        let (r, schemas) = build(&t, &["agg"]).await;
        let r = r.cursor_key(b"a test key of at least thirty-two bytes!");
        let a = &schemas[0];
        // An upsert keyed on the enum column alone, twice.
        for round in 0..2 {
            let rows = Tally::query(&r)
                .using(a)
                .on_conflict(Tally::mood())
                .do_update_set([Tally::hits().set_expr(Tally::hits() + Tally::hits().excluded())])
                .bulk_create([Sad, SoSo, Happy].map(|mood| Tally {
                    id: 0,
                    mood,
                    hits: 1 + round,
                }))
                .await
                .unwrap();
            assert_eq!(rows.len(), 3);
        }
        let mut hits = Tally::query(&r)
            .using(a)
            .values_list((Tally::mood(), Tally::hits()))
            .await
            .unwrap();
        hits.sort();
        assert_eq!(hits, vec![(Sad, 3), (SoSo, 3), (Happy, 3)]);
        // An update whose F-expression names the enum column.
        Tally::query(&r)
            .using(a)
            .filter(Tally::mood().expr().eq(Tally::mood()) & Tally::mood().gte(Sad))
            .update([Tally::mood().set_expr(Tally::mood())])
            .await
            .unwrap();
        // Many rows at once.
        let moods = [Sad, SoSo, Happy];
        let many: Vec<Log> = (0..1500).map(|i| log(moods[i % 3], i as i32)).collect();
        Log::query(&r).using(a).bulk_create(many).await.unwrap();
        let mut grouped = Log::query(&r)
            .using(a)
            .filter(Log::mood().ne(SoSo))
            .group_by(Log::mood())
            .aggregate(Log::id().count())
            .await
            .unwrap();
        grouped.sort();
        assert_eq!(grouped, vec![(Sad, 500), (Happy, 500)]);
        let distinct = Log::query(&r)
            .using(a)
            .distinct()
            .values_list(Log::mood())
            .await
            .unwrap();
        assert_eq!(distinct.len(), 3);
        // Keyset pages ordered by the enum (descending), ties broken by the key.
        let mut seen = 0usize;
        let mut cursor: Option<String> = None;
        let mut last: Option<(Mood, i64)> = None;
        let rank = |m: Mood| match t.backend {
            Backend::Postgres => m as i32,
            _ => match m {
                Happy => 0,
                Sad => 1,
                SoSo => 2,
            },
        };
        loop {
            let page = Log::query(&r)
                .using(a)
                .filter(Log::n().lt(300))
                .order_by([Log::mood().desc(), Log::id().asc()])
                .page_after(70, cursor.as_deref())
                .await
                .unwrap();
            for item in &page.items {
                if let Some((mood, id)) = last {
                    assert!(
                        rank(mood) > rank(item.mood) || (mood == item.mood && id < item.id),
                        "{mood:?}/{id} then {:?}/{}",
                        item.mood,
                        item.id
                    );
                }
                last = Some((item.mood, item.id));
                seen += 1;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, 300);
        // Raw SQL reads the enum's text back.
        let raw = r
            .raw("SELECT COUNT(*) FROM {ae_logs} WHERE mood = 'happy'")
            .using(a)
            .fetch_as::<(i64,)>()
            .await
            .unwrap();
        assert_eq!(raw, vec![(500,)]);
    }
);

// Found by review (fixed: `ensure` compares the labels and refuses a type lacking a
// variant with InvalidArgument): enum_types.rs `ensure` skipped a type that is present by name without comparing its
// labels: a second registry whose Rust enum declares `ae_mood` with other labels builds its
// table on the first registry's type, and on PostgreSQL writing `OtherMood::Glad` then fails
// (invalid input value for enum ae_mood: "glad"). create_all should refuse the clash (as it
// does within one registry) or the write should succeed.
backend_test!(
    one_type_name_in_two_registries_with_different_labels,
    |t: common::TestDb| async move {
        let first = t.registry.clone().register::<Log>();
        first.create_all().await.unwrap();
        Log::query(&first).create(log(Mood::SoSo, 1)).await.unwrap();
        let second = t.registry.clone().register::<Elsewhere>();
        match second.create_all().await {
            Err(Error::InvalidArgument { .. }) => {}
            Err(other) => panic!("refused, but not as a clash: {other:?}"),
            Ok(()) => {
                let written = Elsewhere::query(&second)
                    .create(Elsewhere {
                        id: 0,
                        mood: OtherMood::Glad,
                    })
                    .await;
                assert!(written.is_ok(), "{written:?}");
                let read = Elsewhere::query(&second)
                    .filter(Elsewhere::mood().eq(OtherMood::Glad))
                    .count()
                    .await
                    .unwrap();
                assert_eq!(read, 1);
            }
        }
    }
);

// Found by review (fixed: schema creation takes a transaction-level advisory lock on the
// schema's name first, so the second creation waits and finds everything made): two
// `create_schema(.., if_not_exists = true, ..)` of one existing (empty) schema at once: one
// fails with a unique violation on pg_type_typname_nsp_index instead of both succeeding.
// enum_types.rs `ensure` reads the schema's types (`present`) and then runs CREATE TYPE, a
// check-then-create race of the same kind as the older CREATE TABLE IF NOT EXISTS one (the
// baseline ..._without_enum_types fails about as often, 7 in 10), so this change adds a race
// point without fixing the old one. The race of two CREATE SCHEMA is
// create_schema_if_not_exists_of_a_new_schema_racing_itself.
backend_pool_test!(
    create_schema_if_not_exists_racing_itself_with_enum_types,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Log>().register::<Tally>();
        let a = t.schema("race");
        let models: &[_] = &[Log::META, Tally::META];
        create_schema(&r, &a, Some(models), false, false)
            .await
            .unwrap();
        let make = || create_schema(&r, &a, Some(models), true, true);
        let (one, two) = tokio::join!(make(), make());
        assert!(one.is_ok() && two.is_ok(), "{one:?} / {two:?}");
        Log::query(&r)
            .using(&a)
            .create(log(Mood::Happy, 1))
            .await
            .unwrap();
        let found = Log::query(&r)
            .using(&a)
            .filter(Log::mood().eq(Mood::Happy))
            .count()
            .await
            .unwrap();
        assert_eq!(found, 1);
    }
);

// Found by review (fixed: inside a transaction save() keeps the values read, so each save
// there writes every field changed since): instance.rs `write` forgot the changes (`read = None`) once the UPDATE ran, even
// when it ran inside a savepoint (or transaction) that is then rolled back: the instance
// still holds the change, but the next save() writes only the field changed afterwards, so
// the first change is silently lost (before this change save() wrote every field).
backend_test!(
    a_save_undone_by_a_savepoint_is_written_by_the_next_save,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Log>();
        r.create_all().await.unwrap();
        let id = Log::query(&r).create(log(Mood::Sad, 1)).await.unwrap().id;
        let tx = r.begin().await.unwrap();
        let mut row = Log::query(&tx).get_pk(id).await.unwrap();
        row.mood = Mood::Happy;
        let undone: tenantry::Result<()> = tx
            .savepoint(|_sp| {
                let row = &mut row;
                async move {
                    row.save().await?;
                    Err(Error::InvalidArgument {
                        argument: "test",
                        reason: "undo the savepoint",
                    })
                }
            })
            .await;
        assert!(undone.is_err());
        assert_eq!(row.mood, Mood::Happy);
        row.n = 2;
        row.save().await.unwrap();
        tx.commit().await.unwrap();
        let stored = Log::query(&r).get_pk(id).await.unwrap().into_inner();
        assert_eq!((stored.mood, stored.n), (Mood::Happy, 2));
    }
);

// Found by review (fixed: every change set back writes nothing): instance.rs `changed`
// returned None when every field changed through the instance
// was set back, and save() then writes every field: a concurrent writer's change to another
// field is overwritten by the stale value, though the instance changed nothing (the commit
// promises "a field set back is not written").
backend_test!(
    a_field_set_back_does_not_overwrite_a_concurrent_change,
    |t: common::TestDb| async move {
        let (r, schemas) = build(&t, &["back"]).await;
        let a = &schemas[0];
        let id = Log::query(&r)
            .using(a)
            .create(log(Mood::Sad, 1))
            .await
            .unwrap()
            .id;
        let mut first = Log::query(&r).using(a).get_pk(id).await.unwrap();
        let mut second = Log::query(&r).using(a).get_pk(id).await.unwrap();
        first.n = 7;
        first.save().await.unwrap();
        second.mood = Mood::Happy;
        second.mood = Mood::Sad;
        second.save().await.unwrap();
        let stored = Log::query(&r)
            .using(a)
            .get_pk(id)
            .await
            .unwrap()
            .into_inner();
        assert_eq!((stored.mood, stored.n), (Mood::Sad, 7));
    }
);

backend_test!(
    change_tracking_with_a_pre_save_hook_a_clone_and_a_failed_save,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Stamped>().register::<Tally>();
        let a = t.schema("hook");
        create_schema(&r, &a, Some(&[Stamped::META, Tally::META]), false, true)
            .await
            .unwrap();
        let q = || Stamped::query(&r).using(&a);
        let id = q()
            .create(Stamped {
                id: 0,
                mood: Mood::Sad,
                note: "new".into(),
                saves: 0,
            })
            .await
            .unwrap()
            .id;
        // Two writers; the hook's change is compared after it ran, so it is written.
        let mut first = q().get_pk(id).await.unwrap();
        let mut second = q().get_pk(id).await.unwrap();
        second.note = "second".into();
        second.save().await.unwrap();
        first.mood = Mood::Happy;
        let copy = first.clone();
        first.save().await.unwrap();
        let row = q().get_pk(id).await.unwrap().into_inner();
        // create's hook made saves 1; both read 1, so first's hook writes 2 over second's 2.
        assert_eq!(
            (row.mood, row.note.as_str(), row.saves),
            (Mood::Happy, "second", 2)
        );
        // The clone kept the change made before it: its save writes it (and its hook's).
        let mut copy = copy;
        copy.note = "copy".into();
        copy.save().await.unwrap();
        let row = q().get_pk(id).await.unwrap().into_inner();
        assert_eq!((row.mood, row.note.as_str()), (Mood::Happy, "copy"));
        // A failed save (a unique key taken) keeps its change for the next save.
        let tallies = || Tally::query(&r).using(&a);
        tallies()
            .bulk_create([Mood::Sad, Mood::Happy].map(|mood| Tally {
                id: 0,
                mood,
                hits: 0,
            }))
            .await
            .unwrap();
        let mut sad = tallies().get(Tally::mood().eq(Mood::Sad)).await.unwrap();
        sad.mood = Mood::Happy;
        sad.hits = 5;
        assert!(sad.save().await.is_err());
        sad.mood = Mood::SoSo;
        sad.save().await.unwrap();
        let row = tallies().get_pk(sad.id).await.unwrap().into_inner();
        assert_eq!((row.mood, row.hits), (Mood::SoSo, 5));
    }
);

/// Labels with a quote, a double quote and a backslash (the derive accepts any text).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[model(type_name = "ae_quirky")]
enum Quirky {
    #[model(rename = "it's")]
    Its,
    #[model(rename = "say \"hi\"")]
    Quoted,
    #[model(rename = "back\\slash")]
    Backslash,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_quirks")]
struct Quirk {
    id: i64,
    kind: Quirky,
}

backend_test!(
    enum_labels_with_quotes_are_created_written_and_read,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Quirk>();
        let a = t.schema("quirk");
        create_schema(&r, &a, Some(&[Quirk::META]), false, true)
            .await
            .unwrap();
        for kind in [Quirky::Its, Quirky::Quoted, Quirky::Backslash] {
            Quirk::query(&r)
                .using(&a)
                .create(Quirk { id: 0, kind })
                .await
                .unwrap();
            let found = Quirk::query(&r)
                .using(&a)
                .get(Quirk::kind().eq(kind))
                .await
                .unwrap();
            assert_eq!(found.kind, kind);
        }
        r.create_all().await.unwrap();
        assert_eq!(Quirk::query(&r).count().await.unwrap(), 0);
    }
);

/// A shared model keyed by an enum, and a tenant model referring to it.
/// `Quirky` a release later: a label with a quote added before the first.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[model(type_name = "ae_quirky")]
enum QuirkyV2 {
    #[model(rename = "o'clock")]
    Clock,
    #[model(rename = "it's")]
    Its,
    #[model(rename = "say \"hi\"")]
    Quoted,
    #[model(rename = "back\\slash")]
    Backslash,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_quirks")]
struct QuirkV2 {
    id: i64,
    kind: QuirkyV2,
}

backend_test!(
    generated_migrations_of_quoted_labels_replay_in_two_tenants_at_once,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, introspect, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions,
            Snapshot,
        };
        let snapshot = |meta| Snapshot::of_models(&[meta], MigrationScope::Tenant).unwrap();
        let (v1, v2) = (snapshot(Quirk::META), snapshot(QuirkV2::META));
        let mut files = Vec::new();
        for (id, from, to) in [
            ("0001_quirks", &Snapshot::default(), &v1),
            ("0002_clock", &v1, &v2),
        ] {
            let changes = diff(from, to, &Renames::default()).unwrap();
            assert!(changes.warnings.is_empty(), "{:?}", changes.warnings);
            let text = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
            files.push((id.to_owned(), text));
        }
        let set = |upto: usize| {
            let files: Vec<(&str, &str)> = files[..upto]
                .iter()
                .map(|(id, text)| (id.as_str(), text.as_str()))
                .collect();
            Migrations::from_files(&files).unwrap()
        };
        let r = &t.registry;
        let migrate = |schema: SchemaName, upto: usize| {
            let set = set(upto);
            async move {
                let report = Migrator::new(r, set)
                    .run(RunOptions {
                        tenant: Some(schema),
                        ..RunOptions::default()
                    })
                    .await;
                assert!(report.as_ref().is_ok_and(|r| r.is_complete()), "{report:?}");
            }
        };
        let (a, b) = (t.schema("mqa"), t.schema("mqb"));
        for schema in [&a, &b] {
            create_schema(r, schema, Some(&[]), false, false)
                .await
                .unwrap();
        }
        tokio::join!(migrate(a.clone(), 1), migrate(b.clone(), 1));
        tokio::join!(migrate(a.clone(), 2), migrate(b.clone(), 2));
        for schema in [&a, &b] {
            for kind in [
                QuirkyV2::Clock,
                QuirkyV2::Its,
                QuirkyV2::Quoted,
                QuirkyV2::Backslash,
            ] {
                QuirkV2::query(r)
                    .using(schema)
                    .create(QuirkV2 { id: 0, kind })
                    .await
                    .unwrap();
            }
            let n = QuirkV2::query(r)
                .using(schema)
                .filter(QuirkV2::kind().eq(QuirkyV2::Clock))
                .count()
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        // The replayed schema equals one built from the models.
        let built = t.schema("mqbuilt");
        create_schema(r, &built, Some(&[QuirkV2::META]), false, true)
            .await
            .unwrap();
        let db = t.registry.database();
        let (replayed, made) = (
            introspect(db, Some(&a)).await.unwrap(),
            introspect(db, Some(&built)).await.unwrap(),
        );
        let differences = replayed.differences(&made);
        assert!(differences.is_empty(), "{differences:?}");
    }
);

// Found by review, older than enum types (fixed by the creation lock): two
// `create_schema(.., if_not_exists = true, ..)` of a new schema at once: the second's
// `CREATE SCHEMA IF NOT EXISTS` fails with a unique violation on pg_namespace_nspname_index
// (tenancy/schemas.rs `create_in`) instead of both succeeding. Once the schema exists, the
// enum types and tables race safely (create_schema_if_not_exists_racing_itself_with_enum_types).
backend_pool_test!(
    create_schema_if_not_exists_of_a_new_schema_racing_itself,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Log>().register::<Tally>();
        let a = t.schema("race2");
        let models: &[_] = &[Log::META, Tally::META];
        let make = || create_schema(&r, &a, Some(models), true, true);
        let (one, two) = tokio::join!(make(), make());
        assert!(one.is_ok() && two.is_ok(), "{one:?} / {two:?}");
        let found = Log::query(&r)
            .using(&a)
            .filter(Log::mood().eq(Mood::Happy))
            .count()
            .await
            .unwrap();
        assert_eq!(found, 0);
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_plain")]
struct Plain {
    id: i64,
    n: i32,
}

// Found by review, older than enum types (fixed by the creation lock; it failed 7 runs in 10; not
// introduced by this change): the same race as
// create_schema_if_not_exists_racing_itself_with_enum_types on a model with no enum column:
// two CREATE TABLE IF NOT EXISTS at once fail with a unique violation on
// pg_type_typname_nsp_index. Kept as the baseline for the enum race.
backend_pool_test!(
    create_schema_if_not_exists_racing_itself_without_enum_types,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Plain>();
        let a = t.schema("race3");
        let models: &[_] = &[Plain::META];
        create_schema(&r, &a, Some(models), false, false)
            .await
            .unwrap();
        let make = || create_schema(&r, &a, Some(models), true, true);
        let (one, two) = tokio::join!(make(), make());
        assert!(one.is_ok() && two.is_ok(), "{one:?} / {two:?}");
        Plain::query(&r)
            .using(&a)
            .create(Plain { id: 0, n: 1 })
            .await
            .unwrap();
        assert_eq!(Plain::query(&r).using(&a).count().await.unwrap(), 1);
    }
);

// Found by review (fixed: the subquery's column is converted by its text to the outer
// column's type when its table is in another schema): every schema has its own copy of the enum type, so a tenant model's
// enum column compared with a shared model's column of the same Rust enum (a subquery:
// `Item::mood().in_query(Plan::query().subquery(Plan::mood()))`) fails with "operator does
// not exist: <tenant>.ae_mood = ae_mood" instead of matching as it does on MySQL and SQLite.
backend_test!(
    a_tenant_enum_column_compared_with_a_shared_one_through_a_subquery,
    |t: common::TestDb| async move {
        let (r, schemas) = build(&t, &["subq"]).await;
        let gold = Plan::query(&r)
            .create(Plan {
                id: 0,
                name: "gold".into(),
                mood: Mood::Happy,
            })
            .await
            .unwrap();
        let found = with_tenant(Some(schemas[0].clone()), async {
            Item::query(&r)
                .bulk_create([Mood::Happy, Mood::Sad].map(|mood| Item {
                    id: 0,
                    plan: ForeignKey::new(gold.id),
                    mood,
                    note: "x".into(),
                }))
                .await?;
            Item::query(&r)
                .filter(Item::mood().in_query(Plan::query(&r).subquery(Plan::mood())))
                .count()
                .await
        })
        .await;
        assert_eq!(found.unwrap(), 1);
    }
);

/// A check constraint on an enum column.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ae_checked",
    check(name = "ae_checked_not_sad", condition = Checked::mood().ne(Mood::Sad)),
    check(name = "ae_checked_known", condition = Checked::mood().is_in([Mood::SoSo, Mood::Happy]))
)]
struct Checked {
    id: i64,
    mood: Mood,
}

backend_test!(
    a_check_constraint_on_an_enum_column_is_built_and_enforced_in_tenants,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Checked>();
        r.create_all().await.unwrap();
        let a = t.schema("chk");
        create_schema(&r, &a, Some(&[Checked::META]), false, true)
            .await
            .unwrap();
        for schema in [None, Some(&a)] {
            let q = || match schema {
                Some(s) => Checked::query(&r).using(s),
                None => Checked::query(&r),
            };
            q().create(Checked {
                id: 0,
                mood: Mood::Happy,
            })
            .await
            .unwrap();
            let refused = q()
                .create(Checked {
                    id: 0,
                    mood: Mood::Sad,
                })
                .await;
            assert!(
                matches!(refused, Err(Error::CheckViolation { .. })),
                "{refused:?}"
            );
            assert_eq!(q().count().await.unwrap(), 1);
        }
    }
);

// Found by review (fixed: the copy converts an enum column by its text to the destination's
// type): tenancy/clone.rs `copy` copied rows with `INSERT INTO "to".t (..)
// SELECT .. FROM "from".t`; an enum column's values are of the source schema's type, which
// PostgreSQL does not assign to the destination schema's type: clone_schema of a tenant with
// an enum column fails (column is of type "<to>".ae_mood but expression is of type
// "<from>".ae_mood) instead of copying the rows.
backend_test!(
    clone_schema_copies_enum_columns,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Log>();
        let (a, b) = (t.schema("cla"), t.schema("clb"));
        create_schema(&r, &a, None, false, true).await.unwrap();
        Log::query(&r)
            .using(&a)
            .bulk_create([log(Mood::Sad, 1), log(Mood::Happy, 2)])
            .await
            .unwrap();
        let cloned = r.schema().clone_schema(&a, &b).await;
        assert!(cloned.is_ok(), "{cloned:?}");
        let happy = Log::query(&r)
            .using(&b)
            .filter(Log::mood().eq(Mood::Happy))
            .count()
            .await
            .unwrap();
        assert_eq!(happy, 1);
        Log::query(&r)
            .using(&b)
            .create(log(Mood::SoSo, 3))
            .await
            .unwrap();
        assert_eq!(Log::query(&r).using(&b).count().await.unwrap(), 3);
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_feels")]
struct Feel {
    id: i64,
    mood: Mood,
}

/// `Mood` a release later: a new last label.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[model(type_name = "ae_mood")]
enum MoodV3 {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "so-so")]
    SoSo,
    #[model(rename = "happy")]
    Happy,
    #[model(rename = "elated")]
    Elated,
}

/// `Feel` a release later: a new column whose default is the new label.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_feels")]
struct FeelV2 {
    id: i64,
    mood: MoodV3,
    #[model(default = MoodV3::Elated)]
    later: MoodV3,
}

// Found by review (fixed: the runner adds the labels of types that exist already before the
// migration's transaction, ADD VALUE IF NOT EXISTS): migrate/diff.rs puts a new label (`add_enum_value`) and a new column
// whose default is that label in one migration, which the runner applies in one
// transaction; PostgreSQL refuses the default (55P04: unsafe use of new value "elated" of
// enum type) so the generated migration cannot be applied to an existing tenant. A
// generated migration should apply (the label added in a migration, or a transaction, of
// its own).
backend_test!(
    a_generated_migration_adding_a_label_and_a_column_defaulting_to_it_applies,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions, Snapshot,
        };
        let snapshot = |meta| Snapshot::of_models(&[meta], MigrationScope::Tenant).unwrap();
        let (v1, v2) = (snapshot(Feel::META), snapshot(FeelV2::META));
        let mut files = Vec::new();
        for (id, from, to) in [
            ("0001_feels", &Snapshot::default(), &v1),
            ("0002_later", &v1, &v2),
        ] {
            let changes = diff(from, to, &Renames::default()).unwrap();
            let text = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
            files.push((id.to_owned(), text));
        }
        let set = |upto: usize| {
            let files: Vec<(&str, &str)> = files[..upto]
                .iter()
                .map(|(id, text)| (id.as_str(), text.as_str()))
                .collect();
            Migrations::from_files(&files).unwrap()
        };
        let r = &t.registry;
        let a = t.schema("lbl");
        create_schema(r, &a, Some(&[]), false, false).await.unwrap();
        for upto in [1, 2] {
            let report = Migrator::new(r, set(upto))
                .run(RunOptions {
                    tenant: Some(a.clone()),
                    ..RunOptions::default()
                })
                .await;
            assert!(
                report.as_ref().is_ok_and(|r| r.is_complete()),
                "{upto}: {report:?}\n{}",
                files[upto - 1].1
            );
            if upto == 1 {
                Feel::query(r)
                    .using(&a)
                    .create(Feel {
                        id: 0,
                        mood: Mood::Sad,
                    })
                    .await
                    .unwrap();
            }
        }
        let rows = FeelV2::query(r).using(&a).all().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].mood, rows[0].later), (MoodV3::Sad, MoodV3::Elated));
    }
);

// A schema dropped while enum-typed queries run in it: every query either succeeds or is
// Error::SchemaNotFound (the cast to the dropped schema's type included), and after the
// drop each is SchemaNotFound.
backend_test!(
    enum_queries_racing_a_schema_drop_are_schema_not_found,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Log>();
        let a = t.schema("drop");
        create_schema(&r, &a, Some(&[Log::META]), false, true)
            .await
            .unwrap();
        Log::query(&r)
            .using(&a)
            .bulk_create((0..50).map(|i| log(Mood::Happy, i)).collect::<Vec<_>>())
            .await
            .unwrap();
        let query = |r: Registry, a: SchemaName| async move {
            let mut outcomes = Vec::new();
            for i in 0..40 {
                let outcome = match i % 3 {
                    0 => Log::query(&r)
                        .using(&a)
                        .filter(Log::mood().eq(Mood::Happy))
                        .count()
                        .await
                        .map(|_| ()),
                    1 => Log::query(&r)
                        .using(&a)
                        .create(log(Mood::Sad, i))
                        .await
                        .map(|_| ()),
                    _ => Log::query(&r)
                        .using(&a)
                        .filter(Log::mood().is_in([Mood::Sad]))
                        .update([Log::mood().set(Mood::SoSo)])
                        .await
                        .map(|_| ()),
                };
                outcomes.push(outcome);
                tokio::task::yield_now().await;
            }
            outcomes
        };
        let racing = tokio::spawn(query(r.clone(), a.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        tenantry::drop_schema(&r, &a, true, false).await.unwrap();
        for outcome in racing.await.unwrap() {
            assert!(
                matches!(outcome, Ok(()) | Err(Error::SchemaNotFound { .. })),
                "{outcome:?}"
            );
        }
        for outcome in query(r.clone(), a.clone()).await {
            assert!(
                matches!(outcome, Err(Error::SchemaNotFound { .. })),
                "{outcome:?}"
            );
        }
    }
);

// A tenant dropped and re-created under the same name (its enum type re-made, with a new
// identity) is read and written at once on connections that ran the same statements
// before: no stale statement error reaches the caller, and the tenant starts empty.
backend_pool_test!(
    a_recreated_tenant_is_queried_on_connections_that_cached_its_enum_statements,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Log>();
        let a = t.schema("recr");
        let work = |r: Registry, a: SchemaName| async move {
            Log::query(&r).using(&a).create(log(Mood::Happy, 1)).await?;
            let rows = Log::query(&r)
                .using(&a)
                .filter(Log::mood().eq(Mood::Happy))
                .all()
                .await?;
            let moods = Log::query(&r).using(&a).values_list(Log::mood()).await?;
            Ok::<_, Error>((rows.len(), moods))
        };
        for round in 0..3 {
            create_schema(&r, &a, Some(&[Log::META]), false, true)
                .await
                .unwrap();
            for _ in 0..2 {
                let (first, second) =
                    tokio::join!(work(r.clone(), a.clone()), work(r.clone(), a.clone()));
                let (first, second) = (
                    first.map_err(|e| format!("round {round}: {e:?}")).unwrap(),
                    second.unwrap(),
                );
                assert!(first.0 >= 1 && second.0 >= 1);
            }
            let count = Log::query(&r).using(&a).count().await.unwrap();
            assert_eq!(count, 4, "round {round}");
            tenantry::drop_schema(&r, &a, true, false).await.unwrap();
        }
    }
);

// Found by review (fixed: save_fields marks only the fields it wrote as stored): instance.rs
// `write` cleared the stored-values snapshot (`read = None`) after
// save_fields(..) too, though only the named fields were written: a change to another field
// made before it is then taken as stored by the next change's snapshot, and the next save()
// writes only that next change, silently dropping the earlier one.
backend_test!(
    a_change_left_out_of_save_fields_is_written_by_the_next_save,
    |t: common::TestDb| async move {
        let (r, schemas) = build(&t, &["sf"]).await;
        let a = &schemas[0];
        let id = Log::query(&r)
            .using(a)
            .create(log(Mood::Sad, 1))
            .await
            .unwrap()
            .id;
        let mut row = Log::query(&r).using(a).get_pk(id).await.unwrap();
        row.mood = Mood::Happy;
        row.n = 2;
        row.save_fields(Log::n()).await.unwrap();
        row.n = 3;
        row.save().await.unwrap();
        let stored = Log::query(&r)
            .using(a)
            .get_pk(id)
            .await
            .unwrap()
            .into_inner();
        assert_eq!((stored.mood, stored.n), (row.mood, row.n));
        assert_eq!((stored.mood, stored.n), (Mood::Happy, 3));
    }
);

/// `Mood` under another type name (the same labels).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[model(type_name = "ae_feeling")]
enum Feeling {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "so-so")]
    SoSo,
    #[model(rename = "happy")]
    Happy,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_moods")]
struct MoodRow {
    id: i64,
    #[model(default = Mood::SoSo, index)]
    mood: Mood,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_moods")]
struct MoodRowV2 {
    id: i64,
    #[model(default = Feeling::SoSo, index)]
    mood: Feeling,
}

// A column moved from one enum type to another (the type_name renamed; the same holds for a
// text column given a type_name) changes nothing outside PostgreSQL: there the
// `alter_column` is no statement and no hazard (it was a MODIFY COLUMN refused as a table
// copy). On PostgreSQL the column is converted by its text, a rewrite that needs
// "allow_rewrite": new type made, column converted with its default and index, old type
// dropped, rows kept, equal to a built tenant.
backend_test!(
    a_generated_migration_moving_a_column_to_a_renamed_enum_type,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, introspect, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions,
            Snapshot,
        };
        let snapshot = |meta| Snapshot::of_models(&[meta], MigrationScope::Tenant).unwrap();
        let (v1, v2) = (snapshot(MoodRow::META), snapshot(MoodRowV2::META));
        let mut files = Vec::new();
        for (id, from, to) in [
            ("0001_moods", &Snapshot::default(), &v1),
            ("0002_feelings", &v1, &v2),
        ] {
            let changes = diff(from, to, &Renames::default()).unwrap();
            // The runner judges hazards against the tables before the migration: only
            // PostgreSQL's conversion is a rewrite.
            let rewrites = id == "0002_feelings" && t.backend == tenantry::Backend::Postgres;
            let text = Migration::file_text(MigrationScope::Tenant, rewrites, &changes.operations);
            files.push((id.to_owned(), text));
        }
        let set = |upto: usize| {
            let files: Vec<(&str, &str)> = files[..upto]
                .iter()
                .map(|(id, text)| (id.as_str(), text.as_str()))
                .collect();
            Migrations::from_files(&files).unwrap()
        };
        let r = &t.registry;
        let a = t.schema("ren");
        create_schema(r, &a, Some(&[]), false, false).await.unwrap();
        for upto in [1, 2] {
            let report = Migrator::new(r, set(upto))
                .run(RunOptions {
                    tenant: Some(a.clone()),
                    ..RunOptions::default()
                })
                .await;
            assert!(
                report.as_ref().is_ok_and(|r| r.is_complete()),
                "{upto}: {report:?}\n{}",
                files[upto - 1].1
            );
            if upto == 1 {
                MoodRow::query(r)
                    .using(&a)
                    .bulk_create([Mood::Sad, Mood::Happy].map(|mood| MoodRow { id: 0, mood }))
                    .await
                    .unwrap();
            }
        }
        let happy = MoodRowV2::query(r)
            .using(&a)
            .filter(MoodRowV2::mood().eq(Feeling::Happy))
            .count()
            .await
            .unwrap();
        assert_eq!(happy, 1);
        let built = t.schema("renbuilt");
        create_schema(r, &built, Some(&[MoodRowV2::META]), false, true)
            .await
            .unwrap();
        let db = t.registry.database();
        let differences = introspect(db, Some(&a))
            .await
            .unwrap()
            .differences(&introspect(db, Some(&built)).await.unwrap());
        assert!(differences.is_empty(), "{differences:?}\n{}", files[1].1);
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ae_maybes")]
struct Maybe {
    id: i64,
    mood: Option<Mood>,
    #[model(max_length = 10)]
    word: Option<String>,
}

// A nullable enum column: filtered, set, set to NULL and projected as a nullable text is.
backend_test!(
    a_nullable_enum_column_is_filtered_set_and_projected,
    |t: common::TestDb| async move {
        let r = t.registry.clone().register::<Maybe>();
        let a = t.schema("null");
        create_schema(&r, &a, Some(&[Maybe::META]), false, true)
            .await
            .unwrap();
        let q = || Maybe::query(&r).using(&a);
        q().bulk_create([
            Maybe {
                id: 0,
                mood: None,
                word: None,
            },
            Maybe {
                id: 0,
                mood: Some(Mood::Sad),
                word: Some("sad".into()),
            },
        ])
        .await
        .unwrap();
        let count = |f| async { q().filter(f).count().await.unwrap() };
        assert_eq!(
            count(Maybe::mood().eq(Mood::Sad)).await,
            count(Maybe::word().eq("sad")).await
        );
        assert_eq!(
            count(Maybe::mood().ne(Mood::Sad)).await,
            count(Maybe::word().ne("sad")).await
        );
        assert_eq!(count(Maybe::mood().isnull(true)).await, 1);
        assert_eq!(
            count(Maybe::mood().is_in([Mood::Sad, Mood::Happy])).await,
            1
        );
        q().filter(Maybe::mood().isnull(true))
            .update([Maybe::mood().set(Mood::Happy)])
            .await
            .unwrap();
        q().filter(Maybe::mood().eq(Mood::Sad))
            .update([Maybe::mood().set_null()])
            .await
            .unwrap();
        let mut moods = q().values_list(Maybe::mood().optional()).await.unwrap();
        moods.sort();
        assert_eq!(moods, vec![None, Some(Mood::Happy)]);
    }
);
