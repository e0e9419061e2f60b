//! Transactions: every QuerySet operation can run inside one.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
};

use sea_query_sqlx::SqlxValues;
use sqlx::TransactionManager;
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    database::{run_on, Checkout, Database, Driver, Outcome, Place, Pools, Returns},
    error::{Error, Result},
    registry::Registry,
    schema_name::SchemaName,
    transaction_options::{BeginStatements, TransactionOptions},
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
/// it began; a commit or rollback dropped halfway runs to its end in a task of its own; a
/// statement dropped halfway ends the transaction by closing its connection (the server rolls
/// back), and later statements, commits and rollbacks on it return
/// [`Error::TransactionDone`].
///
/// On PostgreSQL and MySQL one transaction may touch every schema of its database. On SQLite
/// a transaction lives in one schema file, chosen with [`Registry::begin_in`]; a query on
/// another schema inside it is [`Error::Unsupported`].
#[derive(Clone)]
pub struct Transaction {
    inner: Arc<Inner>,
    /// `false` for a handle lent to code that may use the transaction but not end it
    /// ([`Transaction::unending`]).
    may_end: bool,
}

struct Inner {
    registry: Registry,
    database: Database,
    sqlite_schema: Option<SchemaName>,
    conn: Mutex<Option<TxConn>>,
    /// Set once commit or rollback took the connection.
    finished: AtomicBool,
    /// A savepoint's work was dropped half way: what it did can be neither kept nor undone
    /// reliably, so the transaction can only roll back.
    abandoned: AtomicBool,
    /// The transaction is its lender's (a migration's, lent to a data step): it cannot be
    /// committed or rolled back here, and the connection goes back to the lender.
    lent: bool,
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
        Some(Transaction {
            inner,
            may_end: true,
        })
    }
}

/// The connection a transaction holds from `BEGIN` to its end: a connection checked out of
/// the database's one pool (the same pool queries use), owned directly so that a connection
/// whose statement was cancelled halfway is closed instead of going back to the pool: its
/// protocol state is unknown, and sqlx 0.8.6's MySQL driver cannot resynchronise a
/// connection whose prepared statement was dropped before its answer was read.
struct TxConn {
    conn: PoolConn,
    /// The transaction is open on the server (`BEGIN` answered, no `COMMIT`/`ROLLBACK` yet).
    open: bool,
    /// A statement is in flight; still set when its future is dropped halfway, after which
    /// the connection's protocol state is unknown.
    in_flight: bool,
    /// Set when a statement failed in a way that ended the transaction on the server (see
    /// [`TransactionAbort`](crate::TransactionAbort)): what failed.
    aborted: Option<String>,
}

pub(crate) enum PoolConn {
    Postgres(Checkout<sqlx::Postgres>),
    MySql(Checkout<sqlx::MySql>),
    Sqlite(Checkout<sqlx::Sqlite>),
}

/// Runs `$body` with `$c` bound to the checkout of whichever backend `$conn` holds.
macro_rules! with_checkout {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            PoolConn::Postgres($c) => $body,
            PoolConn::MySql($c) => $body,
            PoolConn::Sqlite($c) => $body,
        }
    };
}

impl Drop for TxConn {
    /// A transaction dropped unfinished rolls back: after a clean statement boundary by a
    /// `ROLLBACK` sent from a task of its own, after which the connection goes back to the
    /// pool (outside a runtime, or after a cancelled statement, by closing the connection,
    /// which makes the server roll back).
    fn drop(&mut self) {
        let runtime = tokio::runtime::Handle::try_current();
        match (self.in_flight, self.open, runtime) {
            (false, false, _) => {}
            (false, true, Ok(runtime)) => {
                let conn = with_checkout!(&mut self.conn, |c| PoolConn::from(c.take()));
                runtime
                    .spawn(async move { with_checkout!(conn, |c| rollback_and_release(c).await) });
            }
            _ => with_checkout!(&mut self.conn, |c| c.discard(false)),
        }
    }
}

impl From<Checkout<sqlx::Postgres>> for PoolConn {
    fn from(c: Checkout<sqlx::Postgres>) -> Self {
        PoolConn::Postgres(c)
    }
}

impl From<Checkout<sqlx::MySql>> for PoolConn {
    fn from(c: Checkout<sqlx::MySql>) -> Self {
        PoolConn::MySql(c)
    }
}

impl From<Checkout<sqlx::Sqlite>> for PoolConn {
    fn from(c: Checkout<sqlx::Sqlite>) -> Self {
        PoolConn::Sqlite(c)
    }
}

/// Rolls back what a dropped transaction left open, then returns its connection; a
/// connection whose rollback fails or hangs is closed instead.
async fn rollback_and_release<DB: Driver>(mut conn: Checkout<DB>) {
    let rollback = end(&mut conn, false);
    match tokio::time::timeout(std::time::Duration::from_secs(30), rollback).await {
        Ok(Ok(())) => conn.release(),
        _ => conn.discard(true),
    }
}

/// Ends the whole transaction on `conn`: with `commit`, a `COMMIT` (refused, after rolling
/// everything back, while a savepoint is still open: only an abandoned one can be); else
/// `ROLLBACK TO` each open savepoint, then `ROLLBACK`. The driver counts savepoints and
/// turns a plain commit or rollback into a `RELEASE` or `ROLLBACK TO` of the innermost one,
/// which would leave the transaction open on a connection going back to the pool.
async fn end<DB: Driver>(conn: &mut Checkout<DB>, commit: bool) -> Result<()> {
    let depth = |conn: &mut Checkout<DB>| -> Result<usize> {
        Ok(<DB::TransactionManager as TransactionManager>::get_transaction_depth(conn.raw()?))
    };
    if commit && depth(conn)? <= 1 {
        return control(conn, Step::Commit).await;
    }
    loop {
        let before = depth(conn)?;
        control(conn, Step::Rollback).await?;
        if before <= 1 {
            break;
        }
    }
    if commit {
        return Err(Error::TransactionAborted {
            cause: ABANDONED_SAVEPOINT.to_owned(),
        });
    }
    Ok(())
}

/// Why a transaction whose savepoint was abandoned is aborted.
const ABANDONED_SAVEPOINT: &str =
    "a savepoint's work was dropped before it ended; roll the transaction back";

/// Why a lent transaction (a migration's data step) whose hooked write was dropped half way
/// cannot commit.
const ABANDONED_WRITE: &str = "a hooked write was dropped (cancelled) before it ended, and \
     nothing could undo its half-done work; the migration rolls back";

/// Marks the transaction as abandoned when a savepoint's future is dropped before its end.
struct Abandoned<'a>(Option<&'a Arc<Inner>>);

impl Abandoned<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(inner) = self.0 {
            inner.abandoned.store(true, Ordering::Release);
        }
    }
}

/// Runs `statement` (a constant: MySQL's `SET TRANSACTION ISOLATION LEVEL …`, which sets
/// the next transaction's level) before `BEGIN`.
async fn prepare_begin<DB: Driver>(conn: &mut Checkout<DB>, statement: &'static str) -> Result<()>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let raw = conn.raw()?;
    if let Err(error) = sqlx::Executor::execute(raw, statement).await {
        conn.after_error(&error);
        return Err(error.into());
    }
    Ok(())
}

/// Begins on `conn`, or commits or rolls back.
async fn control<DB: Driver>(conn: &mut Checkout<DB>, step: Step) -> Result<()> {
    let raw = conn.raw()?;
    let outcome = match step {
        Step::Begin(statement) => {
            let statement = statement.map(std::borrow::Cow::Borrowed);
            <DB::TransactionManager as TransactionManager>::begin(raw, statement).await
        }
        Step::Commit => <DB::TransactionManager as TransactionManager>::commit(raw).await,
        Step::Rollback => <DB::TransactionManager as TransactionManager>::rollback(raw).await,
    };
    if let Err(error) = &outcome {
        conn.after_error(error);
    }
    Ok(outcome?)
}

#[derive(Clone, Copy)]
enum Step {
    /// `BEGIN`, or the given statement that begins a transaction.
    Begin(Option<&'static str>),
    Commit,
    Rollback,
}

impl TxConn {
    /// Checks a connection out and begins, in a task of its own so that it runs to the end
    /// even when the caller's future is dropped halfway (a timeout, a `select!`, a client
    /// gone away).
    ///
    /// sqlx 0.8.6 counts a PostgreSQL or MySQL transaction as open only once the answer to
    /// its `BEGIN` has been read. A `begin` dropped after `BEGIN` was sent would therefore
    /// hand its connection back inside a transaction nobody would end: the next query on
    /// that connection, whatever its tenant, would run in it. A spawned task is never
    /// cancelled halfway: when nobody awaits its result any more, the `TxConn` it returns
    /// is dropped there, which rolls it back.
    ///
    /// `attach_shared`: a SQLite transaction in a tenant's file attaches the main file first
    /// (SQLite refuses `ATTACH` inside a transaction), so that its statements reach the
    /// shared schema.
    async fn begin(
        database: Database,
        schema: Option<SchemaName>,
        attach_shared: bool,
        statements: BeginStatements,
    ) -> Result<TxConn> {
        let begun = tokio::spawn(async move {
            let conn = match database.pools() {
                Pools::Postgres(pool) => PoolConn::from(pool.get().await?),
                Pools::MySql(pool) => PoolConn::from(pool.get().await?),
                Pools::Sqlite(store) => {
                    let mut conn = store.checkout(schema.as_ref()).await?;
                    if attach_shared
                        && schema.is_some()
                        && store.shared_attachable()
                        && !database.is_directory_database()
                    {
                        crate::database::attach_shared(&mut conn, &database).await?;
                    }
                    PoolConn::from(conn)
                }
            };
            // Until BEGIN is answered: a failed BEGIN closes the connection.
            let mut tx = TxConn {
                conn,
                open: false,
                in_flight: true,
                aborted: None,
            };
            if let Some(before) = statements.before {
                with_checkout!(&mut tx.conn, |c| prepare_begin(c, before).await)?;
            }
            let begin = Step::Begin(statements.begin);
            with_checkout!(&mut tx.conn, |c| control(c, begin).await)?;
            tx.open = true;
            tx.in_flight = false;
            Ok::<_, Error>(tx)
        });
        joined(begun, "beginning").await
    }

    /// Commits (or rolls back), then the connection goes back to the pool, in a task of its
    /// own: a `COMMIT` whose caller went away halfway is still answered before the
    /// connection is reused or closed. Closing it instead would leave the outcome to the
    /// server's timing: the next reader (on any connection) could miss a commit that lands
    /// a moment later.
    async fn finish(self, commit: bool) -> Result<()> {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => joined(runtime.spawn(self.finish_here(commit)), "finishing").await,
            // Driven by another executor: here, as before (a drop halfway closes the
            // connection, and the outcome is the server's).
            Err(_) => self.finish_here(commit).await,
        }
    }

    async fn finish_here(mut self, commit: bool) -> Result<()> {
        self.in_flight = true;
        with_checkout!(&mut self.conn, |c| end(c, commit).await)?;
        self.in_flight = false;
        self.open = false;
        with_checkout!(&mut self.conn, |c| c.take().release());
        Ok(())
    }

    /// Runs one statement; `true` in the second place when the connection was lost.
    async fn run(
        &mut self,
        place: Place<'_>,
        sql: &str,
        values: SqlxValues,
        returns: Returns<'_>,
    ) -> (Result<Outcome>, bool) {
        self.in_flight = true;
        let result = with_checkout!(&mut self.conn, |c| run_on(c, place, sql, values, returns)
            .await);
        self.in_flight = false;
        let lost = with_checkout!(&self.conn, |c| c.is_discarded());
        (result, lost)
    }
}

/// The result of a transaction step run in a task of its own (see [`TxConn::begin`]).
async fn joined<T>(task: tokio::task::JoinHandle<Result<T>>, step: &str) -> Result<T> {
    match task.await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(Error::Database(sqlx::Error::Io(std::io::Error::other(
            format!("the runtime shut down while a transaction was {step}"),
        )))),
    }
}

impl Registry {
    /// Begins a transaction on the default database. On SQLite, where a transaction lives in
    /// one schema file, it begins in the file of the task's tenant (or activated schema), so
    /// `registry.transaction(..)` inside [`with_tenant`](crate::with_tenant) works on the
    /// tenant's tables as on the other backends; outside any tenant, in the main file.
    ///
    /// Inside a [`Directory`](crate::Directory) tenant's scope it begins on the tenant's
    /// database instead, where its tenant models go; shared models cannot be reached from
    /// such a transaction (they live in the default database):
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    pub async fn begin(&self) -> Result<Transaction> {
        self.begin_options(TransactionOptions::default()).await
    }

    /// [`begin`](Self::begin) with `options`.
    pub(crate) async fn begin_options(&self, options: TransactionOptions) -> Result<Transaction> {
        let (schema, routed) = match crate::tenancy::context::context_route() {
            Ok(route) => route,
            // A poisoned scope: its queries fail anyway; only SQLite needed the schema.
            Err(error) if self.database().backend() == crate::Backend::Sqlite => return Err(error),
            Err(_) => (None, None),
        };
        let database = routed.unwrap_or_else(|| self.database().clone());
        let schema = match database.backend() {
            crate::Backend::Sqlite => schema,
            _ => None,
        };
        Transaction::begin(self.clone(), database, schema, options).await
    }

    /// Begins a transaction on the default database whose SQLite side lives in `schema`'s
    /// file. On PostgreSQL and MySQL this is the same as [`begin`](Self::begin).
    pub async fn begin_in(
        &self,
        schema: impl TryInto<SchemaName, Error = Error>,
    ) -> Result<Transaction> {
        let schema = schema.try_into()?;
        let options = TransactionOptions::default();
        Transaction::begin(self.clone(), self.database().clone(), Some(schema), options).await
    }

    /// Begins a transaction on `database`, one of this registry's.
    pub(crate) async fn begin_on(&self, database: &Database) -> Result<Transaction> {
        let options = TransactionOptions::default();
        Transaction::begin(self.clone(), database.clone(), None, options).await
    }

    /// Begins a transaction on `database`; on SQLite in the file of `schema` exactly (never
    /// the context's), for work that already resolved its schema.
    pub(crate) async fn begin_at(
        &self,
        database: &Database,
        schema: Option<SchemaName>,
    ) -> Result<Transaction> {
        let options = TransactionOptions::default();
        Transaction::begin(self.clone(), database.clone(), schema, options).await
    }

    /// Runs `work` in a transaction: commits when it returns `Ok`, rolls back when it returns
    /// `Err` (or panics, or is cancelled). The error returned is always the work's own; a
    /// rollback that fails after it is logged, not returned in its place.
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
        let result = work(tx.clone()).await;
        tx.end_with(result).await
    }
}

impl Transaction {
    async fn begin(
        registry: Registry,
        database: Database,
        schema: Option<SchemaName>,
        options: TransactionOptions,
    ) -> Result<Transaction> {
        let statements = options.statements(database.backend())?;
        let sqlite_schema = match database.pools() {
            Pools::Sqlite(_) => schema,
            _ => None,
        };
        // Only a tenant file's transaction attaches: PostgreSQL and MySQL begin without the
        // scan of the registered models.
        let attach_shared =
            sqlite_schema.is_some() && registry.models().iter().any(|model| model.shared);
        let conn = TxConn::begin(
            database.clone(),
            sqlite_schema.clone(),
            attach_shared,
            statements,
        )
        .await?;
        Ok(Transaction::around(
            registry,
            database,
            sqlite_schema,
            conn,
            false,
        ))
    }

    fn around(
        registry: Registry,
        database: Database,
        sqlite_schema: Option<SchemaName>,
        conn: TxConn,
        lent: bool,
    ) -> Transaction {
        Transaction {
            may_end: true,
            inner: Arc::new(Inner {
                registry,
                database,
                sqlite_schema,
                conn: Mutex::new(Some(conn)),
                finished: AtomicBool::new(false),
                abandoned: AtomicBool::new(false),
                lent,
            }),
        }
    }

    /// A transaction its lender began on `conn` (a connection of no pool, in a
    /// transaction, see [`Checkout::lent`]), for code that runs statements through a
    /// [`Transaction`]. [`reclaim`](Self::reclaim) gives the connection back; until then
    /// `commit` and `rollback` are refused: ending the transaction is the lender's.
    pub(crate) fn lent(
        registry: Registry,
        database: Database,
        sqlite_schema: Option<SchemaName>,
        conn: PoolConn,
    ) -> Transaction {
        let conn = TxConn {
            conn,
            open: true,
            in_flight: false,
            aborted: None,
        };
        Transaction::around(registry, database, sqlite_schema, conn, true)
    }

    /// The lent connection back, with why the transaction was aborted on the server if a
    /// statement ended it. `Err(TransactionDone)` when the connection was lost (a statement
    /// cancelled halfway closed it). Every clone still held is finished from now on.
    pub(crate) async fn reclaim(&self) -> Result<(PoolConn, Option<String>)> {
        let mut guard = self.inner.conn.lock().await;
        self.inner.finished.store(true, Ordering::Release);
        let mut tx = guard.take().ok_or(Error::TransactionDone)?;
        if tx.in_flight {
            return Err(Error::TransactionDone);
        }
        // Disarm the rollback on drop: the lender ends the transaction.
        tx.open = false;
        let conn = with_checkout!(&mut tx.conn, |c| PoolConn::from(c.take()));
        let abandoned = self.inner.abandoned.load(Ordering::Acquire);
        let aborted = tx
            .aborted
            .take()
            .or_else(|| abandoned.then(|| ABANDONED_WRITE.to_owned()));
        Ok((conn, aborted))
    }

    /// A handle on this transaction that runs statements but cannot commit or roll back
    /// (both are [`Error::Unsupported`]): for code that works inside a transaction its
    /// caller ends.
    pub(crate) fn unending(&self) -> Transaction {
        Transaction {
            inner: self.inner.clone(),
            may_end: false,
        }
    }

    fn refuse_if_lent(&self) -> Result<()> {
        if !self.may_end {
            return Err(Error::Unsupported {
                backend: self.inner.database.backend().name(),
                what: "committing or rolling back a transaction lent to you (its owner ends it)",
            });
        }
        if self.inner.lent {
            return Err(Error::Unsupported {
                backend: self.inner.database.backend().name(),
                what: "committing or rolling back a migration's transaction in a data step \
                       (return Ok to keep its work, Err to roll the tenant's migration back)",
            });
        }
        Ok(())
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
    /// The commit runs to its end even if this future is dropped halfway (a timeout, a
    /// `select!`): its connection is back in the pool, and the commit visible to every
    /// later reader, before that connection serves anyone else. (Driven outside a tokio
    /// runtime, it runs on the caller's future instead: dropped halfway, the connection is
    /// closed and the outcome is the server's.)
    ///
    /// A transaction that a failed statement ended on the server (any failure on
    /// PostgreSQL, a deadlock on MySQL) is rolled back instead, and the commit fails with
    /// [`Error::TransactionAborted`]: it is never reported as committed.
    pub async fn commit(&self) -> Result<()> {
        self.refuse_if_lent()?;
        let mut tx = self.take().await?;
        if self.inner.abandoned.load(Ordering::Acquire) {
            tx.aborted
                .get_or_insert_with(|| ABANDONED_SAVEPOINT.to_owned());
        }
        match tx.aborted.clone() {
            None => tx.finish(true).await,
            Some(cause) => {
                tx.finish(false).await?;
                Err(Error::TransactionAborted { cause })
            }
        }
    }

    /// Rolls back. Fails with [`Error::TransactionDone`] if it was already finished.
    pub async fn rollback(&self) -> Result<()> {
        self.refuse_if_lent()?;
        self.take().await?.finish(false).await
    }

    /// Ends the transaction after work that gave `result`: commits on `Ok`, rolls back on
    /// `Err` and returns the work's error (a failed rollback is logged: dropping the
    /// connection rolls back anyway).
    pub(crate) async fn end_with<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::warn!(%error, %rollback, "rollback after a failed transaction body failed too");
                }
                Err(error)
            }
        }
    }

    /// Marks the transaction aborted (its later statements and its commit are refused with
    /// `cause`), for a failure that left half-done work no savepoint can undo.
    pub(crate) async fn mark_aborted(&self, cause: String) {
        if let Some(tx) = self.inner.conn.lock().await.as_mut() {
            tx.aborted.get_or_insert(cause);
        }
    }

    /// Runs `work`, whose half-done writes nothing could undo (a hooked write in a
    /// migration's data step): dropped before it ends (a `select!` or timeout cancelling
    /// it), the transaction is marked abandoned and can only roll back.
    pub(crate) async fn abandoned_if_dropped<T>(&self, work: impl Future<Output = T>) -> T {
        let abandoned = Abandoned(Some(&self.inner));
        let out = work.await;
        abandoned.disarm();
        out
    }

    /// Whether [`savepoint`](Self::savepoint) may be used (not in a migration's data step).
    pub(crate) fn allows_savepoints(&self) -> bool {
        !self.inner.lent
    }

    /// Runs `work` in a savepoint of this transaction (`SAVEPOINT`): kept (`RELEASE`) when it
    /// returns `Ok`, undone (`ROLLBACK TO`) when it returns `Err`, while the transaction
    /// goes on either way; the error returned is the work's own. Savepoints nest: `work`
    /// may open its own. `work` gets a handle on this transaction that cannot commit or
    /// roll it back.
    ///
    /// On PostgreSQL a statement that failed inside the savepoint no longer aborts the
    /// whole transaction once the savepoint is rolled back. A MySQL deadlock rolls back the
    /// whole transaction, savepoints included: the transaction is then aborted
    /// ([`Error::TransactionAborted`]). A savepoint whose `work` is dropped half way (a
    /// timeout, a `select!`) leaves the transaction able only to roll back: later
    /// statements and the commit are [`Error::TransactionAborted`].
    ///
    /// ```no_run
    /// # use tenantry::{Registry, Result};
    /// # async fn demo(registry: Registry) -> Result<()> {
    /// registry
    ///     .transaction(|tx| async move {
    ///         // kept
    ///         let optional: Result<()> = tx
    ///             .savepoint(|sp| async move {
    ///                 // User::query(&sp).create(..).await?; undone if it fails
    ///                 # let _ = sp;
    ///                 Ok(())
    ///             })
    ///             .await;
    ///         # let _ = optional;
    ///         Ok(())
    ///     })
    ///     .await
    /// # }
    /// ```
    pub async fn savepoint<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if self.inner.lent {
            // The migration began its transaction itself: the driver would not know to
            // send SAVEPOINT rather than BEGIN (which on MySQL commits the migration).
            return Err(Error::Unsupported {
                backend: self.inner.database.backend().name(),
                what: "savepoints in a migration's data step",
            });
        }
        self.savepoint_step(Step::Begin(None)).await?;
        let abandoned = Abandoned(Some(&self.inner));
        let result = work(self.unending()).await;
        let end = match &result {
            Ok(_) => Step::Commit,
            Err(_) => Step::Rollback,
        };
        let ended = self.savepoint_step(end).await;
        abandoned.disarm();
        match (result, ended) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(error)) => Err(error),
            // The work's error is the one returned; a failed ROLLBACK TO has aborted the
            // transaction (the next statement says so).
            (Err(error), _) => Err(error),
        }
    }

    /// Begins, releases or rolls back to the innermost savepoint on the connection.
    async fn savepoint_step(&self, step: Step) -> Result<()> {
        let mut guard = self.usable(self.inner.conn.lock().await)?;
        let tx = guard.as_mut().ok_or(Error::TransactionDone)?;
        if self.inner.abandoned.load(Ordering::Acquire) {
            tx.aborted
                .get_or_insert_with(|| ABANDONED_SAVEPOINT.to_owned());
        }
        let rolling_back = matches!(step, Step::Rollback);
        if let (Some(cause), false) = (&tx.aborted, rolling_back) {
            return Err(Error::TransactionAborted {
                cause: cause.clone(),
            });
        }
        tx.in_flight = true;
        let done = with_checkout!(&mut tx.conn, |c| control(c, step).await);
        tx.in_flight = false;
        match (&done, rolling_back) {
            // Rolled back to the savepoint: a failure inside it no longer aborts the
            // transaction (unless it was abandoned).
            (Ok(()), true) if !self.inner.abandoned.load(Ordering::Acquire) => tx.aborted = None,
            (Err(error), _) => {
                tx.aborted.get_or_insert_with(|| error.to_string());
            }
            _ => {}
        }
        done
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

    /// Runs one statement in this transaction. A statement whose connection was lost ends
    /// the transaction (later ones get [`Error::TransactionDone`]).
    pub(crate) async fn run(
        &self,
        schema: Option<&SchemaName>,
        sql: &str,
        values: SqlxValues,
        returns: Returns<'_>,
    ) -> Result<Outcome> {
        self.check_schema(schema)?;
        let mut guard = self.usable(self.inner.conn.lock().await)?;
        let tx = guard.as_mut().ok_or(Error::TransactionDone)?;
        if self.inner.abandoned.load(Ordering::Acquire) {
            tx.aborted
                .get_or_insert_with(|| ABANDONED_SAVEPOINT.to_owned());
        }
        if let Some(cause) = &tx.aborted {
            return Err(Error::TransactionAborted {
                cause: cause.clone(),
            });
        }
        let place = Place {
            database: &self.inner.database,
            schema,
        };
        let (result, lost) = tx.run(place, sql, values, returns).await;
        if let Err(error) = &result {
            let abort = self
                .inner
                .database
                .backend()
                .capabilities()
                .transaction_aborted_by;
            if abort.ends_transaction(error) {
                tx.aborted = Some(error.to_string());
            }
        }
        if lost {
            drop(guard.take());
            self.inner.finished.store(true, Ordering::Release);
        }
        result
    }
}
