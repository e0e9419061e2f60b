//! The runner's own connections: opened for a run, closed after it, never lent to or
//! borrowed from the application's pools (a backend that touched thousands of schemas holds
//! their catalog in memory, and a runner's session settings must not reach a request).

use sea_query_sqlx::SqlxBinder;
use sqlx::{Connection, Executor};

use crate::{
    backend::Backend,
    database::{Database, Pools},
    error::{Error, Result},
    row::Row,
    schema_name::SchemaName,
    target::render,
};

/// One connection of the runner.
pub(crate) enum RunnerConn {
    Postgres(sqlx::PgConnection),
    MySql(sqlx::MySqlConnection),
    Sqlite(sqlx::SqliteConnection),
    /// The connection is lent to a data step (or was lost in one): no statement runs.
    Lent(Backend),
}

/// Runs `$body` with `$c` bound to the backend's connection; `$lent` when it is lent.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr, lent => $lent:expr) => {
        match $conn {
            RunnerConn::Postgres($c) => $body,
            RunnerConn::MySql($c) => $body,
            RunnerConn::Sqlite($c) => $body,
            RunnerConn::Lent(_) => $lent,
        }
    };
}

fn lent_error() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(
        "the migration's connection was lost in a data step",
    ))
}

impl RunnerConn {
    /// A connection to the shared schema (PostgreSQL: to the database, which reaches every
    /// schema by qualified names).
    pub(crate) async fn shared(database: &Database) -> Result<RunnerConn> {
        Ok(match database.pools() {
            Pools::Postgres(pool) => RunnerConn::Postgres(
                sqlx::PgConnection::connect_with(&pool.connect_options()).await?,
            ),
            Pools::MySql(pool) => RunnerConn::MySql(
                sqlx::MySqlConnection::connect_with(&pool.connect_options()).await?,
            ),
            Pools::Sqlite(store) => RunnerConn::Sqlite(
                sqlx::SqliteConnection::connect_with(&store.connect_options(None)).await?,
            ),
        })
    }

    /// A connection whose own database is tenant `schema`'s (MySQL) or its file (SQLite).
    /// `Ok(None)` when the schema does not exist.
    pub(crate) async fn tenant(
        database: &Database,
        schema: &SchemaName,
        lock_wait: std::time::Duration,
    ) -> Result<Option<RunnerConn>> {
        let connected = match database.pools() {
            Pools::Postgres(_) => {
                return Err(Error::Unsupported {
                    backend: "postgres",
                    what: "a connection per tenant (PostgreSQL migrates by qualified names)",
                })
            }
            Pools::MySql(pool) => {
                let name = database.tenant_namespace_rules().server_name(schema)?;
                let options = pool.connect_options().database(&name);
                sqlx::MySqlConnection::connect_with(&options)
                    .await
                    .map(RunnerConn::MySql)
            }
            Pools::Sqlite(store) => {
                if !store.exists(schema) {
                    return Ok(None);
                }
                // The file's write lock is the tenant lock: waiting for it is the lock wait.
                let options = store.connect_options(Some(schema)).busy_timeout(lock_wait);
                sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .map(RunnerConn::Sqlite)
            }
        };
        match connected {
            Ok(conn) => Ok(Some(conn)),
            // MySQL 1049: unknown database; SQLite 14: cannot open the file.
            Err(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("42000") | Some("14"))
                    && is_missing(db.as_ref()) =>
            {
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            RunnerConn::Postgres(_) => Backend::Postgres,
            RunnerConn::MySql(_) => Backend::MySql,
            RunnerConn::Sqlite(_) => Backend::Sqlite,
            RunnerConn::Lent(backend) => *backend,
        }
    }

    /// Forgets every prepared statement (on the server too).
    pub(crate) async fn clear_cached_statements(&mut self) -> std::result::Result<(), sqlx::Error> {
        on_conn!(self, c => c.clear_cached_statements().await, lent => Err(lent_error()))
    }

    /// Takes the connection out (for a data step), leaving [`RunnerConn::Lent`].
    pub(crate) fn lend(&mut self) -> RunnerConn {
        std::mem::replace(self, RunnerConn::Lent(self.backend()))
    }

    /// Runs DDL (or any statement without parameters) through the simple protocol, so no
    /// statement is prepared against a table the migration is changing.
    pub(crate) async fn ddl(&mut self, sql: &str) -> std::result::Result<(), sqlx::Error> {
        on_conn!(self, c => c.execute(sqlx::raw_sql(sql)).await.map(drop), lent => Err(lent_error()))
    }

    /// SQLite: the rows `sql` (a `PRAGMA foreign_key_check`) reports, each as (table,
    /// referenced table); nothing on the other backends.
    pub(crate) async fn foreign_key_violations(
        &mut self,
        sql: &str,
    ) -> std::result::Result<Vec<(String, String)>, sqlx::Error> {
        use sqlx::Row as _;
        let RunnerConn::Sqlite(c) = self else {
            return Ok(Vec::new());
        };
        let rows = c.fetch_all(sqlx::raw_sql(sql)).await?;
        rows.iter()
            .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(2)?)))
            .collect()
    }

    /// Runs a sea-query statement with bound values; the rows affected.
    pub(crate) async fn exec(&mut self, statement: &impl SqlxBinder) -> Result<u64> {
        let (sql, values) = render(self.backend(), statement);
        Ok(match self {
            RunnerConn::Postgres(c) => sqlx::query_with(&sql, values)
                .execute(c)
                .await?
                .rows_affected(),
            RunnerConn::MySql(c) => sqlx::query_with(&sql, values)
                .execute(c)
                .await?
                .rows_affected(),
            RunnerConn::Sqlite(c) => sqlx::query_with(&sql, values)
                .execute(c)
                .await?
                .rows_affected(),
            RunnerConn::Lent(_) => return Err(lent_error().into()),
        })
    }

    /// Runs a sea-query statement with bound values; its rows.
    pub(crate) async fn rows(&mut self, statement: &impl SqlxBinder) -> Result<Vec<Row>> {
        let (sql, values) = render(self.backend(), statement);
        Ok(match self {
            RunnerConn::Postgres(c) => sqlx::query_with(&sql, values)
                .fetch_all(c)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
            RunnerConn::MySql(c) => sqlx::query_with(&sql, values)
                .fetch_all(c)
                .await?
                .into_iter()
                .map(Row::MySql)
                .collect(),
            RunnerConn::Sqlite(c) => sqlx::query_with(&sql, values)
                .fetch_all(c)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            RunnerConn::Lent(_) => return Err(lent_error().into()),
        })
    }

    /// Closes the connection politely.
    pub(crate) async fn close(self) {
        let _ = on_conn!(self, c => c.close().await, lent => Ok(()));
    }
}

/// A SQLite tenant in use by the runner: `drop_schema` waits for it (or is refused with
/// `SchemaBusy`) instead of deleting the file under the runner's transaction. Nothing on the
/// other backends, whose servers make a drop wait for the runner's locks.
pub(crate) struct TenantPin {
    database: Database,
    schema: Option<SchemaName>,
}

impl TenantPin {
    /// Pins `schema`; [`Error::SchemaNotFound`] if it is gone or being dropped.
    pub(crate) fn new(database: &Database, schema: &SchemaName) -> Result<TenantPin> {
        let pinned = match database.pools() {
            Pools::Sqlite(store) => {
                store.pin(schema)?;
                Some(schema.clone())
            }
            _ => None,
        };
        Ok(TenantPin {
            database: database.clone(),
            schema: pinned,
        })
    }
}

impl Drop for TenantPin {
    fn drop(&mut self) {
        if let (Some(schema), Pools::Sqlite(store)) = (&self.schema, self.database.pools()) {
            store.unpin(schema);
        }
    }
}

fn is_missing(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| e.number() == 1049)
        || db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
}
