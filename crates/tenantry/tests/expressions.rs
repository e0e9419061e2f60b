//! Expressions inside the tenant: `stock = stock - 1` updates racing in two tenants at once
//! (none lost, neither tenant touched by the other's), filters comparing two columns,
//! computed projections, and the refusals (a column reached through a relation, another
//! model's columns, decimal arithmetic on SQLite, a decimal constant finer than its column);
//! on every backend, with pools of 1 and 2.
mod common;

use std::str::FromStr;

use tenantry::{
    create_schema, with_tenant, Backend, Decimal, Error, ForeignKey, Model, Registry, SchemaName,
};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ex_owners")]
struct Owner {
    id: i64,
    #[model(max_length = 80)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "ex_items")]
struct Item {
    id: i64,
    #[model(max_length = 80)]
    name: String,
    stock: i32,
    reserved: i32,
    weight: f64,
    #[model(max_digits = 10, decimal_places = 2)]
    price: Decimal,
    #[model(max_digits = 10, decimal_places = 2)]
    cost: Decimal,
    owner: Option<ForeignKey<Owner>>,
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// `rows` items named `<tenant>-<i>`, item i with stock `base + i` and `reserved` 3.
async fn items(registry: &Registry, tenant: &SchemaName, base: i32, rows: i32) -> Vec<i64> {
    create_schema(
        registry,
        tenant,
        Some(&[Owner::META, Item::META]),
        false,
        true,
    )
    .await
    .unwrap();
    let made = Item::query(registry)
        .using(tenant)
        .bulk_create((0..rows).map(|i| Item {
            id: 0,
            name: format!("{tenant}-{i}"),
            stock: base + i,
            reserved: 3,
            weight: f64::from(i) + 0.5,
            price: dec("10.00"),
            cost: dec(if i % 2 == 0 { "4.00" } else { "12.00" }),
            owner: None,
        }))
        .await
        .unwrap();
    made.iter().map(|item| item.id).collect()
}

/// Takes one from item `id`'s stock `times` times, every update racing the others.
async fn take(registry: &Registry, id: i64, times: usize) {
    let updates = (0..times).map(|_| async move {
        let changed = Item::query(registry)
            .filter(Item::id().eq(id))
            .update([Item::stock().set_expr(Item::stock() - 1)])
            .await
            .unwrap();
        assert_eq!(changed, 1);
    });
    futures_util::future::join_all(updates).await;
}

backend_pool_test!(
    racing_decrements_are_never_lost,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ea"), t.schema("eb"));
        let a_ids = items(&t.registry, &a, 100, 2).await;
        let b_ids = items(&t.registry, &b, 500, 2).await;
        // The same primary key in both tenants: each update must reach its own.
        assert_eq!(a_ids, b_ids);
        let r = &t.registry;
        tokio::join!(
            with_tenant(Some(a.clone()), take(r, a_ids[0], 30)),
            with_tenant(Some(b.clone()), take(r, b_ids[0], 20)),
        );
        let stocks = |tenant: SchemaName| {
            let registry = t.registry.clone();
            async move {
                Item::query(&registry)
                    .using(&tenant)
                    .order_by([Item::id().asc()])
                    .values_list((Item::name(), Item::stock()))
                    .await
                    .unwrap()
            }
        };
        let a_stock = stocks(a.clone()).await;
        let b_stock = stocks(b.clone()).await;
        assert_eq!(
            a_stock,
            vec![(format!("{a}-0"), 70), (format!("{a}-1"), 101)]
        );
        assert_eq!(
            b_stock,
            vec![(format!("{b}-0"), 480), (format!("{b}-1"), 501)]
        );
    }
);

backend_test!(
    filters_compare_two_columns_in_each_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ea"), t.schema("eb"));
        items(&t.registry, &a, 0, 6).await;
        items(&t.registry, &b, 2, 6).await;
        let below = |tenant: SchemaName| {
            let registry = t.registry.clone();
            async move {
                with_tenant(Some(tenant), async move {
                    // stock < reserved (3): a has stocks 0..6, b 2..8.
                    let names = Item::query(&registry)
                        .filter(Item::stock().expr().lt(Item::reserved()))
                        .order_by([Item::id().asc()])
                        .values_list(Item::name())
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    // stock >= reserved * 2 - 1, and a decimal comparison of two columns.
                    let high = Item::query(&registry)
                        .filter(Item::stock().expr().gte(Item::reserved() * 2 - 1))
                        .count()
                        .await
                        .unwrap();
                    let cheap = Item::query(&registry)
                        .filter(Item::cost().expr().lt(Item::price()))
                        .count()
                        .await
                        .unwrap();
                    (names, high, cheap)
                })
                .await
            }
        };
        let (in_a, in_b) = tokio::join!(below(a.clone()), below(b.clone()));
        assert_eq!(
            in_a.0,
            vec![format!("{a}-0"), format!("{a}-1"), format!("{a}-2")]
        );
        assert_eq!(in_b.0, vec![format!("{b}-0")]);
        assert_eq!((in_a.1, in_a.2), (1, 3));
        assert_eq!((in_b.1, in_b.2), (3, 3));
        // `exclude` of a comparison, and a comparison with a constant expression.
        let not_below = Item::query(&t.registry)
            .using(&a)
            .exclude(Item::stock().expr().lt(Item::reserved()))
            .count()
            .await
            .unwrap();
        assert_eq!(not_below, 3);
        let equal = Item::query(&t.registry)
            .using(&b)
            .filter(Item::stock().expr().eq(Item::reserved() + 1))
            .values_list(Item::name())
            .await
            .unwrap();
        assert_eq!(equal, vec![format!("{b}-2")]);
    }
);

backend_test!(
    computed_columns_are_read_per_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ea"), t.schema("eb"));
        items(&t.registry, &a, 10, 3).await;
        items(&t.registry, &b, 20, 3).await;
        let read = |tenant: SchemaName| {
            let registry = t.registry.clone();
            async move {
                Item::query(&registry)
                    .using(&tenant)
                    .order_by([Item::id().asc()])
                    .values_list((
                        Item::name(),
                        Item::stock() * 2 - Item::reserved(),
                        Item::weight() / 2.0,
                    ))
                    .await
                    .unwrap()
            }
        };
        let (in_a, in_b) = tokio::join!(read(a.clone()), read(b.clone()));
        assert_eq!(
            in_a,
            vec![
                (format!("{a}-0"), 17, 0.25),
                (format!("{a}-1"), 19, 0.75),
                (format!("{a}-2"), 21, 1.25)
            ]
        );
        assert_eq!(in_b[2], (format!("{b}-2"), 41, 1.25));
        // A computed group key.
        let groups = Item::query(&t.registry)
            .using(&a)
            .group_by(Item::stock() - Item::stock())
            .aggregate(Item::id().count())
            .await
            .unwrap();
        assert_eq!(groups, vec![(0, 3)]);
    }
);

backend_test!(
    decimal_arithmetic_is_exact_or_refused,
    |t: common::TestDb| async move {
        let a = t.schema("ea");
        let ids = items(&t.registry, &a, 0, 2).await;
        let items = || Item::query(&t.registry).using(&a);
        let doubled = items()
            .filter(Item::id().eq(ids[0]))
            .update([Item::price().set_expr(Item::price() * dec("2") + dec("0.25"))])
            .await;
        let too_fine = items()
            .update([Item::price().set_expr(Item::price() + dec("0.015"))])
            .await;
        let computed = items().values_list(Item::price() - Item::cost()).await;
        let grouped = items()
            .group_by(Item::price() + Item::cost())
            .aggregate(Item::id().count())
            .await;
        let compared = items()
            .filter((Item::price() - Item::cost()).gt(dec("0")))
            .count()
            .await;
        if t.backend == Backend::Sqlite {
            for result in [
                doubled.map(|_| ()),
                computed.map(|_| ()),
                grouped.map(|_| ()),
                compared.map(|_| ()),
            ] {
                assert!(
                    matches!(
                        result,
                        Err(Error::Unsupported {
                            backend: "sqlite",
                            ..
                        })
                    ),
                    "{result:?}"
                );
            }
        } else {
            assert_eq!(doubled.unwrap(), 1);
            let price = items().get(Item::id().eq(ids[0])).await.unwrap().price;
            assert_eq!(price, dec("20.25"));
            let mut computed = computed.unwrap();
            computed.sort();
            assert_eq!(computed, vec![dec("-2.00"), dec("16.25")]);
            assert_eq!(grouped.unwrap().len(), 2);
            assert_eq!(compared.unwrap(), 1);
        }
        // A constant finer than the column is refused before any SQL, on every backend.
        assert!(
            matches!(
                too_fine,
                Err(Error::ValueOutOfRange {
                    column: "price",
                    ..
                })
            ),
            "{too_fine:?}"
        );
        // Nothing was written by the refused statements.
        let prices = items()
            .order_by([Item::id().asc()])
            .values_list(Item::price())
            .await
            .unwrap();
        let first = if t.backend == Backend::Sqlite {
            "10.00"
        } else {
            "20.25"
        };
        assert_eq!(prices, vec![dec(first), dec("10.00")]);
    }
);

backend_test!(
    expressions_over_other_tables_are_refused,
    |t: common::TestDb| async move {
        let a = t.schema("ea");
        items(&t.registry, &a, 0, 2).await;
        let items = || Item::query(&t.registry).using(&a);
        // A column reached through a relation, in an update and in a filter.
        let through = Item::owner().to(Owner::id());
        let update = items().update([Item::stock().set(1)]).await.unwrap();
        assert_eq!(update, 2);
        let set = items().update([Item::owner().set_expr(through)]).await;
        assert!(
            matches!(
                set,
                Err(Error::InvalidRelation {
                    model: "ex_items",
                    ..
                })
            ),
            "{set:?}"
        );
        let filtered = items().filter(Item::id().expr().eq(through)).count().await;
        assert!(
            matches!(filtered, Err(Error::InvalidRelation { .. })),
            "{filtered:?}"
        );
        let projected = items().values_list(Item::id() + through).await;
        assert!(
            matches!(projected, Err(Error::InvalidRelation { .. })),
            "{projected:?}"
        );
        // Another model's columns in a filter of this one.
        let other = items()
            .filter(Owner::id().expr().eq(Owner::id()))
            .count()
            .await;
        assert!(
            matches!(other, Err(Error::InvalidRelation { .. })),
            "{other:?}"
        );
        // Nothing changed.
        let stocks = items().values_list(Item::stock()).await.unwrap();
        assert_eq!(stocks, vec![1, 1]);
    }
);
