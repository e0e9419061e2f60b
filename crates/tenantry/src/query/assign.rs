//! What an UPDATE (or an upsert's update) writes: values checked against their columns,
//! expressions rendered for the backend, and the version column bumped.

use sea_query::{Expr, ExprTrait, Func};

use crate::{
    error::{Error, Result},
    field::SqlType,
    model::{Assigned, Assignment, Model, Proposed, Scope},
    query::{
        lookup::{on_model, refuse_decimal_arithmetic},
        write::through_relation,
    },
    target::Target,
};

/// What assignment `a` writes, as an expression on `target`'s backend: a value (a decimal
/// checked against its column) or an expression over the row's columns, qualified by
/// `table` when given.
pub(crate) fn assigned_expr<M: Model>(
    target: &Target,
    a: &Assignment<M>,
    table: Option<&'static str>,
) -> Result<Expr> {
    if a.through_relation {
        return Err(through_relation::<M>(a.column));
    }
    let bind = |value| match M::META.column(a.column) {
        Some(column) => column.bind(M::META, value),
        None => Ok(value),
    };
    match &a.value {
        Assigned::Value(value) => match M::META.column(a.column) {
            Some(column) => crate::enum_types::bind(target, M::META, column, value.clone()),
            None => Ok(Expr::val(value.clone())),
        },
        Assigned::Expression { term, decimal } => {
            let capabilities = target.backend().capabilities();
            // A qualifying table is given for an upsert's update only, where the proposed
            // row is in scope.
            let proposed = match (table, capabilities.conflict_target) {
                (None, _) => Proposed::Refused,
                (Some(_), true) => Proposed::Excluded,
                (Some(_), false) => Proposed::Values,
            };
            let scope = Scope {
                table,
                checked_division: capabilities.loose_column_types,
                proposed,
            };
            let expr = term
                .render(scope, &bind)
                .map_err(|e| on_model(e, M::META))?;
            refuse_decimal_arithmetic(target, *decimal, &[term])?;
            Ok(checked_in_statement::<M>(target, a.column, expr))
        }
    }
}

/// The `#[model(version)]` column of `M` when `written` does not name it: every UPDATE
/// bumps it, so that an instance read before it cannot be saved over it unnoticed.
pub(crate) fn unassigned_version<M: Model>(
    mut written: impl Iterator<Item = &'static str>,
) -> Option<&'static str> {
    let meta = M::META;
    let version = meta.columns[meta.version?].name;
    (!written.any(|name| name == version)).then_some(version)
}

/// MySQL makes an UPDATE's assignments in order, each expression seeing the columns
/// assigned before it (`SET a = b, b = a` copies, elsewhere it swaps): an expression that
/// reads a column assigned earlier in the statement (`earlier`, then `assignments`) would
/// compute another value there than on the other backends, and is refused.
pub(crate) fn refuse_reads_of_earlier_assignments<M>(
    target: &Target,
    earlier: &[&'static str],
    assignments: &[Assignment<M>],
) -> Result<()> {
    if !target.backend().capabilities().assignments_in_order {
        return Ok(());
    }
    let mut assigned: Vec<&'static str> = earlier.to_vec();
    for a in assignments {
        if let Assigned::Expression { term, .. } = &a.value {
            if assigned.iter().any(|name| term.reads(name)) {
                return Err(Error::Unsupported {
                    backend: target.backend().name(),
                    what: "an expression reading a column assigned earlier in the same statement (MySQL would read the new value)",
                });
            }
        }
        assigned.push(a.column);
    }
    Ok(())
}

/// On a backend whose columns take any value (SQLite), the computed value for `column` is
/// checked in the statement: an integer outside the column's range (or turned into a float
/// by an overflow), text longer than a `VARCHAR(n)` column, or a NULL from a NOT NULL
/// column's arithmetic (a division by zero)
/// fails the statement with SQLite's "integer overflow" (`abs` of the least integer)
/// instead of being written.
pub(crate) fn checked_in_statement<M: Model>(
    target: &Target,
    column: &'static str,
    expr: Expr,
) -> Expr {
    let Some(meta) = M::META.column(column) else {
        return expr;
    };
    if !target.backend().capabilities().loose_column_types {
        return expr;
    }
    let fail = || Expr::from(Func::abs(Expr::val(i64::MIN)));
    let range = match meta.sql_type {
        SqlType::SmallInteger => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
        SqlType::Integer => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        SqlType::BigInteger => Some((i64::MIN, i64::MAX)),
        _ => None,
    };
    let null = Expr::val(sea_query::Value::BigInt(None));
    match range {
        Some((low, high)) => {
            let integer = Expr::from(Func::cust("typeof").arg(expr.clone()))
                .eq("integer")
                .and(expr.clone().between(low, high));
            let mut case = sea_query::CaseStatement::new();
            if meta.nullable {
                case = case.case(expr.clone().is_null(), null);
            }
            case.case(integer, expr).finally(fail()).into()
        }
        None if meta.sql_type == SqlType::Varchar => {
            // Text longer than the column (copied from a longer one), as the others refuse.
            let length = Expr::from(Func::char_length(expr.clone()));
            let n = i64::from(meta.max_length.unwrap_or(255));
            let mut case = sea_query::CaseStatement::new();
            if meta.nullable {
                case = case.case(expr.clone().is_null(), null);
            }
            case.case(length.lte(n), expr).finally(fail()).into()
        }
        None if !meta.nullable => sea_query::CaseStatement::new()
            .case(expr.clone().is_not_null(), expr)
            .finally(fail())
            .into(),
        None => expr,
    }
}
