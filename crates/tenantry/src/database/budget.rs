//! A cap on the connections that several pools open together (a tenant directory's pools,
//! one per server and database, and the default database's if it joins).
//!
//! Each pool keeps its own `max_connections`; the budget bounds their sum. A pool opening a
//! connection takes a slot of the budget and holds it until that connection has been closed
//! (explicitly, so that the server has been told before the slot is reused). When no slot is
//! free, the idle connections of the least recently used pool that has any are closed to make
//! room; when every connection is in use, the opener waits for a slot up to the budget's wait,
//! then fails with [`Error::ConnectionBudgetExhausted`](crate::Error::ConnectionBudgetExhausted).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A shared cap on the connections of several [`Database`](crate::Database)s' pools.
/// Cheap to clone; clones share the cap.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use tenantry::{ConnectionBudget, Database};
///
/// let budget = ConnectionBudget::new(8).wait(Duration::from_secs(2));
/// let db = Database::options("sqlite::memory:")
///     .connection_budget(&budget)
///     .connect()
///     .await
///     .unwrap();
/// assert_eq!(budget.limit(), 8);
/// assert_eq!(budget.in_use(), 1); // the connection `connect` opened to check the database
/// db.disconnect().await;
/// # });
/// ```
#[derive(Clone)]
pub struct ConnectionBudget {
    inner: Arc<Inner>,
    /// This handle's wait: clones share everything else.
    wait: Duration,
}

struct Inner {
    limit: usize,
    slots: Arc<Semaphore>,
    /// When the budget was made: pools record their last use as milliseconds since then.
    born: Instant,
    /// The pools drawing on the budget, to close idle connections of when it runs out.
    pools: Mutex<Vec<Box<dyn IdlePool>>>,
}

impl std::fmt::Debug for ConnectionBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionBudget")
            .field("limit", &self.inner.limit)
            .field("in_use", &self.in_use())
            .field("wait", &self.wait)
            .finish()
    }
}

/// A pool as the budget sees it: when it was last used, and a way to close its idle
/// connections. Held weakly: a pool that is gone reports `None`.
pub(crate) trait IdlePool: Send + Sync {
    /// Milliseconds since the budget's birth at the pool's last checkout; `None` once the
    /// pool is gone.
    fn last_used(&self) -> Option<u64>;
    /// Closes the pool's idle connections; how many there were.
    fn close_idle(&self) -> usize;
}

/// The budget ran out: every slot was in use for the whole wait.
#[derive(Debug)]
pub(crate) struct BudgetExhausted {
    pub(crate) limit: usize,
    pub(crate) waited: Duration,
}

impl std::fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the connection budget of {} is in use (waited {:?})",
            self.limit, self.waited
        )
    }
}

impl std::error::Error for BudgetExhausted {}

/// One connection's slot of the budget, given back when dropped.
pub(crate) type BudgetSlot = OwnedSemaphorePermit;

/// How often a waiter looks again for idle connections to close.
const RETRY: Duration = Duration::from_millis(25);

impl ConnectionBudget {
    /// A budget of `limit` connections (at least 1, at most tokio's semaphore maximum,
    /// about 2.3 quintillion), whose openers wait up to 5 s for a slot.
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionBudget {
            inner: Arc::new(Inner {
                limit,
                slots: Arc::new(Semaphore::new(limit)),
                born: Instant::now(),
                pools: Mutex::new(Vec::new()),
            }),
            wait: Duration::from_secs(5),
        }
    }

    /// How long a pool that needs a new connection waits for a slot when every slot is in
    /// use. The budget is shared with every clone; the wait is this handle's (pools opened
    /// with it use it).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The most connections open at once.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Connections open now (or being opened, or being closed) against the budget.
    pub fn in_use(&self) -> usize {
        self.inner.limit - self.inner.slots.available_permits()
    }

    pub(crate) fn wait_time(&self) -> Duration {
        self.wait
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn IdlePool>>> {
        self.inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a pool to those whose idle connections may be closed to make room.
    pub(crate) fn enlist(&self, pool: Box<dyn IdlePool>) {
        let mut pools = self.pools();
        pools.retain(|p| p.last_used().is_some());
        pools.push(pool);
    }

    /// A slot for one new connection, waiting at most `wait` (capped by the budget's own).
    ///
    /// A waiter keeps its place in the semaphore's FIFO queue for the whole wait (slots go
    /// to the longest-waiting opener), and meanwhile closes idle connections of the least
    /// recently used pools, since a connection that went idle after the wait began frees
    /// nothing by itself.
    pub(crate) async fn acquire(&self, wait: Duration) -> Result<BudgetSlot, BudgetExhausted> {
        if let Ok(slot) = Arc::clone(&self.inner.slots).try_acquire_owned() {
            return Ok(slot);
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + wait.min(self.wait);
        let queued = Arc::clone(&self.inner.slots).acquire_owned();
        tokio::pin!(queued);
        loop {
            self.close_least_recently_used();
            let retry = (tokio::time::Instant::now() + RETRY).min(deadline);
            tokio::select! {
                slot = &mut queued => match slot {
                    Ok(slot) => return Ok(slot),
                    // The semaphore is never closed; reported as exhausted all the same.
                    Err(_) => break,
                },
                () = tokio::time::sleep_until(retry) => {
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        Err(BudgetExhausted {
            limit: self.inner.limit,
            waited: started.elapsed(),
        })
    }

    /// Closes the idle connections of the least recently used pool that has some; their
    /// slots come back as their closes return.
    fn close_least_recently_used(&self) {
        let mut pools = self.pools();
        pools.retain(|p| p.last_used().is_some());
        let mut order: Vec<(u64, usize)> = pools
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.last_used().map(|at| (at, i)))
            .collect();
        order.sort_unstable();
        for (_, i) in order {
            if pools[i].close_idle() > 0 {
                return;
            }
        }
    }
}

/// A pool's last checkout, as milliseconds since its budget's birth.
#[derive(Default)]
pub(crate) struct LastUsed(AtomicU64);

impl LastUsed {
    pub(crate) fn touch(&self, budget: &ConnectionBudget) {
        self.0.store(budget.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
