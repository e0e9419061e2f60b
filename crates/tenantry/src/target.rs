//! Where a statement runs (a database or a transaction, and a schema) and how it gets there.

use sea_query::{DynIden, MysqlQueryBuilder, PostgresQueryBuilder, SqliteQueryBuilder, TableName};
use sea_query_sqlx::{SqlxBinder, SqlxValues};
use tracing::Instrument;

use crate::{
    backend::{Backend, SchemaKind},
    database::{Database, Pools},
    error::{Error, Result},
    model::ModelMeta,
    row::Row,
    schema_name::SchemaName,
    transaction::{Transaction, WeakTransaction},
};

/// Where an instance was loaded from or saved to: its database and schema (`None` is the
/// database's default schema), and the transaction it was read or written in, if any. Saves,
/// deletes, refreshes and relation loads go back here: into that transaction while it is
/// open, to the database once it is finished.
#[derive(Clone, Debug)]
pub struct Origin {
    pub(crate) database: Database,
    pub(crate) schema: Option<SchemaName>,
    /// Held weakly: an instance does not keep its transaction (and connection) alive.
    pub(crate) transaction: Option<WeakTransaction>,
}

impl Origin {
    /// The database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The schema, `None` for the default one.
    pub fn schema(&self) -> Option<&SchemaName> {
        self.schema.as_ref()
    }

    /// The connection to go back through: the transaction while it is open (and can reach
    /// the schema), else the database.
    pub(crate) fn conn(&self) -> Conn {
        match self.transaction.as_ref().and_then(WeakTransaction::open) {
            Some(tx) if tx.serves(self.schema.as_ref()) => Conn::Transaction(tx),
            _ => Conn::Database(self.database.clone()),
        }
    }
}

/// The connection side of a target.
#[derive(Clone)]
pub(crate) enum Conn {
    Database(Database),
    Transaction(Transaction),
}

/// A resolved target: a connection and a schema.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) conn: Conn,
    pub(crate) schema: Option<SchemaName>,
}

/// The outcome of a statement that returns no rows.
pub(crate) struct Done {
    pub(crate) rows_affected: u64,
    pub(crate) last_insert_id: Option<u64>,
}

/// Renders `statement` with the backend's query builder: identifiers quoted, values bound.
pub(crate) fn render(backend: Backend, statement: &impl SqlxBinder) -> (String, SqlxValues) {
    match backend {
        Backend::Postgres => statement.build_sqlx(PostgresQueryBuilder),
        Backend::MySql => statement.build_sqlx(MysqlQueryBuilder),
        Backend::Sqlite => statement.build_sqlx(SqliteQueryBuilder),
    }
}

/// The qualified name of `table` in `schema` on `database`.
pub(crate) fn table_name(
    database: &Database,
    schema: Option<&SchemaName>,
    table: &'static str,
) -> TableName {
    let namespace: Option<DynIden> = match database.backend().capabilities().schema_kind {
        SchemaKind::File => None,
        SchemaKind::Schema | SchemaKind::Database => match schema {
            Some(schema) => Some(schema.clone().into()),
            None => database
                .default_namespace()
                .map(|ns| DynIden::from(ns.to_string())),
        },
    };
    TableName(
        namespace.map(|ns| sea_query::SchemaName(None, ns)),
        table.into(),
    )
}

impl Target {
    pub(crate) fn database(&self) -> &Database {
        match &self.conn {
            Conn::Database(db) => db,
            Conn::Transaction(tx) => tx.database(),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        self.database().backend()
    }

    pub(crate) fn table(&self, meta: &ModelMeta) -> TableName {
        table_name(self.database(), self.schema.as_ref(), meta.table)
    }

    pub(crate) fn origin(&self) -> Origin {
        Origin {
            database: self.database().clone(),
            schema: self.schema.clone(),
            transaction: match &self.conn {
                Conn::Transaction(tx) => Some(tx.downgrade()),
                Conn::Database(_) => None,
            },
        }
    }

    /// Runs a statement and returns its rows.
    pub(crate) async fn fetch_all(&self, statement: &impl SqlxBinder) -> Result<Vec<Row>> {
        let result = self
            .fetch_unchecked(statement)
            .instrument(self.span())
            .await;
        self.check(result).await
    }

    /// The span of one statement, with the schema it runs in and the task's tenant. Its
    /// fields are only computed when a subscriber listens at DEBUG level.
    fn span(&self) -> tracing::Span {
        tracing::debug_span!(
            "tenantry.query",
            backend = self.backend().name(),
            schema = self.schema.as_ref().map_or("", SchemaName::as_str),
            tenant = tracing::field::display(
                crate::get_tenant().as_ref().map_or("", SchemaName::as_str)
            ),
        )
    }

    /// Runs a statement and returns its rows, without telling a missing schema apart.
    pub(crate) async fn fetch_unchecked(&self, statement: &impl SqlxBinder) -> Result<Vec<Row>> {
        let (sql, values) = render(self.backend(), statement);
        match &self.conn {
            Conn::Database(db) => fetch_on_pool(db, self.schema.as_ref(), &sql, values).await,
            Conn::Transaction(tx) => tx.fetch_all(self.schema.as_ref(), &sql, values).await,
        }
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute(&self, statement: &impl SqlxBinder) -> Result<Done> {
        let (sql, values) = render(self.backend(), statement);
        let run = async {
            match &self.conn {
                Conn::Database(db) => execute_on_pool(db, self.schema.as_ref(), &sql, values).await,
                Conn::Transaction(tx) => tx.execute(self.schema.as_ref(), &sql, values).await,
            }
        };
        let result = run.instrument(self.span()).await;
        self.check(result).await
    }

    /// Turns "no such table" in a schema that does not exist into [`Error::SchemaNotFound`].
    async fn check<T>(&self, result: Result<T>) -> Result<T> {
        let error = match result {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        match (&self.schema, is_missing_table(&error)) {
            (Some(schema), true) if !crate::namespace::exists(self.database(), schema).await? => {
                Err(Error::SchemaNotFound {
                    schema: schema.to_string(),
                })
            }
            _ => Err(error),
        }
    }
}

/// PostgreSQL 42P01 / 3F000, MySQL 1146 / 1049.
fn is_missing_table(error: &Error) -> bool {
    matches!(
        error.database_code().as_deref(),
        Some("42P01" | "3F000" | "42S02" | "42000" | "1146" | "1049")
    )
}

/// Runs `sql` on a warm connection of `stash` (see [`crate::database::Stash`]).
macro_rules! on_lease {
    ($stash:expr, $pool:expr, |$conn:ident| $query:expr) => {{
        let mut lease = $stash.lease($pool).await?;
        let outcome = match lease.conn() {
            Some($conn) => $query.await,
            None => Err(sqlx::Error::PoolClosed),
        };
        lease.finish(&outcome);
        outcome?
    }};
}

async fn fetch_on_pool(
    db: &Database,
    schema: Option<&SchemaName>,
    sql: &str,
    values: SqlxValues,
) -> Result<Vec<Row>> {
    Ok(match db.pools() {
        Pools::Postgres(pool) => {
            let rows = on_lease!(db.postgres_stash(), pool, |conn| sqlx::query_with(
                sql, values
            )
            .fetch_all(conn));
            rows.into_iter().map(Row::Postgres).collect()
        }
        Pools::MySql(pool) => {
            let rows = on_lease!(db.mysql_stash(), pool, |conn| sqlx::query_with(sql, values)
                .fetch_all(conn));
            rows.into_iter().map(Row::MySql).collect()
        }
        Pools::Sqlite(store) => {
            let pool = store.pool(schema)?;
            let rows = sqlx::query_with(sql, values).fetch_all(&pool).await?;
            rows.into_iter().map(Row::Sqlite).collect()
        }
    })
}

async fn execute_on_pool(
    db: &Database,
    schema: Option<&SchemaName>,
    sql: &str,
    values: SqlxValues,
) -> Result<Done> {
    Ok(match db.pools() {
        Pools::Postgres(pool) => {
            let done = on_lease!(db.postgres_stash(), pool, |conn| sqlx::query_with(
                sql, values
            )
            .execute(conn));
            Done {
                rows_affected: done.rows_affected(),
                last_insert_id: None,
            }
        }
        Pools::MySql(pool) => {
            let done = on_lease!(db.mysql_stash(), pool, |conn| sqlx::query_with(sql, values)
                .execute(conn));
            Done {
                rows_affected: done.rows_affected(),
                last_insert_id: Some(done.last_insert_id()),
            }
        }
        Pools::Sqlite(store) => {
            let pool = store.pool(schema)?;
            let done = sqlx::query_with(sql, values).execute(&pool).await?;
            Done {
                rows_affected: done.rows_affected(),
                last_insert_id: None,
            }
        }
    })
}

impl Target {
    /// Runs one DDL statement through the simple query protocol.
    ///
    /// `Executor::execute(executor, raw_sql(..))` rather than `raw_sql(..).execute(executor)`:
    /// the latter's future is not `Send` for every lifetime (sqlx issue #3150), which would
    /// keep `create_schema` out of `tokio::spawn` and axum handlers.
    pub(crate) async fn execute_ddl(&self, sql: &str) -> Result<()> {
        match &self.conn {
            Conn::Database(db) => match db.pools() {
                Pools::Postgres(pool) => {
                    sqlx::Executor::execute(pool, sqlx::raw_sql(sql)).await?;
                }
                Pools::MySql(pool) => {
                    sqlx::Executor::execute(pool, sqlx::raw_sql(sql)).await?;
                }
                Pools::Sqlite(store) => {
                    let pool = store.pool(self.schema.as_ref())?;
                    sqlx::Executor::execute(&pool, sqlx::raw_sql(sql)).await?;
                }
            },
            Conn::Transaction(tx) => tx.execute_ddl(self.schema.as_ref(), sql).await?,
        }
        Ok(())
    }
}
