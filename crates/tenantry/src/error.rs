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
    /// An instance that was never saved was asked to do something that needs a stored row.
    #[error("the {model} instance has no primary key yet; save it first")]
    NotSaved {
        /// The model's table name.
        model: &'static str,
    },
    /// The transaction was already committed or rolled back.
    #[error("the transaction was already committed or rolled back")]
    TransactionDone,
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
        sqlx::Error::Database(db) => db.kind(),
        _ => return Error::Database(error),
    };
    let message = Message(&error).to_string();
    match kind {
        ErrorKind::UniqueViolation => Error::UniqueViolation { message },
        ErrorKind::ForeignKeyViolation => Error::ForeignKeyViolation { message },
        ErrorKind::NotNullViolation => Error::NotNullViolation { message },
        _ => Error::Database(error),
    }
}

/// SQLite refuses a delete under `ON DELETE RESTRICT` with `SQLITE_CONSTRAINT_TRIGGER`
/// (1811) rather than `SQLITE_CONSTRAINT_FOREIGNKEY`, which sqlx leaves unclassified; the
/// message is SQLite's foreign key one (a user trigger's `RAISE` carries its own message).
fn is_sqlite_restrict(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db.code().as_deref() == Some("1811")
        && db.message() == "FOREIGN KEY constraint failed"
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

impl Error {
    /// The database's error code (SQLSTATE on PostgreSQL, the error number on MySQL, the
    /// extended result code on SQLite), when the error came from the server.
    pub fn database_code(&self) -> Option<String> {
        match self {
            Error::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}
