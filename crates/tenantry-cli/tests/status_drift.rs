//! `migrate status --drift` on every backend: silent and successful while every tenant has
//! the tables its migrations build; after a column is added by hand to one tenant, that
//! tenant (and no other) is printed with the difference, and the exit is a failure.
mod common;

use common::TestDb;
use tenantry::{
    create_schema,
    migrate::{Migrations, Migrator},
    Backend, Model, Registry, SchemaName,
};
use tenantry_cli::{migrate, Cli, Command, MigrateArgs};

/// A tenant's customer.
#[derive(Model, Debug, Clone)]
#[model(table = "customers")]
struct Customer {
    id: i64,
    #[model(max_length = 80, index)]
    name: String,
    #[model(default = 0)]
    visits: i32,
}

const INITIAL: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "customers", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 80 },
    { "name": "visits", "type": "integer", "default": 0 } ] },
  { "op": "create_index", "table": "customers", "name": "ix_customers_name",
    "columns": ["name"] } ] }"#;

fn migrations() -> Migrations {
    Migrations::from_files(&[("0001_initial", INITIAL)]).unwrap()
}

fn args(words: &[&str]) -> MigrateArgs {
    let argv = ["app", "migrate"].iter().chain(words).copied();
    match Cli::<tenantry_cli::NoServeArgs>::try_parse_from(argv)
        .unwrap()
        .into_command()
    {
        Command::Migrate(args) => args,
        other => panic!("{other:?}"),
    }
}

async fn status(registry: &Registry, words: &[&str]) -> (bool, String) {
    let mut out = Vec::new();
    let migrator = Migrator::new(registry, migrations());
    let current = migrate(&migrator, &args(words), &mut out).await.unwrap();
    (current, String::from_utf8(out).unwrap())
}

/// Adds a column to `schema`'s customers behind tenantry's back.
async fn add_column_by_hand(t: &TestDb, schema: &SchemaName) {
    let db = t.registry.database();
    match t.backend {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            let sql = format!(r#"ALTER TABLE "{schema}"."customers" ADD COLUMN "vip" boolean"#);
            sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let name = db.server_schema_name(schema).unwrap();
            let sql = format!("ALTER TABLE `{name}`.`customers` ADD COLUMN `vip` boolean");
            sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
        }
        Backend::Sqlite => {
            let mut conn = db.acquire_sqlite(Some(schema)).await.unwrap();
            sqlx::raw_sql(r#"ALTER TABLE "customers" ADD COLUMN "vip" boolean"#)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
    }
}

backend_test!(
    status_drift_names_the_altered_tenant,
    |t: TestDb| async move {
        let registry = Registry::new(t.registry.database().clone())
            .register::<Customer>()
            .migrations(migrations());
        let tenants = [t.schema("a"), t.schema("b"), t.schema("c")];
        for tenant in &tenants {
            create_schema(&registry, tenant, None, false, true)
                .await
                .unwrap();
        }
        let (current, out) = status(&registry, &["status", "--drift"]).await;
        assert!(current, "{out}");
        assert!(out.contains("drift: none"), "{out}");

        add_column_by_hand(&t, &tenants[1]).await;
        let (current, out) = status(&registry, &["status", "--drift"]).await;
        assert!(!current, "{}: {out}", t.backend);
        let drift = &out[out.find("drift: 1 tenant(s)").expect(&out)..];
        assert!(drift.contains(&format!("{}:\n", tenants[1])), "{out}");
        assert!(
            drift.contains("    table customers: column vip (")
                && drift.contains(") only in tenant"),
            "{out}"
        );
        for other in [&tenants[0], &tenants[2]] {
            assert!(!drift.contains(other.as_str()), "{out}");
        }
        // Only the tenant asked for; without --drift the status is what it was.
        let (current, out) = status(
            &registry,
            &["status", "--drift", "--tenant", tenants[0].as_str()],
        )
        .await;
        assert!(current && out.contains("drift: none"), "{out}");
        let (current, out) = status(&registry, &["status"]).await;
        assert!(current && !out.contains("drift: "), "{out}");
        // --drift is a status option.
        let mut sink = Vec::new();
        let error = migrate(
            &Migrator::new(&registry, migrations()),
            &args(&["run", "--drift"]),
            &mut sink,
        )
        .await
        .unwrap_err();
        assert_eq!(error.exit_code(), std::process::ExitCode::from(2));
    }
);
