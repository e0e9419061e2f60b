//! The tenant directory's table: where each tenant lives.

use serde::Serialize;

use crate::{
    error::{Error, Result},
    schema_name::SchemaName,
    Model,
};

/// One tenant's entry in the [`Directory`](crate::Directory) (table `tenant_directory`, a
/// shared model of the registry's default database): the server (an alias of the
/// directory's configuration, never a URL or a credential), the database on it, the
/// tenant's schema there, its state and the epoch of its last change.
///
/// Write entries through the directory ([`Directory::add_tenant`](crate::Directory::add_tenant),
/// [`Directory::add_entry`](crate::Directory::add_entry)), which refuses a malformed one
/// before writing it; a row written by hand is checked when read
/// ([`Error::InvalidArgument`]).
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[model(shared, table = "tenant_directory")]
pub struct DirectoryEntry {
    /// The primary key.
    pub id: i64,
    /// The tenant, which is also its schema's name on its database: a valid [`SchemaName`],
    /// unique.
    #[model(max_length = 63, unique)]
    pub schema_name: String,
    /// The server alias, as configured with [`Directory::server`](crate::Directory::server).
    #[model(max_length = 63)]
    pub server: String,
    /// The database on that server (PostgreSQL: a database; MySQL: the tenant namespace;
    /// SQLite: the main file's name in the server's directory): a valid [`SchemaName`].
    #[model(max_length = 63)]
    pub database: String,
    /// `active` or `suspended`.
    #[model(max_length = 16)]
    pub state: String,
    /// How many times the entry changed: a cache holding an older value is stale.
    pub epoch: i64,
}

/// A directory entry's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// Served.
    Active,
    /// Kept, but refused service.
    Suspended,
}

impl TenantState {
    /// The text stored in [`DirectoryEntry::state`].
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "active" => Ok(TenantState::Active),
            "suspended" => Ok(TenantState::Suspended),
            _ => Err(malformed("state must be \"active\" or \"suspended\"")),
        }
    }
}

fn malformed(reason: &'static str) -> Error {
    Error::InvalidArgument {
        argument: "directory entry",
        reason,
    }
}

/// A directory entry, checked: what routing uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CheckedEntry {
    pub(crate) schema: SchemaName,
    pub(crate) server: SchemaName,
    pub(crate) database: SchemaName,
    pub(crate) state: TenantState,
}

impl DirectoryEntry {
    /// The entry's fields, each validated; [`Error::InvalidArgument`] or
    /// [`Error::InvalidSchemaName`] for a malformed one.
    pub(crate) fn checked(&self) -> Result<CheckedEntry> {
        Ok(CheckedEntry {
            schema: SchemaName::parse(&self.schema_name)?,
            server: SchemaName::parse(&self.server)
                .map_err(|_| malformed("server must be a configured alias"))?,
            database: SchemaName::parse(&self.database)
                .map_err(|_| malformed("database must be a valid name (as a schema's)"))?,
            state: TenantState::parse(&self.state)?,
        })
    }
}
