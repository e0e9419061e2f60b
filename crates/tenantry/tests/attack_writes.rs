//! Attack tests for typed expressions, upserts and the race-free update_or_create
//! (review of 4f496e0, 24140bb, 49bd039). Each test asserts the correct behaviour and
//! fails while the defect it names exists.
mod common;

use tenantry::{create_schema, Backend, Error, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aw_counters")]
struct Counter {
    id: i64,
    #[model(max_length = 80, unique)]
    key: String,
    hits: i64,
    other: i64,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aw_small")]
struct Small {
    id: i64,
    n: i32,
    m: i32,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aw_events")]
struct Event {
    id: i64,
    #[model(unique)]
    at: chrono::DateTime<chrono::Utc>,
    hits: i64,
}

const MODELS: &[&tenantry::ModelMeta] = &[Counter::META, Small::META, Event::META];

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(MODELS), false, true)
        .await
        .unwrap();
}

fn counter(key: &str, hits: i64, other: i64) -> Counter {
    Counter {
        id: 0,
        key: key.into(),
        hits,
        other,
    }
}

// 1. A key the database finds equal but Rust does not (MySQL/MariaDB tables use
//    `utf8mb4_bin`, a PAD SPACE collation: 'home ' = 'home'). The upsert hits the stored
//    row, the read-back finds it, the own transaction COMMITS, and only then
//    `in_given_order` fails to match it to the model given: the caller gets NotFound
//    though the row was updated (a retry updates it twice).
backend_test!(
    upsert_of_a_key_equal_in_the_database_returns_the_stored_row,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let q = || Counter::query(&t.registry).using(&a);
        q().create(counter("home", 1, 0)).await.unwrap();
        let upserted = q()
            .on_conflict(Counter::key())
            .do_update_set([Counter::hits().set_expr(Counter::hits() + 1)])
            .create(counter("home ", 1, 0))
            .await;
        let stored: Vec<(String, i64)> = q()
            .order_by([Counter::id().asc()])
            .values_list((Counter::key(), Counter::hits()))
            .await
            .unwrap();
        // Fixed by refusing, on MySQL, a key that PAD SPACE makes another key's: a typed
        // error before any SQL, and nothing written.
        match t.backend {
            Backend::MySql => {
                assert!(
                    matches!(
                        upserted,
                        Err(Error::InvalidArgument {
                            argument: "bulk_create",
                            ..
                        })
                    ),
                    "{upserted:?}"
                );
                assert_eq!(stored, vec![("home".to_owned(), 1)]);
            }
            _ => {
                let upserted = upserted.unwrap();
                assert_eq!((upserted.key.as_str(), upserted.hits), ("home ", 1));
            }
        }
        let nothing = q()
            .on_conflict(Counter::key())
            .do_nothing()
            .bulk_create([counter("home  ", 5, 0)])
            .await;
        if t.backend == Backend::MySql {
            assert!(
                matches!(nothing, Err(Error::InvalidArgument { .. })),
                "{nothing:?}"
            );
        } else {
            assert!(nothing.is_ok(), "do_nothing: {nothing:?}");
        }
    }
);

// 1b. The same inside a caller's transaction: the upsert reports an error, but its write
//     stays in the transaction; a caller that commits anyway (the error looked like "not
//     found") has applied an upsert it was told failed.
backend_test!(
    a_failed_upsert_in_a_transaction_leaves_no_write,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        Counter::query(&t.registry)
            .using(&a)
            .create(counter("home", 1, 0))
            .await
            .unwrap();
        let tx = t.registry.begin_in(&a).await.unwrap();
        let upserted = Counter::query(&tx)
            .using(&a)
            .on_conflict(Counter::key())
            .do_update_set([Counter::hits().set_expr(Counter::hits() + 10)])
            .create(counter("home ", 1, 0))
            .await;
        tx.commit().await.unwrap();
        let hits: Vec<i64> = Counter::query(&t.registry)
            .using(&a)
            .filter(Counter::key().eq("home"))
            .values_list(Counter::hits())
            .await
            .unwrap();
        // Either the upsert succeeded (and says so) or it wrote nothing.
        assert!(
            upserted.is_ok() || hits == vec![1],
            "upsert returned {upserted:?} but stored hits are {hits:?}"
        );
    }
);

// 2. Assignments that read a column another assignment writes: SQL (PostgreSQL, SQLite)
//    evaluates every right-hand side on the old row; MySQL/MariaDB evaluate left to right
//    on the row as already updated. `n = m, m = n` swaps on two backends and copies on
//    the third.
backend_test!(
    set_expr_reads_the_old_row_on_every_backend,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let q = || Small::query(&t.registry).using(&a);
        q().create(Small { id: 0, n: 1, m: 2 }).await.unwrap();
        let swapped = q()
            .update([
                Small::n().set_expr(Small::m()),
                Small::m().set_expr(Small::n()),
            ])
            .await;
        let rows = q().values_list((Small::n(), Small::m())).await.unwrap();
        if t.backend == Backend::MySql {
            // Fixed by refusing it there: a typed error and nothing written.
            assert!(
                matches!(swapped, Err(Error::Unsupported { .. })),
                "{swapped:?}"
            );
            assert_eq!(rows, vec![(1, 2)]);
        } else {
            swapped.unwrap();
            assert_eq!(rows, vec![(2, 1)], "swap of n and m");
        }
    }
);

backend_test!(
    upsert_do_update_set_reads_the_old_row_on_every_backend,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let q = || Counter::query(&t.registry).using(&a);
        q().create(counter("k", 5, 0)).await.unwrap();
        // hits += 1 and other = the old hits.
        let row = q()
            .on_conflict(Counter::key())
            .do_update_set([
                Counter::hits().set_expr(Counter::hits() + 1),
                Counter::other().set_expr(Counter::hits()),
            ])
            .create(counter("k", 0, 0))
            .await;
        if t.backend == Backend::MySql {
            assert!(matches!(row, Err(Error::Unsupported { .. })), "{row:?}");
            let stored = q()
                .values_list((Counter::hits(), Counter::other()))
                .await
                .unwrap();
            assert_eq!(stored, vec![(5, 0)]);
        } else {
            let row = row.unwrap();
            assert_eq!((row.hits, row.other), (6, 5));
        }
    }
);

// 3. Integer overflow in a computed UPDATE: PostgreSQL and MySQL refuse it; SQLite
//    (64-bit integers, no range on an INTEGER column) stores 2147483648 in an `i32`
//    column, and every later read of the row fails to decode.
backend_test!(
    i32_overflow_in_set_expr_is_refused,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let q = || Small::query(&t.registry).using(&a);
        q().create(Small {
            id: 0,
            n: i32::MAX,
            m: 0,
        })
        .await
        .unwrap();
        let updated = q().update([Small::n().set_expr(Small::n() + 1)]).await;
        assert!(
            updated.is_err(),
            "n = i32::MAX + 1 was accepted: {updated:?}"
        );
        let rows = q().all().await;
        assert!(rows.is_ok(), "the row is no longer readable: {rows:?}");
    }
);

// 4. A computed group key with a constant: the SELECT and GROUP BY each bind the constant
//    as their own parameter, and PostgreSQL cannot tell `"n" * $1` and `"n" * $2` are
//    the same expression.
backend_test!(
    group_by_a_computed_key_with_a_constant,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let q = || Small::query(&t.registry).using(&a);
        q().bulk_create([1, 1, 2].map(|n| Small { id: 0, n, m: 0 }))
            .await
            .unwrap();
        let groups = q()
            .group_by(Small::n() * 2)
            .aggregate(Small::id().count())
            .await;
        // Fixed by refusing a computed key with a constant, before any SQL.
        assert!(
            matches!(
                groups,
                Err(Error::InvalidArgument {
                    argument: "group_by",
                    ..
                })
            ),
            "{groups:?}"
        );
        let groups = q()
            .group_by(Small::n() + Small::n())
            .aggregate(Small::id().count())
            .await;
        assert_eq!(groups.unwrap(), vec![(2, 2), (4, 1)]);
    }
);

// 5. A key the database stores less precisely than Rust holds it (a timestamp's
//    nanoseconds): the write is done, then `in_given_order` fails to match the row
//    returned. On PostgreSQL and SQLite a one-row `do_update` runs as one statement
//    outside any transaction, so the write is committed and the caller gets an error.
backend_test!(
    upsert_of_a_timestamp_key_with_nanoseconds,
    |t: common::TestDb| async move {
        use chrono::TimeZone;
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let at = chrono::Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .unwrap();
        let q = || Event::query(&t.registry).using(&a);
        let upsert = || {
            q().on_conflict(Event::at())
                .do_update_set([Event::hits().set_expr(Event::hits() + 1)])
                .create(Event { id: 0, at, hits: 1 })
        };
        let first = upsert().await;
        let second = upsert().await;
        let hits: Vec<i64> = q().values_list(Event::hits()).await.unwrap();
        // Fixed by refusing a key finer than the database keeps, before any SQL.
        for result in [&first, &second] {
            assert!(
                matches!(
                    result,
                    Err(Error::InvalidArgument {
                        argument: "bulk_create",
                        ..
                    })
                ),
                "{result:?}"
            );
        }
        assert!(hits.is_empty(), "{hits:?}");
    }
);

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aw_ratios")]
struct Ratio {
    id: i64,
    #[model(unique)]
    x: f64,
    y: Option<f64>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aw_prices")]
struct Price {
    id: i64,
    #[model(max_digits = 10, decimal_places = 2, unique)]
    amount: tenantry::Decimal,
    hits: i64,
}

/// A table named like PostgreSQL's pseudo-table of the proposed row.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "excluded")]
struct Excluded {
    id: i64,
    #[model(max_length = 20, unique)]
    key: String,
    hits: i64,
}

const MORE: &[&tenantry::ModelMeta] = &[Ratio::META, Price::META, Excluded::META];

async fn more(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(MORE), false, true)
        .await
        .unwrap();
}

// 6. A NaN key: Rust never finds it equal to itself (the duplicate check lets two through,
//    the in-order match never matches it); SQLite stores NaN as NULL (a key that never
//    conflicts). Either refuse it before any SQL, like a NULL key, or upsert it; never
//    write and then report an error.
backend_test!(
    upsert_of_a_nan_key_is_refused_or_done,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        more(&t.registry, &a).await;
        let q = || Ratio::query(&t.registry).using(&a);
        let upsert = || {
            q().on_conflict(Ratio::x())
                .do_update(Ratio::y())
                .create(Ratio {
                    id: 0,
                    x: f64::NAN,
                    y: Some(1.0),
                })
        };
        let first = upsert().await;
        let second = upsert().await;
        let rows = q().values_list(Ratio::id()).await;
        let rows = rows.map(|r| r.len());
        // Refused (before SQL, or by the database) and nothing written.
        let refused = first.is_err() && second.is_err() && matches!(rows, Ok(0));
        let done = first.is_ok() && second.is_ok() && matches!(rows, Ok(1));
        assert!(
            refused || done,
            "NaN key: {first:?}, {second:?}, rows stored {rows:?}"
        );
    }
);

// 7. A decimal key: 10.5 and 10.50 are one key everywhere.
backend_test!(
    decimal_keys_equal_in_value_are_one_key,
    |t: common::TestDb| async move {
        use std::str::FromStr;
        let a = t.schema("wa");
        more(&t.registry, &a).await;
        let q = || Price::query(&t.registry).using(&a);
        let dec = |s: &str| tenantry::Decimal::from_str(s).unwrap();
        let upsert = |amount: &str| {
            q().on_conflict(Price::amount())
                .do_update_set([Price::hits().set_expr(Price::hits() + 1)])
                .create(Price {
                    id: 0,
                    amount: dec(amount),
                    hits: 1,
                })
        };
        upsert("10.5").await.unwrap();
        let second = upsert("10.50").await.unwrap();
        assert_eq!(second.hits, 2);
        let dup = q()
            .on_conflict(Price::amount())
            .do_nothing()
            .bulk_create(["7.1", "7.10"].map(|s| Price {
                id: 0,
                amount: dec(s),
                hits: 0,
            }))
            .await;
        assert!(dup.is_err(), "7.1 and 7.10 in one batch: {dup:?}");
    }
);

// 8. A model whose table is named `excluded`: PostgreSQL's DO UPDATE qualifies the stored
//    row's columns by the table's bare name, which is also the proposed row's name there.
backend_test!(
    do_update_set_on_a_table_named_excluded,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        more(&t.registry, &a).await;
        let q = || Excluded::query(&t.registry).using(&a);
        let upsert = || {
            q().on_conflict(Excluded::key())
                .do_update_set([Excluded::hits().set_expr(Excluded::hits() + 1)])
                .create(Excluded {
                    id: 0,
                    key: "k".into(),
                    hits: 10,
                })
        };
        let first = upsert().await;
        if t.backend == Backend::MySql {
            // MySQL has no `excluded` row: the table name is unambiguous there.
            first.unwrap();
            let second = upsert().await;
            assert_eq!(second.map(|r| r.hits).map_err(|e| e.to_string()), Ok(11));
        } else {
            // Fixed by refusing it: a typed error before any SQL, nothing written.
            assert!(matches!(first, Err(Error::Unsupported { .. })), "{first:?}");
            assert_eq!(q().count().await.unwrap(), 0);
        }
    }
);

// 9. f64 division by zero in a computed UPDATE: PostgreSQL and MySQL (strict) refuse it;
//    SQLite answers NULL and silently replaces the value.
backend_test!(
    f64_division_by_zero_in_set_expr_is_refused,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        more(&t.registry, &a).await;
        let q = || Ratio::query(&t.registry).using(&a);
        q().create(Ratio {
            id: 0,
            x: 1.0,
            y: Some(3.0),
        })
        .await
        .unwrap();
        let updated = q().update([Ratio::y().set_expr(Ratio::y() / 0.0)]).await;
        let y: Vec<Option<f64>> = q().all().await.unwrap().into_iter().map(|r| r.y).collect();
        assert!(
            matches!(updated, Err(Error::OutOfRange { .. })) && y == vec![Some(3.0)],
            "y = y / 0: {updated:?}, y now {y:?}"
        );
    }
);

// 9b. The same division by zero in a filter and in a computed column is OutOfRange on every
//     backend (SQLite and MySQL reads would give NULL: a filter dropping the row, a column
//     reading None), in two tenants at once.
backend_test!(
    f64_division_by_zero_in_a_read_is_refused_on_every_backend,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("da"), t.schema("db"));
        for (schema, y) in [(&a, 0.0), (&b, 2.0)] {
            more(&t.registry, schema).await;
            Ratio::query(&t.registry)
                .using(schema)
                .create(Ratio {
                    id: 0,
                    x: 1.0,
                    y: Some(y),
                })
                .await
                .unwrap();
        }
        let r = &t.registry;
        let (filtered, computed) = tokio::join!(
            Ratio::query(r)
                .using(&a)
                .filter(Ratio::x().expr().gt(Ratio::x() / Ratio::y()))
                .count(),
            Ratio::query(r)
                .using(&a)
                .values_list(Ratio::x() / Ratio::y()),
        );
        assert!(
            matches!(filtered, Err(Error::OutOfRange { .. })),
            "{filtered:?}"
        );
        assert!(
            matches!(computed, Err(Error::OutOfRange { .. })),
            "{computed:?}"
        );
        // The other tenant, whose divisor is not zero, reads its answer.
        let halves: Vec<f64> = Ratio::query(r)
            .using(&b)
            .values_list(Ratio::x() / Ratio::y())
            .await
            .unwrap();
        assert_eq!(halves, vec![0.5]);
    }
);

// 10. An upsert through a transaction begun in tenant a's file, aimed at tenant b: the row
//     lands in b or the call is refused; never in a.
backend_test!(
    upsert_in_a_transaction_of_another_tenant_never_writes_there,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("wa"), t.schema("wb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let tx = t.registry.begin_in(&a).await.unwrap();
        let res = Counter::query(&tx)
            .using(&b)
            .on_conflict(Counter::key())
            .do_nothing()
            .bulk_create([counter("x", 1, 0), counter("y", 1, 0)])
            .await;
        let res_ok = res.is_ok();
        if res_ok {
            tx.commit().await.unwrap();
        } else {
            let _ = tx.rollback().await;
        }
        let count = |s: SchemaName| {
            let r = t.registry.clone();
            async move { Counter::query(&r).using(&s).count().await.unwrap() }
        };
        assert_eq!(
            count(a.clone()).await,
            0,
            "tenant a got b's upsert ({res:?})"
        );
        if res_ok {
            assert_eq!(count(b.clone()).await, 2);
        }
    }
);

// 11. Upserts cancelled at every await point on pools of 1 and 2, in two tenants: the
//     connection goes back clean (no open transaction, no lock), and the other tenant's
//     work afterwards neither hangs nor runs inside the abandoned transaction.
backend_pool_test!(
    cancelled_upserts_leave_the_pool_clean,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("wa"), t.schema("wb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let r = &t.registry;
        for polls in 1..25 {
            let key = format!("k{polls}");
            let upsert = Counter::query(r)
                .using(&a)
                .on_conflict(Counter::key())
                .do_nothing()
                .bulk_create([counter(&key, 1, 0), counter("shared", 1, 0)]);
            let _ = common::cancel::cancel_after_polls(polls, upsert).await;
            let after = tokio::time::timeout(std::time::Duration::from_secs(20), async {
                // Tenant b, then a again on the same rows.
                Counter::query(r)
                    .using(&b)
                    .on_conflict(Counter::key())
                    .do_update_set([Counter::hits().set_expr(Counter::hits() + 1)])
                    .create(counter("b", 1, 0))
                    .await
                    .unwrap();
                Counter::query(r)
                    .using(&a)
                    .on_conflict(Counter::key())
                    .do_update_set([Counter::hits().set_expr(Counter::hits() + 1)])
                    .bulk_create([counter(&key, 1, 0), counter("shared", 1, 0)])
                    .await
                    .unwrap()
            })
            .await
            .expect("hung after a cancelled upsert");
            assert_eq!(after.len(), 2);
        }
        assert_eq!(Counter::query(r).using(&b).count().await.unwrap(), 1);
        let b_hits: Vec<i64> = Counter::query(r)
            .using(&b)
            .values_list(Counter::hits())
            .await
            .unwrap();
        assert_eq!(b_hits, vec![24]);
    }
);

/// `email` is made unique by a migration's `create_index` (unique: true), not by the model.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aw_mail")]
struct Mail {
    id: i64,
    #[model(max_length = 40, unique)]
    login: String,
    #[model(max_length = 40)]
    email: String,
    hits: i64,
}

// 12. MySQL's refusal of "another unique key" looks only at the model's `unique` columns;
//     a unique index from a migration (`create_index` with `unique: true`, the path the
//     migration hazards recommend) is invisible to it. ON DUPLICATE KEY UPDATE then fires
//     on that index and updates login `a`'s row for an upsert of login `b`; the read-back
//     by login finds nothing, the own transaction has committed, and the caller gets
//     NotFound. PostgreSQL and SQLite raise the unique violation and change nothing.
backend_test!(
    an_upsert_never_updates_a_row_with_another_key,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        create_schema(&t.registry, &a, Some(&[Mail::META]), false, true)
            .await
            .unwrap();
        if t.backend == Backend::Sqlite {
            // CREATE INDEX cannot name an attached schema's table; the defect is MySQL's.
            return;
        }
        t.registry
            .clone()
            .register::<Mail>()
            .raw("CREATE UNIQUE INDEX ux_aw_mail_email ON {aw_mail} (email)")
            .using(&a)
            .execute()
            .await
            .unwrap();
        let q = || Mail::query(&t.registry).using(&a);
        q().create(Mail {
            id: 0,
            login: "a".into(),
            email: "x@example.com".into(),
            hits: 0,
        })
        .await
        .unwrap();
        let upserted = q()
            .on_conflict(Mail::login())
            .do_update(Mail::hits())
            .create(Mail {
                id: 0,
                login: "b".into(),
                email: "x@example.com".into(),
                hits: 5,
            })
            .await;
        let rows: Vec<(String, i64)> = q()
            .values_list((Mail::login(), Mail::hits()))
            .await
            .unwrap();
        assert!(upserted.is_err(), "upsert of b succeeded: {upserted:?}");
        assert_eq!(
            rows,
            vec![("a".to_owned(), 0)],
            "login a's row changed by an upsert of login b (which returned {upserted:?})"
        );
    }
);

// 13. An upsert inside a caller's transaction whose snapshot predates the conflicting row
//     (MySQL's default REPEATABLE READ: the snapshot is taken by the first read). The
//     INSERT … ON DUPLICATE KEY UPDATE sees the latest row (a locking read), but the
//     read-back is a plain SELECT on the old snapshot: when the upsert changed nothing
//     (`do_nothing`'s `key = key`, or `do_update` with equal values) the row is invisible
//     and the upsert of an existing row answers NotFound.
backend_test!(
    upsert_in_a_transaction_with_an_older_snapshot_returns_the_row,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let tx = t.registry.begin_in(&a).await.unwrap();
        // The transaction's first read (its snapshot on MySQL).
        assert_eq!(Counter::query(&tx).using(&a).count().await.unwrap(), 0);
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            Counter::query(&t.registry)
                .using(&a)
                .create(counter("k", 1, 7)),
        )
        .await;
        if t.backend == Backend::Sqlite {
            // One writer at a time: nothing to see on SQLite.
            let _ = tx.rollback().await;
            return;
        }
        other.expect("concurrent create hung").unwrap();
        let nothing = Counter::query(&tx)
            .using(&a)
            .on_conflict(Counter::key())
            .do_nothing()
            .create(counter("k", 9, 9))
            .await;
        let same = Counter::query(&tx)
            .using(&a)
            .on_conflict(Counter::key())
            .do_update(Counter::hits())
            .create(counter("k", 1, 9))
            .await;
        let _ = tx.rollback().await;
        let nothing = nothing.map(|c| (c.hits, c.other));
        let same = same.map(|c| (c.hits, c.other));
        assert!(
            matches!(nothing, Ok((1, 7))) && matches!(same, Ok((1, 7))),
            "do_nothing: {nothing:?}; do_update with equal values: {same:?}"
        );
    }
);

// 14. Upserts of a directory-routed tenant (own transaction, read-back, RETURNING) stay on
//     its database, next to a default-database tenant of the same name.
backend_test!(
    upserts_of_a_directory_tenant_stay_in_its_database,
    |t: common::TestDb| async move {
        use common::directory::{db_name, directory, schema};
        let dir = directory(&t, 4);
        let registry = tenantry::contrib::register(t.registry.clone())
            .register::<Counter>()
            .register::<tenantry::contrib::DirectoryEntry>()
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        create_schema(&registry, "beta", None, false, true)
            .await
            .unwrap();
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let r = &registry;
        tenantry::with_tenant(
            Some(schema("beta")),
            Counter::query(r).create(counter("k", 100, 0)),
        )
        .await
        .unwrap();
        dir.with_tenant(r, "beta", async {
            Counter::query(r).create(counter("k", 1, 0)).await.unwrap();
            let one = Counter::query(r)
                .on_conflict(Counter::key())
                .do_update_set([Counter::hits().set_expr(Counter::hits() + 1)])
                .create(counter("k", 1, 0))
                .await
                .unwrap();
            assert_eq!(one.hits, 2);
            let kept = Counter::query(r)
                .on_conflict(Counter::key())
                .do_nothing()
                .bulk_create([counter("k", 50, 0), counter("new", 5, 0)])
                .await
                .unwrap();
            assert_eq!((kept[0].hits, kept[1].hits), (2, 5));
            // The returned instances save back to the directory tenant.
            let mut again = kept.into_iter().next().unwrap();
            again.hits = 3;
            again.save().await.unwrap();
        })
        .await
        .unwrap();
        let default_beta = tenantry::with_tenant(
            Some(schema("beta")),
            Counter::query(r).values_list((Counter::key(), Counter::hits())),
        )
        .await
        .unwrap();
        assert_eq!(default_beta, vec![("k".to_owned(), 100)]);
        let dir_beta = dir
            .with_tenant(r, "beta", async {
                Counter::query(r)
                    .order_by([Counter::key().asc()])
                    .values_list((Counter::key(), Counter::hits()))
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
        assert_eq!(dir_beta, vec![("k".to_owned(), 3), ("new".to_owned(), 5)]);
        registry.disconnect().await;
    }
);

// 15. Batches past the bind limit (several statements, one transaction, read-back IN lists),
//     an empty batch, and do_update naming the conflict key itself.
backend_test!(
    large_and_empty_upsert_batches,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let q = || Counter::query(&t.registry).using(&a);
        let none = q()
            .on_conflict(Counter::key())
            .do_nothing()
            .bulk_create(Vec::<Counter>::new())
            .await
            .unwrap();
        assert!(none.is_empty());
        q().bulk_create((0..15_000).map(|i| counter(&format!("k{i}"), i, 0)))
            .await
            .unwrap();
        let n = 30_000;
        for nothing in [false, true] {
            let rows = (0..n).rev().map(|i| counter(&format!("k{i}"), -1, 1));
            let stored = if nothing {
                q().on_conflict(Counter::key())
                    .do_nothing()
                    .bulk_create(rows)
                    .await
            } else {
                q().on_conflict(Counter::key())
                    .do_update_set([Counter::other().set_expr(Counter::other() + 1)])
                    .bulk_create(rows)
                    .await
            }
            .unwrap();
            assert_eq!(stored.len(), n as usize);
            for (row, i) in stored.iter().zip((0..n).rev()) {
                assert_eq!(row.key, format!("k{i}"));
                let hits = if i < 15_000 { i } else { -1 };
                assert_eq!(row.hits, hits, "{}", row.key);
            }
        }
        assert_eq!(q().count().await.unwrap(), n as u64);
        let keyed = q()
            .on_conflict(Counter::key())
            .do_update((Counter::key(), Counter::hits()))
            .create(counter("k1", 77, 0))
            .await
            .unwrap();
        assert_eq!((keyed.key.as_str(), keyed.hits), ("k1", 77));
    }
);

// 16. A shared model's upsert inside a tenant's scope (own transaction in the shared
//     schema / main file on SQLite) reaches the shared table, never the tenant's.
backend_test!(
    shared_model_upsert_inside_a_tenant,
    |t: common::TestDb| async move {
        use common::models::Plan;
        let registry = t.registry.clone().register::<Plan>();
        registry.create_all().await.unwrap();
        let a = t.schema("wa");
        tenant(&registry, &a).await;
        let r = &registry;
        let got = tenantry::with_tenant(Some(a.clone()), async {
            Plan::query(r)
                .on_conflict(Plan::title())
                .do_nothing()
                .bulk_create(["gold", "silver"].map(|title| Plan {
                    id: 0,
                    title: title.into(),
                }))
                .await
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 2);
        let again = Plan::query(r)
            .on_conflict(Plan::title())
            .do_nothing()
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        assert_eq!(again.id, got[0].id);
    }
);

// 17. do_nothing on decimal keys (the read-back binds the key as given, the INSERT at the
//     column's scale): 10.5 finds the stored 10.50, 3 finds 3.00.
backend_test!(
    do_nothing_reads_back_decimal_keys_at_any_scale,
    |t: common::TestDb| async move {
        use std::str::FromStr;
        let a = t.schema("wa");
        more(&t.registry, &a).await;
        let q = || Price::query(&t.registry).using(&a);
        let price = |s: &str, hits: i64| Price {
            id: 0,
            amount: tenantry::Decimal::from_str(s).unwrap(),
            hits,
        };
        q().bulk_create([price("10.50", 1), price("3.00", 2)])
            .await
            .unwrap();
        let got = q()
            .on_conflict(Price::amount())
            .do_nothing()
            .bulk_create([price("10.5", 9), price("3", 9), price("0.1", 9)])
            .await
            .unwrap();
        let hits: Vec<i64> = got.iter().map(|p| p.hits).collect();
        assert_eq!(hits, vec![1, 2, 9]);
    }
);

// 18. Two bulk upserts of the same keys in opposite orders, at once (a nightly sync and a
//     user's import): each statement locks its rows in the order given, so they deadlock
//     on PostgreSQL and MySQL and one fails. The rows are matched back by key anyway, so
//     sending them in key order would make concurrent upserts of one key set safe.
backend_test!(
    concurrent_bulk_upserts_in_opposite_orders_both_succeed,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let r = &t.registry;
        let keys: Vec<String> = (0..300).map(|i| format!("k{i:04}")).collect();
        Counter::query(r)
            .using(&a)
            .bulk_create(keys.iter().map(|k| counter(k, 0, 0)))
            .await
            .unwrap();
        let upsert = |reverse: bool| {
            let mut rows: Vec<Counter> = keys.iter().map(|k| counter(k, 0, 0)).collect();
            if reverse {
                rows.reverse();
            }
            let a = a.clone();
            async move {
                Counter::query(r)
                    .using(&a)
                    .on_conflict(Counter::key())
                    .do_update_set([Counter::hits().set_expr(Counter::hits() + 1)])
                    .bulk_create(rows)
                    .await
                    .map(|_| ())
            }
        };
        let mut failures = Vec::new();
        for _ in 0..15 {
            let (x, y) = tokio::join!(upsert(false), upsert(true));
            failures.extend(x.err());
            failures.extend(y.err());
        }
        assert!(
            failures.is_empty(),
            "{} failed: {:?}",
            failures.len(),
            failures.first()
        );
        let hits: Vec<i64> = Counter::query(r)
            .using(&a)
            .values_list(Counter::hits())
            .await
            .unwrap();
        assert!(hits.iter().all(|h| *h == 30), "lost increments");
    }
);

// 3b. The same for i64: SQLite turns an overflowing integer sum into a REAL, stores it in
//     the INTEGER column and reads it back clamped (or fails), never an error at the UPDATE.
backend_test!(
    i64_overflow_in_set_expr_is_refused,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let q = || Counter::query(&t.registry).using(&a);
        q().create(counter("k", i64::MAX, 0)).await.unwrap();
        let updated = q()
            .update([Counter::hits().set_expr(Counter::hits() + 1)])
            .await;
        let hits = q().values_list(Counter::hits()).await;
        assert!(
            updated.is_err() && matches!(hits.as_deref(), Ok([i64::MAX])),
            "hits = i64::MAX + 1: {updated:?}, now {hits:?}"
        );
    }
);

// 19. Builder errors are not dropped: an upsert or update_or_create on `using("Bad-Name")`
//     fails before any SQL and writes nothing in the default schema or the context's tenant.
backend_test!(
    builder_errors_reach_the_caller_of_upserts,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        tenant(&t.registry, &a).await;
        let r = &t.registry;
        tenantry::with_tenant(Some(a.clone()), async {
            let up = Counter::query(r)
                .using("Bad-Name")
                .on_conflict(Counter::key())
                .do_nothing()
                .create(counter("x", 1, 0))
                .await;
            assert!(up.is_err());
            let upd = Counter::query(r)
                .using("Bad-Name")
                .update_or_create(Counter::key().eq("x"), counter("x", 1, 0))
                .await;
            assert!(upd.is_err());
            let key = Counter::query(r)
                .on_conflict(Counter::hits())
                .do_nothing()
                .create(counter("x", 1, 0))
                .await;
            assert!(key.is_err());
            let expr_key = Counter::query(r)
                .on_conflict(Counter::hits() + 1)
                .do_nothing()
                .create(counter("x", 1, 0))
                .await;
            assert!(expr_key.is_err());
        })
        .await;
        assert_eq!(Counter::query(r).using(&a).count().await.unwrap(), 0);
    }
);

/// A table named like one of its columns, and a column named `excluded`.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aw_hits")]
struct Hits {
    id: i64,
    #[model(max_length = 20, unique)]
    key: String,
    aw_hits: i64,
    excluded: i64,
}

// 20. Qualification in DO UPDATE when the table's name is also a column's, and a column
//     named `excluded`: the stored row's values are read, the proposed ones written.
backend_test!(
    do_update_with_colliding_names,
    |t: common::TestDb| async move {
        let a = t.schema("wa");
        create_schema(&t.registry, &a, Some(&[Hits::META]), false, true)
            .await
            .unwrap();
        let q = || Hits::query(&t.registry).using(&a);
        let row = |aw_hits, excluded| Hits {
            id: 0,
            key: "k".into(),
            aw_hits,
            excluded,
        };
        q().create(row(10, 20)).await.unwrap();
        let set = q()
            .on_conflict(Hits::key())
            .do_update_set([Hits::aw_hits().set_expr(Hits::aw_hits() + Hits::excluded())])
            .create(row(1, 2))
            .await
            .unwrap();
        assert_eq!((set.aw_hits, set.excluded), (30, 20));
        let cols = q()
            .on_conflict(Hits::key())
            .do_update(Hits::excluded())
            .create(row(1, 5))
            .await
            .unwrap();
        assert_eq!((cols.aw_hits, cols.excluded), (30, 5));
    }
);
