//! Helpers for the crate's doctests: a sample model and SQL rendered on every backend
//! without a server. Not part of the API.
#![allow(missing_docs)]

use crate::{Database, Model, QuerySet, Registry};

/// The doctests' sample model.
#[derive(crate::Model, Debug, Clone)]
pub struct User {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
    #[model(max_length = 255)]
    pub email: String,
}

/// The doctests' sample model with a foreign key, a decimal and an integer.
#[derive(crate::Model, Debug, Clone)]
pub struct Product {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
    pub user: Option<crate::ForeignKey<User>>,
    #[model(max_digits = 12, decimal_places = 2)]
    pub price: crate::Decimal,
    pub stock: i32,
}

/// The doctests' sample model with a unique column.
#[derive(crate::Model, Debug, Clone)]
pub struct Counter {
    pub id: i64,
    #[model(max_length = 40, unique)]
    pub key: String,
    pub hits: i64,
}

/// The doctests' sample model with a composite unique key and a check.
#[derive(crate::Model, Debug, Clone)]
#[model(
    table = "seats",
    unique(event, number),
    check(name = "seats_price_ok", condition = Seat::price().gte(0))
)]
pub struct Seat {
    pub id: i64,
    #[model(max_length = 40)]
    pub event: String,
    pub number: i32,
    pub price: i64,
}

/// One statement as each backend's query builder renders it.
#[derive(Debug)]
pub struct Rendered {
    pub postgres: String,
    pub mysql: String,
    pub sqlite: String,
}

fn on_each_backend(render: impl Fn(&Registry) -> String) -> Rendered {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the doctest");
    runtime.block_on(async {
        Rendered {
            postgres: render(&registry("postgres://postgres@localhost/app").await),
            mysql: render(&registry("mysql://root@localhost/app").await),
            sqlite: render(&registry("sqlite::memory:").await),
        }
    })
}

async fn registry(url: &'static str) -> Registry {
    let db = Database::connect_lazy(url).await.expect("a lazy database");
    Registry::new(db)
        .register::<User>()
        .register::<Product>()
        .register::<Counter>()
}

/// The SELECT `build` makes, on each backend.
pub fn render_select<M: Model>(build: impl Fn(&Registry) -> QuerySet<M>) -> Rendered {
    on_each_backend(|registry| build(registry).to_sql().expect("a renderable query"))
}

/// The SELECT `aggregate(aggregates)` sends, on each backend.
pub fn render_aggregate<M: Model, A: crate::Aggregates<M> + Clone>(
    build: impl Fn(&Registry) -> QuerySet<M>,
    aggregates: A,
) -> Rendered {
    on_each_backend(|registry| {
        build(registry)
            .aggregate_sql(aggregates.clone())
            .expect("a renderable aggregate")
    })
}

/// The SELECT a grouping's `aggregate(aggregates)` sends, on each backend.
pub fn render_grouped<M: Model, K: crate::Columns<M>, A: crate::Aggregates<M> + Clone>(
    build: impl Fn(&Registry) -> crate::Grouped<M, K>,
    aggregates: A,
) -> Rendered {
    on_each_backend(|registry| {
        build(registry)
            .to_sql(aggregates.clone())
            .expect("a renderable grouping")
    })
}

/// The SELECT `values_list(columns)` sends, on each backend.
pub fn render_values<M: Model, C: crate::Columns<M> + Clone>(
    build: impl Fn(&Registry) -> QuerySet<M>,
    columns: C,
) -> Rendered {
    on_each_backend(|registry| {
        build(registry)
            .values_sql(columns.clone())
            .expect("a renderable projection")
    })
}

/// The SELECT a `prefetch_related(column)` sends for parents with keys `keys`.
pub fn render_prefetch<M: Model, C: Model>(
    build: impl Fn(&Registry) -> QuerySet<M>,
    column: crate::Column<C, M::PrimaryKey>,
    keys: &[M::PrimaryKey],
) -> Rendered {
    on_each_backend(|registry| {
        build(registry)
            .prefetch_sql(column, keys)
            .expect("a renderable prefetch")
    })
}

/// The SQL a raw statement sends, on each backend.
pub fn render_raw(template: &'static str) -> Rendered {
    on_each_backend(|registry| {
        registry
            .raw(template)
            .bind(0)
            .to_sql()
            .expect("a renderable raw statement")
    })
}

/// The INSERT that `create(model)` sends, on each backend.
pub fn render_insert<M: Model + Clone>(model: M) -> Rendered {
    on_each_backend(|registry| {
        QuerySet::<M>::new(crate::QuerySource::query_source(registry))
            .insert_sql(&model)
            .expect("a renderable insert")
    })
}

/// The UPDATE `build(..).update(assignments)` sends, on each backend.
pub fn render_update<M: Model, const N: usize>(
    build: impl Fn(&Registry) -> QuerySet<M>,
    assignments: [crate::Assignment<M>; N],
) -> Rendered {
    on_each_backend(|registry| {
        build(registry)
            .update_sql(assignments.clone())
            .expect("a renderable update")
    })
}

/// The DDL `create_all` sends for `meta` in the shared schema, one statement a line.
pub fn render_create(meta: &'static crate::ModelMeta) -> Rendered {
    on_each_backend(|registry| {
        crate::ddl::create_statements(registry.database(), None, &[meta])
            .expect("renderable DDL")
            .join("\n")
    })
}

/// The INSERT `build(..).create(model)` sends first, on each backend.
pub fn render_upsert<M: Model>(
    build: impl Fn(&Registry) -> crate::Upsert<M>,
    model: M,
) -> Rendered {
    on_each_backend(|registry| {
        build(registry)
            .insert_sql(std::slice::from_ref(&model))
            .expect("a renderable upsert")
    })
}
