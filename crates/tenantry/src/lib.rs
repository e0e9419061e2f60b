//! # tenantry
//!
//! An async ORM whose first-class feature is multi-tenancy: one service, many customers, each
//! customer's data in its own PostgreSQL schema, MySQL database or SQLite file, chosen per
//! query (`using`), per database (`using_with_db`) or per task (`with_tenant`).
//!
//! Every statement is a sea-query statement, rendered with every table qualified by its
//! schema: no connection ever carries tenant state.
//!
//! ```no_run
//! use tenantry::{Database, Model, Registry};
//!
//! #[derive(Model, Debug, Clone, serde::Serialize)]
//! struct User {
//!     #[model(primary_key)]
//!     id: i64,
//!     #[model(max_length = 255)]
//!     name: String,
//! }
//!
//! # async fn demo() -> tenantry::Result<()> {
//! let registry = Registry::new(Database::connect("sqlite::memory:").await?).register::<User>();
//! registry.create_all().await?;
//! let user = User::query(&registry).create(User { id: 0, name: "edgy".into() }).await?;
//! assert!(user.id > 0);
//! let found = User::query(&registry).get(User::name().eq("edgy")).await?;
//! assert_eq!(found.id, user.id);
//! # Ok(()) }
//! ```

extern crate self as tenantry;

mod backend;
mod citus;
pub mod contrib;
mod database;
mod ddl;
mod decimal;
mod enum_types;
mod error;
mod field;
mod hooks;
mod instance;
pub mod migrate;
mod model;
mod namespace;
mod naming;
mod pg_setting;
mod query;
mod raw;
mod registry;
mod row;
mod schema_name;
mod target;
mod tenancy;
pub mod testing;
mod transaction;
mod transaction_options;

#[doc(hidden)]
pub mod __doc;

pub use backend::{Backend, Capabilities, SchemaKind, TransactionAbort};
pub use citus::{
    Citus, Deployment, DistributionRule, MoveProgress, Node, Placement, Rebalance, TenantMove,
};
pub use database::{
    ConnectionBudget, Database, DatabaseOptions, PoolSettings, PoolStatus, PooledConnection,
};
pub use error::{Error, Result};
pub use field::{EnumType, FieldType, Fractional, Json, Numeric, SqlType};
pub use hooks::{HookContext, Hooks};
pub use instance::Instance;
pub use model::{
    Assignment, CheckMeta, Column, ColumnMeta, Expression, Filter, ForeignKey, ForeignKeyMeta,
    IndexMeta, Model, ModelMeta, OnDelete, Ordering, MAX_HOPS,
};
pub use query::{
    Aggregate, Aggregates, AnyForeignKey, Columns, Conflict, CursorPage, Grouped, ManyToMany,
    Optional, Ordered, Page, Paginator, QuerySet, QuerySource, RelatedMany, Source, Subquery,
    Summable, Upsert, STREAM_BATCH,
};
pub use raw::{FromRawRow, RawSql};
pub use registry::Registry;
pub use row::Row;
/// The exact decimal type of decimal fields (`rust_decimal::Decimal`), re-exported so that
/// models need no direct dependency on `rust_decimal`; see [`SqlType::Decimal`].
pub use rust_decimal::Decimal;
pub use schema_name::SchemaName;
pub use target::Origin;
pub use tenancy::{
    activate_schema, create_schema, deactivate_schema, drop_schema, get_tenant, set_tenant,
    spawn_with_tenant, tenant_scope, with_tenant, with_tenant_in, BoxFuture, Directory,
    DirectoryStore, FleetProgress, ForEachTenant, Route, Schemas, TenantContext, TenantInfo,
    TenantOutcome, TenantScope, TenantStore,
};
pub use tenantry_macros::{migrations, Enum, Model};
pub use transaction::Transaction;
pub use transaction_options::{is_retryable, IsolationLevel, TransactionOptions};

/// Re-exports the derive's expansion relies on.
#[doc(hidden)]
pub mod __private {
    pub use crate::field::decode_enum_text;
    pub use crate::hooks::HookFns;
    pub use sea_query::Value;
    pub use sqlx;
}

/// The README's quick start, compiled as a doctest.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
