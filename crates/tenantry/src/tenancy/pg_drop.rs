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
//! longer, up to 0.8 s; after [`GIVING_WAY_FOR`] of them each waits [`QUEUED`], so that
//! traffic holding the tables longer than the short tries wait cannot put the drop off for
//! ever (nor can an autovacuum, which the server cancels only for a waiter past
//! `deadlock_timeout`). A try that loses a deadlock then is tried again, as is one whose
//! tables changed under it (a table or the schema dropped meanwhile: the next try reads the
//! catalog afresh, and `DROP SCHEMA IF EXISTS` of a schema gone is done).

use std::time::Duration;

use sea_query::{Expr, ExprTrait, Func, Order, SelectStatement};

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

/// How long the drop keeps giving way before its tries wait [`QUEUED`].
const GIVING_WAY_FOR: Duration = Duration::from_secs(30);

/// The lock wait of the tries after [`GIVING_WAY_FOR`]: long enough to outwait busy traffic
/// (the statements behind the drop wait for it, so only those in flight hold it up), short
/// enough that a drop cancelled while it waits (its client gone, which a backend waiting
/// for a lock does not notice) leaves its lock request queued that long at most.
const QUEUED: Duration = Duration::from_secs(5);

/// Tries that lost a deadlock (possible only once tries wait [`QUEUED`]), before its
/// error is returned.
const DEADLOCK_TRIES: u32 = 5;

/// Why a try ended without dropping and another is due.
enum Retry {
    /// It gave way: a lock waited past the try's `lock_timeout` (55P03).
    GaveWay,
    /// It lost a deadlock (40P01).
    Deadlock,
    /// The catalog changed under it: a table it read was dropped, or the schema itself by
    /// another drop (42P01, 3F000); the next try reads the catalog afresh.
    CatalogChanged,
}

fn retry(error: &Error) -> Option<Retry> {
    match error.database_code().as_deref() {
        Some("55P03") => Some(Retry::GaveWay),
        Some("40P01") => Some(Retry::Deadlock),
        Some("42P01" | "3F000") => Some(Retry::CatalogChanged),
        _ => None,
    }
}

impl Schemas<'_> {
    /// Runs `drop` (a `DROP SCHEMA … IF EXISTS`) as the module docs describe. Without
    /// `cascade`, a schema holding tables is [`Error::SchemaNotEmpty`] before any lock.
    pub(super) async fn drop_giving_way(
        &self,
        schema: &SchemaName,
        drop: &NamespaceStatement,
        cascade: bool,
    ) -> Result<()> {
        let started = tokio::time::Instant::now();
        let (mut tries, mut deadlocks) = (0usize, 0);
        loop {
            let wait = match GIVING_WAY.get(tries) {
                _ if started.elapsed() >= GIVING_WAY_FOR => QUEUED,
                Some(wait) => *wait,
                None => GIVING_WAY[GIVING_WAY.len() - 1],
            };
            tries = tries.saturating_add(1);
            let error = match self.drop_once(schema, drop, cascade, wait).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            match retry(&error) {
                Some(Retry::Deadlock) if deadlocks + 1 < DEADLOCK_TRIES => deadlocks += 1,
                Some(Retry::GaveWay | Retry::CatalogChanged) => {}
                _ => return Err(error),
            }
            tracing::debug!(schema = %schema, tries, %error, "schema drop gave way; trying again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// One try in a transaction of its own, waiting at most `wait` for each lock.
    async fn drop_once(
        &self,
        schema: &SchemaName,
        drop: &NamespaceStatement,
        cascade: bool,
        wait: Duration,
    ) -> Result<()> {
        let tx = self.registry.begin_on(self.database).await?;
        let target = Target {
            conn: Conn::Transaction(tx.clone()),
            schema: None,
        };
        let result = async {
            let millis = wait.as_millis().to_string() + "ms";
            target
                .fetch_unchecked(&set_local("lock_timeout", &millis))
                .await?;
            let tables = target.fetch_unchecked(&tables_of(schema)).await?;
            let tables = tables
                .iter()
                .map(|row| row.get::<String>(0).map_err(Error::Database))
                .collect::<Result<Vec<_>>>()?;
            if !tables.is_empty() {
                if !cascade {
                    return Err(Error::SchemaNotEmpty {
                        schema: schema.to_string(),
                    });
                }
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
/// `SELECT "c"."relname" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace"
/// AS "n" ON "n"."oid" = "c"."relnamespace" WHERE "n"."nspname" = $1 AND "c"."relkind" IN
/// ('r', 'p') AND has_table_privilege("c"."oid", 'UPDATE, DELETE, TRUNCATE') ORDER BY
/// "c"."oid"`
fn tables_of(schema: &SchemaName) -> SelectStatement {
    crate::namespace::pg_relations_in(schema.as_str())
        .column(("c", "relname"))
        .and_where(Expr::col(("c", "relkind")).is_in(["r", "p"]))
        // LOCK TABLE needs a privilege on the table that DROP SCHEMA (its owner's) does
        // not: a table of another role is left to the drop's own locks.
        .and_where(Expr::expr(
            Func::cust("has_table_privilege")
                .arg(Expr::col(("c", "oid")))
                .arg("UPDATE, DELETE, TRUNCATE"),
        ))
        .order_by(("c", "oid"), Order::Asc)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::tables_of;
    use crate::schema_name::SchemaName;

    #[test]
    fn tables_are_read_in_creation_order_among_those_the_role_may_lock() {
        let schema = SchemaName::parse("acme").unwrap();
        assert_eq!(
            tables_of(&schema).to_string(sea_query::PostgresQueryBuilder),
            r#"SELECT "c"."relname" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "n"."oid" = "c"."relnamespace" WHERE "n"."nspname" = 'acme' AND "c"."relkind" IN ('r', 'p') AND has_table_privilege("c"."oid", 'UPDATE, DELETE, TRUNCATE') ORDER BY "c"."oid" ASC"#
        );
    }
}
