//! A migration (an id, a scope, operations and a checksum) and the ordered set a binary
//! embeds.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{error::MigrationError, operation::Operation};
use crate::error::Result;

/// Where a migration applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationScope {
    /// The shared (default) schema only, migrated first.
    Shared,
    /// Every tenant schema.
    Tenant,
}

/// The content of one migration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationFile {
    scope: MigrationScope,
    /// The author accepts operations that rewrite whole tables (see
    /// [`Migration::allows_rewrite`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_rewrite: bool,
    operations: Vec<Operation>,
}

/// One migration: its id (the file name without `.json`), scope, operations and checksum.
#[derive(Clone, Debug)]
pub struct Migration {
    id: Arc<str>,
    scope: MigrationScope,
    allow_rewrite: bool,
    operations: Arc<[Operation]>,
    checksum: Arc<str>,
}

impl Migration {
    /// Parses migration `id` from the text of its file.
    ///
    /// ```
    /// use tenantry::migrate::{Migration, MigrationScope};
    /// let m = Migration::parse(
    ///     "0002_stock",
    ///     r#"{ "scope": "tenant", "operations": [
    ///         { "op": "add_column", "table": "products",
    ///           "column": { "name": "stock", "type": "integer", "default": 0 } } ] }"#,
    /// ).unwrap();
    /// assert_eq!(m.scope(), MigrationScope::Tenant);
    /// assert_eq!(m.checksum().len(), 64);
    /// ```
    pub fn parse(id: &str, text: &str) -> Result<Migration> {
        let invalid = |reason: String| MigrationError::invalid(id, reason);
        check_id(id).map_err(|r| invalid(r.to_owned()))?;
        let file: MigrationFile = serde_json::from_str(text)
            .map_err(|e| invalid(format!("not a migration file: {e}")))?;
        for op in &file.operations {
            for name in op.identifiers() {
                check_identifier(name)
                    .map_err(|r| invalid(format!("{}: identifier {name:?} {r}", op.describe())))?;
            }
            for column in op.columns() {
                column
                    .check()
                    .map_err(|r| invalid(format!("{}: {r}", op.describe())))?;
            }
        }
        // The checksum covers the parsed content, so reformatting a file does not change it
        // and any change of meaning does.
        let canonical =
            serde_json::to_string(&file).map_err(|e| invalid(format!("cannot checksum: {e}")))?;
        let digest = Sha256::digest(canonical.as_bytes());
        let checksum: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Migration {
            id: Arc::from(id),
            scope: file.scope,
            allow_rewrite: file.allow_rewrite,
            operations: Arc::from(file.operations),
            checksum: Arc::from(checksum),
        })
    }

    /// The text of a migration file holding `operations` in `scope`, as `makemigrations`
    /// writes it: one operation a line, so that a review in git reads as a list. With
    /// `allow_rewrite`, the file says `"allow_rewrite": true` (see
    /// [`allows_rewrite`](Self::allows_rewrite)).
    ///
    /// ```
    /// use tenantry::migrate::{Migration, MigrationScope, Operation};
    /// let text = Migration::file_text(
    ///     MigrationScope::Tenant,
    ///     false,
    ///     &[Operation::DropTable { table: "old".into() }],
    /// );
    /// assert_eq!(
    ///     text,
    ///     "{\n  \"scope\": \"tenant\",\n  \"operations\": [\n    \
    ///      {\"op\":\"drop_table\",\"table\":\"old\"}\n  ]\n}\n"
    /// );
    /// assert!(Migration::parse("0002_drop_old", &text).is_ok());
    /// ```
    pub fn file_text(
        scope: MigrationScope,
        allow_rewrite: bool,
        operations: &[Operation],
    ) -> String {
        let scope = match scope {
            MigrationScope::Shared => "shared",
            MigrationScope::Tenant => "tenant",
        };
        let lines: Vec<String> = operations
            .iter()
            .map(|op| {
                // An operation is plain data (strings, numbers, enums): it always serializes.
                let json = serde_json::to_string(op).unwrap_or_default();
                ["    ", &json].concat()
            })
            .collect();
        let allow = if allow_rewrite {
            "\",\n  \"allow_rewrite\": true"
        } else {
            "\""
        };
        [
            "{\n  \"scope\": \"",
            scope,
            allow,
            ",\n  \"operations\": [\n",
            &lines.join(",\n"),
            "\n  ]\n}\n",
        ]
        .concat()
    }

    /// The id, e.g. `0002_stock`. Migrations run in the order of their ids.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Shared or tenant.
    pub fn scope(&self) -> MigrationScope {
        self.scope
    }

    /// Whether the file says `"allow_rewrite": true`: its author accepts operations whose
    /// hazard on the backend rewrites, scans or copies a whole table under a lock that
    /// blocks writes ([`HazardKind::needs_allow_rewrite`]: an `alter_column` that changes a
    /// type or sets NOT NULL on PostgreSQL, any `alter_column` on MySQL; minutes on a large
    /// table, for every tenant). Without it such a migration is refused before anything
    /// runs; the safe alternative is expand/contract (add a column, backfill, switch, drop
    /// the old one). A SQLite table rebuild needs no opt-in (tenant files are small).
    ///
    /// [`HazardKind::needs_allow_rewrite`]: super::HazardKind::needs_allow_rewrite
    pub fn allows_rewrite(&self) -> bool {
        self.allow_rewrite
    }

    /// The operations that, judged without the earlier migrations, rewrite a table on
    /// `backend` (see [`allows_rewrite`](Self::allows_rewrite) and
    /// [`Migrations::hazards`], which judges against the tables the earlier migrations
    /// built and is what the runner's check uses).
    pub fn rewrites(&self, backend: crate::Backend) -> Vec<&Operation> {
        self.operations
            .iter()
            .filter(|op| op.rewrites(backend))
            .collect()
    }

    /// The operations, in order.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The SHA-256 of the migration's content, in hex.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
}

/// Ids are file names: ASCII letters, digits, `_` and `-`, 1 to 128 characters.
fn check_id(id: &str) -> std::result::Result<(), &'static str> {
    if id.is_empty() || id.len() > 128 {
        return Err("a migration id has 1 to 128 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("a migration id has only ASCII letters, digits, '_' and '-'");
    }
    Ok(())
}

/// Table, column, index and constraint names: a letter or `_`, then letters, digits and
/// `_`, at most 63 characters (PostgreSQL's limit; MySQL's is 64).
pub(crate) fn check_identifier(name: &str) -> std::result::Result<(), &'static str> {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        Some(_) => return Err("must start with a letter or '_'"),
        None => return Err("is empty"),
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("may hold only ASCII letters, digits and '_'");
    }
    Ok(())
}

/// The migrations a binary carries, ordered by id. Cheap to clone.
///
/// Usually made by the [`migrations!`](crate::migrations) macro, which embeds the `*.json`
/// files of a directory at compile time.
#[derive(Clone, Debug, Default)]
pub struct Migrations {
    all: Arc<[Migration]>,
}

impl Migrations {
    /// Parses `(id, text)` pairs (what [`migrations!`](crate::migrations) embeds). Ids must be
    /// unique; the set is sorted by id.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Migrations> {
        let mut all = files
            .iter()
            .map(|(id, text)| Migration::parse(id, text))
            .collect::<Result<Vec<_>>>()?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(pair) = all.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(MigrationError::invalid(
                &pair[0].id,
                "two migrations have this id".into(),
            ));
        }
        Ok(Migrations { all: all.into() })
    }

    /// Every migration, in order.
    pub fn all(&self) -> &[Migration] {
        &self.all
    }

    /// The migrations of `scope`, in order.
    pub fn of(&self, scope: MigrationScope) -> impl Iterator<Item = &Migration> {
        self.all.iter().filter(move |m| m.scope == scope)
    }

    /// The last migration of `scope`: the version a schema of that scope is at when done.
    pub fn last(&self, scope: MigrationScope) -> Option<&Migration> {
        self.of(scope).last()
    }

    /// The migration with this id.
    pub fn get(&self, id: &str) -> Option<&Migration> {
        self.all.iter().find(|m| &*m.id == id)
    }
}
