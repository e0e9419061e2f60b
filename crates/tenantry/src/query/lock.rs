//! Row locks: `for_update()`, `skip_locked()`, `nowait()`, for reads inside a transaction.

use sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query, SelectStatement};

use super::QuerySet;
use crate::{
    backend::Backend,
    error::{Error, Result},
    model::Model,
    target::{Conn, Target},
};

/// A row lock a QuerySet's read takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowLock {
    /// Wait for rows other transactions hold.
    Wait,
    /// Leave out rows other transactions hold.
    SkipLocked,
    /// Fail at once on a row another transaction holds.
    NoWait,
}

impl<M: Model> QuerySet<M> {
    /// Locks the rows this read returns until the transaction ends (`SELECT … FOR UPDATE`):
    /// another transaction's `for_update` of them, or update, waits. Only inside a
    /// transaction (the source is a [`Transaction`](crate::Transaction)): anywhere else the
    /// read is [`Error::InvalidArgument`] before any SQL, as are `count`, `exists` and
    /// aggregates with a lock (they return no rows to lock).
    ///
    /// SQLite has no row locks: there `for_update` takes the whole file's write lock before
    /// the read (a write statement that changes nothing), so the transaction runs alone
    /// among writers, and `skip_locked` and `nowait` do the same (a second transaction waits
    /// for the first, up to the busy timeout). Lock first in a SQLite transaction: a
    /// transaction that already read cannot take the write lock once another wrote since
    /// (`SQLITE_BUSY_SNAPSHOT`, an error).
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_select(|r| User::query(r).filter(User::id().eq(1)).for_update());
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "email" FROM "public"."users" WHERE "id" = $1 FOR UPDATE"#);
    /// assert_eq!(sql.mysql, r#"SELECT `id`, `name`, `email` FROM `app`.`users` WHERE `id` = ? FOR UPDATE"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "email" FROM "users" WHERE "id" = ?"#);
    /// ```
    pub fn for_update(mut self) -> Self {
        self.lock = Some(RowLock::Wait);
        self
    }

    /// [`for_update`](Self::for_update), leaving out the rows another transaction holds
    /// (`FOR UPDATE SKIP LOCKED`; MariaDB 10.6 and later): what N workers draining a job
    /// queue use, each taking a job nobody else holds.
    pub fn skip_locked(mut self) -> Self {
        self.lock = Some(RowLock::SkipLocked);
        self
    }

    /// [`for_update`](Self::for_update), failing at once on a row another transaction holds
    /// (`FOR UPDATE NOWAIT`) instead of waiting.
    pub fn nowait(mut self) -> Self {
        self.lock = Some(RowLock::NoWait);
        self
    }

    /// The lock clause of a read of rows (none on SQLite, which has no row locks).
    pub(super) fn add_lock(&self, backend: Backend, select: &mut SelectStatement) {
        let Some(lock) = self.lock.filter(|_| backend != Backend::Sqlite) else {
            return;
        };
        match lock {
            RowLock::Wait => select.lock(LockType::Update),
            RowLock::SkipLocked => {
                select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            }
            RowLock::NoWait => select.lock_with_behavior(LockType::Update, LockBehavior::Nowait),
        };
    }

    /// Before a locking read at `target`: refused outside a transaction; on SQLite, the
    /// file's write lock is taken.
    pub(super) async fn take_lock(&self, target: &Target) -> Result<()> {
        if self.lock.is_none() {
            return Ok(());
        }
        if !matches!(target.conn, Conn::Transaction(_)) {
            return Err(outside_a_transaction());
        }
        if target.backend() == Backend::Sqlite {
            // A write that changes nothing takes the file's write lock for the transaction.
            let pk = M::META.primary_key_column().name;
            let mut claim = Query::update();
            claim
                .table(target.table(M::META)?)
                .value(pk, Expr::col(pk))
                .and_where(Expr::val(1).eq(0));
            target.execute(&claim).await?;
        }
        Ok(())
    }

    /// [`Error::InvalidArgument`] for a row lock on an operation that reads no rows.
    pub(super) fn refuse_lock(&self, operation: &'static str) -> Result<()> {
        match self.lock {
            Some(_) => Err(Error::InvalidArgument {
                argument: "for_update",
                reason: operation,
            }),
            None => Ok(()),
        }
    }
}

fn outside_a_transaction() -> Error {
    Error::InvalidArgument {
        argument: "for_update",
        reason: "a row lock outside a transaction locks nothing; run the read on a Transaction",
    }
}
