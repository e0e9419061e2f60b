//! `migrate plan` names each pending operation's hazard on the backend, with its
//! alternative, and whether the migration's `allow_rewrite` lets it run.
mod common;

use tenantry::{
    create_schema,
    migrate::{Migrations, Migrator},
    Backend, Registry,
};
use tenantry_cli::{migrate, MigrateAction, MigrateArgs};

const TABLES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "p_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] } ] }"#;

/// A type change, without `allow_rewrite`.
const ALTER: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "alter_column", "table": "p_items", "column": { "name": "name", "type": "text" } },
  { "op": "create_index", "table": "p_items", "name": "ix_p_items_name", "columns": ["name"] } ] }"#;

fn args(action: MigrateAction) -> MigrateArgs {
    MigrateArgs {
        action,
        dry_run: false,
        retry_failed: false,
        tenant: None,
        concurrency: None,
        lock_wait: None,
        drift: false,
    }
}

backend_test!(
    plan_prints_each_hazard_with_its_alternative,
    |t: common::TestDb| async move {
        let registry = Registry::new(t.registry.database().clone());
        let tenant = t.schema("pa");
        create_schema(&registry, &tenant, Some(&[]), false, false)
            .await
            .unwrap();
        let first = Migrations::from_files(&[("0001_tables", TABLES)]).unwrap();
        let first = Migrator::new(&registry, first);
        let done = migrate(&first, &args(MigrateAction::Run), &mut Vec::new())
            .await
            .unwrap();
        assert!(done);

        let set =
            Migrations::from_files(&[("0001_tables", TABLES), ("0002_alter", ALTER)]).unwrap();
        let mut out = Vec::new();
        let set = Migrator::new(&registry, set);
        let current = migrate(&set, &args(MigrateAction::Plan), &mut out)
            .await
            .unwrap();
        assert!(!current);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&format!("{tenant}: 0002_alter")), "{text}");
        let expected: &[&str] = match t.backend {
            Backend::Postgres => &[
                "hazard 0002_alter: rewrite on postgres: alter_column p_items.name (refused: \
                 the migration needs \"allow_rewrite\": true)",
                "hazard 0002_alter: long_lock on postgres: create_index ix_p_items_name on \
                 p_items",
                "instead: CREATE INDEX CONCURRENTLY",
            ],
            Backend::MySql => &[
                "hazard 0002_alter: copy on mysql: alter_column p_items.name (refused: the \
                 migration needs \"allow_rewrite\": true)",
                "ALGORITHM=COPY",
            ],
            Backend::Sqlite => &[
                "hazard 0002_alter: rebuild on sqlite: alter_column p_items.name: ",
                "fine for a small tenant file",
            ],
        };
        for line in expected {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(text.contains("    instead: expand/contract"), "{text}");
        registry.disconnect().await;
    }
);
