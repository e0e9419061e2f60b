//! Typed column handles and their lookups.

use std::marker::PhantomData;

use sea_query::{Expr, ExprTrait, Func, LikeExpr, Order};

use super::{Filter, Model};
use crate::field::FieldType;

/// A typed handle on a column of model `M` whose values are `T`.
///
/// The derive gives every model one function per field returning its handle
/// (`User::email()`); a foreign key's handle compares with the target's primary key type.
/// Lookups build [`Filter`]s, `asc`/`desc` build orderings and `set` builds assignments.
pub struct Column<M, T> {
    name: &'static str,
    _types: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Column<M, T> {}

impl<M, T> std::fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Column({})", self.name)
    }
}

impl<M: Model, T: FieldType> Column<M, T> {
    /// The handle on column `name`; the derive calls this.
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        Column {
            name,
            _types: PhantomData,
        }
    }

    /// The column name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    fn expr(&self) -> Expr {
        Expr::col(self.name)
    }

    fn compare(&self, value: impl Into<T>, op: fn(Expr, sea_query::Value) -> Expr) -> Filter {
        Filter::new(op(self.expr(), value.into().to_value()))
    }

    /// `column = value`.
    pub fn eq(&self, value: impl Into<T>) -> Filter {
        self.compare(value, |c, v| c.eq(v))
    }

    /// `column <> value`.
    pub fn ne(&self, value: impl Into<T>) -> Filter {
        self.compare(value, |c, v| c.ne(v))
    }

    /// `column > value`.
    pub fn gt(&self, value: impl Into<T>) -> Filter {
        self.compare(value, |c, v| c.gt(v))
    }

    /// `column >= value`.
    pub fn gte(&self, value: impl Into<T>) -> Filter {
        self.compare(value, |c, v| c.gte(v))
    }

    /// `column < value`.
    pub fn lt(&self, value: impl Into<T>) -> Filter {
        self.compare(value, |c, v| c.lt(v))
    }

    /// `column <= value`.
    pub fn lte(&self, value: impl Into<T>) -> Filter {
        self.compare(value, |c, v| c.lte(v))
    }

    /// `column IN (values…)`; an empty list matches nothing.
    pub fn is_in<V: Into<T>>(&self, values: impl IntoIterator<Item = V>) -> Filter {
        let values: Vec<sea_query::Value> =
            values.into_iter().map(|v| v.into().to_value()).collect();
        Filter::new(self.expr().is_in(values))
    }

    /// `column IS NULL` when `null` is true, `IS NOT NULL` otherwise.
    pub fn isnull(&self, null: bool) -> Filter {
        Filter::new(if null {
            self.expr().is_null()
        } else {
            self.expr().is_not_null()
        })
    }

    /// Ascending order on this column.
    pub fn asc(&self) -> Ordering {
        Ordering {
            column: self.name,
            order: Order::Asc,
        }
    }

    /// Descending order on this column.
    pub fn desc(&self) -> Ordering {
        Ordering {
            column: self.name,
            order: Order::Desc,
        }
    }

    /// `column = value` in an UPDATE.
    pub fn set(&self, value: impl Into<T>) -> Assignment<M> {
        Assignment::new(self.name, value.into().to_value())
    }

    /// `column = NULL` in an UPDATE (for nullable columns).
    pub fn set_null(&self) -> Assignment<M> {
        Assignment::new(self.name, T::null_value())
    }
}

/// Text lookups. `contains`, `startswith` and `endswith` are case-sensitive on every backend
/// (MySQL tables use the `utf8mb4_bin` collation, SQLite connections set
/// `case_sensitive_like`). The `i` variants compare the database's `LOWER(column)` with the
/// value lowered by Rust's Unicode `to_lowercase`. ASCII text gives the same answers on every
/// backend. Non-ASCII letters fold on PostgreSQL and MySQL; SQLite's `lower()` folds ASCII
/// only, so there a non-ASCII letter in the column matches only a lowercase one in the value
/// (`"É"` is found by neither `icontains("É")` nor `icontains("é")`, `"é"` by both).
/// `%`, `_` and `\` in the value match themselves.
impl<M: Model> Column<M, String> {
    fn like(&self, value: &str, prefix: bool, suffix: bool, fold: bool) -> Filter {
        let mut pattern = String::with_capacity(value.len() + 2);
        if prefix {
            pattern.push('%');
        }
        for ch in value.chars() {
            if matches!(ch, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        if suffix {
            pattern.push('%');
        }
        let like = LikeExpr::new(pattern).escape('\\');
        Filter::new(if fold {
            lower(self.expr()).like(like)
        } else {
            self.expr().like(like)
        })
    }

    /// Case-insensitive equality.
    pub fn iexact(&self, value: impl AsRef<str>) -> Filter {
        self.like(&fold(value.as_ref()), false, false, true)
    }

    /// Contains `value` (case-sensitive).
    pub fn contains(&self, value: impl AsRef<str>) -> Filter {
        self.like(value.as_ref(), true, true, false)
    }

    /// Contains `value`, ignoring case.
    pub fn icontains(&self, value: impl AsRef<str>) -> Filter {
        self.like(&fold(value.as_ref()), true, true, true)
    }

    /// Starts with `value` (case-sensitive).
    pub fn startswith(&self, value: impl AsRef<str>) -> Filter {
        self.like(value.as_ref(), false, true, false)
    }

    /// Starts with `value`, ignoring case.
    pub fn istartswith(&self, value: impl AsRef<str>) -> Filter {
        self.like(&fold(value.as_ref()), false, true, true)
    }

    /// Ends with `value` (case-sensitive).
    pub fn endswith(&self, value: impl AsRef<str>) -> Filter {
        self.like(value.as_ref(), true, false, false)
    }

    /// Ends with `value`, ignoring case.
    pub fn iendswith(&self, value: impl AsRef<str>) -> Filter {
        self.like(&fold(value.as_ref()), true, false, true)
    }
}

fn lower(expr: Expr) -> Expr {
    Func::lower(expr).into()
}

fn fold(value: &str) -> String {
    value.to_lowercase()
}

/// An ORDER BY term: `User::name().asc()`.
#[derive(Clone, Debug)]
pub struct Ordering {
    pub(crate) column: &'static str,
    pub(crate) order: Order,
}

/// `column = value` in a bulk UPDATE: `User::name().set("new")`.
pub struct Assignment<M> {
    pub(crate) column: &'static str,
    pub(crate) value: sea_query::Value,
    _model: PhantomData<fn() -> M>,
}

impl<M> Assignment<M> {
    fn new(column: &'static str, value: sea_query::Value) -> Self {
        Assignment {
            column,
            value,
            _model: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for Assignment<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {:?}", self.column, self.value)
    }
}
