//! A runner killed (SIGKILL, not a dropped future) at seeded random points over 100 tenants,
//! then run again: every tenant ends at the last version and no step ran twice, proved by a
//! hand-written step that adds one counter row per tenant each time it runs. Then two
//! runners at once: each tenant migrated exactly once. The seed is printed; set
//! `TENANTRY_KILL_SEED` to replay a run.
mod common;

use common::{kill_rounds, seed, temp_dir, write, Rng};

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use tenantry::{
    create_schema,
    migrate::{Migrations, Migrator},
    Model, Registry, SchemaName,
};

const TENANTS: usize = 100;
const KILLS: usize = 20;

#[derive(Model, Debug, Clone, serde::Serialize)]
#[model(table = "k_counter")]
struct KCounter {
    #[model(primary_key)]
    id: i64,
    n: i32,
}

const FIRST: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "k_counter", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "n", "type": "integer" } ] },
  { "op": "create_table", "table": "k_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 40 } ] } ] }"#;

/// Migration `k`: DDL steps around a non-idempotent data step.
fn step(k: usize) -> String {
    let raw = format!("INSERT INTO {{table:k_counter}} (n) VALUES ({k})");
    serde_json::json!({
        "scope": "tenant",
        "operations": [
            { "op": "add_column", "table": "k_items",
              "column": { "name": format!("c{k}"), "type": "integer", "null": true } },
            { "op": "raw", "postgres": raw, "mysql": raw, "sqlite": raw },
            { "op": "create_index", "table": "k_items", "name": format!("ix_k_items_c{k}"),
              "columns": [format!("c{k}")] },
        ]
    })
    .to_string()
}

fn runner(url: &str, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantry-migrate"));
    command
        .args(["--database-url", url, "--migrations"])
        .arg(dir)
        .args(["run", "--concurrency", "4"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Drops `k_counter` in one tenant with raw SQL, as an operator's mistake would.
async fn drop_counter_table(registry: &Registry, tenant: &SchemaName) {
    let db = registry.database();
    match db.backend() {
        tenantry::Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            let sql = format!("DROP TABLE \"{tenant}\".k_counter");
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
            conn.release();
        }
        tenantry::Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            let sql = format!(
                "DROP TABLE `{}`.k_counter",
                db.server_schema_name(tenant).unwrap()
            );
            sqlx::query(&sql).execute(&mut *conn).await.unwrap();
            conn.release();
        }
        _ => {
            let mut conn = db.acquire_sqlite(Some(tenant)).await.unwrap();
            sqlx::query("DROP TABLE k_counter")
                .execute(&mut *conn)
                .await
                .unwrap();
            conn.release();
        }
    }
}

/// The migrations the runner binary reads from `dir`.
fn migrations_in(dir: &Path) -> Migrations {
    tenantry_cli::read_migrations_dir(dir).unwrap()
}

async fn fleet(t: &common::TestDb) -> (Registry, Vec<SchemaName>) {
    let registry = Registry::new(t.registry.database().clone()).register::<KCounter>();
    let mut tenants = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        let schema = t.schema(&format!("k{i}"));
        create_schema(&registry, &schema, Some(&[]), false, false)
            .await
            .unwrap();
        tenants.push(schema);
    }
    (registry, tenants)
}

/// Every tenant holds counter rows `0..runs`, each once.
async fn assert_each_step_ran_once(registry: &Registry, tenants: &[SchemaName], runs: usize) {
    let expected: Vec<i32> = (0..runs as i32).collect();
    for tenant in tenants {
        let mut n: Vec<i32> = KCounter::query(registry)
            .using(tenant)
            .all()
            .await
            .unwrap()
            .iter()
            .map(|c| c.n)
            .collect();
        n.sort();
        assert_eq!(
            n, expected,
            "tenant {tenant}: a step ran twice or not at all"
        );
    }
}

backend_test!(
    killed_runners_resume_without_repeating_a_step,
    |t: common::TestDb| async move {
        let seed = seed();
        eprintln!(
            "{}: kill seed {seed} (TENANTRY_KILL_SEED={seed} replays it)",
            t.backend
        );
        let mut rng = Rng(seed);
        let (registry, tenants) = fleet(&t).await;
        let dir = temp_dir(&format!("{}-{}", t.backend, t.prefix));
        let url = t.url();

        // Runs to completion measure a run with nothing to do (start-up, connect, list) and a
        // run of one migration over the fleet: kills land between the two.
        write(&dir, "0001_tables", FIRST);
        let first = runner(&url, &dir).output().unwrap();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let started = Instant::now();
        let idle = runner(&url, &dir).output().unwrap();
        assert!(idle.status.success());
        let idle = started.elapsed();
        write(&dir, "0002_step", &step(0));
        let started = Instant::now();
        let one = runner(&url, &dir).output().unwrap();
        assert!(
            one.status.success(),
            "{}",
            String::from_utf8_lossy(&one.stderr)
        );
        let full = started.elapsed();
        eprint!("{}: ", t.backend);
        // Then each new migration's run is killed at a random point.
        let steps = kill_rounds(&dir, "step", KILLS, (idle, full), &mut rng, step, || {
            runner(&url, &dir)
        });

        let last = runner(&url, &dir).output().unwrap();
        assert!(
            last.status.success(),
            "{}",
            String::from_utf8_lossy(&last.stderr)
        );
        assert_each_step_ran_once(&registry, &tenants, steps).await;
        let status = Migrator::new(&registry, migrations_in(&dir))
            .status()
            .await
            .unwrap();
        assert!(
            status.is_current(),
            "{:?}",
            status.behind().collect::<Vec<_>>()
        );

        // Two runners at once on a new migration: every tenant gets it exactly once.
        write(&dir, &format!("{:04}_step", steps + 2), &step(steps));
        let (a, b) = (
            runner(&url, &dir).spawn().unwrap(),
            runner(&url, &dir).spawn().unwrap(),
        );
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
        assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
        assert_each_step_ran_once(&registry, &tenants, steps + 1).await;

        // 1% of the tenants made to fail (their counter table dropped behind the runner's
        // back): exactly those are recorded failed, the run exits 1, and after the cause is
        // removed --retry-failed finishes them, running the step once.
        let broken = &tenants[TENANTS / 2];
        drop_counter_table(&registry, broken).await;
        write(&dir, &format!("{:04}_step", steps + 3), &step(steps + 1));
        let failing = runner(&url, &dir).output().unwrap();
        assert_eq!(failing.status.code(), Some(1));
        let migrator = Migrator::new(&registry, migrations_in(&dir));
        let status = migrator.status().await.unwrap();
        let failed: Vec<_> = status.behind().map(|s| s.tenant.clone()).collect();
        assert_eq!(failed, vec![broken.clone()]);
        assert_eq!(
            status.behind().next().unwrap().state,
            Some(tenantry::migrate::LedgerState::Failed)
        );
        let skipped = runner(&url, &dir).output().unwrap();
        assert_eq!(skipped.status.code(), Some(1));
        create_schema(&registry, broken, Some(&[KCounter::META]), true, true)
            .await
            .unwrap();
        let retried = runner(&url, &dir).arg("--retry-failed").output().unwrap();
        assert!(
            retried.status.success(),
            "{}",
            String::from_utf8_lossy(&retried.stderr)
        );
        assert!(migrator.status().await.unwrap().is_current());
        let rows: Vec<i32> = KCounter::query(&registry)
            .using(broken)
            .all()
            .await
            .unwrap()
            .iter()
            .map(|c| c.n)
            .collect();
        assert_eq!(
            rows,
            vec![(steps + 1) as i32],
            "the repaired tenant ran the step once"
        );
        let others: Vec<SchemaName> = tenants.iter().filter(|t| *t != broken).cloned().collect();
        assert_each_step_ran_once(&registry, &others, steps + 2).await;
        registry.disconnect().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
);
