//! Pool settings, from a builder or from the URL's query string.

use std::time::Duration;

use crate::error::{Error, Result};

/// How the connection pool(s) of a [`Database`](crate::Database) are sized.
///
/// Set them with the builder methods of [`DatabaseOptions`], or in the URL's query string:
/// `max_connections`, `acquire_timeout`, `idle_timeout`, `max_lifetime`, `ping_idle_after`,
/// `disconnect_timeout` (durations in seconds, fractions allowed: `acquire_timeout=0.25`; `0`
/// for `idle_timeout`/`max_lifetime` means none), `statement_cache_capacity` and
/// `sqlite_open_schemas`. These keys are removed from the URL before it reaches the driver.
/// (`min_connections` is accepted for compatibility and ignored: connections open on demand.)
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub(crate) max_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) ping_idle_after: Duration,
    pub(crate) disconnect_timeout: Duration,
    /// `None`: the backend's default, see [`PoolSettings::statement_cache_capacity`].
    pub(crate) statement_cache_capacity: Option<usize>,
    /// `None`: derived from the open-file limit, see [`PoolSettings::sqlite_open_schemas`].
    pub(crate) sqlite_open_schemas: Option<usize>,
    /// The cap shared with other databases' pools, if any.
    pub(crate) budget: Option<super::ConnectionBudget>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            ping_idle_after: Duration::from_secs(1),
            disconnect_timeout: Duration::from_secs(10),
            statement_cache_capacity: None,
            sqlite_open_schemas: None,
            budget: None,
        }
    }
}

impl PoolSettings {
    /// The prepared statements each connection keeps: the configured number, else 1,024 on
    /// PostgreSQL and MySQL and sqlx's 100 on SQLite.
    ///
    /// Every statement names its tables with their schema, so each tenant has statement
    /// texts of its own. sqlx's default of 100 is used up by a few dozen tenants, after which
    /// nearly every query prepares again (one more round trip) and closes an evicted
    /// statement (measured: point reads over 1,000 tenants 5 times slower than over one on
    /// PostgreSQL, 2.4 times on MariaDB). A statement is prepared only when first used, so the
    /// cap costs server memory only for statements that ran. On MySQL the server caps
    /// prepared statements over all connections of all clients (`max_prepared_stmt_count`,
    /// 16,382 by default): 1,024 per connection fits a pool of 10 connections of one process;
    /// lower it, or raise the server's cap, for more. SQLite's schemas are files with pools
    /// of their own, each seeing one tenant's statements.
    pub(crate) fn statement_cache_capacity(&self, backend: crate::Backend) -> usize {
        self.statement_cache_capacity.unwrap_or(match backend {
            crate::Backend::Postgres | crate::Backend::MySql => 1024,
            crate::Backend::Sqlite => 100,
        })
    }

    /// How many SQLite tenant files stay open at once: the configured number, else one per
    /// sixteen file descriptors of the process's soft `RLIMIT_NOFILE` (a WAL-mode connection
    /// holds three: the file, its `-wal` and its `-shm`; six once it has attached the main
    /// file to reach the shared schema), between 16 and 4,096. Beyond it, the
    /// least recently used schema whose connections are all idle is closed.
    pub(crate) fn sqlite_open_schemas(&self) -> usize {
        self.sqlite_open_schemas.unwrap_or_else(|| {
            let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024);
            usize::try_from(soft / 16).unwrap_or(4096).clamp(16, 4096)
        })
    }

    /// Reads and strips the pool keys from `url`, returning the URL the driver should see.
    pub(crate) fn take_from_url(&mut self, url: &str) -> Result<String> {
        let Some((base, query)) = url.split_once('?') else {
            return Ok(url.to_owned());
        };
        let mut kept = url::form_urlencoded::Serializer::new(String::new());
        let mut any_kept = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if !self.apply(&key, &value)? {
                kept.append_pair(&key, &value);
                any_kept = true;
            }
        }
        let mut out = base.to_owned();
        if any_kept {
            out.push('?');
            out.push_str(&kept.finish());
        }
        Ok(out)
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "max_connections" => self.max_connections = number(key, value)?.max(1) as u32,
            "min_connections" => {
                number(key, value)?;
            }
            "acquire_timeout" => {
                self.acquire_timeout = seconds(key, value)?;
                if self.acquire_timeout.is_zero() {
                    return Err(Error::InvalidUrl {
                        reason: "acquire_timeout must be more than 0 seconds: it also bounds \
                                 opening a connection"
                            .to_owned(),
                    });
                }
            }
            "idle_timeout" => self.idle_timeout = optional(seconds(key, value)?),
            "max_lifetime" => self.max_lifetime = optional(seconds(key, value)?),
            "ping_idle_after" => self.ping_idle_after = seconds(key, value)?,
            "disconnect_timeout" => self.disconnect_timeout = seconds(key, value)?,
            "statement_cache_capacity" => {
                self.statement_cache_capacity = Some(number(key, value)? as usize)
            }
            "sqlite_open_schemas" => {
                self.sqlite_open_schemas = Some((number(key, value)? as usize).max(1))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn number(key: &str, value: &str) -> Result<u64> {
    value
        .parse::<u32>()
        .map(u64::from)
        .map_err(|_| Error::InvalidUrl {
            reason: format!("{key} must be a non-negative integer, got {value:?}"),
        })
}

/// A duration in seconds, fractions allowed (`0.25`), at most a year.
fn seconds(key: &str, value: &str) -> Result<Duration> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 31_536_000.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| Error::InvalidUrl {
            reason: format!("{key} must be a number of seconds (fractions allowed), got {value:?}"),
        })
}

/// Zero means "no limit".
fn optional(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// A builder for a [`Database`](crate::Database) with explicit pool settings.
///
/// ```no_run
/// # async fn demo() -> tenantry::Result<()> {
/// let db = tenantry::Database::options("postgres://postgres@127.0.0.1/app")
///     .max_connections(20)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    pub(crate) url: String,
    pub(crate) settings: PoolSettings,
    overrides: Vec<(&'static str, String)>,
    /// See [`DatabaseOptions::tenant_namespace`].
    pub(crate) tenant_namespace: Option<String>,
    /// A directory database (see [`crate::Database::is_directory_database`]).
    pub(crate) directory: bool,
}

impl DatabaseOptions {
    pub(crate) fn new(url: &str) -> Self {
        DatabaseOptions {
            url: url.to_owned(),
            settings: PoolSettings::default(),
            overrides: Vec::new(),
            tenant_namespace: None,
            directory: false,
        }
    }

    /// The most connections each pool holds (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.overrides
            .push(("max_connections", n.max(1).to_string()));
        self
    }

    /// Accepted for compatibility and ignored: connections open when first needed.
    pub fn min_connections(self, _n: u32) -> Self {
        self
    }

    /// How long a query waits for a free connection (and for a new one to open) before
    /// failing with [`Error::PoolTimedOut`] (default 30 s). Sub-second values are kept.
    pub fn acquire_timeout(self, timeout: Duration) -> Self {
        self.duration("acquire_timeout", timeout)
    }

    /// How long a connection may sit idle before it is closed (default 10 min; `None` keeps
    /// idle connections forever).
    pub fn idle_timeout(self, timeout: Option<Duration>) -> Self {
        self.duration("idle_timeout", timeout.unwrap_or_default())
    }

    /// How long a connection may live before it is replaced (default 30 min; `None`: forever).
    pub fn max_lifetime(self, lifetime: Option<Duration>) -> Self {
        self.duration("max_lifetime", lifetime.unwrap_or_default())
    }

    /// A connection idle longer than this is pinged before it is handed out (default 1 s);
    /// one used more recently costs no round trip. After a connection-level failure every
    /// connection is pinged once, whatever its idle time. So a server restarted in less
    /// than this with no traffic meanwhile can fail the first statement sent on one stale
    /// connection (an I/O error, never a wrong answer); the failure makes the pool check
    /// every other idle connection before reuse.
    pub fn ping_idle_after(self, idle: Duration) -> Self {
        self.duration("ping_idle_after", idle)
    }

    /// How long [`Database::disconnect`](crate::Database::disconnect) waits for statements
    /// and transactions in flight before it returns (default 10 s).
    pub fn disconnect_timeout(self, timeout: Duration) -> Self {
        self.duration("disconnect_timeout", timeout)
    }

    /// How many SQLite tenant files stay open at once (default: derived from the process's
    /// open-file limit, one schema per eight descriptors, 16 to 4,096). Idle schemas beyond
    /// it are closed, least recently used first, and reopen on their next query.
    pub fn sqlite_open_schemas(mut self, n: usize) -> Self {
        self.overrides.push(("sqlite_open_schemas", n.to_string()));
        self
    }

    fn duration(mut self, key: &'static str, value: Duration) -> Self {
        self.overrides.push((key, value.as_secs_f64().to_string()));
        self
    }

    /// How many prepared statements each connection keeps (sqlx's per-connection statement
    /// cache, least recently used evicted first). `0` turns the cache off: every query is
    /// then sent as an unnamed statement, which costs a round trip more on MySQL and a parse
    /// on PostgreSQL, but holds no server memory per tenant. Default: 1,024 on PostgreSQL and
    /// MySQL (every tenant has statement texts of its own; MySQL's server caps prepared
    /// statements over all connections at `max_prepared_stmt_count`), 100 on SQLite.
    pub fn statement_cache_capacity(mut self, n: usize) -> Self {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.overrides
            .push(("statement_cache_capacity", n.to_string()));
        self
    }

    /// Counts this database's connections against `budget`, a cap shared with other
    /// databases (see [`ConnectionBudget`](crate::ConnectionBudget)): a new connection
    /// waits for a slot (closing the idle connections of the least recently used pool when
    /// none is free), and fails with
    /// [`Error::ConnectionBudgetExhausted`](crate::Error::ConnectionBudgetExhausted) when
    /// none came within the budget's wait (at most nine tenths of the acquire timeout).
    pub fn connection_budget(mut self, budget: &super::ConnectionBudget) -> Self {
        self.settings.budget = Some(budget.clone());
        self
    }

    /// The namespace of this application's tenant databases on MySQL / MariaDB (default: the
    /// URL's database name; also the URL key `tenant_namespace`, which this overrides): tenant
    /// schema `s` is the server database `<namespace>$<s>`, see
    /// [`Database::tenant_namespace`](crate::Database::tenant_namespace). 1 to 62 characters
    /// from `a-z`, `0-9`, `_` and `-`, else [`Error::InvalidUrl`] on connect. Validated but
    /// without effect on PostgreSQL and SQLite.
    pub fn tenant_namespace(mut self, namespace: &str) -> Self {
        self.tenant_namespace = Some(namespace.to_owned());
        self
    }

    /// Resolves URL settings, then the builder's, which win.
    pub(crate) fn resolve(mut self) -> Result<(String, PoolSettings)> {
        let url = self.settings.take_from_url(&self.url)?;
        for (key, value) in std::mem::take(&mut self.overrides) {
            self.settings.apply(key, &value)?;
        }
        Ok((url, self.settings))
    }

    /// Connects now: every pool opens one connection to prove the URL works.
    pub async fn connect(self) -> Result<crate::Database> {
        crate::Database::from_options(self, true).await
    }

    /// Builds the database without connecting; the first query connects.
    pub async fn connect_lazy(self) -> Result<crate::Database> {
        crate::Database::from_options(self, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    #[test]
    fn statement_cache_capacity_from_url_and_builder() {
        let (url, settings) =
            DatabaseOptions::new("postgres://h/db?statement_cache_capacity=7&x=1")
                .resolve()
                .unwrap();
        assert_eq!(url, "postgres://h/db?x=1");
        assert_eq!(settings.statement_cache_capacity(Backend::Postgres), 7);

        let (_, settings) = DatabaseOptions::new("mysql://h/db?statement_cache_capacity=7")
            .statement_cache_capacity(0)
            .resolve()
            .unwrap();
        assert_eq!(settings.statement_cache_capacity(Backend::MySql), 0);

        let (_, settings) = DatabaseOptions::new("postgres://h/db").resolve().unwrap();
        assert_eq!(settings.statement_cache_capacity(Backend::Postgres), 1024);
        assert_eq!(settings.statement_cache_capacity(Backend::MySql), 1024);
        assert!(
            DatabaseOptions::new("postgres://h/db?statement_cache_capacity=x")
                .resolve()
                .is_err()
        );
    }
}
