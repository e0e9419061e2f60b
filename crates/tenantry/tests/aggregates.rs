//! Aggregates, grouping, projections and page-number pagination, inside the tenant: two
//! tenants hold different rows under the same ids and are read concurrently in one task;
//! each sees only its own numbers.
mod common;

use std::str::FromStr;

use common::models::*;
use tenantry::{
    create_schema, with_tenant, Backend, Decimal, Error, ForeignKey, Model, Registry, SchemaName,
};

#[derive(Model, Debug, Clone, PartialEq)]
struct Item {
    id: i64,
    #[model(max_length = 50)]
    name: String,
    owner: Option<ForeignKey<User>>,
    #[model(max_digits = 12, decimal_places = 2)]
    price: Decimal,
    qty: i32,
    weight: f64,
    big: Option<i64>,
}

/// A decimal wider than SQLite's `REAL` holds to the unit.
#[derive(Model, Debug, Clone, PartialEq)]
struct Wide {
    id: i64,
    #[model(max_digits = 28, decimal_places = 10)]
    amount: Decimal,
}

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn item(name: &str, owner: i64, price: &str, qty: i32, weight: f64) -> Item {
    Item {
        id: 0,
        name: name.into(),
        owner: Some(ForeignKey::new(owner)),
        price: d(price),
        qty,
        weight,
        big: Some(i64::from(qty) * 1_000_000_000_000),
    }
}

async fn registry(t: &common::TestDb) -> Registry {
    let registry = t.registry.clone().register::<Item>().register::<Wide>();
    registry.create_all().await.unwrap();
    registry
}

/// Tenant `a`: two owners (ids 1, 2), five items. Tenant `b`: one owner (id 1), two items
/// with other prices. Same ids in both.
async fn two_tenants(r: &Registry, t: &common::TestDb) -> (SchemaName, SchemaName) {
    let (a, b) = (t.schema("agg_a"), t.schema("agg_b"));
    for s in [&a, &b] {
        create_schema(r, s, None, false, true).await.unwrap();
    }
    let owners_a = User::query(r)
        .using(&a)
        .bulk_create([user("ann"), user("ben")])
        .await
        .unwrap();
    let (ann, ben) = (owners_a[0].id, owners_a[1].id);
    Item::query(r)
        .using(&a)
        .bulk_create([
            item("a1", ann, "10.10", 1, 0.5),
            item("a2", ann, "20.20", 2, 1.5),
            item("a3", ann, "0.01", 3, 2.5),
            item("a4", ben, "5.00", 4, 3.5),
            item("a5", ben, "5.00", 5, 4.5),
        ])
        .await
        .unwrap();
    let owner_b = User::query(r).using(&b).create(user("cid")).await.unwrap();
    Item::query(r)
        .using(&b)
        .bulk_create([
            item("b1", owner_b.id, "99.99", 7, 10.0),
            item("b2", owner_b.id, "0.02", 9, 20.0),
        ])
        .await
        .unwrap();
    (a, b)
}

type Totals = (
    i64,
    i64,
    Option<Decimal>,
    Option<i64>,
    Option<f64>,
    Option<Decimal>,
    Option<f64>,
    Option<i64>,
);

async fn totals(r: &Registry) -> Totals {
    Item::query(r)
        .aggregate((
            Item::id().count(),
            Item::price().count_distinct(),
            Item::price().sum(),
            Item::qty().sum(),
            Item::weight().sum(),
            Item::price().avg(),
            Item::qty().avg(),
            Item::big().sum(),
        ))
        .await
        .unwrap()
}

backend_pool_test!(
    aggregates_see_only_their_tenant_under_concurrency,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        for _ in 0..5 {
            let (in_a, in_b) = tokio::join!(
                with_tenant(Some(a.clone()), totals(r)),
                with_tenant(Some(b.clone()), totals(r))
            );
            assert_eq!(
                in_a,
                (
                    5,
                    4,
                    Some(d("40.31")),
                    Some(15),
                    Some(12.5),
                    Some(d("8.062")),
                    Some(3.0),
                    Some(15_000_000_000_000),
                )
            );
            assert_eq!(
                in_b,
                (
                    2,
                    2,
                    Some(d("100.01")),
                    Some(16),
                    Some(30.0),
                    Some(d("50.005")),
                    Some(8.0),
                    Some(16_000_000_000_000),
                )
            );
        }
        // Minimum and maximum: decimals by value, text, integers.
        let (cheapest, dearest, first, most) = Item::query(r)
            .using(&a)
            .aggregate((
                Item::price().min(),
                Item::price().max(),
                Item::name().min(),
                Item::qty().max(),
            ))
            .await
            .unwrap();
        assert_eq!(
            (cheapest, dearest, first, most),
            (
                Some(d("0.01")),
                Some(d("20.20")),
                Some("a1".into()),
                Some(5)
            )
        );
        // A filter applies; no matching row gives counts of 0 and None elsewhere.
        let none = Item::query(r)
            .using(&b)
            .filter(Item::qty().gt(100))
            .aggregate((
                Item::id().count(),
                Item::price().sum(),
                Item::price().avg(),
                Item::weight().avg(),
                Item::name().max(),
            ))
            .await
            .unwrap();
        assert_eq!(none, (0, None, None, None, None));
    }
);

backend_test!(
    group_by_returns_one_row_per_key_of_the_tenant,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        let per_owner = |s: SchemaName| async move {
            Item::query(r)
                .using(&s)
                .group_by(Item::owner().optional())
                .aggregate((Item::id().count(), Item::price().sum(), Item::qty().avg()))
                .await
                .unwrap()
        };
        let (in_a, in_b) = tokio::join!(per_owner(a.clone()), per_owner(b.clone()));
        assert_eq!(
            in_a,
            [
                (Some(1), (3, Some(d("30.31")), Some(2.0))),
                (Some(2), (2, Some(d("10.00")), Some(4.5))),
            ]
        );
        assert_eq!(in_b, [(Some(1), (2, Some(d("100.01")), Some(8.0)))]);
        // Two keys, with a filter.
        let pairs = Item::query(r)
            .using(&a)
            .filter(Item::qty().gte(2))
            .group_by((Item::owner(), Item::price()))
            .aggregate(Item::id().count())
            .await
            .unwrap();
        assert_eq!(
            pairs,
            [
                ((1, d("0.01")), 1),
                ((1, d("20.20")), 1),
                ((2, d("5.00")), 2),
            ]
        );
        // A NULL read without `optional()` is a typed decode error, not a panic.
        Item::query(r)
            .using(&a)
            .create(Item {
                owner: None,
                ..item("orphan", 1, "1.00", 1, 1.0)
            })
            .await
            .unwrap();
        let null = Item::query(r)
            .using(&a)
            .group_by(Item::owner())
            .aggregate(Item::id().count())
            .await;
        assert!(matches!(null, Err(Error::Decode { .. })), "{null:?}");
        let with_null = Item::query(r)
            .using(&a)
            .group_by(Item::owner().optional())
            .aggregate(Item::id().count())
            .await
            .unwrap();
        assert!(with_null.contains(&(None, 1)), "{with_null:?}");
    }
);

backend_test!(
    values_list_reads_columns_of_the_tenant_only,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        let (names_a, names_b) = tokio::join!(
            with_tenant(
                Some(a.clone()),
                Item::query(r)
                    .order_by([Item::name().desc()])
                    .values_list((Item::name(), Item::price()))
            ),
            with_tenant(
                Some(b.clone()),
                Item::query(r)
                    .order_by([Item::name().desc()])
                    .values_list((Item::name(), Item::price()))
            )
        );
        assert_eq!(
            names_a.unwrap(),
            [
                ("a5".to_string(), d("5.00")),
                ("a4".into(), d("5.00")),
                ("a3".into(), d("0.01")),
                ("a2".into(), d("20.20")),
                ("a1".into(), d("10.10")),
            ]
        );
        assert_eq!(
            names_b.unwrap(),
            [("b2".to_string(), d("0.02")), ("b1".into(), d("99.99"))]
        );
        // One column, distinct, ordered, limited.
        let prices = Item::query(r)
            .using(&a)
            .order_by([Item::price().asc()])
            .distinct()
            .limit(3)
            .values_list(Item::price())
            .await
            .unwrap();
        assert_eq!(prices, [d("0.01"), d("5.00"), d("10.10")]);
        // A bad schema name is the builder's error, before any SQL.
        let bad = Item::query(r)
            .using("Bad-Name")
            .values_list(Item::name())
            .await;
        assert!(
            matches!(bad, Err(Error::InvalidSchemaName { .. })),
            "{bad:?}"
        );
        let bad = Item::query(r)
            .using("Bad-Name")
            .aggregate(Item::id().count())
            .await;
        assert!(
            matches!(bad, Err(Error::InvalidSchemaName { .. })),
            "{bad:?}"
        );
    }
);

backend_test!(
    pages_cut_the_tenant_rows_and_count_them,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = two_tenants(r, &t).await;
        let page_names = |s: SchemaName, n: u64| async move {
            let page = Item::query(r)
                .using(&s)
                .order_by([Item::price().asc()])
                .paginate(2)
                .page(n)
                .await
                .unwrap();
            let names: Vec<String> = page.items.iter().map(|i| i.name.clone()).collect();
            (
                names,
                page.total,
                page.pages(),
                page.has_next(),
                page.has_previous(),
            )
        };
        let (p1, p1b) = tokio::join!(page_names(a.clone(), 1), page_names(b.clone(), 1));
        // a4 and a5 tie on price: the key breaks the tie, so each is on one page only.
        assert_eq!(p1, (vec!["a3".into(), "a4".into()], 5, 3, true, false));
        assert_eq!(p1b, (vec!["b2".into(), "b1".into()], 2, 1, false, false));
        assert_eq!(
            page_names(a.clone(), 2).await,
            (vec!["a5".into(), "a1".into()], 5, 3, true, true)
        );
        assert_eq!(
            page_names(a.clone(), 3).await,
            (vec!["a2".into()], 5, 3, false, true)
        );
        // Past the end: empty, with the total.
        assert_eq!(page_names(a.clone(), 9).await, (vec![], 5, 3, false, true));
        // Page 0, per_page 0, and a page starting past u64::MAX are typed errors.
        let q = || Item::query(r).using(&a);
        for result in [
            q().paginate(2).page(0).await,
            q().paginate(0).page(1).await,
            q().paginate(u64::MAX).page(3).await,
        ] {
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{result:?}"
            );
        }
    }
);

backend_test!(
    a_decimal_sum_is_exact_or_refused,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let values = ["0.1000000001", "123456789012345678.0000000001"];
        Wide::query(r)
            .bulk_create(values.map(|v| Wide {
                id: 0,
                amount: d(v),
            }))
            .await
            .unwrap();
        let sum = Wide::query(r).aggregate(Wide::amount().sum()).await;
        if t.backend == Backend::Sqlite {
            assert!(matches!(sum, Err(Error::Unsupported { .. })), "{sum:?}");
        } else {
            assert_eq!(sum.unwrap(), Some(d("123456789012345678.1000000002")));
        }
        // Minimum and maximum need no arithmetic: by value on every backend.
        let (min, max) = Wide::query(r)
            .aggregate((Wide::amount().min(), Wide::amount().max()))
            .await
            .unwrap();
        assert_eq!((min, max), (Some(d(values[0])), Some(d(values[1]))));
    }
);
