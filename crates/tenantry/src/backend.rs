//! The three supported backends and what sets them apart, as data.

/// A database engine tenantry can talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL: a tenant schema is a PostgreSQL schema.
    Postgres,
    /// MySQL or MariaDB: a tenant schema is a database, `<namespace>$<schema>` in the
    /// application's tenant namespace (see [`Database::tenant_namespace`](crate::Database::tenant_namespace)).
    MySql,
    /// SQLite: a tenant schema is a separate database file.
    Sqlite,
}

/// How a backend realises a tenant schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaKind {
    /// `CREATE SCHEMA`, tables addressed as `"schema"."table"`.
    Schema,
    /// `CREATE DATABASE`, tables addressed as `` `db`.`table` ``; a tenant's `db` is
    /// `<namespace>$<schema>`, server-wide names being shared by every application.
    Database,
    /// One database file per schema, opened through its own pool.
    File,
}

/// What a backend can and cannot do. Code asks these questions instead of testing which
/// backend it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The name used in output and errors: `postgres`, `mysql` or `sqlite`.
    pub name: &'static str,
    /// `CREATE TABLE` / `CREATE SCHEMA` take part in transactions.
    pub transactional_ddl: bool,
    /// `INSERT … RETURNING` is available.
    pub insert_returning: bool,
    /// The most bind parameters one statement may carry.
    pub max_bind_params: usize,
    /// What a schema is on this backend.
    pub schema_kind: SchemaKind,
    /// A foreign key constraint may point into another schema.
    pub cross_schema_foreign_keys: bool,
    /// Where keys are not returned (`insert_returning` is false), a multi-row INSERT reports
    /// only its first auto-increment key; the others follow in steps of this session
    /// variable, read on the inserting connection (MySQL's `@@auto_increment_increment`).
    pub auto_increment_step: Option<&'static str>,
    /// `REFERENCES` may name the referenced table's schema. sea-query's MySQL builder renders
    /// only a bare table name there, which MySQL resolves in the referencing table's database.
    pub qualified_foreign_key_references: bool,
    /// Which failed statements end the whole transaction on the server.
    pub transaction_aborted_by: TransactionAbort,
    /// Arithmetic on a decimal column is exact (SQLite stores decimals as text and would
    /// compute in floating point).
    pub exact_decimal_arithmetic: bool,
    /// An upsert names the unique key it conflicts on (`ON CONFLICT (key)`); MySQL's
    /// `ON DUPLICATE KEY UPDATE` fires on a conflict on any unique key.
    pub conflict_target: bool,
    /// The assignments of one UPDATE are made in order, each seeing the ones before (MySQL),
    /// rather than all from the row as it was.
    pub assignments_in_order: bool,
    /// Any column may hold any value (SQLite): an integer column keeps a 64-bit result,
    /// a division by zero is NULL; a computed write is checked in the statement itself.
    pub loose_column_types: bool,
    /// A division by zero in a read (a filter, a computed column) is NULL rather than an
    /// error (SQLite, MySQL): tenantry checks the divisor in the statement, so that it is
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) on every backend.
    pub division_by_zero_is_null: bool,
    /// Tenant schemas are distributed schemas, each placed on one worker of a Citus cluster
    /// (PostgreSQL with the `citus` extension, detected at connect): shared models are
    /// reference tables, and foreign keys and statements stay within one tenant (see
    /// [`Deployment::Citus`](crate::Deployment::Citus)).
    pub distributed_schemas: bool,
}

/// Which failed statements end a transaction on the server (after which a `COMMIT` would
/// roll back, or later statements would run outside any transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionAbort {
    /// Any statement the server refuses (PostgreSQL: the transaction is then "aborted").
    AnyError,
    /// Errors with these codes ([`Error::database_code`](crate::Error::database_code)):
    /// MySQL rolls the whole transaction back on a deadlock (`40001`); other errors undo
    /// only their own statement.
    Codes(&'static [&'static str]),
}

impl TransactionAbort {
    /// Whether `error`, returned by a statement inside a transaction, ended the transaction.
    pub(crate) fn ends_transaction(self, error: &crate::Error) -> bool {
        match self {
            TransactionAbort::AnyError => error.is_server_refusal(),
            TransactionAbort::Codes(codes) => error
                .database_code()
                .is_some_and(|code| codes.contains(&code.as_str())),
        }
    }
}

const POSTGRES: Capabilities = Capabilities {
    name: "postgres",
    transactional_ddl: true,
    insert_returning: true,
    max_bind_params: 65_535,
    schema_kind: SchemaKind::Schema,
    cross_schema_foreign_keys: true,
    auto_increment_step: None,
    qualified_foreign_key_references: true,
    transaction_aborted_by: TransactionAbort::AnyError,
    exact_decimal_arithmetic: true,
    conflict_target: true,
    assignments_in_order: false,
    loose_column_types: false,
    division_by_zero_is_null: false,
    distributed_schemas: false,
};

/// PostgreSQL as a Citus coordinator: the same SQL, tenant schemas distributed.
const POSTGRES_CITUS: Capabilities = Capabilities {
    distributed_schemas: true,
    ..POSTGRES
};

const MYSQL: Capabilities = Capabilities {
    name: "mysql",
    transactional_ddl: false,
    insert_returning: false,
    max_bind_params: 65_535,
    schema_kind: SchemaKind::Database,
    // A reference into another database would need a qualified name (see below).
    cross_schema_foreign_keys: false,
    auto_increment_step: Some("@@SESSION.auto_increment_increment"),
    qualified_foreign_key_references: false,
    transaction_aborted_by: TransactionAbort::Codes(&["40001"]),
    exact_decimal_arithmetic: true,
    conflict_target: false,
    assignments_in_order: true,
    loose_column_types: false,
    division_by_zero_is_null: true,
    distributed_schemas: false,
};

const SQLITE: Capabilities = Capabilities {
    name: "sqlite",
    transactional_ddl: true,
    insert_returning: true,
    max_bind_params: 32_766,
    schema_kind: SchemaKind::File,
    cross_schema_foreign_keys: false,
    auto_increment_step: None,
    qualified_foreign_key_references: false,
    transaction_aborted_by: TransactionAbort::Codes(&[]),
    exact_decimal_arithmetic: false,
    conflict_target: true,
    assignments_in_order: false,
    loose_column_types: true,
    division_by_zero_is_null: true,
    distributed_schemas: false,
};

impl Backend {
    /// The capabilities of this backend.
    pub const fn capabilities(self) -> &'static Capabilities {
        match self {
            Backend::Postgres => &POSTGRES,
            Backend::MySql => &MYSQL,
            Backend::Sqlite => &SQLITE,
        }
    }

    /// The capabilities of this backend deployed as `deployment`: a Citus coordinator
    /// distributes tenant schemas.
    pub const fn capabilities_in(self, deployment: &crate::Deployment) -> &'static Capabilities {
        match (self, deployment) {
            (Backend::Postgres, crate::Deployment::Citus { .. }) => &POSTGRES_CITUS,
            _ => self.capabilities(),
        }
    }

    /// The backend's short name: `postgres`, `mysql` or `sqlite`.
    pub const fn name(self) -> &'static str {
        self.capabilities().name
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
