//! Filters and orderings across foreign keys, rendered when the query runs, once its schema
//! is known.
//!
//! A forward lookup (`Product::user().to(User::name()).eq(x)`) becomes a semi-join,
//! `"user_id" IN (SELECT "id" FROM <users> WHERE "name" = $1)`, and a reverse one
//! (`Product::user().having(f)` in a query over users) `"id" IN (SELECT "user_id" FROM
//! <products> WHERE "user_id" IS NOT NULL AND f)`. Neither needs a table alias or a
//! qualified column of the outer query, so the query's own columns stay unqualified and the
//! answers are those of a join (a foreign key leads to at most one row). An ordering across
//! relations is a correlated scalar subquery on the foreign key.
//!
//! Every table is named with its own schema: the query's for a tenant model, the shared
//! schema for a shared one. Where one statement cannot reach both (SQLite keeps each schema
//! in its own file; a lookup from a shared model into tenant rows has no one tenant), the
//! lookup is refused with a typed error before any SQL is sent.

use sea_query::{Alias, Condition, Expr, ExprTrait, Query, SelectStatement, SubQueryStatement};

use crate::{
    error::{Error, Result},
    model::{path::Path, ModelMeta, Node, Ordering, Term, TypedTest, MAX_HOPS},
    target::Target,
};

/// Where a condition is rendered: in a statement at a target (lookups across relations
/// and subqueries name their tables there), or in a check constraint, which sees one row.
#[derive(Clone, Copy)]
enum At<'a> {
    Statement(&'a Target),
    Row(crate::Backend),
}

impl At<'_> {
    fn backend(self) -> crate::Backend {
        match self {
            At::Statement(target) => target.backend(),
            At::Row(backend) => backend,
        }
    }
}

/// `node` as a condition on rows of `model` at `target`.
pub(crate) fn condition(
    node: Node,
    model: &'static ModelMeta,
    target: &Target,
) -> Result<Condition> {
    render(node, model, At::Statement(target))
}

/// `node` as a check constraint of `model` on `backend`: a condition on the row itself.
/// A lookup across a relation, a subquery or another model's columns is
/// [`Error::InvalidRelation`] (a check sees one row).
pub(crate) fn row_condition(
    node: Node,
    model: &'static ModelMeta,
    backend: crate::Backend,
) -> Result<Condition> {
    render(node, model, At::Row(backend))
}

fn render(node: Node, model: &'static ModelMeta, at: At) -> Result<Condition> {
    let fold = |nodes: Vec<Node>, start: Condition| {
        nodes.into_iter().try_fold(start, |all, node| {
            Ok::<_, Error>(all.add(render(node, model, at)?))
        })
    };
    // What only a statement can render.
    let statement = || {
        match at {
        At::Statement(target) => Ok(target),
        At::Row(_) => Err(invalid(
            model,
            "",
            "a check constraint across a relation or with a subquery (a check sees only its own row)",
        )),
    }
    };
    Ok(match node {
        Node::Condition {
            model: built_on,
            condition,
        } => {
            if built_on.is_some_and(|built_on| built_on() != model) {
                return Err(invalid(
                    model,
                    "",
                    "a condition on another model's columns (reach them with Column::to or having)",
                ));
            }
            condition
        }
        Node::All(nodes) => fold(nodes, Condition::all())?,
        Node::Any(nodes) => fold(nodes, Condition::any())?,
        Node::Not(node) => render(*node, model, at)?.not(),
        Node::Forward { from, path, inner } => {
            let hops = walk(from(), model, &path)?;
            forward(&hops, *inner, statement()?)?
        }
        Node::Reverse {
            child,
            column,
            path,
            inner,
        } => reverse(child(), column, &path, *inner, model, statement()?)?,
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
                At::Statement(target) => crate::enum_types::typed(target, model, Some(ty), value),
                At::Row(_) => Expr::val(value),
            };
            Condition::all().add(match test {
                TypedTest::Compare(op, value) => op(Expr::col(column), typed(value)),
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
    })
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
struct Step {
    model: &'static ModelMeta,
    column: &'static str,
    nullable: bool,
    target: &'static ModelMeta,
}

/// The steps of `path` from `model`, each checked against the metadata.
fn walk(from: &'static ModelMeta, model: &'static ModelMeta, path: &Path) -> Result<Vec<Step>> {
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

fn forward(steps: &[Step], inner: Node, target: &Target) -> Result<Condition> {
    let Some(last) = steps.last() else {
        return Err(Error::InvalidRelation {
            model: "",
            column: "",
            reason: "an empty relation path",
        });
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

fn reverse(
    child: &'static ModelMeta,
    column: &'static str,
    path: &Path,
    inner: Node,
    model: &'static ModelMeta,
    target: &Target,
) -> Result<Condition> {
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
    let mut select = Query::select();
    select
        .column(fk.name)
        .from(table(model, child, target)?)
        .cond_where(
            Condition::all()
                .add(Expr::col(fk.name).is_not_null())
                .add(condition(inner, child, target)?),
        );
    Ok(in_subquery(model.primary_key_column().name, false, select))
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
fn table(
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

/// The ORDER BY expression of `ordering` on rows of `model` (of table `outer`): the column
/// itself, or a correlated subquery along the ordering's foreign keys.
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
