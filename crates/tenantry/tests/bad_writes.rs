//! Values that do not fit their columns, on every backend: text longer than its column is
//! `ValueOutOfRange` before any SQL (SQLite would have stored it whole), through create,
//! bulk_create, update, save and upsert, and nothing is written; an expression whose result
//! leaves the column's integer range is `OutOfRange` and writes nothing (on SQLite, whose
//! columns take any integer, the statement checks it). Two tenants' rows are checked
//! untouched.
mod common;

use tenantry::{create_schema, Error, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "bw_items")]
struct Item {
    id: i64,
    #[model(max_length = 8, unique)]
    code: String,
    stock: i32,
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(&[Item::META]), false, true)
        .await
        .unwrap();
    Item::query(registry)
        .using(name)
        .create(Item {
            id: 0,
            code: "first".into(),
            stock: i32::MAX - 1,
        })
        .await
        .unwrap();
}

fn item(code: &str) -> Item {
    Item {
        id: 0,
        code: code.into(),
        stock: 1,
    }
}

fn too_long<T: std::fmt::Debug>(result: tenantry::Result<T>) {
    assert!(
        matches!(
            result,
            Err(Error::ValueOutOfRange {
                model: "bw_items",
                column: "code",
                ..
            })
        ),
        "{result:?}"
    );
}

backend_test!(
    text_longer_than_its_column_is_refused_everywhere,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ba"), t.schema("bb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let items = || Item::query(&t.registry).using(&a);
        // Eight characters fit, however many bytes they take.
        items().create(item("éééééééé")).await.unwrap();
        too_long(items().create(item("ninechars")).await);
        too_long(items().bulk_create([item("ok"), item("ninechars")]).await);
        too_long(
            items()
                .update([Item::code().set("ninechars".to_owned())])
                .await,
        );
        too_long(
            items()
                .on_conflict(Item::code())
                .do_nothing()
                .create(item("ninechars"))
                .await,
        );
        let mut first = items().get(Item::code().eq("first")).await.unwrap();
        first.code = "ninechars".into();
        too_long(first.save().await);
        let codes = items()
            .order_by([Item::id().asc()])
            .values_list(Item::code())
            .await
            .unwrap();
        assert_eq!(codes, vec!["first".to_owned(), "éééééééé".to_owned()]);
        let in_b = Item::query(&t.registry)
            .using(&b)
            .values_list(Item::code())
            .await
            .unwrap();
        assert_eq!(in_b, vec!["first".to_owned()]);
    }
);

backend_test!(
    an_expression_out_of_the_integer_range_writes_nothing_wrong,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ba"), t.schema("bb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let items = || Item::query(&t.registry).using(&a);
        let overflow = items()
            .update([Item::stock().set_expr(Item::stock() + 5)])
            .await;
        let read = items().values_list(Item::stock()).await;
        // SQLite keeps 64-bit integers in any column: there the statement checks the
        // computed value itself.
        assert!(
            matches!(overflow, Err(Error::OutOfRange { .. })),
            "{overflow:?}"
        );
        assert_eq!(read.unwrap(), vec![i32::MAX - 1]);
        let in_b = Item::query(&t.registry)
            .using(&b)
            .values_list(Item::stock())
            .await
            .unwrap();
        assert_eq!(in_b, vec![i32::MAX - 1]);
    }
);
