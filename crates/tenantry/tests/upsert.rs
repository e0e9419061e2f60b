//! Upserts inside the tenant: racing increments of one row (every task's returned value
//! distinct, the final count exact) in two tenants at once with pools of 1 and 2; bulk
//! upserts half conflicting, returned as stored and in the order given; `do_nothing`;
//! a primary key as the conflict key; transactions; and every refusal, before any SQL;
//! on every backend.
mod common;

use tenantry::{create_schema, with_tenant, Backend, Error, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "up_counters")]
struct Counter {
    id: i64,
    #[model(max_length = 80, unique)]
    key: String,
    hits: i64,
    #[model(max_length = 80)]
    note: String,
}

/// A model keyed by a code the application chooses.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "up_rates")]
struct Rate {
    #[model(primary_key, max_length = 12)]
    code: String,
    value: i64,
}

/// Two unique keys: MySQL cannot say which one an upsert conflicts on.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "up_accounts")]
struct Account {
    id: i64,
    #[model(max_length = 40, unique)]
    login: String,
    #[model(max_length = 40, unique)]
    email: Option<String>,
}

const MODELS: &[&tenantry::ModelMeta] = &[Counter::META, Rate::META, Account::META];

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(MODELS), false, true)
        .await
        .unwrap();
}

fn counter(key: &str, hits: i64, note: &str) -> Counter {
    Counter {
        id: 0,
        key: key.into(),
        hits,
        note: note.into(),
    }
}

/// `tasks` racing upserts of one row, each adding one; returns the values they saw.
async fn hit(registry: &Registry, tasks: i64) -> Vec<i64> {
    let hits = (0..tasks).map(|_| async move {
        Counter::query(registry)
            .on_conflict(Counter::key())
            .do_update_set([Counter::hits().set_expr(Counter::hits() + 1)])
            .create(counter("home", 1, "first"))
            .await
            .unwrap()
            .hits
    });
    futures_util::future::join_all(hits).await
}

/// Two tenants' counters hit by racing upserts at once, inside one task.
async fn race(t: common::TestDb) {
    let (a, b) = (t.schema("ua"), t.schema("ub"));
    tenant(&t.registry, &a).await;
    tenant(&t.registry, &b).await;
    let r = &t.registry;
    let (mut seen_a, mut seen_b) = tokio::join!(
        with_tenant(Some(a.clone()), hit(r, 100)),
        with_tenant(Some(b.clone()), hit(r, 40)),
    );
    // Each upsert returned the row as its own write left it.
    seen_a.sort_unstable();
    seen_b.sort_unstable();
    assert_eq!(seen_a, (1..=100).collect::<Vec<_>>());
    assert_eq!(seen_b, (1..=40).collect::<Vec<_>>());
    for (tenant, hits) in [(&a, 100), (&b, 40)] {
        let rows = Counter::query(&t.registry)
            .using(tenant)
            .values_list((Counter::key(), Counter::hits()))
            .await
            .unwrap();
        assert_eq!(rows, vec![("home".to_owned(), hits)]);
    }
}

backend_pool_test!(racing_upserts_of_one_row_count_exactly, race);
backend_test!(racing_upserts_on_the_default_pool_count_exactly, race);

backend_test!(
    a_bulk_upsert_returns_rows_as_stored_in_order,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ua"), t.schema("ub"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        for (tenant, base) in [(&a, 0), (&b, 100)] {
            Counter::query(&t.registry)
                .using(tenant)
                .bulk_create((0..10).map(|i| counter(&format!("k{i}"), base + i, "old")))
                .await
                .unwrap();
        }
        let before: Vec<(String, i64)> = Counter::query(&t.registry)
            .using(&a)
            .order_by([Counter::id().asc()])
            .values_list((Counter::key(), Counter::id()))
            .await
            .unwrap();
        // In `a`: k5..k14, half conflicting, in reverse order; both tenants at once.
        let update_a = Counter::query(&t.registry)
            .using(&a)
            .on_conflict(Counter::key())
            .do_update((Counter::hits(), Counter::note()))
            .bulk_create(
                (5..15)
                    .rev()
                    .map(|i| counter(&format!("k{i}"), 1000 + i, "new")),
            );
        let nothing_b = Counter::query(&t.registry)
            .using(&b)
            .on_conflict(Counter::key())
            .do_nothing()
            .bulk_create((8..13).map(|i| counter(&format!("k{i}"), -1, "new")));
        let (updated, kept) = tokio::join!(update_a, nothing_b);
        let updated = updated.unwrap();
        let keys: Vec<&str> = updated.iter().map(|c| c.key.as_str()).collect();
        let expected: Vec<String> = (5..15).rev().map(|i| format!("k{i}")).collect();
        assert_eq!(keys, expected);
        for row in &updated {
            assert_eq!(
                (row.hits - 1000, row.note.as_str()),
                (row.key[1..].parse().unwrap(), "new")
            );
            // An updated row keeps its primary key; a new one gets a new key.
            match before.iter().find(|(key, _)| key == &row.key) {
                Some((_, id)) => assert_eq!(row.id, *id),
                None => assert!(row.id > before.iter().map(|(_, id)| *id).max().unwrap()),
            }
        }
        let kept = kept.unwrap();
        let kept: Vec<(String, i64, String)> = kept
            .into_iter()
            .map(|c| {
                let c = c.into_inner();
                (c.key, c.hits, c.note)
            })
            .collect();
        assert_eq!(
            kept,
            vec![
                ("k8".into(), 108, "old".into()),
                ("k9".into(), 109, "old".into()),
                ("k10".into(), -1, "new".into()),
                ("k11".into(), -1, "new".into()),
                ("k12".into(), -1, "new".into()),
            ]
        );
        // Neither tenant saw the other's upsert.
        let count = |tenant: SchemaName| {
            let registry = t.registry.clone();
            async move {
                let rows = Counter::query(&registry)
                    .using(&tenant)
                    .values_list((Counter::key(), Counter::hits()))
                    .await
                    .unwrap();
                (rows.len(), rows.iter().map(|(_, h)| *h).sum::<i64>())
            }
        };
        assert_eq!(count(a.clone()).await, (15, 10 + (1005..1015).sum::<i64>()));
        assert_eq!(count(b.clone()).await, (13, (100..110).sum::<i64>() - 3));
    }
);

backend_test!(
    a_primary_key_chosen_by_the_application_is_a_conflict_key,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ua"), t.schema("ub"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let rates = |tenant: &SchemaName, value: i64| {
            Rate::query(&t.registry)
                .using(tenant)
                .on_conflict(Rate::code())
                .do_update(Rate::value())
                .bulk_create(["EUR", "USD"].map(|code| Rate {
                    code: code.into(),
                    value,
                }))
        };
        rates(&a, 1).await.unwrap();
        rates(&b, 5).await.unwrap();
        let again = rates(&a, 2).await.unwrap();
        assert_eq!(
            again.iter().map(|r| r.value).collect::<Vec<_>>(),
            vec![2, 2]
        );
        let in_b = Rate::query(&t.registry)
            .using(&b)
            .values_list(Rate::value())
            .await
            .unwrap();
        assert_eq!(in_b, vec![5, 5]);
    }
);

backend_test!(
    an_upsert_in_a_rolled_back_transaction_leaves_nothing,
    |t: common::TestDb| async move {
        let a = t.schema("ua");
        tenant(&t.registry, &a).await;
        Counter::query(&t.registry)
            .using(&a)
            .create(counter("k", 1, "old"))
            .await
            .unwrap();
        let tx = t.registry.begin_in(&a).await.unwrap();
        for mode in 0..2 {
            let upsert = Counter::query(&tx).using(&a).on_conflict(Counter::key());
            let upsert = if mode == 0 {
                upsert.do_update(Counter::note())
            } else {
                upsert.do_nothing()
            };
            let rows = upsert
                .bulk_create([counter("k", 9, "tx"), counter("fresh", 9, "tx")])
                .await
                .unwrap();
            // The first pass updated `k` inside the transaction; the second keeps it so.
            assert_eq!(rows[0].note, "tx");
            assert_eq!(rows[1].key, "fresh");
        }
        tx.rollback().await.unwrap();
        let rows = Counter::query(&t.registry)
            .using(&a)
            .values_list((Counter::key(), Counter::note()))
            .await
            .unwrap();
        assert_eq!(rows, vec![("k".to_owned(), "old".to_owned())]);
    }
);

fn assert_refused<T: std::fmt::Debug>(result: tenantry::Result<T>, argument: &str) {
    match result {
        Err(Error::InvalidArgument { argument: a, .. }) if a == argument => {}
        other => panic!("expected InvalidArgument({argument}), got {other:?}"),
    }
}

backend_test!(
    bad_upserts_are_refused_before_any_write,
    |t: common::TestDb| async move {
        let a = t.schema("ua");
        tenant(&t.registry, &a).await;
        let counters = || Counter::query(&t.registry).using(&a);
        let one = || counter("k", 1, "x");
        // No unique constraint, an auto-increment key, two columns, a computed key.
        assert_refused(
            counters()
                .on_conflict(Counter::note())
                .do_nothing()
                .create(one())
                .await,
            "on_conflict",
        );
        assert_refused(
            counters()
                .on_conflict(Counter::id())
                .do_nothing()
                .create(one())
                .await,
            "on_conflict",
        );
        assert_refused(
            counters()
                .on_conflict((Counter::key(), Counter::note()))
                .do_nothing()
                .create(one())
                .await,
            "on_conflict",
        );
        assert_refused(
            counters()
                .on_conflict(Counter::hits() + 1)
                .do_nothing()
                .create(one())
                .await,
            "columns",
        );
        // Updating the primary key, nothing to update, a computed column to copy.
        assert_refused(
            counters()
                .on_conflict(Counter::key())
                .do_update(Counter::id())
                .create(one())
                .await,
            "do_update",
        );
        assert_refused(
            counters()
                .on_conflict(Counter::key())
                .do_update_set([])
                .create(one())
                .await,
            "do_update",
        );
        assert_refused(
            counters()
                .on_conflict(Counter::key())
                .do_update(Counter::hits() * 2)
                .create(one())
                .await,
            "columns",
        );
        // The same key twice in one call.
        let twice = counters()
            .on_conflict(Counter::key())
            .do_update(Counter::hits())
            .bulk_create([
                counter("k", 1, "x"),
                counter("j", 1, "x"),
                counter("k", 2, "x"),
            ])
            .await;
        assert_refused(twice, "bulk_create");
        // A NULL key never conflicts.
        let null_key = Account::query(&t.registry)
            .using(&a)
            .on_conflict(Account::email())
            .do_nothing()
            .create(Account {
                id: 0,
                login: "ann".into(),
                email: None,
            })
            .await;
        if t.backend == Backend::MySql {
            assert!(
                matches!(null_key, Err(Error::Unsupported { .. })),
                "{null_key:?}"
            );
        } else {
            assert_refused(null_key, "bulk_create");
        }
        // An empty upsert sends nothing and returns nothing.
        let through = counters()
            .on_conflict(Counter::key())
            .do_update_set([Counter::hits().set_expr(Counter::hits() - 1)])
            .bulk_create(Vec::new())
            .await
            .unwrap();
        assert!(through.is_empty());
        assert_eq!(
            counters().count().await.unwrap(),
            0,
            "a refused upsert wrote"
        );
    }
);

backend_test!(
    another_unique_key_is_a_violation_or_refused_on_mysql,
    |t: common::TestDb| async move {
        let a = t.schema("ua");
        tenant(&t.registry, &a).await;
        let accounts = || Account::query(&t.registry).using(&a);
        let account = |login: &str, email: &str| Account {
            id: 0,
            login: login.into(),
            email: Some(email.into()),
        };
        accounts().create(account("ann", "ann@x")).await.unwrap();
        // Conflicts on `email`, not on the key named: PostgreSQL and SQLite report the
        // violation; MySQL would update ann's row, so the upsert is refused there.
        let upsert = accounts()
            .on_conflict(Account::login())
            .do_update(Account::email())
            .create(account("bob", "ann@x"))
            .await;
        match t.backend {
            Backend::MySql => assert!(
                matches!(
                    upsert,
                    Err(Error::Unsupported {
                        backend: "mysql",
                        ..
                    })
                ),
                "{upsert:?}"
            ),
            _ => assert!(
                matches!(upsert, Err(Error::UniqueViolation { .. })),
                "{upsert:?}"
            ),
        }
        let rows = accounts()
            .values_list((Account::login(), Account::email().optional()))
            .await
            .unwrap();
        assert_eq!(rows, vec![("ann".to_owned(), Some("ann@x".to_owned()))]);
    }
);

backend_test!(
    a_bulk_upsert_larger_than_one_statement_is_all_there,
    |t: common::TestDb| async move {
        let a = t.schema("ua");
        tenant(&t.registry, &a).await;
        let rows = 25_000;
        let counters = || Counter::query(&t.registry).using(&a);
        counters()
            .bulk_create((0..rows / 2).map(|i| counter(&format!("k{i}"), i, "old")))
            .await
            .unwrap();
        let stored = counters()
            .on_conflict(Counter::key())
            .do_update(Counter::note())
            .bulk_create((0..rows).map(|i| counter(&format!("k{i}"), -i, "new")))
            .await
            .unwrap();
        assert_eq!(stored.len(), rows as usize);
        for (i, row) in stored.iter().enumerate() {
            let i = i as i64;
            let hits = if i < rows / 2 { i } else { -i };
            assert_eq!(
                (row.key.as_str(), row.hits, row.note.as_str()),
                (format!("k{i}").as_str(), hits, "new")
            );
        }
        assert_eq!(counters().count().await.unwrap(), rows as u64);
    }
);

/// `tasks` racing `update_or_create` calls on one key; returns how many created the row.
async fn update_or_create(registry: &Registry, tasks: i64) -> usize {
    let calls = (0..tasks).map(|i| async move {
        let (row, created) = Counter::query(registry)
            .update_or_create(Counter::key().eq("x"), counter("x", i, "racing"))
            .await
            .unwrap();
        assert_eq!((row.key.as_str(), row.hits), ("x", i));
        created
    });
    let created = futures_util::future::join_all(calls).await;
    created.into_iter().filter(|c| *c).count()
}

backend_test!(
    racing_update_or_create_calls_all_succeed_with_one_row,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ua"), t.schema("ub"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let r = &t.registry;
        let (in_a, in_b) = tokio::join!(
            with_tenant(Some(a.clone()), update_or_create(r, 20)),
            with_tenant(Some(b.clone()), update_or_create(r, 12)),
        );
        assert_eq!((in_a, in_b), (1, 1));
        for (tenant, tasks) in [(&a, 20), (&b, 12)] {
            let rows = Counter::query(&t.registry)
                .using(tenant)
                .values_list(Counter::hits())
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
            assert!((0..tasks).contains(&rows[0]));
        }
    }
);

/// Upserts adding 1..=`tasks` to one row's hits, racing; returns nothing.
async fn add(registry: &Registry, tasks: i64) {
    let adds = (1..=tasks).map(|i| async move {
        Counter::query(registry)
            .on_conflict(Counter::key())
            .do_update_set([Counter::hits().set_expr(Counter::hits() + Counter::hits().excluded())])
            .create(counter("sum", i, "added"))
            .await
            .unwrap();
    });
    futures_util::future::join_all(adds).await;
}

async fn proposed_values(t: common::TestDb) {
    let (a, b) = (t.schema("ua"), t.schema("ub"));
    tenant(&t.registry, &a).await;
    tenant(&t.registry, &b).await;
    let r = &t.registry;
    tokio::join!(
        with_tenant(Some(a.clone()), add(r, 20)),
        with_tenant(Some(b.clone()), add(r, 10)),
    );
    for (tenant, sum) in [(&a, 210), (&b, 55)] {
        let rows = Counter::query(&t.registry)
            .using(tenant)
            .values_list((Counter::key(), Counter::hits()))
            .await
            .unwrap();
        assert_eq!(rows, vec![("sum".to_owned(), sum)]);
    }
    // The proposed row exists only in an upsert.
    let counters = || Counter::query(&t.registry).using(&a);
    let update = counters()
        .update([Counter::hits().set_expr(Counter::hits().excluded())])
        .await;
    let filter = counters()
        .filter(Counter::hits().expr().eq(Counter::hits().excluded()))
        .count()
        .await;
    for result in [update.map(|_| ()), filter.map(|_| ())] {
        assert!(
            matches!(
                result,
                Err(Error::InvalidArgument {
                    argument: "excluded",
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(
        counters().get(Counter::key().eq("sum")).await.unwrap().hits,
        210
    );
}

backend_pool_test!(upserts_add_the_proposed_value, proposed_values);

/// Upserts of one shape in two tenants at once and in the shared schema (on SQLite the
/// statement's text is kept per shape and reused): each writes and returns only its own
/// rows, in the order given; batches of other sizes and a repeated key in one batch too.
async fn same_shapes(t: common::TestDb) {
    let (a, b) = (t.schema("usa"), t.schema("usb"));
    tenant(&t.registry, &a).await;
    tenant(&t.registry, &b).await;
    let r = t.registry.clone().register::<Counter>();
    r.create_all().await.unwrap();
    let batch = |label: &str, n: usize, round: i64| -> Vec<Counter> {
        (0..n)
            .map(|k| counter(&format!("{label}-{}", k % 4 + (k / 4) * 10), round, label))
            .collect()
    };
    let upsert = |schema: Option<SchemaName>, label: &'static str| {
        let r = r.clone();
        async move {
            let q = || match &schema {
                Some(s) => Counter::query(&r).using(s),
                None => Counter::query(&r),
            };
            let mut returned = Vec::new();
            for (round, n) in [(1, 6), (2, 6), (3, 3), (4, 6)] {
                let stored = q()
                    .on_conflict(Counter::key())
                    .do_update(Counter::hits())
                    .bulk_create(batch(label, n, round))
                    .await
                    .unwrap();
                let keys: Vec<String> = stored.iter().map(|c| c.key.clone()).collect();
                let wanted: Vec<String> =
                    batch(label, n, round).into_iter().map(|c| c.key).collect();
                assert_eq!(keys, wanted, "{label}: returned in the order given");
                assert!(stored.iter().all(|c| c.hits == round && c.note == label));
                returned.push(stored.len());
                tokio::task::yield_now().await;
            }
            let repeated = q()
                .on_conflict(Counter::key())
                .do_update(Counter::hits())
                .bulk_create([counter("x", 1, label), counter("x", 2, label)])
                .await;
            assert!(
                matches!(repeated, Err(Error::InvalidArgument { .. })),
                "{repeated:?}"
            );
            let all = q().order_by([Counter::key().asc()]).all().await.unwrap();
            (
                returned,
                all.into_iter()
                    .map(|c| (c.key.clone(), c.hits, c.note.clone()))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let (in_a, in_b, shared) = tokio::join!(
        with_tenant(Some(a.clone()), upsert(Some(a.clone()), "a")),
        upsert(Some(b.clone()), "b"),
        upsert(None, "s"),
    );
    for ((returned, rows), label) in [(in_a, "a"), (in_b, "b"), (shared, "s")] {
        assert_eq!(returned, vec![6, 6, 3, 6]);
        let keys: Vec<&str> = rows.iter().map(|(k, _, _)| k.as_str()).collect();
        let mut wanted: Vec<String> = (0..6)
            .map(|k| format!("{label}-{}", k % 4 + (k / 4) * 10))
            .collect();
        wanted.sort();
        assert_eq!(keys, wanted, "{label}: only its own rows");
        assert!(
            rows.iter().all(|(_, _, note)| note == label),
            "{label}: {rows:?}"
        );
        let hits: Vec<i64> = rows.iter().map(|(_, h, _)| *h).collect();
        // The last round wrote all six keys (the 3-row one only three).
        assert_eq!(
            hits.iter().filter(|h| **h == 4).count(),
            6,
            "{label}: {rows:?}"
        );
    }
}

backend_pool_test!(
    upserts_of_one_shape_in_two_tenants_and_the_shared_schema,
    same_shapes
);
