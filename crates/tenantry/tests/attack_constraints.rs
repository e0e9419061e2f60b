//! Review attacks on composite unique/index declarations, check constraints and composite
//! upserts (commit 04598a7). A test that fails demonstrates a defect (it asserts the correct
//! behaviour); the others are attacks that held up.
mod common;

use chrono::{DateTime, TimeZone, Utc};
use tenantry::{create_schema, with_tenant, Backend, Error, Model, Registry, SchemaName};

// ---------------------------------------------------------------------------------------
// Models.

/// Default composite-unique name: `uq_ak_a_b_c_d`.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_a_b", unique(c, d))]
struct Ab {
    id: i64,
    #[model(max_length = 10)]
    c: String,
    #[model(max_length = 10)]
    d: String,
}

/// Default composite-unique name: `uq_ak_a` + `_b_c` + `_d` = `uq_ak_a_b_c_d` too.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_a", unique(b_c, d))]
struct A {
    id: i64,
    #[model(max_length = 10)]
    b_c: String,
    #[model(max_length = 10)]
    d: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_tokens",
    check(name = "ak_tokens_not_nil", condition = Token::value().ne(uuid::Uuid::nil()))
)]
struct Token {
    id: i64,
    value: uuid::Uuid,
}

fn cutoff() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_shows",
    check(name = "ak_shows_late_enough", condition = Show::starts().gte(cutoff()))
)]
struct Show {
    id: i64,
    starts: DateTime<Utc>,
}

/// Quotes, backslashes, a comment end, a raw-step placeholder, a double quote, a comment.
const NASTY: &str = "it's \\' */ {table:ak_a} \" -- x \\";

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_notes",
    check(name = "ak_notes_not_nasty", condition = Note::body().ne(NASTY))
)]
struct Note {
    id: i64,
    #[model(max_length = 80)]
    body: String,
}

/// A check named like one of the table's columns.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_boxes", check(name = "qty", condition = Bx::qty().gte(0)))]
struct Bx {
    id: i64,
    qty: i64,
}

/// A JSON column (MariaDB adds its own `json_valid` check) and one named check.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_docs",
    check(name = "ak_docs_rev_ok", condition = Doc::rev().gte(0))
)]
struct Doc {
    id: i64,
    body: serde_json::Value,
    rev: i64,
}

/// Composite key with a check: upserts that break the check.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_bins",
    unique(place, sku),
    check(name = "ak_bins_count_ok", condition = Bin::count().gte(0))
)]
struct Bin {
    id: i64,
    #[model(max_length = 20)]
    place: String,
    number: i32,
    #[model(max_length = 20)]
    sku: String,
    count: i64,
}

/// The same table, before and after a check is added: the SQLite rebuild must keep the
/// composite unique index.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_pairs", unique(a, b), index(b, n))]
struct PairV1 {
    id: i64,
    #[model(max_length = 10)]
    a: String,
    #[model(max_length = 10)]
    b: String,
    n: i64,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_pairs",
    unique(a, b),
    index(b, n),
    check(name = "ak_pairs_n_ok", condition = PairV2::n().gte(0))
)]
struct PairV2 {
    id: i64,
    #[model(max_length = 10)]
    a: String,
    #[model(max_length = 10)]
    b: String,
    n: i64,
}

/// A column renamed under a check.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_prices",
    check(name = "ak_prices_ok", condition = PriceV1::price().gte(0))
)]
struct PriceV1 {
    id: i64,
    price: i64,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_prices",
    check(name = "ak_prices_ok", condition = PriceV2::cost().gte(0))
)]
struct PriceV2 {
    id: i64,
    cost: i64,
}

async fn tenant(registry: &Registry, name: &SchemaName, models: &[&'static tenantry::ModelMeta]) {
    create_schema(registry, name, Some(models), false, true)
        .await
        .unwrap();
}

fn is_check(result: &tenantry::Result<impl std::fmt::Debug>) -> bool {
    matches!(result, Err(Error::CheckViolation { .. }))
}

// ---------------------------------------------------------------------------------------
// Composite index names.

backend_test!(
    composite_unique_names_colliding_across_models_are_refused_before_any_table,
    |t: common::TestDb| async move {
        // On PostgreSQL and SQLite the second `CREATE UNIQUE INDEX IF NOT EXISTS` of one
        // name would be skipped without a word: refused on every backend instead.
        let a = t.schema("nm");
        refused_at_build(&t, &a, &[Ab::META, A::META]).await;
        // Each alone is fine, and keeps its key.
        tenant(&t.registry, &a, &[A::META]).await;
        let r = &t.registry;
        let row = || A {
            id: 0,
            b_c: "x".into(),
            d: "y".into(),
        };
        A::query(r).using(&a).create(row()).await.unwrap();
        let again = A::query(r).using(&a).create(row()).await;
        assert!(
            matches!(again, Err(Error::UniqueViolation { .. })),
            "{again:?}"
        );
    }
);

/// `models` refused by `create_schema` with a typed error, and no schema made.
async fn refused_at_build(
    t: &common::TestDb,
    name: &SchemaName,
    models: &[&'static tenantry::ModelMeta],
) {
    let made = create_schema(&t.registry, name, Some(models), false, true).await;
    assert!(
        matches!(
            made,
            Err(Error::InvalidRelation { .. } | Error::InvalidArgument { .. })
        ),
        "{made:?}"
    );
    assert!(
        !t.registry.schema().exists(name).await.unwrap(),
        "{name} was made"
    );
}

// ---------------------------------------------------------------------------------------
// Constants inlined into check DDL.

backend_test!(
    a_uuid_check_is_refused_when_the_table_is_built,
    |t: common::TestDb| async move {
        // The DDL would write it as text, compared with bytes on SQLite and MySQL.
        refused_at_build(&t, &t.schema("ua"), &[Token::META]).await;
        let snapshot = tenantry::migrate::Snapshot::of_models(
            &[Token::META],
            tenantry::migrate::MigrationScope::Tenant,
        );
        assert!(snapshot.unwrap_err().contains("ak_tokens_not_nil"));
    }
);

backend_test!(
    a_timestamp_check_is_refused_when_the_table_is_built,
    |t: common::TestDb| async move {
        refused_at_build(&t, &t.schema("ta"), &[Show::META]).await;
    }
);

backend_test!(
    a_string_constant_with_quotes_and_backslashes_is_one_value,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions, Snapshot,
        };
        let (built, migrated) = (t.schema("sb"), t.schema("sm"));
        tenant(&t.registry, &built, &[Note::META]).await;
        let registry = Registry::new(t.registry.database().clone()).register::<Note>();
        let models = Snapshot::of_models(registry.models(), MigrationScope::Tenant).unwrap();
        let changes = diff(&Snapshot::default(), &models, &Renames::default()).unwrap();
        let text = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
        create_schema(&registry, &migrated, Some(&[]), false, false)
            .await
            .unwrap();
        let files = [("0001_initial", text.as_str())];
        let report = Migrator::new(&registry, Migrations::from_files(&files).unwrap())
            .run(RunOptions {
                tenant: Some(migrated.clone()),
                ..RunOptions::default()
            })
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
        // The replayed snapshot is the models' (no spurious change on the next run).
        let again = diff(
            &Snapshot::of_migrations(
                &Migrations::from_files(&files).unwrap(),
                MigrationScope::Tenant,
            )
            .unwrap(),
            &Snapshot::of_models(registry.models(), MigrationScope::Tenant).unwrap(),
            &Renames::default(),
        )
        .unwrap();
        assert!(again.operations.is_empty(), "{:?}", again.operations);
        let r = &registry;
        for schema in [&built, &migrated] {
            let nasty = Note::query(r)
                .using(schema)
                .create(Note {
                    id: 0,
                    body: NASTY.into(),
                })
                .await;
            assert!(is_check(&nasty), "{schema}: {nasty:?}");
            for fine in ["it's", "\\", "'", "*/", "{table:ak_a}", "it's \\' */"] {
                Note::query(r)
                    .using(schema)
                    .create(Note {
                        id: 0,
                        body: fine.into(),
                    })
                    .await
                    .unwrap();
            }
            assert_eq!(Note::query(r).using(schema).count().await.unwrap(), 6);
        }
    }
);

backend_test!(
    a_nul_in_a_check_constant_is_an_error_not_a_panic,
    |t: common::TestDb| async move {
        #[derive(Model, Debug, Clone, PartialEq)]
        #[model(
            table = "ak_nuls",
            check(name = "ak_nuls_ok", condition = Nul::body().ne("a\0b"))
        )]
        struct Nul {
            id: i64,
            #[model(max_length = 10)]
            body: String,
        }
        let a = t.schema("nu");
        // Whatever the backend makes of it, it does not panic; if built, it holds.
        let made = create_schema(&t.registry, &a, Some(&[Nul::META]), false, true).await;
        if made.is_ok() {
            Nul::query(&t.registry)
                .using(&a)
                .create(Nul {
                    id: 0,
                    body: "a".into(),
                })
                .await
                .unwrap();
        }
    }
);

// ---------------------------------------------------------------------------------------
// Introspection.

backend_test!(
    introspection_sees_a_check_named_like_a_column,
    |t: common::TestDb| async move {
        let a = t.schema("ib");
        tenant(&t.registry, &a, &[Bx::META, Doc::META]).await;
        let bad = Bx::query(&t.registry)
            .using(&a)
            .create(Bx { id: 0, qty: -1 })
            .await;
        assert!(is_check(&bad), "{bad:?}");
        if t.backend != Backend::Sqlite {
            let live = tenantry::migrate::introspect(t.registry.database(), Some(&a))
                .await
                .unwrap();
            let boxes: Vec<&String> = live.tables["ak_boxes"].checks.iter().collect();
            assert_eq!(boxes, ["qty"], "{:?}", live.tables["ak_boxes"]);
        }
    }
);

backend_test!(
    introspection_leaves_out_mariadb_json_checks_only,
    |t: common::TestDb| async move {
        let a = t.schema("ij");
        tenant(&t.registry, &a, &[Doc::META]).await;
        if t.backend != Backend::Sqlite {
            let live = tenantry::migrate::introspect(t.registry.database(), Some(&a))
                .await
                .unwrap();
            let docs: Vec<&String> = live.tables["ak_docs"].checks.iter().collect();
            assert_eq!(docs, ["ak_docs_rev_ok"], "{:?}", live.tables["ak_docs"]);
        }
    }
);

// ---------------------------------------------------------------------------------------
// Upserts.

fn bin(place: &str, sku: &str, count: i64) -> Bin {
    Bin {
        id: 0,
        place: place.into(),
        number: 1,
        sku: sku.into(),
        count,
    }
}

async fn bins(r: &Registry, schema: &SchemaName) -> Vec<(String, String, i64)> {
    Bin::query(r)
        .using(schema)
        .order_by([Bin::place().asc(), Bin::sku().asc()])
        .values_list((Bin::place(), Bin::sku(), Bin::count()))
        .await
        .unwrap()
}

backend_pool_test!(
    a_bulk_upsert_breaking_a_check_writes_nothing_in_its_tenant_only,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("pa"), t.schema("pb"));
        tenant(&t.registry, &a, &[Bin::META]).await;
        tenant(&t.registry, &b, &[Bin::META]).await;
        let r = &t.registry;
        for schema in [&a, &b] {
            Bin::query(r)
                .using(schema)
                .bulk_create([bin("n", "s1", 10), bin("n", "s2", 10), bin("n", "s3", 2)])
                .await
                .unwrap();
        }
        let take = |schema: SchemaName| {
            with_tenant(
                Some(schema),
                Bin::query(r)
                    .on_conflict((Bin::sku(), Bin::place()))
                    .do_update_set([Bin::count().set_expr(Bin::count() - 5)])
                    .bulk_create([
                        bin("n", "s1", 0),
                        bin("n", "s3", 0),
                        bin("n", "s2", 0),
                        bin("n", "s4", 0),
                    ]),
            )
        };
        // In `a` s3 goes negative; in `b` the same upsert without s3.
        let (in_a, in_b) = tokio::join!(take(a.clone()), async {
            with_tenant(
                Some(b.clone()),
                Bin::query(r)
                    .on_conflict((Bin::place(), Bin::sku()))
                    .do_update_set([Bin::count().set_expr(Bin::count() - 5)])
                    .bulk_create([bin("n", "s2", 0), bin("n", "s1", 0), bin("n", "s4", 0)]),
            )
            .await
        });
        assert!(is_check(&in_a), "{in_a:?}");
        let in_b = in_b.unwrap();
        assert_eq!(
            in_b.iter()
                .map(|x| (x.sku.clone(), x.count))
                .collect::<Vec<_>>(),
            vec![("s2".into(), 5), ("s1".into(), 5), ("s4".into(), 0)]
        );
        assert_eq!(
            bins(r, &a).await,
            vec![
                ("n".into(), "s1".into(), 10),
                ("n".into(), "s2".into(), 10),
                ("n".into(), "s3".into(), 2),
            ]
        );
        assert_eq!(bins(r, &b).await.len(), 4);
    }
);

backend_test!(
    a_composite_upsert_on_a_text_key_differing_only_in_case_or_spaces,
    |t: common::TestDb| async move {
        let a = t.schema("cs");
        tenant(&t.registry, &a, &[Bin::META]).await;
        let r = &t.registry;
        Bin::query(r)
            .using(&a)
            .create(bin("north", "bolt", 10))
            .await
            .unwrap();
        // Another key on every backend (utf8mb4_bin on MySQL): a new row.
        let other = Bin::query(r)
            .using(&a)
            .on_conflict((Bin::place(), Bin::sku()))
            .do_update(Bin::count())
            .create(bin("North", "bolt", 1))
            .await
            .unwrap();
        assert_eq!((other.place.as_str(), other.count), ("North", 1));
        // Trailing spaces: MySQL refuses; elsewhere another row.
        let spaced = Bin::query(r)
            .using(&a)
            .on_conflict((Bin::sku(), Bin::place()))
            .do_update(Bin::count())
            .create(bin("north", "bolt ", 2))
            .await;
        match t.backend {
            Backend::MySql => assert!(
                matches!(spaced, Err(Error::InvalidArgument { .. })),
                "{spaced:?}"
            ),
            _ => assert_eq!(spaced.unwrap().count, 2),
        }
        let rows = bins(r, &a).await;
        assert!(
            rows.contains(&("north".into(), "bolt".into(), 10)),
            "{rows:?}"
        );
    }
);

// ---------------------------------------------------------------------------------------
// Migrations.

async fn run_migrations(
    registry: &Registry,
    schema: &SchemaName,
    files: &[(&str, String)],
) -> tenantry::migrate::RunReport {
    use tenantry::migrate::{Migrations, Migrator, RunOptions};
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(id, text)| (*id, text.as_str()))
        .collect();
    Migrator::new(registry, Migrations::from_files(&files).unwrap())
        .run(RunOptions {
            tenant: Some(schema.clone()),
            ..RunOptions::default()
        })
        .await
        .unwrap()
}

backend_test!(
    adding_a_check_keeps_composite_unique_and_indexes,
    |t: common::TestDb| async move {
        use tenantry::migrate::{diff, introspect, Migration, MigrationScope, Renames, Snapshot};
        let db = t.registry.database().clone();
        let v1 = Snapshot::of_models(&[PairV1::META], MigrationScope::Tenant).unwrap();
        let v2 = Snapshot::of_models(&[PairV2::META], MigrationScope::Tenant).unwrap();
        let first = diff(&Snapshot::default(), &v1, &Renames::default()).unwrap();
        let second = diff(&v1, &v2, &Renames::default()).unwrap();
        let files = vec![
            (
                "0001_initial",
                Migration::file_text(MigrationScope::Tenant, false, &first.operations),
            ),
            (
                "0002_check",
                Migration::file_text(MigrationScope::Tenant, true, &second.operations),
            ),
        ];
        let registry = Registry::new(db.clone()).register::<PairV2>();
        let (migrated, built) = (t.schema("mp"), t.schema("bp"));
        create_schema(&registry, &migrated, Some(&[]), false, false)
            .await
            .unwrap();
        run_migrations(&registry, &migrated, &files[..1]).await;
        PairV1::query(&registry)
            .using(&migrated)
            .create(PairV1 {
                id: 0,
                a: "x".into(),
                b: "y".into(),
                n: 1,
            })
            .await
            .unwrap();
        let report = run_migrations(&registry, &migrated, &files).await;
        assert!(report.is_complete(), "{report:?}");
        tenant(&registry, &built, &[PairV2::META]).await;
        let differences = introspect(&db, Some(&built))
            .await
            .unwrap()
            .differences(&introspect(&db, Some(&migrated)).await.unwrap());
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        let again = PairV2::query(&registry)
            .using(&migrated)
            .create(PairV2 {
                id: 0,
                a: "x".into(),
                b: "y".into(),
                n: 2,
            })
            .await;
        assert!(
            matches!(again, Err(Error::UniqueViolation { .. })),
            "{again:?}"
        );
        let negative = PairV2::query(&registry)
            .using(&migrated)
            .create(PairV2 {
                id: 0,
                a: "x".into(),
                b: "z".into(),
                n: -2,
            })
            .await;
        assert!(is_check(&negative), "{negative:?}");
        assert_eq!(
            PairV2::query(&registry)
                .using(&migrated)
                .count()
                .await
                .unwrap(),
            1
        );
    }
);

backend_test!(
    renaming_a_column_under_a_check_migrates_and_replays,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, introspect, Migration, MigrationScope, Migrations, Renames, Snapshot,
        };
        let db = t.registry.database().clone();
        let v1 = Snapshot::of_models(&[PriceV1::META], MigrationScope::Tenant).unwrap();
        let v2 = Snapshot::of_models(&[PriceV2::META], MigrationScope::Tenant).unwrap();
        let first = diff(&Snapshot::default(), &v1, &Renames::default()).unwrap();
        let renames = Renames {
            tables: vec![],
            columns: vec![("ak_prices".into(), "price".into(), "cost".into())],
        };
        let second = diff(&v1, &v2, &renames).unwrap();
        let files = vec![
            (
                "0001_initial",
                Migration::file_text(MigrationScope::Tenant, false, &first.operations),
            ),
            (
                "0002_rename",
                Migration::file_text(MigrationScope::Tenant, true, &second.operations),
            ),
        ];
        let registry = Registry::new(db.clone()).register::<PriceV2>();
        let (migrated, built) = (t.schema("mr"), t.schema("br"));
        create_schema(&registry, &migrated, Some(&[]), false, false)
            .await
            .unwrap();
        run_migrations(&registry, &migrated, &files[..1]).await;
        PriceV1::query(&registry)
            .using(&migrated)
            .create(PriceV1 { id: 0, price: 3 })
            .await
            .unwrap();
        let report = run_migrations(&registry, &migrated, &files).await;
        assert!(report.is_complete(), "{report:?} {:?}", second.operations);
        // Replayed snapshot == models: nothing more to migrate.
        let texts: Vec<(&str, &str)> = files.iter().map(|(i, s)| (*i, s.as_str())).collect();
        let replayed = Snapshot::of_migrations(
            &Migrations::from_files(&texts).unwrap(),
            MigrationScope::Tenant,
        )
        .unwrap();
        let more = diff(&replayed, &v2, &Renames::default()).unwrap();
        assert!(more.operations.is_empty(), "{:?}", more.operations);
        tenant(&registry, &built, &[PriceV2::META]).await;
        let differences = introspect(&db, Some(&built))
            .await
            .unwrap()
            .differences(&introspect(&db, Some(&migrated)).await.unwrap());
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        let bad = PriceV2::query(&registry)
            .using(&migrated)
            .create(PriceV2 { id: 0, cost: -1 })
            .await;
        assert!(is_check(&bad), "{bad:?}");
        assert_eq!(
            PriceV2::query(&registry)
                .using(&migrated)
                .values_list(PriceV2::cost())
                .await
                .unwrap(),
            vec![3]
        );
    }
);

// ---------------------------------------------------------------------------------------
// More constants, names and a failing check migration.

fn ten() -> tenantry::Decimal {
    "10.00".parse().unwrap()
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_fees",
    check(name = "ak_fees_min", condition = Fee::amount().gte(ten()))
)]
struct Fee {
    id: i64,
    #[model(max_digits = 12, decimal_places = 2)]
    amount: tenantry::Decimal,
}

backend_test!(
    a_decimal_check_is_enforced_on_every_backend,
    |t: common::TestDb| async move {
        let a = t.schema("de");
        tenant(&t.registry, &a, &[Fee::META]).await;
        let r = &t.registry;
        for ok in ["10.00", "10.01", "100.00", "9999.99"] {
            let fee = Fee {
                id: 0,
                amount: ok.parse().unwrap(),
            };
            let made = Fee::query(r).using(&a).create(fee).await;
            assert!(made.is_ok(), "{ok}: {made:?}");
        }
        for bad in ["9.99", "1.00", "-100.00", "0.00"] {
            let fee = Fee {
                id: 0,
                amount: bad.parse().unwrap(),
            };
            let made = Fee::query(r).using(&a).create(fee).await;
            assert!(is_check(&made), "{bad}: {made:?}");
        }
        assert_eq!(Fee::query(r).using(&a).count().await.unwrap(), 4);
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_left", check(name = "ak_same_name", condition = Left::n().gte(0)))]
struct Left {
    id: i64,
    n: i64,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_right", check(name = "ak_same_name", condition = Right::n().lte(0)))]
struct Right {
    id: i64,
    n: i64,
}

backend_test!(
    two_models_with_one_check_name_both_enforce,
    |t: common::TestDb| async move {
        let a = t.schema("sn");
        let made = create_schema(
            &t.registry,
            &a,
            Some(&[Left::META, Right::META]),
            false,
            true,
        )
        .await;
        // Refused before anything is built, or built with both checks: never half a tenant.
        match made {
            Ok(()) => {
                let r = &t.registry;
                assert!(is_check(
                    &Left::query(r).using(&a).create(Left { id: 0, n: -1 }).await
                ));
                assert!(is_check(
                    &Right::query(r)
                        .using(&a)
                        .create(Right { id: 0, n: 1 })
                        .await
                ));
            }
            Err(error) => panic!("{error:?}"),
        }
    }
);

backend_test!(
    adding_a_check_a_stored_row_breaks_fails_whole_and_keeps_the_table,
    |t: common::TestDb| async move {
        use tenantry::migrate::{diff, Migration, MigrationScope, Renames, Snapshot};
        let db = t.registry.database().clone();
        let v1 = Snapshot::of_models(&[PairV1::META], MigrationScope::Tenant).unwrap();
        let v2 = Snapshot::of_models(&[PairV2::META], MigrationScope::Tenant).unwrap();
        let first = diff(&Snapshot::default(), &v1, &Renames::default()).unwrap();
        let second = diff(&v1, &v2, &Renames::default()).unwrap();
        let files = vec![
            (
                "0001_initial",
                Migration::file_text(MigrationScope::Tenant, false, &first.operations),
            ),
            (
                "0002_check",
                Migration::file_text(MigrationScope::Tenant, true, &second.operations),
            ),
        ];
        let registry = Registry::new(db.clone()).register::<PairV2>();
        let (bad, good) = (t.schema("fb"), t.schema("fg"));
        for schema in [&bad, &good] {
            create_schema(&registry, schema, Some(&[]), false, false)
                .await
                .unwrap();
            run_migrations(&registry, schema, &files[..1]).await;
        }
        let r = &registry;
        PairV1::query(r)
            .using(&bad)
            .bulk_create([
                PairV1 {
                    id: 0,
                    a: "x".into(),
                    b: "y".into(),
                    n: 1,
                },
                PairV1 {
                    id: 0,
                    a: "x".into(),
                    b: "z".into(),
                    n: -1,
                },
            ])
            .await
            .unwrap();
        PairV1::query(r)
            .using(&good)
            .create(PairV1 {
                id: 0,
                a: "x".into(),
                b: "y".into(),
                n: 1,
            })
            .await
            .unwrap();
        let (bad_report, good_report) = tokio::join!(
            run_migrations(&registry, &bad, &files),
            run_migrations(&registry, &good, &files),
        );
        assert!(!bad_report.is_complete(), "{bad_report:?}");
        assert!(good_report.is_complete(), "{good_report:?}");
        // `bad` keeps both rows, its unique key, and no check.
        assert_eq!(PairV1::query(r).using(&bad).count().await.unwrap(), 2);
        let again = PairV1::query(r)
            .using(&bad)
            .create(PairV1 {
                id: 0,
                a: "x".into(),
                b: "y".into(),
                n: 5,
            })
            .await;
        assert!(
            matches!(again, Err(Error::UniqueViolation { .. })),
            "{again:?}"
        );
        PairV1::query(r)
            .using(&bad)
            .create(PairV1 {
                id: 0,
                a: "q".into(),
                b: "y".into(),
                n: -3,
            })
            .await
            .unwrap();
        // `good` has the check.
        let negative = PairV2::query(r)
            .using(&good)
            .create(PairV2 {
                id: 0,
                a: "q".into(),
                b: "y".into(),
                n: -3,
            })
            .await;
        assert!(is_check(&negative), "{negative:?}");
        // Once the rows are fixed, the migration runs in `bad`.
        PairV1::query(r)
            .using(&bad)
            .filter(PairV1::n().lt(0))
            .update([PairV1::n().set(0)])
            .await
            .unwrap();
        let texts: Vec<(&str, &str)> = files.iter().map(|(i, s)| (*i, s.as_str())).collect();
        let report = tenantry::migrate::Migrator::new(
            &registry,
            tenantry::migrate::Migrations::from_files(&texts).unwrap(),
        )
        .run(tenantry::migrate::RunOptions {
            tenant: Some(bad.clone()),
            retry_failed: true,
            ..tenantry::migrate::RunOptions::default()
        })
        .await
        .unwrap();
        assert!(report.is_complete(), "{report:?}");
        let negative = PairV2::query(r)
            .using(&bad)
            .create(PairV2 {
                id: 0,
                a: "w".into(),
                b: "y".into(),
                n: -3,
            })
            .await;
        assert!(is_check(&negative), "{negative:?}");
    }
);

fn noon() -> chrono::NaiveTime {
    chrono::NaiveTime::from_hms_opt(12, 0, 0).unwrap()
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_slots",
    check(name = "ak_slots_afternoon", condition = Slot::at().gte(noon()))
)]
struct Slot {
    id: i64,
    at: chrono::NaiveTime,
}

backend_test!(
    a_time_check_is_refused_when_the_table_is_built,
    |t: common::TestDb| async move {
        refused_at_build(&t, &t.schema("tm"), &[Slot::META]).await;
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_owners")]
struct Owner {
    id: i64,
    #[model(max_length = 10)]
    name: String,
}

/// A composite key over a foreign key and an integer: columns of different types.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_pets", unique(slot, owner))]
struct Pet {
    id: i64,
    owner: tenantry::ForeignKey<Owner>,
    slot: i32,
    visits: i64,
}

async fn visit(r: &Registry, owner: i64, slot: i32, tasks: usize) -> Vec<i64> {
    let hits = (0..tasks).map(|i| async move {
        let q = Pet::query(r);
        let q = if i % 2 == 0 {
            q.on_conflict((Pet::owner(), Pet::slot()))
        } else {
            q.on_conflict((Pet::slot(), Pet::owner()))
        };
        q.do_update_set([Pet::visits().set_expr(Pet::visits() + Pet::visits().excluded())])
            .create(Pet {
                id: 0,
                owner: tenantry::ForeignKey::new(owner),
                slot,
                visits: 1,
            })
            .await
            .unwrap()
            .visits
    });
    let mut seen = futures_util::future::join_all(hits).await;
    seen.sort_unstable();
    seen
}

backend_pool_test!(
    racing_upserts_on_a_foreign_key_and_int_key_count_exactly_per_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("fa"), t.schema("fb"));
        tenant(&t.registry, &a, &[Owner::META, Pet::META]).await;
        tenant(&t.registry, &b, &[Owner::META, Pet::META]).await;
        let r = &t.registry;
        let mut owners = Vec::new();
        for schema in [&a, &b] {
            let made = Owner::query(r)
                .using(schema)
                .bulk_create([
                    Owner {
                        id: 0,
                        name: "x".into(),
                    },
                    Owner {
                        id: 0,
                        name: "y".into(),
                    },
                ])
                .await
                .unwrap();
            owners.push((made[0].id, made[1].id));
        }
        // Same (owner id, slot) numbers in both tenants; a neighbour row in each.
        for (schema, (x, y)) in [(&a, owners[0]), (&b, owners[1])] {
            Pet::query(r)
                .using(schema)
                .bulk_create([
                    Pet {
                        id: 0,
                        owner: tenantry::ForeignKey::new(y),
                        slot: 1,
                        visits: 100,
                    },
                    Pet {
                        id: 0,
                        owner: tenantry::ForeignKey::new(x),
                        slot: 2,
                        visits: 200,
                    },
                ])
                .await
                .unwrap();
        }
        let (seen_a, seen_b) = tokio::join!(
            with_tenant(Some(a.clone()), visit(r, owners[0].0, 1, 20)),
            with_tenant(Some(b.clone()), visit(r, owners[1].0, 1, 9)),
        );
        assert_eq!(seen_a, (1..=20).collect::<Vec<_>>());
        assert_eq!(seen_b, (1..=9).collect::<Vec<_>>());
        for (schema, n) in [(&a, 20), (&b, 9)] {
            let mut rows: Vec<(i32, i64)> = Pet::query(r)
                .using(schema)
                .values_list((Pet::slot(), Pet::visits()))
                .await
                .unwrap();
            rows.sort_unstable();
            let mut want = vec![(1, 100), (1, n), (2, 200)];
            want.sort_unstable();
            assert_eq!(rows, want);
        }
        // MySQL: a one-column key beside the composite unique key is refused.
        let single = Pet::query(r)
            .using(&a)
            .on_conflict(Pet::id())
            .do_nothing()
            .create(Pet {
                id: 0,
                owner: tenantry::ForeignKey::new(owners[0].0),
                slot: 9,
                visits: 0,
            })
            .await;
        assert!(single.is_err(), "{single:?}");
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_codes",
    check(name = "ak_codes_prefix", condition = Code::code().startswith("A%_\\'"))
)]
struct Code {
    id: i64,
    #[model(max_length = 20)]
    code: String,
}

backend_test!(
    a_like_check_keeps_its_wildcards_and_escapes_literal,
    |t: common::TestDb| async move {
        let a = t.schema("lk");
        tenant(&t.registry, &a, &[Code::META]).await;
        let r = &t.registry;
        let ok = Code::query(r)
            .using(&a)
            .create(Code {
                id: 0,
                code: "A%_\\'x".into(),
            })
            .await;
        assert!(ok.is_ok(), "{ok:?}");
        for bad in ["ABC\\'x", "A%x\\'", "A%_'x", "A%_\\x", "a%_\\'x"] {
            let made = Code::query(r)
                .using(&a)
                .create(Code {
                    id: 0,
                    code: bad.into(),
                })
                .await;
            assert!(is_check(&made), "{bad:?}: {made:?}");
        }
    }
);

/// A check's `is_in` over a `BTreeSet` (a `HashSet` lists its values in another order on
/// every run, so its check's text would change: documented).
fn allowed_colours() -> std::collections::BTreeSet<String> {
    [
        "red", "green", "blue", "cyan", "magenta", "yellow", "black", "white",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "ak_paints",
    check(name = "ak_paints_colour", condition = Paint::colour().is_in(allowed_colours()))
)]
struct Paint {
    id: i64,
    #[model(max_length = 20)]
    colour: String,
}

backend_test!(
    makemigrations_twice_on_unchanged_models_writes_nothing,
    |_t: common::TestDb| async move {
        use tenantry::migrate::{diff, MigrationScope, Renames, Snapshot};
        let first = Snapshot::of_models(&[Paint::META], MigrationScope::Tenant).unwrap();
        for _ in 0..5 {
            let again = Snapshot::of_models(&[Paint::META], MigrationScope::Tenant).unwrap();
            let changes = diff(&first, &again, &Renames::default()).unwrap();
            assert!(changes.operations.is_empty(), "{:?}", changes.operations);
        }
    }
);

backend_test!(
    migrations_with_colliding_composite_unique_names_keep_both_constraints,
    |t: common::TestDb| async move {
        use tenantry::migrate::{diff, Migration, MigrationScope, Renames, Snapshot};
        let models = Snapshot::of_models(&[Ab::META, A::META], MigrationScope::Tenant);
        // Refusing the models (two indexes of one schema with one name) would do too.
        let Ok(models) = models else { return };
        // makemigrations refusing the name twice in one schema is acceptable too.
        let Ok(changes) = diff(&Snapshot::default(), &models, &Renames::default()) else {
            return;
        };
        let ops = changes.operations;
        let files = vec![(
            "0001_initial",
            Migration::file_text(MigrationScope::Tenant, false, &ops),
        )];
        let registry = Registry::new(t.registry.database().clone())
            .register::<Ab>()
            .register::<A>();
        let a = t.schema("mc");
        create_schema(&registry, &a, Some(&[]), false, false)
            .await
            .unwrap();
        let report = run_migrations(&registry, &a, &files).await;
        if !report.is_complete() {
            return; // refused loudly: acceptable
        }
        let row = || A {
            id: 0,
            b_c: "x".into(),
            d: "y".into(),
        };
        A::query(&registry).using(&a).create(row()).await.unwrap();
        let second = A::query(&registry).using(&a).create(row()).await;
        assert!(
            matches!(second, Err(Error::UniqueViolation { .. })),
            "migrated ak_a has no unique(b_c, d): {second:?}"
        );
    }
);

/// A composite unique key that holds the auto-increment primary key.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_things", unique(id, tag))]
struct Thing {
    id: i64,
    #[model(max_length = 10)]
    tag: String,
    n: i64,
}

backend_test!(
    a_composite_key_holding_the_auto_increment_id_is_refused_before_any_sql,
    |t: common::TestDb| async move {
        let a = t.schema("ai");
        tenant(&t.registry, &a, &[Thing::META]).await;
        let r = &t.registry;
        for nothing in [false, true] {
            let conflict = Thing::query(r)
                .using(&a)
                .on_conflict((Thing::id(), Thing::tag()));
            let upsert = if nothing {
                conflict.do_nothing()
            } else {
                conflict.do_update(Thing::n())
            };
            let made = upsert
                .create(Thing {
                    id: 0,
                    tag: "x".into(),
                    n: 1,
                })
                .await;
            let rows = Thing::query(r).using(&a).count().await.unwrap();
            assert!(
                matches!(made, Err(Error::InvalidArgument { .. })),
                "{made:?}"
            );
            assert_eq!(rows, 0, "do_nothing={nothing}");
        }
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_rates", unique(place, amount))]
struct Rate {
    id: i64,
    #[model(max_length = 10)]
    place: String,
    #[model(max_digits = 12, decimal_places = 2)]
    amount: tenantry::Decimal,
    n: i64,
}

backend_test!(
    a_composite_upsert_on_a_decimal_finer_than_its_scale_is_all_or_nothing,
    |t: common::TestDb| async move {
        let a = t.schema("dr");
        tenant(&t.registry, &a, &[Rate::META]).await;
        let r = &t.registry;
        let made = Rate::query(r)
            .using(&a)
            .on_conflict((Rate::place(), Rate::amount()))
            .do_update(Rate::n())
            .create(Rate {
                id: 0,
                place: "p".into(),
                amount: "1.005".parse().unwrap(),
                n: 1,
            })
            .await;
        let rows = Rate::query(r).using(&a).count().await.unwrap();
        match made {
            Ok(rate) => assert_eq!(rate.place, "p"),
            Err(error) => assert_eq!(rows, 0, "returned {error:?} yet wrote a row"),
        }
    }
);

/// Overlapping bulk upserts of composite keys, given in different orders: no deadlock
/// left over, exact counts, per tenant.
async fn overlap(r: &Registry, tasks: usize) {
    let hits = (0..tasks).map(|i| async move {
        let mut rows: Vec<Bin> = (0..3)
            .map(|j| {
                bin(
                    &format!("p{}", (i + j) % 5),
                    &format!("s{}", (i * 7 + j) % 3),
                    1,
                )
            })
            .collect();
        rows.dedup_by(|x, y| x.place == y.place && x.sku == y.sku);
        if i % 2 == 1 {
            rows.reverse();
        }
        let q = Bin::query(r);
        let q = if i % 3 == 0 {
            q.on_conflict((Bin::sku(), Bin::place()))
        } else {
            q.on_conflict((Bin::place(), Bin::sku()))
        };
        let n = rows.len();
        let stored = q
            .do_update_set([Bin::count().set_expr(Bin::count() + 1)])
            .bulk_create(rows)
            .await
            .unwrap();
        assert_eq!(stored.len(), n);
        n as i64
    });
    let written: i64 = futures_util::future::join_all(hits).await.into_iter().sum();
    let total: Vec<i64> = Bin::query(r).values_list(Bin::count()).await.unwrap();
    assert_eq!(total.iter().sum::<i64>(), written);
}

backend_pool_test!(
    overlapping_composite_bulk_upserts_count_exactly,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("oa"), t.schema("ob"));
        tenant(&t.registry, &a, &[Bin::META]).await;
        tenant(&t.registry, &b, &[Bin::META]).await;
        let r = &t.registry;
        tokio::join!(
            with_tenant(Some(a.clone()), overlap(r, 40)),
            with_tenant(Some(b.clone()), overlap(r, 25)),
        );
    }
);

backend_test!(
    overlapping_composite_bulk_upserts_count_exactly_on_a_wide_pool,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("wa"), t.schema("wb"));
        tenant(&t.registry, &a, &[Bin::META]).await;
        tenant(&t.registry, &b, &[Bin::META]).await;
        let r = &t.registry;
        tokio::join!(
            with_tenant(Some(a.clone()), overlap(r, 80)),
            with_tenant(Some(b.clone()), overlap(r, 60)),
        );
    }
);
