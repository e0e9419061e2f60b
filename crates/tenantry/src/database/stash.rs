//! A few warm connections kept checked out of sqlx's pool and reused last-in, first-out.
//!
//! sqlx 0.8.6 pings every connection it takes back (a round trip that cannot be switched
//! off) and hands idle connections out in turn, so consecutive queries rotate over every
//! connection and each needs its own prepared copy of every tenant's statements. Reusing the
//! most recently used connection directly skips both: a query costs its own round trip, and
//! the connection it runs on already has the statement prepared.
//!
//! At most half of the pool (none of a pool of one) is kept here, so transactions and other
//! pool users always find connections. A connection whose query failed for any reason other
//! than a database error, or whose query was cancelled half way, is closed rather than kept:
//! nothing unknown is handed to the next query.

use std::sync::Mutex;

use sqlx::pool::{Pool, PoolConnection};

use crate::error::Result;

pub(crate) struct Stash<DB: sqlx::Database> {
    idle: Mutex<Vec<PoolConnection<DB>>>,
    limit: usize,
}

impl<DB: sqlx::Database> Stash<DB> {
    pub(crate) fn new(max_connections: u32) -> Self {
        Stash {
            idle: Mutex::new(Vec::new()),
            limit: (max_connections / 2) as usize,
        }
    }

    /// The most recently used stashed connection, else one from the pool.
    pub(crate) async fn lease<'s>(&'s self, pool: &Pool<DB>) -> Result<Lease<'s, DB>> {
        let stashed = self.lock().pop();
        let conn = match stashed {
            Some(conn) => conn,
            None => pool.acquire().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            stash: self,
        })
    }

    /// Hands every stashed connection back to the pool (before the pool closes).
    pub(crate) fn release_all(&self) {
        drop(std::mem::take(&mut *self.lock()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PoolConnection<DB>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection on loan from a [`Stash`]. Dropped without [`finish`](Self::finish) (the
/// query was cancelled), its connection is closed.
pub(crate) struct Lease<'s, DB: sqlx::Database> {
    conn: Option<PoolConnection<DB>>,
    stash: &'s Stash<DB>,
}

impl<DB: sqlx::Database> Lease<'_, DB> {
    pub(crate) fn conn(&mut self) -> Option<&mut DB::Connection> {
        self.conn.as_deref_mut()
    }

    /// Returns the connection after its statement completed with `outcome`: kept for the
    /// next query on success or a database error, closed after anything else.
    pub(crate) fn finish<T>(mut self, outcome: &std::result::Result<T, sqlx::Error>) {
        let Some(conn) = self.conn.take() else { return };
        let healthy = matches!(outcome, Ok(_) | Err(sqlx::Error::Database(_)));
        if !healthy {
            let mut conn = conn;
            conn.close_on_drop();
            return;
        }
        let mut idle = self.stash.lock();
        if idle.len() < self.stash.limit {
            idle.push(conn);
        }
    }
}

impl<DB: sqlx::Database> Drop for Lease<'_, DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}
