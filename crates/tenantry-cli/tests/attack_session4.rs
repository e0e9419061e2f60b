//! Review session 4 (issue 11): makemigrations defects found by review, now regression tests.
#![allow(missing_docs)]
use std::path::Path;

use tenantry::Model;
use tenantry_cli::{makemigrations, read_migrations_dir, Made, MakemigrationsArgs};

#[derive(Model, Debug, Clone)]
#[model(table = "m4_items")]
pub struct Item {
    pub id: i64,
    #[model(max_length = 40)]
    pub name: String,
    #[model(max_length = 40)]
    pub colour: Option<String>,
}

/// `m4_items` without `colour`.
const TABLE: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "m4_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] } ] }"#;

fn run(dir: &Path, check: bool) -> Result<Made, String> {
    let args = MakemigrationsArgs {
        migrations: Some(dir.to_owned()),
        no_input: true,
        check,
        ..MakemigrationsArgs::default()
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    makemigrations(
        &[Item::META],
        dir,
        &args,
        &mut |_| false,
        &mut out,
        &mut err,
    )
    .map_err(|e| format!("{e:?}"))
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-attack4-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Generating after the one existing migration `id` is refused with a sentence that says
/// why (the new file would sort, and run, before it), and writes nothing.
fn generate_after(id: &str) {
    let dir = fresh_dir(id);
    std::fs::write(dir.join(format!("{id}.json")), TABLE).unwrap();
    let error = run(&dir, false).unwrap_err();
    assert!(error.contains("would sort before"), "{error}");
    let ids: Vec<String> = read_migrations_dir(&dir)
        .unwrap()
        .all()
        .iter()
        .map(|m| m.id().to_owned())
        .collect();
    assert_eq!(ids, [id], "nothing was written");
    std::fs::remove_dir_all(&dir).unwrap();
}

// Was a defect (makemigrations numbered new files `max leading digits + 1`, but migrations
// run in the string order of their ids): after a hand-written `initial`, the generated
// `0001_tenant_auto` sorted before it and ran first.
#[test]
fn generated_after_an_unnumbered_migration_is_refused() {
    generate_after("initial");
}

// Was a defect (same place): after `9999_x` the generated `10000_tenant_auto` sorted
// before it.
#[test]
fn generated_after_9999_is_refused() {
    generate_after("9999_items");
}

/// A directory numbered as makemigrations numbers it goes on in order.
#[test]
fn generated_after_a_numbered_migration_sorts_after_it() {
    let dir = fresh_dir("numbered");
    std::fs::write(dir.join("0001_items.json"), TABLE).unwrap();
    assert!(matches!(run(&dir, false), Ok(Made::Written(_))));
    let ids: Vec<String> = read_migrations_dir(&dir)
        .unwrap()
        .all()
        .iter()
        .map(|m| m.id().to_owned())
        .collect();
    // A tenant model is built in the shared schema too: a shared and a tenant file.
    assert_eq!(ids, ["0001_items", "0002_shared_auto", "0003_tenant_auto"]);
    assert!(matches!(run(&dir, true), Ok(Made::Nothing)));
    std::fs::remove_dir_all(&dir).unwrap();
}
