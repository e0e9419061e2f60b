//! How a transaction begins (isolation level, read-only), and transactions retried after a
//! serialization failure or a deadlock.

use std::{future::Future, time::Duration};

use crate::{
    backend::Backend,
    error::{Error, Result},
    registry::Registry,
    transaction::Transaction,
};

/// A transaction isolation level (PostgreSQL and MySQL; a SQLite transaction is always
/// serializable, whatever is asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Each statement sees what was committed before it began.
    ReadCommitted,
    /// Every statement sees what was committed before the transaction's first one.
    RepeatableRead,
    /// As if the transactions ran one after the other; a conflict fails one of them (retry
    /// it: [`Registry::transaction_retrying`]).
    Serializable,
}

/// How a transaction begins: [`Registry::begin_with`], [`Registry::transaction_retrying`].
///
/// ```
/// use tenantry::{IsolationLevel, TransactionOptions};
///
/// let options = TransactionOptions::new().isolation(IsolationLevel::Serializable).read_only();
/// assert!(options.is_read_only());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransactionOptions {
    isolation: Option<IsolationLevel>,
    read_only: bool,
}

impl TransactionOptions {
    /// The server's defaults: its isolation level, reads and writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs at `level`.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Refuses writes (the server refuses them: PostgreSQL 25006, MySQL 1792). Not on
    /// SQLite: [`Error::Unsupported`] when the transaction begins.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The statement that begins the transaction (`None`: the driver's own `BEGIN`), and
    /// on MySQL the one that sets the next transaction's isolation level first. Constant
    /// texts: nothing of the caller's reaches them.
    pub(crate) fn statements(&self, backend: Backend) -> Result<BeginStatements> {
        use IsolationLevel::*;
        Ok(match backend {
            Backend::Postgres => BeginStatements {
                before: None,
                begin: match (self.isolation, self.read_only) {
                    (None, false) => None,
                    (None, true) => Some("BEGIN READ ONLY"),
                    (Some(ReadCommitted), false) => Some("BEGIN ISOLATION LEVEL READ COMMITTED"),
                    (Some(ReadCommitted), true) => {
                        Some("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
                    }
                    (Some(RepeatableRead), false) => Some("BEGIN ISOLATION LEVEL REPEATABLE READ"),
                    (Some(RepeatableRead), true) => {
                        Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    }
                    (Some(Serializable), false) => Some("BEGIN ISOLATION LEVEL SERIALIZABLE"),
                    (Some(Serializable), true) => {
                        Some("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY")
                    }
                },
            },
            Backend::MySql => BeginStatements {
                before: self.isolation.map(|level| match level {
                    ReadCommitted => "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
                    RepeatableRead => "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                    Serializable => "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                }),
                begin: self.read_only.then_some("START TRANSACTION READ ONLY"),
            },
            Backend::Sqlite if self.read_only => {
                return Err(Error::Unsupported {
                    backend: "sqlite",
                    what: "read-only transactions",
                })
            }
            Backend::Sqlite => BeginStatements {
                before: None,
                begin: None,
            },
        })
    }
}

/// See [`TransactionOptions::statements`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BeginStatements {
    pub(crate) before: Option<&'static str>,
    pub(crate) begin: Option<&'static str>,
}

/// Whether `error` says the transaction lost a conflict and may succeed when run again:
/// PostgreSQL 40001 (serialization failure) and 40P01 (deadlock), MySQL's deadlock (1213,
/// SQLSTATE 40001), SQLite's busy and locked database (5, 6, 517: another writer).
pub fn is_retryable(error: &Error) -> bool {
    matches!(
        error.database_code().as_deref(),
        Some("40001" | "40P01" | "5" | "6" | "517")
    )
}

/// The pause before attempt `attempt` (counting from 1 for the first retry): 10 ms doubled
/// each time, at most 1 s, with up to half of it added at random so that the losers of one
/// conflict do not meet again.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(10) * 2u32.saturating_pow(attempt.saturating_sub(1).min(7));
    let base = base.min(Duration::from_secs(1));
    let jitter =
        u64::from(uuid::Uuid::new_v4().as_u128() as u16) % (base.as_millis() as u64 / 2 + 1);
    base + Duration::from_millis(jitter)
}

impl Registry {
    /// Begins a transaction as [`begin`](Self::begin) does, with `options`.
    pub async fn begin_with(&self, options: TransactionOptions) -> Result<Transaction> {
        self.begin_options(options).await
    }

    /// Runs `work` in a transaction begun with `options`, and again in a new one when the
    /// work or the commit failed with a conflict another transaction won
    /// ([`is_retryable`]: a serialization failure, a deadlock, a busy SQLite file), up to
    /// `attempts` times in all (at least 1), pausing between attempts (10 ms doubling to
    /// 1 s, with jitter). Any other error, or the last attempt's, is returned as is. The
    /// work must be safe to run again: everything it did in a failed attempt was rolled
    /// back, but what it did outside the transaction was not.
    ///
    /// ```no_run
    /// # use tenantry::{IsolationLevel, Registry, Result, TransactionOptions};
    /// # async fn demo(registry: Registry) -> Result<()> {
    /// let serializable = TransactionOptions::new().isolation(IsolationLevel::Serializable);
    /// registry
    ///     .transaction_retrying(serializable, 5, |tx| async move {
    ///         // read, decide, write through `tx`
    ///         # let _ = tx;
    ///         Ok(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction_retrying<T, F, Fut>(
        &self,
        options: TransactionOptions,
        attempts: u32,
        mut work: F,
    ) -> Result<T>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempts = attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = self.transaction_once(options, &mut work).await;
            match result {
                Err(error) if attempt < attempts && is_retryable(&error) => {
                    tracing::debug!(%error, attempt, "transaction lost a conflict; running it again");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn transaction_once<T, F, Fut>(
        &self,
        options: TransactionOptions,
        work: &mut F,
    ) -> Result<T>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let tx = self.begin_options(options).await?;
        match work(tx.clone()).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(%error, %rollback, "rollback after a failed transaction body failed too");
                }
                Err(error)
            }
        }
    }
}
