//! Rows are decoded as they arrive on PostgreSQL and after the result is read on MySQL and
//! SQLite (`Driver::ROWS_AS_THEY_ARRIVE`). A row that does not decode ends the decoding with
//! `Error::Decode` (the rest of the result is still read, not decoded); the connection must
//! then serve the next statement, of another tenant, with that statement's rows only. Every
//! test runs on a pool of one connection, so the next statement is on it.
//! `attack_rows_review.rs` attacks the same path (server errors after the failed row, locks,
//! commits).
mod common;

use futures_util::TryStreamExt as _;
use tenantry::{create_schema, Error, ForeignKey, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "readings")]
struct Reading {
    id: i64,
    #[model(max_length = 40)]
    label: String,
    value: i64,
}

/// The same table, its text column read as an integer: no row decodes.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "readings")]
struct Misread {
    id: i64,
    label: i64,
    value: i64,
}

const ACME_ROWS: usize = 50;
const GLOBEX_ROWS: usize = 30;

/// A pool of one connection with `Reading` in two tenants holding different rows (the same
/// keys, a label naming the tenant).
async fn two_tenants(t: &common::TestDb) -> (common::TestDb, Registry, SchemaName, SchemaName) {
    let pool = t.with_pool(1).await;
    let r = pool
        .registry
        .clone()
        .register::<Reading>()
        .register::<Meter>()
        .register::<MeterReading>();
    let (acme, globex) = (
        SchemaName::parse("acme").unwrap(),
        SchemaName::parse("globex").unwrap(),
    );
    for (schema, rows) in [(&acme, ACME_ROWS), (&globex, GLOBEX_ROWS)] {
        create_schema(&r, schema, None, false, true).await.unwrap();
        let readings = (0..rows).map(|i| Reading {
            id: 0,
            label: format!("{schema}-{i}"),
            value: i as i64,
        });
        Reading::query(&r)
            .using(schema)
            .bulk_create(readings)
            .await
            .unwrap();
    }
    (pool, r, acme, globex)
}

/// Every reading of `schema`, checked to be that tenant's.
async fn own_rows(r: &Registry, schema: &SchemaName, want: usize) {
    let rows = Reading::query(r).using(schema).all().await.unwrap();
    assert_eq!(rows.len(), want, "{schema}");
    for row in &rows {
        assert!(
            row.label.starts_with(&format!("{schema}-")),
            "{schema} read {}",
            row.label
        );
    }
}

fn is_decode_error(result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(Error::Decode { model, column, .. }) => {
            assert_eq!((model, column), ("readings", "label"));
        }
        other => panic!("expected Error::Decode, got {other:?}"),
    }
}

backend_test!(
    a_failed_decode_leaves_the_connection_clean,
    |t: common::TestDb| async move {
        let (pool, r, acme, globex) = two_tenants(&t).await;
        for _ in 0..3 {
            is_decode_error(Misread::query(&r).using(&acme).all().await);
            own_rows(&r, &globex, GLOBEX_ROWS).await;
            is_decode_error(Misread::query(&r).using(&globex).first().await);
            own_rows(&r, &acme, ACME_ROWS).await;
        }
        // A stream stops at the row that does not decode, and nothing follows the error.
        let mut misread = Misread::query(&r).using(&acme).stream_batch(7).stream();
        is_decode_error(misread.try_next().await);
        drop(misread);
        own_rows(&r, &globex, GLOBEX_ROWS).await;
        // Inside a transaction: the statement did not fail on the server, so the transaction
        // goes on, and its next read is right.
        let tx = r.begin_in(&acme).await.unwrap();
        is_decode_error(Misread::query(&tx).using(&acme).all().await);
        let rows = Reading::query(&tx).using(&acme).all().await.unwrap();
        assert_eq!(rows.len(), ACME_ROWS);
        assert!(rows.iter().all(|row| row.label.starts_with("acme-")));
        tx.rollback().await.unwrap();
        pool.registry.database().disconnect().await;
    }
);

backend_test!(
    failed_and_good_reads_of_two_tenants_in_one_task,
    |t: common::TestDb| async move {
        let (pool, r, acme, globex) = two_tenants(&t).await;
        for _ in 0..10 {
            let (bad, (), (), streamed) = tokio::join!(
                Misread::query(&r).using(&globex).all(),
                own_rows(&r, &acme, ACME_ROWS),
                own_rows(&r, &globex, GLOBEX_ROWS),
                Reading::query(&r)
                    .using(&acme)
                    .stream_batch(7)
                    .stream()
                    .try_collect::<Vec<_>>(),
            );
            is_decode_error(bad);
            let streamed = streamed.unwrap();
            assert_eq!(streamed.len(), ACME_ROWS);
            assert!(streamed.iter().all(|row| row.label.starts_with("acme-")));
        }
        // A stream of one tenant read while the consumer reads the other between rows, on the
        // pool's one connection.
        let mut rows = Reading::query(&r).using(&acme).stream_batch(7).stream();
        let mut seen = 0;
        while let Some(row) = rows.try_next().await.unwrap() {
            assert!(row.label.starts_with("acme-"), "{}", row.label);
            seen += 1;
            if seen % 10 == 0 {
                own_rows(&r, &globex, GLOBEX_ROWS).await;
                is_decode_error(Misread::query(&r).using(&globex).all().await);
            }
        }
        assert_eq!(seen, ACME_ROWS);
        pool.registry.database().disconnect().await;
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "meters")]
struct Meter {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "meter_readings")]
struct MeterReading {
    id: i64,
    #[model(on_delete = "cascade")]
    meter: ForeignKey<Meter>,
    #[model(max_length = 40)]
    label: String,
}

/// The same table, its text column read as an integer: no child decodes.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "meter_readings")]
struct MisreadMeterReading {
    id: i64,
    meter: ForeignKey<Meter>,
    label: i64,
}

/// In each tenant: meter `i` has `i + 1` readings (acme three meters, globex two), every
/// name and label starting with the tenant's name.
async fn meters(r: &Registry, acme: &SchemaName, globex: &SchemaName) {
    for (schema, count) in [(acme, 3), (globex, 2)] {
        let meters = Meter::query(r)
            .using(schema)
            .bulk_create((0..count).map(|i| Meter {
                id: 0,
                name: format!("{schema}-m{i}"),
            }))
            .await
            .unwrap();
        for (i, meter) in meters.iter().enumerate() {
            MeterReading::query(r)
                .using(schema)
                .bulk_create((0..=i).map(|j| MeterReading {
                    id: 0,
                    meter: meter.into(),
                    label: format!("{schema}-m{i}-r{j}"),
                }))
                .await
                .unwrap();
        }
    }
}

/// The meters of `schema` with their prefetched readings, checked to be that tenant's.
async fn own_meters(r: &Registry, schema: &SchemaName, meters: usize) {
    let loaded = Meter::query(r)
        .using(schema)
        .order_by([Meter::id().asc()])
        .prefetch_related(MeterReading::meter())
        .all()
        .await
        .unwrap();
    assert_eq!(loaded.len(), meters, "{schema}");
    for (i, meter) in loaded.iter().enumerate() {
        assert_eq!(meter.name, format!("{schema}-m{i}"));
        let labels: Vec<&str> = meter
            .prefetched(MeterReading::meter())
            .unwrap()
            .iter()
            .map(|reading| reading.label.as_str())
            .collect();
        let want: Vec<String> = (0..=i).map(|j| format!("{schema}-m{i}-r{j}")).collect();
        assert_eq!(labels, want, "{schema}");
    }
}

backend_test!(
    a_failed_prefetch_decode_leaves_the_connection_clean,
    |t: common::TestDb| async move {
        let (pool, r, acme, globex) = two_tenants(&t).await;
        meters(&r, &acme, &globex).await;
        for _ in 0..5 {
            let (bad, (), (), ()) = tokio::join!(
                Meter::query(&r)
                    .using(&acme)
                    .prefetch_related(MisreadMeterReading::meter())
                    .all(),
                own_meters(&r, &globex, 2),
                own_meters(&r, &acme, 3),
                own_rows(&r, &globex, GLOBEX_ROWS),
            );
            match bad {
                Err(Error::Decode { model, column, .. }) => {
                    assert_eq!((model, column), ("meter_readings", "label"));
                }
                other => panic!("expected Error::Decode, got {other:?}"),
            }
        }
        // In a transaction the failed prefetch leaves the transaction usable, reading its
        // own tenant only.
        let tx = r.begin_in(&globex).await.unwrap();
        let bad = Meter::query(&tx)
            .using(&globex)
            .prefetch_related(MisreadMeterReading::meter())
            .all()
            .await;
        assert!(matches!(bad, Err(Error::Decode { .. })), "{bad:?}");
        let loaded = Meter::query(&tx)
            .using(&globex)
            .prefetch_related(MeterReading::meter())
            .all()
            .await
            .unwrap();
        assert_eq!(loaded.len(), 2);
        for meter in &loaded {
            let readings = meter.prefetched(MeterReading::meter()).unwrap();
            assert!(!readings.is_empty());
            assert!(readings.iter().all(|x| x.label.starts_with("globex-")));
        }
        tx.rollback().await.unwrap();
        own_meters(&r, &acme, 3).await;
        pool.registry.database().disconnect().await;
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "notes")]
struct Note {
    id: i64,
    #[model(max_length = 40)]
    text: Option<String>,
    amount: Option<i64>,
    flag: Option<bool>,
}

/// The same table, read as if no column could be NULL.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "notes")]
struct StrictText {
    id: i64,
    text: String,
    amount: Option<i64>,
    flag: Option<bool>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "notes")]
struct StrictAmount {
    id: i64,
    text: Option<String>,
    amount: i64,
    flag: Option<bool>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "notes")]
struct StrictFlag {
    id: i64,
    text: Option<String>,
    amount: Option<i64>,
    flag: bool,
}

fn is_null_error(result: Result<impl std::fmt::Debug, Error>, column: &str) {
    match result {
        Err(Error::Decode {
            model, column: c, ..
        }) => assert_eq!((model, c), ("notes", column)),
        other => panic!("expected Error::Decode for {column}, got {other:?}"),
    }
}

backend_test!(
    a_null_in_a_field_that_is_not_an_option_is_a_decode_error,
    |t: common::TestDb| async move {
        let pool = t.with_pool(1).await;
        let r = pool.registry.clone().register::<Note>();
        let (acme, globex) = (
            SchemaName::parse("acme").unwrap(),
            SchemaName::parse("globex").unwrap(),
        );
        for schema in [&acme, &globex] {
            create_schema(&r, schema, None, false, true).await.unwrap();
        }
        // acme's row has NULLs; globex's the same id with values.
        let nulls = Note {
            id: 0,
            text: None,
            amount: None,
            flag: None,
        };
        Note::query(&r).using(&acme).create(nulls).await.unwrap();
        let full = Note {
            id: 0,
            text: Some("globex".into()),
            amount: Some(7),
            flag: Some(true),
        };
        Note::query(&r).using(&globex).create(full).await.unwrap();
        for _ in 0..3 {
            // SQLite's decoders read NULL as "", 0 and false: each must be an error, as
            // it is on PostgreSQL and MySQL, and never a value a save writes back.
            let (text, amount, flag, other) = tokio::join!(
                StrictText::query(&r).using(&acme).all(),
                StrictAmount::query(&r).using(&acme).first(),
                StrictFlag::query(&r).using(&acme).all(),
                StrictText::query(&r).using(&globex).all(),
            );
            is_null_error(text, "text");
            is_null_error(amount, "amount");
            is_null_error(flag, "flag");
            let other = other.unwrap();
            assert_eq!(other.len(), 1);
            assert_eq!(other[0].text, "globex");
            let projected = StrictAmount::query(&r)
                .using(&acme)
                .values_list(StrictAmount::amount())
                .await;
            assert!(
                matches!(projected, Err(Error::Decode { .. })),
                "{projected:?}"
            );
        }
        let kept = Note::query(&r).using(&acme).all().await.unwrap();
        assert_eq!((kept[0].text.clone(), kept[0].amount), (None, None));
        pool.registry.database().disconnect().await;
    }
);
