//! Micro-benchmarks that need no database server: rendering a filtered query, and decoding
//! rows into a model (SQLite in-memory rows).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sqlx::Row as _;
use tenantry::{Database, ForeignKey, Model, Registry, Row};

#[derive(Model, Debug, Clone)]
#[model(table = "users")]
struct User {
    id: i64,
    #[model(max_length = 255)]
    name: String,
}

#[derive(Model, Debug, Clone)]
#[model(table = "products")]
struct Product {
    id: i64,
    #[model(max_length = 255)]
    name: String,
    user: Option<ForeignKey<User>>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A registry on a PostgreSQL URL that is never connected (`connect_lazy`).
fn lazy_registry(rt: &tokio::runtime::Runtime, url: &str) -> Registry {
    let db = rt
        .block_on(Database::connect_lazy(url))
        .expect("a lazy database");
    Registry::new(db).register::<User>().register::<Product>()
}

fn render(c: &mut Criterion) {
    let rt = runtime();
    let pg = lazy_registry(&rt, "postgres://postgres@127.0.0.1:1/none");
    let my = lazy_registry(&rt, "mysql://root@127.0.0.1:1/none");
    let mut group = c.benchmark_group("render");
    group.bench_function("filter_icontains_postgres", |b| {
        b.iter(|| {
            Product::query(&pg)
                .using(black_box("tenant_001"))
                .filter(Product::name().icontains(black_box("7")))
                .to_sql()
                .expect("sql")
        })
    });
    group.bench_function("get_pk_postgres", |b| {
        b.iter(|| {
            Product::query(&pg)
                .using(black_box("tenant_001"))
                .filter(Product::id().eq(black_box(42)))
                .limit(2)
                .to_sql()
                .expect("sql")
        })
    });
    group.bench_function("filter_icontains_mysql", |b| {
        b.iter(|| {
            Product::query(&my)
                .using(black_box("tenant_001"))
                .filter(Product::name().icontains(black_box("7")))
                .to_sql()
                .expect("sql")
        })
    });
    group.finish();
    rt.block_on(async {
        pg.disconnect().await;
        my.disconnect().await;
    });
}

fn decode(c: &mut Criterion) {
    let rt = runtime();
    let (rows, wrapped): (Vec<sqlx::sqlite::SqliteRow>, Vec<Row>) = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        sqlx::query("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, user_id INTEGER)")
            .execute(&pool)
            .await
            .expect("create");
        for i in 0..271 {
            sqlx::query("INSERT INTO products (name, user_id) VALUES (?, ?)")
                .bind(format!("product-{i}7"))
                .bind(Some(1i64))
                .execute(&pool)
                .await
                .expect("insert");
        }
        let select = "SELECT id, name, user_id FROM products ORDER BY id";
        let rows = sqlx::query(select).fetch_all(&pool).await.expect("rows");
        let again = sqlx::query(select).fetch_all(&pool).await.expect("rows");
        (rows, again.into_iter().map(Row::Sqlite).collect())
    });
    let mut group = c.benchmark_group("decode");
    group.bench_function("product_from_row", |b| {
        b.iter(|| Product::from_row(black_box(&wrapped[0])).expect("decode"))
    });
    group.bench_function("product_271_rows", |b| {
        b.iter(|| {
            black_box(&wrapped)
                .iter()
                .map(Product::from_row)
                .collect::<tenantry::Result<Vec<_>>>()
                .expect("decode")
        })
    });
    group.bench_function("by_hand_271_rows", |b| {
        b.iter(|| {
            black_box(&rows)
                .iter()
                .map(|r| {
                    Ok::<_, sqlx::Error>((
                        r.try_get::<i64, _>(0)?,
                        r.try_get::<String, _>(1)?,
                        r.try_get::<Option<i64>, _>(2)?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
                .expect("decode")
        })
    });
    group.finish();
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, render, decode);
}
criterion_main!(group::benches);
