//! Live-schema introspection and drift, on every backend: a tenant built from the models and
//! one built by replaying migrations equivalent to them introspect identical; a change made
//! by hand is reported precisely; tenants introspect at once without touching their data;
//! `Migrator::drift` reports the altered tenant and no other, and leaves no scratch schema.
mod common;

use common::{
    models::{self, Product, User},
    TestDb,
};
use tenantry::{
    create_schema,
    migrate::{
        diff, introspect, LiveSchema, Migration, MigrationScope, Migrations, Migrator, Renames,
        RunOptions, Snapshot, DRIFT_SCHEMA_PREFIX,
    },
    Backend, Decimal, ForeignKey, Model, Registry, SchemaName,
};

/// Defaults of three kinds (a decimal, a string, an integer) and a cascading key.
#[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
#[model(table = "i_prices")]
struct IPrice {
    id: i64,
    #[model(max_digits = 12, decimal_places = 2, default = Decimal::new(0, 2))]
    amount: Decimal,
    #[model(max_length = 30, default = "eur")]
    currency: String,
    #[model(default = 7)]
    quantity: i32,
    #[model(on_delete = "cascade", index)]
    product: ForeignKey<Product>,
}

/// The test models' tenant tables, as a hand-written migration would build them (users'
/// `is_active`, its index and `i_prices` come in a second migration, as a later change).
const TABLES: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "users", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 255 },
    { "name": "email", "type": "varchar", "max_length": 255 } ] },
  { "op": "create_table", "table": "products", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 255 },
    { "name": "user_id", "type": "big_integer", "null": true } ],
    "foreign_keys": [ { "name": "fk_products_user", "column": "user_id", "references": "users",
      "references_column": "id", "on_delete": "set_null" } ] },
  { "op": "create_table", "table": "every_type", "columns": [
    { "name": "key", "type": "integer", "primary_key": true, "auto_increment": true },
    { "name": "body", "type": "text" },
    { "name": "code", "type": "varchar", "max_length": 20, "unique": true },
    { "name": "flag", "type": "boolean" },
    { "name": "ratio", "type": "double" },
    { "name": "at", "type": "timestamp" },
    { "name": "day", "type": "date" },
    { "name": "token", "type": "uuid" },
    { "name": "doc", "type": "json" },
    { "name": "maybe", "type": "varchar", "max_length": 255, "null": true },
    { "name": "maybe_number", "type": "big_integer", "null": true } ] },
  { "op": "create_table", "table": "tags", "columns": [
    { "name": "token", "type": "uuid", "primary_key": true },
    { "name": "label", "type": "varchar", "max_length": 50, "unique": true } ] },
  { "op": "create_table", "table": "subscriptions", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "plan_id", "type": "big_integer" },
    { "name": "note", "type": "varchar", "max_length": 50 } ],
    "foreign_keys": [ { "name": "fk_subscriptions_plan", "column": "plan_id",
      "references": "plans", "references_column": "id", "shared": true,
      "on_delete": "restrict" } ] } ] }"#;

const LATER: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "users",
    "column": { "name": "is_active", "type": "boolean", "default": false } },
  { "op": "create_index", "table": "users", "name": "ix_users_email", "columns": ["email"] },
  { "op": "create_table", "table": "i_prices", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "amount", "type": "decimal", "precision": 12, "scale": 2, "default": 0 },
    { "name": "currency", "type": "varchar", "max_length": 30, "default": "eur" },
    { "name": "quantity", "type": "integer", "default": 7 },
    { "name": "product_id", "type": "big_integer" } ],
    "foreign_keys": [ { "name": "fk_i_prices_product", "column": "product_id",
      "references": "products", "references_column": "id", "on_delete": "cascade" } ] },
  { "op": "create_index", "table": "i_prices", "name": "ix_i_prices_product_id",
    "columns": ["product_id"] } ] }"#;

fn migrations() -> Migrations {
    Migrations::from_files(&[("0001_tables", TABLES), ("0002_later", LATER)]).unwrap()
}

/// The test models plus `IPrice` over the test's database, with the migrations declared (so
/// a tenant built from the models is stamped at the last one).
fn registry(t: &TestDb) -> Registry {
    models::register(Registry::new(t.registry.database().clone()))
        .register::<IPrice>()
        .migrations(migrations())
}

/// A tenant built from the models.
async fn built(registry: &Registry, schema: &SchemaName) {
    create_schema(registry, schema, None, false, true)
        .await
        .unwrap();
}

/// A tenant built by replaying the migrations.
async fn replayed(registry: &Registry, schema: &SchemaName) {
    replayed_with(registry, schema, migrations()).await
}

/// A tenant built by replaying `set`.
async fn replayed_with(registry: &Registry, schema: &SchemaName, set: Migrations) {
    create_schema(registry, schema, Some(&[]), false, false)
        .await
        .unwrap();
    let report = Migrator::new(registry, set)
        .run(RunOptions {
            tenant: Some(schema.clone()),
            ..RunOptions::default()
        })
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
}

async fn live(t: &TestDb, schema: &SchemaName) -> LiveSchema {
    introspect(t.registry.database(), Some(schema))
        .await
        .unwrap()
}

/// Runs one statement of the backend's text on `schema`, behind tenantry's back. `{s}` is
/// the schema qualifier (`"schema".` on PostgreSQL, `` `database`. `` on MySQL, nothing on
/// SQLite, whose statement runs on the tenant's own file).
async fn by_hand(t: &TestDb, schema: &SchemaName, postgres: &str, mysql: &str, sqlite: &str) {
    let db = t.registry.database();
    match t.backend {
        Backend::Postgres => {
            let sql = postgres.replace("{s}", &format!("\"{schema}\"."));
            let mut conn = db.acquire_postgres().await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
        }
        Backend::MySql => {
            let name = db.server_schema_name(schema).unwrap();
            let sql = mysql.replace("{s}", &format!("`{name}`."));
            let mut conn = db.acquire_mysql().await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
        }
        Backend::Sqlite => {
            let sql = sqlite.replace("{s}", "");
            let mut conn = db.acquire_sqlite(Some(schema)).await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
        }
    }
}

backend_test!(replayed_equals_built, |t: TestDb| async move {
    let registry = registry(&t);
    let (a, b) = (t.schema("built"), t.schema("replayed"));
    built(&registry, &a).await;
    replayed(&registry, &b).await;
    let (from_models, from_migrations) = (live(&t, &a).await, live(&t, &b).await);
    let differences = from_models.differences(&from_migrations);
    assert!(
        differences.is_empty(),
        "{}: built and replayed differ:\n{}\nbuilt: {from_models:#?}\nreplayed: {from_migrations:#?}",
        t.backend,
        differences.join("\n")
    );
    // What was compared is really there (an empty introspection would compare equal too).
    let users = &from_models.tables["users"];
    let names: Vec<&str> = users.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "email", "is_active"]);
    assert!(users.columns[0].primary_key && users.columns[0].auto_increment);
    assert_eq!(users.indexes.len(), 1);
    let prices = &from_models.tables["i_prices"];
    let amount = prices.column("amount").unwrap();
    // SQLite keeps a string literal's quotes (see `introspect`).
    let (zero, eur) = match t.backend {
        Backend::Sqlite => ("'0.00'", "'eur'"),
        _ => ("0.00", "eur"),
    };
    assert_eq!(amount.default.as_deref(), Some(zero), "{amount:?}");
    assert_eq!(
        prices.column("currency").unwrap().default.as_deref(),
        Some(eur)
    );
    assert_eq!(
        prices.column("quantity").unwrap().default.as_deref(),
        Some("7")
    );
    let fk = prices.foreign_keys.iter().next().unwrap();
    assert_eq!(
        (
            fk.column.as_str(),
            fk.references_table.as_str(),
            fk.on_delete.as_str()
        ),
        ("product_id", "products", "cascade")
    );
    assert!(!from_models.tables.contains_key("tenantry_migrations"));

    // The defaults fill a row written without them, at the decimal's scale (SQLite once
    // stored a bare `0.00` default as `'0.0'`).
    for schema in [&a, &b] {
        let product = Product::query(&registry)
            .using(schema)
            .create(models::product("lamp", None))
            .await
            .unwrap();
        let insert = |q: &str| {
            format!(
                "INSERT INTO {{s}}{q}i_prices{q} ({q}product_id{q}) VALUES ({})",
                product.id
            )
        };
        by_hand(&t, schema, &insert("\""), &insert("`"), &insert("\"")).await;
        let mut prices = IPrice::query(&registry).using(schema).all().await.unwrap();
        assert_eq!(prices.len(), 1);
        let price = prices.remove(0);
        assert_eq!(
            (price.amount, price.currency.as_str(), price.quantity),
            (Decimal::new(0, 2), "eur", 7),
            "{}: {schema}",
            t.backend
        );
        // The exact text at the column's scale (sqlx reads PostgreSQL's zero without its
        // scale, so only the other two can show it).
        if t.backend != Backend::Postgres {
            assert_eq!(price.amount.to_string(), "0.00", "{}: {schema}", t.backend);
        }
    }
    match t.backend {
        Backend::Postgres => {
            assert_eq!(amount.data_type, "numeric(12,2)");
            let sub = &from_models.tables["subscriptions"];
            assert!(
                sub.foreign_keys
                    .iter()
                    .next()
                    .unwrap()
                    .references_other_schema
            );
        }
        Backend::MySql => assert_eq!(amount.data_type, "decimal(12,2)"),
        Backend::Sqlite => assert_eq!(amount.data_type, "text collate tenantry_decimal"),
    }
});

/// The names of the schema's foreign key constraints, sorted (none on SQLite, whose keys
/// have no catalogued names).
async fn foreign_key_names(t: &TestDb, schema: &SchemaName) -> Vec<String> {
    let db = t.registry.database();
    let mut names: Vec<String> = match t.backend {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            sqlx::query_scalar(
                "SELECT c.conname::text FROM pg_constraint c \
                 JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = $1 AND c.contype = 'f'",
            )
            .bind(schema.as_str())
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            sqlx::query_scalar(
                "SELECT CAST(CONSTRAINT_NAME AS CHAR) \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
            )
            .bind(db.server_schema_name(schema).unwrap())
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        }
        Backend::Sqlite => Vec::new(),
    };
    names.sort();
    names
}

backend_test!(generated_migration_equals_built, |t: TestDb| async move {
    // What `makemigrations` writes for the models, from nothing, replayed into a tenant.
    let registry = registry(&t);
    let models = Snapshot::of_models(registry.models(), MigrationScope::Tenant).unwrap();
    let changes = diff(&Snapshot::default(), &models, &Renames::default()).unwrap();
    let text = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
    let set = Migrations::from_files(&[("0001_initial", text.as_str())]).unwrap();
    let (a, b) = (t.schema("built"), t.schema("generated"));
    built(&registry, &a).await;
    replayed_with(&registry, &b, set).await;
    let (from_models, generated) = (live(&t, &a).await, live(&t, &b).await);
    let differences = from_models.differences(&generated);
    assert!(
        differences.is_empty(),
        "{}: built and generated differ:\n{}",
        t.backend,
        differences.join("\n")
    );
    // Names are not compared by introspection, but a later generated `drop_foreign_key`
    // names the key: the tenants built from the models must carry the same names.
    let names = foreign_key_names(&t, &a).await;
    assert_eq!(names, foreign_key_names(&t, &b).await, "{}", t.backend);
    if t.backend != Backend::Sqlite {
        assert!(names.contains(&"fk_products_user".to_owned()), "{names:?}");
    }
});

backend_test!(hand_made_changes_are_reported, |t: TestDb| async move {
    let registry = registry(&t);
    let (a, b) = (t.schema("same"), t.schema("changed"));
    built(&registry, &a).await;
    built(&registry, &b).await;
    assert_eq!(live(&t, &a).await, live(&t, &b).await);

    // A column added, an index dropped, a type changed.
    by_hand(
        &t,
        &b,
        r#"ALTER TABLE {s}"users" ADD COLUMN "nickname" varchar(20) NULL"#,
        "ALTER TABLE {s}`users` ADD COLUMN `nickname` varchar(20) NULL",
        r#"ALTER TABLE "users" ADD COLUMN "nickname" varchar(20) NULL"#,
    )
    .await;
    by_hand(
        &t,
        &b,
        r#"DROP INDEX {s}"ix_users_email""#,
        "DROP INDEX `ix_users_email` ON {s}`users`",
        r#"DROP INDEX "ix_users_email""#,
    )
    .await;
    by_hand(
        &t,
        &b,
        r#"ALTER TABLE {s}"tags" ALTER COLUMN "label" TYPE varchar(80)"#,
        "ALTER TABLE {s}`tags` MODIFY `label` varchar(80) COLLATE utf8mb4_bin NOT NULL",
        // SQLite alters no type in place: the table is rebuilt.
        r#"CREATE TABLE "tags_new" ( "token" blob NOT NULL PRIMARY KEY,
             "label" varchar(80) NOT NULL UNIQUE );
           INSERT INTO "tags_new" SELECT "token", "label" FROM "tags";
           DROP TABLE "tags";
           ALTER TABLE "tags_new" RENAME TO "tags";"#,
    )
    .await;
    // An index on an expression is not a column list: left out, not an error.
    by_hand(
        &t,
        &b,
        r#"CREATE INDEX "ix_users_lower_name" ON {s}"users" (lower("name"))"#,
        "SELECT 1",
        r#"CREATE INDEX "ix_users_lower_name" ON "users" (lower("name"))"#,
    )
    .await;
    let (same, changed) = (live(&t, &a).await, live(&t, &b).await);
    let differences = same.differences(&changed);
    let (old, new) = match t.backend {
        Backend::Postgres => ("character varying(50)", "character varying(80)"),
        Backend::MySql => (
            "varchar(50) collate utf8mb4_bin",
            "varchar(80) collate utf8mb4_bin",
        ),
        Backend::Sqlite => ("varchar(50)", "varchar(80)"),
    };
    let nickname = match t.backend {
        Backend::Postgres => "character varying(20)",
        Backend::MySql => "varchar(20) collate utf8mb4_bin",
        Backend::Sqlite => "varchar(20)",
    };
    assert_eq!(
        differences,
        vec![
            format!("table tags: column label: type {old} vs {new}"),
            format!("table users: column nickname ({nickname}) only in right"),
            "table users: index (email) only in left".to_owned(),
        ],
        "{}",
        t.backend
    );
    // And the other way round.
    assert_eq!(changed.differences(&same).len(), 3);
    // The untouched tenant is still what it was.
    assert!(same.differences(&live(&t, &a).await).is_empty());
});

backend_pool_test!(
    tenants_introspect_at_once_and_keep_their_data,
    |t: TestDb| async move {
        let registry = registry(&t);
        let (a, b) = (t.schema("left"), t.schema("right"));
        built(&registry, &a).await;
        built(&registry, &b).await;
        let ann = User::query(&registry)
            .using(&a)
            .create(models::user("Ann"))
            .await
            .unwrap();
        Product::query(&registry)
            .using(&a)
            .create(models::product("lamp", Some(&ann)))
            .await
            .unwrap();
        for name in ["Bob", "Cy"] {
            User::query(&registry)
                .using(&b)
                .create(models::user(name))
                .await
                .unwrap();
        }
        let db = registry.database();
        let (left, right, left_again) = tokio::join!(
            introspect(db, Some(&a)),
            introspect(db, Some(&b)),
            introspect(db, Some(&a)),
        );
        let (left, right, left_again) = (left.unwrap(), right.unwrap(), left_again.unwrap());
        assert!(left.differences(&right).is_empty());
        assert_eq!(left, left_again);
        assert!(!left.tables.is_empty());

        let names = |users: Vec<tenantry::Instance<User>>| -> Vec<String> {
            let mut names: Vec<String> = users.into_iter().map(|u| u.name.clone()).collect();
            names.sort();
            names
        };
        let (in_a, in_b) = tokio::join!(
            User::query(&registry).using(&a).all(),
            User::query(&registry).using(&b).all(),
        );
        assert_eq!(names(in_a.unwrap()), ["Ann"]);
        assert_eq!(names(in_b.unwrap()), ["Bob", "Cy"]);
        assert_eq!(
            Product::query(&registry).using(&a).count().await.unwrap(),
            1
        );
        assert_eq!(
            Product::query(&registry).using(&b).count().await.unwrap(),
            0
        );

        // The shared schema: the models' tables, not tenantry's own.
        let shared = introspect(db, None).await.unwrap();
        assert!(shared.tables.contains_key("plans"), "{shared:?}");
        assert!(!shared.tables.contains_key("tenantry_migration_ledger"));

        // A schema that does not exist is an error, not an empty schema.
        let missing = t.schema("missing");
        assert!(matches!(
            introspect(db, Some(&missing)).await,
            Err(tenantry::Error::SchemaNotFound { .. })
        ));
    }
);

backend_pool_test!(drift_reports_the_altered_tenant, |t: TestDb| async move {
    let registry = registry(&t);
    let tenants = [t.schema("d0"), t.schema("d1"), t.schema("d2")];
    built(&registry, &tenants[0]).await;
    built(&registry, &tenants[1]).await;
    replayed(&registry, &tenants[2]).await;
    let migrator = Migrator::new(&registry, migrations());
    assert!(migrator.status().await.unwrap().is_current());
    assert_eq!(migrator.drift().await.unwrap(), vec![]);

    by_hand(
        &t,
        &tenants[1],
        r#"ALTER TABLE {s}"products" ADD COLUMN "colour" varchar(12) NULL"#,
        "ALTER TABLE {s}`products` ADD COLUMN `colour` varchar(12) NULL",
        r#"ALTER TABLE "products" ADD COLUMN "colour" varchar(12) NULL"#,
    )
    .await;
    let drift = migrator.drift().await.unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].tenant, tenants[1]);
    assert_eq!(drift[0].differences.len(), 1, "{drift:?}");
    assert!(
        drift[0].differences[0].starts_with("table products: column colour (")
            && drift[0].differences[0].ends_with(") only in tenant"),
        "{drift:?}"
    );

    // The scratch schema is gone, and so is its ledger row.
    let schemas = registry.schema().list().await.unwrap();
    assert!(
        !schemas
            .iter()
            .any(|s| s.as_str().starts_with(DRIFT_SCHEMA_PREFIX)),
        "{schemas:?}"
    );
    let status = migrator.status().await.unwrap();
    assert_eq!(status.tenants.len(), 3, "{status:?}");
});

/// A step that fails wherever it runs (its table does not exist).
const BROKEN: &str = r#"{ "scope": "tenant", "operations": [ { "op": "raw",
  "postgres": "UPDATE {table:no_such_table} SET x = 1",
  "mysql": "UPDATE {table:no_such_table} SET x = 1",
  "sqlite": "UPDATE {table:no_such_table} SET x = 1" } ] }"#;

backend_test!(
    drift_drops_its_scratch_schema_when_the_replay_fails,
    |t: TestDb| async move {
        let set = Migrations::from_files(&[
            ("0001_tables", TABLES),
            ("0002_later", LATER),
            ("0003_broken", BROKEN),
        ])
        .unwrap();
        // Built from the models and stamped: current, though the last step never ran.
        let registry = models::register(Registry::new(t.registry.database().clone()))
            .register::<IPrice>()
            .migrations(set.clone());
        let tenant = t.schema("stamped");
        built(&registry, &tenant).await;
        let migrator = Migrator::new(&registry, set);
        assert!(migrator.status().await.unwrap().is_current());
        let error = migrator.drift().await.unwrap_err();
        assert!(
            matches!(error, tenantry::Error::Migration(_)),
            "{}: {error:?}",
            t.backend
        );
        let schemas = registry.schema().list().await.unwrap();
        assert_eq!(schemas, vec![tenant], "{}", t.backend);
        let status = migrator.status().await.unwrap();
        assert!(status.is_current(), "{status:?}");
    }
);

/// Three versions of a tenant's models: v1, v2 changed in ways every backend makes in
/// place (columns added and dropped, an index, a new table with keys), v3 changing columns
/// (length, default, precision), which SQLite cannot alter in place.
mod v1 {
    use tenantry::{Decimal, Model};

    #[derive(Model, Debug, Clone)]
    #[model(table = "e_customers")]
    pub struct Customer {
        pub id: i64,
        #[model(max_length = 80)]
        pub name: String,
        #[model(max_length = 80)]
        pub city: Option<String>,
        #[model(default = 0)]
        pub legacy: i32,
        #[model(max_length = 20, default = "new")]
        pub status: String,
        #[model(max_digits = 8, decimal_places = 2, default = Decimal::ZERO)]
        pub balance: Decimal,
    }
}

mod v2 {
    use tenantry::{Decimal, ForeignKey, Model};

    #[derive(Model, Debug, Clone)]
    #[model(table = "e_customers")]
    pub struct Customer {
        pub id: i64,
        #[model(max_length = 80)]
        pub name: String,
        #[model(max_length = 80)]
        pub city: Option<String>,
        #[model(max_length = 20, default = "new")]
        pub status: String,
        #[model(max_digits = 8, decimal_places = 2, default = Decimal::ZERO)]
        pub balance: Decimal,
        #[model(max_length = 120)]
        pub email: Option<String>,
        #[model(default = 5, index)]
        pub score: i32,
        #[model(default = true)]
        pub active: bool,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "e_orders")]
    pub struct Order {
        pub id: i64,
        #[model(on_delete = "cascade")]
        pub customer: ForeignKey<Customer>,
        #[model(on_delete = "set_null")]
        pub parent: Option<ForeignKey<Order>>,
        pub quantity: i32,
        #[model(max_length = 30, unique)]
        pub code: String,
    }
}

mod v3 {
    use tenantry::{Decimal, ForeignKey, Model};

    #[derive(Model, Debug, Clone)]
    #[model(table = "e_customers")]
    pub struct Customer {
        pub id: i64,
        #[model(max_length = 120)]
        pub name: String,
        #[model(max_length = 80)]
        pub city: Option<String>,
        #[model(max_length = 20, default = "active")]
        pub status: String,
        #[model(max_digits = 10, decimal_places = 2, default = Decimal::ONE)]
        pub balance: Decimal,
        #[model(max_length = 120)]
        pub email: Option<String>,
        #[model(default = 5, index)]
        pub score: i32,
        #[model(default = true)]
        pub active: bool,
    }

    #[derive(Model, Debug, Clone)]
    #[model(table = "e_orders")]
    pub struct Order {
        pub id: i64,
        #[model(on_delete = "cascade")]
        pub customer: ForeignKey<Customer>,
        #[model(on_delete = "set_null")]
        pub parent: Option<ForeignKey<Order>>,
        pub quantity: i32,
        #[model(max_length = 30, unique)]
        pub code: String,
    }
}

/// The migration sets that take the tenant tables through `versions` (each a model list),
/// as `makemigrations` generates them: one migration per version; the set up to each
/// version.
fn generated(versions: &[Vec<&'static tenantry::ModelMeta>]) -> Vec<Migrations> {
    let mut texts = Vec::new();
    let mut sets = Vec::new();
    let mut set = Migrations::from_files(&[]).unwrap();
    for (i, models) in versions.iter().enumerate() {
        let old = Snapshot::of_migrations(&set, MigrationScope::Tenant).unwrap();
        let new = Snapshot::of_models(models, MigrationScope::Tenant).unwrap();
        let changes = diff(&old, &new, &Renames::default()).unwrap();
        // Column changes rewrite tables; the test fleet is empty.
        let text = Migration::file_text(MigrationScope::Tenant, true, &changes.operations);
        texts.push((format!("{:04}_v{}", i + 1, i + 1), text));
        let files: Vec<(&str, &str)> = texts
            .iter()
            .map(|(id, text)| (id.as_str(), text.as_str()))
            .collect();
        set = Migrations::from_files(&files).unwrap();
        sets.push(set.clone());
    }
    sets
}

/// A tenant built from `from` models (stamped), migrated by `set` to the last version,
/// against one built from `to` models: the same live tables, and no drift.
async fn migrated_equals_built(
    t: &TestDb,
    from: Registry,
    to: Registry,
    set: Migrations,
) -> Result<(), tenantry::migrate::MigrationError> {
    let old = t.schema("old");
    create_schema(&from, &old, None, false, true).await.unwrap();
    let report = Migrator::new(&to, set.clone())
        .run(RunOptions::default())
        .await
        .unwrap();
    if let Some(failed) = report.failed().next() {
        return Err(failed.error.clone().unwrap());
    }
    let fresh = t.schema("fresh");
    create_schema(&to, &fresh, None, false, true).await.unwrap();
    let (migrated, built) = (live(t, &old).await, live(t, &fresh).await);
    let differences = migrated.differences(&built);
    assert!(
        differences.is_empty(),
        "{}: migrated and built differ:\n{}",
        t.backend,
        differences.join("\n")
    );
    assert!(migrated.tables.contains_key("e_orders"));
    assert_eq!(
        foreign_key_names(t, &old).await,
        foreign_key_names(t, &fresh).await
    );
    let drift = Migrator::new(&to, set).drift().await.unwrap();
    assert!(drift.is_empty(), "{}: {drift:#?}", t.backend);
    Ok(())
}

backend_test!(
    generated_changes_migrate_to_what_the_models_build,
    |t: TestDb| async move {
        let sets = generated(&[
            vec![v1::Customer::META],
            vec![v2::Customer::META, v2::Order::META],
        ]);
        let set = sets[1].clone();
        let db = t.registry.database().clone();
        let from = Registry::new(db.clone())
            .register::<v1::Customer>()
            .migrations(sets[0].clone());
        let to = Registry::new(db)
            .register::<v2::Customer>()
            .register::<v2::Order>()
            .migrations(set.clone());
        migrated_equals_built(&t, from, to, set).await.unwrap();
    }
);

backend_test!(
    generated_alters_migrate_to_what_the_models_build,
    |t: TestDb| async move {
        let sets = generated(&[
            vec![v2::Customer::META, v2::Order::META],
            vec![v3::Customer::META, v3::Order::META],
        ]);
        let set = sets[1].clone();
        let db = t.registry.database().clone();
        let from = Registry::new(db.clone())
            .register::<v2::Customer>()
            .register::<v2::Order>()
            .migrations(sets[0].clone());
        let to = Registry::new(db)
            .register::<v3::Customer>()
            .register::<v3::Order>()
            .migrations(set.clone());
        // SQLite rebuilds the tables it cannot alter in place.
        if let Err(error) = migrated_equals_built(&t, from, to, set).await {
            panic!("{}: {error}", t.backend);
        }
    }
);

backend_test!(
    drift_leaves_out_a_tenant_dropped_meanwhile,
    |t: TestDb| async move {
        let registry = registry(&t);
        let tenants: Vec<SchemaName> = (0..6).map(|i| t.schema(&format!("r{i}"))).collect();
        for tenant in &tenants {
            built(&registry, tenant).await;
        }
        let migrator = Migrator::new(&registry, migrations());
        // Drift while two tenants are dropped: whether it sees them or not, neither is
        // reported, and nothing fails.
        let schemas = registry.schema();
        let (drift, first, second) = tokio::join!(
            migrator.drift(),
            schemas.drop(&tenants[1], true, false),
            schemas.drop(&tenants[4], true, false),
        );
        first.unwrap();
        second.unwrap();
        assert_eq!(drift.unwrap(), vec![], "{}", t.backend);
        let left = registry.schema().list().await.unwrap();
        assert_eq!(left.len(), 4, "{left:?}");
    }
);
