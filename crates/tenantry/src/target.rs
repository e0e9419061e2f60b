//! Where a statement runs (a database or a transaction, and a schema) and how it gets there.

use std::sync::Arc;

use sea_query::{MysqlQueryBuilder, PostgresQueryBuilder, SqliteQueryBuilder, TableName};
use sea_query_sqlx::{SqlxBinder, SqlxValues};
use tracing::Instrument;

use crate::{
    backend::Backend,
    database::{run_pooled, Database, Outcome, Place, Pools, Returns, RowSink},
    error::Result,
    model::ModelMeta,
    row::Row,
    schema_name::SchemaName,
    transaction::{Transaction, WeakTransaction},
};

/// Where an instance was loaded from or saved to: its database and schema (`None` is the
/// database's default schema), and the transaction it was read or written in, if any. Saves,
/// deletes, refreshes and relation loads go back here: into that transaction while it is
/// open, to the database once it is finished.
///
/// Shared by every instance a statement returns: cloning it is one reference count, not one
/// per part (1,100 instances of a prefetch cloned three counts each).
#[derive(Clone, Debug)]
pub struct Origin(Arc<OriginParts>);

/// What an [`Origin`] holds.
#[derive(Debug)]
struct OriginParts {
    pub(crate) database: Database,
    pub(crate) schema: Option<SchemaName>,
    /// Held weakly: an instance does not keep its transaction (and connection) alive.
    pub(crate) transaction: Option<WeakTransaction>,
}

impl Origin {
    pub(crate) fn new(
        database: Database,
        schema: Option<SchemaName>,
        transaction: Option<WeakTransaction>,
    ) -> Origin {
        Origin(Arc::new(OriginParts {
            database,
            schema,
            transaction,
        }))
    }

    /// This origin in the database's shared (default) schema.
    pub(crate) fn in_shared_schema(&self) -> Origin {
        Origin::new(self.0.database.clone(), None, self.0.transaction.clone())
    }

    /// This origin inside `transaction`.
    pub(crate) fn in_transaction(&self, transaction: WeakTransaction) -> Origin {
        Origin::new(
            self.0.database.clone(),
            self.0.schema.clone(),
            Some(transaction),
        )
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.0.database
    }

    /// The schema, `None` for the default one.
    pub fn schema(&self) -> Option<&SchemaName> {
        self.0.schema.as_ref()
    }

    /// The connection to go back through: the transaction while it is open (and can reach
    /// the schema), else the database.
    pub(crate) fn conn(&self) -> Conn {
        self.conn_in(self.0.schema.as_ref())
    }

    /// The connection to reach `schema` of this origin's database: the transaction while it
    /// is open and can reach that schema, else the database.
    pub(crate) fn conn_in(&self, schema: Option<&SchemaName>) -> Conn {
        match self.0.transaction.as_ref().and_then(WeakTransaction::open) {
            Some(tx) if tx.serves(schema) => Conn::Transaction(tx),
            _ => Conn::Database(self.0.database.clone()),
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

/// Renders a table statement (DDL, no values) with the backend's schema builder.
pub(crate) fn render_schema(
    backend: Backend,
    statement: &sea_query::TableRenameStatement,
) -> String {
    match backend {
        Backend::Postgres => statement.to_string(PostgresQueryBuilder),
        Backend::MySql => statement.to_string(MysqlQueryBuilder),
        Backend::Sqlite => statement.to_string(SqliteQueryBuilder),
    }
}

impl Target {
    pub(crate) fn database(&self) -> &Database {
        match &self.conn {
            Conn::Database(db) => db,
            Conn::Transaction(tx) => tx.database(),
        }
    }

    /// A directory database holds only the tenants routed to it: its shared schema, or a
    /// schema an unrouted context chose (`unrouted_context`), would be another tenant's or
    /// nobody's. [`Error::Unsupported`](crate::Error::Unsupported) for those.
    pub(crate) fn refuse_unrouted(&self, unrouted_context: bool) -> Result<()> {
        if self.database().is_directory_database() && (self.schema.is_none() || unrouted_context) {
            return Err(crate::Error::Unsupported {
                backend: self.backend().name(),
                what: "a directory database outside its tenants' scopes (shared models and unrouted tenants live in the registry's databases)",
            });
        }
        Ok(())
    }

    pub(crate) fn backend(&self) -> Backend {
        self.database().backend()
    }

    /// `meta`'s table in this target's schema; [`Error::TenantRequired`](crate::Error::TenantRequired)
    /// for a tenant-only model in the shared schema (see [`crate::naming::model_table`]).
    pub(crate) fn table(&self, meta: &'static ModelMeta) -> Result<TableName> {
        crate::naming::model_table(self.database(), self.schema.as_ref(), meta)
    }

    pub(crate) fn origin(&self) -> Origin {
        Origin::new(
            self.database().clone(),
            self.schema.clone(),
            match &self.conn {
                Conn::Transaction(tx) => Some(tx.downgrade()),
                Conn::Database(_) => None,
            },
        )
    }

    /// Runs a statement and returns its rows.
    pub(crate) async fn fetch_all(&self, statement: &impl SqlxBinder) -> Result<Vec<Row>> {
        self.fetch_unchecked(statement)
            .instrument(self.span())
            .await
    }

    /// Runs a statement and hands its rows to `sink` as they arrive.
    pub(crate) async fn fetch_into(
        &self,
        statement: &impl SqlxBinder,
        sink: &mut dyn RowSink,
    ) -> Result<()> {
        self.run(statement, Returns::Into(sink))
            .instrument(self.span())
            .await
            .map(drop)
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute(&self, statement: &impl SqlxBinder) -> Result<Done> {
        Ok(done(
            self.run(statement, Returns::Nothing)
                .instrument(self.span())
                .await?,
        ))
    }

    /// Runs a raw statement ([`RawSql`](crate::RawSql)) and returns its rows.
    pub(crate) async fn fetch_raw(
        &self,
        sql: &str,
        values: &[sea_query::Value],
    ) -> Result<Vec<Row>> {
        Ok(rows(self.run_raw(sql, values, Returns::Rows).await?))
    }

    /// Runs `sql`, a statement sea-query rendered earlier, with `values` bound, and returns
    /// its rows; `again` binds them anew if the statement must run twice.
    pub(crate) async fn fetch_sql(
        &self,
        sql: &str,
        values: Vec<sea_query::Value>,
        again: impl FnOnce() -> Vec<sea_query::Value>,
    ) -> Result<Vec<Row>> {
        let again = || SqlxValues(sea_query::Values(again()));
        let values = SqlxValues(sea_query::Values(values));
        Ok(rows(
            self.run_sql(sql, values, Returns::Rows, again)
                .instrument(self.span())
                .await?,
        ))
    }

    /// [`fetch_sql`](Self::fetch_sql), the rows handed to `sink`.
    pub(crate) async fn fetch_sql_into(
        &self,
        sql: &str,
        values: Vec<sea_query::Value>,
        again: impl FnOnce() -> Vec<sea_query::Value>,
        sink: &mut dyn RowSink,
    ) -> Result<()> {
        let again = || SqlxValues(sea_query::Values(again()));
        let values = SqlxValues(sea_query::Values(values));
        self.run_sql(sql, values, Returns::Into(sink), again)
            .instrument(self.span())
            .await
            .map(drop)
    }

    /// Runs a raw statement that returns no rows.
    pub(crate) async fn execute_raw(&self, sql: &str, values: &[sea_query::Value]) -> Result<Done> {
        Ok(done(self.run_raw(sql, values, Returns::Nothing).await?))
    }

    async fn run_raw(
        &self,
        sql: &str,
        values: &[sea_query::Value],
        returns: Returns<'_>,
    ) -> Result<Outcome> {
        // Bound again only if a stale cached plan makes the statement run twice.
        let bind = || SqlxValues(sea_query::Values(values.to_vec()));
        self.run_sql(sql, bind(), returns, bind)
            .instrument(self.span())
            .await
    }

    /// Runs one DDL statement through the simple query protocol.
    pub(crate) async fn execute_ddl(&self, sql: &str) -> Result<()> {
        let none = || SqlxValues(sea_query::Values(Vec::new()));
        self.run_sql(sql, none(), Returns::Ddl, none)
            .await
            .map(drop)
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

    /// Runs a statement and returns its rows, as [`fetch_all`](Self::fetch_all) without the
    /// span (for catalog queries).
    pub(crate) async fn fetch_unchecked(&self, statement: &impl SqlxBinder) -> Result<Vec<Row>> {
        Ok(rows(self.run(statement, Returns::Rows).await?))
    }

    async fn run(&self, statement: &impl SqlxBinder, returns: Returns<'_>) -> Result<Outcome> {
        let (sql, values) = render(self.backend(), statement);
        let again = || render(self.backend(), statement).1;
        self.run_sql(&sql, values, returns, again).await
    }

    async fn run_sql(
        &self,
        sql: &str,
        values: SqlxValues,
        returns: Returns<'_>,
        again: impl FnOnce() -> SqlxValues,
    ) -> Result<Outcome> {
        let schema = self.schema.as_ref();
        let db = match &self.conn {
            Conn::Transaction(tx) => return tx.run(schema, sql, values, returns).await,
            Conn::Database(db) => db,
        };
        crate::migrate::refuse_pool_in_data_step()?;
        let place = Place {
            database: db,
            schema,
        };
        match db.pools() {
            Pools::Postgres(pool) => {
                run_pooled(pool.get().await?, place, sql, values, returns, again).await
            }
            Pools::MySql(pool) => {
                run_pooled(pool.get().await?, place, sql, values, returns, again).await
            }
            Pools::Sqlite(store) => {
                let checkout = store.checkout(schema).await?;
                run_pooled(checkout, place, sql, values, returns, again).await
            }
        }
    }
}

/// The rows of a statement's outcome (none for one that returned no rows).
fn rows(outcome: Outcome) -> Vec<Row> {
    match outcome {
        Outcome::Rows(rows) => rows,
        Outcome::Done(_) => Vec::new(),
    }
}

/// What a statement that returns no rows did.
fn done(outcome: Outcome) -> Done {
    match outcome {
        Outcome::Done(done) => done,
        Outcome::Rows(_) => Done {
            rows_affected: 0,
            last_insert_id: None,
        },
    }
}
