//! Pool settings, from a builder or from the URL's query string.

use std::time::Duration;

use crate::error::{Error, Result};

/// How the connection pool(s) of a [`Database`](crate::Database) are sized.
///
/// Set them with the builder methods of [`DatabaseOptions`], or in the URL's query string:
/// `max_connections`, `min_connections`, `acquire_timeout` (seconds), `idle_timeout`
/// (seconds) and `statement_cache_capacity`. These keys are removed from the URL before it
/// reaches the driver.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    /// `None`: the backend's default, see [`PoolSettings::statement_cache_capacity`].
    pub(crate) statement_cache_capacity: Option<usize>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            statement_cache_capacity: None,
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

    /// Builds sqlx pool options from these settings.
    ///
    /// The pool does not ping a connection before handing it out: a query on a dead
    /// connection fails with [`Error::Database`] and the connection is discarded, which
    /// saves one round trip on every query.
    pub(crate) fn pool_options<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .test_before_acquire(false)
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
            "min_connections" => self.min_connections = number(key, value)? as u32,
            "acquire_timeout" => self.acquire_timeout = Duration::from_secs(number(key, value)?),
            "idle_timeout" => self.idle_timeout = Some(Duration::from_secs(number(key, value)?)),
            "statement_cache_capacity" => {
                self.statement_cache_capacity = Some(number(key, value)? as usize)
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
    overrides: Vec<(&'static str, u64)>,
}

impl DatabaseOptions {
    pub(crate) fn new(url: &str) -> Self {
        DatabaseOptions {
            url: url.to_owned(),
            settings: PoolSettings::default(),
            overrides: Vec::new(),
        }
    }

    /// The most connections each pool holds (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.overrides
            .push(("max_connections", u64::from(n.max(1))));
        self
    }

    /// The connections each pool keeps open when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.overrides.push(("min_connections", u64::from(n)));
        self
    }

    /// How long a query waits for a free connection before failing (default 30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.overrides.push(("acquire_timeout", timeout.as_secs()));
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
            .push(("statement_cache_capacity", u64::from(n)));
        self
    }

    /// Resolves URL settings, then the builder's, which win.
    pub(crate) fn resolve(mut self) -> Result<(String, PoolSettings)> {
        let url = self.settings.take_from_url(&self.url)?;
        for (key, value) in std::mem::take(&mut self.overrides) {
            self.settings.apply(key, &value.to_string())?;
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
