//! Composite unique and index declarations and check constraints, inside the tenant, on
//! every backend: a composite unique key refuses a repeated combination in one tenant and
//! not in another; upserts on a composite key race to an exact count in two tenants at once
//! (pools of 1 and 2) and return bulk rows as stored and in order; a check refuses a bad
//! row with a typed error and writes nothing; and the migration `makemigrations` writes
//! builds the same tables as the models, adds and drops a check on a table with rows.
mod common;

use tenantry::{create_schema, with_tenant, Backend, Error, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "cx_seats",
    unique(event, row, number),
    index(event, sold),
    check(name = "cx_seats_price_ok", condition = Seat::price().gte(0)),
    check(
        name = "cx_seats_place_ok",
        condition = Seat::row().ne("") & Seat::number().gt(0)
    ),
    check(
        name = "cx_seats_discount_ok",
        condition = Seat::discount().expr().lte(Seat::price())
    )
)]
struct Seat {
    id: i64,
    #[model(max_length = 40)]
    event: String,
    #[model(max_length = 4)]
    row: String,
    number: i32,
    price: i64,
    discount: i64,
    sold: bool,
}

/// A composite key whose columns are all the application's: the conflict key of upserts.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cx_stock", unique(warehouse, sku, name = "cx_stock_place"))]
struct Stock {
    id: i64,
    #[model(max_length = 20)]
    warehouse: String,
    #[model(max_length = 20)]
    sku: String,
    count: i64,
}

/// A composite unique key beside a unique column: MySQL cannot tell which one fired.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cx_badges", unique(owner, kind))]
struct Badge {
    id: i64,
    #[model(max_length = 20)]
    owner: String,
    #[model(max_length = 20)]
    kind: String,
    #[model(max_length = 20, unique)]
    serial: String,
}

const MODELS: &[&tenantry::ModelMeta] = &[Seat::META, Stock::META, Badge::META];

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(MODELS), false, true)
        .await
        .unwrap();
}

fn seat(event: &str, row: &str, seat: i32, price: i64) -> Seat {
    Seat {
        id: 0,
        event: event.into(),
        row: row.into(),
        number: seat,
        price,
        discount: 0,
        sold: false,
    }
}

fn stock(warehouse: &str, sku: &str, count: i64) -> Stock {
    Stock {
        id: 0,
        warehouse: warehouse.into(),
        sku: sku.into(),
        count,
    }
}

async fn seats(registry: &Registry, tenant: &SchemaName) -> Vec<(String, String, i32, i64)> {
    Seat::query(registry)
        .using(tenant)
        .order_by([Seat::id().asc()])
        .values_list((Seat::event(), Seat::row(), Seat::number(), Seat::price()))
        .await
        .unwrap()
}

backend_test!(
    a_composite_unique_key_is_per_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ca"), t.schema("cb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let r = &t.registry;
        // Both tenants at once, inside one task: the same seat in each is no conflict.
        let (first_a, first_b) = tokio::join!(
            with_tenant(
                Some(a.clone()),
                Seat::query(r).create(seat("gala", "A", 1, 50))
            ),
            with_tenant(
                Some(b.clone()),
                Seat::query(r).create(seat("gala", "A", 1, 70))
            ),
        );
        first_a.unwrap();
        first_b.unwrap();
        // A combination sharing two of three columns is another key.
        for other in [
            seat("gala", "A", 2, 50),
            seat("gala", "B", 1, 50),
            seat("opera", "A", 1, 50),
        ] {
            Seat::query(r).using(&a).create(other).await.unwrap();
        }
        let again = Seat::query(r)
            .using(&a)
            .create(seat("gala", "A", 1, 99))
            .await;
        assert!(
            matches!(again, Err(Error::UniqueViolation { .. })),
            "{again:?}"
        );
        // A bulk insert holding one repeat writes none of its rows.
        let bulk = Seat::query(r)
            .using(&b)
            .bulk_create([seat("gala", "Z", 9, 1), seat("gala", "A", 1, 1)])
            .await;
        assert!(
            matches!(bulk, Err(Error::UniqueViolation { .. })),
            "{bulk:?}"
        );
        assert_eq!(seats(r, &a).await.len(), 4);
        assert_eq!(seats(r, &b).await, vec![("gala".into(), "A".into(), 1, 70)]);
        // The composite index is there, with its columns in order.
        let live = tenantry::migrate::introspect(t.registry.database(), Some(&a))
            .await
            .unwrap();
        let table = &live.tables["cx_seats"];
        let has = |columns: &[&str], unique: bool| {
            table
                .indexes
                .iter()
                .any(|ix| ix.columns == columns && ix.unique == unique)
        };
        assert!(has(&["event", "row", "number"], true), "{table:?}");
        assert!(has(&["event", "sold"], false), "{table:?}");
    }
);

backend_test!(
    a_check_refuses_a_bad_row_and_writes_nothing,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ka"), t.schema("kb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let r = &t.registry;
        let bad_price = seat("gala", "A", 1, -1);
        let bad_place = seat("gala", "", 1, 5);
        let bad_seat = seat("gala", "A", 0, 5);
        let mut bad_discount = seat("gala", "A", 1, 5);
        bad_discount.discount = 6;
        for (i, bad) in [bad_price, bad_place, bad_seat, bad_discount]
            .into_iter()
            .enumerate()
        {
            // The bad row in `a` and a good one in `b`, at once, inside one task.
            let good = seat("gala", "A", i as i32 + 1, 5);
            let (in_a, in_b) = tokio::join!(
                with_tenant(Some(a.clone()), Seat::query(r).create(bad.clone())),
                with_tenant(Some(b.clone()), Seat::query(r).create(good)),
            );
            match in_a {
                Err(Error::CheckViolation { message }) => {
                    assert!(message.contains("cx_seats_"), "{message}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
            in_b.unwrap();
        }
        assert!(seats(r, &a).await.is_empty());
        assert_eq!(seats(r, &b).await.len(), 4);
        // An UPDATE is checked too, and changes nothing when refused.
        Seat::query(r)
            .using(&a)
            .create(seat("gala", "A", 1, 10))
            .await
            .unwrap();
        let update = Seat::query(r)
            .using(&a)
            .update([Seat::price().set_expr(Seat::price() - 11)])
            .await;
        assert!(
            matches!(update, Err(Error::CheckViolation { .. })),
            "{update:?}"
        );
        assert_eq!(seats(r, &a).await, vec![("gala".into(), "A".into(), 1, 10)]);
        assert!(seats(r, &b).await.iter().all(|s| s.3 == 5));
    }
);

/// `tasks` racing upserts of one composite key, each adding one; the values they saw.
async fn restock(registry: &Registry, tasks: i64, key_order_reversed: bool) -> Vec<i64> {
    let hits = (0..tasks).map(|i| async move {
        let query = Stock::query(registry);
        let conflict = if key_order_reversed && i % 2 == 0 {
            query.on_conflict((Stock::sku(), Stock::warehouse()))
        } else {
            query.on_conflict((Stock::warehouse(), Stock::sku()))
        };
        conflict
            .do_update_set([Stock::count().set_expr(Stock::count() + 1)])
            .create(stock("north", "bolt", 1))
            .await
            .unwrap()
            .count
    });
    futures_util::future::join_all(hits).await
}

backend_pool_test!(
    racing_upserts_on_a_composite_key_count_exactly,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ua"), t.schema("ub"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let r = &t.registry;
        // Another warehouse with the same sku, and the same warehouse with another sku:
        // neither is the raced row.
        for tenant in [&a, &b] {
            Stock::query(r)
                .using(tenant)
                .bulk_create([stock("south", "bolt", 500), stock("north", "nut", 700)])
                .await
                .unwrap();
        }
        let (mut seen_a, mut seen_b) = tokio::join!(
            with_tenant(Some(a.clone()), restock(r, 60, true)),
            with_tenant(Some(b.clone()), restock(r, 25, false)),
        );
        seen_a.sort_unstable();
        seen_b.sort_unstable();
        assert_eq!(seen_a, (1..=60).collect::<Vec<_>>());
        assert_eq!(seen_b, (1..=25).collect::<Vec<_>>());
        for (tenant, count) in [(&a, 60), (&b, 25)] {
            let rows = Stock::query(r)
                .using(tenant)
                .order_by([Stock::warehouse().asc(), Stock::sku().asc()])
                .values_list((Stock::warehouse(), Stock::sku(), Stock::count()))
                .await
                .unwrap();
            assert_eq!(
                rows,
                vec![
                    ("north".into(), "bolt".into(), count),
                    ("north".into(), "nut".into(), 700),
                    ("south".into(), "bolt".into(), 500),
                ]
            );
        }
    }
);

backend_test!(
    a_bulk_upsert_on_a_composite_key_returns_rows_as_stored_in_order,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ba"), t.schema("bb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let r = &t.registry;
        for (tenant, base) in [(&a, 0), (&b, 100)] {
            Stock::query(r)
                .using(tenant)
                .bulk_create((0..6).map(|i| stock("w", &format!("s{i}"), base + i)))
                .await
                .unwrap();
        }
        // s3..s8 in `a` (half conflicting), in reverse order; `b` at once, do_nothing.
        let given: Vec<Stock> = (3..9)
            .rev()
            .map(|i| stock("w", &format!("s{i}"), 1000 + i))
            .collect();
        let (up_a, keep_b) = tokio::join!(
            Stock::query(r)
                .using(&a)
                .on_conflict((Stock::warehouse(), Stock::sku()))
                .do_update(Stock::count())
                .bulk_create(given.clone()),
            Stock::query(r)
                .using(&b)
                .on_conflict((Stock::sku(), Stock::warehouse()))
                .do_nothing()
                .bulk_create(given.clone()),
        );
        let up_a = up_a.unwrap();
        let keys = |rows: &[tenantry::Instance<Stock>]| -> Vec<(String, i64)> {
            rows.iter().map(|s| (s.sku.clone(), s.count)).collect()
        };
        assert_eq!(
            keys(&up_a),
            (3..9)
                .rev()
                .map(|i| (format!("s{i}"), 1000 + i))
                .collect::<Vec<_>>()
        );
        // do_nothing returns the stored rows: the old ones where they were.
        let keep_b = keep_b.unwrap();
        assert_eq!(
            keys(&keep_b),
            (3..9)
                .rev()
                .map(|i| (format!("s{i}"), if i < 6 { 100 + i } else { 1000 + i }))
                .collect::<Vec<_>>()
        );
        for (tenant, rows) in [(&a, 9), (&b, 9)] {
            let count = Stock::query(r).using(tenant).count().await.unwrap();
            assert_eq!(count, rows);
        }
        let a_counts: Vec<i64> = Stock::query(r)
            .using(&a)
            .order_by([Stock::sku().asc()])
            .values_list(Stock::count())
            .await
            .unwrap();
        assert_eq!(a_counts, vec![0, 1, 2, 1003, 1004, 1005, 1006, 1007, 1008]);
    }
);

backend_test!(
    composite_upsert_refusals_come_before_any_sql,
    |t: common::TestDb| async move {
        let a = t.schema("ra");
        tenant(&t.registry, &a).await;
        let r = &t.registry;
        let refused = |result: tenantry::Result<tenantry::Instance<Stock>>| {
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{result:?}"
            );
        };
        // Two columns that are no declared unique key.
        refused(
            Stock::query(r)
                .using(&a)
                .on_conflict((Stock::sku(), Stock::count()))
                .do_nothing()
                .create(stock("w", "x", 1))
                .await,
        );
        // One column of the composite key is no key by itself.
        refused(
            Stock::query(r)
                .using(&a)
                .on_conflict(Stock::sku())
                .do_nothing()
                .create(stock("w", "x", 1))
                .await,
        );
        // A column twice.
        refused(
            Stock::query(r)
                .using(&a)
                .on_conflict((Stock::sku(), Stock::warehouse(), Stock::sku()))
                .do_nothing()
                .create(stock("w", "x", 1))
                .await,
        );
        // An expression assigning a key column.
        refused(
            Stock::query(r)
                .using(&a)
                .on_conflict((Stock::warehouse(), Stock::sku()))
                .do_update_set([Stock::sku().set("other".to_owned())])
                .create(stock("w", "x", 1))
                .await,
        );
        // Two rows with the same composite key.
        let twice = Stock::query(r)
            .using(&a)
            .on_conflict((Stock::warehouse(), Stock::sku()))
            .do_nothing()
            .bulk_create([stock("w", "x", 1), stock("w", "x", 2)])
            .await;
        assert!(
            matches!(twice, Err(Error::InvalidArgument { .. })),
            "{twice:?}"
        );
        assert_eq!(Stock::query(r).using(&a).count().await.unwrap(), 0);
        // On MySQL a model with another unique key than the composite one is refused.
        let badge = Badge {
            id: 0,
            owner: "ann".into(),
            kind: "gold".into(),
            serial: "g-1".into(),
        };
        let upsert = Badge::query(r)
            .using(&a)
            .on_conflict((Badge::owner(), Badge::kind()))
            .do_update(Badge::serial())
            .create(badge.clone())
            .await;
        match t.backend {
            Backend::MySql => {
                assert!(
                    matches!(upsert, Err(Error::Unsupported { .. })),
                    "{upsert:?}"
                );
                assert_eq!(Badge::query(r).using(&a).count().await.unwrap(), 0);
            }
            _ => assert_eq!(upsert.unwrap().serial, "g-1"),
        }
    }
);

backend_test!(
    a_check_across_a_relation_is_refused_when_the_table_is_built,
    |t: common::TestDb| async move {
        #[derive(Model, Debug, Clone, PartialEq)]
        #[model(table = "cx_owners")]
        struct Owner {
            id: i64,
            age: i32,
        }
        #[derive(Model, Debug, Clone, PartialEq)]
        #[model(
            table = "cx_pets",
            check(name = "cx_pets_adult", condition = Pet::owner().to(Owner::age()).gte(18))
        )]
        struct Pet {
            id: i64,
            owner: tenantry::ForeignKey<Owner>,
        }
        let a = t.schema("rel");
        let made = create_schema(
            &t.registry,
            &a,
            Some(&[Owner::META, Pet::META]),
            false,
            true,
        )
        .await;
        assert!(
            matches!(made, Err(Error::InvalidRelation { .. })),
            "{made:?}"
        );
        // Nor does makemigrations write it.
        let models = tenantry::migrate::Snapshot::of_models(
            &[Owner::META, Pet::META],
            tenantry::migrate::MigrationScope::Tenant,
        );
        assert!(models.unwrap_err().contains("cx_pets_adult"));
    }
);

backend_test!(
    makemigrations_builds_the_same_constraints_and_changes_a_check,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, introspect, Migration, MigrationScope, Migrations, Migrator, Operation, Renames,
            RunOptions, Snapshot,
        };
        let db = t.registry.database().clone();
        let registry = Registry::new(db.clone())
            .register::<Seat>()
            .register::<Stock>();
        let models = Snapshot::of_models(registry.models(), MigrationScope::Tenant).unwrap();
        let changes = diff(&Snapshot::default(), &models, &Renames::default()).unwrap();
        let initial = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
        assert!(initial.contains("cx_seats_price_ok"), "{initial}");
        assert!(
            initial.contains("uq_cx_seats_event_row_number"),
            "{initial}"
        );
        let (built, migrated) = (t.schema("tbuilt"), t.schema("tmigrated"));
        create_schema(&registry, &built, None, false, true)
            .await
            .unwrap();
        create_schema(&registry, &migrated, Some(&[]), false, false)
            .await
            .unwrap();
        let run = |files: Vec<(&'static str, String)>| {
            let registry = registry.clone();
            let migrated = migrated.clone();
            async move {
                let files: Vec<(&str, &str)> = files
                    .iter()
                    .map(|(id, text)| (*id, text.as_str()))
                    .collect();
                let set = Migrations::from_files(&files).unwrap();
                Migrator::new(&registry, set)
                    .run(RunOptions {
                        tenant: Some(migrated),
                        ..RunOptions::default()
                    })
                    .await
                    .unwrap()
            }
        };
        let report = run(vec![("0001_initial", initial.clone())]).await;
        assert!(report.is_complete(), "{report:?}");
        let differences = introspect(&db, Some(&built))
            .await
            .unwrap()
            .differences(&introspect(&db, Some(&migrated)).await.unwrap());
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        if t.backend != Backend::Sqlite {
            let live = introspect(&db, Some(&migrated)).await.unwrap();
            assert_eq!(live.tables["cx_seats"].checks.len(), 3, "{live:?}");
        }
        // Both schemas refuse the same bad rows, and the two tenants hold their own rows.
        for (tenant, event) in [(&built, "built"), (&migrated, "migrated")] {
            let bad = Seat::query(&registry)
                .using(tenant)
                .create(seat("e", "A", 1, -5))
                .await;
            assert!(matches!(bad, Err(Error::CheckViolation { .. })), "{bad:?}");
            Seat::query(&registry)
                .using(tenant)
                .create(seat(event, "A", 1, 5))
                .await
                .unwrap();
            let again = Seat::query(&registry)
                .using(tenant)
                .create(seat(event, "A", 1, 6))
                .await;
            assert!(
                matches!(again, Err(Error::UniqueViolation { .. })),
                "{again:?}"
            );
        }
        assert_eq!(seats(&registry, &migrated).await[0].0, "migrated");
        assert_eq!(seats(&registry, &built).await[0].0, "built");

        // A check dropped and one added on the table with its row: the rebuilt (SQLite) or
        // altered table keeps the row and the other checks.
        let mut later = models.clone();
        let seats_table = later.tables.get_mut("cx_seats").unwrap();
        seats_table.checks.retain(|c| c.name != "cx_seats_price_ok");
        let mut wide = seats_table.checks[0].clone();
        wide.name = "cx_seats_seat_small".into();
        for text in [&mut wide.postgres, &mut wide.mysql, &mut wide.sqlite] {
            *text = text
                .replace("<> ''", "<> 'ZZ'")
                .replace("\"number\" > 0", "\"number\" < 100")
                .replace("`number` > 0", "`number` < 100");
        }
        seats_table.checks.push(wide);
        let changes = diff(&models, &later, &Renames::default()).unwrap();
        let kinds: Vec<&str> = changes
            .operations
            .iter()
            .map(|op| match op {
                Operation::DropCheck { .. } => "drop",
                Operation::AddCheck { .. } => "add",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["drop", "add"], "{:?}", changes.operations);
        let second = Migration::file_text(MigrationScope::Tenant, true, &changes.operations);
        let report = run(vec![("0001_initial", initial), ("0002_checks", second)]).await;
        assert!(report.is_complete(), "{report:?}");
        // The dropped check no longer refuses a negative price (with a discount no higher).
        let mut negative = seat("e", "B", 2, -5);
        negative.discount = -5;
        Seat::query(&registry)
            .using(&migrated)
            .create(negative)
            .await
            .unwrap();
        let too_far = Seat::query(&registry)
            .using(&migrated)
            .create(seat("e", "B", 150, 5))
            .await;
        assert!(
            matches!(too_far, Err(Error::CheckViolation { .. })),
            "{too_far:?}"
        );
        let empty_row = Seat::query(&registry)
            .using(&migrated)
            .create(seat("e", "", 3, 5))
            .await;
        assert!(
            matches!(empty_row, Err(Error::CheckViolation { .. })),
            "{empty_row:?}"
        );
        assert_eq!(seats(&registry, &migrated).await.len(), 2);
        if t.backend != Backend::Sqlite {
            let live = introspect(&db, Some(&migrated)).await.unwrap();
            let names: Vec<&String> = live.tables["cx_seats"].checks.iter().collect();
            assert_eq!(
                names,
                [
                    "cx_seats_discount_ok",
                    "cx_seats_place_ok",
                    "cx_seats_seat_small"
                ]
            );
        }
    }
);
