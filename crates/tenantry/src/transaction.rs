//! Transactions: every QuerySet operation can run inside one.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
};

use sea_query_sqlx::SqlxValues;
use sqlx::{pool::PoolConnection, TransactionManager};
use tokio::sync::{Mutex, MutexGuard};

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
/// Dropping any of these futures halfway is safe: a `begin` dropped halfway rolls back what
/// it began; a statement, commit or rollback dropped halfway ends the transaction by closing
/// its connection (the server rolls back), and later statements, commits and rollbacks on it
/// return [`Error::TransactionDone`].
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

/// The connection a transaction holds from `BEGIN` to its end.
///
/// The pooled connection is owned directly (not through `sqlx::Transaction`) so that a
/// connection whose statement was cancelled halfway can be closed instead of going back to
/// the pool: sqlx 0.8.6's MySQL driver cannot resynchronise a connection whose prepared
/// statement was dropped before its answer was read once a `ROLLBACK` is queued behind it,
/// and the release ping then waits forever, holding the pool slot for good.
struct TxConn {
    conn: PoolConn,
    /// The transaction is open on the server (`BEGIN` answered, no `COMMIT`/`ROLLBACK` yet).
    open: bool,
    /// A statement is in flight; still set when its future is dropped halfway, after which
    /// the connection's protocol state is unknown.
    in_flight: bool,
}

enum PoolConn {
    Postgres(PoolConnection<sqlx::Postgres>),
    MySql(PoolConnection<sqlx::MySql>),
    Sqlite(PoolConnection<sqlx::Sqlite>),
}

impl Drop for TxConn {
    /// A transaction dropped unfinished rolls back: after a clean statement boundary by
    /// queueing `ROLLBACK` (sent by the pool's release ping before anyone else gets the
    /// connection); after a cancelled statement by closing the connection, which makes the
    /// server roll back.
    fn drop(&mut self) {
        if self.in_flight {
            match &mut self.conn {
                PoolConn::Postgres(conn) => conn.close_on_drop(),
                PoolConn::MySql(conn) => conn.close_on_drop(),
                PoolConn::Sqlite(conn) => conn.close_on_drop(),
            }
        } else if self.open {
            match &mut self.conn {
                PoolConn::Postgres(conn) => PgManager::start_rollback(conn),
                PoolConn::MySql(conn) => MySqlManager::start_rollback(conn),
                PoolConn::Sqlite(conn) => SqliteManager::start_rollback(conn),
            }
        }
    }
}

type PgManager = <sqlx::Postgres as sqlx::Database>::TransactionManager;
type MySqlManager = <sqlx::MySql as sqlx::Database>::TransactionManager;
type SqliteManager = <sqlx::Sqlite as sqlx::Database>::TransactionManager;

impl TxConn {
    /// Acquires a connection and begins, in a task of its own so that it runs to the end
    /// even when the caller's future is dropped halfway (a timeout, a `select!`, a client
    /// gone away).
    ///
    /// sqlx 0.8.6 counts a PostgreSQL or MySQL transaction as open only once the answer to
    /// its `BEGIN` has been read. A `begin` dropped after `BEGIN` was sent therefore returned
    /// its connection to the pool inside a transaction nobody would end: the next query on
    /// that connection, whatever its tenant, ran in it, its writes never committed
    /// (invisible to every other connection, lost on close) and its locks held. A spawned
    /// task is never cancelled halfway: when nobody awaits its result any more, the
    /// `TxConn` it returns is dropped there, which rolls it back.
    async fn begin(pool: PoolRef) -> Result<TxConn> {
        let begun = tokio::spawn(async move {
            let mut tx = TxConn {
                conn: match pool {
                    PoolRef::Postgres(pool) => PoolConn::Postgres(pool.acquire().await?),
                    PoolRef::MySql(pool) => PoolConn::MySql(pool.acquire().await?),
                    PoolRef::Sqlite(pool) => PoolConn::Sqlite(pool.acquire().await?),
                },
                open: false,
                // Until BEGIN is answered: a failed BEGIN closes the connection.
                in_flight: true,
            };
            match &mut tx.conn {
                PoolConn::Postgres(conn) => PgManager::begin(conn, None).await?,
                PoolConn::MySql(conn) => MySqlManager::begin(conn, None).await?,
                PoolConn::Sqlite(conn) => SqliteManager::begin(conn, None).await?,
            }
            tx.open = true;
            tx.in_flight = false;
            Ok::<_, Error>(tx)
        });
        match begun.await {
            Ok(begun) => begun,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(Error::Database(sqlx::Error::Io(std::io::Error::other(
                "the runtime shut down while a transaction was beginning",
            )))),
        }
    }

    /// Commits (or rolls back); the connection then goes back to the pool.
    async fn finish(mut self, commit: bool) -> Result<()> {
        self.in_flight = true;
        match (&mut self.conn, commit) {
            (PoolConn::Postgres(conn), true) => PgManager::commit(conn).await?,
            (PoolConn::Postgres(conn), false) => PgManager::rollback(conn).await?,
            (PoolConn::MySql(conn), true) => MySqlManager::commit(conn).await?,
            (PoolConn::MySql(conn), false) => MySqlManager::rollback(conn).await?,
            (PoolConn::Sqlite(conn), true) => SqliteManager::commit(conn).await?,
            (PoolConn::Sqlite(conn), false) => SqliteManager::rollback(conn).await?,
        }
        self.in_flight = false;
        self.open = false;
        Ok(())
    }
}

/// A pool to begin on, owned so that the begin can run in its own task.
enum PoolRef {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
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
        let (pool, sqlite_schema) = match database.pools() {
            Pools::Postgres(pool) => (PoolRef::Postgres(pool.clone()), None),
            Pools::MySql(pool) => (PoolRef::MySql(pool.clone()), None),
            Pools::Sqlite(store) => (PoolRef::Sqlite(store.pool(schema.as_ref())?), schema),
        };
        let conn = TxConn::begin(pool).await?;
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
    ///
    /// If this future is dropped before the database answered, the connection is closed
    /// (whether the `COMMIT` reached the server before is not known).
    pub async fn commit(&self) -> Result<()> {
        self.take().await?.finish(true).await
    }

    /// Rolls back. Fails with [`Error::TransactionDone`] if it was already finished.
    pub async fn rollback(&self) -> Result<()> {
        self.take().await?.finish(false).await
    }

    /// Takes the connection out for commit or rollback.
    async fn take(&self) -> Result<TxConn> {
        let conn = self.usable(self.inner.conn.lock().await)?.take();
        self.inner.finished.store(true, Ordering::Release);
        conn.ok_or(Error::TransactionDone)
    }

    /// The locked connection, if the transaction can still run statements.
    ///
    /// A statement cancelled halfway leaves the connection in an unknown protocol state and
    /// its effect unknown: the transaction is then over. Its connection is closed (the server
    /// rolls back) and every later statement, commit or rollback is
    /// [`Error::TransactionDone`].
    fn usable<'a>(
        &self,
        mut guard: MutexGuard<'a, Option<TxConn>>,
    ) -> Result<MutexGuard<'a, Option<TxConn>>> {
        match guard.as_ref() {
            None => Err(Error::TransactionDone),
            Some(conn) if conn.in_flight => {
                drop(guard.take());
                self.inner.finished.store(true, Ordering::Release);
                Err(Error::TransactionDone)
            }
            Some(_) => Ok(guard),
        }
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
        let mut guard = self.usable(self.inner.conn.lock().await)?;
        let tx = guard.as_mut().ok_or(Error::TransactionDone)?;
        tx.in_flight = true;
        let rows: std::result::Result<Vec<Row>, sqlx::Error> = match &mut tx.conn {
            PoolConn::Postgres(conn) => sqlx::query_with(sql, values)
                .fetch_all(&mut **conn)
                .await
                .map(|rows| rows.into_iter().map(Row::Postgres).collect()),
            PoolConn::MySql(conn) => sqlx::query_with(sql, values)
                .fetch_all(&mut **conn)
                .await
                .map(|rows| rows.into_iter().map(Row::MySql).collect()),
            PoolConn::Sqlite(conn) => sqlx::query_with(sql, values)
                .fetch_all(&mut **conn)
                .await
                .map(|rows| rows.into_iter().map(Row::Sqlite).collect()),
        };
        tx.in_flight = false;
        Ok(rows?)
    }

    pub(crate) async fn execute(
        &self,
        schema: Option<&SchemaName>,
        sql: &str,
        values: SqlxValues,
    ) -> Result<Done> {
        self.check_schema(schema)?;
        let mut guard = self.usable(self.inner.conn.lock().await)?;
        let tx = guard.as_mut().ok_or(Error::TransactionDone)?;
        tx.in_flight = true;
        let done: std::result::Result<Done, sqlx::Error> = match &mut tx.conn {
            PoolConn::Postgres(conn) => sqlx::query_with(sql, values)
                .execute(&mut **conn)
                .await
                .map(|done| Done {
                    rows_affected: done.rows_affected(),
                    last_insert_id: None,
                }),
            PoolConn::MySql(conn) => sqlx::query_with(sql, values)
                .execute(&mut **conn)
                .await
                .map(|done| Done {
                    rows_affected: done.rows_affected(),
                    last_insert_id: Some(done.last_insert_id()),
                }),
            PoolConn::Sqlite(conn) => sqlx::query_with(sql, values)
                .execute(&mut **conn)
                .await
                .map(|done| Done {
                    rows_affected: done.rows_affected(),
                    last_insert_id: None,
                }),
        };
        tx.in_flight = false;
        Ok(done?)
    }
}

impl Transaction {
    pub(crate) async fn execute_ddl(&self, schema: Option<&SchemaName>, sql: &str) -> Result<()> {
        self.check_schema(schema)?;
        let mut guard = self.usable(self.inner.conn.lock().await)?;
        let tx = guard.as_mut().ok_or(Error::TransactionDone)?;
        tx.in_flight = true;
        let done = match &mut tx.conn {
            PoolConn::Postgres(conn) => sqlx::Executor::execute(&mut **conn, sqlx::raw_sql(sql))
                .await
                .map(drop),
            PoolConn::MySql(conn) => sqlx::Executor::execute(&mut **conn, sqlx::raw_sql(sql))
                .await
                .map(drop),
            PoolConn::Sqlite(conn) => sqlx::Executor::execute(&mut **conn, sqlx::raw_sql(sql))
                .await
                .map(drop),
        };
        tx.in_flight = false;
        Ok(done?)
    }
}
