//! Attacks on the kept SELECT texts (`query/kept.rs`): a shape whose text or binding order
//! the key misses would read another tenant's rows, bind one value where another belongs,
//! or lose a typed error. Every query read through `all()` (kept) is checked against the
//! same QuerySet read through `values_list` (built and rendered every time, never kept) and,
//! where it matters, against the rows written. Two tenants hold different rows under the
//! same ids and run the same shapes concurrently in one task, on pools of 1 and 2.
mod common;

use common::models::*;
use tenantry::{
    create_schema, drop_schema, with_tenant, Enum, Error, ForeignKey, Model, QuerySet, Registry,
    SchemaName,
};

// ---------------------------------------------------------------------------------------
// Models of this file only (so that their shapes are first rendered here).

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_emps")]
struct AkEmp {
    id: i64,
    #[model(max_length = 50)]
    name: String,
    boss: Option<ForeignKey<AkEmp>>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[model(type_name = "ak_mood")]
enum AkMood {
    #[model(rename = "sad")]
    Sad,
    #[model(rename = "so-so")]
    SoSo,
    #[model(rename = "happy")]
    Happy,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_entries")]
struct AkEntry {
    id: i64,
    #[model(max_length = 40)]
    person: String,
    mood: AkMood,
    previous: Option<AkMood>,
    emp: Option<ForeignKey<AkEmp>>,
}

/// A model only the first-render race touches.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ak_races")]
struct AkRace {
    id: i64,
    #[model(max_length = 40)]
    label: String,
    n: i64,
}

async fn registry(t: &common::TestDb) -> Registry {
    let r = t
        .registry
        .clone()
        .register::<AkEmp>()
        .register::<AkEntry>()
        .register::<AkRace>();
    r.create_all().await.unwrap();
    r
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// `query` read through `all()` (kept) and through `values_list` (never kept): both
/// answers, which must be equal.
async fn both(query: QuerySet<Product>) -> (Vec<String>, Vec<String>) {
    let oracle = query.clone().values_list(Product::name()).await.unwrap();
    (names(query).await, oracle)
}

async fn checked(query: QuerySet<Product>, what: impl std::fmt::Display) -> Vec<String> {
    let (got, oracle) = both(query).await;
    assert_eq!(got, oracle, "{what}: all() differs from values_list()");
    got
}

/// Tenant a: users ann (1), ben (2), cat (3); products a-lamp (1, ann), a-desk (2, ben),
/// a-box (3, nobody), `a-50%_off\x` (4, cat), a-mug (5, ann).
/// Tenant b: users bob (1), zed (2); products b-lamp (1, bob), b-chair (2, zed),
/// `b-50%_off\x` (3, zed).
/// Default schema: user dee (1); product d-lamp (1, dee).
async fn fill(r: &Registry, s: Option<&SchemaName>, users: &[&str], products: &[(&str, usize)]) {
    if let Some(s) = s {
        create_schema(r, s, None, false, true).await.unwrap();
    }
    let users = User::query(r)
        .using_opt(s)
        .bulk_create(users.iter().map(|n| user(n)))
        .await
        .unwrap();
    let rows: Vec<Product> = products
        .iter()
        .map(|(name, owner)| product(name, users.get(*owner)))
        .collect();
    Product::query(r)
        .using_opt(s)
        .bulk_create(rows)
        .await
        .unwrap();
}

async fn places(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let (a, b) = (t.schema("ka"), t.schema("kb"));
    fill(
        r,
        Some(&a),
        &["ann", "ben", "cat"],
        &[
            ("a-lamp", 0),
            ("a-desk", 1),
            ("a-box", 9),
            ("a-50%_off\\x", 2),
            ("a-mug", 0),
        ],
    )
    .await;
    fill(
        r,
        Some(&b),
        &["bob", "zed"],
        &[("b-lamp", 0), ("b-chair", 1), ("b-50%_off\\x", 1)],
    )
    .await;
    fill(r, None, &["dee"], &[("d-lamp", 0)]).await;
    (a, b)
}

fn owner() -> tenantry::Column<Product, String> {
    Product::user().to(User::name())
}

type Build = fn(&Registry, Option<&SchemaName>, i64, &'static str, u64) -> QuerySet<Product>;

/// Shapes, each run with several (key, text, n) values.
fn shapes() -> Vec<(&'static str, Build)> {
    vec![
        // Own column, joined lookup, LIMIT and OFFSET: four places the values go, in an
        // order the statement decides (the join's value is bound before the WHERE's).
        ("own+join+limit+offset", |r, s, k, x, n| {
            Product::query(r)
                .using_opt(s)
                .filter(Product::id().gte(k))
                .filter(owner().ne(x))
                .order_by([Product::id().asc()])
                .limit(n)
                .offset(n.saturating_sub(1))
        }),
        // Offset without limit: the LIMIT is MAX_ROWS, a value the tree does not hold.
        ("offset only", |r, s, k, _, n| {
            Product::query(r)
                .using_opt(s)
                .filter(Product::id().ne(k))
                .order_by([Product::id().desc()])
                .offset(n)
        }),
        // A LIMIT and an id that may be the same number (BigInt and BigUnsigned).
        ("id or id, limit", |r, s, k, _, n| {
            Product::query(r)
                .using_opt(s)
                .filter(Product::id().eq(k) | Product::id().eq(n as i64))
                .order_by([Product::id().asc()])
                .limit(n)
        }),
        // Lookups under or / not (LEFT JOINs) and an ordering across the relation.
        ("or/not join, order by owner", |r, s, k, x, _| {
            Product::query(r)
                .using_opt(s)
                .filter(!(owner().eq(x) | Product::id().eq(k)) & Product::name().ne(x))
                .order_by([owner().desc(), Product::id().asc()])
        }),
        // A NULL test beside a comparison of the same column.
        ("isnull or gt", |r, s, k, _, _| {
            Product::query(r)
                .using_opt(s)
                .filter(Product::user().isnull(true) | Product::id().gt(k))
                .order_by([Product::id().asc()])
        }),
        // Patterns with the escaped characters.
        ("contains + icontains join", |r, s, _, x, _| {
            Product::query(r)
                .using_opt(s)
                .filter(Product::name().contains(x) | owner().icontains(x))
                .order_by([Product::id().asc()])
        }),
        // Distinct and a lookup.
        ("distinct join", |r, s, _, x, n| {
            Product::query(r)
                .using_opt(s)
                .filter(owner().startswith(x))
                .distinct()
                .order_by([Product::name().asc()])
                .limit(n)
        }),
    ]
}

/// Values per round: (key, text, n).
const VALUES: [(i64, &str, u64); 8] = [
    (1, "ann", 1),
    (2, "bob", 2),
    (1, "zed", 1),
    (3, "%", 3),
    (2, "_", 2),
    (1, "\\", 1),
    (2, "a", 5),
    (4, "50%_OFF", 4),
];

// ---------------------------------------------------------------------------------------
// 1. Values bound anew in each tenant, concurrently, against the oracle.

backend_pool_test!(
    kept_values_follow_each_tenant_concurrently,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = places(r, &t).await;
        for round in 0..2 {
            for (what, build) in shapes() {
                for (i, (k, x, n)) in VALUES.iter().enumerate() {
                    // Tenant b runs the values of the next row: the same shape, other values,
                    // at the same moment.
                    let (kb, xb, nb) = VALUES[(i + 1) % VALUES.len()];
                    let ((ga, oa), (gb, ob), (gd, od)) = tokio::join!(
                        both(build(r, Some(&a), *k, x, *n)),
                        both(build(r, Some(&b), kb, xb, nb)),
                        both(build(r, None, *k, x, *n)),
                    );
                    assert_eq!(ga, oa, "{what} in a, values {i}, round {round}");
                    assert_eq!(gb, ob, "{what} in b, values {i}, round {round}");
                    assert_eq!(gd, od, "{what} in default, values {i}, round {round}");
                    assert!(ga.iter().all(|n| n.starts_with("a-")), "{what}: {ga:?}");
                    assert!(gb.iter().all(|n| n.starts_with("b-")), "{what}: {gb:?}");
                    assert!(gd.iter().all(|n| n.starts_with("d-")), "{what}: {gd:?}");
                }
            }
        }
        // Explicit answers for a few (the oracle shares the builder).
        let q = |s: &SchemaName, k, x, n| {
            Product::query(r)
                .using(s)
                .filter(Product::id().gte(k))
                .filter(owner().ne(x))
                .order_by([Product::id().asc()])
                .limit(n)
                .offset(n - 1)
        };
        let (ga, gb) = tokio::join!(names(q(&a, 1, "ann", 2)), names(q(&b, 1, "zed", 1)));
        assert_eq!(ga, vec!["a-50%_off\\x"]);
        assert_eq!(gb, vec!["b-lamp"]);
        let (ga, gb) = tokio::join!(names(q(&a, 2, "cat", 1)), names(q(&b, 2, "bob", 2)));
        assert_eq!(ga, vec!["a-desk"]);
        assert_eq!(gb, vec!["b-50%_off\\x"]);
        let esc = |s: &SchemaName, x: &'static str| {
            Product::query(r)
                .using(s)
                .filter(Product::name().contains(x))
                .order_by([Product::id().asc()])
        };
        let (ga, gb) = tokio::join!(names(esc(&a, "%_")), names(esc(&b, "\\")));
        assert_eq!(ga, vec!["a-50%_off\\x"]);
        assert_eq!(gb, vec!["b-50%_off\\x"]);
        let (ga, gb) = tokio::join!(names(esc(&a, "_o")), names(esc(&b, "%x")));
        assert_eq!(ga, vec!["a-50%_off\\x"]);
        assert!(gb.is_empty(), "{gb:?}");
    }
);

// ---------------------------------------------------------------------------------------
// 2. Values equal at the first render (nothing kept), distinct later, and the reverse; IN
//    lists with duplicates, empty, and longer than MAX_VALUES.

backend_pool_test!(
    equal_then_distinct_values_and_in_lists,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = places(r, &t).await;
        // (x, y, limit) with equal and distinct values in every order.
        let rounds: [(i64, i64, u64); 8] = [
            (1, 1, 1),
            (1, 2, 2),
            (2, 1, 1),
            (2, 2, 2),
            (3, 1, 3),
            (1, 3, 1),
            (2, 2, 1),
            (5, 4, 2),
        ];
        for (x, y, n) in rounds {
            let q = |s: &SchemaName| {
                Product::query(r)
                    .using(s)
                    .filter(Product::id().eq(x) | Product::id().eq(y))
                    .order_by([Product::id().desc()])
                    .limit(n)
            };
            let (ga, gb) = tokio::join!(
                checked(q(&a), format!("a {x} {y} {n}")),
                checked(q(&b), format!("b {x} {y} {n}"))
            );
            let expect = |max: i64| {
                let mut ids: Vec<i64> = [x, y].into_iter().filter(|i| *i <= max).collect();
                ids.sort();
                ids.dedup();
                ids.reverse();
                ids.truncate(n as usize);
                ids.len()
            };
            assert_eq!(ga.len(), expect(5), "a {x} {y} {n}");
            assert_eq!(gb.len(), expect(3), "b {x} {y} {n}");
        }
        // IN lists: duplicates, empty, one, and more values than a kept text binds.
        let lists: Vec<Vec<i64>> = vec![
            vec![1, 2],
            vec![2, 2],
            vec![3, 1],
            vec![],
            vec![5],
            (1..=70).collect(),
            (1..=70).rev().collect(),
            vec![4, 4],
        ];
        for _ in 0..2 {
            for list in &lists {
                let q = |s: &SchemaName| {
                    Product::query(r)
                        .using(s)
                        .filter(Product::id().is_in(list.clone()))
                        .order_by([Product::id().asc()])
                };
                let (ga, gb) = tokio::join!(
                    checked(q(&a), format!("a in {list:?}")),
                    checked(q(&b), format!("b in {list:?}"))
                );
                let count = |max: i64| {
                    let mut l: Vec<i64> = list.iter().copied().filter(|i| *i <= max).collect();
                    l.sort();
                    l.dedup();
                    l.len()
                };
                assert_eq!(ga.len(), count(5), "a in {list:?}");
                assert_eq!(gb.len(), count(3), "b in {list:?}");
            }
        }
        // get / get_pk / first / last (LIMIT 2 and LIMIT 1 beside keys 1 and 2).
        for key in [2_i64, 1, 2, 3] {
            let (ga, gb) = tokio::join!(
                Product::query(r).using(&a).get_pk(key),
                Product::query(r).using(&b).get_pk(key)
            );
            assert_eq!(ga.unwrap().id, key);
            assert_eq!(gb.unwrap().id, key);
            let (fa, lb) = tokio::join!(
                Product::query(r)
                    .using(&a)
                    .filter(Product::id().gte(key))
                    .first(),
                Product::query(r)
                    .using(&b)
                    .filter(Product::id().gte(key))
                    .last()
            );
            assert_eq!(fa.unwrap().unwrap().id, key);
            assert_eq!(lb.unwrap().unwrap().id, 3);
        }
        let missing = Product::query(r).using(&b).get_pk(5).await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{missing:?}"
        );
        let many = Product::query(r).using(&a).get(Product::id().gt(1)).await;
        assert!(
            matches!(many, Err(Error::MultipleObjectsReturned { .. })),
            "{many:?}"
        );
    }
);

// ---------------------------------------------------------------------------------------
// 3. The default schema, then tenants, then the default again, across a shared model: on
//    SQLite the shared table is `"plans"` from the main file and `"tenantry_shared"."plans"`
//    from a tenant's.

backend_pool_test!(
    shared_lookups_in_default_and_tenants_alternately,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = (t.schema("pa"), t.schema("pb"));
        let plans = Plan::query(r)
            .bulk_create([
                Plan {
                    id: 0,
                    title: "gold".into(),
                },
                Plan {
                    id: 0,
                    title: "silver".into(),
                },
            ])
            .await
            .unwrap();
        let (gold, silver) = (&plans[0], &plans[1]);
        let sub = |plan: &tenantry::Instance<Plan>, note: &str| Subscription {
            id: 0,
            plan: ForeignKey::from(plan),
            note: note.into(),
        };
        Subscription::query(r)
            .bulk_create([sub(gold, "d-gold")])
            .await
            .unwrap();
        for (s, rows) in [
            (&a, vec![sub(gold, "a-gold"), sub(silver, "a-silver")]),
            (&b, vec![sub(silver, "b-silver"), sub(silver, "b-silver2")]),
        ] {
            create_schema(r, s, None, false, true).await.unwrap();
            Subscription::query(r)
                .using(s)
                .bulk_create(rows)
                .await
                .unwrap();
        }
        let notes = |s: Option<SchemaName>, title: &'static str| async move {
            let q = Subscription::query(r)
                .using_opt(s.as_ref())
                .filter(Subscription::plan().to(Plan::title()).eq(title))
                .order_by([Subscription::id().asc()]);
            let oracle = q.clone().values_list(Subscription::note()).await;
            let got = q.all().await.map(|v| {
                v.into_iter()
                    .map(|s| s.into_inner().note)
                    .collect::<Vec<_>>()
            });
            (got, oracle)
        };
        for round in 0..3 {
            for (first, title) in [(None, "gold"), (Some(a.clone()), "silver")] {
                let (d, x, y) = tokio::join!(
                    notes(first.clone(), title),
                    notes(Some(a.clone()), "gold"),
                    notes(Some(b.clone()), "silver"),
                );
                let (d, od) = d;
                assert_eq!(d.as_ref().ok(), od.as_ref().ok(), "round {round}");
                assert_eq!(x.0.unwrap(), vec!["a-gold".to_string()], "round {round}");
                assert_eq!(
                    y.0.unwrap(),
                    vec!["b-silver".to_string(), "b-silver2".to_string()],
                    "round {round}"
                );
                let d = d.unwrap();
                match &first {
                    None => assert_eq!(d, vec!["d-gold".to_string()]),
                    Some(_) => assert_eq!(d, vec!["a-silver".to_string()]),
                }
            }
            // The same shape from the tenants' own context (with_tenant), siblings in one
            // task.
            let (x, y) = tokio::join!(
                with_tenant(Some(a.clone()), notes(None, "silver")),
                with_tenant(Some(b.clone()), notes(None, "gold")),
            );
            assert_eq!(x.0.unwrap(), vec!["a-silver".to_string()]);
            assert!(y.0.unwrap().is_empty());
            // The shared model itself, in both tenants' contexts and the default.
            let title = |s: Option<SchemaName>, id: i64| {
                with_tenant(s, async move {
                    Plan::query(r)
                        .filter(Plan::id().eq(id))
                        .all()
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|p| p.into_inner().title)
                        .collect::<Vec<_>>()
                })
            };
            let (x, y, z) = tokio::join!(
                title(Some(a.clone()), gold.id),
                title(Some(b.clone()), silver.id),
                title(None, gold.id)
            );
            assert_eq!(x, vec!["gold".to_string()]);
            assert_eq!(y, vec!["silver".to_string()]);
            assert_eq!(z, vec!["gold".to_string()]);
        }
    }
);

// ---------------------------------------------------------------------------------------
// 4. Two databases in one process holding tenants of the same name (MySQL names a tenant's
//    database after the URL's: the texts differ by database).

backend_test!(
    two_databases_with_tenants_of_the_same_name,
    |t: common::TestDb| async move {
        let r1 = t.registry.clone();
        let db2 = t.other_database("kept2").await;
        let r2 = common::prepare(Registry::new(db2)).await;
        let s = t.schema("same");
        fill(&r1, Some(&s), &["one"], &[("db1-x", 0), ("db1-y", 0)]).await;
        fill(&r2, Some(&s), &["two"], &[("db2-x", 0)]).await;
        fill(&r1, None, &["d1"], &[("db1-d", 0)]).await;
        fill(&r2, None, &["d2"], &[("db2-d", 0)]).await;
        let q = |r: &Registry, s: Option<&SchemaName>, id: i64| {
            Product::query(r)
                .using_opt(s)
                .filter(Product::id().gte(id))
                .filter(owner().ne("nobody"))
                .order_by([Product::id().asc()])
        };
        for round in 0..3 {
            let (x, y, z, w) = tokio::join!(
                checked(q(&r1, Some(&s), 1), "db1"),
                checked(q(&r2, Some(&s), 1), "db2"),
                checked(q(&r1, None, 1), "db1 default"),
                checked(q(&r2, None, 1), "db2 default"),
            );
            assert_eq!(x, vec!["db1-x", "db1-y"], "round {round}");
            assert_eq!(y, vec!["db2-x"], "round {round}");
            assert_eq!(z, vec!["db1-d"], "round {round}");
            assert_eq!(w, vec!["db2-d"], "round {round}");
        }
        // A second handle on the first database (another id, the same rows).
        let again = Registry::new(t.reconnect().await);
        let again = common::models::register(again);
        let got = checked(q(&again, Some(&s), 2), "db1 again").await;
        assert_eq!(got, vec!["db1-y"]);
        r2.disconnect().await;
        again.disconnect().await;
    }
);

// ---------------------------------------------------------------------------------------
// 5. A transaction target beside pooled reads of the same shape, in one task.

backend_pool_test!(
    transaction_and_pool_read_the_same_shape,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = places(r, &t).await;
        for round in 0..2 {
            let tx = r.begin_in(&a).await.unwrap();
            // An uncommitted row of a's, visible only in the transaction.
            Product::query(&tx)
                .using(&a)
                .create(product("a-tx", None))
                .await
                .unwrap();
            let in_tx = |k: i64| {
                Product::query(&tx)
                    .using(&a)
                    .filter(Product::id().gte(k))
                    .filter(Product::name().ne("a-lamp"))
                    .order_by([Product::id().desc()])
                    .limit(1)
            };
            let out = |s: &SchemaName, k: i64| {
                Product::query(r)
                    .using(s)
                    .filter(Product::id().gte(k))
                    .filter(Product::name().ne("a-lamp"))
                    .order_by([Product::id().desc()])
                    .limit(1)
            };
            // On a pool of one, tenant a's pooled read would wait for the transaction's
            // connection on PostgreSQL and MySQL: tenant b only, beside the transaction.
            let shared_pool = t.backend != tenantry::Backend::Sqlite && t.max_connections == 1;
            if shared_pool {
                let x = names(in_tx(1)).await;
                assert_eq!(x, vec!["a-tx"], "round {round}");
            } else {
                let (x, y) = tokio::join!(names(in_tx(1)), names(out(&b, 1)));
                assert_eq!(x, vec!["a-tx"], "round {round}");
                assert_eq!(y, vec!["b-50%_off\\x"], "round {round}");
            }
            tx.rollback().await.unwrap();
            let y = checked(out(&b, 2), "b after rollback").await;
            assert_eq!(y, vec!["b-50%_off\\x"], "round {round}");
            let x = checked(out(&a, 1), "a after rollback").await;
            assert_eq!(x, vec!["a-mug"], "round {round}");
        }
    }
);

// ---------------------------------------------------------------------------------------
// 6. A schema dropped (a typed error, not another schema's rows) and re-created empty.

backend_test!(
    dropped_and_recreated_schema_reads_its_own_rows,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = places(r, &t).await;
        let q = |s: &SchemaName, x: &'static str| {
            Product::query(r)
                .using(s)
                .filter(owner().ne(x))
                .order_by([Product::id().asc()])
                .limit(10)
        };
        for _ in 0..2 {
            let (x, y) = tokio::join!(names(q(&a, "zzz")), names(q(&b, "zzz")));
            assert_eq!(x.len(), 4);
            assert_eq!(y.len(), 3);
        }
        drop_schema(r, &a, true, false).await.unwrap();
        for _ in 0..2 {
            let (x, y) = tokio::join!(q(&a, "ann").all(), names(q(&b, "bob")));
            match x {
                Err(Error::SchemaNotFound { schema }) => assert_eq!(schema, a.as_str()),
                other => panic!("expected SchemaNotFound, got {other:?}"),
            }
            assert_eq!(y, vec!["b-chair", "b-50%_off\\x"]);
        }
        fill(r, Some(&a), &["new"], &[("a-new", 0)]).await;
        for _ in 0..2 {
            let (x, y) = tokio::join!(names(q(&a, "ann")), names(q(&b, "bob")));
            assert_eq!(x, vec!["a-new"]);
            assert_eq!(y, vec!["b-chair", "b-50%_off\\x"]);
        }
    }
);

// ---------------------------------------------------------------------------------------
// 7. Floats: NaN (never equal to itself) and -0.0 (equal to 0.0); Option columns compared
//    with NULL then with a value; JSON and UUID values.

fn every(key: i32, ratio: f64, maybe: Option<i64>) -> EveryType {
    EveryType {
        key,
        body: format!("body {key}"),
        code: format!("c{key}"),
        flag: key % 2 == 0,
        ratio,
        at: chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(key), 0).unwrap(),
        day: chrono::NaiveDate::from_ymd_opt(2024, 1, 1 + key as u32).unwrap(),
        token: uuid::Uuid::from_u128(key as u128),
        doc: serde_json::json!({ "k": key }),
        maybe: maybe.map(|m| format!("m{m}")),
        maybe_number: maybe,
    }
}

async fn keys(q: QuerySet<EveryType>, what: impl std::fmt::Display) -> Vec<i32> {
    let oracle = q.clone().values_list(EveryType::key()).await;
    let got = q
        .all()
        .await
        .map(|v| v.into_iter().map(|e| e.key).collect::<Vec<_>>());
    match (&got, &oracle) {
        (Ok(g), Ok(o)) => assert_eq!(g, o, "{what}"),
        (Err(_), Err(_)) => {}
        _ => panic!("{what}: all() {got:?} against values_list() {oracle:?}"),
    }
    got.unwrap_or_default()
}

backend_pool_test!(
    floats_nulls_and_typed_values,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = (t.schema("fa"), t.schema("fb"));
        for (s, rows) in [
            (
                &a,
                vec![
                    every(1, 0.0, None),
                    every(2, 1.5, Some(2)),
                    every(3, -2.0, Some(3)),
                ],
            ),
            (&b, vec![every(1, 1.5, Some(1)), every(2, -0.5, None)]),
        ] {
            create_schema(r, s, None, false, true).await.unwrap();
            EveryType::query(r)
                .using(s)
                .bulk_create(rows)
                .await
                .unwrap();
        }
        let ratio = |s: &SchemaName, x: f64, y: f64| {
            EveryType::query(r)
                .using(s)
                .filter(EveryType::ratio().gte(x) & EveryType::ratio().lte(y))
                .order_by([EveryType::key().asc()])
        };
        // -0.0 and 0.0 compare equal: the first render keeps nothing; later ones bind
        // each value where it belongs.
        for (x, y, in_a, in_b) in [
            (-0.0, 0.0, vec![1], vec![]),
            (0.0, 2.0, vec![1, 2], vec![1]),
            (-1.0, 0.0, vec![1], vec![2]),
            (-3.0, -1.0, vec![3], vec![]),
            (f64::NEG_INFINITY, 0.0, vec![1, 3], vec![2]),
        ] {
            let (ga, gb) = tokio::join!(
                keys(ratio(&a, x, y), format!("a {x}..{y}")),
                keys(ratio(&b, x, y), format!("b {x}..{y}"))
            );
            assert_eq!(ga, in_a, "a {x}..{y}");
            assert_eq!(gb, in_b, "b {x}..{y}");
        }
        // NaN: whatever each backend answers, all() answers the same as values_list().
        for (x, y) in [(f64::NAN, 1.0), (-5.0, f64::NAN), (-5.0, 5.0)] {
            tokio::join!(
                keys(ratio(&a, x, y), format!("a nan {x}..{y}")),
                keys(ratio(&b, x, y), format!("b nan {x}..{y}"))
            );
        }
        // An Option column compared with a value beside a NULL test of another one.
        for (v, null, in_a, in_b) in [
            (2_i64, true, vec![1, 2], vec![2]),
            (1, true, vec![1], vec![1, 2]),
            (1, false, vec![2, 3], vec![1]),
            (3, false, vec![2, 3], vec![1]),
            (3, true, vec![1, 3], vec![2]),
        ] {
            let q = |s: &SchemaName| {
                EveryType::query(r)
                    .using(s)
                    .filter(EveryType::maybe_number().eq(v) | EveryType::maybe().isnull(null))
                    .order_by([EveryType::key().asc()])
            };
            let (ga, gb) = tokio::join!(keys(q(&a), "a maybe"), keys(q(&b), "b maybe"));
            assert_eq!(ga, in_a, "a {v:?} {null}");
            assert_eq!(gb, in_b, "b {v:?} {null}");
        }
        // Typed values of other kinds in one shape: uuid, date, bool, json text.
        for key in [1_i32, 2, 3, 1] {
            let q = |s: &SchemaName| {
                EveryType::query(r)
                    .using(s)
                    .filter(EveryType::token().eq(uuid::Uuid::from_u128(key as u128)))
                    .filter(
                        EveryType::day().eq(chrono::NaiveDate::from_ymd_opt(
                            2024,
                            1,
                            1 + key as u32,
                        )
                        .unwrap()),
                    )
                    .filter(EveryType::flag().eq(key % 2 == 0))
                    .filter(EveryType::code().eq(format!("c{key}")))
            };
            let (ga, gb) = tokio::join!(keys(q(&a), "a typed"), keys(q(&b), "b typed"));
            assert_eq!(ga, vec![key], "a typed {key}");
            assert_eq!(
                gb,
                if key <= 2 { vec![key] } else { vec![] },
                "b typed {key}"
            );
        }
    }
);

// ---------------------------------------------------------------------------------------
// 8. A model related to itself (the alias choice of join.rs), filtered and ordered across
//    the relation, and an enum-typed column (cast to the tenant's type on PostgreSQL).

async fn emps(r: &Registry, s: &SchemaName, names: &[(&str, Option<usize>)]) {
    create_schema(r, s, None, false, true).await.unwrap();
    let mut made: Vec<tenantry::Instance<AkEmp>> = Vec::new();
    for (name, boss) in names {
        let emp = AkEmp::query(r)
            .using(s)
            .create(AkEmp {
                id: 0,
                name: (*name).into(),
                boss: boss.map(|i| ForeignKey::from(&made[i])),
            })
            .await
            .unwrap();
        made.push(emp);
    }
}

async fn emp_names(q: QuerySet<AkEmp>, what: &str) -> Vec<String> {
    let oracle = q.clone().values_list(AkEmp::name()).await.unwrap();
    let got: Vec<String> = q
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.into_inner().name)
        .collect();
    assert_eq!(got, oracle, "{what}");
    got
}

async fn entry_people(q: QuerySet<AkEntry>, what: &str) -> Vec<String> {
    let oracle = q.clone().values_list(AkEntry::person()).await.unwrap();
    let got: Vec<String> = q
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.into_inner().person)
        .collect();
    assert_eq!(got, oracle, "{what}");
    got
}

backend_pool_test!(
    self_referencing_and_enum_typed_shapes,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = (t.schema("ea"), t.schema("eb"));
        // a: boss (1), ann (2, boss), amy (3, ann). b: bob (1), bea (2, bob), bo (3, bea).
        emps(r, &a, &[("boss", None), ("ann", Some(0)), ("amy", Some(1))]).await;
        emps(r, &b, &[("bob", None), ("bea", Some(0)), ("bo", Some(1))]).await;
        let boss_name = || AkEmp::boss().to(AkEmp::name());
        let grand = || AkEmp::boss().to(AkEmp::boss()).to(AkEmp::name());
        for (x, y, in_a, in_b) in [
            // boss's name = x, or boss's boss's name = y.
            ("boss", "ann", vec!["ann"], vec![]),
            ("bob", "bea", vec![], vec!["bea"]),
            ("ann", "boss", vec!["amy"], vec![]),
            ("bea", "bob", vec![], vec!["bo"]),
            ("boss", "boss", vec!["ann", "amy"], vec![]),
            ("bob", "bob", vec![], vec!["bea", "bo"]),
        ] {
            let q = |s: &SchemaName| {
                AkEmp::query(r)
                    .using(s)
                    .filter(boss_name().eq(x) | grand().eq(y))
                    .order_by([boss_name().desc(), AkEmp::id().asc()])
            };
            let (ga, gb) = tokio::join!(emp_names(q(&a), "a"), emp_names(q(&b), "b"));
            let mut ga_sorted = ga.clone();
            ga_sorted.sort();
            let mut gb_sorted = gb.clone();
            gb_sorted.sort();
            let mut ea: Vec<String> = in_a.iter().map(|s| s.to_string()).collect();
            ea.sort();
            let mut eb: Vec<String> = in_b.iter().map(|s| s.to_string()).collect();
            eb.sort();
            assert_eq!(ga_sorted, ea, "a {x} {y}");
            assert_eq!(gb_sorted, eb, "b {x} {y}");
        }
        // Enums: each tenant has its own type on PostgreSQL.
        use AkMood::*;
        for (s, rows) in [
            (
                &a,
                vec![
                    ("a1", Sad, None),
                    ("a2", Happy, Some(Sad)),
                    ("a3", SoSo, Some(Happy)),
                ],
            ),
            (&b, vec![("b1", Happy, None), ("b2", Sad, Some(SoSo))]),
        ] {
            AkEntry::query(r)
                .using(s)
                .bulk_create(rows.into_iter().map(|(p, m, prev)| AkEntry {
                    id: 0,
                    person: p.into(),
                    mood: m,
                    previous: prev,
                    emp: None,
                }))
                .await
                .unwrap();
        }
        for (m, ms, in_a, in_b) in [
            // mood = m or previous in ms (a NULL previous is in no list).
            (Sad, vec![Happy, SoSo], vec!["a1", "a3"], vec!["b2"]),
            (Happy, vec![Sad], vec!["a2"], vec!["b1"]),
            (SoSo, vec![SoSo, Happy], vec!["a3"], vec!["b2"]),
            (Sad, vec![Sad, Sad], vec!["a1", "a2"], vec!["b2"]),
        ] {
            let q = |s: &SchemaName| {
                AkEntry::query(r)
                    .using(s)
                    .filter(AkEntry::mood().eq(m) | AkEntry::previous().is_in(ms.clone()))
                    .order_by([AkEntry::id().asc()])
            };
            let (ga, gb) = tokio::join!(entry_people(q(&a), "a"), entry_people(q(&b), "b"));
            assert_eq!(ga, in_a, "a {m:?} {ms:?}");
            assert_eq!(gb, in_b, "b {m:?} {ms:?}");
        }
    }
);

// ---------------------------------------------------------------------------------------
// 9. The same new shape first rendered concurrently by two tenants in one task (and by
//    the default schema), each with its own values.

backend_pool_test!(
    first_render_raced_by_two_tenants_in_one_task,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = (t.schema("ra"), t.schema("rb"));
        for (s, n0) in [(&a, 10), (&b, 20)] {
            create_schema(r, s, None, false, true).await.unwrap();
            AkRace::query(r)
                .using(s)
                .bulk_create((0..5).map(|i| AkRace {
                    id: 0,
                    label: format!("{}{}", s.as_str().chars().last().unwrap(), i),
                    n: n0 + i,
                }))
                .await
                .unwrap();
        }
        // A per-pool shape: an IN list of a length no other test uses, so that the first
        // render really is the race below.
        let len = 3 + t.max_connections as usize;
        let q = |s: &SchemaName, base: i64| {
            AkRace::query(r)
                .using(s)
                .filter(AkRace::n().is_in((0..len as i64).map(|i| base + i)))
                .filter(AkRace::label().ne("none"))
                .order_by([AkRace::n().desc()])
                .limit(2)
                .offset(1)
        };
        let ns = |q: QuerySet<AkRace>| async move {
            q.all()
                .await
                .unwrap()
                .into_iter()
                .map(|x| x.n)
                .collect::<Vec<_>>()
        };
        for round in 0..3 {
            let (x, y, z, w) =
                tokio::join!(ns(q(&a, 10)), ns(q(&b, 21)), ns(q(&a, 12)), ns(q(&b, 20)));
            let expect = |base: i64, lo: i64| {
                let mut v: Vec<i64> = (0..len as i64)
                    .map(|i| base + i)
                    .filter(|n| *n >= lo && *n < lo + 5)
                    .collect();
                v.sort();
                v.reverse();
                v.into_iter().skip(1).take(2).collect::<Vec<_>>()
            };
            assert_eq!(x, expect(10, 10), "round {round}");
            assert_eq!(y, expect(21, 20), "round {round}");
            assert_eq!(z, expect(12, 10), "round {round}");
            assert_eq!(w, expect(20, 20), "round {round}");
        }
    }
);

// ---------------------------------------------------------------------------------------
// 10. Relation loads and instance-bound queries (an origin's schema) reuse the texts of
//     plain queries: each instance's relations are its own tenant's.

backend_pool_test!(
    relation_loads_follow_their_instances_tenant,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = places(r, &t).await;
        for _ in 0..2 {
            let (pa, pb) = tokio::join!(
                Product::query(r)
                    .using(&a)
                    .select_related(Product::user())
                    .filter(owner().eq("ben"))
                    .get_pk(2),
                Product::query(r)
                    .using(&b)
                    .select_related(Product::user())
                    .filter(owner().eq("zed"))
                    .get_pk(2)
            );
            let (pa, pb) = (pa.unwrap(), pb.unwrap());
            assert_eq!(pa.user.as_ref().and_then(|f| f.get()).unwrap().name, "ben");
            assert_eq!(pb.user.as_ref().and_then(|f| f.get()).unwrap().name, "zed");
            // The user's products, read from the instance's origin.
            let ua = pa.user.as_ref().and_then(|f| f.get()).unwrap().clone();
            let ub = pb.user.as_ref().and_then(|f| f.get()).unwrap().clone();
            let (xa, xb) = tokio::join!(
                names(
                    Product::query(r)
                        .using(&a)
                        .filter(Product::user().eq(ua.id))
                ),
                names(
                    Product::query(r)
                        .using(&b)
                        .filter(Product::user().eq(ub.id))
                )
            );
            assert_eq!(xa, vec!["a-desk"]);
            assert_eq!(xb, vec!["b-chair", "b-50%_off\\x"]);
        }
    }
);

// ---------------------------------------------------------------------------------------
// 11. A stale cached plan (PostgreSQL 0A000 after a column's type changed) runs the kept
//     text again with the `again` values: the same values, in binding order.

backend_test!(
    a_stale_plan_retry_binds_the_kept_values,
    |t: common::TestDb| async move {
        let database = t.reconnect_with(1).await;
        let r = &common::models::register(Registry::new(database.clone()));
        let (a, b) = places(r, &t).await;
        // A shape whose values are bound out of tree order (the join's first).
        let q = |s: &SchemaName, k: i64, x: &'static str| {
            Product::query(r)
                .using(s)
                .filter(Product::id().gte(k))
                .filter(owner().ne(x))
                .order_by([Product::id().asc()])
                .limit(2)
        };
        for _ in 0..2 {
            assert_eq!(names(q(&a, 2, "ben")).await, vec!["a-50%_off\\x", "a-mug"]);
            assert_eq!(
                names(q(&b, 1, "bob")).await,
                vec!["b-chair", "b-50%_off\\x"]
            );
        }
        if t.backend == tenantry::Backend::Postgres {
            r.raw("ALTER TABLE {products} ALTER COLUMN name TYPE text")
                .using(&a)
                .execute()
                .await
                .unwrap();
        }
        // Other values, the same shape: on PostgreSQL the connection's prepared plan of the
        // text is stale and the statement runs twice.
        assert_eq!(names(q(&a, 1, "cat")).await, vec!["a-lamp", "a-desk"]);
        assert_eq!(names(q(&a, 3, "ann")).await, vec!["a-50%_off\\x"]);
        assert_eq!(names(q(&b, 2, "zed")).await, Vec::<String>::new());
        if t.backend == tenantry::Backend::Postgres {
            assert!(database.stale_plan_retries() >= 1, "no stale plan was met");
        }
        r.disconnect().await;
    }
);

// ---------------------------------------------------------------------------------------
// 12. SQLite tenant files closed by the open-schema budget between reads of one kept text
//     (every backend runs the same body; the setting only matters on SQLite).

backend_test!(
    tenant_files_closed_between_reads_of_a_kept_text,
    |t: common::TestDb| async move {
        let r0 = &t.registry;
        let schemas: Vec<SchemaName> = (0..4).map(|i| t.schema(&format!("bud{i}"))).collect();
        for (i, s) in schemas.iter().enumerate() {
            let users: Vec<String> = (0..=i).map(|j| format!("u{i}{j}")).collect();
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            let label = format!("s{i}-p");
            let label: &'static str = Box::leak(label.into_boxed_str());
            fill(r0, Some(s), &users, &[(label, i)]).await;
        }
        let database = tenantry::Database::options(&t.url())
            .sqlite_open_schemas(1)
            .max_connections(1)
            .connect()
            .await
            .unwrap();
        let r = &common::models::register(Registry::new(database));
        for round in 0..3 {
            for (i, s) in schemas.iter().enumerate() {
                let other = &schemas[(i + 1) % schemas.len()];
                let q = |s: &SchemaName, owner_name: String| {
                    Product::query(r)
                        .using(s)
                        .filter(Product::user().to(User::name()).eq(owner_name))
                        .filter(Product::id().gte(1))
                };
                let j = (i + 1) % schemas.len();
                let (x, y) = tokio::join!(
                    names(q(s, format!("u{i}{i}"))),
                    names(q(other, format!("u{j}{j}")))
                );
                assert_eq!(x, vec![format!("s{i}-p")], "round {round}");
                assert_eq!(y, vec![format!("s{j}-p")], "round {round}");
                // Another tenant's owner name finds nothing here.
                let z = names(q(s, format!("u{j}{j}"))).await;
                assert!(z.is_empty(), "round {round}: {z:?}");
            }
        }
        r.disconnect().await;
    }
);

// ---------------------------------------------------------------------------------------
// 13. Empty and nested junctions (`Filter::all([])` is true, `Filter::any([])` false) and
//     `exclude` of a lookup beside them: the same tokens, another tree of values.

backend_pool_test!(
    empty_junctions_and_exclude,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = places(r, &t).await;
        type Q = fn(&Registry, &SchemaName, i64, &'static str) -> QuerySet<Product>;
        let shapes: Vec<(&str, Q, [usize; 2])> = vec![
            (
                "all([]) & id",
                |r, s, k, _| {
                    Product::query(r)
                        .using(s)
                        .filter(tenantry::Filter::all([]) & Product::id().gte(k))
                },
                [4, 2],
            ),
            (
                "any([]) | id",
                |r, s, k, _| {
                    Product::query(r)
                        .using(s)
                        .filter(tenantry::Filter::any([]) | Product::id().gte(k))
                },
                [4, 2],
            ),
            (
                "not any([]) & exclude owner",
                |r, s, _, x| {
                    Product::query(r)
                        .using(s)
                        .filter(!tenantry::Filter::any([]))
                        .exclude(owner().eq(x))
                },
                [4, 3],
            ),
            (
                "any([owner, any([])])",
                |r, s, _, x| {
                    Product::query(r).using(s).filter(tenantry::Filter::any([
                        owner().eq(x),
                        tenantry::Filter::any([]),
                    ]))
                },
                [1, 0],
            ),
        ];
        for round in 0..2 {
            for (what, q, [in_a, in_b]) in &shapes {
                // a: key 2, owner ben; b: key 2, owner ben (nobody in b).
                let (ga, gb) = tokio::join!(
                    checked(q(r, &a, 2, "ben"), format!("a {what}")),
                    checked(q(r, &b, 2, "ben"), format!("b {what}"))
                );
                assert_eq!(ga.len(), *in_a, "a {what} round {round}: {ga:?}");
                assert_eq!(gb.len(), *in_b, "b {what} round {round}: {gb:?}");
            }
        }
    }
);

// ---------------------------------------------------------------------------------------
// 14. Random shapes, each run with several sets of values in two tenants and the default
//     schema at once: all() (kept) against values_list() (never kept).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TEXTS: [&str; 12] = [
    "ann",
    "bob",
    "zed",
    "a",
    "%",
    "_",
    "\\",
    "lamp",
    "LAMP",
    "-",
    "dee",
    "50%_off\\x",
];

fn text(va: &mut Rng) -> &'static str {
    TEXTS[va.below(TEXTS.len() as u64) as usize]
}

fn key(va: &mut Rng) -> i64 {
    va.below(6) as i64
}

fn atom(sh: &mut Rng, va: &mut Rng) -> tenantry::Filter {
    match sh.below(16) {
        0 => Product::id().eq(key(va)),
        1 => Product::id().ne(key(va)),
        2 => Product::id().gt(key(va)),
        3 => Product::id().lte(key(va)),
        4 => {
            let n = sh.below(4);
            Product::id().is_in((0..n).map(|_| key(va)).collect::<Vec<_>>())
        }
        5 => Product::name().contains(text(va)),
        6 => Product::name().icontains(text(va)),
        7 => Product::name().startswith(text(va)),
        8 => Product::name().iexact(text(va)),
        9 => Product::user().isnull(sh.below(2) == 0),
        10 => owner().eq(text(va)),
        11 => owner().ne(text(va)),
        12 => owner().icontains(text(va)),
        13 => Product::user().to(User::email()).startswith(text(va)),
        14 => Product::user().to(User::id()).gte(key(va)),
        _ => Product::user().eq(key(va)),
    }
}

fn tree(sh: &mut Rng, va: &mut Rng, depth: u32) -> tenantry::Filter {
    if depth == 0 || sh.below(3) == 0 {
        return atom(sh, va);
    }
    match sh.below(5) {
        0 => tree(sh, va, depth - 1) & tree(sh, va, depth - 1),
        1 => tree(sh, va, depth - 1) | tree(sh, va, depth - 1),
        2 => !tree(sh, va, depth - 1),
        3 => {
            let n = sh.below(3);
            tenantry::Filter::all((0..n).map(|_| tree(sh, va, depth - 1)).collect::<Vec<_>>())
        }
        _ => {
            let n = sh.below(3);
            tenantry::Filter::any((0..n).map(|_| tree(sh, va, depth - 1)).collect::<Vec<_>>())
        }
    }
}

fn random_query(
    r: &Registry,
    s: Option<&SchemaName>,
    shape: u64,
    values: u64,
) -> QuerySet<Product> {
    let (sh, va) = (
        &mut Rng(shape.wrapping_mul(2) | 1),
        &mut Rng(values.wrapping_mul(6) | 1),
    );
    let mut q = Product::query(r).using_opt(s);
    for _ in 0..=sh.below(2) {
        q = match sh.below(4) {
            0 => q.exclude(tree(sh, va, 3)),
            _ => q.filter(tree(sh, va, 3)),
        };
    }
    let orderings = [
        Product::name().asc(),
        Product::name().desc(),
        owner().asc(),
        owner().desc(),
        Product::user().to(User::email()).desc(),
    ];
    for _ in 0..sh.below(3) {
        q = q.order_by([orderings[sh.below(orderings.len() as u64) as usize].clone()]);
    }
    q = q.order_by([Product::id().asc()]);
    if sh.below(2) == 0 {
        q = q.limit(va.below(5));
    }
    if sh.below(3) == 0 {
        q = q.offset(va.below(4));
    }
    q
}

type Rows = std::result::Result<Vec<(i64, String)>, String>;

async fn compare(q: QuerySet<Product>) -> (Rows, Rows) {
    let oracle = q
        .clone()
        .values_list((Product::id(), Product::name()))
        .await
        .map_err(|e| e.to_string());
    let got = q
        .all()
        .await
        .map(|v| {
            v.into_iter()
                .map(|p| {
                    let p = p.into_inner();
                    (p.id, p.name)
                })
                .collect()
        })
        .map_err(|e| e.to_string());
    (got, oracle)
}

fn agree(what: &str, (got, oracle): &(Rows, Rows), q: impl FnOnce() -> String) {
    match (got, oracle) {
        (Ok(g), Ok(o)) => assert_eq!(g, o, "{what}: {}", q()),
        (Err(_), Err(_)) => {}
        _ => panic!("{what}: all() {got:?}, values_list() {oracle:?}: {}", q()),
    }
}

backend_test!(
    random_shapes_with_other_values_in_each_tenant,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = places(r, &t).await;
        let salt = t.backend as u64;
        let (mut ok, mut failed, mut rows) = (0, 0, 0);
        for shape in 1..=160_u64 {
            for round in 0..3_u64 {
                let (va, vb, vd) = (
                    shape * 31 + round,
                    shape * 31 + round + 7,
                    shape * 31 + round + 13,
                );
                let (x, y, z) = tokio::join!(
                    compare(random_query(r, Some(&a), shape + salt, va)),
                    compare(random_query(r, Some(&b), shape + salt, vb)),
                    compare(random_query(r, None, shape + salt, vd)),
                );
                let sql = |s: Option<SchemaName>, v: u64| {
                    move || {
                        let q = random_query(r, s.as_ref(), shape + salt, v);
                        format!("{q:?} {:?}", q.clone().to_sql())
                    }
                };
                agree(
                    &format!("a shape {shape} round {round}"),
                    &x,
                    sql(Some(a.clone()), va),
                );
                agree(
                    &format!("b shape {shape} round {round}"),
                    &y,
                    sql(Some(b.clone()), vb),
                );
                agree(
                    &format!("default shape {shape} round {round}"),
                    &z,
                    sql(None, vd),
                );
                for r in [&x.0, &y.0, &z.0] {
                    match r {
                        Ok(v) => {
                            ok += 1;
                            rows += v.len();
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("shape {shape}: {e}");
                        }
                    }
                }
                if let (Ok(x), Ok(y), Ok(z)) = (&x.0, &y.0, &z.0) {
                    assert!(x.iter().all(|(_, n)| n.starts_with("a-")), "{x:?}");
                    assert!(y.iter().all(|(_, n)| n.starts_with("b-")), "{y:?}");
                    assert!(z.iter().all(|(_, n)| n.starts_with("d-")), "{z:?}");
                }
            }
        }
        eprintln!(
            "{}: {ok} answered ({rows} rows), {failed} refused",
            t.backend
        );
        // The attack means something only when most shapes run.
        assert!(
            ok > 4 * failed && rows > 500,
            "{ok} answered, {failed} refused, {rows} rows"
        );
    }
);

// ---------------------------------------------------------------------------------------
// 15. Two handles on one server database with different tenant namespaces (MySQL names a
//     tenant `<namespace>$<schema>`): the same schema name is two tenants, and each
//     handle's kept text names its own. Typed errors of a shape stay typed once a valid
//     shape of the same tokens was kept.

backend_test!(
    namespaces_and_typed_errors_of_kept_shapes,
    |t: common::TestDb| async move {
        let handle = |ns: &str| {
            let url = t.url();
            let ns = format!("{}_{ns}", t.prefix);
            async move {
                let db = tenantry::Database::options(&url)
                    .tenant_namespace(&ns)
                    .connect()
                    .await
                    .unwrap();
                common::models::register(Registry::new(db))
            }
        };
        let (r1, r2) = tokio::join!(handle("n1"), handle("n2"));
        let s = t.schema("ns");
        if t.backend == tenantry::Backend::MySql {
            fill(&r1, Some(&s), &["one"], &[("ns1-p", 0)]).await;
            fill(&r2, Some(&s), &["two"], &[("ns2-p", 0), ("ns2-q", 0)]).await;
        } else {
            // One schema of that name on PostgreSQL (the namespace is MySQL's) and on
            // SQLite (one file): both handles read it.
            fill(&r1, Some(&s), &["one"], &[("ns1-p", 0)]).await;
        }
        let q = |r: &Registry, x: &'static str| {
            Product::query(r)
                .using(&s)
                .filter(owner().ne(x))
                .filter(Product::id().gte(1))
                .order_by([Product::id().asc()])
        };
        for round in 0..3 {
            let (x, y) = tokio::join!(checked(q(&r1, "zz"), "ns1"), checked(q(&r2, "zz"), "ns2"));
            assert_eq!(x, vec!["ns1-p"], "round {round}");
            match t.backend {
                tenantry::Backend::MySql => assert_eq!(y, vec!["ns2-p", "ns2-q"], "round {round}"),
                _ => assert_eq!(y, vec!["ns1-p"], "round {round}"),
            }
        }
        // A condition on another model's columns: refused every time, also after a valid
        // shape with the same column names was kept.
        for _ in 0..2 {
            let fine = names(
                Product::query(&r1)
                    .using(&s)
                    .filter(Product::name().eq("ns1-p")),
            )
            .await;
            assert_eq!(fine, vec!["ns1-p"]);
            let refused = Product::query(&r1)
                .using(&s)
                .filter(User::name().eq("ns1-p"))
                .all()
                .await;
            assert!(
                matches!(refused, Err(Error::InvalidRelation { .. })),
                "{refused:?}"
            );
        }
        r1.disconnect().await;
        r2.disconnect().await;
    }
);

// ---------------------------------------------------------------------------------------
// 16. A directory tenant and a default-database tenant of the same name, read with the same
//     shape concurrently in one task (directory databases keep no texts; the default
//     database's tenant does).

async fn seed_owner(r: &Registry, tag: &str) {
    let owner = User::query(r)
        .create(user(&format!("{tag}-u")))
        .await
        .unwrap();
    Product::query(r)
        .create(product(&format!("{tag}-p"), Some(&owner)))
        .await
        .unwrap();
}

async fn owned_by(r: &Registry, name: &'static str) -> Vec<String> {
    names(
        Product::query(r)
            .filter(owner().eq(name))
            .filter(Product::id().gte(1))
            .order_by([Product::id().asc()]),
    )
    .await
}

backend_test!(
    directory_and_default_tenants_of_one_name,
    |t: common::TestDb| async move {
        let dir = common::directory::directory(&t, 8);
        let registry = tenantry::contrib::register(t.registry.clone())
            .register::<tenantry::contrib::DirectoryEntry>()
            .directory(dir.clone());
        registry.create_all().await.unwrap();
        let r = &registry;
        let beta = SchemaName::parse("beta").unwrap();
        create_schema(r, &beta, None, false, true).await.unwrap();
        with_tenant(Some(beta.clone()), seed_owner(r, "def")).await;
        dir.add_tenant(r, "beta", "home", &common::directory::db_name(&t, 1))
            .await
            .unwrap();
        dir.with_tenant(r, "beta", seed_owner(r, "dir"))
            .await
            .unwrap();
        for round in 0..3 {
            let (x, y, z, w) = tokio::join!(
                with_tenant(Some(beta.clone()), owned_by(r, "def-u")),
                dir.with_tenant(r, "beta", owned_by(r, "dir-u")),
                with_tenant(Some(beta.clone()), owned_by(r, "dir-u")),
                dir.with_tenant(r, "beta", owned_by(r, "def-u")),
            );
            assert_eq!(x, vec!["def-p"], "round {round}");
            assert_eq!(y.unwrap(), vec!["dir-p"], "round {round}");
            assert!(z.is_empty(), "round {round}: {z:?}");
            assert!(w.unwrap().is_empty(), "round {round}");
        }
    }
);
