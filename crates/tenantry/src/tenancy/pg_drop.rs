//! `DROP SCHEMA` on PostgreSQL without making a user's statement a deadlock's victim.
//!
//! `DROP SCHEMA … CASCADE` locks the schema's objects in catalog order (a table's sequence
//! before the table); statements lock them in their own order (an `INSERT` its table, then
//! the sequence). A drop racing writes can deadlock them, and the server then fails
//! whichever waited first, often the user's statement (40P01). So each try first locks
//! every table of the schema, parents before children (`LOCK TABLE`, one statement): a
//! statement in flight holding a table finishes (the drop holds none of its sequences yet),
//! and a transaction writing a parent row then its children finishes before the drop takes
//! the children. Only then does `DROP SCHEMA` take the rest.
//!
//! Statements that lock tables in another order (a foreign key check locks the parent
//! after the child) can still close a cycle, so each try also runs with a `lock_timeout`
//! below the server's `deadlock_timeout` (1 s by default): a try that would deadlock gives
//! up, and releases its locks, before the server looks for a deadlock. The statements in
//! flight finish, and those started later find the schema gone. The tries wait 0.1 s, then
//! longer, up to 0.8 s; after [`GIVING_WAY_FOR`] of them the drop waits in the lock queue
//! with no timeout of its own, as a plain `DROP SCHEMA` does, so that traffic holding the
//! tables longer than the tries wait cannot put the drop off for ever (nor can an
//! autovacuum, which the server cancels only for a waiter past `deadlock_timeout`). A drop
//! that loses a deadlock then is tried again.

use std::time::Duration;

use sea_query::{Expr, ExprTrait, JoinType, Order, Query, SelectStatement};

use super::schemas::Schemas;
use crate::{
    error::{Error, Result},
    namespace::NamespaceStatement,
    pg_setting::set_local,
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// The lock waits of the first tries that give way; the later ones wait the last, below
/// the default `deadlock_timeout`.
const GIVING_WAY: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// How long the drop keeps giving way before it waits in the lock queue.
const GIVING_WAY_FOR: Duration = Duration::from_secs(30);

/// Tries of the queued drop that lost a deadlock, before its error is returned.
const DEADLOCK_TRIES: u32 = 5;

impl Schemas<'_> {
    /// Runs `drop` (a `DROP SCHEMA`) as the module docs describe.
    pub(super) async fn drop_giving_way(
        &self,
        schema: &SchemaName,
        drop: &NamespaceStatement,
    ) -> Result<()> {
        let started = tokio::time::Instant::now();
        let last = GIVING_WAY[GIVING_WAY.len() - 1];
        let waits = GIVING_WAY.into_iter().chain(std::iter::repeat(last));
        for (tries, wait) in (1u32..).zip(waits) {
            if started.elapsed() >= GIVING_WAY_FOR {
                break;
            }
            match self.drop_once(schema, drop, Some(wait)).await {
                Err(error) if error.database_code().as_deref() == Some("55P03") => {
                    tracing::debug!(schema = %schema, tries, "schema drop gave way to statements in flight");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
        let mut deadlocks = 0;
        loop {
            match self.drop_once(schema, drop, None).await {
                Err(error)
                    if error.database_code().as_deref() == Some("40P01")
                        && deadlocks + 1 < DEADLOCK_TRIES =>
                {
                    deadlocks += 1;
                    tracing::debug!(schema = %schema, deadlocks, "schema drop lost a deadlock; trying again");
                }
                other => return other,
            }
        }
    }

    /// One try in a transaction of its own, waiting at most `wait` for each lock (`None`:
    /// the session's `lock_timeout`).
    async fn drop_once(
        &self,
        schema: &SchemaName,
        drop: &NamespaceStatement,
        wait: Option<Duration>,
    ) -> Result<()> {
        let tx = self.registry.begin_on(self.database).await?;
        let target = Target {
            conn: Conn::Transaction(tx.clone()),
            schema: None,
        };
        let result = async {
            if let Some(wait) = wait {
                let millis = wait.as_millis().to_string() + "ms";
                target
                    .fetch_unchecked(&set_local("lock_timeout", &millis))
                    .await?;
            }
            let tables = target.fetch_unchecked(&tables_of(schema)).await?;
            let tables = tables
                .iter()
                .map(|row| row.get::<String>(0).map_err(Error::Database))
                .collect::<Result<Vec<_>>>()?;
            if !tables.is_empty() {
                let lock = NamespaceStatement::lock_tables(schema, &tables);
                target.execute_ddl(lock.sql()).await?;
            }
            target.execute_ddl(drop.sql()).await
        }
        .await;
        tx.end_with(result).await
    }
}

/// The schema's tables (partitioned ones included) in the order they were made, which is
/// parents before the tables whose foreign keys reference them (a table is made after the
/// tables it references): the order transactions that write a parent row, then its
/// children, lock them in.
///
/// `SELECT "c"."relname" FROM "pg_catalog"."pg_class" AS "c" JOIN "pg_catalog"."pg_namespace"
/// AS "n" ON "n"."oid" = "c"."relnamespace" WHERE "n"."nspname" = $1 AND "c"."relkind" IN
/// ('r', 'p') ORDER BY "c"."oid"`
fn tables_of(schema: &SchemaName) -> SelectStatement {
    Query::select()
        .column(("c", "relname"))
        .from_as(("pg_catalog", "pg_class"), "c")
        .join_as(
            JoinType::InnerJoin,
            ("pg_catalog", "pg_namespace"),
            "n",
            Expr::col(("n", "oid")).equals(("c", "relnamespace")),
        )
        .and_where(Expr::col(("n", "nspname")).eq(schema.as_str()))
        .and_where(Expr::col(("c", "relkind")).is_in(["r", "p"]))
        .order_by(("c", "oid"), Order::Asc)
        .to_owned()
}
