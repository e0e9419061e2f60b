//! Aggregates (`count`, `count_distinct`, `sum`, `avg`, `min`, `max`) over a QuerySet's
//! rows, whole (`aggregate`) or per group (`group_by(..).aggregate(..)`).
//!
//! Results are typed and the same on every backend: a count is an `i64`; the sum of an
//! integer column an `i64` (PostgreSQL's `NUMERIC` and MySQL's `DECIMAL` sums are cast
//! back); the average of an integer or float column an `f64`; the sum and average of a
//! decimal column a [`Decimal`](crate::Decimal), exact (the average is the exact sum divided
//! by the count in Rust, to 28 significant digits). A sum, average, minimum or maximum over
//! no rows is `None`.
//!
//! SQLite has no exact decimal type (a decimal column holds the value's text, see
//! [`SqlType::Decimal`](crate::SqlType::Decimal)): there a decimal sum adds each value as an
//! integer count of its column's smallest unit (`round(value × 10^scale)`), which is exact
//! for columns of at most 15 digits; a sum over a wider column is refused with
//! [`Error::Unsupported`] rather than rounded. Text with more places than the scale (which
//! only other SQL writes: tenantry writes every value at its column's scale) is rounded to
//! the scale first. Minimum and maximum compare by the column's decimal collation, as
//! `order_by` does.
//!
//! An integer sum past `i64` is an error on every backend (MySQL's exact DECIMAL sum is
//! read and checked, never clipped); SQLite adds in row order and also fails when a running
//! total passes `i64` on the way, even if the final sum would fit.

use std::marker::PhantomData;

use rust_decimal::Decimal;
use sea_query::{Expr, ExprTrait, Func, SelectStatement};

use super::{projection::Columns, window::AGGREGATE_WINDOW, QuerySet};
use crate::{
    backend::Backend,
    error::{Error, Result},
    field::FieldType,
    model::{Column, Model},
    row::Row,
};

/// One aggregate over the rows of model `M`, whose result is an `Out`. Built from a column
/// handle: `Product::id().count()`, `Product::price().sum()`, `Product::name().min()`.
pub struct Aggregate<M, Out> {
    column: &'static str,
    /// Built on a column reached through a relation: refused when the query runs.
    through_relation: bool,
    kind: Kind,
    /// Precision and scale of a decimal sum or average's column, looked up once when the
    /// aggregate is built (the decoder reads the scale on every row).
    numeric: (u32, u32),
    decode: fn(&Row, &mut usize, u32) -> std::result::Result<Out, sqlx::Error>,
    _model: PhantomData<fn() -> M>,
}

impl<M, Out> Clone for Aggregate<M, Out> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, Out> Copy for Aggregate<M, Out> {}

impl<M, Out> std::fmt::Debug for Aggregate<M, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({})", self.kind, self.column)
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Count,
    CountDistinct,
    Min,
    Max,
    Sum(Number),
    Avg(Number),
}

/// How a column's sum and average are computed and decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum Number {
    Integer,
    Float,
    Decimal,
}

/// A column type with a sum and an average: `i32`, `i64`, `f64`, [`Decimal`] and their
/// `Option`s.
pub trait Summable: FieldType {
    /// The type of the sum: `i64` for integers, `f64`, `Decimal`.
    type Sum: Send + 'static;
    /// The type of the average: `f64` for integers and floats, `Decimal`.
    type Avg: Send + 'static;
    #[doc(hidden)]
    const NUMBER: Number;
    #[doc(hidden)]
    fn decode_sum(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<Self::Sum>>;
    #[doc(hidden)]
    fn decode_avg(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<Self::Avg>>;
}

type DecodeResult<T> = std::result::Result<T, sqlx::Error>;

/// A column type with a minimum and a maximum; `Base` is the type without its `Option`.
pub trait Ordered: FieldType {
    /// The column's type without `Option`.
    type Base: FieldType;
}

macro_rules! ordered {
    ($($ty:ty),*) => {$(
        impl Ordered for $ty {
            type Base = $ty;
        }
    )*};
}

ordered!(
    i16,
    f32,
    chrono::NaiveDateTime,
    chrono::NaiveTime,
    i32,
    i64,
    f64,
    String,
    Decimal,
    chrono::DateTime<chrono::Utc>,
    chrono::NaiveDate
);

impl<T: Ordered> Ordered for Option<T> {
    type Base = T::Base;
}

fn next(index: &mut usize) -> usize {
    let at = *index;
    *index += 1;
    at
}

fn integer_sum(row: &Row, index: &mut usize) -> DecodeResult<Option<i64>> {
    match row {
        // MySQL sums integers as DECIMAL, and its CAST to SIGNED would clip an overflow to
        // i64::MAX with only a warning: the exact sum is read and must fit.
        Row::MySql(_) => row
            .get::<Option<Decimal>>(next(index))?
            .map(|sum| {
                rust_decimal::prelude::ToPrimitive::to_i64(&sum)
                    .ok_or_else(|| sqlx::Error::Decode("the sum does not fit an i64".into()))
            })
            .transpose(),
        _ => row.get::<Option<i64>>(next(index)),
    }
}

fn float(row: &Row, index: &mut usize) -> DecodeResult<Option<f64>> {
    row.get::<Option<f64>>(next(index))
}

/// A decimal sum: PostgreSQL's and MySQL's exact sums; on SQLite the sum of the values in
/// units of `10^-scale`.
fn decimal_sum(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<Decimal>> {
    match row {
        Row::Sqlite(_) => Ok(row
            .get::<Option<i64>>(next(index))?
            .map(|units| Decimal::new(units, scale))),
        _ => row.get::<Option<Decimal>>(next(index)),
    }
}

/// A decimal average: the exact sum divided by the count (the sum's column, then the
/// count's).
fn decimal_avg(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<Decimal>> {
    let sum = decimal_sum(row, index, scale)?;
    let count = row.get::<i64>(next(index))?;
    Ok(match (sum, count) {
        (Some(sum), count) if count > 0 => sum.checked_div(Decimal::from(count)),
        _ => None,
    })
}

macro_rules! summable {
    ($ty:ty, $number:ident, $sum:ty, $avg:ty, $decode_sum:expr, $decode_avg:expr) => {
        impl Summable for $ty {
            type Sum = $sum;
            type Avg = $avg;
            const NUMBER: Number = Number::$number;
            fn decode_sum(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<$sum>> {
                let decode: fn(&Row, &mut usize, u32) -> DecodeResult<Option<$sum>> = $decode_sum;
                decode(row, index, scale)
            }
            fn decode_avg(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<$avg>> {
                let decode: fn(&Row, &mut usize, u32) -> DecodeResult<Option<$avg>> = $decode_avg;
                decode(row, index, scale)
            }
        }
    };
}

summable!(
    i32,
    Integer,
    i64,
    f64,
    |r, i, _| integer_sum(r, i),
    |r, i, _| float(r, i)
);
summable!(
    i64,
    Integer,
    i64,
    f64,
    |r, i, _| integer_sum(r, i),
    |r, i, _| float(r, i)
);
summable!(
    f64,
    Float,
    f64,
    f64,
    |r, i, _| float(r, i),
    |r, i, _| float(r, i)
);
summable!(Decimal, Decimal, Decimal, Decimal, decimal_sum, decimal_avg);

impl<T: Summable> Summable for Option<T> {
    type Sum = T::Sum;
    type Avg = T::Avg;
    const NUMBER: Number = T::NUMBER;
    fn decode_sum(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<T::Sum>> {
        T::decode_sum(row, index, scale)
    }
    fn decode_avg(row: &Row, index: &mut usize, scale: u32) -> DecodeResult<Option<T::Avg>> {
        T::decode_avg(row, index, scale)
    }
}

impl<M: Model, T: FieldType> Column<M, T> {
    fn aggregate<Out>(
        &self,
        kind: Kind,
        decode: fn(&Row, &mut usize, u32) -> DecodeResult<Out>,
    ) -> Aggregate<M, Out> {
        let decimal = matches!(
            kind,
            Kind::Sum(Number::Decimal) | Kind::Avg(Number::Decimal)
        );
        let numeric = if decimal {
            M::META
                .column(self.name())
                .and_then(|c| c.numeric())
                .unwrap_or((crate::decimal::MAX_PRECISION, 0))
        } else {
            (0, 0)
        };
        Aggregate {
            column: self.name(),
            through_relation: self.through_relation(),
            kind,
            numeric,
            decode,
            _model: PhantomData,
        }
    }

    /// The number of rows whose column is not NULL (of every row, on a primary key).
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_aggregate(|r| User::query(r).filter(User::name().startswith("a")), (User::id().count(), User::email().count_distinct()));
    /// assert_eq!(sql.postgres, r#"SELECT COUNT("id"), COUNT(DISTINCT "email") FROM "public"."users" WHERE "name" LIKE $1 ESCAPE E'\\'"#);
    /// assert_eq!(sql.mysql, r#"SELECT COUNT(`id`), COUNT(DISTINCT `email`) FROM `app`.`users` WHERE `name` LIKE ? ESCAPE '\\'"#);
    /// assert_eq!(sql.sqlite, r#"SELECT COUNT("id"), COUNT(DISTINCT "email") FROM "users" WHERE "name" LIKE ? ESCAPE '\'"#);
    /// ```
    pub fn count(&self) -> Aggregate<M, i64> {
        self.aggregate(Kind::Count, |row, index, _| row.get(next(index)))
    }

    /// The number of distinct values of the column, NULL not counted.
    pub fn count_distinct(&self) -> Aggregate<M, i64> {
        self.aggregate(Kind::CountDistinct, |row, index, _| row.get(next(index)))
    }
}

impl<M: Model, T: Ordered> Column<M, T> {
    /// The smallest value, `None` over no rows (or only NULLs).
    pub fn min(&self) -> Aggregate<M, Option<T::Base>> {
        self.aggregate(Kind::Min, |row, index, _| row.get(next(index)))
    }

    /// The largest value, `None` over no rows (or only NULLs).
    pub fn max(&self) -> Aggregate<M, Option<T::Base>> {
        self.aggregate(Kind::Max, |row, index, _| row.get(next(index)))
    }
}

impl<M: Model, T: Summable> Column<M, T> {
    /// The sum of the values, `None` over no rows (or only NULLs).
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_aggregate(|r| Product::query(r), Product::price().sum());
    /// assert_eq!(sql.postgres, r#"SELECT SUM("price") FROM "public"."products""#);
    /// assert_eq!(sql.mysql, r#"SELECT SUM(`price`) FROM `app`.`products`"#);
    /// assert_eq!(sql.sqlite, r#"SELECT SUM(CAST(ROUND(CAST("price" AS REAL) * ?) AS INTEGER)) FROM "products""#);
    /// let sql = render_aggregate(|r| Product::query(r), Product::stock().sum());
    /// assert_eq!(sql.postgres, r#"SELECT CAST(SUM("stock") AS BIGINT) FROM "public"."products""#);
    /// assert_eq!(sql.mysql, r#"SELECT SUM(`stock`) FROM `app`.`products`"#);
    /// ```
    pub fn sum(&self) -> Aggregate<M, Option<T::Sum>> {
        self.aggregate(Kind::Sum(T::NUMBER), T::decode_sum)
    }

    /// The average of the values, `None` over no rows (or only NULLs).
    pub fn avg(&self) -> Aggregate<M, Option<T::Avg>> {
        self.aggregate(Kind::Avg(T::NUMBER), T::decode_avg)
    }
}

impl<M: Model, Out> Aggregate<M, Out> {
    /// The scale of the column (decimal sums on SQLite), checking that SQLite can sum it
    /// exactly.
    fn scale(&self, backend: Backend) -> Result<u32> {
        let (precision, scale) = self.numeric;
        if backend == Backend::Sqlite && precision > SQLITE_EXACT_DIGITS {
            return Err(Error::Unsupported {
                backend: backend.name(),
                what: "an exact sum or average of a decimal column of more than 15 digits",
            });
        }
        Ok(scale)
    }

    /// Adds this aggregate's expressions to `select`.
    fn select(&self, backend: Backend, select: &mut SelectStatement) -> Result<()> {
        if self.through_relation {
            return Err(super::write::through_relation::<M>(self.column));
        }
        let column = Expr::col(self.column);
        let scale = self.scale(backend)?;
        match self.kind {
            Kind::Count => select.expr(column.count()),
            Kind::CountDistinct => select.expr(column.count_distinct()),
            Kind::Min => select.expr(column.min()),
            Kind::Max => select.expr(column.max()),
            Kind::Sum(number) => select.expr(sum(backend, number, column, scale)),
            Kind::Avg(Number::Decimal) => select
                .expr(sum(backend, Number::Decimal, column.clone(), scale))
                .expr(column.count()),
            Kind::Avg(_) => select.expr(as_float(backend, Func::avg(column).into())),
        };
        Ok(())
    }
}

/// The widest decimal column whose every value SQLite's `REAL` holds to the unit.
const SQLITE_EXACT_DIGITS: u32 = 15;

fn sum(backend: Backend, number: Number, column: Expr, scale: u32) -> Expr {
    match (backend, number) {
        (Backend::Sqlite, Number::Decimal) => {
            let units = Func::round(column.cast_as("REAL").mul(10i64.pow(scale)));
            Func::sum(Expr::from(units).cast_as("INTEGER")).into()
        }
        // PostgreSQL sums a bigint as NUMERIC; its CAST fails on an overflow.
        (Backend::Postgres, Number::Integer) => Expr::from(Func::sum(column)).cast_as("BIGINT"),
        _ => Func::sum(column).into(),
    }
}

/// PostgreSQL and MySQL average integers as NUMERIC / DECIMAL.
fn as_float(backend: Backend, expr: Expr) -> Expr {
    match backend {
        Backend::Postgres => expr.cast_as("DOUBLE PRECISION"),
        Backend::MySql => expr.cast_as("DOUBLE"),
        Backend::Sqlite => expr,
    }
}

/// One aggregate, or a tuple of them (up to eight): what
/// [`QuerySet::aggregate`] computes and returns.
pub trait Aggregates<M: Model> {
    /// The results, in the same shape.
    type Output;
    #[doc(hidden)]
    fn select(&self, backend: Backend, select: &mut SelectStatement) -> Result<()>;
    #[doc(hidden)]
    fn decode(&self, row: &Row, index: &mut usize) -> Result<Self::Output>;
}

impl<M: Model, Out> Aggregates<M> for Aggregate<M, Out> {
    type Output = Out;
    fn select(&self, backend: Backend, select: &mut SelectStatement) -> Result<()> {
        Aggregate::select(self, backend, select)
    }
    fn decode(&self, row: &Row, index: &mut usize) -> Result<Out> {
        (self.decode)(row, index, self.numeric.1).map_err(|source| Error::Decode {
            model: M::META.table,
            column: self.column,
            source,
        })
    }
}

macro_rules! aggregates_tuple {
    ($($name:ident),+) => {
        impl<M: Model, $($name: Aggregates<M>),+> Aggregates<M> for ($($name,)+) {
            type Output = ($($name::Output,)+);
            #[allow(non_snake_case)]
            fn select(&self, backend: Backend, select: &mut SelectStatement) -> Result<()> {
                let ($($name,)+) = self;
                $($name.select(backend, select)?;)+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn decode(&self, row: &Row, index: &mut usize) -> Result<Self::Output> {
                let ($($name,)+) = self;
                Ok(($($name.decode(row, index)?,)+))
            }
        }
    };
}

aggregates_tuple!(A);
aggregates_tuple!(A, B);
aggregates_tuple!(A, B, C);
aggregates_tuple!(A, B, C, D);
aggregates_tuple!(A, B, C, D, E);
aggregates_tuple!(A, B, C, D, E, F);
aggregates_tuple!(A, B, C, D, E, F, G);
aggregates_tuple!(A, B, C, D, E, F, G, H);

impl<M: Model> QuerySet<M> {
    /// Computes `aggregates` (one, or a tuple) over the matching rows, in one statement.
    /// Ordering does not apply; a limit or an offset is [`Error::InvalidArgument`], since
    /// the aggregate would cover every matching row, not the window.
    ///
    /// ```no_run
    /// # use tenantry::__doc::*;
    /// # async fn demo(registry: tenantry::Registry) -> tenantry::Result<()> {
    /// let (count, total) = Product::query(&registry)
    ///     .aggregate((Product::id().count(), Product::price().sum()))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn aggregate<A: Aggregates<M>>(mut self, aggregates: A) -> Result<A::Output> {
        self.refuse_lock("an aggregate returns no rows to lock; lock them with all() or get()")?;
        let target = self.target()?;
        let select = self.aggregate_select(&target, &aggregates)?;
        let rows = target.fetch_all(&select).await?;
        let row = rows.first().ok_or(Error::NotFound {
            model: M::META.table,
        })?;
        aggregates.decode(row, &mut 0)
    }

    fn aggregate_select<A: Aggregates<M>>(
        &mut self,
        target: &crate::target::Target,
        aggregates: &A,
    ) -> Result<SelectStatement> {
        self.refuse_window(AGGREGATE_WINDOW)?;
        let mut select = sea_query::Query::select();
        aggregates.select(target.backend(), &mut select)?;
        select.from(target.table(M::META)?);
        self.add_select_filter(target, &mut select)?;
        Ok(select)
    }

    /// The SELECT [`aggregate`](Self::aggregate) would run.
    #[doc(hidden)]
    pub fn aggregate_sql<A: Aggregates<M>>(mut self, aggregates: A) -> Result<String> {
        let target = self.target()?;
        let select = self.aggregate_select(&target, &aggregates)?;
        Ok(crate::target::render(target.backend(), &select).0)
    }

    /// Groups the matching rows by `keys` (a column handle or a tuple of them), for
    /// [`Grouped::aggregate`].
    pub fn group_by<K: Columns<M>>(self, keys: K) -> Grouped<M, K> {
        Grouped { query: self, keys }
    }
}

/// A QuerySet grouped by some of its columns: [`QuerySet::group_by`].
#[must_use = "a grouping does nothing until .aggregate(..) is awaited"]
pub struct Grouped<M: Model, K> {
    query: QuerySet<M>,
    keys: K,
}

impl<M: Model, K: Columns<M>> Grouped<M, K> {
    /// One `(key, results)` pair per group, ordered by the key (a NULL key first, on every
    /// backend). The QuerySet's own ordering does not apply; a limit or an offset is
    /// [`Error::InvalidArgument`] (the groups would cover every matching row).
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_grouped(|r| Product::query(r).group_by(Product::user()), (Product::id().count(), Product::stock().sum()));
    /// assert_eq!(sql.postgres, r#"SELECT "user_id", COUNT("id"), CAST(SUM("stock") AS BIGINT) FROM "public"."products" GROUP BY "user_id" ORDER BY "user_id" ASC NULLS FIRST"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "user_id", COUNT("id"), SUM("stock") FROM "products" GROUP BY "user_id" ORDER BY "user_id" ASC NULLS FIRST"#);
    /// ```
    pub async fn aggregate<A: Aggregates<M>>(
        mut self,
        aggregates: A,
    ) -> Result<Vec<(K::Output, A::Output)>> {
        self.query
            .refuse_lock("an aggregate returns no rows to lock; lock them with all() or get()")?;
        let target = self.query.target()?;
        let select = self.select(&target, &aggregates)?;
        let rows = target.fetch_all(&select).await?;
        rows.iter()
            .map(|row| {
                let mut index = 0;
                let key = self.keys.decode(row, &mut index)?;
                Ok((key, aggregates.decode(row, &mut index)?))
            })
            .collect()
    }

    fn select<A: Aggregates<M>>(
        &mut self,
        target: &crate::target::Target,
        aggregates: &A,
    ) -> Result<SelectStatement> {
        self.query.refuse_window(AGGREGATE_WINDOW)?;
        super::lookup::refuse_decimal_arithmetic(target, self.keys.decimal_arithmetic(), &[])?;
        if self.keys.constants() > 0 {
            // Bound once in the SELECT and again in GROUP BY, the two are different
            // expressions to PostgreSQL (and to MySQL's ONLY_FULL_GROUP_BY).
            return Err(crate::Error::InvalidArgument {
                argument: "group_by",
                reason:
                    "a computed key with a constant; group by columns and their arithmetic only",
            });
        }
        let mut select = sea_query::Query::select();
        self.keys.select(&mut select, target.backend())?;
        aggregates.select(target.backend(), &mut select)?;
        select.from(target.table(M::META)?);
        self.query.add_select_filter(target, &mut select)?;
        self.keys.group_and_order(&mut select, target.backend());
        Ok(select)
    }

    /// The SELECT [`aggregate`](Self::aggregate) would run.
    #[doc(hidden)]
    pub fn to_sql<A: Aggregates<M>>(mut self, aggregates: A) -> Result<String> {
        let target = self.query.target()?;
        let select = self.select(&target, &aggregates)?;
        Ok(crate::target::render(target.backend(), &select).0)
    }
}
