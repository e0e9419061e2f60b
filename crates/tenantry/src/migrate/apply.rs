//! Applying one schema's pending migrations under its lock: in one transaction with the
//! history rows on PostgreSQL and SQLite, step by recorded step on MySQL / MariaDB (whose
//! DDL commits implicitly), so a killed run resumes without skipping or repeating a step.

use std::time::{Duration, Instant};

use sea_query::{Expr, ExprTrait, Func, IntoIden, Query};
use sha2::{Digest, Sha256};

use super::{
    conn::RunnerConn,
    error::{MigrationError, MigrationErrorKind},
    history::{self, LedgerState},
    migration::Migration,
    operation::Operation,
    render::{op_table, sqlite_rebuilds, Renderer, Replay, SQLITE_FOREIGN_KEY_CHECK},
    runner::{Migrator, RunOptions},
    snapshot::Snapshot,
};
use crate::{backend::Backend, error::Error, pg_setting::set_local, schema_name::SchemaName};

/// SQLite: foreign keys off for a migration that rebuilds a table, before its `BEGIN` (the
/// pragma does nothing inside a transaction); a pragma has no sea-query form.
const SQLITE_FOREIGN_KEYS_OFF: &str = "PRAGMA foreign_keys = OFF";
/// SQLite: foreign keys back on after the transaction.
const SQLITE_FOREIGN_KEYS_ON: &str = "PRAGMA foreign_keys = ON";

/// The advisory-lock space of tenantry's migrations on PostgreSQL: the high 32 bits of the
/// lock key; the low 32 are the schema's OID (unique in the database; 0 for the shared
/// schema's migrations).
const PG_LOCK_SPACE: i64 = 0x7465_6e74 << 32;

/// Which lock a migration takes.
#[derive(Clone, Copy)]
pub(crate) enum Lock<'a> {
    /// The shared schema's; the key names it on MySQL's server-wide lock table.
    Shared(&'a str),
    /// A tenant's, with its MySQL key (the tenant's server database).
    Tenant(&'a SchemaName, &'a str),
}

/// What an attempt did: the migrations it applied, and the one it adopted; and what it
/// was told: whether the schema's last attempt failed (rather than being interrupted).
#[derive(Default)]
pub(crate) struct Done {
    pub(crate) applied: Vec<String>,
    pub(crate) adopted: Option<String>,
    /// MySQL resumes a step a killed run may have completed by accepting its "already
    /// applied" error; after a recorded failure that error is the failure itself.
    pub(crate) failed_before: bool,
}

/// Why a schema's migration stopped, and the version it is left at.
pub(crate) struct Failure {
    pub(crate) error: MigrationError,
    pub(crate) version: Option<String>,
}

impl Failure {
    pub(crate) fn new(
        tenant: &SchemaName,
        migration: Option<&str>,
        kind: MigrationErrorKind,
    ) -> Failure {
        Failure {
            error: MigrationError {
                tenant: Some(tenant.to_string()),
                migration: migration.map(str::to_owned),
                kind,
            },
            version: None,
        }
    }

    pub(crate) fn into_error(self) -> Error {
        Error::Migration(Box::new(self.error))
    }
}

/// One history row.
struct Recorded {
    id: String,
    checksum: String,
    steps: i64,
    done: bool,
}

/// What a MySQL step runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// A rendered DDL statement.
    Ddl,
    /// A hand-written statement, run in a transaction with its record.
    Raw,
    /// A data step (the statement text is its name), run in a transaction with its record.
    Data,
}

/// What a lock or statement error means for the run.
enum Stop {
    /// Retry the tenant (a DDL statement waited past `lock_timeout`).
    Retry(sqlx::Error),
    /// Record this failure.
    Fail(MigrationErrorKind),
}

/// Context for one schema's attempt.
struct Attempt<'a> {
    renderer: Renderer<'a>,
    tenant: Option<&'a SchemaName>,
    migrations: &'a [&'a Migration],
    options: &'a RunOptions,
    lock: Lock<'a>,
    /// The migration recorded by adoption in the attempt that succeeded, if any.
    adopted: std::sync::Mutex<Option<String>>,
    /// A step whose change is found made may be taken as done (MySQL): only when the last
    /// attempt was interrupted, not when it failed.
    resumable: bool,
    /// The runner, for its data steps and registry.
    migrator: &'a Migrator,
    /// The scope's replays, made once per run.
    replays: std::sync::Arc<ScopeReplay>,
}

/// What one scope's migrations build before each of them, replayed once per run (not once
/// per tenant: a fleet of 10,000 tenants and 200 migrations would replay them all 10,000
/// times).
#[derive(Debug)]
pub(crate) struct ScopeReplay {
    /// The replay before each migration of the scope, in order.
    starts: Vec<Replay>,
    /// Some operation of the scope is a SQLite table rebuild.
    rebuilds: bool,
}

impl ScopeReplay {
    pub(crate) fn new(migrations: &[&Migration], tenant: bool) -> ScopeReplay {
        let mut replay = Replay::new();
        let mut starts = Vec::with_capacity(migrations.len());
        let mut rebuilds = false;
        for migration in migrations {
            starts.push(replay.clone());
            for op in migration.operations() {
                rebuilds = rebuilds || sqlite_rebuilds(op, replay.snapshot(), tenant);
                replay.apply(op);
            }
        }
        ScopeReplay { starts, rebuilds }
    }
}

/// Applies the pending `migrations` to one schema under `lock`; the version it is at.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_locked(
    conn: &mut RunnerConn,
    renderer: Renderer<'_>,
    tenant: Option<&SchemaName>,
    migrations: &[&Migration],
    options: &RunOptions,
    lock: Lock<'_>,
    done: &mut Done,
    migrator: &Migrator,
) -> Result<Option<String>, Failure> {
    let Done {
        applied,
        adopted,
        failed_before,
    } = done;
    let attempt = Attempt {
        renderer,
        tenant,
        migrations,
        options,
        lock,
        adopted: std::sync::Mutex::new(None),
        resumable: !*failed_before,
        migrator,
        replays: migrator.scope_replay(renderer.tenant, migrations),
    };
    let mut retries = 0;
    loop {
        applied.clear();
        *attempt.adopted.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let mut version = None;
        let result = match conn.backend() {
            Backend::MySql => attempt.stepwise(conn, applied, &mut version).await,
            Backend::Postgres | Backend::Sqlite => {
                attempt.transactional(conn, applied, &mut version).await
            }
        };
        match result {
            Ok(()) => {
                *adopted = attempt
                    .adopted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                return Ok(version);
            }
            Err((migration, Stop::Retry(cause))) if retries < options.lock_retries => {
                retries += 1;
                tracing::info!(tenant = attempt.name(), migration, %cause, retries, "lock timeout; retrying");
                tokio::time::sleep(Duration::from_millis(100 << Ord::min(retries, 6))).await;
            }
            Err((migration, stop)) => {
                let kind = match stop {
                    Stop::Retry(cause) => MigrationErrorKind::Failed(format!(
                        "{cause} (still locked after {retries} retries)"
                    )),
                    Stop::Fail(kind) => kind,
                };
                return Err(Failure {
                    error: MigrationError {
                        tenant: tenant.map(|t| t.to_string()),
                        migration,
                        kind,
                    },
                    version,
                });
            }
        }
    }
}

type Step<T> = Result<T, (Option<String>, Stop)>;

fn failed(migration: Option<&str>, error: impl ToString) -> (Option<String>, Stop) {
    (
        migration.map(str::to_owned),
        Stop::Fail(MigrationErrorKind::Failed(error.to_string())),
    )
}

fn code(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn mysql_number(error: &sqlx::Error) -> Option<u16> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|e| e.number()),
        _ => None,
    }
}

/// A DDL error on a statement: lock waits are retried, anything else fails the tenant.
fn statement_error(
    backend: Backend,
    migration: &str,
    error: sqlx::Error,
) -> (Option<String>, Stop) {
    let lock_wait = match backend {
        Backend::Postgres => code(&error).as_deref() == Some("55P03"),
        Backend::MySql => mysql_number(&error) == Some(1205),
        Backend::Sqlite => code(&error).as_deref() == Some("5"),
    };
    let stop = if lock_wait {
        Stop::Retry(error)
    } else {
        Stop::Fail(MigrationErrorKind::Failed(error.to_string()))
    };
    (Some(migration.to_owned()), stop)
}

/// MySQL errors meaning "this step's change is already there": what re-running a step that
/// completed just before a kill reports.
fn already_applied(error: &sqlx::Error) -> bool {
    matches!(
        mysql_number(error),
        // table exists, unknown table, duplicate column, can't drop, duplicate key name,
        // unknown column (renamed), table doesn't exist (renamed), duplicate foreign key
        Some(1050 | 1051 | 1060 | 1091 | 1061 | 1054 | 1146 | 1826)
    )
}

impl Attempt<'_> {
    fn name(&self) -> &str {
        self.tenant.map_or("shared", SchemaName::as_str)
    }

    fn millis(duration: Duration) -> String {
        let mut text = duration.as_millis().max(1).to_string();
        text.push_str("ms");
        text
    }

    /// PostgreSQL and SQLite: lock, read the history, apply, record, commit; all or nothing.
    async fn transactional(
        &self,
        conn: &mut RunnerConn,
        applied: &mut Vec<String>,
        version: &mut Option<String>,
    ) -> Step<()> {
        let started = Instant::now();
        let begin = match conn.backend() {
            // The write lock on the file, taken now: the per-tenant lock (busy_timeout is the
            // lock wait).
            Backend::Sqlite => "BEGIN IMMEDIATE",
            _ => "BEGIN",
        };
        if self.foreign_keys_off() {
            // A no-op inside a transaction: turned off before it, so that dropping a rebuilt
            // table's old copy does not run its children's ON DELETE actions.
            conn.ddl(SQLITE_FOREIGN_KEYS_OFF)
                .await
                .map_err(|e| failed(None, e))?;
        }
        if conn.backend() == Backend::Postgres {
            self.add_enum_labels_first(conn).await?;
        }
        if let Err(error) = conn.ddl(begin).await {
            self.foreign_keys_on(conn).await;
            let kind = if code(&error).as_deref() == Some("5") {
                MigrationErrorKind::Locked {
                    waited_ms: started.elapsed().as_millis() as u64,
                }
            } else {
                MigrationErrorKind::Failed(error.to_string())
            };
            return Err((None, Stop::Fail(kind)));
        }
        let result = self
            .transactional_body(conn, applied, version, started)
            .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = conn.ddl(end).await;
        self.foreign_keys_on(conn).await;
        if result.is_err() || ended.is_err() {
            // Rolled back: nothing of this attempt was kept.
            applied.clear();
        }
        match ended {
            Err(error) if result.is_ok() => Err(failed(None, error)),
            _ => result,
        }
    }

    async fn transactional_body(
        &self,
        conn: &mut RunnerConn,
        applied: &mut Vec<String>,
        version: &mut Option<String>,
        started: Instant,
    ) -> Step<()> {
        if conn.backend() == Backend::Postgres {
            self.pg_lock(conn, started).await?;
            if let Some(tenant) = self.tenant {
                // Bare names in a tenant's raw steps resolve in the tenant's schema, never
                // the shared one; for this transaction only, on the runner's own connection.
                let mut path = String::new();
                sea_query::QuotedBuilder::prepare_iden(
                    &sea_query::PostgresQueryBuilder,
                    &sea_query::Alias::new(tenant.as_str()).into_iden(),
                    &mut path,
                );
                conn.exec(&set_local("search_path", &path))
                    .await
                    .map_err(|e| failed(None, e))?;
            }
        }
        let namespace = self.renderer.namespace;
        let mut recorded = self.history(conn).await?;
        *version = self.verify(&recorded)?;
        self.adopt(conn, &mut recorded, version).await?;
        for (migration, mut replay) in self.pending(&recorded) {
            for op in migration.operations() {
                if let Operation::Data { name } = op {
                    self.data_step(conn, migration.id(), name).await?;
                    continue;
                }
                let statements = self
                    .renderer
                    .render_at(op, &replay)
                    .map_err(|e| unsupported(migration.id(), e))?;
                if conn.backend() == Backend::Sqlite
                    && sqlite_rebuilds(op, replay.snapshot(), self.renderer.tenant)
                {
                    self.check_rebuilt_columns(conn, migration.id(), op, replay.snapshot())
                        .await?;
                }
                replay.apply(op);
                for sql in statements {
                    if sql == SQLITE_FOREIGN_KEY_CHECK {
                        self.foreign_key_check(conn, migration.id()).await?;
                        continue;
                    }
                    conn.ddl(&sql)
                        .await
                        .map_err(|e| statement_error(conn.backend(), migration.id(), e))?;
                }
            }
            let record =
                history::insert_history(namespace, migration.id(), migration.checksum(), 0, true);
            conn.exec(&record)
                .await
                .map_err(|e| failed(Some(migration.id()), e))?;
            applied.push(migration.id().to_owned());
        }
        if let Some(last) = applied.last() {
            *version = Some(last.clone());
            if self.foreign_keys_off() {
                // With the keys off, no statement of the migrations (a raw data step too)
                // was checked against them: every key is checked before the commit.
                self.foreign_key_check(conn, last).await?;
            }
        }
        if let (Backend::Postgres, Some(tenant)) = (conn.backend(), self.tenant) {
            let millis = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            let row = history::upsert_ledger(
                self.renderer.shared_namespace,
                tenant.as_str(),
                version.as_deref(),
                LedgerState::Done,
                None,
                millis,
            );
            conn.exec(&row).await.map_err(|e| failed(None, e))?;
        }
        Ok(())
    }

    /// SQLite: `foreign_keys` back on after the transaction (the connection may serve the
    /// next step of the run).
    async fn foreign_keys_on(&self, conn: &mut RunnerConn) {
        if self.foreign_keys_off() {
            if let Err(error) = conn.ddl(SQLITE_FOREIGN_KEYS_ON).await {
                tracing::warn!(schema = self.name(), %error, "could not turn foreign_keys back on");
            }
        }
    }

    /// SQLite, before a rebuild: the live table has exactly the columns the migrations
    /// recorded. A rebuild makes the table from the recorded definition and copies the
    /// recorded columns, so a column added behind the migrations' back (by hand, by a raw
    /// step) would be lost: refused instead, before any statement.
    async fn check_rebuilt_columns(
        &self,
        conn: &mut RunnerConn,
        migration: &str,
        op: &Operation,
        before: Option<&Snapshot>,
    ) -> Step<()> {
        let Some(table) = op_table(op) else {
            return Ok(());
        };
        let Some(recorded) = before.and_then(|s| s.table(table)) else {
            return Ok(());
        };
        let select = Query::select()
            .column(sea_query::Alias::new("name"))
            .from_function(
                Func::cust("pragma_table_info").arg(table),
                sea_query::Alias::new("c"),
            )
            .to_owned();
        let rows = conn
            .rows(&select)
            .await
            .map_err(|e| failed(Some(migration), e))?;
        let live = rows
            .iter()
            .map(|row| row.get::<String>(0))
            .collect::<Result<Vec<String>, sqlx::Error>>()
            .map_err(|e| failed(Some(migration), e))?;
        let only_live: Vec<&str> = live
            .iter()
            .map(String::as_str)
            .filter(|name| recorded.column(name).is_none())
            .collect();
        let only_recorded: Vec<&str> = recorded
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| !live.iter().any(|l| l == name))
            .collect();
        if only_live.is_empty() && only_recorded.is_empty() {
            return Ok(());
        }
        Err((
            Some(migration.to_owned()),
            Stop::Fail(MigrationErrorKind::Unsupported(format!(
                "{} rebuilds table {table}, which is not what the migrations recorded \
                 (columns only in the table: [{}]; recorded but missing: [{}]); a rebuild \
                 from the recorded definition would lose data, so nothing was changed: \
                 record the difference in a migration first",
                op.describe(),
                only_live.join(", "),
                only_recorded.join(", ")
            ))),
        ))
    }

    /// SQLite: `PRAGMA foreign_key_check`; any row it reports fails the migration (and the
    /// transaction is rolled back).
    async fn foreign_key_check(&self, conn: &mut RunnerConn, migration: &str) -> Step<()> {
        let rows = conn
            .foreign_key_violations(SQLITE_FOREIGN_KEY_CHECK)
            .await
            .map_err(|e| failed(Some(migration), e))?;
        let Some((table, references)) = rows.first().cloned() else {
            return Ok(());
        };
        let count = rows
            .iter()
            .filter(|(t, r)| *t == table && *r == references)
            .count();
        tracing::warn!(
            schema = self.name(),
            migration,
            table,
            references,
            rows = rows.len(),
            "foreign key check failed"
        );
        Err((
            Some(migration.to_owned()),
            Stop::Fail(MigrationErrorKind::ForeignKeyViolation {
                table,
                references,
                rows: count,
            }),
        ))
    }

    /// PostgreSQL: the transaction-scoped advisory lock of the schema (waiting at most
    /// `lock_wait`), then `lock_timeout` for the DDL.
    async fn pg_lock(&self, conn: &mut RunnerConn, started: Instant) -> Step<()> {
        let wait = set_local("lock_timeout", &Self::millis(self.options.lock_wait));
        conn.exec(&wait).await.map_err(|e| failed(None, e))?;
        let oid = match self.lock {
            Lock::Shared(_) => Expr::val(0i64),
            Lock::Tenant(schema, _) => Expr::val(schema.as_str())
                .cast_as("regnamespace")
                .cast_as("oid")
                .cast_as("bigint"),
        };
        let lock = Query::select()
            .expr(Func::cust("pg_advisory_xact_lock").arg(Expr::val(PG_LOCK_SPACE).add(oid)))
            .to_owned();
        if let Err(error) = conn.rows(&lock).await {
            let kind = match error.database_code().as_deref() {
                Some("55P03") => MigrationErrorKind::Locked {
                    waited_ms: started.elapsed().as_millis() as u64,
                },
                Some("3F000") => MigrationErrorKind::SchemaGone,
                _ => MigrationErrorKind::Failed(error.to_string()),
            };
            return Err((None, Stop::Fail(kind)));
        }
        let ddl = set_local("lock_timeout", &Self::millis(self.options.lock_timeout));
        conn.exec(&ddl).await.map_err(|e| failed(None, e))?;
        Ok(())
    }

    /// The schema's history (its table made first if missing; in the shared schema the
    /// ledger too, under the lock, since two runners racing `CREATE TABLE IF NOT EXISTS`
    /// collide on PostgreSQL's catalog).
    async fn history(&self, conn: &mut RunnerConn) -> Step<Vec<Recorded>> {
        let namespace = self.renderer.namespace;
        if let Lock::Shared(_) = self.lock {
            let ledger = history::create_ledger(conn.backend(), namespace);
            conn.ddl(&build_table(conn.backend(), &ledger))
                .await
                .map_err(|e| failed(None, e))?;
        }
        let create = history::create_history(conn.backend(), namespace);
        conn.ddl(&build_table(conn.backend(), &create))
            .await
            .map_err(|e| match code(&e).as_deref() {
                Some("3F000") => (None, Stop::Fail(MigrationErrorKind::SchemaGone)),
                _ => failed(None, e),
            })?;
        let rows = conn
            .rows(&history::select_history(namespace))
            .await
            .map_err(|e| failed(None, e))?;
        rows.iter()
            .map(|row| {
                Ok(Recorded {
                    id: row.get(0)?,
                    checksum: row.get(1)?,
                    steps: row.get(2)?,
                    done: row.get(3)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| failed(None, e))
    }

    /// A schema without history whose tables are what the scope's first migration builds
    /// records that migration as run (and is "adopted"); one whose tables differ is refused.
    async fn adopt(
        &self,
        conn: &mut RunnerConn,
        recorded: &mut Vec<Recorded>,
        version: &mut Option<String>,
    ) -> Step<()> {
        let Some(first) = self.migrations.first().copied() else {
            return Ok(());
        };
        if !recorded.is_empty() {
            return Ok(());
        }
        let namespace = self.renderer.namespace;
        let found = super::adopt::inspect(conn, namespace, first)
            .await
            .map_err(|e| failed(Some(first.id()), e))?;
        match found {
            super::adopt::Adoption::Fresh => Ok(()),
            super::adopt::Adoption::Differs(why) => Err((
                Some(first.id().to_owned()),
                Stop::Fail(MigrationErrorKind::NotAdoptable(why)),
            )),
            super::adopt::Adoption::Matches => {
                let mut replay = Replay::new();
                let steps = first
                    .operations()
                    .iter()
                    .map(|op| {
                        let rendered = self.renderer.render_at(op, &replay);
                        replay.apply(op);
                        rendered.map(|s| s.len())
                    })
                    .sum::<Result<usize, Error>>()
                    .unwrap_or(0) as i64;
                let record =
                    history::insert_history(namespace, first.id(), first.checksum(), steps, true);
                conn.exec(&record)
                    .await
                    .map_err(|e| failed(Some(first.id()), e))?;
                tracing::info!(schema = self.name(), migration = first.id(), "adopted");
                recorded.push(Recorded {
                    id: first.id().to_owned(),
                    checksum: first.checksum().to_owned(),
                    steps,
                    done: true,
                });
                *version = Some(first.id().to_owned());
                *self.adopted.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(first.id().to_owned());
                Ok(())
            }
        }
    }

    /// Checks the history against the binary: every recorded migration is carried, with
    /// the same checksum. The version: the last completed migration.
    fn verify(&self, recorded: &[Recorded]) -> Step<Option<String>> {
        let mut version = None;
        for row in recorded {
            let Some(migration) = self.migrations.iter().find(|m| m.id() == row.id) else {
                return Err((
                    Some(row.id.clone()),
                    Stop::Fail(MigrationErrorKind::MissingFromBinary),
                ));
            };
            if migration.checksum() != row.checksum {
                return Err((
                    Some(row.id.clone()),
                    Stop::Fail(MigrationErrorKind::ChecksumMismatch {
                        recorded: row.checksum.clone(),
                        embedded: migration.checksum().to_owned(),
                    }),
                ));
            }
            if row.done {
                version = Some(row.id.clone());
            }
        }
        Ok(version)
    }

    /// SQLite: a migration of the scope rebuilds a table, so the connection turns
    /// `foreign_keys` off before `BEGIN` (and checks every key before `COMMIT`).
    fn foreign_keys_off(&self) -> bool {
        self.renderer.backend == Backend::Sqlite && self.replays.rebuilds
    }

    /// PostgreSQL cannot use an enum label in the transaction that adds it (unless it made
    /// the type too), and a schema's pending migrations run in one transaction: the labels
    /// they add to types that exist already are added first, outside it, each by its own
    /// `ADD VALUE IF NOT EXISTS` (the migration's own statement then finds it made). A
    /// label added by a run that then fails stays, and is the one the next run adds.
    async fn add_enum_labels_first(&self, conn: &mut RunnerConn) -> Step<()> {
        let adds = |m: &&Migration| {
            m.operations()
                .iter()
                .any(|op| matches!(op, Operation::AddEnumValue { .. }))
        };
        if !self.migrations.iter().any(adds) {
            return Ok(());
        }
        let recorded = self.history(conn).await?;
        let mut made_here: Vec<&str> = Vec::new();
        for (migration, replay) in self.pending(&recorded) {
            for op in migration.operations() {
                match op {
                    Operation::CreateEnum { name, .. } => made_here.push(name),
                    Operation::AddEnumValue { name, .. } if !made_here.contains(&name.as_str()) => {
                        let statements = self
                            .renderer
                            .render_at(op, &replay)
                            .map_err(|e| unsupported(migration.id(), e))?;
                        for sql in statements {
                            conn.ddl(&sql)
                                .await
                                .map_err(|e| failed(Some(migration.id()), e))?;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The migrations not completed here, in order, each with the tables the scope's
    /// earlier migrations leave.
    fn pending<'m>(
        &'m self,
        recorded: &'m [Recorded],
    ) -> impl Iterator<Item = (&'m Migration, Replay)> + 'm {
        self.migrations
            .iter()
            .zip(&self.replays.starts)
            .filter(|(m, _)| !recorded.iter().any(|r| r.done && r.id == m.id()))
            .map(|(m, start)| (*m, start.clone()))
    }

    /// MySQL / MariaDB: under `GET_LOCK`, each statement is a step recorded after it ran.
    async fn stepwise(
        &self,
        conn: &mut RunnerConn,
        applied: &mut Vec<String>,
        version: &mut Option<String>,
    ) -> Step<()> {
        let started = Instant::now();
        let name = self.mysql_lock_name();
        let seconds = Ord::max(self.options.lock_wait.as_secs(), 1) as i64;
        let get = Query::select()
            .expr(Func::cust("GET_LOCK").arg(name.as_str()).arg(seconds))
            .to_owned();
        let got: Option<i64> = match conn.rows(&get).await {
            Ok(rows) => rows
                .first()
                .and_then(|r| r.get::<Option<i64>>(0).ok().flatten()),
            Err(error) => return Err(failed(None, error)),
        };
        if got != Some(1) {
            return Err((
                None,
                Stop::Fail(MigrationErrorKind::Locked {
                    waited_ms: started.elapsed().as_millis() as u64,
                }),
            ));
        }
        let result = self.stepwise_body(conn, applied, version).await;
        let release = Query::select()
            .expr(Func::cust("RELEASE_LOCK").arg(name.as_str()))
            .to_owned();
        let _ = conn.rows(&release).await;
        result
    }

    async fn stepwise_body(
        &self,
        conn: &mut RunnerConn,
        applied: &mut Vec<String>,
        version: &mut Option<String>,
    ) -> Step<()> {
        // MariaDB's lock_wait_timeout defaults to a day: a DDL statement behind a long
        // reader would stall the run. A fixed statement with a bound value (sea-query has
        // no SET).
        let seconds = Ord::max(self.options.lock_timeout.as_secs(), 1);
        if let RunnerConn::MySql(c) = conn {
            sqlx::query("SET SESSION lock_wait_timeout = ?")
                .bind(seconds)
                .execute(c)
                .await
                .map_err(|e| failed(None, e))?;
        }
        let namespace = self.renderer.namespace;
        let mut recorded = self.history(conn).await?;
        *version = self.verify(&recorded)?;
        self.adopt(conn, &mut recorded, version).await?;
        for (migration, mut replay) in self.pending(&recorded) {
            // Each step: a statement, a hand-written (raw) statement, or a data step; and
            // its operation.
            let mut statements: Vec<(String, StepKind, &Operation)> = Vec::new();
            for op in migration.operations() {
                if let Operation::Data { name } = op {
                    statements.push((name.clone(), StepKind::Data, op));
                    continue;
                }
                let kind = match op {
                    Operation::Raw { .. } => StepKind::Raw,
                    _ => StepKind::Ddl,
                };
                let rendered = self
                    .renderer
                    .render_at(op, &replay)
                    .map_err(|e| unsupported(migration.id(), e))?;
                replay.apply(op);
                statements.extend(rendered.into_iter().map(|sql| (sql, kind, op)));
            }
            let row = recorded.iter().find(|r| r.id == migration.id());
            let resumed_at = match row {
                Some(row) => usize::try_from(row.steps).unwrap_or(0),
                None => {
                    let record = history::insert_history(
                        namespace,
                        migration.id(),
                        migration.checksum(),
                        0,
                        false,
                    );
                    conn.exec(&record)
                        .await
                        .map_err(|e| failed(Some(migration.id()), e))?;
                    0
                }
            };
            for (index, (sql, kind, op)) in statements.iter().enumerate().skip(resumed_at) {
                let done = index + 1 == statements.len();
                let step =
                    history::update_history(namespace, migration.id(), (index + 1) as i64, done);
                if *kind == StepKind::Data {
                    self.mysql_data_step(conn, sql, &step, migration.id())
                        .await?;
                    continue;
                }
                if *kind == StepKind::Raw {
                    // A data step and its record commit together (InnoDB), so a kill never
                    // leaves one without the other; DDL in a raw step commits implicitly
                    // and is resumed like any DDL step.
                    let resuming = self.resumable && row.is_some() && index == resumed_at;
                    self.raw_step(conn, sql, &step, migration.id(), resuming)
                        .await?;
                    continue;
                }
                match conn.ddl(sql).await {
                    Ok(()) => {}
                    // The step a killed run completed but had not recorded.
                    Err(error)
                        if self.resumable
                            && row.is_some()
                            && index == resumed_at
                            && already_applied(&error) =>
                    {
                        tracing::info!(
                            tenant = self.name(),
                            migration = migration.id(),
                            step = index,
                            "step found applied; resuming after it"
                        );
                    }
                    // The ALGORITHM=INSTANT guard: the server would have copied the table.
                    Err(error) if matches!(mysql_number(&error), Some(1845 | 1846)) => {
                        let reason = match &error {
                            sqlx::Error::Database(db) => db.message().to_owned(),
                            other => other.to_string(),
                        };
                        if index == 0 {
                            // Nothing of the migration ran: forget that it started, so that
                            // its author can split it (its checksum changes) and run again.
                            let forget =
                                history::delete_unstarted_history(namespace, migration.id());
                            if let Err(error) = conn.exec(&forget).await {
                                tracing::warn!(tenant = self.name(), %error, "could not forget an unstarted migration");
                            }
                        }
                        return Err((
                            Some(migration.id().to_owned()),
                            Stop::Fail(MigrationErrorKind::NotInstant {
                                operation: op.describe(),
                                reason,
                            }),
                        ));
                    }
                    Err(error) => {
                        return Err(statement_error(Backend::MySql, migration.id(), error))
                    }
                }
                conn.exec(&step)
                    .await
                    .map_err(|e| failed(Some(migration.id()), e))?;
            }
            if statements.len() <= resumed_at || statements.is_empty() {
                let step = history::update_history(
                    namespace,
                    migration.id(),
                    statements.len() as i64,
                    true,
                );
                conn.exec(&step)
                    .await
                    .map_err(|e| failed(Some(migration.id()), e))?;
            }
            applied.push(migration.id().to_owned());
            *version = Some(migration.id().to_owned());
        }
        Ok(())
    }

    /// Runs data step `name` on `conn`, inside the transaction the caller began.
    async fn data_step(&self, conn: &mut RunnerConn, migration: &str, name: &str) -> Step<()> {
        if self.migrator.is_shape_only() {
            return Ok(());
        }
        let step = self
            .migrator
            .data_steps()
            .get(name)
            .ok_or_else(|| unsupported(migration, super::data::unknown(migration, name)))?;
        super::data::run(
            conn,
            self.migrator.registry(),
            self.migrator.database(),
            self.tenant,
            step,
        )
        .await
        .map_err(|why| {
            let why = format!("data step {name}: {}", String::from(why));
            failed(Some(migration), why)
        })
    }

    /// MySQL: a data step and its step record in one transaction: both or neither.
    async fn mysql_data_step(
        &self,
        conn: &mut RunnerConn,
        name: &str,
        record: &sea_query::UpdateStatement,
        migration: &str,
    ) -> Step<()> {
        conn.ddl("BEGIN")
            .await
            .map_err(|e| failed(Some(migration), e))?;
        let mut result = self.data_step(conn, migration, name).await;
        if result.is_ok() {
            result = conn
                .exec(record)
                .await
                .map(drop)
                .map_err(|e| failed(Some(migration), e));
        }
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match conn.ddl(end).await {
            Err(error) if result.is_ok() => Err(failed(Some(migration), error)),
            _ => result,
        }
    }

    /// MySQL: a raw step and its step record in one transaction.
    async fn raw_step(
        &self,
        conn: &mut RunnerConn,
        sql: &str,
        record: &sea_query::UpdateStatement,
        migration: &str,
        resuming: bool,
    ) -> Step<()> {
        conn.ddl("BEGIN")
            .await
            .map_err(|e| failed(Some(migration), e))?;
        let result = match conn.ddl(sql).await {
            Ok(()) => conn
                .exec(record)
                .await
                .map(drop)
                .map_err(|e| failed(Some(migration), e)),
            // DDL in a raw step that a killed run completed (it committed implicitly,
            // before its record).
            Err(error) if resuming && already_applied(&error) => {
                tracing::info!(
                    tenant = self.name(),
                    migration,
                    "raw step found applied; resuming after it"
                );
                conn.exec(record)
                    .await
                    .map(drop)
                    .map_err(|e| failed(Some(migration), e))
            }
            Err(error) => Err(statement_error(Backend::MySql, migration, error)),
        };
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match conn.ddl(end).await {
            Err(error) if result.is_ok() => Err(failed(Some(migration), error)),
            _ => result,
        }
    }

    /// `GET_LOCK` names are server-wide and at most 64 characters: a digest of the schema's
    /// server database name.
    fn mysql_lock_name(&self) -> String {
        match self.lock {
            Lock::Shared(key) => lock_name("shared:", key),
            Lock::Tenant(_, key) => lock_name("tenant:", key),
        }
    }
}

/// The `GET_LOCK` name of a tenant's migrations on MySQL, from its server database name.
pub(crate) fn mysql_tenant_lock(server_name: &str) -> String {
    lock_name("tenant:", server_name)
}

fn lock_name(kind: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut name = String::from("tenantry:migrate:");
    for byte in &digest[..20] {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

fn unsupported(migration: &str, error: Error) -> (Option<String>, Stop) {
    let kind = match error {
        Error::Migration(e) => e.kind,
        other => MigrationErrorKind::Failed(other.to_string()),
    };
    (Some(migration.to_owned()), Stop::Fail(kind))
}

/// Renders a table statement with the backend's builder.
pub(crate) fn build_table(backend: Backend, create: &sea_query::TableCreateStatement) -> String {
    match backend {
        Backend::Postgres => create.to_string(sea_query::PostgresQueryBuilder),
        Backend::MySql => create.to_string(sea_query::MysqlQueryBuilder),
        Backend::Sqlite => create.to_string(sea_query::SqliteQueryBuilder),
    }
}
