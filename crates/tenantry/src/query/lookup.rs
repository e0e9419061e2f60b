//! Filters and orderings across foreign keys, rendered when the query runs, once its schema
//! is known.
//!
//! In a SELECT a forward lookup (`Product::user().to(User::name()).eq(x)`) is a JOIN, and
//! so is an ordering across relations (see `join.rs`). Where a join cannot be written (an
//! UPDATE, a DELETE, a SELECT that locks its rows) a forward lookup is a semi-join,
//! `"user_id" IN (SELECT "id" FROM <users> WHERE "name" = $1)`, and an ordering a correlated
//! scalar subquery; the answers are those of the join (a foreign key leads to at most one
//! row). A reverse lookup (`Product::user().having(f)` in a query over users) is
//! `EXISTS (SELECT 1 FROM <products> AS "tenantry_x1" WHERE "tenantry_x1"."user_id" =
//! "users"."id" AND f)` everywhere. The query's own columns stay unqualified.
//!
//! Every table is named with its own schema: the query's for a tenant model, the shared
//! schema for a shared one. Where one statement cannot reach both (SQLite keeps each schema
//! in its own file; a lookup from a shared model into tenant rows has no one tenant), the
//! lookup is refused with a typed error before any SQL is sent.

use sea_query::{Alias, Condition, Expr, ExprTrait, Query, SelectStatement, SubQueryStatement};

use super::join::Joining;
use crate::{
    error::{Error, Result},
    model::{path::Path, ModelMeta, Node, Ordering, Term, TypedTest, MAX_HOPS},
    target::Target,
};

/// Where a condition is rendered: in a statement at a target (lookups across relations
/// and subqueries name their tables there), or in a check constraint, which sees one row.
#[derive(Clone, Copy)]
enum At<'a> {
    /// In a statement at `target`, where the rows being filtered are named `table` (their
    /// table's name, or the alias of a reverse lookup's rows), `depth` reverse lookups deep.
    Statement {
        target: &'a Target,
        table: &'static str,
        depth: usize,
    },
    Row(crate::Backend),
}

impl<'a> At<'a> {
    fn statement(target: &'a Target, model: &'static ModelMeta) -> At<'a> {
        At::Statement {
            target,
            table: model.table,
            depth: 0,
        }
    }

    fn backend(self) -> crate::Backend {
        match self {
            At::Statement { target, .. } => target.backend(),
            At::Row(backend) => backend,
        }
    }
}

/// `node` as a condition on rows of `model` at `target`, lookups across foreign keys as
/// subqueries (for an UPDATE or a DELETE, or inside a subquery).
pub(crate) fn condition(
    node: Node,
    model: &'static ModelMeta,
    target: &Target,
) -> Result<Condition> {
    plain(node, model, At::statement(target, model))
}

/// `node` as a condition on rows of `model` at `target`, its forward lookups joined to
/// `joining`'s SELECT; `None` when the joins are the whole condition.
pub(crate) fn render_at(
    node: Node,
    model: &'static ModelMeta,
    target: &Target,
    joining: &mut Joining<'_>,
) -> Result<Option<Condition>> {
    render(
        node,
        model,
        At::statement(target, model),
        Some(joining),
        true,
    )
}

/// A condition rendered with no joins (which is never wholly absorbed by one).
fn plain(node: Node, model: &'static ModelMeta, at: At) -> Result<Condition> {
    Ok(render(node, model, at, None, false)?.unwrap_or_else(Condition::all))
}

/// `node` as a check constraint of `model` on `backend`: a condition on the row itself.
/// A lookup across a relation, a subquery or another model's columns is
/// [`Error::InvalidRelation`] (a check sees one row).
pub(crate) fn row_condition(
    node: Node,
    model: &'static ModelMeta,
    backend: crate::Backend,
) -> Result<Condition> {
    plain(node, model, At::Row(backend))
}

/// `node` as a condition on `model`'s rows `at` a place. With `joining`, forward lookups
/// become joins of its SELECT; one that every row must match (`required`: reached from the
/// top of the filter through `&` only) is an INNER JOIN and leaves no condition (`None`).
fn render(
    node: Node,
    model: &'static ModelMeta,
    at: At,
    mut joining: Option<&mut Joining<'_>>,
    required: bool,
) -> Result<Option<Condition>> {
    // What only a statement can render.
    let statement = || {
        match at {
        At::Statement { target, .. } => Ok(target),
        At::Row(_) => Err(invalid(
            model,
            "",
            "a check constraint across a relation or with a subquery (a check sees only its own row)",
        )),
    }
    };
    Ok(Some(match node {
        Node::Condition {
            model: built_on,
            test,
        } => {
            if built_on.is_some_and(|built_on| built_on() != model) {
                return Err(invalid(
                    model,
                    "",
                    "a condition on another model's columns (reach them with Column::to or having)",
                ));
            }
            test.into_condition()
        }
        Node::All(nodes) => {
            let (mut all, mut joined) = (Condition::all(), !nodes.is_empty());
            for node in nodes {
                if let Some(condition) = render(node, model, at, joining.as_deref_mut(), required)?
                {
                    all = all.add(condition);
                    joined = false;
                }
            }
            if joined {
                return Ok(None);
            }
            all
        }
        Node::Any(nodes) => {
            let mut any = Condition::any();
            for node in nodes {
                any = any.add(must(render(
                    node,
                    model,
                    at,
                    joining.as_deref_mut(),
                    false,
                )?));
            }
            any
        }
        Node::Not(node) => must(render(*node, model, at, joining, false)?).not(),
        Node::Forward { from, path, inner } => {
            let steps = walk(from(), model, &path)?;
            let target = statement()?;
            match joining {
                Some(joining) if joining.has_room_for(&steps) => {
                    let alias = joining.join(&steps, *inner, target, required)?;
                    if required {
                        return Ok(None);
                    }
                    Condition::all().add(Expr::col((alias, alias)).is_not_null())
                }
                _ => forward(&steps, *inner, target)?,
            }
        }
        Node::Reverse {
            child,
            column,
            path,
            inner,
        } => {
            let target = statement()?;
            let (table, depth) = match at {
                At::Statement { table, depth, .. } => (table, depth),
                At::Row(_) => (model.table, 0),
            };
            let reverse = Reverse {
                child: child(),
                column,
                parent: model,
                parent_named: table,
                depth,
            };
            reverse.exists(&path, *inner, target)?
        }
        Node::InQuery {
            model: built_on,
            column,
            inner,
        } => {
            if built_on() != model {
                return Err(invalid(model, column, "a column of another model"));
            }
            let target = statement()?;
            let typed = match (
                target.backend(),
                model.column(column).and_then(|c| c.enum_type),
            ) {
                (crate::Backend::Postgres, Some(ty)) => {
                    Some(crate::enum_types::of_model_at(target, model, ty))
                }
                _ => None,
            };
            Condition::all().add(Expr::col(column).in_subquery(inner.select(target, typed)?))
        }
        Node::Exists(inner) => {
            Condition::all().add(Expr::exists(inner.select(statement()?, None)?))
        }
        Node::Typed {
            model: built_on,
            ty,
            column,
            test,
        } => {
            if built_on() != model {
                return Err(invalid(model, column, "a column of another model"));
            }
            // A check constraint writes its constants as literals, which take the
            // column's type without a cast.
            let typed = |value| match at {
                At::Statement { target, .. } => {
                    crate::enum_types::typed(target, model, Some(ty), value)
                }
                At::Row(_) => Expr::val(value),
            };
            Condition::all().add(match test {
                TypedTest::Compare(op, value) => op.apply(Expr::col(column), typed(value)),
                TypedTest::In(values) => Expr::col(column).is_in(values.into_iter().map(typed)),
            })
        }
        Node::Compare {
            model: built_on,
            left,
            op,
            right,
            decimal,
        } => {
            if built_on() != model {
                return Err(invalid(
                    model,
                    "",
                    "an expression over another model's columns",
                ));
            }
            compare(model, at.backend(), (left, op, right), decimal)?
        }
    }))
}

/// A condition rendered where no join can absorb it.
fn must(condition: Option<Condition>) -> Condition {
    condition.unwrap_or_else(Condition::all)
}

/// Two expressions over `model`'s own columns compared, on `backend`.
fn compare(
    model: &'static ModelMeta,
    backend: crate::Backend,
    (left, op, right): (Term, crate::model::Comparison, Term),
    decimal: bool,
) -> Result<Condition> {
    refuse_decimal_arithmetic_on(backend, decimal, &[&left, &right])?;
    let keep = |value| Ok(value);
    let checked = backend.capabilities().division_by_zero_is_null;
    let left = left
        .render(crate::model::Scope::plain(checked), &keep)
        .map_err(|e| on_model(e, model))?;
    let right = right
        .render(crate::model::Scope::plain(checked), &keep)
        .map_err(|e| on_model(e, model))?;
    Ok(Condition::all().add(op.apply(left, right)))
}

/// Arithmetic on decimals is floating point on SQLite (which stores them as text):
/// refused there rather than answered inexactly.
pub(crate) fn refuse_decimal_arithmetic(
    target: &Target,
    decimal: bool,
    terms: &[&Term],
) -> Result<()> {
    refuse_decimal_arithmetic_on(target.backend(), decimal, terms)
}

fn refuse_decimal_arithmetic_on(
    backend: crate::Backend,
    decimal: bool,
    terms: &[&Term],
) -> Result<()> {
    // No terms: the caller has already asked whether there is arithmetic.
    let arithmetic = terms.is_empty() || terms.iter().any(|term| term.is_arithmetic());
    if decimal && arithmetic && !backend.capabilities().exact_decimal_arithmetic {
        return Err(Error::Unsupported {
            backend: backend.name(),
            what: "arithmetic on a decimal column (SQLite stores decimals as text and computes in floating point)",
        });
    }
    Ok(())
}

/// An expression's error names its model, which the expression itself does not know.
pub(crate) fn on_model(error: Error, model: &'static ModelMeta) -> Error {
    match error {
        Error::InvalidRelation {
            model: "",
            column,
            reason,
        } => invalid(model, column, reason),
        other => other,
    }
}

/// One foreign key on the way: the model it is a column of, the column, and its target.
pub(crate) struct Step {
    pub(crate) model: &'static ModelMeta,
    pub(crate) column: &'static str,
    nullable: bool,
    pub(crate) target: &'static ModelMeta,
}

/// The steps of `path` from `model`, each checked against the metadata.
pub(crate) fn walk(
    from: &'static ModelMeta,
    model: &'static ModelMeta,
    path: &Path,
) -> Result<Vec<Step>> {
    if from != model {
        return Err(invalid(model, "", "the lookup was built on another model"));
    }
    if path.overflowed() {
        return Err(invalid(model, "", "more foreign keys than MAX_HOPS"));
    }
    let mut steps = Vec::new();
    let mut at = model;
    for hop in path.hops() {
        let column = at
            .column(hop.column)
            .ok_or_else(|| invalid(at, hop.column, "no such column"))?;
        // The table comes from the foreign key's own metadata, never from the caller's.
        let target = match column.foreign_key {
            Some(fk) if (fk.target)() == (hop.target)() => (fk.target)(),
            Some(_) => return Err(invalid(at, hop.column, "a foreign key to another model")),
            None => return Err(invalid(at, hop.column, "not a foreign key")),
        };
        steps.push(Step {
            model: at,
            column: column.name,
            nullable: column.nullable,
            target,
        });
        at = target;
    }
    Ok(steps)
}

/// A relation path with no foreign key on it.
pub(crate) fn invalid_path() -> Error {
    Error::InvalidRelation {
        model: "",
        column: "",
        reason: "an empty relation path",
    }
}

fn forward(steps: &[Step], inner: Node, target: &Target) -> Result<Condition> {
    let Some(last) = steps.last() else {
        return Err(invalid_path());
    };
    let mut cond = condition(inner, last.target, target)?;
    for step in steps.iter().rev() {
        let mut select = Query::select();
        select
            .column(step.target.primary_key_column().name)
            .from(table(step.model, step.target, target)?)
            .cond_where(cond);
        cond = in_subquery(step.column, step.nullable, select);
    }
    Ok(cond)
}

/// The names of a reverse lookup's rows, one per level of nesting: a level's condition
/// names the level around it, which must not be hidden by its own rows' name.
const REVERSE: [&str; MAX_HOPS] = ["tenantry_x1", "tenantry_x2", "tenantry_x3", "tenantry_x4"];

/// The names used instead of [`REVERSE`]'s where the rows around are a table of that name
/// (which the alias would hide from the correlation).
const REVERSE_ELSE: [&str; MAX_HOPS] = ["tenantry_y1", "tenantry_y2", "tenantry_y3", "tenantry_y4"];

/// A reverse lookup: rows of `child` whose foreign key `column` points at a row of
/// `parent`, named `parent_named` in the statement, `depth` reverse lookups deep.
struct Reverse {
    child: &'static ModelMeta,
    column: &'static str,
    parent: &'static ModelMeta,
    parent_named: &'static str,
    depth: usize,
}

impl Reverse {
    /// `EXISTS (SELECT 1 FROM <child> AS x WHERE x.fk = <parent>.pk AND inner)`: the
    /// child's own conditions name its columns unqualified, which its rows (aliased, so
    /// that a model related to itself is not confused with the level around it) hold.
    fn exists(&self, path: &Path, inner: Node, target: &Target) -> Result<Condition> {
        let fk = check_reverse(self.child, self.column, path, self.parent)?;
        let (Some(&alias), Some(&other)) = (REVERSE.get(self.depth), REVERSE_ELSE.get(self.depth))
        else {
            return Err(invalid(
                self.child,
                self.column,
                "having() nested more than MAX_HOPS deep",
            ));
        };
        let alias = if alias == self.parent_named {
            other
        } else {
            alias
        };
        let mut select = Query::select();
        select
            .expr(Expr::Constant(1.into()))
            .from_as(table(self.parent, self.child, target)?, alias);
        let at = At::Statement {
            target,
            table: alias,
            depth: self.depth + 1,
        };
        let mut used = 0;
        let condition = {
            let mut joining = Joining::new(&mut select, self.child, alias, &mut used);
            render(inner, self.child, at, Some(&mut joining), true)?
        };
        let correlated = Expr::col((alias, fk.name))
            .equals((self.parent_named, self.parent.primary_key_column().name));
        select.cond_where(Condition::all().add(correlated).add_option(condition));
        Ok(Condition::all().add(Expr::exists(select)))
    }
}

/// The foreign key `column` of `child`, checked to point at `model` and to be usable in a
/// reverse lookup from it.
fn check_reverse(
    child: &'static ModelMeta,
    column: &'static str,
    path: &Path,
    model: &'static ModelMeta,
) -> Result<&'static crate::model::ColumnMeta> {
    if !path.is_empty() {
        return Err(invalid(
            child,
            column,
            "having() on a column reached through a relation",
        ));
    }
    let fk = child
        .column(column)
        .ok_or_else(|| invalid(child, column, "no such column"))?;
    match fk.foreign_key {
        Some(key) if (key.target)() == model => {}
        _ => {
            return Err(invalid(
                child,
                column,
                "not a foreign key to the queried model",
            ))
        }
    }
    if child.shared && !model.shared {
        // A shared row points at one row of the shared schema, never at a tenant's row
        // with the same key.
        return Err(invalid(
            child,
            column,
            "a lookup from tenant rows into a shared model's references",
        ));
    }
    Ok(fk)
}

/// `column IN (select)`; for a nullable column also `IS NOT NULL`, so that its negation
/// keeps the rows that point nowhere (as Edgy's and Django's `exclude` do).
fn in_subquery(column: &'static str, nullable: bool, select: SelectStatement) -> Condition {
    let within = Expr::col(column).in_subquery(select);
    if nullable {
        Condition::all()
            .add(Expr::col(column).is_not_null())
            .add(within)
    } else {
        Condition::all().add(within)
    }
}

/// The table of `meta`, looked up from a row of `from`, at `target`: in the shared schema for
/// a shared model, else in the query's.
pub(crate) fn table(
    from: &'static ModelMeta,
    meta: &'static ModelMeta,
    target: &Target,
) -> Result<sea_query::TableName> {
    let schema = if meta.shared {
        None
    } else if from.shared {
        // A shared row is every tenant's: which tenant's rows it leads to is no one's.
        return Err(invalid(
            from,
            "",
            "a lookup from a shared model into tenant rows",
        ));
    } else {
        target.schema.as_ref()
    };
    target.table_in(meta, schema)
}

/// The ORDER BY expression of `ordering` on rows of `model`: the column itself, or a
/// correlated subquery along the ordering's foreign keys (where no join can be written).
pub(crate) fn order_expr(
    ordering: &Ordering,
    model: &'static ModelMeta,
    target: &Target,
) -> Result<Expr> {
    if ordering.path.is_empty() {
        return Ok(Expr::col(ordering.column));
    }
    let steps = walk((ordering.from)(), model, &ordering.path)?;
    // Each level is aliased, so that a model reached from itself (a manager of a user) is
    // never confused with the level around it; the outermost level is the query's table.
    let mut value: Expr = Expr::col((alias(steps.len()), ordering.column));
    for (depth, step) in steps.iter().enumerate().rev() {
        let outer = if depth == 0 {
            Expr::col((step.model.table, step.column))
        } else {
            Expr::col((alias(depth), step.column))
        };
        let inner = alias(depth + 1);
        let mut select = Query::select();
        select
            .expr(value)
            .from_as(table(step.model, step.target, target)?, inner.clone())
            .and_where(Expr::col((inner, step.target.primary_key_column().name)).eq(outer));
        value = Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(select)));
    }
    Ok(value)
}

/// The alias of the table `depth` foreign keys away from the query's.
fn alias(depth: usize) -> Alias {
    const ALIASES: [&str; MAX_HOPS + 1] = [
        "tenantry_r0",
        "tenantry_r1",
        "tenantry_r2",
        "tenantry_r3",
        "tenantry_r4",
    ];
    Alias::new(ALIASES[depth.min(MAX_HOPS)])
}

fn invalid(model: &'static ModelMeta, column: &'static str, reason: &'static str) -> Error {
    Error::InvalidRelation {
        model: model.table,
        column,
        reason,
    }
}
