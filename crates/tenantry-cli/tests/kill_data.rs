//! A data step over 100 tenants, its runner killed (SIGKILL) at seeded random points and
//! run again: every row of every tenant is filled exactly once per migration, and only with
//! its own tenant's values. The runner is this test binary itself (`kill_data_child`), since
//! a data step is Rust code registered with the runner. The seed is printed; set
//! `TENANTRY_KILL_SEED` to replay a run.
mod common;

use common::{kill_rounds, seed, temp_dir, write, Rng};

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tenantry::{
    create_schema,
    migrate::{Migrator, RunOptions},
    with_tenant, Database, Model, Registry, SchemaName, Transaction,
};
use tenantry_cli::read_migrations_dir;

const TENANTS: usize = 100;
const KILLS: usize = 10;
const CHILD_URL: &str = "TENANTRY_KILL_DATA_URL";
const CHILD_DIR: &str = "TENANTRY_KILL_DATA_DIR";

#[derive(Model, Debug, Clone)]
#[model(table = "kd_people")]
struct Person {
    id: i64,
    #[model(max_length = 40)]
    first: String,
    #[model(max_length = 40)]
    last: String,
    #[model(max_length = 90)]
    full: Option<String>,
    #[model(default = 0)]
    fills: i32,
}

const FIRST: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "kd_people", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "first", "type": "varchar", "max_length": 40 },
    { "name": "last", "type": "varchar", "max_length": 40 },
    { "name": "full", "type": "varchar", "max_length": 90, "null": true },
    { "name": "fills", "type": "integer", "default": 0 } ] } ] }"#;

/// Migration `k`: a DDL step, the data step, another DDL step.
fn step(k: usize) -> String {
    serde_json::json!({
        "scope": "tenant",
        "operations": [
            { "op": "add_column", "table": "kd_people",
              "column": { "name": format!("c{k}"), "type": "integer", "null": true } },
            { "op": "data", "name": "fill" },
            { "op": "create_index", "table": "kd_people", "name": format!("ix_kd_people_c{k}"),
              "columns": [format!("c{k}")] },
        ]
    })
    .to_string()
}

/// The data step: every row's `full` from its `first` and `last`, `fills` one more.
async fn fill(tx: Transaction) -> tenantry::Result<()> {
    for person in Person::query(&tx).all().await? {
        Person::query(&tx)
            .filter(Person::id().eq(person.id))
            .update([
                Person::full().set(format!("{}-{}", person.first, person.last)),
                Person::fills().set(person.fills + 1),
            ])
            .await?;
    }
    Ok(())
}

/// The runner the test kills: not a test of its own. Spawned by
/// `killed_data_steps_fill_each_row_once` with the database and the migrations directory in
/// its environment, it migrates with the `fill` step and exits 0 when every tenant is done.
/// Run any other way (no such environment), it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_data_child() {
    let (Ok(url), Ok(dir)) = (std::env::var(CHILD_URL), std::env::var(CHILD_DIR)) else {
        return;
    };
    let registry = Registry::new(Database::connect(&url).await.unwrap()).register::<Person>();
    let migrations = read_migrations_dir(Path::new(&dir)).unwrap();
    let options = RunOptions {
        concurrency: 4,
        ..RunOptions::default()
    };
    let report = Migrator::new(&registry, migrations)
        .data_step("fill", |tx| Box::pin(fill(tx)))
        .run(options)
        .await;
    let code = match report {
        Ok(report) if report.is_complete() => 0,
        Ok(report) => {
            eprintln!("{report:?}");
            1
        }
        Err(error) => {
            eprintln!("{error}");
            1
        }
    };
    std::process::exit(code);
}

fn runner(url: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "kill_data_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_URL, url)
        .env(CHILD_DIR, dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn run_to_end(url: &str, dir: &Path) -> Duration {
    let started = Instant::now();
    let out = runner(url, dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Tenant `i` holds exactly its two people, each filled `fills` times with its own values.
async fn assert_filled(registry: &Registry, tenants: &[SchemaName], fills: i32) {
    for (i, tenant) in tenants.iter().enumerate() {
        let people = with_tenant(Some(tenant.clone()), Person::query(registry).all())
            .await
            .unwrap();
        assert_eq!(people.len(), 2, "tenant {tenant}");
        for p in &people {
            assert!(
                p.first.starts_with(&format!("t{i}p")),
                "{tenant} holds {}",
                p.first
            );
            let full = format!("{}-{}", p.first, p.last);
            assert_eq!(p.full.as_deref(), Some(full.as_str()), "{tenant}");
            assert_eq!(
                p.fills, fills,
                "tenant {tenant}: a data step ran {} times over {fills} migrations",
                p.fills
            );
        }
    }
}

backend_test!(
    killed_data_steps_fill_each_row_once,
    |t: common::TestDb| async move {
        let seed = seed();
        eprintln!(
            "{}: kill seed {seed} (TENANTRY_KILL_SEED={seed} replays it)",
            t.backend
        );
        let mut rng = Rng(seed);
        let registry = Registry::new(t.registry.database().clone()).register::<Person>();
        let url = t.url();
        let dir = temp_dir(&format!("{}-{}", t.backend, t.prefix));
        let mut tenants = Vec::with_capacity(TENANTS);
        for i in 0..TENANTS {
            let schema = t.schema(&format!("kd{i}"));
            create_schema(&registry, &schema, Some(&[]), false, false)
                .await
                .unwrap();
            tenants.push(schema);
        }
        write(&dir, "0001_people", FIRST);
        run_to_end(&url, &dir);
        for (i, tenant) in tenants.iter().enumerate() {
            let people = (0..2).map(|k| Person {
                id: 0,
                first: format!("t{i}p{k}"),
                last: format!("L{k}"),
                full: None,
                fills: 0,
            });
            with_tenant(
                Some(tenant.clone()),
                Person::query(&registry).bulk_create(people),
            )
            .await
            .unwrap();
        }

        // An idle run and a run of one data migration bound the kill window.
        let idle = run_to_end(&url, &dir);
        write(&dir, "0002_fill", &step(0));
        let full = run_to_end(&url, &dir);
        assert_filled(&registry, &tenants, 1).await;
        eprint!("{}: ", t.backend);
        let steps = kill_rounds(&dir, "fill", KILLS, (idle, full), &mut rng, step, || {
            runner(&url, &dir)
        });
        run_to_end(&url, &dir);
        assert_filled(&registry, &tenants, steps as i32).await;
        let status = Migrator::new(&registry, read_migrations_dir(&dir).unwrap())
            .status()
            .await
            .unwrap();
        assert!(
            status.is_current(),
            "{:?}",
            status.behind().collect::<Vec<_>>()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
);
