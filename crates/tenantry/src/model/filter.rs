//! Conditions built from column lookups, combined with `&`, `|` and `!`.
//!
//! A filter is a tree: plain conditions on the query's own columns, and lookups across
//! foreign keys, whose tables are named only when the query runs (their schema is the
//! query's, chosen at that moment), by `query::lookup`.

use std::sync::Arc;

use sea_query::{Condition, Expr, ExprTrait, Func, IntoCondition, LikeExpr, Value};

use super::{path::Path, Comparison, ModelMeta, Term};
use crate::{field::EnumType, query::Inner};

/// A WHERE condition. Build one from a column lookup such as `User::email().icontains("x")`
/// or, across a foreign key, `Product::user().to(User::name()).icontains("x")`; combine with
/// `&` (and), `|` (or) and `!` (not), or the methods of the same names.
///
/// ```
/// # use tenantry::Filter;
/// # fn demo(a: Filter, b: Filter, c: Filter) -> Filter {
/// (a | b) & !c
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Filter(pub(crate) Node);

/// One node of a filter.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// A condition on the columns of the model being filtered: `model`'s, when it was built
    /// from a column handle (checked when rendered: a condition on another model's columns
    /// would read the filtered table's columns of the same names).
    Condition {
        model: Option<fn() -> &'static ModelMeta>,
        test: Test,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    /// `inner` holds for the row that the foreign keys of `path`, followed from `from`,
    /// lead to.
    Forward {
        from: fn() -> &'static ModelMeta,
        path: Path,
        inner: Box<Node>,
    },
    /// Some row of `child` whose foreign key `column` points at the filtered row matches
    /// `inner`.
    Reverse {
        child: fn() -> &'static ModelMeta,
        column: &'static str,
        /// Must be empty: `having` on a column reached through a relation is refused.
        path: Path,
        inner: Box<Node>,
    },
    /// `column IN (subquery)`, the subquery in the filtered query's schema.
    InQuery {
        model: fn() -> &'static ModelMeta,
        column: &'static str,
        inner: Arc<dyn Inner>,
    },
    /// `EXISTS (subquery)`.
    Exists(Arc<dyn Inner>),
    /// Enum-typed `column` of `model` tested against values, which are cast to the column's
    /// type once the statement's schema is known (PostgreSQL compares an enum only with
    /// its own type, and each schema has its own).
    Typed {
        model: fn() -> &'static ModelMeta,
        ty: &'static EnumType,
        column: &'static str,
        test: TypedTest,
    },
    /// Two expressions over `model`'s columns compared (`decimal`: of decimals, whose
    /// arithmetic SQLite cannot do exactly).
    Compare {
        model: fn() -> &'static ModelMeta,
        left: Term,
        op: Comparison,
        right: Term,
        decimal: bool,
    },
}

/// What a [`Node::Condition`] tests. The column lookups are described rather than built,
/// so that a statement's shape and values can be read without rendering it (the statement
/// texts kept by `query/kept.rs`); their condition is built when rendered.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    /// `column op value`.
    Compare {
        column: &'static str,
        op: Comparison,
        value: Value,
    },
    /// `column IN (values…)`.
    In {
        column: &'static str,
        values: Vec<Value>,
    },
    /// `column IS NULL` (`null`) or `IS NOT NULL`.
    Null { column: &'static str, null: bool },
    /// `column LIKE pattern ESCAPE '\'`, the column lowered first when `fold`.
    Like {
        column: &'static str,
        pattern: String,
        fold: bool,
    },
    /// A condition the crate built otherwise (keyset cursors).
    Built(Condition),
}

impl Test {
    /// The test as a condition.
    pub(crate) fn into_condition(self) -> Condition {
        match self {
            Test::Compare { column, op, value } => op
                .apply(Expr::col(column), Expr::val(value))
                .into_condition(),
            Test::In { column, values } => Expr::col(column).is_in(values).into_condition(),
            Test::Null { column, null: true } => Expr::col(column).is_null().into_condition(),
            Test::Null {
                column,
                null: false,
            } => Expr::col(column).is_not_null().into_condition(),
            Test::Like {
                column,
                pattern,
                fold,
            } => {
                let like = LikeExpr::new(pattern).escape('\\');
                let column = Expr::col(column);
                let column = if fold {
                    Func::lower(column).into()
                } else {
                    column
                };
                column.like(like).into_condition()
            }
            Test::Built(condition) => condition,
        }
    }
}

/// What a [`Node::Typed`] tests its column with.
#[derive(Clone, Debug)]
pub(crate) enum TypedTest {
    /// `column op value`.
    Compare(Comparison, Value),
    /// `column IN (values…)`.
    In(Vec<Value>),
}

impl std::fmt::Debug for dyn Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("subquery")
    }
}

impl Filter {
    /// A test the crate made itself on the filtered model's columns.
    pub(crate) fn new(test: Test) -> Filter {
        Filter(Node::Condition { model: None, test })
    }

    /// A test on the columns of `model`.
    pub(crate) fn on(model: fn() -> &'static ModelMeta, test: Test) -> Filter {
        Filter(Node::Condition {
            model: Some(model),
            test,
        })
    }

    /// Both conditions.
    pub fn and(self, other: Filter) -> Filter {
        Filter(Node::All(vec![self.0, other.0]))
    }

    /// Either condition.
    pub fn or(self, other: Filter) -> Filter {
        Filter(Node::Any(vec![self.0, other.0]))
    }

    /// Every filter of `filters` (true when there is none).
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(Node::All(filters.into_iter().map(|f| f.0).collect()))
    }

    /// Any filter of `filters` (false when there is none).
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(Node::Any(filters.into_iter().map(|f| f.0).collect()))
    }
}

impl std::ops::BitAnd for Filter {
    type Output = Filter;
    fn bitand(self, rhs: Filter) -> Filter {
        self.and(rhs)
    }
}

impl std::ops::BitOr for Filter {
    type Output = Filter;
    fn bitor(self, rhs: Filter) -> Filter {
        self.or(rhs)
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        Filter(Node::Not(Box::new(self.0)))
    }
}
