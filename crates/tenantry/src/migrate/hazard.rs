//! Lint before harm: what an operation costs on a backend beyond its catalog change (a table
//! rewritten, scanned or copied, a lock that blocks writes for as long as the table takes to
//! read), with the expand/contract way to do the same change without it.
//!
//! The facts (see the project's notes on migrations): on PostgreSQL a column type change
//! rewrites the table and its indexes, `SET NOT NULL` scans it, a foreign key is validated
//! under `SHARE ROW EXCLUSIVE` and `CREATE INDEX` blocks writes; on MySQL / MariaDB
//! `MODIFY COLUMN` copies the table, and the runner's `ALGORITHM=INSTANT` guard makes the
//! server refuse an add or drop that would not be instant; on SQLite what cannot be altered
//! in place is a table rebuild (every row copied inside the tenant's transaction: fine for a
//! small tenant file).

use std::fmt;

use super::{
    migration::{Migration, MigrationScope, Migrations},
    operation::{ColumnSpec, Operation},
    render::sqlite_rebuilds,
    snapshot::Snapshot,
};
use crate::backend::Backend;

/// The kind of harm an operation does on a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HazardKind {
    /// Writes every row (and rebuilds every index) again under an exclusive lock.
    Rewrite,
    /// Reads every row under an exclusive lock (a validation scan).
    Scan,
    /// Holds a lock that blocks writes while the table is read or indexed.
    LongLock,
    /// Copies the table (MySQL / MariaDB `ALGORITHM=COPY`), blocking writes.
    Copy,
    /// SQLite: the table is rebuilt (made anew, every row copied, the old one dropped)
    /// inside the tenant's transaction. Fine for a small tenant file.
    Rebuild,
    /// The server will refuse it: MariaDB cannot do it instantly (or without copying), and
    /// the runner's `ALGORITHM=INSTANT` / `ALGORITHM=NOCOPY` guard turns the copy it would
    /// take into an error (the tenant's migration fails).
    Refused,
}

impl HazardKind {
    /// Whether a migration holding an operation of this kind must say
    /// `"allow_rewrite": true` to run ([`Migration::allows_rewrite`]): rewrites, scans and
    /// copies, whose cost grows with every row of every tenant.
    pub fn needs_allow_rewrite(self) -> bool {
        matches!(
            self,
            HazardKind::Rewrite | HazardKind::Scan | HazardKind::Copy
        )
    }

    /// The kind's name: `rewrite`, `scan`, `long_lock`, `copy`, `rebuild`, `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            HazardKind::Rewrite => "rewrite",
            HazardKind::Scan => "scan",
            HazardKind::LongLock => "long_lock",
            HazardKind::Copy => "copy",
            HazardKind::Rebuild => "rebuild",
            HazardKind::Refused => "refused",
        }
    }
}

impl fmt::Display for HazardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation's hazard on one backend: what it does, why, and the alternative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hazard {
    /// The operation, as [`Operation::describe`] writes it (`alter_column m_items.name`).
    pub operation: String,
    /// The backend it applies to.
    pub backend: Backend,
    /// What kind of harm.
    pub kind: HazardKind,
    /// What the backend does, in a sentence.
    pub why: String,
    /// How to make the same change without it (usually expand/contract).
    pub alternative: String,
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {}: {}: {}; instead: {}",
            self.kind,
            self.backend.name(),
            self.operation,
            self.why,
            self.alternative
        )
    }
}

const EXPAND_CONTRACT: &str = "expand/contract: add a new column, backfill it in batches, \
     switch reads to it, then drop the old one in a later migration";

fn type_differs(old: &ColumnSpec, new: &ColumnSpec) -> bool {
    old.column_type != new.column_type
        || old.max_length != new.max_length
        || old.precision != new.precision
        || old.scale != new.scale
        || old.enum_type != new.enum_type
}

/// Whether `column` of `table` is indexed, unique, a primary key or in a foreign key, as
/// `before` records it.
pub(crate) fn column_is_constrained(before: &Snapshot, table: &str, column: &str) -> bool {
    let Some(t) = before.table(table) else {
        return false;
    };
    t.column(column)
        .is_some_and(|c| c.unique || c.primary_key || c.auto_increment)
        || t.indexes
            .iter()
            .any(|ix| ix.columns.iter().any(|c| c == column))
        || t.foreign_keys.iter().any(|fk| fk.column == column)
}

/// Whether `column` of `table` is in an index of several columns or in a foreign key.
fn in_composite_key(before: &Snapshot, table: &str, column: &str) -> bool {
    before.table(table).is_some_and(|t| {
        t.indexes
            .iter()
            .any(|ix| ix.columns.len() > 1 && ix.columns.iter().any(|c| c == column))
            || t.foreign_keys.iter().any(|fk| fk.column == column)
    })
}

/// The hazards of `op` on `backend`, given the scope's tables before it (`None`: unknown,
/// so a change is assumed wherever one could be). `tenant`: a tenant migration (a foreign
/// key to a shared table is left out on SQLite and MySQL).
pub(crate) fn operation_hazards(
    op: &Operation,
    backend: Backend,
    before: Option<&Snapshot>,
    tenant: bool,
) -> Vec<Hazard> {
    let mut out = Vec::new();
    let mut push = |kind, why: String, alternative: &str| {
        out.push(Hazard {
            operation: op.describe(),
            backend,
            kind,
            why,
            alternative: alternative.to_owned(),
        })
    };
    let old_column = |table: &str, name: &str| {
        before
            .and_then(|s| s.table(table))
            .and_then(|t| t.column(name))
            .cloned()
    };
    match backend {
        Backend::Postgres => match op {
            Operation::AlterColumn { table, column } => {
                let old = old_column(table, &column.name);
                if old.as_ref().is_none_or(|o| type_differs(o, column)) {
                    push(
                        HazardKind::Rewrite,
                        "changing the column's type rewrites the table and rebuilds its indexes \
                         under an ACCESS EXCLUSIVE lock (binary-coercible changes such as \
                         varchar to text or a longer varchar are exempt)"
                            .into(),
                        EXPAND_CONTRACT,
                    );
                }
                if !column.null && old.as_ref().is_none_or(|o| o.null) {
                    push(
                        HazardKind::Scan,
                        "SET NOT NULL reads every row under an ACCESS EXCLUSIVE lock".into(),
                        "add CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it \
                         (writes go on), then SET NOT NULL, which PostgreSQL 12+ proves from \
                         the valid check without a scan, and drop the check",
                    );
                }
                if column.unique && old.as_ref().is_none_or(|o| !o.unique) {
                    push(
                        HazardKind::LongLock,
                        "adding a unique constraint builds its index while writes wait".into(),
                        "CREATE UNIQUE INDEX CONCURRENTLY outside a transaction, then ADD \
                         CONSTRAINT … UNIQUE USING INDEX",
                    );
                }
            }
            Operation::AddColumn { column, .. } if column.unique || column.primary_key => push(
                HazardKind::LongLock,
                "the new column's unique index is built while writes wait".into(),
                "add the column without unique, then build the index CONCURRENTLY outside \
                 a transaction",
            ),
            Operation::AddForeignKey { .. } => push(
                HazardKind::LongLock,
                "validating the key reads every row while SHARE ROW EXCLUSIVE locks on both \
                 tables block their writes"
                    .into(),
                "add the key NOT VALID (instant), then VALIDATE CONSTRAINT, which takes SHARE \
                 UPDATE EXCLUSIVE and lets writes go on",
            ),
            Operation::AddCheck { .. } => push(
                HazardKind::Scan,
                "adding a check reads every row under an ACCESS EXCLUSIVE lock".into(),
                "add the check NOT VALID and VALIDATE CONSTRAINT it (writes go on) in a raw \
                 step, or add it while the table is small",
            ),
            Operation::CreateIndex { .. } => push(
                HazardKind::LongLock,
                "CREATE INDEX blocks writes to the table while it builds".into(),
                "CREATE INDEX CONCURRENTLY, which cannot run inside the tenant's migration \
                 transaction: build it by hand in each tenant first, and this migration's \
                 IF NOT EXISTS finds it made",
            ),
            _ => {}
        },
        Backend::MySql => match op {
            Operation::AlterColumn { .. } if !super::render::alters_only_enum_type(op, before) => {
                push(
                    HazardKind::Copy,
                    "MODIFY COLUMN copies the table (ALGORITHM=COPY) and blocks writes until done"
                        .into(),
                    EXPAND_CONTRACT,
                )
            }
            Operation::AddColumn { column, .. }
                if column.unique || column.primary_key || column.auto_increment =>
            {
                push(
                    HazardKind::Refused,
                    "a column with an index cannot be added instantly: the runner's \
                     ALGORITHM=INSTANT guard makes MariaDB refuse it, and the tenant's \
                     migration fails"
                        .into(),
                    "add the column without unique (instant), then create_index unique on it",
                )
            }
            Operation::DropColumn { table, column }
                if before.is_some_and(|s| in_composite_key(s, table, column)) =>
            {
                push(
                    HazardKind::Refused,
                    "dropping a column that is part of a composite index or a foreign key \
                     rebuilds the table or fails: the runner's ALGORITHM=NOCOPY guard makes \
                     MariaDB refuse it (when it is), and the tenant's migration fails"
                        .into(),
                    "drop_index / drop_foreign_key on the column first, then drop_column",
                )
            }
            Operation::AddCheck { .. } => push(
                HazardKind::Copy,
                "adding a check copies the table (ALGORITHM=COPY) and blocks writes until done"
                    .into(),
                "declare the check when the table is created, or add it while the table is small",
            ),
            Operation::AddForeignKey { .. } => push(
                HazardKind::LongLock,
                "adding a foreign key with foreign_key_checks on copies the table and blocks \
                 writes while every row is checked"
                    .into(),
                "declare the key when the table is created, or add it while the table is small",
            ),
            _ => {}
        },
        Backend::Sqlite => {
            if sqlite_rebuilds(op, before, tenant) {
                let mut why = String::from(
                    "SQLite cannot make this change in place: the table is rebuilt (made anew \
                     from its recorded definition, every row copied, the old one dropped, \
                     foreign keys checked) inside the tenant's transaction; fine for a small \
                     tenant file, slow for a large one",
                );
                if before.is_some_and(|s| s.raw_operations > 0) {
                    why.push_str(
                        "; this scope has raw steps: a rebuild refuses a table whose columns \
                         differ from the recorded ones, and does not make again an index or \
                         trigger a raw step made on it",
                    );
                }
                push(HazardKind::Rebuild, why, EXPAND_CONTRACT);
            }
        }
    }
    out
}

/// The existing table an operation changes (not one it creates).
fn op_table(op: &Operation) -> Option<&str> {
    match op {
        Operation::AddColumn { table, .. }
        | Operation::DropColumn { table, .. }
        | Operation::AlterColumn { table, .. }
        | Operation::RenameColumn { table, .. }
        | Operation::CreateIndex { table, .. }
        | Operation::DropIndex { table, .. }
        | Operation::AddForeignKey { table, .. }
        | Operation::DropForeignKey { table, .. }
        | Operation::AddCheck { table, .. }
        | Operation::DropCheck { table, .. } => Some(table),
        _ => None,
    }
}

/// The tables of `migration`'s scope before it runs: every earlier migration of the scope
/// replayed; `None` when they do not replay (they disagree with themselves).
pub(crate) fn snapshot_before(migrations: &Migrations, migration: &Migration) -> Option<Snapshot> {
    let mut snapshot = Snapshot::default();
    for earlier in migrations.of(migration.scope()) {
        if earlier.id() >= migration.id() {
            break;
        }
        for op in earlier.operations() {
            snapshot.apply(op).ok()?;
        }
    }
    Some(snapshot)
}

/// The hazards of `migration`'s operations on `backend`, each judged against the tables as
/// the operations before it leave them (`before`; `None`: unknown).
pub(crate) fn migration_hazards(
    migration: &Migration,
    backend: Backend,
    before: Option<Snapshot>,
) -> Vec<Hazard> {
    let tenant = migration.scope() == MigrationScope::Tenant;
    let mut state = before;
    let mut out = Vec::new();
    // Tables this migration creates are empty when its later operations change them
    // (unless a raw or data step fills them first): nothing to rewrite, scan or copy.
    let mut created: Vec<&str> = Vec::new();
    let mut filled = false;
    for op in migration.operations() {
        match op {
            Operation::CreateTable { table, .. } => created.push(table),
            // A name is fresh only while it still names the table created here: dropped, or
            // taken by a live table renamed onto it, it is not.
            Operation::DropTable { table } => created.retain(|t| t != table),
            Operation::RenameTable { from, to } => {
                let moves = created.contains(&from.as_str());
                created.retain(|t| t != from && t != to);
                if moves {
                    created.push(to);
                }
            }
            Operation::Raw { .. } | Operation::Data { .. } => filled = true,
            _ => {}
        }
        let fresh = !filled && op_table(op).is_some_and(|t| created.contains(&t));
        if !fresh {
            out.extend(operation_hazards(op, backend, state.as_ref(), tenant));
        }
        if let Some(snapshot) = state.as_mut() {
            if snapshot.apply(op).is_err() {
                state = None;
            }
        }
    }
    out
}

impl Migration {
    /// The hazards of this migration's operations on `backend`, judged without the earlier
    /// migrations (a change is assumed wherever one could be: every `alter_column` a type
    /// change). [`Migrations::hazards`] judges against the tables the earlier migrations
    /// built, and is what the runner and `migrate plan` use.
    ///
    /// ```
    /// use tenantry::{migrate::{HazardKind, Migration}, Backend};
    /// let m = Migration::parse(
    ///     "0003_longer",
    ///     r#"{ "scope": "tenant", "operations": [
    ///         { "op": "alter_column", "table": "products",
    ///           "column": { "name": "name", "type": "text" } } ] }"#,
    /// ).unwrap();
    /// let hazards = m.hazards(Backend::MySql);
    /// assert_eq!(hazards[0].kind, HazardKind::Copy);
    /// assert!(hazards[0].alternative.contains("expand/contract"));
    /// ```
    pub fn hazards(&self, backend: Backend) -> Vec<Hazard> {
        migration_hazards(self, backend, None)
    }
}

impl Migrations {
    /// The hazards of `migration` on `backend`, each operation judged against the tables as
    /// the earlier migrations of its scope and its own earlier operations leave them (so an
    /// `alter_column` that only changes a default is no rewrite on PostgreSQL).
    pub fn hazards(&self, migration: &Migration, backend: Backend) -> Vec<Hazard> {
        migration_hazards(migration, backend, snapshot_before(self, migration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: [(&str, &str); 2] = [
        (
            "0001_t",
            r#"{ "scope": "tenant", "operations": [
              { "op": "create_table", "table": "p", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true } ] },
              { "op": "create_table", "table": "t", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true },
                { "name": "p_id", "type": "big_integer", "null": true },
                { "name": "note", "type": "text", "null": true } ] } ] }"#,
        ),
        (
            "0002_x",
            r#"{ "scope": "tenant", "operations": [
              { "op": "alter_column", "table": "t",
                "column": { "name": "note", "type": "text", "default": "" } },
              { "op": "add_foreign_key", "table": "t", "foreign_key": { "name": "fk_t_p",
                "column": "p_id", "references": "p", "references_column": "id" } },
              { "op": "create_index", "table": "t", "name": "ix_t_note", "columns": ["note"] },
              { "op": "add_column", "table": "t",
                "column": { "name": "n", "type": "integer", "default": 0 } } ] }"#,
        ),
    ];

    fn hazards(backend: Backend) -> Vec<Hazard> {
        let set = Migrations::from_files(&SET).unwrap();
        set.hazards(set.get("0002_x").unwrap(), backend)
    }

    #[test]
    fn postgres_names_scans_and_long_locks_with_their_alternatives() {
        let found = hazards(Backend::Postgres);
        let kinds: Vec<(HazardKind, &str)> = found
            .iter()
            .map(|h| (h.kind, h.operation.as_str()))
            .collect();
        // NOT NULL on an unchanged type: a scan, no rewrite; a constant default: nothing.
        assert_eq!(
            kinds,
            [
                (HazardKind::Scan, "alter_column t.note"),
                (HazardKind::LongLock, "add_foreign_key t.fk_t_p"),
                (HazardKind::LongLock, "create_index ix_t_note on t"),
            ]
        );
        assert!(found[0].alternative.contains("NOT VALID"), "{found:?}");
        assert!(found[1].alternative.contains("NOT VALID"), "{found:?}");
        assert!(found[2].alternative.contains("CONCURRENTLY"), "{found:?}");
        assert!(found[0].kind.needs_allow_rewrite());
        assert!(!found[1].kind.needs_allow_rewrite());
        // Without the earlier migrations the same alter is assumed to change the type.
        let set = Migrations::from_files(&SET).unwrap();
        let blind = set.get("0002_x").unwrap().hazards(Backend::Postgres);
        assert_eq!(blind[0].kind, HazardKind::Rewrite);
    }

    #[test]
    fn a_table_made_by_the_same_migration_has_no_hazard() {
        let set = Migrations::from_files(&[(
            "0001_t",
            r#"{ "scope": "tenant", "operations": [
              { "op": "create_table", "table": "t", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true },
                { "name": "note", "type": "text", "null": true } ] },
              { "op": "create_index", "table": "t", "name": "ix_t_note", "columns": ["note"] },
              { "op": "alter_column", "table": "t",
                "column": { "name": "note", "type": "varchar", "max_length": 9 } } ] }"#,
        )])
        .unwrap();
        for backend in [Backend::Postgres, Backend::MySql, Backend::Sqlite] {
            let found = set.hazards(set.get("0001_t").unwrap(), backend);
            assert!(found.is_empty(), "{backend}: {found:?}");
        }
    }

    #[test]
    fn mysql_copies_and_sqlite_rebuilds() {
        let mysql: Vec<HazardKind> = hazards(Backend::MySql).iter().map(|h| h.kind).collect();
        assert_eq!(mysql, [HazardKind::Copy, HazardKind::LongLock]);
        let sqlite = hazards(Backend::Sqlite);
        assert_eq!(sqlite.len(), 2, "{sqlite:?}");
        assert!(sqlite.iter().all(|h| h.kind == HazardKind::Rebuild));
        assert!(sqlite[0].why.contains("small tenant file"));
        assert!(!HazardKind::Rebuild.needs_allow_rewrite());
        let text = sqlite[0].to_string();
        assert!(
            text.starts_with("rebuild on sqlite: alter_column t.note: "),
            "{text}"
        );
    }
}
