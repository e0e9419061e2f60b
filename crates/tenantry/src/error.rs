//! The one error type of tenantry.

use std::fmt;

/// A specialised `Result` whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tenantry.
///
/// Kinds a caller can match on are their own variants; anything else the driver reports is
/// [`Error::Database`]. The enum is `#[non_exhaustive]` so new kinds are not a breaking change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `get` (or a refresh, or a forward foreign-key load) matched no row.
    #[error("no {model} row matches the query")]
    NotFound {
        /// The model's table name.
        model: &'static str,
    },
    /// A `get` matched more than one row.
    #[error("more than one {model} row matches a query that expects one")]
    MultipleObjectsReturned {
        /// The model's table name.
        model: &'static str,
    },
    /// `using_with_db` named a database the registry does not declare in `extra`.
    #[error("database {name:?} is not declared in the registry's extra databases")]
    UnknownDatabase {
        /// The name that was asked for.
        name: String,
    },
    /// A schema name failed validation; it never reached the database.
    #[error("invalid schema name {name:?}: {reason}")]
    InvalidSchemaName {
        /// The rejected input, escaped for display.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A tenant's display name was refused (empty, or longer than the `tenants` table
    /// holds); it never reached the database.
    #[error("invalid tenant name {name:?}: {reason}")]
    InvalidTenantName {
        /// The rejected input, escaped for display.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The query addressed a schema that does not exist.
    #[error("schema {schema:?} does not exist")]
    SchemaNotFound {
        /// The missing schema.
        schema: String,
    },
    /// `create_schema` without `if_not_exists` found the schema already there.
    #[error("schema {schema:?} already exists")]
    SchemaAlreadyExists {
        /// The existing schema.
        schema: String,
    },
    /// `drop_schema` without `cascade` found tables in the schema.
    #[error("schema {schema:?} still holds tables; drop it with cascade")]
    SchemaNotEmpty {
        /// The schema.
        schema: String,
    },
    /// `set_tenant` or `activate_schema` was called outside a tenant scope.
    #[error("{operation} was called outside a tenant scope; wrap the work in with_tenant(..) or tenant_scope(..)")]
    NoTenantScope {
        /// The function that was called.
        operation: &'static str,
    },
    /// A tenant-only model (`#[model(tenant)]`) was queried with no tenant schema chosen:
    /// no [`using`](crate::QuerySet::using), no instance origin, no
    /// [`with_tenant`](crate::with_tenant) / [`set_tenant`](crate::set_tenant) and no
    /// [`activate_schema`](crate::activate_schema), so the query would have run in the
    /// shared (default) schema, where a tenant-only model has no table. Returned before any
    /// SQL is sent; also returned by a lookup, subquery, `select_related`, prefetch or raw
    /// `{table}` that reaches such a model from the shared schema.
    #[error("{model} is a tenant-only model and no tenant is in context; run it inside with_tenant(..) or with using(schema)")]
    TenantRequired {
        /// The model's table name (as in [`Error::NotFound`]).
        model: &'static str,
    },
    /// PostgreSQL refused a prepared statement whose table was altered since it was
    /// prepared ("cached plan must not change result type", 0A000: a migration ran). The
    /// connection's statement cache is cleared; outside a transaction the statement is
    /// retried once and this is not seen. Inside one, roll back and run the transaction again.
    #[error("a table was altered while a prepared statement on it was cached (a migration ran): {message}; the statement cache was cleared, run the transaction again")]
    CachedPlanInvalidated {
        /// The database's message.
        message: String,
    },
    /// A migration could not be parsed, checked or applied; see
    /// [`MigrationError`](crate::migrate::MigrationError) for the tenant, the migration and
    /// what to do.
    #[error("{0}")]
    Migration(Box<crate::migrate::MigrationError>),
    /// A unique or primary key constraint refused the statement.
    #[error("unique constraint violated: {message}")]
    UniqueViolation {
        /// The database's message.
        message: String,
    },
    /// A foreign key constraint refused the statement.
    #[error("foreign key constraint violated: {message}")]
    ForeignKeyViolation {
        /// The database's message.
        message: String,
    },
    /// A NOT NULL constraint refused the statement.
    #[error("not null constraint violated: {message}")]
    NotNullViolation {
        /// The database's message.
        message: String,
    },
    /// A check constraint (`#[model(check(..))]`) refused the statement: PostgreSQL's
    /// SQLSTATE 23514, MySQL's 3819, MariaDB's 4025, SQLite's `SQLITE_CONSTRAINT_CHECK`.
    /// The message names the constraint.
    #[error("check constraint violated: {message}")]
    CheckViolation {
        /// The database's message.
        message: String,
    },
    /// A URL could not be understood.
    #[error("invalid database url: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The operation cannot be done on this backend (for example a SQLite transaction that
    /// would span two schema files).
    #[error("unsupported on {backend}: {what}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What was attempted.
        what: &'static str,
    },
    /// A lookup or ordering across relations cannot be made as written: a column in its
    /// path is not a foreign key to the model the path says, the path is longer than
    /// [`MAX_HOPS`](crate::MAX_HOPS), it was built on another model than the one queried, or
    /// it leads from a shared model into tenant rows. Checked before any SQL is sent.
    #[error("invalid relation lookup at {model}.{column}: {reason}")]
    InvalidRelation {
        /// The table of the model the failing step starts from.
        model: &'static str,
        /// The column of that step.
        column: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A pagination cursor was not made by this application for this query: not a cursor,
    /// signed with another key, or made for another model, tenant or ordering.
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An argument is outside what the operation accepts (a page numbered 0, say).
    #[error("invalid {argument}: {reason}")]
    InvalidArgument {
        /// The argument.
        argument: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An instance that was never saved was asked to do something that needs a stored row.
    #[error("the {model} instance has no primary key yet; save it first")]
    NotSaved {
        /// The model's table name.
        model: &'static str,
    },
    /// The transaction was already committed or rolled back.
    #[error("the transaction was already committed or rolled back")]
    TransactionDone,
    /// An instance of a model with a `#[model(version)]` column was saved over a row that
    /// another writer changed since it was read (its version moved on). Nothing was
    /// written; `refresh` the instance, apply the change again and save.
    #[error(
        "the {model} row was changed by another writer since it was read; nothing was written"
    )]
    VersionConflict {
        /// The model's table name.
        model: &'static str,
    },
    /// A statement failed in a way that ended the transaction on the server (any failed
    /// statement on PostgreSQL; a deadlock on MySQL, which rolls the whole transaction back).
    /// Nothing of it will commit: later statements, and `commit`, are refused with this error
    /// (the commit rolls back), so a transaction is never acknowledged as committed when the
    /// server discarded it.
    #[error("the transaction was aborted by a failed statement ({cause}); nothing of it was committed, run it again")]
    TransactionAborted {
        /// What failed first.
        cause: String,
    },
    /// A value does not fit the column it is written to: a decimal with more integer digits
    /// than its `NUMERIC(p, s)` column's `p - s`, or more significant decimal places than
    /// `s`; text with more characters than its `VARCHAR(n)` column's `n`. Checked in Rust before the statement is sent, on every backend, so nothing was
    /// written and no value was rounded or clipped. The message names the column and the
    /// bound, not the value.
    #[error("value out of range for column {column} of {model}: {reason}")]
    ValueOutOfRange {
        /// The model's table name.
        model: &'static str,
        /// The column.
        column: &'static str,
        /// What does not fit (digit counts and the column's bounds).
        reason: String,
    },
    /// A row could not be turned into a model.
    #[error("cannot decode column {column} of {model}: {source}")]
    Decode {
        /// The model's table name.
        model: &'static str,
        /// The column.
        column: &'static str,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// The database was disconnected ([`Database::disconnect`](crate::Database::disconnect)):
    /// no statement runs on it any more.
    #[error("the database was disconnected; connect a new Database to run queries")]
    Closed,
    /// No connection became free within the pool's acquire timeout.
    #[error("no connection became free within {waited_ms} ms; raise max_connections or acquire_timeout, or hold connections for less time")]
    PoolTimedOut {
        /// How long the query waited, in milliseconds.
        waited_ms: u64,
    },
    /// The [`Directory`](crate::Directory) has no entry for the tenant.
    #[error("tenant {tenant:?} is not in the tenant directory")]
    TenantNotFound {
        /// The tenant.
        tenant: String,
    },
    /// The tenant is suspended: it keeps its data but is refused service. Nothing was sent.
    #[error("tenant {tenant:?} is suspended")]
    TenantSuspended {
        /// The tenant.
        tenant: String,
    },
    /// Every connection of a [`ConnectionBudget`](crate::ConnectionBudget) stayed in use for
    /// the whole wait, so no new one could be opened. Nothing was sent.
    #[error("the connection budget of {limit} connections stayed in use for {waited_ms} ms; raise the budget or its wait, or hold connections for less time")]
    ConnectionBudgetExhausted {
        /// The budget's limit.
        limit: usize,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// The schema is in use (an open transaction or a statement in flight) and could not be
    /// dropped within the wait bound; nothing was dropped.
    #[error("schema {schema:?} is in use and was not dropped; finish its transactions and retry")]
    SchemaBusy {
        /// The schema.
        schema: String,
    },
    /// `set_tenant` tried to change the tenant of a scope that already has a different one
    /// (or `activate_schema` the activated schema). Several futures polled by one task
    /// (`join!`, `select!`, `join_all`) share one scope; give each its own with
    /// [`with_tenant`](crate::with_tenant). The scope stays refused (every later query in it
    /// that follows the context fails) so that no branch reads another branch's tenant.
    #[error("the tenant scope is fixed to {current} and was asked for {requested}; run each tenant's work in its own with_tenant(..) scope")]
    TenantConflict {
        /// The tenant the scope has (`none` for a cleared one).
        current: String,
        /// The tenant that was asked for (`none` to clear).
        requested: String,
    },
    /// A tenant's work in a [`ForEachTenant`](crate::ForEachTenant) run panicked; the
    /// other tenants' work went on.
    #[error("the work panicked: {message}")]
    WorkPanicked {
        /// The panic's message.
        message: String,
    },
    /// The database refused a value that does not fit its column: an expression's result
    /// outside the column's integer range (PostgreSQL 22003, MySQL 1264 and 1690; on SQLite
    /// checked by the statement, as is a NOT NULL column's NULL result), or text too long
    /// for it (22001, MySQL 1406) written by other means than a model field (which is
    /// checked first: [`Error::ValueOutOfRange`]); and a division by zero in an expression,
    /// in a write, a filter or a computed column alike (PostgreSQL 22012, MySQL 1365; where
    /// the backend would give NULL, SQLite and MySQL reads, the statement checks the
    /// divisor). Nothing was written by the statement.
    #[error("the database refused a value out of its column's range: {message}")]
    OutOfRange {
        /// The database's message (it names the column or the type, not the value).
        message: String,
    },
    /// A model or a statement breaks a rule of the deployment (a Citus cluster: see
    /// [`DistributionRule`](crate::DistributionRule)); refused before any SQL was sent.
    #[error("table {model:?}: {rule}")]
    Distribution {
        /// The model's table (or the table a migration makes).
        model: String,
        /// The rule it broke.
        rule: crate::DistributionRule,
    },
    /// A node of the cluster the database relies on did not answer: a Citus worker that
    /// holds the tenant's schema is down or unreachable (the coordinator's SQLSTATE class 08
    /// error "connection to the remote node …"). Only the statements that need that node
    /// fail; retry when it is back.
    #[error("a database node is unavailable: {message}")]
    NodeUnavailable {
        /// The SQLSTATE (`08006`, `08001`).
        code: String,
        /// The coordinator's message (it names the node, not the tenant).
        message: String,
    },
    /// Any other database or driver error (connection refused, dropped connection, timeout…).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        classify(error)
    }
}

/// Maps a driver error onto the kinds a caller can match.
fn classify(error: sqlx::Error) -> Error {
    use sqlx::error::ErrorKind;
    let kind = match &error {
        sqlx::Error::Database(db) if is_sqlite_restrict(db.as_ref()) => {
            ErrorKind::ForeignKeyViolation
        }
        sqlx::Error::Database(db) if is_out_of_range(db.as_ref()) => {
            return Error::OutOfRange {
                message: db.message().to_owned(),
            };
        }
        sqlx::Error::Database(db) if is_node_unavailable(db.as_ref()) => {
            return Error::NodeUnavailable {
                code: db.code().map(|c| c.into_owned()).unwrap_or_default(),
                message: db.message().to_owned(),
            };
        }
        sqlx::Error::Database(db) => db.kind(),
        _ => return Error::Database(error),
    };
    let message = Message(&error).to_string();
    match kind {
        ErrorKind::UniqueViolation => Error::UniqueViolation { message },
        ErrorKind::ForeignKeyViolation => Error::ForeignKeyViolation { message },
        ErrorKind::NotNullViolation => Error::NotNullViolation { message },
        ErrorKind::CheckViolation => Error::CheckViolation { message },
        _ => Error::Database(error),
    }
}

/// SQLite refuses a delete under `ON DELETE RESTRICT` with `SQLITE_CONSTRAINT_TRIGGER`
/// (1811) rather than `SQLITE_CONSTRAINT_FOREIGNKEY`, which sqlx leaves unclassified; the
/// message is SQLite's foreign key one (a user trigger's `RAISE` carries its own message).
/// A Citus coordinator's report that it could not reach a worker: SQLSTATE class 08 and
/// Citus's own message. Any other class 08 error a server raises (a function's `RAISE …
/// USING ERRCODE = '08006'`) stays an ordinary database error, with its code. (A failure of
/// tenantry's own connection is an I/O error, not a server's report.)
fn is_node_unavailable(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| {
            pg.code().starts_with("08") && pg.message().starts_with(CITUS_NODE_UNREACHABLE)
        })
}

/// How Citus (13.x, `ReportConnectionError`) begins the message of a worker it cannot reach.
const CITUS_NODE_UNREACHABLE: &str = "connection to the remote node ";

fn is_sqlite_restrict(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db.code().as_deref() == Some("1811")
        && db.message() == "FOREIGN KEY constraint failed"
}

/// A value refused for not fitting its column: PostgreSQL's SQLSTATE 22003 (numeric value
/// out of range), 22001 (string data right truncation) and 22012 (division by zero);
/// MySQL's 1264 (out of range value), 1690 (value out of range in an expression), 1365
/// (division by 0) and 1406 (data too long).
fn is_out_of_range(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code();
    if db
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| matches!(e.number(), 1264 | 1365 | 1406 | 1690))
    {
        return true;
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // A computed write out of its column's range (see `query::assign`).
        return db.message() == "integer overflow";
    }
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
        && matches!(code.as_deref(), Some("22003" | "22001" | "22012"))
}

struct Message<'a>(&'a sqlx::Error);

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            sqlx::Error::Database(db) => f.write_str(db.message()),
            other => write!(f, "{other}"),
        }
    }
}

/// The error to return after a failure whose half-done work was undone by a compensating
/// step: always `cause`. A failed compensation is logged (it may have left something behind
/// that an operator must remove), never returned in place of the cause.
pub(crate) fn compensated(cause: Error, what: &'static str, compensation: Result<()>) -> Error {
    if let Err(failure) = compensation {
        tracing::error!(%cause, error = %failure, "could not {what} after a failure; it may be left behind");
    }
    cause
}

impl Error {
    /// A copy of this error, for an error kept once and returned many times (a QuerySet's
    /// pending builder error, which every copy of the QuerySet carries). Every kind is copied
    /// exactly, except that the driver error inside [`Error::Database`] and [`Error::Decode`]
    /// (`sqlx::Error` cannot be cloned) becomes a protocol error carrying the original's
    /// message. A builder error is in practice an [`Error::InvalidSchemaName`].
    ///
    /// The match names every variant, so a new one cannot be added without deciding here.
    pub(crate) fn replay(&self) -> Error {
        fn driver(error: &sqlx::Error) -> sqlx::Error {
            sqlx::Error::Protocol(error.to_string())
        }
        match self {
            Error::NotFound { model } => Error::NotFound { model },
            Error::MultipleObjectsReturned { model } => Error::MultipleObjectsReturned { model },
            Error::UnknownDatabase { name } => Error::UnknownDatabase { name: name.clone() },
            Error::InvalidSchemaName { name, reason } => Error::InvalidSchemaName {
                name: name.clone(),
                reason,
            },
            Error::InvalidTenantName { name, reason } => Error::InvalidTenantName {
                name: name.clone(),
                reason,
            },
            Error::SchemaNotFound { schema } => Error::SchemaNotFound {
                schema: schema.clone(),
            },
            Error::SchemaAlreadyExists { schema } => Error::SchemaAlreadyExists {
                schema: schema.clone(),
            },
            Error::SchemaNotEmpty { schema } => Error::SchemaNotEmpty {
                schema: schema.clone(),
            },
            Error::NoTenantScope { operation } => Error::NoTenantScope { operation },
            Error::TenantRequired { model } => Error::TenantRequired { model },
            Error::InvalidRelation {
                model,
                column,
                reason,
            } => Error::InvalidRelation {
                model,
                column,
                reason,
            },
            Error::InvalidCursor { reason } => Error::InvalidCursor { reason },
            Error::InvalidArgument { argument, reason } => {
                Error::InvalidArgument { argument, reason }
            }
            Error::UniqueViolation { message } => Error::UniqueViolation {
                message: message.clone(),
            },
            Error::ForeignKeyViolation { message } => Error::ForeignKeyViolation {
                message: message.clone(),
            },
            Error::NotNullViolation { message } => Error::NotNullViolation {
                message: message.clone(),
            },
            Error::CheckViolation { message } => Error::CheckViolation {
                message: message.clone(),
            },
            Error::InvalidUrl { reason } => Error::InvalidUrl {
                reason: reason.clone(),
            },
            Error::Unsupported { backend, what } => Error::Unsupported { backend, what },
            Error::NotSaved { model } => Error::NotSaved { model },
            Error::TransactionDone => Error::TransactionDone,
            Error::OutOfRange { message } => Error::OutOfRange {
                message: message.clone(),
            },
            Error::VersionConflict { model } => Error::VersionConflict { model },
            Error::TransactionAborted { cause } => Error::TransactionAborted {
                cause: cause.clone(),
            },
            Error::ValueOutOfRange {
                model,
                column,
                reason,
            } => Error::ValueOutOfRange {
                model,
                column,
                reason: reason.clone(),
            },
            Error::Decode {
                model,
                column,
                source,
            } => Error::Decode {
                model,
                column,
                source: driver(source),
            },
            Error::Closed => Error::Closed,
            Error::TenantNotFound { tenant } => Error::TenantNotFound {
                tenant: tenant.clone(),
            },
            Error::TenantSuspended { tenant } => Error::TenantSuspended {
                tenant: tenant.clone(),
            },
            Error::ConnectionBudgetExhausted { limit, waited_ms } => {
                Error::ConnectionBudgetExhausted {
                    limit: *limit,
                    waited_ms: *waited_ms,
                }
            }
            Error::Migration(error) => Error::Migration(error.clone()),
            Error::CachedPlanInvalidated { message } => Error::CachedPlanInvalidated {
                message: message.clone(),
            },
            Error::PoolTimedOut { waited_ms } => Error::PoolTimedOut {
                waited_ms: *waited_ms,
            },
            Error::SchemaBusy { schema } => Error::SchemaBusy {
                schema: schema.clone(),
            },
            Error::TenantConflict { current, requested } => Error::TenantConflict {
                current: current.clone(),
                requested: requested.clone(),
            },
            Error::WorkPanicked { message } => Error::WorkPanicked {
                message: message.clone(),
            },
            Error::Distribution { model, rule } => Error::Distribution {
                model: model.clone(),
                rule: rule.clone(),
            },
            Error::NodeUnavailable { code, message } => Error::NodeUnavailable {
                code: code.clone(),
                message: message.clone(),
            },
            Error::Database(source) => Error::Database(driver(source)),
        }
    }

    /// Whether the server received the statement and refused it (a constraint, a missing
    /// table or schema, any other database error), as opposed to a failure before sending
    /// it or of the connection.
    pub(crate) fn is_server_refusal(&self) -> bool {
        matches!(
            self,
            Error::UniqueViolation { .. }
                | Error::ForeignKeyViolation { .. }
                | Error::NotNullViolation { .. }
                | Error::CheckViolation { .. }
                | Error::SchemaNotFound { .. }
                | Error::NodeUnavailable { .. }
                | Error::OutOfRange { .. }
                | Error::CachedPlanInvalidated { .. }
                | Error::Database(sqlx::Error::Database(_))
        )
    }

    /// The database's error code, when the error came from the server: the SQLSTATE on
    /// PostgreSQL *and on MySQL/MariaDB* (sqlx reports MySQL's five-character SQLSTATE, such
    /// as `23000` or `42S02`, not its error number), the extended result code on SQLite.
    /// Classified kinds (`UniqueViolation`, …) carry no code; match on them instead.
    pub fn database_code(&self) -> Option<String> {
        match self {
            Error::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
            Error::NodeUnavailable { code, .. } => Some(code.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_compensation_never_replaces_the_cause() {
        let cause = Error::SchemaAlreadyExists { schema: "a".into() };
        let failure = Err(Error::Closed);
        let returned = compensated(cause, "drop the schema", failure);
        assert!(matches!(returned, Error::SchemaAlreadyExists { ref schema } if schema == "a"));
        let returned = compensated(Error::Closed, "drop the schema", Ok(()));
        assert!(matches!(returned, Error::Closed));
    }
}
