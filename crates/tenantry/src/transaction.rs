//! Transactions: every QuerySet operation can run inside one.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
};

use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

use crate::{
    database::{Database, Pools},
    error::{Error, Result},
    registry::Registry,
    row::Row,
    schema_name::SchemaName,
    target::Done,
};

/// A database transaction. Cheap to clone; every clone is the same transaction.
///
/// Start one with [`Registry::begin`] and pass it where a registry goes:
/// `User::query(&tx)`. Finish with [`commit`](Self::commit) or
/// [`rollback`](Self::rollback); when the last clone is dropped unfinished, the transaction
/// rolls back. [`Registry::transaction`] wraps this in a scope that commits on `Ok` and rolls
/// back on `Err`.
///
/// On PostgreSQL and MySQL one transaction may touch every schema of its database. On SQLite
/// a transaction lives in one schema file, chosen with [`Registry::begin_in`]; a query on
/// another schema inside it is [`Error::Unsupported`].
#[derive(Clone)]
pub struct Transaction {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    database: Database,
    sqlite_schema: Option<SchemaName>,
    conn: Mutex<Option<TxConn>>,
    /// Set once commit or rollback took the connection.
    finished: AtomicBool,
}

/// A transaction remembered by an instance without keeping it alive.
#[derive(Clone, Debug)]
pub(crate) struct WeakTransaction(Weak<Inner>);

impl WeakTransaction {
    /// The transaction, while it is alive and not yet committed or rolled back.
    pub(crate) fn open(&self) -> Option<Transaction> {
        let inner = self.0.upgrade()?;
        if inner.finished.load(Ordering::Acquire) {
            return None;
        }
        Some(Transaction { inner })
    }
}

enum TxConn {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Registry {
    /// Begins a transaction on the default database (on SQLite: in its main file).
    pub async fn begin(&self) -> Result<Transaction> {
        Transaction::begin(self.clone(), self.database().clone(), None).await
    }

    /// Begins a transaction on the default database whose SQLite side lives in `schema`'s
    /// file. On PostgreSQL and MySQL this is the same as [`begin`](Self::begin).
    pub async fn begin_in(
        &self,
        schema: impl TryInto<SchemaName, Error = Error>,
    ) -> Result<Transaction> {
        let schema = schema.try_into()?;
        Transaction::begin(self.clone(), self.database().clone(), Some(schema)).await
    }

    /// Begins a transaction on `database`, one of this registry's.
    pub(crate) async fn begin_on(&self, database: &Database) -> Result<Transaction> {
        Transaction::begin(self.clone(), database.clone(), None).await
    }

    /// Runs `work` in a transaction: commits when it returns `Ok`, rolls back when it returns
    /// `Err` (or panics, or is cancelled).
    ///
    /// ```no_run
    /// # use tenantry::{Registry, Result};
    /// # async fn demo(registry: Registry) -> Result<()> {
    /// let moved = registry
    ///     .transaction(|tx| async move {
    ///         // User::query(&tx).filter(..).update(..).await?;
    ///         Ok(1)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let tx = self.begin().await?;
        match work(tx.clone()).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(error) => {
                tx.rollback().await?;
                Err(error)
            }
        }
    }
}

impl Transaction {
    async fn begin(
        registry: Registry,
        database: Database,
        schema: Option<SchemaName>,
    ) -> Result<Transaction> {
        let (conn, sqlite_schema) = match database.pools() {
            Pools::Postgres(pool) => (TxConn::Postgres(pool.begin().await?), None),
            Pools::MySql(pool) => (TxConn::MySql(pool.begin().await?), None),
            Pools::Sqlite(store) => (
                TxConn::Sqlite(store.pool(schema.as_ref())?.begin().await?),
                schema,
            ),
        };
        Ok(Transaction {
            inner: Arc::new(Inner {
                registry,
                database,
                sqlite_schema,
                conn: Mutex::new(Some(conn)),
                finished: AtomicBool::new(false),
            }),
        })
    }

    /// The registry this transaction was begun from.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The database this transaction runs on.
    pub fn database(&self) -> &Database {
        &self.inner.database
    }

    /// Commits. Fails with [`Error::TransactionDone`] if it was already finished.
    pub async fn commit(&self) -> Result<()> {
        match self.take().await? {
            TxConn::Postgres(tx) => tx.commit().await?,
            TxConn::MySql(tx) => tx.commit().await?,
            TxConn::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Rolls back. Fails with [`Error::TransactionDone`] if it was already finished.
    pub async fn rollback(&self) -> Result<()> {
        match self.take().await? {
            TxConn::Postgres(tx) => tx.rollback().await?,
            TxConn::MySql(tx) => tx.rollback().await?,
            TxConn::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    async fn take(&self) -> Result<TxConn> {
        let conn = self
            .inner
            .conn
            .lock()
            .await
            .take()
            .ok_or(Error::TransactionDone)?;
        self.inner.finished.store(true, Ordering::Release);
        Ok(conn)
    }

    pub(crate) fn downgrade(&self) -> WeakTransaction {
        WeakTransaction(Arc::downgrade(&self.inner))
    }

    /// Whether statements on `schema` can run in this transaction.
    pub(crate) fn serves(&self, schema: Option<&SchemaName>) -> bool {
        self.check_schema(schema).is_ok()
    }

    fn check_schema(&self, schema: Option<&SchemaName>) -> Result<()> {
        let same = schema == self.inner.sqlite_schema.as_ref();
        if matches!(self.inner.database.pools(), Pools::Sqlite(_)) && !same {
            return Err(Error::Unsupported {
                backend: "sqlite",
                what:
                    "a transaction spans one schema file; begin it with Registry::begin_in(schema)",
            });
        }
        Ok(())
    }

    pub(crate) async fn fetch_all(
        &self,
        schema: Option<&SchemaName>,
        sql: &str,
        values: SqlxValues,
    ) -> Result<Vec<Row>> {
        self.check_schema(schema)?;
        let mut guard = self.inner.conn.lock().await;
        Ok(match guard.as_mut().ok_or(Error::TransactionDone)? {
            TxConn::Postgres(tx) => sqlx::query_with(sql, values)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
            TxConn::MySql(tx) => sqlx::query_with(sql, values)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::MySql)
                .collect(),
            TxConn::Sqlite(tx) => sqlx::query_with(sql, values)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
        })
    }

    pub(crate) async fn execute(
        &self,
        schema: Option<&SchemaName>,
        sql: &str,
        values: SqlxValues,
    ) -> Result<Done> {
        self.check_schema(schema)?;
        let mut guard = self.inner.conn.lock().await;
        Ok(match guard.as_mut().ok_or(Error::TransactionDone)? {
            TxConn::Postgres(tx) => {
                let done = sqlx::query_with(sql, values).execute(&mut **tx).await?;
                Done {
                    rows_affected: done.rows_affected(),
                    last_insert_id: None,
                }
            }
            TxConn::MySql(tx) => {
                let done = sqlx::query_with(sql, values).execute(&mut **tx).await?;
                Done {
                    rows_affected: done.rows_affected(),
                    last_insert_id: Some(done.last_insert_id()),
                }
            }
            TxConn::Sqlite(tx) => {
                let done = sqlx::query_with(sql, values).execute(&mut **tx).await?;
                Done {
                    rows_affected: done.rows_affected(),
                    last_insert_id: None,
                }
            }
        })
    }
}

impl Transaction {
    pub(crate) async fn execute_ddl(&self, schema: Option<&SchemaName>, sql: &str) -> Result<()> {
        self.check_schema(schema)?;
        let mut guard = self.inner.conn.lock().await;
        match guard.as_mut().ok_or(Error::TransactionDone)? {
            TxConn::Postgres(tx) => {
                sqlx::Executor::execute(&mut **tx, sqlx::raw_sql(sql)).await?;
            }
            TxConn::MySql(tx) => {
                sqlx::Executor::execute(&mut **tx, sqlx::raw_sql(sql)).await?;
            }
            TxConn::Sqlite(tx) => {
                sqlx::Executor::execute(&mut **tx, sqlx::raw_sql(sql)).await?;
            }
        }
        Ok(())
    }
}
