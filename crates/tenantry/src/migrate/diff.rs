//! The operations that take one [`Snapshot`] to another: what `makemigrations` writes.
//!
//! Nothing is guessed: a rename happens only when it is asked for ([`Renames`]); a column
//! or table that disappears while another appears is a drop plus an add, with a warning
//! that names the rename flag that would keep the data.

use std::collections::BTreeSet;

use super::{
    operation::{ColumnSpec, ColumnType, ForeignKeySpec, Operation},
    snapshot::{canonical_default, IndexSpec, Snapshot, TableSnapshot},
};

/// The renames the author asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Renames {
    /// Tables: `(from, to)`.
    pub tables: Vec<(String, String)>,
    /// Columns: `(table, from, to)`, `table` being the table's new name.
    pub columns: Vec<(String, String, String)>,
}

/// What changes between two snapshots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The operations, in an order that applies.
    pub operations: Vec<Operation>,
    /// What the author should read before committing them: data the operations drop,
    /// possible renames not asked for, changes the generator cannot write.
    pub warnings: Vec<String>,
    /// Drops and adds that may be renames (a table dropped while another is created; a
    /// column dropped while another of the same type is added to its table), for a tool to
    /// ask about. Each is written as a drop plus an add unless it is asked for in
    /// [`Renames`].
    pub possible_renames: Vec<PossibleRename>,
}

/// A drop plus an add that may be a rename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PossibleRename {
    /// Table `from` dropped, table `to` created.
    Table {
        /// The dropped table.
        from: String,
        /// The created table.
        to: String,
    },
    /// Column `from` of `table` dropped, column `to` added.
    Column {
        /// The table (its new name).
        table: String,
        /// The dropped column.
        from: String,
        /// The added column.
        to: String,
    },
}

impl Changes {
    /// No operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

/// The operations that take `old` (what the migrations built) to `new` (what the models
/// want), with the asked-for `renames` applied first. Fails when a rename does not fit the
/// two snapshots (its source is missing from `old` or its target from `new`).
///
/// ```
/// use tenantry::migrate::{diff, Renames, Snapshot};
/// let same = diff(&Snapshot::default(), &Snapshot::default(), &Renames::default()).unwrap();
/// assert!(same.is_empty());
/// ```
pub fn diff(old: &Snapshot, new: &Snapshot, renames: &Renames) -> Result<Changes, String> {
    let mut changes = Changes::default();
    let mut current = old.clone();
    let mut apply = |op: Operation, current: &mut Snapshot| -> Result<(), String> {
        current.apply(&op)?;
        changes.operations.push(op);
        Ok(())
    };
    for (from, to) in &renames.tables {
        if current.table(from).is_none() || new.table(from).is_some() || new.table(to).is_none() {
            return Err(format!(
                "cannot rename table {from} to {to}: the migrations must have {from} and the \
                 models {to} (and not {from})"
            ));
        }
        let op = Operation::RenameTable {
            from: from.clone(),
            to: to.clone(),
        };
        apply(op, &mut current)?;
    }
    for (table, from, to) in &renames.columns {
        let fits = current
            .table(table)
            .is_some_and(|t| t.column(from).is_some())
            && new
                .table(table)
                .is_some_and(|t| t.column(to).is_some() && t.column(from).is_none());
        if !fits {
            return Err(format!(
                "cannot rename column {table}.{from} to {to}: the migrations must have \
                 {table}.{from} and the models {table}.{to} (and not {from})"
            ));
        }
        let op = Operation::RenameColumn {
            table: table.clone(),
            from: from.clone(),
            to: to.clone(),
        };
        apply(op, &mut current)?;
    }
    let mut warnings = Vec::new();
    changes.possible_renames = possible_renames(&current, new);
    let hints = &changes.possible_renames;
    let enums = enum_changes(&current, new, &mut warnings);
    let created = create_tables(&current, new);
    let altered = alter_tables(&current, new, hints, &mut warnings);
    let dropped = drop_tables(&current, new, hints, &mut warnings);
    let unused_enums = drop_enums(&current, new);
    let ops = enums.into_iter().chain(created).chain(altered);
    for op in ops.chain(dropped).chain(unused_enums) {
        apply(op, &mut current)?;
    }
    changes.warnings = warnings;
    if old.raw_operations > 0 {
        changes.warnings.push(format!(
            "the migrations hold {} raw operation(s) whose effect the generator cannot see; \
             check that the operations below do not repeat or undo them",
            old.raw_operations
        ));
    }
    Ok(changes)
}

/// The enum types `new` has and `old` has not, and the labels added to the others, each
/// placed where `new` lists it (before the tables that use them). Labels removed or
/// reordered are a warning: PostgreSQL cannot drop or reorder an enum's labels.
fn enum_changes(old: &Snapshot, new: &Snapshot, warnings: &mut Vec<String>) -> Vec<Operation> {
    let mut out = Vec::new();
    for (name, labels) in &new.enums {
        let Some(was) = old.enums.get(name) else {
            out.push(Operation::CreateEnum {
                name: name.clone(),
                variants: labels.clone(),
            });
            continue;
        };
        let kept: Vec<&String> = labels.iter().filter(|l| was.contains(l)).collect();
        if kept.len() != was.len() || !kept.iter().zip(was).all(|(k, w)| *k == w) {
            warnings.push(format!(
                "enum type {name}: labels removed or reordered ({was:?} to {labels:?});                  PostgreSQL cannot drop or reorder an enum's labels, so no operation is                  written for it: make a new type and convert its columns with a raw step"
            ));
            continue;
        }
        for (i, label) in labels.iter().enumerate().filter(|(_, l)| !was.contains(l)) {
            // The label before it is in the type by now (the old ones, and the new ones
            // added in order); the first label goes before the old first.
            let (before, after) = match i {
                0 => (was.first().cloned(), None),
                _ => (None, Some(labels[i - 1].clone())),
            };
            out.push(Operation::AddEnumValue {
                name: name.clone(),
                value: label.clone(),
                before,
                after,
            });
        }
    }
    out
}

/// The enum types `old` has and `new` has not, dropped once no column has them.
fn drop_enums(old: &Snapshot, new: &Snapshot) -> Vec<Operation> {
    old.enums
        .keys()
        .filter(|name| !new.enums.contains_key(*name))
        .map(|name| Operation::DropEnum { name: name.clone() })
        .collect()
}

fn possible_renames(old: &Snapshot, new: &Snapshot) -> Vec<PossibleRename> {
    let only = |a: &Snapshot, b: &Snapshot| -> Vec<String> {
        a.tables
            .keys()
            .filter(|name| b.table(name).is_none())
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    for from in only(old, new) {
        for to in only(new, old) {
            if similar(&old.tables[&from], &new.tables[&to]) {
                out.push(PossibleRename::Table {
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    for (table, was) in &old.tables {
        let Some(wants) = new.table(table) else {
            continue;
        };
        for gone in was
            .columns
            .iter()
            .filter(|c| wants.column(&c.name).is_none())
        {
            let same_type = |c: &&ColumnSpec| {
                c.column_type == gone.column_type && was.column(&c.name).is_none()
            };
            for added in wants.columns.iter().filter(same_type) {
                out.push(PossibleRename::Column {
                    table: table.clone(),
                    from: gone.name.clone(),
                    to: added.name.clone(),
                });
            }
        }
    }
    out
}

/// Tables alike enough to be one renamed: besides their primary keys (which every table
/// has), they share a column by name and type, and at least half of each one's columns.
fn similar(a: &TableSnapshot, b: &TableSnapshot) -> bool {
    let others = |t: &TableSnapshot| t.columns.iter().filter(|c| !c.primary_key).count();
    let shared = a
        .columns
        .iter()
        .filter(|c| !c.primary_key)
        .filter(|c| {
            b.column(&c.name)
                .is_some_and(|d| d.column_type == c.column_type)
        })
        .count();
    shared > 0 && shared * 2 >= others(a) && shared * 2 >= others(b)
}

/// The tables `new` has and `old` has not, referenced tables first; a foreign key in a
/// cycle is added after its tables exist.
fn create_tables(old: &Snapshot, new: &Snapshot) -> Vec<Operation> {
    let mut missing: Vec<&String> = new
        .tables
        .keys()
        .filter(|name| old.table(name).is_none())
        .collect();
    let mut ops = Vec::new();
    let mut later = Vec::new();
    let mut made: BTreeSet<&str> = BTreeSet::new();
    while !missing.is_empty() {
        let ready = |name: &&String| {
            new.tables[*name].foreign_keys.iter().all(|fk| {
                fk.shared
                    || fk.references == **name
                    || made.contains(fk.references.as_str())
                    || !missing.iter().any(|m| **m == fk.references)
            })
        };
        // In a cycle no table is ready: take the first and add its keys afterwards.
        let (index, in_cycle) = match missing.iter().position(ready) {
            Some(i) => (i, false),
            None => (0, true),
        };
        let name = missing.remove(index);
        let table = &new.tables[name];
        let (inline, deferred): (Vec<_>, Vec<_>) = table
            .foreign_keys
            .iter()
            .cloned()
            .partition(|fk| !in_cycle || fk.shared || made.contains(fk.references.as_str()));
        ops.push(Operation::CreateTable {
            table: name.clone(),
            columns: table.columns.clone(),
            foreign_keys: inline,
            checks: table.checks.clone(),
        });
        ops.extend(table.indexes.iter().map(|ix| create_index(name, ix)));
        later.extend(deferred.into_iter().map(|fk| Operation::AddForeignKey {
            table: name.clone(),
            foreign_key: fk,
        }));
        made.insert(name);
    }
    ops.extend(later);
    ops
}

fn create_index(table: &str, index: &IndexSpec) -> Operation {
    Operation::CreateIndex {
        table: table.to_owned(),
        name: index.name.clone(),
        columns: index.columns.clone(),
        unique: index.unique,
    }
}

/// The tables `old` has and `new` has not, referencing tables first.
fn drop_tables(
    old: &Snapshot,
    new: &Snapshot,
    hints: &[PossibleRename],
    warnings: &mut Vec<String>,
) -> Vec<Operation> {
    let gone: Vec<&String> = old
        .tables
        .keys()
        .filter(|name| new.table(name).is_none())
        .collect();
    let mut ops = Vec::new();
    let mut left = gone.clone();
    while !left.is_empty() {
        let referenced = |name: &&String| {
            left.iter().any(|other| {
                other != name
                    && old.tables[*other]
                        .foreign_keys
                        .iter()
                        .any(|fk| fk.references == **name)
            })
        };
        let index = left.iter().position(|n| !referenced(n)).unwrap_or(0);
        let name = left.remove(index);
        let renamed_to = hints.iter().filter_map(|hint| match hint {
            PossibleRename::Table { from, to } if from == name => Some(to.as_str()),
            _ => None,
        });
        warnings.push(drop_warning("table", name, "--rename-table", renamed_to));
        ops.push(Operation::DropTable {
            table: name.clone(),
        });
    }
    ops
}

/// "`what` `name` is dropped with its data", and for each table or column it may have been
/// renamed to, the flag that says so.
fn drop_warning<'a>(
    what: &str,
    name: &str,
    flag: &str,
    renamed_to: impl Iterator<Item = &'a str>,
) -> String {
    let flags: Vec<String> = renamed_to.map(|to| format!("{flag} {name}={to}")).collect();
    let mut text = format!("{what} {name} is dropped with its data");
    if !flags.is_empty() {
        text.push_str("; if it was renamed, generate again with ");
        text.push_str(&flags.join(" or "));
    }
    text
}

/// The changes inside tables both snapshots have.
fn alter_tables(
    old: &Snapshot,
    new: &Snapshot,
    hints: &[PossibleRename],
    warnings: &mut Vec<String>,
) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (name, was) in &old.tables {
        if let Some(wants) = new.table(name) {
            ops.extend(alter_table(name, was, wants, hints, warnings));
        }
    }
    ops
}

fn alter_table(
    table: &str,
    was: &TableSnapshot,
    wants: &TableSnapshot,
    hints: &[PossibleRename],
    warnings: &mut Vec<String>,
) -> Vec<Operation> {
    let mut ops = Vec::new();
    // A check that changed is dropped and added again: dropped first (before its columns
    // are), added last (after them).
    for check in &was.checks {
        if !wants.checks.contains(check) {
            ops.push(Operation::DropCheck {
                table: table.to_owned(),
                name: check.name.clone(),
            });
        }
    }
    for fk in &was.foreign_keys {
        if !wants.foreign_keys.iter().any(|w| same_foreign_key(fk, w)) {
            ops.push(Operation::DropForeignKey {
                table: table.to_owned(),
                name: fk.name.clone(),
            });
        }
    }
    for ix in &was.indexes {
        if !wants.indexes.contains(ix) {
            ops.push(Operation::DropIndex {
                table: table.to_owned(),
                name: ix.name.clone(),
            });
        }
    }
    let added: Vec<&ColumnSpec> = wants
        .columns
        .iter()
        .filter(|c| was.column(&c.name).is_none())
        .collect();
    for column in &was.columns {
        match wants.column(&column.name) {
            None => {
                let qualified = format!("{table}.{}", column.name);
                let renamed_to = hints.iter().filter_map(|hint| match hint {
                    PossibleRename::Column { table: t, from, to }
                        if t == table && *from == column.name =>
                    {
                        Some(to.as_str())
                    }
                    _ => None,
                });
                warnings.push(drop_warning(
                    "column",
                    &qualified,
                    "--rename-column",
                    renamed_to,
                ));
                ops.push(Operation::DropColumn {
                    table: table.to_owned(),
                    column: column.name.clone(),
                });
            }
            Some(wanted) => {
                ops.extend(alter_column(table, column, wanted, warnings));
            }
        }
    }
    for column in added {
        if !column.null && column.default.is_none() && !column.auto_increment {
            warnings.push(format!(
                "column {table}.{} is NOT NULL without a default: adding it fails on a table \
                 that has rows; give the field a default, or add it nullable, backfill, then \
                 make it NOT NULL",
                column.name
            ));
        }
        ops.push(Operation::AddColumn {
            table: table.to_owned(),
            column: column.clone(),
        });
    }
    for ix in &wants.indexes {
        if !was.indexes.contains(ix) {
            ops.push(create_index(table, ix));
        }
    }
    for fk in &wants.foreign_keys {
        if !was.foreign_keys.iter().any(|w| same_foreign_key(fk, w)) {
            ops.push(Operation::AddForeignKey {
                table: table.to_owned(),
                foreign_key: fk.clone(),
            });
        }
    }
    for check in &wants.checks {
        if !was.checks.contains(check) {
            ops.push(Operation::AddCheck {
                table: table.to_owned(),
                check: check.clone(),
            });
        }
    }
    ops
}

/// An `alter_column` when the definition changed; a warning for what it cannot change.
fn alter_column(
    table: &str,
    was: &ColumnSpec,
    wants: &ColumnSpec,
    warnings: &mut Vec<String>,
) -> Option<Operation> {
    let (was, wants) = (normalized(was), normalized(wants));
    if was == wants {
        return None;
    }
    if was.primary_key != wants.primary_key || was.auto_increment != wants.auto_increment {
        warnings.push(format!(
            "column {table}.{}: a change of primary key or auto-increment cannot be generated; \
             write it as a raw operation",
            wants.name
        ));
        return None;
    }
    if let Some(how) = narrows(&was, &wants) {
        warnings.push(format!(
            "column {table}.{}: {how}; existing values that do not fit are rounded, cut or \
             refused by the database: check the data first, or add a new column and copy \
             what fits",
            wants.name
        ));
    }
    if was.null && !wants.null {
        warnings.push(format!(
            "column {table}.{} becomes NOT NULL: the migration fails in a tenant that holds a \
             NULL there; fill them first (a data step)",
            wants.name
        ));
    }
    Some(Operation::AlterColumn {
        table: table.to_owned(),
        column: wants,
    })
}

/// How `wants` holds less than `was`, if it does: fewer decimal places or digits, a
/// shorter string, a smaller integer, or another type altogether.
fn narrows(was: &ColumnSpec, wants: &ColumnSpec) -> Option<String> {
    use ColumnType as T;
    let less = |a: Option<u32>, b: Option<u32>| matches!((a, b), (Some(a), Some(b)) if b < a);
    match (was.column_type, wants.column_type) {
        (T::Decimal, T::Decimal) if less(was.scale, wants.scale) => Some(format!(
            "decimal places go from {} to {}",
            was.scale.unwrap_or(0),
            wants.scale.unwrap_or(0)
        )),
        (T::Decimal, T::Decimal) if less(was.precision, wants.precision) => Some(format!(
            "digits go from {} to {}",
            was.precision.unwrap_or(0),
            wants.precision.unwrap_or(0)
        )),
        (T::Varchar, T::Varchar) if less(was.max_length, wants.max_length) => Some(format!(
            "max_length goes from {} to {}",
            was.max_length.unwrap_or(0),
            wants.max_length.unwrap_or(0)
        )),
        (T::Text, T::Varchar) => Some("unbounded text becomes a varchar".to_owned()),
        (T::BigInteger, T::Integer) => Some("a 64-bit integer becomes 32-bit".to_owned()),
        (a, b) if a != b && !widens(a, b) => Some(format!("its type changes ({a:?} to {b:?})")),
        _ => None,
    }
}

/// Type changes that keep every value.
fn widens(from: ColumnType, to: ColumnType) -> bool {
    use ColumnType as T;
    matches!(
        (from, to),
        (T::Integer, T::BigInteger)
            | (T::Varchar, T::Text)
            | (T::Integer | T::BigInteger, T::Decimal)
    )
}

/// `spec` with its implicit parts spelled out, so equal definitions compare equal.
fn normalized(spec: &ColumnSpec) -> ColumnSpec {
    let mut spec = spec.clone();
    if spec.column_type == ColumnType::Varchar && spec.max_length.is_none() {
        spec.max_length = Some(255);
    }
    spec.default = canonical_default(&spec);
    spec
}

/// Foreign keys are the same when they constrain the same way (their names may differ).
fn same_foreign_key(a: &ForeignKeySpec, b: &ForeignKeySpec) -> bool {
    a.column == b.column
        && a.references == b.references
        && a.references_column == b.references_column
        && a.shared == b.shared
        && a.on_delete == b.on_delete
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::{MigrationScope, Migrations};

    fn snapshot(ops: &str) -> Snapshot {
        let text = format!(r#"{{ "scope": "tenant", "operations": [{ops}] }}"#);
        let migrations = Migrations::from_files(&[("0001_x", text.as_str())]).unwrap();
        Snapshot::of_migrations(&migrations, MigrationScope::Tenant).unwrap()
    }

    const USERS: &str = r#"{ "op": "create_table", "table": "users", "columns": [
        { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
        { "name": "name", "type": "varchar" } ] }"#;

    #[test]
    fn a_changed_column_is_an_alter_and_an_unchanged_one_nothing() {
        let old = snapshot(USERS);
        let new = snapshot(&USERS.replace(r#""type": "varchar" }"#, r#""type": "text" }"#));
        let changes = diff(&old, &new, &Renames::default()).unwrap();
        assert!(matches!(
            &changes.operations[..],
            [Operation::AlterColumn { .. }]
        ));
        let same = snapshot(&USERS.replace(
            r#""type": "varchar" }"#,
            r#""type": "varchar", "max_length": 255 }"#,
        ));
        assert!(diff(&old, &same, &Renames::default()).unwrap().is_empty());
    }

    #[test]
    fn a_disappearing_column_is_a_drop_with_a_rename_hint_unless_renamed() {
        let old = snapshot(USERS);
        let new = snapshot(&USERS.replace(r#""name": "name""#, r#""name": "full_name""#));
        let changes = diff(&old, &new, &Renames::default()).unwrap();
        assert!(matches!(
            &changes.operations[..],
            [Operation::DropColumn { .. }, Operation::AddColumn { .. }]
        ));
        assert!(
            changes.warnings[0].contains("--rename-column users.name=full_name"),
            "{:?}",
            changes.warnings
        );
        assert_eq!(
            changes.possible_renames,
            [PossibleRename::Column {
                table: "users".into(),
                from: "name".into(),
                to: "full_name".into()
            }]
        );
        let renames = Renames {
            columns: vec![("users".into(), "name".into(), "full_name".into())],
            ..Renames::default()
        };
        let changes = diff(&old, &new, &renames).unwrap();
        assert!(matches!(
            &changes.operations[..],
            [Operation::RenameColumn { .. }]
        ));
        assert!(changes.warnings.is_empty());
    }

    #[test]
    fn a_rename_that_does_not_fit_is_refused() {
        let old = snapshot(USERS);
        let renames = Renames {
            tables: vec![("people".into(), "users".into())],
            ..Renames::default()
        };
        assert!(diff(&old, &old, &renames).unwrap_err().contains("people"));
    }

    #[test]
    fn new_tables_come_after_the_tables_they_reference() {
        let posts = r#"{ "op": "create_table", "table": "a_posts", "columns": [
            { "name": "id", "type": "big_integer", "primary_key": true },
            { "name": "user_id", "type": "big_integer" } ],
            "foreign_keys": [ { "name": "fk_a_posts_user", "column": "user_id",
              "references": "users", "references_column": "id" } ] }"#;
        let new = snapshot(&format!("{USERS}, {posts}"));
        let changes = diff(&Snapshot::default(), &new, &Renames::default()).unwrap();
        let order: Vec<String> = changes.operations.iter().map(|o| o.describe()).collect();
        assert_eq!(order, ["create_table users", "create_table a_posts"]);
        let back = diff(&new, &Snapshot::default(), &Renames::default()).unwrap();
        let order: Vec<String> = back.operations.iter().map(|o| o.describe()).collect();
        assert_eq!(order, ["drop_table a_posts", "drop_table users"]);
    }

    const MOODS: &str = r#"{ "op": "create_enum", "name": "mood", "variants": ["sad", "happy"] },
      { "op": "create_table", "table": "days", "columns": [
        { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
        { "name": "mood", "type": "varchar", "enum_type": "mood" } ] }"#;

    fn labels(s: &Snapshot) -> Vec<String> {
        s.enums["mood"].clone()
    }

    #[test]
    fn an_enum_is_made_before_its_table_and_dropped_after_it() {
        let new = snapshot(MOODS);
        let changes = diff(&Snapshot::default(), &new, &Renames::default()).unwrap();
        assert!(matches!(
            &changes.operations[..],
            [Operation::CreateEnum { .. }, Operation::CreateTable { .. }]
        ));
        let back = diff(&new, &Snapshot::default(), &Renames::default()).unwrap();
        assert!(matches!(
            &back.operations[..],
            [Operation::DropTable { .. }, Operation::DropEnum { .. }]
        ));
    }

    #[test]
    fn new_labels_are_added_where_the_enum_lists_them() {
        let old = snapshot(MOODS);
        for wanted in [
            vec!["glum", "sad", "happy"],
            vec!["sad", "meh", "happy"],
            vec!["sad", "happy", "elated"],
            vec!["awful", "glum", "sad", "meh", "ok", "happy", "elated"],
        ] {
            let list = wanted
                .iter()
                .map(|l| format!("{l:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let new = snapshot(&MOODS.replace(r#""sad", "happy""#, &list));
            let changes = diff(&old, &new, &Renames::default()).unwrap();
            assert!(changes
                .operations
                .iter()
                .all(|op| matches!(op, Operation::AddEnumValue { .. })));
            let mut replayed = old.clone();
            for op in &changes.operations {
                replayed.apply(op).unwrap();
            }
            assert_eq!(labels(&replayed), wanted, "{:?}", changes.operations);
            assert!(diff(&replayed, &new, &Renames::default())
                .unwrap()
                .is_empty());
        }
    }

    #[test]
    fn removed_or_reordered_labels_are_a_warning_not_an_operation() {
        let old = snapshot(MOODS);
        for list in [r#""happy", "sad""#, r#""sad""#, r#""sad", "glad""#] {
            let new = snapshot(&MOODS.replace(r#""sad", "happy""#, list));
            let changes = diff(&old, &new, &Renames::default()).unwrap();
            assert!(changes.is_empty(), "{:?}", changes.operations);
            assert!(
                changes
                    .warnings
                    .iter()
                    .any(|w| w.contains("enum type mood")),
                "{:?}",
                changes.warnings
            );
        }
    }

    #[test]
    fn replay_refuses_a_column_of_an_unknown_enum_and_a_drop_of_a_used_one() {
        let text = MOODS.replace(r#""enum_type": "mood""#, r#""enum_type": "nope""#);
        let file = format!(r#"{{ "scope": "tenant", "operations": [{text}] }}"#);
        let migrations = Migrations::from_files(&[("0001_x", file.as_str())]).unwrap();
        let error = Snapshot::of_migrations(&migrations, MigrationScope::Tenant).unwrap_err();
        assert!(error.contains("no create_enum made"), "{error}");
        let mut s = snapshot(MOODS);
        let error = s
            .apply(&Operation::DropEnum {
                name: "mood".into(),
            })
            .unwrap_err();
        assert!(error.contains("still the type of days.mood"), "{error}");
    }
}
