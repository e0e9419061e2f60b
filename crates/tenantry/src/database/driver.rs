//! What differs between the three sqlx drivers on the statement path, as one trait with one
//! implementation per backend, so the pool, the executor and transactions stay generic.

use std::future::Future;

use futures_util::TryStreamExt as _;
use sea_query_sqlx::SqlxValues;
use sqlx::{Executor, MySql, Postgres, Sqlite};

use super::{pool::ConnPool, Checkout, Database, Pools};
use crate::{
    backend::Backend,
    error::{Error, Result},
    row::Row,
    schema_name::SchemaName,
    target::Done,
};

/// What a statement returns, and how it is sent.
pub(crate) enum Returns<'s> {
    /// Rows, collected (a prepared statement, values bound).
    Rows,
    /// Rows, each handed to the sink (a prepared statement, values bound) and none
    /// collected by the caller: decoded as they arrive where the driver does that best
    /// ([`Driver::ROWS_AS_THEY_ARRIVE`]), and never held twice, as rows and decoded.
    Into(&'s mut dyn RowSink),
    /// Nothing but a count (a prepared statement, values bound).
    Nothing,
    /// DDL without values, through the simple query protocol.
    Ddl,
}

impl Returns<'_> {
    /// The same, for one more use.
    fn reborrow(&mut self) -> Returns<'_> {
        match self {
            Returns::Rows => Returns::Rows,
            Returns::Into(sink) => Returns::Into(&mut **sink),
            Returns::Nothing => Returns::Nothing,
            Returns::Ddl => Returns::Ddl,
        }
    }
}

/// Takes a statement's rows one at a time, as they arrive ([`Returns::Into`]).
pub(crate) trait RowSink: Send {
    /// Takes one row; `false` says it wants no more (the rest of the result is still
    /// read, so that the statement ends, but not handed over).
    fn take(&mut self, row: &Row) -> bool;
    /// Forgets every row taken: the statement runs again from its start.
    fn restart(&mut self);
}

/// The result of a statement: its rows, or what it did.
pub(crate) enum Outcome {
    Rows(Vec<Row>),
    Done(Done),
}

/// One sqlx driver.
pub(crate) trait Driver: sqlx::Database {
    const BACKEND: Backend;

    /// Whether the rows of [`Returns::Into`] are handed to the sink as each arrives, or
    /// read to the end of the result first and then handed over. Measured on W12 (a million
    /// rows in statements of 10,000), the two ways alternated run by run: PostgreSQL's ORM
    /// read 1.78-1.82 million rows/s as they arrive against 1.5 million read first; against
    /// bare sqlx reading its batches whole, MariaDB 1.09-1.20 as they arrive and 1.08-1.11
    /// read first, SQLite (whose rows cross from its worker thread one at a time) 1.9-2.0
    /// as they arrive and 1.00-1.07 read first.
    const ROWS_AS_THEY_ARRIVE: bool;

    /// Runs one statement on `conn`.
    fn run<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        values: SqlxValues,
        returns: Returns<'c>,
    ) -> impl Future<Output = Result<Outcome, sqlx::Error>> + Send + 'c;

    /// Forgets (and closes on the server) every statement `conn` prepared.
    fn clear_statements(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + '_;

    /// `database`'s pool of this driver's connections; `None` on SQLite, whose schemas
    /// each have a pool of their own.
    fn pool_of(database: &Database) -> Option<&ConnPool<Self>>;
}

/// Whether `error` is "no such table" (PostgreSQL 42P01 / 3F000, MySQL 1146 / 1049), which
/// is also what a missing schema looks like.
fn is_missing_table(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(mysql.number(), 1146 | 1049);
    }
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| matches!(pg.code(), "42P01" | "3F000"))
}

/// Whether `error` is PostgreSQL's "cached plan must not change result type" (0A000): a
/// prepared statement whose table was altered since it was prepared (a migration ran).
fn is_stale_plan(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| {
            // The routine names it whatever the server's message language.
            pg.code() == "0A000"
                && (pg.routine() == Some("RevalidateCachedQuery")
                    || pg.message().contains("cached plan"))
        })
}

/// Whether `error` is what SQLite reports for a file removed under a statement: an I/O
/// error (primary code 10, e.g. 522 "short read" when the `-wal`/`-shm` files went), a file
/// it cannot open (14) or a table that is not there.
fn is_sqlite_file_gone(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_none() {
        return false;
    }
    let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
    matches!(code & 0xff, 10 | 14) || db.message().starts_with("no such table")
}

/// On the connection that just failed with "no such table": whether `schema` of `database`
/// is missing. `None` when that cannot be told (the check failed too, say inside an aborted
/// PostgreSQL transaction): the caller keeps the original error.
async fn schema_missing<DB: Driver>(
    conn: &mut DB::Connection,
    database: &Database,
    schema: &SchemaName,
) -> Option<bool> {
    if DB::BACKEND == Backend::Sqlite {
        return None;
    }
    let name = database.server_schema_name(schema).ok()?;
    let select = crate::namespace::exists_statement(DB::BACKEND, &name);
    let (sql, values) = crate::target::render(DB::BACKEND, &select);
    match DB::run(conn, &sql, values, Returns::Rows).await {
        Ok(Outcome::Rows(rows)) => crate::namespace::holds_exactly(&rows, &name)
            .ok()
            .map(|exists| !exists),
        _ => None,
    }
}

/// Where a statement runs: its database and, for a tenant's table, the schema.
#[derive(Clone, Copy)]
pub(crate) struct Place<'a> {
    pub(crate) database: &'a Database,
    pub(crate) schema: Option<&'a SchemaName>,
}

/// Runs one statement on a checked-out connection. A failure that says the connection is
/// gone closes it; "no such table" in a schema is checked on the same connection and
/// becomes [`Error::SchemaNotFound`] only when the schema is really missing, else the
/// original error is returned unchanged.
pub(crate) async fn run_on<DB: Driver>(
    checkout: &mut Checkout<DB>,
    place: Place<'_>,
    sql: &str,
    values: SqlxValues,
    mut returns: Returns<'_>,
) -> Result<Outcome> {
    if DB::BACKEND == Backend::Sqlite
        && place.schema.is_some()
        && sql.contains(crate::naming::SQLITE_SHARED_QUALIFIER)
    {
        attach_shared(checkout, place.database).await?;
    }
    let conn = checkout.raw()?;
    let error = match DB::run(conn, sql, values, returns.reborrow()).await {
        Ok(outcome) => return Ok(outcome),
        Err(error) => error,
    };
    checkout.after_error(&error);
    if is_stale_plan(&error) {
        // Every statement this connection prepared may be stale: forget them all, so the
        // next use of each prepares it again against the altered table.
        if let Ok(conn) = checkout.raw() {
            if DB::clear_statements(conn).await.is_err() {
                checkout.discard(false);
            }
        }
        tracing::info!(error = %error, "a prepared statement's table changed; statement cache cleared");
        return Err(Error::CachedPlanInvalidated {
            message: error.to_string(),
        });
    }
    // SQLite: a statement racing `drop_schema` of its schema's file.
    if let (Some(schema), Pools::Sqlite(store)) = (place.schema, place.database.pools()) {
        if is_sqlite_file_gone(&error) && !store.exists(schema) {
            return Err(Error::SchemaNotFound {
                schema: schema.to_string(),
            });
        }
    }
    if let (Some(schema), true) = (place.schema, is_missing_table(&error)) {
        let here = match checkout.raw() {
            Ok(conn) => schema_missing::<DB>(conn, place.database, schema).await,
            Err(_) => None,
        };
        let missing = match here {
            Some(missing) => Some(missing),
            None => schema_missing_elsewhere::<DB>(place.database, schema).await,
        };
        if missing == Some(true) {
            return Err(Error::SchemaNotFound {
                schema: schema.to_string(),
            });
        }
    }
    Err(error.into())
}

/// [`schema_missing`] on a connection of the pool that is free now, for a statement whose
/// own connection cannot tell (a PostgreSQL transaction aborted by the failure, say one
/// queued behind the schema's drop). `None` when no connection is free at once: the check
/// never waits behind the caller's own connection (a pool of one in a transaction).
async fn schema_missing_elsewhere<DB: Driver>(
    database: &Database,
    schema: &SchemaName,
) -> Option<bool> {
    let mut checkout = DB::pool_of(database)?.get_free().await?;
    let missing = schema_missing::<DB>(checkout.raw().ok()?, database, schema).await;
    checkout.release();
    missing
}

/// SQLite: attaches the main file to a connection to a tenant's file, as
/// [`SQLITE_SHARED_ALIAS`](crate::naming::SQLITE_SHARED_ALIAS), once per connection. Not
/// possible inside a transaction: a transaction in a tenant's file attaches before `BEGIN`.
pub(crate) async fn attach_shared<DB: Driver>(
    checkout: &mut Checkout<DB>,
    database: &Database,
) -> Result<()> {
    if checkout.shared_attached() {
        return Ok(());
    }
    let Pools::Sqlite(store) = database.pools() else {
        return Ok(());
    };
    let Some(uri) = store.main_file_uri() else {
        return Err(Error::Unsupported {
            backend: Backend::Sqlite.name(),
            what: "a statement joining a tenant's table to a shared one on an in-memory SQLite database (only a file can be attached read-only)",
        });
    };
    let uri = sea_query::Value::from(uri);
    let values = SqlxValues(sea_query::Values(vec![uri]));
    let conn = checkout.raw()?;
    match DB::run(conn, SQLITE_ATTACH_SHARED, values, Returns::Nothing).await {
        // A connection lent for a while (a migration's) keeps its attachment across loans.
        Err(sqlx::Error::Database(db)) if db.message().ends_with("is already in use") => {}
        Err(error) => {
            checkout.after_error(&error);
            return Err(error.into());
        }
        Ok(_) => {}
    }
    checkout.set_shared_attached();
    Ok(())
}

/// Attaches the main file (the URI bound) under the shared alias. Not expressible in
/// sea-query; the alias is a constant and the file a bound value.
const SQLITE_ATTACH_SHARED: &str = "ATTACH DATABASE ? AS \"tenantry_shared\"";

/// [`run_on`] a connection checked out for this one statement, then hands it back. A
/// statement whose cached plan a migration invalidated (PostgreSQL 0A000) runs once more on
/// the same connection, its cache cleared, with the values `again` gives (rendered again
/// only then, so the hot path clones nothing); each such retry is counted in
/// [`Database::stale_plan_retries`].
pub(crate) async fn run_pooled<DB: Driver>(
    mut checkout: Checkout<DB>,
    place: Place<'_>,
    sql: &str,
    values: SqlxValues,
    mut returns: Returns<'_>,
    again: impl FnOnce() -> SqlxValues,
) -> Result<Outcome> {
    let mut result = run_on(&mut checkout, place, sql, values, returns.reborrow()).await;
    if let Err(Error::CachedPlanInvalidated { .. }) = &result {
        place.database.count_stale_plan_retry();
        if let Returns::Into(sink) = &mut returns {
            sink.restart();
        }
        result = run_on(&mut checkout, place, sql, again(), returns).await;
    }
    checkout.release();
    result
}

/// Implements [`Driver`] for one sqlx database: its backend, how its rows are wrapped and
/// what its `execute` reports.
macro_rules! driver {
    ($db:ty, $backend:ident, $row:ident, as_they_arrive: $arrive:expr, pool: |$database:ident| $pool:expr, |$done:ident| $insert_id:expr) => {
        impl Driver for $db {
            const BACKEND: Backend = Backend::$backend;
            const ROWS_AS_THEY_ARRIVE: bool = $arrive;

            fn pool_of($database: &Database) -> Option<&ConnPool<Self>> {
                $pool
            }

            async fn clear_statements(
                conn: &mut Self::Connection,
            ) -> std::result::Result<(), sqlx::Error> {
                sqlx::Connection::clear_cached_statements(conn).await
            }

            async fn run<'c>(
                conn: &'c mut Self::Connection,
                sql: &'c str,
                values: SqlxValues,
                returns: Returns<'c>,
            ) -> std::result::Result<Outcome, sqlx::Error> {
                Ok(match returns {
                    // sqlx's `fetch_all` collects this same stream into a Vec of its own
                    // rows, which would then be copied into a Vec of `Row`s.
                    Returns::Rows => Outcome::Rows(
                        sqlx::query_with(sql, values)
                            .fetch(conn)
                            .map_ok(Row::$row)
                            .try_collect()
                            .await?,
                    ),
                    Returns::Into(sink) => {
                        let mut rows = sqlx::query_with(sql, values).fetch(conn);
                        if Self::ROWS_AS_THEY_ARRIVE {
                            // Read to the end even once the sink stopped taking rows: the
                            // statement then ends here, and a server error in its later
                            // rows is this caller's (a transaction learns it is aborted).
                            // Stopped half way, the rest would stay on the socket for the
                            // connection's next user, who may be another tenant, and a
                            // server blocked sending it would keep its table locks.
                            let mut taking = true;
                            while let Some(row) = rows.try_next().await? {
                                if taking {
                                    taking = sink.take(&Row::$row(row));
                                }
                            }
                        } else {
                            let rows: Vec<Row> = rows.map_ok(Row::$row).try_collect().await?;
                            for row in &rows {
                                if !sink.take(row) {
                                    break;
                                }
                            }
                        }
                        Outcome::Done(Done {
                            rows_affected: 0,
                            last_insert_id: None,
                        })
                    }
                    Returns::Nothing => {
                        let $done = sqlx::query_with(sql, values).execute(conn).await?;
                        Outcome::Done(Done {
                            rows_affected: $done.rows_affected(),
                            last_insert_id: $insert_id,
                        })
                    }
                    // `Executor::execute(conn, raw_sql(..))` rather than
                    // `raw_sql(..).execute(conn)`: the latter's future is not `Send` for
                    // every lifetime (sqlx issue #3150).
                    Returns::Ddl => {
                        conn.execute(sqlx::raw_sql(sql)).await?;
                        Outcome::Done(Done {
                            rows_affected: 0,
                            last_insert_id: None,
                        })
                    }
                })
            }
        }
    };
}

driver!(Postgres, Postgres, Postgres, as_they_arrive: true, pool: |database| match database.pools() {
    Pools::Postgres(pool) => Some(pool),
    _ => None,
}, |done| None);
driver!(MySql, MySql, MySql, as_they_arrive: false, pool: |database| match database.pools() {
    Pools::MySql(pool) => Some(pool),
    _ => None,
}, |done| {
    Some(done.last_insert_id())
});
driver!(Sqlite, Sqlite, Sqlite, as_they_arrive: false, pool: |database| { let _ = database; None }, |done| None);
