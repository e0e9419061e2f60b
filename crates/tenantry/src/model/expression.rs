//! Typed expressions over a model's columns (Django's `F`): column arithmetic in an UPDATE
//! (`stock = stock - 1`), filters comparing two columns, computed projections.

use std::marker::PhantomData;

use sea_query::{Expr, ExprTrait};

use super::{column::meta, filter::Node, Column, Filter, Model};
use crate::{
    error::Result,
    field::{FieldType, Fractional, Numeric, SqlType},
};

/// A value of type `T` computed from the columns of one row of `M`: a column
/// (`Expression::from(Product::stock())`), a constant, or arithmetic over them. `+`, `-` and
/// `*` apply to numeric columns (`i32`, `i64`, `f64`, [`Decimal`](crate::Decimal) and their
/// `Option`s), `/` to `f64` only (integer and decimal division round differently on each
/// backend); both sides have the column's type, so `Product::stock() - 1` is an
/// `Expression<Product, i32>` and `Product::stock() - Product::price()` does not compile.
///
/// Used by [`Column::set_expr`] (an UPDATE computed by the database, race-free: no read
/// first), by the comparisons below (a filter on two columns) and by
/// [`QuerySet::values_list`](crate::QuerySet::values_list) (a computed column).
///
/// Only the model's own columns: a column reached through a relation
/// ([`Column::to`]) is [`Error::InvalidRelation`](crate::Error::InvalidRelation) when the
/// statement is built. A NULL operand makes the result NULL, as in SQL. On SQLite, where a
/// decimal is stored as text, arithmetic on a decimal would be floating point; it is
/// [`Error::Unsupported`](crate::Error::Unsupported) there (comparing decimal columns works).
///
/// ```
/// # use tenantry::__doc::*;
/// let sql = render_update(|r| Product::query(r).filter(Product::id().eq(7)), [Product::stock().set_expr(Product::stock() - 1)]);
/// assert_eq!(sql.postgres, r#"UPDATE "public"."products" SET "stock" = "stock" - $1 WHERE "id" = $2"#);
/// assert_eq!(sql.mysql, r#"UPDATE `app`.`products` SET `stock` = `stock` - ? WHERE `id` = ?"#);
/// let sql = render_select(|r| Product::query(r).filter(Product::stock().expr().lt(Product::stock() * 2 - 5)));
/// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "user_id", "price", "stock" FROM "products" WHERE "stock" < ("stock" * ?) - ?"#);
/// ```
pub struct Expression<M, T> {
    pub(crate) term: Term,
    _types: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Expression<M, T> {
    fn clone(&self) -> Self {
        Expression {
            term: self.term.clone(),
            _types: PhantomData,
        }
    }
}

impl<M, T> std::fmt::Debug for Expression<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.term.fmt(f)
    }
}

/// An expression's tree, rendered when the statement is built (its columns may need the
/// table's name as a qualifier, as in PostgreSQL's `ON CONFLICT DO UPDATE`).
#[derive(Clone, Debug)]
pub(crate) enum Term {
    Column {
        name: &'static str,
        /// Reached through a relation: refused when rendered.
        through_relation: bool,
    },
    Value(sea_query::Value),
    Binary(Box<Term>, Arithmetic, Box<Term>),
    /// The value the row an upsert proposed holds in column `name`.
    Proposed {
        name: &'static str,
        through_relation: bool,
    },
}

/// Where a term is rendered: the qualifier of its columns, whether a zero divisor must fail
/// the statement (SQLite, whose division by zero is NULL, as PostgreSQL and MySQL's strict
/// mode do), and how the proposed row of an upsert is named there.
#[derive(Clone, Copy)]
pub(crate) struct Scope {
    pub(crate) table: Option<&'static str>,
    pub(crate) checked_division: bool,
    pub(crate) proposed: Proposed,
}

/// How a term names an upsert's proposed row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proposed {
    /// Not in an upsert: a proposed value is refused.
    Refused,
    /// PostgreSQL and SQLite: `"excluded"."column"`.
    Excluded,
    /// MySQL: `VALUES(column)`.
    Values,
}

impl Scope {
    /// A scope outside any upsert; `checked_division` on a backend whose division by zero
    /// is NULL (SQLite).
    pub(crate) fn plain(checked_division: bool) -> Scope {
        Scope {
            table: None,
            checked_division,
            proposed: Proposed::Refused,
        }
    }
}

/// The arithmetic operators.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

impl Term {
    /// The expression in `scope`, its constants passed through `bind` (a decimal checked
    /// against the column it is written to).
    pub(crate) fn render(
        &self,
        scope: Scope,
        bind: &dyn Fn(sea_query::Value) -> Result<sea_query::Value>,
    ) -> Result<Expr> {
        Ok(match self {
            Term::Column {
                name,
                through_relation,
            } => {
                refuse_relation(name, *through_relation)?;
                match scope.table {
                    Some(table) => Expr::col((table, *name)),
                    None => Expr::col(*name),
                }
            }
            Term::Proposed {
                name,
                through_relation,
            } => {
                refuse_relation(name, *through_relation)?;
                match scope.proposed {
                    Proposed::Excluded => Expr::col(("excluded", *name)),
                    Proposed::Values => {
                        sea_query::Func::cust("VALUES").arg(Expr::col(*name)).into()
                    }
                    Proposed::Refused => {
                        return Err(crate::Error::InvalidArgument {
                            argument: "excluded",
                            reason: "the proposed row exists only in an upsert's do_update_set",
                        })
                    }
                }
            }
            Term::Value(value) => Expr::val(bind(value.clone())?),
            Term::Binary(left, op, right) => {
                let left = left.render(scope, bind)?;
                let right = right.render(scope, bind)?;
                match op {
                    Arithmetic::Add => left.add(right),
                    Arithmetic::Sub => left.sub(right),
                    Arithmetic::Mul => left.mul(right),
                    Arithmetic::Div if scope.checked_division => left.div(nonzero(right)),
                    Arithmetic::Div => left.div(right),
                }
            }
        })
    }

    /// The parameters the term binds.
    pub(crate) fn constants(&self) -> usize {
        match self {
            Term::Column { .. } | Term::Proposed { .. } => 0,
            Term::Value(_) => 1,
            Term::Binary(left, _, right) => left.constants() + right.constants(),
        }
    }

    /// Whether the term reads column `name`.
    pub(crate) fn reads(&self, name: &str) -> bool {
        match self {
            Term::Column { name: column, .. } => *column == name,
            Term::Proposed { .. } => false,
            Term::Value(_) => false,
            Term::Binary(left, _, right) => left.reads(name) || right.reads(name),
        }
    }

    /// Whether this term computes (rather than naming a column or a constant).
    pub(crate) fn is_arithmetic(&self) -> bool {
        matches!(self, Term::Binary(..))
    }
}

impl<M: Model, T: FieldType> Expression<M, T> {
    fn new(term: Term) -> Self {
        Expression {
            term,
            _types: PhantomData,
        }
    }

    fn compare(self, other: impl Into<Expression<M, T>>, op: Comparison) -> Filter {
        Filter(Node::Compare {
            model: meta::<M>,
            left: self.term,
            op,
            right: other.into().term,
            decimal: T::SQL_TYPE == SqlType::Decimal,
        })
    }

    /// `self = other`.
    pub fn eq(self, other: impl Into<Expression<M, T>>) -> Filter {
        self.compare(other, Comparison::Eq)
    }

    /// `self <> other`.
    pub fn ne(self, other: impl Into<Expression<M, T>>) -> Filter {
        self.compare(other, Comparison::Ne)
    }

    /// `self > other`.
    pub fn gt(self, other: impl Into<Expression<M, T>>) -> Filter {
        self.compare(other, Comparison::Gt)
    }

    /// `self >= other`.
    pub fn gte(self, other: impl Into<Expression<M, T>>) -> Filter {
        self.compare(other, Comparison::Gte)
    }

    /// `self < other`.
    pub fn lt(self, other: impl Into<Expression<M, T>>) -> Filter {
        self.compare(other, Comparison::Lt)
    }

    /// `self <= other`.
    pub fn lte(self, other: impl Into<Expression<M, T>>) -> Filter {
        self.compare(other, Comparison::Lte)
    }
}

/// A column reached through a relation names another table's column.
fn refuse_relation(name: &'static str, through_relation: bool) -> Result<()> {
    if through_relation {
        return Err(crate::Error::InvalidRelation {
            model: "",
            column: name,
            reason: "a column reached through a relation cannot be used in an expression",
        });
    }
    Ok(())
}

/// `divisor`, or where it is zero a failure of the statement (SQLite's "integer overflow"
/// from `abs` of the least integer, reported as [`Error::OutOfRange`](crate::Error::OutOfRange)).
fn nonzero(divisor: Expr) -> Expr {
    sea_query::CaseStatement::new()
        .case(
            divisor.clone().eq(0),
            sea_query::Func::abs(Expr::val(i64::MIN)),
        )
        .finally(divisor)
        .into()
}

/// A comparison operator: of two expressions in a filter, or of a column and a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Comparison {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Comparison {
    pub(crate) fn apply(self, left: Expr, right: Expr) -> Expr {
        match self {
            Comparison::Eq => left.eq(right),
            Comparison::Ne => left.ne(right),
            Comparison::Gt => left.gt(right),
            Comparison::Gte => left.gte(right),
            Comparison::Lt => left.lt(right),
            Comparison::Lte => left.lte(right),
        }
    }
}

impl<M: Model, T: FieldType> Column<M, T> {
    /// This column as an [`Expression`], to compare with another column
    /// (`Product::stock().expr().lt(Product::reserved())`).
    pub fn expr(&self) -> Expression<M, T> {
        Expression::from(*self)
    }

    /// The value the row an upsert proposed holds in this column (PostgreSQL's and SQLite's
    /// `excluded`, MySQL's `VALUES()`), for [`do_update_set`](crate::Conflict::do_update_set):
    /// `Counter::hits().set_expr(Counter::hits() + Counter::hits().excluded())` adds the
    /// proposed hits to the stored ones. Anywhere else it is
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn excluded(&self) -> Expression<M, T> {
        Expression::new(Term::Proposed {
            name: self.name(),
            through_relation: self.through_relation(),
        })
    }
}

impl<M: Model, T: FieldType> From<Column<M, T>> for Expression<M, T> {
    fn from(column: Column<M, T>) -> Self {
        Expression::new(Term::Column {
            name: column.name(),
            through_relation: column.through_relation(),
        })
    }
}

/// Constants become expressions of their own type only (an `i32` for an `i32` column), so
/// `Product::stock() - 1` infers the literal's type from the column.
macro_rules! constant {
    ($($ty:ty),*) => {$(
        impl<M: Model> From<$ty> for Expression<M, $ty> {
            fn from(value: $ty) -> Self {
                Expression::new(Term::Value(value.to_value()))
            }
        }
        impl<M: Model> From<$ty> for Expression<M, Option<$ty>> {
            fn from(value: $ty) -> Self {
                Expression::new(Term::Value(value.to_value()))
            }
        }
    )*};
}

constant!(
    i16,
    f32,
    chrono::NaiveDateTime,
    chrono::NaiveTime,
    i32,
    i64,
    f64,
    bool,
    String,
    crate::Decimal,
    chrono::DateTime<chrono::Utc>,
    chrono::NaiveDate,
    uuid::Uuid
);

impl<M: Model> From<&str> for Expression<M, String> {
    fn from(value: &str) -> Self {
        Expression::new(Term::Value(value.to_owned().to_value()))
    }
}

macro_rules! arithmetic {
    ($trait:ident, $method:ident, $bound:ident, $op:ident) => {
        impl<M: Model, T: $bound, R: Into<Expression<M, T>>> std::ops::$trait<R>
            for Expression<M, T>
        {
            type Output = Expression<M, T>;
            fn $method(self, right: R) -> Expression<M, T> {
                Expression::new(Term::Binary(
                    Box::new(self.term),
                    Arithmetic::$op,
                    Box::new(right.into().term),
                ))
            }
        }

        impl<M: Model, T: $bound, R: Into<Expression<M, T>>> std::ops::$trait<R> for Column<M, T> {
            type Output = Expression<M, T>;
            fn $method(self, right: R) -> Expression<M, T> {
                std::ops::$trait::$method(Expression::from(self), right)
            }
        }
    };
}

arithmetic!(Add, add, Numeric, Add);
arithmetic!(Sub, sub, Numeric, Sub);
arithmetic!(Mul, mul, Numeric, Mul);
arithmetic!(Div, div, Fractional, Div);
