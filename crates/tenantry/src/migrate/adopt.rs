//! Adoption: a schema made before migrations existed (tables, no history) whose tables are
//! what its scope's first migration builds is recorded as having run it; one whose tables
//! differ is refused, naming the differences.

use std::collections::{BTreeMap, BTreeSet};

use sea_query::{Expr, ExprTrait, Func, Query};

use super::{conn::RunnerConn, migration::Migration, operation::Operation};
use crate::{backend::Backend, error::Result};

/// The tables `migration` creates, with their column names.
fn expected(migration: &Migration) -> BTreeMap<String, BTreeSet<String>> {
    migration
        .operations()
        .iter()
        .filter_map(|op| match op {
            Operation::CreateTable { table, columns, .. } => Some((
                table.clone(),
                columns.iter().map(|c| c.name.clone()).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// The columns of the tables named in `tables` that exist in the connection's schema
/// (`namespace` on PostgreSQL; the connection's own database or file elsewhere).
async fn actual(
    conn: &mut RunnerConn,
    namespace: Option<&str>,
    tables: &BTreeMap<String, BTreeSet<String>>,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    match conn.backend() {
        Backend::Postgres | Backend::MySql => {
            let schema_is = match (conn.backend(), namespace) {
                (Backend::Postgres, Some(ns)) => Expr::col("table_schema").eq(ns),
                (Backend::Postgres, None) => {
                    Expr::col("table_schema").eq(Func::cust("current_schema"))
                }
                _ => Expr::col("table_schema").eq(Func::cust("DATABASE")),
            };
            let select = Query::select()
                .columns(["table_name", "column_name"])
                .from(("information_schema", "columns"))
                .and_where(schema_is)
                .and_where(Expr::col("table_name").is_in(tables.keys().cloned()))
                .to_owned();
            for row in conn.rows(&select).await? {
                let (table, column): (String, String) = (row.get(0)?, row.get(1)?);
                found.entry(table).or_default().insert(column);
            }
        }
        Backend::Sqlite => {
            for table in tables.keys() {
                let select = Query::select()
                    .column("name")
                    .from_function(Func::cust("pragma_table_info").arg(table.as_str()), "p")
                    .to_owned();
                let columns: BTreeSet<String> = conn
                    .rows(&select)
                    .await?
                    .iter()
                    .map(|row| row.get::<String>(0))
                    .collect::<std::result::Result<_, _>>()?;
                if !columns.is_empty() {
                    found.insert(table.clone(), columns);
                }
            }
        }
    }
    Ok(found)
}

/// What adoption finds in a schema without a history.
pub(crate) enum Adoption {
    /// None of the first migration's tables exist: a new schema, migrated from the start.
    Fresh,
    /// Every table is there with exactly the first migration's columns.
    Matches,
    /// Some tables are there, but not as the first migration builds them.
    Differs(String),
}

/// Compares the schema with what `first` builds.
pub(crate) async fn inspect(
    conn: &mut RunnerConn,
    namespace: Option<&str>,
    first: &Migration,
) -> Result<Adoption> {
    let expected = expected(first);
    if expected.is_empty() {
        return Ok(Adoption::Fresh);
    }
    let actual = actual(conn, namespace, &expected).await?;
    if actual.is_empty() {
        return Ok(Adoption::Fresh);
    }
    let mut differences = Vec::new();
    for (table, columns) in &expected {
        match actual.get(table) {
            None => differences.push(format!("table {table} is missing")),
            Some(found) if found != columns => {
                let missing: Vec<_> = columns.difference(found).cloned().collect();
                let extra: Vec<_> = found.difference(columns).cloned().collect();
                differences.push(format!(
                    "table {table}: missing columns [{}], unexpected columns [{}]",
                    missing.join(", "),
                    extra.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    Ok(if differences.is_empty() {
        Adoption::Matches
    } else {
        Adoption::Differs(differences.join("; "))
    })
}
