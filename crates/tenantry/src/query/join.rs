//! Forward lookups of a SELECT rendered as JOINs.
//!
//! `Product::user().to(User::name()).eq(x)` in a query over products becomes
//!
//! ```sql
//! SELECT "id", "name", … FROM "t"."products"
//! INNER JOIN (SELECT "users"."id" AS "tenantry_j1" FROM "t"."users" WHERE "name" = $1)
//!   AS "tenantry_j1" ON "tenantry_j1"."tenantry_j1" = "products"."user_id"
//! ```
//!
//! Each joined table sits in a derived table of its own that exposes one column, the key
//! the foreign key points at, under a name reserved for it. The statement's own columns
//! therefore stay unambiguous without being qualified (a user's `"name"` is never confused
//! with a product's), a model joined to itself (a user's manager) needs no care, and the
//! lookup's condition is rendered inside the derived table, in that table's scope. The
//! planners of PostgreSQL, MariaDB and SQLite merge such a derived table into the outer
//! query, so the plan is that of the plain join.
//!
//! A lookup at the top of the filter, where every row must match it (`filter(a & lookup)`),
//! is an INNER JOIN. Under `|` or `!` (and `exclude`) it is a LEFT JOIN tested with
//! `IS NOT NULL`, which is true or false, never unknown, as the semi-join it replaces was:
//! `exclude` keeps the rows whose foreign key is NULL. A path of several foreign keys nests
//! one derived table per hop, each table named with its own schema.
//!
//! UPDATE and DELETE keep semi-joins (`"user_id" IN (SELECT "id" FROM …)`): a join in
//! them is written differently by each backend. So does a SELECT that locks its rows (a
//! join would lock the joined rows too), and a filter whose lookups need more derived
//! tables (one per hop) than [`ALIASES`] has names for (the rest are semi-joins). No name
//! is reserved from models: an alias that is the name of the rows it is joined to, or one
//! of their columns (or whose ordering value is), is skipped for the next.

use sea_query::{Condition, Expr, ExprTrait, JoinType, Query, SelectStatement};

use super::lookup::{render_at, table, walk, Step};
use crate::{
    error::Result,
    model::{ModelMeta, Node, Ordering},
    target::Target,
};

/// The names of a statement's derived tables, each also the name of the one column it
/// exposes. A filter with more forward lookups renders the rest as semi-joins, so a
/// statement never needs a name built at run time.
pub(crate) const ALIASES: [&str; 8] = [
    "tenantry_j1",
    "tenantry_j2",
    "tenantry_j3",
    "tenantry_j4",
    "tenantry_j5",
    "tenantry_j6",
    "tenantry_j7",
    "tenantry_j8",
];

/// The names of the value an ordering's derived table exposes beside its key, by the
/// index of the derived table's alias.
const VALUES: [&str; 8] = [
    "tenantry_v1",
    "tenantry_v2",
    "tenantry_v3",
    "tenantry_v4",
    "tenantry_v5",
    "tenantry_v6",
    "tenantry_v7",
    "tenantry_v8",
];

/// The SELECT that forward lookups are joined to while its filter is rendered.
pub(crate) struct Joining<'s> {
    select: &'s mut SelectStatement,
    /// The model whose rows the SELECT's FROM holds.
    model: &'static ModelMeta,
    /// How the statement names those rows in an ON clause: the table's name (the FROM item
    /// of a query is never aliased) or a reverse lookup's alias.
    table: &'static str,
    /// The aliases of the whole statement used or skipped so far (derived tables nest).
    used: &'s mut usize,
}

/// Whether the derived table of alias `index` can be joined to a SELECT over `model`'s rows
/// named `table`: its alias must not be the name of those rows (PostgreSQL refuses a name
/// twice), and neither its alias nor its value may be one of their columns, which the
/// statement names unqualified.
fn usable(index: usize, model: &'static ModelMeta, table: &'static str) -> bool {
    let (alias, value) = (ALIASES[index], VALUES[index]);
    alias != table
        && alias != model.table
        && model.column(alias).is_none()
        && model.column(value).is_none()
}

/// The first alias index from `from` usable over `model`'s rows named `table`.
fn usable_from(from: usize, model: &'static ModelMeta, table: &'static str) -> Option<usize> {
    (from..ALIASES.len()).find(|&index| usable(index, model, table))
}

impl<'s> Joining<'s> {
    /// Joins to `select`, whose FROM holds the rows of `model`, named `table` there.
    pub(crate) fn new(
        select: &'s mut SelectStatement,
        model: &'static ModelMeta,
        table: &'static str,
        used: &'s mut usize,
    ) -> Self {
        Joining {
            select,
            model,
            table,
            used,
        }
    }

    /// Whether the path `steps` can be joined, one derived table per hop, with the names
    /// left; if not, it is a semi-join (or a correlated subquery for an ordering).
    pub(crate) fn has_room_for(&self, steps: &[Step]) -> bool {
        let mut next = usable_from(*self.used, self.model, self.table);
        for step in steps.iter().skip(1) {
            let Some(index) = next else { return false };
            next = usable_from(index + 1, step.model, step.model.table);
        }
        next.is_some()
    }

    /// The next usable alias and its value's name; `has_room_for` said there is one.
    fn next(&mut self) -> Result<(&'static str, &'static str)> {
        let index = usable_from(*self.used, self.model, self.table)
            .ok_or_else(super::lookup::invalid_path)?;
        *self.used = index + 1;
        Ok((ALIASES[index], VALUES[index]))
    }

    /// Joins the rows that `steps`, followed from this statement's table, lead to and that
    /// match `inner`: an INNER JOIN when every row of the statement must match (`required`),
    /// else a LEFT JOIN. Returns the alias, whose column is NULL where no row matched.
    pub(crate) fn join(
        &mut self,
        steps: &[Step],
        inner: Node,
        target: &Target,
        required: bool,
    ) -> Result<&'static str> {
        let (alias, _) = self.next()?;
        let derived = level(steps, inner, target, alias, self.used)?;
        let kind = if required {
            JoinType::InnerJoin
        } else {
            JoinType::LeftJoin
        };
        let on = Expr::col((alias, alias)).equals((self.table, steps[0].column));
        self.select.join_subquery(kind, derived, alias, on);
        Ok(alias)
    }
}

/// The derived table of the first hop of `steps`: the keys of its rows that lead, through
/// the remaining hops, to a row matching `inner`, in a column named `alias`.
fn level(
    steps: &[Step],
    inner: Node,
    target: &Target,
    alias: &'static str,
    used: &mut usize,
) -> Result<SelectStatement> {
    let (step, rest) = steps
        .split_first()
        .ok_or_else(super::lookup::invalid_path)?;
    let mut select = Query::select();
    select
        .expr_as(
            Expr::col((step.target.table, step.target.primary_key_column().name)),
            alias,
        )
        .from(table(step.model, step.target, target)?);
    let condition = {
        let mut joining = Joining::new(&mut select, step.target, step.target.table, used);
        if rest.is_empty() {
            render_at(inner, step.target, target, &mut joining)?
        } else {
            joining.join(rest, inner, target, true)?;
            None
        }
    };
    if let Some(condition) = condition {
        select.cond_where(condition);
    }
    Ok(select)
}

/// The ordering's value through `steps`: a LEFT JOIN (rows that lead nowhere keep their
/// place, ordered as NULL) to nested derived tables, each exposing its key and the value
/// its next hop leads to; `None` when the statement has no names left for them.
fn order_join(
    joining: &mut Joining<'_>,
    steps: &[Step],
    column: &'static str,
    target: &Target,
) -> Result<Option<Expr>> {
    if !joining.has_room_for(steps) {
        return Ok(None);
    }
    let (alias, value) = joining.next()?;
    let derived = ordered_level(steps, column, target, (alias, value), joining.used)?;
    let on = Expr::col((alias, alias)).equals((joining.table, steps[0].column));
    joining
        .select
        .join_subquery(JoinType::LeftJoin, derived, alias, on);
    Ok(Some(Expr::col((alias, value))))
}

/// [`order_join`]'s derived table of the first hop of `steps`: its key as `alias` and the
/// ordering's value as `value`.
fn ordered_level(
    steps: &[Step],
    column: &'static str,
    target: &Target,
    (alias, value): (&'static str, &'static str),
    used: &mut usize,
) -> Result<SelectStatement> {
    let (step, rest) = steps
        .split_first()
        .ok_or_else(super::lookup::invalid_path)?;
    let named = step.target.table;
    let mut select = Query::select();
    select
        .expr_as(
            Expr::col((named, step.target.primary_key_column().name)),
            alias,
        )
        .from(table(step.model, step.target, target)?);
    let found = if rest.is_empty() {
        Expr::col((named, column))
    } else {
        let mut joining = Joining::new(&mut select, step.target, named, used);
        order_join(&mut joining, rest, column, target)?.ok_or_else(super::lookup::invalid_path)?
    };
    select.expr_as(found, value);
    Ok(select)
}

/// The ORDER BY expression of `ordering` on `select` (over `model`'s table): the column
/// itself, or across foreign keys a value joined in; a correlated subquery when the
/// statement has no names left for the joins.
pub(crate) fn order_select(
    select: &mut SelectStatement,
    ordering: &Ordering,
    model: &'static ModelMeta,
    target: &Target,
    used: &mut usize,
) -> Result<Expr> {
    if ordering.path.is_empty() {
        return Ok(Expr::col(ordering.column));
    }
    let steps = walk((ordering.from)(), model, &ordering.path)?;
    let mut joining = Joining::new(select, model, model.table, used);
    match order_join(&mut joining, &steps, ordering.column, target)? {
        Some(value) => Ok(value),
        None => super::lookup::order_expr(ordering, model, target),
    }
}

/// Adds `node`, a filter on the rows of `model` (the table of `select`), to `select`:
/// forward lookups as joins, the rest in its WHERE. `used` counts the statement's joins.
pub(crate) fn filter_select(
    select: &mut SelectStatement,
    node: Node,
    model: &'static ModelMeta,
    target: &Target,
    used: &mut usize,
) -> Result<()> {
    let condition: Option<Condition> = {
        let mut joining = Joining::new(select, model, model.table, used);
        render_at(node, model, target, &mut joining)?
    };
    if let Some(condition) = condition {
        select.cond_where(condition);
    }
    Ok(())
}
