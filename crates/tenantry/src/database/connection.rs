//! A raw sqlx connection borrowed from tenantry's pool.

use std::ops::{Deref, DerefMut};

use deadpool::managed::Object;

use super::pool::{Checkout, Manager};
use crate::error::{Error, Result};

/// A raw sqlx connection on loan from a [`Database`](crate::Database)'s pool, for statements
/// tenantry does not cover. Dereferences to the driver's connection type
/// (`sqlx::PgConnection`, `sqlx::MySqlConnection`, `sqlx::SqliteConnection`), so it is used
/// as `&mut *conn` wherever sqlx takes an executor.
///
/// Hand it back with [`release`](Self::release) once its statements completed and it
/// carries no session state (no open transaction, no `SET`, no `USE`): the next user may be
/// another tenant. Dropped without `release` (an error, a cancelled statement, a
/// forgotten `COMMIT`), the connection is closed rather than reused, because its state is
/// unknown.
///
/// ```no_run
/// # async fn demo(db: tenantry::Database) -> tenantry::Result<()> {
/// let mut conn = db.acquire_postgres().await?;
/// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await?;
/// conn.release();
/// # Ok(()) }
/// ```
pub struct PooledConnection<DB: sqlx::Database> {
    object: Option<Object<Manager<DB>>>,
}

impl<DB: sqlx::Database> PooledConnection<DB> {
    pub(crate) fn new(checkout: Checkout<DB>) -> Result<Self> {
        checkout
            .into_object()
            .map(|object| PooledConnection {
                object: Some(object),
            })
            .ok_or(Error::Closed)
    }

    /// Returns the connection to the pool for the next user. Call it only after every
    /// statement on it completed and it carries no session state.
    pub fn release(mut self) {
        drop(self.object.take());
    }

    /// Closes the connection instead of returning it (what dropping it does).
    pub fn close(self) {}

    fn object(&self) -> &Object<Manager<DB>> {
        self.object
            .as_ref()
            .unwrap_or_else(|| unreachable!("the object is only taken by release or drop"))
    }
}

impl<DB: sqlx::Database> Drop for PooledConnection<DB> {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            drop(Object::take(object));
        }
    }
}

impl<DB: sqlx::Database> Deref for PooledConnection<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        self.object()
            .raw_ref()
            .unwrap_or_else(|| unreachable!("the connection is only taken when dropped"))
    }
}

impl<DB: sqlx::Database> DerefMut for PooledConnection<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self.object.as_mut() {
            Some(object) => object
                .raw()
                .unwrap_or_else(|| unreachable!("the connection is only taken when dropped")),
            None => unreachable!("the object is only taken by release or drop"),
        }
    }
}

impl<DB: sqlx::Database> std::fmt::Debug for PooledConnection<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConnection").finish_non_exhaustive()
    }
}
