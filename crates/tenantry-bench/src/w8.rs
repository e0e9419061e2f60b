//! W8_migrate: a metadata-only `ADD COLUMN` applied by [`Migrator::run`] to every tenant of a
//! fleet of 1,000 and of 10,000 schemas (`--migrate-tenants`), one output line per size.
//!
//! For each size N, in the order given:
//! 1. N tenants `tenant_w8_00001`, … are created from the bench's models by a registry whose
//!    migrations are [`V1`] alone, so each is stamped at `0001_w8_tables` (history table and
//!    ledger row) as an application's new tenants are. Untimed, [`PROVISION_WORKERS`] at a
//!    time.
//! 2. 50 more are created one by one, each timed: `provision_p50_ms` (schema, both tables,
//!    stamp) at that fleet size. They are dropped again, untimed, so that N are migrated.
//! 3. Timed: one [`Migrator::run`] of [`V1`] + [`V2`] (`0002_w8_note`, a nullable column
//!    without default: metadata only) with `--migrate-concurrency` workers: `seconds`,
//!    `tenants_per_sec`. A background task samples the process's `VmRSS` every 50 ms:
//!    `peak_rss_mib` is the highest sample less the one taken just before the run.
//! 4. Timed: one [`Migrator::status`] over the fleet: `status_ms`.
//! 5. The N tenants are dropped, so that the next size starts again from `0001`.
//!
//! Extra fields: `concurrency`; `provision_p99_ms`; `tenant_p50_ms` and `tenant_p99_ms`, the
//! runner's time per tenant (`TenantOutcome::duration`); `list_ms`, one
//! `registry.schema().list()` after the status call (the share of `status_ms` that is the
//! schema list); `run_cpu_seconds`, the bench process's CPU time during the run (runner
//! side, and on SQLite the engine too; the rest of `seconds` is the server and the wire);
//! `setup_seconds`, the untimed creation of the fleet.
//!
//! The runner migrates every schema of the database, so W8 refuses a database that holds
//! schemas it did not make: give it a database of its own (created with `createdb`, or a
//! fresh SQLite file). It drops every tenant it made, also after a failure (a run killed
//! outright leaves `tenant_w8_*` schemas, which the next run of the bench drops first), and
//! at the end deletes their ledger rows and drops the ledger and the shared history table if
//! nothing else is left in them.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tenantry::{
    migrate::{Migrations, Migrator, RunOptions, HISTORY_TABLE, LEDGER_TABLE},
    Backend, Registry, SchemaName,
};

use crate::{
    models::{Product, User},
    round,
    stats::{ops_per_sec, Fields, Samples},
    Bench, Result,
};

/// The first tenant migration: both tables, exactly as the models create them.
pub const V1: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "users", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 255 } ] },
  { "op": "create_table", "table": "products", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 255 },
    { "name": "user_id", "type": "big_integer", "null": true },
    { "name": "price", "type": "decimal", "precision": 12, "scale": 2 },
    { "name": "stock", "type": "integer" } ],
    "foreign_keys": [ { "name": "fk_products_user_id", "column": "user_id",
      "references": "users", "references_column": "id", "on_delete": "cascade" } ] } ] }"#;

/// The migration W8 times: a nullable column without default, a catalog change only on
/// every backend (no table rewrite).
pub const V2: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "products",
    "column": { "name": "w8_note", "type": "integer", "null": true } } ] }"#;

const V1_ID: &str = "0001_w8_tables";
const V2_ID: &str = "0002_w8_note";

/// The tenants W8 makes: `tenant_w8_00001`, …
pub const PREFIX: &str = "tenant_w8_";

/// Tenants created (or dropped) at once while the fleet is set up.
pub const PROVISION_WORKERS: usize = 4;

/// Tenants created one by one, each timed, for `provision_p50_ms`.
const PROVISION_SAMPLES: usize = 50;

fn w8_tenant(i: usize) -> SchemaName {
    SchemaName::parse(&format!("{PREFIX}{i:05}")).expect("a valid schema name")
}

impl Bench {
    /// W8: see the module documentation.
    pub(crate) async fn w8_migrate(&mut self) -> Result<()> {
        let v1 = Migrations::from_files(&[(V1_ID, V1)])?;
        let v2 = Migrations::from_files(&[(V1_ID, V1), (V2_ID, V2)])?;
        let registry = Registry::new(self.database.clone())
            .register::<User>()
            .register::<Product>()
            .migrations(v1);
        let foreign: Vec<SchemaName> = registry
            .schema()
            .list()
            .await?
            .into_iter()
            .filter(|s| !s.as_str().starts_with(PREFIX))
            .collect();
        if let Some(first) = foreign.first() {
            return Err(format!(
                "W8 migrates every schema of the database, and this one holds {} schema(s) W8 \
                 did not make (e.g. {first}): give W8 a database of its own",
                foreign.len()
            )
            .into());
        }
        let sizes = self.args.migrate_tenants.clone();
        let mut result = Ok(());
        for n in sizes {
            result = self.w8_size(&registry, &v2, n).await;
            if result.is_err() {
                break;
            }
        }
        let cleanup = self.w8_cleanup(&registry).await;
        result.and(cleanup)
    }

    /// One size: the fleet of `n` at 0001, the provisioning samples, the run, the status.
    async fn w8_size(&self, registry: &Registry, v2: &Migrations, n: usize) -> Result<()> {
        // Whatever an earlier size left (migrated to 0002) goes first.
        let stale = w8_schemas(registry).await?;
        if !stale.is_empty() {
            let started = Instant::now();
            drop_all(registry, stale.clone()).await?;
            eprintln!(
                "tenantry-bench: W8 dropped the {} tenants of the previous size in {:.1} s",
                stale.len(),
                started.elapsed().as_secs_f64()
            );
        }

        let started = Instant::now();
        let mut fleet: Vec<SchemaName> = (1..=n).map(w8_tenant).collect();
        // The first tenant alone: it makes the ledger, whose `CREATE TABLE IF NOT EXISTS`
        // from several connections at once can fail on PostgreSQL ("type ... already
        // exists", 42710, which `ensure_ledger` does not retry).
        if !fleet.is_empty() {
            let first = fleet.remove(0);
            registry.schema().create(&first, None, false, true).await?;
        }
        let creator = registry.clone();
        each(fleet, PROVISION_WORKERS, "created", move |schema| {
            let registry = creator.clone();
            async move { registry.schema().create(&schema, None, false, true).await }
        })
        .await?;
        let setup_seconds = started.elapsed().as_secs_f64();
        eprintln!("tenantry-bench: W8 created {n} tenants at {V1_ID} in {setup_seconds:.1} s");

        // provision_p50_ms: tenants N+1..N+50, one by one, with the fleet in place.
        let mut provision = Samples::with_capacity(PROVISION_SAMPLES);
        let extra: Vec<SchemaName> = (n + 1..=n + PROVISION_SAMPLES).map(w8_tenant).collect();
        for schema in &extra {
            let op = Instant::now();
            registry.schema().create(schema, None, false, true).await?;
            provision.push(op.elapsed());
        }
        drop_all(registry, extra).await?;

        // The timed run.
        let concurrency = self.args.migrate_concurrency;
        let migrator = Migrator::new(registry, v2.clone());
        let sampler = RssSampler::start();
        let cpu = cpu_seconds();
        let started = Instant::now();
        let report = migrator
            .run(RunOptions {
                concurrency,
                ..RunOptions::default()
            })
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let run_cpu = cpu_seconds().zip(cpu).map(|(after, before)| after - before);
        let rss_mib = match sampler {
            Some(sampler) => Some(sampler.finish().await),
            None => None,
        };
        let report = report?;
        let migrated = report
            .tenants
            .iter()
            .filter(|t| t.error.is_none() && !t.skipped && t.applied == [V2_ID])
            .count();
        if let Some(failed) = report.failed().next() {
            return Err(format!(
                "W8: tenant {} was not migrated: {:?}",
                failed.tenant, failed.error
            )
            .into());
        }
        if migrated != n || report.tenants.len() != n {
            return Err(format!(
                "W8: {migrated} of {} tenants migrated to {V2_ID}, expected {n}",
                report.tenants.len()
            )
            .into());
        }
        let mut per_tenant = Samples::with_capacity(n);
        for outcome in &report.tenants {
            per_tenant.push(outcome.duration);
        }

        // One status call over the fleet.
        let started = Instant::now();
        let status = migrator.status().await?;
        let status_ms = started.elapsed().as_secs_f64() * 1e3;
        if !status.is_current() || status.tenants.len() != n {
            return Err(format!(
                "W8: status sees {} tenants, {} behind, after the run over {n}",
                status.tenants.len(),
                status.behind().count()
            )
            .into());
        }
        // Its share that is the schema list alone (through the pool), for the breakdown.
        let started = Instant::now();
        let listed = registry.schema().list().await?.len();
        let list_ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(listed, n);

        let mut line = Fields::new();
        line.insert("workload", json!("W8_migrate"));
        line.insert("backend", json!(self.backend.name()));
        line.insert("tenants", json!(n));
        line.insert("seconds", json!(round(seconds, 3)));
        line.insert("tenants_per_sec", json!(round(ops_per_sec(n, seconds), 1)));
        line.insert("status_ms", json!(round(status_ms, 2)));
        line.insert(
            "provision_p50_ms",
            json!(round(provision.percentile(0.5) / 1e3, 2)),
        );
        line.insert("peak_rss_mib", json!(rss_mib.map(|m| round(m, 1))));
        line.insert("concurrency", json!(concurrency));
        line.insert(
            "provision_p99_ms",
            json!(round(provision.percentile(0.99) / 1e3, 2)),
        );
        line.insert(
            "tenant_p50_ms",
            json!(round(per_tenant.percentile(0.5) / 1e3, 2)),
        );
        line.insert(
            "tenant_p99_ms",
            json!(round(per_tenant.percentile(0.99) / 1e3, 2)),
        );
        line.insert("list_ms", json!(round(list_ms, 2)));
        line.insert("run_cpu_seconds", json!(run_cpu.map(|s| round(s, 2))));
        line.insert("setup_seconds", json!(round(setup_seconds, 1)));
        println!("{line}");

        let started = Instant::now();
        drop_all(registry, w8_schemas(registry).await?).await?;
        eprintln!(
            "tenantry-bench: W8 dropped {n} tenants in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Drops every W8 tenant still there, deletes their ledger rows, and drops the ledger
    /// and the shared history table when nothing else is in them.
    async fn w8_cleanup(&self, registry: &Registry) -> Result<()> {
        let left = w8_schemas(registry).await?;
        let count = left.len();
        drop_all(registry, left).await?;
        if count > 0 {
            eprintln!("tenantry-bench: W8 dropped {count} tenants left after a failure");
        }
        self.w8_forget_ledger().await
    }

    /// The ledger rows of W8's tenants; then the ledger and the shared history table if empty.
    async fn w8_forget_ledger(&self) -> Result<()> {
        // Literal SQL without parameters, valid on all three backends (`!` escapes `_`),
        // sent unprepared so that no pooled connection keeps a statement on a dropped table.
        let delete =
            format!("DELETE FROM {LEDGER_TABLE} WHERE tenant LIKE 'tenant!_w8!_%' ESCAPE '!'");
        let count = |table: &str| format!("SELECT COUNT(*) FROM {table}");
        let drop = |table: &str| format!("DROP TABLE IF EXISTS {table}");
        macro_rules! on {
            ($conn:expr) => {{
                let mut conn = $conn;
                sqlx::raw_sql(&delete).execute(&mut *conn).await?;
                for table in [LEDGER_TABLE, HISTORY_TABLE] {
                    let rows = sqlx::raw_sql(&count(table)).fetch_one(&mut *conn).await;
                    let empty = match rows {
                        Ok(row) => sqlx::Row::try_get::<i64, _>(&row, 0)? == 0,
                        Err(_) => false, // not there (or not readable): leave it
                    };
                    if empty {
                        sqlx::raw_sql(&drop(table)).execute(&mut *conn).await?;
                    }
                }
                conn.release();
            }};
        }
        match self.backend {
            Backend::Postgres => on!(self.database.acquire_postgres().await?),
            Backend::MySql => on!(self.database.acquire_mysql().await?),
            Backend::Sqlite => on!(self.database.acquire_sqlite(None).await?),
        }
        Ok(())
    }
}

/// The W8 tenants that exist now.
async fn w8_schemas(registry: &Registry) -> Result<Vec<SchemaName>> {
    Ok(registry
        .schema()
        .list()
        .await?
        .into_iter()
        .filter(|s| s.as_str().starts_with(PREFIX))
        .collect())
}

/// Drops `schemas`, [`PROVISION_WORKERS`] at a time.
async fn drop_all(registry: &Registry, schemas: Vec<SchemaName>) -> Result<()> {
    let registry = registry.clone();
    each(schemas, PROVISION_WORKERS, "dropped", move |schema| {
        let registry = registry.clone();
        async move { registry.schema().drop(&schema, true, true).await }
    })
    .await
}

/// Runs `op` on every schema, `workers` at a time, reporting progress on stderr for large
/// fleets; the first error stops the workers.
async fn each<F, Fut>(schemas: Vec<SchemaName>, workers: usize, what: &str, op: F) -> Result<()>
where
    F: Fn(SchemaName) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = tenantry::Result<()>> + Send + 'static,
{
    let total = schemas.len();
    let schemas = Arc::new(schemas);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let op = Arc::new(op);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(workers);
    for _ in 0..workers.min(total) {
        let (schemas, next, failed, op) = (
            Arc::clone(&schemas),
            Arc::clone(&next),
            Arc::clone(&failed),
            Arc::clone(&op),
        );
        let what = what.to_owned();
        handles.push(tokio::spawn(async move {
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(schema) = schemas.get(i) else { break };
                if let Err(error) = op(schema.clone()).await {
                    failed.store(true, Ordering::Relaxed);
                    return Err(format!("{schema}: {error}"));
                }
                if (i + 1) % 2000 == 0 {
                    eprintln!(
                        "tenantry-bench: W8 {what} {} of {total} tenants ({:.1} s)",
                        i + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(())
        }));
    }
    let mut first = None;
    for handle in handles {
        let outcome = handle.await.map_err(|e| e.to_string()).and_then(|r| r);
        if let Err(error) = outcome {
            first = first.or(Some(error));
        }
    }
    match first {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// The process's resident set in KiB (`VmRSS` of `/proc/self/status`; `None` elsewhere).
pub(crate) fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time (user and system) of the whole process so far, in seconds: fields 14 and 15
/// of `/proc/self/stat`, in clock ticks of 10 ms (`None` elsewhere). It counts the threads
/// that have ended too, which a sum over `/proc/self/task` does not.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, field 2, is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Samples the RSS every 50 ms in a background task.
pub(crate) struct RssSampler {
    baseline: u64,
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub(crate) fn start() -> Option<RssSampler> {
        let baseline = rss_kib()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = tokio::spawn(async move {
            let mut peak = baseline;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                peak = peak.max(rss_kib().unwrap_or(0));
                if flag.load(Ordering::Relaxed) {
                    break peak;
                }
            }
        });
        Some(RssSampler {
            baseline,
            stop,
            handle,
        })
    }

    /// The growth over the baseline, in MiB: the highest sample (one more taken now) less
    /// the baseline.
    pub(crate) async fn finish(self) -> f64 {
        let last = rss_kib().unwrap_or(0);
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.handle.await.unwrap_or(self.baseline).max(last);
        peak.saturating_sub(self.baseline) as f64 / 1024.0
    }
}
