//! Decimal fields: `rust_decimal::Decimal` as `NUMERIC(p, s)` on every backend (SQLite: exact
//! text ordered by value), with filters, ordering, range checks and tenants.
mod common;

use std::str::FromStr;

use tenantry::{create_schema, with_tenant, Backend, Decimal, Error, ForeignKey, Model, Registry};

#[derive(Model, Debug, Clone, PartialEq)]
struct Price {
    id: i64,
    #[model(max_length = 20)]
    label: String,
    /// NUMERIC(12, 2): ten integer digits.
    #[model(max_digits = 12, decimal_places = 2, index)]
    amount: Decimal,
    /// NUMERIC(28, 10): the most digits.
    #[model(max_digits = 28, decimal_places = 10)]
    fine: Option<Decimal>,
    /// NUMERIC(28, 28): the most places.
    #[model(max_digits = 28, decimal_places = 28)]
    fraction: Option<Decimal>,
}

/// A decimal primary key, and a foreign key to it (which takes the key's NUMERIC(6, 3)).
#[derive(Model, Debug, Clone, PartialEq)]
struct Rate {
    #[model(primary_key, max_digits = 6, decimal_places = 3)]
    value: Decimal,
    #[model(max_length = 20)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct Quote {
    id: i64,
    rate: ForeignKey<Rate>,
}

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn price(label: &str, amount: &str) -> Price {
    Price {
        id: 0,
        label: label.into(),
        amount: d(amount),
        fine: None,
        fraction: None,
    }
}

/// The test's registry with `Price` registered and created.
async fn registry(t: &common::TestDb) -> Registry {
    let registry = t
        .registry
        .clone()
        .register::<Price>()
        .register::<Rate>()
        .register::<Quote>();
    registry.create_all().await.unwrap();
    registry
}

async fn labels(query: tenantry::QuerySet<Price>) -> Vec<String> {
    let mut labels: Vec<String> = query
        .all()
        .await
        .unwrap()
        .iter()
        .map(|p| p.label.clone())
        .collect();
    labels.sort();
    labels
}

backend_test!(
    decimals_round_trip_exactly,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let cases = [
            ("zero", "0", Some("0"), None),
            ("negative", "-123.45", Some("-0.0000000001"), Some("-0.5")),
            (
                "max",
                "9999999999.99",
                Some("999999999999999999.9999999999"),
                Some("0.9999999999999999999999999999"),
            ),
            (
                "min",
                "-9999999999.99",
                Some("-999999999999999999.9999999999"),
                Some("-0.0000000000000000000000000001"),
            ),
            (
                "places",
                "0.01",
                Some("0.1234567890"),
                Some("0.1234567890123456789012345678"),
            ),
        ];
        for (label, amount, fine, fraction) in cases {
            let value = Price {
                id: 0,
                label: label.into(),
                amount: d(amount),
                fine: fine.map(d),
                fraction: fraction.map(d),
            };
            let created = Price::query(r).create(value.clone()).await.unwrap();
            let loaded = Price::query(r).get_pk(created.id).await.unwrap();
            assert_eq!(loaded.amount, value.amount, "{label}");
            assert_eq!(loaded.fine, value.fine, "{label}");
            assert_eq!(loaded.fraction, value.fraction, "{label}");
        }

        // Every backend returns the column's scale: 1.5 in NUMERIC(12, 2) comes back as 1.50,
        // 1.500 too (trailing zeros are not extra places).
        let created = Price::query(r)
            .create(Price {
                fine: Some(d("2.5")),
                fraction: None,
                ..price("scaled", "1.500")
            })
            .await
            .unwrap();
        let loaded = Price::query(r).get_pk(created.id).await.unwrap();
        assert_eq!(loaded.amount.to_string(), "1.50");
        assert_eq!(loaded.fine.unwrap().to_string(), "2.5000000000");
        assert_eq!(loaded.fraction, None);
        assert_eq!(
            created.amount.to_string(),
            "1.500",
            "the caller's value is untouched"
        );

        // Option<Decimal> NULL, and save, bulk update and bulk_create bind decimals too.
        let mut stored = Price::query(r).create(price("nulls", "7")).await.unwrap();
        assert_eq!(
            Price::query(r)
                .filter(Price::fine().isnull(true) & Price::label().eq("nulls"))
                .count()
                .await
                .unwrap(),
            1
        );
        stored.amount = d("-0.07");
        stored.fine = Some(d("12345678901234567.0000000001"));
        stored.save().await.unwrap();
        let loaded = Price::query(r).get_pk(stored.id).await.unwrap();
        assert_eq!(loaded.amount, d("-0.07"));
        assert_eq!(loaded.fine, Some(d("12345678901234567.0000000001")));
        let n = Price::query(r)
            .filter(Price::id().eq(stored.id))
            .update([Price::amount().set(d("42.1")), Price::fine().set_null()])
            .await
            .unwrap();
        assert_eq!(n, 1);
        let loaded = Price::query(r).get_pk(stored.id).await.unwrap();
        assert_eq!(loaded.amount.to_string(), "42.10");
        assert_eq!(loaded.fine, None);
        let many: Vec<Price> = (0..30)
            .map(|i| price(&format!("bulk{i}"), &format!("{i}.{i}")))
            .collect();
        let created = Price::query(r).bulk_create(many).await.unwrap();
        for (i, p) in created.iter().enumerate() {
            let loaded = Price::query(r).get_pk(p.id).await.unwrap();
            assert_eq!(loaded.amount, d(&format!("{i}.{i}")));
        }
    }
);

backend_test!(
    decimal_filters_compare_values,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        // As text, "10.00" < "9.00" and "-5.50" > "-10.00"; by value the opposite.
        for (label, amount) in [
            ("nine", "9.00"),
            ("ten", "10"),
            ("hundred", "100.25"),
            ("zero", "0"),
            ("minus_five", "-5.5"),
            ("minus_ten", "-10.00"),
            ("one_half", "1.5"),
        ] {
            Price::query(r).create(price(label, amount)).await.unwrap();
        }
        let q = || Price::query(r);
        assert_eq!(
            labels(q().filter(Price::amount().gt(d("9")))).await,
            ["hundred", "ten"]
        );
        assert_eq!(
            labels(q().filter(Price::amount().gte(d("9.000")))).await,
            ["hundred", "nine", "ten"]
        );
        assert_eq!(
            labels(q().filter(Price::amount().lt(d("0")))).await,
            ["minus_five", "minus_ten"]
        );
        assert_eq!(
            labels(q().filter(Price::amount().lt(d("-5.49")))).await,
            ["minus_five", "minus_ten"]
        );
        assert_eq!(
            labels(q().filter(Price::amount().lte(d("-10")))).await,
            ["minus_ten"]
        );
        // Equality by value, whatever the scale written.
        assert_eq!(
            labels(q().filter(Price::amount().eq(d("1.5")))).await,
            ["one_half"]
        );
        assert_eq!(
            labels(q().filter(Price::amount().eq(d("10.000")))).await,
            ["ten"]
        );
        assert_eq!(
            labels(q().filter(Price::amount().eq(Decimal::ZERO))).await,
            ["zero"]
        );
        assert_eq!(
            q().filter(Price::amount().ne(d("0")))
                .count()
                .await
                .unwrap(),
            6
        );
        assert_eq!(
            labels(q().filter(Price::amount().is_in([d("9"), d("-5.50"), d("3")]))).await,
            ["minus_five", "nine"]
        );
        assert_eq!(
            labels(q().filter(Price::amount().gt(d("1.49")) & Price::amount().lt(d("9.01")))).await,
            ["nine", "one_half"]
        );

        let ordered = |query: tenantry::QuerySet<Price>| async move {
            query
                .all()
                .await
                .unwrap()
                .iter()
                .map(|p| p.label.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ordered(q().order_by([Price::amount().asc()])).await,
            [
                "minus_ten",
                "minus_five",
                "zero",
                "one_half",
                "nine",
                "ten",
                "hundred"
            ]
        );
        assert_eq!(
            ordered(q().order_by([Price::amount().desc()]).limit(3)).await,
            ["hundred", "ten", "nine"]
        );

        // Values a float cannot tell apart are still apart, in filters and in order.
        Price::query(r).delete().await.unwrap();
        let big = [
            "12345678901234567.0000000002",
            "12345678901234567.0000000001",
            "12345678901234566.9999999999",
        ];
        for (i, fine) in big.iter().enumerate() {
            Price::query(r)
                .create(Price {
                    fine: Some(d(fine)),
                    ..price(&format!("big{i}"), "1")
                })
                .await
                .unwrap();
        }
        Price::query(r).create(price("none", "1")).await.unwrap();
        assert_eq!(
            labels(q().filter(Price::fine().eq(d(big[1])))).await,
            ["big1"]
        );
        assert_eq!(
            labels(q().filter(Price::fine().gt(d(big[1])))).await,
            ["big0"]
        );
        assert_eq!(
            labels(q().filter(Price::fine().lt(d(big[1])))).await,
            ["big2"]
        );
        assert_eq!(
            ordered(
                q().filter(Price::fine().isnull(false))
                    .order_by([Price::fine().asc()])
            )
            .await,
            ["big2", "big1", "big0"]
        );
    }
);

backend_test!(
    out_of_range_is_a_typed_error,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        fn out_of_range(result: tenantry::Result<impl std::fmt::Debug>, column: &str) {
            match result {
                Err(Error::ValueOutOfRange {
                    model,
                    column: c,
                    reason,
                }) => {
                    assert_eq!(model, "prices");
                    assert_eq!(c, column);
                    assert!(!reason.is_empty());
                }
                other => panic!("expected ValueOutOfRange on {column}, got {other:?}"),
            }
        }
        // 11 integer digits in NUMERIC(12, 2), on insert, on either sign.
        out_of_range(
            Price::query(r).create(price("big", "10000000000")).await,
            "amount",
        );
        out_of_range(
            Price::query(r)
                .create(price("big", "-10000000000.00"))
                .await,
            "amount",
        );
        // A third decimal place would be rounded: refused, not rounded.
        out_of_range(
            Price::query(r).create(price("places", "1.005")).await,
            "amount",
        );
        // NUMERIC(28, 28) holds no integer digit.
        out_of_range(
            Price::query(r)
                .create(Price {
                    fraction: Some(d("1")),
                    ..price("fraction", "1")
                })
                .await,
            "fraction",
        );
        // NUMERIC(28, 10): 19 integer digits.
        out_of_range(
            Price::query(r)
                .create(Price {
                    fine: Some(d("1000000000000000000")),
                    ..price("fine", "1")
                })
                .await,
            "fine",
        );
        // The message names the bound, not the value.
        let error = Price::query(r)
            .create(price("big", "98765432109"))
            .await
            .unwrap_err();
        assert!(!error.to_string().contains("98765432109"), "{error}");
        assert_eq!(
            Price::query(r).count().await.unwrap(),
            0,
            "nothing was written"
        );

        // Saves, bulk updates and bulk inserts are checked too.
        let mut stored = Price::query(r).create(price("ok", "1")).await.unwrap();
        stored.amount = d("12345678901.5");
        out_of_range(stored.save().await, "amount");
        out_of_range(
            Price::query(r)
                .update([Price::amount().set(d("0.001"))])
                .await,
            "amount",
        );
        let batch = vec![
            price("b1", "1"),
            price("b2", "123456789012"),
            price("b3", "3"),
        ];
        out_of_range(Price::query(r).bulk_create(batch).await, "amount");
        let all = Price::query(r).all().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].amount,
            d("1"),
            "the refused save and update changed nothing"
        );

        // The edges fit.
        Price::query(r)
            .create(Price {
                fine: Some(d("999999999999999999.9999999999")),
                fraction: Some(d("-0.9999999999999999999999999999")),
                ..price("edge", "-9999999999.99")
            })
            .await
            .unwrap();
    }
);

backend_test!(
    decimal_columns_are_numeric,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        let db = r.database();
        match t.backend {
            Backend::Postgres => {
                let mut conn = db.acquire_postgres().await.unwrap();
                let (precision, scale): (i32, i32) = sqlx::query_as(
                "SELECT numeric_precision, numeric_scale FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = 'prices' AND column_name = 'amount'",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
                assert_eq!((precision, scale), (12, 2));
            }
            Backend::MySql => {
                let mut conn = db.acquire_mysql().await.unwrap();
                let (kind,): (String,) = sqlx::query_as(
                "SELECT CAST(COLUMN_TYPE AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'prices' AND COLUMN_NAME = 'amount'",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
                assert_eq!(kind.to_lowercase(), "decimal(12,2)");
            }
            Backend::Sqlite => {
                Price::query(r).create(price("nine", "9")).await.unwrap();
                let mut conn = db.acquire_sqlite(None).await.unwrap();
                // The exact text, at the column's scale.
                let (kind, text): (String, String) =
                    sqlx::query_as("SELECT typeof(amount), amount FROM prices")
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap();
                assert_eq!((kind.as_str(), text.as_str()), ("text", "9.00"));
                // Text that is not a decimal, written behind tenantry's back, is a decode
                // error, not a panic nor a guess.
                sqlx::query("UPDATE prices SET amount = 'twelve'")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                drop(conn);
                assert!(matches!(
                    Price::query(r).all().await,
                    Err(Error::Decode {
                        column: "amount",
                        ..
                    })
                ));
            }
        }
        if t.backend == Backend::Postgres {
            // PostgreSQL's NUMERIC holds NaN, which Decimal cannot: a decode error.
            let mut conn = db.acquire_postgres().await.unwrap();
            sqlx::query("INSERT INTO prices (label, amount) VALUES ('nan', 'NaN')")
                .execute(&mut *conn)
                .await
                .unwrap();
            drop(conn);
            assert!(matches!(
                Price::query(r).all().await,
                Err(Error::Decode {
                    column: "amount",
                    ..
                })
            ));
        }
    }
);

// Tenant `a` and tenant `b`, in one task (`join!`), each with its own decimal rows: each
// filter and sum sees its own tenant's rows only, and the shared schema none.
backend_test!(
    two_tenants_keep_their_decimals,
    |t: common::TestDb| async move {
        let r = registry(&t).await;
        let (a, b) = (t.schema("a"), t.schema("b"));
        create_schema(&r, &a, None, false, true).await.unwrap();
        create_schema(&r, &b, None, false, true).await.unwrap();

        async fn work(
            r: Registry,
            amounts: &'static [&'static str],
        ) -> (Vec<String>, Vec<Decimal>) {
            for (i, amount) in amounts.iter().enumerate() {
                Price::query(&r)
                    .create(price(&format!("row{i}"), amount))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
            let over_ten = Price::query(&r)
                .filter(Price::amount().gt(d("10")))
                .order_by([Price::amount().asc()])
                .all()
                .await
                .unwrap()
                .iter()
                .map(|p| p.amount.to_string())
                .collect();
            tokio::task::yield_now().await;
            let all = Price::query(&r)
                .order_by([Price::amount().desc()])
                .all()
                .await
                .unwrap()
                .iter()
                .map(|p| p.amount)
                .collect();
            (over_ten, all)
        }

        let ((a_over, a_all), (b_over, b_all)) = tokio::join!(
            with_tenant(
                Some(a.clone()),
                work(r.clone(), &["10.01", "99.99", "-1", "5"])
            ),
            with_tenant(
                Some(b.clone()),
                work(r.clone(), &["11.5", "0.5", "1000", "10"])
            ),
        );
        assert_eq!(a_over, ["10.01", "99.99"]);
        assert_eq!(a_all, [d("99.99"), d("10.01"), d("5"), d("-1")]);
        assert_eq!(b_over, ["11.50", "1000.00"]);
        assert_eq!(b_all, [d("1000"), d("11.5"), d("10"), d("0.5")]);

        // Each schema holds its own rows; the shared schema none.
        let sum = |prices: Vec<tenantry::Instance<Price>>| -> Decimal {
            prices.iter().map(|p| p.amount).sum()
        };
        assert_eq!(
            sum(Price::query(&r).using(&a).all().await.unwrap()),
            d("114")
        );
        assert_eq!(
            sum(Price::query(&r).using(&b).all().await.unwrap()),
            d("1022")
        );
        assert_eq!(Price::query(&r).count().await.unwrap(), 0);
        // A value of one tenant is not found in the other.
        assert_eq!(
            Price::query(&r)
                .using(&b)
                .filter(Price::amount().eq(d("99.99")))
                .count()
                .await
                .unwrap(),
            0
        );
    }
);

backend_test!(
    decimal_keys_and_foreign_keys,
    |t: common::TestDb| async move {
        let r = &registry(&t).await;
        for (value, name) in [
            ("1.5", "one and a half"),
            ("-2", "minus two"),
            ("999.999", "max"),
        ] {
            Rate::query(r)
                .create(Rate {
                    value: d(value),
                    name: name.into(),
                })
                .await
                .unwrap();
        }
        // The key is found by value, whatever the scale asked with.
        assert_eq!(
            Rate::query(r).get_pk(d("1.50")).await.unwrap().name,
            "one and a half"
        );
        assert_eq!(
            Rate::query(r).get_pk(d("-2.000")).await.unwrap().name,
            "minus two"
        );
        // A second key of the same value is the same key.
        assert!(matches!(
            Rate::query(r)
                .create(Rate {
                    value: d("1.500"),
                    name: "again".into(),
                })
                .await,
            Err(Error::UniqueViolation { .. })
        ));
        // A key out of the key's range is refused before it is sent.
        assert!(matches!(
            Rate::query(r)
                .create(Rate {
                    value: d("1000"),
                    name: "too big".into(),
                })
                .await,
            Err(Error::ValueOutOfRange {
                column: "value",
                ..
            })
        ));

        let quote = Quote::query(r)
            .create(Quote {
                id: 0,
                rate: ForeignKey::new(d("1.5")),
            })
            .await
            .unwrap();
        let loaded = Quote::query(r)
            .select_related(Quote::rate())
            .get_pk(quote.id)
            .await
            .unwrap();
        assert_eq!(loaded.rate.key(), &d("1.5"));
        assert_eq!(loaded.rate.get().unwrap().name, "one and a half");
        assert_eq!(
            Quote::query(r)
                .filter(Quote::rate().gt(d("0")))
                .count()
                .await
                .unwrap(),
            1
        );
        // The foreign key column has the key's bounds.
        assert!(matches!(
            Quote::query(r)
                .create(Quote {
                    id: 0,
                    rate: ForeignKey::new(d("0.0001")),
                })
                .await,
            Err(Error::ValueOutOfRange {
                column: "rate_id",
                ..
            })
        ));
    }
);
