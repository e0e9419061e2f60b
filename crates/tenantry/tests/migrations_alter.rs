//! Every ALTER on every backend: `alter_column` (type, NULL / NOT NULL, default, unique on
//! and off), dropping an indexed column, adding and dropping foreign keys, applied to a fleet
//! of tenants holding different rows; every row survives with its values and the catalog
//! says what the operations say. SQLite does these by table rebuilds (children of a rebuilt
//! parent keep their rows; a foreign key check failure rolls the tenant back); MariaDB's
//! `ALGORITHM=INSTANT` guard refuses what would copy the table, with a typed error.
mod common;

use std::collections::BTreeSet;

use tenantry::{
    create_schema,
    migrate::{HazardKind, MigrationErrorKind, Migrations, Migrator, RunOptions},
    Backend, Model, Registry, SchemaName,
};

/// `a_owners`, in every shape the migrations give it (its columns are only id and name).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "a_owners")]
struct AOwner {
    #[model(primary_key)]
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

/// `a_items` as `0001_tables` builds it.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "a_items")]
struct AItemBefore {
    #[model(primary_key)]
    id: i64,
    #[model(max_length = 30)]
    title: String,
    #[model(max_length = 20)]
    note: String,
    qty: i32,
    #[model(max_length = 10)]
    code: Option<String>,
    owner_id: Option<i64>,
    #[model(max_length = 10)]
    tag: Option<String>,
}

/// `a_items` after `0002_alter` and `0003_back`.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "a_items")]
struct AItem {
    #[model(primary_key)]
    id: i64,
    title: String,
    #[model(max_length = 20)]
    note: String,
    qty: i32,
    #[model(max_length = 10)]
    code: Option<String>,
    owner_id: Option<i64>,
}

const TABLES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "a_owners", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] },
  { "op": "create_table", "table": "a_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "title", "type": "varchar", "max_length": 30 },
    { "name": "note", "type": "varchar", "max_length": 20 },
    { "name": "qty", "type": "integer", "default": 1 },
    { "name": "code", "type": "varchar", "max_length": 10, "null": true },
    { "name": "owner_id", "type": "big_integer", "null": true },
    { "name": "tag", "type": "varchar", "max_length": 10, "null": true } ],
    "foreign_keys": [ { "name": "fk_a_items_owner", "column": "owner_id",
      "references": "a_owners", "references_column": "id", "on_delete": "cascade" } ] },
  { "op": "create_index", "table": "a_items", "name": "ix_a_items_tag", "columns": ["tag"] } ] }"#;

/// Every kind of change at once (the parent first, while its child's key cascades).
const ALTER: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "alter_column", "table": "a_owners",
    "column": { "name": "name", "type": "varchar", "max_length": 60 } },
  { "op": "alter_column", "table": "a_items", "column": { "name": "title", "type": "text" } },
  { "op": "alter_column", "table": "a_items",
    "column": { "name": "note", "type": "varchar", "max_length": 20, "null": true } },
  { "op": "alter_column", "table": "a_items",
    "column": { "name": "qty", "type": "integer", "default": 5 } },
  { "op": "alter_column", "table": "a_items",
    "column": { "name": "code", "type": "varchar", "max_length": 10, "null": true,
                "unique": true } },
  { "op": "drop_column", "table": "a_items", "column": "tag" },
  { "op": "drop_foreign_key", "table": "a_items", "name": "fk_a_items_owner" },
  { "op": "add_foreign_key", "table": "a_items", "foreign_key": { "name": "fk_a_items_owner_sn",
    "column": "owner_id", "references": "a_owners", "references_column": "id",
    "on_delete": "set_null" } } ] }"#;

/// NOT NULL again (with a default), and unique off.
const BACK: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "alter_column", "table": "a_items",
    "column": { "name": "note", "type": "varchar", "max_length": 20, "default": "-" } },
  { "op": "alter_column", "table": "a_items",
    "column": { "name": "code", "type": "varchar", "max_length": 10, "null": true } } ] }"#;

fn options() -> RunOptions {
    RunOptions {
        concurrency: 3,
        ..RunOptions::default()
    }
}

/// `n` empty tenant schemas (their tables come from the migrations).
async fn fleet(t: &common::TestDb, registry: &Registry, n: usize) -> Vec<SchemaName> {
    let mut tenants = Vec::new();
    for i in 0..n {
        let schema = t.schema(&format!("al{i}"));
        create_schema(registry, &schema, Some(&[]), false, false)
            .await
            .unwrap();
        tenants.push(schema);
    }
    tenants
}

/// One column as the catalog reports it, normalized across backends.
#[derive(Debug, Clone, PartialEq)]
struct Col {
    name: String,
    /// `varchar`, `text`, `integer`, `bigint`.
    ty: String,
    nullable: bool,
    /// The default's literal, unquoted (`None`: no default, or NULL).
    default: Option<String>,
}

/// A table as the catalog reports it.
#[derive(Debug, Default)]
struct Shape {
    columns: Vec<Col>,
    /// Columns with a single-column unique index or constraint (not the primary key).
    unique: BTreeSet<String>,
    /// Names of the non-unique, non-key indexes the migrations made (`ix_…`).
    indexes: BTreeSet<String>,
    /// Foreign keys as (column, referenced table, on delete: `CASCADE`, `SET NULL`, …).
    foreign_keys: BTreeSet<(String, String, String)>,
}

impl Shape {
    fn column(&self, name: &str) -> &Col {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no column {name} in {self:?}"))
    }
}

fn norm_type(ty: &str) -> String {
    let ty = ty.to_lowercase();
    if ty.contains("char") {
        "varchar".into()
    } else if ty.contains("text") {
        "text".into()
    } else if ty.starts_with("bigint") {
        "bigint".into()
    } else if ty.starts_with("int") {
        "integer".into()
    } else {
        ty
    }
}

fn norm_default(default: Option<String>) -> Option<String> {
    let text = default?;
    let text = text
        .split("::")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if text.eq_ignore_ascii_case("null") {
        return None;
    }
    Some(text.trim_matches('\'').to_owned())
}

fn norm_rule(rule: &str) -> String {
    match rule {
        "c" => "CASCADE".into(),
        "n" => "SET NULL".into(),
        "r" => "RESTRICT".into(),
        "a" => "NO ACTION".into(),
        other => other.to_uppercase(),
    }
}

/// Reads `table` of `tenant` from the catalog.
async fn shape(registry: &Registry, tenant: &SchemaName, table: &str) -> Shape {
    let db = registry.database();
    let mut out = Shape::default();
    match db.backend() {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                "SELECT column_name::text, data_type::text, is_nullable::text, \
                 column_default::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            )
            .bind(tenant.as_str())
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            out.columns = rows
                .into_iter()
                .map(|(name, ty, nullable, default)| Col {
                    name,
                    ty: norm_type(&ty),
                    nullable: nullable == "YES",
                    default: norm_default(default),
                })
                .collect();
            let rows: Vec<(String, bool, i32, String)> = sqlx::query_as(
                "SELECT ic.relname::text, i.indisunique, i.indnatts::int4, a.attname::text \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                 JOIN pg_class ic ON ic.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
                 WHERE n.nspname = $1 AND c.relname = $2 AND NOT i.indisprimary",
            )
            .bind(tenant.as_str())
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            for (name, unique, columns, column) in rows {
                if unique && columns == 1 {
                    out.unique.insert(column);
                } else if !unique {
                    out.indexes.insert(name);
                }
            }
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT a.attname::text, p.relname::text, con.confdeltype::text \
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_class p ON p.oid = con.confrelid \
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] \
                 WHERE con.contype = 'f' AND n.nspname = $1 AND c.relname = $2",
            )
            .bind(tenant.as_str())
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            out.foreign_keys = rows
                .into_iter()
                .map(|(c, p, r)| (c, p, norm_rule(&r)))
                .collect();
            conn.release();
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let server = db.server_schema_name(tenant).unwrap();
            let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), \
                 CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_DEFAULT AS CHAR) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
            )
            .bind(&server)
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            out.columns = rows
                .into_iter()
                .map(|(name, ty, nullable, default)| Col {
                    name,
                    ty: norm_type(&ty),
                    nullable: nullable == "YES",
                    default: norm_default(default),
                })
                .collect();
            let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
                "SELECT CAST(s.INDEX_NAME AS CHAR), CAST(s.NON_UNIQUE AS SIGNED), \
                 CAST(s.COLUMN_NAME AS CHAR), \
                 CAST((SELECT COUNT(*) FROM information_schema.STATISTICS x \
                   WHERE x.TABLE_SCHEMA = s.TABLE_SCHEMA AND x.TABLE_NAME = s.TABLE_NAME \
                   AND x.INDEX_NAME = s.INDEX_NAME) AS SIGNED) \
                 FROM information_schema.STATISTICS s \
                 WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.INDEX_NAME <> 'PRIMARY'",
            )
            .bind(&server)
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            for (name, non_unique, column, columns) in rows {
                if non_unique == 0 && columns == 1 {
                    out.unique.insert(column);
                } else if non_unique == 1 && name.starts_with("ix_") {
                    out.indexes.insert(name);
                }
            }
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT CAST(k.COLUMN_NAME AS CHAR), CAST(k.REFERENCED_TABLE_NAME AS CHAR), \
                 CAST(r.DELETE_RULE AS CHAR) \
                 FROM information_schema.KEY_COLUMN_USAGE k \
                 JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                   ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA \
                   AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                 WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? \
                   AND k.REFERENCED_TABLE_NAME IS NOT NULL",
            )
            .bind(&server)
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            out.foreign_keys = rows
                .into_iter()
                .map(|(c, p, r)| (c, p, norm_rule(&r)))
                .collect();
            conn.release();
        }
        Backend::Sqlite => {
            let mut conn = db.acquire_sqlite(Some(tenant)).await.unwrap();
            let rows: Vec<(String, String, bool, Option<String>)> = sqlx::query_as(
                "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info(?) ORDER BY cid",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            out.columns = rows
                .into_iter()
                .map(|(name, ty, not_null, default)| Col {
                    name,
                    ty: norm_type(&ty),
                    nullable: !not_null,
                    default: norm_default(default),
                })
                .collect();
            let rows: Vec<(String, bool, String, String, i64)> = sqlx::query_as(
                "SELECT il.name, il.\"unique\", il.origin, ii.name, \
                 (SELECT COUNT(*) FROM pragma_index_info(il.name)) \
                 FROM pragma_index_list(?) il JOIN pragma_index_info(il.name) ii",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            for (name, unique, origin, column, columns) in rows {
                if origin == "pk" {
                    continue;
                }
                if unique && columns == 1 {
                    out.unique.insert(column);
                } else if !unique {
                    out.indexes.insert(name);
                }
            }
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT \"from\", \"table\", on_delete FROM pragma_foreign_key_list(?)",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            out.foreign_keys = rows
                .into_iter()
                .map(|(c, p, r)| (c, p, norm_rule(&r)))
                .collect();
            // No rebuild leaves its new table behind.
            let left: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM sqlite_master WHERE name LIKE '%tenantry_new%'")
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            assert!(left.is_empty(), "{left:?}");
            conn.release();
        }
    }
    out
}

/// Tenant `i`'s owners and items: different in every tenant (count and values).
async fn fill(registry: &Registry, tenant: &SchemaName, i: usize) -> Vec<AItemBefore> {
    let mut owners = Vec::new();
    for k in 0..2 {
        let owner = AOwner::query(registry)
            .using(tenant)
            .create(AOwner {
                id: 0,
                name: format!("owner-{i}-{k}"),
            })
            .await
            .unwrap();
        owners.push(owner.id);
    }
    let mut items = Vec::new();
    for k in 0..(3 + i) {
        let item = AItemBefore::query(registry)
            .using(tenant)
            .create(AItemBefore {
                id: 0,
                title: format!("title-{i}-{k}"),
                note: format!("note-{i}-{k}"),
                qty: (10 * i + k) as i32,
                code: (k % 2 == 0).then(|| format!("c{i}-{k}")),
                owner_id: Some(owners[k % 2]),
                tag: Some(format!("g{k}")),
            })
            .await
            .unwrap();
        items.push(item.into_inner());
    }
    items
}

fn sorted<M: Model, K: Ord>(rows: Vec<tenantry::Instance<M>>, key: impl Fn(&M) -> K) -> Vec<M> {
    let mut rows: Vec<M> = rows.into_iter().map(|r| r.into_inner()).collect();
    rows.sort_by_key(|r| key(r));
    rows
}

backend_test!(
    every_alter_keeps_every_row_on_every_backend,
    |t: common::TestDb| async move {
        let before = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItemBefore>();
        let tenants = fleet(&t, &before, 4).await;
        let first = Migrations::from_files(&[("0001_tables", TABLES)]).unwrap();
        let report = Migrator::new(&before, first).run(options()).await.unwrap();
        assert!(report.is_complete(), "{report:?}");
        let mut written = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            written.push(fill(&before, tenant, i).await);
        }
        // Tenant 0's highest id is used and deleted: no rebuild may hand it out again.
        let used = written[0].pop().unwrap().id;
        AItemBefore::query(&before)
            .using(&tenants[0])
            .filter(AItemBefore::id().eq(used))
            .delete()
            .await
            .unwrap();
        let owners_before = {
            let mut all = Vec::new();
            for tenant in &tenants {
                all.push(sorted(
                    AOwner::query(&before).using(tenant).all().await.unwrap(),
                    |o| o.id,
                ));
            }
            all
        };

        let set = Migrations::from_files(&[
            ("0001_tables", TABLES),
            ("0002_alter", ALTER),
            ("0003_back", BACK),
        ])
        .unwrap();
        // The plan names each hazard of this backend, with its alternative.
        let migrator = Migrator::new(&before, set.clone());
        let hazards = migrator.hazards(set.get("0002_alter").unwrap());
        let kinds: Vec<HazardKind> = hazards.iter().map(|h| h.kind).collect();
        match t.backend {
            Backend::Postgres => {
                assert!(kinds.contains(&HazardKind::Rewrite), "{hazards:?}");
                assert!(kinds.contains(&HazardKind::LongLock), "{hazards:?}");
                // The default-only change of qty is no rewrite on PostgreSQL.
                assert!(
                    !hazards.iter().any(|h| h.operation.ends_with(".qty")),
                    "{hazards:?}"
                );
            }
            Backend::MySql => assert!(kinds.contains(&HazardKind::Copy), "{hazards:?}"),
            Backend::Sqlite => {
                assert!(kinds.contains(&HazardKind::Rebuild), "{hazards:?}");
                assert!(hazards.iter().all(|h| h.kind == HazardKind::Rebuild));
                let sql = migrator
                    .plan_sql(set.get("0002_alter").unwrap(), Some(&tenants[0]))
                    .unwrap();
                assert!(
                    sql.iter().any(|s| s.contains("\"a_items__tenantry_new\"")),
                    "{sql:?}"
                );
                assert!(sql.iter().any(|s| s == "PRAGMA foreign_key_check"));
            }
        }
        assert!(hazards.iter().all(|h| !h.alternative.is_empty()));

        // Readers and writers of every tenant go on while the fleet is migrated, 3 tenants
        // at a time: every write acknowledged is kept, in its own tenant.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = tenants
            .iter()
            .map(|tenant| {
                let (registry, stop, tenant) = (before.clone(), stop.clone(), tenant.clone());
                tokio::spawn(async move {
                    let (mut n, mut acknowledged) = (0u32, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 5 {
                        let _ = AOwner::query(&registry).using(&tenant).count().await;
                        let name = format!("w-{tenant}-{n}");
                        let written = AOwner::query(&registry)
                            .using(&tenant)
                            .create(AOwner { id: 0, name })
                            .await;
                        if let Ok(owner) = written {
                            acknowledged.push(owner.into_inner());
                        }
                        n += 1;
                        tokio::task::yield_now().await;
                    }
                    acknowledged
                })
            })
            .collect();
        let report = Migrator::new(&before, set.clone())
            .run(options())
            .await
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acknowledged = Vec::new();
        for client in clients {
            acknowledged.push(client.await.unwrap());
        }
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.tenants.len(), tenants.len());
        for outcome in &report.tenants {
            assert_eq!(outcome.applied, ["0002_alter", "0003_back"], "{outcome:?}");
        }
        // Each tenant, altered with its rows, has the tables a fresh replay builds.
        let drift = Migrator::new(&before, set).drift().await.unwrap();
        assert!(drift.is_empty(), "{drift:?}");

        let after = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItem>();
        for (i, tenant) in tenants.iter().enumerate() {
            // Every row survived with its values, in its own tenant only.
            let items = sorted(
                AItem::query(&after).using(tenant).all().await.unwrap(),
                |r| r.id,
            );
            let expected: Vec<AItem> = written[i]
                .iter()
                .map(|r| AItem {
                    id: r.id,
                    title: r.title.clone(),
                    note: r.note.clone(),
                    qty: r.qty,
                    code: r.code.clone(),
                    owner_id: r.owner_id,
                })
                .collect();
            assert_eq!(items, expected, "{tenant}");
            let owners = sorted(
                AOwner::query(&after).using(tenant).all().await.unwrap(),
                |o| o.id,
            );
            let mut expected_owners = owners_before[i].clone();
            expected_owners.extend(acknowledged[i].iter().cloned());
            expected_owners.sort_by_key(|o| o.id);
            assert_eq!(owners, expected_owners, "{tenant}");
            assert!(!acknowledged[i].is_empty());

            // The catalog says what the operations say.
            let items = shape(&after, tenant, "a_items").await;
            let names: Vec<&str> = items.columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                ["id", "title", "note", "qty", "code", "owner_id"],
                "{tenant}"
            );
            assert_eq!(items.column("title").ty, "text", "{items:?}");
            assert!(!items.column("title").nullable);
            let note = items.column("note");
            assert!(!note.nullable, "{note:?}");
            assert_eq!(note.default.as_deref(), Some("-"), "{note:?}");
            assert_eq!(items.column("qty").default.as_deref(), Some("5"));
            assert!(items.column("code").nullable);
            assert!(items.unique.is_empty(), "unique off: {items:?}");
            assert!(
                items.indexes.is_empty(),
                "the tag index went with tag: {items:?}"
            );
            assert_eq!(
                items.foreign_keys,
                BTreeSet::from([("owner_id".into(), "a_owners".into(), "SET NULL".into())]),
                "{tenant}"
            );
            let owners = shape(&after, tenant, "a_owners").await;
            assert_eq!(owners.column("name").ty, "varchar");

            // The new key is enforced with its new rule: deleting an owner keeps its items.
            let gone = owners_before[i][0].id;
            AOwner::query(&after)
                .using(tenant)
                .filter(AOwner::id().eq(gone))
                .delete()
                .await
                .unwrap();
            let items = AItem::query(&after).using(tenant).all().await.unwrap();
            assert_eq!(items.len(), written[i].len(), "{tenant}");
            assert!(items.iter().all(|r| r.owner_id != Some(gone)));
        }
        let next = AItem::query(&after)
            .using(&tenants[0])
            .create(AItem {
                id: 0,
                title: "new".into(),
                note: "n".into(),
                qty: 0,
                code: None,
                owner_id: None,
            })
            .await
            .unwrap();
        assert!(
            next.id > used,
            "id {} reused (highest used: {used})",
            next.id
        );
        before.disconnect().await;
        after.disconnect().await;
    }
);

/// `0002_unique` makes `code` unique (it was not): both directions of unique in isolation.
const UNIQUE_ON: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "alter_column", "table": "a_items",
    "column": { "name": "code", "type": "varchar", "max_length": 10, "null": true,
                "unique": true } } ] }"#;

backend_test!(
    unique_on_is_enforced_and_a_duplicate_fails_only_its_tenant,
    |t: common::TestDb| async move {
        let before = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItemBefore>();
        let tenants = fleet(&t, &before, 2).await;
        let first = Migrations::from_files(&[("0001_tables", TABLES)]).unwrap();
        Migrator::new(&before, first).run(options()).await.unwrap();
        fill(&before, &tenants[0], 0).await;
        let dup = fill(&before, &tenants[1], 1).await;
        // Tenant 1 holds a duplicate code: making it unique fails there, and only there.
        AItemBefore::query(&before)
            .using(&tenants[1])
            .create(AItemBefore {
                id: 0,
                code: dup[0].code.clone(),
                ..dup[0].clone()
            })
            .await
            .unwrap();
        let set =
            Migrations::from_files(&[("0001_tables", TABLES), ("0002_unique", UNIQUE_ON)]).unwrap();
        let report = Migrator::new(&before, set).run(options()).await.unwrap();
        let outcome = |s: &SchemaName| report.tenants.iter().find(|o| o.tenant == *s).unwrap();
        assert!(outcome(&tenants[0]).error.is_none(), "{report:?}");
        assert!(outcome(&tenants[1]).error.is_some(), "{report:?}");
        let a = shape(&before, &tenants[0], "a_items").await;
        assert_eq!(a.unique, BTreeSet::from(["code".to_owned()]));
        let b = shape(&before, &tenants[1], "a_items").await;
        assert!(b.unique.is_empty(), "{b:?}");
        assert_eq!(
            AItemBefore::query(&before)
                .using(&tenants[1])
                .count()
                .await
                .unwrap() as usize,
            dup.len() + 1
        );
        // The unique code is enforced in tenant 0.
        let taken = AItemBefore::query(&before)
            .using(&tenants[0])
            .create(AItemBefore {
                id: 0,
                title: "again".into(),
                note: "n".into(),
                qty: 0,
                code: Some("c0-0".into()),
                owner_id: None,
                tag: None,
            })
            .await;
        assert!(
            matches!(taken, Err(tenantry::Error::UniqueViolation { .. })),
            "{taken:?}"
        );
        before.disconnect().await;
    }
);

/// `a_items` without its key, then the key added.
const NO_KEY: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "a_owners", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] },
  { "op": "create_table", "table": "a_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "title", "type": "varchar", "max_length": 30 },
    { "name": "note", "type": "varchar", "max_length": 20 },
    { "name": "qty", "type": "integer", "default": 1 },
    { "name": "code", "type": "varchar", "max_length": 10, "null": true },
    { "name": "owner_id", "type": "big_integer", "null": true },
    { "name": "tag", "type": "varchar", "max_length": 10, "null": true } ] } ] }"#;
const ADD_KEY: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_foreign_key", "table": "a_items", "foreign_key": { "name": "fk_a_items_owner",
    "column": "owner_id", "references": "a_owners", "references_column": "id",
    "on_delete": "cascade" } } ] }"#;

backend_test!(
    a_foreign_key_violation_fails_its_tenant_and_leaves_it_unchanged,
    |t: common::TestDb| async move {
        let before = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItemBefore>();
        let tenants = fleet(&t, &before, 3).await;
        let first = Migrations::from_files(&[("0001_tables", NO_KEY)]).unwrap();
        Migrator::new(&before, first).run(options()).await.unwrap();
        let mut written = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            written.push(fill(&before, tenant, i).await);
        }
        // Tenant 1 holds an item whose owner does not exist.
        let bad = &tenants[1];
        AItemBefore::query(&before)
            .using(bad)
            .create(AItemBefore {
                id: 0,
                title: "orphan".into(),
                note: "n".into(),
                qty: 0,
                code: None,
                owner_id: Some(999_999),
                tag: None,
            })
            .await
            .unwrap();
        let set =
            Migrations::from_files(&[("0001_tables", NO_KEY), ("0002_key", ADD_KEY)]).unwrap();
        let report = Migrator::new(&before, set).run(options()).await.unwrap();
        for (i, tenant) in tenants.iter().enumerate() {
            let outcome = report.tenants.iter().find(|o| o.tenant == *tenant).unwrap();
            let items = shape(&before, tenant, "a_items").await;
            let count = AItemBefore::query(&before)
                .using(tenant)
                .count()
                .await
                .unwrap() as usize;
            if tenant == bad {
                let error = outcome.error.as_ref().expect("the orphan fails its tenant");
                assert_eq!(error.migration.as_deref(), Some("0002_key"));
                if t.backend == Backend::Sqlite {
                    assert_eq!(
                        error.kind,
                        MigrationErrorKind::ForeignKeyViolation {
                            table: "a_items".into(),
                            references: "a_owners".into(),
                            rows: 1
                        },
                        "{error}"
                    );
                }
                // Unchanged: no key, every row (the orphan too).
                assert!(items.foreign_keys.is_empty(), "{items:?}");
                assert_eq!(count, written[i].len() + 1);
            } else {
                assert!(outcome.error.is_none(), "{outcome:?}");
                assert_eq!(
                    items.foreign_keys,
                    BTreeSet::from([("owner_id".into(), "a_owners".into(), "CASCADE".into())])
                );
                assert_eq!(count, written[i].len());
            }
            // The indexed column and the rest of the table are as they were.
            assert_eq!(items.indexes, BTreeSet::new());
            assert_eq!(items.columns.len(), 7);
        }
        before.disconnect().await;
    }
);

/// Only the parent is altered (a rebuild on SQLite) while its children's key cascades.
const PARENT: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "alter_column", "table": "a_owners",
    "column": { "name": "name", "type": "text" } } ] }"#;

backend_test!(
    children_keep_their_rows_when_their_parent_is_rebuilt,
    |t: common::TestDb| async move {
        let before = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItemBefore>();
        let tenants = fleet(&t, &before, 2).await;
        let first = Migrations::from_files(&[("0001_tables", TABLES)]).unwrap();
        Migrator::new(&before, first).run(options()).await.unwrap();
        let mut written = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            written.push(fill(&before, tenant, i).await);
        }
        let set =
            Migrations::from_files(&[("0001_tables", TABLES), ("0002_parent", PARENT)]).unwrap();
        let report = Migrator::new(&before, set).run(options()).await.unwrap();
        assert!(report.is_complete(), "{report:?}");
        for (i, tenant) in tenants.iter().enumerate() {
            let items = sorted(
                AItemBefore::query(&before)
                    .using(tenant)
                    .all()
                    .await
                    .unwrap(),
                |r| r.id,
            );
            assert_eq!(items, written[i], "{tenant}: a child row was lost");
            let owners = shape(&before, tenant, "a_owners").await;
            assert_eq!(owners.column("name").ty, "text");
            // The child's key still points to the rebuilt parent and still cascades.
            let items_shape = shape(&before, tenant, "a_items").await;
            assert_eq!(
                items_shape.foreign_keys,
                BTreeSet::from([("owner_id".into(), "a_owners".into(), "CASCADE".into())])
            );
            let owner = written[i][0].owner_id.unwrap();
            AOwner::query(&before)
                .using(tenant)
                .filter(AOwner::id().eq(owner))
                .delete()
                .await
                .unwrap();
            let left = AItemBefore::query(&before)
                .using(tenant)
                .all()
                .await
                .unwrap();
            assert!(left.iter().all(|r| r.owner_id != Some(owner)));
            assert!(left.len() < written[i].len());
        }
        before.disconnect().await;
    }
);

const ADD_DROP: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "a_items",
    "column": { "name": "extra", "type": "integer", "default": 7 } },
  { "op": "rename_column", "table": "a_items", "from": "note", "to": "remark" },
  { "op": "drop_column", "table": "a_items", "column": "title" } ] }"#;

/// A column with an index cannot be added instantly on MariaDB.
const ADD_UNIQUE: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "a_items",
    "column": { "name": "serial", "type": "integer", "null": true, "unique": true } } ] }"#;

backend_test!(
    instant_changes_apply_and_a_copy_is_refused_by_name,
    |t: common::TestDb| async move {
        let before = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItemBefore>();
        let tenants = fleet(&t, &before, 2).await;
        let first = Migrations::from_files(&[("0001_tables", TABLES)]).unwrap();
        Migrator::new(&before, first).run(options()).await.unwrap();
        let mut written = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            written.push(fill(&before, tenant, i).await);
        }
        let set = Migrations::from_files(&[
            ("0001_tables", TABLES),
            ("0002_add_drop", ADD_DROP),
            ("0003_unique", ADD_UNIQUE),
        ])
        .unwrap();
        let migrator = Migrator::new(&before, set.clone());
        let sql = migrator
            .plan_sql(set.get("0002_add_drop").unwrap(), Some(&tenants[0]))
            .unwrap();
        if t.backend == Backend::MySql {
            assert!(
                sql.iter().all(|s| s.ends_with(", ALGORITHM=INSTANT")),
                "{sql:?}"
            );
            let hazards = migrator.hazards(set.get("0003_unique").unwrap());
            assert_eq!(hazards.len(), 1, "{hazards:?}");
            assert_eq!(hazards[0].kind, HazardKind::Refused);
        } else {
            assert!(sql.iter().all(|s| !s.contains("ALGORITHM")), "{sql:?}");
        }
        let report = migrator.run(options()).await.unwrap();
        for (i, tenant) in tenants.iter().enumerate() {
            let outcome = report.tenants.iter().find(|o| o.tenant == *tenant).unwrap();
            let items = shape(&before, tenant, "a_items").await;
            let names: Vec<&str> = items.columns.iter().map(|c| c.name.as_str()).collect();
            if t.backend == Backend::MySql {
                // The instant steps ran on a table with rows; the unique column was refused
                // with a typed error naming the operation, before any copy.
                assert_eq!(outcome.applied, ["0002_add_drop"], "{outcome:?}");
                let error = outcome.error.as_ref().expect("refused");
                assert_eq!(error.migration.as_deref(), Some("0003_unique"));
                match &error.kind {
                    MigrationErrorKind::NotInstant { operation, .. } => {
                        assert_eq!(operation, "add_column a_items.serial")
                    }
                    other => panic!("expected NotInstant, got {other:?}"),
                }
                let text = error.to_string();
                assert!(text.contains("expand/contract"), "{text}");
                assert!(text.contains("add_column a_items.serial"), "{text}");
                assert!(!names.contains(&"serial"), "{names:?}");
            } else {
                assert!(outcome.error.is_none(), "{outcome:?}");
                assert!(names.contains(&"serial"), "{names:?}");
                assert_eq!(items.unique, BTreeSet::from(["serial".to_owned()]));
            }
            assert!(names.contains(&"extra") && names.contains(&"remark"));
            assert!(!names.contains(&"title") && !names.contains(&"note"));
            assert_eq!(items.column("extra").default.as_deref(), Some("7"));
            assert_eq!(
                AItemBefore::query(&before)
                    .using(tenant)
                    .count()
                    .await
                    .unwrap() as usize,
                written[i].len()
            );
        }
        if t.backend == Backend::MySql {
            // Nothing of the refused migration ran, so its author may split it: the unique
            // column added plain (instant), then its index.
            let fixed = Migrations::from_files(&[
                ("0001_tables", TABLES),
                ("0002_add_drop", ADD_DROP),
                ("0003_unique", SPLIT),
            ])
            .unwrap();
            let report = Migrator::new(&before, fixed)
                .run(RunOptions {
                    retry_failed: true,
                    ..options()
                })
                .await
                .unwrap();
            assert!(report.is_complete(), "{report:?}");
            for tenant in &tenants {
                let items = shape(&before, tenant, "a_items").await;
                assert_eq!(items.unique, BTreeSet::from(["serial".to_owned()]));
            }
        }
        before.disconnect().await;
    }
);

/// `ADD_UNIQUE` done expand-style: the column, then its unique index.
const SPLIT: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "a_items",
    "column": { "name": "serial", "type": "integer", "null": true } },
  { "op": "create_index", "table": "a_items", "name": "ux_a_items_serial",
    "columns": ["serial"], "unique": true } ] }"#;

/// Adds a column behind the migrations' back, as an operator's hand would.
async fn add_column_by_hand(registry: &Registry, tenant: &SchemaName) {
    let db = registry.database();
    match db.backend() {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            let sql = format!("ALTER TABLE \"{tenant}\".a_owners ADD COLUMN by_hand integer");
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
            conn.release();
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let server = db.server_schema_name(tenant).unwrap();
            let sql = format!("ALTER TABLE `{server}`.a_owners ADD COLUMN by_hand int");
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
            conn.release();
        }
        Backend::Sqlite => {
            let mut conn = db.acquire_sqlite(Some(tenant)).await.unwrap();
            sqlx::query("ALTER TABLE a_owners ADD COLUMN by_hand integer")
                .execute(&mut *conn)
                .await
                .unwrap();
            conn.release();
        }
    }
}

backend_test!(
    a_rebuild_never_drops_a_column_the_migrations_do_not_know,
    |t: common::TestDb| async move {
        let before = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItemBefore>();
        let tenants = fleet(&t, &before, 2).await;
        let first = Migrations::from_files(&[("0001_tables", TABLES)]).unwrap();
        Migrator::new(&before, first).run(options()).await.unwrap();
        for (i, tenant) in tenants.iter().enumerate() {
            fill(&before, tenant, i).await;
        }
        let drifted = &tenants[1];
        add_column_by_hand(&before, drifted).await;
        let set =
            Migrations::from_files(&[("0001_tables", TABLES), ("0002_parent", PARENT)]).unwrap();
        let report = Migrator::new(&before, set).run(options()).await.unwrap();
        let outcome = |s: &SchemaName| report.tenants.iter().find(|o| o.tenant == *s).unwrap();
        assert!(outcome(&tenants[0]).error.is_none(), "{report:?}");
        let owners = shape(&before, drifted, "a_owners").await;
        let names: Vec<&str> = owners.columns.iter().map(|c| c.name.as_str()).collect();
        // The hand-made column is still there on every backend.
        assert_eq!(names, ["id", "name", "by_hand"]);
        if t.backend == Backend::Sqlite {
            // SQLite would rebuild from the recorded definition: refused, nothing changed.
            let error = outcome(drifted).error.as_ref().expect("refused");
            assert!(
                matches!(error.kind, MigrationErrorKind::Unsupported(_)),
                "{error}"
            );
            assert!(error.to_string().contains("by_hand"), "{error}");
            assert_eq!(owners.column("name").ty, "varchar");
        } else {
            // In place elsewhere: the other column is untouched.
            assert!(outcome(drifted).error.is_none(), "{report:?}");
            assert_eq!(owners.column("name").ty, "text");
        }
        assert_eq!(
            AOwner::query(&before).using(drifted).count().await.unwrap(),
            2
        );
        before.disconnect().await;
    }
);

const RENAME: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "rename_table", "from": "a_items", "to": "a_things" },
  { "op": "rename_column", "table": "a_things", "from": "code", "to": "sku" } ] }"#;
const UNIQUE_OFF: &str = r#"{ "scope": "tenant", "allow_rewrite": true, "operations": [
  { "op": "alter_column", "table": "a_things",
    "column": { "name": "sku", "type": "varchar", "max_length": 10, "null": true } } ] }"#;

backend_test!(
    unique_off_after_renames_drops_the_constraint,
    |t: common::TestDb| async move {
        let before = Registry::new(t.registry.database().clone())
            .register::<AOwner>()
            .register::<AItemBefore>();
        let tenants = fleet(&t, &before, 2).await;
        let first =
            Migrations::from_files(&[("0001_tables", TABLES), ("0002_unique", UNIQUE_ON)]).unwrap();
        Migrator::new(&before, first).run(options()).await.unwrap();
        for (i, tenant) in tenants.iter().enumerate() {
            fill(&before, tenant, i).await;
        }
        let set = Migrations::from_files(&[
            ("0001_tables", TABLES),
            ("0002_unique", UNIQUE_ON),
            ("0003_rename", RENAME),
            ("0004_unique_off", UNIQUE_OFF),
        ])
        .unwrap();
        let report = Migrator::new(&before, set.clone())
            .run(options())
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
        for tenant in &tenants {
            let things = shape(&before, tenant, "a_things").await;
            assert!(things.unique.is_empty(), "{things:?}");
            assert!(things.columns.iter().any(|c| c.name == "sku"));
        }
        let drift = Migrator::new(&before, set).drift().await.unwrap();
        assert!(drift.is_empty(), "{drift:?}");
        before.disconnect().await;
    }
);
