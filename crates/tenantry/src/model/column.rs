//! Typed column handles and their lookups.

use std::marker::PhantomData;

use sea_query::Order;

use super::{
    expression::{Comparison, Term},
    filter::{Node, Test, TypedTest},
    path::{Hop, Path},
    Expression, Filter, Model, ModelMeta,
};
use crate::field::FieldType;

/// A typed handle on a column of model `M` whose values are `T`.
///
/// The derive gives every model one function per field returning its handle
/// (`User::email()`); a foreign key's handle compares with the target's primary key type.
/// Lookups build [`Filter`]s, `asc`/`desc` build orderings and `set` builds assignments.
pub struct Column<M, T> {
    name: &'static str,
    /// The foreign keys followed from `M` to the model `name` is a column of.
    path: Path,
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
        write!(f, "Column(")?;
        for hop in self.path.hops() {
            write!(f, "{} -> ", hop.column)?;
        }
        write!(f, "{})", self.name)
    }
}

impl<M: Model, T: FieldType> Column<M, T> {
    /// The handle on column `name`; the derive calls this.
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        Column {
            name,
            path: Path::EMPTY,
            _types: PhantomData,
        }
    }

    /// The column name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Whether this handle was reached through a relation ([`to`](Self::to)): a column of
    /// another model, usable in lookups and orderings only.
    pub(crate) fn through_relation(&self) -> bool {
        !self.path.is_empty()
    }

    /// `test` on this column, reached through the column's foreign keys.
    fn filtered(&self, test: Test) -> Filter {
        self.wrap(Filter::on(self.model_at_end(), test).0)
    }

    /// The model this column belongs to: `M`, or the model at the end of its path.
    pub(crate) fn model_at_end(&self) -> fn() -> &'static ModelMeta {
        self.path.last_target().unwrap_or(meta::<M>)
    }

    /// `node`, a condition on this column's model, reached through the column's foreign
    /// keys from `M`.
    pub(crate) fn wrap(&self, node: Node) -> Filter {
        if self.path.is_empty() {
            return Filter(node);
        }
        Filter(Node::Forward {
            from: meta::<M>,
            path: self.path,
            inner: Box::new(node),
        })
    }

    fn compare(&self, value: impl Into<T>, op: Comparison) -> Filter {
        let value = value.into().to_value();
        match T::ENUM_TYPE {
            Some(ty) => self.typed(ty, TypedTest::Compare(op, value)),
            None => self.filtered(Test::Compare {
                column: self.name,
                op,
                value,
            }),
        }
    }

    /// `test` on this enum-typed column, its values typed when the statement is rendered.
    fn typed(&self, ty: &'static crate::EnumType, test: TypedTest) -> Filter {
        self.wrap(Node::Typed {
            model: self.model_at_end(),
            ty,
            column: self.name,
            test,
        })
    }

    /// `column = value`.
    pub fn eq(&self, value: impl Into<T>) -> Filter {
        self.compare(value, Comparison::Eq)
    }

    /// `column <> value`.
    pub fn ne(&self, value: impl Into<T>) -> Filter {
        self.compare(value, Comparison::Ne)
    }

    /// `column > value`.
    pub fn gt(&self, value: impl Into<T>) -> Filter {
        self.compare(value, Comparison::Gt)
    }

    /// `column >= value`.
    pub fn gte(&self, value: impl Into<T>) -> Filter {
        self.compare(value, Comparison::Gte)
    }

    /// `column < value`.
    pub fn lt(&self, value: impl Into<T>) -> Filter {
        self.compare(value, Comparison::Lt)
    }

    /// `column <= value`.
    pub fn lte(&self, value: impl Into<T>) -> Filter {
        self.compare(value, Comparison::Lte)
    }

    /// `column IN (values…)`; an empty list matches nothing.
    pub fn is_in<V: Into<T>>(&self, values: impl IntoIterator<Item = V>) -> Filter {
        let values: Vec<sea_query::Value> =
            values.into_iter().map(|v| v.into().to_value()).collect();
        match T::ENUM_TYPE {
            Some(ty) => self.typed(ty, TypedTest::In(values)),
            None => self.filtered(Test::In {
                column: self.name,
                values,
            }),
        }
    }

    /// `column IS NULL` when `null` is true, `IS NOT NULL` otherwise.
    pub fn isnull(&self, null: bool) -> Filter {
        self.filtered(Test::Null {
            column: self.name,
            null,
        })
    }

    /// Ascending order on this column.
    pub fn asc(&self) -> Ordering {
        self.ordering(Order::Asc)
    }

    /// Descending order on this column.
    pub fn desc(&self) -> Ordering {
        self.ordering(Order::Desc)
    }

    fn ordering(&self, order: Order) -> Ordering {
        Ordering {
            column: self.name,
            order,
            from: meta::<M>,
            path: self.path,
        }
    }

    /// The column `column` of the row this foreign key points to, for lookups and ordering
    /// across the relation (Edgy's `user__name`). Chains to any depth up to
    /// [`MAX_HOPS`](crate::MAX_HOPS) foreign keys:
    /// `Product::user().to(User::company()).to(Company::name())`.
    ///
    /// The lookup runs in the query's schema for a tenant model and in the shared schema for
    /// a shared one; that this column is a foreign key to `R` is checked when the query
    /// runs ([`Error::InvalidRelation`](crate::Error::InvalidRelation) otherwise).
    ///
    /// A lookup in a SELECT is a JOIN (each table named with its own schema): an INNER JOIN
    /// where every row must match it, a LEFT JOIN tested with `IS NOT NULL` under `|`, `!`
    /// or `exclude`. UPDATE and DELETE, and a SELECT that locks its rows, test it with a
    /// subquery (`"user_id" IN (SELECT "id" FROM …)`) instead; the answers are the same.
    /// Lookups have inner-join semantics: a row whose foreign key is NULL matches no lookup
    /// through it, not even `isnull(true)` (test the foreign key itself:
    /// `Product::user().isnull(true)`); `exclude` of a lookup keeps it. The handle is for
    /// lookups and orderings only: in `values_list`, `group_by`, an aggregate, `set`,
    /// `select_related` or `prefetch_related` it is
    /// [`Error::InvalidRelation`](crate::Error::InvalidRelation).
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_select(|r| Product::query(r).filter(Product::user().to(User::name()).icontains("ann")));
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "user_id", "price", "stock" FROM "public"."products" INNER JOIN (SELECT "users"."id" AS "tenantry_j1" FROM "public"."users" WHERE LOWER("name") LIKE $1 ESCAPE E'\\') AS "tenantry_j1" ON "tenantry_j1"."tenantry_j1" = "products"."user_id""#);
    /// assert_eq!(sql.mysql, r#"SELECT `id`, `name`, `user_id`, `price`, `stock` FROM `app`.`products` INNER JOIN (SELECT `users`.`id` AS `tenantry_j1` FROM `app`.`users` WHERE LOWER(`name`) LIKE ? ESCAPE '\\') AS `tenantry_j1` ON `tenantry_j1`.`tenantry_j1` = `products`.`user_id`"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "user_id", "price", "stock" FROM "products" INNER JOIN (SELECT "users"."id" AS "tenantry_j1" FROM "users" WHERE LOWER("name") LIKE ? ESCAPE '\') AS "tenantry_j1" ON "tenantry_j1"."tenantry_j1" = "products"."user_id""#);
    ///
    /// // Under `exclude`, a LEFT JOIN: the products with no owner are kept.
    /// let sql = render_select(|r| Product::query(r).exclude(Product::user().to(User::name()).eq("ann")));
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "user_id", "price", "stock" FROM "public"."products" LEFT JOIN (SELECT "users"."id" AS "tenantry_j1" FROM "public"."users" WHERE "name" = $1) AS "tenantry_j1" ON "tenantry_j1"."tenantry_j1" = "products"."user_id" WHERE NOT "tenantry_j1"."tenantry_j1" IS NOT NULL"#);
    /// ```
    pub fn to<R: Model, U: FieldType>(self, column: Column<R, U>) -> Column<M, U> {
        let mut path = self.path;
        path.push(Hop {
            column: self.name,
            target: meta::<R>,
        });
        Column {
            name: column.name,
            path: path.then(&column.path),
            _types: PhantomData,
        }
    }

    /// The rows this foreign key points to that have at least one `M` row pointing at them
    /// matching `filter` (Edgy's reverse lookup): used in a query over the referenced model,
    /// `User::query(r).filter(Product::user().having(Product::name().eq("lamp")))`.
    /// Rendered as an EXISTS subquery in the query's schema, correlated on the foreign key;
    /// the `M` rows are aliased (`tenantry_x1`, one alias per level of nesting, at most
    /// [`MAX_HOPS`](crate::MAX_HOPS) levels; `tenantry_y1` where the rows around are a table
    /// of that name), so that a model related to itself (users having subordinates) is
    /// never confused with the rows around it.
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_select(|r| User::query(r).filter(Product::user().having(Product::name().eq("lamp"))));
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "email" FROM "public"."users" WHERE EXISTS(SELECT 1 FROM "public"."products" AS "tenantry_x1" WHERE "tenantry_x1"."user_id" = "users"."id" AND "name" = $1)"#);
    /// assert_eq!(sql.mysql, r#"SELECT `id`, `name`, `email` FROM `app`.`users` WHERE EXISTS(SELECT 1 FROM `app`.`products` AS `tenantry_x1` WHERE `tenantry_x1`.`user_id` = `users`.`id` AND `name` = ?)"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "email" FROM "users" WHERE EXISTS(SELECT 1 FROM "products" AS "tenantry_x1" WHERE "tenantry_x1"."user_id" = "users"."id" AND "name" = ?)"#);
    /// ```
    pub fn having(self, filter: Filter) -> Filter {
        Filter(Node::Reverse {
            child: meta::<M>,
            column: self.name,
            path: self.path,
            inner: Box::new(filter.0),
        })
    }

    /// `column = value` in an UPDATE.
    pub fn set(&self, value: impl Into<T>) -> Assignment<M> {
        self.assign(Assigned::Value(value.into().to_value()))
    }

    /// `column = NULL` in an UPDATE (for nullable columns).
    pub fn set_null(&self) -> Assignment<M> {
        self.assign(Assigned::Value(T::null_value()))
    }

    /// `column = expression` in an UPDATE, computed by the database from the row's own
    /// values: `Product::stock().set_expr(Product::stock() - 1)` takes one from the stock
    /// without reading it first, so concurrent updates never lose one another's change.
    /// See [`Expression`] for what may appear in it.
    pub fn set_expr(&self, expression: impl Into<Expression<M, T>>) -> Assignment<M> {
        self.assign(Assigned::Expression {
            term: expression.into().term,
            decimal: T::SQL_TYPE == crate::SqlType::Decimal,
        })
    }

    fn assign(&self, value: Assigned) -> Assignment<M> {
        Assignment {
            column: self.name,
            value,
            through_relation: self.through_relation(),
            _model: PhantomData,
        }
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
        self.filtered(Test::Like {
            column: self.name,
            pattern,
            fold,
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

fn fold(value: &str) -> String {
    value.to_lowercase()
}

/// An ORDER BY term: `User::name().asc()`, or across a relation
/// `Product::user().to(User::name()).asc()`.
#[derive(Clone, Debug)]
pub struct Ordering {
    pub(crate) column: &'static str,
    pub(crate) order: Order,
    /// The model the ordering was built on, and the foreign keys to the column's model.
    pub(crate) from: fn() -> &'static ModelMeta,
    pub(crate) path: Path,
}

/// `M`'s metadata, as a function pointer (a model may refer to itself).
pub(crate) fn meta<M: Model>() -> &'static ModelMeta {
    M::META
}

/// `column = value` in a bulk UPDATE: `User::name().set("new")`, or computed:
/// `Product::stock().set_expr(Product::stock() - 1)`.
pub struct Assignment<M> {
    pub(crate) column: &'static str,
    pub(crate) value: Assigned,
    /// Built on a column reached through a relation: refused by `update`.
    pub(crate) through_relation: bool,
    _model: PhantomData<fn() -> M>,
}

/// What an assignment writes.
#[derive(Clone, Debug)]
pub(crate) enum Assigned {
    Value(sea_query::Value),
    /// `decimal`: the column is a decimal (whose arithmetic SQLite cannot do exactly).
    Expression {
        term: Term,
        decimal: bool,
    },
}

impl<M> Assignment<M> {
    /// The parameters the assignment binds.
    pub(crate) fn constants(&self) -> usize {
        match &self.value {
            Assigned::Value(_) => 1,
            Assigned::Expression { term, .. } => term.constants(),
        }
    }
}

impl<M> Clone for Assignment<M> {
    fn clone(&self) -> Self {
        Assignment {
            column: self.column,
            value: self.value.clone(),
            through_relation: self.through_relation,
            _model: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for Assignment<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Assigned::Value(value) => write!(f, "{} = {:?}", self.column, value),
            Assigned::Expression { term, .. } => write!(f, "{} = {:?}", self.column, term),
        }
    }
}
